//! One function per command: resolve settings, call the modules that do the work, hand the
//! result to `output`.
//!
//! Owns the order of the phases of each command (validate everything, then contact
//! registries) and nothing else: parsing lives in `cli`/`settings`, the work in the modules,
//! rendering in `output`.

use std::path::Path;

use serde::Serialize;

use crate::cli::{Cli, Command, DetectArgs, RegistryCommand};
use crate::env_vars::EnvMap;
use crate::exit::{Classify, ExitStatus};
use crate::output::Output;
use crate::project::ProjectFile;
use crate::reference::RepoAddress;
use crate::settings::{GlobalSettings, SettingsError};

/// Any error a command can end with, classified for the exit code.
pub struct Failure(Box<dyn ClassifiedError>);

/// An error that knows its exit code.
pub trait ClassifiedError: std::error::Error + Classify {}
impl<E: std::error::Error + Classify> ClassifiedError for E {}

impl<E: std::error::Error + Classify + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl Failure {
    pub fn exit_status(&self) -> ExitStatus {
        self.0.exit_status()
    }

    /// Reports the error through `output`: message, causes, hint.
    pub fn report(&self, output: &Output) {
        let mut causes = Vec::new();
        let mut source = self.0.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        output.error(&self.0.to_string(), &causes, self.0.hint().as_deref());
    }
}

/// A command that later work implements; it fails with exit 2 and says so.
#[derive(Debug, thiserror::Error)]
#[error("`dockhand {0}` is not implemented yet")]
pub struct NotImplemented(&'static str);

impl Classify for NotImplemented {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Failure
    }
}

/// What a command needs from the process: its environment and working directory.
pub struct Process<'a> {
    pub env: &'a EnvMap,
    pub workdir: &'a Path,
}

/// Runs the parsed command line.
pub fn run(cli: Cli, process: &Process<'_>, output: &Output) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Schema => {
            output.raw(&(ProjectFile::json_schema() + "\n"));
            Ok(ExitStatus::Success)
        }
        Command::Registry(RegistryCommand::Detect(args)) => {
            let settings =
                GlobalSettings::resolve(&cli.global, process.env, process.workdir, None)?;
            registry_detect(&args, &settings, output)
        }
        Command::CiEnv(_) => Err(NotImplemented("ci-env").into()),
        Command::Login(_) => Err(NotImplemented("login").into()),
        Command::Images(_) => Err(NotImplemented("images").into()),
        Command::Build(_) => Err(NotImplemented("build").into()),
        Command::Publish(_) => Err(NotImplemented("publish").into()),
        Command::Cleanup(_) => Err(NotImplemented("cleanup").into()),
        Command::Run(_) => Err(NotImplemented("run").into()),
    }
}

/// `registry detect --output json`: exactly the SPEC's keys.
#[derive(Debug, Serialize)]
struct Detection {
    address: String,
    registry: String,
    repository: String,
    implementation: &'static str,
    nested_repositories: bool,
    create_repository_before_push: bool,
    tag_delete: &'static str,
    default_mode: &'static str,
}

fn registry_detect(
    args: &DetectArgs,
    settings: &GlobalSettings,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let address: RepoAddress = match &args.address {
        Some(address) => address
            .parse()
            .map_err(|source| SettingsError::Repo { origin: "the ADDR argument", source })?,
        None => settings.require_repo()?.clone(),
    };
    let implementation = settings.implementation_for(&address);
    let capabilities = implementation.capabilities(&address);
    let detection = Detection {
        address: address.to_string(),
        registry: address.registry.to_string(),
        repository: address.path.clone(),
        implementation: implementation.name(),
        nested_repositories: capabilities.nested_repositories,
        create_repository_before_push: capabilities.create_repository_before_push,
        tag_delete: capabilities.tag_delete.name(),
        default_mode: capabilities.default_mode.name(),
    };
    output.result(&detection, || {
        format!(
            "address:                        {}\nregistry:                       {}\nrepository:                     {}\nimplementation:                 {}\nnested repositories:            {}\ncreate repository before push:  {}\ntag delete:                     {}\ndefault mode:                   {}\n",
            detection.address,
            detection.registry,
            detection.repository,
            detection.implementation,
            detection.nested_repositories,
            detection.create_repository_before_push,
            detection.tag_delete,
            detection.default_mode,
        )
    });
    Ok(ExitStatus::Success)
}
