//! Cleanup: deciding which tags and manifests of the images repo to delete, and explaining each
//! decision.
//!
//! The phase is a pipeline of verbs: an [`inventory::Inventory`] (tags → digests → index
//! children and referrers, marked incomplete when any read failed) and a validated
//! [`policy::Policy`] go into the pure [`plan::plan`], which keeps or deletes every tag in scope
//! exactly once with a reason naming the rule. `--dry-run` stops after the plan; the executor
//! applies it. This module must never delete what a kept tag needs (its digest, index children,
//! referrers), never remove one tag by deleting another's digest, and never delete anything in a
//! repository whose inventory is incomplete.

pub mod inventory;
pub mod plan;
pub mod policy;
