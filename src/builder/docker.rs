//! The docker CLI: the argv of `docker build` and `docker buildx build`.
//!
//! Owns these two command lines as pure functions of a [`BuildSpec`] and the options below.
//! Whether `docker build` uses BuildKit is the user's environment's choice (`DOCKER_BUILDKIT`),
//! except that [`super::build`] turns it on for a build with secrets. Never pushes: both
//! leave the image in the daemon's image store as `local_ref` (`docker buildx build --load`),
//! from which publish pushes it. The classic image store holds one platform per image, so
//! neither builds several platforms ([`super::BuildSpec::check`] refuses). Which buildx
//! builder instance runs the build is docker's own choice (`BUILDX_BUILDER`, `docker buildx
//! use`). Credentials reach docker only through a config directory (`--config`).

use std::ffi::OsString;
use std::path::PathBuf;

use super::{BuildSpec, common_args};
use crate::env_vars::{self, EnvMap};
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

/// Options of `docker buildx build`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildxOptions {
    /// `docker --config DIR`, as for [`DockerOptions::config`].
    pub config: Option<PathBuf>,
}

fn global_args(config: Option<&PathBuf>) -> Vec<OsString> {
    match config {
        Some(dir) => vec!["--config".into(), dir.into()],
        None => Vec::new(),
    }
}

/// Whether `docker build` must get `DOCKER_BUILDKIT=1`: only for secrets (`--secret`, which
/// the classic builder lacks) and only where `env` leaves the variable unset. Otherwise the
/// user's environment decides: docker 23 and later default to BuildKit and fail with it where
/// the buildx plugin is missing, while the classic builder still works there.
pub fn needs_buildkit_set(spec: &BuildSpec, env: &EnvMap) -> bool {
    !spec.secrets.is_empty() && !env.contains_key(env_vars::DOCKER_BUILDKIT)
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

/// `docker [--config DIR] buildx build [--platform P] -f FILE -t local_ref --load …
/// CONTEXT`. A single platform only, as for [`build_argv`].
pub fn buildx_argv(
    spec: &BuildSpec,
    options: &BuildxOptions,
    local_ref: &ImageRef,
) -> Vec<OsString> {
    let mut args = global_args(options.config.as_ref());
    args.extend(["buildx".into(), "build".into()]);
    if !spec.platforms.is_empty() {
        args.extend(["--platform".into(), spec.platforms.join(",").into()]);
    }
    args.extend(["-f".into(), spec.containerfile.as_os_str().to_owned()]);
    args.extend(["-t".into(), local_ref.to_string().into(), "--load".into()]);
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
            annotations: BTreeMap::from([(
                "org.opencontainers.image.revision".into(),
                "abc".into(),
            )]),
            secrets: vec![
                BuildSecret { id: "npm".into(), source: SecretSource::Env("NPM_TOKEN".into()) },
                BuildSecret { id: "key".into(), source: SecretSource::File("/run/key".into()) },
            ],
            source_date_epoch: None,
            from_image: None,
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
    fn buildkit_is_set_only_for_secrets_and_only_when_unset() {
        let with_secret = spec();
        let without = BuildSpec { secrets: Vec::new(), ..spec() };
        let unset = EnvMap::new();
        let classic = EnvMap::from([("DOCKER_BUILDKIT".to_owned(), "0".to_owned())]);
        assert!(!needs_buildkit_set(&without, &unset), "no secrets: docker decides");
        assert!(needs_buildkit_set(&with_secret, &unset));
        assert!(!needs_buildkit_set(&with_secret, &classic), "the user's choice stands");
    }

    #[test]
    fn buildx_argv_table() {
        let arm = BuildSpec { platforms: vec!["linux/arm64".into()], ..spec() };
        let configured = BuildxOptions { config: Some("/tmp/job-config".into()) };
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
                "another platform, with a config",
                arm,
                configured,
                format!(
                    "--config /tmp/job-config buildx build --platform linux/arm64 \
                     -f /src/api/Dockerfile -t localhost/dockhand/api:42 --load {COMMON}"
                ),
            ),
        ] {
            assert_eq!(line(&buildx_argv(&spec, &options, &local())), squeeze(&want), "{name}");
        }
        let configured = BuildxOptions { config: Some("/tmp/c".into()) };
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
