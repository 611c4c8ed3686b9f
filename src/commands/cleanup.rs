//! `dockhand cleanup`: resolve the cleanup settings, build a client with the registry's
//! credentials, and hand over to [`crate::cleanup::run`].

use super::{Failure, Process, block_on, registry_client};
use crate::ci::{self, ProviderChoice};
use crate::cleanup::{self, CleanupSettings};
use crate::cli::{CleanupArgs, GlobalArgs};
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::settings::GlobalSettings;

/// `dockhand cleanup`.
pub(super) fn cleanup(
    args: &CleanupArgs,
    global: &GlobalArgs,
    process: &Process<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let ci = ci::detect(ProviderChoice::Auto, process.env, process.workdir)?;
    let settings = GlobalSettings::resolve(global, process.env, process.workdir, Some(&ci))?;
    let cleanup = CleanupSettings::resolve(args, &settings, process.workdir)?;
    let client = registry_client(&settings, process.env, Some(&ci), &[&cleanup.repo.registry])?;
    Ok(block_on(cleanup::run(&cleanup, &client, output, jiff::Timestamp::now()))?)
}
