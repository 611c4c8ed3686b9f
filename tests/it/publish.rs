//! `dockhand build`, `publish`, `run` and `images` end to end: real buildah builds from small
//! `FROM scratch` contexts, pushed by dockhand to a real registry, read back with skopeo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dockhand::reference::Digest;
use dockhand::registry::distribution::Client;

use crate::support::binary::{Dockhand, Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags, write_storage_conf};
use crate::support::proxy::Proxy;
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

const SHA: &str = "1ecfd275763eff1d6b4844ea3168962458c9f27a";

/// A project with images `api` and `web` (distinct content), its own buildah storage, and
/// the variables a generic runner would set.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(yaml_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in [("api", "api content"), ("web", "web content")] {
            let context = dir.path().join(name);
            std::fs::create_dir(&context).unwrap();
            std::fs::write(context.join("file.txt"), content).unwrap();
            std::fs::write(
                context.join("Containerfile"),
                "FROM scratch\nCOPY file.txt /file.txt\n",
            )
            .unwrap();
        }
        std::fs::write(
            dir.path().join("dockhand.yaml"),
            format!("images:\n  - name: api\n    context: api\n  - name: web\n    context: web\n{yaml_extra}"),
        )
        .unwrap();
        write_storage_conf(dir.path());
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `dockhand ARGS` in the project, logged in to `registry` through the generic runner
    /// variables, on branch `main` at commit `SHA`.
    fn dockhand(&self, registry: &Registry, args: &[&str]) -> Dockhand {
        generic_runner(dockhand(self.path(), args), registry, self.path())
            .env("CONTAINERS_STORAGE_CONF", &self.path().join("storage.conf").display().to_string())
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs")
    }
}

/// The variables of a generic runner's job: temp dir `tmp`, logged in to `registry`, images repo
/// `REGISTRY/acme/app`, on branch `main` at commit `SHA`.
fn generic_runner(command: Dockhand, registry: &Registry, tmp: &Path) -> Dockhand {
    command
        .env("TMPDIR", &tmp.display().to_string())
        .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
        .env("DOCKHAND_REGISTRY", &registry.host())
        .env("DOCKHAND_REGISTRY_USERNAME", USER)
        .env("DOCKHAND_REGISTRY_PASSWORD", PASSWORD)
        .env("DOCKHAND_REPO", &format!("{}/acme/app", registry.host()))
        .env("DOCKHAND_SHA", SHA)
        .env("DOCKHAND_REF_NAME", "main")
        .env("DOCKHAND_REF_TYPE", "branch")
}

fn pushed(run: &Run) -> Vec<(String, String, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    json["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["image"].as_str().unwrap().to_owned(),
                item["reference"].as_str().unwrap().to_owned(),
                item["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn run_builds_and_pushes_two_images_in_each_mode() {
    for (auth, mode, api_path, web_path, tags) in [
        (
            Auth::Htpasswd,
            "multirepo",
            "acme/app/api",
            "acme/app/web",
            vec![SHA.to_owned(), "main".to_owned()],
        ),
        (Auth::Token, "monorepo", "acme/app", "acme/app", vec![]),
        (
            Auth::Anonymous,
            "auto",
            "acme/app/api",
            "acme/app/web",
            vec![SHA.to_owned(), "main".to_owned()],
        ),
    ] {
        let registry = Registry::start(auth, Deletes::Enabled);
        let project = Project::new("tags: [\"{sha}\", \"{branch}\", \"{semver}\"]\n");
        let run =
            project.dockhand(&registry, &["--repo-mode", mode, "run", "--output", "json"]).run();
        run.assert_code(0).assert_not_printed(PASSWORD);
        let pushed = pushed(&run);
        assert_eq!(
            pushed.len(),
            4,
            "{mode}: two images × two tags ({{semver}} has no value on a branch)"
        );
        // every pushed reference resolves, through skopeo, to the digest dockhand reported
        for (image, reference, digest) in &pushed {
            let path = reference.strip_prefix(&format!("{}/", registry.host())).unwrap();
            assert_eq!(skopeo_digest(&registry, path).as_str(), digest, "{mode} {image}");
        }
        // both tags of an image share one digest; the two images differ
        assert_eq!(pushed[0].2, pushed[1].2);
        assert_ne!(pushed[0].2, pushed[2].2);
        if mode == "monorepo" {
            let want = [
                format!("api-{SHA}"),
                "api-main".to_owned(),
                format!("web-{SHA}"),
                "web-main".to_owned(),
            ];
            assert_eq!(skopeo_tags(&registry, api_path), want);
        } else {
            assert_eq!(skopeo_tags(&registry, api_path), tags);
            assert_eq!(skopeo_tags(&registry, web_path), tags);
        }
    }
}

#[test]
fn oci_labels_and_manifest_annotations_from_the_ci_context_reach_the_registry() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new("");
    // a generic runner: the source comes from the checkout's origin, without its credentials
    for args in [
        &["init", "-q"][..],
        &["remote", "add", "origin", "https://ci-bot:s3cr3t-token@git.example.com/acme/app.git"],
    ] {
        let status = Command::new("git").current_dir(project.path()).args(args).status().unwrap();
        assert!(status.success(), "git {args:?}");
    }
    project.dockhand(&registry, &["run"]).run().assert_code(0).assert_not_printed("s3cr3t-token");
    let skopeo = |raw: bool| {
        let mut command = Command::new("skopeo");
        command.args(["inspect", "--tls-verify=false", "--authfile"]).arg(registry.auth_file());
        if raw {
            command.arg("--raw");
        }
        let output = command
            .arg(format!("docker://{}/acme/app/api:main", registry.host()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let labels = &skopeo(false)["Labels"];
    let source = "https://git.example.com/acme/app";
    assert_eq!(labels["org.opencontainers.image.revision"], SHA);
    assert_eq!(labels["org.opencontainers.image.source"], source);
    // a branch build has no version, and `ref.name` is for OCI layout indexes, not labels
    assert!(labels.get("org.opencontainers.image.version").is_none(), "{labels}");
    assert!(labels.get("org.opencontainers.image.ref.name").is_none(), "{labels}");
    let manifest = skopeo(true);
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.revision"], SHA, "{manifest}");
    assert_eq!(annotations["org.opencontainers.image.source"], source, "{manifest}");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        labels["org.opencontainers.image.created"]
    );
    assert!(annotations.get("org.opencontainers.image.ref.name").is_none(), "{manifest}");

    // DOCKHAND_SOURCE comes first
    let project = Project::new("");
    project
        .dockhand(&registry, &["run"])
        .env("DOCKHAND_SOURCE", "https://code.example.org/acme/app")
        .env("DOCKHAND_REF_NAME", "v1.4.0")
        .env("DOCKHAND_REF_TYPE", "tag")
        .run()
        .assert_code(0);
    let output = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw", "--authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/acme/app/api:{SHA}", registry.host()))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.source"], "https://code.example.org/acme/app");
    assert_eq!(annotations["org.opencontainers.image.version"], "1.4.0", "{manifest}");
}

#[test]
fn build_then_publish_in_separate_processes_with_a_credential_helper() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new("tags: [\"sha-{short_sha}\"]\n");
    // a real credential helper on PATH: the docker config names it, the helper answers
    let bin = project.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-dhtest");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n"),
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&helper).status().unwrap();
    let config = project.path().join("docker-config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"dhtest"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let with_helper = |args: &[&str]| {
        project
            .dockhand(&registry, args)
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &config.display().to_string())
            // no CI credentials: only the helper can authenticate
            .env("DOCKHAND_REGISTRY_USERNAME", "")
            .env("DOCKHAND_REGISTRY_PASSWORD", "")
    };
    let build = with_helper(&["build", "--output", "json"]).run();
    build.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(&build.stdout).unwrap();
    assert_eq!(report["built"][0]["local"], "localhost/dockhand/api:1ecfd275763e");
    let publish = with_helper(&["publish", "--output", "json"]).run();
    publish.assert_code(0).assert_not_printed(PASSWORD);
    assert_eq!(skopeo_tags(&registry, "acme/app/api"), ["sha-1ecfd275"]);
    assert_eq!(skopeo_tags(&registry, "acme/app/web"), ["sha-1ecfd275"]);
}

/// The tags of `path`; none when the repository does not exist, i.e. nothing was pushed to it.
fn tags_if_any(registry: &Registry, path: &str) -> Vec<String> {
    let output = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/{path}", registry.host()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        assert!(stderr.contains("404") || stderr.contains("name unknown"), "{stderr}");
        return Vec::new();
    }
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    crate::support::sorted_strings(&listed["Tags"])
}

/// `publish` pushes only what `build` made for this commit with the same builder. An image of
/// another commit (same local name, other revision label), no image at all, or a builder whose
/// storage cannot have it (`docker`: no daemon here) is exit 1 with a hint, and nothing reaches
/// the registry; the builder comes from `--builder` or `DOCKHAND_BUILDER` as for `build`.
#[test]
fn publish_refuses_an_image_of_another_commit_or_builder() {
    // the local name keeps 12 characters of the commit: this one shares them with `SHA`
    const SAME_PREFIX: &str = "1ecfd275763e0000000000000000000000000000";
    const OTHER: &str = "0123456789abcdef0123456789abcdef01234567";
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new("tags: [\"{branch}\"]\n");
    project.dockhand(&registry, &["build"]).run().assert_code(0);

    let run = project.dockhand(&registry, &["publish"]).env("DOCKHAND_SHA", SAME_PREFIX).run();
    run.assert_code(1).assert_not_printed(PASSWORD);
    assert!(
        run.stderr.contains(&format!(
            "The local image `localhost/dockhand/api:1ecfd275763e` of `api` was built for commit `{SHA}`, not for commit `{SAME_PREFIX}`"
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: run `dockhand build --builder buildah`"), "{}", run.stderr);

    let run = project.dockhand(&registry, &["publish"]).env("DOCKHAND_SHA", OTHER).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("No image `api` built by buildah for this commit: nothing was pushed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`localhost/dockhand/api:0123456789ab` is not in buildah's image storage"),
        "{}",
        run.stderr
    );

    for (args, env) in [
        (&["publish", "--builder", "docker"][..], None),
        (&["publish"][..], Some(("DOCKHAND_BUILDER", "docker"))),
    ] {
        let mut command = project.dockhand(&registry, args);
        if let Some((name, value)) = env {
            command = command.env(name, value);
        }
        let run = command.run();
        run.assert_code(1);
        assert!(run.stderr.contains("docker"), "{args:?} {env:?}: {}", run.stderr);
        assert!(!run.stderr.contains("pushed "), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert_eq!(tags_if_any(&registry, "acme/app/api"), Vec::<String>::new());
    assert_eq!(tags_if_any(&registry, "acme/app/web"), Vec::<String>::new());

    // the builder and commit that built them: published
    project.dockhand(&registry, &["publish", "--builder", "buildah"]).run().assert_code(0);
    assert_eq!(tags_if_any(&registry, "acme/app/api"), ["main"]);
}

#[test]
fn github_outputs_and_step_summary() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let project = Project::new("");
    let outputs = project.path().join("github-output");
    let summary = project.path().join("step-summary");
    let run = project
        .dockhand(&registry, &["run"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SHA", SHA)
        .env("GITHUB_REF_NAME", "main")
        .env("GITHUB_REF_TYPE", "branch")
        .env("GITHUB_OUTPUT", &outputs.display().to_string())
        .env("GITHUB_STEP_SUMMARY", &summary.display().to_string())
        .run();
    run.assert_code(0);
    // each image's build output is a group of its own (groups do not nest)
    for image in ["api", "web"] {
        let (_, rest) = run
            .stderr
            .split_once(&format!("::group::dockhand: build {image}\n"))
            .unwrap_or_else(|| panic!("no group for {image}:\n{}", run.stderr));
        let (inside, _) = rest.split_once("::endgroup::\n").expect("the group is closed");
        assert!(inside.contains("COMMIT localhost/dockhand/"), "{inside}");
        assert!(!inside.contains("::group::"), "groups do not nest: {inside}");
    }
    let outputs = std::fs::read_to_string(outputs).unwrap();
    assert!(
        outputs.contains(&format!(
            "references<<DOCKHAND_EOF\n{}/acme/app/api:{SHA}\n",
            registry.host()
        )),
        "{outputs}"
    );
    assert!(outputs.contains("digests<<DOCKHAND_EOF\n"), "{outputs}");
    let summary = std::fs::read_to_string(summary).unwrap();
    assert!(summary.contains("| image | reference | digest |"), "{summary}");
    assert_eq!(summary.matches("| api |").count(), 2, "{summary}");
}

#[test]
fn images_prints_references_without_a_registry() {
    let project = Project::new("tags: [\"{semver}\", \"v{major}\"]\n");
    let run = dockhand(
        project.path(),
        &["images", "--repo", "ghcr.io/acme/app", "--repo-mode", "monorepo"],
    )
    .env("DOCKHAND_SHA", SHA)
    .env("DOCKHAND_REF_NAME", "v1.2.3")
    .env("DOCKHAND_REF_TYPE", "tag")
    .run();
    run.assert_code(0);
    assert_eq!(
        run.stdout,
        "ghcr.io/acme/app:api-1.2.3\nghcr.io/acme/app:api-v1\nghcr.io/acme/app:web-1.2.3\nghcr.io/acme/app:web-v1\n"
    );
}

#[test]
fn bad_input_is_reported_before_anything_is_pushed() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new("");
    std::fs::write(
        project.path().join("no-context.yaml"),
        "images:\n  - name: api\n    context: missing\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("no-file.yaml"),
        "images:\n  - name: api\n    context: api\n    containerfile: Other\n",
    )
    .unwrap();
    std::fs::write(project.path().join("Bad.yaml"), "images:\n  - name: Api\n    context: api\n")
        .unwrap();
    let empty_path = project.path().join("empty-bin");
    std::fs::create_dir(&empty_path).unwrap();
    for (args, env, code, needle) in [
        (&["--config", "no-context.yaml", "run"][..], None, 1, "missing"),
        (&["--config", "no-file.yaml", "run"], None, 1, "Other"),
        (&["--config", "Bad.yaml", "run"], None, 1, "Api"),
        (&["run", "--tag", "///"], None, 1, "can never give a valid tag"),
        (
            &["run", "--tag", "{branch}"],
            Some(("DOCKHAND_REF_NAME", "///".to_owned())),
            1,
            "no tag rule gives a tag",
        ),
        (&["run", "--tag", "{nope}"], None, 1, "nope"),
        (&["run", "--builder", "kaniko"], None, 1, "kaniko"),
        (&["run"], Some(("PATH", empty_path.display().to_string())), 1, "buildah"),
        (
            &["run"],
            Some(("DOCKHAND_REGISTRY_PASSWORD", "wrong-Sentinel".to_owned())),
            1,
            "rejected",
        ),
    ] {
        let mut command = project.dockhand(&registry, args);
        if let Some((name, value)) = &env {
            command = command.env(name, value);
        }
        let run = command.run();
        run.assert_code(code).assert_not_printed(PASSWORD).assert_not_printed("wrong-Sentinel");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        if needle != "rejected" {
            // input errors are found before anything is built
            assert!(!run.stderr.contains("building `"), "{args:?}: {}", run.stderr);
        }
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    let catalog = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", "--authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/acme/app/api", registry.host()))
        .output()
        .unwrap();
    assert!(!catalog.status.success(), "nothing may have been pushed");
}

#[test]
fn docker_builder_runs_tag_and_push_through_the_cli() {
    // No docker daemon here: a `docker` stand-in script records its argv and answers like the
    // CLI, so this checks the exact command lines dockhand runs (never a credential in them).
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = Project::new("tags: [\"{branch}\"]\n");
    let bin = project.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = project.path().join("docker-argv.log");
    let epoch = project.path().join("docker-epoch");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {log}\n\
         if [ \"$1\" = build ]; then printf %s \"$SOURCE_DATE_EPOCH\" > {epoch}; fi\n\
         if [ \"$1\" = push ]; then echo \"main: digest: sha256:{} size: 528\"; fi\n",
        "a".repeat(64),
        log = log.display(),
        epoch = epoch.display()
    );
    std::fs::write(bin.join("docker"), script).unwrap();
    Command::new("chmod").arg("+x").arg(bin.join("docker")).status().unwrap();
    let path: PathBuf = bin.clone();
    let run = project
        .dockhand(&registry, &["run", "--builder", "docker", "--output", "json"])
        .env("PATH", &format!("{}:{}", path.display(), std::env::var("PATH").unwrap()))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run();
    run.assert_code(0);
    let argv = std::fs::read_to_string(&log).unwrap();
    // BuildKit gets the time both ways, and the created label says the same
    assert_eq!(std::fs::read_to_string(&epoch).unwrap(), "1700000000");
    let build = argv.lines().next().unwrap();
    assert!(build.contains(" --build-arg SOURCE_DATE_EPOCH=1700000000 "), "{build}");
    assert!(
        build.contains(" --label org.opencontainers.image.created=2023-11-14T22:13:20Z "),
        "{build}"
    );
    let host = registry.host();
    let want = format!(
        "build -f {dir}/api/Containerfile -t localhost/dockhand/api:1ecfd275763e",
        dir = project.path().display()
    );
    assert!(argv.lines().next().unwrap().starts_with(&want), "{argv}");
    assert!(
        argv.contains(&format!(
            "tag localhost/dockhand/api:1ecfd275763e {host}/acme/app/api:main\n"
        )),
        "{argv}"
    );
    assert!(argv.contains(&format!("push {host}/acme/app/api:main\n")), "{argv}");
    assert!(!argv.contains(PASSWORD));
    assert_eq!(pushed(&run)[0].2, format!("sha256:{}", "a".repeat(64)));
}

#[test]
fn docker_auth_config_alone_authenticates_the_push() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let project = Project::new("tags: [\"{branch}\"]\n");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    let run = project
        .dockhand(&registry, &["run"])
        .env("DOCKHAND_REGISTRY_USERNAME", "")
        .env("DOCKHAND_REGISTRY_PASSWORD", "")
        .env(
            "DOCKER_AUTH_CONFIG",
            &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.host()),
        )
        .run();
    run.assert_code(0).assert_not_printed(PASSWORD).assert_not_printed(&auth);
    assert_eq!(skopeo_tags(&registry, "acme/app/web"), ["main"]);
}

#[tokio::test]
async fn run_on_github_publishes_then_cleans_up_through_the_packages_api_standin() {
    use crate::support::stand_in::{Flavor, GithubToken, StandIn};
    // ghcr.io played by the GitHub stand-in in front of a real registry; the registry login of
    // the job (the docker config password) is also the Packages API token, as on GitHub (the
    // registry is anonymous: the stand-in deletes manifests on it directly)
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let github = StandIn::start(Flavor::Github, registry.port());
    github.add_owner("acme", true);
    github.add_github_token(
        PASSWORD,
        GithubToken::Classic("read:packages, write:packages, delete:packages"),
    );
    let front = github.host();
    let client = Client::new(dockhand::registry::distribution::ClientOptions {
        insecure: vec![front.parse().unwrap()],
        credentials: BTreeMap::from([(
            front.parse().unwrap(),
            dockhand::secret::Credential::Basic {
                username: USER.to_owned(),
                password: dockhand::secret::Secret::new(PASSWORD),
            },
        )]),
        ..Default::default()
    })
    .unwrap();
    let api_repository = format!("{front}/acme/app/api").parse().unwrap();
    let old = crate::support::seed::minutes_ago(10 * crate::cleanup::DAY);
    crate::support::seed::push_image(&client, &api_repository, Some("old-1"), &old).await;
    github.set_time(
        "acme/app/api",
        "old-1",
        jiff::Timestamp::now() - jiff::SignedDuration::from_hours(240),
    );

    let project = Project::new("tags: [\"{branch}\"]\n");
    let argv = ["--repo-implementation", "github", "run", "--output", "json"];
    let run = project
        .dockhand(&registry, &[&argv[..], &["--keep-last", "1", "--keep-within", "0s"]].concat())
        .env("DOCKHAND_INSECURE_REGISTRIES", &github.insecure_hosts())
        .env("DOCKHAND_REGISTRY", &front)
        .env("DOCKHAND_REPO", &format!("{front}/acme/app"))
        .env("GITHUB_API_URL", &github.api_url())
        .run();
    run.assert_code(0).assert_not_printed(PASSWORD);
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(document["pushed"].as_array().map(Vec::len), Some(2));
    assert!(document["cleanup_skipped"].is_null(), "{}", run.stdout);
    assert_eq!(crate::support::tags_of(&document, "deleted"), ["old-1"]);
    assert_eq!(skopeo_tags(&registry, "acme/app/api"), ["main"]);
    assert_eq!(skopeo_tags(&registry, "acme/app/web"), ["main"]);
    let log = github.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
    assert!(
        log.iter()
            .any(|line| line
                .starts_with("API DELETE /orgs/acme/packages/container/app%2Fapi/versions/")),
        "{log:?}"
    );
}

#[test]
fn a_registry_refusing_the_push_is_a_clear_error() {
    use crate::support::token_issuer::{PULL_ONLY_PASSWORD, PULL_ONLY_USER};
    // the credentials are valid (the login check passes) but only allow pulling
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let project = Project::new("tags: [\"{branch}\"]\n");
    let run = project
        .dockhand(&registry, &["run"])
        .env("DOCKHAND_REGISTRY_USERNAME", PULL_ONLY_USER)
        .env("DOCKHAND_REGISTRY_PASSWORD", PULL_ONLY_PASSWORD)
        .run();
    run.assert_code(1).assert_not_printed(PULL_ONLY_PASSWORD);
    assert!(
        run.stderr.contains(&format!("error: Failed to push `{}/acme/app/", registry.host())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("was denied to user `readonly`"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: grant user `readonly` the permission"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

/// Writes an OCI image layout with one layer of `layer_size` pseudo-random bytes into `dir`
/// and returns the digests of the manifest and of the layer.
fn write_layout_with_big_layer(dir: &Path, layer_size: usize) -> (String, String) {
    use sha2::Digest as _;
    use std::io::Write as _;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let write_blob = |bytes: &[u8]| {
        let hex = format!("{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    // written in pieces, as a builder would: the test itself never holds the whole layer either
    let partial = blobs.join("layer.partial");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
    let mut hasher = sha2::Sha256::new();
    let mut rng = fastrand::Rng::with_seed(0x00d0_c4a4);
    let mut chunk = vec![0; 1 << 20];
    for _ in 0..layer_size / chunk.len() {
        rng.fill(&mut chunk);
        hasher.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    drop(file);
    let layer_hex = format!("{:x}", hasher.finalize());
    std::fs::rename(&partial, blobs.join(&layer_hex)).unwrap();
    let layer = format!("sha256:{layer_hex}");
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    })
    .to_string();
    let config_digest = write_blob(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    })
    .to_string();
    let manifest_digest = write_blob(manifest.as_bytes());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len()}],
        })
        .to_string(),
    )
    .unwrap();
    (manifest_digest, layer)
}

/// A project with one image, `big`, whose "build" is the OCI layout the test wrote (one layer
/// of `layer_size` pseudo-random bytes): a `buildah` stand-in on `PATH` hands it over when
/// publish asks for `buildah push … oci:DIR`, by copying it with `cp`.
struct LayoutProject {
    dir: tempfile::TempDir,
    layout: PathBuf,
    manifest_digest: String,
    layer_digest: String,
}

impl LayoutProject {
    fn new(layer_size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let layout = root.join("layout");
        let (manifest_digest, layer_digest) = write_layout_with_big_layer(&layout, layer_size);
        let context = root.join("big");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(context.join("Containerfile"), "FROM scratch\n").unwrap();
        std::fs::write(
            root.join("dockhand.yaml"),
            "images:\n  - name: big\n    context: big\ntags: [\"{branch}\"]\n",
        )
        .unwrap();
        let bin = root.join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(
            bin.join("buildah"),
            format!(
                "#!/bin/sh\n# stand-in for `buildah inspect` and `buildah push --digestfile FILE IMAGE oci:DIR`\nif [ \"$1\" = inspect ]; then printf '{{\"OCIv1\":{{\"config\":{{\"Labels\":{{\"org.opencontainers.image.revision\":\"{SHA}\"}}}}}}}}'; exit 0; fi\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    --digestfile) digestfile=$2; shift ;;\n    oci:*) dir=${{1#oci:}} ;;\n  esac\n  shift\ndone\nmkdir -p \"$dir\" && cp -R {layout}/. \"$dir\"/ && printf '%s' {manifest_digest} > \"$digestfile\"\n",
                layout = layout.display()
            ),
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(bin.join("buildah")).status().unwrap();
        Self { dir, layout, manifest_digest, layer_digest }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The layer's file in the test's layout.
    fn layer_file(&self) -> PathBuf {
        self.layout.join("blobs/sha256").join(self.layer_digest.strip_prefix("sha256:").unwrap())
    }

    /// `dockhand --repo-mode multirepo publish --output json`, logged in to `registry`, on
    /// branch `main`.
    fn publish(&self, registry: &Registry) -> Dockhand {
        let root = self.path();
        let command = dockhand(root, &["--repo-mode", "multirepo", "publish", "--output", "json"]);
        generic_runner(command, registry, root).env(
            "PATH",
            &format!("{}:{}", root.join("bin").display(), std::env::var("PATH").unwrap()),
        )
    }
}

/// A layer far larger than dockhand's own footprint goes to the registry streamed from the
/// layout: the registry (read back by skopeo, which checks every blob's digest) holds the
/// exact bytes, and dockhand's peak RSS stays below half the layer's size (reading the layer
/// into memory would need at least all of it).
///
/// The layout comes from the test, through a `buildah` stand-in: the peak GNU time reports
/// covers dockhand's children too, and a real buildah would measure buildah, not dockhand.
#[test]
#[expect(clippy::print_stderr, reason = "the measured peak shows in `--nocapture` runs")]
fn a_large_layer_is_streamed_not_held_in_memory() {
    const LAYER_SIZE: usize = 128 << 20;
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = LayoutProject::new(LAYER_SIZE);
    let (run, peak_kib) = project.publish(&registry).run_measured(project.path());
    run.assert_code(0).assert_not_printed(PASSWORD);
    assert_eq!(
        pushed(&run),
        [(
            "big".to_owned(),
            format!("{}/acme/app/big:main", registry.host()),
            project.manifest_digest.clone()
        )]
    );
    assert_eq!(skopeo_digest(&registry, "acme/app/big:main").as_str(), project.manifest_digest);

    let copy = project.path().join("copy");
    let status = Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false", "--src-authfile"])
        .arg(registry.auth_file())
        .arg(format!("docker://{}/acme/app/big:main", registry.host()))
        .arg(format!("dir:{}", copy.display()))
        .status()
        .unwrap();
    assert!(status.success(), "skopeo copies the image back, verifying every blob");
    let layer_hex = project.layer_digest.strip_prefix("sha256:").unwrap();
    let copied = std::fs::read(copy.join(layer_hex)).unwrap();
    assert_eq!(copied.len(), LAYER_SIZE);
    assert_eq!(Digest::sha256_of(&copied).as_str(), project.layer_digest);

    eprintln!(
        "peak RSS of `dockhand publish` with a {} MiB layer: {peak_kib} KiB",
        LAYER_SIZE >> 20
    );
    assert!(
        peak_kib * 1024 < (LAYER_SIZE / 2) as u64,
        "dockhand's peak RSS was {peak_kib} KiB for a {} MiB layer",
        LAYER_SIZE >> 20
    );
}

/// A layer file that changed after the build is caught while it streams: publish fails with
/// a layout error naming the blob, the registry keeps neither the blob nor a tag.
#[test]
fn a_layer_that_does_not_match_its_digest_is_a_layout_error() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let project = LayoutProject::new(1 << 20);
    let mut bytes = std::fs::read(project.layer_file()).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(project.layer_file(), &bytes).unwrap();
    let run = project.publish(&registry).run();
    run.assert_code(2).assert_not_printed(PASSWORD);
    assert!(
        run.stderr.contains(&format!("blob `{}` does not match its digest", project.layer_digest)),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("has no usable OCI layout"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let mut options = registry.client_options();
    options.credentials = BTreeMap::from([(registry.registry_host(), registry.credential())]);
    let client = Client::new(options).unwrap();
    let layer: Digest = project.layer_digest.parse().unwrap();
    let exists = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.blob_exists(&registry.repository("acme/app/big"), &layer))
        .unwrap();
    assert!(!exists, "the registry committed the wrong layer");
    assert!(!skopeo_resolves(&registry, "acme/app/big:main"));
}

/// Makes `project` a git checkout of one commit with fixed names and dates, so that two
/// projects with the same files have the same commit; returns its SHA.
fn commit_fixed(project: &Project, date: &str) -> String {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .current_dir(project.path())
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "api", "web", "dockhand.yaml"]);
    git(&["commit", "-q", "-m", "release"]);
    git(&["rev-parse", "HEAD"])
}

#[test]
fn a_rebuild_of_the_same_commit_gives_the_same_digest_and_its_publish_uploads_nothing() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let yaml = "tags: [\"{sha}\", \"{branch}\"]\n";
    // two runners with fresh storage, each with a checkout of the same commit
    let (first, second) = (Project::new(yaml), Project::new(yaml));
    let date = "2024-06-01T12:00:00+00:00";
    let sha = commit_fixed(&first, date);
    assert_eq!(commit_fixed(&second, date), sha);
    let through_proxy = |project: &Project, args: &[&str]| {
        project
            .dockhand(&registry, args)
            .env("DOCKHAND_REGISTRY", &proxy.host())
            .env("DOCKHAND_REPO", &format!("{}/acme/app", proxy.host()))
            .env("DOCKHAND_INSECURE_REGISTRIES", &proxy.host())
            .env("DOCKHAND_SHA", &sha)
            .run()
    };
    let publish = ["publish", "--output", "json"];
    through_proxy(&first, &["build"]).assert_code(0);
    let before = through_proxy(&first, &publish);
    before.assert_code(0).assert_not_printed(PASSWORD);
    let first_requests = proxy.log();
    let manifest_puts = first_requests
        .iter()
        .filter(|line| line.starts_with("PUT ") && line.contains("/manifests/"));
    assert_eq!(manifest_puts.count(), 4, "the first publish pushes every tag: {first_requests:?}");
    let built = through_proxy(&second, &["build"]);
    built.assert_code(0);
    assert!(built.stderr.contains("SOURCE_DATE_EPOCH=1717243200"), "{}", built.stderr);
    let sent_before = proxy.log().len();
    let again = through_proxy(&second, &publish);
    again.assert_code(0).assert_not_printed(PASSWORD);
    let requests: Vec<String> = proxy.log()[sent_before..].to_vec();

    // one digest per image, whichever runner built it
    let (before, after) = (pushed(&before), pushed(&again));
    assert_eq!(before.len(), 4, "two images × two tags");
    let sorted = |mut list: Vec<(String, String, String)>| {
        list.sort();
        list
    };
    assert_eq!(sorted(before), sorted(after.clone()));
    // the second publish sent no blob and no manifest, and said so
    let writes: Vec<&String> = requests
        .iter()
        .filter(|line| !line.starts_with("GET ") && !line.starts_with("HEAD "))
        .collect();
    assert!(writes.is_empty(), "requests that upload: {writes:?}");
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert!(json["pushed"].as_array().unwrap().iter().all(|item| item["unchanged"] == true));
    assert_eq!(again.stderr.matches(": nothing sent").count(), 4, "{}", again.stderr);
    // the figure in docs/benchmarks.md: per repository one tag list, per tag one manifest
    // HEAD; the first request of each repository is answered 401 (the client learns the
    // realm) and repeated with credentials
    let mut want: Vec<String> = Vec::new();
    for image in ["api", "web"] {
        want.push(format!("GET /v2/acme/app/{image}/tags/list?n=1000"));
        for tag in [sha.as_str(), "main"] {
            want.push(format!("HEAD /v2/acme/app/{image}/manifests/{tag}"));
        }
    }
    want.sort();
    let distinct: std::collections::BTreeSet<&String> = requests.iter().collect();
    assert_eq!(distinct.into_iter().cloned().collect::<Vec<_>>(), want, "{requests:?}");
    assert_eq!(requests.len(), 7, "the one 401 is the first tag list's: {requests:?}");

    // with one new tag beside a current one, only the new tag's manifest is sent
    let sent_before = proxy.log().len();
    let partly = through_proxy(
        &second,
        &["publish", "--output", "json", "--tag", "{branch}", "--tag", "extra"],
    );
    partly.assert_code(0);
    let requests = proxy.log()[sent_before..].to_vec();
    let mut puts: Vec<&String> = requests.iter().filter(|line| line.starts_with("PUT ")).collect();
    puts.sort();
    assert_eq!(
        puts,
        ["PUT /v2/acme/app/api/manifests/extra", "PUT /v2/acme/app/web/manifests/extra"],
        "{requests:?}"
    );
    assert!(!requests.iter().any(|line| line.starts_with("POST ")), "no blob upload: {requests:?}");
    let json: serde_json::Value = serde_json::from_str(&partly.stdout).unwrap();
    for item in json["pushed"].as_array().unwrap() {
        let extra = item["reference"].as_str().unwrap().ends_with(":extra");
        assert_eq!(item.get("unchanged").is_some(), !extra, "{item}");
    }

    // the image's time is the commit's: in the config and in the label, the same
    let auth_file = registry.auth_file();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--authfile"])
        .arg(&auth_file)
        .arg(format!("docker://{}/acme/app/api:main", registry.host()))
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", String::from_utf8_lossy(&inspect.stderr));
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Created"], "2024-06-01T12:00:00Z");
    assert_eq!(inspect["Labels"]["org.opencontainers.image.created"], "2024-06-01T12:00:00Z");
    assert_eq!(inspect["Labels"]["org.opencontainers.image.revision"], sha.as_str());
}

/// kill -9 at seeded points of a two-image publish, then one rerun: the registry ends as one
/// clean publish leaves it (every tag at the image's digest, nothing else), whatever the kills
/// interrupted (a blob upload, a manifest PUT, between tags).
#[test]
fn a_publish_killed_at_any_point_is_completed_by_a_rerun() {
    let project = Project::new("tags: [\"{sha}\", \"{branch}\"]\n");
    let reference = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    project.dockhand(&reference, &["build"]).run().assert_code(0);
    let publish = |registry: &Registry| {
        project.dockhand(registry, &["--repo-mode", "multirepo", "publish", "--output", "json"])
    };
    // the state one clean publish leaves, and how long it takes
    let started = std::time::Instant::now();
    let clean = publish(&reference).run();
    clean.assert_code(0);
    let clean_ms = u64::try_from(started.elapsed().as_millis()).unwrap().max(20);
    let state = |registry: &Registry| -> Vec<(String, Vec<(String, String)>)> {
        ["acme/app/api", "acme/app/web"]
            .into_iter()
            .map(|path| {
                let tags = tags_if_any(registry, path)
                    .into_iter()
                    .map(|tag| {
                        let digest = skopeo_digest(registry, &format!("{path}:{tag}"));
                        (tag, digest.as_str().to_owned())
                    })
                    .collect();
                (path.to_owned(), tags)
            })
            .collect()
    };
    let want = state(&reference);

    let mut rng = fastrand::Rng::with_seed(0x00d0_c4a2);
    for round in 0..4 {
        let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
        // up to three kills at seeded instants within a clean run's duration
        for _ in 0..=round % 3 {
            let mut child = publish(&registry).spawn();
            std::thread::sleep(std::time::Duration::from_millis(rng.u64(0..clean_ms)));
            let _ = child.kill();
            let _ = child.wait();
        }
        let rerun = publish(&registry).run();
        rerun.assert_code(0);
        assert_eq!(state(&registry), want, "round {round}");
    }
}
