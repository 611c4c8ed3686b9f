//! The GitLab container registry (`registry.gitlab.com`, self-managed `$CI_REGISTRY`): reads,
//! pushes and digest deletes through the registry API, tag ages and (where the registry lacks
//! the OCI tag delete) tag deletes through the GitLab REST API.
//!
//! [`Vendor::untag`] first sends the OCI tag `DELETE` (GitLab 16.4 and later remove the tag
//! alone); a registry that refuses it (older self-managed instances) gets the REST
//! `DELETE /projects/:id/registry/repositories/:repository_id/tags/:tag_name` from then on,
//! which also removes only that tag. Digests go through the registry API; the plan deletes
//! one only when every tag on it goes.
//!
//! The REST API knows registry repositories by numeric id: the project is found by trying the
//! leading parts of the repository path as a URL-encoded project path, longest first
//! (`GET /projects/:path/registry/repositories`, 100 per page), and the repository is the one
//! whose `path` is the images repo's path; both are looked up once. Each tag's `created_at`
//! (`GET …/tags/:tag_name`; GitLab records the manifest's creation there) is the age source.
//! Credentials: `DOCKHAND_GITLAB_TOKEN` (a personal, group or project access token with the
//! `api` scope, sent as `PRIVATE-TOKEN`), else the job's `CI_JOB_TOKEN` (sent as `JOB-TOKEN`),
//! which reaches only its own project and acts with the role of whoever started the pipeline.
//! Without either, ages come from the image configs and only a REST tag delete fails.
//! The API is at `CI_API_V4_URL`. Facts: docs/registries.md, "GitLab".

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::{Client, ClientOptions, DeleteSupport, DistributionError};
use super::rest::{Reply, Rest, RestError, api_base, path_segment};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, RepoAddress, Tag};
use crate::secret::Secret;

/// The REST API of gitlab.com; `CI_API_V4_URL` overrides it (self-managed, tests).
pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";
/// How many path components a registry repository may have below its project (GitLab docs).
const LEVELS_BELOW_PROJECT: usize = 3;

/// Which token the REST API gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// `DOCKHAND_GITLAB_TOKEN`, as `PRIVATE-TOKEN`.
    Access,
    /// `CI_JOB_TOKEN`, as `JOB-TOKEN`.
    Job,
}

/// A GitLab REST API call that failed.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    #[error(
        "No GitLab token for the REST API of `{repository}`: neither DOCKHAND_GITLAB_TOKEN nor CI_JOB_TOKEN is set"
    )]
    NoToken { repository: String },
    #[error(
        "The GitLab API rejected the {} (401 `{message}`) for `{url}`{}",
        token_name(*.job_token),
        caveat(*.job_token)
    )]
    BadCredentials { url: String, message: String, job_token: bool },
    #[error(
        "The GitLab API refused the {} access to `{url}` (403 `{message}`){}",
        token_name(*.job_token),
        caveat(*.job_token)
    )]
    Forbidden { url: String, message: String, job_token: bool },
    #[error(
        "No GitLab project holds the container repository `{repository}` (or the token cannot see it){}",
        caveat(*.job_token)
    )]
    RepositoryUnknown { repository: String, job_token: bool },
    #[error("`{url}` answered {status}: `{message}`")]
    Status { url: String, status: StatusCode, message: String },
    #[error("`{url}` sent a reply that is no GitLab API answer")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Rest(#[from] RestError),
}

fn token_name(job_token: bool) -> &'static str {
    if job_token { "job token (CI_JOB_TOKEN)" } else { "token (DOCKHAND_GITLAB_TOKEN)" }
}

/// What the token must be, said in the error itself (a cleanup's inventory reports only the
/// error, not its hint).
fn caveat(job_token: bool) -> &'static str {
    if job_token {
        ". CI_JOB_TOKEN reaches only the container registry of the job's own project, acts with the role of the user who started the pipeline (deleting tags needs Developer or higher), and older GitLab versions refuse deletes with it"
    } else {
        ". DOCKHAND_GITLAB_TOKEN must be a personal, group or project access token with the `api` scope (and the Developer role or higher to delete)"
    }
}

impl Classify for GitlabError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Rest(source) => source.exit_status(),
            Self::Status { .. } | Self::Parse { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        let token = "set DOCKHAND_GITLAB_TOKEN to a personal, group or project access token with the `api` scope and the Developer role (or higher) on the project";
        match self {
            Self::NoToken { .. } => {
                Some(format!("{token}, or run in a GitLab CI job (CI_JOB_TOKEN)"))
            }
            Self::BadCredentials { job_token: false, .. } => {
                Some(format!("check the token: it may be expired or revoked; {token}"))
            }
            Self::BadCredentials { job_token: true, .. }
            | Self::Forbidden { .. }
            | Self::RepositoryUnknown { job_token: true, .. } => Some(token.to_owned()),
            Self::RepositoryUnknown { job_token: false, .. } => Some(
                "check `--repo` (REGISTRY/GROUP/PROJECT[/IMAGE]) and that the token's user can read the project".to_owned(),
            ),
            Self::Rest(source) => source.hint(),
            _ => None,
        }
    }
}

/// A registry repository as `GET /projects/:id/registry/repositories` lists it.
#[derive(Debug, Deserialize)]
struct ApiRepository {
    id: u64,
    path: String,
}

/// A tag as the list (`name`) and the tag details (`created_at`) give it.
#[derive(Debug, Deserialize)]
struct ApiTag {
    name: String,
    created_at: Option<String>,
}

/// Where a registry repository lives in the REST API.
#[derive(Debug, Clone)]
struct Location {
    /// `…/projects/:id/registry/repositories/:repository_id`.
    url: String,
}

/// The GitLab container registry through the seam.
#[derive(Debug)]
pub struct Gitlab {
    client: Client,
    capabilities: Capabilities,
    api: Rest,
    base: String,
    token: Option<TokenKind>,
    /// Set once the registry refused an OCI tag delete: later tags go through the REST API.
    tag_delete_refused: AtomicBool,
    /// Repository path → where the API has it, looked up once.
    locations: tokio::sync::Mutex<HashMap<String, Location>>,
}

impl Gitlab {
    /// Connects with `DOCKHAND_GITLAB_TOKEN`, else `CI_JOB_TOKEN`, and the API at
    /// `CI_API_V4_URL`.
    pub fn connect(
        options: ClientOptions,
        capabilities: Capabilities,
        env: &EnvMap,
    ) -> Result<Self, RegistryError> {
        let non_empty = |name: &str| env.get(name).filter(|value| !value.is_empty());
        let token = non_empty(env_vars::DOCKHAND_GITLAB_TOKEN)
            .map(|token| (TokenKind::Access, token))
            .or_else(|| non_empty(env_vars::CI_JOB_TOKEN).map(|token| (TokenKind::Job, token)));
        let base = non_empty(env_vars::CI_API_V4_URL).map_or(DEFAULT_API_URL, String::as_str);
        let base = api_base(base, &options.insecure).map_err(GitlabError::from)?;
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let api = Rest::new(&options, headers).map_err(GitlabError::from)?;
        if let Some((kind, token)) = token {
            let name = match kind {
                TokenKind::Access => "private-token",
                TokenKind::Job => "job-token",
            };
            api.set_credential(HeaderName::from_static(name), Secret::new(token.clone()));
        }
        Ok(Self {
            client: Client::new(options)?,
            capabilities,
            api,
            base,
            token: token.map(|(kind, _)| kind),
            tag_delete_refused: AtomicBool::new(false),
            locations: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn job_token(&self) -> bool {
        self.token == Some(TokenKind::Job)
    }

    async fn send(&self, method: Method, url: &str) -> Result<Reply, GitlabError> {
        let reply = self.api.send(method, url, None).await?;
        let job_token = self.job_token();
        match reply.status {
            StatusCode::UNAUTHORIZED => Err(GitlabError::BadCredentials {
                url: url.to_owned(),
                message: message_of(&reply),
                job_token,
            }),
            StatusCode::FORBIDDEN => Err(GitlabError::Forbidden {
                url: url.to_owned(),
                message: message_of(&reply),
                job_token,
            }),
            _ => Ok(reply),
        }
    }

    /// Every item of the paged list at `url` (100 per page, following `Link`); `None` on 404.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<Option<Vec<T>>, GitlabError> {
        let mut items = Vec::new();
        let mut next = Some(format!("{url}?per_page=100&page=1"));
        while let Some(page) = next.take() {
            let reply = self.send(Method::GET, &page).await?;
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => return Ok(None),
                status => return Err(unexpected(&page, status, &reply)),
            }
            let listed: Vec<T> = parse(&page, &reply)?;
            if !listed.is_empty() {
                next = reply.next_link();
            }
            items.extend(listed);
        }
        Ok(Some(items))
    }

    /// Where the API has `repository`, looked up now if it has not been.
    async fn location(&self, repository: &RepoAddress) -> Result<Location, GitlabError> {
        if self.token.is_none() {
            return Err(GitlabError::NoToken { repository: repository.path.clone() });
        }
        let mut locations = self.locations.lock().await;
        if let Some(location) = locations.get(&repository.path) {
            return Ok(location.clone());
        }
        for project in project_candidates(&repository.path) {
            let url =
                format!("{}/projects/{}/registry/repositories", self.base, path_segment(project));
            let Some(listed) = self.list::<ApiRepository>(&url).await? else { continue };
            let Some(found) = listed.into_iter().find(|item| item.path == repository.path) else {
                break;
            };
            log::debug!("`{}` is registry repository {} of `{project}`", repository.path, found.id);
            let location = Location { url: format!("{url}/{}", found.id) };
            locations.insert(repository.path.clone(), location.clone());
            return Ok(location);
        }
        Err(GitlabError::RepositoryUnknown {
            repository: repository.path.clone(),
            job_token: self.job_token(),
        })
    }

    /// `created_at` of `tag`, from its details.
    async fn created_at(
        &self,
        location: &Location,
        tag: &str,
    ) -> Result<Option<Timestamp>, GitlabError> {
        let url = format!("{}/tags/{}", location.url, path_segment(tag));
        let reply = self.send(Method::GET, &url).await?;
        match reply.status {
            StatusCode::OK => {}
            // deleted since the list: no age
            StatusCode::NOT_FOUND => return Ok(None),
            status => return Err(unexpected(&url, status, &reply)),
        }
        let details: ApiTag = parse(&url, &reply)?;
        Ok(details.created_at.and_then(|text| text.parse().ok()))
    }

    /// Removes `tag` through the REST API.
    async fn delete_tag(
        &self,
        repository: &RepoAddress,
        tag: &Tag,
    ) -> Result<Untagged, GitlabError> {
        let location = self.location(repository).await?;
        let url = format!("{}/tags/{}", location.url, path_segment(tag.as_str()));
        let reply = self.send(Method::DELETE, &url).await?;
        match reply.status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Ok(Untagged::Removed),
            StatusCode::NOT_FOUND => Ok(Untagged::AlreadyGone),
            status => Err(unexpected(&url, status, &reply)),
        }
    }
}

/// The project paths `path` may belong to, longest first: a registry repository is the
/// project's own path or up to three more components below it, and a project sits in at least
/// one namespace.
fn project_candidates(path: &str) -> Vec<&str> {
    let ends: Vec<usize> =
        path.match_indices('/').map(|(at, _)| at).chain(std::iter::once(path.len())).collect();
    // ends[k] ends the first k + 1 components; the project has two at least
    let lowest = ends.len().saturating_sub(LEVELS_BELOW_PROJECT + 1).max(1);
    (lowest..ends.len()).rev().map(|k| &path[..ends[k]]).collect()
}

fn message_of(reply: &Reply) -> String {
    reply.message(&["message", "error"])
}

fn unexpected(url: &str, status: StatusCode, reply: &Reply) -> GitlabError {
    GitlabError::Status { url: url.to_owned(), status, message: message_of(reply) }
}

fn parse<T: serde::de::DeserializeOwned>(url: &str, reply: &Reply) -> Result<T, GitlabError> {
    reply.json().map_err(|source| GitlabError::Parse { url: url.to_owned(), source })
}

impl Vendor for Gitlab {
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
        if self.token.is_none() {
            log::warn!(
                "`{repository}`: no GitLab token (DOCKHAND_GITLAB_TOKEN, CI_JOB_TOKEN): ages come from the image configs, and a tag the registry cannot delete alone stays"
            );
            return Ok(BTreeMap::new());
        }
        let location = self.location(repository).await?;
        let url = format!("{}/tags", location.url);
        let tags: Vec<ApiTag> = self.list(&url).await?.unwrap_or_default();
        let location = &location;
        let details: Vec<(String, Result<Option<Timestamp>, GitlabError>)> =
            stream::iter(tags.into_iter().map(|tag| async move {
                let created = self.created_at(location, &tag.name).await;
                (tag.name, created)
            }))
            .buffer_unordered(self.capabilities.concurrency.max(1))
            .collect()
            .await;
        let mut times = BTreeMap::new();
        for (name, created) in details {
            if let (Ok(tag), Some(at)) = (name.parse::<Tag>(), created?) {
                times.insert(tag, at);
            }
        }
        Ok(times)
    }

    /// Digest deletes go through the registry (probed there); tag deletes may need the REST
    /// API, whose credentials (when given) are checked here before anything changes.
    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        if self.token.is_some() {
            self.location(repository).await?;
        }
        Ok(self.client.probe_deletes(repository).await?)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        if !self.tag_delete_refused.load(Ordering::Relaxed) {
            match self.client.delete_tag(repository, tag).await {
                Ok(()) => return Ok(Untagged::Removed),
                Err(DistributionError::TagDeleteUnsupported { .. }) => {
                    log::info!(
                        "`{}` refuses the OCI tag delete: tags go through the GitLab API",
                        repository.registry
                    );
                    self.tag_delete_refused.store(true, Ordering::Relaxed);
                }
                Err(error) if error.is_not_found() => return Ok(Untagged::AlreadyGone),
                Err(source) => return Err(RegistryError::TagDelete(source)),
            }
        }
        Ok(self.delete_tag(repository, tag).await?)
    }

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

    #[test]
    fn projects_are_tried_longest_first_down_to_three_levels_above() {
        assert_eq!(project_candidates("group/project"), ["group/project"]);
        assert_eq!(project_candidates("group/project/app"), ["group/project/app", "group/project"]);
        assert_eq!(
            project_candidates("a/b/c/d/e/f"),
            ["a/b/c/d/e/f", "a/b/c/d/e", "a/b/c/d", "a/b/c"]
        );
        assert!(project_candidates("lonely").is_empty());
    }

    #[test]
    fn repository_and_tag_answers_read_the_documented_shape() {
        let listed: Vec<ApiRepository> = serde_json::from_value(serde_json::json!([
            {"id": 1, "name": "", "path": "group/project", "project_id": 9, "location": "registry.example/group/project", "created_at": "2026-01-01T00:00:00.000Z", "cleanup_policy_started_at": null},
            {"id": 2, "name": "app", "path": "group/project/app", "project_id": 9, "location": "registry.example/group/project/app", "created_at": "2026-01-01T00:00:00.000Z"},
        ]))
        .unwrap();
        assert_eq!((listed[1].id, listed[1].path.as_str()), (2, "group/project/app"));
        let details: ApiTag = serde_json::from_value(serde_json::json!({
            "name": "v1", "path": "group/project/app:v1", "location": "registry.example/group/project/app:v1",
            "revision": "aa", "short_revision": "aa", "digest": "sha256:aa",
            "created_at": "2026-02-03T04:05:06.789+00:00", "total_size": 100,
        }))
        .unwrap();
        let at: Timestamp = details.created_at.unwrap().parse().unwrap();
        assert_eq!(
            at.as_second(),
            "2026-02-03T04:05:06Z".parse::<Timestamp>().unwrap().as_second()
        );
        let listed_tag: ApiTag = serde_json::from_value(
            serde_json::json!({"name": "v1", "path": "p:v1", "location": "l"}),
        )
        .unwrap();
        assert!(listed_tag.created_at.is_none());
    }
}
