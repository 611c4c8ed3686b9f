//! Other clients as oracles and seeders: skopeo reads back what dockhand wrote, buildah builds
//! and pushes real images (`docs/testing.md` §6).
//!
//! buildah keeps its storage under the test's temp dir (`--root`, `--runroot`, vfs driver),
//! never in the system store. Credentials go through an auth file, never argv.

use std::path::{Path, PathBuf};
use std::process::Command;

use dockhand::reference::Digest;

use super::Registry;

/// Runs `command` to success (panicking with its stderr otherwise) and returns its stdout.
pub fn run(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn skopeo(registry: &Registry, args: &[&str]) -> Vec<u8> {
    let auth_file = registry.auth_file();
    let mut command = Command::new("skopeo");
    command.args(args).arg("--tls-verify=false").arg("--authfile").arg(&auth_file);
    run(&mut command)
}

/// The tags skopeo lists for `path`, sorted.
pub fn skopeo_tags(registry: &Registry, path: &str) -> Vec<String> {
    let out = skopeo(registry, &["list-tags", &format!("docker://{}/{path}", registry.host())]);
    let listed: serde_json::Value = serde_json::from_slice(&out).expect("list-tags JSON");
    super::sorted_strings(&listed["Tags"])
}

/// The raw manifest skopeo reads for `path:tag` (or `path@digest`).
pub fn skopeo_raw(registry: &Registry, reference: &str) -> Vec<u8> {
    skopeo(registry, &["inspect", "--raw", &format!("docker://{}/{reference}", registry.host())])
}

/// The digest of the raw manifest skopeo reads for `path:tag` (or `path@digest`).
pub fn skopeo_digest(registry: &Registry, reference: &str) -> Digest {
    Digest::sha256_of(&skopeo_raw(registry, reference))
}

/// The OCI image-spec JSON schemas, from Debian's `golang-github-opencontainers-image-spec-dev`
/// (scripts/setup.sh installs it).
const IMAGE_SPEC_SCHEMAS: &str =
    "/usr/share/gocode/src/github.com/opencontainers/image-spec/schema";

/// Checks `document` against the image-spec schema `schema` (e.g. `image-manifest-schema.json`)
/// with check-jsonschema from the repository's `.venv`, resolving the schemas' references
/// locally. Returns the validator's report when it fails.
pub fn image_spec_check(schema: &str, document: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("document.json");
    std::fs::write(&file, document).expect("write the document");
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/check-jsonschema");
    let output = Command::new(&validator)
        .arg("--base-uri")
        .arg(format!("file://{IMAGE_SPEC_SCHEMAS}/"))
        .arg("--schemafile")
        .arg(Path::new(IMAGE_SPEC_SCHEMAS).join(schema))
        .arg(&file)
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", validator.display()));
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

/// `true` if and only if skopeo can read the manifest of `reference`.
pub fn skopeo_resolves(registry: &Registry, reference: &str) -> bool {
    let auth_file = registry.auth_file();
    Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(&auth_file)
        .arg(format!("docker://{}/{reference}", registry.host()))
        .output()
        .is_ok_and(|output| output.status.success())
}

/// buildah with its storage in a temp dir.
pub struct Buildah {
    root: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Self {
        let root = dir.join("buildah");
        std::fs::create_dir_all(&root).expect("buildah dir");
        Self { root }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("buildah");
        command
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .arg("--storage-driver")
            .arg("vfs");
        command
    }

    fn text(&self, args: &[&str]) -> String {
        let mut command = self.command();
        command.args(args);
        String::from_utf8_lossy(&run(&mut command)).trim().to_owned()
    }

    /// Commits `FROM scratch` + one file holding `content` as `localhost/<name>`, for `arch`.
    pub fn image(&self, name: &str, content: &str, arch: &str) {
        let file = self.root.join(format!("file-{}", fastrand::u64(..)));
        std::fs::write(&file, content).expect("write file");
        let container = self.text(&["from", "scratch"]);
        self.text(&["copy", &container, &file.to_string_lossy(), "/content"]);
        self.text(&["config", "--arch", arch, "--os", "linux", &container]);
        self.text(&["commit", "-q", &container, &format!("localhost/{name}")]);
        self.text(&["rm", &container]);
    }

    /// Pushes `localhost/<name>` to `path:tag` on the registry, as OCI or Docker schema 2.
    pub fn push(&self, registry: &Registry, name: &str, destination: &str, docker_format: bool) {
        let auth_file = registry.auth_file();
        let mut command = self.command();
        command.args(["push", "-q", "--tls-verify=false", "--authfile"]).arg(&auth_file);
        if docker_format {
            command.args(["--format", "v2s2"]);
        }
        command
            .arg(format!("localhost/{name}"))
            .arg(format!("docker://{}/{destination}", registry.host()));
        run(&mut command);
    }

    /// Builds an index of `localhost/<child>` images and pushes it with its children.
    pub fn push_index(
        &self,
        registry: &Registry,
        name: &str,
        children: &[&str],
        destination: &str,
    ) {
        self.text(&["manifest", "create", &format!("localhost/{name}")]);
        for child in children {
            self.text(&[
                "manifest",
                "add",
                &format!("localhost/{name}"),
                &format!("localhost/{child}"),
            ]);
        }
        let auth_file = registry.auth_file();
        let mut command = self.command();
        command
            .args(["manifest", "push", "-q", "--all", "--tls-verify=false", "--authfile"])
            .arg(&auth_file);
        command
            .arg(format!("localhost/{name}"))
            .arg(format!("docker://{}/{destination}", registry.host()));
        run(&mut command);
    }
}

/// Writes `DIR/storage.conf`, a containers-storage configuration with the vfs driver and its
/// root under `DIR/storage`, for dockhand's own buildah runs (`CONTAINERS_STORAGE_CONF`), and
/// returns its path.
pub fn write_storage_conf(dir: &Path) -> PathBuf {
    let storage = dir.join("storage");
    let conf = dir.join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}/root\"\nrunroot = \"{}/run\"\n",
            storage.display(),
            storage.display()
        ),
    )
    .expect("write storage.conf");
    conf
}

/// Commits `localhost/dh/busybox:base` (Debian's static busybox, its applets linked into
/// `/bin`) with `buildah`, a function running buildah on the test's storage, so that a
/// Containerfile can have `RUN` steps (which need chroot isolation here).
pub fn commit_busybox_base(buildah: impl Fn(&[&str]) -> String) {
    let container = buildah(&["from", "scratch"]);
    let container = container.trim();
    buildah(&["copy", container, "/bin/busybox", "/bin/busybox"]);
    buildah(&[
        "run",
        "--isolation",
        "chroot",
        container,
        "--",
        "/bin/busybox",
        "--install",
        "-s",
        "/bin",
    ]);
    buildah(&["config", "--env", "PATH=/bin", container]);
    buildah(&["commit", "-q", container, "localhost/dh/busybox:base"]);
    buildah(&["rm", container]);
}
