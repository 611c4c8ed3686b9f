//! Registry implementations: what each one is called, what it can do, and (as the client
//! grows) the trait every vendor file implements.
//!
//! Owns [`Implementation`], [`Capabilities`] and [`TagDelete`]. Quirks are data here, filled in
//! before any code relies on them; `registry detect --output json` prints exactly these values.
//! Vendor specifics (endpoints, native APIs) live in the vendor files, never here.

pub mod detect;
pub mod distribution;

use std::fmt;
use std::str::FromStr;

use crate::naming::Mode;
use crate::reference::RepoAddress;

/// A registry implementation dockhand knows the quirks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Implementation {
    /// CNCF distribution, zot, and anything unrecognised.
    Default,
    Ecr,
    Acr,
    DockerHub,
    Gcr,
    Github,
    Gitlab,
    Harbor,
    Quay,
    Artifactory,
    Nexus,
}

impl Implementation {
    /// Every implementation, in the order the SPEC lists them.
    pub const ALL: [Self; 11] = [
        Self::Default,
        Self::Ecr,
        Self::Acr,
        Self::DockerHub,
        Self::Gcr,
        Self::Github,
        Self::Gitlab,
        Self::Harbor,
        Self::Quay,
        Self::Artifactory,
        Self::Nexus,
    ];

    /// The name used by `--repo-implementation` and in output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Ecr => "ecr",
            Self::Acr => "acr",
            Self::DockerHub => "dockerhub",
            Self::Gcr => "gcr",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Harbor => "harbor",
            Self::Quay => "quay",
            Self::Artifactory => "artifactory",
            Self::Nexus => "nexus",
        }
    }

    /// What this implementation can do for the images repo `repo`. Only Docker Hub and quay.io
    /// depend on the address: without nested repositories, an address naming only an account
    /// gets one repository per image (multirepo), one naming `account/repository` shares it
    /// (monorepo).
    pub fn capabilities(self, repo: &RepoAddress) -> Capabilities {
        let flat_default_mode = if repo.depth() >= 2 { Mode::Monorepo } else { Mode::Multirepo };
        let (nested_repositories, create_repository_before_push, tag_delete, default_mode) =
            match self {
                Self::Default | Self::Gcr | Self::Gitlab => {
                    (true, false, TagDelete::Distribution, Mode::Multirepo)
                }
                Self::Ecr => (true, true, TagDelete::NativeApi, Mode::Multirepo),
                Self::Acr | Self::Github | Self::Harbor | Self::Artifactory | Self::Nexus => {
                    (true, false, TagDelete::NativeApi, Mode::Multirepo)
                }
                Self::DockerHub => (false, false, TagDelete::NativeApi, flat_default_mode),
                Self::Quay => (
                    // self-hosted Quay may allow nesting; quay.io does not
                    repo.registry.as_str() != "quay.io",
                    false,
                    TagDelete::NativeApi,
                    if repo.registry.as_str() == "quay.io" {
                        flat_default_mode
                    } else {
                        Mode::Multirepo
                    },
                ),
            };
        Capabilities {
            nested_repositories,
            create_repository_before_push,
            tag_delete,
            default_mode,
            concurrency: self.default_concurrency(),
        }
    }

    /// Requests in flight at once against this registry, from the vendors' published or
    /// observed limits (`notes/registries.md` §4).
    fn default_concurrency(self) -> usize {
        match self {
            Self::DockerHub => 2,
            Self::Github
            | Self::Harbor
            | Self::Quay
            | Self::Artifactory
            | Self::Nexus
            | Self::Gcr => 3,
            Self::Acr | Self::Gitlab => 8,
            Self::Default | Self::Ecr => 16,
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An implementation name that dockhand does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown registry implementation `{0}`; expected `auto` or one of: default, ecr, acr, dockerhub, gcr, github, gitlab, harbor, quay, artifactory, nexus"
)]
pub struct UnknownImplementation(pub String);

impl FromStr for Implementation {
    type Err = UnknownImplementation;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|implementation| implementation.name() == input)
            .ok_or_else(|| UnknownImplementation(input.to_owned()))
    }
}

/// How a single tag is removed without touching other tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagDelete {
    /// Through the registry API: OCI tag DELETE, else a throw-away manifest and its digest.
    Distribution,
    /// Through the vendor's own API (the registry API lacks a safe tag delete).
    NativeApi,
    /// The registry refuses deletes (e.g. distribution with `storage.delete.enabled: false`).
    Unsupported,
}

impl TagDelete {
    pub fn name(self) -> &'static str {
        match self {
            Self::Distribution => "distribution",
            Self::NativeApi => "native-api",
            Self::Unsupported => "unsupported",
        }
    }
}

/// What an implementation can do, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Repositories may have more than two path components below the registry.
    pub nested_repositories: bool,
    /// A repository must be created (through the native API) before the first push.
    pub create_repository_before_push: bool,
    /// How tags are deleted.
    pub tag_delete: TagDelete,
    /// The naming mode `--repo-mode auto` picks for this address.
    pub default_mode: Mode,
    /// Requests in flight at once.
    pub concurrency: usize,
}
