//! The state of pull requests (GitHub) and merge requests (GitLab), for git-aware retention:
//! the same vendor REST APIs, credentials and URL overrides as the registry files
//! `github.rs` and `gitlab.rs`, on the shared [`super::rest`] client.
//!
//! - GitHub: `GET /repos/{owner}/{repo}/pulls/{pull_number}` at `GITHUB_API_URL`, the
//!   repository from `GITHUB_REPOSITORY`, the token `DOCKHAND_GITHUB_TOKEN` else `GITHUB_TOKEN`
//!   (Bearer). `state` is `open` or `closed`; a closed one with `merged_at` was merged.
//! - GitLab: `GET /projects/:id/merge_requests/:merge_request_iid` at `CI_API_V4_URL`, the
//!   project from `CI_PROJECT_ID`, the token `DOCKHAND_GITLAB_TOKEN` (`PRIVATE-TOKEN`) else
//!   `CI_JOB_TOKEN` (`JOB-TOKEN`). `state` is `opened`, `closed`, `locked` (still open, being
//!   merged) or `merged`. GitLab's job tokens reach only a listed set of API endpoints, and the
//!   merge requests API has not been among them: a job token refused (401 or 403) is asked
//!   once, and every merge request's state is then unknown with the fix in the reason.
//!
//! Owns where the states come from ([`Lookup`], resolved once from the environment) and
//! fetching them ([`Lookup::states`]). Nothing here decides anything: a request that fails
//! gives [`Fetched::Failed`], which retention reads as "state unknown" and keeps.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::distribution::ClientOptions;
use super::rest::{Rest, api_base, path_segment};
use crate::env_vars::{self, EnvMap};
use crate::secret::Secret;

/// What a refused job token's failure adds: why, and the fix.
const JOB_TOKEN_REFUSED: &str = "; CI_JOB_TOKEN cannot read merge requests here: set DOCKHAND_GITLAB_TOKEN to a token with the read_api scope";

/// Which forge's API tells the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Github,
    Gitlab,
}

impl Forge {
    /// "GitHub", "GitLab".
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "GitHub",
            Self::Gitlab => "GitLab",
        }
    }
}

/// A pull or merge request's state as its forge gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Closed,
    Merged,
}

/// What one look-up gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    State(State),
    /// The request failed (what went wrong, in words without secrets).
    Failed(String),
}

/// Why no state can be asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Neither `GITHUB_REPOSITORY` nor `CI_PROJECT_ID` names the project.
    NoProject,
    /// The forge is known but no token is set.
    NoToken(Forge),
    /// The API URL is unusable (not https, or plain HTTP to a host not named insecure).
    BadUrl(Forge, String),
}

/// Where pull request states come from, resolved from the environment.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: Result<Target, Unavailable>,
    options: ClientOptions,
}

#[derive(Debug, Clone)]
struct Target {
    forge: Forge,
    /// The API base URL, without a trailing `/`.
    base: String,
    /// `owner/repo` (GitHub) or the project id (GitLab).
    project: String,
    /// The credential header and its value.
    credential: (HeaderName, Secret),
}

#[derive(Debug, Deserialize)]
struct GithubPull {
    state: String,
    merged_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GitlabMergeRequest {
    state: String,
}

impl Lookup {
    /// Reads the forge, project and token from `env`. With both `GITHUB_REPOSITORY` and
    /// `CI_PROJECT_ID` set, `prefer` (the CI the job runs on) decides, else GitHub.
    /// `options` are the registry client's (TLS, timeouts, insecure hosts).
    pub fn from_env(env: &EnvMap, prefer: Option<Forge>, options: ClientOptions) -> Self {
        let target = Self::target(env, prefer, &options);
        Self { target, options }
    }

    /// A look-up that has none, for `why`.
    pub fn unavailable(why: Unavailable) -> Self {
        Self { target: Err(why), options: ClientOptions::default() }
    }

    fn target(
        env: &EnvMap,
        prefer: Option<Forge>,
        options: &ClientOptions,
    ) -> Result<Target, Unavailable> {
        let non_empty = |name: &str| env.get(name).filter(|value| !value.is_empty()).cloned();
        let github = non_empty(env_vars::GITHUB_REPOSITORY);
        let gitlab = non_empty(env_vars::CI_PROJECT_ID);
        let (forge, project) = match (github, gitlab, prefer) {
            (Some(_), Some(project), Some(Forge::Gitlab)) | (None, Some(project), _) => {
                (Forge::Gitlab, project)
            }
            (Some(repository), _, _) => (Forge::Github, repository),
            (None, None, _) => return Err(Unavailable::NoProject),
        };
        let (base, credential) = match forge {
            Forge::Github => {
                let token = non_empty(env_vars::DOCKHAND_GITHUB_TOKEN)
                    .or_else(|| non_empty(env_vars::GITHUB_TOKEN))
                    .ok_or(Unavailable::NoToken(forge))?;
                let base = non_empty(env_vars::GITHUB_API_URL)
                    .unwrap_or_else(|| super::github::DEFAULT_API_URL.to_owned());
                let value = Secret::new(format!("Bearer {token}"));
                (base, (reqwest::header::AUTHORIZATION, value))
            }
            Forge::Gitlab => {
                let (name, token) = non_empty(env_vars::DOCKHAND_GITLAB_TOKEN)
                    .map(|token| ("private-token", token))
                    .or_else(|| non_empty(env_vars::CI_JOB_TOKEN).map(|token| ("job-token", token)))
                    .ok_or(Unavailable::NoToken(forge))?;
                let base = non_empty(env_vars::CI_API_V4_URL)
                    .unwrap_or_else(|| super::gitlab::DEFAULT_API_URL.to_owned());
                (base, (HeaderName::from_static(name), Secret::new(token)))
            }
        };
        let base = api_base(&base, &options.insecure)
            .map_err(|error| Unavailable::BadUrl(forge, error.to_string()))?;
        Ok(Target { forge, base, project, credential })
    }

    /// The forge asked, when there is one to ask.
    pub fn forge(&self) -> Option<Forge> {
        self.target.as_ref().ok().map(|target| target.forge)
    }

    /// The state of each of `numbers`, or why none can be asked for. Requests go one at a time
    /// (a cleanup sees few pull requests); each failure is that number's alone.
    pub async fn states(
        &self,
        numbers: &BTreeSet<u64>,
    ) -> Result<BTreeMap<u64, Fetched>, Unavailable> {
        let target = self.target.as_ref().map_err(Clone::clone)?;
        let mut headers = HeaderMap::new();
        let accept = match target.forge {
            Forge::Github => "application/vnd.github+json",
            Forge::Gitlab => "application/json",
        };
        headers.insert("accept", HeaderValue::from_static(accept));
        if target.forge == Forge::Github {
            headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
        }
        let rest = match Rest::new(&self.options, headers) {
            Ok(rest) => rest,
            Err(error) => {
                let failed = Fetched::Failed(error.to_string());
                return Ok(numbers.iter().map(|number| (*number, failed.clone())).collect());
            }
        };
        rest.set_credential(target.credential.0.clone(), target.credential.1.clone());
        let mut states = BTreeMap::new();
        let mut refused = None;
        for &number in numbers {
            let fetched = match &refused {
                Some(refusal) => Fetched::Failed(String::clone(refusal)),
                None => target.fetch(&rest, number).await,
            };
            if let Fetched::Failed(why) = &fetched
                && why.ends_with(JOB_TOKEN_REFUSED)
            {
                refused = Some(why.clone());
            }
            states.insert(number, fetched);
        }
        Ok(states)
    }
}

impl Target {
    async fn fetch(&self, rest: &Rest, number: u64) -> Fetched {
        let url = match self.forge {
            Forge::Github => format!("{}/repos/{}/pulls/{number}", self.base, self.project),
            Forge::Gitlab => format!(
                "{}/projects/{}/merge_requests/{number}",
                self.base,
                path_segment(&self.project)
            ),
        };
        let reply = match rest.send(Method::GET, &url, None).await {
            Ok(reply) => reply,
            Err(error) => return Fetched::Failed(error.to_string()),
        };
        if reply.status != StatusCode::OK {
            let message = reply.message(&["message", "error"]);
            let job_token = self.credential.0.as_str() == "job-token";
            let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&reply.status);
            let hint = if job_token && refused { JOB_TOKEN_REFUSED } else { "" };
            return Fetched::Failed(format!(
                "`{url}` answered {}: `{message}`{hint}",
                reply.status
            ));
        }
        let state = match self.forge {
            Forge::Github => reply.json::<GithubPull>().ok().and_then(|pull| {
                match (pull.state.as_str(), pull.merged_at.is_some()) {
                    ("open", _) => Some(State::Open),
                    ("closed", true) => Some(State::Merged),
                    ("closed", false) => Some(State::Closed),
                    _ => None,
                }
            }),
            Forge::Gitlab => {
                reply.json::<GitlabMergeRequest>().ok().and_then(|request| {
                    match request.state.as_str() {
                        // `locked`: still open, while GitLab merges it
                        "opened" | "locked" => Some(State::Open),
                        "closed" => Some(State::Closed),
                        "merged" => Some(State::Merged),
                        _ => None,
                    }
                })
            }
        };
        state.map_or_else(
            || Fetched::Failed(format!("`{url}` sent no known `state`")),
            Fetched::State,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    fn target(pairs: &[(&str, &str)], prefer: Option<Forge>) -> Result<Target, Unavailable> {
        Lookup::from_env(&env(pairs), prefer, ClientOptions::default()).target
    }

    #[test]
    fn the_forge_project_and_token_come_from_the_environment() {
        assert_eq!(target(&[], None).unwrap_err(), Unavailable::NoProject);
        assert_eq!(
            target(&[("GITHUB_REPOSITORY", "acme/app")], None).unwrap_err(),
            Unavailable::NoToken(Forge::Github)
        );
        let github =
            target(&[("GITHUB_REPOSITORY", "acme/app"), ("GITHUB_TOKEN", "t")], None).unwrap();
        assert_eq!(
            (github.forge, github.base.as_str(), github.project.as_str()),
            (Forge::Github, "https://api.github.com", "acme/app")
        );
        assert_eq!(github.credential.1.expose(), "Bearer t");
        let both = [
            ("GITHUB_REPOSITORY", "acme/app"),
            ("GITHUB_TOKEN", "t"),
            ("CI_PROJECT_ID", "7"),
            ("CI_JOB_TOKEN", "j"),
        ];
        assert_eq!(target(&both, None).unwrap().forge, Forge::Github);
        let gitlab = target(&both, Some(Forge::Gitlab)).unwrap();
        assert_eq!(
            (gitlab.forge, gitlab.base.as_str(), gitlab.project.as_str()),
            (Forge::Gitlab, "https://gitlab.com/api/v4", "7")
        );
        assert_eq!(gitlab.credential.0.as_str(), "job-token");
        let access = target(
            &[("CI_PROJECT_ID", "7"), ("CI_JOB_TOKEN", "j"), ("DOCKHAND_GITLAB_TOKEN", "a")],
            None,
        )
        .unwrap();
        assert_eq!(
            (access.credential.0.as_str(), access.credential.1.expose()),
            ("private-token", "a")
        );
        assert!(matches!(
            target(
                &[("CI_PROJECT_ID", "7"), ("CI_JOB_TOKEN", "j"), ("CI_API_V4_URL", "http://x")],
                None
            ),
            Err(Unavailable::BadUrl(Forge::Gitlab, _))
        ));
    }
}
