//! `dockhand registry detect`: what dockhand knows about an address.

use serde::Serialize;

use super::Failure;
use crate::cli::DetectArgs;
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::reference::RepoAddress;
use crate::settings::{GlobalSettings, SettingsError};

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

pub(super) fn detect(
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
