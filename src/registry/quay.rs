//! Quay (quay.io, Red Hat Quay): reads and pushes through the registry API, tags removed
//! through Quay's API (`/api/v1`) on the registry host.
//!
//! Quay's API deletes one tag and nothing else
//! (`DELETE /api/v1/repository/{namespace}/{repository}/tag/{tag}`), and has no manifest
//! delete; so [`Vendor::untag`] is one API call, and [`Vendor::delete_manifest`] removes every
//! tag the listing has on that digest (the plan asks only when all of them go), leaving the
//! untagged manifest to Quay's garbage collection after the namespace's time-machine window.
//! No registry `DELETE` is sent. The active tags are listed once per repository
//! (`onlyActiveTags=true`, 100 per page while `has_additional`); each tag's `start_ts` (when
//! the tag was last set) is its age. Credentials: `DOCKHAND_QUAY_TOKEN`, an OAuth application
//! token (or a robot's token) with the `repo:write` scope, sent as a bearer token. The API is
//! on the registry host; `DOCKHAND_REGISTRY_API_URL` overrides it. Facts:
//! docs/registries.md, "Quay".

use std::collections::BTreeMap;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport};
use super::rest::{Reply, Rest, RestError, path_segment, registry_api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor, remove_each_tag};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::Secret;

/// A Quay API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum QuayError {
    #[error(
        "No Quay token for the API of `{repository}`: DOCKHAND_QUAY_TOKEN is not set (Quay's API takes no registry password)"
    )]
    NoToken { repository: String },
    #[error("Quay rejected the token (DOCKHAND_QUAY_TOKEN) (401 `{message}`) for `{url}`")]
    BadCredentials { url: String, message: String },
    #[error(
        "Quay refused the token (DOCKHAND_QUAY_TOKEN) access to `{url}` (403 `{message}`): it needs the `repo:write` scope and write permission on the repository"
    )]
    Forbidden { url: String, message: String },
    #[error("Repository `{repository}` does not exist on Quay (or the token cannot see it)")]
    RepositoryUnknown { repository: String },
    #[error(
        "Images repo `{repository}` names no Quay repository (`NAMESPACE/REPOSITORY` is needed)"
    )]
    NoRepository { repository: RepoAddress },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Quay API answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for QuayError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        let token = "set DOCKHAND_QUAY_TOKEN to an OAuth application token of the organisation (Applications → Generate Token) with `repo:read` and `repo:write`, or a robot token with write permission on the repository";
        match self {
            Self::NoToken { .. } | Self::BadCredentials { .. } | Self::Forbidden { .. } => {
                Some(token.to_owned())
            }
            Self::RepositoryUnknown { .. } | Self::NoRepository { .. } => Some(
                "check `--repo` (quay.io/NAMESPACE[/REPOSITORY]) and that the token can read the repository".to_owned(),
            ),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Vec<QuayTag>,
    #[serde(default)]
    has_additional: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct QuayTag {
    name: String,
    manifest_digest: Option<String>,
    /// Seconds since the epoch when the tag was set.
    start_ts: Option<i64>,
}

/// Quay through the seam.
#[derive(Debug)]
pub struct Quay {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    /// `…/api/v1`.
    base: String,
    has_token: bool,
    /// Repository path → its active tags, listed once.
    tags: tokio::sync::Mutex<BTreeMap<String, Vec<QuayTag>>>,
}

impl Quay {
    /// Connects with `DOCKHAND_QUAY_TOKEN` and the API at `DOCKHAND_REGISTRY_API_URL`, else on
    /// the registry host.
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let non_empty = |name: &str| env.get(name).filter(|value| !value.is_empty());
        let base =
            registry_api_base(env, &repo.registry, &options.insecure).map_err(QuayError::from)?;
        let base = format!("{base}/api/v1");
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(QuayError::from)?;
        let token = non_empty(env_vars::DOCKHAND_QUAY_TOKEN);
        if let Some(token) = token {
            api.set_token(&Secret::new(token.clone()));
        }
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            has_token: token.is_some(),
            tags: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    async fn send(
        &self,
        repository: &RepoAddress,
        method: Method,
        url: &str,
    ) -> Result<Reply, QuayError> {
        if !self.has_token {
            return Err(QuayError::NoToken { repository: repository.path.clone() });
        }
        let reply = self.api.send(method, url, None).await?;
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                Err(QuayError::BadCredentials { url: url.to_owned(), message: message_of(&reply) })
            }
            StatusCode::FORBIDDEN => {
                Err(QuayError::Forbidden { url: url.to_owned(), message: message_of(&reply) })
            }
            _ => Ok(reply),
        }
    }

    /// The active tags of `repository`, listed now if they have not been.
    async fn quay_tags(&self, repository: &RepoAddress) -> Result<Vec<QuayTag>, QuayError> {
        let url = repository_url(&self.base, &repository.path)
            .ok_or_else(|| QuayError::NoRepository { repository: repository.clone() })?;
        let mut cache = self.tags.lock().await;
        if let Some(tags) = cache.get(&repository.path) {
            return Ok(tags.clone());
        }
        let mut tags = Vec::new();
        for page in 1.. {
            let page_url = format!("{url}/tag/?onlyActiveTags=true&limit=100&page={page}");
            let reply = self.send(repository, Method::GET, &page_url).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(QuayError::RepositoryUnknown {
                        repository: repository.path.clone(),
                    });
                }
                status => return Err(unexpected(&page_url, status, &reply)),
            }
            let listed: TagPage = parse(&page_url, &reply)?;
            let more = listed.has_additional && !listed.tags.is_empty();
            tags.extend(listed.tags);
            if !more {
                break;
            }
        }
        cache.insert(repository.path.clone(), tags.clone());
        Ok(tags)
    }

    /// Deletes `tag` through the API.
    async fn delete_tag(&self, repository: &RepoAddress, tag: &str) -> Result<Removal, QuayError> {
        let url = repository_url(&self.base, &repository.path)
            .ok_or_else(|| QuayError::NoRepository { repository: repository.clone() })?;
        let url = format!("{url}/tag/{}", path_segment(tag));
        let reply = self.send(repository, Method::DELETE, &url).await?;
        let removal = match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::ACCEPTED => Removal::Removed,
            StatusCode::NOT_FOUND => Removal::AlreadyGone,
            status => return Err(unexpected(&url, status, &reply)),
        };
        if let Some(tags) = self.tags.lock().await.get_mut(&repository.path) {
            tags.retain(|candidate| candidate.name != tag);
        }
        Ok(removal)
    }
}

/// `BASE/repository/NAMESPACE/REPOSITORY` for the repository `path`; `None` for a bare
/// namespace.
fn repository_url(base: &str, path: &str) -> Option<String> {
    path.contains('/').then(|| format!("{base}/repository/{path}"))
}

fn message_of(reply: &Reply) -> String {
    reply.message(&["error_message", "detail", "message"])
}

fn unexpected(url: &str, status: StatusCode, reply: &Reply) -> QuayError {
    QuayError::Status { url: url.to_owned(), status, message: message_of(reply) }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, reply: &Reply) -> Result<T, QuayError> {
    reply.json().map_err(|source| QuayError::Parse { url: url.to_owned(), source })
}

impl Vendor for Quay {
    fn client(&self) -> &Client {
        &self.client
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        let mut times = BTreeMap::new();
        for tag in self.quay_tags(repository).await? {
            let set = tag.start_ts.and_then(|seconds| Timestamp::from_second(seconds).ok());
            if let (Ok(name), Some(set)) = (tag.name.parse::<Tag>(), set) {
                times.insert(name, set);
            }
        }
        Ok(times)
    }

    /// Tag deletes always exist in Quay's API; what can fail is the token, checked here by
    /// listing before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.quay_tags(repository).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        Ok(match self.delete_tag(repository, tag.as_str()).await? {
            Removal::Removed => Untagged::Removed,
            Removal::AlreadyGone => Untagged::AlreadyGone,
        })
    }

    /// Removes every tag Quay lists on `digest`; the manifest itself is left to Quay's
    /// garbage collection (its API deletes tags only).
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let on_digest: Vec<String> = self
            .quay_tags(repository)
            .await?
            .into_iter()
            .filter(|tag| tag.manifest_digest.as_deref() == Some(digest.as_str()))
            .map(|tag| tag.name)
            .collect();
        Ok(remove_each_tag(on_digest, async |tag| self.delete_tag(repository, &tag).await).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_namespace_and_name() {
        let base = "https://quay.io/api/v1";
        assert_eq!(
            repository_url(base, "acme/app").unwrap(),
            "https://quay.io/api/v1/repository/acme/app"
        );
        assert_eq!(repository_url(base, "acme"), None);
    }

    #[test]
    fn tag_pages_read_the_documented_shape() {
        let page: TagPage = serde_json::from_value(serde_json::json!({
            "tags": [{"name": "v1", "reversion": false, "start_ts": 1_767_323_045, "manifest_digest": "sha256:aa",
                      "is_manifest_list": false, "size": 100, "last_modified": "Fri, 02 Jan 2026 03:04:05 -0000"}],
            "page": 1,
            "has_additional": true,
        }))
        .unwrap();
        assert!(page.has_additional);
        assert_eq!(page.tags[0].manifest_digest.as_deref(), Some("sha256:aa"));
        assert_eq!(page.tags[0].start_ts, Some(1_767_323_045));
        let last: TagPage = serde_json::from_value(
            serde_json::json!({"tags": [], "page": 2, "has_additional": false}),
        )
        .unwrap();
        assert!(!last.has_additional && last.tags.is_empty());
    }
}
