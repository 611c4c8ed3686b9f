//! Azure Container Registry (`NAME.azurecr.io`, `.azurecr.cn`, `.azurecr.us`): reads and
//! pushes through the registry API; tags removed through ACR's data-plane API (`/acr/v1/`) on
//! the registry host, which the registry's own tokens authorise.
//!
//! Owns:
//! - the **ACR login a CI job mints** without a password: a Microsoft Entra ID token (a service
//!   principal's client secret, a federated OIDC token from `AZURE_FEDERATED_TOKEN_FILE` or
//!   from GitHub Actions' token service, or the machine's managed identity) exchanged at the
//!   registry's `POST /oauth2/exchange` for a refresh token, which logs in as the user
//!   `00000000-0000-0000-0000-000000000000` (as `az acr login --expose-token` hands it out);
//! - the **tag delete**: `DELETE /acr/v1/{name}/_tags/{tag}` untags and touches nothing else;
//!   a manifest is deleted (`DELETE /v2/{name}/manifests/{digest}`, which takes every tag on
//!   it) only when the plan deletes all of its tags;
//! - the **listings** (`GET /acr/v1/{name}/_tags` and `/_manifests`, 100 a page, `Link`):
//!   each tag's `lastUpdateTime` is its age, tags and manifests locked with
//!   `deleteEnabled`/`writeEnabled` false are kept with that reason, manifests without a tag
//!   are the untagged ones.
//!
//! Every request to the registry host goes through the distribution client, so the token
//! flow (scopes `pull`, `metadata_read`, `delete`), retries and limits are the registry's.
//! Entra ID is called directly: one `POST` per token, as Microsoft's identity platform
//! documents it (no `az` CLI, no Azure SDK: see docs/registries.md, "Azure"). Facts:
//! docs/registries.md, "Azure Container Registry".

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::auth::TokenScope;
use super::distribution::{Client, ClientOptions, Credential, DeleteSupport, RegistryApiReply};
use super::rest::{Reply, Rest, RestError, api_base, path_segment, registry_origin};
use super::{Capabilities, MintedLogin, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RegistryHost, RepoAddress, Tag};
use crate::secret::Secret;

/// The registry user a refresh token logs in as.
pub const REFRESH_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";
/// Where Entra ID tokens come from unless `AZURE_AUTHORITY_HOST` says otherwise.
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The Entra token's scope unless `DOCKHAND_AZURE_SCOPE` says otherwise (Azure Resource
/// Manager: what ACR accepts unless a registry turned such tokens off).
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";
/// Azure's instance metadata service, where a managed identity gets its tokens.
pub const DEFAULT_IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The audience GitHub's OIDC token is asked for (what Entra ID federation expects).
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Tags or manifests asked for per listing page.
const PAGE_SIZE: usize = 100;
/// Listing pages followed before giving up.
const MAX_PAGES: usize = 10_000;

/// An Entra ID or ACR answer dockhand cannot go on from.
#[derive(Debug, thiserror::Error)]
pub enum AcrError {
    #[error("{present} is set, but {missing} is not: the Entra ID credentials are incomplete")]
    IncompleteCredentials { present: &'static str, missing: String },
    #[error("Cannot read the federated token file `{}` (AZURE_FEDERATED_TOKEN_FILE)", path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The federated token file `{}` (AZURE_FEDERATED_TOKEN_FILE) is empty", path.display())]
    EmptyTokenFile { path: PathBuf },
    #[error("GitHub's OIDC token service refused the request ({status} `{message}`)")]
    GithubOidc { status: StatusCode, message: String },
    #[error("Entra ID refused the credentials of `{client}` at `{url}` ({status} `{message}`)")]
    EntraRefused { client: String, url: String, status: StatusCode, message: String },
    #[error("The managed identity endpoint `{url}` answered {status}: `{message}`")]
    ManagedIdentity { url: String, status: StatusCode, message: String },
    #[error("`{registry}` refused the Entra token at `/oauth2/exchange` ({status} `{message}`)")]
    ExchangeRefused { registry: RegistryHost, status: StatusCode, message: String },
    #[error("`{url}` answered without a `{key}`")]
    NoToken { url: String, key: &'static str },
    #[error(
        "ACR refused to delete `{repository}:{tag}` (405 `{message}`): the tag or its manifest is locked"
    )]
    Locked { repository: String, tag: String, message: String },
    #[error(
        "Repository `{repository}` does not exist on the registry (or the login cannot see it)"
    )]
    RepositoryUnknown { repository: String },
    #[error("`{target}` answered {status}: `{message}`")]
    Status { target: String, status: StatusCode, message: String },
    #[error("`{target}` sent a reply that is no ACR API answer")]
    Parse {
        target: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{target}`: more than {MAX_PAGES} pages; dockhand stops reading there")]
    TooManyPages { target: String },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for AcrError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::IncompleteCredentials { .. }
            | Self::TokenFile { .. }
            | Self::EmptyTokenFile { .. }
            | Self::GithubOidc { .. }
            | Self::EntraRefused { .. }
            | Self::ExchangeRefused { .. }
            | Self::RepositoryUnknown { .. } => ExitStatus::Usage,
            Self::Rest(source) => source.exit_status(),
            _ => ExitStatus::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::IncompleteCredentials { .. } => Some(
                "set AZURE_CLIENT_ID and AZURE_TENANT_ID with one of AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE (or `permissions: id-token: write` on GitHub), or DOCKHAND_AZURE_MANAGED_IDENTITY=true; or log in with a docker config entry instead".to_owned(),
            ),
            Self::TokenFile { .. } | Self::EmptyTokenFile { .. } => Some(
                "the CI must write its OIDC token (audience `api://AzureADTokenExchange`) to that file before dockhand runs, e.g. GitLab `id_tokens:` written to a file".to_owned(),
            ),
            Self::GithubOidc { .. } => Some(
                "give the job `permissions: id-token: write`, or set AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE".to_owned(),
            ),
            Self::EntraRefused { .. } => Some(
                "check AZURE_CLIENT_ID, AZURE_TENANT_ID and the secret; for federation the app registration needs a federated credential whose issuer and subject match this CI job (e.g. `repo:OWNER/REPO:ref:refs/heads/main`)".to_owned(),
            ),
            Self::ExchangeRefused { .. } => Some(
                "the identity needs a role on the registry (AcrPush to push, AcrDelete or Contributor to delete); if the registry refuses Azure Resource Manager tokens, set DOCKHAND_AZURE_SCOPE=https://containerregistry.azure.net/.default".to_owned(),
            ),
            Self::Locked { .. } => Some(
                "unlock it (`az acr repository update --delete-enabled true --write-enabled true`) or keep it; a rerun skips locked tags".to_owned(),
            ),
            Self::RepositoryUnknown { .. } => {
                Some("check `--repo` (NAME.azurecr.io/REPOSITORY)".to_owned())
            }
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// Where the Entra ID token of a job comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EntraCredentials {
    /// A service principal's client secret.
    Secret { tenant: String, client: String, secret: Secret },
    /// Workload identity federation: an OIDC token as the client assertion.
    Federated { tenant: String, client: String, assertion: Assertion },
    /// The machine's managed identity (the user-assigned one `client` names, if any).
    ManagedIdentity { client: Option<String> },
}

/// Where a federated OIDC token is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Assertion {
    File(PathBuf),
    /// GitHub Actions' token service: its URL and bearer token.
    Github {
        url: String,
        token: Secret,
    },
}

impl EntraCredentials {
    /// The credentials `env` gives, if any: a secret before a token file before GitHub's
    /// token service; a managed identity only when asked for. Fails where the variables are
    /// there but incomplete.
    fn from_env(env: &EnvMap) -> Result<Option<Self>, AcrError> {
        let value =
            |name: &str| env.get(name).filter(|value| !value.trim().is_empty()).map(String::from);
        let client = value(env_vars::AZURE_CLIENT_ID);
        let tenant = value(env_vars::AZURE_TENANT_ID);
        let secret = value(env_vars::AZURE_CLIENT_SECRET);
        let file = value(env_vars::AZURE_FEDERATED_TOKEN_FILE);
        let github = value(env_vars::ACTIONS_ID_TOKEN_REQUEST_URL)
            .zip(value(env_vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN));
        if value(env_vars::DOCKHAND_AZURE_MANAGED_IDENTITY)
            .is_some_and(|flag| matches!(flag.trim(), "true" | "1" | "yes"))
        {
            return Ok(Some(Self::ManagedIdentity { client }));
        }
        let present = if secret.is_some() {
            env_vars::AZURE_CLIENT_SECRET
        } else if file.is_some() {
            env_vars::AZURE_FEDERATED_TOKEN_FILE
        } else if github.is_some() && client.is_some() && tenant.is_some() {
            env_vars::ACTIONS_ID_TOKEN_REQUEST_URL
        } else {
            return Ok(None);
        };
        let (Some(client), Some(tenant)) = (client.clone(), tenant.clone()) else {
            let missing = [
                (client.is_none(), env_vars::AZURE_CLIENT_ID),
                (tenant.is_none(), env_vars::AZURE_TENANT_ID),
            ]
            .into_iter()
            .filter_map(|(absent, name)| absent.then_some(name))
            .collect::<Vec<_>>()
            .join(" and ");
            return Err(AcrError::IncompleteCredentials { present, missing });
        };
        if let Some(secret) = secret {
            return Ok(Some(Self::Secret { tenant, client, secret: Secret::new(secret) }));
        }
        let assertion = match (file, github) {
            (Some(file), _) => Assertion::File(PathBuf::from(file)),
            (None, Some((url, token))) => Assertion::Github { url, token: Secret::new(token) },
            (None, None) => unreachable!("`present` named one of them"),
        };
        Ok(Some(Self::Federated { tenant, client, assertion }))
    }

    fn tenant(&self) -> Option<&str> {
        match self {
            Self::Secret { tenant, .. } | Self::Federated { tenant, .. } => Some(tenant),
            Self::ManagedIdentity { .. } => None,
        }
    }
}

/// `true` if and only if `env` gives Entra ID credentials to mint an ACR login from (or
/// incomplete ones, whose error the minting then reports).
pub fn has_credentials(env: &EnvMap) -> bool {
    EntraCredentials::from_env(env).map_or(true, |credentials| credentials.is_some())
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("application/json"));
    headers
}

/// What an Entra ID or ACR error body says: `error_description` (with its `AADSTS` code), an
/// ACR `errors[0].message`, or the start of the body.
fn message_of(reply: &Reply) -> String {
    let json: serde_json::Value = reply.json().unwrap_or_default();
    if let Some(message) = json["errors"][0]["message"].as_str() {
        return message.to_owned();
    }
    reply.message(&["error_description", "message", "error"])
}

/// The string under `key` of a 200 answer's JSON.
fn token_in(url: &str, reply: &Reply, key: &'static str) -> Result<Secret, AcrError> {
    let json: serde_json::Value = reply.json().unwrap_or_default();
    json[key]
        .as_str()
        .filter(|token| !token.is_empty())
        .map(Secret::new)
        .ok_or_else(|| AcrError::NoToken { url: url.to_owned(), key })
}

/// The federated OIDC token: the file's content, or a fresh one from GitHub's token service.
async fn assertion(assertion: &Assertion, options: &ClientOptions) -> Result<Secret, AcrError> {
    match assertion {
        Assertion::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|source| AcrError::TokenFile { path: path.clone(), source })?;
            let token = text.trim();
            if token.is_empty() {
                return Err(AcrError::EmptyTokenFile { path: path.clone() });
            }
            Ok(Secret::new(token))
        }
        Assertion::Github { url, token } => {
            let mut url =
                url::Url::parse(url).map_err(|_| RestError::InvalidUrl { url: url.clone() })?;
            url.query_pairs_mut().append_pair("audience", FEDERATION_AUDIENCE);
            let url = api_base(url.as_str(), &options.insecure)?;
            let rest = Rest::new(options, json_headers())?;
            rest.set_token(token);
            let reply = rest.send(Method::GET, &url, None).await?;
            if reply.status != StatusCode::OK {
                return Err(AcrError::GithubOidc {
                    status: reply.status,
                    message: message_of(&reply),
                });
            }
            token_in("GitHub's OIDC token service", &reply, "value")
        }
    }
}

/// An Entra ID access token for `credentials`, asked for `scope`.
async fn entra_token(
    credentials: &EntraCredentials,
    env: &EnvMap,
    options: &ClientOptions,
) -> Result<Secret, AcrError> {
    let scope = env
        .get(env_vars::DOCKHAND_AZURE_SCOPE)
        .filter(|value| !value.is_empty())
        .map_or(DEFAULT_SCOPE, String::as_str);
    let refused = |client: &str, url: &str, reply: &Reply| AcrError::EntraRefused {
        client: client.to_owned(),
        url: url.to_owned(),
        status: reply.status,
        message: message_of(reply),
    };
    let (tenant, client, secret_form) = match credentials {
        EntraCredentials::ManagedIdentity { client } => {
            return managed_identity_token(client.as_deref(), scope, env, options).await;
        }
        EntraCredentials::Secret { tenant, client, secret } => {
            (tenant, client, vec![("client_secret", secret.clone())])
        }
        EntraCredentials::Federated { tenant, client, assertion: source } => {
            let token = assertion(source, options).await?;
            (
                tenant,
                client,
                vec![
                    ("client_assertion_type", Secret::new(CLIENT_ASSERTION_TYPE)),
                    ("client_assertion", token),
                ],
            )
        }
    };
    let authority = env
        .get(env_vars::AZURE_AUTHORITY_HOST)
        .filter(|value| !value.is_empty())
        .map_or(DEFAULT_AUTHORITY, String::as_str);
    let authority = api_base(authority, &options.insecure)?;
    let url = format!("{authority}/{}/oauth2/v2.0/token", path_segment(tenant));
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client.as_str()),
        ("scope", scope),
    ];
    form.extend(secret_form.iter().map(|(key, value)| (*key, value.expose())));
    let rest = Rest::new(options, json_headers())?;
    let reply = rest.send_form(&url, &form).await?;
    match reply.status {
        StatusCode::OK => token_in(&url, &reply, "access_token"),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(refused(client, &url, &reply))
        }
        status => {
            Err(AcrError::Status { target: url.clone(), status, message: message_of(&reply) })
        }
    }
}

/// A managed identity's token for the resource of `scope` (the scope without `/.default`), from
/// the instance metadata service.
async fn managed_identity_token(
    client: Option<&str>,
    scope: &str,
    env: &EnvMap,
    options: &ClientOptions,
) -> Result<Secret, AcrError> {
    let endpoint = match env.get(env_vars::DOCKHAND_AZURE_IMDS_URL).filter(|v| !v.is_empty()) {
        Some(value) => api_base(value, &options.insecure)?,
        // the metadata service speaks plain HTTP on a link-local address only the VM reaches
        None => DEFAULT_IMDS_URL.to_owned(),
    };
    let resource = scope.strip_suffix(".default").unwrap_or(scope);
    let mut url =
        url::Url::parse(&endpoint).map_err(|_| RestError::InvalidUrl { url: endpoint })?;
    url.query_pairs_mut()
        .append_pair("api-version", "2018-02-01")
        .append_pair("resource", resource);
    if let Some(client) = client {
        url.query_pairs_mut().append_pair("client_id", client);
    }
    let mut headers = json_headers();
    headers.insert("metadata", HeaderValue::from_static("true"));
    let reply = Rest::new(options, headers)?.send(Method::GET, url.as_str(), None).await?;
    if reply.status != StatusCode::OK {
        return Err(AcrError::ManagedIdentity {
            url: endpoint_of(&url),
            status: reply.status,
            message: message_of(&reply),
        });
    }
    token_in(&endpoint_of(&url), &reply, "access_token")
}

/// `url` without its query, for messages.
fn endpoint_of(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// The refresh token `registry` gives for the Entra token `entra` (`POST /oauth2/exchange`).
async fn exchange(
    registry: &RegistryHost,
    entra: &Secret,
    tenant: Option<&str>,
    options: &ClientOptions,
) -> Result<Secret, AcrError> {
    let url = format!("{}/oauth2/exchange", registry_origin(registry, &options.insecure)?);
    let service = registry.to_string();
    let mut form = vec![
        ("grant_type", "access_token"),
        ("service", service.as_str()),
        ("access_token", entra.expose()),
    ];
    if let Some(tenant) = tenant {
        form.push(("tenant", tenant));
    }
    let reply = Rest::new(options, json_headers())?.send_form(&url, &form).await?;
    match reply.status {
        StatusCode::OK => token_in(&url, &reply, "refresh_token"),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(AcrError::ExchangeRefused {
                registry: registry.clone(),
                status: reply.status,
                message: message_of(&reply),
            })
        }
        status => Err(AcrError::Status { target: url, status, message: message_of(&reply) }),
    }
}

/// The ACR logins of `registries`, from one Entra token; none where `env` has no Entra ID
/// credentials.
pub async fn job_logins(
    registries: &[RegistryHost],
    env: &EnvMap,
    insecure: &[RegistryHost],
) -> Result<Vec<MintedLogin>, AcrError> {
    if registries.is_empty() {
        return Ok(Vec::new());
    }
    let Some(credentials) = EntraCredentials::from_env(env)? else { return Ok(Vec::new()) };
    let options = ClientOptions { insecure: insecure.to_vec(), ..ClientOptions::default() };
    let entra = entra_token(&credentials, env, &options).await?;
    let mut logins = Vec::with_capacity(registries.len());
    for registry in registries {
        let refresh = exchange(registry, &entra, credentials.tenant(), &options).await?;
        logins.push(MintedLogin {
            registry: registry.clone(),
            username: REFRESH_TOKEN_USER.to_owned(),
            password: refresh,
        });
    }
    Ok(logins)
}

/// What ACR lets be done to a tag or a manifest.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangeableAttributes {
    #[serde(default = "enabled")]
    delete_enabled: bool,
    #[serde(default = "enabled")]
    write_enabled: bool,
}

fn enabled() -> bool {
    true
}

impl ChangeableAttributes {
    /// Why nothing may be deleted, if so.
    fn lock(attributes: Option<Self>) -> Option<&'static str> {
        let attributes = attributes?;
        if !attributes.delete_enabled {
            Some("deleteEnabled: false")
        } else if !attributes.write_enabled {
            Some("writeEnabled: false")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcrTag {
    name: String,
    digest: Option<String>,
    last_update_time: Option<String>,
    changeable_attributes: Option<ChangeableAttributes>,
}

#[derive(Debug, Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Vec<AcrTag>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcrManifest {
    digest: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    changeable_attributes: Option<ChangeableAttributes>,
}

#[derive(Debug, Deserialize)]
struct ManifestPage {
    #[serde(default)]
    manifests: Vec<AcrManifest>,
}

/// What the listings of one repository say, read once.
#[derive(Debug, Clone, Default)]
struct Listing {
    tags: Vec<AcrTag>,
    manifests: Vec<AcrManifest>,
}

/// ACR through the seam.
#[derive(Debug)]
pub struct Acr {
    client: Client,
    capabilities: Capabilities,
    /// Repository path → its listings.
    listings: tokio::sync::Mutex<BTreeMap<String, Listing>>,
}

impl Acr {
    /// Connects to `repo`'s registry. Where `env` has Entra ID credentials, the login is minted
    /// from them, before any docker config entry for the host; else that entry is used.
    pub async fn connect(
        repo: &RepoAddress,
        mut options: ClientOptions,
        env: &EnvMap,
        capabilities: Capabilities,
    ) -> Result<Self, RegistryError> {
        let registries = std::slice::from_ref(&repo.registry);
        if let Some(login) = job_logins(registries, env, &options.insecure).await?.pop() {
            log::debug!("`{}`: using the login minted from Entra ID", repo.registry);
            options.credentials.insert(
                login.registry,
                Credential::Basic { username: login.username, password: login.password },
            );
        }
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            listings: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// Every page of `what` (`_tags` or `_manifests`) of `repository`, each parsed by `parse`.
    async fn pages<T>(
        &self,
        repository: &RepoAddress,
        what: &str,
        mut parse: impl FnMut(&str, &RegistryApiReply) -> Result<Vec<T>, AcrError>,
    ) -> Result<Vec<T>, RegistryError> {
        let scopes = [TokenScope::repository_actions(&repository.path, "metadata_read")];
        let first = format!("/acr/v1/{}/{what}?n={PAGE_SIZE}", repository.path);
        let mut next = Some(first.clone());
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(target) = next.take() else { return Ok(items) };
            let reply = self.client.registry_api(repository, Method::GET, &target, &scopes).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(AcrError::RepositoryUnknown {
                        repository: repository.path.clone(),
                    }
                    .into());
                }
                status => return Err(unexpected(&target, status, &reply).into()),
            }
            let page = parse(&target, &reply)?;
            // a next page that adds nothing would repeat forever
            next = reply.next.filter(|_| !page.is_empty());
            items.extend(page);
        }
        match next {
            None => Ok(items),
            Some(_) => Err(AcrError::TooManyPages { target: first }.into()),
        }
    }

    /// The listings of `repository`, read now if they have not been. A repository that does
    /// not exist yet has none.
    async fn listing(&self, repository: &RepoAddress) -> Result<Listing, RegistryError> {
        let mut cache = self.listings.lock().await;
        if let Some(listing) = cache.get(&repository.path) {
            return Ok(listing.clone());
        }
        let tags = self
            .pages(repository, "_tags", |target, reply| Ok(parse::<TagPage>(target, reply)?.tags))
            .await;
        let tags = match tags {
            Ok(tags) => tags,
            Err(RegistryError::Acr(AcrError::RepositoryUnknown { .. })) => Vec::new(),
            Err(error) => return Err(error),
        };
        let manifests = if tags.is_empty() {
            Vec::new()
        } else {
            self.pages(repository, "_manifests", |target, reply| {
                Ok(parse::<ManifestPage>(target, reply)?.manifests)
            })
            .await?
        };
        let listing = Listing { tags, manifests };
        cache.insert(repository.path.clone(), listing.clone());
        Ok(listing)
    }
}

fn unexpected(target: &str, status: StatusCode, reply: &RegistryApiReply) -> AcrError {
    AcrError::Status { target: target.to_owned(), status, message: reply.envelope().to_string() }
}

fn parse<T: serde::de::DeserializeOwned>(
    target: &str,
    reply: &RegistryApiReply,
) -> Result<T, AcrError> {
    serde_json::from_slice(&reply.body)
        .map_err(|source| AcrError::Parse { target: target.to_owned(), source })
}

/// The tags of `listing` that may not be deleted, each with why: its own lock, or its
/// manifest's.
fn locks(listing: &Listing) -> BTreeMap<Tag, String> {
    let manifest_locks: BTreeMap<&str, &str> = listing
        .manifests
        .iter()
        .filter_map(|manifest| {
            ChangeableAttributes::lock(manifest.changeable_attributes)
                .map(|lock| (manifest.digest.as_str(), lock))
        })
        .collect();
    let mut locked = BTreeMap::new();
    for tag in &listing.tags {
        let Ok(name) = tag.name.parse::<Tag>() else { continue };
        if let Some(lock) = ChangeableAttributes::lock(tag.changeable_attributes) {
            locked.insert(name, format!("locked in ACR ({lock})"));
        } else if let Some(lock) =
            tag.digest.as_deref().and_then(|digest| manifest_locks.get(digest))
        {
            locked.insert(name, format!("its manifest is locked in ACR ({lock})"));
        }
    }
    locked
}

impl Vendor for Acr {
    fn client(&self) -> &Client {
        &self.client
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Each tag's `lastUpdateTime` (when it was last pushed or moved).
    async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        let listing = self.listing(repository).await?;
        Ok(listing
            .tags
            .iter()
            .filter_map(|tag| {
                let time = tag.last_update_time.as_deref()?.parse::<Timestamp>().ok()?;
                Some((tag.name.parse::<Tag>().ok()?, time))
            })
            .collect())
    }

    async fn locked_tags(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, String>, RegistryError> {
        Ok(locks(&self.listing(repository).await?))
    }

    async fn untagged_manifests(
        &self,
        repository: &RepoAddress,
    ) -> Result<Vec<Digest>, RegistryError> {
        let listing = self.listing(repository).await?;
        Ok(listing
            .manifests
            .iter()
            .filter(|manifest| manifest.tags.as_ref().is_none_or(Vec::is_empty))
            .filter(|manifest| ChangeableAttributes::lock(manifest.changeable_attributes).is_none())
            .filter_map(|manifest| manifest.digest.parse().ok())
            .collect())
    }

    /// Tag deletes always exist in ACR's API; what can fail is the login, checked here by
    /// listing (the `metadata_read` scope) before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.listing(repository).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let target = format!("/acr/v1/{}/_tags/{}", repository.path, path_segment(tag.as_str()));
        let scopes = [TokenScope::repository_actions(&repository.path, "delete")];
        let reply = self.client.registry_api(repository, Method::DELETE, &target, &scopes).await?;
        let untagged = match reply.status {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Untagged::Removed,
            StatusCode::NOT_FOUND => Untagged::AlreadyGone,
            StatusCode::METHOD_NOT_ALLOWED => {
                return Err(AcrError::Locked {
                    repository: repository.path.clone(),
                    tag: tag.to_string(),
                    message: reply.envelope().to_string(),
                }
                .into());
            }
            status => return Err(unexpected(&target, status, &reply).into()),
        };
        if let Some(listing) = self.listings.lock().await.get_mut(&repository.path) {
            listing.tags.retain(|listed| listed.name != tag.as_str());
        }
        Ok(untagged)
    }

    /// The registry's manifest `DELETE`, which takes every tag still on it (the plan asks only
    /// once it deletes all of them).
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        super::delete_by_digest(&self.client, repository, digest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn credentials_come_from_the_azure_variables() {
        assert_eq!(EntraCredentials::from_env(&env(&[])).unwrap(), None);
        assert_eq!(
            EntraCredentials::from_env(&env(&[("AZURE_CLIENT_ID", "app")])).unwrap(),
            None,
            "a client id alone is for other tools"
        );
        let secret = EntraCredentials::from_env(&env(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/tmp/token"),
        ]))
        .unwrap()
        .unwrap();
        assert!(
            matches!(&secret, EntraCredentials::Secret { client, .. } if client == "app"),
            "a secret comes first: {secret:?}"
        );
        assert_eq!(secret.tenant(), Some("tenant"));
        let file = EntraCredentials::from_env(&env(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_TENANT_ID", "tenant"),
            ("AZURE_FEDERATED_TOKEN_FILE", "/tmp/token"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://token.actions.example/?x=1"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            file,
            EntraCredentials::Federated {
                tenant: "tenant".into(),
                client: "app".into(),
                assertion: Assertion::File("/tmp/token".into()),
            }
        );
        let github = EntraCredentials::from_env(&env(&[
            ("AZURE_CLIENT_ID", "app"),
            ("AZURE_TENANT_ID", "tenant"),
            ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://token.actions.example/?x=1"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request"),
        ]))
        .unwrap()
        .unwrap();
        assert!(matches!(
            github,
            EntraCredentials::Federated { assertion: Assertion::Github { .. }, .. }
        ));
        assert_eq!(
            EntraCredentials::from_env(&env(&[
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://token.actions.example/?x=1"),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request"),
            ]))
            .unwrap(),
            None,
            "GitHub's token service alone is no Azure login"
        );
        let managed = EntraCredentials::from_env(&env(&[
            ("DOCKHAND_AZURE_MANAGED_IDENTITY", "true"),
            ("AZURE_CLIENT_ID", "identity"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(managed, EntraCredentials::ManagedIdentity { client: Some("identity".into()) });
        assert_eq!(managed.tenant(), None);
    }

    #[test]
    fn incomplete_credentials_name_what_is_missing() {
        let error =
            EntraCredentials::from_env(&env(&[("AZURE_CLIENT_SECRET", "s3cret")])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "AZURE_CLIENT_SECRET is set, but AZURE_CLIENT_ID and AZURE_TENANT_ID is not: the Entra ID credentials are incomplete"
        );
        assert!(!error.to_string().contains("s3cret"));
        let error = EntraCredentials::from_env(&env(&[
            ("AZURE_FEDERATED_TOKEN_FILE", "/tmp/token"),
            ("AZURE_CLIENT_ID", "app"),
        ]))
        .unwrap_err();
        assert!(error.to_string().contains("but AZURE_TENANT_ID is not"), "{error}");
        assert!(has_credentials(&env(&[("AZURE_CLIENT_SECRET", "s3cret")])), "the error surfaces");
        assert!(!has_credentials(&env(&[])));
    }

    #[test]
    fn listings_read_the_documented_shape() {
        let tags: TagPage = serde_json::from_value(serde_json::json!({
            "registry": "acme.azurecr.io",
            "imageName": "team/app",
            "tags": [
                {"name": "v1", "digest": "sha256:aa", "createdTime": "2026-01-02T03:04:05.1234567Z",
                 "lastUpdateTime": "2026-01-03T03:04:05.1234567Z", "signed": false,
                 "changeableAttributes": {"deleteEnabled": false, "writeEnabled": true, "readEnabled": true, "listEnabled": true}},
                {"name": "v2", "digest": "sha256:bb", "lastUpdateTime": "2026-01-04T00:00:00Z",
                 "changeableAttributes": {"deleteEnabled": true, "writeEnabled": true}},
                {"name": "v3", "digest": "sha256:cc"},
            ],
        }))
        .unwrap();
        let manifests: ManifestPage = serde_json::from_value(serde_json::json!({
            "registry": "acme.azurecr.io",
            "imageName": "team/app",
            "manifests": [
                {"digest": "sha256:aa", "tags": ["v1"], "changeableAttributes": {"deleteEnabled": true, "writeEnabled": true}},
                {"digest": "sha256:cc", "tags": ["v3"], "changeableAttributes": {"deleteEnabled": true, "writeEnabled": false}},
                {"digest": "sha256:dd", "changeableAttributes": {"deleteEnabled": true, "writeEnabled": true}},
            ],
        }))
        .unwrap();
        let listing = Listing { tags: tags.tags, manifests: manifests.manifests };
        let locked = locks(&listing);
        let shown: Vec<(&str, &str)> =
            locked.iter().map(|(tag, why)| (tag.as_str(), why.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("v1", "locked in ACR (deleteEnabled: false)"),
                ("v3", "its manifest is locked in ACR (writeEnabled: false)"),
            ]
        );
        let time = listing.tags[0].last_update_time.as_deref().unwrap().parse::<Timestamp>();
        assert_eq!(time.unwrap().as_second(), 1_767_409_445, "fractional seconds parse");
        assert_eq!(listing.manifests[2].tags, None);
    }
}
