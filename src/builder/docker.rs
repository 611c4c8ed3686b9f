//! The docker CLI: the argv of `docker build` and `docker buildx build`.
//!
//! Owns these two command lines as pure functions of a [`BuildSpec`] and the options below.
//! `docker build` is run with `DOCKER_BUILDKIT=1` in its environment (set by
//! [`super::build`]) so that `--secret` works on every docker version. Must not push by
//! itself: the one output that pushes, [`BuildxOutput::Push`], is the caller's choice.
//! Credentials reach docker only through a config directory (`--config`).
//!
//! Where the result goes (`docker buildx build`):
//! - [`BuildxOutput::Load`] (`--load`): into the daemon's image store as `local_ref`, like
//!   `docker build`. The classic image store holds one platform only, so a multi-platform
//!   build needs one of the other outputs (or the containerd image store).
//! - [`BuildxOutput::Push`] (`--push`): straight to the registry under the given references;
//!   `local_ref` is not used (buildx would try to push it too). Repositories that must exist
//!   before a push have to be created first.
//! - [`BuildxOutput::OciLayout`] (`--output type=oci,dest=DIR,tar=false`): an OCI layout
//!   directory, uploaded by publish like a buildah export. The `docker` driver may refuse this
//!   exporter without the containerd image store; a `docker-container` builder
//!   ([`BuildxOptions::builder`]) supports it.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{BuildSpec, common_args};
use crate::env_vars;
use crate::reference::{ImageRef, RegistryHost};

/// Options of `docker build`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerOptions {
    /// `docker --config DIR`: the docker config directory with registry credentials for base
    /// images; `None` leaves docker to `DOCKER_CONFIG` or `~/.docker`.
    pub config: Option<PathBuf>,
    /// Registries named insecure. The docker daemon decides for itself which registries it
    /// pulls base images from over plain HTTP (`insecure-registries` in `daemon.json`); these
    /// reach podman's docker shim, which reads a per-build `registries.conf` listing only them
    /// (see [`super::buildah::registries_conf`]).
    pub insecure_registries: Vec<RegistryHost>,
}

/// Where `docker buildx build` puts the image; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuildxOutput {
    #[default]
    Load,
    Push(Vec<ImageRef>),
    OciLayout(PathBuf),
}

/// Options of `docker buildx build`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildxOptions {
    /// `docker --config DIR`, as for [`DockerOptions::config`].
    pub config: Option<PathBuf>,
    /// `--builder NAME`: a buildx builder instance (e.g. a `docker-container` one).
    pub builder: Option<String>,
    pub output: BuildxOutput,
}

fn global_args(config: Option<&PathBuf>) -> Vec<OsString> {
    match config {
        Some(dir) => vec!["--config".into(), dir.into()],
        None => Vec::new(),
    }
}

/// `docker [--config DIR] buildx version`: succeeds if and only if the buildx plugin is
/// installed.
pub fn buildx_version_argv(options: &BuildxOptions) -> Vec<OsString> {
    let mut args = global_args(options.config.as_ref());
    args.extend(["buildx".into(), "version".into()]);
    args
}

/// `docker [--config DIR] build [--platform P] -f FILE -t local_ref … CONTEXT`. A single
/// platform only: [`BuildSpec::check`] refuses more for this builder.
pub fn build_argv(
    spec: &BuildSpec,
    options: &DockerOptions,
    local_ref: &ImageRef,
) -> Vec<OsString> {
    let mut args = global_args(options.config.as_ref());
    args.push("build".into());
    if !spec.platforms.is_empty() {
        args.extend(["--platform".into(), spec.platforms.join(",").into()]);
    }
    args.extend(["-f".into(), spec.containerfile.as_os_str().to_owned()]);
    args.extend(["-t".into(), local_ref.to_string().into()]);
    args.extend(epoch_args(spec));
    args.extend(common_args(spec));
    args.push(spec.context.as_os_str().to_owned());
    args
}

/// `--build-arg SOURCE_DATE_EPOCH=N`, which BuildKit (0.11 and later) reads for the image's
/// timestamps, unless the user passes that build argument themselves.
fn epoch_args(spec: &BuildSpec) -> Vec<OsString> {
    match spec.source_date_epoch {
        Some(epoch) if !spec.build_args.contains_key(env_vars::SOURCE_DATE_EPOCH) => vec![
            "--build-arg".into(),
            format!("{}={}", env_vars::SOURCE_DATE_EPOCH, epoch.as_second()).into(),
        ],
        _ => Vec::new(),
    }
}

/// `docker [--config DIR] buildx build [--builder B] [--platform P,…] -f FILE` followed by the
/// output's flags (`-t local_ref --load`, `-t REF… --push`, or `-t local_ref --output
/// type=oci,…`), the common options and the context.
pub fn buildx_argv(
    spec: &BuildSpec,
    options: &BuildxOptions,
    local_ref: &ImageRef,
) -> Vec<OsString> {
    let mut args = global_args(options.config.as_ref());
    args.extend(["buildx".into(), "build".into()]);
    if let Some(builder) = &options.builder {
        args.extend(["--builder".into(), builder.into()]);
    }
    if !spec.platforms.is_empty() {
        args.extend(["--platform".into(), spec.platforms.join(",").into()]);
    }
    args.extend(["-f".into(), spec.containerfile.as_os_str().to_owned()]);
    match &options.output {
        BuildxOutput::Load => {
            args.extend(["-t".into(), local_ref.to_string().into(), "--load".into()]);
        }
        BuildxOutput::Push(references) => {
            for reference in references {
                args.extend(["-t".into(), reference.to_string().into()]);
            }
            args.push("--push".into());
        }
        BuildxOutput::OciLayout(dir) => {
            args.extend(["-t".into(), local_ref.to_string().into(), "--output".into()]);
            let mut output = OsString::from("type=oci,dest=");
            output.push(dir);
            output.push(",tar=false");
            args.push(output);
        }
    }
    args.extend(epoch_args(spec));
    args.extend(common_args(spec));
    args.push(spec.context.as_os_str().to_owned());
    args
}

/// `docker [--config DIR] tag SOURCE TARGET`: names a built image for the registry.
pub fn tag_argv(config: Option<&PathBuf>, source: &ImageRef, target: &ImageRef) -> Vec<OsString> {
    let mut args = global_args(config);
    args.extend(["tag".into(), source.to_string().into(), target.to_string().into()]);
    args
}

/// `docker [--config DIR] image inspect local_ref`: a JSON array with the image, whose
/// `Config.Labels` are the labels it was built with.
pub fn inspect_argv(config: Option<&PathBuf>, local_ref: &ImageRef) -> Vec<OsString> {
    let mut args = global_args(config);
    args.extend(["image".into(), "inspect".into(), local_ref.to_string().into()]);
    args
}

/// `docker [--config DIR] push TARGET`: credentials come from the config directory, never argv.
pub fn push_argv(config: Option<&PathBuf>, target: &ImageRef) -> Vec<OsString> {
    let mut args = global_args(config);
    args.extend(["push".into(), target.to_string().into()]);
    args
}

/// The digest in `docker push` output, whose last line reads
/// `TAG: digest: sha256:… size: N`.
pub fn pushed_digest(output: &str) -> Option<crate::reference::Digest> {
    output.lines().rev().find_map(|line| {
        let (_, rest) = line.split_once("digest: ")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::builder::{BuildSecret, SecretSource};

    fn spec() -> BuildSpec {
        BuildSpec {
            image: "api".into(),
            context: "/src/api".into(),
            containerfile: "/src/api/Dockerfile".into(),
            build_args: BTreeMap::from([("VERSION".into(), "1.2.3".into())]),
            target: Some("runtime".into()),
            platforms: Vec::new(),
            labels: BTreeMap::from([("team".into(), "platform".into())]),
            secrets: vec![
                BuildSecret { id: "npm".into(), source: SecretSource::Env("NPM_TOKEN".into()) },
                BuildSecret { id: "key".into(), source: SecretSource::File("/run/key".into()) },
            ],
            source_date_epoch: None,
        }
    }

    fn local() -> ImageRef {
        "localhost/dockhand/api:42".parse().unwrap()
    }

    fn line(args: &[OsString]) -> String {
        args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    fn squeeze(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    const COMMON: &str = "--build-arg VERSION=1.2.3 --target runtime --label team=platform \
                          --secret id=npm,env=NPM_TOKEN --secret id=key,src=/run/key /src/api";

    #[test]
    fn docker_build_argv_table() {
        let one_platform = BuildSpec { platforms: vec!["linux/arm64".into()], ..spec() };
        for (name, spec, options, want) in [
            (
                "defaults",
                spec(),
                DockerOptions::default(),
                format!("build -f /src/api/Dockerfile -t localhost/dockhand/api:42 {COMMON}"),
            ),
            (
                "config and platform",
                one_platform,
                DockerOptions {
                    config: Some("/tmp/job-config".into()),
                    ..DockerOptions::default()
                },
                format!(
                    "--config /tmp/job-config build --platform linux/arm64 -f /src/api/Dockerfile \
                     -t localhost/dockhand/api:42 {COMMON}"
                ),
            ),
        ] {
            assert_eq!(line(&build_argv(&spec, &options, &local())), squeeze(&want), "{name}");
        }
    }

    #[test]
    fn buildx_argv_table() {
        let multi =
            BuildSpec { platforms: vec!["linux/amd64".into(), "linux/arm64".into()], ..spec() };
        let destinations = vec![
            "ghcr.io/acme/app/api:main".parse().unwrap(),
            "ghcr.io/acme/app/api:sha-ffac537e".parse().unwrap(),
        ];
        for (name, spec, options, want) in [
            (
                "load",
                spec(),
                BuildxOptions::default(),
                format!(
                    "buildx build -f /src/api/Dockerfile -t localhost/dockhand/api:42 --load {COMMON}"
                ),
            ),
            (
                "push",
                multi.clone(),
                BuildxOptions {
                    output: BuildxOutput::Push(destinations),
                    ..BuildxOptions::default()
                },
                format!(
                    "buildx build --platform linux/amd64,linux/arm64 -f /src/api/Dockerfile \
                     -t ghcr.io/acme/app/api:main -t ghcr.io/acme/app/api:sha-ffac537e --push {COMMON}"
                ),
            ),
            (
                "oci layout with a builder and config",
                multi,
                BuildxOptions {
                    config: Some("/tmp/job-config".into()),
                    builder: Some("ci".into()),
                    output: BuildxOutput::OciLayout("/tmp/layout".into()),
                },
                format!(
                    "--config /tmp/job-config buildx build --builder ci --platform linux/amd64,linux/arm64 \
                     -f /src/api/Dockerfile -t localhost/dockhand/api:42 \
                     --output type=oci,dest=/tmp/layout,tar=false {COMMON}"
                ),
            ),
        ] {
            assert_eq!(line(&buildx_argv(&spec, &options, &local())), squeeze(&want), "{name}");
        }
        let configured =
            BuildxOptions { config: Some("/tmp/c".into()), ..BuildxOptions::default() };
        assert_eq!(line(&buildx_version_argv(&configured)), "--config /tmp/c buildx version");
    }

    #[test]
    fn source_date_epoch_is_a_build_arg_unless_the_user_gives_one() {
        let epoch = Some("2024-06-01T12:00:00Z".parse().unwrap());
        let reproducible = BuildSpec { source_date_epoch: epoch, ..spec() };
        let want = format!(
            "build -f /src/api/Dockerfile -t localhost/dockhand/api:42 \
             --build-arg SOURCE_DATE_EPOCH=1717243200 {COMMON}"
        );
        let options = DockerOptions::default();
        assert_eq!(line(&build_argv(&reproducible, &options, &local())), squeeze(&want));
        let buildx = line(&buildx_argv(&reproducible, &BuildxOptions::default(), &local()));
        assert!(buildx.contains("--load --build-arg SOURCE_DATE_EPOCH=1717243200 "), "{buildx}");
        let mut own = reproducible.clone();
        own.build_args.insert("SOURCE_DATE_EPOCH".into(), "0".into());
        let line = line(&build_argv(&own, &options, &local()));
        assert_eq!(line.matches("SOURCE_DATE_EPOCH").count(), 1, "{line}");
        assert!(line.contains("--build-arg SOURCE_DATE_EPOCH=0"), "{line}");
    }

    #[test]
    fn docker_push_argv_and_digest() {
        let target: ImageRef = "ghcr.io/acme/app/api:main".parse().unwrap();
        let config = PathBuf::from("/tmp/job");
        assert_eq!(
            line(&tag_argv(Some(&config), &local(), &target)),
            "--config /tmp/job tag localhost/dockhand/api:42 ghcr.io/acme/app/api:main"
        );
        assert_eq!(line(&push_argv(None, &target)), "push ghcr.io/acme/app/api:main");
        assert_eq!(
            line(&inspect_argv(Some(&config), &local())),
            "--config /tmp/job image inspect localhost/dockhand/api:42"
        );
        // the shape the docker CLI prints after a push (docs.docker.com, `docker image push`)
        let output = "The push refers to repository [ghcr.io/acme/app/api]\n\
            5f70bf18a086: Pushed\n\
            main: digest: sha256:0fe6a1d0f7c0b4b41c6a5fc8e3b3d6e1d9a1e6c5b4a3f2e1d0c9b8a7f6e5d4c3 size: 528\n";
        assert_eq!(
            pushed_digest(output).unwrap().as_str(),
            "sha256:0fe6a1d0f7c0b4b41c6a5fc8e3b3d6e1d9a1e6c5b4a3f2e1d0c9b8a7f6e5d4c3"
        );
        assert_eq!(pushed_digest("error: denied"), None);
    }
}
