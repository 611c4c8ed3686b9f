//! Cleanup: deciding which tags and manifests of the images repo to delete, explaining each
//! decision, and applying it.
//!
//! The phase is a pipeline of verbs: [`inventory::read`] fills an [`Inventory`] (tags →
//! digests → index children and referrers, marked incomplete when any read failed), the pure
//! [`plan::plan`] keeps or deletes every tag in scope exactly once with a reason naming the
//! rule, `--dry-run` stops there, and [`execute::Executor`] applies the plan. This module owns
//! [`CleanupSettings`] and [`run`], the one function both `dockhand cleanup` and `dockhand run`
//! call. It must never delete what a kept tag needs (its digest, index children, referrers),
//! never remove one tag by deleting another's digest, and never delete anything in a
//! repository whose inventory is incomplete.

pub mod evidence;
pub mod execute;
pub mod facts_cache;
pub mod git;
pub mod graph;
pub mod inventory;
pub mod plan;
pub mod plan_file;
pub mod policy;
pub mod report;

use std::path::PathBuf;
use std::time::Instant;

use futures_util::future::join_all;
use jiff::Timestamp;

use crate::ci::Provider;
use crate::exit::{Classify, ExitStatus, causes};
use crate::naming::Mode;
use crate::output::Output;
use crate::reference::RepoAddress;
use crate::registry::pull_requests::{Fetched, Forge, Lookup, Unavailable};
use crate::registry::{Capabilities, Implementation, Registry, RegistryError};
use crate::tags::TagRules;
use execute::{ApplyOptions, ExecuteError, Executor, Outcome};
use facts_cache::FactsCache;
use git::GitError;
use git::ReferenceKind;
use inventory::{Inventory, ReadOptions, Resolve, Scope};
use plan::{Gap, GitRetention, PrState, PrUnknown, PullRequests};
use plan_file::{PlanFileError, SavedPlan};
use policy::{GitRules, Policy};
use report::Document;

/// Why a cleanup could not run at all (per-item failures are reported, not returned).
#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error("Cannot write the plan file `{}`", path.display())]
    PlanWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Cannot write the GitHub step outputs or step summary")]
    GithubFiles(#[source] std::io::Error),
    #[error(
        "max_duration ({max_duration}) was reached while reading the inventory; nothing was deleted"
    )]
    InventoryDeadline { max_duration: String },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("`cleanup.keep_policies` need a git checkout, and `{}` is in none", workdir.display())]
    NoCheckout { workdir: PathBuf },
}

impl Classify for CleanupError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Execute(error) => error.exit_status(),
            Self::PlanFile(error) => error.exit_status(),
            Self::PlanWrite { .. } | Self::GithubFiles(_) => ExitStatus::Failure,
            Self::InventoryDeadline { .. } => ExitStatus::Unfinished,
            Self::Git(error) => error.exit_status(),
            Self::NoCheckout { .. } => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Execute(error) => error.hint(),
            Self::PlanFile(error) => error.hint(),
            Self::PlanWrite { .. } | Self::GithubFiles(_) => None,
            Self::Git(error) => error.hint(),
            Self::NoCheckout { .. } => Some(
                "run the cleanup inside the project's checkout (with its full history), or replace `keep_policies` by `keep_last`/`keep_within`".to_owned(),
            ),
            Self::InventoryDeadline { .. } => Some(
                "rerun to try again, or allow more time with --max-duration (the registry may be slow or throttling)".to_owned(),
            ),
        }
    }
}

/// Everything a cleanup needs, resolved and validated before any registry is contacted.
#[derive(Debug, Clone)]
pub struct CleanupSettings {
    pub repo: RepoAddress,
    pub implementation: Implementation,
    pub capabilities: Capabilities,
    pub mode: Mode,
    /// The project's image names: the cleanup's scope. Without a project file, or for a nameless
    /// image, the one name is the images repo's last path component, `repo` its parent and
    /// `mode` multirepo, so the scope is the images repo itself, all its tags.
    pub images: Vec<String>,
    pub policy: Policy,
    /// The project's tag rules, read backwards to tie images without labels to git.
    pub tag_rules: TagRules,
    /// Where the job's git checkout is looked for.
    pub workdir: PathBuf,
    /// The default branch as the CI names it, for the default keep policies.
    pub default_branch: Option<String>,
    /// The CI the job runs on, when detected: it tells how the checkout was fetched.
    pub provider: Option<Provider>,
    /// Where git-aware retention asks the state of the pull requests images name.
    pub pull_requests: Lookup,
    pub dry_run: bool,
    pub keep_going: bool,
    /// Where to save the plan (JSON), resolved against the working directory.
    pub plan_out: Option<PathBuf>,
    /// The digest-facts cache file ([`facts_cache`]), read before the inventory and written
    /// after it.
    pub facts_cache: Option<PathBuf>,
    /// A saved plan to re-validate and apply instead of applying the fresh plan.
    pub apply_plan: Option<PathBuf>,
}

impl CleanupSettings {
    /// The repositories in scope and how the tags of each are sorted into images: one
    /// repository per image in multirepo mode, the images repo itself in monorepo mode.
    pub fn scopes(&self) -> Vec<(RepoAddress, Scope)> {
        match self.mode {
            Mode::Multirepo => self
                .images
                .iter()
                .map(|image| (self.repo.join(image), Scope::Image(image.clone())))
                .collect(),
            Mode::Monorepo => vec![(self.repo.clone(), Scope::Shared(self.images.clone()))],
        }
    }
}

/// Runs a cleanup: reads the inventory of every repository in scope, plans at `now`, prints
/// and saves the plan, and (unless a dry run) applies it. Returns the exit status the SPEC
/// gives the outcome: 1 when the credentials were refused (reading or deleting), 2 when an
/// inventory was otherwise incomplete, a deletion failed or a kept tag no longer resolves; 3 when a budget left work for the next run; else 0. Those outcomes are
/// reported through `output` as they are found; an `Err` means nothing was deleted.
pub async fn run(
    settings: &CleanupSettings,
    registry: &Registry,
    output: &Output,
    now: Timestamp,
) -> Result<ExitStatus, CleanupError> {
    run_reporting(settings, registry, output, now, |document| {
        output.result(document, || document.text());
    })
    .await
}

/// [`run`], handing the result document to `present` instead of printing it, so that `dockhand
/// run` can put it beside what it published in one JSON document.
pub async fn run_reporting(
    settings: &CleanupSettings,
    registry: &Registry,
    output: &Output,
    now: Timestamp,
    present: impl FnOnce(&Document),
) -> Result<ExitStatus, CleanupError> {
    let started = Instant::now();
    // a deadline past what an `Instant` can hold is no deadline
    let deadline = settings.policy.max_duration.and_then(|duration| started.checked_add(duration));
    let executor = Executor::new(registry);
    let saved = settings.apply_plan.as_deref().map(SavedPlan::load).transpose()?;
    let section =
        output.section("dockhand_cleanup_progress", "dockhand cleanup: inventory and deletions");
    // one deadline for the whole cleanup: the inventory stops at it (nothing is deleted then),
    // the executor starts no deletion after it
    let (inventory, problems) = match (deadline, settings.policy.max_duration) {
        (Some(deadline), Some(max_duration)) => tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            read_inventory(settings, registry),
        )
        .await
        .map_err(|_| CleanupError::InventoryDeadline {
            max_duration: policy::format_duration(max_duration),
        })?,
        _ => read_inventory(settings, registry).await,
    };
    let git = git_retention(settings, &inventory).await?;
    let mut plan = plan::plan_with_git(&inventory, &settings.policy, git.as_ref(), now);
    if let Some(saved) = &saved {
        plan = plan_file::restrict(plan, saved);
    }
    for tag in &plan.not_found {
        log::warn!("`{tag}` named by --delete-tag is no tag in scope: nothing to delete for it");
    }
    log::info!(
        "plan: {} kept, {} to delete{}",
        plan.kept.len(),
        plan.deleted.len(),
        if plan.budget_reached {
            " (max_deletes reached: the rest waits for the next run)"
        } else {
            ""
        }
    );
    if let Some(path) = &settings.plan_out {
        let json = serde_json::to_string_pretty(&Document::dry_run(&plan))
            .expect("a plan always serialises");
        std::fs::write(path, json + "\n")
            .map_err(|source| CleanupError::PlanWrite { path: path.clone(), source })?;
        log::info!("plan saved to `{}`", path.display());
    }
    let applied = if settings.dry_run {
        None
    } else {
        let progress = output.progress("deleting", plan.deleted.len());
        let options =
            ApplyOptions { keep_going: settings.keep_going, deadline, progress: Some(&progress) };
        Some(executor.apply(&plan, &inventory, options).await?)
    };
    drop(section);
    // the report needs neither: at 100,000 tags they are most of the memory
    drop(inventory);
    drop(git);

    let document = match &applied {
        Some(report) => Document::applied(&plan, &report.outcomes),
        None => Document::dry_run(&plan),
    };
    let budget_reached = plan.budget_reached;
    drop(plan);
    present(&document);
    let mut counts = vec![
        ("kept", document.kept.len().to_string()),
        ("deleted", document.deleted.as_ref().map_or(0, Vec::len).to_string()),
    ];
    if let Some(would_delete) = &document.would_delete {
        counts.push(("would_delete", would_delete.len().to_string()));
    }
    output.github_outputs(&counts).map_err(CleanupError::GithubFiles)?;
    output.step_summary(&document.markdown()).map_err(CleanupError::GithubFiles)?;

    for (repository, errors) in &problems {
        let causes: Vec<String> = errors.iter().map(|error| report::error_chain(error)).collect();
        output.error(
            &format!("The inventory of `{repository}` is incomplete, so nothing in it was deleted"),
            &causes,
            Some(
                "rerun the cleanup; if reads keep failing, check the registry and the credentials' pull access",
            ),
        );
    }
    let status = inventory_status(&problems);
    match applied {
        None => Ok(status),
        Some(report) => {
            let status = report_outcomes(&report, output, status, budget_reached);
            log::info!(
                "cleanup: {} kept, {} deleted, {} failed in {:.1} s",
                document.kept.len(),
                document.deletions().len(),
                document.failed.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(status)
        }
    }
}

/// Git-aware retention for this cleanup, or `None` when count and age rules alone decide:
/// without a checkout (unless `keep_policies` are configured, an error then), with count or age
/// rules configured and no `keep_policies`, and for a targeted `--delete-tag` cleanup.
async fn git_retention(
    settings: &CleanupSettings,
    inventory: &Inventory,
) -> Result<Option<GitRetention>, CleanupError> {
    let policy = &settings.policy;
    if !policy.delete_tags.is_empty() || policy.git == GitRules::Off {
        return Ok(None);
    }
    let Some(repository) = git::discover(&settings.workdir) else {
        return match &policy.git {
            GitRules::Configured(_) => {
                Err(CleanupError::NoCheckout { workdir: settings.workdir.clone() })
            }
            _ => Ok(None),
        };
    };
    let wanted = evidence::wanted_commits(inventory, Some(&settings.tag_rules));
    let facts = git::read(&repository, &wanted)?;
    let policies = match &policy.git {
        GitRules::Configured(policies) => policies.clone(),
        _ => policy::default_keep_policies(
            settings.default_branch.as_deref().or(facts.default_branch.as_deref()),
        ),
    };
    let mut facts = facts;
    // GitLab's runner fetches the pipeline's branch and the tags only, whatever the refspecs
    // in the clone's config say: with at most one branch of `origin` known, others may exist
    let origin_branches =
        facts.references.iter().filter(|reference| reference.kind == ReferenceKind::Branch).count();
    if settings.provider == Some(Provider::Gitlab) && origin_branches <= 1 {
        facts.partial_branches = true;
    }
    for (gap, present) in
        [(Gap::Shallow, facts.shallow), (Gap::SomeBranches, facts.partial_branches)]
    {
        if present {
            log::warn!("images git-aware retention cannot prove unneeded are kept: {gap}");
        }
    }
    log::info!(
        "git-aware retention: {} keep policies, {} branches and tags, {} of {} image commits found",
        policies.len(),
        facts.references.len(),
        facts.commits.len(),
        wanted.len()
    );
    let pull_requests = pull_requests(settings, inventory).await;
    Ok(Some(GitRetention {
        facts,
        policies,
        tag_rules: Some(settings.tag_rules.clone()),
        grace_period: policy.grace_period,
        pull_requests,
    }))
}

/// The states of the pull requests the inventory's images name, asked of the forge; a failed
/// request leaves that state unknown (its images stay), never an error.
async fn pull_requests(settings: &CleanupSettings, inventory: &Inventory) -> PullRequests {
    let lookup = &settings.pull_requests;
    let forge = lookup.forge();
    let numbers = evidence::wanted_pull_requests(inventory, Some(&settings.tag_rules));
    if numbers.is_empty() {
        return PullRequests::unknown(forge, PrUnknown::Unavailable(Unavailable::NoProject));
    }
    match lookup.states(&numbers).await {
        Err(why) => {
            log::warn!(
                "the state of {} pull/merge requests is unknown ({}): their images are kept",
                numbers.len(),
                PrUnknown::Unavailable(why.clone())
            );
            PullRequests::unknown(forge, PrUnknown::Unavailable(why))
        }
        Ok(fetched) => {
            let forge_name = forge.unwrap_or(Forge::Github);
            let states = fetched
                .into_iter()
                .map(|(number, fetched)| {
                    let state = match fetched {
                        Fetched::State(state) => PrState::Known(state),
                        Fetched::Failed(why) => {
                            log::warn!(
                                "the state of #{number} is unknown (the {} API failed: {why}): its images are kept",
                                forge_name.name()
                            );
                            PrState::Unknown(PrUnknown::Failed(forge_name, why))
                        }
                    };
                    (number, state)
                })
                .collect();
            log::info!(
                "git-aware retention: the state of {} pull/merge requests asked",
                numbers.len()
            );
            PullRequests {
                forge,
                states,
                otherwise: PrUnknown::Unavailable(Unavailable::NoProject),
            }
        }
    }
}

/// The exit status the inventory's problems give: 0 without any, 1 when a read was refused for
/// the credentials (a wrong or under-scoped token: the user's to fix), else 2.
fn inventory_status(problems: &[(RepoAddress, Vec<RegistryError>)]) -> ExitStatus {
    let credentials_refused = problems
        .iter()
        .flat_map(|(_, errors)| errors)
        .any(|error| error.exit_status() == ExitStatus::Usage);
    match (problems.is_empty(), credentials_refused) {
        (true, _) => ExitStatus::Success,
        (false, true) => ExitStatus::Usage,
        (false, false) => ExitStatus::Failure,
    }
}

/// Reads every repository in scope concurrently; returns the inventory and, per incomplete
/// repository, the reads that failed.
async fn read_inventory(
    settings: &CleanupSettings,
    registry: &Registry,
) -> (Inventory, Vec<(RepoAddress, Vec<RegistryError>)>) {
    let options = ReadOptions {
        concurrency: settings.capabilities.concurrency,
        resolve: Resolve::for_capabilities(&settings.capabilities),
    };
    let scopes = settings.scopes();
    let cache = settings.facts_cache.as_deref().map(FactsCache::load);
    let reads = join_all(scopes.iter().map(|(repository, scope)| {
        inventory::read_with_facts(registry, repository, scope, options, cache.as_ref())
    }))
    .await;
    let mut problems = Vec::new();
    let mut inventory = Inventory::default();
    let mut learned = FactsCache::default();
    for mut read in reads {
        learned.extend(std::mem::take(&mut read.facts));
        let repository = &read.inventory;
        if read.missing {
            log::info!("`{}`: does not exist yet, nothing to clean", repository.address);
        } else if repository.complete {
            log::info!(
                "`{}`: {} tags, {} manifests read",
                repository.address,
                repository.tags.len(),
                repository.manifests.len()
            );
        } else {
            log::warn!(
                "`{}`: inventory incomplete ({} reads failed); nothing in it will be deleted",
                repository.address,
                read.problems.len()
            );
            problems.push((repository.address.clone(), read.problems));
        }
        inventory.repositories.push(read.inventory);
    }
    if let Some(path) = &settings.facts_cache {
        learned.save(path);
    }
    (inventory, problems)
}

/// Reports failed items (the first [`REPORTED_FAILURES`]) and broken kept items, and returns the
/// exit status: 1 when every failure was refused for the credentials, 2 on any other failure (or
/// an earlier `status` of 2), else 3 when work is left for the next run, else `status`.
fn report_outcomes(
    report: &execute::Report,
    output: &Output,
    status: ExitStatus,
    budget_reached: bool,
) -> ExitStatus {
    let mut failed = 0;
    let mut refused = 0;
    let mut left = 0;
    for outcome in &report.outcomes {
        match outcome {
            Outcome::Failed(error) => {
                failed += 1;
                if error.exit_status() == ExitStatus::Usage {
                    refused += 1;
                }
                if failed <= REPORTED_FAILURES {
                    output.error(
                        &error.to_string(),
                        &causes(error.as_ref()),
                        error.hint().as_deref(),
                    );
                }
            }
            Outcome::Skipped(_) => left += 1,
            Outcome::Deleted | Outcome::AlreadyGone | Outcome::Moved(_) => {}
        }
    }
    if failed > REPORTED_FAILURES {
        log::error!("{} more deletions failed (the result lists each)", failed - REPORTED_FAILURES);
    }
    for broken in &report.broken {
        output.error(&broken.to_string(), &causes(broken), None);
    }
    if failed > 0 && failed == refused && report.broken.is_empty() && status != ExitStatus::Failure
    {
        // every failure was the credentials' (e.g. a token without delete rights): fix and rerun
        ExitStatus::Usage
    } else if failed > 0 || !report.broken.is_empty() || status == ExitStatus::Failure {
        ExitStatus::Failure
    } else if left > 0 || budget_reached {
        log::warn!("partial cleanup: work is left for the next run; rerun to continue");
        ExitStatus::Unfinished
    } else {
        status
    }
}

/// Failed deletions reported one by one on stderr; the result lists them all.
const REPORTED_FAILURES: usize = 20;
