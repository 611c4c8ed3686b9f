//! JFrog Artifactory: reads and pushes through the registry API, tags removed through
//! Artifactory's REST API.
//!
//! Artifactory keeps each tag of a Docker image as a folder under the repository key
//! (`<repo-key>/<image path>/<tag>/manifest.json`), so deleting that folder
//! (`DELETE /artifactory/<repo-key>/<image path>/<tag>`) removes that tag and nothing else;
//! Artifactory then drops the layers no other tag uses. [`Vendor::untag`] is that one call.
//! [`Vendor::delete_manifest`] removes every tag the registry resolves to the digest the same
//! way; an untagged manifest is left to Artifactory, and no registry `DELETE` is ever sent.
//! Ages: the tags from the Docker API's tag list
//! (`GET /artifactory/api/docker/<repo-key>/v2/<image>/tags/list`), then each tag folder's
//! `lastModified` (else `created`) from the Storage API's folder info
//! (`GET /artifactory/api/storage/<repo-key>/<image>/<tag>`).
//!
//! The repository key is the first component of the images' path (the repository path access
//! method), or `DOCKHAND_ARTIFACTORY_REPO_KEY` where the path does not carry it (subdomain and
//! port methods). The API is at `DOCKHAND_REGISTRY_API_URL`, else on the registry host. The
//! login is the registry's (docker config entry or `login`): a user name and password or
//! access token as Basic, an identity token as Bearer. Facts: docs/registries.md §7.10.

use std::collections::{BTreeMap, HashMap};

use futures_util::stream::{self, StreamExt};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport, ManifestRef};
use super::rest::{Reply, Rest, RestError, registry_api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor, remove_each_tag};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::Credential;

/// An Artifactory REST call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactoryError {
    #[error(
        "Images repo path `{path}` names no Artifactory repository key and an image below it (`REPO-KEY/IMAGE`, or the key in DOCKHAND_ARTIFACTORY_REPO_KEY)"
    )]
    NoRepoKey { path: String },
    #[error("Artifactory rejected {who} (401 `{message}`)")]
    BadCredentials { who: String, message: String },
    #[error("Artifactory refused to delete `{item}` (403 `{message}`)")]
    DeleteForbidden { item: String, message: String },
    #[error(
        "Image `{image}` is not in Artifactory repository `{key}` (or the login cannot read it)"
    )]
    RepositoryUnknown { key: String, image: String },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Artifactory answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for ArtifactoryError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NoRepoKey { .. } => Some(format!(
                "name the repository key first (`HOST/REPO-KEY/IMAGE`), or set {} where the registry host selects the repository",
                env_vars::DOCKHAND_ARTIFACTORY_REPO_KEY
            )),
            Self::BadCredentials { .. } => Some(
                "log in to the registry host (`dockhand login` or the docker config) with an Artifactory user and its password or access token".to_owned(),
            ),
            Self::DeleteForbidden { .. } => Some(
                "give the user (or the access token's scope) the Delete/Overwrite permission on the repository".to_owned(),
            ),
            Self::RepositoryUnknown { .. } => Some(format!(
                "check `--repo` (HOST/REPO-KEY/IMAGE, or {} for the key) and that the login can read the repository",
                env_vars::DOCKHAND_ARTIFACTORY_REPO_KEY
            )),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// Where an images repository lives in Artifactory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Location {
    key: String,
    image: String,
}

impl Location {
    /// The repository key and image path of the registry path `path`: the key from
    /// `repo_key`, else the first component of `path`.
    fn of(path: &str, repo_key: Option<&str>) -> Result<Self, ArtifactoryError> {
        if let Some(key) = repo_key {
            return Ok(Self { key: key.to_owned(), image: path.to_owned() });
        }
        match path.split_once('/') {
            Some((key, image)) if !key.is_empty() && !image.is_empty() => {
                Ok(Self { key: key.to_owned(), image: image.to_owned() })
            }
            _ => Err(ArtifactoryError::NoRepoKey { path: path.to_owned() }),
        }
    }

    fn tags_url(&self, base: &str) -> String {
        format!("{base}/artifactory/api/docker/{}/v2/{}/tags/list", self.key, self.image)
    }

    fn folder_info_url(&self, base: &str, tag: &str) -> String {
        format!("{base}/artifactory/api/storage/{}/{}/{tag}", self.key, self.image)
    }

    fn item_url(&self, base: &str, tag: &str) -> String {
        format!("{base}/artifactory/{}/{}/{tag}", self.key, self.image)
    }
}

#[derive(Debug, Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The Storage API's folder info (only the fields dockhand reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FolderInfo {
    created: Option<String>,
    last_modified: Option<String>,
}

impl FolderInfo {
    /// When the tag folder last changed: `lastModified`, else `created`.
    fn time(&self) -> Option<Timestamp> {
        [&self.last_modified, &self.created].into_iter().flatten().find_map(|text| parse_time(text))
    }
}

/// An ISO 8601 time as Artifactory writes it: `2026-01-02T03:04:05.123Z`, with an offset
/// `+02:00`, or with the offset in the `+0200` form its documentation's pattern
/// (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`) gives.
fn parse_time(text: &str) -> Option<Timestamp> {
    if let Ok(time) = text.parse() {
        return Some(time);
    }
    let (head, offset) = text.split_at(text.len().checked_sub(5)?);
    let (sign, digits) = offset.split_at(1);
    if !matches!(sign, "+" | "-") || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    format!("{head}{sign}{}:{}", &digits[..2], &digits[2..]).parse().ok()
}

/// What Artifactory says went wrong: `errors[0].message` of its error body, else the body.
fn message_of(reply: &Reply) -> String {
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|body| body["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| reply.message(&["message"]))
}

fn unexpected(url: &str, reply: &Reply) -> ArtifactoryError {
    ArtifactoryError::Status {
        url: url.to_owned(),
        status: reply.status,
        message: message_of(reply),
    }
}

/// Artifactory through the seam.
#[derive(Debug)]
pub struct Artifactory {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    base: String,
    repo_key: Option<String>,
    /// Who the API sees, for messages: `user `NAME``, `an access token`, `anonymous access`.
    who: String,
    /// Repository path → tag → digest, resolved once for digest deletes.
    digests: tokio::sync::Mutex<HashMap<String, BTreeMap<Tag, Digest>>>,
}

impl Artifactory {
    /// Connects with the registry login `options` carries for `repo`'s host, the API at
    /// `DOCKHAND_REGISTRY_API_URL` (else the registry host) and the repository key from
    /// `DOCKHAND_ARTIFACTORY_REPO_KEY` (else each path's first component).
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let base = registry_api_base(env, &repo.registry, &options.insecure)
            .map_err(ArtifactoryError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(ArtifactoryError::from)?;
        let who = match options.credentials.get(&repo.registry) {
            Some(Credential::Basic { username, password }) if !password.is_empty() => {
                api.set_basic(username, password);
                format!("user `{username}`")
            }
            Some(Credential::IdentityToken(token)) => {
                api.set_token(token);
                "the access token".to_owned()
            }
            _ => "anonymous access".to_owned(),
        };
        let repo_key = env
            .get(env_vars::DOCKHAND_ARTIFACTORY_REPO_KEY)
            .filter(|value| !value.is_empty())
            .cloned();
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            repo_key,
            who,
            digests: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn locate(&self, repository: &RepoAddress) -> Result<Location, ArtifactoryError> {
        Location::of(&repository.path, self.repo_key.as_deref())
    }

    async fn send(&self, method: Method, url: &str) -> Result<Reply, ArtifactoryError> {
        let reply = self.api.send(method, url, None).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(ArtifactoryError::BadCredentials {
                who: self.who.clone(),
                message: message_of(&reply),
            });
        }
        Ok(reply)
    }

    /// The tags Artifactory's Docker API lists for the image.
    async fn tags(&self, location: &Location) -> Result<Vec<String>, ArtifactoryError> {
        let url = location.tags_url(&self.base);
        let reply = self.send(Method::GET, &url).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(ArtifactoryError::RepositoryUnknown {
                    key: location.key.clone(),
                    image: location.image.clone(),
                });
            }
            _ => return Err(unexpected(&url, &reply)),
        }
        let list: TagList =
            reply.json().map_err(|source| ArtifactoryError::Parse { url: url.clone(), source })?;
        Ok(list.tags.unwrap_or_default())
    }

    /// When the folder of `tag` last changed; `None` if it is gone.
    async fn tag_time(
        &self,
        location: &Location,
        tag: &str,
    ) -> Result<Option<Timestamp>, ArtifactoryError> {
        let url = location.folder_info_url(&self.base, tag);
        let reply = self.send(Method::GET, &url).await?;
        match reply.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(unexpected(&url, &reply)),
        }
        let info: FolderInfo =
            reply.json().map_err(|source| ArtifactoryError::Parse { url, source })?;
        Ok(info.time())
    }

    /// Deletes the folder of `tag`.
    async fn delete_tag(
        &self,
        repository: &RepoAddress,
        tag: &Tag,
    ) -> Result<Removal, ArtifactoryError> {
        let location = self.locate(repository)?;
        let url = location.item_url(&self.base, tag.as_str());
        let reply = self.send(Method::DELETE, &url).await?;
        let removal = match reply.status {
            status if status.is_success() => Removal::Removed,
            StatusCode::NOT_FOUND => Removal::AlreadyGone,
            StatusCode::FORBIDDEN => {
                return Err(ArtifactoryError::DeleteForbidden {
                    item: format!("{}/{}/{tag}", location.key, location.image),
                    message: message_of(&reply),
                });
            }
            _ => return Err(unexpected(&url, &reply)),
        };
        if let Some(tags) = self.digests.lock().await.get_mut(&repository.path) {
            tags.remove(tag);
        }
        Ok(removal)
    }

    /// The tags of `repository` on `digest`, from the registry's tag list resolved once.
    async fn tags_on(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Vec<Tag>, RegistryError> {
        let mut digests = self.digests.lock().await;
        if !digests.contains_key(&repository.path) {
            let tags = match self.client.list_tags(repository).await {
                Ok(tags) => tags,
                Err(error) if error.is_not_found() => Vec::new(),
                Err(error) => return Err(error.into()),
            };
            let resolved: Vec<_> = stream::iter(tags)
                .map(|tag| async move {
                    let head =
                        self.client.head_manifest(repository, &ManifestRef::Tag(tag.clone())).await;
                    (tag, head)
                })
                .buffer_unordered(self.capabilities.concurrency.max(1))
                .collect()
                .await;
            let mut map = BTreeMap::new();
            for (tag, head) in resolved {
                if let Some(head) = head? {
                    map.insert(tag, head.digest);
                }
            }
            digests.insert(repository.path.clone(), map);
        }
        Ok(digests[&repository.path]
            .iter()
            .filter(|(_, on)| *on == digest)
            .map(|(tag, _)| tag.clone())
            .collect())
    }
}

impl Vendor for Artifactory {
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
        let location = self.locate(repository)?;
        let tags = self.tags(&location).await?;
        let location = &location;
        let times: Vec<_> = stream::iter(tags)
            .map(|tag| async move {
                let time = self.tag_time(location, &tag).await;
                (tag, time)
            })
            .buffer_unordered(self.capabilities.concurrency.max(1))
            .collect()
            .await;
        let mut map = BTreeMap::new();
        for (tag, time) in times {
            if let (Ok(tag), Some(time)) = (tag.parse::<Tag>(), time?) {
                map.insert(tag, time);
            }
        }
        Ok(map)
    }

    /// Deletes always exist in Artifactory; what can fail is the login or the repository key,
    /// checked here before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        let location = self.locate(repository)?;
        self.tags(&location).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        Ok(match self.delete_tag(repository, tag).await? {
            Removal::Removed => Untagged::Removed,
            Removal::AlreadyGone => Untagged::AlreadyGone,
        })
    }

    /// Removes every tag on `digest` (each a folder of its own); a manifest no tag is on is
    /// left to Artifactory, which drops what no tag uses.
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let tags = self.tags_on(repository, digest).await?;
        if tags.is_empty() {
            log::info!(
                "`{repository}@{digest}` has no tag left; the untagged manifest is left to Artifactory, which removes what no tag uses"
            );
            return Ok(Removal::AlreadyGone);
        }
        Ok(remove_each_tag(tags, async |tag| self.delete_tag(repository, &tag).await).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_key_from_the_path_or_the_variable() {
        let location = Location::of("docker-local/acme/api", None).unwrap();
        assert_eq!(location, Location { key: "docker-local".into(), image: "acme/api".into() });
        let base = "https://acme.jfrog.io";
        assert_eq!(
            location.item_url(base, "v1"),
            "https://acme.jfrog.io/artifactory/docker-local/acme/api/v1"
        );
        assert_eq!(
            location.tags_url(base),
            "https://acme.jfrog.io/artifactory/api/docker/docker-local/v2/acme/api/tags/list"
        );
        assert_eq!(
            location.folder_info_url(base, "v1"),
            "https://acme.jfrog.io/artifactory/api/storage/docker-local/acme/api/v1"
        );
        let by_variable = Location::of("acme/api", Some("docker-prod")).unwrap();
        assert_eq!(by_variable, Location { key: "docker-prod".into(), image: "acme/api".into() });
        assert!(matches!(Location::of("api", None), Err(ArtifactoryError::NoRepoKey { .. })));
    }

    #[test]
    fn folder_times_in_the_documented_forms() {
        let want: Timestamp = "2026-01-02T03:04:05.123Z".parse().unwrap();
        assert_eq!(parse_time("2026-01-02T03:04:05.123Z"), Some(want));
        assert_eq!(parse_time("2026-01-02T05:04:05.123+02:00"), Some(want));
        assert_eq!(parse_time("2026-01-02T05:04:05.123+0200"), Some(want));
        assert_eq!(parse_time("2026-01-01T22:04:05.123-0500"), Some(want));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
        let info: FolderInfo = serde_json::from_value(serde_json::json!({
            "repo": "docker-local", "path": "/acme/api/v1",
            "created": "2026-01-01T00:00:00.000+0000", "createdBy": "ci",
            "lastModified": "2026-01-02T03:04:05.123+0000", "modifiedBy": "ci",
            "lastUpdated": "2026-01-02T03:04:05.123+0000",
            "children": [{"uri": "/manifest.json", "folder": false}],
        }))
        .unwrap();
        assert_eq!(info.time(), Some(want));
        let created_only: FolderInfo =
            serde_json::from_value(serde_json::json!({"created": "2026-01-02T03:04:05.123Z"}))
                .unwrap();
        assert_eq!(created_only.time(), Some(want));
    }

    #[test]
    fn error_messages_come_from_the_errors_array() {
        let reply = |body: &str| Reply {
            status: StatusCode::UNAUTHORIZED,
            headers: HeaderMap::new(),
            body: body.to_owned(),
        };
        assert_eq!(
            message_of(&reply(r#"{"errors":[{"status":401,"message":"Bad credentials"}]}"#)),
            "Bad credentials"
        );
        assert_eq!(message_of(&reply("plain text")), "plain text");
    }
}
