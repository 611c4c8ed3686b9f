//! `dockhand cleanup`: resolve the cleanup settings, connect to the registry with its
//! credentials, and hand over to [`crate::cleanup::run`].

use super::{Failure, Invocation, block_on, connect, job_settings};
use crate::cleanup::{self, CleanupSettings};
use crate::cli::{CleanupArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::output::Output;

/// `dockhand cleanup`.
pub(super) fn cleanup(
    args: &CleanupArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let (ci, settings) = job_settings(global, invocation)?;
    let cleanup =
        CleanupSettings::resolve(args, &settings, Some(&ci), invocation.env, invocation.workdir)?;
    let registry = connect(&settings, invocation.env, Some(&ci), &cleanup.repo)?;
    Ok(block_on(cleanup::run(&cleanup, &registry, output, jiff::Timestamp::now()))?)
}
