//! buildah: the argv of `buildah bud`, and the export of a built image to an OCI layout
//! directory.
//!
//! Owns buildah's command lines (pure functions of a [`BuildSpec`] and [`BuildahOptions`]) and
//! [`export_oci_layout`], which copies an image out of buildah's storage into a directory, never
//! to a registry: publish uploads the exported layout with its own client. Credentials reach
//! buildah only as an auth file path.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{BuildError, BuildSpec, Builder, LocalImage, common_args, tool};
use crate::env_vars::{self, EnvMap};
use crate::reference::{Digest, ImageRef, RegistryHost};

/// Manifest and configuration format of built images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// OCI image manifest and config (buildah's default).
    #[default]
    Oci,
    /// Docker schema 2.
    Docker,
}

impl ImageFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Oci => "oci",
            Self::Docker => "docker",
        }
    }
}

/// How buildah runs: where its storage is, how `RUN` steps are isolated, what it writes.
/// Build and push must use the same storage options, or push will not find the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildahOptions {
    /// `--root`: storage root directory (default `/var/lib/containers/storage`).
    pub root: Option<PathBuf>,
    /// `--runroot`: storage state directory (default `/run/containers/storage`).
    pub runroot: Option<PathBuf>,
    /// `--storage-driver`, e.g. `vfs` (from `STORAGE_DRIVER`).
    pub storage_driver: Option<String>,
    /// `--isolation`, e.g. `chroot` (from `BUILDAH_ISOLATION`).
    pub isolation: Option<String>,
    /// `--format`.
    pub format: ImageFormat,
    /// `--layers`: cache intermediate layers.
    pub layers: bool,
    /// `--authfile` for pulling base images: a docker `config.json` (see [`authfile_in`]).
    pub authfile: Option<PathBuf>,
    /// Registries base images may be pulled from over plain HTTP: only these, through a
    /// per-build `registries.conf` ([`registries_conf`]), never `--tls-verify=false` (which
    /// would turn off TLS for every registry of the build).
    pub insecure_registries: Vec<RegistryHost>,
}

impl Default for BuildahOptions {
    fn default() -> Self {
        Self {
            root: None,
            runroot: None,
            storage_driver: None,
            isolation: None,
            format: ImageFormat::Oci,
            layers: false,
            authfile: None,
            insecure_registries: Vec::new(),
        }
    }
}

impl BuildahOptions {
    /// Defaults, with the storage driver from `STORAGE_DRIVER` and the isolation from
    /// `BUILDAH_ISOLATION` when they are set and not empty.
    pub fn from_env(env: &EnvMap) -> Self {
        let value = |name: &str| env.get(name).filter(|value| !value.is_empty()).cloned();
        Self {
            storage_driver: value(env_vars::STORAGE_DRIVER),
            isolation: value(env_vars::BUILDAH_ISOLATION),
            ..Self::default()
        }
    }

    /// The global options that select the storage: `--root`, `--runroot`, `--storage-driver`.
    fn storage_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if let Some(root) = &self.root {
            args.extend(["--root".into(), root.into()]);
        }
        if let Some(runroot) = &self.runroot {
            args.extend(["--runroot".into(), runroot.into()]);
        }
        if let Some(driver) = &self.storage_driver {
            args.extend(["--storage-driver".into(), driver.into()]);
        }
        args
    }
}

/// The docker `config.json` inside a docker config directory (`DOCKER_CONFIG`), which buildah
/// reads as an auth file (including `credHelpers`).
pub fn authfile_in(docker_config: &Path) -> PathBuf {
    docker_config.join("config.json")
}

/// `buildah [storage] bud …`: one platform (or the host's) is tagged `local_ref`; several
/// platforms are built into the manifest list `local_ref` (`--manifest`). With `iidfile`
/// (one platform only: buildah refuses it for several) buildah writes the image id there.
pub fn build_argv(
    spec: &BuildSpec,
    options: &BuildahOptions,
    local_ref: &ImageRef,
    iidfile: Option<&Path>,
) -> Vec<OsString> {
    let mut args = options.storage_args();
    args.push("bud".into());
    args.extend(["--format".into(), options.format.name().into()]);
    if let Some(isolation) = &options.isolation {
        args.extend(["--isolation".into(), isolation.into()]);
    }
    if options.layers {
        args.push("--layers".into());
    }
    if let Some(authfile) = &options.authfile {
        args.extend(["--authfile".into(), authfile.into()]);
    }
    if !spec.platforms.is_empty() {
        args.extend(["--platform".into(), spec.platforms.join(",").into()]);
    }
    if let Some(epoch) = spec.source_date_epoch {
        // created time, history and every file's time in the layers
        args.extend(["--timestamp".into(), epoch.as_second().to_string().into()]);
    }
    args.extend(["-f".into(), spec.containerfile.as_os_str().to_owned()]);
    if let Some(iidfile) = iidfile {
        args.extend(["--iidfile".into(), iidfile.into()]);
    }
    let name_flag = if spec.platforms.len() > 1 { "--manifest" } else { "-t" };
    args.extend([name_flag.into(), local_ref.to_string().into()]);
    if options.format == ImageFormat::Oci {
        // the Docker schema 2 format has no manifest annotations: buildah would drop them
        for (key, value) in &spec.annotations {
            args.extend(["--annotation".into(), format!("{key}={value}").into()]);
        }
    }
    args.extend(common_args(spec));
    args.push(spec.context.as_os_str().to_owned());
    args
}

/// A `registries.conf` (containers-registries.conf(5), version 2) that marks `insecure` as
/// reachable over plain HTTP and leaves every other registry on verified TLS. Builders read it
/// through `CONTAINERS_REGISTRIES_CONF`, which replaces the system's file (drop-ins in
/// `registries.conf.d`, such as short-name aliases, are still read), so it also names Docker
/// Hub as the one registry for unqualified names (`FROM alpine`), as Debian's default does.
pub fn registries_conf(insecure: &[RegistryHost]) -> String {
    let mut conf = String::from(
        "# written by dockhand for one build: plain HTTP to these registries only\n\
         unqualified-search-registries = [\"docker.io\"]\n",
    );
    for host in insecure {
        let location = host.to_string().replace('\\', "\\\\").replace('"', "\\\"");
        write!(conf, "\n[[registry]]\nlocation = \"{location}\"\ninsecure = true\n")
            .expect("writing to a String cannot fail");
    }
    conf
}

/// `buildah [storage] manifest rm local_ref`: removes a manifest list left by an earlier
/// multi-platform build of the same name (it fails harmlessly when there is none).
pub fn manifest_rm_argv(options: &BuildahOptions, local_ref: &ImageRef) -> Vec<OsString> {
    let mut args = options.storage_args();
    args.extend(["manifest".into(), "rm".into(), local_ref.to_string().into()]);
    args
}

/// `buildah [storage] inspect --type image local_ref`: the image's buildah JSON, whose
/// `OCIv1.config.Labels` are the labels it was built with. A manifest list's name resolves to
/// the image of the host's platform.
pub fn inspect_argv(options: &BuildahOptions, local_ref: &ImageRef) -> Vec<OsString> {
    let mut args = options.storage_args();
    args.extend(["inspect".into(), "--type".into(), "image".into(), local_ref.to_string().into()]);
    args
}

/// `buildah [storage] push --digestfile FILE REF oci:DIR` for one image, or `buildah [storage]
/// manifest push --all …` for a manifest list (every platform's image and the list itself):
/// copies it into the OCI image layout directory `dir` and writes the digest of the manifest
/// (or index) into `digestfile`. `dir` must not contain `:`.
pub fn export_argv(
    options: &BuildahOptions,
    image: &LocalImage,
    dir: &Path,
    digestfile: &Path,
) -> Vec<OsString> {
    let mut args = options.storage_args();
    if image.manifest_list {
        args.extend(["manifest".into(), "push".into(), "--all".into()]);
    } else {
        args.push("push".into());
    }
    args.extend(["--digestfile".into(), digestfile.into()]);
    args.push(image.reference.to_string().into());
    let mut destination = OsString::from("oci:");
    destination.push(dir);
    args.push(destination);
    args
}

/// Copies `image` from buildah's storage into the OCI image layout directory `dir` (created if
/// needed; an existing layout gains one more manifest) and returns the digest of the manifest
/// (or index) written. Publish can then upload the blobs once and add every tag with a
/// manifest PUT. Talks to no registry. Every variable of `env` is set for buildah; blocks until
/// it exits.
pub fn export_oci_layout(
    options: &BuildahOptions,
    image: &LocalImage,
    dir: &Path,
    env: &EnvMap,
) -> Result<Digest, BuildError> {
    if dir.as_os_str().to_string_lossy().contains([',', ':']) {
        return Err(BuildError::OutputDir(dir.to_owned()));
    }
    let scratch = tempfile::tempdir().map_err(BuildError::TempDir)?;
    let digestfile = scratch.path().join("digest");
    let args = export_argv(options, image, dir, &digestfile);
    tool(Builder::Buildah.program(), &args, env).output().map_err(|source| {
        if source.is_not_found() {
            BuildError::NotInstalled { builder: Builder::Buildah }
        } else {
            BuildError::Export {
                reference: Box::new(image.reference.clone()),
                dir: dir.to_owned(),
                source: Box::new(source),
            }
        }
    })?;
    let text = std::fs::read_to_string(&digestfile)
        .map_err(|source| BuildError::DigestFile { path: digestfile.clone(), source })?;
    let text = text.trim();
    text.parse().map_err(|_| BuildError::Digest(text.to_owned()))
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
            containerfile: "/src/api/Containerfile".into(),
            build_args: BTreeMap::new(),
            target: None,
            platforms: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            secrets: Vec::new(),
            source_date_epoch: None,
            from_image: None,
        }
    }

    fn local() -> ImageRef {
        "localhost/dockhand/api:42".parse().unwrap()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn build_argv_table() {
        let full = BuildSpec {
            build_args: BTreeMap::from([("B".into(), "2".into()), ("A".into(), "x y".into())]),
            target: Some("runtime".into()),
            platforms: vec!["linux/arm64".into()],
            labels: BTreeMap::from([("org.opencontainers.image.revision".into(), "abc".into())]),
            // the Docker format has no manifest annotations: none is passed
            annotations: BTreeMap::from([(
                "org.opencontainers.image.revision".into(),
                "abc".into(),
            )]),
            secrets: vec![
                BuildSecret { id: "npm".into(), source: SecretSource::Env("NPM_TOKEN".into()) },
                BuildSecret { id: "key".into(), source: SecretSource::File("/run/key".into()) },
            ],
            source_date_epoch: Some("2024-06-01T12:00:00Z".parse().unwrap()),
            ..spec()
        };
        let isolated = BuildahOptions {
            root: Some("/tmp/t/root".into()),
            runroot: Some("/tmp/t/run".into()),
            storage_driver: Some("vfs".into()),
            isolation: Some("chroot".into()),
            format: ImageFormat::Docker,
            layers: true,
            authfile: Some("/cfg/config.json".into()),
            insecure_registries: vec!["127.0.0.1:5000".parse().unwrap()],
        };
        let multi = BuildSpec {
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            annotations: BTreeMap::from([(
                "org.opencontainers.image.revision".into(),
                "abc".into(),
            )]),
            ..spec()
        };
        let cases: [(&str, BuildSpec, BuildahOptions, &str); 4] = [
            (
                "defaults",
                spec(),
                BuildahOptions::default(),
                "bud --format oci -f /src/api/Containerfile -t localhost/dockhand/api:42 /src/api",
            ),
            (
                "every option",
                full,
                isolated,
                "--root /tmp/t/root --runroot /tmp/t/run --storage-driver vfs bud --format docker \
                 --isolation chroot --layers --authfile /cfg/config.json \
                 --platform linux/arm64 --timestamp 1717243200 \
                 -f /src/api/Containerfile -t localhost/dockhand/api:42 \
                 --build-arg A=x y --build-arg B=2 --target runtime \
                 --label org.opencontainers.image.revision=abc \
                 --secret id=npm,env=NPM_TOKEN --secret id=key,src=/run/key /src/api",
            ),
            (
                "several platforms make a manifest list",
                multi,
                BuildahOptions::default(),
                "bud --format oci --platform linux/amd64,linux/arm64 -f /src/api/Containerfile \
                 --manifest localhost/dockhand/api:42 \
                 --annotation org.opencontainers.image.revision=abc /src/api",
            ),
            (
                "environment",
                spec(),
                BuildahOptions::from_env(&EnvMap::from([
                    ("STORAGE_DRIVER".to_owned(), "overlay".to_owned()),
                    ("BUILDAH_ISOLATION".to_owned(), "rootless".to_owned()),
                ])),
                "--storage-driver overlay bud --format oci --isolation rootless \
                 -f /src/api/Containerfile -t localhost/dockhand/api:42 /src/api",
            ),
        ];
        for (name, spec, options, want) in cases {
            let got = strings(&build_argv(&spec, &options, &local(), None));
            // `x y` is one argument: compare argument by argument where it matters
            assert_eq!(
                got.join(" "),
                want.split_whitespace().collect::<Vec<_>>().join(" "),
                "{name}"
            );
            if name == "every option" {
                assert!(got.contains(&"A=x y".to_owned()), "{got:?}");
            }
        }
        let iidfile = Some(Path::new("/tmp/b/image-id"));
        assert_eq!(
            strings(&build_argv(&spec(), &BuildahOptions::default(), &local(), iidfile)).join(" "),
            "bud --format oci -f /src/api/Containerfile --iidfile /tmp/b/image-id \
             -t localhost/dockhand/api:42 /src/api"
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    #[test]
    fn registries_conf_names_only_the_insecure_hosts() {
        let hosts: Vec<RegistryHost> =
            ["127.0.0.1:5000", "registry.local"].iter().map(|h| h.parse().unwrap()).collect();
        let conf = registries_conf(&hosts);
        assert_eq!(
            conf,
            "# written by dockhand for one build: plain HTTP to these registries only\n\
             unqualified-search-registries = [\"docker.io\"]\n\
             \n[[registry]]\nlocation = \"127.0.0.1:5000\"\ninsecure = true\n\
             \n[[registry]]\nlocation = \"registry.local\"\ninsecure = true\n"
        );
    }

    #[test]
    fn secret_values_never_reach_argv() {
        let with_secrets = BuildSpec {
            secrets: vec![BuildSecret {
                id: "npm".into(),
                source: SecretSource::Env("NPM_TOKEN".into()),
            }],
            ..spec()
        };
        let env = EnvMap::from([("NPM_TOKEN".to_owned(), "s3cr3t-value".to_owned())]);
        let args =
            strings(&build_argv(&with_secrets, &BuildahOptions::from_env(&env), &local(), None));
        assert!(args.iter().all(|arg| !arg.contains("s3cr3t-value")), "{args:?}");
        assert!(args.contains(&"id=npm,env=NPM_TOKEN".to_owned()));
    }

    #[test]
    fn export_argv_table() {
        let storage = BuildahOptions {
            root: Some("/r".into()),
            runroot: Some("/rr".into()),
            storage_driver: Some("vfs".into()),
            ..BuildahOptions::default()
        };
        let single = LocalImage { reference: local(), manifest_list: false };
        let list = LocalImage { reference: local(), manifest_list: true };
        for (image, want) in [
            (
                &single,
                "--root /r --runroot /rr --storage-driver vfs push --digestfile /tmp/digest \
                 localhost/dockhand/api:42 oci:/tmp/layout",
            ),
            (
                &list,
                "--root /r --runroot /rr --storage-driver vfs manifest push --all --digestfile /tmp/digest \
                 localhost/dockhand/api:42 oci:/tmp/layout",
            ),
        ] {
            let args =
                export_argv(&storage, image, Path::new("/tmp/layout"), Path::new("/tmp/digest"));
            assert_eq!(
                strings(&args).join(" "),
                want.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        assert_eq!(
            strings(&manifest_rm_argv(&storage, &local())).join(" "),
            "--root /r --runroot /rr --storage-driver vfs manifest rm localhost/dockhand/api:42"
        );
        assert_eq!(
            strings(&inspect_argv(&storage, &local())).join(" "),
            "--root /r --runroot /rr --storage-driver vfs inspect --type image localhost/dockhand/api:42"
        );
    }
}
