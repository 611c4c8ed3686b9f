//! Harbor (v2.0 API): reads and pushes through the registry API, tags and artifacts removed
//! through Harbor's own API on the registry host.
//!
//! Harbor's registry API refuses a tag `DELETE` (`UNSUPPORTED`), and a digest `DELETE` there
//! removes the artifact with every tag on it, so nothing here sends a registry delete. In the
//! v2.0 API a repository `PROJECT/REPO[/sub]` is `projects/{project}/repositories/{repository}`
//! with the repository part URL-encoded twice (`a/b` → `a%252Fb`, as Harbor requires). So:
//! - [`Vendor::untag`]: `DELETE …/artifacts/{tag}/tags/{tag}` removes that tag and nothing
//!   else;
//! - [`Vendor::delete_manifest`]: `DELETE …/artifacts/{digest}` removes the artifact (the plan
//!   asks only when every tag on it goes).
//!
//! The artifacts are listed once per repository (`with_tag`, `with_immutable_status`, 100 per
//! page, following `Link`): each tag's `push_time` is its age, and a tag Harbor marks
//! `immutable` (a tag immutability rule matches it) is reported locked, so the plan keeps it
//! and its artifact. Credentials: the registry login (a user or a robot account, basic auth).
//! The API is on the registry host; `DOCKHAND_REGISTRY_API_URL` overrides it. Facts:
//! docs/registries.md, "Harbor".

use std::collections::BTreeMap;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport};
use super::rest::{Reply, Rest, RestError, path_segment, registry_api_base};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::EnvMap;
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::Credential;

/// The reason a locked tag is kept with.
const IMMUTABLE: &str = "immutable: a Harbor tag immutability rule matches it";

/// A Harbor API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum HarborError {
    #[error(
        "No registry login for `{registry}`, which Harbor's API needs (basic auth, user or robot account)"
    )]
    NoCredentials { registry: String },
    #[error("Harbor rejected the login of `{username}` (401 `{message}`) for `{url}`")]
    BadCredentials { url: String, username: String, message: String },
    #[error("Harbor refused `{username}` access to `{url}` (403 `{message}`)")]
    Forbidden { url: String, username: String, message: String },
    #[error(
        "Harbor refused to delete `{target}`: {message} (412; a tag immutability rule protects it)"
    )]
    Immutable { target: String, message: String },
    #[error(
        "Repository `{repository}` does not exist on Harbor (or the login cannot see its project)"
    )]
    RepositoryUnknown { repository: String },
    #[error(
        "Images repo `{repository}` names no Harbor repository (`PROJECT/REPOSITORY` is needed)"
    )]
    NoRepository { repository: RepoAddress },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no Harbor API answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

impl Classify for HarborError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        let robot = "log in to the registry (docker config or `dockhand login`) as a robot account (`robot$…`, quoted in shells) with the project permissions to list artifacts and delete artifacts and tags";
        match self {
            Self::NoCredentials { .. } | Self::BadCredentials { .. } | Self::Forbidden { .. } => {
                Some(robot.to_owned())
            }
            Self::Immutable { .. } => Some(
                "the tag stays; change the project's tag immutability rules in Harbor if it should go".to_owned(),
            ),
            Self::RepositoryUnknown { .. } | Self::NoRepository { .. } => Some(
                "check `--repo` (HOST/PROJECT[/REPOSITORY]) and that the login is a member of the project".to_owned(),
            ),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// An artifact as `GET …/artifacts` lists it (only the fields dockhand reads).
#[derive(Debug, Clone, Deserialize)]
struct Artifact {
    digest: String,
    #[serde(default)]
    tags: Option<Vec<ArtifactTag>>,
}

#[derive(Debug, Clone, Deserialize)]
struct ArtifactTag {
    name: String,
    push_time: Option<String>,
    #[serde(default)]
    immutable: bool,
}

impl Artifact {
    fn tags(&self) -> &[ArtifactTag] {
        self.tags.as_deref().unwrap_or_default()
    }
}

/// Harbor through the seam.
#[derive(Debug)]
pub struct Harbor {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    /// `…/api/v2.0`.
    base: String,
    username: Option<String>,
    /// Repository path → its artifacts, listed once.
    artifacts: tokio::sync::Mutex<BTreeMap<String, Vec<Artifact>>>,
}

impl Harbor {
    /// Connects with the registry login `options` carries for `repo`'s host, and the API at
    /// `DOCKHAND_REGISTRY_API_URL`, else on the registry host.
    pub fn connect(
        repo: &RepoAddress,
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let base =
            registry_api_base(env, &repo.registry, &options.insecure).map_err(HarborError::from)?;
        let base = format!("{base}/api/v2.0");
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(HarborError::from)?;
        let username = match options.credentials.get(&repo.registry) {
            Some(Credential::Basic { username, password }) if !password.is_empty() => {
                api.set_basic(username, password);
                Some(username.clone())
            }
            _ => None,
        };
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            username,
            artifacts: tokio::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// `…/projects/{project}/repositories/{repository, encoded twice}` of `repository`.
    fn repository_url(&self, repository: &RepoAddress) -> Result<String, HarborError> {
        repository_url(&self.base, &repository.path)
            .ok_or_else(|| HarborError::NoRepository { repository: repository.clone() })
    }

    async fn send(&self, method: Method, url: &str) -> Result<Reply, HarborError> {
        let Some(username) = &self.username else {
            let registry = url::Url::parse(url)
                .ok()
                .and_then(|url| url.host_str().map(str::to_owned))
                .unwrap_or_default();
            return Err(HarborError::NoCredentials { registry });
        };
        let reply = self.api.send(method, url, None).await?;
        let failure = |url: &str| (url.to_owned(), username.clone(), message_of(&reply));
        match reply.status {
            StatusCode::UNAUTHORIZED => {
                let (url, username, message) = failure(url);
                Err(HarborError::BadCredentials { url, username, message })
            }
            StatusCode::FORBIDDEN => {
                let (url, username, message) = failure(url);
                Err(HarborError::Forbidden { url, username, message })
            }
            _ => Ok(reply),
        }
    }

    /// The artifacts of `repository`, listed now if they have not been.
    async fn artifacts(&self, repository: &RepoAddress) -> Result<Vec<Artifact>, HarborError> {
        let url = self.repository_url(repository)?;
        let mut cache = self.artifacts.lock().await;
        if let Some(artifacts) = cache.get(&repository.path) {
            return Ok(artifacts.clone());
        }
        let mut artifacts = Vec::new();
        let mut next = Some(format!(
            "{url}/artifacts?with_tag=true&with_immutable_status=true&page_size=100&page=1"
        ));
        while let Some(page) = next.take() {
            let reply = self.send(Method::GET, &page).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(HarborError::RepositoryUnknown {
                        repository: repository.path.clone(),
                    });
                }
                status => return Err(unexpected(&page, status, &reply)),
            }
            let listed: Vec<Artifact> = parse(&page, &reply)?;
            if !listed.is_empty() {
                next = reply.next_link().and_then(|link| resolve(&page, &link));
            }
            artifacts.extend(listed);
        }
        cache.insert(repository.path.clone(), artifacts.clone());
        Ok(artifacts)
    }

    /// Forgets `tag` (or, without one, the artifact `digest`) after a delete.
    async fn forget(&self, repository: &RepoAddress, digest: Option<&str>, tag: Option<&str>) {
        if let Some(artifacts) = self.artifacts.lock().await.get_mut(&repository.path) {
            if let Some(digest) = digest {
                artifacts.retain(|artifact| artifact.digest != digest);
            }
            if let Some(tag) = tag {
                for artifact in artifacts.iter_mut() {
                    if let Some(tags) = &mut artifact.tags {
                        tags.retain(|candidate| candidate.name != tag);
                    }
                }
            }
        }
    }

    /// `DELETE url`: removed, already gone, or refused by an immutability rule.
    async fn delete(&self, url: &str, target: String) -> Result<Removal, HarborError> {
        let reply = self.send(Method::DELETE, url).await?;
        match reply.status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(Removal::Removed),
            StatusCode::NOT_FOUND => Ok(Removal::AlreadyGone),
            StatusCode::PRECONDITION_FAILED => {
                Err(HarborError::Immutable { target, message: message_of(&reply) })
            }
            status => Err(unexpected(url, status, &reply)),
        }
    }
}

/// `BASE/projects/{project}/repositories/{repository}` for the repository `path`
/// (`PROJECT/REPO[/sub]`), the repository part encoded twice; `None` without a repository part.
fn repository_url(base: &str, path: &str) -> Option<String> {
    let (project, name) = path.split_once('/')?;
    Some(format!(
        "{base}/projects/{}/repositories/{}",
        path_segment(project),
        path_segment(&path_segment(name))
    ))
}

/// The `Link` target `link` (Harbor sends it relative to the host) as an absolute URL.
fn resolve(page: &str, link: &str) -> Option<String> {
    url::Url::parse(page).ok()?.join(link).ok().map(String::from)
}

fn message_of(reply: &Reply) -> String {
    // Harbor's errors: {"errors": [{"code": "…", "message": "…"}]}
    serde_json::from_str::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|body| body["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| reply.message(&["message"]))
}

fn unexpected(url: &str, status: StatusCode, reply: &Reply) -> HarborError {
    HarborError::Status { url: url.to_owned(), status, message: message_of(reply) }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, reply: &Reply) -> Result<T, HarborError> {
    reply.json().map_err(|source| HarborError::Parse { url: url.to_owned(), source })
}

impl Vendor for Harbor {
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
        for artifact in self.artifacts(repository).await? {
            for tag in artifact.tags() {
                let pushed = tag.push_time.as_deref().and_then(|text| text.parse().ok());
                if let (Ok(name), Some(pushed)) = (tag.name.parse::<Tag>(), pushed) {
                    times.insert(name, pushed);
                }
            }
        }
        Ok(times)
    }

    async fn locked_tags(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, String>, RegistryError> {
        let mut locked = BTreeMap::new();
        for artifact in self.artifacts(repository).await? {
            for tag in artifact.tags().iter().filter(|tag| tag.immutable) {
                if let Ok(name) = tag.name.parse::<Tag>() {
                    locked.insert(name, IMMUTABLE.to_owned());
                }
            }
        }
        Ok(locked)
    }

    /// Deletes always exist in Harbor's API; what can fail is the login, checked here by
    /// listing before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        self.artifacts(repository).await?;
        Ok(DeleteSupport::Enabled)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let name = path_segment(tag.as_str());
        let url = format!("{}/artifacts/{name}/tags/{name}", self.repository_url(repository)?);
        let removal = self.delete(&url, format!("{repository}:{tag}")).await?;
        self.forget(repository, None, Some(tag.as_str())).await;
        Ok(match removal {
            Removal::Removed => Untagged::Removed,
            Removal::AlreadyGone => Untagged::AlreadyGone,
        })
    }

    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let url = format!("{}/artifacts/{digest}", self.repository_url(repository)?);
        let removal = self.delete(&url, format!("{repository}@{digest}")).await?;
        self.forget(repository, Some(digest.as_str()), None).await;
        Ok(removal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_encoded_twice() {
        let base = "https://harbor.example/api/v2.0";
        assert_eq!(
            repository_url(base, "library/app").unwrap(),
            "https://harbor.example/api/v2.0/projects/library/repositories/app"
        );
        assert_eq!(
            repository_url(base, "team/app/sub/x").unwrap(),
            "https://harbor.example/api/v2.0/projects/team/repositories/app%252Fsub%252Fx"
        );
        assert_eq!(repository_url(base, "lonely"), None);
    }

    #[test]
    fn relative_links_resolve_against_the_page() {
        let page = "http://127.0.0.1:8080/api/v2.0/projects/p/repositories/r/artifacts?page=1";
        assert_eq!(
            resolve(page, "/api/v2.0/projects/p/repositories/r/artifacts?page=2&page_size=100")
                .unwrap(),
            "http://127.0.0.1:8080/api/v2.0/projects/p/repositories/r/artifacts?page=2&page_size=100"
        );
        assert_eq!(resolve(page, "https://other.example/x").unwrap(), "https://other.example/x");
    }

    #[test]
    fn artifacts_read_the_swagger_shape() {
        let listed: Vec<Artifact> = serde_json::from_value(serde_json::json!([
            {"id": 1, "digest": "sha256:aa", "type": "IMAGE", "push_time": "2026-01-01T00:00:00.000Z",
             "pull_time": "0001-01-01T00:00:00.000Z", "references": null,
             "tags": [{"id": 3, "artifact_id": 1, "repository_id": 2, "name": "v1",
                       "push_time": "2026-01-02T03:04:05.678Z", "pull_time": "0001-01-01T00:00:00.000Z",
                       "immutable": true, "signed": false}]},
            {"id": 2, "digest": "sha256:bb", "tags": null},
        ]))
        .unwrap();
        let tag = &listed[0].tags()[0];
        assert!(tag.immutable);
        let pushed: Timestamp = tag.push_time.as_deref().unwrap().parse().unwrap();
        assert_eq!(
            pushed.as_second(),
            "2026-01-02T03:04:05Z".parse::<Timestamp>().unwrap().as_second()
        );
        assert!(listed[1].tags().is_empty());
    }
}
