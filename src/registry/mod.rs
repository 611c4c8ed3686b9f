//! Registry implementations: what each one is called, what it can do, and the seam every
//! vendor file implements.
//!
//! Owns [`Implementation`], [`Capabilities`] and [`TagDelete`] (quirks as data:
//! `registry detect --output json` prints exactly these values), the [`Vendor`] trait, the
//! [`Registry`] that commands hold, and [`connect`], which builds it for an implementation.
//! Reads go through the distribution client every vendor speaks ([`Registry::client`]);
//! writes and vendor extras (creating a repository, push times, the delete probe, removing
//! one tag, deleting a manifest) go through [`Vendor`]. Vendor specifics (endpoints, native
//! APIs) live in the vendor files, never here; the registry facts they rely on are in
//! `docs/registries.md`.

pub mod acr;
pub mod artifactory;
pub mod default;
pub mod detect;
pub mod distribution;
pub mod docker_hub;
pub mod ecr;
pub mod gcr;
pub mod github;
pub mod gitlab;
pub mod harbor;
pub mod nexus;
pub mod pull_requests;
pub mod quay;
mod rest;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;

use crate::env_vars::EnvMap;
use crate::exit::{Classify, ExitStatus};
use crate::naming::Mode;
use crate::project::RepositoriesSection;
use crate::reference::{Digest, RegistryHost, RepoAddress, Tag};
use crate::secret::Secret;
use distribution::{Client, ClientOptions, DeleteSupport, DistributionError};

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
            manifest_get_is_pull: matches!(self, Self::DockerHub | Self::Github | Self::Harbor),
        }
    }

    /// Requests in flight at once against this registry, from the vendors' published or
    /// observed limits (docs/registries.md §4).
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
}

impl TagDelete {
    pub fn name(self) -> &'static str {
        match self {
            Self::Distribution => "distribution",
            Self::NativeApi => "native-api",
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
    /// A manifest `GET` counts as a pull (Docker Hub's rate limit), a download (GHCR's
    /// statistics) or is recorded (Harbor's pull time): inventories resolve tags with `HEAD`
    /// and read each distinct digest once.
    pub manifest_get_is_pull: bool,
}

/// What removing one tag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untagged {
    /// The tag is gone and nothing else changed.
    Removed,
    /// The tag was not there (an earlier run, someone else).
    AlreadyGone,
    /// The tag now points at this unique throw-away manifest; deleting that digest removes the
    /// tag and nothing else.
    Tombstoned(Digest),
}

/// What deleting a manifest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    AlreadyGone,
}

/// How a vendor whose API deletes tags only deletes a manifest: each of `tags` (those on it)
/// removed in turn by `delete_tag`, stopping at the first failure. [`Removal::Removed`] when
/// any of them went, else [`Removal::AlreadyGone`].
async fn remove_each_tag<T, E>(
    tags: Vec<T>,
    mut delete_tag: impl AsyncFnMut(T) -> Result<Removal, E>,
) -> Result<Removal, E> {
    let mut removal = Removal::AlreadyGone;
    for tag in tags {
        if delete_tag(tag).await? == Removal::Removed {
            removal = Removal::Removed;
        }
    }
    Ok(removal)
}

/// The registry API's manifest `DELETE` (which takes every tag on the digest), as the seam
/// reports it: a 404 is [`Removal::AlreadyGone`].
async fn delete_by_digest(
    client: &Client,
    repository: &RepoAddress,
    digest: &Digest,
) -> Result<Removal, RegistryError> {
    match client.delete_manifest(repository, digest).await {
        Ok(()) => Ok(Removal::Removed),
        Err(error) if error.is_not_found() => Ok(Removal::AlreadyGone),
        Err(source) => Err(RegistryError::Distribution(source)),
    }
}

/// A write or vendor call through the seam that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Distribution(#[from] DistributionError),
    /// The registry's tag delete failed (not refused as unsupported: that falls back).
    #[error(transparent)]
    TagDelete(DistributionError),
    #[error("Pointing the tag at a throw-away manifest (to delete only that tag) failed")]
    Tombstone(#[source] DistributionError),
    #[error(transparent)]
    Ecr(#[from] ecr::EcrError),
    #[error(transparent)]
    Acr(#[from] acr::AcrError),
    #[error(transparent)]
    Github(#[from] github::GithubError),
    #[error(transparent)]
    DockerHub(#[from] docker_hub::DockerHubError),
    #[error(transparent)]
    Artifactory(#[from] artifactory::ArtifactoryError),
    #[error(transparent)]
    Nexus(#[from] nexus::NexusError),
    #[error(transparent)]
    Gitlab(#[from] gitlab::GitlabError),
    #[error(transparent)]
    Harbor(#[from] harbor::HarborError),
    #[error(transparent)]
    Quay(#[from] quay::QuayError),
    #[error(transparent)]
    Google(#[from] gcr::GoogleError),
}

impl RegistryError {
    fn classified(&self) -> &dyn Classify {
        match self {
            Self::Distribution(source) | Self::TagDelete(source) | Self::Tombstone(source) => {
                source
            }
            Self::Ecr(source) => source,
            Self::Acr(source) => source,
            Self::Github(source) => source,
            Self::DockerHub(source) => source,
            Self::Artifactory(source) => source,
            Self::Nexus(source) => source,
            Self::Gitlab(source) => source,
            Self::Harbor(source) => source,
            Self::Quay(source) => source,
            Self::Google(source) => source,
        }
    }
}

impl Classify for RegistryError {
    fn exit_status(&self) -> ExitStatus {
        self.classified().exit_status()
    }

    fn hint(&self) -> Option<String> {
        self.classified().hint()
    }
}

/// The interface every registry implementation provides. Reads stay on [`Vendor::client`];
/// everything that changes the registry, and what only a vendor's API knows, comes here.
// one current-thread runtime runs every command, so the futures need not be `Send`
#[allow(async_fn_in_trait)]
pub trait Vendor {
    /// The distribution client for reads (tags, manifests, blobs) and pushes.
    fn client(&self) -> &Client;

    /// What this registry can do.
    fn capabilities(&self) -> &Capabilities;

    /// Makes sure `repository` can be pushed to (creating it where the registry requires).
    /// Most registries create a repository on its first push: nothing to do.
    async fn ensure_repository(&self, _repository: &RepoAddress) -> Result<(), RegistryError> {
        Ok(())
    }

    /// When each tag of `repository` was last pushed, where the vendor records it; tags it
    /// does not know are absent. The distribution API records nothing: an empty map.
    async fn tag_times(
        &self,
        _repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        Ok(BTreeMap::new())
    }

    /// The tags of `repository` the registry refuses to delete (immutability rules, locks),
    /// each with the reason in words; the plan keeps them. The distribution API locks nothing.
    async fn locked_tags(
        &self,
        _repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, String>, RegistryError> {
        Ok(BTreeMap::new())
    }

    /// The manifests of `repository` no tag points to, where the vendor's API lists them (the
    /// distribution API cannot: an empty list).
    async fn untagged_manifests(
        &self,
        _repository: &RepoAddress,
    ) -> Result<Vec<Digest>, RegistryError> {
        Ok(Vec::new())
    }

    /// Whether deletes are enabled in `repository`, found out harmlessly.
    async fn probe_deletes(&self, repository: &RepoAddress)
    -> Result<DeleteSupport, RegistryError>;

    /// Removes `tag` alone: no other tag, and no manifest another tag needs, goes with it.
    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError>;

    /// Deletes the manifest `digest`, and with it every tag still on it.
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError>;

    /// The most tags (or digests) one [`Vendor::untag_many`] (or [`Vendor::delete_manifests`])
    /// call takes: above 1 where the vendor's API deletes in batches.
    fn batch_limit(&self) -> usize {
        1
    }

    /// [`Vendor::untag`] for each of at most [`Vendor::batch_limit`] tags, one result per tag
    /// in the same order. Vendors that batch override it; the default removes them one by one.
    async fn untag_many(
        &self,
        repository: &RepoAddress,
        tags: &[Tag],
    ) -> Vec<Result<Untagged, RegistryError>> {
        let mut results = Vec::with_capacity(tags.len());
        for tag in tags {
            results.push(self.untag(repository, tag).await);
        }
        results
    }

    /// [`Vendor::delete_manifest`] for each of at most [`Vendor::batch_limit`] digests, one
    /// result per digest in the same order.
    async fn delete_manifests(
        &self,
        repository: &RepoAddress,
        digests: &[Digest],
    ) -> Vec<Result<Removal, RegistryError>> {
        let mut results = Vec::with_capacity(digests.len());
        for digest in digests {
            results.push(self.delete_manifest(repository, digest).await);
        }
        results
    }
}

/// A connected registry: one variant per vendor file.
#[derive(Debug)]
pub enum Registry {
    Distribution(default::Distribution),
    Ecr(Box<ecr::Ecr>),
    Acr(Box<acr::Acr>),
    Github(Box<github::Github>),
    DockerHub(Box<docker_hub::DockerHub>),
    Artifactory(Box<artifactory::Artifactory>),
    Nexus(Box<nexus::Nexus>),
    Gitlab(Box<gitlab::Gitlab>),
    Harbor(Box<harbor::Harbor>),
    Quay(Box<quay::Quay>),
    Google(Box<gcr::Google>),
}

/// Builds the [`Registry`] for `implementation` at `repo`: the distribution client from
/// `options` (the credentials the docker config or the CI gave), plus whatever credentials
/// the vendor's own API needs, found in `env` (tokens, API base URL overrides) and minted
/// here where the vendor mints them. `repositories` says how repositories created before a
/// push are set up.
pub async fn connect(
    implementation: Implementation,
    repo: &RepoAddress,
    options: ClientOptions,
    env: &EnvMap,
    repositories: &RepositoriesSection,
) -> Result<Registry, RegistryError> {
    let capabilities = implementation.capabilities(repo);
    match implementation {
        Implementation::Ecr => {
            let vendor = ecr::Ecr::connect(repo, options, env, capabilities, repositories).await?;
            Ok(Registry::Ecr(Box::new(vendor)))
        }
        Implementation::Acr => {
            let vendor = acr::Acr::connect(repo, options, env, capabilities).await?;
            Ok(Registry::Acr(Box::new(vendor)))
        }
        Implementation::Github => {
            let github = github::Github::connect(repo, options, capabilities, env)?;
            Ok(Registry::Github(Box::new(github)))
        }
        Implementation::DockerHub => {
            let hub = docker_hub::DockerHub::connect(repo, options, capabilities, env)?;
            Ok(Registry::DockerHub(Box::new(hub)))
        }
        Implementation::Artifactory => {
            let vendor = artifactory::Artifactory::connect(repo, options, capabilities, env)?;
            Ok(Registry::Artifactory(Box::new(vendor)))
        }
        Implementation::Nexus => {
            let vendor = nexus::Nexus::connect(repo, options, capabilities, env)?;
            Ok(Registry::Nexus(Box::new(vendor)))
        }
        Implementation::Gitlab => {
            let gitlab = gitlab::Gitlab::connect(options, capabilities, env)?;
            Ok(Registry::Gitlab(Box::new(gitlab)))
        }
        Implementation::Harbor => {
            let harbor = harbor::Harbor::connect(repo, options, capabilities, env)?;
            Ok(Registry::Harbor(Box::new(harbor)))
        }
        Implementation::Quay => {
            let quay = quay::Quay::connect(repo, options, capabilities, env)?;
            Ok(Registry::Quay(Box::new(quay)))
        }
        Implementation::Gcr => {
            let google = gcr::Google::connect(repo, options, env, capabilities).await?;
            Ok(Registry::Google(Box::new(google)))
        }
        Implementation::Default => {
            let client = Client::new(options)?;
            Ok(Registry::Distribution(default::Distribution::new(client, capabilities)))
        }
    }
}

/// A registry login a vendor mints from its own credentials (not from the docker config).
#[derive(Debug, Clone)]
pub struct MintedLogin {
    pub registry: RegistryHost,
    pub username: String,
    pub password: Secret,
}

/// The login the vendor of `implementation` mints for `registry` from its own credentials;
/// `None` where the vendor mints none (a password is then needed).
pub async fn mint_login(
    registry: &RegistryHost,
    implementation: Implementation,
    env: &EnvMap,
    insecure: &[RegistryHost],
) -> Result<Option<MintedLogin>, RegistryError> {
    let registries = std::slice::from_ref(registry);
    match implementation {
        Implementation::Ecr => Ok(ecr::job_logins(registries, env, insecure).await?.pop()),
        Implementation::Gcr => Ok(gcr::job_logins(registries, env, insecure).await?.pop()),
        Implementation::Acr => Ok(acr::job_logins(registries, env, insecure).await?.pop()),
        _ => Ok(None),
    }
}

/// The registries a CI job uses whose login a vendor mints from its own credentials, each
/// with its implementation: the images repo's host (`repo`) where its vendor has credentials
/// in `env` (ECR always: the AWS chain; Google with `GOOGLE_APPLICATION_CREDENTIALS`; ACR with
/// Entra ID credentials), and the
/// extra hosts `env` names (`DOCKHAND_ECR_REGISTRIES`). Empty where the docker config or the
/// CI provides the logins; known without any request, so a job with nothing to mint starts
/// nothing.
pub fn logins_to_mint(
    repo: Option<(&RegistryHost, Implementation)>,
    env: &EnvMap,
) -> Result<Vec<(RegistryHost, Implementation)>, RegistryError> {
    let mut hosts: Vec<(RegistryHost, Implementation)> =
        ecr::extra_registries(env)?.into_iter().map(|host| (host, Implementation::Ecr)).collect();
    let mints = |implementation| match implementation {
        Implementation::Ecr => true,
        Implementation::Gcr => gcr::has_credentials(env),
        Implementation::Acr => acr::has_credentials(env),
        _ => false,
    };
    if let Some((host, implementation)) = repo
        && mints(implementation)
        && !hosts.iter().any(|(known, _)| known == host)
    {
        hosts.insert(0, (host.clone(), implementation));
    }
    Ok(hosts)
}

/// Mints the logins for `hosts` (from [`logins_to_mint`]; callers skip an empty list, which
/// needs no runtime), each vendor's in one go.
pub async fn mint_logins(
    hosts: &[(RegistryHost, Implementation)],
    env: &EnvMap,
    insecure: &[RegistryHost],
) -> Result<Vec<MintedLogin>, RegistryError> {
    let of = |wanted: Implementation| -> Vec<RegistryHost> {
        hosts
            .iter()
            .filter(|(_, implementation)| *implementation == wanted)
            .map(|(host, _)| host.clone())
            .collect()
    };
    let mut logins = Vec::new();
    let ecr_hosts = of(Implementation::Ecr);
    if !ecr_hosts.is_empty() {
        logins.extend(ecr::job_logins(&ecr_hosts, env, insecure).await?);
    }
    logins.extend(gcr::job_logins(&of(Implementation::Gcr), env, insecure).await?);
    logins.extend(acr::job_logins(&of(Implementation::Acr), env, insecure).await?);
    Ok(logins)
}

/// Calls `$call` on the vendor inside `$registry`: one arm per variant of [`Registry`].
macro_rules! on_vendor {
    ($registry:expr, $vendor:ident => $call:expr) => {
        match $registry {
            Registry::Distribution($vendor) => $call,
            Registry::Ecr($vendor) => $call,
            Registry::Acr($vendor) => $call,
            Registry::Github($vendor) => $call,
            Registry::DockerHub($vendor) => $call,
            Registry::Artifactory($vendor) => $call,
            Registry::Nexus($vendor) => $call,
            Registry::Gitlab($vendor) => $call,
            Registry::Harbor($vendor) => $call,
            Registry::Quay($vendor) => $call,
            Registry::Google($vendor) => $call,
        }
    };
}

impl Registry {
    pub fn client(&self) -> &Client {
        on_vendor!(self, vendor => vendor.client())
    }

    pub fn capabilities(&self) -> &Capabilities {
        on_vendor!(self, vendor => vendor.capabilities())
    }

    pub async fn ensure_repository(&self, repository: &RepoAddress) -> Result<(), RegistryError> {
        on_vendor!(self, vendor => vendor.ensure_repository(repository).await)
    }

    pub async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        on_vendor!(self, vendor => vendor.tag_times(repository).await)
    }

    pub async fn locked_tags(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, String>, RegistryError> {
        on_vendor!(self, vendor => vendor.locked_tags(repository).await)
    }

    pub async fn untagged_manifests(
        &self,
        repository: &RepoAddress,
    ) -> Result<Vec<Digest>, RegistryError> {
        on_vendor!(self, vendor => vendor.untagged_manifests(repository).await)
    }

    pub async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        on_vendor!(self, vendor => vendor.probe_deletes(repository).await)
    }

    pub async fn untag(
        &self,
        repository: &RepoAddress,
        tag: &Tag,
    ) -> Result<Untagged, RegistryError> {
        on_vendor!(self, vendor => vendor.untag(repository, tag).await)
    }

    pub async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        on_vendor!(self, vendor => vendor.delete_manifest(repository, digest).await)
    }

    pub fn batch_limit(&self) -> usize {
        on_vendor!(self, vendor => vendor.batch_limit().max(1))
    }

    pub async fn untag_many(
        &self,
        repository: &RepoAddress,
        tags: &[Tag],
    ) -> Vec<Result<Untagged, RegistryError>> {
        on_vendor!(self, vendor => vendor.untag_many(repository, tags).await)
    }

    pub async fn delete_manifests(
        &self,
        repository: &RepoAddress,
        digests: &[Digest],
    ) -> Vec<Result<Removal, RegistryError>> {
        on_vendor!(self, vendor => vendor.delete_manifests(repository, digests).await)
    }
}
