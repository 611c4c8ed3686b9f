//! The build backends against the real buildah (vfs storage and chroot isolation under the
//! test's temp dir, so nothing touches the system store), the push command publish runs
//! against the real registry, and the docker CLI's absence paths.
//! The docker and buildx builds themselves need a daemon, which this machine has not: their
//! argv is covered by the unit tests in `src/builder/docker.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockhand::builder::buildah::{self, BuildahOptions};
use dockhand::builder::{
    self, Backend, BuildError, BuildSecret, BuildSpec, Builder, Built, BuiltImage, Live,
    LocalImage, SecretSource,
};
use dockhand::ci::{CiContext, Provider, RefType};
use dockhand::env_vars::EnvMap;
use dockhand::exit::{Classify, ExitStatus};
use dockhand::process::CommandError;
use dockhand::reference::ImageRef;
use serde_json::Value;

use crate::support::peers::{self, commit_busybox_base};
use crate::support::registry::{Auth, Deletes, Registry};

const SHA: &str = "ffac537e6cbbf934b08745a378932722df287a53";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A buildah storage of its own in a temp dir, removed on drop.
struct Storage {
    dir: tempfile::TempDir,
}

impl Storage {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn options(&self) -> BuildahOptions {
        BuildahOptions {
            root: Some(self.path().join("root")),
            runroot: Some(self.path().join("run")),
            storage_driver: Some("vfs".into()),
            isolation: Some("chroot".into()),
            ..BuildahOptions::default()
        }
    }

    fn env(&self) -> EnvMap {
        EnvMap::from([
            ("PATH".to_owned(), SYSTEM_PATH.to_owned()),
            ("HOME".to_owned(), self.path().display().to_string()),
        ])
    }

    /// A build context with `files` in it.
    fn context(&self, files: &[(&str, &str)]) -> PathBuf {
        let context = self.path().join("ctx");
        std::fs::create_dir_all(&context).unwrap();
        for (name, text) in files {
            std::fs::write(context.join(name), text).unwrap();
        }
        context
    }

    /// `buildah <storage> args…` run directly, as a peer client reading what dockhand built.
    fn buildah(&self, args: &[&str]) -> String {
        let options = self.options();
        let stdout = peers::run(
            Command::new("buildah")
                .arg("--root")
                .arg(options.root.unwrap())
                .arg("--runroot")
                .arg(options.runroot.unwrap())
                .args(["--storage-driver", "vfs"])
                .args(args)
                .env_clear()
                .envs(self.env()),
        );
        String::from_utf8(stdout).unwrap()
    }
}

/// [`builder::build`] run to completion on a runtime of its own, its output discarded.
fn build(
    backend: &Backend,
    spec: &BuildSpec,
    local: &ImageRef,
    env: &EnvMap,
) -> Result<BuiltImage, BuildError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut on_line = |_: &str| {};
    runtime.block_on(builder::build(
        backend,
        spec,
        local,
        env,
        Live { timeout: None, on_line: &mut on_line },
    ))
}

fn local(image: &str) -> ImageRef {
    builder::local_ref(image, &"t1".parse().unwrap()).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn blob(layout: &Path, digest: &str) -> Value {
    read_json(&layout.join("blobs").join(digest.replacen(':', "/", 1)))
}

#[test]
fn buildah_builds_and_exports_an_oci_layout_with_the_labels() {
    let storage = Storage::new();
    let context = storage.context(&[
        ("hello.txt", "hello\n"),
        ("Containerfile", "FROM scratch\nARG GREETING\nCOPY hello.txt /hello.txt\n"),
    ]);
    let ctx = CiContext {
        sha: Some(SHA.into()),
        ref_name: Some("v1.2.3".into()),
        ref_type: Some(RefType::Tag),
        tag: Some("v1.2.3".into()),
        ..CiContext::empty(Provider::Github)
    };
    let now = "2024-06-01T12:00:00Z".parse().unwrap();
    let user = BTreeMap::from([("team".to_owned(), "platform".to_owned())]);
    let labels = builder::image_labels(&ctx, now, Some("https://github.com/acme/app"), &user);
    let spec = BuildSpec {
        annotations: builder::manifest_annotations(&labels),
        labels,
        build_args: BTreeMap::from([("GREETING".to_owned(), "hi".to_owned())]),
        ..BuildSpec::new("api", &context, None).unwrap()
    };
    assert_eq!(spec.containerfile, context.join("Containerfile"));

    let backend = Backend::Buildah(storage.options());
    let built = build(&backend, &spec, &local("api"), &storage.env()).unwrap();
    let image = LocalImage { reference: local("api"), manifest_list: false };
    assert_eq!(built.built, Built::Buildah(image.clone()));
    assert_eq!(built.builder, Builder::Buildah);
    assert!(
        storage
            .buildah(&["images", "--format", "{{.Name}}:{{.Tag}}"])
            .contains("localhost/dockhand/api:t1")
    );

    let layout = storage.path().join("layout");
    let digest =
        buildah::export_oci_layout(&storage.options(), &image, &layout, &storage.env()).unwrap();
    assert!(layout.join("oci-layout").is_file());
    let index = read_json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{index}");
    assert_eq!(manifests[0]["digest"], digest.as_str());
    assert_eq!(manifests[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    let manifest = blob(&layout, digest.as_str());
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1, "{manifest}");
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.revision"], SHA, "{manifest}");
    assert_eq!(annotations["org.opencontainers.image.version"], "1.2.3", "{manifest}");
    assert_eq!(annotations["org.opencontainers.image.source"], "https://github.com/acme/app");
    assert!(annotations.get("team").is_none(), "{manifest}");
    let config = blob(&layout, manifest["config"]["digest"].as_str().unwrap());
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], SHA);
    assert_eq!(labels["org.opencontainers.image.version"], "1.2.3");
    assert!(labels.get("org.opencontainers.image.ref.name").is_none(), "{labels}");
    assert_eq!(labels["org.opencontainers.image.created"], "2024-06-01T12:00:00Z");
    assert_eq!(labels["org.opencontainers.image.source"], "https://github.com/acme/app");
    assert_eq!(labels["team"], "platform");
}

#[test]
fn several_platforms_build_a_manifest_list_exported_as_an_index() {
    let storage = Storage::new();
    let context = storage
        .context(&[("hello.txt", "hello\n"), ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n")]);
    let spec = BuildSpec {
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        ..BuildSpec::new("multi", &context, None).unwrap()
    };
    assert_eq!(spec.containerfile, context.join("Dockerfile"));
    let backend = Backend::Buildah(storage.options());
    let built = build(&backend, &spec, &local("multi"), &storage.env()).unwrap();
    let image = LocalImage { reference: local("multi"), manifest_list: true };
    assert_eq!(built.built, Built::Buildah(image.clone()));
    // a rebuild under the same name starts a fresh list instead of adding two more images
    build(&backend, &spec, &local("multi"), &storage.env()).unwrap();

    let layout = storage.path().join("layout");
    let digest =
        buildah::export_oci_layout(&storage.options(), &image, &layout, &storage.env()).unwrap();
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    assert_eq!(index["manifests"][0]["mediaType"], "application/vnd.oci.image.index.v1+json");
    let list = blob(&layout, digest.as_str());
    let mut architectures: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|child| child["platform"]["architecture"].as_str().unwrap())
        .collect();
    architectures.sort_unstable();
    assert_eq!(architectures, ["amd64", "arm64"]);
}

#[test]
fn build_secrets_reach_run_steps_by_env_and_by_file() {
    let storage = Storage::new();
    // a busybox base image, so that the Containerfile can have a RUN step
    commit_busybox_base(|args| storage.buildah(args));

    let context = storage.context(&[(
        "Containerfile",
        "FROM localhost/dh/busybox:base\n\
         RUN --mount=type=secret,id=tok --mount=type=secret,id=key cat /run/secrets/tok /run/secrets/key > /seen\n",
    )]);
    let key_file = storage.path().join("key");
    std::fs::write(&key_file, "-from-file").unwrap();
    let spec = BuildSpec {
        secrets: vec![
            BuildSecret { id: "tok".into(), source: SecretSource::Env("DH_TEST_TOKEN".into()) },
            BuildSecret { id: "key".into(), source: SecretSource::File(key_file) },
        ],
        ..BuildSpec::new("secret", &context, None).unwrap()
    };
    let mut env = storage.env();
    env.insert("DH_TEST_TOKEN".into(), "sentinel-from-env".into());
    build(&Backend::Buildah(storage.options()), &spec, &local("secret"), &env).unwrap();

    let container = storage.buildah(&["from", "localhost/dockhand/secret:t1"]);
    let seen =
        storage.buildah(&["run", "--isolation", "chroot", container.trim(), "--", "cat", "/seen"]);
    assert_eq!(seen, "sentinel-from-env-from-file");
}

#[test]
fn a_failing_build_is_exit_2_with_the_tool_stderr() {
    let storage = Storage::new();
    let context = storage.context(&[("Containerfile", "FROM scratch\nNOTACOMMAND x\n")]);
    let spec = BuildSpec {
        secrets: vec![BuildSecret {
            id: "tok".into(),
            source: SecretSource::Env("DH_TEST_TOKEN".into()),
        }],
        ..BuildSpec::new("broken", &context, None).unwrap()
    };
    let mut env = storage.env();
    env.insert("DH_TEST_TOKEN".into(), "sentinel-s3cret".into());
    let error =
        build(&Backend::Buildah(storage.options()), &spec, &local("broken"), &env).unwrap_err();
    assert_eq!(error.exit_status(), ExitStatus::Failure);
    let printed = format!("{error} {error:?} {}", std::error::Error::source(&error).unwrap());
    assert!(printed.contains("--secret id=tok,env=DH_TEST_TOKEN"), "{printed}");
    assert!(!printed.contains("sentinel-s3cret"), "{printed}");
    let BuildError::Failed { image, builder, source } = &error else { panic!("{error:?}") };
    assert_eq!((image.as_str(), *builder), ("broken", Builder::Buildah));
    let CommandError::Failed { stderr, .. } = &**source else { panic!("{source:?}") };
    assert!(stderr.contains("Unknown instruction: \"NOTACOMMAND\""), "{stderr}");
    assert!(source.to_string().contains("Unknown instruction"), "{source}");
}

#[test]
fn a_missing_containerfile_or_context_is_a_usage_error() {
    let storage = Storage::new();
    let context = storage.context(&[("README", "no containerfile here")]);
    let error = BuildSpec::new("api", &context, None).unwrap_err();
    assert!(matches!(&error, BuildError::NoContainerfile(path) if *path == context), "{error:?}");
    assert_eq!(error.exit_status(), ExitStatus::Usage);

    let error = BuildSpec::new("api", &context, Some(Path::new("app.Dockerfile"))).unwrap_err();
    assert!(
        matches!(&error, BuildError::ContainerfileMissing(path) if *path == context.join("app.Dockerfile"))
    );
    assert!(error.to_string().contains("app.Dockerfile"), "{error}");

    // removed after the spec was made: `build` checks again before running buildah
    std::fs::write(context.join("Containerfile"), "FROM scratch\n").unwrap();
    let spec = BuildSpec::new("api", &context, None).unwrap();
    std::fs::remove_file(context.join("Containerfile")).unwrap();
    let error = build(&Backend::Buildah(storage.options()), &spec, &local("api"), &storage.env())
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::ContainerfileMissing(path) if *path == context.join("Containerfile"))
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);

    let gone = BuildSpec { context: storage.path().join("gone"), ..spec };
    let error = build(&Backend::Buildah(storage.options()), &gone, &local("api"), &storage.env())
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::ContextMissing(path) if *path == storage.path().join("gone"))
    );
}

#[test]
fn a_builder_missing_from_path_is_not_installed() {
    let storage = Storage::new();
    let context = storage.context(&[("Containerfile", "FROM scratch\n")]);
    let spec = BuildSpec::new("api", &context, None).unwrap();
    let empty_bin = storage.path().join("empty-bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let mut env = storage.env();
    env.insert("PATH".into(), empty_bin.display().to_string());
    for builder in [Builder::Buildah, Builder::Docker, Builder::Buildx] {
        let backend = Backend::with_defaults(builder, &env);
        let error = build(&backend, &spec, &local("api"), &env).unwrap_err();
        assert!(
            matches!(&error, BuildError::NotInstalled { builder: b } if *b == builder),
            "{error:?}"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        assert!(error.hint().unwrap().contains("--builder"), "{builder}");
    }
    let hint = BuildError::NotInstalled { builder: Builder::Buildah }.hint().unwrap();
    assert!(hint.contains("apt-get install buildah"), "{hint}");

    let layout = storage.path().join("layout");
    let image = LocalImage { reference: local("api"), manifest_list: false };
    let error = buildah::export_oci_layout(&storage.options(), &image, &layout, &env).unwrap_err();
    assert!(matches!(error, BuildError::NotInstalled { builder: Builder::Buildah }), "{error:?}");
}

/// The docker CLI on this machine has no buildx plugin (and CI machines may have no docker at
/// all): either way `--builder buildx` must say that buildx is not installed, not that the
/// build failed.
#[test]
fn buildx_without_its_plugin_is_not_installed() {
    let storage = Storage::new();
    let context = storage.context(&[("Containerfile", "FROM scratch\n")]);
    let spec = BuildSpec::new("api", &context, None).unwrap();
    let mut env = storage.env();
    env.insert("DOCKER_CONFIG".into(), storage.path().join("docker").display().to_string());
    let backend = Backend::with_defaults(Builder::Buildx, &env);
    let error = build(&backend, &spec, &local("api"), &env).unwrap_err();
    assert!(matches!(error, BuildError::NotInstalled { builder: Builder::Buildx }), "{error:?}");
}

/// Plain HTTP reaches only the registries named insecure. Registries `named` and `other` both
/// speak plain HTTP on 127.0.0.1 and hold the same base image; with only `named` named,
/// `FROM named/…` builds, and `FROM other/…` fails because buildah speaks HTTPS to `other` and
/// does not fall back (`--tls-verify=false`, used before, pulled both over HTTP). The
/// per-build `registries.conf` is gone afterwards.
#[test]
fn plain_http_reaches_only_the_registries_named_insecure() {
    let storage = Storage::new();
    let named = Registry::start(Auth::Anonymous, Deletes::Disabled);
    let other = Registry::start(Auth::Anonymous, Deletes::Disabled);
    let context = storage.context(&[
        ("hello.txt", "hello\n"),
        ("Containerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("from-named", &format!("FROM {}/acme/base:1\nCOPY hello.txt /again\n", named.host())),
        ("from-other", &format!("FROM {}/acme/base:1\nCOPY hello.txt /again\n", other.host())),
    ]);
    let base = BuildSpec::new("base", &context, None).unwrap();
    build(&Backend::Buildah(storage.options()), &base, &local("base"), &storage.env()).unwrap();
    for registry in [&named, &other] {
        let destination = format!("docker://{}/acme/base:1", registry.host());
        storage.buildah(&[
            "push",
            "--tls-verify=false",
            "localhost/dockhand/base:t1",
            &destination,
        ]);
    }
    let tmp = storage.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut env = storage.env();
    env.insert("TMPDIR".into(), tmp.display().to_string());
    let backend = Backend::Buildah(BuildahOptions {
        insecure_registries: vec![named.registry_host()],
        ..storage.options()
    });

    let from_named = BuildSpec::new("app", &context, Some(Path::new("from-named"))).unwrap();
    build(&backend, &from_named, &local("app"), &env).unwrap();

    let from_other = BuildSpec::new("app", &context, Some(Path::new("from-other"))).unwrap();
    let error = build(&backend, &from_other, &local("app"), &env).unwrap_err();
    let BuildError::Failed { source, .. } = &error else { panic!("{error:?}") };
    let CommandError::Failed { command, stderr, .. } = &**source else { panic!("{source:?}") };
    assert!(
        stderr.contains(&format!("https://{}/v2/", other.host()))
            && stderr.contains("server gave HTTP response to HTTPS client"),
        "{stderr}"
    );
    assert!(!command.contains("tls-verify"), "{command}");
    // the environment that matters leads the command line, so that it reproduces the build
    assert!(command.starts_with("CONTAINERS_REGISTRIES_CONF="), "{command}");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the registries.conf is left behind");
}
