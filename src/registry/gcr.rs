//! Google's registries: Artifact Registry (`LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE`)
//! and the `gcr.io` hosts it serves (`[REGION.]gcr.io/PROJECT/IMAGE`).
//!
//! Owns the Google credentials a CI job has (the file `GOOGLE_APPLICATION_CREDENTIALS` names)
//! turned into an OAuth access token, the registry login made of it (user
//! `oauth2accesstoken`), and what the registry API of these hosts does beyond distribution's:
//! - a **service-account key** (`"type": "service_account"`) signs a JWT (RS256, with *ring*)
//!   that its `token_uri` exchanges for an access token (the JWT bearer grant, RFC 7523);
//! - an **external account** (`"type": "external_account"`, workload identity federation: a
//!   CI's OIDC token in a file) is exchanged at its `token_url` (Google STS, RFC 8693), and,
//!   with `service_account_impersonation_url`, that token is exchanged once more for the
//!   service account's own (`generateAccessToken`);
//! - `DELETE /v2/<name>/manifests/<tag>` removes that tag alone on these registries; the first
//!   one of a run is checked (the manifest it pointed at must still resolve) before the next is
//!   trusted, and a registry that took the manifest along is not sent another;
//! - a manifest that still has tags cannot be deleted (`GOOGLE_MANIFEST_DANGLING_TAG`): its tags
//!   are removed one by one first, found in the `manifest` map the tag list carries here;
//! - that map's `timeUploadedMs` is each tag's push time, and its digests without a tag are
//!   the untagged manifests (`--delete-untagged`).
//!
//! The token endpoints are the ones the credentials file names (https, or plain HTTP to a host
//! named by `--insecure-registry`: tests point them at 127.0.0.1). Facts: docs/registries.md §7.5.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::default::Distribution;
use super::distribution::{
    Client, ClientOptions, Credential, DeleteSupport, DistributionError, ManifestRef,
};
use super::rest::{Reply, Rest, RestError, api_base};
use super::{Capabilities, MintedLogin, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RegistryHost, RepoAddress, Tag};
use crate::secret::Secret;

/// The registry user an OAuth access token logs in as.
pub const USERNAME: &str = "oauth2accesstoken";
/// The OAuth scope asked for: the registries accept no narrower one.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Where a service-account key's JWT goes when the key names no `token_uri`.
pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google STS, where an external account's subject token goes when it names no `token_url`.
pub const DEFAULT_STS_URL: &str = "https://sts.googleapis.com/v1/token";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Seconds a signed JWT is valid (Google accepts at most one hour).
const JWT_LIFETIME: i64 = 3600;
/// The registry's error code for a manifest delete while tags still point at it.
const DANGLING_TAG: &str = "GOOGLE_MANIFEST_DANGLING_TAG";

/// Getting a Google access token, or a registry answer dockhand cannot go on from.
#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    #[error("Cannot read the Google credentials file `{}` (GOOGLE_APPLICATION_CREDENTIALS)", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The Google credentials file `{}` cannot be used: {problem}", path.display())]
    InvalidFile { path: PathBuf, problem: String },
    #[error("Cannot read the subject token of the external account from `{}`: {problem}", path.display())]
    SubjectToken { path: PathBuf, problem: String },
    #[error("Google refused the credentials of `{principal}` at `{url}` ({status} `{message}`)")]
    Refused { principal: String, url: String, status: StatusCode, message: String },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` answered without an access token")]
    NoToken { url: String },
    #[error(
        "Deleting tag `{tag}` of `{repository}` also removed the manifest `{digest}` it pointed at: this registry does not delete tags alone, so no other tag is deleted that way"
    )]
    TagDeleteTookManifest { repository: RepoAddress, tag: Tag, digest: Digest },
    #[error(
        "`{repository}@{digest}` still has tags, and the registry's tag list does not say which"
    )]
    DanglingTags { repository: RepoAddress, digest: Digest },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for GoogleError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::ReadFile { .. }
            | Self::InvalidFile { .. }
            | Self::SubjectToken { .. }
            | Self::Refused { .. } => ExitStatus::Usage,
            Self::Rest(source) => source.exit_status(),
            _ => ExitStatus::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::ReadFile { .. } | Self::InvalidFile { .. } => Some(
                "point GOOGLE_APPLICATION_CREDENTIALS at a service-account key (JSON, from IAM → Service accounts → Keys) or at a workload identity federation configuration (`gcloud iam workload-identity-pools create-cred-config`)".to_owned(),
            ),
            Self::SubjectToken { .. } => Some(
                "the CI must write its OIDC token to the file `credential_source.file` names before dockhand runs (e.g. google-github-actions/auth, or GitLab `id_tokens` written to that file)".to_owned(),
            ),
            Self::Refused { .. } => Some(
                "check the credentials: a service-account key must not be deleted or disabled; for workload identity federation the provider must accept the CI's token (audience, attribute condition) and the principal needs `roles/iam.workloadIdentityUser` on the impersonated service account; pushing needs `roles/artifactregistry.writer`, deleting `roles/artifactregistry.repoAdmin`".to_owned(),
            ),
            Self::TagDeleteTookManifest { .. } => Some(
                "use `--repo-implementation default` for this registry (dockhand then removes single tags through throw-away manifests) and report the registry's behaviour".to_owned(),
            ),
            Self::DanglingTags { .. } => {
                Some("remove the manifest's tags first, or rerun the cleanup".to_owned())
            }
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// What a credentials file says, as far as dockhand uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Credentials {
    ServiceAccount(ServiceAccount),
    ExternalAccount(ExternalAccount),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceAccount {
    email: String,
    key_id: Option<String>,
    /// The PKCS #8 key, DER.
    key: SecretBytes,
    token_uri: String,
}

/// Bytes that never reach a log.
#[derive(Clone, PartialEq, Eq)]
struct SecretBytes(Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(****)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    subject_file: PathBuf,
    /// The JSON field holding the token, when the file is JSON; else the file is the token.
    subject_field: Option<String>,
    impersonation_url: Option<String>,
}

impl ExternalAccount {
    /// The service account impersonated: the `…/serviceAccounts/EMAIL:generateAccessToken`
    /// part of the URL.
    fn impersonated(&self) -> Option<&str> {
        let url = self.impersonation_url.as_deref()?;
        let (_, rest) = url.rsplit_once("/serviceAccounts/")?;
        rest.split(':').next()
    }
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    credential_source: Option<RawSource>,
}

#[derive(Deserialize)]
struct RawSource {
    file: Option<String>,
    url: Option<String>,
    executable: Option<serde_json::Value>,
    environment_id: Option<String>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

/// Parses a credentials file; `Err` says what is wrong with it.
fn parse_credentials(text: &str) -> Result<Credentials, String> {
    let raw: RawFile =
        serde_json::from_str(text).map_err(|error| format!("it is not JSON ({error})"))?;
    let missing = |field: &str| format!("`{field}` is missing");
    match raw.kind.as_deref() {
        Some("service_account") => {
            let email = raw.client_email.ok_or_else(|| missing("client_email"))?;
            let pem = raw.private_key.ok_or_else(|| missing("private_key"))?;
            let key = pem_der(&pem).ok_or("`private_key` is not a PEM `PRIVATE KEY`")?;
            Ok(Credentials::ServiceAccount(ServiceAccount {
                email,
                key_id: raw.private_key_id,
                key: SecretBytes(key),
                token_uri: raw.token_uri.unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            }))
        }
        Some("external_account") => {
            let source = raw.credential_source.ok_or_else(|| missing("credential_source"))?;
            let Some(file) = source.file else {
                let kind = if source.url.is_some() {
                    "a URL"
                } else if source.executable.is_some() {
                    "an executable"
                } else if source.environment_id.is_some() {
                    "the AWS environment"
                } else {
                    "nothing dockhand knows"
                };
                return Err(format!(
                    "its subject token comes from {kind}; dockhand reads it from a file (`credential_source.file`)"
                ));
            };
            let subject_field = match source.format {
                Some(RawFormat { kind: Some(kind), subject_token_field_name })
                    if kind == "json" =>
                {
                    Some(subject_token_field_name.ok_or_else(|| {
                        missing("credential_source.format.subject_token_field_name")
                    })?)
                }
                _ => None,
            };
            Ok(Credentials::ExternalAccount(ExternalAccount {
                audience: raw.audience.ok_or_else(|| missing("audience"))?,
                subject_token_type: raw
                    .subject_token_type
                    .ok_or_else(|| missing("subject_token_type"))?,
                token_url: raw.token_url.unwrap_or_else(|| DEFAULT_STS_URL.to_owned()),
                subject_file: PathBuf::from(file),
                subject_field,
                impersonation_url: raw.service_account_impersonation_url,
            }))
        }
        Some(other) => Err(format!(
            "its type is `{other}`; dockhand reads `service_account` and `external_account` files"
        )),
        None => Err(missing("type")),
    }
}

/// The DER of the first `PRIVATE KEY` block of `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem.split("-----BEGIN PRIVATE KEY-----").nth(1)?.split("-----END PRIVATE KEY-----");
    let text: String = body.into_iter().next()?.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The claims of the JWT a service account signs for `token_uri` at `now` (seconds).
fn jwt_claims(email: &str, token_uri: &str, now: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": email,
        "scope": SCOPE,
        "aud": token_uri,
        "iat": now,
        "exp": now + JWT_LIFETIME,
    })
}

/// `header.claims.signature`, RS256 with the PKCS #8 RSA key `der`; `None` if the key is no
/// RSA key *ring* accepts.
fn sign_jwt(key_id: Option<&str>, claims: &serde_json::Value, der: &[u8]) -> Option<String> {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(key_id) = key_id {
        header["kid"] = serde_json::Value::from(key_id);
    }
    let input =
        format!("{}.{}", engine.encode(header.to_string()), engine.encode(claims.to_string()));
    let key = ring::signature::RsaKeyPair::from_pkcs8(der).ok()?;
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .ok()?;
    Some(format!("{input}.{}", engine.encode(signature)))
}

/// The subject token in `content` (the whole file, or its JSON field `field`).
fn subject_token(content: &str, field: Option<&str>) -> Result<String, String> {
    let token = match field {
        None => content.trim().to_owned(),
        Some(field) => {
            let json: serde_json::Value = serde_json::from_str(content)
                .map_err(|error| format!("it is not JSON ({error})"))?;
            json[field].as_str().ok_or_else(|| format!("it has no string `{field}`"))?.to_owned()
        }
    };
    if token.is_empty() { Err("it is empty".to_owned()) } else { Ok(token) }
}

/// What a Google endpoint says went wrong: OAuth's `error_description`/`error`, or the
/// `error.message` of Google's API errors.
fn google_message(reply: &Reply) -> String {
    let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    json["error"]["message"]
        .as_str()
        .or_else(|| json["error_description"].as_str())
        .or_else(|| json["error"].as_str())
        .map_or_else(|| reply.body.chars().take(200).collect(), str::to_owned)
}

/// The credentials file `GOOGLE_APPLICATION_CREDENTIALS` names, if set.
fn credentials_path(env: &EnvMap) -> Option<PathBuf> {
    env.get(env_vars::GOOGLE_APPLICATION_CREDENTIALS)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `true` if and only if `env` gives Google credentials to mint a login from.
pub fn has_credentials(env: &EnvMap) -> bool {
    credentials_path(env).is_some()
}

/// An OAuth access token from the credentials file at `path`.
async fn access_token(path: &Path, options: &ClientOptions) -> Result<Secret, GoogleError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| GoogleError::ReadFile { path: path.to_owned(), source })?;
    let credentials = parse_credentials(&text)
        .map_err(|problem| GoogleError::InvalidFile { path: path.to_owned(), problem })?;
    let mut headers = HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let rest = Rest::new(options, headers)?;
    match credentials {
        Credentials::ServiceAccount(account) => {
            let url = api_base(&account.token_uri, &options.insecure)?;
            let claims =
                jwt_claims(&account.email, &account.token_uri, Timestamp::now().as_second());
            let jwt =
                sign_jwt(account.key_id.as_deref(), &claims, &account.key.0).ok_or_else(|| {
                    GoogleError::InvalidFile {
                        path: path.to_owned(),
                        problem: "`private_key` is no RSA key that can sign (PKCS #8)".to_owned(),
                    }
                })?;
            let reply = rest
                .send_form(&url, &[("grant_type", JWT_BEARER_GRANT), ("assertion", &jwt)])
                .await?;
            token_of(&url, &reply, &account.email, "access_token")
        }
        Credentials::ExternalAccount(account) => {
            let content = std::fs::read_to_string(&account.subject_file).map_err(|error| {
                GoogleError::SubjectToken {
                    path: account.subject_file.clone(),
                    problem: error.to_string(),
                }
            })?;
            let subject =
                subject_token(&content, account.subject_field.as_deref()).map_err(|problem| {
                    GoogleError::SubjectToken { path: account.subject_file.clone(), problem }
                })?;
            let url = api_base(&account.token_url, &options.insecure)?;
            let form = [
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("audience", account.audience.as_str()),
                ("scope", SCOPE),
                ("requested_token_type", ACCESS_TOKEN_TYPE),
                ("subject_token", subject.as_str()),
                ("subject_token_type", account.subject_token_type.as_str()),
            ];
            let reply = rest.send_form(&url, &form).await?;
            let federated = token_of(&url, &reply, &account.audience, "access_token")?;
            let Some(impersonation) = &account.impersonation_url else {
                return Ok(federated);
            };
            let url = api_base(impersonation, &options.insecure)?;
            rest.set_token(&federated);
            let body = serde_json::json!({"scope": [SCOPE]});
            let reply = rest.send(Method::POST, &url, Some(&body)).await?;
            let principal = account.impersonated().unwrap_or(&account.audience);
            token_of(&url, &reply, principal, "accessToken")
        }
    }
}

/// The token under `key` of a 200 answer; a 400/401/403 refuses `principal`.
fn token_of(url: &str, reply: &Reply, principal: &str, key: &str) -> Result<Secret, GoogleError> {
    match reply.status {
        StatusCode::OK => {
            let json: serde_json::Value = reply.json().unwrap_or_default();
            json[key]
                .as_str()
                .filter(|token| !token.is_empty())
                .map(Secret::new)
                .ok_or_else(|| GoogleError::NoToken { url: url.to_owned() })
        }
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Err(GoogleError::Refused {
                principal: principal.to_owned(),
                url: url.to_owned(),
                status: reply.status,
                message: google_message(reply),
            })
        }
        status => {
            Err(GoogleError::Status { url: url.to_owned(), status, message: google_message(reply) })
        }
    }
}

/// The registry logins of `registries` (Google hosts), all from one access token.
pub async fn job_logins(
    registries: &[RegistryHost],
    env: &EnvMap,
    insecure: &[RegistryHost],
) -> Result<Vec<MintedLogin>, GoogleError> {
    let Some(path) = credentials_path(env) else { return Ok(Vec::new()) };
    if registries.is_empty() {
        return Ok(Vec::new());
    }
    let options = ClientOptions { insecure: insecure.to_vec(), ..ClientOptions::default() };
    let token = access_token(&path, &options).await?;
    Ok(registries
        .iter()
        .map(|registry| MintedLogin {
            registry: registry.clone(),
            username: USERNAME.to_owned(),
            password: token.clone(),
        })
        .collect())
}

/// What the tag list's `manifest` map says about one digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ManifestInfo {
    tags: Vec<String>,
    uploaded: Option<Timestamp>,
}

/// Reads the `manifest` map entries (`tag`, `timeUploadedMs` as a string or a number).
fn manifest_infos(map: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, ManifestInfo> {
    map.iter()
        .map(|(digest, entry)| {
            let tags = entry["tag"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|tag| tag.as_str().map(str::to_owned))
                .collect();
            let millis = match &entry["timeUploadedMs"] {
                serde_json::Value::String(text) => text.parse::<i64>().ok(),
                serde_json::Value::Number(number) => number.as_i64(),
                _ => None,
            };
            let uploaded =
                millis.filter(|ms| *ms > 0).and_then(|ms| Timestamp::from_millisecond(ms).ok());
            (digest.clone(), ManifestInfo { tags, uploaded })
        })
        .collect()
}

/// A Google registry through the seam: the distribution path, with Google's tag delete checked
/// once and its dangling-tag refusal handled.
#[derive(Debug)]
pub struct Google {
    inner: Distribution,
    /// Set once a tag delete was seen to leave its manifest in place.
    untag_checked: AtomicBool,
    /// Set when a tag delete took its manifest along: later tags use the throw-away manifest.
    untag_unsafe: AtomicBool,
    /// Held by each tag delete until one has been checked, so none runs unchecked beside it.
    untag_gate: tokio::sync::Mutex<()>,
}

impl Google {
    /// Connects to `repo`'s registry. Where `options` carries no credential for its host and
    /// `GOOGLE_APPLICATION_CREDENTIALS` is set, the login is minted from that file.
    pub async fn connect(
        repo: &RepoAddress,
        mut options: ClientOptions,
        env: &EnvMap,
        capabilities: Capabilities,
    ) -> Result<Self, RegistryError> {
        if !options.credentials.contains_key(&repo.registry)
            && let Some(path) = credentials_path(env)
        {
            let token = access_token(&path, &options).await?;
            log::debug!("no docker config entry for `{}`: using the Google login", repo.registry);
            options.credentials.insert(
                repo.registry.clone(),
                Credential::Basic { username: USERNAME.to_owned(), password: token },
            );
        }
        let client = Client::new(options)?;
        Ok(Self {
            inner: Distribution::new(client, capabilities),
            untag_checked: AtomicBool::new(false),
            untag_unsafe: AtomicBool::new(false),
            untag_gate: tokio::sync::Mutex::new(()),
        })
    }

    async fn manifest_infos(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<String, ManifestInfo>, DistributionError> {
        let listing = self.client().tag_listing(repository).await?;
        Ok(manifest_infos(&listing.manifests))
    }
}

impl Vendor for Google {
    fn client(&self) -> &Client {
        self.inner.client()
    }

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    /// `timeUploadedMs` of the tag list's `manifest` map, for each tag on that digest; a
    /// registry without the map gives no times (ages then come from the image configs).
    async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        let infos = match self.manifest_infos(repository).await {
            Ok(infos) => infos,
            Err(error) if error.is_not_found() => return Ok(BTreeMap::new()),
            Err(error) => return Err(error.into()),
        };
        let mut times = BTreeMap::new();
        for info in infos.into_values() {
            let Some(uploaded) = info.uploaded else { continue };
            for tag in info.tags.iter().filter_map(|tag| tag.parse::<Tag>().ok()) {
                times.insert(tag, uploaded);
            }
        }
        Ok(times)
    }

    /// The digests of the tag list's `manifest` map that carry no tag: children of indexes,
    /// signatures, images whose last tag moved away.
    async fn untagged_manifests(
        &self,
        repository: &RepoAddress,
    ) -> Result<Vec<Digest>, RegistryError> {
        let infos = match self.manifest_infos(repository).await {
            Ok(infos) => infos,
            Err(error) if error.is_not_found() => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        Ok(infos
            .into_iter()
            .filter(|(_, info)| info.tags.is_empty())
            .filter_map(|(digest, _)| digest.parse().ok())
            .collect())
    }

    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.inner.probe_deletes(repository).await
    }

    /// The registry's tag `DELETE`. The first one of a run is checked: the manifest the tag
    /// pointed at must still resolve. Where it does not, this registry deleted the manifest
    /// (and every tag on it): that is reported, and later tags go through the throw-away
    /// manifest instead. Until one tag delete has been checked, they run one at a time.
    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let _gate = if self.untag_checked.load(Ordering::Acquire) {
            None
        } else {
            Some(self.untag_gate.lock().await)
        };
        if self.untag_unsafe.load(Ordering::Acquire) {
            return match self.client().push_empty_manifest(repository, tag).await {
                Ok(digest) => Ok(Untagged::Tombstoned(digest)),
                Err(source) => Err(RegistryError::Tombstone(source)),
            };
        }
        let checked = self.untag_checked.load(Ordering::Acquire);
        let before = if checked {
            None
        } else {
            match self.client().head_manifest(repository, &ManifestRef::Tag(tag.clone())).await? {
                Some(head) => Some(head.digest),
                None => return Ok(Untagged::AlreadyGone),
            }
        };
        let untagged = self.inner.untag(repository, tag).await?;
        if let (Untagged::Removed, Some(digest)) = (&untagged, before) {
            let still_there = self
                .client()
                .head_manifest(repository, &ManifestRef::Digest(digest.clone()))
                .await?
                .is_some();
            if !still_there {
                self.untag_unsafe.store(true, Ordering::Release);
                return Err(GoogleError::TagDeleteTookManifest {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    digest,
                }
                .into());
            }
            self.untag_checked.store(true, Ordering::Release);
            log::debug!("the tag delete of `{repository}:{tag}` left its manifest in place");
        }
        Ok(untagged)
    }

    /// The manifest `DELETE`; where the registry refuses it because tags still point at the
    /// manifest (`GOOGLE_MANIFEST_DANGLING_TAG`), those tags (from the tag list's `manifest`
    /// map) are deleted first, then the manifest.
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        match self.client().delete_manifest(repository, digest).await {
            Ok(()) => return Ok(Removal::Removed),
            Err(error) if error.is_not_found() => return Ok(Removal::AlreadyGone),
            Err(error)
                if error.envelope().is_some_and(|envelope| {
                    envelope.has_any(&[super::distribution::Code::Other(DANGLING_TAG.to_owned())])
                }) =>
            {
                log::debug!("`{repository}@{digest}` still has tags: deleting them first");
            }
            Err(source) => return Err(RegistryError::Distribution(source)),
        }
        let infos = self.manifest_infos(repository).await?;
        let tags = infos.get(digest.as_str()).map(|info| info.tags.clone()).unwrap_or_default();
        if tags.is_empty() {
            return Err(GoogleError::DanglingTags {
                repository: repository.clone(),
                digest: digest.clone(),
            }
            .into());
        }
        for tag in tags.iter().filter_map(|tag| tag.parse::<Tag>().ok()) {
            match self.client().delete_tag(repository, &tag).await {
                Ok(()) => {}
                Err(error) if error.is_not_found() => {}
                Err(source) => return Err(RegistryError::TagDelete(source)),
            }
        }
        self.inner.delete_manifest(repository, digest).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA key in PKCS #8 DER, generated for this test only (`openssl genpkey`).
    fn test_key() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        let status = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (scripts/setup.sh installs it) generates a test key");
        assert!(status.success());
        pem_der(&std::fs::read_to_string(path).unwrap()).expect("a PKCS #8 PEM")
    }

    #[test]
    fn jwt_claims_follow_the_jwt_bearer_grant() {
        let claims = jwt_claims("ci@p.iam.gserviceaccount.com", DEFAULT_TOKEN_URI, 1_700_000_000);
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "ci@p.iam.gserviceaccount.com",
                "scope": "https://www.googleapis.com/auth/cloud-platform",
                "aud": "https://oauth2.googleapis.com/token",
                "iat": 1_700_000_000,
                "exp": 1_700_003_600,
            })
        );
    }

    #[test]
    fn a_signed_jwt_has_three_parts_and_an_rs256_header() {
        let der = test_key();
        let claims = jwt_claims("ci@p.iam.gserviceaccount.com", DEFAULT_TOKEN_URI, 1);
        let jwt = sign_jwt(Some("key-1"), &claims, &der).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&engine.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"}));
        let body: serde_json::Value =
            serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body, claims);
        assert_eq!(engine.decode(parts[2]).unwrap().len(), 256, "a 2048-bit signature");
        assert_eq!(sign_jwt(None, &claims, b"not a key"), None);
    }

    #[test]
    fn service_account_keys_are_read() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        let file = serde_json::json!({
            "type": "service_account", "project_id": "p", "private_key_id": "k1",
            "private_key": pem, "client_email": "ci@p.iam.gserviceaccount.com",
            "token_uri": "http://127.0.0.1:9/token",
        });
        let Credentials::ServiceAccount(account) = parse_credentials(&file.to_string()).unwrap()
        else {
            panic!("a service account")
        };
        assert_eq!(account.email, "ci@p.iam.gserviceaccount.com");
        assert_eq!(account.key.0, [0, 1, 2, 3]);
        assert_eq!(account.key_id.as_deref(), Some("k1"));
        assert_eq!(account.token_uri, "http://127.0.0.1:9/token");
        assert!(!format!("{account:?}").contains("[0, 1, 2, 3]"), "the key is never printed");

        let mut no_uri = file.clone();
        no_uri.as_object_mut().unwrap().remove("token_uri");
        let Ok(Credentials::ServiceAccount(account)) = parse_credentials(&no_uri.to_string())
        else {
            panic!("a service account")
        };
        assert_eq!(account.token_uri, DEFAULT_TOKEN_URI);
        let mut no_key = file;
        no_key["private_key"] = "-----BEGIN RSA PRIVATE KEY-----".into();
        assert!(parse_credentials(&no_key.to_string()).unwrap_err().contains("PRIVATE KEY"));
    }

    #[test]
    fn external_accounts_are_read() {
        let file = serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ci/providers/gh",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/ci@p.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": {"file": "/run/oidc.json", "format": {"type": "json", "subject_token_field_name": "value"}},
        });
        let Credentials::ExternalAccount(account) = parse_credentials(&file.to_string()).unwrap()
        else {
            panic!("an external account")
        };
        assert_eq!(account.subject_file, PathBuf::from("/run/oidc.json"));
        assert_eq!(account.subject_field.as_deref(), Some("value"));
        assert_eq!(account.impersonated(), Some("ci@p.iam.gserviceaccount.com"));
        assert_eq!(account.subject_token_type, "urn:ietf:params:oauth:token-type:jwt");

        let mut text = file.clone();
        text["credential_source"] = serde_json::json!({"file": "/run/oidc"});
        text.as_object_mut().unwrap().remove("service_account_impersonation_url");
        text.as_object_mut().unwrap().remove("token_url");
        let Ok(Credentials::ExternalAccount(account)) = parse_credentials(&text.to_string()) else {
            panic!("an external account")
        };
        assert_eq!((account.subject_field.as_deref(), account.impersonated()), (None, None));
        assert_eq!(account.token_url, DEFAULT_STS_URL);

        let mut url = file.clone();
        url["credential_source"] = serde_json::json!({"url": "http://169.254.169.254/token"});
        assert!(parse_credentials(&url.to_string()).unwrap_err().contains("from a URL"));
        let mut json_without_field = file;
        json_without_field["credential_source"]["format"] = serde_json::json!({"type": "json"});
        assert!(
            parse_credentials(&json_without_field.to_string())
                .unwrap_err()
                .contains("subject_token_field_name")
        );
        assert!(
            parse_credentials(r#"{"type": "authorized_user"}"#)
                .unwrap_err()
                .contains("`authorized_user`")
        );
        assert!(parse_credentials("{").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn subject_tokens_come_from_text_or_a_json_field() {
        assert_eq!(subject_token("eyJ.a.b\n", None).unwrap(), "eyJ.a.b");
        assert_eq!(subject_token(r#"{"value": "eyJ.c.d"}"#, Some("value")).unwrap(), "eyJ.c.d");
        assert!(subject_token(r#"{"other": 1}"#, Some("value")).is_err());
        assert!(subject_token(" \n", None).is_err());
    }

    #[test]
    fn the_manifest_map_gives_tags_and_upload_times() {
        let map: BTreeMap<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "sha256:aa": {"imageSizeBytes": "100", "mediaType": "application/vnd.oci.image.manifest.v1+json", "tag": ["v1", "latest"], "timeCreatedMs": "1700000000000", "timeUploadedMs": "1700000100000"},
            "sha256:bb": {"tag": [], "timeUploadedMs": 1_700_000_200_000_i64},
            "sha256:cc": {"tag": ["old"], "timeUploadedMs": "0"},
        }))
        .unwrap();
        let infos = manifest_infos(&map);
        assert_eq!(infos["sha256:aa"].tags, ["v1", "latest"]);
        assert_eq!(infos["sha256:aa"].uploaded.unwrap().as_second(), 1_700_000_100);
        assert_eq!(infos["sha256:bb"].uploaded.unwrap().as_second(), 1_700_000_200);
        assert_eq!(infos["sha256:cc"].uploaded, None);
    }

    #[test]
    fn google_error_messages_are_read_from_both_shapes() {
        let reply = |body: &str| Reply {
            status: StatusCode::BAD_REQUEST,
            headers: HeaderMap::new(),
            body: body.to_owned(),
        };
        assert_eq!(
            google_message(&reply(
                r#"{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}"#
            )),
            "Invalid JWT Signature."
        );
        assert_eq!(
            google_message(&reply(
                r#"{"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}"#
            )),
            "Permission denied"
        );
        assert_eq!(google_message(&reply(r#"{"error": "invalid_target"}"#)), "invalid_target");
    }
}
