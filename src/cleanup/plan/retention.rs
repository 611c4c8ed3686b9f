//! Git-aware retention inside the planner: each tag's [`Evidence`] placed in the checkout's
//! history, and the keep policies applied to the references that hold it. Pure: the git facts
//! come in as data ([`GitRetention`]).
//!
//! An image belongs to every branch or tag whose history holds its commit (as werf counts
//! them), or whose name its tag gives when it carries no commit (a moving tag such as
//! `main`). Per policy, the matching references are ranked by their last commit, newest
//! first, and limited by `references`; the images of each (per image name, distinct digests)
//! are ranked by their commit's place in its history and limited by `images`. The first policy
//! and reference that keeps an image names it in the reason. What no policy keeps is deleted,
//! except: an image of a pull request, decided by its state ([`PullRequests`], fetched
//! before planning: open or unknown stays, closed or merged goes after the grace period),
//! anything in a shallow clone or one that fetched only some branches (its history cannot prove a deletion), and an image whose branch is gone while
//! it is younger than the grace period. A tag without usable evidence is left to the count and
//! age rules.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;

use super::{Age, Decision, Delete, Gap, Keep, PrUnknown, PullRequest};
use crate::cleanup::evidence::{Evidence, Named, Source, evidence_of};
use crate::cleanup::git::{GitFacts, GitReference, ReferenceKind};
use crate::cleanup::inventory::{RepositoryInventory, SourceLabels};
use crate::cleanup::policy::KeepPolicy;
use crate::naming::sanitize_tag;
use crate::reference::Digest;
use crate::registry::pull_requests::{Forge, State};
use crate::tags::{TagRules, slug};

/// What git-aware retention plans with.
#[derive(Debug, Clone)]
pub struct GitRetention {
    pub facts: GitFacts,
    /// The keep policies in force (configured, or the default set).
    pub policies: Vec<KeepPolicy>,
    /// The project's tag rules, read backwards for images without a revision label.
    pub tag_rules: Option<TagRules>,
    /// How long an image whose branch is gone, or whose pull request is closed, stays.
    pub grace_period: Duration,
    /// What the forge says of the pull requests the images name.
    pub pull_requests: PullRequests,
}

/// The states of the pull requests images name, fetched before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequests {
    /// The forge asked, which names them (`PR #42`, `MR !7`); `None` when none was.
    pub forge: Option<Forge>,
    pub states: BTreeMap<u64, PrState>,
    /// Why a number missing from `states` has no known state.
    pub otherwise: PrUnknown,
}

impl PullRequests {
    /// Nothing known, for `why`.
    pub fn unknown(forge: Option<Forge>, why: PrUnknown) -> Self {
        Self { forge, states: BTreeMap::new(), otherwise: why }
    }

    fn state(&self, number: u64) -> PrState {
        self.states
            .get(&number)
            .cloned()
            .unwrap_or_else(|| PrState::Unknown(self.otherwise.clone()))
    }
}

/// One pull request's state as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrState {
    Known(State),
    Unknown(PrUnknown),
}

/// Why a tag with git mode on is left to the count and age rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unplaced {
    /// No revision label and no tag rule reads the tag.
    NoEvidence,
    /// The tag names a reference (this one) the checkout does not have, and no commit.
    Unknown(String),
}

/// One tag's place in the history.
struct Placed<'g> {
    /// Each reference holding the image, with the image's position in its history (0 = tip).
    in_references: Vec<(&'g GitReference, usize)>,
    /// The commit time of the image's commit, when the checkout has it.
    commit_time: Option<Timestamp>,
}

/// A reference and an image name: the unit images are ranked in.
type Slot<'a> = (ReferenceKind, &'a str, &'a str);

/// The git decisions of a repository's tags: `Ok` a decision, `Err` why the count and age rules
/// decide instead. `ages` are the tags' ages, `skip` marks tags git does not decide (referrers
/// schema tags).
pub(super) fn decide(
    git: &GitRetention,
    inventory: &RepositoryInventory,
    ages: &[Option<Age>],
    skip: &[bool],
    now: Timestamp,
) -> Vec<Option<Result<Decision, Unplaced>>> {
    let empty = SourceLabels::default();
    let evidence: Vec<Option<Evidence>> = inventory
        .tags
        .iter()
        .zip(skip)
        .map(|(entry, &skip)| {
            let labels = inventory.manifests.get(&entry.digest).map_or(&empty, |m| &m.source);
            (!skip).then(|| evidence_of(&entry.image_tag, labels, git.tag_rules.as_ref()))
        })
        .collect();
    let placed: Vec<Option<Placed<'_>>> =
        evidence.iter().map(|evidence| evidence.as_ref().map(|e| place(&git.facts, e))).collect();
    let ranks = rank_images(inventory, &placed, ages);
    let selected = select_references(git, now);
    let mut decisions = Vec::with_capacity(inventory.tags.len());
    for (index, entry) in inventory.tags.iter().enumerate() {
        let (Some(evidence), Some(placed)) = (&evidence[index], &placed[index]) else {
            decisions.push(None);
            continue;
        };
        if evidence.is_empty() {
            decisions.push(Some(Err(Unplaced::NoEvidence)));
            continue;
        }
        let rank_in = |reference: &GitReference| {
            ranks
                .get(&(reference.kind, reference.name.as_str(), entry.image.as_str()))
                .and_then(|digests| digests.iter().position(|digest| **digest == entry.digest))
        };
        let image_age =
            placed.commit_time.or(ages[index].map(|age| age.at)).and_then(|at| age_at(now, at));
        let kept = git.policies.iter().zip(&selected).find_map(|(policy, references)| {
            references.iter().find_map(|reference| {
                let rank = rank_in(reference)?;
                policy.images.admits(rank, image_age).then(|| Keep::Reference {
                    kind: reference.kind,
                    name: reference.name.clone(),
                    rank: rank + 1,
                    limit: policy.images.describe(),
                })
            })
        });
        let decision = if let Some(keep) = kept {
            Ok(Decision::Keep(keep))
        } else if let Some(number) = evidence.pr {
            Ok(pull_request(git, number, ages[index], now))
        } else if git.facts.shallow {
            Ok(Decision::Keep(Keep::HistoryGap(Gap::Shallow)))
        } else if git.facts.partial_branches {
            Ok(Decision::Keep(Keep::HistoryGap(Gap::SomeBranches)))
        } else if ages[index].is_none() {
            // like every rule of the planner: an unknown age never deletes
            Ok(Decision::Keep(Keep::AgeUnknown))
        } else if let Some((reference, _)) = placed.in_references.first() {
            let rank = rank_in(reference).map_or(1, |rank| rank + 1);
            Ok(Decision::Delete(Delete::NotKept {
                kind: reference.kind,
                name: reference.name.clone(),
                rank,
            }))
        } else if let Some(commit) = &evidence.commit {
            Ok(unreachable(git, evidence, commit, ages[index], now))
        } else {
            let name = evidence.names.first().map(describe_name).unwrap_or_default();
            Err(Unplaced::Unknown(name))
        };
        let source = evidence.source.clone().unwrap_or(Source::Labels);
        decisions.push(Some(decision.map(|decision| match decision {
            Decision::Keep(keep) => Decision::Keep(Keep::Evidenced(Box::new(keep), source)),
            Decision::Delete(delete) => {
                Decision::Delete(Delete::Evidenced(Box::new(delete), source))
            }
        })));
    }
    decisions
}

/// Per reference and image name: the digests in it, ranked by their commit's place in the
/// reference's history (tip first), then newest image, then digest.
fn rank_images<'a>(
    inventory: &'a RepositoryInventory,
    placed: &[Option<Placed<'a>>],
    ages: &[Option<Age>],
) -> HashMap<Slot<'a>, Vec<&'a Digest>> {
    let mut best: HashMap<Slot<'a>, HashMap<&'a Digest, (usize, Reverse<Timestamp>)>> =
        HashMap::new();
    for (index, placed) in placed.iter().enumerate() {
        let Some(placed) = placed else { continue };
        let entry = &inventory.tags[index];
        let at = ages[index].map_or(Timestamp::MIN, |age| age.at);
        for (reference, position) in &placed.in_references {
            let key = (reference.kind, reference.name.as_str(), entry.image.as_str());
            let slot = best
                .entry(key)
                .or_default()
                .entry(&entry.digest)
                .or_insert((*position, Reverse(at)));
            *slot = (*slot).min((*position, Reverse(at)));
        }
    }
    best.into_iter()
        .map(|(key, digests)| {
            let mut ordered: Vec<(&Digest, (usize, Reverse<Timestamp>))> =
                digests.into_iter().collect();
            ordered.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
            (key, ordered.into_iter().map(|(digest, _)| digest).collect())
        })
        .collect()
}

/// Per policy: the references it selects, most recently committed to first.
fn select_references(git: &GitRetention, now: Timestamp) -> Vec<Vec<&GitReference>> {
    git.policies
        .iter()
        .map(|policy| {
            let mut matching: Vec<&GitReference> = git
                .facts
                .references
                .iter()
                .filter(|reference| {
                    reference.kind == policy.kind && policy.pattern.matches(&reference.name)
                })
                .collect();
            matching.sort_by(|a, b| b.tip_time.cmp(&a.tip_time).then_with(|| a.name.cmp(&b.name)));
            matching
                .into_iter()
                .enumerate()
                .filter(|(rank, reference)| {
                    policy.references.admits(*rank, age_at(now, reference.tip_time))
                })
                .map(|(_, reference)| reference)
                .collect()
        })
        .collect()
}

/// The decision for an image whose commit no reference holds: kept within the grace period
/// (or when its age is unknown), else deleted.
fn unreachable(
    git: &GitRetention,
    evidence: &Evidence,
    commit: &str,
    age: Option<Age>,
    now: Timestamp,
) -> Decision {
    let gone = gone(&git.facts, evidence, commit);
    match age {
        Some(age) if now.duration_since(age.at) < super::signed(git.grace_period) => {
            Decision::Keep(Keep::Grace { gone, grace: git.grace_period, age: age.describe(now) })
        }
        Some(_) => Decision::Delete(Delete::Gone(gone)),
        None => Decision::Keep(Keep::AgeUnknown),
    }
}

/// The decision for an image of pull request `number` that no keep policy keeps: an open one,
/// or one of unknown state, stays; a closed or merged one goes once the image is older than
/// the grace period, unless the history has a gap (a policy might have kept it) or its age is
/// unknown.
fn pull_request(git: &GitRetention, number: u64, age: Option<Age>, now: Timestamp) -> Decision {
    let pull_request = PullRequest { forge: git.pull_requests.forge, number };
    let state = match git.pull_requests.state(number) {
        PrState::Known(State::Open) => return Decision::Keep(Keep::PullRequestOpen(pull_request)),
        PrState::Unknown(why) => {
            return Decision::Keep(Keep::PullRequestUnknown(pull_request, why));
        }
        PrState::Known(state) => state,
    };
    if git.facts.shallow {
        return Decision::Keep(Keep::HistoryGap(Gap::Shallow));
    }
    if git.facts.partial_branches {
        return Decision::Keep(Keep::HistoryGap(Gap::SomeBranches));
    }
    match age {
        None => Decision::Keep(Keep::AgeUnknown),
        Some(age) if now.duration_since(age.at) < super::signed(git.grace_period) => {
            Decision::Keep(Keep::PullRequestGrace {
                pull_request,
                state,
                grace: git.grace_period,
                age: age.describe(now),
            })
        }
        Some(_) => Decision::Delete(Delete::PullRequest { pull_request, state }),
    }
}

/// How long ago `at` was, if it was not in the future.
fn age_at(now: Timestamp, at: Timestamp) -> Option<Duration> {
    Duration::try_from(now.duration_since(at)).ok()
}

/// Where the evidence puts the image: the references holding its commit, else those its
/// names give (as their tip image).
fn place<'g>(facts: &'g GitFacts, evidence: &Evidence) -> Placed<'g> {
    if let Some(commit) = evidence.commit.as_ref().and_then(|commit| facts.commits.get(commit)) {
        let in_references = facts
            .references
            .iter()
            .filter_map(|reference| {
                let position = reference.reaches.iter().position(|id| *id == commit.id)?;
                Some((reference, position))
            })
            .collect();
        return Placed { in_references, commit_time: Some(commit.time) };
    }
    if evidence.commit.is_some() {
        return Placed { in_references: Vec::new(), commit_time: None };
    }
    let in_references = facts
        .references
        .iter()
        .filter(|reference| evidence.names.iter().any(|named| names(named, reference)))
        .map(|reference| (reference, 0))
        .collect();
    Placed { in_references, commit_time: None }
}

/// `true` if `named` names `reference`.
fn names(named: &Named, reference: &GitReference) -> bool {
    match (named, reference.kind) {
        (Named::Ref(name), _) => *name == reference.name,
        (Named::BranchSlug(text), ReferenceKind::Branch) => slug(&reference.name) == *text,
        (Named::GitTag(text), ReferenceKind::Tag) => {
            sanitize_tag(&reference.name).is_some_and(|tag| tag.as_str() == text)
        }
        (Named::Semver(version), ReferenceKind::Tag) => {
            let name = reference.name.strip_prefix('v').unwrap_or(&reference.name);
            semver::Version::parse(name).is_ok_and(|parsed| parsed == *version)
        }
        _ => false,
    }
}

fn describe_name(named: &Named) -> String {
    match named {
        Named::Ref(name) | Named::BranchSlug(name) | Named::GitTag(name) => name.clone(),
        Named::Semver(version) => version.to_string(),
    }
}

/// Why the commit of an image no reference holds is gone, in words.
fn gone(facts: &GitFacts, evidence: &Evidence, commit: &str) -> String {
    let short = &commit[..8];
    let existing = facts.references.iter().find(|reference| {
        evidence.names.iter().any(|named| matches!(named, Named::Ref(_)) && names(named, reference))
    });
    if let Some(reference) = existing {
        return format!(
            "commit `{short}` is no longer in the history of {} `{}`",
            reference.kind.name(),
            reference.name
        );
    }
    let branch = evidence.names.iter().find_map(|named| match named {
        Named::Ref(name) | Named::BranchSlug(name) => Some(name),
        _ => None,
    });
    match branch {
        Some(name) => format!("branch `{name}` no longer exists (commit `{short}`)"),
        None => format!("commit `{short}` is on no branch or tag of the checkout"),
    }
}
