//! Raw arguments become typed, validated settings, once.
//!
//! Owns precedence — flag, then environment (both arrive through clap), then `dockhand.yaml`,
//! then what the CI context suggests, then defaults — and validation of everything a command
//! needs before any registry is contacted. Its only I/O: reading the project file, and looking
//! the builder program up on `PATH` (a missing builder fails before anything runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::builder::{
    self, Backend, BuildError, BuildSecret, BuildSpec, Builder, SecretSource, buildah,
};
use crate::ci::{CiContext, Provider, generic};
use crate::cleanup::CleanupSettings;
use crate::cleanup::policy::{self, DurationError, Policy, PolicyError, PolicyFlags};
use crate::cli::{BuildRunArgs, CleanupArgs, GlobalArgs, OutputFormat};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::naming::{Mode, NamingError, RequestedMode, UnknownMode};
use crate::project::{self, ProjectError, ProjectFile};
use crate::reference::{ReferenceError, RegistryHost, RepoAddress, Tag};
use crate::registry::distribution::ClientOptions;
use crate::registry::pull_requests::{Forge, Lookup};
use crate::registry::{Capabilities, Implementation, UnknownImplementation, detect};
use crate::tags::{TagRuleError, TagRules};

/// Settings that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Project(#[from] ProjectError),
    #[error("Invalid images repo from {origin}")]
    Repo {
        origin: &'static str,
        #[source]
        source: ReferenceError,
    },
    #[error("Invalid --insecure-registry value")]
    InsecureRegistry(#[source] ReferenceError),
    #[error("Invalid registry implementation from {origin}")]
    Implementation {
        origin: &'static str,
        #[source]
        source: UnknownImplementation,
    },
    #[error("Invalid repo mode from {origin}")]
    Mode {
        origin: &'static str,
        #[source]
        source: UnknownMode,
    },
    #[error("Invalid {option}: {problem}")]
    Timeout { option: &'static str, problem: String },
    #[error("No images repo is configured")]
    MissingRepo,
    #[error("Cannot find the home directory for the default docker config `~/.docker`")]
    NoHome,
    #[error("No image to build: {}", nothing_to_build(.dir, .project_file.as_deref()))]
    NothingToBuild { dir: PathBuf, project_file: Option<PathBuf> },
    #[error(
        "A nameless image (one without `name:`) must be the project's only image; the project has {}: {}",
        .0.len(),
        .0.join(", ")
    )]
    NamelessNotAlone(Vec<String>),
    #[error("Image name `{0}` is used twice in the project file")]
    DuplicateImage(String),
    #[error("Image name `{0}` is not valid")]
    ImageName(String),
    #[error(transparent)]
    Naming(NamingError),
    #[error(transparent)]
    TagRule(#[from] TagRuleError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("Invalid build timeout `{value}` from {origin}")]
    BuildTimeout {
        value: String,
        origin: &'static str,
        #[source]
        source: DurationError,
    },
    #[error("`SOURCE_DATE_EPOCH` is `{0}`, not a number of seconds since 1970-01-01 UTC")]
    SourceDateEpoch(String),
    /// Names only the keys given: a mistyped value could be the secret itself.
    #[error("`--secret` takes `id=ID,src=FILE` or `id=ID,env=VARIABLE`, not keys `{keys}`")]
    SecretFlag { keys: String },
    #[error("Invalid number of build jobs `{value}` from {origin}: a whole number of at least 1")]
    Jobs { value: String, origin: &'static str },
}

impl Classify for SettingsError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Project(error) => error.exit_status(),
            Self::Build(error) => error.exit_status(),
            Self::Policy(error) => error.exit_status(),
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Project(error) => error.hint(),
            Self::MissingRepo => Some(
                "pass --repo ADDR, set DOCKHAND_REPO, add `repo:` to dockhand.yaml, or run in GitHub Actions / GitLab CI"
                    .into(),
            ),
            Self::NoHome => Some("pass --docker-config DIR or set DOCKER_CONFIG".into()),
            Self::Timeout { option, .. } => {
                Some(format!("give {option} a duration such as `30s`, `2m` or `1m30s`"))
            }
            Self::NothingToBuild { .. } => Some(
                "add a Containerfile or Dockerfile here, or write dockhand.yaml, e.g. `images: [{name: app, context: ., containerfile: Dockerfile}]` (`dockhand schema` prints every key)"
                    .into(),
            ),
            Self::NamelessNotAlone(_) => Some(
                "give every image a `name:` in dockhand.yaml, or keep only the nameless one".into(),
            ),
            Self::ImageName(_) => Some(
                "image names are lowercase letters and digits separated by `.`, `_`, `__`, `-` or `/`".into(),
            ),
            Self::TagRule(error) => error.hint(),
            Self::Naming(error) => error.hint(),
            Self::Build(error) => error.hint(),
            Self::Policy(error) => error.hint(),
            Self::BuildTimeout { .. } => Some(
                "give a duration such as `45m`, `1h30m` or `2h` (units w, d, h, m, s)".into(),
            ),
            Self::SourceDateEpoch(_) => Some(
                "set `SOURCE_DATE_EPOCH` to whole seconds, e.g. `$(git log -1 --format=%ct)`, or unset it to use the commit's time".into(),
            ),
            Self::Repo { .. } => Some("an images repo looks like `ghcr.io/acme/app` or `localhost:5000/team`".into()),
            Self::Jobs { .. } => Some(
                "`--jobs 1` builds one image at a time (the default); `--jobs 2` two, each still after its `from_image:`".into(),
            ),
            Self::SecretFlag { .. } => Some(
                "pass the secret's file or the name of the variable holding it, never the value: `--secret id=npm,src=$HOME/.npmrc` or `--secret id=token,env=NPM_TOKEN`".into(),
            ),
            _ => None,
        }
    }
}

/// Settings every command shares.
#[derive(Debug, Clone)]
pub struct GlobalSettings {
    /// The directory relative paths of the project are resolved against.
    pub project_dir: PathBuf,
    pub project: ProjectFile,
    /// The project file read, or `None` when there is none (the project is then one nameless
    /// image, and a cleanup's scope is the whole images repo).
    pub project_file: Option<PathBuf>,
    /// The images repo, if one is configured anywhere.
    pub repo: Option<RepoAddress>,
    /// `None` means `auto`: detect from the address.
    pub implementation: Option<Implementation>,
    pub mode: RequestedMode,
    /// The docker config directory credentials are read from.
    pub docker_config: PathBuf,
    pub insecure_registries: Vec<RegistryHost>,
    pub output: OutputFormat,
    /// `$CI_REGISTRY` in GitLab CI: its host is GitLab whatever it is called.
    pub gitlab_registry: Option<RegistryHost>,
    /// Per-request time limits for every registry and API request.
    pub timeouts: Timeouts,
}

/// How long one request may take (`--connect-timeout`, `--read-timeout`, `--request-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let defaults = ClientOptions::default();
        Self {
            connect: defaults.connect_timeout,
            read: defaults.read_timeout,
            request: defaults.request_timeout,
        }
    }
}

impl Timeouts {
    fn resolve(args: &GlobalArgs) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        let one = |value: Option<&String>, option: &'static str, default: Duration| {
            let Some(text) = value.filter(|text| !text.is_empty()) else { return Ok(default) };
            match policy::parse_duration(text) {
                Ok(duration) if duration.is_zero() => Err(SettingsError::Timeout {
                    option,
                    problem: "it must be more than zero".to_owned(),
                }),
                Ok(duration) => Ok(duration),
                Err(error) => Err(SettingsError::Timeout { option, problem: error.to_string() }),
            }
        };
        Ok(Self {
            connect: one(args.connect_timeout.as_ref(), "--connect-timeout", defaults.connect)?,
            read: one(args.read_timeout.as_ref(), "--read-timeout", defaults.read)?,
            request: one(args.request_timeout.as_ref(), "--request-timeout", defaults.request)?,
        })
    }
}

impl GlobalSettings {
    /// Resolves the global options. `workdir` is where `dockhand.yaml` is looked for.
    pub fn resolve(
        args: &GlobalArgs,
        env: &EnvMap,
        workdir: &Path,
        ci: Option<&CiContext>,
    ) -> Result<Self, SettingsError> {
        let (project, project_dir, project_file) = if let Some(path) = &args.config {
            let path = workdir.join(path);
            let dir = path.parent().map_or_else(|| workdir.to_owned(), Path::to_owned);
            (ProjectFile::load(&path)?, dir, Some(path))
        } else {
            let path = workdir.join(project::DEFAULT_FILE);
            if path.is_file() {
                (ProjectFile::load(&path)?, workdir.to_owned(), Some(path))
            } else {
                (ProjectFile::default(), workdir.to_owned(), None)
            }
        };

        let repo = match (&args.repo, &project.repo) {
            (Some(flag), _) => Some(parse_repo(flag, "--repo / DOCKHAND_REPO")?),
            (None, Some(file)) => Some(parse_repo(file, "`repo:` in dockhand.yaml")?),
            (None, None) => ci.and_then(|ci| ci.repo.clone()),
        };

        let implementation = match (&args.repo_implementation, &project.implementation) {
            (Some(flag), _) => {
                parse_implementation(flag, "--repo-implementation / DOCKHAND_REPO_IMPLEMENTATION")?
            }
            (None, Some(file)) => parse_implementation(file, "`implementation:` in dockhand.yaml")?,
            // what the CI knows holds for its own registry only: a GitHub job pushing to Docker
            // Hub is not using GitHub Packages
            (None, None) => ci.and_then(|ci| {
                let same_registry = repo
                    .as_ref()
                    .zip(ci.repo.as_ref())
                    .is_some_and(|(repo, ci_repo)| repo.registry == ci_repo.registry);
                ci.implementation.filter(|_| same_registry)
            }),
        };

        let mode = match (&args.repo_mode, &project.mode) {
            (Some(flag), _) => parse_mode(flag, "--repo-mode / DOCKHAND_REPO_MODE")?,
            (None, Some(file)) => parse_mode(file, "`mode:` in dockhand.yaml")?,
            (None, None) => RequestedMode::Auto,
        };

        let docker_config = match (&args.docker_config, env.get(env_vars::DOCKER_CONFIG)) {
            (Some(dir), _) => workdir.join(dir),
            (None, Some(dir)) if !dir.is_empty() => workdir.join(dir),
            _ => {
                let home = env
                    .get(env_vars::HOME)
                    .filter(|h| !h.is_empty())
                    .ok_or(SettingsError::NoHome)?;
                Path::new(home).join(".docker")
            }
        };

        let insecure_registries = args
            .insecure_registries
            .iter()
            .filter(|host| !host.is_empty())
            .map(|host| host.parse().map_err(SettingsError::InsecureRegistry))
            .collect::<Result<_, _>>()?;

        let gitlab_registry = (env.get(env_vars::GITLAB_CI).is_some_and(|v| v == "true"))
            .then(|| env.get(env_vars::CI_REGISTRY).and_then(|host| host.parse().ok()))
            .flatten();

        Ok(Self {
            project_dir,
            project,
            project_file,
            repo,
            implementation,
            mode,
            docker_config,
            insecure_registries,
            output: args.output,
            gitlab_registry,
            timeouts: Timeouts::resolve(args)?,
        })
    }

    /// The images repo, or an error telling the user how to configure one.
    pub fn require_repo(&self) -> Result<&RepoAddress, SettingsError> {
        self.repo.as_ref().ok_or(SettingsError::MissingRepo)
    }

    /// The implementation for `address`: the configured one, else detected from its host.
    pub fn implementation_for(&self, address: &RepoAddress) -> Implementation {
        self.implementation
            .unwrap_or_else(|| detect::detect(&address.registry, self.gitlab_registry.as_ref()))
    }

    /// The naming mode in force for `address`.
    pub fn mode_for(&self, capabilities: &Capabilities) -> Mode {
        self.mode.resolve(capabilities.default_mode)
    }

    /// The project's images: the file's `images:`, or, when there is no file or it lists none,
    /// one nameless image built from the project directory. A nameless image must be the only
    /// one; names must be valid and unique. With `to_build`, an implicit image needs a
    /// `Containerfile` or `Dockerfile` in the project directory.
    pub fn images(&self, to_build: bool) -> Result<Vec<project::ImageSection>, SettingsError> {
        if self.project.images.is_empty() {
            if to_build && builder::locate_containerfile(&self.project_dir, None).is_err() {
                return Err(SettingsError::NothingToBuild {
                    dir: self.project_dir.clone(),
                    project_file: self.project_file.clone(),
                });
            }
            return Ok(vec![project::ImageSection::implicit()]);
        }
        let images = self.project.images.clone();
        if images.len() > 1 && images.iter().any(|image| image.name.is_none()) {
            return Err(SettingsError::NamelessNotAlone(
                images
                    .iter()
                    .map(|image| match &image.name {
                        Some(name) => format!("`{name}`"),
                        None => format!(
                            "a nameless image (context `{}`)",
                            image.context.as_deref().unwrap_or(Path::new(".")).display()
                        ),
                    })
                    .collect(),
            ));
        }
        for (index, image) in images.iter().enumerate() {
            let Some(name) = &image.name else { continue };
            if !crate::naming::valid_image_name(name) {
                return Err(SettingsError::ImageName(name.clone()));
            }
            if images[..index].iter().any(|other| other.name.as_ref() == Some(name)) {
                return Err(SettingsError::DuplicateImage(name.clone()));
            }
        }
        Ok(images)
    }

    /// The name a nameless image goes by in dockhand's own output and its local build
    /// (`localhost/dockhand/NAME:ID`): the last path component of the images repo, the name
    /// that [`crate::naming::nameless_placement`] gives it; `image` when no repo is configured.
    fn nameless_name(&self) -> String {
        self.repo
            .as_ref()
            .and_then(|repo| crate::naming::nameless_placement(repo).ok())
            .map_or_else(|| "image".to_owned(), |(_, name)| name)
    }
}

/// What was looked for, for [`SettingsError::NothingToBuild`].
fn nothing_to_build(dir: &Path, project_file: Option<&Path>) -> String {
    let containerfiles = builder::DEFAULT_CONTAINERFILES.join(" or ");
    match project_file {
        Some(file) => format!(
            "`{}` lists no `images:`, and `{}` has no {containerfiles}",
            file.display(),
            dir.display()
        ),
        None => format!("`{}` has no {}, {containerfiles}", dir.display(), project::DEFAULT_FILE),
    }
}

/// Rules used when neither `--tag` nor `tags:` gives any: the commit, the branch, and the
/// version of a release tag.
pub const DEFAULT_TAG_RULES: [&str; 3] = ["{sha}", "{branch}", "{semver}"];

/// What naming images needs: where they go, under which names, with which tag rules.
#[derive(Debug, Clone)]
pub struct ImagesSettings {
    /// The base the images are named in: the images repo, or for a nameless image its parent,
    /// named in multirepo mode so that the image lands in the images repo itself
    /// ([`crate::naming::nameless_placement`]).
    pub repo: RepoAddress,
    pub implementation: Implementation,
    pub capabilities: Capabilities,
    /// The naming mode in force ([`Mode::Multirepo`] for a nameless image, see `repo`).
    pub mode: Mode,
    /// The project's images, names validated and unique.
    pub images: Vec<NamedImage>,
    pub tag_rules: TagRules,
}

/// One image of the project with the name naming and dockhand's output use.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedImage {
    /// The image's name, or for a nameless image the images repo's last path component.
    pub name: String,
    /// `true` if and only if the project file gives the image no name.
    pub nameless: bool,
}

impl ImagesSettings {
    /// `tag_flags` (`--tag`) replace the file's `tags:`. An image that is not in the project
    /// file needs a `Containerfile` or `Dockerfile` to build.
    pub fn resolve(global: &GlobalSettings, tag_flags: &[String]) -> Result<Self, SettingsError> {
        Self::resolve_for(global, tag_flags, true)
    }

    /// The images a cleanup looks at: as [`Self::resolve`], but nothing needs to be buildable,
    /// so with no project file the scope is the images repo itself.
    pub fn for_cleanup(global: &GlobalSettings) -> Result<Self, SettingsError> {
        Self::resolve_for(global, &[], false)
    }

    fn resolve_for(
        global: &GlobalSettings,
        tag_flags: &[String],
        to_build: bool,
    ) -> Result<Self, SettingsError> {
        let images_repo = global.require_repo()?.clone();
        let implementation = global.implementation_for(&images_repo);
        let capabilities = implementation.capabilities(&images_repo);
        let sections = global.images(to_build)?;
        let (repo, mode, images) = if let [only] = &sections[..]
            && only.name.is_none()
        {
            let (base, name) =
                crate::naming::nameless_placement(&images_repo).map_err(SettingsError::Naming)?;
            (base, Mode::Multirepo, vec![NamedImage { name, nameless: true }])
        } else {
            let images = sections
                .into_iter()
                .map(|image| NamedImage {
                    name: image.name.expect("only a lone image may be nameless"),
                    nameless: false,
                })
                .collect();
            (images_repo, global.mode_for(&capabilities), images)
        };
        let tag_rules = if !tag_flags.is_empty() {
            TagRules::parse(tag_flags)?
        } else if !global.project.tags.is_empty() {
            TagRules::parse(&global.project.tags)?
        } else {
            TagRules::parse(&DEFAULT_TAG_RULES)?
        };
        Ok(Self { repo, implementation, capabilities, mode, images, tag_rules })
    }
}

/// What building needs: the backend and one spec per image of the project.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub backend: Backend,
    pub specs: Vec<BuildSpec>,
    /// The tag of the local images (`localhost/dockhand/IMAGE:ID`): derived from the commit,
    /// so `build` and a later `publish` in another process agree on it.
    pub build_id: Tag,
    /// `--build-timeout`/`DOCKHAND_BUILD_TIMEOUT`: how long each image's build may take.
    pub timeout: Option<std::time::Duration>,
    /// The images' `from_image:` graph, checked (no unknown name, no cycle).
    pub graph: builder::graph::BuildGraph,
    /// `--jobs`/`DOCKHAND_JOBS`, else the file's `jobs:`, else 1: builds at the same time.
    pub jobs: usize,
}

impl BuildSettings {
    /// `builder_flag` (`--builder`/`DOCKHAND_BUILDER`) wins over the file's `builder:`;
    /// `build_run` has `--build-timeout` (or its variable), `--platform` and `--secret` (`None`
    /// for publish, which builds nothing). The images' time
    /// ([`BuildSpec::source_date_epoch`], and their `created` label) is `SOURCE_DATE_EPOCH`,
    /// else the commit's time when the CI context knows it, else `now`'s (not reproducible).
    pub fn resolve(
        global: &GlobalSettings,
        builder_flag: Option<&str>,
        build_run: Option<&BuildRunArgs>,
        ci: &CiContext,
        env: &EnvMap,
        now: jiff::Timestamp,
    ) -> Result<Self, SettingsError> {
        let timeout = build_timeout(build_run.and_then(|args| args.build_timeout.as_deref()))?;
        let jobs =
            build_jobs(build_run.and_then(|args| args.jobs.as_deref()), global.project.jobs)?;
        let flag_secrets = build_run
            .map_or(&[][..], |args| &args.secrets)
            .iter()
            .map(|value| secret_flag(value))
            .collect::<Result<Vec<_>, _>>()?;
        let epoch = source_date_epoch(env, ci)?;
        let builder: Builder =
            builder_flag.or(global.project.builder.as_deref()).unwrap_or("buildah").parse()?;
        if crate::process::find_program(
            builder.program(),
            env.get(env_vars::PATH).map(String::as_str),
        )
        .is_none()
        {
            return Err(BuildError::NotInstalled { builder }.into());
        }
        let mut backend = Backend::with_defaults(builder, env);
        let authfile = buildah::authfile_in(&global.docker_config);
        match &mut backend {
            Backend::Buildah(options) => {
                // base images are pulled with the job's credentials, and over plain HTTP from
                // the registries named insecure (only those)
                options.authfile = authfile.is_file().then_some(authfile);
                options.insecure_registries.clone_from(&global.insecure_registries);
            }
            Backend::Docker(options) => {
                options.insecure_registries.clone_from(&global.insecure_registries);
            }
            Backend::Buildx(_) => {}
        }
        let images = global.images(true)?;
        let source = source_url(env, &global.project_dir);
        let mut specs = Vec::with_capacity(images.len());
        for image in &images {
            let context =
                global.project_dir.join(image.context.as_deref().unwrap_or(Path::new(".")));
            let name = image.name.clone().unwrap_or_else(|| global.nameless_name());
            let mut spec = BuildSpec::new(name, context, image.containerfile.as_deref())?;
            spec.build_args.clone_from(&image.build_args);
            spec.target.clone_from(&image.target);
            match build_run.map(|args| args.platforms.as_slice()) {
                Some(platforms) if !platforms.is_empty() => spec.platforms = platforms.to_vec(),
                _ => spec.platforms.clone_from(&image.platforms),
            }
            spec.labels =
                builder::image_labels(ci, epoch.unwrap_or(now), source.as_deref(), &image.labels);
            spec.annotations = builder::manifest_annotations(&spec.labels);
            spec.source_date_epoch = epoch;
            spec.secrets = build_secrets(&image.secrets, &flag_secrets, &global.project_dir);
            spec.from_image.clone_from(&image.from_image);
            spec.check(builder, env)?;
            specs.push(spec);
        }
        let nodes: Vec<builder::graph::Node<'_>> = specs
            .iter()
            .map(|spec| builder::graph::Node {
                name: &spec.image,
                from_image: spec.from_image.as_deref(),
                platforms: &spec.platforms,
            })
            .collect();
        let graph = builder::graph::BuildGraph::new(&nodes).map_err(BuildError::from)?;
        let build_id = ci
            .sha
            .as_deref()
            .and_then(|sha| crate::naming::sanitize_tag(&sha.chars().take(12).collect::<String>()))
            .unwrap_or_else(|| "dev".parse().expect("a valid tag"));
        Ok(Self { backend, specs, build_id, timeout, graph, jobs })
    }
}

/// `--jobs`/`DOCKHAND_JOBS`, else the file's `jobs:`, else 1; `0` or anything but a whole
/// number is refused.
fn build_jobs(flag: Option<&str>, file: Option<u64>) -> Result<usize, SettingsError> {
    let (value, origin) = match (flag, file) {
        (Some(value), _) => (value.to_owned(), "--jobs / DOCKHAND_JOBS"),
        (None, Some(jobs)) => (jobs.to_string(), "`jobs:` in the project file"),
        (None, None) => return Ok(1),
    };
    match value.trim().parse::<usize>() {
        Ok(jobs) if jobs >= 1 => Ok(jobs),
        _ => Err(SettingsError::Jobs { value, origin }),
    }
}

/// One `--secret` flag: `id=ID,src=FILE` or `id=ID,env=VARIABLE`, in any order (the syntax
/// of buildah's and docker's own `--secret`).
fn secret_flag(value: &str) -> Result<BuildSecret, SettingsError> {
    let pairs: Vec<(&str, &str)> =
        value.split(',').map(|pair| pair.split_once('=').unwrap_or((pair, ""))).collect();
    let find = |key: &str| pairs.iter().find(|(name, _)| *name == key).map(|(_, value)| *value);
    let source = match (find("src"), find("env")) {
        (Some(path), None) if !path.is_empty() => Some(SecretSource::File(path.into())),
        (None, Some(name)) if !name.is_empty() => Some(SecretSource::Env(name.to_owned())),
        _ => None,
    };
    match (find("id").filter(|id| !id.is_empty()), source) {
        (Some(id), Some(source)) if pairs.len() == 2 => {
            Ok(BuildSecret { id: id.to_owned(), source })
        }
        _ => Err(SettingsError::SecretFlag {
            keys: pairs.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(","),
        }),
    }
}

/// An image's build secrets: its `secrets:` entries (files relative to `project_dir`), with
/// the `--secret` flags replacing entries of the same id and adding the rest, in id order.
fn build_secrets(
    section: &BTreeMap<String, project::SecretSection>,
    flags: &[BuildSecret],
    project_dir: &Path,
) -> Vec<BuildSecret> {
    let mut secrets: BTreeMap<&str, SecretSource> = section
        .iter()
        .map(|(id, source)| {
            let source = match source {
                project::SecretSection::Src(path) => SecretSource::File(project_dir.join(path)),
                project::SecretSection::Env(name) => SecretSource::Env(name.clone()),
            };
            (id.as_str(), source)
        })
        .collect();
    for flag in flags {
        secrets.insert(&flag.id, flag.source.clone());
    }
    secrets.into_iter().map(|(id, source)| BuildSecret { id: id.to_owned(), source }).collect()
}

/// `--build-timeout`: a duration, where `0s` (like none) means no limit.
fn build_timeout(value: Option<&str>) -> Result<Option<std::time::Duration>, SettingsError> {
    let Some(value) = value else { return Ok(None) };
    let timeout = policy::parse_duration(value).map_err(|source| SettingsError::BuildTimeout {
        value: value.to_owned(),
        origin: "--build-timeout or DOCKHAND_BUILD_TIMEOUT",
        source,
    })?;
    Ok(Some(timeout).filter(|timeout| !timeout.is_zero()))
}

/// `SOURCE_DATE_EPOCH` (whole seconds; empty means unset), else the commit's time.
fn source_date_epoch(
    env: &EnvMap,
    ci: &CiContext,
) -> Result<Option<jiff::Timestamp>, SettingsError> {
    match env.get(env_vars::SOURCE_DATE_EPOCH).map(|value| value.trim()).filter(|v| !v.is_empty()) {
        Some(value) => value
            .parse::<i64>()
            .ok()
            .and_then(|seconds| jiff::Timestamp::from_second(seconds).ok())
            .map(Some)
            .ok_or_else(|| SettingsError::SourceDateEpoch(value.to_owned())),
        None => Ok(ci.commit_time),
    }
}

/// The repository's web address for `org.opencontainers.image.source`: `DOCKHAND_SOURCE`, else
/// the CI's, else the `origin` remote of the checkout at `project_dir`, credentials removed.
fn source_url(env: &EnvMap, project_dir: &Path) -> Option<String> {
    let get = |name: &str| env.get(name).filter(|value| !value.is_empty());
    if let Some(source) = get(env_vars::DOCKHAND_SOURCE) {
        return Some(generic::public_source_url(source).unwrap_or_else(|| source.clone()));
    }
    if let (Some(server), Some(repository)) =
        (get(env_vars::GITHUB_SERVER_URL), get(env_vars::GITHUB_REPOSITORY))
    {
        return Some(format!("{}/{repository}", server.trim_end_matches('/')));
    }
    if let Some(project) = get(env_vars::CI_PROJECT_URL) {
        return Some(project.clone());
    }
    generic::origin_url(project_dir).and_then(|remote| generic::public_source_url(&remote))
}

fn parse_repo(value: &str, origin: &'static str) -> Result<RepoAddress, SettingsError> {
    value.parse().map_err(|source| SettingsError::Repo { origin, source })
}

fn parse_implementation(
    value: &str,
    origin: &'static str,
) -> Result<Option<Implementation>, SettingsError> {
    if value == "auto" {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|source| SettingsError::Implementation { origin, source })
}

fn parse_mode(value: &str, origin: &'static str) -> Result<RequestedMode, SettingsError> {
    value.parse().map_err(|source| SettingsError::Mode { origin, source })
}

impl CleanupSettings {
    /// Resolves the cleanup flags against the global settings and the project file; paths are
    /// relative to `workdir`, which is also where git-aware retention looks for the checkout.
    pub fn resolve(
        args: &CleanupArgs,
        global: &GlobalSettings,
        ci: Option<&CiContext>,
        env: &EnvMap,
        workdir: &Path,
    ) -> Result<Self, SettingsError> {
        let images = ImagesSettings::for_cleanup(global)?;
        let prefer = ci.and_then(|ci| match ci.provider {
            Provider::Github => Some(Forge::Github),
            Provider::Gitlab => Some(Forge::Gitlab),
            Provider::Generic => None,
        });
        // the pull request APIs get the registry client's TLS, timeouts and insecure hosts
        let options = ClientOptions {
            insecure: global.insecure_registries.clone(),
            connect_timeout: global.timeouts.connect,
            read_timeout: global.timeouts.read,
            request_timeout: global.timeouts.request,
            ..ClientOptions::default()
        };
        let policy = Policy::resolve(global.project.cleanup.as_ref(), &policy_flags(args))?;
        if images.mode == Mode::Monorepo && images.repo.path.is_empty() {
            return Err(SettingsError::Naming(NamingError::MonorepoWithoutRepository(
                images.repo.to_string(),
            )));
        }
        Ok(Self {
            repo: images.repo,
            implementation: images.implementation,
            capabilities: images.capabilities,
            mode: images.mode,
            images: images.images.into_iter().map(|image| image.name).collect(),
            policy,
            tag_rules: images.tag_rules,
            workdir: workdir.to_owned(),
            default_branch: ci.and_then(|ci| ci.default_branch.clone()),
            provider: ci.map(|ci| ci.provider),
            pull_requests: Lookup::from_env(env, prefer, options),
            dry_run: args.dry_run,
            keep_going: args.keep_going,
            plan_out: args.plan_out.as_ref().map(|path| workdir.join(path)),
            facts_cache: args.facts_cache.as_ref().map(|path| workdir.join(path)),
            apply_plan: args.apply_plan.as_ref().map(|path| workdir.join(path)),
        })
    }
}

/// The cleanup policy flags as typed, which add to the project file's `cleanup:` section.
fn policy_flags(args: &CleanupArgs) -> PolicyFlags {
    PolicyFlags {
        keep_last: args.keep_last,
        keep_within: args.keep_within.clone(),
        keep_tags: args.keep_tags.clone(),
        delete_untagged: args.delete_untagged,
        delete_releases: args.delete_releases,
        keep_releases_per_major: args.keep_releases_per_major,
        keep_releases_per_minor: args.keep_releases_per_minor,
        max_deletes: args.max_deletes,
        max_duration: args.max_duration.clone(),
        delete_tags: args.delete_tags.clone(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn resolve(
        argv: &[&str],
        env: &[(&str, &str)],
        ci: Option<&CiContext>,
    ) -> Result<GlobalSettings, SettingsError> {
        let mut full = vec!["dockhand"];
        full.extend_from_slice(argv);
        full.push("schema");
        let cli = Cli::try_parse_from(full).unwrap();
        let env: EnvMap = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        GlobalSettings::resolve(&cli.global, &env, Path::new("/nonexistent-workdir"), ci)
    }

    #[test]
    fn secret_flags_take_an_id_and_one_source() {
        let file = |id: &str, path: &str| BuildSecret {
            id: id.into(),
            source: SecretSource::File(path.into()),
        };
        let var = |id: &str, name: &str| BuildSecret {
            id: id.into(),
            source: SecretSource::Env(name.into()),
        };
        assert_eq!(
            secret_flag("id=npm,src=/home/ci/.npmrc").unwrap(),
            file("npm", "/home/ci/.npmrc")
        );
        assert_eq!(secret_flag("env=NPM_TOKEN,id=tok").unwrap(), var("tok", "NPM_TOKEN"));
        for (bad, keys) in [
            ("id=tok", "id"),
            ("id=tok,src=a,env=B", "id,src,env"),
            ("id=,env=B", "id,env"),
            ("id=tok,env=", "id,env"),
            ("id=tok,value=hunter2", "id,value"),
            ("hunter2", "hunter2"),
            ("id=a,id=b,env=C", "id,id,env"),
        ] {
            let error = secret_flag(bad).unwrap_err();
            assert!(
                matches!(&error, SettingsError::SecretFlag { keys: got } if got == keys),
                "{bad}: {error:?}"
            );
            assert_eq!(error.exit_status(), ExitStatus::Usage);
            assert!(bad == "hunter2" || !error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn flags_replace_and_add_to_the_file_secrets() {
        let section = BTreeMap::from([
            ("npm".to_owned(), project::SecretSection::Src(".npmrc".into())),
            ("tok".to_owned(), project::SecretSection::Env("FILE_TOKEN".into())),
        ]);
        let flags = [
            BuildSecret { id: "tok".into(), source: SecretSource::Env("FLAG_TOKEN".into()) },
            BuildSecret { id: "key".into(), source: SecretSource::File("k".into()) },
        ];
        let secrets = build_secrets(&section, &flags, Path::new("/work/app"));
        let got: Vec<(&str, &SecretSource)> =
            secrets.iter().map(|secret| (secret.id.as_str(), &secret.source)).collect();
        assert_eq!(
            got,
            [
                ("key", &SecretSource::File("k".into())),
                ("npm", &SecretSource::File("/work/app/.npmrc".into())),
                ("tok", &SecretSource::Env("FLAG_TOKEN".into())),
            ]
        );
        assert!(build_secrets(&BTreeMap::new(), &[], Path::new("/")).is_empty());
    }

    #[test]
    fn source_date_epoch_then_the_commit_time() {
        let commit: jiff::Timestamp = "2024-06-01T12:00:00Z".parse().unwrap();
        let ci = CiContext {
            commit_time: Some(commit),
            ..CiContext::empty(crate::ci::Provider::Generic)
        };
        let epoch = |value: Option<&str>, ci: &CiContext| {
            let env: EnvMap = value
                .map(|value| ("SOURCE_DATE_EPOCH".to_owned(), value.to_owned()))
                .into_iter()
                .collect();
            source_date_epoch(&env, ci)
        };
        assert_eq!(epoch(None, &ci).unwrap(), Some(commit));
        assert_eq!(epoch(Some(""), &ci).unwrap(), Some(commit), "empty is unset");
        assert_eq!(epoch(Some("0"), &ci).unwrap(), Some(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(epoch(Some(" 1700000000\n"), &ci).unwrap().unwrap().as_second(), 1_700_000_000);
        let none = CiContext::empty(crate::ci::Provider::Generic);
        assert_eq!(epoch(None, &none).unwrap(), None);
        for bad in ["yesterday", "1.5", "99999999999999999999"] {
            let error = epoch(Some(bad), &ci).unwrap_err();
            assert!(matches!(&error, SettingsError::SourceDateEpoch(value) if value == bad));
            assert_eq!(error.exit_status(), ExitStatus::Usage);
            assert!(error.hint().unwrap().contains("SOURCE_DATE_EPOCH"));
        }
    }

    #[test]
    fn build_jobs_flag_then_file_then_one() {
        assert_eq!(build_jobs(None, None).unwrap(), 1);
        assert_eq!(build_jobs(None, Some(3)).unwrap(), 3);
        assert_eq!(build_jobs(Some("2"), Some(3)).unwrap(), 2);
        for (flag, file, origin) in [
            (Some("0"), None, "--jobs / DOCKHAND_JOBS"),
            (Some("two"), Some(2), "--jobs / DOCKHAND_JOBS"),
            (Some(""), None, "--jobs / DOCKHAND_JOBS"),
            (None, Some(0), "`jobs:` in the project file"),
        ] {
            let error = build_jobs(flag, file).unwrap_err();
            assert!(
                matches!(&error, SettingsError::Jobs { origin: got, .. } if *got == origin),
                "{error:?}"
            );
            assert_eq!(error.exit_status(), ExitStatus::Usage);
        }
    }

    #[test]
    fn build_timeouts() {
        assert_eq!(build_timeout(None).unwrap(), None);
        assert_eq!(build_timeout(Some("0s")).unwrap(), None, "0s is no limit");
        assert_eq!(
            build_timeout(Some("1h30m")).unwrap(),
            Some(std::time::Duration::from_secs(5400))
        );
        let error = build_timeout(Some("10")).unwrap_err();
        assert!(
            matches!(&error, SettingsError::BuildTimeout { value, .. } if value == "10"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "Invalid build timeout `10` from --build-timeout or DOCKHAND_BUILD_TIMEOUT"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn precedence_flag_then_ci_default() {
        let mut ci = CiContext::empty(crate::ci::Provider::Gitlab);
        ci.repo = Some("registry.example.com/group/project".parse().unwrap());
        ci.implementation = Some(Implementation::Gitlab);
        let env = [("HOME", "/home/u")];

        let from_ci = resolve(&[], &env, Some(&ci)).unwrap();
        assert_eq!(from_ci.repo.unwrap().to_string(), "registry.example.com/group/project");
        assert_eq!(from_ci.implementation, Some(Implementation::Gitlab));

        let flag = resolve(
            &["--repo", "localhost:5000/x", "--repo-implementation", "auto"],
            &env,
            Some(&ci),
        )
        .unwrap();
        assert_eq!(flag.repo.unwrap().to_string(), "localhost:5000/x");
        assert_eq!(flag.implementation, None);
    }

    #[test]
    fn no_project_file_is_one_nameless_image_at_the_repo_itself() {
        let global =
            resolve(&["--repo", "localhost:5000/acme/app"], &[("HOME", "/h")], None).unwrap();
        assert_eq!(global.project_file, None);
        // nothing to build in the working directory: naming and cleanup still work
        let error = global.images(true).unwrap_err();
        assert!(matches!(error, SettingsError::NothingToBuild { project_file: None, .. }));
        let message = error.to_string();
        for needle in ["dockhand.yaml", "Containerfile", "Dockerfile"] {
            assert!(message.contains(needle), "{message}");
        }
        let images = ImagesSettings::for_cleanup(&global).unwrap();
        assert_eq!(images.repo.to_string(), "localhost:5000/acme");
        assert_eq!(images.mode, Mode::Multirepo);
        assert_eq!(images.images, [NamedImage { name: "app".into(), nameless: true }]);
        assert_eq!(global.nameless_name(), "app");
    }

    #[test]
    fn a_nameless_image_must_be_alone() {
        let mut global =
            resolve(&["--repo", "localhost:5000/app"], &[("HOME", "/h")], None).unwrap();
        global.project = ProjectFile::parse(
            "images:\n  - context: svc\n  - name: web\n",
            Path::new("dockhand.yaml"),
        )
        .unwrap();
        let error = global.images(false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "A nameless image (one without `name:`) must be the project's only image; the project has 2: a nameless image (context `svc`), `web`"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        global.project.images.remove(1);
        let images = ImagesSettings::for_cleanup(&global).unwrap();
        assert_eq!(images.repo.to_string(), "localhost:5000");
        assert_eq!(images.images[0].name, "app");
        global.repo = Some("localhost:5000".parse().unwrap());
        assert!(matches!(
            ImagesSettings::for_cleanup(&global),
            Err(SettingsError::Naming(crate::naming::NamingError::NamelessWithoutRepository(_)))
        ));
    }

    #[test]
    fn docker_config_precedence() {
        let home = resolve(&[], &[("HOME", "/home/u")], None).unwrap();
        assert_eq!(home.docker_config, Path::new("/home/u/.docker"));
        let env = resolve(&[], &[("HOME", "/home/u"), ("DOCKER_CONFIG", "/cfg")], None).unwrap();
        assert_eq!(env.docker_config, Path::new("/cfg"));
        let flag =
            resolve(&["--docker-config", "/flag"], &[("DOCKER_CONFIG", "/cfg")], None).unwrap();
        assert_eq!(flag.docker_config, Path::new("/flag"));
        assert!(matches!(resolve(&[], &[], None), Err(SettingsError::NoHome)));
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let env = [("HOME", "/h")];
        for argv in [
            &["--repo", "https://ghcr.io/a"][..],
            &["--repo-implementation", "gitea"][..],
            &["--repo-mode", "mono"][..],
            &["--insecure-registry", "bad host"][..],
        ] {
            let error = resolve(argv, &env, None).unwrap_err();
            assert_eq!(error.exit_status(), ExitStatus::Usage, "{argv:?}");
        }
    }

    #[test]
    fn gitlab_registry_host_detects_gitlab() {
        let env =
            [("HOME", "/h"), ("GITLAB_CI", "true"), ("CI_REGISTRY", "registry.example.com:5050")];
        let settings = resolve(&[], &env, None).unwrap();
        let address: RepoAddress = "registry.example.com:5050/g/p".parse().unwrap();
        assert_eq!(settings.implementation_for(&address), Implementation::Gitlab);
    }
}
