//! `dockhand cleanup`: resolve the cleanup settings, build a client with the registry's
//! credentials, and hand over to [`crate::cleanup::run`].

use super::{Failure, Process, block_on, job_settings, registry_client};
use crate::cleanup::{self, CleanupSettings};
use crate::cli::{CleanupArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::output::Output;

/// `dockhand cleanup`.
pub(super) fn cleanup(
    args: &CleanupArgs,
    global: &GlobalArgs,
    process: &Process<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let (ci, settings) = job_settings(global, process)?;
    let cleanup = CleanupSettings::resolve(args, &settings, process.workdir)?;
    let client = registry_client(&settings, process.env, Some(&ci), &[&cleanup.repo.registry])?;
    Ok(block_on(cleanup::run(&cleanup, &client, output, jiff::Timestamp::now()))?)
}
