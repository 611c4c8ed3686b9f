//! `dockhand images`, `build`, `publish` and `run`: the references a build gets, and the
//! phases that produce and push them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Failure, Invocation, block_on, connect, job_settings};
use crate::builder::{self, Backend, Built, BuiltImage, LocalImage, buildah};
use crate::ci::CiContext;
use crate::cleanup::report::Document;
use crate::cleanup::{self, CleanupSettings};
use crate::cli::{
    BuildArgs, BuildCommandArgs, BuildRunArgs, GlobalArgs, ImagesArgs, PublishArgs, RunArgs,
};
use crate::env_vars::{self, EnvMap};
use crate::exit::ExitStatus;
use crate::naming::{self, Mode};
use crate::output::Output;
use crate::process;
use crate::publish::{self, BlobLocations, Layout, Pushed, Target};
use crate::reference::Tag;
use crate::registry::Registry;
use crate::registry::distribution::DistributionError;
use crate::settings::{BuildSettings, GlobalSettings, ImagesSettings};

/// Everything the build and publish phases need, resolved and validated before any builder or
/// registry is touched.
struct Phases {
    ci: CiContext,
    settings: GlobalSettings,
    build: BuildSettings,
}

impl Phases {
    /// `build_run` is `None` for publish, which builds nothing.
    fn resolve(
        global: &GlobalArgs,
        builder: Option<&str>,
        build_run: Option<&BuildRunArgs>,
        invocation: &Invocation<'_>,
    ) -> Result<Self, Failure> {
        let (mut ci, settings) = job_settings(global, invocation)?;
        ci.find_commit_time(invocation.workdir);
        let build = BuildSettings::resolve(
            &settings,
            builder,
            build_run,
            &ci,
            invocation.env,
            jiff::Timestamp::now(),
        )?;
        Ok(Self { ci, settings, build })
    }

    /// [`Phases::resolve`] for `build` and `run`, which take the builder, its timeout and secrets.
    fn resolve_for_build(
        global: &GlobalArgs,
        build: &BuildArgs,
        build_run: &BuildRunArgs,
        invocation: &Invocation<'_>,
    ) -> Result<Self, Failure> {
        Self::resolve(global, build.builder.as_deref(), Some(build_run), invocation)
    }

    /// Builds every image, each after the image its `from_image:` names, up to `--jobs` at a
    /// time. One at a time, each build's output is streamed into a collapsible section of its
    /// own; several at a time, into one section for all, each line prefixed with its image's
    /// name. From here on SIGTERM and SIGINT stop the builders before dockhand stops.
    fn build(&self, env: &EnvMap, output: &Output) -> Result<Vec<BuiltImage>, Failure> {
        if let Err(error) = process::forward_termination() {
            log::warn!(
                "cannot watch for SIGTERM and SIGINT, a cancelled job may leave the builder running: {error}"
            );
        }
        if let Some(epoch) = self.build.specs.first().and_then(|spec| spec.source_date_epoch) {
            log::info!("image timestamps: {epoch:.0} (SOURCE_DATE_EPOCH={})", epoch.as_second());
        }
        let builds = builder::Builds {
            specs: &self.build.specs,
            graph: &self.build.graph,
            build_id: &self.build.build_id,
            jobs: self.build.jobs,
            timeout: self.build.timeout,
        };
        let parallel = builds.jobs > 1 && builds.specs.len() > 1;
        if builds.graph.has_dependencies() {
            let order: Vec<&str> =
                builds.graph.order().into_iter().map(|at| builds.graph.name(at)).collect();
            log::info!("build order (each image after its `from_image:`): {}", order.join(", "));
        }
        let built = if parallel {
            let _section = output.section(
                "dockhand_build",
                &format!(
                    "dockhand: build {} images, up to {} at a time",
                    builds.specs.len(),
                    builds.jobs
                ),
            );
            // the start and a success are logged by the builds themselves
            let events = |event: builder::BuildEvent<'_>| match event {
                builder::BuildEvent::Line(image, line) => output.child_line_of(image, line),
                builder::BuildEvent::Ended(image, false) => log::info!("[{image}] build failed"),
                builder::BuildEvent::Started(_) | builder::BuildEvent::Ended(_, true) => {}
            };
            block_on(builder::build_all(&self.build.backend, &builds, env, &events))?
        } else {
            // one build at a time: a section per image, open while its build runs
            let open = std::cell::RefCell::new(None);
            let events = |event: builder::BuildEvent<'_>| match event {
                builder::BuildEvent::Started(image) => {
                    let name: String = image
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    *open.borrow_mut() = Some(output.section(
                        &format!("dockhand_build_{name}"),
                        &format!("dockhand: build {image}"),
                    ));
                }
                builder::BuildEvent::Line(_, line) => output.child_line(line),
                builder::BuildEvent::Ended(..) => drop(open.borrow_mut().take()),
            };
            block_on(builder::build_all(&self.build.backend, &builds, env, &events))?
        };
        Ok(built)
    }

    /// The images an earlier `dockhand build` left in the builder's store.
    fn previously_built(&self) -> Result<Vec<BuiltImage>, Failure> {
        self.build
            .specs
            .iter()
            .map(|spec| {
                let reference = builder::local_ref(&spec.image, &self.build.build_id)?;
                let built = match &self.build.backend {
                    Backend::Buildah(_) => Built::Buildah(LocalImage {
                        reference,
                        manifest_list: spec.platforms.len() > 1,
                    }),
                    Backend::Docker(_) | Backend::Buildx(_) => Built::DockerStore(reference),
                };
                Ok(BuiltImage {
                    image: spec.image.clone(),
                    builder: self.build.backend.builder(),
                    built,
                    image_id: None,
                })
            })
            .collect()
    }

    /// Checks that every image of `previously_built` is in the builder's storage and was built
    /// for this commit, before anything is pushed.
    fn check_previously_built(&self, built: &[BuiltImage], env: &EnvMap) -> Result<(), Failure> {
        for (spec, image) in self.build.specs.iter().zip(built) {
            let revision = spec.labels.get(builder::LABEL_REVISION).map(String::as_str);
            publish::check_built(&self.build.backend, image, revision, env)?;
            log::debug!(
                "`{}` is in {}'s storage, built for this commit",
                image.image,
                image.builder
            );
        }
        Ok(())
    }

    /// Pushes every built image under every tag the rules give.
    fn publish(
        &self,
        images: &ImagesSettings,
        built: &[BuiltImage],
        env: &EnvMap,
    ) -> Result<Vec<Pushed>, Failure> {
        let registry = connect(&self.settings, env, Some(&self.ci), &images.repo)?;
        let scratch = tempfile::Builder::new()
            .prefix("dockhand-publish-")
            .tempdir_in(
                env.get(env_vars::TMPDIR)
                    .filter(|dir| !dir.is_empty())
                    .map_or_else(std::env::temp_dir, Into::into),
            )
            .map_err(|source| super::ArgumentError::Write { path: std::env::temp_dir(), source })?;
        let mut locations = BlobLocations::default();
        let mut pushed = Vec::new();
        let mut reported = BTreeSet::new();
        for image in built {
            let existing = if images.tag_rules.needs_existing_tags(&self.ci) {
                block_on(existing_tags(&registry, images, &image.image))?
            } else {
                Vec::new()
            };
            let rendered = images.tag_rules.render(&self.ci, jiff::Timestamp::now(), &existing)?;
            rendered.log_skipped(&mut reported);
            let targets = publish::targets(
                &images.repo,
                images.mode,
                &[image.image.as_str()],
                &rendered.tags,
            )?;
            block_on(publish::ensure_repositories(&registry, &targets))?;
            let results = match (&image.built, &self.build.backend) {
                (Built::Buildah(local), Backend::Buildah(options)) => {
                    let dir = scratch.path().join(image.image.replace('/', "_"));
                    buildah::export_oci_layout(options, local, &dir, env)?;
                    let layout = Layout::read(&image.image, &dir)?;
                    block_on(publish::push_layout(&registry, &layout, &targets, &mut locations))?
                }
                (Built::DockerStore(local), backend) => {
                    let config = match backend {
                        Backend::Docker(options) => options.config.as_ref(),
                        Backend::Buildx(options) => options.config.as_ref(),
                        Backend::Buildah(_) => None,
                    };
                    publish::push_with_docker(config, &image.image, local, &targets, env)?
                }
                (Built::Buildah(_), _) => {
                    unreachable!("buildah images come from the buildah backend")
                }
            };
            pushed.extend(results);
        }
        Ok(pushed)
    }
}

/// The tags `image` already has in the images repo (without the monorepo prefix), to decide
/// whether `latest` may move. A repository that does not exist yet has none.
async fn existing_tags(
    registry: &Registry,
    images: &ImagesSettings,
    image: &str,
) -> Result<Vec<Tag>, DistributionError> {
    let repository = match images.mode {
        Mode::Multirepo => images.repo.join(image),
        Mode::Monorepo => images.repo.clone(),
    };
    let tags = match registry.client().list_tags(&repository).await {
        Ok(tags) => tags,
        Err(error) if error.is_not_found() => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    Ok(match images.mode {
        Mode::Multirepo => tags,
        Mode::Monorepo => tags
            .iter()
            .filter_map(|tag| {
                let (owner, rest) = naming::image_of_tag(&[image], tag.as_str())?;
                (owner == image).then(|| rest.parse().ok()).flatten()
            })
            .collect(),
    })
}

/// `build`'s JSON: what was built, under which local name.
#[derive(Debug, Serialize)]
struct BuiltReport {
    built: Vec<BuiltItem>,
}

#[derive(Debug, Serialize)]
struct BuiltItem {
    image: String,
    builder: &'static str,
    local: String,
}

pub(super) fn build(
    args: &BuildCommandArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let phases = Phases::resolve_for_build(global, &args.build, &args.build_run, invocation)?;
    let built = phases.build(invocation.env, output)?;
    let report = BuiltReport {
        built: built
            .iter()
            .map(|image| BuiltItem {
                image: image.image.clone(),
                builder: image.builder.name(),
                local: match &image.built {
                    Built::Buildah(local) => local.reference.to_string(),
                    Built::DockerStore(local) => local.to_string(),
                },
            })
            .collect(),
    };
    output.result(&report, || {
        report
            .built
            .iter()
            .map(|item| format!("{}\t{}", item.image, item.local))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(ExitStatus::Success)
}

/// `publish`'s JSON (SPEC): `pushed`, each with `image`, `reference` and `digest`.
#[derive(Debug, Serialize)]
struct PublishReport {
    pushed: Vec<Pushed>,
}

/// Writes the GitHub step outputs and summary of a publish, and returns the report.
fn record_pushed(pushed: Vec<Pushed>, output: &Output) -> Result<PublishReport, Failure> {
    let references: Vec<String> = pushed.iter().map(|p| p.reference.clone()).collect();
    let digests: Vec<String> =
        pushed.iter().map(|p| format!("{}@{}", p.reference, p.digest)).collect();
    let json = serde_json::to_string(&pushed).expect("pushed references serialise");
    let write = |result: std::io::Result<()>| {
        result
            .map_err(|source| super::ArgumentError::Write { path: "$GITHUB_OUTPUT".into(), source })
    };
    write(output.github_outputs(&[
        ("references", references.join("\n")),
        ("digests", digests.join("\n")),
        ("pushed", json),
    ]))?;
    let mut summary =
        String::from("### dockhand publish\n\n| image | reference | digest |\n|---|---|---|\n");
    for item in &pushed {
        writeln!(summary, "| {} | `{}` | `{}` |", item.image, item.reference, item.digest)
            .expect("writing to a String cannot fail");
    }
    write(output.step_summary(&summary))?;
    Ok(PublishReport { pushed })
}

impl PublishReport {
    /// `reference@digest`, one per line.
    fn text(&self) -> String {
        self.pushed
            .iter()
            .map(|p| format!("{}@{}", p.reference, p.digest))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub(super) fn publish(
    args: &PublishArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let phases = Phases::resolve(global, args.build.builder.as_deref(), None, invocation)?;
    let images = ImagesSettings::resolve(&phases.settings, &args.tags.tags)?;
    let built = phases.previously_built()?;
    phases.check_previously_built(&built, invocation.env)?;
    let pushed = phases.publish(&images, &built, invocation.env)?;
    let report = record_pushed(pushed, output)?;
    output.result(&report, || report.text());
    Ok(ExitStatus::Success)
}

/// `run`'s JSON: what was pushed, and the cleanup's result (its keys beside `pushed`).
#[derive(Debug, Serialize)]
struct RunReport<'a> {
    pushed: &'a [Pushed],
    #[serde(flatten)]
    cleanup: &'a Document,
}

pub(super) fn run(
    args: &RunArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    // every phase's settings are checked before the first one starts
    let phases = Phases::resolve_for_build(global, &args.build, &args.build_run, invocation)?;
    let images = ImagesSettings::resolve(&phases.settings, &args.publish.tags)?;
    // a build for which no rule gives a tag fails here, before anything is built (the rules
    // skipped are reported once, by publish)
    images.tag_rules.render(&phases.ci, jiff::Timestamp::now(), &[])?;
    let cleanup = CleanupSettings::resolve(
        &args.cleanup,
        &phases.settings,
        Some(&phases.ci),
        invocation.env,
        invocation.workdir,
    )?;
    // one section per image (GitHub's groups do not nest)
    let built = phases.build(invocation.env, output)?;
    let published = {
        let _section = output.section("dockhand_publish", "dockhand: publish");
        let pushed = phases.publish(&images, &built, invocation.env)?;
        record_pushed(pushed, output)?
    };
    let registry = connect(&phases.settings, invocation.env, Some(&phases.ci), &cleanup.repo)?;
    let present = |document: &Document| {
        let report = RunReport { pushed: &published.pushed, cleanup: document };
        output.result(&report, || format!("{}\n\n{}", published.text(), document.text()));
    };
    Ok(block_on(cleanup::run_reporting(
        &cleanup,
        &registry,
        output,
        jiff::Timestamp::now(),
        present,
    ))?)
}

/// `dockhand images`: the references, one per line (JSON: objects with `image`, `reference`,
/// `repository`, `tag`). Contacts no registry, so `latest` is shown as the rules would give it
/// with no newer release known.
pub(super) fn images(
    args: &ImagesArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let (ci, settings) = job_settings(global, invocation)?;
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
    rendered.log_skipped(&mut BTreeSet::new());
    let names: Vec<&str> = images.images.iter().map(|image| image.name.as_str()).collect();
    Ok(publish::targets(&images.repo, images.mode, &names, &rendered.tags)?)
}
