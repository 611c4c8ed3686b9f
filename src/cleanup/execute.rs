//! Applying a [`Plan`]: deleting what it says, the way it says, and nothing else.
//!
//! Owns how each deletion reaches the registry, the re-checks before it, per-item outcomes, the
//! `max_duration` deadline and `--keep-going`, and the verification afterwards. Knows nothing
//! about dry runs and never changes the plan: an item whose situation changed since the plan
//! (its tag moved, a new tag appeared on its digest, what refers to it stayed) is skipped and
//! reported, never decided anew.
//!
//! Every write goes through the registry seam ([`Registry`]); reads (re-checks, the tag list,
//! the verification) through its distribution client. Before the first delete in a
//! repository, a harmless probe checks that deletes are enabled (405 → refused, nothing done).
//! Then, per repository, in two phases so that no tag is written while digests are deleted
//! (distribution 2.8 then sometimes answers 500 and leaves a dangling tag, docs/testing.md §5):
//! 1. each [`DeleteMethod::TagOnly`] deletion: re-check with `HEAD` that the tag still points at
//!    the planned digest, then remove the tag alone ([`Registry::untag`]); where the registry
//!    can only do that through a throw-away manifest, phase 2 deletes that manifest's digest;
//! 2. the tags are listed again (a tag that appeared since the inventory protects its digest and,
//!    for an index, its children), then digest deletes run in plan order, concurrently where
//!    nothing orders them: a manifest only after everything planned that points at it is gone.
//!    Each tag of a [`DeleteMethod::Digest`] deletion is re-checked first; if one moved, nothing
//!    on that digest is deleted.
//!
//! Where the vendor deletes in batches ([`Registry::batch_limit`] above one), each phase sends
//! its ready deletions in chunks of that size ([`Registry::untag_many`],
//! [`Registry::delete_manifests`]), every item re-checked first as above.
//!
//! A 404 on any delete means already gone, so reruns are idempotent. After applying, every kept
//! tag and every manifest a kept tag reaches (index children, referrers) is checked to still
//! resolve.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::cleanup::graph::Graph;
use crate::cleanup::inventory::{Inventory, RepositoryInventory};
use crate::cleanup::plan::{DeleteMethod, Deletion, Plan};
use crate::exit::{Classify, ExitStatus};
use crate::output::Progress;
use crate::reference::{Digest, ImageRef, RepoAddress, Tag};
use crate::registry::distribution::{DeleteSupport, DistributionError, ManifestRef, manifest};
use crate::registry::{Registry, RegistryError, Removal, Untagged};

/// Why a cleanup cannot delete anything at all; raised before any delete.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("Registry `{}` has deletes disabled (probed in `{repository}`); nothing was deleted", repository.registry)]
    DeletesDisabled { repository: RepoAddress },
    #[error("Checking whether `{repository}` allows deletes failed; nothing was deleted")]
    Probe {
        repository: RepoAddress,
        #[source]
        source: Box<RegistryError>,
    },
}

impl Classify for ExecuteError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::DeletesDisabled { .. } => ExitStatus::Usage,
            Self::Probe { source, .. } => source.exit_status(),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::DeletesDisabled { repository } => Some(format!(
                "enable deletes on `{}` (distribution: `storage.delete.enabled: true`, or REGISTRY_STORAGE_DELETE_ENABLED=true)",
                repository.registry
            )),
            Self::Probe { source, .. } => source.hint(),
        }
    }
}

/// Why one planned deletion failed.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("Re-checking `{reference}` before deleting failed")]
    Recheck {
        reference: ImageRef,
        #[source]
        source: DistributionError,
    },
    #[error("Deleting tag `{reference}` failed")]
    Untag {
        reference: ImageRef,
        #[source]
        source: RegistryError,
    },
    #[error(
        "Deleting the throw-away manifest `{digest}` of `{reference}` failed; the tag now points to it, and a rerun deletes it"
    )]
    TombstoneDelete {
        reference: ImageRef,
        digest: Digest,
        #[source]
        source: RegistryError,
    },
    #[error("Deleting `{reference}` failed")]
    DigestDelete {
        reference: ImageRef,
        #[source]
        source: RegistryError,
    },
}

impl ItemError {
    fn source_error(&self) -> &dyn Classify {
        match self {
            Self::Recheck { source, .. } => source,
            Self::Untag { source, .. }
            | Self::TombstoneDelete { source, .. }
            | Self::DigestDelete { source, .. } => source,
        }
    }
}

impl Classify for ItemError {
    fn exit_status(&self) -> ExitStatus {
        self.source_error().exit_status()
    }

    fn hint(&self) -> Option<String> {
        self.source_error().hint()
    }
}

/// Why a planned deletion was not attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `max_duration` was reached.
    Deadline,
    /// An earlier deletion failed and `--keep-going` is off.
    AfterFailure,
    /// Another tag on the same digest moved or could not be re-checked.
    SiblingChanged(Tag),
    /// A tag that appeared since the inventory points at the digest (or at an index of it).
    NewTag(Tag),
    /// A manifest that points at this one was not deleted, so this one must stay.
    StillReferenced(Digest),
}

impl Skip {
    /// Completes "kept: …" for an item that stays because of this.
    pub fn describe(&self) -> String {
        match self {
            Self::Deadline => "max_duration reached, rerun to continue".to_owned(),
            Self::AfterFailure => "not attempted after an earlier failure".to_owned(),
            Self::SiblingChanged(tag) => {
                format!("tag `{tag}` on the same digest changed since the plan, rerun to continue")
            }
            Self::NewTag(tag) => format!("tag `{tag}`, pushed since the plan, needs it"),
            Self::StillReferenced(digest) => {
                format!("`{digest}`, which refers to it, was not deleted")
            }
        }
    }
}

/// What happened to one planned deletion.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The registry removed it.
    Deleted,
    /// It was gone already (a 404: an earlier run, a sibling's digest delete, someone else).
    AlreadyGone,
    /// The tag points at another digest now (a push since the plan); it was left alone.
    Moved(Digest),
    Skipped(Skip),
    Failed(Arc<ItemError>),
}

impl Outcome {
    /// `true` if and only if the item is gone from the registry.
    pub fn is_gone(&self) -> bool {
        matches!(self, Self::Deleted | Self::AlreadyGone)
    }
}

/// A kept tag or reached manifest that did not resolve after applying.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("Kept `{0}` no longer resolves after the cleanup")]
    Gone(ImageRef),
    #[error("Checking that kept `{reference}` still resolves failed")]
    Check {
        reference: ImageRef,
        #[source]
        source: DistributionError,
    },
}

impl Classify for VerifyError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Failure
    }
}

/// What applying a plan did.
#[derive(Debug)]
pub struct Report {
    /// One outcome per item of `plan.deleted`, in the same order.
    pub outcomes: Vec<Outcome>,
    /// What the verification found broken (empty when everything kept still resolves).
    pub broken: Vec<VerifyError>,
}

/// How to apply a plan.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'p> {
    /// Go on after a failed item (and report every failure) instead of stopping.
    pub keep_going: bool,
    /// No new deletion starts after this instant (`max_duration`).
    pub deadline: Option<Instant>,
    /// Told about every finished deletion.
    pub progress: Option<&'p Progress>,
}

/// Applies plans through the registry seam, at most `concurrency` requests at once per
/// repository.
#[derive(Debug)]
pub struct Executor<'a> {
    registry: &'a Registry,
    concurrency: usize,
}

impl<'a> Executor<'a> {
    pub fn new(registry: &'a Registry) -> Self {
        Self { registry, concurrency: registry.capabilities().concurrency.max(1) }
    }

    /// Applies `plan`, which was made from `inventory`. Fails as a whole, with nothing done, when
    /// a repository with deletions does not allow deletes; every other failure is per item.
    pub async fn apply(
        &self,
        plan: &Plan,
        inventory: &Inventory,
        options: ApplyOptions<'_>,
    ) -> Result<Report, ExecuteError> {
        let mut repositories: Vec<&RepoAddress> = Vec::new();
        for deletion in &plan.deleted {
            if !repositories.contains(&&*deletion.item.repository) {
                repositories.push(&deletion.item.repository);
            }
        }
        for result in join_all(repositories.iter().map(|repository| self.probe(repository))).await {
            result?;
        }
        let stop = Cell::new(false);
        let runs = repositories.iter().map(|repository| {
            let indices: Vec<usize> = (0..plan.deleted.len())
                .filter(|&index| *plan.deleted[index].item.repository == **repository)
                .collect();
            let repository_inventory =
                inventory.repositories.iter().find(|candidate| candidate.address == **repository);
            Run {
                registry: self.registry,
                limit: self.concurrency,
                repository,
                inventory: repository_inventory,
                deleted: &plan.deleted,
                options,
                stop: &stop,
            }
            .apply(indices)
        });
        let mut outcomes: Vec<Option<Outcome>> = vec![None; plan.deleted.len()];
        for results in join_all(runs).await {
            for (index, outcome) in results {
                outcomes[index] = Some(outcome);
            }
        }
        let outcomes: Vec<Outcome> = outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Outcome::Skipped(Skip::AfterFailure)))
            .collect();
        let touched: Vec<&RepoAddress> = repositories
            .into_iter()
            .filter(|repository| {
                plan.deleted.iter().zip(&outcomes).any(|(deletion, outcome)| {
                    *deletion.item.repository == **repository
                        && !matches!(outcome, Outcome::Skipped(_) | Outcome::Moved(_))
                })
            })
            .collect();
        let checks = touched.into_iter().map(|repository| {
            let repository_inventory =
                inventory.repositories.iter().find(|candidate| candidate.address == *repository);
            self.verify(repository, plan, repository_inventory)
        });
        let broken = join_all(checks).await.into_iter().flatten().collect();
        Ok(Report { outcomes, broken })
    }

    async fn probe(&self, repository: &RepoAddress) -> Result<(), ExecuteError> {
        match self.registry.probe_deletes(repository).await {
            Ok(DeleteSupport::Enabled) => Ok(()),
            Ok(DeleteSupport::Disabled) => {
                Err(ExecuteError::DeletesDisabled { repository: repository.clone() })
            }
            Err(source) => Err(ExecuteError::Probe {
                repository: repository.clone(),
                source: Box::new(source),
            }),
        }
    }

    /// Checks that every kept tag of `repository` still resolves, and every manifest a kept tag
    /// or a tag outside the scope reaches (index children, referrers, transitively).
    async fn verify(
        &self,
        repository: &RepoAddress,
        plan: &Plan,
        inventory: Option<&RepositoryInventory>,
    ) -> Vec<VerifyError> {
        let kept = plan.kept.iter().filter(|item| *item.repository == *repository);
        let mut references: Vec<ImageRef> = Vec::new();
        let mut roots: Vec<&Digest> = Vec::new();
        for item in kept {
            roots.push(&item.digest);
            if let Some(tag) = &item.tag {
                references.push(ImageRef::tagged(repository.clone(), tag.clone()));
            }
        }
        if let Some(inventory) = inventory {
            for (tag, digest) in &inventory.foreign_tags {
                roots.push(digest);
                references.push(ImageRef::tagged(repository.clone(), tag.clone()));
            }
            let reached = Graph::new(inventory).reachable(&roots);
            references.extend(reached.into_iter().map(|digest| ImageRef {
                repository: repository.clone(),
                tag: None,
                digest: Some(digest.clone()),
            }));
        }
        let checks = references.into_iter().map(|reference| async move {
            let target = match (&reference.tag, &reference.digest) {
                (Some(tag), _) => ManifestRef::Tag(tag.clone()),
                (None, Some(digest)) => ManifestRef::Digest(digest.clone()),
                (None, None) => return None,
            };
            match self.registry.client().head_manifest(repository, &target).await {
                Ok(Some(_)) => None,
                Ok(None) => Some(VerifyError::Gone(reference)),
                Err(source) => Some(VerifyError::Check { reference, source }),
            }
        });
        futures_util::stream::iter(checks)
            .buffer_unordered(self.concurrency)
            .filter_map(|problem| async move { problem })
            .collect()
            .await
    }
}

/// The result of phase 1 for one tag-only deletion.
enum TagResult {
    Done(Outcome),
    /// The tag now points at this throw-away manifest, which phase 2 deletes.
    Tombstoned(Digest),
}

/// What re-checking a tag found.
enum Recheck {
    Unchanged,
    Gone,
    Moved(Digest),
    Failed(Arc<ItemError>),
}

/// Digest deletes that remove one manifest: the planned tags on it (and untagged items), or
/// one throw-away manifest.
struct Group {
    digest: Digest,
    items: Vec<usize>,
    tombstone: bool,
}

/// Applying the deletions of one repository.
struct Run<'r> {
    registry: &'r Registry,
    limit: usize,
    repository: &'r RepoAddress,
    inventory: Option<&'r RepositoryInventory>,
    deleted: &'r [Deletion],
    options: ApplyOptions<'r>,
    /// Set after a failure without `--keep-going`: no new deletion starts in any repository.
    stop: &'r Cell<bool>,
}

impl Run<'_> {
    fn reference(&self, index: usize) -> ImageRef {
        let item = &self.deleted[index].item;
        ImageRef {
            repository: self.repository.clone(),
            tag: item.tag.clone(),
            digest: item.tag.is_none().then(|| item.digest.clone()),
        }
    }

    /// `Some(skip)` when no new deletion may start.
    fn halted(&self) -> Option<Skip> {
        if self.stop.get() {
            return Some(Skip::AfterFailure);
        }
        match self.options.deadline {
            Some(deadline) if Instant::now() >= deadline => Some(Skip::Deadline),
            _ => None,
        }
    }

    fn record(&self, outcome: &Outcome) {
        if let Some(progress) = self.options.progress {
            progress.tick();
        }
        if matches!(outcome, Outcome::Failed(_)) && !self.options.keep_going {
            self.stop.set(true);
        }
    }

    async fn apply(self, indices: Vec<usize>) -> Vec<(usize, Outcome)> {
        let (tag_only, by_digest): (Vec<usize>, Vec<usize>) =
            indices.into_iter().partition(|&index| {
                let deletion = &self.deleted[index];
                deletion.method == DeleteMethod::TagOnly && deletion.item.tag.is_some()
            });
        log::info!(
            "`{}`: deleting {} tags alone and {} by digest",
            self.repository,
            tag_only.len(),
            by_digest.len()
        );
        let mut outcomes = Vec::new();
        let mut groups = Vec::new();
        for (index, result) in self.remove_tags(tag_only).await {
            match result {
                TagResult::Done(outcome) => outcomes.push((index, outcome)),
                TagResult::Tombstoned(digest) => {
                    groups.push(Group { digest, items: vec![index], tombstone: true });
                }
            }
        }
        let mut planned: Vec<Group> = Vec::new();
        let mut group_of: HashMap<&Digest, usize> = HashMap::new();
        for &index in &by_digest {
            let digest = &self.deleted[index].item.digest;
            if let Some(&group) = group_of.get(digest) {
                planned[group].items.push(index);
            } else {
                group_of.insert(digest, planned.len());
                planned.push(Group {
                    digest: digest.clone(),
                    items: vec![index],
                    tombstone: false,
                });
            }
        }
        let protected = if planned.is_empty() { Ok(HashMap::new()) } else { self.new_tags().await };
        match protected {
            Ok(protected) => {
                groups.extend(planned);
                outcomes.extend(self.delete_groups(groups, &protected).await);
            }
            Err(error) => {
                let error = Arc::new(error);
                for group in &planned {
                    for &index in &group.items {
                        outcomes.push((index, Outcome::Failed(Arc::clone(&error))));
                    }
                }
                self.record(&Outcome::Failed(error));
                outcomes.extend(self.delete_groups(groups, &HashMap::new()).await);
            }
        }
        let gone = outcomes.iter().filter(|(_, outcome)| outcome.is_gone()).count();
        log::info!("`{}`: {gone} of {} deleted", self.repository, outcomes.len());
        outcomes
    }

    /// Phase 1: every tag-only deletion, concurrently, in chunks of the registry's batch size.
    async fn remove_tags(&self, indices: Vec<usize>) -> Vec<(usize, TagResult)> {
        let batch = self.registry.batch_limit();
        let mut results = Vec::new();
        let mut pending: VecDeque<usize> = indices.into();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.limit {
                let mut chunk = Vec::new();
                while chunk.len() < batch {
                    let Some(index) = pending.pop_front() else { break };
                    if let Some(skip) = self.halted() {
                        results.push((index, TagResult::Done(Outcome::Skipped(skip))));
                    } else if let Some(tag) = &self.deleted[index].item.tag {
                        chunk.push((index, tag));
                    }
                }
                if chunk.is_empty() {
                    break;
                }
                in_flight.push(self.remove_chunk(chunk));
            }
            let Some(chunk) = in_flight.next().await else { break };
            for (index, result) in chunk {
                if let TagResult::Done(outcome) = &result {
                    self.record(outcome);
                }
                results.push((index, result));
            }
        }
        results
    }

    /// Re-checks each tag of `chunk`, then removes those still as planned in one call.
    async fn remove_chunk(&self, chunk: Vec<(usize, &Tag)>) -> Vec<(usize, TagResult)> {
        let checks = join_all(chunk.iter().map(|&(index, tag)| self.recheck(index, tag))).await;
        let mut results = Vec::new();
        let mut unchanged = Vec::new();
        for ((index, tag), check) in chunk.into_iter().zip(checks) {
            let outcome = match check {
                Recheck::Unchanged => {
                    unchanged.push((index, tag.clone()));
                    continue;
                }
                Recheck::Gone => Outcome::AlreadyGone,
                Recheck::Moved(now) => Outcome::Moved(now),
                Recheck::Failed(error) => Outcome::Failed(error),
            };
            results.push((index, TagResult::Done(outcome)));
        }
        if unchanged.is_empty() {
            return results;
        }
        let tags: Vec<Tag> = unchanged.iter().map(|(_, tag)| tag.clone()).collect();
        let removed = self.registry.untag_many(self.repository, &tags).await;
        for ((index, _), result) in unchanged.into_iter().zip(removed) {
            let result = match result {
                Ok(Untagged::Removed) => TagResult::Done(Outcome::Deleted),
                Ok(Untagged::AlreadyGone) => TagResult::Done(Outcome::AlreadyGone),
                Ok(Untagged::Tombstoned(digest)) => TagResult::Tombstoned(digest),
                Err(source) => {
                    let error = ItemError::Untag { reference: self.reference(index), source };
                    TagResult::Done(Outcome::Failed(Arc::new(error)))
                }
            };
            results.push((index, result));
        }
        results
    }

    /// Does `tag` of deletion `index` still point at the planned digest?
    async fn recheck(&self, index: usize, tag: &Tag) -> Recheck {
        let planned = &self.deleted[index].item.digest;
        match self
            .registry
            .client()
            .head_manifest(self.repository, &ManifestRef::Tag(tag.clone()))
            .await
        {
            Ok(Some(head)) if head.digest == *planned => Recheck::Unchanged,
            Ok(Some(head)) => Recheck::Moved(head.digest),
            Ok(None) => Recheck::Gone,
            Err(source) => Recheck::Failed(Arc::new(ItemError::Recheck {
                reference: self.reference(index),
                source,
            })),
        }
    }

    /// The digests that tags pushed since the inventory need (theirs and, for an index, its
    /// children), each with one such tag.
    async fn new_tags(&self) -> Result<HashMap<Digest, Tag>, ItemError> {
        let whole = || ImageRef { repository: self.repository.clone(), tag: None, digest: None };
        let listed = match self.registry.client().list_tags(self.repository).await {
            Ok(tags) => tags,
            Err(error) if error.is_not_found() => Vec::new(),
            Err(source) => return Err(ItemError::Recheck { reference: whole(), source }),
        };
        let known: HashSet<&Tag> = self
            .inventory
            .iter()
            .flat_map(|inventory| {
                inventory.tags.iter().map(|entry| &entry.tag).chain(inventory.foreign_tags.keys())
            })
            .collect();
        let fresh: Vec<Tag> = listed.into_iter().filter(|tag| !known.contains(tag)).collect();
        let mut protected = HashMap::new();
        for tag in fresh {
            let reference = ManifestRef::Tag(tag.clone());
            let recheck = |source| ItemError::Recheck {
                reference: ImageRef::tagged(self.repository.clone(), tag.clone()),
                source,
            };
            let Some(head) = self
                .registry
                .client()
                .head_manifest(self.repository, &reference)
                .await
                .map_err(recheck)?
            else {
                continue;
            };
            if manifest::is_index_type(&head.media_type) {
                let index = self
                    .registry
                    .client()
                    .get_manifest(self.repository, &ManifestRef::Digest(head.digest.clone()))
                    .await
                    .map_err(recheck)?;
                for child in index.content.manifests {
                    protected.entry(child.digest).or_insert_with(|| tag.clone());
                }
            }
            log::info!(
                "`{}:{tag}` appeared since the inventory; what it needs stays",
                self.repository
            );
            protected.entry(head.digest).or_insert(tag);
        }
        Ok(protected)
    }

    /// Phase 2: digest deletes, each manifest after every planned manifest pointing at it.
    async fn delete_groups(
        &self,
        groups: Vec<Group>,
        protected: &HashMap<Digest, Tag>,
    ) -> Vec<(usize, Outcome)> {
        let position: HashMap<&Digest, usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, group)| !group.tombstone)
            .map(|(position, group)| (&group.digest, position))
            .collect();
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); groups.len()];
        let mut waiting = vec![0usize; groups.len()];
        for (position_of_group, group) in groups.iter().enumerate() {
            if group.tombstone {
                continue;
            }
            let Some(entry) =
                self.inventory.and_then(|inventory| inventory.manifests.get(&group.digest))
            else {
                continue;
            };
            for target in entry.children.iter().chain(&entry.subject) {
                if let Some(&later) =
                    position.get(target).filter(|&&later| later != position_of_group)
                {
                    after[position_of_group].push(later);
                    waiting[later] += 1;
                }
            }
        }
        let mut finished = vec![false; groups.len()];
        let mut outcomes = Vec::new();
        let mut ready: VecDeque<usize> =
            (0..groups.len()).filter(|&group| waiting[group] == 0).collect();
        let batch = self.registry.batch_limit();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.limit {
                let mut jobs = Vec::new();
                while jobs.len() < batch {
                    let Some(group) = ready.pop_front() else { break };
                    let halted = if groups[group].tombstone { None } else { self.halted() };
                    let skip = halted.or_else(|| {
                        protected.get(&groups[group].digest).map(|tag| Skip::NewTag(tag.clone()))
                    });
                    let Some(skip) = skip else {
                        jobs.push(group);
                        continue;
                    };
                    finished[group] = true;
                    for &index in &groups[group].items {
                        outcomes.push((index, Outcome::Skipped(skip.clone())));
                    }
                    Self::hold_back(group, &groups, &after, &mut finished, &mut outcomes);
                }
                if jobs.is_empty() {
                    break;
                }
                in_flight.push(self.delete_batch(jobs, &groups));
            }
            let Some(done) = in_flight.next().await else { break };
            for (group, results) in done {
                finished[group] = true;
                let removed = results.iter().all(|(_, outcome)| outcome.is_gone());
                for (_, outcome) in &results {
                    self.record(outcome);
                }
                outcomes.extend(results);
                if removed {
                    for &later in &after[group] {
                        waiting[later] -= 1;
                        if waiting[later] == 0 && !finished[later] {
                            ready.push_back(later);
                        }
                    }
                } else {
                    Self::hold_back(group, &groups, &after, &mut finished, &mut outcomes);
                }
            }
        }
        outcomes
    }

    /// Group `group` stays: everything planned below it (transitively) stays too.
    fn hold_back(
        group: usize,
        groups: &[Group],
        after: &[Vec<usize>],
        finished: &mut [bool],
        outcomes: &mut Vec<(usize, Outcome)>,
    ) {
        let mut queue: VecDeque<usize> = VecDeque::from([group]);
        while let Some(current) = queue.pop_front() {
            for &later in &after[current] {
                if !finished[later] {
                    finished[later] = true;
                    let skip = Skip::StillReferenced(groups[current].digest.clone());
                    for &index in &groups[later].items {
                        outcomes.push((index, Outcome::Skipped(skip.clone())));
                    }
                    queue.push_back(later);
                }
            }
        }
    }

    /// Deletes the manifests of `jobs` (at most the registry's batch size of groups): re-checks
    /// each group's planned tags, then deletes the digests of those still as planned in one
    /// call. Returns the outcomes per group.
    async fn delete_batch(
        &self,
        jobs: Vec<usize>,
        groups: &[Group],
    ) -> Vec<(usize, Vec<(usize, Outcome)>)> {
        let checked = join_all(jobs.iter().map(|&group| self.recheck_group(&groups[group]))).await;
        let mut done = Vec::new();
        let mut unchanged = Vec::new();
        for (group, checked) in jobs.into_iter().zip(checked) {
            match checked {
                Ok(checks) => unchanged.push((group, checks)),
                Err(outcomes) => done.push((group, outcomes)),
            }
        }
        if unchanged.is_empty() {
            return done;
        }
        let digests: Vec<Digest> =
            unchanged.iter().map(|(group, _)| groups[*group].digest.clone()).collect();
        let removals = self.registry.delete_manifests(self.repository, &digests).await;
        for ((group, checks), removal) in unchanged.into_iter().zip(removals) {
            done.push((group, self.settle(&groups[group], checks, removal)));
        }
        done
    }

    /// Re-checks the planned tags of `group`: `Err` with every item's outcome when one moved
    /// or could not be checked (then nothing on that digest is deleted).
    async fn recheck_group(
        &self,
        group: &Group,
    ) -> Result<Vec<(usize, Recheck)>, Vec<(usize, Outcome)>> {
        if group.tombstone {
            return Ok(vec![(group.items[0], Recheck::Unchanged)]);
        }
        let mut checks = Vec::new();
        for &index in &group.items {
            let check = match &self.deleted[index].item.tag {
                Some(tag) => self.recheck(index, tag).await,
                None => Recheck::Unchanged,
            };
            checks.push((index, check));
        }
        let changed = checks.iter().find_map(|(index, check)| match check {
            Recheck::Moved(_) | Recheck::Failed(_) => self.deleted[*index].item.tag.clone(),
            Recheck::Unchanged | Recheck::Gone => None,
        });
        let Some(changed) = changed else { return Ok(checks) };
        Err(checks
            .into_iter()
            .map(|(index, check)| {
                let outcome = match check {
                    Recheck::Moved(now) => Outcome::Moved(now),
                    Recheck::Failed(error) => Outcome::Failed(error),
                    Recheck::Gone => Outcome::AlreadyGone,
                    Recheck::Unchanged => Outcome::Skipped(Skip::SiblingChanged(changed.clone())),
                };
                (index, outcome)
            })
            .collect())
    }

    /// Each item's outcome once the digest of `group` was deleted (or not).
    fn settle(
        &self,
        group: &Group,
        checks: Vec<(usize, Recheck)>,
        removal: Result<Removal, RegistryError>,
    ) -> Vec<(usize, Outcome)> {
        if group.tombstone {
            let index = group.items[0];
            let outcome = match removal {
                Ok(Removal::Removed | Removal::AlreadyGone) => Outcome::Deleted,
                Err(source) => Outcome::Failed(Arc::new(ItemError::TombstoneDelete {
                    reference: self.reference(index),
                    digest: group.digest.clone(),
                    source,
                })),
            };
            return vec![(index, outcome)];
        }
        let deleted = match removal {
            Ok(Removal::Removed) => Ok(true),
            Ok(Removal::AlreadyGone) => Ok(false),
            Err(source) => {
                let reference = ImageRef {
                    repository: self.repository.clone(),
                    tag: None,
                    digest: Some(group.digest.clone()),
                };
                Err(Arc::new(ItemError::DigestDelete { reference, source }))
            }
        };
        checks
            .into_iter()
            .map(|(index, check)| {
                let outcome = match (&deleted, check) {
                    (Err(error), _) => Outcome::Failed(Arc::clone(error)),
                    (Ok(true), Recheck::Unchanged) => Outcome::Deleted,
                    (Ok(_), _) => Outcome::AlreadyGone,
                };
                (index, outcome)
            })
            .collect()
    }
}
