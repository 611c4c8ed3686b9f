//! `dockhand images`, `build`, `publish` and `run`: the references a build gets, and the
//! phases that produce and push them.

use super::{Failure, Process};
use crate::ci::{self, CiContext, ProviderChoice};
use crate::cli::{GlobalArgs, ImagesArgs};
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::publish::{self, Target};
use crate::settings::{GlobalSettings, ImagesSettings};

/// `dockhand images`: the references, one per line (JSON: objects with `image`, `reference`,
/// `repository`, `tag`). Contacts no registry, so `latest` is shown as the rules would give it
/// with no newer release known.
pub(super) fn images(
    args: &ImagesArgs,
    global: &GlobalArgs,
    process: &Process<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let ci = ci::detect(ProviderChoice::Auto, process.env, process.workdir)?;
    let settings = GlobalSettings::resolve(global, process.env, process.workdir, Some(&ci))?;
    let images = ImagesSettings::resolve(&settings, &args.tags)?;
    let targets = plan_targets(&images, &ci, &[])?;
    output.result(&targets, || {
        targets.iter().map(|target| target.reference.to_string()).collect::<Vec<_>>().join("\n")
    });
    Ok(ExitStatus::Success)
}

/// Every reference this build publishes: the tag rules rendered for `ci`, each image named in
/// the images repo. `existing` are the tags already in the registry (for `latest`).
fn plan_targets(
    images: &ImagesSettings,
    ci: &CiContext,
    existing: &[crate::reference::Tag],
) -> Result<Vec<Target>, Failure> {
    let rendered = images.tag_rules.render(ci, jiff::Timestamp::now(), existing)?;
    let names: Vec<&str> = images.images.iter().map(|image| image.name.as_str()).collect();
    Ok(publish::targets(&images.repo, images.mode, &names, &rendered.tags)?)
}
