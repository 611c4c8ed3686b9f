//! Plans saved with `--plan-out` and applied with `--apply-plan`.
//!
//! Owns the file's format — the same JSON document `cleanup --dry-run --output json` prints
//! (`kept` and `would_delete`, items with `repository`, `tag`, `digest`, `reason`) — and
//! [`restrict`], which re-validates a saved plan against a fresh one: only deletions that both
//! plans make, for the same tag on the same digest, survive, and a deletion by digest becomes a
//! tag-only deletion when the fresh plan deletes other tags on that digest that the saved plan
//! did not name. Pure apart from reading the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cleanup::plan::{DeleteMethod, Plan, PlanItem};
use crate::exit::{Classify, ExitStatus};
use crate::reference::{Digest, ReferenceError, RepoAddress, Tag};

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("Cannot read the plan file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("The plan file `{}` is not a plan written by `dockhand cleanup --plan-out`", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("The plan file `{}` names an invalid repository, tag or digest", path.display())]
    Reference {
        path: PathBuf,
        #[source]
        source: ReferenceError,
    },
}

impl Classify for PlanFileError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some("write the plan with `dockhand cleanup --dry-run --plan-out FILE`".to_owned())
    }
}

/// The deletions a saved plan names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedPlan {
    pub path: PathBuf,
    pub deletions: Vec<SavedDeletion>,
}

/// One deletion of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SavedDeletion {
    pub repository: RepoAddress,
    pub tag: Option<Tag>,
    pub digest: Digest,
}

#[derive(Deserialize)]
struct FileItem {
    repository: String,
    tag: Option<String>,
    digest: String,
}

#[derive(Deserialize)]
struct File {
    #[serde(alias = "deleted")]
    would_delete: Vec<FileItem>,
}

impl SavedPlan {
    pub fn load(path: &Path) -> Result<Self, PlanFileError> {
        let text = std::fs::read(path)
            .map_err(|source| PlanFileError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses the JSON of a plan file read from `path`.
    pub fn parse(text: &[u8], path: &Path) -> Result<Self, PlanFileError> {
        let file: File = serde_json::from_slice(text)
            .map_err(|source| PlanFileError::Parse { path: path.to_owned(), source })?;
        let reference = |source| PlanFileError::Reference { path: path.to_owned(), source };
        let deletions = file
            .would_delete
            .into_iter()
            .map(|item| {
                Ok(SavedDeletion {
                    repository: item.repository.parse().map_err(reference)?,
                    tag: item.tag.map(|tag| tag.parse()).transpose().map_err(reference)?,
                    digest: item.digest.parse().map_err(reference)?,
                })
            })
            .collect::<Result<_, PlanFileError>>()?;
        Ok(Self { path: path.to_owned(), deletions })
    }
}

fn key(item: &PlanItem) -> SavedDeletion {
    SavedDeletion {
        repository: RepoAddress::clone(&item.repository),
        tag: item.tag.clone(),
        digest: item.digest.clone(),
    }
}

/// The fresh plan cut down to the deletions `saved` also names (same repository, tag and
/// digest). A fresh deletion the saved plan lacks stays, with a reason saying so; a saved
/// deletion the fresh plan does not make (the tag moved, or something kept needs it now) is
/// simply not there. A deletion by digest whose digest carries other freshly deleted tags the
/// saved plan did not name becomes tag-only, so those tags survive.
pub fn restrict(fresh: Plan, saved: &SavedPlan) -> Plan {
    let named: HashSet<&SavedDeletion> = saved.deletions.iter().collect();
    let mut plan = Plan {
        kept: fresh.kept,
        deleted: Vec::new(),
        budget_reached: fresh.budget_reached,
        incomplete: fresh.incomplete,
        not_found: fresh.not_found,
    };
    let mut partial: HashSet<(RepoAddress, Digest)> = HashSet::new();
    for deletion in &fresh.deleted {
        if deletion.method == DeleteMethod::Digest && !named.contains(&key(&deletion.item)) {
            partial.insert((
                RepoAddress::clone(&deletion.item.repository),
                deletion.item.digest.clone(),
            ));
        }
    }
    for mut deletion in fresh.deleted {
        let item_key = key(&deletion.item);
        if !named.contains(&item_key) {
            let file = saved.path.display();
            deletion.item.reason = format!("kept: not in the applied plan `{file}`").into();
            plan.kept.push(deletion.item);
            continue;
        }
        if deletion.method == DeleteMethod::Digest
            && deletion.item.tag.is_some()
            && partial.contains(&(item_key.repository, item_key.digest))
        {
            deletion.method = DeleteMethod::TagOnly;
        }
        plan.deleted.push(deletion);
    }
    let applied: HashSet<SavedDeletion> = plan.deleted.iter().map(|d| key(&d.item)).collect();
    for skipped in saved.deletions.iter().filter(|deletion| !applied.contains(*deletion)) {
        let name = skipped.tag.as_ref().map_or_else(
            || format!("{}@{}", skipped.repository, skipped.digest),
            |tag| format!("{}:{tag}", skipped.repository),
        );
        log::info!("`{name}` is in the plan file but no longer to be deleted; left alone");
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cleanup::plan::Deletion;

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn item(tag: Option<&str>, n: u8) -> PlanItem {
        PlanItem {
            repository: std::sync::Arc::new("localhost:5000/acme/app".parse().unwrap()),
            tag: tag.map(|tag| tag.parse().unwrap()),
            digest: digest(n),
            image: tag.map(|_| "app".into()),
            reason: "deleted: old".into(),
        }
    }

    fn deletion(tag: Option<&str>, n: u8, method: DeleteMethod) -> Deletion {
        Deletion { item: item(tag, n), method }
    }

    fn saved(items: &[(Option<&str>, u8)]) -> SavedPlan {
        SavedPlan {
            path: PathBuf::from("plan.json"),
            deletions: items.iter().map(|(tag, n)| key(&item(*tag, *n))).collect(),
        }
    }

    #[test]
    fn only_deletions_both_plans_make_survive() {
        let fresh = Plan {
            kept: vec![],
            deleted: vec![
                // both tags of digest 1 are deleted freshly, but only `a` was saved
                deletion(Some("a"), 1, DeleteMethod::Digest),
                deletion(Some("b"), 1, DeleteMethod::Digest),
                deletion(Some("c"), 2, DeleteMethod::Digest),
                deletion(None, 3, DeleteMethod::Digest),
                deletion(Some("e"), 5, DeleteMethod::TagOnly),
            ],
            budget_reached: false,
            incomplete: vec![],
            not_found: vec![],
        };
        // `d` moved from digest 4 (it is not in the fresh plan); `e` was saved on digest 4, now 5
        let restricted = restrict(
            fresh,
            &saved(&[(Some("a"), 1), (Some("c"), 2), (None, 3), (Some("d"), 4), (Some("e"), 4)]),
        );
        let deleted: Vec<(Option<String>, DeleteMethod)> = restricted
            .deleted
            .iter()
            .map(|d| (d.item.tag.as_ref().map(ToString::to_string), d.method))
            .collect();
        assert_eq!(
            deleted,
            [
                (Some("a".to_owned()), DeleteMethod::TagOnly),
                (Some("c".to_owned()), DeleteMethod::Digest),
                (None, DeleteMethod::Digest),
            ]
        );
        let kept: Vec<(String, String)> = restricted
            .kept
            .iter()
            .map(|item| (item.tag.as_ref().unwrap().to_string(), item.reason.to_string()))
            .collect();
        assert_eq!(
            kept,
            [
                ("b".to_owned(), "kept: not in the applied plan `plan.json`".to_owned()),
                ("e".to_owned(), "kept: not in the applied plan `plan.json`".to_owned()),
            ]
        );
    }

    #[test]
    fn reads_dry_run_documents_and_rejects_others() {
        let path = Path::new("p.json");
        let text = format!(
            r#"{{"kept":[],"would_delete":[{{"repository":"localhost:5000/acme/app","tag":null,"digest":"{}","reason":"deleted: x"}}]}}"#,
            digest(1)
        );
        let plan = SavedPlan::parse(text.as_bytes(), path).unwrap();
        assert_eq!(plan.deletions, [key(&item(None, 1))]);
        let with_deleted = text.replace("would_delete", "deleted");
        assert_eq!(SavedPlan::parse(with_deleted.as_bytes(), path).unwrap(), plan);
        assert!(matches!(
            SavedPlan::parse(b"{\"kept\":[]}", path),
            Err(PlanFileError::Parse { .. })
        ));
        let bad_digest = text.replace(&digest(1).to_string(), "sha256:nothex");
        assert!(matches!(
            SavedPlan::parse(bad_digest.as_bytes(), path),
            Err(PlanFileError::Reference { .. })
        ));
    }
}
