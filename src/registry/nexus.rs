//! Sonatype Nexus Repository: reads and pushes through the registry API (a Docker connector),
//! tags removed through Nexus's components API.
//!
//! In Nexus a Docker image tag is a *component* (`name` = the image, `version` = the tag) whose
//! manifest asset carries the manifest's `sha256`. `DELETE /service/rest/v1/components/{id}`
//! deletes a component, but Sonatype's documentation does not say whether that leaves the other
//! tags on the same manifest in place, and users report deletes that took sibling tags with
//! them. So dockhand treats a component delete as a delete by digest:
//! - [`Vendor::untag`]: a tag alone on its digest goes by deleting its component; a tag that
//!   shares its digest is first pointed at a unique throw-away manifest (docs/registries.md §3
//!   step 3), which [`Vendor::delete_manifest`] then deletes as that tag's component, so a
//!   sibling tag is never lost;
//! - [`Vendor::delete_manifest`]: deletes the components on the digest; a manifest no
//!   component is on (an index child, `--delete-untagged`) is deleted through the registry
//!   API, which is safe there because no tag points at it.
//!
//! Components come from `GET /service/rest/v1/search?repository=R&format=docker&name=IMAGE`
//! (following `continuationToken`), read once per repository; the manifest asset's
//! `lastModified` (else `blobCreated`) is the tag's age. The Nexus repository is not in the
//! image path (a connector per port or host): `DOCKHAND_NEXUS_REPOSITORY` names it. The API is
//! at `DOCKHAND_REGISTRY_API_URL`, else on the registry host; the registry login is sent as
//! Basic. Facts: docs/registries.md §7.11.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport};
use super::rest::{Reply, Rest, RestError, registry_api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::Credential;

/// A Nexus REST call that failed.
#[derive(Debug, thiserror::Error)]
pub enum NexusError {
    #[error(
        "No Nexus repository named for `{registry}`: set DOCKHAND_NEXUS_REPOSITORY to the repository behind the Docker connector"
    )]
    NoRepository { registry: String },
    #[error("Nexus rejected {who} (401)")]
    BadCredentials { who: String },
    #[error("Nexus refused to delete tag `{tag}` of `{image}` (403 `{message}`)")]
    DeleteForbidden { image: String, tag: String, message: String },
    #[error(
        "Nexus has no Docker repository `{repository}` (or the login cannot see it): {message}"
    )]
    RepositoryUnknown { repository: String, message: String },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Nexus answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for NexusError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::NoRepository { .. } | Self::RepositoryUnknown { .. } => Some(
                "set DOCKHAND_NEXUS_REPOSITORY to the Docker (hosted) repository the connector serves, and DOCKHAND_REGISTRY_API_URL to Nexus's base URL if its REST API is on another port".to_owned(),
            ),
            Self::BadCredentials { .. } => Some(
                "log in to the registry host (`dockhand login` or the docker config) with a Nexus user or user token".to_owned(),
            ),
            Self::DeleteForbidden { .. } => Some(
                "give the user the privilege `nx-repository-view-docker-<repository>-delete` (or a role that has it)".to_owned(),
            ),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// One page of `GET /service/rest/v1/search`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchPage {
    #[serde(default)]
    items: Vec<SearchItem>,
    continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SearchItem {
    id: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    name: String,
    version: Option<String>,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Asset {
    #[serde(default)]
    path: String,
    #[serde(default)]
    checksum: BTreeMap<String, String>,
    last_modified: Option<String>,
    blob_created: Option<String>,
}

/// A tag as Nexus keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    id: String,
    tag: String,
    /// `sha256:HEX` of the tag's manifest, where Nexus gave the checksum.
    digest: Option<String>,
    time: Option<Timestamp>,
}

impl SearchItem {
    /// The component of tag `version` of `image` in `repository`, if this item is one: its
    /// manifest asset (`v2/IMAGE/manifests/TAG`) gives the digest and the time.
    fn component(self, repository: &str, image: &str) -> Option<Component> {
        let tag = self.version?;
        if self.repository != repository || self.name != image {
            return None;
        }
        let manifest_path = format!("v2/{image}/manifests/{tag}");
        let asset = self
            .assets
            .iter()
            .find(|asset| asset.path.trim_start_matches('/') == manifest_path)
            .or(self.assets.first());
        let digest =
            asset.and_then(|asset| asset.checksum.get("sha256")).map(|hex| format!("sha256:{hex}"));
        let time = asset.and_then(|asset| {
            [&asset.last_modified, &asset.blob_created]
                .into_iter()
                .flatten()
                .find_map(|text| text.parse().ok())
        });
        Some(Component { id: self.id, tag, digest, time })
    }
}

/// The search URL for `image` in `repository` (`tag` narrows it to one version).
fn search_url(
    base: &str,
    repository: &str,
    image: &str,
    tag: Option<&str>,
    continuation: Option<&str>,
) -> String {
    let mut url = url::Url::parse(&format!("{base}/service/rest/v1/search")).expect("a base URL");
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("repository", repository);
        query.append_pair("format", "docker");
        query.append_pair("name", image);
        if let Some(tag) = tag {
            query.append_pair("version", tag);
        }
        if let Some(token) = continuation {
            query.append_pair("continuationToken", token);
        }
    }
    url.to_string()
}

fn message_of(reply: &Reply) -> String {
    match serde_json::from_str::<serde_json::Value>(&reply.body) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(serde_json::Value::Array(items)) => {
            items.iter().filter_map(|item| item["message"].as_str()).collect::<Vec<_>>().join("; ")
        }
        _ => reply.message(&["message"]),
    }
}

fn unexpected(url: &str, reply: &Reply) -> NexusError {
    NexusError::Status { url: url.to_owned(), status: reply.status, message: message_of(reply) }
}

/// Nexus through the seam.
#[derive(Debug)]
pub struct Nexus {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    base: String,
    /// `DOCKHAND_NEXUS_REPOSITORY`.
    repository: Option<String>,
    who: String,
    /// Images repo path → its components, listed once.
    components: tokio::sync::Mutex<HashMap<String, Vec<Component>>>,
    /// Throw-away manifest digest → the tag pointed at it.
    tombstones: tokio::sync::Mutex<HashMap<String, Tag>>,
}

impl Nexus {
    /// Connects with the registry login `options` carries for `repo`'s host, the API at
    /// `DOCKHAND_REGISTRY_API_URL` (else the registry host) and the Nexus repository
    /// `DOCKHAND_NEXUS_REPOSITORY`.
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let base =
            registry_api_base(env, &repo.registry, &options.insecure).map_err(NexusError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(NexusError::from)?;
        let who = match options.credentials.get(&repo.registry) {
            Some(Credential::Basic { username, password }) if !password.is_empty() => {
                api.set_basic(username, password);
                format!("user `{username}`")
            }
            _ => "anonymous access".to_owned(),
        };
        let repository =
            env.get(env_vars::DOCKHAND_NEXUS_REPOSITORY).filter(|value| !value.is_empty()).cloned();
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            repository,
            who,
            components: tokio::sync::Mutex::new(HashMap::new()),
            tombstones: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn nexus_repository(&self, repository: &RepoAddress) -> Result<&str, NexusError> {
        self.repository
            .as_deref()
            .ok_or_else(|| NexusError::NoRepository { registry: repository.registry.to_string() })
    }

    async fn send(&self, method: Method, url: &str) -> Result<Reply, NexusError> {
        let reply = self.api.send(method, url, None).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(NexusError::BadCredentials { who: self.who.clone() });
        }
        Ok(reply)
    }

    /// Every component of `repository`'s image (only tag `tag` where given), all pages.
    async fn search(
        &self,
        repository: &RepoAddress,
        tag: Option<&str>,
    ) -> Result<Vec<Component>, NexusError> {
        let nexus_repository = self.nexus_repository(repository)?;
        let image = repository.path.as_str();
        let mut components = Vec::new();
        let mut continuation: Option<String> = None;
        loop {
            let url = search_url(&self.base, nexus_repository, image, tag, continuation.as_deref());
            let reply = self.send(Method::GET, &url).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
                    return Err(NexusError::RepositoryUnknown {
                        repository: nexus_repository.to_owned(),
                        message: message_of(&reply),
                    });
                }
                _ => return Err(unexpected(&url, &reply)),
            }
            let page: SearchPage =
                reply.json().map_err(|source| NexusError::Parse { url: url.clone(), source })?;
            let empty = page.items.is_empty();
            components.extend(
                page.items.into_iter().filter_map(|item| item.component(nexus_repository, image)),
            );
            match page.continuation_token {
                Some(token) if !empty && continuation.as_deref() != Some(token.as_str()) => {
                    continuation = Some(token);
                }
                _ => break,
            }
        }
        Ok(components)
    }

    /// The components of `repository`, listed once (or again with `refresh`).
    async fn components(
        &self,
        repository: &RepoAddress,
        refresh: bool,
    ) -> Result<Vec<Component>, NexusError> {
        if !refresh && let Some(components) = self.components.lock().await.get(&repository.path) {
            return Ok(components.clone());
        }
        let components = self.search(repository, None).await?;
        self.components.lock().await.insert(repository.path.clone(), components.clone());
        Ok(components)
    }

    /// Deletes the component `component` (a tag) of `repository`.
    async fn delete_component(
        &self,
        repository: &RepoAddress,
        component: &Component,
    ) -> Result<Removal, NexusError> {
        let url = format!("{}/service/rest/v1/components/{}", self.base, component.id);
        let reply = self.send(Method::DELETE, &url).await?;
        let removal = match reply.status {
            status if status.is_success() => Removal::Removed,
            StatusCode::NOT_FOUND => Removal::AlreadyGone,
            StatusCode::FORBIDDEN => {
                return Err(NexusError::DeleteForbidden {
                    image: repository.path.clone(),
                    tag: component.tag.clone(),
                    message: message_of(&reply),
                });
            }
            _ => return Err(unexpected(&url, &reply)),
        };
        // whether Nexus took other tags on the digest with it is not known: forget them all
        if let Some(components) = self.components.lock().await.get_mut(&repository.path) {
            components.retain(|candidate| {
                candidate.id != component.id
                    && (component.digest.is_none() || candidate.digest != component.digest)
            });
        }
        Ok(removal)
    }
}

impl Vendor for Nexus {
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
        for component in self.components(repository, false).await? {
            if let (Ok(tag), Some(time)) = (component.tag.parse::<Tag>(), component.time) {
                times.insert(tag, time);
            }
        }
        Ok(times)
    }

    /// Deletes always exist in Nexus (given the privilege); what can fail is the repository
    /// name or the login, checked here before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.components(repository, false).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let mut refresh = false;
        let (components, component) = loop {
            let components = self.components(repository, refresh).await?;
            let found = components.iter().find(|component| component.tag == tag.as_str()).cloned();
            if found.is_some() || refresh {
                break (components, found);
            }
            refresh = true;
        };
        let Some(component) = component else { return Ok(Untagged::AlreadyGone) };
        let shared = components.iter().any(|other| {
            other.id != component.id && other.digest.is_some() && other.digest == component.digest
        });
        if !shared && component.digest.is_some() {
            return Ok(match self.delete_component(repository, &component).await? {
                Removal::Removed => Untagged::Removed,
                Removal::AlreadyGone => Untagged::AlreadyGone,
            });
        }
        // a sibling tag (or a digest Nexus did not give) may go with a component delete: move
        // the tag to a manifest of its own first
        let tombstone = self
            .client
            .push_empty_manifest(repository, tag)
            .await
            .map_err(RegistryError::Tombstone)?;
        self.tombstones.lock().await.insert(tombstone.to_string(), tag.clone());
        if let Some(components) = self.components.lock().await.get_mut(&repository.path) {
            components.retain(|candidate| candidate.id != component.id);
        }
        Ok(Untagged::Tombstoned(tombstone))
    }

    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let tombstone_tag = self.tombstones.lock().await.get(digest.as_str()).cloned();
        let on_digest: Vec<Component> = match &tombstone_tag {
            Some(tag) => self.search(repository, Some(tag.as_str())).await?,
            None => self.components(repository, false).await?,
        }
        .into_iter()
        .filter(|component| component.digest.as_deref() == Some(digest.as_str()))
        .collect();
        if on_digest.is_empty() {
            // no tag is on it: the registry API deletes it without touching any tag
            return super::delete_by_digest(&self.client, repository, digest).await;
        }
        let mut removal = Removal::AlreadyGone;
        for component in &on_digest {
            if self.delete_component(repository, component).await? == Removal::Removed {
                removal = Removal::Removed;
            }
        }
        Ok(removal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_urls_are_encoded() {
        assert_eq!(
            search_url("https://nexus.example", "docker-hosted", "acme/api", None, None),
            "https://nexus.example/service/rest/v1/search?repository=docker-hosted&format=docker&name=acme%2Fapi"
        );
        assert_eq!(
            search_url("http://127.0.0.1:8081", "docker", "api", Some("v1.0+b"), Some("abc=")),
            "http://127.0.0.1:8081/service/rest/v1/search?repository=docker&format=docker&name=api&version=v1.0%2Bb&continuationToken=abc%3D"
        );
    }

    #[test]
    fn a_search_item_is_a_tag_with_its_manifest_digest_and_time() {
        let page: SearchPage = serde_json::from_value(serde_json::json!({
            "items": [{
                "id": "ZG9ja2VyLWhvc3RlZDo0",
                "repository": "docker-hosted",
                "format": "docker",
                "group": null,
                "name": "acme/api",
                "version": "v1",
                "assets": [{
                    "downloadUrl": "https://nexus.example/repository/docker-hosted/v2/acme/api/manifests/v1",
                    "path": "v2/acme/api/manifests/v1",
                    "id": "ZG9ja2VyLWhvc3RlZDo1",
                    "repository": "docker-hosted",
                    "format": "docker",
                    "checksum": {"sha1": "aa", "sha256": "bb"},
                    "contentType": "application/vnd.oci.image.manifest.v1+json",
                    "lastModified": "2026-01-02T03:04:05.123+00:00",
                    "blobCreated": "2026-01-01T00:00:00.000+00:00",
                }],
            }, {
                "id": "other", "repository": "docker-proxy", "name": "acme/api", "version": "v2",
                "assets": [],
            }],
            "continuationToken": "88491cd1d185dd136f143f20c4e7d50c",
        }))
        .unwrap();
        assert_eq!(page.continuation_token.as_deref(), Some("88491cd1d185dd136f143f20c4e7d50c"));
        let components: Vec<Component> = page
            .items
            .into_iter()
            .filter_map(|item| item.component("docker-hosted", "acme/api"))
            .collect();
        assert_eq!(
            components,
            [Component {
                id: "ZG9ja2VyLWhvc3RlZDo0".into(),
                tag: "v1".into(),
                digest: Some("sha256:bb".into()),
                time: Some("2026-01-02T03:04:05.123Z".parse().unwrap()),
            }]
        );
    }

    #[test]
    fn error_bodies_in_the_shapes_nexus_sends() {
        let reply = |body: &str| Reply {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            headers: HeaderMap::new(),
            body: body.to_owned(),
        };
        assert_eq!(message_of(&reply(r#""Repository not found""#)), "Repository not found");
        assert_eq!(
            message_of(&reply(r#"[{"id":"*","message":"a"},{"id":"x","message":"b"}]"#)),
            "a; b"
        );
        assert_eq!(message_of(&reply("")), "");
    }
}
