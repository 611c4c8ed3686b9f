//! CI environments: what the job is building and with which registry credentials.
//!
//! Owns [`CiContext`] and [`detect`], which turns an [`EnvMap`] into a context for GitHub
//! Actions, GitLab CI or a generic runner. Each provider's translation lives in its own file;
//! `export.rs` renders the variables `ci-env` prints, per shell. Never reads the process
//! environment and never writes files.

pub mod export;
pub mod generic;
pub mod github;
pub mod gitlab;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{ReferenceError, RegistryHost, RepoAddress};
use crate::registry::Implementation;
use crate::registry::distribution::Credential;
use crate::secret::Secret;

/// Which CI system the job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Github,
    Gitlab,
    Generic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the user asked `ci-env` to read: one provider, or whichever is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderChoice {
    Auto,
    Named(Provider),
}

impl FromStr for ProviderChoice {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "auto" => Ok(Self::Auto),
            "github" => Ok(Self::Named(Provider::Github)),
            "gitlab" => Ok(Self::Named(Provider::Gitlab)),
            "generic" => Ok(Self::Named(Provider::Generic)),
            other => Err(format!("unknown CI `{other}`; expected auto, github, gitlab or generic")),
        }
    }
}

/// `branch` or `tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    Branch,
    Tag,
}

impl RefType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Tag => "tag",
        }
    }
}

impl FromStr for RefType {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "branch" => Ok(Self::Branch),
            "tag" => Ok(Self::Tag),
            other => Err(format!("unknown ref type `{other}`; expected branch or tag")),
        }
    }
}

/// Registry credentials the job brings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLogin {
    pub registry: RegistryHost,
    pub username: String,
    pub password: Secret,
}

impl JobLogin {
    /// A login whose username came from the user (`origin`: the flag or variable that gave
    /// it). A `:` in it is refused: Basic auth joins `user:password`, so the registry would
    /// split it elsewhere.
    pub fn from_user(
        registry: RegistryHost,
        username: String,
        password: Secret,
        origin: &'static str,
    ) -> Result<Self, CiError> {
        if username.contains(':') {
            return Err(CiError::ColonInUsername { origin });
        }
        Ok(Self { registry, username, password })
    }

    /// The login as the registry client sends it.
    pub fn credential(&self) -> Credential {
        Credential::Basic { username: self.username.clone(), password: self.password.clone() }
    }
}

/// Everything a CI job tells dockhand about itself. Every field is optional except the
/// provider: a generic runner may know nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiContext {
    pub provider: Provider,
    /// The job's registry login, if the CI provides one.
    pub credentials: Option<JobLogin>,
    /// The images repo the CI suggests (`ghcr.io/owner/repo`, `$CI_REGISTRY_IMAGE`).
    pub repo: Option<RepoAddress>,
    /// The implementation the CI knows for certain (GitLab's own registry).
    pub implementation: Option<Implementation>,
    /// Full commit SHA being built (for pull requests, the head commit when known).
    pub sha: Option<String>,
    pub ref_name: Option<String>,
    pub ref_type: Option<RefType>,
    /// The git tag, when building one.
    pub tag: Option<String>,
    pub pr_number: Option<String>,
    pub pr_head_sha: Option<String>,
    pub default_branch: Option<String>,
    pub job_id: Option<String>,
    pub pipeline_id: Option<String>,
    /// When the commit `sha` was made (its committer date): the default `SOURCE_DATE_EPOCH`
    /// of builds.
    pub commit_time: Option<jiff::Timestamp>,
}

impl CiContext {
    /// A context that knows only its provider.
    pub fn empty(provider: Provider) -> Self {
        Self {
            provider,
            credentials: None,
            repo: None,
            implementation: None,
            sha: None,
            ref_name: None,
            ref_type: None,
            tag: None,
            pr_number: None,
            pr_head_sha: None,
            default_branch: None,
            job_id: None,
            pipeline_id: None,
            commit_time: None,
        }
    }
}

/// Why the CI environment could not be read. Every variant names the variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    #[error("Invalid `{variable}`")]
    InvalidReference {
        variable: &'static str,
        #[source]
        source: ReferenceError,
    },
    #[error("`{variable}` must be an `https://` or `http://` URL, not `{value}`")]
    InvalidUrl { variable: &'static str, value: String },
    #[error("`{variable}` must be `branch` or `tag`, not `{value}`")]
    InvalidRefType { variable: &'static str, value: String },
    #[error("`{missing}` is not set, but `{present}` is")]
    IncompleteCredentials { missing: &'static str, present: &'static str },
    #[error(
        "Registry credentials are set, but neither `{registry}` nor `{repo}` names the registry"
    )]
    MissingRegistry { registry: &'static str, repo: &'static str },
    #[error("The username in `{origin}` contains `:`, which no registry login can hold")]
    ColonInUsername { origin: &'static str },
}

impl Classify for CiError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::InvalidReference { variable, .. } | Self::InvalidUrl { variable, .. } => {
                format!("fix or unset `{variable}`")
            }
            Self::InvalidRefType { variable, .. } => {
                format!("set `{variable}` to `branch` or `tag`")
            }
            Self::IncompleteCredentials { missing, present } => {
                format!("set both `{present}` and `{missing}`, or neither")
            }
            Self::MissingRegistry { registry, .. } => {
                format!("set `{registry}` to the registry host the credentials are for")
            }
            Self::ColonInUsername { origin } => format!(
                "give the username alone in `{origin}` (Basic auth sends `user:password`, so a `:` would move the rest into the password)"
            ),
        })
    }
}

/// Reads the CI context for `choice`. With [`ProviderChoice::Auto`] the provider is
/// [`detect_provider`]'s. `workdir` is the checkout the generic provider asks git about when
/// the commit and ref are not given in the environment.
pub fn detect(choice: ProviderChoice, env: &EnvMap, workdir: &Path) -> Result<CiContext, CiError> {
    let provider = match choice {
        ProviderChoice::Auto => detect_provider(env),
        ProviderChoice::Named(provider) => provider,
    };
    match provider {
        Provider::Github => github::context(env),
        Provider::Gitlab => gitlab::context(env),
        Provider::Generic => generic::context(env, workdir),
    }
}

impl CiContext {
    /// Fills [`CiContext::commit_time`] from the checkout in `workdir` when the CI did not
    /// give it and the checkout has the commit. Only builds need it (`SOURCE_DATE_EPOCH`), so
    /// only they pay for running git.
    pub fn find_commit_time(&mut self, workdir: &Path) {
        if self.commit_time.is_none()
            && let Some(sha) =
                self.sha.as_deref().filter(|sha| sha.chars().all(|c| c.is_ascii_hexdigit()))
        {
            self.commit_time = generic::commit_time(workdir, sha);
        }
    }
}

/// Parses the variable `name`, when set and not empty, as a registry host.
fn registry_var(env: &EnvMap, name: &'static str) -> Result<Option<RegistryHost>, CiError> {
    non_empty(env, name)
        .map(|value| {
            value
                .parse::<RegistryHost>()
                .map_err(|source| CiError::InvalidReference { variable: name, source })
        })
        .transpose()
}

/// Parses the variable `name`, when set and not empty, as an images repo.
fn repo_var(env: &EnvMap, name: &'static str) -> Result<Option<RepoAddress>, CiError> {
    non_empty(env, name)
        .map(|value| {
            value
                .parse::<RepoAddress>()
                .map_err(|source| CiError::InvalidReference { variable: name, source })
        })
        .transpose()
}

/// A variable that is set and not empty.
pub fn non_empty(env: &EnvMap, name: &str) -> Option<String> {
    env.get(name).filter(|value| !value.is_empty()).cloned()
}

/// The provider the environment belongs to: GitHub Actions, GitLab CI, else generic.
pub fn detect_provider(env: &EnvMap) -> Provider {
    let set = |name: &str| env.get(name).is_some_and(|value| value == "true");
    if set(env_vars::GITHUB_ACTIONS) {
        Provider::Github
    } else if set(env_vars::GITLAB_CI) {
        Provider::Gitlab
    } else {
        Provider::Generic
    }
}
