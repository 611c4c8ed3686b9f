//! What ties an image to git: the commit it was built from and the branch, tag or pull request
//! it was built for, read from the best evidence there is.
//!
//! Owns [`Evidence`] and [`evidence_of`]: the `org.opencontainers.image.revision` and
//! `.ref.name` labels `build` writes come first; without a revision label the project's tag
//! rules are read backwards ([`TagRule::read_back`]) from the tag as published. Readings that
//! disagree about the commit or the pull request give no evidence of it (never a guess). Pure;
//! matching the evidence against the checkout's branches and tags is the planner's.

use std::collections::BTreeSet;
use std::fmt;

use crate::cleanup::inventory::{Inventory, SourceLabels};
use crate::tags::{Placeholder, TagRules};

/// What an image says about its git origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The commit, lowercase hex: a full id, or the 8-digit prefix `{short_sha}` gives.
    pub commit: Option<String>,
    /// The references it names, in order of strength.
    pub names: Vec<Named>,
    /// The pull or merge request number.
    pub pr: Option<u64>,
    /// Where the evidence came from; `None` when there is none.
    pub source: Option<Source>,
}

/// A reference an image names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Named {
    /// The `ref.name` label: a branch or tag name as it is.
    Ref(String),
    /// `{branch}` (or `{ref}`): a branch name as a slug.
    BranchSlug(String),
    /// `{tag}`: a git tag as published (sanitised like any tag).
    GitTag(String),
    /// `{semver}`: the version of a git tag, `v` stripped.
    Semver(semver::Version),
}

/// Where an image's evidence came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The image config's OCI labels.
    Labels,
    /// The tag read backwards through these tag rules (as written).
    TagRules(Vec<String>),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Labels => f.write_str("revision label"),
            Self::TagRules(rules) => {
                let plural = if rules.len() == 1 { "" } else { "s" };
                let rules: Vec<String> = rules.iter().map(|rule| format!("`{rule}`")).collect();
                write!(f, "the tag read by tag rule{plural} {}", rules.join(", "))
            }
        }
    }
}

impl Evidence {
    /// `true` if and only if nothing ties the image to git.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
    }
}

/// The evidence for an image published as `image_tag` whose config has `labels`, under the
/// project's tag `rules` (none when the project gives none).
pub fn evidence_of(image_tag: &str, labels: &SourceLabels, rules: Option<&TagRules>) -> Evidence {
    let label_pr = labels.ref_name.as_deref().and_then(pull_request_ref);
    if let Some(revision) = labels.revision.as_deref().and_then(commit_text) {
        let names = labels
            .ref_name
            .iter()
            .filter(|_| label_pr.is_none())
            .map(|name| Named::Ref(name.clone()))
            .collect();
        let read = rules.and_then(|rules| read_rules(image_tag, rules).pr);
        let pr = agree(label_pr, read);
        return Evidence { commit: Some(revision), names, pr, source: Some(Source::Labels) };
    }
    let mut evidence = rules.map(|rules| read_rules(image_tag, rules)).unwrap_or_default();
    if let Some(name) = &labels.ref_name
        && evidence.source.is_some()
    {
        evidence.pr = agree(label_pr, evidence.pr);
        if label_pr.is_none() {
            evidence.names.insert(0, Named::Ref(name.clone()));
        }
    }
    evidence
}

/// The pull or merge request a CI ref names: GitHub's `refs/pull/N/merge` (or `/head`,
/// `pull/N/…`, and `N/merge` as `GITHUB_REF_NAME` has it), GitLab's
/// `refs/merge-requests/N/head` (or `/merge`, `/train`).
pub fn pull_request_ref(name: &str) -> Option<u64> {
    let name = name.strip_prefix("refs/").unwrap_or(name);
    let (rest, kinds): (&str, &[&str]) = if let Some(rest) = name.strip_prefix("pull/") {
        (rest, &["merge", "head"])
    } else if let Some(rest) = name.strip_prefix("merge-requests/") {
        (rest, &["merge", "head", "train"])
    } else {
        (name, &["merge"])
    };
    let (number, kind) = rest.split_once('/')?;
    let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    if digits && kinds.contains(&kind) { number.parse().ok() } else { None }
}

/// The one number both readings give, or either's alone; none when they disagree.
fn agree(one: Option<u64>, other: Option<u64>) -> Option<u64> {
    match (one, other) {
        (Some(a), Some(b)) if a != b => None,
        (a, b) => a.or(b),
    }
}

/// The pull requests the tags of `inventory` give evidence of, for their states to be asked.
pub fn wanted_pull_requests(inventory: &Inventory, rules: Option<&TagRules>) -> BTreeSet<u64> {
    let empty = SourceLabels::default();
    inventory
        .repositories
        .iter()
        .flat_map(|repository| {
            repository.tags.iter().filter_map(|entry| {
                let labels = repository.manifests.get(&entry.digest).map_or(&empty, |m| &m.source);
                evidence_of(&entry.image_tag, labels, rules).pr
            })
        })
        .collect()
}

/// The commits the tags of `inventory` give evidence of (full ids and 8-digit prefixes), for
/// [`crate::cleanup::git::read`] to look for.
pub fn wanted_commits(inventory: &Inventory, rules: Option<&TagRules>) -> BTreeSet<String> {
    let empty = SourceLabels::default();
    inventory
        .repositories
        .iter()
        .flat_map(|repository| {
            repository.tags.iter().filter_map(|entry| {
                let labels = repository.manifests.get(&entry.digest).map_or(&empty, |m| &m.source);
                evidence_of(&entry.image_tag, labels, rules).commit
            })
        })
        .collect()
}

/// A full commit id or 8-digit prefix, lowercased, if `text` is one.
fn commit_text(text: &str) -> Option<String> {
    let lower = text.trim().to_ascii_lowercase();
    (matches!(lower.len(), 8 | 40 | 64) && lower.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(lower)
}

/// One value every reading agrees on: `None` when none gives it or two disagree.
#[derive(Default)]
struct Agreed<T> {
    value: Option<T>,
    conflict: bool,
}

impl<T: PartialEq> Agreed<T> {
    fn offer(&mut self, value: T) {
        match &self.value {
            Some(known) if *known != value => self.conflict = true,
            Some(_) => {}
            None => self.value = Some(value),
        }
    }

    fn get(self) -> Option<T> {
        if self.conflict { None } else { self.value }
    }
}

fn read_rules(image_tag: &str, rules: &TagRules) -> Evidence {
    let mut full = Agreed::default();
    let mut short = Agreed::default();
    let mut pr = Agreed::default();
    let mut names = BTreeSet::new();
    let mut matched = Vec::new();
    for rule in rules.rules() {
        let mut gave = false;
        for reading in rule.read_back(image_tag) {
            for (placeholder, value) in reading {
                gave |= match placeholder {
                    Placeholder::Sha => {
                        full.offer(value);
                        true
                    }
                    Placeholder::ShortSha => {
                        short.offer(value);
                        true
                    }
                    Placeholder::Pr => {
                        if let Ok(number) = value.parse::<u64>() {
                            pr.offer(number);
                        }
                        true
                    }
                    Placeholder::Branch | Placeholder::Ref => {
                        names.insert(Named::BranchSlug(value));
                        true
                    }
                    Placeholder::Tag => {
                        names.insert(Named::GitTag(value));
                        true
                    }
                    Placeholder::Semver => {
                        if let Some(version) = crate::tags::semver_of_tag_text(&value) {
                            names.insert(Named::Semver(version));
                        }
                        true
                    }
                    Placeholder::Major
                    | Placeholder::Minor
                    | Placeholder::Patch
                    | Placeholder::Job
                    | Placeholder::Date => false,
                };
            }
        }
        if gave {
            matched.push(rule.as_str().to_owned());
        }
    }
    let full = full.get();
    let short = short.get();
    let commit = match (full, short) {
        (Some(full), Some(short)) if !full.starts_with(&short) => None,
        (Some(full), _) => Some(full),
        (None, short) => short,
    };
    let pr = pr.get();
    let names: Vec<Named> = names.into_iter().collect();
    let source = (commit.is_some() || pr.is_some() || !names.is_empty())
        .then_some(Source::TagRules(matched));
    Evidence { commit, names, pr, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "ffac537e6cbbf934b08745a378932722df287a53";
    const OTHER: &str = "0123456789abcdef0123456789abcdef01234567";

    fn rules(list: &[&str]) -> TagRules {
        TagRules::parse(list).unwrap()
    }

    fn labels(revision: Option<&str>, ref_name: Option<&str>) -> SourceLabels {
        SourceLabels {
            revision: revision.map(str::to_owned),
            ref_name: ref_name.map(str::to_owned),
        }
    }

    fn version(text: &str) -> Named {
        Named::Semver(text.parse().unwrap())
    }

    #[test]
    fn the_revision_label_comes_first() {
        let rules = rules(&["{sha}", "{branch}", "pr-{pr}"]);
        let got = evidence_of(OTHER, &labels(Some(SHA), Some("feature/x")), Some(&rules));
        assert_eq!(
            got,
            Evidence {
                commit: Some(SHA.to_owned()),
                names: vec![Named::Ref("feature/x".into())],
                pr: None,
                source: Some(Source::Labels),
            },
            "the label wins over what the tag reads as"
        );
        let got = evidence_of("pr-42", &labels(Some(&SHA.to_uppercase()), None), Some(&rules));
        assert_eq!((got.commit.as_deref(), got.pr), (Some(SHA), Some(42)));
        // a revision that is no commit id is no evidence
        let got = evidence_of("x", &labels(Some("main"), None), None);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn tag_rules_read_backwards() {
        let all = rules(&["{sha}", "sha-{short_sha}", "{branch}", "pr-{pr}", "{semver}", "{tag}"]);
        let none = labels(None, None);
        let short = &SHA[..8];
        for (tag, commit, names, pr) in [
            (SHA, Some(SHA), vec![Named::BranchSlug(SHA.into()), Named::GitTag(SHA.into())], None),
            (
                &format!("sha-{short}") as &str,
                Some(short),
                vec![
                    Named::BranchSlug(format!("sha-{short}")),
                    Named::GitTag(format!("sha-{short}")),
                ],
                None,
            ),
            (
                "main",
                None,
                vec![Named::BranchSlug("main".into()), Named::GitTag("main".into())],
                None,
            ),
            (
                "pr-42",
                None,
                vec![Named::BranchSlug("pr-42".into()), Named::GitTag("pr-42".into())],
                Some(42),
            ),
            (
                "1.2.3",
                None,
                vec![
                    Named::BranchSlug("1.2.3".into()),
                    Named::GitTag("1.2.3".into()),
                    version("1.2.3"),
                ],
                None,
            ),
            ("Main", None, vec![Named::GitTag("Main".into())], None),
        ] {
            let got = evidence_of(tag, &none, Some(&all));
            assert_eq!((got.commit.as_deref(), got.names, got.pr), (commit, names, pr), "{tag}");
            assert!(matches!(got.source, Some(Source::TagRules(_))), "{tag}");
        }
    }

    #[test]
    fn ci_refs_name_pull_requests() {
        for (name, number) in [
            ("refs/pull/42/merge", Some(42)),
            ("refs/pull/42/head", Some(42)),
            ("pull/7/merge", Some(7)),
            ("42/merge", Some(42)),
            ("refs/merge-requests/9/head", Some(9)),
            ("refs/merge-requests/9/train", Some(9)),
            ("feature/merge", None),
            ("refs/pull/x/merge", None),
            ("refs/pull/42/other", None),
            ("main", None),
            ("refs/heads/main", None),
        ] {
            assert_eq!(pull_request_ref(name), number, "{name}");
        }
        // the label's pull request, with or without a revision; a disagreeing tag gives none
        let rules = rules(&["{sha}", "pr-{pr}"]);
        let got =
            evidence_of("pr-42", &labels(Some(SHA), Some("refs/pull/42/merge")), Some(&rules));
        assert_eq!((got.pr, got.names), (Some(42), vec![]));
        let got =
            evidence_of("pr-41", &labels(Some(SHA), Some("refs/pull/42/merge")), Some(&rules));
        assert_eq!(got.pr, None);
        let got = evidence_of(SHA, &labels(None, Some("refs/merge-requests/3/head")), Some(&rules));
        assert_eq!((got.commit.as_deref(), got.pr), (Some(SHA), Some(3)));
    }

    #[test]
    fn rules_without_git_placeholders_and_no_rules_give_nothing() {
        let dated = rules(&["{date}-{job}", "latest", "stable"]);
        for tag in ["20260101-7", "latest", "stable", "other"] {
            assert!(evidence_of(tag, &labels(None, None), Some(&dated)).is_empty(), "{tag}");
        }
        assert!(evidence_of("main", &labels(None, Some("main")), None).is_empty());
    }

    #[test]
    fn disagreeing_readings_give_no_commit() {
        // two rules reading two different commits out of one tag
        let two = rules(&["{short_sha}-{branch}", "{branch}-{short_sha}"]);
        let got = evidence_of("ffac537e-0123abcd", &labels(None, None), Some(&two));
        assert_eq!(got.commit, None, "{got:?}");
        let consistent = rules(&["{sha}", "{short_sha}"]);
        assert_eq!(
            evidence_of(SHA, &labels(None, None), Some(&consistent)).commit.as_deref(),
            Some(SHA)
        );
        // a ref.name label adds to what the rules read
        let got = evidence_of("main", &labels(None, Some("main")), Some(&rules(&["{branch}"])));
        assert_eq!(got.names, [Named::Ref("main".into()), Named::BranchSlug("main".into())]);
        assert_eq!(got.source, Some(Source::TagRules(vec!["{branch}".into()])));
    }
}
