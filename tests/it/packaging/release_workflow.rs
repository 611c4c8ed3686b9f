//! The release workflow's images job, with dockhand publishing its own images.
//!
//! The job's `uses: ./` step is read from `.github/workflows/release.yml` and run under the
//! runner emulation ([`super::actions_runner`]) with its own `with:` values and the project
//! file it names (`.github/dockhand.yaml`), against a registry on 127.0.0.1 instead of
//! ghcr.io, on the tag builds of a sequence of versions. What a peer client (skopeo) reads
//! back: each image a two-platform index whose amd64 and arm64 images hold the binary built for
//! that platform, which runs (arm64 under qemu-aarch64-static); the version tags and `latest`
//! as the rules say; the cleanup keeping every release and deleting an old pre-release.
//!
//! The images are built from the static release binaries (the minimal image is FROM scratch +
//! files): `DOCKHAND_BINARY_AMD64` and `DOCKHAND_BINARY_ARM64`, else the musl release builds
//! in the target dir. They exist after `scripts/test-release.sh`, so `scripts/test.sh` runs
//! this test after it (`--ignored`); it never builds them. The builder image's entry is
//! checked but not built here: it needs a Debian base for both platforms and arm64 emulation,
//! which `scripts/test-packaging.sh --builder` sets up to build and publish both images with
//! the same project file.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::actions_runner::Job;
use super::{TARGET, release_mirror, repo_root, run, sha256_hex, text};
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

/// The project file the release builds its images with.
const PROJECT_FILE: &str = ".github/dockhand.yaml";

/// A YAML document as JSON values (the workflow, the project file).
fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The steps of the release workflow's `images` job.
fn images_job_steps() -> Vec<Value> {
    let workflow = yaml(&repo_root().join(".github/workflows/release.yml"));
    workflow["jobs"]["images"]["steps"].as_array().expect("the images job has steps").clone()
}

/// The static release binary for `arch` (`amd64`, `arm64`) the images are built from.
fn release_binary(arch: &str) -> PathBuf {
    let (variable, triple) = match arch {
        "amd64" => ("DOCKHAND_BINARY_AMD64", "x86_64-unknown-linux-musl"),
        _ => ("DOCKHAND_BINARY_ARM64", "aarch64-unknown-linux-musl"),
    };
    let path = std::env::var_os(variable).map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| repo_root().join("target"), PathBuf::from);
            target.join(triple).join("release/dockhand")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "no {arch} release binary at `{}`: run scripts/release.sh (or set {variable})",
        path.display()
    );
    path
}

/// The project file as this test builds it: the release's own, without the builder image
/// (see the module docs), after checking that the builder's entry differs from the minimal
/// image's only in its name and target.
fn project_without_builder() -> Value {
    let mut project = yaml(&repo_root().join(PROJECT_FILE));
    let images = project["images"].as_array_mut().expect("images: is a list");
    let names: Vec<&str> = images.iter().map(|image| image["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dockhand", "dockhand-builder"]);
    let (minimal, builder) = (images[0].clone(), images[1].clone());
    assert_eq!(minimal["target"], "release");
    assert_eq!(builder["target"], "builder");
    assert_eq!(minimal["platforms"], serde_json::json!(["linux/amd64", "linux/arm64"]));
    for key in ["context", "containerfile", "build_args", "platforms"] {
        assert_eq!(minimal[key], builder[key], "the builder image's `{key}`");
    }
    images.truncate(1);
    project
}

/// Runs the step `id` of the images job, a `run:` step, with `env` over its own `env:`
/// values, which must be expressions of the GitHub contexts this test names. Returns what it
/// wrote to `GITHUB_OUTPUT`.
fn run_step(id: &str, env: &[(&str, &str)]) -> String {
    let steps = images_job_steps();
    let step = steps.iter().find(|step| step["id"] == id).expect("the step");
    let declared: Vec<&String> =
        step["env"].as_object().map(|env| env.keys().collect()).unwrap_or_default();
    let given: Vec<&str> = env.iter().map(|(name, _)| *name).collect();
    assert_eq!(declared, given, "the step's env");
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    std::fs::write(&output, "").unwrap();
    let status = run(Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c"])
        .arg(step["run"].as_str().unwrap())
        .envs(env.iter().copied())
        .env("GITHUB_OUTPUT", &output));
    assert!(status.status.success(), "{}", text(&status));
    std::fs::read_to_string(&output).unwrap()
}

/// One tag build of the release: the images job's `uses: ./` step with its own `with:`
/// values, but the local registry as the images repo and its credentials.
struct Release {
    registry: Registry,
    job: Job,
    with: Vec<(String, String)>,
}

impl Release {
    fn new() -> Self {
        let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
        let mut job = Job::new(repo_root(), "");
        let mirror = release_mirror(&job, TARGET, None);

        let dockhand_steps: Vec<Value> =
            images_job_steps().into_iter().filter(|step| step["uses"] == "./").collect();
        assert_eq!(dockhand_steps.len(), 1, "one dockhand step builds, publishes and cleans up");
        let mut with = Vec::new();
        for (name, value) in dockhand_steps[0]["with"].as_object().expect("with:") {
            let value = value.as_str().expect("a string input");
            // the repo step's output (tested on its own) becomes the local registry
            let value = if name == "repo" {
                assert_eq!(value, "${{ steps.repo.outputs.address }}");
                format!("{}/acme", registry.host())
            } else {
                assert!(!value.contains("${{"), "`{name}` is an expression: {value}");
                value.to_owned()
            };
            with.push((name.clone(), value));
        }
        assert!(with.contains(&("command".into(), "run".into())), "{with:?}");
        assert!(with.contains(&("config".into(), PROJECT_FILE.into())), "{with:?}");
        for (name, value) in [
            ("registry", registry.host()),
            ("username", USER.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("insecure-registries", registry.host()),
            ("download-url", mirror),
        ] {
            with.push((name.to_owned(), value));
        }

        // the checkout: the Dockerfile, the project file and the staged build context
        let workspace = job.workspace.clone();
        std::fs::copy(repo_root().join("Dockerfile"), workspace.join("Dockerfile")).unwrap();
        std::fs::create_dir_all(workspace.join(".github")).unwrap();
        std::fs::write(
            workspace.join(PROJECT_FILE),
            serde_json::to_string_pretty(&project_without_builder()).unwrap(),
        )
        .unwrap();
        let staged = run(Command::new(repo_root().join("scripts/image.sh"))
            .args(["context"])
            .arg(workspace.join("dist/image"))
            .env("DOCKHAND_BINARY_AMD64", release_binary("amd64"))
            .env("DOCKHAND_BINARY_ARM64", release_binary("arm64")));
        assert!(staged.status.success(), "{}", text(&staged));

        // buildah's storage of the test's own
        let conf = crate::support::peers::write_storage_conf(job.root());
        job.set_env("CONTAINERS_STORAGE_CONF", &conf.display().to_string());
        job.set_env("BUILDAH_ISOLATION", "chroot");
        job.set_env("STORAGE_DRIVER", "vfs");
        Self { registry, job, with }
    }

    /// Runs the step on the tag build of `tag`, made at `epoch` (the images' time); returns the
    /// cleanup's deleted tags.
    fn tag_build(&mut self, tag: &str, epoch: u64) -> Vec<String> {
        for (name, value) in [
            ("GITHUB_REF", format!("refs/tags/{tag}")),
            ("GITHUB_REF_NAME", tag.to_owned()),
            ("GITHUB_REF_TYPE", "tag".to_owned()),
            ("SOURCE_DATE_EPOCH", epoch.to_string()),
        ] {
            self.job.set_env(name, &value);
        }
        let with: Vec<(&str, &str)> =
            self.with.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        let run = self.job.run_action(&with);
        assert!(run.success, "{tag}: {run:#?}");
        let json: Value = serde_json::from_str(&run.outputs["json"]).unwrap();
        json["deleted"]
            .as_array()
            .map(|deleted| {
                deleted.iter().map(|item| item["tag"].as_str().unwrap_or("").to_owned()).collect()
            })
            .unwrap_or_default()
    }

    fn tags(&self) -> Vec<String> {
        crate::support::peers::skopeo_tags(&self.registry, "acme/dockhand")
    }

    fn digest(&self, tag: &str) -> String {
        crate::support::peers::skopeo_digest(&self.registry, &format!("acme/dockhand:{tag}"))
            .to_string()
    }

    /// The image of `tag` for `arch`, copied with skopeo `--override-arch` into `dir`: its
    /// config and its root filesystem.
    fn pull(&self, tag: &str, arch: &str, dir: &Path) -> (Value, PathBuf) {
        let layout = dir.join(format!("{tag}-{arch}"));
        let copied = run(Command::new("skopeo")
            .args(["--override-os", "linux", "--override-arch", arch, "copy", "--quiet"])
            .arg("--src-tls-verify=false")
            .arg("--src-authfile")
            .arg(self.registry.auth_file())
            .arg(format!("docker://{}/acme/dockhand:{tag}", self.registry.host()))
            .arg(format!("dir:{}", layout.display())));
        assert!(copied.status.success(), "{}", text(&copied));
        let blob =
            |digest: &Value| layout.join(digest.as_str().unwrap().trim_start_matches("sha256:"));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(layout.join("manifest.json")).unwrap()).unwrap();
        let config: Value =
            serde_json::from_slice(&std::fs::read(blob(&manifest["config"]["digest"])).unwrap())
                .unwrap();
        let rootfs = layout.join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        for layer in manifest["layers"].as_array().unwrap() {
            let unpacked = run(Command::new("tar")
                .arg("-xf")
                .arg(blob(&layer["digest"]))
                .arg("-C")
                .arg(&rootfs));
            assert!(unpacked.status.success(), "{}", text(&unpacked));
        }
        (config, rootfs)
    }
}

#[test]
fn the_repo_step_names_the_owner_in_lowercase() {
    let output = run_step("repo", &[("OWNER", "Acme-Corp")]);
    assert_eq!(output, "address=ghcr.io/acme-corp\n");
}

#[test]
#[ignore = "needs both static release binaries: scripts/test.sh runs it after scripts/test-release.sh"]
fn the_release_publishes_both_platforms_with_dockhands_own_action() {
    let mut release = Release::new();
    let pulled = tempfile::tempdir().unwrap();

    // a stable release: every version tag and `latest` name one two-platform index
    assert_eq!(release.tag_build("v1.2.3", 1_700_000_000), Vec::<String>::new());
    assert_eq!(release.tags(), ["1", "1.2", "1.2.3", "latest"]);
    let released = release.digest("1.2.3");
    for tag in ["1", "1.2", "latest"] {
        assert_eq!(release.digest(tag), released, "`{tag}` names the release");
    }
    let raw = crate::support::peers::skopeo_raw(&release.registry, "acme/dockhand:1.2.3");
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| format!("{}/{}", entry["platform"]["os"], entry["platform"]["architecture"]))
        .map(|platform| platform.replace('"', ""))
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // each platform's image holds the binary built for it, and it runs
    let expected_version = run(Command::new(release_binary("amd64")).arg("--version"));
    for (arch, machine, runner) in
        [("amd64", "x86-64", None), ("arm64", "ARM aarch64", Some("qemu-aarch64-static"))]
    {
        let (config, rootfs) = release.pull("1.2.3", arch, pulled.path());
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["org.opencontainers.image.version"], "1.2.3", "{arch}");
        assert_eq!(
            labels["org.opencontainers.image.revision"],
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(config["config"]["User"], "65532:65532");
        let binary = rootfs.join("usr/local/bin/dockhand");
        assert_eq!(sha256_hex(&binary), sha256_hex(&release_binary(arch)), "{arch}");
        let described = run(Command::new("file").arg("-b").arg(&binary));
        let described = String::from_utf8_lossy(&described.stdout).into_owned();
        assert!(described.contains(&format!(", {machine},")), "{arch}: {described}");
        assert!(!described.contains("interpreter"), "{arch} is static: {described}");
        let mut command = match runner {
            Some(runner) => {
                let mut command = Command::new(runner);
                command.arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let ran = run(command.arg("--version"));
        assert!(ran.status.success(), "{arch}: {}", text(&ran));
        assert_eq!(ran.stdout, expected_version.stdout, "{arch}");
        assert!(rootfs.join("etc/ssl/certs/ca-certificates.crt").is_file());
    }

    // pre-releases: their own tag only; `latest`, `1` and `1.2` stay on the release
    for (n, epoch) in (1..=5).zip((1_700_000_100..).step_by(100)) {
        assert_eq!(release.tag_build(&format!("v1.3.0-rc.{n}"), epoch), Vec::<String>::new());
        assert_eq!(release.digest("latest"), released, "rc.{n} does not move latest");
        assert_eq!(release.digest("1"), released);
    }
    let candidate = release.digest("1.3.0-rc.5");
    assert_ne!(candidate, released);

    // the next release takes `latest` and `1`; the cleanup keeps every release and the newest
    // five images, and deletes the oldest pre-release, whose release now exists
    let deleted = release.tag_build("v1.3.0", 1_700_001_000);
    assert_eq!(deleted, ["1.3.0-rc.1"]);
    let next = release.digest("1.3.0");
    assert_eq!(release.digest("latest"), next);
    assert_eq!(release.digest("1"), next);
    assert_eq!(release.digest("1.3"), next);
    assert_eq!(release.digest("1.2"), released);
    assert_eq!(release.digest("1.2.3"), released);
    assert_eq!(
        release.tags(),
        [
            "1",
            "1.2",
            "1.2.3",
            "1.3",
            "1.3.0",
            "1.3.0-rc.2",
            "1.3.0-rc.3",
            "1.3.0-rc.4",
            "1.3.0-rc.5",
            "latest"
        ]
    );
}
