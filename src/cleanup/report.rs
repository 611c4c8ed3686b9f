//! What a cleanup tells its user: the result document (`kept` and `deleted`, or `would_delete`
//! in a dry run), its text table, and the Markdown table for a GitHub step summary.
//!
//! Owns turning a plan and the executor's outcomes into items with the SPEC's keys
//! (`repository`, `tag`, `digest`, `reason`, plus `image`, and for deletions `removes`: the
//! tag alone or the manifest with its tags), so that every tag in scope appears
//! exactly once: a planned deletion that did not happen is listed as kept, with the reason it
//! stayed; a failed one is listed under `failed` with its error. Pure: `output` prints it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::cleanup::execute::Outcome;
use crate::cleanup::plan::{Deletion, Plan, PlanItem};
use crate::reference::Tag;

/// The result of a cleanup, serialised as the SPEC says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    pub kept: Vec<PlanItem>,
    /// What was deleted (absent in a dry run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<Deletion>>,
    /// What a run would delete (dry run only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_delete: Option<Vec<Deletion>>,
    /// Deletions that failed (present only when some did).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedItem>,
    /// Tags named by `--delete-tag` that are no tag in scope (present only when some are).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_found: Vec<Tag>,
}

/// A deletion that failed, with the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedItem {
    #[serde(flatten)]
    pub item: PlanItem,
    pub error: String,
}

impl Document {
    /// The plan as a dry run shows it (and as `--plan-out` saves it).
    pub fn dry_run(plan: &Plan) -> Self {
        Self {
            kept: plan.kept.clone(),
            deleted: None,
            would_delete: Some(plan.deleted.clone()),
            failed: Vec::new(),
            not_found: plan.not_found.clone(),
        }
    }

    /// What applying `plan` did; `outcomes` has one entry per `plan.deleted`.
    pub fn applied(plan: &Plan, outcomes: &[Outcome]) -> Self {
        let mut kept = plan.kept.clone();
        let mut deleted = Vec::new();
        let mut failed = Vec::new();
        for (deletion, outcome) in plan.deleted.iter().zip(outcomes) {
            let mut item = deletion.item.clone();
            match outcome {
                Outcome::Deleted => deleted.push(deletion.clone()),
                Outcome::AlreadyGone => {
                    let mut gone = deletion.clone();
                    gone.item.reason = format!("{} (already gone)", gone.item.reason).into();
                    deleted.push(gone);
                }
                Outcome::Moved(now) => {
                    item.reason =
                        format!("kept: moved to `{now}` since the plan (a newer push)").into();
                    kept.push(item);
                }
                Outcome::Skipped(skip) => {
                    item.reason = format!("kept: {}", skip.describe()).into();
                    kept.push(item);
                }
                Outcome::Failed(error) => {
                    failed.push(FailedItem { item, error: error_chain(error.as_ref()) });
                }
            }
        }
        Self {
            kept,
            deleted: Some(deleted),
            would_delete: None,
            failed,
            not_found: plan.not_found.clone(),
        }
    }

    /// The deletions listed (done, or planned in a dry run).
    pub fn deletions(&self) -> &[Deletion] {
        self.deleted.as_deref().or(self.would_delete.as_deref()).unwrap_or_default()
    }

    /// A table: one block per repository, one line per tag (or untagged manifest) with its
    /// short digest and reason, and a count at the end.
    pub fn text(&self) -> String {
        let mut rows: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
        let mut add = |item: &PlanItem, reason: String| {
            let name =
                item.tag.as_ref().map_or_else(|| "(untagged)".to_owned(), ToString::to_string);
            rows.entry(item.repository.to_string()).or_default().push((
                name,
                short(&item.digest.to_string()),
                reason,
            ));
        };
        for item in self.kept.iter().chain(self.deletions().iter().map(|deletion| &deletion.item)) {
            add(item, item.reason.to_string());
        }
        for failed in &self.failed {
            add(&failed.item, format!("failed: {}", failed.error));
        }
        let mut out = String::new();
        for (repository, mut lines) in rows {
            lines.sort();
            let width = lines.iter().map(|(name, _, _)| name.len()).max().unwrap_or(0);
            let _ = writeln!(out, "{repository}");
            for (name, digest, reason) in lines {
                let _ = writeln!(out, "  {name:<width$}  {digest}  {reason}");
            }
        }
        let verb = if self.deleted.is_some() { "deleted" } else { "to delete (dry run)" };
        let _ = write!(out, "{} kept, {} {verb}", self.kept.len(), self.deletions().len());
        if !self.failed.is_empty() {
            let _ = write!(out, ", {} failed", self.failed.len());
        }
        if !self.not_found.is_empty() {
            let names: Vec<String> = self.not_found.iter().map(|tag| format!("`{tag}`")).collect();
            let _ = write!(out, "\nnot found (named by --delete-tag): {}", names.join(", "));
        }
        out
    }

    /// A Markdown table for `$GITHUB_STEP_SUMMARY`: counts per repository.
    pub fn markdown(&self) -> String {
        let mut counts: BTreeMap<String, [usize; 3]> = BTreeMap::new();
        for item in &self.kept {
            counts.entry(item.repository.to_string()).or_default()[0] += 1;
        }
        for deletion in self.deletions() {
            counts.entry(deletion.item.repository.to_string()).or_default()[1] += 1;
        }
        for failed in &self.failed {
            counts.entry(failed.item.repository.to_string()).or_default()[2] += 1;
        }
        let (title, deleted) = if self.deleted.is_some() {
            ("dockhand cleanup", "deleted")
        } else {
            ("dockhand cleanup (dry run)", "would delete")
        };
        let mut out = format!(
            "### {title}\n\n| repository | kept | {deleted} | failed |\n|---|---:|---:|---:|\n"
        );
        for (repository, [kept, deleted, failed]) in counts {
            let _ = writeln!(out, "| `{repository}` | {kept} | {deleted} | {failed} |");
        }
        out.push('\n');
        out
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// The error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    std::iter::once(error.to_string())
        .chain(crate::exit::causes(error))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cleanup::execute::{ItemError, Skip};
    use crate::cleanup::plan::{DeleteMethod, Deletion};
    use crate::reference::{Digest, ImageRef};
    use crate::registry::distribution::{DistributionError, Operation};

    fn item(tag: Option<&str>, n: u8, reason: &str) -> PlanItem {
        PlanItem {
            repository: std::sync::Arc::new("localhost:5000/acme/api".parse().unwrap()),
            tag: tag.map(|tag| tag.parse().unwrap()),
            digest: Digest::sha256_of(&[n]),
            image: tag.map(|_| "api".into()),
            reason: reason.into(),
        }
    }

    fn plan() -> Plan {
        Plan {
            kept: vec![item(Some("latest"), 1, "kept: matches keep_tags `latest`")],
            deleted: [
                (Some("old"), 2),
                (Some("older"), 3),
                (Some("moved"), 4),
                (None, 5),
                (Some("broken"), 6),
            ]
            .into_iter()
            .map(|(tag, n)| Deletion {
                item: item(tag, n, "deleted: older than 2h"),
                method: if tag == Some("older") {
                    DeleteMethod::TagOnly
                } else {
                    DeleteMethod::Digest
                },
            })
            .collect(),
            budget_reached: false,
            incomplete: vec![],
            not_found: vec![],
        }
    }

    #[test]
    fn dry_run_json_has_exactly_the_spec_keys() {
        let json = serde_json::to_value(Document::dry_run(&plan())).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        // serde_json's map is sorted by key
        assert_eq!(keys, ["kept", "would_delete"]);
        let untagged = &json["would_delete"][3];
        let item_keys: Vec<&str> =
            untagged.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(item_keys, ["digest", "reason", "removes", "repository", "tag"]);
        assert!(untagged["tag"].is_null());
        assert_eq!(untagged["removes"], "manifest");
        assert_eq!(json["would_delete"][1]["removes"], "tag");
        let tagged: Vec<&str> =
            json["kept"][0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(tagged, ["digest", "image", "reason", "repository", "tag"]);
    }

    #[test]
    fn every_item_appears_once_with_what_happened() {
        let error = ItemError::DigestDelete {
            reference: ImageRef::tagged(
                "localhost:5000/acme/api".parse().unwrap(),
                "broken".parse().unwrap(),
            ),
            source: DistributionError::UnexpectedResponse {
                operation: Operation { method: reqwest::Method::DELETE, target: "x".to_owned() },
                problem: "bad".to_owned(),
            }
            .into(),
        };
        let outcomes = [
            Outcome::Deleted,
            Outcome::Skipped(Skip::Deadline),
            Outcome::Moved(Digest::sha256_of(b"new")),
            Outcome::AlreadyGone,
            Outcome::Failed(Arc::new(error)),
        ];
        let document = Document::applied(&plan(), &outcomes);
        let names = |items: &[PlanItem]| -> Vec<String> {
            items
                .iter()
                .map(|item| item.tag.as_ref().map_or("-".to_owned(), ToString::to_string))
                .collect()
        };
        assert_eq!(names(&document.kept), ["latest", "older", "moved"]);
        assert_eq!(&*document.kept[1].reason, "kept: max_duration reached, rerun to continue");
        assert!(document.kept[2].reason.starts_with("kept: moved to `sha256:"));
        let deleted: Vec<PlanItem> =
            document.deleted.iter().flatten().map(|deletion| deletion.item.clone()).collect();
        assert_eq!(names(&deleted), ["old", "-"]);
        assert_eq!(&*deleted[1].reason, "deleted: older than 2h (already gone)");
        assert_eq!(document.failed.len(), 1);
        assert_eq!(
            document.failed[0].error,
            "Deleting `localhost:5000/acme/api:broken` failed: `DELETE x` returned an unusable response: bad"
        );
        let json = serde_json::to_value(&document).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["deleted", "failed", "kept"]);
        let text = document.text();
        assert!(text.ends_with("3 kept, 2 deleted, 1 failed"), "{text}");
        assert!(
            text.lines().any(|line| line.starts_with("  broken      sha256:")
                && line.ends_with("failed: Deleting `localhost:5000/acme/api:broken` failed: `DELETE x` returned an unusable response: bad")),
            "{text}"
        );
        let markdown = document.markdown();
        assert!(markdown.contains("| `localhost:5000/acme/api` | 3 | 2 | 1 |"), "{markdown}");
    }
}
