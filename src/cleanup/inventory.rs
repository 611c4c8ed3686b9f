//! What a cleanup plans from, and reading it from a registry: per repository, its tags, the
//! digests they resolve to, and the manifests behind them (index children, referrers, ages).
//!
//! Owns the inventory's types and [`read`], which fills one [`RepositoryInventory`] through the
//! registry's distribution client: the tag list; each tag's digest and manifest, by one `GET` per tag, or
//! (where a GET counts as a pull, [`Resolve::Head`]) a `HEAD` per tag and one `GET` per
//! distinct digest; index children; the image config for `created`; and referrers — from the
//! `sha256-<hex>` tag schema that is already in the tag list, and from the referrers API only
//! when a probe shows the registry has one; last, the push time of each tag where the registry
//! records one ([`Registry::tag_times`]) and the tags it refuses to delete
//! ([`Registry::locked_tags`]); untagged manifests where the vendor lists them
//! ([`Registry::untagged_manifests`]) are read like any other. Requests run concurrently, at most
//! [`ReadOptions::concurrency`] at once. Any failed read marks the repository incomplete
//! (`complete: false`) and is kept in [`RepositoryRead::problems`], so the planner deletes nothing
//! there and the command can say why. Decides nothing about what to delete.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use futures_util::stream::{FuturesUnordered, StreamExt};
use jiff::Timestamp;

use crate::cleanup::facts_cache::{CachedConfig, CachedManifest, FactsCache, ReferrersProbe};
use crate::naming;
use crate::reference::{Digest, RepoAddress, Tag, referrers_subject};
use crate::registry::distribution::manifest::{
    self, ImageConfig, Manifest, ManifestContent, ManifestHead,
};
use crate::registry::distribution::{
    Client, DistributionError, ManifestRef, Operation, Referrers, TOMBSTONE_ANNOTATION,
};
use crate::registry::{Capabilities, Registry, RegistryError};

/// Every repository in scope of one cleanup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub repositories: Vec<RepositoryInventory>,
}

/// One repository's tags and manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInventory {
    pub address: RepoAddress,
    /// `true` if and only if every read for this repository succeeded: the tag list (all
    /// pages), each tag's digest, and every manifest that had to be expanded (indexes,
    /// referrers). When `false`, the planner keeps everything in the repository.
    pub complete: bool,
    /// Every tag in scope, each once.
    pub tags: Vec<TagEntry>,
    /// Every manifest read: the digest of each tag (required; a tagged digest missing here
    /// counts as an incomplete inventory), each index child and referrer found, and untagged
    /// manifests the registry lists (those are here without any tag pointing to them).
    pub manifests: BTreeMap<Digest, ManifestEntry>,
    /// Tags of the repository that this cleanup does not decide (in monorepo mode, tags of no
    /// image of the project), with their digests. They are never deleted nor listed in a plan,
    /// and everything they reach stays. Their digests must be in `manifests` like any tag's.
    pub foreign_tags: BTreeMap<Tag, Digest>,
}

/// One tag and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    /// The tag as stored in the registry (in monorepo mode it carries the image prefix).
    pub tag: Tag,
    /// The image name the tag belongs to, from `naming`'s inverse (the repository below the
    /// images repo in multirepo mode, the tag's `IMAGE-` prefix in monorepo mode).
    pub image: String,
    /// The tag as the image was published under it: equal to `tag` in multirepo mode, the part
    /// after `IMAGE-` in monorepo mode. `keep_tags` and release detection match this or `tag`.
    pub image_tag: String,
    pub digest: Digest,
    /// When this tag was last pushed, where a native API records it per tag (Docker Hub's
    /// `tag_last_pushed`, Harbor's `push_time`); `None` otherwise. It takes precedence over
    /// the manifest's `created`.
    pub pushed: Option<Timestamp>,
    /// Why the registry refuses to delete this tag (Harbor's tag immutability), where it says
    /// so ([`Registry::locked_tags`]); a locked tag is always kept.
    pub locked: Option<String>,
}

/// One manifest in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// The manifests an image index lists (empty for an image manifest).
    pub children: Vec<Digest>,
    /// The manifest this one refers to (OCI 1.1 `subject`): set for signatures, SBOMs and
    /// attestations.
    pub subject: Option<Digest>,
    /// When the manifest was pushed or its image built; `None` when unknown.
    pub created: Option<Timestamp>,
    /// Where `created` came from.
    pub created_source: TimeSource,
    /// `true` if and only if this is a throw-away manifest dockhand pushed to delete a single
    /// tag (annotation `dev.dockhand.tombstone`): a tag still on it is left over from an
    /// interrupted cleanup.
    pub tombstone: bool,
    /// The git labels of its image config; an index has those of its first child that has a
    /// revision.
    pub source: SourceLabels,
}

/// `org.opencontainers.image.ref.name` as an image label: the branch or tag an image was built
/// for, as earlier versions of `build` wrote it (the image spec reserves the key for layout index
/// entries, so builds no longer set it). Still read as evidence for images that carry it.
const LABEL_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The OCI labels of an image config that tie it to git.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLabels {
    /// `org.opencontainers.image.revision`: the commit it was built from (written by `build`).
    pub revision: Option<String>,
    /// [`LABEL_REF_NAME`]: the branch or tag it was built for, where an image has it.
    pub ref_name: Option<String>,
}

impl SourceLabels {
    /// The git labels in an image config blob; none when it is no JSON or has none. Read here,
    /// beside the blob's `created`, so that the config is fetched once.
    pub fn parse(config: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Blob {
            #[serde(default)]
            config: Option<Inner>,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            #[serde(default, rename = "Labels")]
            labels: Option<BTreeMap<String, serde_json::Value>>,
        }
        let labels = serde_json::from_slice::<Blob>(config)
            .ok()
            .and_then(|blob| blob.config?.labels)
            .unwrap_or_default();
        let label = |key: &str| {
            labels
                .get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .filter(|value| !value.is_empty())
        };
        Self { revision: label(crate::builder::LABEL_REVISION), ref_name: label(LABEL_REF_NAME) }
    }
}

impl ManifestEntry {
    /// The manifest's age reference point and its source, if both are known.
    pub fn created_at(&self) -> Option<(Timestamp, TimeSource)> {
        match (self.created, self.created_source) {
            (Some(_), TimeSource::Unknown) | (None, _) => None,
            (Some(at), source) => Some((at, source)),
        }
    }
}

/// Where an age came from, so every plan reason can say what it relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// A push time recorded by the registry's native API (per tag or per image).
    TagPushed,
    /// The `created` field of the image's config blob.
    ImageConfigCreated,
    /// Nothing says how old it is; the planner never deletes on an unknown age.
    Unknown,
}

impl TimeSource {
    /// The words a reason uses before the age: "pushed", "image config created".
    pub fn describe(self) -> &'static str {
        match self {
            Self::TagPushed => "pushed",
            Self::ImageConfigCreated => "image config created",
            Self::Unknown => "age unknown",
        }
    }
}

/// The media type of a Docker image config.
const DOCKER_IMAGE_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Which tags of a repository a cleanup decides, and the image each belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Multirepo: the repository holds one image, and every tag in it is that image's.
    Image(String),
    /// Monorepo: the repository holds these images, each tag stored as `IMAGE-TAG`. A tag of no
    /// image is foreign; a referrers-schema tag (`sha256-<hex>[.sig]`) belongs to the image of
    /// the tags on its subject, and is foreign when no tag in scope is on its subject.
    Shared(Vec<String>),
}

/// One repository's inventory and what went wrong reading it.
#[derive(Debug)]
pub struct RepositoryRead {
    pub inventory: RepositoryInventory,
    /// Every read that failed; non-empty if and only if `inventory.complete` is `false`.
    pub problems: Vec<RegistryError>,
    /// `true` if and only if the registry does not know the repository (404 on its tag list):
    /// it is empty, not incomplete.
    pub missing: bool,
    /// The digest facts this read used (from the network or the cache), for the next run's
    /// cache; empty unless [`read_with_facts`] was given a cache.
    pub facts: FactsCache,
}

/// How tags are resolved to digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// `GET` each tag's manifest: digest and content in one request. For registries where a
    /// manifest GET costs nothing more than a `HEAD`.
    Get,
    /// `HEAD` each tag, then `GET` each distinct digest once: for registries that count a
    /// manifest GET as a pull (Docker Hub) or a download (GHCR), or record it (Harbor's pull
    /// time).
    Head,
}

impl Resolve {
    /// The cheaper way that does not count as pulling images on a registry with
    /// `capabilities`.
    pub fn for_capabilities(capabilities: &Capabilities) -> Self {
        if capabilities.manifest_get_is_pull { Self::Head } else { Self::Get }
    }
}

/// How an inventory is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    pub resolve: Resolve,
}

/// Reads the inventory of `repository`: its tags in `scope`, their digests and every manifest
/// they reach. Never fails as a whole: a failed read marks the repository incomplete and is
/// returned in [`RepositoryRead::problems`].
pub async fn read(
    registry: &Registry,
    repository: &RepoAddress,
    scope: &Scope,
    options: ReadOptions,
) -> RepositoryRead {
    read_with_facts(registry, repository, scope, options, None).await
}

/// [`read`], taking what `cache` knows of a digest instead of reading it, and returning the
/// facts used in [`RepositoryRead::facts`]. With a cache that knows any manifest, tags are
/// resolved with `HEAD` ([`Resolve::Head`]), so a digest seen before costs no `GET`.
pub async fn read_with_facts(
    registry: &Registry,
    repository: &RepoAddress,
    scope: &Scope,
    options: ReadOptions,
    cache: Option<&FactsCache>,
) -> RepositoryRead {
    let empty = |complete: bool| RepositoryInventory {
        address: repository.clone(),
        complete,
        tags: Vec::new(),
        manifests: BTreeMap::new(),
        foreign_tags: BTreeMap::new(),
    };
    let client = registry.client();
    let tags = match client.list_tags(repository).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => {
            return RepositoryRead {
                inventory: empty(true),
                problems: Vec::new(),
                missing: true,
                facts: FactsCache::default(),
            };
        }
        Err(error) => {
            return RepositoryRead {
                inventory: empty(false),
                problems: vec![error.into()],
                missing: false,
                facts: FactsCache::default(),
            };
        }
    };
    let mut reader = Reader::new(client, repository, cache);
    if !tags.is_empty() {
        let now = Timestamp::now();
        match cache.and_then(|cache| cache.recent_probe(&repository.to_string(), now)) {
            Some(probe) => reader.probed(probe),
            None => reader.pending.push_back(Job::ProbeReferrers),
        }
    }
    let warm = cache.is_some_and(|cache| !cache.manifests.is_empty());
    let job = match options.resolve {
        Resolve::Get if !warm => Job::Get,
        _ => Job::Head,
    };
    reader.pending.extend(tags.into_iter().map(job));
    let untagged = registry.untagged_manifests(repository).await;
    if let Ok(digests) = &untagged {
        for digest in digests {
            reader.want_manifest(digest);
        }
    }
    reader.run(options.concurrency.max(1)).await;
    let mut read = reader.finish(scope);
    if let Err(error) = untagged {
        read.inventory.complete = false;
        read.problems.push(error);
    }
    match registry.tag_times(repository).await {
        Ok(times) => {
            for entry in &mut read.inventory.tags {
                entry.pushed = times.get(&entry.tag).copied();
            }
        }
        Err(error) => {
            read.inventory.complete = false;
            read.problems.push(error);
        }
    }
    match registry.locked_tags(repository).await {
        Ok(locked) => {
            for entry in &mut read.inventory.tags {
                entry.locked = locked.get(&entry.tag).cloned();
            }
        }
        Err(error) => {
            read.inventory.complete = false;
            read.problems.push(error);
        }
    }
    read
}

/// One request of the inventory.
enum Job {
    /// Resolve a tag to its digest.
    Head(Tag),
    /// Resolve a tag to its digest and read its manifest.
    Get(Tag),
    /// Read a manifest (children, config, subject).
    Manifest(Digest),
    /// Read an image config for `created` and its git labels.
    Config(Digest),
    /// List the referrers of a manifest through the referrers API.
    Referrers(Digest),
    /// Find out once whether the registry has a referrers API.
    ProbeReferrers,
}

/// A finished request.
enum Done {
    Head(Tag, Result<Option<ManifestHead>, DistributionError>),
    Get(Tag, Result<Box<Manifest>, DistributionError>),
    Manifest(Digest, Result<Box<Manifest>, DistributionError>),
    Config(Digest, Result<ConfigFacts, DistributionError>),
    Referrers(Result<Referrers, DistributionError>),
    /// Whether the registry answered the referrers API.
    ProbeReferrers(Result<bool, DistributionError>),
}

async fn perform(client: &Client, repository: &RepoAddress, job: Job) -> Done {
    match job {
        Job::Head(tag) => {
            let result = client.head_manifest(repository, &ManifestRef::Tag(tag.clone())).await;
            Done::Head(tag, result)
        }
        Job::Get(tag) => {
            let result = client.get_manifest(repository, &ManifestRef::Tag(tag.clone())).await;
            Done::Get(tag, result.map(Box::new))
        }
        Job::Manifest(digest) => {
            let result =
                client.get_manifest(repository, &ManifestRef::Digest(digest.clone())).await;
            Done::Manifest(digest, result.map(Box::new))
        }
        Job::Config(digest) => {
            let result = client.get_blob(repository, &digest).await.and_then(|bytes| {
                let config = ImageConfig::parse(&bytes).map_err(|error| {
                    DistributionError::UnexpectedResponse {
                        operation: Operation {
                            method: reqwest::Method::GET,
                            target: format!("{repository} blob {digest}"),
                        },
                        problem: format!("the image config is not valid JSON ({error})"),
                    }
                })?;
                Ok(ConfigFacts { created: config.created, labels: SourceLabels::parse(&bytes) })
            });
            Done::Config(digest, result)
        }
        Job::Referrers(digest) => Done::Referrers(client.referrers(repository, &digest).await),
        Job::ProbeReferrers => {
            // a digest nothing can have: a registry with the API answers an empty list, one
            // without it 404 (and the client then looks for the tag schema's index: absent)
            let mut seed = Timestamp::now().as_nanosecond().to_le_bytes().to_vec();
            seed.extend(std::iter::repeat_with(|| fastrand::u8(..)).take(32));
            let probe = Digest::sha256_of(&seed);
            let answered = client.referrers_api(repository, &probe).await;
            Done::ProbeReferrers(answered.map(|referrers| referrers.is_some()))
        }
    }
}

/// Whether the registry answers the referrers API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReferrersApi {
    Unknown,
    Supported,
    Unsupported,
}

/// The state of one repository's inventory while requests are in flight.
struct Reader<'a> {
    client: &'a Client,
    repository: &'a RepoAddress,
    pending: VecDeque<Job>,
    /// Each tag that still exists, and its digest.
    resolved: BTreeMap<Tag, Digest>,
    /// Every digest asked for, and (once read) what it is; `None` while unread or when the
    /// registry does not have it.
    manifests: HashMap<Digest, Option<ManifestEntry>>,
    /// Each config blob asked for: the manifests waiting for its `created`, or (once read)
    /// the `created` it says, for manifests that name it later.
    configs: HashMap<Digest, ConfigRead>,
    /// Manifests read so far, in order, for the referrers API once it is known to exist.
    read: Vec<Digest>,
    referrers_api: ReferrersApi,
    problems: Vec<DistributionError>,
    /// Manifests the registry answered 404 for, with that answer.
    missing: HashMap<Digest, DistributionError>,
    /// Facts of earlier runs, taken instead of reading.
    cache: Option<&'a FactsCache>,
    /// The facts used, when there is a cache to write them to.
    learned: FactsCache,
}

/// One config blob's read: asked for, with the manifests waiting for it, or done.
enum ConfigRead {
    Waiting(Vec<Digest>),
    Done(ConfigFacts),
}

/// What the inventory takes from an image config.
#[derive(Debug, Clone, Default)]
struct ConfigFacts {
    created: Option<Timestamp>,
    labels: SourceLabels,
}

impl ConfigFacts {
    fn from_cache(cached: &CachedConfig) -> Self {
        let labels =
            SourceLabels { revision: cached.revision.clone(), ref_name: cached.ref_name.clone() };
        Self { created: cached.created, labels }
    }

    fn to_cache(&self) -> CachedConfig {
        CachedConfig {
            created: self.created,
            revision: self.labels.revision.clone(),
            ref_name: self.labels.ref_name.clone(),
        }
    }
}

impl<'a> Reader<'a> {
    fn new(client: &'a Client, repository: &'a RepoAddress, cache: Option<&'a FactsCache>) -> Self {
        Self {
            client,
            repository,
            pending: VecDeque::new(),
            resolved: BTreeMap::new(),
            manifests: HashMap::new(),
            configs: HashMap::new(),
            read: Vec::new(),
            referrers_api: ReferrersApi::Unknown,
            problems: Vec::new(),
            missing: HashMap::new(),
            cache,
            learned: FactsCache::default(),
        }
    }

    /// Goes by `probe` (just made, or a recent one from the cache), and keeps it for the next
    /// run's cache: with the API, the referrers of every manifest read so far are asked for.
    fn probed(&mut self, probe: ReferrersProbe) {
        if self.cache.is_some() {
            self.learned.referrers.insert(self.repository.to_string(), probe);
        }
        if probe.api {
            self.referrers_api = ReferrersApi::Supported;
            let read = self.read.clone();
            self.pending.extend(read.into_iter().map(Job::Referrers));
        } else {
            self.referrers_api = ReferrersApi::Unsupported;
        }
    }

    /// Keeps the manifest just read for the next run's cache, where there is one.
    fn learn_manifest(&mut self, manifest: &Manifest) {
        if self.cache.is_some() {
            let cached = CachedManifest {
                media_type: manifest.media_type.clone(),
                bytes: manifest.bytes.clone(),
            };
            self.learned.manifests.insert(manifest.digest.clone(), cached);
        }
    }

    /// The manifest `digest` as the cache has it, if it does (and it still parses).
    fn cached_manifest(&self, digest: &Digest) -> Option<Manifest> {
        let cached = self.cache?.manifests.get(digest)?;
        let content = ManifestContent::parse(&cached.bytes).ok()?;
        Some(Manifest {
            digest: digest.clone(),
            media_type: cached.media_type.clone(),
            bytes: cached.bytes.clone(),
            content,
        })
    }

    /// Runs every job, and the jobs their answers create, with at most `limit` in flight.
    async fn run(&mut self, limit: usize) {
        let (client, repository) = (self.client, self.repository);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < limit {
                let Some(job) = self.pending.pop_front() else { break };
                in_flight.push(perform(client, repository, job));
            }
            let Some(done) = in_flight.next().await else { break };
            self.absorb(done);
        }
    }

    /// Queues a manifest read unless the digest was asked for already; takes it from the
    /// cache where it has it.
    fn want_manifest(&mut self, digest: &Digest) {
        if !self.manifests.contains_key(digest) {
            self.manifests.insert(digest.clone(), None);
            match self.cached_manifest(digest) {
                Some(manifest) => {
                    self.learn_manifest(&manifest);
                    self.absorb_manifest(digest.clone(), &manifest);
                }
                None => self.pending.push_back(Job::Manifest(digest.clone())),
            }
        }
    }

    fn absorb(&mut self, done: Done) {
        match done {
            Done::Head(tag, Ok(Some(head))) => {
                self.want_manifest(&head.digest);
                self.resolved.insert(tag, head.digest);
            }
            Done::Get(tag, Ok(manifest)) => {
                self.learn_manifest(&manifest);
                let digest = manifest.digest.clone();
                self.manifests.entry(digest.clone()).or_insert(None);
                self.absorb_manifest(digest.clone(), &manifest);
                self.resolved.insert(tag, digest);
            }
            // deleted since the tag list was read: nothing left to decide
            Done::Head(tag, Ok(None)) => {
                log::debug!("`{}:{tag}` disappeared while reading", self.repository);
            }
            Done::Get(tag, Err(error)) if error.is_not_found() => {
                log::debug!("`{}:{tag}` disappeared while reading", self.repository);
            }
            Done::Manifest(digest, Ok(manifest)) => {
                self.learn_manifest(&manifest);
                self.absorb_manifest(digest, &manifest);
            }
            // an index child or referrer the registry lost: the manifests pointing at it are
            // broken already; a tag's own manifest missing counts as a failure in `finish`
            Done::Manifest(digest, Err(error)) if error.is_not_found() => {
                log::debug!("`{}@{digest}` is not in the registry", self.repository);
                self.missing.insert(digest, error);
            }
            Done::Config(config, Ok(facts)) => {
                if self.cache.is_some() {
                    self.learned.configs.insert(config.clone(), facts.to_cache());
                }
                self.config_read(config, facts);
            }
            // a missing config leaves the age unknown, which keeps the image
            Done::Config(config, Err(error)) if error.is_not_found() => {
                self.config_read(config, ConfigFacts::default());
            }
            Done::Referrers(Ok(referrers)) => {
                for descriptor in referrers.descriptors {
                    self.want_manifest(&descriptor.digest);
                }
            }
            Done::ProbeReferrers(Ok(api)) => {
                self.probed(ReferrersProbe { api, at: Timestamp::now() });
            }
            Done::Head(_, Err(error))
            | Done::Get(_, Err(error))
            | Done::Manifest(_, Err(error))
            | Done::Referrers(Err(error))
            | Done::ProbeReferrers(Err(error)) => self.problems.push(error),
            Done::Config(config, Err(error)) => {
                self.config_read(config, ConfigFacts::default());
                self.problems.push(error);
            }
        }
    }

    /// Records what the config blob `config` says, for the manifests waiting for it and for
    /// those that name it later.
    fn config_read(&mut self, config: Digest, facts: ConfigFacts) {
        if let Some(ConfigRead::Waiting(waiting)) = self.configs.remove(&config) {
            for digest in waiting {
                self.set_config_facts(&digest, &facts);
            }
        }
        self.configs.insert(config, ConfigRead::Done(facts));
    }

    fn set_config_facts(&mut self, digest: &Digest, facts: &ConfigFacts) {
        if let Some(Some(entry)) = self.manifests.get_mut(digest) {
            entry.source = facts.labels.clone();
            if let Some(created) = facts.created {
                entry.created = Some(created);
                entry.created_source = TimeSource::ImageConfigCreated;
            }
        }
    }

    fn absorb_manifest(&mut self, digest: Digest, manifest: &Manifest) {
        if matches!(self.manifests.get(&digest), Some(Some(_))) {
            // read twice (sibling tags, or a tag that is also an index child)
            return;
        }
        let content = &manifest.content;
        let is_index = manifest::is_index_type(&manifest.media_type);
        let tombstone = content.annotations.contains_key(TOMBSTONE_ANNOTATION);
        let entry = ManifestEntry {
            children: if is_index {
                content.manifests.iter().map(|child| child.digest.clone()).collect()
            } else {
                Vec::new()
            },
            subject: content.subject.as_ref().map(|subject| subject.digest.clone()),
            created: None,
            created_source: TimeSource::Unknown,
            tombstone,
            source: SourceLabels::default(),
        };
        for child in &entry.children {
            self.want_manifest(child);
        }
        let config = content.config.as_ref().filter(|config| {
            !is_index
                && !tombstone
                && [manifest::OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG]
                    .contains(&config.media_type.as_str())
        });
        let config = config.map(|config| config.digest.clone());
        if self.referrers_api == ReferrersApi::Supported {
            self.pending.push_back(Job::Referrers(digest.clone()));
        }
        self.read.push(digest.clone());
        self.manifests.insert(digest.clone(), Some(entry));
        let Some(config) = config else { return };
        match self.configs.get_mut(&config) {
            Some(ConfigRead::Waiting(waiting)) => waiting.push(digest),
            Some(ConfigRead::Done(facts)) => {
                let facts = facts.clone();
                self.set_config_facts(&digest, &facts);
            }
            None => {
                let cached = self.cache.and_then(|cache| cache.configs.get(&config)).cloned();
                if let Some(cached) = cached {
                    let facts = ConfigFacts::from_cache(&cached);
                    self.learned.configs.insert(config.clone(), cached);
                    self.configs.insert(config, ConfigRead::Done(facts.clone()));
                    self.set_config_facts(&digest, &facts);
                } else {
                    self.pending.push_back(Job::Config(config.clone()));
                    self.configs.insert(config, ConfigRead::Waiting(vec![digest]));
                }
            }
        }
    }

    /// The inventory: tags sorted into scope, manifests with the ages of indexes filled in.
    fn finish(mut self, scope: &Scope) -> RepositoryRead {
        let mut manifests: BTreeMap<Digest, ManifestEntry> = self
            .manifests
            .into_iter()
            .filter_map(|(digest, entry)| Some((digest, entry?)))
            .collect();
        fill_index_ages(&mut manifests);
        fill_index_labels(&mut manifests);
        // a tag whose manifest vanished between HEAD and GET was changed meanwhile: fail closed
        let lost: BTreeSet<&Digest> =
            self.resolved.values().filter(|digest| !manifests.contains_key(*digest)).collect();
        for digest in lost {
            if let Some(error) = self.missing.remove(digest) {
                self.problems.push(error);
            }
        }
        let (tags, foreign_tags) = assign_images(&self.resolved, scope);
        if !foreign_tags.is_empty() {
            log::info!(
                "`{}`: {} tags belong to no image of the project and are left alone",
                self.repository,
                foreign_tags.len()
            );
        }
        let complete = self.problems.is_empty();
        RepositoryRead {
            inventory: RepositoryInventory {
                address: self.repository.clone(),
                complete,
                tags,
                manifests,
                foreign_tags,
            },
            problems: self.problems.into_iter().map(RegistryError::from).collect(),
            missing: false,
            facts: self.learned,
        }
    }
}

/// Gives each index the git labels of its first child (in index order) that has a revision,
/// so a multi-arch image ties to the commit its platform images were built from.
fn fill_index_labels(manifests: &mut BTreeMap<Digest, ManifestEntry>) {
    let indexes: Vec<(Digest, SourceLabels)> = manifests
        .iter()
        .filter(|(_, entry)| !entry.children.is_empty() && entry.source.revision.is_none())
        .filter_map(|(digest, entry)| {
            let labels = entry.children.iter().find_map(|child| {
                manifests.get(child).filter(|child| child.source.revision.is_some())
            })?;
            Some((digest.clone(), labels.source.clone()))
        })
        .collect();
    for (digest, labels) in indexes {
        if let Some(entry) = manifests.get_mut(&digest) {
            entry.source = labels;
        }
    }
}

/// Gives each index without a `created` of its own the newest `created` among its children
/// (transitively), so a multi-arch image is as old as its newest platform image.
fn fill_index_ages(manifests: &mut BTreeMap<Digest, ManifestEntry>) {
    let indexes: Vec<Digest> = manifests
        .iter()
        .filter(|(_, entry)| !entry.children.is_empty() && entry.created.is_none())
        .map(|(digest, _)| digest.clone())
        .collect();
    for digest in indexes {
        let mut visiting = BTreeSet::new();
        let created = newest_below(manifests, &digest, &mut visiting);
        if let Some(entry) = manifests.get_mut(&digest)
            && created.is_some()
        {
            entry.created = created;
            entry.created_source = TimeSource::ImageConfigCreated;
        }
    }
}

fn newest_below(
    manifests: &BTreeMap<Digest, ManifestEntry>,
    digest: &Digest,
    visiting: &mut BTreeSet<Digest>,
) -> Option<Timestamp> {
    if !visiting.insert(digest.clone()) {
        return None;
    }
    let entry = manifests.get(digest)?;
    if entry.children.is_empty() {
        return entry.created_at().map(|(at, _)| at);
    }
    entry.children.iter().filter_map(|child| newest_below(manifests, child, visiting)).max()
}

/// Sorts resolved tags into the tags this cleanup decides (with their image) and foreign ones.
fn assign_images(
    resolved: &BTreeMap<Tag, Digest>,
    scope: &Scope,
) -> (Vec<TagEntry>, BTreeMap<Tag, Digest>) {
    let entry = |tag: &Tag, image: &str, image_tag: &str, digest: &Digest| TagEntry {
        tag: tag.clone(),
        image: image.to_owned(),
        image_tag: image_tag.to_owned(),
        digest: digest.clone(),
        pushed: None,
        locked: None,
    };
    match scope {
        Scope::Image(image) => (
            resolved.iter().map(|(tag, digest)| entry(tag, image, tag.as_str(), digest)).collect(),
            BTreeMap::new(),
        ),
        Scope::Shared(images) => {
            let names: Vec<&str> = images.iter().map(String::as_str).collect();
            let mut tags = Vec::new();
            let mut unclaimed = Vec::new();
            for (tag, digest) in resolved {
                match naming::image_of_tag(&names, tag.as_str()) {
                    Some((image, image_tag)) => tags.push(entry(tag, image, image_tag, digest)),
                    None => unclaimed.push((tag, digest)),
                }
            }
            let mut image_of_digest: BTreeMap<&Digest, &str> = BTreeMap::new();
            for tag in &tags {
                image_of_digest.entry(&tag.digest).or_insert(tag.image.as_str());
            }
            let mut claimed = Vec::new();
            let mut foreign = BTreeMap::new();
            for (tag, digest) in unclaimed {
                let image = referrers_subject(tag)
                    .and_then(|subject| image_of_digest.get(&subject).copied());
                match image {
                    Some(image) => claimed.push(entry(tag, image, tag.as_str(), digest)),
                    None => {
                        foreign.insert(tag.clone(), digest.clone());
                    }
                }
            }
            tags.extend(claimed);
            (tags, foreign)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_labels_are_read_from_the_config() {
        let sha = "ffac537e6cbbf934b08745a378932722df287a53";
        for (config, revision, ref_name) in [
            (
                format!(
                    r#"{{"created":"2026-01-01T00:00:00Z","config":{{"Labels":{{"org.opencontainers.image.revision":"{sha}","org.opencontainers.image.ref.name":"feature/x","team":"a"}}}}}}"#
                ),
                Some(sha),
                Some("feature/x"),
            ),
            (r#"{"config":{"Labels":{"team":"a"}}}"#.to_owned(), None, None),
            (r#"{"config":{"Labels":null}}"#.to_owned(), None, None),
            (
                r#"{"config":{"Labels":{"org.opencontainers.image.revision":""}}}"#.to_owned(),
                None,
                None,
            ),
            (
                r#"{"config":{"Labels":{"org.opencontainers.image.revision":7}}}"#.to_owned(),
                None,
                None,
            ),
            (r#"{"architecture":"amd64"}"#.to_owned(), None, None),
            ("not json".to_owned(), None, None),
        ] {
            let labels = SourceLabels::parse(config.as_bytes());
            assert_eq!(
                (labels.revision.as_deref(), labels.ref_name.as_deref()),
                (revision, ref_name),
                "{config}"
            );
        }
    }

    #[test]
    fn an_index_takes_the_labels_of_its_first_labelled_child() {
        let digest = |n: u8| Digest::sha256_of(&[n]);
        let entry = |children: Vec<Digest>, revision: Option<&str>| ManifestEntry {
            children,
            subject: None,
            created: None,
            created_source: TimeSource::Unknown,
            tombstone: false,
            source: SourceLabels { revision: revision.map(str::to_owned), ref_name: None },
        };
        let mut manifests = BTreeMap::from([
            (digest(1), entry(vec![digest(2), digest(3), digest(4)], None)),
            (digest(2), entry(Vec::new(), None)),
            (digest(3), entry(Vec::new(), Some("c3"))),
            (digest(4), entry(Vec::new(), Some("c4"))),
            (digest(5), entry(vec![digest(2)], None)),
        ]);
        fill_index_labels(&mut manifests);
        assert_eq!(manifests[&digest(1)].source.revision.as_deref(), Some("c3"));
        assert_eq!(manifests[&digest(5)].source.revision, None);
    }
}
