//! The planner's tests: every rule, the ordering, and invariants over random inventories.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

/// The reason of everything in a repository whose inventory is incomplete.
const INCOMPLETE: &str = "kept: inventory incomplete";
use crate::cleanup::git::{Commit, GitFacts, GitReference};
use crate::cleanup::inventory::{ManifestEntry, RepositoryInventory, SourceLabels, TagEntry};
use crate::cleanup::policy::{
    DEFAULT_GRACE_PERIOD, GitRules, KeepPolicy, KeepTag, Limit, PolicyFlags, ReleaseRules,
    default_keep_policies,
};
use crate::project::{Operator, PreReleases};
use crate::tags::TagRules;

const MINUTE: i64 = 1;
const HOUR: i64 = 60;
const DAY: i64 = 24 * HOUR;

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn ago(minutes: i64) -> Timestamp {
    now() - SignedDuration::from_mins(minutes)
}

fn digest(n: u32) -> Digest {
    Digest::sha256_of(&n.to_be_bytes())
}

/// `#N` for the test digest `digest(N)`.
fn label(digest: &Digest) -> String {
    (0..1000)
        .find(|&n| self::digest(n) == *digest)
        .map_or_else(|| digest.to_string(), |n| format!("#{n}"))
}

fn manifest(children: &[u32], subject: Option<u32>, minutes_ago: Option<i64>) -> ManifestEntry {
    ManifestEntry {
        children: children.iter().map(|&n| digest(n)).collect(),
        subject: subject.map(digest),
        created: minutes_ago.map(ago),
        created_source: if minutes_ago.is_some() {
            TimeSource::ImageConfigCreated
        } else {
            TimeSource::Unknown
        },
        tombstone: false,
        source: SourceLabels::default(),
    }
}

fn image(minutes_ago: i64) -> ManifestEntry {
    manifest(&[], None, Some(minutes_ago))
}

fn index(children: &[u32], minutes_ago: i64) -> ManifestEntry {
    manifest(children, None, Some(minutes_ago))
}

fn referrer(subject: u32, minutes_ago: i64) -> ManifestEntry {
    manifest(&[], Some(subject), Some(minutes_ago))
}

fn tag(name: &str, image: &str, digest: u32) -> TagEntry {
    TagEntry {
        tag: name.parse().unwrap(),
        image: image.to_owned(),
        image_tag: name.to_owned(),
        digest: self::digest(digest),
        pushed: None,
        locked: None,
    }
}

fn monorepo_tag(image: &str, image_tag: &str, digest: u32) -> TagEntry {
    TagEntry {
        image_tag: image_tag.to_owned(),
        ..tag(&format!("{image}-{image_tag}"), image, digest)
    }
}

fn repository(
    path: &str,
    tags: Vec<TagEntry>,
    manifests: Vec<(u32, ManifestEntry)>,
) -> RepositoryInventory {
    RepositoryInventory {
        address: format!("localhost:5000/{path}").parse().unwrap(),
        complete: true,
        tags,
        manifests: manifests.into_iter().map(|(n, entry)| (digest(n), entry)).collect(),
        foreign_tags: BTreeMap::new(),
    }
}

fn one(repository: RepositoryInventory) -> Inventory {
    Inventory { repositories: vec![repository] }
}

/// A policy with no rule at all; tests switch on what they exercise.
fn bare() -> Policy {
    Policy {
        keep_last: None,
        keep_within: None,
        keep_tags: Vec::new(),
        delete_untagged: false,
        delete_releases: false,
        max_deletes: None,
        max_duration: None,
        delete_tags: Vec::new(),
        git: GitRules::Off,
        grace_period: DEFAULT_GRACE_PERIOD,
        releases: None,
    }
}

fn keep_tags(patterns: &[&str]) -> Vec<KeepTag> {
    patterns.iter().map(|pattern| KeepTag::new(pattern).unwrap()).collect()
}

fn item_label(item: &PlanItem) -> String {
    item.tag.as_ref().map_or_else(|| label(&item.digest), ToString::to_string)
}

fn kept(plan: &Plan) -> Vec<(String, String)> {
    plan.kept.iter().map(|item| (item_label(item), item.reason.to_string())).collect()
}

fn deleted(plan: &Plan) -> Vec<(String, DeleteMethod, String)> {
    plan.deleted
        .iter()
        .map(|d| (item_label(&d.item), d.method, d.item.reason.to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
}

fn triples(items: &[(&str, DeleteMethod, &str)]) -> Vec<(String, DeleteMethod, String)> {
    items.iter().map(|(a, m, b)| ((*a).to_owned(), *m, (*b).to_owned())).collect()
}

fn targeted(tags: &[&str]) -> Policy {
    // every retention rule on, to show that a targeted delete ignores them
    Policy {
        keep_last: Some(1),
        keep_within: Some(Duration::from_secs(3600)),
        keep_tags: keep_tags(&["keep-.*"]),
        delete_tags: tags.iter().map(|tag| tag.parse().unwrap()).collect(),
        ..bare()
    }
}

#[test]
fn a_targeted_delete_deletes_exactly_the_named_tags() {
    let inventory = one(repository(
        "app",
        vec![
            tag("pr-1", "app", 1),
            tag("twin", "app", 2),
            tag("pr-2", "app", 2),
            tag("v1.0.0", "app", 3),
            tag("keep-me", "app", 4),
            tag("old", "app", 5),
        ],
        vec![
            (1, image(MINUTE)),
            (2, image(10 * DAY)),
            (3, image(20 * DAY)),
            (4, image(30 * DAY)),
            (5, image(40 * DAY)),
            (9, image(50 * DAY)),
        ],
    ));
    let plan = plan(&inventory, &targeted(&["pr-1", "pr-2", "v1.0.0", "keep-me", "gone"]), now());
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("keep-me", DeleteMethod::Digest, "deleted: named by --delete-tag `keep-me`"),
            ("v1.0.0", DeleteMethod::Digest, "deleted: named by --delete-tag `v1.0.0`"),
            // its twin stays, so only the tag goes
            ("pr-2", DeleteMethod::TagOnly, "deleted: named by --delete-tag `pr-2`"),
            ("pr-1", DeleteMethod::Digest, "deleted: named by --delete-tag `pr-1`"),
        ])
    );
    assert_eq!(
        kept(&plan),
        pairs(&[
            ("old", "kept: not named by --delete-tag"),
            ("twin", "kept: not named by --delete-tag"),
        ])
    );
    let not_found: Vec<&str> = plan.not_found.iter().map(Tag::as_str).collect();
    assert_eq!(not_found, ["gone"]);
    assert!(plan.incomplete.is_empty() && !plan.budget_reached);
}

#[test]
fn a_targeted_delete_keeps_what_a_kept_tag_needs() {
    // `child` is a platform image of the kept `latest` index, and `sha256-…` a referrers tag
    let inventory = one(repository(
        "app",
        vec![
            tag("latest", "app", 1),
            tag("child", "app", 2),
            tag(&format!("sha256-{}", digest(1).hex()), "app", 3),
        ],
        vec![(1, index(&[2], DAY)), (2, image(DAY)), (3, referrer(1, DAY))],
    ));
    let signature = format!("sha256-{}", digest(1).hex());
    let plan = plan(&inventory, &targeted(&["child", &signature]), now());
    assert_eq!(
        deleted(&plan),
        triples(&[("child", DeleteMethod::TagOnly, "deleted: named by --delete-tag `child`")])
    );
    let kept = kept(&plan);
    assert!(kept.contains(&("latest".to_owned(), "kept: not named by --delete-tag".to_owned())));
    assert!(
        kept.iter().any(|(tag, reason)| *tag == signature && reason.contains("which is kept")),
        "{kept:?}"
    );
    assert!(plan.not_found.is_empty());
}

#[test]
fn a_targeted_delete_matches_the_published_tag_in_monorepo_mode() {
    let inventory = one(repository(
        "app",
        vec![
            monorepo_tag("api", "pr-7", 1),
            monorepo_tag("web", "pr-7", 2),
            monorepo_tag("api", "main", 3),
        ],
        vec![(1, image(DAY)), (2, image(DAY)), (3, image(DAY))],
    ));
    let plan = plan(&inventory, &targeted(&["pr-7"]), now());
    let names: Vec<String> = plan.deleted.iter().map(|d| item_label(&d.item)).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"api-pr-7".to_owned()) && names.contains(&"web-pr-7".to_owned()));
    assert_eq!(kept(&plan), pairs(&[("api-main", "kept: not named by --delete-tag")]));
}

#[test]
fn children_of_a_kept_index_are_never_deleted() {
    let inventory = one(repository(
        "app",
        vec![tag("latest", "app", 1), tag("old", "app", 4)],
        vec![
            (1, index(&[2, 3], 3 * DAY)),
            (2, image(3 * DAY)),
            (3, image(3 * DAY)),
            (4, image(10 * DAY)),
            (9, image(5 * DAY)),
        ],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&plan),
        pairs(&[
            ("latest", "kept: matches keep_tags `latest`"),
            ("#2", "kept: reachable from kept tag `latest` as an index child"),
            ("#3", "kept: reachable from kept tag `latest` as an index child"),
        ])
    );
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("old", DeleteMethod::Digest, "deleted: matching no keep_tags pattern"),
            ("#9", DeleteMethod::Digest, "deleted: untagged and unreachable from anything kept"),
        ])
    );
    assert!(plan.incomplete.is_empty() && !plan.budget_reached);
}

#[test]
fn tags_outside_the_scope_keep_what_they_reach() {
    let mut repository = repository(
        "shared",
        vec![monorepo_tag("api", "old", 1), monorepo_tag("api", "older", 3)],
        vec![
            (1, image(10 * DAY)),
            (2, index(&[3, 5], 10 * DAY)),
            (3, image(10 * DAY)),
            (5, image(10 * DAY)),
            (6, image(10 * DAY)),
        ],
    );
    // `web-x` (no image of the project) shares `api-old`'s digest; `other` is an index
    repository.foreign_tags = [("web-x", 1), ("other", 2)]
        .into_iter()
        .map(|(name, n)| (name.parse().unwrap(), digest(n)))
        .collect();
    let policy = Policy { delete_untagged: true, ..bare() };
    let plan = plan(&one(repository), &policy, now());
    // neither tag's digest may go: `web-x` is on one, `other` reaches the other
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("api-old", DeleteMethod::TagOnly, "deleted: no keep rule is configured"),
            ("api-older", DeleteMethod::TagOnly, "deleted: no keep rule is configured"),
            ("#6", DeleteMethod::Digest, "deleted: untagged and unreachable from anything kept"),
        ])
    );
    assert_eq!(
        kept(&plan),
        pairs(&[(
            "#5",
            "kept: reachable from kept tag `other` (outside the cleanup's scope) as an index child"
        )])
    );
}

#[test]
fn a_tag_left_on_a_throw_away_manifest_is_deleted_whatever_the_rules() {
    let tombstone = ManifestEntry { tombstone: true, ..manifest(&[], None, None) };
    let inventory = one(repository(
        "app",
        vec![tag("latest", "app", 1), tag("build-1", "app", 2)],
        vec![(1, tombstone), (2, image(MINUTE))],
    ));
    let policy = Policy {
        keep_tags: keep_tags(&["latest"]),
        ..Policy::resolve(None, &PolicyFlags::default()).unwrap()
    };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        deleted(&plan),
        triples(&[(
            "latest",
            DeleteMethod::Digest,
            "deleted: a throw-away manifest an interrupted cleanup left on this tag"
        )])
    );
}

#[test]
fn a_locked_tag_is_kept_and_its_digest_and_children_stay() {
    let locked = |name: &str, digest: u32| TagEntry {
        locked: Some("immutable by a tag immutability rule".to_owned()),
        ..tag(name, "app", digest)
    };
    let inventory = one(repository(
        "app",
        vec![
            locked("v1", 1),
            tag("build-1", "app", 1),
            locked("multi", 2),
            tag("build-3", "app", 3),
        ],
        vec![(1, image(9 * DAY)), (2, index(&[3], 9 * DAY)), (3, image(9 * DAY))],
    ));
    let locked_reason =
        "kept: the registry refuses to delete it (immutable by a tag immutability rule)";
    for policy in [bare(), targeted(&["v1", "build-1", "multi", "build-3"])] {
        let plan = plan(&inventory, &policy, now());
        assert_eq!(kept(&plan), pairs(&[("multi", locked_reason), ("v1", locked_reason)]));
        // the twin of `v1` and the child of `multi` go by tag alone: their digests stay
        let methods: Vec<(String, DeleteMethod)> =
            deleted(&plan).into_iter().map(|(tag, method, _)| (tag, method)).collect();
        assert_eq!(
            methods,
            [
                ("build-1".to_owned(), DeleteMethod::TagOnly),
                ("build-3".to_owned(), DeleteMethod::TagOnly)
            ]
        );
    }
}

#[test]
fn a_digest_another_tag_keeps_is_only_untagged() {
    let inventory = one(repository(
        "app",
        vec![
            tag("latest", "app", 1),
            tag("build-1", "app", 1),
            tag("build-2", "app", 2),
            tag("build-3", "app", 3),
            tag("multi", "app", 4),
        ],
        vec![(1, image(DAY)), (2, image(2 * DAY)), (3, image(3 * DAY)), (4, index(&[3], 4 * DAY))],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest", "multi"]), ..bare() };
    let plan = plan(&inventory, &policy, now());
    // build-1 shares `latest`'s digest; build-3's digest is a child of the kept index `multi`
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("build-3", DeleteMethod::TagOnly, "deleted: matching no keep_tags pattern"),
            ("build-2", DeleteMethod::Digest, "deleted: matching no keep_tags pattern"),
            ("build-1", DeleteMethod::TagOnly, "deleted: matching no keep_tags pattern"),
        ])
    );
}

#[test]
fn referrers_and_referrers_tags_follow_their_subject() {
    let hex = |n: u32| digest(n).hex().to_owned();
    let signature_of_1 = format!("sha256-{}.sig", hex(1));
    let signature_of_2 = format!("sha256-{}.sig", hex(2));
    let inventory = one(repository(
        "app",
        vec![
            tag("latest", "app", 1),
            tag("old", "app", 2),
            tag(&signature_of_1, "app", 6),
            tag(&signature_of_2, "app", 7),
        ],
        vec![
            (1, image(3 * DAY)),
            (2, image(10 * DAY)),
            (5, referrer(1, 3 * DAY)),
            (6, image(3 * DAY)),
            (7, image(9 * DAY)),
            (8, referrer(2, DAY)),
        ],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&plan),
        vec![
            ("latest".to_owned(), "kept: matches keep_tags `latest`".to_owned()),
            (
                signature_of_1.clone(),
                format!("kept: referrers tag of `{}`, which is kept", digest(1))
            ),
            ("#5".to_owned(), "kept: reachable from kept tag `latest` as a referrer".to_owned()),
        ]
    );
    // the referrer #8 goes before its subject #2, although #2 is older
    assert_eq!(
        deleted(&plan),
        vec![
            (
                signature_of_2,
                DeleteMethod::Digest,
                format!(
                    "deleted: referrers tag of `{}`, which is not kept and matching no keep_tags pattern",
                    digest(2)
                )
            ),
            (
                "#8".to_owned(),
                DeleteMethod::Digest,
                "deleted: untagged and unreachable from anything kept".to_owned()
            ),
            (
                "old".to_owned(),
                DeleteMethod::Digest,
                "deleted: matching no keep_tags pattern".to_owned()
            ),
        ]
    );
}

#[test]
fn keep_last_counts_distinct_digests_per_image() {
    let inventory = one(repository(
        "app",
        vec![
            tag("a1", "api", 1),
            tag("a1-again", "api", 1),
            tag("a2", "api", 2),
            tag("a3", "api", 3),
            tag("w1", "web", 4),
            tag("w2", "web", 5),
            tag("w3", "web", 6),
        ],
        vec![
            (1, image(DAY)),
            (2, image(2 * DAY)),
            (3, image(3 * DAY)),
            (4, image(5 * DAY)),
            (5, image(6 * DAY)),
            (6, image(7 * DAY)),
        ],
    ));
    let policy = Policy { keep_last: Some(2), ..bare() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&plan),
        pairs(&[
            ("a1", "kept: among the newest 2 images of `api`"),
            ("a1-again", "kept: among the newest 2 images of `api`"),
            ("a2", "kept: among the newest 2 images of `api`"),
            ("w1", "kept: among the newest 2 images of `web`"),
            ("w2", "kept: among the newest 2 images of `web`"),
        ])
    );
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("w3", DeleteMethod::Digest, "deleted: not among the newest 2 images of `web`"),
            ("a3", DeleteMethod::Digest, "deleted: not among the newest 2 images of `api`"),
        ])
    );
}

#[test]
fn reasons_name_the_rule_and_where_the_age_came_from() {
    let pushed_recently = TagEntry { pushed: Some(ago(10 * MINUTE)), ..tag("promoted", "web", 11) };
    let inventory = one(repository(
        "app",
        vec![
            tag("b1", "api", 1),
            tag("b2", "api", 2),
            tag("b3", "api", 3),
            tag("young", "web", 10),
            pushed_recently,
            tag("v1.2.3", "web", 12),
            tag("mystery", "web", 13),
        ],
        vec![
            (1, image(DAY)),
            (2, image(2 * DAY)),
            (3, image(3 * DAY + 4 * HOUR + 5)),
            (10, image(35 * MINUTE)),
            (11, image(5 * DAY)),
            (12, image(30 * DAY)),
            (13, manifest(&[], None, None)),
        ],
    ));
    let policy =
        Policy { keep_last: Some(2), ..Policy::resolve(None, &PolicyFlags::default()).unwrap() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&plan),
        pairs(&[
            ("b1", "kept: among the newest 2 images of `api`"),
            ("b2", "kept: among the newest 2 images of `api`"),
            ("mystery", "kept: age unknown"),
            ("promoted", "kept: younger than 2h (pushed 10m ago)"),
            ("v1.2.3", "kept: `v1.2.3` looks like a release (delete_releases is off)"),
            ("young", "kept: younger than 2h (image config created 35m ago)"),
        ])
    );
    assert_eq!(
        deleted(&plan),
        triples(&[(
            "b3",
            DeleteMethod::Digest,
            "deleted: older than 2h (image config created 3d4h ago) and not among the newest 2 images of `api`"
        )])
    );
}

#[test]
fn monorepo_tags_match_by_the_tag_they_were_published_under() {
    let inventory = one(repository(
        "app",
        vec![
            monorepo_tag("api", "latest", 1),
            monorepo_tag("api", "1.2.3", 2),
            monorepo_tag("api", "main", 3),
        ],
        vec![(1, image(10 * DAY)), (2, image(10 * DAY)), (3, image(10 * DAY))],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), ..bare() };
    let protected = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&protected),
        pairs(&[
            ("api-1.2.3", "kept: `1.2.3` looks like a release (delete_releases is off)"),
            ("api-latest", "kept: matches keep_tags `latest`"),
        ])
    );
    assert_eq!(deleted(&protected).len(), 1);
    assert_eq!(protected.deleted[0].item.image.as_deref(), Some("api"));

    let releases_too = plan(&inventory, &Policy { delete_releases: true, ..policy }, now());
    let mut gone: Vec<String> = releases_too.deleted.iter().map(|d| item_label(&d.item)).collect();
    gone.sort();
    assert_eq!(gone, ["api-1.2.3", "api-main"]);
}

#[test]
fn an_incomplete_repository_deletes_nothing() {
    let full = repository(
        "full",
        vec![tag("old", "full", 1)],
        vec![(1, image(10 * DAY)), (2, image(10 * DAY))],
    );
    let failed = RepositoryInventory {
        complete: false,
        ..repository(
            "failed",
            vec![tag("old", "failed", 1)],
            vec![(1, image(10 * DAY)), (2, image(10 * DAY))],
        )
    };
    // complete by its own account, but the manifest of `old` was never read
    let contradictory = repository(
        "contradictory",
        vec![tag("old", "contradictory", 1)],
        vec![(2, image(10 * DAY))],
    );
    let inventory = Inventory { repositories: vec![full, failed.clone(), contradictory.clone()] };
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(plan.incomplete, [failed.address.clone(), contradictory.address.clone()]);
    let address = |item: &PlanItem| item.repository.path.clone();
    assert_eq!(
        plan.deleted.iter().map(|d| (address(&d.item), item_label(&d.item))).collect::<Vec<_>>(),
        [("full".to_owned(), "old".to_owned()), ("full".to_owned(), "#2".to_owned())]
    );
    assert_eq!(
        plan.kept
            .iter()
            .map(|item| (address(item), item_label(item), &*item.reason))
            .collect::<Vec<_>>(),
        [
            ("failed".to_owned(), "old".to_owned(), INCOMPLETE),
            ("failed".to_owned(), "#2".to_owned(), INCOMPLETE),
            ("contradictory".to_owned(), "old".to_owned(), INCOMPLETE),
            ("contradictory".to_owned(), "#2".to_owned(), INCOMPLETE),
        ]
    );
}

#[test]
fn duplicate_tags_make_the_inventory_incomplete() {
    let inventory = one(repository(
        "app",
        vec![tag("old", "app", 1), tag("old", "app", 2)],
        vec![(1, image(DAY)), (2, image(DAY))],
    ));
    let plan = plan(&inventory, &Policy { keep_tags: keep_tags(&["latest"]), ..bare() }, now());
    assert!(plan.deleted.is_empty());
    assert_eq!(plan.incomplete.len(), 1);
}

#[test]
fn the_budget_deletes_the_oldest_first_and_keeps_the_rest() {
    let inventory = one(repository(
        "app",
        (1..=5).map(|n| tag(&format!("t{n}"), "app", n)).collect(),
        (1..=5).map(|n| (n, image(i64::from(n) * DAY))).collect(),
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), max_deletes: Some(2), ..bare() };
    let plan = plan(&inventory, &policy, now());
    let held = "kept: budget reached, rerun to continue (max_deletes 2)";
    assert_eq!(kept(&plan), pairs(&[("t1", held), ("t2", held), ("t3", held)]));
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("t5", DeleteMethod::Digest, "deleted: matching no keep_tags pattern"),
            ("t4", DeleteMethod::Digest, "deleted: matching no keep_tags pattern"),
        ])
    );
    assert!(plan.budget_reached);

    let enough = super::plan(&inventory, &Policy { max_deletes: Some(5), ..policy }, now());
    assert!(!enough.budget_reached);
    assert_eq!(enough.deleted.len(), 5);
}

#[test]
fn what_the_budget_holds_back_keeps_what_it_needs() {
    let inventory = one(repository(
        "app",
        vec![
            tag("old-index", "app", 1),
            TagEntry { pushed: Some(ago(5 * DAY)), ..tag("a", "app", 5) },
            TagEntry { pushed: Some(ago(4 * DAY)), ..tag("b", "app", 5) },
        ],
        vec![
            (1, index(&[2, 3], DAY)),
            (2, image(6 * DAY)),
            (3, image(6 * DAY)),
            (5, image(7 * DAY)),
        ],
    ));
    let policy = Policy {
        keep_tags: keep_tags(&["latest"]),
        delete_untagged: true,
        max_deletes: Some(3),
        ..bare()
    };
    let plan = plan(&inventory, &policy, now());
    // the budget picks #2, #3 and `a` (oldest); holding back `old-index` keeps its children,
    // and holding back `b` turns `a` into a tag-only delete
    let held = "kept: budget reached, rerun to continue (max_deletes 3)";
    assert_eq!(
        kept(&plan),
        pairs(&[
            ("b", held),
            ("old-index", held),
            ("#2", "kept: reachable from kept tag `old-index` as an index child"),
            ("#3", "kept: reachable from kept tag `old-index` as an index child"),
        ])
    );
    assert_eq!(
        deleted(&plan),
        triples(&[("a", DeleteMethod::TagOnly, "deleted: matching no keep_tags pattern")])
    );
    assert!(plan.budget_reached);
}

#[test]
fn an_index_is_deleted_before_its_children() {
    let inventory = one(repository(
        "app",
        vec![tag("old", "app", 1)],
        vec![(1, index(&[2, 3], DAY)), (2, image(3 * DAY)), (3, image(4 * DAY))],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    let order: Vec<String> = plan.deleted.iter().map(|d| item_label(&d.item)).collect();
    assert_eq!(order, ["old", "#3", "#2"]);
    assert!(plan.deleted.iter().all(|d| d.method == DeleteMethod::Digest));
}

#[test]
fn a_young_untagged_index_keeps_its_old_children() {
    let inventory = one(repository(
        "app",
        vec![],
        vec![(1, index(&[2], 30 * MINUTE)), (2, image(3 * DAY)), (3, manifest(&[], None, None))],
    ));
    let policy = Policy {
        keep_within: Some(Duration::from_secs(2 * 3600)),
        delete_untagged: true,
        ..bare()
    };
    let plan = plan(&inventory, &policy, now());
    let mut kept = kept(&plan);
    kept.sort();
    assert_eq!(
        kept,
        vec![
            (
                "#1".to_owned(),
                "kept: untagged, younger than 2h (image config created 30m ago)".to_owned()
            ),
            (
                "#2".to_owned(),
                format!("kept: reachable from kept manifest `{}` as an index child", digest(1))
            ),
            ("#3".to_owned(), "kept: age unknown".to_owned()),
        ]
    );
    assert!(plan.deleted.is_empty());
}

#[test]
fn untagged_manifests_stay_unlisted_without_delete_untagged_and_protect_what_they_need() {
    let inventory = one(repository(
        "app",
        vec![tag("old", "app", 2)],
        vec![(1, index(&[2], 3 * DAY)), (2, image(3 * DAY))],
    ));
    let plan = plan(&inventory, &Policy { keep_tags: keep_tags(&["latest"]), ..bare() }, now());
    assert!(plan.kept.is_empty());
    assert_eq!(
        deleted(&plan),
        triples(&[("old", DeleteMethod::TagOnly, "deleted: matching no keep_tags pattern")])
    );
}

#[test]
fn reference_cycles_terminate_and_delete_nothing_needed() {
    let inventory = one(repository(
        "app",
        vec![tag("latest", "app", 1), tag("old", "app", 3)],
        vec![
            (1, index(&[2], DAY)),
            (2, index(&[1], DAY)),
            (3, index(&[4], DAY)),
            (4, index(&[3], DAY)),
        ],
    ));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    assert_eq!(
        kept(&plan).iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
        ["latest", "#2"]
    );
    let mut gone: Vec<String> = plan.deleted.iter().map(|d| item_label(&d.item)).collect();
    gone.sort();
    assert_eq!(gone, ["#4", "old"]);
}

#[test]
fn items_serialise_with_the_spec_keys() {
    let inventory =
        one(repository("app", vec![tag("old", "api", 1)], vec![(1, image(DAY)), (2, image(DAY))]));
    let policy = Policy { keep_tags: keep_tags(&["latest"]), delete_untagged: true, ..bare() };
    let plan = plan(&inventory, &policy, now());
    let json = serde_json::to_value(&plan.deleted).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {
                "repository": "localhost:5000/app",
                "tag": "old",
                "digest": digest(1).as_str(),
                "image": "api",
                "reason": "deleted: matching no keep_tags pattern",
                "removes": "manifest",
            },
            {
                "repository": "localhost:5000/app",
                "tag": null,
                "digest": digest(2).as_str(),
                "reason": "deleted: untagged and unreachable from anything kept",
                "removes": "manifest",
            },
        ])
    );
}

// ---- invariants over random inventories ----

const NAMES: [&str; 15] = [
    "latest",
    "main",
    "dev",
    "v1.2.3",
    "2.0.0",
    "v3.0.0-rc.1",
    "pr-7",
    "sha-1a2b",
    "old",
    "feature-x",
    "v1.2.4",
    "1.3.0",
    "v2.1.0",
    "v1",
    "v1.2",
];
/// Tag seed kinds from this one on are referrers-schema tags (`sha256-…`, then `….sig`).
const REFERRER_KIND: u8 = 15;
const PATTERNS: [&str; 3] = ["latest", "v.*", "main|dev"];
const IMAGES: [&str; 2] = ["api", "web"];

type ManifestSeed = (Vec<u8>, Option<u8>, Option<i64>, u8);
type TagSeed = (u8, usize, usize, usize, Option<i64>);

fn manifest_seed() -> impl Strategy<Value = (bool, ManifestSeed)> {
    (
        prop::bool::weighted(0.95),
        (
            prop::collection::vec(any::<u8>(), 0..3),
            prop::option::of(any::<u8>()),
            prop::option::of(-90i64..20_000),
            0u8..4,
        ),
    )
}

fn tag_seed(digests: usize) -> impl Strategy<Value = TagSeed> {
    (
        0u8..REFERRER_KIND + 2,
        0..IMAGES.len(),
        0..digests,
        0..digests,
        prop::option::weighted(0.3, -90i64..20_000),
    )
}

fn build_repository(
    index: usize,
    manifests: &[(bool, ManifestSeed)],
    tags: &[TagSeed],
    complete: bool,
    monorepo: bool,
) -> RepositoryInventory {
    let mut entries = BTreeMap::new();
    for (position, (present, (children, subject, minutes, source))) in manifests.iter().enumerate()
    {
        if !present {
            continue;
        }
        // children and subjects point only to lower positions: content addressing makes cycles impossible
        let below = |raw: u8| {
            (position > 0).then(|| digest(u32::from(raw) % u32::try_from(position).unwrap()))
        };
        let created_source = match source {
            0 => TimeSource::Unknown,
            1 => TimeSource::TagPushed,
            _ => TimeSource::ImageConfigCreated,
        };
        entries.insert(
            digest(u32::try_from(position).unwrap()),
            ManifestEntry {
                children: children.iter().filter_map(|&raw| below(raw)).collect(),
                subject: subject.and_then(below),
                created: minutes.map(ago),
                created_source,
                tombstone: false,
                source: SourceLabels::default(),
            },
        );
    }
    let mut seen = BTreeSet::new();
    let mut entries_tags = Vec::new();
    for &(kind, image, target, subject, pushed) in tags {
        let subject_hex = digest(u32::try_from(subject).unwrap()).hex().to_owned();
        let published = match kind {
            REFERRER_KIND => format!("sha256-{subject_hex}"),
            kind if kind > REFERRER_KIND => format!("sha256-{subject_hex}.sig"),
            _ => NAMES[usize::from(kind)].to_owned(),
        };
        let stored = if monorepo && kind < REFERRER_KIND {
            format!("{}-{published}", IMAGES[image])
        } else {
            published.clone()
        };
        if !seen.insert(stored.clone()) {
            continue;
        }
        entries_tags.push(TagEntry {
            tag: stored.parse().unwrap(),
            image: IMAGES[image].to_owned(),
            image_tag: published,
            digest: digest(u32::try_from(target).unwrap()),
            pushed: pushed.map(ago),
            locked: None,
        });
    }
    RepositoryInventory {
        address: format!("localhost:5000/repo{index}").parse().unwrap(),
        complete,
        tags: entries_tags,
        manifests: entries,
        foreign_tags: BTreeMap::new(),
    }
}

fn inventories() -> impl Strategy<Value = Inventory> {
    let repository = (1usize..8).prop_flat_map(|digests| {
        (
            prop::collection::vec(manifest_seed(), digests),
            prop::collection::vec(tag_seed(digests), 0..12),
            prop::bool::weighted(0.9),
            any::<bool>(),
        )
    });
    prop::collection::vec(repository, 1..4).prop_map(|seeds| Inventory {
        repositories: seeds
            .iter()
            .enumerate()
            .map(|(index, (manifests, tags, complete, monorepo))| {
                build_repository(index, manifests, tags, *complete, *monorepo)
            })
            .collect(),
    })
}

fn policies() -> impl Strategy<Value = Policy> {
    (
        prop::option::of(1usize..4),
        prop::option::of(prop::sample::select(vec![30u64, 120, 1440])),
        0u8..8,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(1usize..6),
    )
        .prop_map(
            |(keep_last, within_minutes, mask, delete_untagged, delete_releases, max_deletes)| {
                Policy {
                    keep_last,
                    keep_within: within_minutes.map(|minutes| Duration::from_secs(minutes * 60)),
                    keep_tags: (0..PATTERNS.len())
                        .filter(|bit| mask & (1 << bit) != 0)
                        .map(|bit| KeepTag::new(PATTERNS[bit]).unwrap())
                        .collect(),
                    delete_untagged,
                    delete_releases,
                    max_deletes,
                    max_duration: None,
                    delete_tags: Vec::new(),
                    git: GitRules::Off,
                    grace_period: DEFAULT_GRACE_PERIOD,
                    releases: None,
                }
            },
        )
}

fn age_of(repository: &RepositoryInventory, entry: &TagEntry) -> Option<Timestamp> {
    entry.pushed.or_else(|| repository.manifests.get(&entry.digest)?.created_at().map(|(at, _)| at))
}

/// Checks every invariant the module promises, computed independently of the planner.
#[expect(clippy::too_many_lines, reason = "one checker per promise keeps the proptest readable")]
fn check(inventory: &Inventory, policy: &Policy, plan: &Plan) -> Result<(), TestCaseError> {
    let within = policy.keep_within.map(signed);
    for item in plan.kept.iter().chain(plan.deleted.iter().map(|d| &d.item)) {
        prop_assert!(
            item.reason.starts_with("kept: ") || item.reason.starts_with("deleted: "),
            "{}",
            item.reason
        );
    }
    for item in &plan.kept {
        prop_assert!(item.reason.starts_with("kept: "), "{}", item.reason);
    }
    for deletion in &plan.deleted {
        prop_assert!(deletion.item.reason.starts_with("deleted: "), "{}", deletion.item.reason);
    }
    if let Some(max) = policy.max_deletes {
        prop_assert!(plan.deleted.len() <= max);
    } else {
        prop_assert!(!plan.budget_reached);
    }
    if !plan.budget_reached {
        prop_assert!(plan.kept.iter().all(|item| !item.reason.contains("budget reached")));
    }
    // the budget deletes the oldest first: nothing held back is older than a deletion
    let item_age = |item: &PlanItem| {
        let repository = inventory.repositories.iter().find(|r| r.address == *item.repository)?;
        match &item.tag {
            Some(tag) => {
                age_of(repository, repository.tags.iter().find(|entry| entry.tag == *tag)?)
            }
            None => repository.manifests.get(&item.digest)?.created_at().map(|(at, _)| at),
        }
    };
    let newest_deleted = plan.deleted.iter().filter_map(|d| item_age(&d.item)).max();
    for held in plan.kept.iter().filter(|item| item.reason.contains("budget reached")) {
        prop_assert!(
            item_age(held) >= newest_deleted,
            "{:?} held back before an older one",
            held.tag
        );
    }

    for repository in &inventory.repositories {
        let address = &repository.address;
        let kept: Vec<&PlanItem> =
            plan.kept.iter().filter(|item| *item.repository == *address).collect();
        let deleted: Vec<&Deletion> =
            plan.deleted.iter().filter(|d| *d.item.repository == *address).collect();
        let tagged: HashSet<&Digest> = repository.tags.iter().map(|entry| &entry.digest).collect();
        let untagged: Vec<&Digest> =
            repository.manifests.keys().filter(|digest| !tagged.contains(digest)).collect();

        // every tag in scope exactly once, untagged manifests exactly once when in scope
        let mut expected: Vec<(Option<&Tag>, Option<&Digest>)> =
            repository.tags.iter().map(|entry| (Some(&entry.tag), None)).collect();
        if policy.delete_untagged {
            expected.extend(untagged.iter().map(|digest| (None, Some(*digest))));
        }
        let mut actual: Vec<(Option<&Tag>, Option<&Digest>)> = kept
            .iter()
            .copied()
            .chain(deleted.iter().map(|d| &d.item))
            .map(|item| (item.tag.as_ref(), item.tag.is_none().then_some(&item.digest)))
            .collect();
        expected.sort();
        actual.sort();
        prop_assert_eq!(actual, expected);

        let consistent = tagged.iter().all(|digest| repository.manifests.contains_key(*digest));
        if !(repository.complete && consistent) {
            prop_assert!(deleted.is_empty());
            prop_assert!(kept.iter().all(|item| &*item.reason == INCOMPLETE));
            prop_assert!(plan.incomplete.contains(address));
            continue;
        }
        prop_assert!(!plan.incomplete.contains(address));

        // what the deletions remove from the registry
        let removed: HashSet<&Digest> = deleted
            .iter()
            .filter(|d| d.method == DeleteMethod::Digest)
            .map(|d| &d.item.digest)
            .collect();
        let untagged_removed = deleted.iter().filter(|d| d.item.tag.is_none()).count();
        prop_assert!(
            deleted
                .iter()
                .filter(|d| d.item.tag.is_none())
                .all(|d| d.method == DeleteMethod::Digest)
        );
        prop_assert!(untagged_removed == 0 || policy.delete_untagged);

        // deleting a tag never removes another tag
        for item in &kept {
            if item.tag.is_some() {
                prop_assert!(
                    !removed.contains(&item.digest),
                    "kept tag {:?} loses its digest",
                    item.tag
                );
            }
        }
        // nothing reachable from a kept tag (children, referrers, transitively) is removed
        let mut referrers: HashMap<&Digest, Vec<&Digest>> = HashMap::new();
        for (digest, manifest) in &repository.manifests {
            if let Some(subject) = &manifest.subject {
                referrers.entry(subject).or_default().push(digest);
            }
        }
        let mut reachable: HashSet<&Digest> = HashSet::new();
        let mut stack: Vec<&Digest> =
            kept.iter().filter(|item| item.tag.is_some()).map(|item| &item.digest).collect();
        while let Some(digest) = stack.pop() {
            if reachable.insert(digest) {
                if let Some(manifest) = repository.manifests.get(digest) {
                    stack.extend(&manifest.children);
                }
                stack.extend(referrers.get(digest).into_iter().flatten());
            }
        }
        prop_assert!(reachable.is_disjoint(&removed), "a digest a kept tag needs is removed");
        // and nothing staying points to a removed manifest or loses a referrer
        for (digest, manifest) in &repository.manifests {
            if removed.contains(digest) {
                continue;
            }
            prop_assert!(
                manifest.children.iter().all(|child| !removed.contains(child)),
                "child of staying {}",
                digest
            );
            prop_assert!(
                referrers
                    .get(digest)
                    .into_iter()
                    .flatten()
                    .all(|referrer| !removed.contains(referrer)),
                "referrer of staying {}",
                digest
            );
        }

        // the rules: unknown age never deletes, keep always beats delete
        let mut times: HashMap<(&str, &Digest), Timestamp> = HashMap::new();
        for entry in &repository.tags {
            if let (Some(at), None) = (age_of(repository, entry), referrers_subject(&entry.tag)) {
                let time = times.entry((entry.image.as_str(), &entry.digest)).or_insert(at);
                *time = (*time).max(at);
            }
        }
        for deletion in &deleted {
            let item = &deletion.item;
            let Some(tag) = &item.tag else {
                let at = repository.manifests[&item.digest].created_at().map(|(at, _)| at);
                prop_assert!(at.is_some(), "untagged {} of unknown age deleted", item.digest);
                if let (Some(within), Some(at)) = (within, at) {
                    prop_assert!(now().duration_since(at) >= within);
                }
                continue;
            };
            let entry = repository.tags.iter().find(|entry| entry.tag == *tag).unwrap();
            let names = [entry.tag.as_str(), entry.image_tag.as_str()];
            let at = age_of(repository, entry);
            prop_assert!(at.is_some(), "tag {} of unknown age deleted", tag);
            prop_assert!(policy.keep_tag_match(&names).is_none(), "tag {} matches keep_tags", tag);
            match (&policy.releases, names.iter().find_map(|name| release_version(name))) {
                (Some(rules), Some(version)) => {
                    check_release_deleted(repository, entry, version, rules)?;
                }
                _ => prop_assert!(
                    policy.delete_releases || !names.iter().any(|name| looks_like_release(name)),
                    "release {} deleted",
                    tag
                ),
            }
            if let (Some(within), Some(at)) = (within, at) {
                prop_assert!(now().duration_since(at) >= within, "young tag {} deleted", tag);
            }
            // (git-aware retention leaves `keep_last` to the tags git cannot place; every
            // deletion `keep_last` allowed says so)
            if let (Some(keep_last), None, true) = (
                policy.keep_last,
                referrers_subject(tag),
                item.reason.contains("not among the newest")
                    && item.reason.contains(" images of `"),
            ) {
                let mine = times[&(entry.image.as_str(), &entry.digest)];
                let newer = times
                    .iter()
                    .filter(|((image, digest), at)| {
                        *image == entry.image
                            && (**at > mine || (**at == mine && *digest < &entry.digest))
                    })
                    .count();
                prop_assert!(newer >= keep_last, "tag {} is among the newest {}", tag, keep_last);
            }
            // a referrers tag goes only with its subject
            if let Some(subject) = referrers_subject(tag) {
                prop_assert!(
                    !repository.manifests.contains_key(&subject) || removed.contains(&subject)
                );
            }
        }

        // removal order: a manifest goes before anything it points to
        let order: Vec<&Digest> = deleted
            .iter()
            .filter(|d| d.method == DeleteMethod::Digest)
            .map(|d| &d.item.digest)
            .collect();
        for (position, earlier) in order.iter().enumerate() {
            for later in &order[position + 1..] {
                if let Some(manifest) = repository.manifests.get(*later) {
                    prop_assert!(
                        !manifest.children.contains(earlier)
                            && manifest.subject.as_ref() != Some(*earlier),
                        "{} is removed before {} which points to it",
                        earlier,
                        later
                    );
                }
            }
        }
    }
    Ok(())
}

/// A release `cleanup.releases` deleted is not its image's highest and lies outside every limit
/// the rules set: at least N higher versions in its major, and in its major.minor.
fn check_release_deleted(
    repository: &RepositoryInventory,
    entry: &TagEntry,
    version: (u64, u64, u64),
    rules: &ReleaseRules,
) -> Result<(), TestCaseError> {
    let higher: BTreeSet<(u64, u64, u64)> = repository
        .tags
        .iter()
        .filter(|other| other.image == entry.image)
        .flat_map(|other| [other.tag.as_str(), other.image_tag.as_str()])
        .filter_map(release_version)
        .filter(|other| *other > version)
        .collect();
    prop_assert!(!higher.is_empty(), "the highest release {} deleted", entry.tag);
    let of_major = higher.iter().filter(|other| other.0 == version.0).count();
    let of_minor =
        higher.iter().filter(|other| (other.0, other.1) == (version.0, version.1)).count();
    prop_assert!(
        rules.per_major.is_none_or(|n| of_major >= n),
        "{} within keep_per_major",
        entry.tag
    );
    prop_assert!(
        rules.per_minor.is_none_or(|n| of_minor >= n),
        "{} within keep_per_minor",
        entry.tag
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_keep_every_invariant(inventory in inventories(), policy in policies()) {
        let planned = plan(&inventory, &policy, now());
        check(&inventory, &policy, &planned)?;

        // the order the registry listed tags in changes nothing
        let mut reversed = inventory.clone();
        for repository in &mut reversed.repositories {
            repository.tags.reverse();
        }
        prop_assert_eq!(plan(&reversed, &policy, now()), planned);
    }
}

#[test]
fn every_reason_reads_as_before() {
    let digest = Digest::sha256_of(b"subject");
    let hour = Duration::from_secs(3600);
    let pushed = Age { at: ago(2 * HOUR), source: TimeSource::TagPushed }.describe(now());
    let created = Age { at: ago(3 * HOUR), source: TimeSource::ImageConfigCreated }.describe(now());
    for (decision, text) in [
        (Decision::Keep(Keep::Incomplete), INCOMPLETE.to_owned()),
        (Decision::Keep(Keep::Budget { max_deletes: 5 }), "kept: budget reached, rerun to continue (max_deletes 5)".to_owned()),
        (
            Decision::Delete(Delete::Rules(Unkept {
                referrers_of: Some(digest.clone()),
                older: Some((hour, pushed)),
                not_newest: None,
                no_keep_tag: true,
            })),
            format!("deleted: referrers tag of `{digest}`, which is not kept, older than 1h (pushed 2h ago) and matching no keep_tags pattern"),
        ),
        (
            Decision::Delete(Delete::Untagged { older: Some((hour, created)) }),
            "deleted: untagged, unreachable from anything kept, and older than 1h (image config created 3h ago)".to_owned(),
        ),
    ] {
        assert_eq!(decision.to_string(), text);
        assert_eq!(decision.keeps(), text.starts_with("kept: "));
    }
}

// ---- git-aware retention ----

/// A 40-digit commit id whose first 8 digits are `n` in hex.
fn sha(n: u32) -> String {
    format!("{n:08x}").repeat(5)
}

fn git_reference(
    kind: ReferenceKind,
    name: &str,
    tip_minutes_ago: i64,
    reaches: &[u32],
) -> GitReference {
    GitReference {
        kind,
        name: name.to_owned(),
        tip_time: ago(tip_minutes_ago),
        reaches: reaches.iter().map(|&n| sha(n)).collect(),
    }
}

/// Facts where every commit in `present` exists, committed `n` hours ago.
fn facts(references: Vec<GitReference>, present: &[u32], shallow: bool) -> GitFacts {
    GitFacts {
        shallow,
        partial_branches: false,
        default_branch: Some("main".to_owned()),
        references,
        commits: present
            .iter()
            .map(|&n| (sha(n), Commit { id: sha(n), time: ago(i64::from(n) * HOUR) }))
            .collect(),
    }
}

/// An image built from commit `n` for `ref_name`, created `minutes_ago`.
fn built(n: Option<u32>, ref_name: Option<&str>, minutes_ago: i64) -> ManifestEntry {
    ManifestEntry {
        source: SourceLabels { revision: n.map(sha), ref_name: ref_name.map(str::to_owned) },
        ..image(minutes_ago)
    }
}

fn retention(facts: GitFacts, policies: Vec<KeepPolicy>) -> GitRetention {
    GitRetention {
        facts,
        policies,
        tag_rules: Some(crate::tags::TagRules::parse(&["pr-{pr}", "{branch}"]).unwrap()),
        grace_period: DEFAULT_GRACE_PERIOD,
        pull_requests: PullRequests::unknown(
            None,
            PrUnknown::Unavailable(Unavailable::NoToken(Forge::Github)),
        ),
    }
}

/// main: 1..5 (5 newest), feature/a: 7, 6 on 3; stale (a month old): 8 on 1; tag v1.0.0 on 2.
fn scenario_facts(shallow: bool) -> GitFacts {
    facts(
        vec![
            git_reference(ReferenceKind::Branch, "feature/a", 2 * DAY, &[7, 6, 3, 2, 1]),
            git_reference(ReferenceKind::Branch, "main", DAY, &[5, 4, 3, 2, 1]),
            git_reference(ReferenceKind::Branch, "stale", 30 * DAY, &[8, 1]),
            git_reference(ReferenceKind::Tag, "v1.0.0", 20 * DAY, &[2, 1]),
        ],
        &[1, 2, 3, 4, 5, 6, 7, 8],
        shallow,
    )
}

fn scenario_inventory() -> Inventory {
    let mut tags: Vec<TagEntry> = (1..=8).map(|n| tag(&format!("sha-{n}"), "app", n)).collect();
    tags.extend([
        tag("gone-old", "app", 20),
        tag("gone-young", "app", 21),
        tag("pr-7", "app", 22),
        tag("nightly", "app", 23),
        tag("main", "app", 24),
    ]);
    let mut manifests: Vec<(u32, ManifestEntry)> =
        (1..=8).map(|n| (n, built(Some(n), None, 3 * DAY))).collect();
    manifests.extend([
        (20, built(Some(99), Some("feature/gone"), 3 * DAY)),
        (21, built(Some(98), Some("feature/gone"), 3 * HOUR)),
        (22, built(None, None, 3 * DAY)),
        (23, built(None, None, 3 * DAY)),
        (24, built(None, None, 2 * DAY)),
    ]);
    one(repository("acme/app", tags, manifests))
}

#[test]
fn the_default_keep_policies_keep_live_branches_and_tags_and_delete_the_rest() {
    let git = retention(scenario_facts(false), default_keep_policies(Some("main")));
    let plan = plan_with_git(&scenario_inventory(), &bare(), Some(&git), now());
    let newest = |n| format!("(a keep policy keeps the newest {n}); evidence: revision label");
    let mut got = kept(&plan);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("main", "kept: branch `main`, image 1 (a keep policy keeps the newest 2); evidence: the tag read by tag rule `{branch}`"),
            ("gone-young", "kept: branch `feature/gone` no longer exists (commit `00000062`), but the image is younger than the grace period 1d (image config created 3h ago); evidence: revision label"),
            ("pr-7", "kept: PR #7 state unknown (no GitHub token), so its images stay; evidence: the tag read by tag rules `pr-{pr}`, `{branch}`"),
            ("sha-1", &format!("kept: branch `main`, image 6 {}", newest(10))),
            ("sha-2", &format!("kept: tag `v1.0.0`, image 1 {}", newest(1))),
            ("sha-3", &format!("kept: branch `main`, image 4 {}", newest(10))),
            ("sha-4", &format!("kept: branch `main`, image 3 {}", newest(10))),
            ("sha-5", &format!("kept: branch `main`, image 2 {}", newest(2))),
            ("sha-6", &format!("kept: branch `feature/a`, image 2 {}", newest(2))),
            ("sha-7", &format!("kept: branch `feature/a`, image 1 {}", newest(2))),
        ])
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        deleted(&plan),
        triples(&[
            (
                "gone-old",
                DeleteMethod::Digest,
                "deleted: branch `feature/gone` no longer exists (commit `00000063`); evidence: revision label"
            ),
            (
                "nightly",
                DeleteMethod::Digest,
                "deleted: `nightly` is no branch or tag of the checkout, so count and age decide: no keep rule is configured"
            ),
            (
                "sha-8",
                DeleteMethod::Digest,
                "deleted: image 1 of branch `stale`, which no keep policy keeps; evidence: revision label"
            ),
        ])
    );
}

#[test]
fn pull_request_images_follow_their_state() {
    // pr-1 open, pr-2 closed, pr-3 merged, pr-4 merged but young, pr-5 failed, pr-6 not asked
    let mut tags: Vec<TagEntry> = (1..=6).map(|n| tag(&format!("pr-{n}"), "app", n)).collect();
    tags.push(tag("sha-7", "app", 7));
    let mut manifests: Vec<(u32, ManifestEntry)> =
        (1..=6).map(|n| (n, built(None, None, if n == 4 { 3 * HOUR } else { 3 * DAY }))).collect();
    // a merged PR's image whose commit a kept branch holds stays for the branch
    manifests.push((7, built(Some(5), Some("refs/pull/3/merge"), 3 * DAY)));
    let inventory = one(repository("acme/app", tags, manifests));
    let states = BTreeMap::from([
        (1, PrState::Known(State::Open)),
        (2, PrState::Known(State::Closed)),
        (3, PrState::Known(State::Merged)),
        (4, PrState::Known(State::Merged)),
        (5, PrState::Unknown(PrUnknown::Failed(Forge::Github, "`…/pulls/5` answered 500".into()))),
    ]);
    let pull_requests = PullRequests {
        forge: Some(Forge::Github),
        states,
        otherwise: PrUnknown::Unavailable(Unavailable::NoToken(Forge::Github)),
    };
    let git = GitRetention {
        pull_requests,
        ..retention(scenario_facts(false), default_keep_policies(Some("main")))
    };
    let plan = plan_with_git(&inventory, &bare(), Some(&git), now());
    let rule =
        |n: &str| format!("; evidence: the tag read by tag rules `pr-{{pr}}`, `{{branch}}`{n}");
    assert_eq!(
        kept(&plan).into_iter().collect::<BTreeMap<_, _>>(),
        [
            ("pr-1", format!("kept: PR #1 is open{}", rule(""))),
            ("pr-4", format!("kept: PR #4 is merged, but the image is younger than the grace period 1d (image config created 3h ago){}", rule(""))),
            ("pr-5", format!("kept: PR #5 state unknown (the GitHub API failed: `…/pulls/5` answered 500), so its images stay{}", rule(""))),
            ("pr-6", format!("kept: PR #6 state unknown (no GitHub token), so its images stay{}", rule(""))),
            ("sha-7", "kept: branch `main`, image 1 (a keep policy keeps the newest 2); evidence: revision label".to_owned()),
        ]
        .into_iter()
        .map(|(tag, reason)| (tag.to_owned(), reason))
        .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(
        deleted(&plan),
        triples(&[
            ("pr-2", DeleteMethod::Digest, &format!("deleted: PR #2 is closed{}", rule(""))),
            ("pr-3", DeleteMethod::Digest, &format!("deleted: PR #3 is merged{}", rule(""))),
        ])
    );

    // GitLab names merge requests; a shallow clone keeps a closed one (a policy might have)
    let gitlab = PullRequests { forge: Some(Forge::Gitlab), ..git.pull_requests.clone() };
    let shallow =
        GitRetention { facts: scenario_facts(true), pull_requests: gitlab.clone(), ..git.clone() };
    let plan = plan_with_git(&inventory, &bare(), Some(&shallow), now());
    assert!(plan.deleted.is_empty(), "{:?}", deleted(&plan));
    let reasons: BTreeMap<String, String> = kept(&plan).into_iter().collect();
    assert!(reasons["pr-2"].starts_with("kept: the checkout is a shallow clone"), "{reasons:?}");
    assert!(reasons["pr-1"].starts_with("kept: MR !1 is open;"), "{reasons:?}");
    let full = GitRetention { pull_requests: gitlab, ..git };
    let plan = plan_with_git(&inventory, &bare(), Some(&full), now());
    assert_eq!(deleted(&plan)[0].2, format!("deleted: MR !2 is closed{}", rule("")));
}

#[test]
fn a_shallow_clone_keeps_what_it_cannot_prove_unneeded() {
    let git = retention(scenario_facts(true), default_keep_policies(Some("main")));
    let plan = plan_with_git(&scenario_inventory(), &bare(), Some(&git), now());
    let shallow = "kept: the checkout is a shallow clone, whose history cannot prove the image unneeded (fetch the full history: `fetch-depth: 0` on GitHub, `GIT_DEPTH: 0` on GitLab); evidence: ";
    let reasons: BTreeMap<String, String> = kept(&plan).into_iter().collect();
    assert_eq!(reasons["sha-8"], format!("{shallow}revision label"));
    assert_eq!(reasons["gone-old"], format!("{shallow}revision label"));
    assert!(reasons["sha-7"].starts_with("kept: branch `feature/a`"), "{reasons:?}");
    // a tag naming a branch the clone lacks may name one the shallow clone did not fetch
    assert_eq!(reasons["nightly"], format!("{shallow}the tag read by tag rule `{{branch}}`"));
    assert!(plan.deleted.is_empty(), "{:?}", deleted(&plan));
}

#[test]
fn without_evidence_count_and_age_decide_and_the_reason_says_so() {
    let git = retention(scenario_facts(false), default_keep_policies(Some("main")));
    let inventory = one(repository(
        "acme/app",
        vec![tag("20260101", "app", 1), tag("20260102", "app", 2)],
        vec![(1, built(None, None, 3 * DAY)), (2, built(None, None, 2 * DAY))],
    ));
    let policy = Policy { keep_last: Some(1), ..bare() };
    let git = GitRetention { tag_rules: Some(TagRules::parse(&["{date}"]).unwrap()), ..git };
    let plan = plan_with_git(&inventory, &policy, Some(&git), now());
    let unplaced = "no git evidence (no revision label, and no tag rule reads the tag), so count and age decide";
    assert_eq!(
        kept(&plan),
        pairs(&[("20260102", &format!("kept: {unplaced}: among the newest 1 images of `app`"))])
    );
    assert_eq!(
        deleted(&plan),
        triples(&[(
            "20260101",
            DeleteMethod::Digest,
            &format!("deleted: {unplaced}: not among the newest 1 images of `app`")
        )])
    );
}

#[test]
fn keep_rules_before_git_still_win() {
    let git = retention(scenario_facts(false), default_keep_policies(Some("main")));
    let policy = Policy {
        keep_tags: keep_tags(&["sha-8"]),
        keep_within: Some(Duration::from_secs(4 * 24 * 3600)),
        ..bare()
    };
    let plan = plan_with_git(&scenario_inventory(), &policy, Some(&git), now());
    assert!(plan.deleted.is_empty(), "{:?}", deleted(&plan));
    let reasons: BTreeMap<String, String> = kept(&plan).into_iter().collect();
    assert_eq!(reasons["sha-8"], "kept: matches keep_tags `sha-8`");
    assert!(reasons["gone-old"].starts_with("kept: younger than 4d"), "{reasons:?}");
}

/// Random histories: commits 0..8 (commit `n` made `n` hours ago), up to 4 branches and 2 tags
/// each reaching a random subset, some commits missing from the checkout.
fn git_facts() -> impl Strategy<Value = GitFacts> {
    let reference = (any::<u8>(), 0i64..(20 * DAY), any::<bool>());
    (prop::collection::vec(reference, 0..6), any::<u8>(), any::<bool>()).prop_map(
        |(references, missing, shallow)| {
            let references = references
                .into_iter()
                .enumerate()
                .map(|(position, (mask, tip, is_tag))| {
                    let kind = if is_tag { ReferenceKind::Tag } else { ReferenceKind::Branch };
                    let reaches: Vec<u32> = (0..8).filter(|bit| mask & (1 << bit) != 0).collect();
                    git_reference(kind, &format!("r{position}"), tip, &reaches)
                })
                .collect();
            let present: Vec<u32> = (0..8).filter(|bit| missing & (1 << bit) == 0).collect();
            facts(references, &present, shallow)
        },
    )
}

/// Tags on digests 0..6; each digest's image built from a random commit (or none), with a
/// random age; some tags look like releases.
fn git_inventory() -> impl Strategy<Value = Inventory> {
    let built_from = (prop::option::of(0u32..10), prop::option::weighted(0.9, 0i64..(5 * DAY)));
    let entry = (0u32..6, any::<bool>());
    (prop::collection::vec(built_from, 6), prop::collection::vec(entry, 1..12)).prop_map(
        |(manifests, entries)| {
            let tags = entries
                .into_iter()
                .enumerate()
                .map(|(position, (digest, release))| {
                    let name =
                        if release { format!("v1.0.{position}") } else { format!("t{position}") };
                    tag(&name, "app", digest)
                })
                .collect();
            let manifests = manifests
                .into_iter()
                .enumerate()
                .map(|(n, (commit, age))| {
                    let entry = ManifestEntry {
                        source: SourceLabels {
                            revision: commit.map(sha),
                            ref_name: Some("gone".to_owned()),
                        },
                        ..manifest(&[], None, age)
                    };
                    (u32::try_from(n).unwrap(), entry)
                })
                .collect();
            one(repository("acme/app", tags, manifests))
        },
    )
}

fn keep_policy() -> impl Strategy<Value = KeepPolicy> {
    let limit = (prop::option::of(1usize..4), prop::option::of(1i64..(10 * DAY)), any::<bool>())
        .prop_map(|(last, within, or)| Limit {
            last,
            within: within.map(|minutes| Duration::from_secs(u64::try_from(minutes).unwrap() * 60)),
            operator: if or { Operator::Or } else { Operator::And },
        });
    (any::<bool>(), prop::sample::select(vec![".*", "r[0-2]", "r3|r4"]), limit.clone(), limit)
        .prop_map(|(is_tag, pattern, references, images)| KeepPolicy {
            kind: if is_tag { ReferenceKind::Tag } else { ReferenceKind::Branch },
            pattern: KeepTag::new(pattern).unwrap(),
            references,
            images,
        })
}

fn deleted_tags(plan: &Plan) -> BTreeSet<String> {
    plan.deleted.iter().map(|deletion| item_label(&deletion.item)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn git_plans_decide_every_tag_once_and_adding_a_policy_deletes_no_more(
        facts in git_facts(),
        inventory in git_inventory(),
        policies in prop::collection::vec(keep_policy(), 0..3),
        extra in keep_policy(),
        keep_last in prop::option::of(1usize..3),
    ) {
        let policy = Policy { keep_last, ..bare() };
        let git = retention(facts, policies);
        let planned = plan_with_git(&inventory, &policy, Some(&git), now());
        check(&inventory, &policy, &planned)?;
        let mut more = git.clone();
        more.policies.push(extra);
        let with_more = plan_with_git(&inventory, &policy, Some(&more), now());
        check(&inventory, &policy, &with_more)?;
        prop_assert!(
            deleted_tags(&with_more).is_subset(&deleted_tags(&planned)),
            "a keep policy deleted more: {:?} then {:?}", deleted(&planned), deleted(&with_more)
        );
    }

    #[test]
    fn the_default_set_never_deletes_a_stable_release(
        facts in git_facts(),
        inventory in git_inventory(),
    ) {
        let policy = Policy::resolve(None, &PolicyFlags::default()).unwrap();
        let git = retention(facts, default_keep_policies(Some("r0")));
        let planned = plan_with_git(&inventory, &policy, Some(&git), now());
        check(&inventory, &policy, &planned)?;
        for tag in deleted_tags(&planned) {
            prop_assert!(!looks_like_release(&tag), "release `{tag}` deleted: {:?}", deleted(&planned));
        }
    }
}

#[test]
fn a_checkout_missing_branches_keeps_what_it_cannot_prove_unneeded() {
    let facts = GitFacts { partial_branches: true, ..scenario_facts(false) };
    let git = retention(facts, default_keep_policies(Some("main")));
    let plan = plan_with_git(&scenario_inventory(), &bare(), Some(&git), now());
    let reasons: BTreeMap<String, String> = kept(&plan).into_iter().collect();
    for tag in ["sha-8", "gone-old", "nightly"] {
        assert!(
            reasons[tag].starts_with("kept: the checkout did not fetch every branch"),
            "{tag}: {}",
            reasons[tag]
        );
    }
    assert!(plan.deleted.is_empty(), "{:?}", deleted(&plan));
}

#[test]
fn a_pre_release_is_kept_until_its_release_is_tagged() {
    let inventory = one(repository(
        "acme/app",
        vec![
            tag("v2.0.0-rc.1", "app", 1),
            tag("2.1.0-beta", "app", 2),
            tag("v2.0.0", "app", 3),
            monorepo_tag("web", "3.0.0-rc.2", 4),
        ],
        vec![(1, image(3 * DAY)), (2, image(3 * DAY)), (3, image(3 * DAY)), (4, image(3 * DAY))],
    ));
    let plan = plan(&inventory, &bare(), now());
    assert_eq!(
        kept(&plan),
        pairs(&[
            (
                "2.1.0-beta",
                "kept: `2.1.0-beta` is a pre-release of 2.1.0, which has no release tag yet (delete_releases is off)"
            ),
            ("v2.0.0", "kept: `v2.0.0` looks like a release (delete_releases is off)"),
            (
                "web-3.0.0-rc.2",
                "kept: `3.0.0-rc.2` is a pre-release of 3.0.0, which has no release tag yet (delete_releases is off)"
            ),
        ])
    );
    // released: the other rules decide it (here none keeps it)
    assert_eq!(
        deleted(&plan),
        triples(&[("v2.0.0-rc.1", DeleteMethod::Digest, "deleted: no keep rule is configured")])
    );
    let releases_too =
        plan_with_git(&inventory, &Policy { delete_releases: true, ..bare() }, None, now());
    assert!(releases_too.kept.is_empty(), "{:?}", kept(&releases_too));
}

/// Releases of 1.x and 2.x, floating tags, `latest`, pre-releases and another image's release.
fn release_inventory() -> Inventory {
    let names = [
        ("v1.0.0", 1),
        ("v1.0", 1),
        ("v1.0.1", 2),
        ("v1.1.0", 3),
        ("v1.1.1", 4),
        ("v1", 4),
        ("v2.0.0", 5),
        ("v2.1.0", 6),
        ("v2.1.1", 7),
        ("v2.1", 7),
        ("2.2.0", 8),
        ("latest", 8),
        ("v2.2.0-rc.1", 10),
        ("v3.0.0-rc.1", 9),
    ];
    let mut tags: Vec<TagEntry> = names.iter().map(|(name, n)| tag(name, "app", *n)).collect();
    // another image's releases are ranked on their own
    tags.push(monorepo_tag("web", "0.1.0", 11));
    let manifests = (1..=11).map(|n| (n, image(3 * DAY))).collect();
    one(repository("acme/app", tags, manifests))
}

const RELEASE_RULES: ReleaseRules = ReleaseRules {
    per_major: Some(2),
    per_minor: Some(1),
    pre_releases: PreReleases::UntilReleased,
};

#[test]
fn release_rules_keep_the_highest_and_the_newest_of_each_major_and_minor() {
    let inventory = release_inventory();
    let policy = Policy { releases: Some(RELEASE_RULES), ..bare() };
    let planned = plan(&inventory, &policy, now());
    let reasons: BTreeMap<String, String> = kept(&planned).into_iter().collect();
    let expected_kept = [
        ("2.2.0", "kept: `2.2.0` is the highest release of `app`"),
        ("latest", "kept: `latest` points at release `2.2.0`, which is kept"),
        ("v2.1.1", "kept: `v2.1.1` is the newest 2.1 release"),
        ("v2.1", "kept: `v2.1` points at release `v2.1.1`, which is kept"),
        ("v2.0.0", "kept: `v2.0.0` is the newest 2.0 release"),
        ("v1.1.1", "kept: `v1.1.1` is the newest 1.1 release"),
        ("v1", "kept: `v1` points at release `v1.1.1`, which is kept"),
        ("v1.1.0", "kept: `v1.1.0` is among the newest 2 releases of 1.x"),
        ("v1.0.1", "kept: `v1.0.1` is the newest 1.0 release"),
        (
            "v3.0.0-rc.1",
            "kept: `v3.0.0-rc.1` is a pre-release of 3.0.0, which has no release tag yet",
        ),
        ("web-0.1.0", "kept: `0.1.0` is the highest release of `web`"),
    ];
    assert_eq!(
        reasons,
        expected_kept
            .iter()
            .map(|(tag, reason)| ((*tag).to_owned(), (*reason).to_owned()))
            .collect()
    );
    assert_eq!(
        {
            let mut deletions = deleted(&planned);
            deletions.sort_by(|a, b| a.0.cmp(&b.0));
            deletions
        },
        triples(&[
            ("v1.0", DeleteMethod::Digest, "deleted: no keep rule is configured"),
            (
                "v1.0.0",
                DeleteMethod::Digest,
                "deleted: `v1.0.0` is neither among the newest 2 releases of 1.x nor the newest 1.0 release"
            ),
            (
                "v2.1.0",
                DeleteMethod::Digest,
                "deleted: `v2.1.0` is neither among the newest 2 releases of 2.x nor the newest 2.1 release"
            ),
            (
                "v2.2.0-rc.1",
                DeleteMethod::Digest,
                "deleted: `v2.2.0-rc.1` is a pre-release of 2.2.0, which is released"
            ),
        ])
    );
}

#[test]
fn release_rules_take_one_limit_and_pre_releases_as_configured() {
    let inventory = release_inventory();
    let rules = RELEASE_RULES;
    // one limit alone; pre-releases kept, or left to the other rules
    let per_major = ReleaseRules { per_minor: None, pre_releases: PreReleases::Keep, ..rules };
    let planned = plan(&inventory, &Policy { releases: Some(per_major), ..bare() }, now());
    let reasons: BTreeMap<String, String> = kept(&planned).into_iter().collect();
    assert_eq!(
        reasons["v2.2.0-rc.1"],
        "kept: `v2.2.0-rc.1` is a pre-release (cleanup.releases.pre_releases is keep)"
    );
    assert_eq!(
        deleted(&planned).into_iter().find(|(tag, _, _)| tag == "v2.0.0").unwrap().2,
        "deleted: `v2.0.0` is not among the newest 2 releases of 2.x"
    );
    let by_rules = ReleaseRules { pre_releases: PreReleases::Rules, ..rules };
    let policy = Policy {
        releases: Some(by_rules),
        keep_within: Some(Duration::from_secs(7 * 86_400)),
        ..bare()
    };
    let planned = plan(&inventory, &policy, now());
    let reasons: BTreeMap<String, String> = kept(&planned).into_iter().collect();
    assert!(reasons["v2.2.0-rc.1"].starts_with("kept: younger than 1w"), "{reasons:?}");
    // the release rules decide releases before keep_within: v1.0.0 goes however young
    assert!(deleted(&planned).iter().any(|(tag, _, _)| tag == "v1.0.0"));

    // without the section every release stays, and `latest` on one with it
    let planned = plan(&inventory, &bare(), now());
    let reasons: BTreeMap<String, String> = kept(&planned).into_iter().collect();
    assert_eq!(reasons["v1.0.0"], "kept: `v1.0.0` looks like a release (delete_releases is off)");
    assert_eq!(reasons["latest"], "kept: `latest` points at release `2.2.0`, which is kept");
    assert_eq!(
        deleted(&planned).into_iter().map(|(tag, _, _)| tag).collect::<Vec<_>>(),
        ["v2.2.0-rc.1"]
    );
    assert_eq!(reasons["v1.0"], "kept: `v1.0` points at release `v1.0.0`, which is kept");
}

fn release_rules() -> impl Strategy<Value = ReleaseRules> {
    (prop::option::of(1usize..4), prop::option::of(1usize..3), 0usize..3).prop_filter_map(
        "at least one count",
        |(per_major, per_minor, pre)| {
            (per_major.is_some() || per_minor.is_some()).then_some(ReleaseRules {
                per_major,
                per_minor,
                pre_releases: [PreReleases::UntilReleased, PreReleases::Keep, PreReleases::Rules]
                    [pre],
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn release_rules_keep_the_highest_and_wider_limits_delete_no_more(
        inventory in inventories(),
        policy in policies(),
        rules in release_rules(),
    ) {
        let policy =
            Policy { releases: Some(rules), delete_releases: false, max_deletes: None, ..policy };
        let planned = plan(&inventory, &policy, now());
        check(&inventory, &policy, &planned)?;
        let wider = [
            Policy { releases: Some(ReleaseRules { per_major: Some(rules.per_major.unwrap_or(0) + 1), ..rules }), ..policy.clone() },
            Policy { releases: Some(ReleaseRules { per_minor: rules.per_minor.map(|n| n + 1), ..rules }), ..policy.clone() },
            Policy { releases: Some(ReleaseRules { pre_releases: PreReleases::Keep, ..rules }), ..policy.clone() },
            Policy {
                keep_tags: policy.keep_tags.iter().cloned().chain(keep_tags(&["v.*"])).collect(),
                ..policy.clone()
            },
            Policy { keep_last: Some(policy.keep_last.unwrap_or(0) + 1), ..policy.clone() },
        ];
        for wider in wider {
            let more = plan(&inventory, &wider, now());
            check(&inventory, &wider, &more)?;
            prop_assert!(
                deleted_tags(&more).is_subset(&deleted_tags(&planned)),
                "a wider rule deleted more: {:?} then {:?}", deleted(&planned), deleted(&more)
            );
        }
    }
}

/// werf's documented default keepPolicies, written as `keep_policies`; what werf's cleanup
/// documentation says each keeps is in the comments, and the plan is checked against it.
const WERF_DEFAULTS: &str = r#"
keep_policies:
  # "one version for the last 10 Git tags (based on the HEAD commit creation date)"
  - references:
      tag: ".*"
      limit: {last: 10}
  # "up to two versions from the past week for the 10 most active Git branches"
  - references:
      branch: ".*"
      limit: {last: 10, in: 168h, operator: And}
    images_per_reference: {last: 2, in: 168h, operator: And}
  # "two versions for the Git branches main, master, staging, and production"
  - references:
      branch: "main|master|staging|production"
    images_per_reference: {last: 2}
"#;

#[test]
fn werf_default_keep_policies_keep_what_werf_documents() {
    let section: crate::project::PolicySection = serde_saphyr::from_str(WERF_DEFAULTS).unwrap();
    let policy = Policy::resolve(Some(&section), &PolicyFlags::default()).unwrap();
    let GitRules::Configured(policies) = policy.git.clone() else { panic!("{:?}", policy.git) };
    let policy = Policy { keep_last: None, keep_within: None, ..policy };
    // 11 git tags (v1.0.N committed N+1 days ago), 11 branches bN (N+1 hours ago) and main
    // (30 minutes ago) with 3 images each, every commit made an hour ago
    let mut references = Vec::new();
    let mut tags = Vec::new();
    let mut manifests = Vec::new();
    let mut add = |name: String, n: u32| {
        tags.push(tag(&name, "app", n));
        manifests.push((n, built(Some(n), None, 3 * DAY)));
    };
    for n in 0..11u32 {
        references.push(git_reference(
            ReferenceKind::Tag,
            &format!("v1.0.{n}"),
            i64::from(n + 1) * DAY,
            &[100 + n],
        ));
        add(format!("t-{n}"), 100 + n);
        let commits: Vec<u32> = (0..3).map(|k| 200 + 3 * n + k).collect();
        references.push(git_reference(
            ReferenceKind::Branch,
            &format!("b{n}"),
            i64::from(n + 1) * HOUR,
            &commits,
        ));
        for (k, commit) in commits.iter().enumerate() {
            add(format!("b{n}-{k}"), *commit);
        }
    }
    references.push(git_reference(ReferenceKind::Branch, "main", 30 * MINUTE, &[300, 301, 302]));
    for k in 0..3u32 {
        add(format!("main-{k}"), 300 + k);
    }
    let mut facts = facts(references, &[], false);
    for (n, _) in &manifests {
        facts.commits.insert(sha(*n), Commit { id: sha(*n), time: ago(HOUR) });
    }
    let git = GitRetention { tag_rules: None, ..retention(facts, policies) };
    let plan =
        plan_with_git(&one(repository("acme/app", tags, manifests)), &policy, Some(&git), now());

    let mut want_deleted: Vec<String> = vec!["t-10".to_owned(), "main-2".to_owned()];
    want_deleted.extend((0..9).map(|n| format!("b{n}-2")));
    want_deleted.extend((9..11).flat_map(|n| (0..3).map(move |k| format!("b{n}-{k}"))));
    want_deleted.sort();
    assert_eq!(deleted_tags(&plan).into_iter().collect::<Vec<_>>(), want_deleted);
    assert_eq!(plan.kept.len(), 10 + 9 * 2 + 2);
    let reasons: BTreeMap<String, String> = kept(&plan).into_iter().collect();
    assert_eq!(
        reasons["t-9"],
        "kept: tag `v1.0.9`, image 1 (a keep policy keeps the newest 1); evidence: revision label"
    );
    assert_eq!(
        reasons["main-1"],
        "kept: branch `main`, image 2 (a keep policy keeps the newest 2 and those of the last 1w); evidence: revision label"
    );
    assert_eq!(
        deleted(&plan).into_iter().find(|(tag, _, _)| tag == "b9-0").unwrap().2,
        "deleted: image 1 of branch `b9`, which no keep policy keeps; evidence: revision label"
    );
}
