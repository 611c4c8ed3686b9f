//! Images built on each other (`from_image:`) and builds in parallel (`--jobs`), end to end: the
//! dockhand executable runs real buildah (vfs storage and chroot isolation in the test's temp
//! dir) on projects of several images, and buildah itself, as a peer, reads what was built.
//! The docker backend has no daemon here: its side (the base passed as the daemon's local tag)
//! is covered at argv level by the unit tests in `src/builder/mod.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::binary::{Run, dockhand};
use crate::support::peers::{commit_busybox_base, run, skopeo_raw, write_storage_conf};
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

const SHA: &str = "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A project in a temp dir with storage of its own (holding `localhost/dh/busybox:base`) and
/// one build context per image, `dockhand.yaml` listing them.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// `images` are (name, `dockhand.yaml` lines of the image after `name:`, Containerfile).
    fn new(images: &[(&str, &str, &str)], busybox: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut file = String::from("images:\n");
        for (name, keys, containerfile) in images {
            let context = dir.path().join(name);
            std::fs::create_dir(&context).unwrap();
            std::fs::write(context.join("Containerfile"), containerfile).unwrap();
            writeln!(file, "  - name: {name}\n    context: {name}").unwrap();
            for line in keys.lines().filter(|line| !line.is_empty()) {
                writeln!(file, "    {line}").unwrap();
            }
        }
        std::fs::write(dir.path().join("dockhand.yaml"), file).unwrap();
        write_storage_conf(dir.path());
        let project = Self { dir };
        if busybox {
            commit_busybox_base(|args| project.buildah(args));
        }
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn context(&self, image: &str) -> PathBuf {
        self.path().join(image)
    }

    /// `buildah ARGS` on the project's storage, as a peer.
    fn buildah(&self, args: &[&str]) -> String {
        let stdout = run(Command::new("buildah")
            .args(args)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", self.path())
            .env("CONTAINERS_STORAGE_CONF", self.path().join("storage.conf"))
            .env("STORAGE_DRIVER", "vfs"));
        String::from_utf8(stdout).unwrap()
    }

    /// `dockhand ARGS` in a generic CI job on the project's storage, `PATH` first looking in
    /// `path_first` when given.
    fn dockhand(&self, args: &[&str], env: &[(&str, &str)], path_first: Option<&Path>) -> Run {
        let path = match path_first {
            Some(dir) => format!("{}:{SYSTEM_PATH}", dir.display()),
            None => SYSTEM_PATH.to_owned(),
        };
        dockhand(self.path(), args)
            .env("PATH", &path)
            .envs(env.iter().copied())
            .env("CONTAINERS_STORAGE_CONF", &self.path().join("storage.conf").display().to_string())
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs")
            .env("DOCKHAND_SHA", SHA)
            .env("DOCKHAND_BRANCH", "main")
            .run()
    }

    /// The local name dockhand gives `image`.
    fn local(image: &str) -> String {
        format!("localhost/dockhand/{image}:{}", &SHA[..12])
    }

    /// `cat PATH` in a container of `reference`.
    fn cat(&self, reference: &str, path: &str) -> String {
        let container = self.buildah(&["from", reference]);
        let text =
            self.buildah(&["run", "--isolation", "chroot", container.trim(), "--", "cat", path]);
        self.buildah(&["rm", container.trim()]);
        text
    }

    /// The image's buildah JSON (`buildah inspect --type image`).
    fn inspect(&self, reference: &str) -> Value {
        serde_json::from_str(&self.buildah(&["inspect", "--type", "image", reference])).unwrap()
    }

    /// The names in the storage (`REPOSITORY:TAG`).
    fn names(&self) -> Vec<String> {
        let images: Value =
            serde_json::from_str(&self.buildah(&["images", "--json"])).unwrap_or(Value::Null);
        images
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|image| image["names"].as_array().cloned().unwrap_or_default())
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    }
}

/// The layers (diff ids) of a buildah JSON.
fn layers(image: &Value) -> Vec<String> {
    image["OCIv1"]["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// The index of the first line of `stderr` containing `text`.
#[track_caller]
fn line_of(stderr: &str, text: &str) -> usize {
    stderr
        .lines()
        .position(|line| line.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?}:\n{stderr}"))
}

const FROM_BASE: &str = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n";

#[test]
fn an_image_from_another_is_built_after_it_from_the_image_this_run_built() {
    // `app` comes first in the file and is built second
    let project = Project::new(
        &[
            ("app", "from_image: base", &format!("{FROM_BASE}RUN cat /made-by > /seen\n")),
            ("base", "", "FROM localhost/dh/busybox:base\nRUN echo fresh-$((6*7)) > /made-by\n"),
        ],
        true,
    );
    // an older image under the very name the base gets, as an earlier run would leave it
    let container = project.buildah(&["from", "localhost/dh/busybox:base"]);
    let container = container.trim();
    project.buildah(&[
        "run",
        "--isolation",
        "chroot",
        container,
        "--",
        "sh",
        "-c",
        "echo stale > /made-by",
    ]);
    project.buildah(&["commit", "-q", container, &Project::local("base")]);
    project.buildah(&["rm", container]);
    let stale = project.inspect(&Project::local("base"));

    let run = project.dockhand(&["build", "--output", "json"], &[], None);
    run.assert_code(0);
    assert!(
        run.stderr.contains("build order (each image after its `from_image:`): base, app"),
        "{}",
        run.stderr
    );
    assert!(
        line_of(&run.stderr, "== dockhand: build base")
            < line_of(&run.stderr, "== dockhand: build app"),
        "{}",
        run.stderr
    );
    // the report keeps the file's order
    let built: Vec<String> = run.json()["built"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["image"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(built, ["app", "base"]);

    // `app` saw what this run's `base` wrote, not the older image's
    assert_eq!(project.cat(&Project::local("app"), "/seen"), "fresh-42\n");
    let base = project.inspect(&Project::local("base"));
    let app = project.inspect(&Project::local("app"));
    assert_ne!(layers(&base), layers(&stale), "the base was rebuilt");
    let base_layers = layers(&base);
    assert_eq!(&layers(&app)[..base_layers.len()], &base_layers[..], "app is built on base");
    assert_eq!(layers(&app).len(), base_layers.len() + 1);
    // buildah records the base it built from: this run's `base`, by its digest
    let manifest: Value = serde_json::from_str(app["Manifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"], base["FromImageDigest"],
        "{manifest}"
    );
    assert_ne!(base["FromImageDigest"], stale["FromImageDigest"]);
}

#[test]
fn a_cycle_or_an_unknown_base_is_refused_before_buildah_runs() {
    let project = Project::new(
        &[
            ("a", "from_image: c", &format!("{FROM_BASE}RUN true\n")),
            ("b", "from_image: a", &format!("{FROM_BASE}RUN true\n")),
            ("c", "from_image: b", &format!("{FROM_BASE}RUN true\n")),
        ],
        false,
    );
    // a buildah that records every run, ahead of the real one on PATH
    let bin = project.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let marker = project.path().join("buildah-ran");
    let wrapper = bin.join("buildah");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\nexec /usr/bin/buildah \"$@\"\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();

    let cycle = project.dockhand(&["build"], &[], Some(&bin));
    cycle.assert_code(1);
    assert!(
        cycle
            .stderr
            .contains("error: The images' `from_image:` form a cycle: `a` → `c` → `b` → `a`"),
        "{}",
        cycle.stderr
    );
    assert!(cycle.stderr.contains("hint: an image can only be built from one built before it"));

    let run_too = project.dockhand(&["run", "--repo", "127.0.0.1:9/acme"], &[], Some(&bin));
    run_too.assert_code(1);

    std::fs::write(
        project.path().join("dockhand.yaml"),
        "images:\n  - {name: a, context: a, from_image: nope}\n  - {name: b, context: b}\n",
    )
    .unwrap();
    let unknown = project.dockhand(&["build"], &[], Some(&bin));
    unknown.assert_code(1);
    assert!(
        unknown.stderr.contains(
            "error: Image `a` is built from `nope` (`from_image:`), which is not an image of the project (its images: a, b)"
        ),
        "{}",
        unknown.stderr
    );
    for jobs in ["0", "two", "1.5"] {
        let refused = project.dockhand(&["build", "--jobs", jobs], &[], Some(&bin));
        refused.assert_code(1);
        assert!(
            refused.stderr.contains(&format!("error: Invalid number of build jobs `{jobs}`")),
            "{}",
            refused.stderr
        );
    }
    assert!(!marker.exists(), "buildah ran: {}", std::fs::read_to_string(&marker).unwrap());
}

#[test]
fn independent_images_with_two_jobs_build_at_the_same_time_their_lines_kept_apart() {
    // each prints a start line, waits, prints an end line: with both builds running at once,
    // both start lines come before either end line, whatever the machine's speed (the lines
    // are computed, so the `STEP` line echoing the command does not contain them)
    let step = |name: &str| {
        format!(
            "FROM localhost/dh/busybox:base\nRUN echo start-{name}-$((6*7)) && sleep 6 && echo end-{name}-$((6*7))\n"
        )
    };
    let project = Project::new(&[("one", "", &step("one")), ("two", "", &step("two"))], true);
    let run = project.dockhand(&["build"], &[("DOCKHAND_JOBS", "2")], None);
    run.assert_code(0);
    let stderr = &run.stderr;
    let starts = [line_of(stderr, "start-one-42"), line_of(stderr, "start-two-42")];
    let ends = [line_of(stderr, "end-one-42"), line_of(stderr, "end-two-42")];
    assert!(starts.iter().max() < ends.iter().min(), "both builds ran at the same time: {stderr}");
    // every line of a build carries its image's name
    for (name, marker) in [("one", "-one-42"), ("two", "-two-42")] {
        let lines: Vec<&str> = stderr.lines().filter(|line| line.contains(marker)).collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(lines.iter().all(|line| line.starts_with(&format!("[{name}] "))), "{stderr}");
    }
    assert!(stderr.contains("== dockhand: build 2 images, up to 2 at a time"), "{stderr}");
    assert!(stderr.contains("building `one` with buildah"), "{stderr}");
    assert!(stderr.contains(&format!("built `two` as {}", Project::local("two"))), "{stderr}");
    for name in ["one", "two"] {
        assert!(project.names().contains(&Project::local(name)), "{name} built");
    }
}

#[test]
fn a_failed_base_leaves_its_dependents_unbuilt_while_a_running_build_finishes() {
    let project = Project::new(
        &[
            (
                "base",
                "",
                "FROM localhost/dh/busybox:base\nRUN echo base-fails-$((6*7)) && exit 3\n",
            ),
            ("app", "from_image: base", &format!("{FROM_BASE}RUN true\n")),
            (
                "other",
                "",
                "FROM localhost/dh/busybox:base\nRUN sleep 4 && echo other-done-$((6*7))\n",
            ),
            // names a project image without `from_image:` (a warning), and never starts
            ("later", "", "FROM base\nRUN true\n"),
        ],
        true,
    );
    let run = project.dockhand(&["build", "--jobs", "2"], &[], None);
    run.assert_code(2);
    let stderr = &run.stderr;
    assert!(stderr.contains("error: Building image `base` with buildah failed"), "{stderr}");
    assert!(stderr.contains("[base] base-fails-42"), "{stderr}");
    assert!(stderr.contains("[base] build failed"), "{stderr}");
    assert!(
        stderr.contains(
            "/later/Containerfile` names `FROM base`, which is not this run's build of the project image `base`: to build from it, give `later` the key `from_image: base`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: `app` was not built: it is built from `base`, whose build failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: `later` was not built: no build starts after one failed"),
        "{stderr}"
    );
    // `other` was running when `base` failed: it finished
    assert!(stderr.contains("[other] other-done-42"), "{stderr}");
    let names = project.names();
    assert!(names.contains(&Project::local("other")), "{names:?}");
    for image in ["base", "app", "later"] {
        assert!(!names.contains(&Project::local(image)), "{image}: {names:?}");
    }
    assert!(!stderr.contains("building `app`"), "{stderr}");
    // the failure's report comes last
    let last_error = stderr.lines().rfind(|line| line.starts_with("error: ")).unwrap();
    assert!(last_error.contains("Building image `base`"), "{stderr}");
}

#[test]
fn each_platform_of_a_dependent_image_is_built_from_that_platform_of_its_base() {
    // no `RUN` (a foreign platform's would need qemu): the base copies a file of its platform
    let project = Project::new(
        &[
            ("base", "", "FROM scratch\nARG TARGETARCH\nCOPY ${TARGETARCH}.txt /arch\n"),
            ("app", "from_image: base", &format!("{FROM_BASE}COPY app.txt /app\n")),
        ],
        false,
    );
    std::fs::write(project.context("base").join("amd64.txt"), "amd64\n").unwrap();
    std::fs::write(project.context("base").join("arm64.txt"), "arm64\n").unwrap();
    std::fs::write(project.context("app").join("app.txt"), "app\n").unwrap();
    let run = project.dockhand(&["build", "--platform", "linux/amd64,linux/arm64"], &[], None);
    run.assert_code(0);

    // each platform's image, read from OCI layouts buildah writes as a peer
    let per_platform = |image: &str| -> Vec<(String, Vec<String>)> {
        let layout = project.path().join(format!("layout-{image}"));
        project.buildah(&[
            "manifest",
            "push",
            "--all",
            "-q",
            &Project::local(image),
            &format!("oci:{}", layout.display()),
        ]);
        let blob = |digest: &str| -> Value {
            let path = layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let list = blob(index["manifests"][0]["digest"].as_str().unwrap());
        let mut found: Vec<(String, Vec<String>)> = list["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|child| {
                let manifest = blob(child["digest"].as_str().unwrap());
                let config = blob(manifest["config"]["digest"].as_str().unwrap());
                let layers = manifest["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|layer| layer["digest"].as_str().unwrap().to_owned())
                    .collect();
                (config["architecture"].as_str().unwrap().to_owned(), layers)
            })
            .collect();
        found.sort();
        found
    };
    let base = per_platform("base");
    let app = per_platform("app");
    assert_eq!(base.iter().map(|(arch, _)| arch.as_str()).collect::<Vec<_>>(), ["amd64", "arm64"]);
    assert_ne!(base[0].1, base[1].1, "the base differs per platform");
    for ((arch, base_layers), (app_arch, app_layers)) in base.iter().zip(&app) {
        assert_eq!(arch, app_arch);
        assert_eq!(&app_layers[..base_layers.len()], &base_layers[..], "{arch}");
        assert_eq!(app_layers.len(), base_layers.len() + 1, "{arch}");
    }

    // a dependent image for a platform its base is not built for is refused before building
    std::fs::write(
        project.path().join("dockhand.yaml"),
        "images:\n  - {name: base, context: base, platforms: [linux/amd64]}\n  \
         - {name: app, context: app, from_image: base, platforms: [linux/amd64, linux/arm64]}\n",
    )
    .unwrap();
    let refused = project.dockhand(&["build"], &[], None);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains(
            "error: Image `app` is built for `linux/arm64`, which its base `base` is not built for"
        ),
        "{}",
        refused.stderr
    );
}

#[test]
fn run_publishes_a_dependent_image_whose_layers_begin_with_its_base() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new(
        &[
            ("base", "", "FROM scratch\nCOPY base.txt /base.txt\n"),
            ("app", "from_image: base", &format!("{FROM_BASE}COPY app.txt /app.txt\n")),
        ],
        false,
    );
    std::fs::write(project.context("base").join("base.txt"), "base\n").unwrap();
    std::fs::write(project.context("app").join("app.txt"), "app\n").unwrap();
    let env = [
        ("DOCKHAND_INSECURE_REGISTRIES", registry.insecure_hosts()),
        ("DOCKHAND_REGISTRY_USERNAME", USER.to_owned()),
        ("DOCKHAND_REGISTRY_PASSWORD", PASSWORD.to_owned()),
        ("DOCKHAND_REPO", format!("{}/acme/app", registry.host())),
        ("TMPDIR", project.path().display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let run = project.dockhand(
        &["run", "--jobs", "2", "--tag", "{short_sha}", "--dry-run", "--output", "json"],
        &env,
        None,
    );
    run.assert_code(0);
    let tag = &SHA[..8];
    let manifest = |image: &str| -> Value {
        serde_json::from_slice(&skopeo_raw(&registry, &format!("acme/app/{image}:{tag}"))).unwrap()
    };
    let layers = |manifest: &Value| -> Vec<String> {
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (base, app) = (layers(&manifest("base")), layers(&manifest("app")));
    assert_eq!(base.len(), 1, "{base:?}");
    assert_eq!(app.len(), 2, "{app:?}");
    assert_eq!(app[0], base[0], "the pushed app is built on the pushed base");
    let pushed: Vec<String> = run.json()["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["image"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pushed, ["base", "app"], "publish keeps the file's order");
}
