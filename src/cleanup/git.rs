//! Git facts from the job's checkout, for git-aware retention: its branches (local and
//! `origin/*`), its tags, when each was last committed to, and which of the commits images were
//! built from each one reaches.
//!
//! Owns [`GitFacts`] (plain data the pure planner takes) and [`read`], which fills it from a
//! repository opened with gix — no `git` binary, so the `FROM scratch` image can do it. Reads
//! only the local object database and refs: nothing is fetched. A shallow clone is reported as
//! such ([`GitFacts::shallow`]) and not treated as an error: the planner then keeps whatever
//! the missing history could change. Decides nothing about images.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::exit::{Classify, ExitStatus};

/// What the checkout says about the history images were built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitFacts {
    /// `true` if and only if the checkout is a shallow clone: histories end early, so a commit
    /// it lacks or a branch that does not reach a commit proves nothing.
    pub shallow: bool,
    /// `true` if and only if the checkout may lack branches of `origin`: its fetch refspecs do
    /// not cover `refs/heads/*` (a single-branch clone), or the caller knows the CI fetched
    /// only the pipeline's branch. A missing commit then proves nothing either.
    pub partial_branches: bool,
    /// The default branch, when `origin/HEAD` names one.
    pub default_branch: Option<String>,
    /// Every branch (local or `origin/*`, one entry per name) and every tag that points to a
    /// commit, in kind and name order.
    pub references: Vec<GitReference>,
    /// The commits the checkout has among those asked for, keyed as asked (a full id or an
    /// 8-digit prefix, lowercase).
    pub commits: BTreeMap<String, Commit>,
}

/// A branch or a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReferenceKind {
    Branch,
    Tag,
}

impl ReferenceKind {
    /// "branch", "tag".
    pub fn name(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Tag => "tag",
        }
    }
}

/// One branch or tag and the asked-for commits in its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitReference {
    pub kind: ReferenceKind,
    /// `main`, `feature/x` (without `origin/`), `v1.2.3`.
    pub name: String,
    /// The commit time of the commit it points to: how recently it was active.
    pub tip_time: Timestamp,
    /// The full ids of the asked-for commits its history holds, newest commit first.
    pub reaches: Vec<String>,
}

/// A commit the checkout has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The full id, lowercase hex.
    pub id: String,
    /// Its committer time.
    pub time: Timestamp,
}

/// Reading the checkout failed.
#[derive(Debug, thiserror::Error)]
#[error("Cannot read the git repository `{}` ({what})", path.display())]
pub struct GitError {
    path: PathBuf,
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl Classify for GitError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(
            "run the cleanup in an intact checkout of the project, or outside any checkout for count and age rules alone"
                .to_owned(),
        )
    }
}

/// The repository around `workdir`, or `None` when `workdir` is in no git checkout.
pub fn discover(workdir: &Path) -> Option<gix::Repository> {
    match gix::discover(workdir) {
        Ok(repository) => Some(repository),
        Err(error) => {
            log::debug!("`{}` is in no git checkout: {error}", workdir.display());
            None
        }
    }
}

/// Reads the facts of `repository`, looking for the commits `wanted` (full ids or 8-digit
/// prefixes, lowercase) in the history of every branch and tag.
pub fn read(repository: &gix::Repository, wanted: &BTreeSet<String>) -> Result<GitFacts, GitError> {
    let path = repository.git_dir().to_owned();
    let fail = |what: &'static str| {
        let path = path.clone();
        move |source: Box<dyn std::error::Error + Send + Sync>| GitError {
            path: path.clone(),
            what,
            source,
        }
    };
    let shallow = repository.is_shallow().map_err(|error| fail("shallow file")(error.into()))?;
    let platform = repository.references().map_err(|error| fail("refs")(error.into()))?;
    let mut tips: BTreeMap<(ReferenceKind, String), Vec<gix::ObjectId>> = BTreeMap::new();
    let mut default_branch = None;
    let groups = [
        (ReferenceKind::Branch, platform.local_branches()),
        (ReferenceKind::Branch, platform.remote_branches()),
        (ReferenceKind::Tag, platform.tags()),
    ];
    for (kind, iter) in groups {
        for reference in iter.map_err(|error| fail("refs")(error.into()))? {
            let mut reference = reference.map_err(|error| fail("refs")(error.into()))?;
            let full = reference.name().as_bstr().to_string();
            let name = match kind {
                ReferenceKind::Branch => match full.strip_prefix("refs/heads/") {
                    Some(name) => name.to_owned(),
                    None => match full.strip_prefix("refs/remotes/origin/") {
                        Some("HEAD") => {
                            default_branch = origin_head(&reference);
                            continue;
                        }
                        Some(name) => name.to_owned(),
                        // another remote's branches are not the project's
                        None => continue,
                    },
                },
                ReferenceKind::Tag => reference.name().shorten().to_string(),
            };
            match reference.peel_to_commit() {
                Ok(commit) => tips.entry((kind, name)).or_default().push(commit.id),
                Err(error) => log::debug!("`{full}` points to no commit: {error}"),
            }
        }
    }
    let mut commits = BTreeMap::new();
    let mut references = Vec::with_capacity(tips.len());
    for ((kind, name), tips) in tips {
        let (tip_time, reaches) =
            walk(repository, &tips, wanted, shallow, &mut commits).map_err(fail("history"))?;
        references.push(GitReference { kind, name, tip_time, reaches });
    }
    let refspecs = repository.config_snapshot().plumbing().strings("remote.origin.fetch");
    let partial_branches = refspecs.is_some_and(|refspecs| {
        !refspecs.iter().any(|refspec| {
            let refspec = refspec.to_string();
            refspec.trim_start_matches('+').starts_with("refs/heads/*:")
        })
    });
    Ok(GitFacts { shallow, partial_branches, default_branch, references, commits })
}

/// The branch `refs/remotes/origin/HEAD` points to.
fn origin_head(reference: &gix::Reference<'_>) -> Option<String> {
    match reference.target() {
        gix::refs::TargetRef::Symbolic(name) => {
            name.as_bstr().to_string().strip_prefix("refs/remotes/origin/").map(str::to_owned)
        }
        gix::refs::TargetRef::Object(_) => None,
    }
}

/// Walks the history of `tips` newest commit first: the newest tip's commit time, and the
/// asked-for commits found, as full ids (also recorded in `commits`). In a shallow clone a
/// walk may end at the shallow boundary with an error: the history then simply ends there.
fn walk(
    repository: &gix::Repository,
    tips: &[gix::ObjectId],
    wanted: &BTreeSet<String>,
    shallow: bool,
    commits: &mut BTreeMap<String, Commit>,
) -> Result<(Timestamp, Vec<String>), Box<dyn std::error::Error + Send + Sync>> {
    let sorting = gix::revision::walk::Sorting::ByCommitTime(
        gix::traverse::commit::simple::CommitTimeOrder::NewestFirst,
    );
    let mut tip_time = None;
    let mut reaches = Vec::new();
    for info in repository.rev_walk(tips.iter().copied()).sorting(sorting).all()? {
        let info = match info {
            Ok(info) => info,
            Err(error) if shallow => {
                log::debug!("a history ends early in the shallow clone: {error}");
                break;
            }
            Err(error) => return Err(error.into()),
        };
        let time = Timestamp::from_second(info.commit_time()).unwrap_or(Timestamp::UNIX_EPOCH);
        tip_time.get_or_insert(time);
        let id = info.id.to_string();
        let mut found = false;
        for key in [id.as_str(), &id[..8]] {
            if wanted.contains(key) {
                commits.insert(key.to_owned(), Commit { id: id.clone(), time });
                found = true;
            }
        }
        if found {
            reaches.push(id);
        }
    }
    Ok((tip_time.unwrap_or(Timestamp::UNIX_EPOCH), reaches))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Runs git in `dir` with a fixed identity, no user or system config, and `date` as both
    /// author and committer date.
    fn git_at(dir: &Path, date: &str, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        git_at(dir, "2026-01-01T00:00:00Z", args)
    }

    fn commit(dir: &Path, message: &str, date: &str) -> String {
        git_at(dir, date, &["commit", "-q", "--allow-empty", "-m", message]);
        git(dir, &["rev-parse", "HEAD"])
    }

    #[test]
    fn a_single_branch_clone_may_lack_branches() {
        let (root, ids) = origin_and_clone(&["--single-branch", "--branch", "feature/x"]);
        let repository = discover(&root.path().join("clone")).expect("a checkout");
        let facts = read(&repository, &[ids["c"].clone()].into()).unwrap();
        assert!(facts.partial_branches && !facts.shallow);
        let (root, ids) = origin_and_clone(&[]);
        let repository = discover(&root.path().join("clone")).expect("a checkout");
        assert!(!read(&repository, &[ids["c"].clone()].into()).unwrap().partial_branches);
    }

    /// An origin with `main` (a, b, c), `feature/x` (d on b), `gone` (e on a, deleted before
    /// cloning), and tag `v1.0.0` (annotated, on b); cloned into `clone` with `args`.
    fn origin_and_clone(args: &[&str]) -> (tempfile::TempDir, BTreeMap<&'static str, String>) {
        let root = tempfile::tempdir().unwrap();
        let origin = root.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        git(&origin, &["init", "-q", "-b", "main"]);
        let mut ids = BTreeMap::new();
        ids.insert("a", commit(&origin, "a", "2026-01-01T10:00:00Z"));
        ids.insert("b", commit(&origin, "b", "2026-01-02T10:00:00Z"));
        git(&origin, &["tag", "-a", "-m", "release", "v1.0.0"]);
        git(&origin, &["checkout", "-q", "-b", "feature/x"]);
        ids.insert("d", commit(&origin, "d", "2026-01-03T10:00:00Z"));
        git(&origin, &["checkout", "-q", "-b", "gone", &ids["a"]]);
        ids.insert("e", commit(&origin, "e", "2026-01-04T10:00:00Z"));
        git(&origin, &["checkout", "-q", "main"]);
        ids.insert("c", commit(&origin, "c", "2026-01-05T10:00:00Z"));
        git(&origin, &["branch", "-q", "-D", "gone"]);
        let mut clone = vec!["clone", "-q"];
        clone.extend_from_slice(args);
        let url = format!("file://{}", origin.display());
        clone.extend([url.as_str(), "clone"]);
        git(root.path(), &clone);
        (root, ids)
    }

    fn reference<'a>(facts: &'a GitFacts, kind: ReferenceKind, name: &str) -> &'a GitReference {
        facts
            .references
            .iter()
            .find(|reference| reference.kind == kind && reference.name == name)
            .unwrap_or_else(|| panic!("no {} `{name}` in {facts:?}", kind.name()))
    }

    #[test]
    fn branches_tags_and_what_they_reach() {
        let (root, ids) = origin_and_clone(&[]);
        let repository = discover(&root.path().join("clone")).expect("a checkout");
        let mut wanted: BTreeSet<String> =
            ["a", "c", "d", "e"].iter().map(|name| ids[name].clone()).collect();
        wanted.insert(ids["b"][..8].to_owned());
        let facts = read(&repository, &wanted).unwrap();
        assert!(!facts.shallow);
        assert_eq!(facts.default_branch.as_deref(), Some("main"));
        let names: Vec<(ReferenceKind, &str)> =
            facts.references.iter().map(|r| (r.kind, r.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (ReferenceKind::Branch, "feature/x"),
                (ReferenceKind::Branch, "main"),
                (ReferenceKind::Tag, "v1.0.0")
            ]
        );
        let main = reference(&facts, ReferenceKind::Branch, "main");
        assert_eq!(main.reaches, [ids["c"].clone(), ids["b"].clone(), ids["a"].clone()]);
        assert_eq!(main.tip_time, "2026-01-05T10:00:00Z".parse().unwrap());
        let feature = reference(&facts, ReferenceKind::Branch, "feature/x");
        assert_eq!(feature.reaches, [ids["d"].clone(), ids["b"].clone(), ids["a"].clone()]);
        let tag = reference(&facts, ReferenceKind::Tag, "v1.0.0");
        assert_eq!(tag.reaches, [ids["b"].clone(), ids["a"].clone()]);
        // the deleted branch's commit was never cloned
        assert!(!facts.commits.contains_key(&ids["e"]));
        assert_eq!(facts.commits[&ids["b"][..8]].id, ids["b"]);
        assert_eq!(facts.commits[&ids["a"]].time, "2026-01-01T10:00:00Z".parse().unwrap());
    }

    #[test]
    fn a_shallow_clone_says_so() {
        let (root, ids) = origin_and_clone(&["--depth", "1", "--no-single-branch"]);
        let repository = discover(&root.path().join("clone")).expect("a checkout");
        let wanted: BTreeSet<String> = [ids["a"].clone(), ids["c"].clone()].into();
        let facts = read(&repository, &wanted).unwrap();
        assert!(facts.shallow);
        let main = reference(&facts, ReferenceKind::Branch, "main");
        assert_eq!(main.reaches, [ids["c"].clone()], "history ends at the shallow boundary");
        assert!(!facts.commits.contains_key(&ids["a"]));
    }

    #[test]
    fn outside_a_checkout_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(discover(dir.path()).is_none());
    }
}
