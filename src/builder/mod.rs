//! Building images: one [`BuildSpec`] per image becomes the argv of `buildah bud`,
//! `docker build` or `docker buildx build`, run through [`crate::process`]; [`build_all`] runs
//! a project's builds in the order of their `from_image:` ([`graph`]), up to `--jobs` at once.
//!
//! Owns the spec, the choice of backend ([`Builder`], [`Backend`]), the OCI labels taken from
//! the CI context, the checks made before a tool runs (context, containerfile, secrets,
//! platforms), and the mapping of tool failures to [`BuildError`]. The argv builders in
//! `buildah.rs` and `docker.rs` are pure. Must not talk to registries: every backend
//! leaves the image in a local store (buildah's storage, the docker daemon), from which
//! publish pushes it. Never puts a secret's value on argv: build
//! secrets are file paths or names of environment variables.

pub mod buildah;
pub mod docker;
pub mod graph;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use crate::ci::CiContext;
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::naming::valid_image_name;
use crate::process::{self, CommandError, TerminationSignal};
use crate::reference::{ImageRef, RegistryHost, RepoAddress, Tag};
use crate::tags::Placeholder;

/// The containerfile names looked up in the context when none is given, in order.
pub const DEFAULT_CONTAINERFILES: [&str; 2] = ["Containerfile", "Dockerfile"];
/// Where built images are named locally: `localhost/dockhand/<image>:<build id>`.
pub const LOCAL_NAMESPACE: &str = "dockhand";

/// OCI label: URL of the source repository.
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";
/// OCI label: the commit the image was built from.
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
/// OCI label: when the image was built (RFC 3339).
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
/// OCI label: the version (semver of the git tag, else the tag); absent on branch builds.
pub const LABEL_VERSION: &str = "org.opencontainers.image.version";
/// The build argument that carries the base of an image built `from_image:` another: the
/// Containerfile reads it with `ARG BASE_IMAGE` and `FROM ${BASE_IMAGE}`.
pub const BASE_IMAGE_ARG: &str = "BASE_IMAGE";

/// The build tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Builder {
    /// `buildah bud`: daemonless, works in unprivileged CI containers with `vfs` + `chroot`.
    #[default]
    Buildah,
    /// `docker build` against a docker daemon (BuildKit).
    Docker,
    /// `docker buildx build`: BuildKit with multi-platform builds and OCI layout output.
    Buildx,
}

impl Builder {
    pub fn name(self) -> &'static str {
        match self {
            Self::Buildah => "buildah",
            Self::Docker => "docker",
            Self::Buildx => "buildx",
        }
    }

    /// The executable run for this builder.
    pub fn program(self) -> &'static str {
        match self {
            Self::Buildah => "buildah",
            Self::Docker | Self::Buildx => "docker",
        }
    }

    /// How to install this builder, for hints.
    fn install(self) -> &'static str {
        match self {
            Self::Buildah => "`apt-get install buildah` (or `dnf install buildah`)",
            Self::Docker => "the docker CLI (`apt-get install docker.io`) and a reachable daemon",
            Self::Buildx => {
                "the buildx plugin (`docker-buildx-plugin` from Docker's apt repository; Debian 13 and Ubuntu also package it as `docker-buildx`; Debian 12 has none)"
            }
        }
    }
}

impl fmt::Display for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Builder {
    type Err = BuildError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "buildah" => Ok(Self::Buildah),
            "docker" => Ok(Self::Docker),
            "buildx" => Ok(Self::Buildx),
            other => Err(BuildError::UnknownBuilder(other.to_owned())),
        }
    }
}

/// A builder with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Buildah(buildah::BuildahOptions),
    Docker(docker::DockerOptions),
    Buildx(docker::BuildxOptions),
}

impl Backend {
    /// `builder` with its default options; buildah takes `STORAGE_DRIVER` and
    /// `BUILDAH_ISOLATION` from `env`.
    pub fn with_defaults(builder: Builder, env: &EnvMap) -> Self {
        match builder {
            Builder::Buildah => Self::Buildah(buildah::BuildahOptions::from_env(env)),
            Builder::Docker => Self::Docker(docker::DockerOptions::default()),
            Builder::Buildx => Self::Buildx(docker::BuildxOptions::default()),
        }
    }

    pub fn builder(&self) -> Builder {
        match self {
            Self::Buildah(_) => Builder::Buildah,
            Self::Docker(_) => Builder::Docker,
            Self::Buildx(_) => Builder::Buildx,
        }
    }
}

/// Where a build secret comes from. Only the path or the variable's name reaches argv; the
/// tool reads the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file the tool reads (`src=PATH`).
    File(PathBuf),
    /// An environment variable of the tool's process (`env=NAME`).
    Env(String),
}

/// A secret mounted into `RUN --mount=type=secret,id=ID` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub source: SecretSource,
}

impl BuildSecret {
    /// The value of `--secret`: `id=ID,src=PATH` or `id=ID,env=NAME`.
    fn argument(&self) -> OsString {
        let mut argument = OsString::from(format!("id={},", self.id));
        match &self.source {
            SecretSource::File(path) => {
                argument.push("src=");
                argument.push(path);
            }
            SecretSource::Env(name) => argument.push(format!("env={name}")),
        }
        argument
    }
}

/// What to build for one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The image name used by naming (`api`, `svc/worker`).
    pub image: String,
    /// The build context directory.
    pub context: PathBuf,
    /// The containerfile, found by [`locate_containerfile`].
    pub containerfile: PathBuf,
    pub build_args: BTreeMap<String, String>,
    /// Target stage of a multi-stage build.
    pub target: Option<String>,
    /// Platforms such as `linux/amd64`; empty means the builder's own.
    pub platforms: Vec<String>,
    /// Every label of the image; see [`image_labels`] for the OCI ones from the CI context.
    pub labels: BTreeMap<String, String>,
    /// Annotations of the image manifest (the OCI ones of [`oci_labels`]), which registries
    /// such as ghcr.io show; written by buildah in the OCI format only (docker's image store
    /// and the Docker schema 2 format have no manifest annotations).
    pub annotations: BTreeMap<String, String>,
    pub secrets: Vec<BuildSecret>,
    /// `SOURCE_DATE_EPOCH`: the time written into the image (config `created`, history,
    /// file times of the layers) instead of the build's own, so that a rebuild of the same
    /// commit gives the same digest; `None` leaves the builder's clock.
    pub source_date_epoch: Option<Timestamp>,
    /// The project image this one is built from (`from_image:`): [`build_all`] builds it
    /// first and passes its local image as the build argument [`BASE_IMAGE_ARG`].
    pub from_image: Option<String>,
}

impl BuildSpec {
    /// A spec for `image` built from `context`, with the containerfile located as
    /// [`locate_containerfile`] does, and nothing else set.
    pub fn new(
        image: impl Into<String>,
        context: impl Into<PathBuf>,
        containerfile: Option<&Path>,
    ) -> Result<Self, BuildError> {
        let context = context.into();
        let containerfile = locate_containerfile(&context, containerfile)?;
        Ok(Self {
            image: image.into(),
            context,
            containerfile,
            build_args: BTreeMap::new(),
            target: None,
            platforms: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            secrets: Vec::new(),
            source_date_epoch: None,
            from_image: None,
        })
    }

    /// Checks what the tool would otherwise fail on less clearly: the context and
    /// containerfile exist, names are well formed, every secret's file exists or its variable
    /// is set in `env`, and `docker build` is not asked for several platforms.
    pub fn check(&self, builder: Builder, env: &EnvMap) -> Result<(), BuildError> {
        if !valid_image_name(&self.image) {
            return Err(BuildError::ImageName(self.image.clone()));
        }
        if !self.context.is_dir() {
            return Err(BuildError::ContextMissing(self.context.clone()));
        }
        if !self.containerfile.is_file() {
            return Err(BuildError::ContainerfileMissing(self.containerfile.clone()));
        }
        let bad_key = |key: &String| key.is_empty() || key.contains('=');
        if let Some(name) = self.build_args.keys().find(|key| bad_key(key)) {
            return Err(BuildError::BuildArg { image: self.image.clone(), name: name.clone() });
        }
        if self.from_image.is_some() && self.build_args.contains_key(BASE_IMAGE_ARG) {
            return Err(BuildError::BaseImageArg { image: self.image.clone() });
        }
        if let Some(key) = self.labels.keys().find(|key| bad_key(key)) {
            return Err(BuildError::Label { image: self.image.clone(), key: key.clone() });
        }
        if let Some(platform) = self.platforms.iter().find(|platform| !valid_platform(platform)) {
            return Err(BuildError::Platform {
                image: self.image.clone(),
                platform: platform.clone(),
            });
        }
        if builder != Builder::Buildah && self.platforms.len() > 1 {
            return Err(BuildError::MultiPlatform { image: self.image.clone(), builder });
        }
        for secret in &self.secrets {
            check_secret(secret, env)
                .map_err(|problem| BuildError::Secret { id: secret.id.clone(), problem })?;
        }
        Ok(())
    }
}

/// The images the `FROM` lines of a Containerfile name, in order (`FROM [--platform=…] IMAGE
/// [AS stage]`; a stage named before is left out, as it is no image). What a `FROM` names is
/// taken literally: `${ARG}` forms are returned as written.
pub fn from_references(containerfile: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut images = Vec::new();
    for line in containerfile.lines() {
        let mut words = line.split_whitespace();
        if !words.next().is_some_and(|word| word.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let mut words = words.skip_while(|word| word.starts_with("--"));
        let Some(image) = words.next() else { continue };
        if !stages.iter().any(|stage| stage.eq_ignore_ascii_case(image)) {
            images.push(image.to_owned());
        }
        if words.next().is_some_and(|word| word.eq_ignore_ascii_case("AS"))
            && let Some(stage) = words.next()
        {
            stages.push(stage.to_owned());
        }
    }
    images
}

/// `os/arch` or `os/arch/variant` (`linux/amd64`, `linux/arm/v7`), each part lowercase letters,
/// digits and `_`, as the OCI image index's platform fields are written. A bare `amd64` would
/// pass the project file and then fail inside the builder.
fn valid_platform(platform: &str) -> bool {
    let parts: Vec<&str> = platform.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

fn check_secret(secret: &BuildSecret, env: &EnvMap) -> Result<(), SecretProblem> {
    let valid_id = !secret.id.is_empty()
        && secret.id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_id {
        return Err(SecretProblem::Id);
    }
    match &secret.source {
        SecretSource::File(path) if path.as_os_str().to_string_lossy().contains(',') => {
            Err(SecretProblem::Comma(path.clone()))
        }
        SecretSource::File(path) if !path.is_file() => {
            Err(SecretProblem::FileMissing(path.clone()))
        }
        SecretSource::File(_) => Ok(()),
        SecretSource::Env(name) => {
            let mut chars = name.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                Err(SecretProblem::EnvName(name.clone()))
            } else if !env.contains_key(name) {
                Err(SecretProblem::EnvUnset(name.clone()))
            } else {
                Ok(())
            }
        }
    }
}

/// The containerfile of a build: `explicit` (relative paths are inside `context`, as in
/// compose files), else `Containerfile`, else `Dockerfile` in `context`.
pub fn locate_containerfile(
    context: &Path,
    explicit: Option<&Path>,
) -> Result<PathBuf, BuildError> {
    if !context.is_dir() {
        return Err(BuildError::ContextMissing(context.to_owned()));
    }
    if let Some(explicit) = explicit {
        let path = context.join(explicit);
        return if path.is_file() { Ok(path) } else { Err(BuildError::ContainerfileMissing(path)) };
    }
    DEFAULT_CONTAINERFILES
        .iter()
        .map(|name| context.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| BuildError::NoContainerfile(context.to_owned()))
}

/// The OCI labels the CI context gives: source (when the caller knows the repository URL),
/// revision, created (`now`, RFC 3339) and, on a tag build, version (the tag's semver, else
/// the tag). A fact the context lacks gives no label. `org.opencontainers.image.ref.name` is
/// not among them: the image spec defines it for the entries of an OCI layout's index (where
/// the export writes it), not as an image label. The same keys and values are the manifest's
/// annotations ([`BuildSpec::annotations`]).
pub fn oci_labels(
    ctx: &CiContext,
    now: Timestamp,
    source: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut add = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            labels.insert(key.to_owned(), value);
        }
    };
    add(LABEL_SOURCE, source.map(str::to_owned));
    add(LABEL_REVISION, Placeholder::Sha.value(ctx, now).ok().or_else(|| ctx.sha.clone()));
    add(LABEL_CREATED, Some(format!("{now:.0}")));
    add(LABEL_VERSION, Placeholder::Semver.value(ctx, now).ok().or_else(|| ctx.tag.clone()));
    labels
}

/// The manifest annotations for an image labelled `labels`: its `org.opencontainers.image.*`
/// labels (the CI's and the user's), as the image spec's annotation keys are the same.
pub fn manifest_annotations(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| key.starts_with("org.opencontainers.image."))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// [`oci_labels`] overridden by the user's `labels`.
pub fn image_labels(
    ctx: &CiContext,
    now: Timestamp,
    source: Option<&str>,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = oci_labels(ctx, now, source);
    labels.extend(user.iter().map(|(key, value)| (key.clone(), value.clone())));
    labels
}

/// The local name of a build: `localhost/dockhand/<image>:<build_id>`. It is never pushed;
/// publish pushes it under the names `naming` gives.
pub fn local_ref(image: &str, build_id: &Tag) -> Result<ImageRef, BuildError> {
    if !valid_image_name(image) {
        return Err(BuildError::ImageName(image.to_owned()));
    }
    let registry: RegistryHost = "localhost".parse().expect("`localhost` is a valid registry host");
    let repository = RepoAddress { registry, path: format!("{LOCAL_NAMESPACE}/{image}") };
    Ok(ImageRef::tagged(repository, build_id.clone()))
}

/// A built image in buildah's storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    pub reference: ImageRef,
    /// `true` when several platforms were built into a manifest list of that name.
    pub manifest_list: bool,
}

/// Where a build's result is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// In buildah's containers-storage (the storage options of the build find it).
    Buildah(LocalImage),
    /// In the docker daemon's image store, under this name.
    DockerStore(ImageRef),
}

/// The result of [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    pub image: String,
    pub builder: Builder,
    pub built: Built,
    /// The image id the builder reported (`sha256:…`, buildah's `--iidfile`), for a build of
    /// one platform with buildah; `None` otherwise.
    pub image_id: Option<String>,
}

impl BuiltImage {
    /// How an image built `FROM` this one names it in its build argument [`BASE_IMAGE_ARG`]:
    /// the image id where buildah gave one (no other image can answer to it), else the local
    /// name this run just gave it — a manifest list, from which buildah takes each platform's
    /// image, or the docker daemon's tag. Both are found in the local store; neither is
    /// pulled from a registry.
    pub fn base_reference(&self) -> String {
        match (&self.image_id, &self.built) {
            (Some(id), _) => id.clone(),
            (None, Built::Buildah(local)) => local.reference.to_string(),
            (None, Built::DockerStore(reference)) => reference.to_string(),
        }
    }
}

/// How a build runs: how long it may take, and where its output goes as it comes.
pub struct Live<'a> {
    /// The builder is stopped (its whole process group) after this long.
    pub timeout: Option<Duration>,
    /// Every line the builder prints (stdout and stderr), as soon as it prints it.
    pub on_line: &'a mut dyn FnMut(&str),
}

/// Builds `spec` with `backend`, naming the result `local_ref`. Every variable of `env` is set
/// in the tool's environment (so its `PATH` is where the tool is looked up, and `env=` secrets
/// are read from it). The tool's output is streamed to `live.on_line`; it is stopped after
/// `live.timeout`, or when dockhand is asked to terminate ([`process::forward_termination`]),
/// and the temporary files of the build are removed either way.
pub async fn build(
    backend: &Backend,
    spec: &BuildSpec,
    local_ref: &ImageRef,
    env: &EnvMap,
    live: Live<'_>,
) -> Result<BuiltImage, BuildError> {
    let builder = backend.builder();
    spec.check(builder, env)?;
    let mut child_env = env.clone();
    // the tool's own temporary files (buildah leaves `buildahNNN` directories behind, and a
    // stopped build more) go into a directory of this build, removed when it ends either way;
    // without `TMPDIR` it is in `/var/tmp`, where buildah puts them (`/tmp` may be small)
    let tool_temp = env
        .get(env_vars::TMPDIR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    let scratch = tempfile::Builder::new()
        .prefix("dockhand-build-")
        .tempdir_in(tool_temp)
        .map_err(BuildError::TempDir)?;
    child_env.insert(env_vars::TMPDIR.to_owned(), scratch.path().display().to_string());
    // plain HTTP to the registries named insecure, and to no other: kept until the tool exits
    let insecure = match backend {
        Backend::Buildah(options) => options.insecure_registries.as_slice(),
        Backend::Docker(options) => options.insecure_registries.as_slice(),
        Backend::Buildx(_) => &[],
    };
    let _registries_conf = if insecure.is_empty() {
        None
    } else {
        let file = registries_conf_file(insecure, env)?;
        if env.contains_key(env_vars::CONTAINERS_REGISTRIES_CONF) {
            log::warn!(
                "`{}` is replaced for this build by a file that allows plain HTTP to {} only",
                env_vars::CONTAINERS_REGISTRIES_CONF,
                insecure.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            );
        }
        child_env.insert(
            env_vars::CONTAINERS_REGISTRIES_CONF.to_owned(),
            file.path().display().to_string(),
        );
        Some(file)
    };
    // buildah writes the image id of a one-platform build here (with several, it refuses)
    let iidfile = (builder == Builder::Buildah && spec.platforms.len() <= 1)
        .then(|| scratch.path().join("image-id"));
    let (args, built) = match backend {
        Backend::Buildah(options) => {
            if let Some(authfile) = options.authfile.as_ref().filter(|path| !path.is_file()) {
                return Err(BuildError::AuthFileMissing(authfile.clone()));
            }
            let manifest_list = spec.platforms.len() > 1;
            if manifest_list {
                // `--manifest` adds to an existing list of the same name: start from none.
                let remove = buildah::manifest_rm_argv(options, local_ref);
                if let Err(error) = tool(builder.program(), &remove, env).output() {
                    log::debug!("no earlier manifest list `{local_ref}` to remove: {error}");
                }
            }
            let image = LocalImage { reference: local_ref.clone(), manifest_list };
            let args = buildah::build_argv(spec, options, local_ref, iidfile.as_deref());
            (args, Built::Buildah(image))
        }
        Backend::Docker(options) => {
            if docker::needs_buildkit_set(spec, env) {
                child_env.insert(env_vars::DOCKER_BUILDKIT.to_owned(), "1".to_owned());
            }
            if let Some(epoch) = spec.source_date_epoch {
                child_env
                    .insert(env_vars::SOURCE_DATE_EPOCH.to_owned(), epoch.as_second().to_string());
            }
            (docker::build_argv(spec, options, local_ref), Built::DockerStore(local_ref.clone()))
        }
        Backend::Buildx(options) => {
            // `docker` without the plugin fails with a usage message about the first flag it
            // does not know, so ask the plugin itself whether it is there.
            let probe = docker::buildx_version_argv(options);
            if let Err(error) = tool(builder.program(), &probe, env).output() {
                log::debug!("buildx is not usable: {error}");
                return Err(BuildError::NotInstalled { builder });
            }
            if let Some(epoch) = spec.source_date_epoch {
                child_env
                    .insert(env_vars::SOURCE_DATE_EPOCH.to_owned(), epoch.as_second().to_string());
            }
            (docker::buildx_argv(spec, options, local_ref), Built::DockerStore(local_ref.clone()))
        }
    };
    log::info!("building `{}` with {builder}", spec.image);
    SHOWN_BUILD_ENV
        .iter()
        .filter_map(|name| child_env.get(*name).map(|value| (*name, value)))
        .fold(tool(builder.program(), &args, &child_env), |command, (name, value)| {
            command.show_env(name, value)
        })
        .stream(live.timeout, live.on_line)
        .await
        .map_err(|source| tool_failure(builder, &spec.image, source))?;
    let image_id = match &iidfile {
        Some(path) => Some(read_image_id(path)?),
        None => None,
    };
    Ok(BuiltImage { image: spec.image.clone(), builder, built, image_id })
}

/// The image id buildah wrote to `path`: `sha256:` and 64 hex digits.
fn read_image_id(path: &Path) -> Result<String, BuildError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| BuildError::DigestFile { path: path.to_owned(), source })?;
    let id = text.trim();
    let valid = id
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid { Ok(id.to_owned()) } else { Err(BuildError::Digest(id.to_owned())) }
}

/// Warns of a `FROM NAME` (or `FROM localhost/dockhand/NAME…`) naming an image of the project
/// in a Containerfile of an image without `from_image:`: the builder would look for NAME
/// elsewhere (Docker Hub's `library/NAME`, or a local image of an earlier run), not take this
/// run's build of it.
fn warn_of_from_lines_naming_project_images(specs: &[BuildSpec]) {
    for spec in specs.iter().filter(|spec| spec.from_image.is_none()) {
        let Ok(text) = std::fs::read_to_string(&spec.containerfile) else { continue };
        for reference in from_references(&text) {
            let named = specs.iter().find(|other| {
                let local = format!("localhost/{}/{}", LOCAL_NAMESPACE, other.image);
                reference == other.image
                    || reference.strip_prefix(&local).is_some_and(|rest| rest.starts_with(':'))
            });
            if let Some(other) = named {
                log::warn!(
                    "`{}` names `FROM {reference}`, which is not this run's build of the project image `{}`: to build from it, give `{}` the key `from_image: {}` and write `ARG {}` then `FROM ${{{}}}`",
                    spec.containerfile.display(),
                    other.image,
                    spec.image,
                    other.image,
                    BASE_IMAGE_ARG,
                    BASE_IMAGE_ARG,
                );
            }
        }
    }
}

/// Warns when the Containerfile of `spec`, built `from_image:` `base`, never names the build
/// argument that carries it: the image would then not be built from `base` at all.
fn warn_unless_base_arg_used(spec: &BuildSpec, base: &str) {
    let Ok(text) = std::fs::read_to_string(&spec.containerfile) else { return };
    if !text.contains(BASE_IMAGE_ARG) {
        log::warn!(
            "image `{}` is built `from_image: {base}`, but `{}` never uses the build argument `{}` (`ARG {}` then `FROM ${{{}}}`)",
            spec.image,
            spec.containerfile.display(),
            BASE_IMAGE_ARG,
            BASE_IMAGE_ARG,
            BASE_IMAGE_ARG,
        );
    }
}

/// What [`build_all`] reports as the builds go, for the caller to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildEvent<'a> {
    /// The build of this image starts.
    Started(&'a str),
    /// One line the builder of this image printed.
    Line(&'a str, &'a str),
    /// The build of this image ended: built (`true`) or failed.
    Ended(&'a str, bool),
}

/// The builds of a project: the specs in the project file's order, the graph of their
/// `from_image:`, how many run at a time.
pub struct Builds<'a> {
    pub specs: &'a [BuildSpec],
    pub graph: &'a graph::BuildGraph,
    /// The tag of the local images ([`local_ref`]).
    pub build_id: &'a Tag,
    /// How many builds run at the same time (at least 1).
    pub jobs: usize,
    /// Each build's timeout ([`Live::timeout`]).
    pub timeout: Option<Duration>,
}

/// Builds every image of `builds` with `backend`, each after the image it is built from
/// (which it gets as its [`BASE_IMAGE_ARG`], [`BuiltImage::base_reference`]), up to
/// `builds.jobs` at the same time, and returns them in the specs' order. Every start, line and
/// end goes to `events`, tagged with its image. First it warns of Containerfiles whose `FROM`
/// does not match their `from_image:` (reading them is the only check here; the graph was
/// checked when the settings were resolved).
///
/// After a failure no build starts; those running finish (a builder stopped half-way leaves
/// more behind than one that ends), the images built from the failed one are never built,
/// each image left unbuilt is logged, and the first failure is returned.
pub async fn build_all(
    backend: &Backend,
    builds: &Builds<'_>,
    env: &EnvMap,
    events: &dyn Fn(BuildEvent<'_>),
) -> Result<Vec<BuiltImage>, BuildError> {
    use futures_util::StreamExt as _;
    use futures_util::stream::FuturesUnordered;
    let Builds { specs, graph, build_id, jobs, timeout } = *builds;
    warn_of_from_lines_naming_project_images(specs);
    for spec in specs {
        if let Some(base) = &spec.from_image {
            warn_unless_base_arg_used(spec, base);
        }
    }
    let locals =
        specs.iter().map(|spec| local_ref(&spec.image, build_id)).collect::<Result<Vec<_>, _>>()?;
    let mut schedule = graph::Schedule::new(graph, jobs);
    let mut built: Vec<Option<BuiltImage>> = vec![None; specs.len()];
    let mut running = FuturesUnordered::new();
    let mut first_failure = None;
    loop {
        while let Some(next) = schedule.start_next() {
            let mut spec = specs[next].clone();
            if let Some(base) = graph.base(next) {
                let base = built[base].as_ref().expect("a base is built before the images from it");
                // resolved: from here on the base is this build argument
                spec.from_image = None;
                spec.build_args.insert(BASE_IMAGE_ARG.to_owned(), base.base_reference());
            }
            let local = &locals[next];
            events(BuildEvent::Started(&spec.image));
            running.push(async move {
                let mut on_line = |line: &str| events(BuildEvent::Line(&spec.image, line));
                let live = Live { timeout, on_line: &mut on_line };
                (next, build(backend, &spec, local, env, live).await)
            });
        }
        let Some((index, result)) = running.next().await else { break };
        let image = specs[index].image.as_str();
        match result {
            Ok(image_built) => {
                schedule.finished(index, true);
                events(BuildEvent::Ended(image, true));
                log::info!("built `{image}` as {}", locals[index]);
                built[index] = Some(image_built);
            }
            Err(error) => {
                schedule.finished(index, false);
                events(BuildEvent::Ended(image, false));
                if first_failure.is_none() {
                    first_failure = Some(error);
                } else {
                    log::error!("{error}");
                }
            }
        }
    }
    for (index, spec) in specs.iter().enumerate() {
        match schedule.state(index) {
            graph::State::BaseFailed(base) => log::error!(
                "`{}` was not built: it is built from `{}`, whose build failed",
                spec.image,
                graph.name(base)
            ),
            graph::State::NotStarted => {
                log::warn!("`{}` was not built: no build starts after one failed", spec.image);
            }
            _ => {}
        }
    }
    match first_failure {
        Some(error) => Err(error),
        None => Ok(built.into_iter().flatten().collect()),
    }
}

/// A temporary `registries.conf` ([`buildah::registries_conf`]) in `TMPDIR` (else the system's
/// temp dir), removed when dropped.
fn registries_conf_file(
    insecure: &[RegistryHost],
    env: &EnvMap,
) -> Result<tempfile::NamedTempFile, BuildError> {
    use std::io::Write as _;
    let mut file = tempfile::Builder::new()
        .prefix("dockhand-registries-")
        .suffix(".conf")
        .tempfile_in(temp_root(env))
        .map_err(BuildError::TempDir)?;
    file.write_all(buildah::registries_conf(insecure).as_bytes()).map_err(BuildError::TempDir)?;
    log::debug!("plain HTTP for base images from {insecure:?} only: {}", file.path().display());
    Ok(file)
}

/// `TMPDIR` of `env`, else the system's temporary directory.
fn temp_root(env: &EnvMap) -> PathBuf {
    env.get(env_vars::TMPDIR)
        .filter(|dir| !dir.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from)
}

/// The labels of the image `reference` in `backend`'s storage (`buildah inspect --type image`
/// or `docker image inspect`): what publish checks before it pushes a build of an earlier
/// process. Fails when the image is not there, or the tool cannot reach its storage (no
/// docker daemon). Every variable of `env` is set for the tool; blocks until it exits.
pub fn local_labels(
    backend: &Backend,
    reference: &ImageRef,
    env: &EnvMap,
) -> Result<BTreeMap<String, String>, BuildError> {
    let builder = backend.builder();
    let args = match backend {
        Backend::Buildah(options) => buildah::inspect_argv(options, reference),
        Backend::Docker(options) => docker::inspect_argv(options.config.as_ref(), reference),
        Backend::Buildx(options) => docker::inspect_argv(options.config.as_ref(), reference),
    };
    let output = tool(builder.program(), &args, env).output().map_err(|source| {
        if source.is_not_found() {
            BuildError::NotInstalled { builder }
        } else {
            BuildError::Inspect {
                reference: Box::new(reference.clone()),
                builder,
                source: Box::new(source),
            }
        }
    })?;
    parse_labels(builder, &output.stdout).map_err(|problem| BuildError::InspectOutput {
        reference: Box::new(reference.clone()),
        builder,
        problem,
    })
}

/// The labels in what `buildah inspect` (`OCIv1.config.Labels`) or `docker image inspect`
/// (`[0].Config.Labels`) printed; no labels at all is an empty map.
fn parse_labels(builder: Builder, stdout: &str) -> Result<BTreeMap<String, String>, String> {
    let json: serde_json::Value = serde_json::from_str(stdout)
        .map_err(|error| format!("the output is not JSON ({error})"))?;
    let labels = match builder {
        Builder::Buildah => &json["OCIv1"]["config"]["Labels"],
        Builder::Docker | Builder::Buildx => match json.as_array().map(Vec::as_slice) {
            Some([image]) => &image["Config"]["Labels"],
            _ => return Err("expected a JSON array of one image".into()),
        },
    };
    match labels {
        serde_json::Value::Null => Ok(BTreeMap::new()),
        serde_json::Value::Object(map) => Ok(map
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
            .collect()),
        other => Err(format!("the labels are not an object: {other}")),
    }
}

/// A failed run of the builder: not installed, stopped, or the build failed.
fn tool_failure(builder: Builder, image: &str, source: CommandError) -> BuildError {
    let image = image.to_owned();
    match source {
        source if source.is_not_found() => BuildError::NotInstalled { builder },
        CommandError::TimedOut { after, .. } => {
            BuildError::TimedOut { image, builder, timeout: after, source: Box::new(source) }
        }
        CommandError::Interrupted { signal, .. } => {
            BuildError::Interrupted { image, builder, signal, source: Box::new(source) }
        }
        source => BuildError::Failed { image, builder, source: Box::new(source) },
    }
}

/// The variables of a build's environment that change what the builder does, shown before the
/// command line in messages so that it reproduces the build (never a secret's variable).
const SHOWN_BUILD_ENV: [&str; 6] = [
    env_vars::DOCKER_BUILDKIT,
    env_vars::BUILDX_BUILDER,
    env_vars::SOURCE_DATE_EPOCH,
    env_vars::CONTAINERS_REGISTRIES_CONF,
    env_vars::STORAGE_DRIVER,
    env_vars::BUILDAH_ISOLATION,
];

/// `program args…` with every variable of `env` set.
fn tool(program: &str, args: &[OsString], env: &EnvMap) -> process::Command {
    env.iter().fold(process::Command::new(program).args(args), |command, (name, value)| {
        command.env(name, value)
    })
}

/// Common options of all three tools, after the tool-specific ones: build args, target,
/// labels and secrets.
fn common_args(spec: &BuildSpec) -> Vec<OsString> {
    let mut args = Vec::new();
    for (name, value) in &spec.build_args {
        args.push("--build-arg".into());
        args.push(format!("{name}={value}").into());
    }
    if let Some(target) = &spec.target {
        args.push("--target".into());
        args.push(target.into());
    }
    for (key, value) in &spec.labels {
        args.push("--label".into());
        args.push(format!("{key}={value}").into());
    }
    for secret in &spec.secrets {
        args.push("--secret".into());
        args.push(secret.argument());
    }
    args
}

/// What is wrong with a build secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    #[error("the id must be letters, digits, `_`, `.` or `-`")]
    Id,
    #[error("the file `{}` does not exist", .0.display())]
    FileMissing(PathBuf),
    #[error("the path `{}` contains `,`, which the builders' `--secret` syntax cannot carry", .0.display())]
    Comma(PathBuf),
    #[error("`{0}` is not a valid environment variable name")]
    EnvName(String),
    #[error("the environment variable `{0}` is not set")]
    EnvUnset(String),
}

/// Why an image was not built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Unknown builder `{0}`; expected `buildah`, `docker` or `buildx`")]
    UnknownBuilder(String),
    #[error(
        "Image name `{0}` must be lowercase letters and digits separated by `.`, `_`, `__`, `-` or `/`"
    )]
    ImageName(String),
    #[error("Build context `{}` is not a directory", .0.display())]
    ContextMissing(PathBuf),
    #[error("Containerfile `{}` does not exist", .0.display())]
    ContainerfileMissing(PathBuf),
    #[error("Build context `{}` has neither a `Containerfile` nor a `Dockerfile`", .0.display())]
    NoContainerfile(PathBuf),
    #[error("Build argument `{name}` of image `{image}` must be a non-empty name without `=`")]
    BuildArg { image: String, name: String },
    #[error("Label `{key}` of image `{image}` must be a non-empty key without `=`")]
    Label { image: String, key: String },
    #[error(
        "Image `{image}` is built `from_image:` another, whose build argument `BASE_IMAGE` its `build_args:` must not set"
    )]
    BaseImageArg { image: String },
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    #[error("Platform `{platform}` of image `{image}` must look like `os/arch[/variant]`")]
    Platform { image: String, platform: String },
    #[error("Image `{image}` is built for several platforms, which `{builder}` cannot do")]
    MultiPlatform { image: String, builder: Builder },
    #[error("Build secret `{id}` cannot be used: {problem}")]
    Secret { id: String, problem: SecretProblem },
    #[error("Registry auth file `{}` does not exist", .0.display())]
    AuthFileMissing(PathBuf),
    #[error("Output directory `{}` contains `,` or `:`, which the builder cannot take", .0.display())]
    OutputDir(PathBuf),
    #[error("Builder `{builder}` is not installed")]
    NotInstalled { builder: Builder },
    #[error("Building image `{image}` with {builder} failed")]
    Failed {
        image: String,
        builder: Builder,
        #[source]
        source: Box<CommandError>,
    },
    #[error(
        "Building image `{image}` with {builder} took longer than the build timeout ({}s)",
        .timeout.as_secs()
    )]
    TimedOut {
        image: String,
        builder: Builder,
        timeout: Duration,
        #[source]
        source: Box<CommandError>,
    },
    #[error("Building image `{image}` with {builder} was cancelled by {signal}")]
    Interrupted {
        image: String,
        builder: Builder,
        signal: TerminationSignal,
        #[source]
        source: Box<CommandError>,
    },
    #[error("Exporting `{reference}` to the OCI layout `{}` failed", dir.display())]
    Export {
        reference: Box<ImageRef>,
        dir: PathBuf,
        #[source]
        source: Box<CommandError>,
    },
    #[error("`{reference}` is not in {builder}'s image storage")]
    Inspect {
        reference: Box<ImageRef>,
        builder: Builder,
        #[source]
        source: Box<CommandError>,
    },
    #[error("Cannot read the labels of `{reference}` from {builder}: {problem}")]
    InspectOutput { reference: Box<ImageRef>, builder: Builder, problem: String },
    #[error("Cannot create a temporary file or directory")]
    TempDir(#[source] std::io::Error),
    #[error("Cannot read the digest buildah wrote to `{}`", path.display())]
    DigestFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("buildah wrote `{0}`, which is not a digest")]
    Digest(String),
}

impl Classify for BuildError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Failed { .. }
            | Self::TimedOut { .. }
            | Self::Interrupted { .. }
            | Self::Export { .. }
            | Self::TempDir(_)
            | Self::DigestFile { .. }
            | Self::Digest(_)
            | Self::InspectOutput { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownBuilder(_) => Some("use `--builder buildah`, `--builder docker` or `--builder buildx`".into()),
            Self::ContextMissing(_) => {
                Some("set the image's `context:` in dockhand.yaml to a directory (relative to the file)".into())
            }
            Self::ContainerfileMissing(_) | Self::NoContainerfile(_) => Some(
                "add a `Containerfile` or `Dockerfile` to the context, or set the image's `containerfile:` (relative to the context)".into(),
            ),
            Self::BaseImageArg { .. } => Some(
                "remove `BASE_IMAGE` from the image's `build_args:`: dockhand sets it to the image its `from_image:` names".into(),
            ),
            Self::Graph(graph::GraphError::Cycle(_)) => Some(
                "an image can only be built from one built before it: remove one `from_image:` of the cycle".into(),
            ),
            Self::Graph(graph::GraphError::Unknown { .. }) => {
                Some("`from_image:` takes the `name:` of another image of `images:`".into())
            }
            Self::Graph(_) => Some(
                "give the image and its base the same `platforms:`, or build both with `--platform`".into(),
            ),
            Self::MultiPlatform { .. } => {
                Some("build several platforms with `--builder buildah` (the docker daemon's classic image store holds one platform per image)".into())
            }
            Self::Secret { problem: SecretProblem::EnvUnset(name), .. } => {
                Some(format!("set `{name}` in the job's environment, or give the secret as a file"))
            }
            Self::AuthFileMissing(_) => {
                Some("run `dockhand ci-env` or `dockhand login` first, or point `--docker-config` at a directory with a `config.json`".into())
            }
            Self::NotInstalled { builder } => {
                let others: Vec<&str> = [Builder::Buildah, Builder::Docker, Builder::Buildx]
                    .into_iter()
                    .filter(|other| other != builder)
                    .map(Builder::name)
                    .collect();
                Some(format!(
                    "install {}, or choose another builder with `--builder {}`",
                    builder.install(),
                    others.join("|")
                ))
            }
            Self::TimedOut { .. } => Some(
                "raise `--build-timeout` (or `DOCKHAND_BUILD_TIMEOUT`), or find the step that hangs in the output above".into(),
            ),
            Self::Interrupted { .. } => {
                Some("the job was cancelled; nothing was published by this run".into())
            }
            Self::Failed { builder, .. } => Some(format!(
                "the {builder} output above says why; the same command line reproduces it locally"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::{Provider, RefType};

    const SHA: &str = "ffac537e6cbbf934b08745a378932722df287a53";

    fn now() -> Timestamp {
        "2024-06-01T12:00:00.123Z".parse().unwrap()
    }

    #[test]
    fn builder_names() {
        for (name, builder, program) in [
            ("buildah", Builder::Buildah, "buildah"),
            ("docker", Builder::Docker, "docker"),
            ("buildx", Builder::Buildx, "docker"),
        ] {
            let parsed: Builder = name.parse().unwrap();
            assert_eq!(parsed, builder);
            assert_eq!(parsed.to_string(), name);
            assert_eq!(parsed.program(), program);
        }
        let error = "podman".parse::<Builder>().unwrap_err();
        assert!(matches!(&error, BuildError::UnknownBuilder(name) if name == "podman"));
        assert_eq!(error.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn containerfile_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path();
        assert!(
            matches!(locate_containerfile(context, None), Err(BuildError::NoContainerfile(p)) if p == context)
        );
        std::fs::write(context.join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(locate_containerfile(context, None).unwrap(), context.join("Dockerfile"));
        std::fs::write(context.join("Containerfile"), "FROM scratch\n").unwrap();
        assert_eq!(locate_containerfile(context, None).unwrap(), context.join("Containerfile"));
        std::fs::create_dir(context.join("sub")).unwrap();
        std::fs::write(context.join("sub/app.Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(
            locate_containerfile(context, Some(Path::new("sub/app.Dockerfile"))).unwrap(),
            context.join("sub/app.Dockerfile")
        );
        let missing = locate_containerfile(context, Some(Path::new("nope"))).unwrap_err();
        assert!(
            matches!(&missing, BuildError::ContainerfileMissing(p) if *p == context.join("nope"))
        );
        assert_eq!(missing.exit_status(), ExitStatus::Usage);
        assert!(missing.to_string().contains(&context.join("nope").display().to_string()));
        let absent = context.join("absent");
        assert!(
            matches!(locate_containerfile(&absent, None), Err(BuildError::ContextMissing(p)) if p == absent)
        );
    }

    #[test]
    fn checks_before_the_tool_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join("token"), "t0k3n").unwrap();
        let base = BuildSpec::new("api", dir.path(), None).unwrap();
        let env = EnvMap::from([("NPM_TOKEN".to_owned(), "x".to_owned())]);
        let secret = |id: &str, source: SecretSource| BuildSecret { id: id.into(), source };
        let token = dir.path().join("token");
        let ok = BuildSpec {
            secrets: vec![
                secret("npm", SecretSource::Env("NPM_TOKEN".into())),
                secret("tok", SecretSource::File(token)),
            ],
            platforms: vec!["linux/amd64".into()],
            ..base.clone()
        };
        assert!(ok.check(Builder::Docker, &env).is_ok());

        let multi = BuildSpec {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            ..base.clone()
        };
        assert!(multi.check(Builder::Buildah, &env).is_ok());
        let error = multi.check(Builder::Buildx, &env).unwrap_err();
        assert!(
            matches!(&error, BuildError::MultiPlatform { builder: Builder::Buildx, .. }),
            "{error:?}"
        );
        let problems: Vec<(BuildSpec, &str)> = vec![
            (multi, "MultiPlatform"),
            (BuildSpec { image: "Api".into(), ..base.clone() }, "ImageName"),
            (BuildSpec { context: dir.path().join("gone"), ..base.clone() }, "ContextMissing"),
            (
                BuildSpec { containerfile: dir.path().join("gone"), ..base.clone() },
                "ContainerfileMissing",
            ),
            (
                BuildSpec {
                    build_args: BTreeMap::from([("A=B".into(), "1".into())]),
                    ..base.clone()
                },
                "BuildArg",
            ),
            (
                BuildSpec { labels: BTreeMap::from([(String::new(), "1".into())]), ..base.clone() },
                "Label",
            ),
            (
                BuildSpec { platforms: vec!["linux/amd64,linux/arm64".into()], ..base.clone() },
                "Platform",
            ),
        ];
        let platform = |value: &str| BuildSpec { platforms: vec![value.into()], ..base.clone() };
        let problems = problems.into_iter().chain(
            ["amd64", "linux/", "/amd64", "Linux/amd64", "linux/arm/v7/x", "linux/amd 64", ""]
                .into_iter()
                .map(|value| (platform(value), "Platform")),
        );
        for value in ["linux/amd64", "linux/arm/v7", "windows/amd64", "linux/arm64/v8"] {
            assert!(platform(value).check(Builder::Buildah, &env).is_ok(), "{value}");
        }
        for (spec, want) in problems {
            let error = spec.check(Builder::Docker, &env).unwrap_err();
            assert!(format!("{error:?}").starts_with(want), "{want}: {error:?}");
            assert_eq!(error.exit_status(), ExitStatus::Usage, "{want}");
        }
        for (source, id, want) in [
            (SecretSource::Env("UNSET".into()), "npm", SecretProblem::EnvUnset("UNSET".into())),
            (SecretSource::Env("1BAD".into()), "npm", SecretProblem::EnvName("1BAD".into())),
            (
                SecretSource::File(dir.path().join("none")),
                "f",
                SecretProblem::FileMissing(dir.path().join("none")),
            ),
            (
                SecretSource::File(dir.path().join("a,b")),
                "f",
                SecretProblem::Comma(dir.path().join("a,b")),
            ),
            (SecretSource::Env("NPM_TOKEN".into()), "a=b", SecretProblem::Id),
            (SecretSource::Env("NPM_TOKEN".into()), "", SecretProblem::Id),
        ] {
            let spec = BuildSpec { secrets: vec![secret(id, source)], ..base.clone() };
            match spec.check(Builder::Buildah, &env) {
                Err(BuildError::Secret { id: got, problem }) => {
                    assert_eq!((got.as_str(), problem), (id, want));
                }
                other => panic!("{id}: {other:?}"),
            }
        }
    }

    #[test]
    fn oci_labels_from_the_ci_context() {
        let branch = CiContext {
            sha: Some(SHA.into()),
            ref_name: Some("feature/x".into()),
            ref_type: Some(RefType::Branch),
            ..CiContext::empty(Provider::Github)
        };
        let release = CiContext {
            ref_name: Some("v2.0.0-rc.1".into()),
            ref_type: Some(RefType::Tag),
            tag: Some("v2.0.0-rc.1".into()),
            ..branch.clone()
        };
        let source = Some("https://github.com/acme/app");
        let labels = oci_labels(&branch, now(), source);
        assert_eq!(
            labels,
            BTreeMap::from([
                (LABEL_SOURCE.to_owned(), "https://github.com/acme/app".to_owned()),
                (LABEL_REVISION.to_owned(), SHA.to_owned()),
                (LABEL_CREATED.to_owned(), "2024-06-01T12:00:00Z".to_owned()),
            ])
        );
        let labels = oci_labels(&release, now(), None);
        assert_eq!(labels[LABEL_VERSION], "2.0.0-rc.1");
        assert!(!labels.contains_key("org.opencontainers.image.ref.name"));
        let named = CiContext {
            ref_name: Some("nightly".into()),
            tag: Some("nightly".into()),
            ..release.clone()
        };
        assert_eq!(oci_labels(&named, now(), None)[LABEL_VERSION], "nightly");
        assert!(!labels.contains_key(LABEL_SOURCE));
        let bare = oci_labels(&CiContext::empty(Provider::Generic), now(), None);
        assert_eq!(bare.keys().collect::<Vec<_>>(), [LABEL_CREATED]);
    }

    #[test]
    fn annotations_are_the_oci_labels() {
        let labels = BTreeMap::from([
            (LABEL_REVISION.to_owned(), SHA.to_owned()),
            ("org.opencontainers.image.title".to_owned(), "API".to_owned()),
            ("team".to_owned(), "platform".to_owned()),
        ]);
        assert_eq!(
            manifest_annotations(&labels),
            BTreeMap::from([
                (LABEL_REVISION.to_owned(), SHA.to_owned()),
                ("org.opencontainers.image.title".to_owned(), "API".to_owned()),
            ])
        );
    }

    #[test]
    fn user_labels_override_oci_labels() {
        let ctx = CiContext { sha: Some(SHA.into()), ..CiContext::empty(Provider::Generic) };
        let user = BTreeMap::from([
            (LABEL_REVISION.to_owned(), "mine".to_owned()),
            ("team".to_owned(), "platform".to_owned()),
        ]);
        let labels = image_labels(&ctx, now(), None, &user);
        assert_eq!(labels[LABEL_REVISION], "mine");
        assert_eq!(labels["team"], "platform");
        assert_eq!(labels[LABEL_CREATED], "2024-06-01T12:00:00Z");
    }

    #[test]
    fn local_refs() {
        let id: Tag = "8374521".parse().unwrap();
        assert_eq!(local_ref("api", &id).unwrap().to_string(), "localhost/dockhand/api:8374521");
        assert_eq!(
            local_ref("svc/worker", &id).unwrap().to_string(),
            "localhost/dockhand/svc/worker:8374521"
        );
        assert!(matches!(local_ref("Api", &id), Err(BuildError::ImageName(name)) if name == "Api"));
    }

    #[test]
    fn labels_from_inspect_output() {
        let buildah = r#"{"Type":"buildah 0.0.1","OCIv1":{"config":{"Labels":{"a":"1","n":2}}}}"#;
        assert_eq!(
            parse_labels(Builder::Buildah, buildah).unwrap(),
            BTreeMap::from([("a".to_owned(), "1".to_owned())])
        );
        let bare = r#"{"OCIv1":{"config":{}}}"#;
        assert_eq!(parse_labels(Builder::Buildah, bare).unwrap(), BTreeMap::new());
        let docker = r#"[{"Id":"sha256:1","Config":{"Labels":{"org.opencontainers.image.revision":"abc"}}}]"#;
        assert_eq!(parse_labels(Builder::Docker, docker).unwrap()[LABEL_REVISION], "abc");
        assert!(parse_labels(Builder::Docker, "[]").is_err());
        assert!(parse_labels(Builder::Docker, "not json").is_err());
        assert!(parse_labels(Builder::Buildah, r#"{"OCIv1":{"config":{"Labels":[]}}}"#).is_err());
    }

    #[test]
    fn a_dependent_build_names_its_base_by_id_else_by_its_local_name() {
        let id = format!("sha256:{}", "ab".repeat(32));
        let local = local_ref("base", &"42".parse().unwrap()).unwrap();
        let buildah = |image_id: Option<String>, manifest_list: bool| BuiltImage {
            image: "base".into(),
            builder: Builder::Buildah,
            built: Built::Buildah(LocalImage { reference: local.clone(), manifest_list }),
            image_id,
        };
        assert_eq!(buildah(Some(id.clone()), false).base_reference(), id);
        assert_eq!(buildah(None, true).base_reference(), "localhost/dockhand/base:42");
        // the docker daemon's tag, just written by this run's build: the daemon finds it in
        // its image store, and the dependent's argv carries it as the build argument
        let docker = BuiltImage {
            image: "base".into(),
            builder: Builder::Docker,
            built: Built::DockerStore(local.clone()),
            image_id: None,
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
            .unwrap();
        let mut spec = BuildSpec::new("app", dir.path(), None).unwrap();
        spec.build_args.insert(BASE_IMAGE_ARG.into(), docker.base_reference());
        let app = local_ref("app", &"42".parse().unwrap()).unwrap();
        for args in [
            docker::build_argv(&spec, &docker::DockerOptions::default(), &app),
            docker::buildx_argv(&spec, &docker::BuildxOptions::default(), &app),
        ] {
            let args: Vec<String> =
                args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
            let at = args.iter().position(|arg| arg == "--build-arg").unwrap();
            assert_eq!(args[at + 1], "BASE_IMAGE=localhost/dockhand/base:42", "{args:?}");
        }
        // the build argument is dockhand's to set for an image built `from_image:`
        spec.from_image = Some("base".into());
        let error = spec.check(Builder::Docker, &EnvMap::new()).unwrap_err();
        assert!(
            matches!(&error, BuildError::BaseImageArg { image } if image == "app"),
            "{error:?}"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        spec.build_args.clear();
        assert!(spec.check(Builder::Docker, &EnvMap::new()).is_ok());
    }

    #[test]
    fn images_named_by_from_lines() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE_IMAGE\nFROM ${BASE_IMAGE} AS base\n\
                    from --platform=$BUILDPLATFORM golang:1.22 as build\nRUN go build\n\
                    FROM base\nFROM Build\nFROM api\nCOPY --from=build /app /app\nFROM\n";
        assert_eq!(from_references(text), ["${BASE_IMAGE}", "golang:1.22", "api"]);
        assert!(from_references("RUN echo FROM api\n").is_empty());
    }

    #[test]
    fn image_ids_buildah_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        let id = format!("sha256:{}", "0f".repeat(32));
        std::fs::write(&path, format!("{id}\n")).unwrap();
        assert_eq!(read_image_id(&path).unwrap(), id);
        std::fs::write(&path, "sha256:xyz").unwrap();
        assert!(
            matches!(read_image_id(&path), Err(BuildError::Digest(text)) if text == "sha256:xyz")
        );
        assert!(matches!(
            read_image_id(&dir.path().join("none")),
            Err(BuildError::DigestFile { .. })
        ));
    }

    #[test]
    fn not_installed_hints_name_the_package_and_the_flag() {
        let hint = BuildError::NotInstalled { builder: Builder::Buildah }.hint().unwrap();
        assert!(
            hint.contains("apt-get install buildah") && hint.contains("--builder docker|buildx"),
            "{hint}"
        );
        let hint = BuildError::NotInstalled { builder: Builder::Buildx }.hint().unwrap();
        assert!(
            hint.contains("docker-buildx") && hint.contains("--builder buildah|docker"),
            "{hint}"
        );
    }
}
