//! Pure retention planning: an [`Inventory`] and a [`Policy`] become a [`Plan`].
//!
//! Owns which tags and manifests are kept or deleted, the reason for each, and how each tag may
//! be deleted without collateral ([`DeleteMethod`]). Does no I/O and does not read the clock:
//! `now` is a parameter, so every rule is testable at any instant. Fails closed: an unknown age
//! never deletes, an incomplete repository deletes nothing, and a digest that anything staying
//! in the repository needs — a kept tag's digest, an index child, a referrer, transitively — is
//! never deleted.
//!
//! How a plan is made, per repository:
//! 1. Each tag is decided by the rules, first match wins: a tag the registry refuses to delete
//!    (locked, [`TagEntry::locked`]) is kept; a tag left on one of dockhand's throw-away
//!    manifests (an interrupted cleanup) is deleted; then `keep_tags`, release protection (a
//!    release, and a pre-release whose version has no release tag of its image yet),
//!    `keep_within`, git-aware retention when given ([`plan_with_git`]), `keep_last` (distinct
//!    digests per image name, newest first), unknown age;
//!    a tag no rule keeps is deleted. Tags in the referrers tag schema (`sha256-<hex>[.sig]`)
//!    are not counted by `keep_last`; they are decided by their subject instead (step 3).
//!    A targeted policy (`--delete-tag`) replaces step 1 but the lock: a tag it names is deleted,
//!    every other tag is kept, and untagged manifests stay; steps 3 to 5 apply unchanged, so a
//!    named tag whose digest another tag (or anything staying) needs goes alone, by tag.
//! 2. With `delete_untagged`, each untagged manifest is kept when young or of unknown age and
//!    otherwise deleted, unless step 3 finds something staying needs it. Without it untagged
//!    manifests are out of scope (not listed) and simply stay.
//! 3. Settling: everything that stays is a root (and so is every tag outside the cleanup's
//!    scope, which a plan never lists); its index children and referrers are reachable,
//!    transitively. Reachable untagged manifests and referrers tags of reachable digests are kept.
//! 4. `max_deletes` keeps the newest surplus deletions (reason "budget reached, rerun to
//!    continue") and the plan settles again, since what now stays may need more.
//! 5. A deleted tag may go by digest ([`DeleteMethod::Digest`]) only when every tag on that digest
//!    is deleted and nothing staying reaches it; otherwise only the tag goes.
//!
//! Deletions are ordered so that nothing staying in the registry ever points to a removed
//! manifest, even if the run stops half-way: a manifest is removed before those it points to
//! (index before children, referrer before subject), older first among the rest.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::cleanup::evidence::Source;
use crate::cleanup::git::ReferenceKind;
use crate::cleanup::graph::{Edge, Graph};
use crate::cleanup::inventory::{Inventory, RepositoryInventory, TagEntry, TimeSource};
use crate::cleanup::policy::{Policy, format_approximately, format_duration, looks_like_release};
use crate::project::PreReleases;
use crate::reference::{Digest, RepoAddress, Tag, referrers_subject};
use crate::registry::pull_requests::{Forge, State, Unavailable};

/// What a cleanup will keep and delete, each item with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every tag in scope that stays, and (with `delete_untagged`) every untagged manifest that
    /// stays, each with the rule that kept it.
    pub kept: Vec<PlanItem>,
    /// What to delete, in the order to delete it.
    pub deleted: Vec<Deletion>,
    /// `true` if and only if `max_deletes` cut the deletions short; a rerun continues.
    pub budget_reached: bool,
    /// Repositories whose inventory was incomplete: nothing in them is deleted.
    pub incomplete: Vec<RepoAddress>,
    /// Tags named by `--delete-tag` that are no tag in scope (reported, not an error).
    pub not_found: Vec<Tag>,
}

/// One kept or deleted tag or untagged manifest, serialised with the SPEC's keys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanItem {
    /// The repository (`registry/path`).
    #[serde(serialize_with = "display")]
    pub repository: Arc<RepoAddress>,
    /// The tag as stored in the registry; `None` (JSON `null`) for an untagged manifest.
    pub tag: Option<Tag>,
    pub digest: Digest,
    /// The image name the tag belongs to; absent for untagged manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Arc<str>>,
    /// A sentence naming the rule that decided, starting with `kept:` or `deleted:`.
    pub reason: Arc<str>,
}

/// One deletion: the item and how to delete it without collateral.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Deletion {
    #[serde(flatten)]
    pub item: PlanItem,
    /// JSON `removes`: `"manifest"` (the manifest and every tag on it) or `"tag"` (this tag
    /// alone; the manifest stays).
    #[serde(rename = "removes")]
    pub method: DeleteMethod,
}

/// How a deletion may be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum DeleteMethod {
    /// Delete the manifest by digest. Chosen only when every tag on the digest is deleted by this
    /// plan and nothing staying reaches it, so removing all its tags at once is intended (the
    /// digest may already be gone when a sibling tag's deletion removed it). Always the method
    /// of an untagged manifest.
    #[serde(rename = "manifest")]
    Digest,
    /// Remove only this tag (tag DELETE, tombstone manifest, or the native untag API): another tag
    /// on the digest stays, or something staying needs the manifest.
    #[serde(rename = "tag")]
    TagOnly,
}

fn display<S: serde::Serializer>(
    value: &Arc<RepoAddress>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Plans the cleanup of every repository in `inventory` under `policy` at instant `now`.
/// Pure and deterministic: the same inventory (in any tag order), policy and instant give the
/// same plan.
pub fn plan(inventory: &Inventory, policy: &Policy, now: Timestamp) -> Plan {
    plan_with_git(inventory, policy, None, now)
}

/// [`plan`] with git-aware retention when `git` is given: a tag that no keep rule before it
/// (`keep_tags`, release protection, `keep_within`) keeps is decided by where its evidence puts
/// it in the checkout's history, or, without usable evidence, by the count and age rules.
pub fn plan_with_git(
    inventory: &Inventory,
    policy: &Policy,
    git: Option<&GitRetention>,
    now: Timestamp,
) -> Plan {
    let mut repositories: Vec<RepositoryPlan<'_>> = inventory
        .repositories
        .iter()
        .map(|repository| RepositoryPlan::new(repository, policy, git, now))
        .collect();
    let budget_reached = apply_budget(&mut repositories, policy);
    if budget_reached {
        for repository in &mut repositories {
            repository.settle();
        }
    }
    let not_found = policy
        .delete_tags
        .iter()
        .filter(|named| {
            !inventory
                .repositories
                .iter()
                .flat_map(|repository| &repository.tags)
                .any(|entry| entry.tag == **named || entry.image_tag == named.as_str())
        })
        .cloned()
        .collect();
    let mut plan = Plan {
        kept: Vec::new(),
        deleted: Vec::new(),
        budget_reached,
        incomplete: Vec::new(),
        not_found,
    };
    let mut reasons = Reasons::default();
    for repository in &repositories {
        repository.emit(&mut plan, &mut reasons);
    }
    plan
}

/// The plan's reasons, each text once: many items share one (ages are written to the day or
/// hour), so a plan of 100,000 deletions holds a few hundred strings, not 100,000.
#[derive(Default)]
struct Reasons {
    texts: HashSet<Arc<str>>,
}

impl Reasons {
    fn of(&mut self, decision: &Decision) -> Arc<str> {
        let text = decision.to_string();
        if let Some(shared) = self.texts.get(text.as_str()) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = text.into();
        self.texts.insert(Arc::clone(&shared));
        shared
    }
}

/// An age reference point and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Age {
    at: Timestamp,
    source: TimeSource,
}

impl Age {
    /// The age as of `now`, for a reason: written out only when the reason is.
    fn describe(self, now: Timestamp) -> Described {
        Described { age: self, now }
    }
}

/// An [`Age`] seen from the planning instant: "image config created 35m ago", "pushed 5m in
/// the future". Kept as the two instants, not as text, so a plan of many tags holds no string
/// per age until its reasons are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Described {
    age: Age,
    now: Timestamp,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let age = self.now.duration_since(self.age.at);
        let magnitude = Duration::try_from(age.abs()).unwrap_or(Duration::MAX);
        let when = if age.is_negative() { "in the future" } else { "ago" };
        write!(f, "{} {} {when}", self.age.source.describe(), format_approximately(magnitude))
    }
}

/// A keep or delete decision and its reason: the rules' words are written once, in its
/// `Display` (what the plan's items say after `kept:` or `deleted:`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    Keep(Keep),
    Delete(Delete),
}

/// Why something stays.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Keep {
    /// The repository's inventory is incomplete (everything in it stays).
    Incomplete,
    /// The registry refuses to delete the tag, for this reason (an immutability rule).
    Locked(String),
    /// A targeted cleanup (`--delete-tag`) that does not name it.
    NotNamed,
    /// A `keep_tags` pattern matches.
    Pattern(String),
    /// The tag looks like a release and `delete_releases` is off.
    Release(String),
    /// The tag is a pre-release of a version with no release tag yet (`delete_releases` off,
    /// or `cleanup.releases` when `section`).
    PreRelease {
        tag: String,
        version: String,
        section: bool,
    },
    /// `cleanup.releases` keeps this release.
    Version {
        tag: String,
        rank: Rank,
    },
    /// A pre-release, and `cleanup.releases.pre_releases` is `keep`.
    PreReleaseKept(String),
    /// `latest` or a floating version (`v2.3`) on the digest of a kept release tag.
    Alias {
        tag: String,
        release: String,
    },
    /// Younger than `keep_within`; `age` as described at planning time.
    Younger {
        within: Duration,
        age: Described,
    },
    /// Among the newest `keep_last` images of the image.
    Newest {
        keep_last: usize,
        image: Arc<str>,
    },
    AgeUnknown,
    /// Untagged manifests are out of scope without `delete_untagged`.
    UntaggedNotInScope,
    UntaggedYounger {
        within: Duration,
        age: Described,
    },
    /// A referrers-schema tag whose subject stays.
    ReferrersOfKept(Digest),
    /// Something staying reaches it (described by [`Reach::describe`]).
    Reachable(String),
    /// `max_deletes` left it for the next run.
    Budget {
        max_deletes: usize,
    },
    /// A keep policy keeps it as image `rank` (from 1) of this reference.
    Reference {
        kind: ReferenceKind,
        name: String,
        rank: usize,
        /// What the policy keeps of each reference, described.
        limit: String,
    },
    /// An image of this pull request, which is open.
    PullRequestOpen(PullRequest),
    /// An image of this pull request, whose state is unknown (and why).
    PullRequestUnknown(PullRequest, PrUnknown),
    /// An image of this closed or merged pull request, younger than the grace period.
    PullRequestGrace {
        pull_request: PullRequest,
        state: State,
        grace: Duration,
        age: Described,
    },
    /// Git-aware retention found no reason to keep it, but the checkout's history has a gap.
    HistoryGap(Gap),
    /// Its branch or commit is gone, but it is younger than the grace period.
    Grace {
        gone: String,
        grace: Duration,
        age: Described,
    },
    /// Git could not place it; the count and age rules kept it.
    Unplaced(Unplaced, Box<Keep>),
    /// Git-aware retention kept it, from this evidence.
    Evidenced(Box<Keep>, Source),
}

/// Why something goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delete {
    /// Named by `--delete-tag` (the name as matched).
    Named(String),
    /// A throw-away manifest an interrupted cleanup left on the tag.
    Tombstone,
    /// No keep rule kept it, for these reasons.
    Rules(Unkept),
    /// Untagged and unreachable, and older than `keep_within` when that is set.
    Untagged { older: Option<(Duration, Described)> },
    /// Image `rank` (from 1) of this reference, and no keep policy keeps it.
    NotKept { kind: ReferenceKind, name: String, rank: usize },
    /// Its branch or commit is gone (in words), and it is older than the grace period.
    Gone(String),
    /// An image of this closed or merged pull request, older than the grace period.
    PullRequest { pull_request: PullRequest, state: State },
    /// A release outside every limit of `cleanup.releases`.
    Version { tag: String, outside: Outside },
    /// A pre-release whose version has a release tag (`cleanup.releases`).
    PreReleased { tag: String, version: String },
    /// Git could not place it; the count and age rules did not keep it.
    Unplaced(Unplaced, Box<Delete>),
    /// Git-aware retention deleted it, from this evidence.
    Evidenced(Box<Delete>, Source),
}

/// Why no count, age or pattern rule keeps a tag: each rule that applied and did not keep it
/// (none at all: no keep rule is configured). Held inline, as a plan of many tags has one each.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unkept {
    /// A referrers-schema tag of this subject, which is not kept.
    referrers_of: Option<Digest>,
    /// Older than `keep_within`.
    older: Option<(Duration, Described)>,
    /// Not among the newest `keep_last` images of this image.
    not_newest: Option<(usize, Arc<str>)>,
    /// `keep_tags` are configured and none matches.
    no_keep_tag: bool,
}

impl Decision {
    fn keeps(&self) -> bool {
        matches!(self, Self::Keep(_))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Keep(keep) => write!(f, "kept: {keep}"),
            Self::Delete(delete) => write!(f, "deleted: {delete}"),
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("inventory incomplete"),
            Self::Locked(reason) => write!(f, "the registry refuses to delete it ({reason})"),
            Self::NotNamed => f.write_str("not named by --delete-tag"),
            Self::Pattern(pattern) => write!(f, "matches keep_tags `{pattern}`"),
            Self::Release(tag) => {
                write!(f, "`{tag}` looks like a release (delete_releases is off)")
            }
            Self::PreRelease { tag, version, section } => {
                write!(f, "`{tag}` is a pre-release of {version}, which has no release tag yet")?;
                if !section {
                    f.write_str(" (delete_releases is off)")?;
                }
                Ok(())
            }
            Self::Version { tag, rank } => write!(f, "`{tag}` is {rank}"),
            Self::PreReleaseKept(tag) => {
                write!(f, "`{tag}` is a pre-release (cleanup.releases.pre_releases is keep)")
            }
            Self::Alias { tag, release } => {
                write!(f, "`{tag}` points at release `{release}`, which is kept")
            }
            Self::Younger { within, age } => {
                write!(f, "younger than {} ({age})", format_duration(*within))
            }
            Self::Newest { keep_last, image } => {
                write!(f, "among the newest {keep_last} images of `{image}`")
            }
            Self::AgeUnknown => f.write_str("age unknown"),
            Self::UntaggedNotInScope => f.write_str("untagged and delete_untagged is off"),
            Self::UntaggedYounger { within, age } => {
                write!(f, "untagged, younger than {} ({age})", format_duration(*within))
            }
            Self::ReferrersOfKept(digest) => {
                write!(f, "referrers tag of `{digest}`, which is kept")
            }
            Self::Reachable(how) => write!(f, "reachable from kept {how}"),
            Self::Budget { max_deletes } => {
                write!(f, "budget reached, rerun to continue (max_deletes {max_deletes})")
            }
            Self::Reference { kind, name, rank, limit } => {
                write!(f, "{} `{name}`, image {rank} (a keep policy keeps {limit})", kind.name())
            }
            Self::PullRequestOpen(pull_request) => write!(f, "{pull_request} is open"),
            Self::PullRequestUnknown(pull_request, why) => {
                write!(f, "{pull_request} state unknown ({why}), so its images stay")
            }
            Self::PullRequestGrace { pull_request, state, grace, age } => write!(
                f,
                "{pull_request} is {}, but the image is younger than the grace period {} ({age})",
                state_word(*state),
                format_duration(*grace)
            ),
            Self::HistoryGap(gap) => write!(f, "{gap}"),
            Self::Grace { gone, grace, age } => write!(
                f,
                "{gone}, but the image is younger than the grace period {} ({age})",
                format_duration(*grace)
            ),
            Self::Unplaced(unplaced, keep) => {
                write!(f, "{unplaced}, so count and age decide: {keep}")
            }
            Self::Evidenced(keep, source) => write!(f, "{keep}; evidence: {source}"),
        }
    }
}

impl fmt::Display for Delete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(target) => write!(f, "named by --delete-tag `{target}`"),
            Self::Tombstone => {
                f.write_str("a throw-away manifest an interrupted cleanup left on this tag")
            }
            Self::Rules(unkept) => write!(f, "{unkept}"),
            Self::Untagged { older: None } => {
                f.write_str("untagged and unreachable from anything kept")
            }
            Self::Untagged { older: Some((within, age)) } => write!(
                f,
                "untagged, unreachable from anything kept, and older than {} ({age})",
                format_duration(*within)
            ),
            Self::NotKept { kind, name, rank } => {
                write!(f, "image {rank} of {} `{name}`, which no keep policy keeps", kind.name())
            }
            Self::Gone(gone) => f.write_str(gone),
            Self::PullRequest { pull_request, state } => {
                write!(f, "{pull_request} is {}", state_word(*state))
            }
            Self::Version { tag, outside } => write!(f, "`{tag}` is {outside}"),
            Self::PreReleased { tag, version } => {
                write!(f, "`{tag}` is a pre-release of {version}, which is released")
            }
            Self::Unplaced(unplaced, delete) => {
                write!(f, "{unplaced}, so count and age decide: {delete}")
            }
            Self::Evidenced(delete, source) => write!(f, "{delete}; evidence: {source}"),
        }
    }
}

impl fmt::Display for Unkept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(subject) = &self.referrers_of {
            parts.push(format!("referrers tag of `{subject}`, which is not kept"));
        }
        if let Some((within, age)) = &self.older {
            parts.push(format!("older than {} ({age})", format_duration(*within)));
        }
        if let Some((keep_last, image)) = &self.not_newest {
            parts.push(format!("not among the newest {keep_last} images of `{image}`"));
        }
        if self.no_keep_tag {
            parts.push("matching no keep_tags pattern".to_owned());
        }
        if parts.is_empty() {
            return f.write_str("no keep rule is configured");
        }
        f.write_str(&join_and(&parts))
    }
}

/// What the checkout's history lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// A shallow clone.
    Shallow,
    /// Only some of `origin`'s branches were fetched.
    SomeBranches,
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shallow => f.write_str(
                "the checkout is a shallow clone, whose history cannot prove the image unneeded \
                 (fetch the full history: `fetch-depth: 0` on GitHub, `GIT_DEPTH: 0` on GitLab)",
            ),
            Self::SomeBranches => f.write_str(
                "the checkout did not fetch every branch, so its history cannot prove the image \
                 unneeded (fetch them first: `git fetch origin '+refs/heads/*:refs/remotes/origin/*'`)",
            ),
        }
    }
}

impl fmt::Display for Unplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoEvidence => {
                f.write_str("no git evidence (no revision label, and no tag rule reads the tag)")
            }
            Self::Unknown(name) => write!(f, "`{name}` is no branch or tag of the checkout"),
        }
    }
}

/// A pull request (GitHub, and when the forge is unknown) or merge request (GitLab), as the
/// plan names it: `PR #42`, `MR !7`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PullRequest {
    pub forge: Option<Forge>,
    pub number: u64,
}

impl fmt::Display for PullRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.forge {
            Some(Forge::Gitlab) => write!(f, "MR !{}", self.number),
            Some(Forge::Github) | None => write!(f, "PR #{}", self.number),
        }
    }
}

/// "open", "closed", "merged".
fn state_word(state: State) -> &'static str {
    match state {
        State::Open => "open",
        State::Closed => "closed",
        State::Merged => "merged",
    }
}

/// Why a pull request's state is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrUnknown {
    /// Nothing to ask, for this reason.
    Unavailable(Unavailable),
    /// The forge's API failed (in words).
    Failed(Forge, String),
}

impl fmt::Display for PrUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(Unavailable::NoProject) => f.write_str(
                "no GitHub repository or GitLab project is known: GITHUB_REPOSITORY and CI_PROJECT_ID are unset",
            ),
            Self::Unavailable(Unavailable::NoToken(forge)) => {
                write!(f, "no {} token", forge.name())
            }
            Self::Unavailable(Unavailable::BadUrl(forge, why)) => {
                write!(f, "the {} API URL is unusable: {why}", forge.name())
            }
            Self::Failed(forge, why) => write!(f, "the {} API failed: {why}", forge.name()),
        }
    }
}

/// What made a digest reachable: the staying root and the last hop.
#[derive(Debug, Clone, Copy)]
struct Reach<'a> {
    root: Root<'a>,
    /// The last hop: `None` for the root itself.
    via: Option<Edge>,
}

impl Reach<'_> {
    /// "tag `latest` as an index child", for [`Keep::Reachable`].
    fn describe(self) -> String {
        let root = match self.root {
            Root::Tag(tag) => format!("tag `{tag}`"),
            Root::Foreign(tag) => format!("tag `{tag}` (outside the cleanup's scope)"),
            Root::Manifest(digest) => format!("manifest `{digest}`"),
        };
        let via = match self.via {
            None => "",
            Some(Edge::IndexChild) => " as an index child",
            Some(Edge::Referrer) => " as a referrer",
        };
        format!("{root}{via}")
    }
}

#[derive(Debug, Clone, Copy)]
enum Root<'a> {
    Tag(&'a Tag),
    /// A tag outside the cleanup's scope.
    Foreign(&'a Tag),
    Manifest(&'a Digest),
}

/// A deletion target inside one repository.
#[derive(Debug, Clone, Copy)]
enum Target {
    Tag(usize),
    Untagged(usize),
}

/// The working state of one repository's plan.
struct RepositoryPlan<'a> {
    inventory: &'a RepositoryInventory,
    policy: &'a Policy,
    /// `false` when the inventory says so or contradicts itself: then everything is kept.
    complete: bool,
    /// Manifests no tag points to, in digest order.
    untagged: Vec<&'a Digest>,
    /// Tag indices in tag-name order.
    tags_by_name: Vec<usize>,
    /// Index children and referrers of each manifest.
    graph: Graph<'a>,
    /// Referrers-schema tag indices per subject digest, in tag-name order.
    referrers_tags_of: HashMap<Digest, Vec<usize>>,
    tag_ages: Vec<Option<Age>>,
    untagged_ages: Vec<Option<Age>>,
    tags: Vec<Decision>,
    untagged_decisions: Vec<Decision>,
    reach: HashMap<&'a Digest, Reach<'a>>,
    /// The release tags of each image, ranked by version.
    releases: Releases<'a>,
    /// Each image name, once, for the reasons that name it.
    image_names: HashMap<&'a str, Arc<str>>,
    /// The repository's address, once, for the plan's items.
    address: Arc<RepoAddress>,
    /// Per tag, with git-aware retention on: its git decision, or why count and age decide
    /// (`None` for a tag git does not decide).
    git_decisions: Vec<Option<Result<Decision, Unplaced>>>,
}

impl<'a> RepositoryPlan<'a> {
    fn new(
        inventory: &'a RepositoryInventory,
        policy: &'a Policy,
        git: Option<&GitRetention>,
        now: Timestamp,
    ) -> Self {
        let tagged: HashSet<&Digest> = inventory
            .tags
            .iter()
            .map(|entry| &entry.digest)
            .chain(inventory.foreign_tags.values())
            .collect();
        let mut tags_by_name: Vec<usize> = (0..inventory.tags.len()).collect();
        tags_by_name.sort_by(|a, b| inventory.tags[*a].tag.cmp(&inventory.tags[*b].tag));
        let consistent = tags_by_name
            .windows(2)
            .all(|pair| inventory.tags[pair[0]].tag != inventory.tags[pair[1]].tag)
            && tagged.iter().all(|digest| inventory.manifests.contains_key(*digest));
        let untagged: Vec<&Digest> =
            inventory.manifests.keys().filter(|digest| !tagged.contains(*digest)).collect();
        let mut state = Self {
            inventory,
            policy,
            complete: inventory.complete && consistent,
            untagged,
            tags_by_name,
            graph: Graph::new(inventory),
            referrers_tags_of: HashMap::new(),
            tag_ages: Vec::new(),
            untagged_ages: Vec::new(),
            tags: Vec::new(),
            untagged_decisions: Vec::new(),
            reach: HashMap::new(),
            git_decisions: Vec::new(),
            releases: Releases::default(),
            image_names: HashMap::new(),
            address: Arc::new(inventory.address.clone()),
        };
        for entry in &inventory.tags {
            let name = entry.image.as_str();
            state.image_names.entry(name).or_insert_with(|| Arc::from(name));
        }
        if !state.complete {
            state.tags = vec![Decision::Keep(Keep::Incomplete); inventory.tags.len()];
            state.untagged_decisions = vec![Decision::Keep(Keep::Incomplete); state.untagged.len()];
            return state;
        }
        // in tag-name order, like every root, so the plan does not depend on the tag order
        for &index in &state.tags_by_name {
            if let Some(subject) = referrers_subject(&inventory.tags[index].tag) {
                state.referrers_tags_of.entry(subject).or_default().push(index);
            }
        }
        state.tag_ages = inventory.tags.iter().map(|entry| state.tag_age(entry)).collect();
        state.untagged_ages = state
            .untagged
            .iter()
            .map(|digest| {
                inventory.manifests[*digest].created_at().map(|(at, source)| Age { at, source })
            })
            .collect();
        state.releases =
            Releases::new(&inventory.tags, policy.releases.as_ref(), !policy.delete_releases);
        if let Some(git) = git {
            let skip: Vec<bool> = inventory
                .tags
                .iter()
                .map(|entry| referrers_subject(&entry.tag).is_some())
                .collect();
            state.git_decisions = retention::decide(git, inventory, &state.tag_ages, &skip, now);
        }
        let newest = state.newest_per_image();
        state.tags =
            (0..inventory.tags.len()).map(|index| state.decide_tag(index, &newest, now)).collect();
        state.untagged_decisions =
            (0..state.untagged.len()).map(|index| state.decide_untagged(index, now)).collect();
        state.settle();
        state
    }

    /// The image name of `entry`, shared by every reason that names it.
    fn image_name(&self, entry: &TagEntry) -> Arc<str> {
        Arc::clone(&self.image_names[entry.image.as_str()])
    }

    /// A tag's own push time, else its manifest's age.
    fn tag_age(&self, entry: &TagEntry) -> Option<Age> {
        if let Some(at) = entry.pushed {
            return Some(Age { at, source: TimeSource::TagPushed });
        }
        self.inventory
            .manifests
            .get(&entry.digest)?
            .created_at()
            .map(|(at, source)| Age { at, source })
    }

    /// The `keep_last` newest digests of each image name, as (image, digest) pairs. A digest's
    /// time within an image is the newest known age of its tags there; digests of unknown age are
    /// not ranked (their tags are kept anyway), and referrers-schema tags do not count.
    fn newest_per_image(&self) -> HashSet<(&'a str, &'a Digest)> {
        let Some(keep_last) = self.policy.keep_last else { return HashSet::new() };
        let mut times: HashMap<&'a str, HashMap<&'a Digest, Timestamp>> = HashMap::new();
        for (entry, age) in self.inventory.tags.iter().zip(&self.tag_ages) {
            let Some(age) = age else { continue };
            if referrers_subject(&entry.tag).is_some() {
                continue;
            }
            let time = times
                .entry(entry.image.as_str())
                .or_default()
                .entry(&entry.digest)
                .or_insert(age.at);
            *time = (*time).max(age.at);
        }
        let mut newest = HashSet::new();
        for (image, digests) in times {
            let mut ranked: Vec<(&Digest, Timestamp)> = digests.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            newest.extend(ranked.into_iter().take(keep_last).map(|(digest, _)| (image, digest)));
        }
        newest
    }

    fn decide_tag(
        &self,
        index: usize,
        newest: &HashSet<(&str, &Digest)>,
        now: Timestamp,
    ) -> Decision {
        let policy = self.policy;
        let entry = &self.inventory.tags[index];
        let names = [entry.tag.as_str(), entry.image_tag.as_str()];
        if let Some(reason) = &entry.locked {
            return Decision::Keep(Keep::Locked(reason.clone()));
        }
        if !policy.delete_tags.is_empty() {
            return match policy.delete_tag_match(&names) {
                Some(target) => Decision::Delete(Delete::Named(target.to_string())),
                None => Decision::Keep(Keep::NotNamed),
            };
        }
        if self.inventory.manifests.get(&entry.digest).is_some_and(|manifest| manifest.tombstone) {
            return Decision::Delete(Delete::Tombstone);
        }
        if let Some(keep) = policy.keep_tag_match(&names) {
            return Decision::Keep(Keep::Pattern(keep.pattern().to_owned()));
        }
        if let Some(decision) = self.decide_release(entry, names) {
            // the release rules need no age to delete, but an unknown age never deletes
            return match (decision, self.tag_ages[index]) {
                (Decision::Delete(_), None) => Decision::Keep(Keep::AgeUnknown),
                (decision, _) => decision,
            };
        }
        let age = self.tag_ages[index];
        if let (Some(within), Some(age)) = (policy.keep_within, age)
            && now.duration_since(age.at) < signed(within)
        {
            return Decision::Keep(Keep::Younger { within, age: age.describe(now) });
        }
        match self.git_decisions.get(index).cloned().flatten() {
            Some(Ok(decision)) => decision,
            Some(Err(unplaced)) => match self.by_count(index, newest, now) {
                Decision::Keep(keep) => Decision::Keep(Keep::Unplaced(unplaced, Box::new(keep))),
                Decision::Delete(delete) => {
                    Decision::Delete(Delete::Unplaced(unplaced, Box::new(delete)))
                }
            },
            None => self.by_count(index, newest, now),
        }
    }

    /// What release protection or `cleanup.releases` says of a tag, when either decides it: a
    /// release, a pre-release, or a tag pointing at a kept release (`latest`, `v2.3`).
    fn decide_release(&self, entry: &TagEntry, names: [&str; 2]) -> Option<Decision> {
        let policy = self.policy;
        let image = entry.image.as_str();
        if let Some(tag) = names.into_iter().find(|name| looks_like_release(name)) {
            let tag = tag.to_owned();
            return match (&policy.releases, release_version(&tag)) {
                (Some(rules), Some(version)) => {
                    Some(match self.releases.decide(image, version, rules) {
                        Ok(rank) => Decision::Keep(Keep::Version { tag, rank }),
                        Err(outside) => Decision::Delete(Delete::Version { tag, outside }),
                    })
                }
                _ if policy.delete_releases => None,
                _ => Some(Decision::Keep(Keep::Release(tag))),
            };
        }
        if let Some((tag, version)) = names.into_iter().find_map(pre_release) {
            let (major, minor, patch) = version;
            let tag = tag.to_owned();
            let released = self.releases.has(image, version);
            let version = format!("{major}.{minor}.{patch}");
            let section = policy.releases.map(|rules| rules.pre_releases);
            match section {
                None if policy.delete_releases => {}
                None if !released => {
                    return Some(Decision::Keep(Keep::PreRelease { tag, version, section: false }));
                }
                None | Some(PreReleases::Rules) => {}
                Some(PreReleases::Keep) => return Some(Decision::Keep(Keep::PreReleaseKept(tag))),
                Some(PreReleases::UntilReleased) if released => {
                    return Some(Decision::Delete(Delete::PreReleased { tag, version }));
                }
                Some(PreReleases::UntilReleased) => {
                    return Some(Decision::Keep(Keep::PreRelease { tag, version, section: true }));
                }
            }
        }
        names.into_iter().find_map(|name| {
            let release = self.releases.alias_of(entry, name)?;
            Some(Decision::Keep(Keep::Alias { tag: name.to_owned(), release: release.to_owned() }))
        })
    }

    /// The count and age rules' decision (`keep_last`, unknown age, else deleted).
    fn by_count(
        &self,
        index: usize,
        newest: &HashSet<(&str, &Digest)>,
        now: Timestamp,
    ) -> Decision {
        let policy = self.policy;
        let entry = &self.inventory.tags[index];
        let subject = referrers_subject(&entry.tag);
        let age = self.tag_ages[index];
        if let Some(keep_last) = policy.keep_last
            && newest.contains(&(entry.image.as_str(), &entry.digest))
        {
            return Decision::Keep(Keep::Newest { keep_last, image: self.image_name(entry) });
        }
        let Some(age) = age else { return Decision::Keep(Keep::AgeUnknown) };
        let not_newest = match (policy.keep_last, &subject) {
            (Some(keep_last), None) => Some((keep_last, self.image_name(entry))),
            _ => None,
        };
        Decision::Delete(Delete::Rules(Unkept {
            older: policy.keep_within.map(|within| (within, age.describe(now))),
            referrers_of: subject,
            not_newest,
            no_keep_tag: !policy.keep_tags.is_empty(),
        }))
    }

    fn decide_untagged(&self, index: usize, now: Timestamp) -> Decision {
        if !self.policy.delete_untagged {
            return Decision::Keep(Keep::UntaggedNotInScope);
        }
        let Some(age) = self.untagged_ages[index] else {
            return Decision::Keep(Keep::AgeUnknown);
        };
        match self.policy.keep_within {
            Some(within) if now.duration_since(age.at) < signed(within) => {
                Decision::Keep(Keep::UntaggedYounger { within, age: age.describe(now) })
            }
            Some(within) => {
                Decision::Delete(Delete::Untagged { older: Some((within, age.describe(now))) })
            }
            None => Decision::Delete(Delete::Untagged { older: None }),
        }
    }

    /// Recomputes what everything staying reaches (index children and referrers, transitively)
    /// and keeps the deletions it reaches: untagged manifests, and referrers-schema tags whose
    /// subject is reached. Only ever turns deletions into keeps.
    fn settle(&mut self) {
        if !self.complete {
            return;
        }
        let inventory = self.inventory;
        let mut reach: HashMap<&'a Digest, Reach<'a>> = HashMap::new();
        let mut queue: VecDeque<&'a Digest> = VecDeque::new();
        for &index in &self.tags_by_name {
            if self.tags[index].keeps() {
                let entry = &inventory.tags[index];
                visit(
                    &mut reach,
                    &mut queue,
                    &entry.digest,
                    Reach { root: Root::Tag(&entry.tag), via: None },
                );
            }
        }
        for (tag, digest) in &inventory.foreign_tags {
            visit(&mut reach, &mut queue, digest, Reach { root: Root::Foreign(tag), via: None });
        }
        for (index, digest) in self.untagged.iter().enumerate() {
            if self.untagged_decisions[index].keeps() {
                visit(
                    &mut reach,
                    &mut queue,
                    digest,
                    Reach { root: Root::Manifest(digest), via: None },
                );
            }
        }
        while let Some(digest) = queue.pop_front() {
            let root = reach[digest].root;
            for &index in self.referrers_tags_of.get(digest).into_iter().flatten() {
                if !self.tags[index].keeps() {
                    let entry = &inventory.tags[index];
                    self.tags[index] = Decision::Keep(Keep::ReferrersOfKept((*digest).clone()));
                    visit(
                        &mut reach,
                        &mut queue,
                        &entry.digest,
                        Reach { root: Root::Tag(&entry.tag), via: None },
                    );
                }
            }
            for (next, edge) in self.graph.next(digest) {
                visit(&mut reach, &mut queue, next, Reach { root, via: Some(edge) });
            }
        }
        for (index, digest) in self.untagged.iter().enumerate() {
            if let (false, Some(how)) = (self.untagged_decisions[index].keeps(), reach.get(digest))
            {
                self.untagged_decisions[index] = Decision::Keep(Keep::Reachable(how.describe()));
            }
        }
        self.reach = reach;
    }

    /// Current deletions with their age, for the budget.
    fn deletions(&self) -> impl Iterator<Item = (Target, Option<Timestamp>, &'a str)> + '_ {
        let tags = self.tags.iter().enumerate().filter(|(_, decision)| !decision.keeps()).map(
            |(index, _)| {
                (
                    Target::Tag(index),
                    self.tag_ages[index].map(|age| age.at),
                    self.inventory.tags[index].tag.as_str(),
                )
            },
        );
        let untagged = self
            .untagged_decisions
            .iter()
            .enumerate()
            .filter(|(_, decision)| !decision.keeps())
            .map(|(index, _)| {
                (
                    Target::Untagged(index),
                    self.untagged_ages[index].map(|age| age.at),
                    self.untagged[index].as_str(),
                )
            });
        tags.chain(untagged)
    }

    fn decision_mut(&mut self, target: Target) -> &mut Decision {
        match target {
            Target::Tag(index) => &mut self.tags[index],
            Target::Untagged(index) => &mut self.untagged_decisions[index],
        }
    }

    fn tag_item(&self, index: usize, reasons: &mut Reasons) -> PlanItem {
        let entry = &self.inventory.tags[index];
        PlanItem {
            repository: Arc::clone(&self.address),
            tag: Some(entry.tag.clone()),
            digest: entry.digest.clone(),
            image: Some(self.image_name(entry)),
            reason: reasons.of(&self.tags[index]),
        }
    }

    fn untagged_item(&self, index: usize, reasons: &mut Reasons) -> PlanItem {
        PlanItem {
            repository: Arc::clone(&self.address),
            tag: None,
            digest: self.untagged[index].clone(),
            image: None,
            reason: reasons.of(&self.untagged_decisions[index]),
        }
    }

    fn emit(&self, plan: &mut Plan, reasons: &mut Reasons) {
        if !self.complete {
            plan.incomplete.push(self.inventory.address.clone());
        }
        let listed_untagged = self.policy.delete_untagged;
        for &index in &self.tags_by_name {
            if self.tags[index].keeps() {
                plan.kept.push(self.tag_item(index, reasons));
            }
        }
        for (index, decision) in self.untagged_decisions.iter().enumerate() {
            if decision.keeps() && listed_untagged {
                plan.kept.push(self.untagged_item(index, reasons));
            }
        }
        self.push_ordered_deletions(&mut plan.deleted, reasons);
    }

    /// The deletions with their methods, each manifest removed before the manifests it points
    /// to (children, subject), older first otherwise. The deletions that remove one manifest
    /// (every tag of a digest deleted by digest) are kept together.
    fn push_ordered_deletions(&self, out: &mut Vec<Deletion>, reasons: &mut Reasons) {
        // a tag may go by digest when nothing staying reaches the digest; every kept tag's
        // digest is a root of `reach`, so this also means no other tag on it stays
        let by_digest = |digest: &Digest| !self.reach.contains_key(digest);
        // each deletion with its group (the deletions removing one manifest go together), and
        // per group the manifest it removes
        let mut entries: Vec<(usize, Timestamp, &'a str, Target, DeleteMethod)> = Vec::new();
        let mut removes_of: Vec<Option<&'a Digest>> = Vec::new();
        let mut group_of: HashMap<&'a Digest, usize> = HashMap::new();
        for (target, at, name) in self.deletions() {
            let (removes, method) = match target {
                Target::Tag(index) => {
                    let digest = &self.inventory.tags[index].digest;
                    if by_digest(digest) {
                        (Some(digest), DeleteMethod::Digest)
                    } else {
                        (None, DeleteMethod::TagOnly)
                    }
                }
                Target::Untagged(index) => (Some(self.untagged[index]), DeleteMethod::Digest),
            };
            let group = if let Some(&group) = removes.and_then(|digest| group_of.get(digest)) {
                group
            } else {
                if let Some(digest) = removes {
                    group_of.insert(digest, removes_of.len());
                }
                removes_of.push(removes);
                removes_of.len() - 1
            };
            entries.push((group, at.unwrap_or(Timestamp::MAX), name, target, method));
        }
        // each group's deletions together, oldest first; `starts[g]..starts[g + 1]` are group g's
        entries.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let groups = removes_of.len();
        let mut starts = vec![entries.len(); groups + 1];
        for (position, entry) in entries.iter().enumerate().rev() {
            starts[entry.0] = position;
        }
        let mut after: Vec<Vec<usize>> = vec![Vec::new(); groups];
        let mut waiting_for = vec![0usize; groups];
        for (group, removes) in removes_of.iter().enumerate() {
            let Some(manifest) = removes.and_then(|digest| self.inventory.manifests.get(digest))
            else {
                continue;
            };
            for target in manifest.children.iter().chain(&manifest.subject) {
                if let Some(&later) = group_of.get(target).filter(|&&later| later != group) {
                    after[group].push(later);
                    waiting_for[later] += 1;
                }
            }
        }
        let key = |group: usize| {
            let (_, at, name, _, _) = entries[starts[group]];
            Reverse((at, name, group))
        };
        let mut ready: BinaryHeap<_> =
            (0..groups).filter(|&group| waiting_for[group] == 0).map(key).collect();
        let mut order = Vec::with_capacity(groups);
        while let Some(Reverse((_, _, group))) = ready.pop() {
            order.push(group);
            for &later in &after[group] {
                waiting_for[later] -= 1;
                if waiting_for[later] == 0 {
                    ready.push(key(later));
                }
            }
        }
        if order.len() < groups {
            // a reference cycle (impossible for content-addressed manifests): append the rest
            let mut rest: Vec<usize> =
                (0..groups).filter(|&group| waiting_for[group] > 0).collect();
            rest.sort_by_key(|&group| Reverse(key(group)));
            order.extend(rest);
        }
        out.reserve(entries.len());
        for group in order {
            // every group has an entry, so the next group's start ends this one's
            for &(_, _, _, target, method) in &entries[starts[group]..starts[group + 1]] {
                let item = match target {
                    Target::Tag(index) => self.tag_item(index, reasons),
                    Target::Untagged(index) => self.untagged_item(index, reasons),
                };
                out.push(Deletion { item, method });
            }
        }
    }
}

/// Keeps the oldest `max_deletes` deletions across all repositories and turns the rest into
/// keeps. Returns `true` if and only if any deletion was held back.
fn apply_budget(repositories: &mut [RepositoryPlan<'_>], policy: &Policy) -> bool {
    let Some(max_deletes) = policy.max_deletes else { return false };
    let mut candidates: Vec<(Timestamp, usize, &str, Target)> = repositories
        .iter()
        .enumerate()
        .flat_map(|(repository, plan)| {
            plan.deletions().map(move |(target, at, name)| {
                (at.unwrap_or(Timestamp::MAX), repository, name, target)
            })
        })
        .collect();
    if candidates.len() <= max_deletes {
        return false;
    }
    candidates.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let held_back: Vec<(usize, Target)> = candidates
        .into_iter()
        .skip(max_deletes)
        .map(|(_, repository, _, target)| (repository, target))
        .collect();
    for (repository, target) in held_back {
        *repositories[repository].decision_mut(target) =
            Decision::Keep(Keep::Budget { max_deletes });
    }
    true
}

/// Marks `digest` reachable the first time it is found, and queues it for expansion.
fn visit<'a>(
    reach: &mut HashMap<&'a Digest, Reach<'a>>,
    queue: &mut VecDeque<&'a Digest>,
    digest: &'a Digest,
    how: Reach<'a>,
) {
    if let std::collections::hash_map::Entry::Vacant(slot) = reach.entry(digest) {
        slot.insert(how);
        queue.push_back(digest);
    }
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

/// `name` and the version it is a pre-release of, if it is one (`v2.0.0-rc.1` → 2.0.0).
fn pre_release(name: &str) -> Option<(&str, (u64, u64, u64))> {
    let version = semver::Version::parse(name.strip_prefix('v').unwrap_or(name)).ok()?;
    (!version.pre.is_empty()).then_some((name, (version.major, version.minor, version.patch)))
}

/// "a", "a and b", "a, b and c".
fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests;

mod releases;
use releases::{Outside, Rank, Releases, release_version};
mod retention;
use retention::Unplaced;
pub use retention::{GitRetention, PrState, PullRequests};
