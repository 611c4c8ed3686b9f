//! GitHub Packages' container registry (`ghcr.io`, and `containers.HOST` on GitHub Enterprise
//! Server): reads and pushes through the registry API, deletes through the Packages REST API.
//!
//! ghcr.io refuses every registry `DELETE` (405), so nothing here sends one. In the Packages
//! API a package *version* is one manifest digest (`name`) carrying all its tags
//! (`metadata.container.tags`); deleting a version removes every tag on it. So:
//! - [`Vendor::untag`]: a tag alone on its version goes by deleting the version; a tag that
//!   shares its version is pointed at a unique throw-away manifest first (a new version of its
//!   own), which [`Vendor::delete_manifest`] then deletes;
//! - [`Vendor::delete_manifest`]: deletes the version whose `name` is the digest.
//!
//! The owner is looked up once (`GET /users/{owner}`) to choose `/orgs/…` or `/users/…`; the
//! versions of a package are listed 100 per page (following `Link`) once and kept, so a delete
//! costs one request. Version times (`updated_at`, else `created_at`) are the tags' push times.
//! Before the first delete, a classic token's scopes (`x-oauth-scopes`) are checked; tokens
//! without that header (fine-grained, App, `GITHUB_TOKEN`) are judged by GitHub itself, and a
//! 403 on a delete becomes an error naming the Admin role on the package. Deletes are paced
//! below GitHub's secondary limit (180 per minute per endpoint); rate-limit answers are
//! waited out by [`super::rest`]. Facts: docs/registries.md, "GitHub Packages".

use std::collections::HashMap;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport};
use super::rest::{Pacer, Reply, Rest, RestError, api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::{Credential, Secret};

/// The REST API of github.com; `GITHUB_API_URL` overrides it (GHES, tests).
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// Deletes per minute dockhand allows itself: below the secondary limit of 180 (900 points
/// per minute per endpoint, 5 per `DELETE`), with room for the clock's edges.
const DELETES_PER_MINUTE: u32 = 178;
/// The classic-token scopes a cleanup needs: deleting versions, and pushing throw-away
/// manifests (which includes reading).
const NEEDED_SCOPES: [&str; 2] = ["delete:packages", "write:packages"];

/// A Packages API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("No GitHub token for the Packages API of `{package}`")]
    NoToken { package: String },
    #[error("The GitHub API rejected the token (401 `{message}`) for `{url}`")]
    BadCredentials { url: String, message: String },
    #[error(
        "The token lacks the scope `{missing}` needed to delete versions of `{package}` (it has `{granted}`)"
    )]
    MissingScope { package: String, missing: String, granted: String },
    #[error("GitHub refused to delete version `{version}` of `{package}` (403 `{message}`)")]
    DeleteForbidden { package: String, version: u64, message: String },
    #[error("Owner `{owner}` does not exist on the GitHub API (or the token cannot see it)")]
    OwnerUnknown { owner: String },
    #[error("Package `{package}` does not exist on the GitHub API (or the token cannot see it)")]
    PackageUnknown { package: String },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Packages API answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("Images repo `{repository}` names no GitHub package (`OWNER/PACKAGE` is needed)")]
    NoPackage { repository: RepoAddress },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for GithubError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        let scopes = "a classic personal access token with `read:packages`, `write:packages` and `delete:packages`";
        match self {
            Self::NoToken { .. } => Some(format!(
                "set DOCKHAND_GITHUB_TOKEN (or GITHUB_TOKEN) to {scopes}, or a GITHUB_TOKEN whose repository has the Admin role on the package"
            )),
            Self::BadCredentials { .. } => Some(format!(
                "check DOCKHAND_GITHUB_TOKEN / GITHUB_TOKEN: it must be a valid token, e.g. {scopes}"
            )),
            Self::MissingScope { missing, .. } => Some(format!(
                "add the `{missing}` scope to the token (GitHub → Settings → Developer settings → Personal access tokens), or use {scopes}"
            )),
            Self::DeleteForbidden { package, .. } => Some(format!(
                "with GITHUB_TOKEN, give the workflow's repository the Admin role on `{package}` (package settings → Manage Actions access); otherwise use {scopes}"
            )),
            Self::OwnerUnknown { .. } | Self::PackageUnknown { .. } => Some(
                "check `--repo` (ghcr.io/OWNER/PACKAGE) and that the token can read the package (`read:packages`)".to_owned(),
            ),
            Self::NoPackage { .. } => {
                Some("name the package in `--repo`, e.g. `ghcr.io/OWNER/PACKAGE`".to_owned())
            }
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// A package version as the API lists it (only the fields dockhand reads).
#[derive(Debug, Clone, Deserialize)]
struct Version {
    id: u64,
    /// The manifest digest.
    name: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    container: Container,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Container {
    #[serde(default)]
    tags: Vec<String>,
}

impl Version {
    fn has_tag(&self, tag: &Tag) -> bool {
        self.metadata.container.tags.iter().any(|candidate| candidate == tag.as_str())
    }

    fn time(&self) -> Option<Timestamp> {
        [&self.updated_at, &self.created_at]
            .into_iter()
            .flatten()
            .find_map(|text| text.parse().ok())
    }
}

#[derive(Debug, Deserialize)]
struct Owner {
    #[serde(rename = "type")]
    kind: String,
}

/// Where a package lives in the API, and its versions as last listed.
#[derive(Debug, Clone)]
struct Package {
    /// `OWNER/NAME`, for messages.
    display: String,
    /// `…/orgs/ORG/packages/container/NAME%2FSUB` or the `/users/` form.
    url: String,
    versions: Vec<Version>,
}

/// GitHub Packages through the seam.
#[derive(Debug)]
pub struct Github {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    base: String,
    has_token: bool,
    pacer: Pacer,
    /// Owner → `orgs` or `users`.
    owners: tokio::sync::Mutex<HashMap<String, &'static str>>,
    /// Repository path → package, listed once.
    packages: tokio::sync::Mutex<HashMap<String, Package>>,
    /// The classic token's scopes (`x-oauth-scopes`), if the API sent the header.
    scopes: std::sync::Mutex<Option<String>>,
}

impl Github {
    /// Connects with the token from `DOCKHAND_GITHUB_TOKEN`, else `GITHUB_TOKEN`, else the
    /// registry password `options` carries for `repo`'s host, and the API at `GITHUB_API_URL`.
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let non_empty = |name: &str| env.get(name).filter(|value| !value.is_empty());
        let token = non_empty(env_vars::DOCKHAND_GITHUB_TOKEN)
            .or_else(|| non_empty(env_vars::GITHUB_TOKEN))
            .map(|token| Secret::new(token.clone()))
            .or_else(|| match options.credentials.get(&repo.registry) {
                Some(Credential::Basic { password, .. }) if !password.is_empty() => {
                    Some(password.clone())
                }
                _ => None,
            });
        let base = non_empty(env_vars::GITHUB_API_URL).map_or(DEFAULT_API_URL, String::as_str);
        let base = api_base(base, &options.insecure).map_err(GithubError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/vnd.github+json"));
        headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
        let api = Rest::new(&options, headers).map_err(GithubError::from)?;
        let has_token = token.is_some();
        if let Some(token) = token {
            api.set_token(&token);
        }
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            has_token,
            pacer: Pacer::per_minute(DELETES_PER_MINUTE),
            owners: tokio::sync::Mutex::new(HashMap::new()),
            packages: tokio::sync::Mutex::new(HashMap::new()),
            scopes: std::sync::Mutex::new(None),
        })
    }

    async fn send(&self, method: Method, url: &str) -> Result<Reply, GithubError> {
        let reply = self.api.send(method, url, None).await?;
        if let Some(scopes) = reply.header("x-oauth-scopes") {
            *self.scopes.lock().expect("scopes lock") = Some(scopes.to_owned());
        }
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(GithubError::BadCredentials {
                url: url.to_owned(),
                message: message_of(&reply),
            });
        }
        Ok(reply)
    }

    /// `orgs` or `users` for `owner`.
    async fn owner_kind(&self, owner: &str) -> Result<&'static str, GithubError> {
        let mut owners = self.owners.lock().await;
        if let Some(kind) = owners.get(owner) {
            return Ok(kind);
        }
        let url = format!("{}/users/{owner}", self.base);
        let reply = self.send(Method::GET, &url).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(GithubError::OwnerUnknown { owner: owner.to_owned() });
            }
            status => return Err(unexpected(&url, status, &reply)),
        }
        let parsed: Owner = parse(&url, &reply)?;
        let kind = if parsed.kind == "Organization" { "orgs" } else { "users" };
        owners.insert(owner.to_owned(), kind);
        Ok(kind)
    }

    /// The package of `repository`, listed now if it has not been (or `refresh`).
    async fn package(
        &self,
        repository: &RepoAddress,
        refresh: bool,
    ) -> Result<Package, GithubError> {
        let Some((owner, name)) = repository.path.split_once('/') else {
            return Err(GithubError::NoPackage { repository: repository.clone() });
        };
        if !self.has_token {
            return Err(GithubError::NoToken { package: repository.path.clone() });
        }
        if !refresh && let Some(package) = self.packages.lock().await.get(&repository.path) {
            return Ok(package.clone());
        }
        let kind = self.owner_kind(owner).await?;
        let url =
            format!("{}/{kind}/{owner}/packages/container/{}", self.base, name.replace('/', "%2F"));
        let mut versions = Vec::new();
        let mut next = Some(format!("{url}/versions?per_page=100&page=1"));
        let mut pages = 0;
        while let Some(page) = next.take() {
            let reply = self.send(Method::GET, &page).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(GithubError::PackageUnknown { package: repository.path.clone() });
                }
                status => return Err(unexpected(&page, status, &reply)),
            }
            let listed: Vec<Version> = parse(&page, &reply)?;
            pages += 1;
            // a page that lists nothing ends the listing even if a `Link` says otherwise
            if !listed.is_empty() {
                next = reply.next_link();
            }
            versions.extend(listed);
        }
        log::debug!("`{}`: {} versions in {pages} pages", repository.path, versions.len());
        let package = Package { display: repository.path.clone(), url, versions };
        self.packages.lock().await.insert(repository.path.clone(), package.clone());
        Ok(package)
    }

    /// Forgets what is known of the version `id` (deleted) or of `tag` on it (moved away).
    async fn forget(&self, repository: &RepoAddress, id: u64, tag: Option<&Tag>) {
        if let Some(package) = self.packages.lock().await.get_mut(&repository.path) {
            match tag {
                None => package.versions.retain(|version| version.id != id),
                Some(tag) => {
                    for version in package.versions.iter_mut().filter(|version| version.id == id) {
                        version.metadata.container.tags.retain(|name| name != tag.as_str());
                    }
                }
            }
        }
    }

    /// Deletes version `id` of `package`, paced.
    async fn delete_version(
        &self,
        repository: &RepoAddress,
        package: &Package,
        id: u64,
    ) -> Result<Removal, GithubError> {
        self.pacer.wait().await;
        let url = format!("{}/versions/{id}", package.url);
        let reply = self.send(Method::DELETE, &url).await?;
        let removal = match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Removal::Removed,
            StatusCode::NOT_FOUND => Removal::AlreadyGone,
            StatusCode::FORBIDDEN => {
                return Err(GithubError::DeleteForbidden {
                    package: package.display.clone(),
                    version: id,
                    message: message_of(&reply),
                });
            }
            status => return Err(unexpected(&url, status, &reply)),
        };
        self.forget(repository, id, None).await;
        Ok(removal)
    }

    /// The version named `digest`. One the listing lacks (a throw-away manifest pushed since)
    /// is looked for on the first page, where GitHub lists the newest versions, then in a
    /// whole new listing.
    async fn version_of(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<(Package, Option<Version>), GithubError> {
        let find = |package: &Package| {
            package.versions.iter().find(|version| version.name == digest.as_str()).cloned()
        };
        let package = self.package(repository, false).await?;
        if let Some(version) = find(&package) {
            return Ok((package, Some(version)));
        }
        let page = format!("{}/versions?per_page=100&page=1", package.url);
        let reply = self.send(Method::GET, &page).await?;
        if reply.status == StatusCode::OK {
            let newest: Vec<Version> = parse(&page, &reply)?;
            if let Some(version) =
                newest.into_iter().find(|version| version.name == digest.as_str())
            {
                return Ok((package, Some(version)));
            }
        }
        let package = self.package(repository, true).await?;
        let found = find(&package);
        Ok((package, found))
    }
}

fn message_of(reply: &Reply) -> String {
    reply.message(&["message"])
}

fn unexpected(url: &str, status: StatusCode, reply: &Reply) -> GithubError {
    GithubError::Status { url: url.to_owned(), status, message: message_of(reply) }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, reply: &Reply) -> Result<T, GithubError> {
    reply.json().map_err(|source| GithubError::Parse { url: url.to_owned(), source })
}

/// The scopes of `needed` that a comma-separated `x-oauth-scopes` value lacks.
fn missing_scopes(granted: &str) -> Vec<&'static str> {
    let granted: Vec<&str> = granted.split(',').map(str::trim).collect();
    NEEDED_SCOPES.into_iter().filter(|scope| !granted.contains(scope)).collect()
}

impl Vendor for Github {
    fn client(&self) -> &Client {
        &self.client
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<std::collections::BTreeMap<Tag, Timestamp>, RegistryError> {
        let package = self.package(repository, false).await?;
        let mut times = std::collections::BTreeMap::new();
        for version in &package.versions {
            let Some(time) = version.time() else { continue };
            for tag in &version.metadata.container.tags {
                if let Ok(tag) = tag.parse::<Tag>() {
                    times.insert(tag, time);
                }
            }
        }
        Ok(times)
    }

    /// Deletes always work on GitHub's side; what can fail is the token, checked here.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.package(repository, false).await?;
        let granted = self.scopes.lock().expect("scopes lock").clone();
        if let Some(granted) = granted {
            let missing = missing_scopes(&granted);
            if !missing.is_empty() {
                return Err(GithubError::MissingScope {
                    package: repository.path.clone(),
                    missing: missing.join("`, `"),
                    granted,
                }
                .into());
            }
        }
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let mut refresh = false;
        let (package, version) = loop {
            let package = self.package(repository, refresh).await?;
            let version = package.versions.iter().find(|version| version.has_tag(tag)).cloned();
            if version.is_some() || refresh {
                break (package, version);
            }
            refresh = true;
        };
        let Some(version) = version else { return Ok(Untagged::AlreadyGone) };
        if version.metadata.container.tags.len() <= 1 {
            return Ok(match self.delete_version(repository, &package, version.id).await? {
                Removal::Removed => Untagged::Removed,
                Removal::AlreadyGone => Untagged::AlreadyGone,
            });
        }
        let tombstone = self
            .client
            .push_empty_manifest(repository, tag)
            .await
            .map_err(RegistryError::Tombstone)?;
        self.forget(repository, version.id, Some(tag)).await;
        Ok(Untagged::Tombstoned(tombstone))
    }

    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let (package, version) = self.version_of(repository, digest).await?;
        match version {
            None => Ok(Removal::AlreadyGone),
            Some(version) => Ok(self.delete_version(repository, &package, version.id).await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_needed_for_a_cleanup() {
        assert_eq!(missing_scopes("repo, read:packages"), ["delete:packages", "write:packages"]);
        assert_eq!(missing_scopes("write:packages,read:packages"), ["delete:packages"]);
        assert!(missing_scopes("delete:packages, write:packages, read:packages").is_empty());
        assert_eq!(missing_scopes(""), ["delete:packages", "write:packages"]);
    }

    #[test]
    fn version_time_prefers_updated_at() {
        let version: Version = serde_json::from_value(serde_json::json!({
            "id": 7,
            "name": "sha256:aa",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-02-01T00:00:00Z",
            "metadata": {"package_type": "container", "container": {"tags": ["v1"]}},
        }))
        .unwrap();
        assert_eq!(version.time(), Some("2026-02-01T00:00:00Z".parse().unwrap()));
        assert!(version.has_tag(&"v1".parse().unwrap()));
        let untagged: Version =
            serde_json::from_value(serde_json::json!({"id": 8, "name": "sha256:bb"})).unwrap();
        assert_eq!(untagged.time(), None);
        assert!(untagged.metadata.container.tags.is_empty());
    }
}
