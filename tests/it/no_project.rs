//! Everyday use without a project file: a directory with only a `Dockerfile`, run as a generic
//! CI job, is one nameless image at the images repo itself (`REPO:TAG`); `cleanup --repo`
//! without a project file cleans that whole repository; `--delete-tag` deletes exactly the
//! named tags. Real buildah builds, a real registry, skopeo as the judge.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::binary::{Dockhand, Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_tags};
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry, sorted_strings};

const SHAS: [&str; 3] = [
    "1111111111111111111111111111111111111111",
    "2222222222222222222222222222222222222222",
    "3333333333333333333333333333333333333333",
];

/// A directory holding only a `Dockerfile` and the file it copies (plus buildah's storage
/// configuration, outside the build context's use).
fn dockerfile_only() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY file.txt /file.txt\n")
        .unwrap();
    std::fs::write(dir.path().join("file.txt"), "first build").unwrap();
    let storage = dir.path().join("storage");
    std::fs::write(
        dir.path().join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}/root\"\nrunroot = \"{}/run\"\n",
            storage.display(),
            storage.display()
        ),
    )
    .unwrap();
    dir
}

/// `dockhand ARGS` in `dir` as a generic CI job: of the job's facts only `DOCKHAND_REPO`,
/// `DOCKHAND_SHA` and `DOCKHAND_REF_NAME` are set (plus the registry login and buildah's
/// storage, which a runner provides).
fn job(dir: &Path, registry: &Registry, sha: &str, args: &[&str]) -> Dockhand {
    dockhand(dir, args)
        .env("TMPDIR", &dir.display().to_string())
        .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
        .env("DOCKHAND_REGISTRY_USERNAME", USER)
        .env("DOCKHAND_REGISTRY_PASSWORD", PASSWORD)
        .env("DOCKHAND_REPO", &format!("{}/acme/app", registry.host()))
        .env("DOCKHAND_SHA", sha)
        .env("DOCKHAND_REF_NAME", "main")
        .env("CONTAINERS_STORAGE_CONF", &dir.join("storage.conf").display().to_string())
        .env("BUILDAH_ISOLATION", "chroot")
        .env("STORAGE_DRIVER", "vfs")
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr))
}

fn tags_of(items: &Value) -> Vec<String> {
    let names: Vec<Value> =
        items.as_array().unwrap().iter().map(|item| item["tag"].clone()).collect();
    sorted_strings(&Value::Array(names))
}

/// The content of `/file.txt` in `reference`, read back by skopeo (`dir:` copy, then the layer
/// unpacked by tar).
fn file_in_image(registry: &Registry, reference: &str, scratch: &Path) -> String {
    let copy = scratch.join(format!("copy-{}", fastrand::u64(..)));
    let status = Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", "--src-authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/{reference}", registry.host()))
        .arg(format!("dir:{}", copy.display()))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copy {reference}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(copy.join("manifest.json")).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let unpacked = copy.join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(copy.join(layer.strip_prefix("sha256:").unwrap()))
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success(), "tar -xf the layer of {reference}");
    std::fs::read_to_string(unpacked.join("file.txt")).unwrap()
}

#[test]
fn a_dockerfile_alone_is_built_pushed_and_cleaned_without_a_project_file() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let dir = dockerfile_only();
    let repo = format!("{}/acme/app", registry.host());

    // `images`: the references are the images repo itself
    let run = job(dir.path(), &registry, SHAS[0], &["images"]).run();
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), format!("{repo}:{}\n{repo}:main", SHAS[0]), "{}", run.stderr);

    // `run` at three commits, each with other content
    let mut digests = Vec::new();
    for (index, sha) in SHAS.iter().enumerate() {
        std::fs::write(dir.path().join("file.txt"), format!("build {index}")).unwrap();
        let run = job(dir.path(), &registry, sha, &["run", "--output", "json"]).run();
        run.assert_code(0).assert_not_printed(PASSWORD);
        // checked before the build and rendered again for the publish, reported once
        let skipped = run.stderr.matches("tag rule `{semver}` skipped").count();
        assert_eq!(skipped, 1, "{}", run.stderr);
        let pushed = json(&run)["pushed"].clone();
        let references: Vec<&str> =
            pushed.as_array().unwrap().iter().map(|p| p["reference"].as_str().unwrap()).collect();
        assert_eq!(references, [format!("{repo}:{sha}"), format!("{repo}:main")], "{}", run.stdout);
        let digest = pushed[0]["digest"].as_str().unwrap().to_owned();
        assert_eq!(skopeo_digest(&registry, &format!("acme/app:{sha}")).as_str(), digest);
        assert_eq!(
            file_in_image(&registry, &format!("acme/app:{sha}"), dir.path()),
            format!("build {index}")
        );
        digests.push(digest);
    }
    let mut all: Vec<String> = SHAS.iter().map(ToString::to_string).collect();
    all.push("main".to_owned());
    assert_eq!(skopeo_tags(&registry, "acme/app"), all);
    assert_eq!(skopeo_digest(&registry, "acme/app:main").as_str(), digests[2]);

    // `cleanup --repo` without a project file: every tag of the repository, decided once
    std::fs::remove_file(dir.path().join("Dockerfile")).unwrap();
    let run = job(
        dir.path(),
        &registry,
        SHAS[2],
        &["cleanup", "--repo", &repo, "--keep-last", "1", "--dry-run", "--output", "json"],
    )
    .run();
    run.assert_code(0);
    let document = json(&run);
    let kept = tags_of(&document["kept"]);
    let would_delete = tags_of(&document["would_delete"]);
    assert_eq!(kept, [SHAS[2], "main"], "{}", run.stdout);
    assert_eq!(would_delete, [SHAS[0], SHAS[1]], "{}", run.stdout);
    let mut decided = [kept, would_delete].concat();
    decided.sort();
    assert_eq!(decided, all, "every tag exactly once");
    assert_eq!(skopeo_tags(&registry, "acme/app"), all, "a dry run deletes nothing");

    // `--delete-tag`: exactly that tag goes; its twin `main` on the same digest stays; a
    // missing tag is reported, not an error
    let run = job(
        dir.path(),
        &registry,
        SHAS[2],
        &[
            "cleanup",
            "--repo",
            &repo,
            "--delete-tag",
            SHAS[2],
            "--delete-tag",
            "no-such-tag",
            "--output",
            "json",
        ],
    )
    .run();
    run.assert_code(0);
    let document = json(&run);
    assert_eq!(tags_of(&document["deleted"]), [SHAS[2]], "{}", run.stdout);
    assert_eq!(document["not_found"], serde_json::json!(["no-such-tag"]), "{}", run.stdout);
    assert!(run.stderr.contains("`no-such-tag` named by --delete-tag"), "{}", run.stderr);
    let mut left: Vec<String> = SHAS[..2].iter().map(ToString::to_string).collect();
    left.push("main".to_owned());
    assert_eq!(skopeo_tags(&registry, "acme/app"), left);
    assert_eq!(skopeo_digest(&registry, "acme/app:main").as_str(), digests[2], "the twin survives");

    // the text result names the missing tag too
    let run = job(
        dir.path(),
        &registry,
        SHAS[2],
        &["cleanup", "--repo", &repo, "--delete-tag", "gone-too", "--dry-run"],
    )
    .run();
    run.assert_code(0);
    assert!(run.stdout.contains("not found (named by --delete-tag): `gone-too`"), "{}", run.stdout);
    assert!(run.stdout.contains("0 to delete (dry run)"), "{}", run.stdout);
    assert_eq!(skopeo_tags(&registry, "acme/app"), left);
}

#[test]
fn nothing_to_build_says_what_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["images", "build", "run"] {
        let run = dockhand(dir.path(), &[command])
            .env("DOCKHAND_REPO", "localhost:5000/acme/app")
            .env("DOCKHAND_SHA", SHAS[0])
            .env("DOCKHAND_REF_NAME", "main")
            .run();
        run.assert_code(1);
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{command}: {}", run.stderr);
        for needle in ["dockhand.yaml", "Containerfile", "Dockerfile"] {
            assert!(errors[0].contains(needle), "{command}: {needle}: {}", run.stderr);
        }
        assert!(run.stderr.contains("hint: add a Containerfile or Dockerfile here, or write dockhand.yaml, e.g. `images: [{name: app"), "{command}: {}", run.stderr);
    }
}

#[test]
fn a_nameless_image_lands_in_the_repo_itself_in_either_mode() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    std::fs::write(dir.path().join("app/Containerfile"), "FROM scratch\n").unwrap();
    std::fs::write(
        dir.path().join("dockhand.yaml"),
        "images:\n  - context: app\ntags: [\"{branch}\"]\n",
    )
    .unwrap();
    for mode in ["multirepo", "monorepo", "auto"] {
        let run = dockhand(dir.path(), &["--repo-mode", mode, "images", "--output", "json"])
            .env("DOCKHAND_REPO", "localhost:5000/acme/app")
            .env("DOCKHAND_REF_NAME", "main")
            .run();
        run.assert_code(0);
        let targets = json(&run);
        assert_eq!(
            targets[0]["reference"], "localhost:5000/acme/app:main",
            "{mode}: {}",
            run.stdout
        );
        assert_eq!(targets[0]["repository"], "localhost:5000/acme/app", "{mode}");
        assert_eq!(targets[0]["tag"], "main", "{mode}");
        assert_eq!(targets.as_array().unwrap().len(), 1, "{mode}");
    }
    // a bare registry has no repository for it
    let run = dockhand(dir.path(), &["images"])
        .env("DOCKHAND_REPO", "localhost:5000")
        .env("DOCKHAND_REF_NAME", "main")
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("a nameless image lands in the images repo itself"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_nameless_image_beside_another_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), "images:\n  - context: .\n  - name: web\n")
        .unwrap();
    for command in [&["images"][..], &["build"], &["cleanup", "--dry-run"]] {
        let run = dockhand(dir.path(), command)
            .env("DOCKHAND_REPO", "localhost:5000/acme/app")
            .env("DOCKHAND_REF_NAME", "main")
            .run();
        run.assert_code(1);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: A nameless image"), "{command:?}: {}", run.stderr);
        assert!(first.contains("a nameless image (context `.`)"), "{command:?}: {}", run.stderr);
        assert!(first.contains("`web`"), "{command:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().filter(|l| l.starts_with("error:")).count(), 1);
    }
}

/// `--platform` (without a project file, so without `platforms:`): every tag is one image
/// index holding both platforms; a platform that is not `os/arch` stops before any build.
#[test]
fn the_platform_flag_gives_one_index_for_every_tag() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let dir = dockerfile_only();
    let run =
        job(dir.path(), &registry, SHAS[0], &["run", "--platform", "linux/amd64,linux/arm64"])
            .run();
    run.assert_code(0);
    let index = skopeo_digest(&registry, &format!("acme/app:{}", SHAS[0]));
    assert_eq!(skopeo_digest(&registry, "acme/app:main"), index, "both tags name the index");
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/acme/app:main", registry.host()))
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", String::from_utf8_lossy(&raw.stderr));
    let list: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let mut platforms: Vec<String> = list["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("not an index: {list}"))
        .iter()
        .map(|child| {
            let platform = &child["platform"];
            format!(
                "{}/{}",
                platform["os"].as_str().unwrap(),
                platform["architecture"].as_str().unwrap()
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    let run = job(dir.path(), &registry, SHAS[1], &["run", "--platform", "amd64"]).run();
    run.assert_code(1);
    assert!(run.stderr.contains("Platform `amd64`"), "{}", run.stderr);
    assert!(!run.stderr.contains("STEP"), "nothing was built: {}", run.stderr);
    assert_eq!(skopeo_tags(&registry, "acme/app"), [SHAS[0], "main"]);
}
