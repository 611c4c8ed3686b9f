//! Docker Hub (`docker.io`): reads and pushes through the registry API, tags removed through
//! the Hub API.
//!
//! The registry API refuses every `DELETE` on Docker Hub (`UNSUPPORTED`), while the Hub API
//! deletes one tag and nothing else (`DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/`).
//! So [`Vendor::untag`] is one Hub call, and [`Vendor::delete_manifest`] removes every tag the
//! Hub lists on that digest; the untagged manifest itself is left to the Hub, whose API cannot
//! delete it (docs/registries.md, "Docker Hub"). The Hub API token comes from
//! `POST /v2/auth/token` (`identifier` + `secret`: a personal or organisation access token, or
//! a password), with the older `POST /v2/users/login` as fallback where the first is missing.
//! The tag list (`/v2/namespaces/…/tags`, 100 per page, absolute `next` URLs) gives each tag's
//! `tag_last_pushed`, so no manifest `GET` (a pull for the rate limit) is needed for ages.

use std::collections::BTreeMap;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport};
use super::rest::{Reply, Rest, RestError, api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor, remove_each_tag};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::{Credential, Secret};

/// The Hub API; `DOCKHAND_DOCKERHUB_API_URL` overrides it (tests).
pub const DEFAULT_API_URL: &str = "https://hub.docker.com";
/// What the Hub answers when a token from a personal access token lacks a permission.
const PAT_FORBIDDEN: &str = "access is forbidden with a JWT issued from a personal access token";

/// A Hub API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerHubError {
    #[error("No Docker Hub credentials for the Hub API of `{repository}`")]
    NoCredentials { repository: String },
    #[error("Docker Hub rejected the credentials of `{username}` (401 `{message}`)")]
    BadCredentials { username: String, message: String },
    #[error(
        "Docker Hub refused to delete tag `{tag}` of `{repository}`: the access token lacks the Delete permission"
    )]
    PatPermission { repository: String, tag: String },
    #[error("Docker Hub refused to delete tag `{tag}` of `{repository}` (403 `{message}`)")]
    DeleteForbidden { repository: String, tag: String, message: String },
    #[error(
        "Repository `{repository}` does not exist on Docker Hub (or the credentials cannot see it)"
    )]
    RepositoryUnknown { repository: String },
    #[error(
        "Images repo `{repository}` is no Docker Hub repository (`NAMESPACE/REPOSITORY`, no nesting)"
    )]
    NotARepository { repository: RepoAddress },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Hub API answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for DockerHubError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        let token = "a personal access token with the permission \"Read, Write, Delete\" (Account settings → Personal access tokens), or an organisation access token allowed to delete in the repository";
        match self {
            Self::NoCredentials { .. } => Some(format!(
                "set DOCKHAND_DOCKERHUB_USERNAME and DOCKHAND_DOCKERHUB_TOKEN ({token}), or log in to docker.io"
            )),
            Self::BadCredentials { .. } => {
                Some(format!("check the user name and token: use {token}"))
            }
            Self::PatPermission { .. } | Self::DeleteForbidden { .. } => {
                Some(format!("create {token} and pass it as DOCKHAND_DOCKERHUB_TOKEN"))
            }
            Self::RepositoryUnknown { .. } => Some(
                "check `--repo` (docker.io/NAMESPACE[/REPOSITORY]) and that the token can read the repository".to_owned(),
            ),
            Self::NotARepository { .. } => Some(
                "Docker Hub repositories are `NAMESPACE/REPOSITORY`; name the namespace in `--repo` for one repository per image".to_owned(),
            ),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TagPage {
    next: Option<String>,
    #[serde(default)]
    results: Vec<HubTag>,
}

#[derive(Debug, Clone, Deserialize)]
struct HubTag {
    name: String,
    digest: Option<String>,
    tag_last_pushed: Option<String>,
    last_updated: Option<String>,
}

/// Docker Hub through the seam.
#[derive(Debug)]
pub struct DockerHub {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    base: String,
    login: Option<(String, Secret)>,
    /// Set once the Hub token is minted.
    logged_in: tokio::sync::Mutex<bool>,
    /// Repository path → its tags as the Hub lists them, read once.
    tags: tokio::sync::Mutex<BTreeMap<String, Vec<HubTag>>>,
}

impl DockerHub {
    /// Connects with `DOCKHAND_DOCKERHUB_USERNAME` + `DOCKHAND_DOCKERHUB_TOKEN`, else the
    /// registry login `options` carries for `repo`'s host (the docker config entry), and the
    /// Hub API at `DOCKHAND_DOCKERHUB_API_URL`.
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let non_empty = |name: &str| env.get(name).filter(|value| !value.is_empty());
        let from_env = non_empty(env_vars::DOCKHAND_DOCKERHUB_USERNAME)
            .zip(non_empty(env_vars::DOCKHAND_DOCKERHUB_TOKEN))
            .map(|(username, token)| (username.clone(), Secret::new(token.clone())));
        let login = from_env.or_else(|| match options.credentials.get(&repo.registry) {
            Some(Credential::Basic { username, password }) if !password.is_empty() => {
                Some((username.clone(), password.clone()))
            }
            _ => None,
        });
        let base =
            non_empty(env_vars::DOCKHAND_DOCKERHUB_API_URL).map_or(DEFAULT_API_URL, String::as_str);
        let base = api_base(base, &options.insecure).map_err(DockerHubError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(DockerHubError::from)?;
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            login,
            logged_in: tokio::sync::Mutex::new(false),
            tags: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// `(namespace, repository)` of `repository`.
    fn names(repository: &RepoAddress) -> Result<(&str, &str), DockerHubError> {
        match repository.path.split_once('/') {
            Some((namespace, name)) if !name.contains('/') => Ok((namespace, name)),
            _ => Err(DockerHubError::NotARepository { repository: repository.clone() }),
        }
    }

    /// Mints the Hub token once: `/v2/auth/token`, else `/v2/users/login`.
    async fn log_in(&self, repository: &RepoAddress) -> Result<(), DockerHubError> {
        let mut logged_in = self.logged_in.lock().await;
        if *logged_in {
            return Ok(());
        }
        let Some((username, secret)) = &self.login else {
            return Err(DockerHubError::NoCredentials { repository: repository.path.clone() });
        };
        let attempts = [
            ("/v2/auth/token", "identifier", "secret", "access_token"),
            ("/v2/users/login", "username", "password", "token"),
        ];
        for (path, user_key, secret_key, token_key) in attempts {
            let url = format!("{}{path}", self.base);
            let body = serde_json::json!({ user_key: username, secret_key: secret.expose() });
            let reply = self.api.send(Method::POST, &url, Some(&body)).await?;
            match reply.status {
                StatusCode::OK | StatusCode::CREATED => {
                    let answer: serde_json::Value = parse(&url, &reply)?;
                    let Some(token) = answer[token_key].as_str() else {
                        return Err(unexpected(&url, reply.status, &reply));
                    };
                    self.api.set_token(&Secret::new(token));
                    *logged_in = true;
                    return Ok(());
                }
                // an older Hub without the endpoint: try the next one
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                    log::debug!("`{url}` answered {}: trying the older login", reply.status);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(DockerHubError::BadCredentials {
                        username: username.clone(),
                        message: message_of(&reply),
                    });
                }
                status => return Err(unexpected(&url, status, &reply)),
            }
        }
        Err(DockerHubError::Status {
            url: format!("{}/v2/users/login", self.base),
            status: StatusCode::NOT_FOUND,
            message: "no login endpoint".to_owned(),
        })
    }

    /// The Hub's tags of `repository`, listed once (or again with `refresh`).
    async fn hub_tags(
        &self,
        repository: &RepoAddress,
        refresh: bool,
    ) -> Result<Vec<HubTag>, DockerHubError> {
        let (namespace, name) = Self::names(repository)?;
        if !refresh && let Some(tags) = self.tags.lock().await.get(&repository.path) {
            return Ok(tags.clone());
        }
        self.log_in(repository).await?;
        let mut tags = Vec::new();
        let mut next = Some(format!(
            "{}/v2/namespaces/{namespace}/repositories/{name}/tags?page_size=100",
            self.base
        ));
        while let Some(url) = next.take() {
            let reply = self.send(repository, Method::GET, &url).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(DockerHubError::RepositoryUnknown {
                        repository: repository.path.clone(),
                    });
                }
                status => return Err(unexpected(&url, status, &reply)),
            }
            let page: TagPage = parse(&url, &reply)?;
            if !page.results.is_empty() {
                next = page.next.filter(|next| !next.is_empty() && *next != url);
            }
            tags.extend(page.results);
        }
        self.tags.lock().await.insert(repository.path.clone(), tags.clone());
        Ok(tags)
    }

    async fn send(
        &self,
        repository: &RepoAddress,
        method: Method,
        url: &str,
    ) -> Result<Reply, DockerHubError> {
        let reply = self.api.send(method, url, None).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            let username = self.login.as_ref().map(|(username, _)| username.clone());
            return Err(DockerHubError::BadCredentials {
                username: username.unwrap_or_else(|| repository.path.clone()),
                message: message_of(&reply),
            });
        }
        Ok(reply)
    }

    /// Deletes `tag` through the Hub API.
    async fn delete_tag(
        &self,
        repository: &RepoAddress,
        tag: &str,
    ) -> Result<Removal, DockerHubError> {
        let (namespace, name) = Self::names(repository)?;
        self.log_in(repository).await?;
        let url = format!("{}/v2/repositories/{namespace}/{name}/tags/{tag}/", self.base);
        let reply = self.send(repository, Method::DELETE, &url).await?;
        let removal = match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK | StatusCode::ACCEPTED => Removal::Removed,
            StatusCode::NOT_FOUND => Removal::AlreadyGone,
            StatusCode::FORBIDDEN if reply.body.contains(PAT_FORBIDDEN) => {
                return Err(DockerHubError::PatPermission {
                    repository: repository.path.clone(),
                    tag: tag.to_owned(),
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(DockerHubError::DeleteForbidden {
                    repository: repository.path.clone(),
                    tag: tag.to_owned(),
                    message: message_of(&reply),
                });
            }
            status => return Err(unexpected(&url, status, &reply)),
        };
        if let Some(tags) = self.tags.lock().await.get_mut(&repository.path) {
            tags.retain(|candidate| candidate.name != tag);
        }
        Ok(removal)
    }
}

fn message_of(reply: &Reply) -> String {
    reply.message(&["detail", "message"])
}

fn unexpected(url: &str, status: StatusCode, reply: &Reply) -> DockerHubError {
    DockerHubError::Status { url: url.to_owned(), status, message: message_of(reply) }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, reply: &Reply) -> Result<T, DockerHubError> {
    reply.json().map_err(|source| DockerHubError::Parse { url: url.to_owned(), source })
}

impl Vendor for DockerHub {
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
        for tag in self.hub_tags(repository, false).await? {
            let time = [&tag.tag_last_pushed, &tag.last_updated]
                .into_iter()
                .flatten()
                .find_map(|text| text.parse::<Timestamp>().ok());
            if let (Ok(name), Some(time)) = (tag.name.parse::<Tag>(), time) {
                times.insert(name, time);
            }
        }
        Ok(times)
    }

    /// Tag deletes always exist on the Hub; what can fail is the login, checked here before
    /// anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        Self::names(repository).map_err(RegistryError::from)?;
        self.log_in(repository).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        Ok(match self.delete_tag(repository, tag.as_str()).await? {
            Removal::Removed => Untagged::Removed,
            Removal::AlreadyGone => Untagged::AlreadyGone,
        })
    }

    /// Removes every tag the Hub lists on `digest`; the manifest itself stays for the Hub to
    /// keep or collect (its API deletes tags only).
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let tags = self.hub_tags(repository, false).await?;
        let on_digest: Vec<String> = tags
            .into_iter()
            .filter(|tag| tag.digest.as_deref() == Some(digest.as_str()))
            .map(|tag| tag.name)
            .collect();
        if on_digest.is_empty() {
            log::info!(
                "`{repository}@{digest}` has no tag left; the untagged manifest is left to Docker Hub, whose API deletes tags only"
            );
            return Ok(Removal::AlreadyGone);
        }
        Ok(remove_each_tag(on_digest, async |tag| self.delete_tag(repository, &tag).await).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_namespace_and_name() {
        let repo = |path: &str| RepoAddress {
            registry: "docker.io".parse().unwrap(),
            path: path.to_owned(),
        };
        assert_eq!(DockerHub::names(&repo("acme/app")).unwrap(), ("acme", "app"));
        assert!(DockerHub::names(&repo("acme")).is_err());
        assert!(DockerHub::names(&repo("acme/app/sub")).is_err());
    }

    #[test]
    fn hub_tag_page_reads_the_published_shape() {
        let page: TagPage = serde_json::from_value(serde_json::json!({
            "count": 2,
            "next": "https://hub.docker.com/v2/namespaces/acme/repositories/app/tags?page=2&page_size=1",
            "previous": null,
            "results": [{"name": "v1", "digest": "sha256:aa", "tag_last_pushed": "2026-01-02T03:04:05.123456Z", "last_updated": "2026-01-02T03:04:05.123456Z", "images": []}],
        }))
        .unwrap();
        assert_eq!(page.results[0].name, "v1");
        assert!(page.next.is_some());
        let pushed: Timestamp =
            page.results[0].tag_last_pushed.as_deref().unwrap().parse().unwrap();
        assert_eq!(
            pushed.as_second(),
            "2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap().as_second()
        );
    }
}
