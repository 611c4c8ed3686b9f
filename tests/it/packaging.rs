//! Packaging, exercised the way its users' runners use it.
//!
//! - The Dockerfile, the shell scripts, `action.yml` and `.gitlab-ci-template.yml` are checked
//!   with their ecosystems' own linters and schemas (hadolint, shellcheck, check-jsonschema,
//!   zizmor), installed by `scripts/setup.sh` into `.venv`.
//! - The composite action runs step by step under `actions_runner`, an emulation of the
//!   runner's protocol, against a real registry, installing the built executable from a
//!   `file://` release mirror checked against a checksum file, as a release would be.
//! - The GitLab template runs in gitlab-ci-local's shell executor (from `node_modules`).
//! - The GitLab CI/CD component (`templates/dockhand.yml`) is validated with the same schema
//!   (its header and its jobs as two documents), checked to carry the template's jobs verbatim,
//!   and run under gitlab-ci-local, which interpolates its inputs (see the component tests).
//!
//! The image is built and checked by `scripts/test-packaging.sh`: it needs the release build.

mod actions_runner;
mod release_workflow;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};
use actions_runner::{Job, parse_file_commands};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool that `scripts/setup.sh` installs into the repository.
fn tool(relative: &str) -> PathBuf {
    let path = repo_root().join(relative);
    assert!(path.exists(), "`{}` is missing: run scripts/setup.sh", path.display());
    path
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}

// --- lints and schemas ------------------------------------------------------------------

#[test]
fn dockerfile_passes_hadolint() {
    let output = run(Command::new(tool(".venv/bin/hadolint"))
        .args(["--no-color", "Dockerfile"])
        .current_dir(repo_root()));
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "", "{}", text(&output));
}

#[test]
fn dockerfile_ships_the_minimal_image_by_default() {
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("FROM "))
        .map(|from| from.rsplit(" AS ").next().unwrap_or(from))
        .collect();
    assert_eq!(stages, ["compile", "staged", "rootfs", "builder", "release"]);
    let release = &dockerfile[dockerfile.find("FROM scratch AS release").unwrap()..];
    for line in [
        "COPY --from=rootfs /rootfs/ /",
        "USER 65532:65532",
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "org.opencontainers.image.revision=",
        r#"ENTRYPOINT ["/usr/local/bin/dockhand"]"#,
    ] {
        assert!(release.contains(line), "the release stage lacks `{line}`");
    }
}

/// The packaging's own scripts (the other scripts are not this module's to gate).
#[test]
fn packaging_scripts_pass_shellcheck() {
    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo_root().join("action"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sh"))
        .collect();
    scripts.sort();
    assert_eq!(scripts.len(), 6, "found {scripts:?}");
    scripts.extend(
        [
            "scripts/image.sh",
            "scripts/test-packaging.sh",
            "scripts/release.sh",
            "scripts/test-release.sh",
        ]
        .map(|p| repo_root().join(p)),
    );
    let output = run(Command::new(tool(".venv/bin/shellcheck"))
        .args(["--external-sources", "--format", "gcc"])
        .args(&scripts)
        .current_dir(repo_root()));
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn action_matches_the_github_actions_schema() {
    let output = run(Command::new(tool(".venv/bin/check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-actions", "action.yml"])
        .current_dir(repo_root()));
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok -- validation done"));
}

/// zizmor's findings for `file`, as JSON.
fn zizmor(file: &Path) -> (Output, Vec<Value>) {
    let output = run(Command::new(tool(".venv/bin/zizmor"))
        .args(["--offline", "--no-progress", "--format", "json"])
        .arg(file)
        .current_dir(repo_root()));
    let findings: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("zizmor printed no JSON list ({error}): {}", text(&output)));
    (output, findings)
}

#[test]
fn action_has_no_zizmor_findings() {
    let (output, findings) = zizmor(&repo_root().join("action.yml"));
    let idents: Vec<&Value> = findings.iter().map(|finding| &finding["ident"]).collect();
    assert_eq!(idents, Vec::<&Value>::new(), "{}", text(&output));
    assert!(output.status.success(), "{}", text(&output));
}

/// The project's own workflows (CI and release): valid, and without findings from zizmor or
/// actionlint (which runs shellcheck on every `run:` script, from `.venv`).
#[test]
fn project_workflows_pass_the_schema_zizmor_and_actionlint() {
    let workflows = repo_root().join(".github/workflows");
    let files: Vec<PathBuf> =
        ["ci.yml", "release.yml"].iter().map(|name| workflows.join(name)).collect();
    let output = run(Command::new(tool(".venv/bin/check-jsonschema"))
        .args(["--builtin-schema", "vendor.github-workflows"])
        .args(&files));
    assert!(output.status.success(), "{}", text(&output));
    let (output, findings) = zizmor(&workflows);
    let idents: Vec<&Value> = findings.iter().map(|finding| &finding["ident"]).collect();
    assert_eq!(idents, Vec::<&Value>::new(), "{}", text(&output));
    let path =
        format!("{}:{}", tool(".venv/bin").display(), std::env::var("PATH").unwrap_or_default());
    let output = run(Command::new(tool(".venv/bin/actionlint")).args(&files).env("PATH", path));
    assert!(output.status.success(), "actionlint: {}", text(&output));
    // the actions are pinned by commit, and every job says which permissions it needs
    for file in &files {
        let workflow = std::fs::read_to_string(file).unwrap();
        for uses in workflow.lines().filter_map(|line| line.trim().strip_prefix("uses: ")) {
            let pinned = uses.starts_with("./")
                || uses.split_once('@').is_some_and(|(_, pin)| {
                    pin.len() >= 40 && pin[..40].chars().all(|c| c.is_ascii_hexdigit())
                });
            assert!(pinned, "{}: `{uses}` is not pinned by commit", file.display());
        }
        assert!(workflow.contains("\npermissions: {}\n"), "{}", file.display());
    }
}

/// The negative control: the same action with one input expanded into `run:` is flagged.
#[test]
fn zizmor_flags_an_input_expanded_into_a_run_line() {
    let action = std::fs::read_to_string(repo_root().join("action.yml")).unwrap();
    let injected = action.replacen(
        r#"run: '"$GITHUB_ACTION_PATH/action/run.sh"'"#,
        "run: dockhand publish --repo ${{ inputs.repo }}",
        1,
    );
    assert_ne!(injected, action);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("action.yml"), injected).unwrap();
    let (output, findings) = zizmor(&dir.path().join("action.yml"));
    let injection = findings
        .iter()
        .find(|finding| finding["ident"] == "template-injection")
        .unwrap_or_else(|| panic!("no template-injection finding: {}", text(&output)));
    assert_eq!(injection["determinations"]["severity"], "High");
    assert!(!output.status.success(), "zizmor exits non-zero on a finding");
}

#[test]
fn gitlab_template_matches_the_gitlab_ci_schema() {
    let output = run(Command::new(tool(".venv/bin/check-jsonschema"))
        .args(["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"])
        .arg(".gitlab-ci-template.yml")
        .current_dir(repo_root()));
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok -- validation done"));
}

#[test]
fn action_ships_the_crate_version_and_the_changelog_lists_it() {
    let version = std::fs::read_to_string(repo_root().join("action/VERSION")).unwrap();
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    let changelog = std::fs::read_to_string(repo_root().join("CHANGELOG.md")).unwrap();
    assert!(changelog.contains("## [Unreleased]"), "CHANGELOG.md has an Unreleased section");
}

// --- the action, step by step as the runner runs it ---------------------------------------

const TARGET: &str = "x86_64-unknown-linux-musl";
const ARM64_TARGET: &str = "aarch64-unknown-linux-musl";

/// Publishes the built executable as this action's release asset for `target` on a `file://`
/// mirror under the job's root and records a checksum for it in the job's copy of
/// action/checksums.txt: the copy's own, or `wrong_checksum`. Returns the mirror URL. The
/// checksum is taken from the copy, never from the original, which a concurrent build in the
/// shared target dir may replace.
///
/// For `ARM64_TARGET` the asset's bytes are still the host's build: the ARM64 runner is
/// simulated on this x86_64 machine, and the action runs the binary it installed. That the real
/// arm64 asset is an arm64 static executable that runs is checked by scripts/test-packaging.sh.
fn release_mirror(job: &Job, target: &str, wrong_checksum: Option<&str>) -> String {
    let version =
        std::fs::read_to_string(job.action_path.join("action/VERSION")).unwrap().trim().to_owned();
    let asset = format!("dockhand-{version}-{target}");
    let mirror = job.root().join("releases");
    let copy = mirror.join(format!("v{version}/{asset}"));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_dockhand"), &copy).unwrap();
    let checksum = wrong_checksum.map_or_else(|| sha256_hex(&copy), str::to_owned);
    let checksums = job.action_path.join("action/checksums.txt");
    let mut lines = std::fs::read_to_string(&checksums).unwrap();
    writeln!(lines, "{checksum}  {asset}").unwrap();
    std::fs::write(&checksums, lines).unwrap();
    format!("file://{}", mirror.display())
}

/// The release asset for `target` the mirror of `job` serves.
fn released_binary(job: &Job, target: &str) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    job.root().join(format!("releases/v{version}/dockhand-{version}-{target}"))
}

/// Where the action installs the binary for `target` in the job's tool cache.
fn installed_binary(job: &Job, target: &str) -> PathBuf {
    job.tool_cache.join(format!("dockhand/{}/{target}/dockhand", env!("CARGO_PKG_VERSION")))
}

fn sha256_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes).iter().fold(String::new(), |mut hex, byte| {
        write!(hex, "{byte:02x}").unwrap();
        hex
    })
}

/// A job whose workspace holds a one-image dockhand.yaml, with the built executable released
/// on a mirror. Returns the job and the mirror URL.
fn images_job(token: &str) -> (Job, String) {
    let job = Job::new(repo_root(), token);
    std::fs::write(
        job.workspace.join("dockhand.yaml"),
        "images:\n  - name: api\n    context: .\ntags: [\"{short_sha}\", \"{branch}\"]\n",
    )
    .unwrap();
    let mirror = release_mirror(&job, TARGET, None);
    (job, mirror)
}

#[test]
fn action_installs_verified_logs_in_and_writes_outputs() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let host = registry.host();
    let (mut job, mirror) = images_job("");
    // a job-level variable must survive the action's blank `insecure-registries` input
    job.set_env("DOCKHAND_INSECURE_REGISTRIES", &host);
    let repo = format!("{host}/acme/app");
    let run = job.run_action(&[
        ("command", "images"),
        ("repo", &repo),
        ("registry", &host),
        ("username", USER),
        ("password", PASSWORD),
        ("download-url", &mirror),
    ]);
    assert!(run.success, "{run:#?}");
    let ids: Vec<&str> = run.steps.iter().map(|step| step.id.as_str()).collect();
    assert_eq!(ids, ["install", "ci-env", "login", "command", "remove-config"]);

    // install: the verified binary in the tool cache, on PATH for later steps
    let version = env!("CARGO_PKG_VERSION");
    let installed = installed_binary(&job, TARGET);
    assert_eq!(sha256_hex(&installed), sha256_hex(&released_binary(&job, TARGET)));
    assert_eq!(run.outputs["version"], version);
    assert!(run.step("install").stdout.contains(&format!("dockhand {version}")));

    // ci-env: DOCKER_CONFIG exported through GITHUB_ENV, a fresh private dir under RUNNER_TEMP
    let exported: Vec<(String, String)> = parse_file_commands(&run.step("ci-env").github_env);
    let docker_config = exported.iter().find(|(name, _)| name == "DOCKER_CONFIG").map_or_else(
        || panic!("no DOCKER_CONFIG in GITHUB_ENV: {exported:?}"),
        |(_, value)| PathBuf::from(value),
    );
    assert!(docker_config.starts_with(&job.runner_temp), "{}", docker_config.display());
    assert_eq!(job.exported("DOCKHAND_REPO"), Some(repo.as_str()));
    assert_eq!(run.outputs["docker-config"], docker_config.display().to_string());
    assert!(!job.home.join(".docker").exists(), "~/.docker is never written");

    // login: a peer client finds the credentials with nothing but DOCKER_CONFIG
    let login = run_peer_login(&docker_config, &host);
    assert_eq!(login, USER);

    // masks: the password and the docker `auth` value derived from it, before anything else
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let install_stdout = &run.step("install").stdout;
    assert!(install_stdout.starts_with(&format!("::add-mask::{PASSWORD}\n")), "{install_stdout}");
    assert!(run.step("login").stdout.contains(&format!("::add-mask::{auth}\n")));
    let log = run.log();
    let unmasked: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(PASSWORD) && !line.starts_with("::add-mask::"))
        .collect();
    assert_eq!(unmasked, Vec::<&str>::new(), "the password appears outside a mask command");

    // outputs: every value in the delimiter syntax, the references one per line
    let raw = &run.step("command").github_output;
    assert!(raw.starts_with("docker-config<<dockhand_"), "{raw}");
    for name in ["json", "references", "digests", "deleted", "would-delete"] {
        assert!(raw.contains(&format!("\n{name}<<dockhand_")), "{name} missing in {raw}");
    }
    assert_eq!(run.outputs["references"], format!("{repo}/api:01234567\n{repo}/api:main"), "{raw}");
    assert_eq!(run.outputs["digests"], "");
    assert_eq!(run.outputs["deleted"], "0");
    let json: Value = serde_json::from_str(&run.outputs["json"]).unwrap();
    assert_eq!(json[1]["reference"], format!("{repo}/api:main"));

    // the setup steps' logs folded in groups, and a summary table
    for (step, group) in
        [("ci-env", "dockhand ci-env"), ("login", &format!("dockhand login {host}"))]
    {
        let stdout = &run.step(step).stdout;
        assert!(stdout.contains(&format!("::group::{group}\n")), "{stdout}");
        assert!(stdout.contains("::endgroup::\n"), "{stdout}");
    }
    let summary = &run.step("command").summary;
    assert!(summary.contains("### dockhand images"), "{summary}");
    assert!(summary.contains(&format!("| api | {repo}/api:main |")), "{summary}");
}

/// `skopeo login --get-login` with only `DOCKER_CONFIG` to find credentials: the user name.
fn run_peer_login(docker_config: &Path, host: &str) -> String {
    let output = run(Command::new("skopeo")
        .args(["login", "--get-login", "--tls-verify=false", host])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", docker_config.join("no-home"))
        .env("DOCKER_CONFIG", docker_config));
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A `FROM scratch` image context `name` in `dir`, and buildah storage of the test's own,
/// as variables for the job (the runner's defaults would be the system store).
fn scratch_context(dir: &Path, name: &str) -> Vec<(&'static str, String)> {
    let context = dir.join(name);
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("file.txt"), format!("{name} content")).unwrap();
    std::fs::write(context.join("Containerfile"), "FROM scratch\nCOPY file.txt /file.txt\n")
        .unwrap();
    let storage = dir.join(".buildah");
    let conf = dir.join(".buildah.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            storage.display()
        ),
    )
    .unwrap();
    vec![
        ("CONTAINERS_STORAGE_CONF", conf.display().to_string()),
        ("BUILDAH_ISOLATION", "chroot".to_owned()),
        ("STORAGE_DRIVER", "vfs".to_owned()),
    ]
}

#[test]
fn action_run_publishes_and_reports_what_it_pushed() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let host = registry.host();
    let (mut job, mirror) = images_job("");
    for (name, value) in scratch_context(&job.workspace, "api") {
        job.set_env(name, &value);
    }
    std::fs::write(
        job.workspace.join("dockhand.yaml"),
        "images:\n  - name: api\n    context: api\ntags: [\"{short_sha}\", \"{branch}\"]\n",
    )
    .unwrap();
    let repo = format!("{host}/acme/app");
    let run = job.run_action(&[
        ("command", "run"),
        ("repo", &repo),
        ("registry", &host),
        ("username", USER),
        ("password", PASSWORD),
        ("insecure-registries", &host),
        ("download-url", &mirror),
    ]);
    assert!(run.success, "{run:#?}");

    // what a peer client finds in the registry is what the outputs say
    let tags = crate::support::peers::skopeo_tags(&registry, "acme/app/api");
    let mut sorted = tags.clone();
    sorted.sort();
    assert_eq!(sorted, ["01234567", "main"]);
    let digest = crate::support::peers::skopeo_digest(&registry, "acme/app/api:main");
    assert_eq!(run.outputs["references"], format!("{repo}/api:01234567\n{repo}/api:main"));
    assert_eq!(
        run.outputs["digests"],
        format!("{repo}/api:01234567@{digest}\n{repo}/api:main@{digest}")
    );
    let json: Value = serde_json::from_str(&run.outputs["json"]).unwrap();
    assert_eq!(json["pushed"][1]["digest"], digest.to_string());

    // dockhand wrote the outputs and the summary it knows; the action added only the rest,
    // so every output name appears once
    let names: Vec<String> = parse_file_commands(&run.step("command").github_output)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len(), "an output was written twice: {names:?}");
    let summary = &run.step("command").summary;
    // `run` reports its two phases that write a summary: publish and cleanup, once each
    assert_eq!(summary.matches("### dockhand publish").count(), 1, "{summary}");
    assert_eq!(summary.matches("### dockhand cleanup").count(), 1, "{summary}");
    assert!(summary.contains(&format!("`{repo}/api:main`")), "{summary}");
    assert!(!run.log().lines().any(|l| l.contains(PASSWORD) && !l.starts_with("::add-mask::")));

    // `command: cleanup` with keep rules that keep nothing: a dry run plans both tags and
    // deletes none, then the real run deletes them
    let mut cleanup = |dry_run: &str| {
        job.run_action(&[
            ("command", "cleanup"),
            ("repo", &repo),
            ("registry", &host),
            ("username", USER),
            ("password", PASSWORD),
            ("insecure-registries", &host),
            ("download-url", &mirror),
            ("dry-run", dry_run),
            ("keep-last", "0"),
            ("keep-within", "0s"),
        ])
    };
    let planned = cleanup("true");
    assert!(planned.success, "{planned:#?}");
    assert_eq!(planned.outputs["would-delete"], "2");
    assert_eq!(crate::support::peers::skopeo_tags(&registry, "acme/app/api").len(), 2);
    let applied = cleanup("false");
    assert!(applied.success, "{applied:#?}");
    assert_eq!(applied.outputs["deleted"], "2");
    assert!(!crate::support::peers::skopeo_resolves(&registry, "acme/app/api:main"));
}

#[test]
fn action_remove_config_removes_only_the_job_config() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let host = registry.host();
    let (mut job, mirror) = images_job("");
    // the runner's own docker config, which must survive
    let runner_docker = job.home.join(".docker");
    std::fs::create_dir_all(&runner_docker).unwrap();
    let runner_config = r#"{"auths":{"registry.example.com":{"auth":"cnVubmVyOnNlY3JldA=="}}}"#;
    std::fs::write(runner_docker.join("config.json"), runner_config).unwrap();

    let repo = format!("{host}/acme/app");
    let first = job.run_action(&[
        ("command", "ci-env"),
        ("repo", &repo),
        ("insecure-registries", &host),
        ("download-url", &mirror),
    ]);
    assert!(first.success, "{first:#?}");
    let job_config = PathBuf::from(job.exported("DOCKER_CONFIG").expect("DOCKER_CONFIG exported"));
    let copied = std::fs::read_to_string(job_config.join("config.json")).unwrap();
    assert!(copied.contains("registry.example.com"), "the runner's logins are carried over");
    assert_eq!(first.outputs["references"], "", "ci-env runs no command");

    let second = job.run_action(&[("command", "remove-config"), ("download-url", &mirror)]);
    assert!(second.success, "{second:#?}");
    assert!(!job_config.exists(), "the job's config dir is removed");
    assert!(second.step("remove-config").stdout.contains("removed the job docker config"));
    assert_eq!(std::fs::read_to_string(runner_docker.join("config.json")).unwrap(), runner_config);

    // a DOCKER_CONFIG dockhand did not create is left alone, with a warning
    let (mut other, mirror) = images_job("");
    std::fs::create_dir_all(other.home.join(".docker")).unwrap();
    std::fs::write(other.home.join(".docker/config.json"), runner_config).unwrap();
    other.set_env("DOCKER_CONFIG", &other.home.join(".docker").display().to_string());
    let third = other.run_action(&[("command", "remove-config"), ("download-url", &mirror)]);
    assert!(third.success, "{third:#?}");
    assert!(third.step("remove-config").stdout.contains("::warning title=dockhand::not removing"));
    let kept = std::fs::read_to_string(other.home.join(".docker/config.json")).unwrap();
    assert_eq!(kept, runner_config);
}

#[test]
fn action_refuses_a_binary_whose_checksum_differs() {
    let mut job = Job::new(repo_root(), "");
    let mirror = release_mirror(&job, TARGET, Some(&"0".repeat(64)));
    let run = job.run_action(&[("command", "images"), ("download-url", &mirror)]);
    assert!(!run.success);
    let install = run.step("install");
    assert!(install.stdout.contains("::error title=dockhand::checksum mismatch"), "{install:#?}");
    assert_eq!(run.steps.len(), 1, "no step runs after a failed install");
    assert!(!installed_binary(&job, TARGET).exists(), "nothing is installed");
    assert_eq!(install.github_env, "");
}

/// A job on a simulated GitHub-hosted ARM64 runner (`RUNNER_ARCH=ARM64`) whose mirror serves
/// only the arm64 asset, checksummed as `wrong_checksum` or correctly.
fn arm64_job(wrong_checksum: Option<&str>) -> (Job, String) {
    let mut job = Job::new(repo_root(), "");
    job.set_env("RUNNER_ARCH", "ARM64");
    std::fs::write(job.workspace.join("dockhand.yaml"), "images:\n  - name: api\n    context: .\n")
        .unwrap();
    let mirror = release_mirror(&job, ARM64_TARGET, wrong_checksum);
    (job, mirror)
}

#[test]
fn action_on_an_arm64_runner_installs_the_verified_arm64_asset() {
    let (mut job, mirror) = arm64_job(None);
    let run = job.run_action(&[("command", "images"), ("download-url", &mirror)]);
    assert!(run.success, "{run:#?}");
    let install = &run.step("install").stdout;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        install.contains(&format!("from {mirror}/v{version}/dockhand-{version}-{ARM64_TARGET}\n")),
        "{install}"
    );
    let installed = installed_binary(&job, ARM64_TARGET);
    assert_eq!(sha256_hex(&installed), sha256_hex(&released_binary(&job, ARM64_TARGET)));
    assert!(!installed_binary(&job, TARGET).exists(), "no x86_64 binary on an ARM64 runner");
    let outputs = parse_file_commands(&run.step("install").github_output);
    assert!(outputs.contains(&("path".to_owned(), installed.display().to_string())), "{outputs:?}");
    // the later steps ran the installed binary from PATH
    assert!(run.outputs["references"].contains("/api:"), "{run:#?}");
}

#[test]
fn action_on_an_arm64_runner_refuses_an_arm64_asset_whose_checksum_differs() {
    let (mut job, mirror) = arm64_job(Some(&"f".repeat(64)));
    let run = job.run_action(&[("command", "images"), ("download-url", &mirror)]);
    assert!(!run.success);
    let install = run.step("install");
    assert!(
        install.stdout.contains(&format!(
            "::error title=dockhand::checksum mismatch for `dockhand-{}-{ARM64_TARGET}`: expected {}",
            env!("CARGO_PKG_VERSION"),
            "f".repeat(64)
        )),
        "{install:#?}"
    );
    assert_eq!(run.steps.len(), 1, "no step runs after a failed install");
    assert!(!installed_binary(&job, ARM64_TARGET).exists(), "nothing is installed");
}

#[test]
fn action_without_runner_arch_picks_the_asset_for_uname_machine() {
    let machine = run(Command::new("uname").arg("-m"));
    let target = match String::from_utf8_lossy(&machine.stdout).trim() {
        "x86_64" => TARGET,
        "aarch64" => ARM64_TARGET,
        other => panic!("no dockhand release for this machine `{other}`"),
    };
    let mut job = Job::new(repo_root(), "");
    job.remove_env("RUNNER_ARCH");
    std::fs::write(job.workspace.join("dockhand.yaml"), "images:\n  - name: api\n    context: .\n")
        .unwrap();
    let mirror = release_mirror(&job, target, None);
    let run = job.run_action(&[("command", "images"), ("download-url", &mirror)]);
    assert!(run.success, "{run:#?}");
    assert!(installed_binary(&job, target).exists(), "{run:#?}");
}

#[test]
fn action_on_an_unsupported_runner_arch_names_it() {
    let mut job = Job::new(repo_root(), "");
    job.set_env("RUNNER_ARCH", "ARM");
    let run = job.run_action(&[("command", "images")]);
    assert!(!run.success);
    let install = &run.step("install").stdout;
    assert!(
        install.contains(
            "::error title=dockhand::dockhand ships for Linux x86_64 (X64) and arm64 (ARM64) only; this runner is `ARM`"
        ),
        "{install}"
    );
    assert_eq!(run.steps.len(), 1, "no step runs after a failed install");
}

#[test]
fn action_without_a_release_for_its_version_says_so() {
    let mut job = Job::new(repo_root(), "");
    let run = job.run_action(&[("command", "images"), ("version", "9.9.9")]);
    assert!(!run.success);
    assert!(
        run.step("install")
            .stdout
            .contains("no checksum for `dockhand-9.9.9-x86_64-unknown-linux-musl`"),
        "{run:#?}"
    );
}

// --- the GitLab template, run by gitlab-ci-local's shell executor ---------------------------

/// A git checkout (gitlab-ci-local reads the project from git) that includes the template.
struct GitlabProject {
    dir: tempfile::TempDir,
}

impl GitlabProject {
    fn new(gitlab_ci: &str, variables: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        for sub in ["repo", "bin", "tmp", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        // a snapshot of the executable: the shared target dir may be rebuilt meanwhile
        std::fs::copy(env!("CARGO_BIN_EXE_dockhand"), dir.path().join("bin/dockhand")).unwrap();
        std::fs::copy(
            repo_root().join(".gitlab-ci-template.yml"),
            repo.join(".gitlab-ci-template.yml"),
        )
        .unwrap();
        std::fs::create_dir_all(repo.join("templates")).unwrap();
        std::fs::copy(
            repo_root().join("templates/dockhand.yml"),
            repo.join("templates/dockhand.yml"),
        )
        .unwrap();
        std::fs::write(repo.join(".gitlab-ci.yml"), gitlab_ci).unwrap();
        std::fs::write(
            repo.join("dockhand.yaml"),
            "images:\n  - name: api\n    context: .\ntags: [\"{branch}\"]\n",
        )
        .unwrap();
        let mut yaml = String::new();
        for (name, value) in variables {
            writeln!(yaml, "{name}: {}", serde_json::Value::from(*value)).unwrap();
        }
        std::fs::write(repo.join(".gitlab-ci-local-variables.yml"), yaml).unwrap();
        std::fs::write(
            repo.join(".gitignore"),
            ".gitlab-ci-local/\n.gitlab-ci-local-variables.yml\n",
        )
        .unwrap();
        let git = |args: &[&str]| {
            let output = run(Command::new("git")
                .args(["-c", "user.name=ci", "-c", "user.email=ci@example.com"])
                .args(args)
                .current_dir(&repo));
            assert!(output.status.success(), "git {args:?}: {}", text(&output));
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["remote", "add", "origin", "https://gitlab.example.com/acme/app.git"]);
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", "init"]);
        Self { dir }
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// Runs `gitlab-ci-local ARGS` with the snapshot of dockhand first on PATH.
    fn gitlab_ci_local(&self, args: &[&str]) -> Output {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        run(Command::new(tool("node_modules/.bin/gitlab-ci-local"))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.dir.path().join("home"))
            .env("TMPDIR", self.tmp())
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path().join("repo")))
    }
}

/// The job's registry variables, as GitLab would set them for a project on `registry`.
fn gitlab_variables(registry: &Registry) -> Vec<(&'static str, String)> {
    let host = registry.host();
    vec![
        ("CI_REGISTRY", host.clone()),
        ("CI_REGISTRY_IMAGE", format!("{host}/acme/app")),
        ("CI_REGISTRY_USER", USER.to_owned()),
        ("CI_REGISTRY_PASSWORD", PASSWORD.to_owned()),
        ("DOCKHAND_INSECURE_REGISTRIES", host),
    ]
}

/// The predefined variables the tests set, as a real GitLab would.
const PREDEFINED: &str = "--ignore-predefined-vars=CI_REGISTRY,CI_REGISTRY_IMAGE,CI_REGISTRY_USER,\
                          CI_REGISTRY_PASSWORD,GITLAB_CI,CI_PIPELINE_SOURCE";

#[test]
fn gitlab_template_logs_in_with_the_job_token_and_removes_the_config() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let variables = gitlab_variables(&registry);
    let mut pairs: Vec<(&str, &str)> =
        variables.iter().map(|(name, value)| (*name, value.as_str())).collect();
    pairs.push(("GITLAB_CI", "true"));
    let project = GitlabProject::new(
        "include:\n  - local: .gitlab-ci-template.yml\n\
         images:\n  extends: .dockhand-base\n  script:\n\
         \x20   - dockhand images\n\
         \x20   - 'echo \"peer login: $(skopeo login --get-login --tls-verify=false \"$CI_REGISTRY\")\"'\n\
         \x20   - 'echo \"job config: $DOCKER_CONFIG\"'\n",
        &pairs,
    );
    let output = project.gitlab_ci_local(&["--force-shell-executor", PREDEFINED, "images"]);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("PASS  images"), "{log}");
    let host = registry.host();
    assert!(log.contains(&format!("{host}/acme/app/api:main")), "{log}");
    // a peer client finds the job's login through DOCKER_CONFIG alone
    assert!(log.contains(&format!("peer login: {USER}")), "{log}");
    // the collapsible section reached the log as a section
    assert!(log.contains("dockhand_ci_env took"), "{log}");
    // the job's config was under TMPDIR and after_script removed it
    let config = log.lines().find_map(|line| line.split("job config: /").nth(1)).map_or_else(
        || panic!("no job config line: {log}"),
        |rest| PathBuf::from(format!("/{}", rest.trim())),
    );
    assert!(config.starts_with(project.tmp()), "{}", config.display());
    assert!(log.contains("dockhand: removed the job docker config"), "{log}");
    let left: Vec<_> = std::fs::read_dir(project.tmp())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with("dockhand-"))
        .collect();
    assert_eq!(left, Vec::<std::ffi::OsString>::new(), "a job config dir was left in TMPDIR");
    assert!(!log.contains(PASSWORD), "the password was printed: {log}");
}

#[test]
fn gitlab_template_runs_cleanup_in_scheduled_pipelines_only() {
    let project = GitlabProject::new(
        "include:\n  - local: .gitlab-ci-template.yml\n\
         build:\n  extends: .dockhand-build\n\
         registry-cleanup:\n  extends: .dockhand-cleanup\n",
        &[],
    );
    let jobs = |source: &str| {
        let variable = format!("CI_PIPELINE_SOURCE={source}");
        let output = project.gitlab_ci_local(&["--list-csv", "--variable", &variable, PREDEFINED]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip_while(|line| !line.starts_with("name;"))
            .skip(1)
            .map(|line| line.split(';').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(jobs("push"), ["build"]);
    assert_eq!(jobs("schedule"), ["build", "registry-cleanup"]);
}

// --- the GitLab CI/CD component (templates/dockhand.yml) --------------------------------------

/// The component's two YAML documents: the `spec:` header and the jobs.
fn component_documents() -> (String, String) {
    let component = std::fs::read_to_string(repo_root().join("templates/dockhand.yml")).unwrap();
    let (header, jobs) =
        component.split_once("\n---\n").expect("templates/dockhand.yml has a `---` separator");
    (format!("{header}\n"), jobs.to_owned())
}

/// The component's inputs as the header declares them.
fn component_inputs() -> serde_json::Map<String, Value> {
    let (header, _) = component_documents();
    let header: Value = serde_saphyr::from_str(&header).unwrap();
    header["spec"]["inputs"].as_object().expect("spec.inputs is a map").clone()
}

/// check-jsonschema with GitLab's CI schema on `files`.
fn gitlab_ci_schema(files: &[PathBuf]) -> Output {
    run(Command::new(tool(".venv/bin/check-jsonschema"))
        .args(["--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci"])
        .args(files))
}

/// GitLab's CI schema covers `spec:` but reads one YAML document, so the header and the jobs
/// are validated as two files; a header with an unknown input type is the negative control.
#[test]
fn gitlab_component_spec_and_jobs_match_the_gitlab_ci_schema() {
    let (header, jobs) = component_documents();
    let dir = tempfile::tempdir().unwrap();
    let files = [dir.path().join("spec.yml"), dir.path().join("jobs.yml")];
    std::fs::write(&files[0], &header).unwrap();
    std::fs::write(&files[1], &jobs).unwrap();
    let output = gitlab_ci_schema(&files);
    assert!(output.status.success(), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok -- validation done"));

    let bad = header.replacen("      default: run\n", "      type: list\n      default: run\n", 1);
    assert_ne!(bad, header);
    std::fs::write(&files[0], bad).unwrap();
    let output = gitlab_ci_schema(&files[..1]);
    assert!(!output.status.success(), "an unknown input type passed: {}", text(&output));
}

/// One source for the scripts: below its job the component is the template from its script
/// fragments on, byte for byte; inputs appear in the job's name, `extends`, `stage` and
/// `variables` only, never in a script line, and every declared input is used.
#[test]
fn gitlab_component_carries_the_template_jobs_verbatim() {
    let template = std::fs::read_to_string(repo_root().join(".gitlab-ci-template.yml")).unwrap();
    let shared = &template[template.find("# Script fragments").expect("template fragments")..];
    let (_, jobs) = component_documents();
    assert!(jobs.ends_with(shared), "templates/dockhand.yml drifted from .gitlab-ci-template.yml");
    let own = &jobs[..jobs.len() - shared.len()];
    assert!(!shared.contains("$[["), "the template holds no input");
    let used: std::collections::BTreeSet<String> = own
        .split("$[[ inputs.")
        .skip(1)
        .map(|rest| rest.split(" ]]").next().unwrap().to_owned())
        .collect();
    let declared: std::collections::BTreeSet<String> = component_inputs().keys().cloned().collect();
    assert_eq!(used, declared);
    for line in own.lines().filter(|line| line.contains("$[[")) {
        let key = line.trim_start().split(':').next().unwrap();
        assert!(
            key.starts_with('"')
                || ["extends", "stage"].contains(&key)
                || key.starts_with("DOCKHAND_"),
            "an input outside the job's name, extends, stage and variables: {line}"
        );
    }
}

/// `regex:` is GitLab's (RE2 syntax, which these patterns share with the regex crate); it is
/// checked here because gitlab-ci-local skips it. Every default passes its own regex and options.
#[test]
fn gitlab_component_regexes_accept_the_defaults_and_refuse_bad_values() {
    let inputs = component_inputs();
    let matches = |name: &str, value: &str| {
        let pattern = inputs[name]["regex"].as_str().unwrap_or_else(|| panic!("{name}: no regex"));
        regex::Regex::new(pattern).unwrap().is_match(value)
    };
    for (name, input) in &inputs {
        let default = input["default"].as_str().unwrap_or_else(|| panic!("{name}: no default"));
        if input.get("regex").is_some() {
            assert!(matches(name, default), "{name}: default `{default}` fails its regex");
        }
        if let Some(options) = input.get("options") {
            assert!(options.as_array().unwrap().contains(&input["default"]), "{name}");
        }
    }
    for (name, good, bad) in [
        ("job-name", "images: main", ".hidden"),
        ("job-name", "build_1", "two\nlines"),
        ("stage", "build", ""),
        ("image", "registry.example.com/dockhand:1-builder", "an image"),
        ("repo", "registry.example.com/acme/app", "registry.example.com/acme app"),
    ] {
        assert!(matches(name, good), "{name}: `{good}` refused");
        assert!(!matches(name, bad), "{name}: `{bad:?}` accepted");
    }
}

/// The job `gitlab-ci-local --preview` resolves for `gitlab_ci` (extends and !reference merged).
fn previewed_job(gitlab_ci: &str, job: &str) -> Value {
    let project = GitlabProject::new(gitlab_ci, &[]);
    let output = project.gitlab_ci_local(&["--preview", PREDEFINED]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let preview: Value = serde_saphyr::from_str(&stdout)
        .unwrap_or_else(|error| panic!("preview is no YAML ({error}): {stdout}"));
    preview.get(job).cloned().unwrap_or_else(|| panic!("no job `{job}`: {stdout}"))
}

/// For every `command`, the component's job is the template's job given the same values as
/// variables, as gitlab-ci-local resolves both.
#[test]
fn gitlab_component_jobs_equal_the_template_jobs() {
    for command in ["build", "publish", "cleanup", "run"] {
        let values = [
            ("image", "DOCKHAND_IMAGE", "registry.example.com/tools/dockhand:1-builder"),
            ("repo", "DOCKHAND_REPO", "registry.example.com/acme/app"),
            ("config", "DOCKHAND_CONFIG", "ci/dockhand.yaml"),
            ("builder", "DOCKHAND_BUILDER", "buildah"),
            ("args", "DOCKHAND_ARGS", "-v"),
            ("cleanup-args", "DOCKHAND_CLEANUP_ARGS", "--keep-last 10"),
        ];
        let mut component = format!(
            "include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/dockhand@$CI_COMMIT_SHA\n\
             \x20   inputs:\n      command: {command}\n      job-name: images\n      stage: build\n"
        );
        let mut template = "include:\n  - local: .gitlab-ci-template.yml\n\
                            images:\n  extends: .dockhand-COMMAND\n  stage: build\n  variables:\n"
            .replace("COMMAND", command);
        for (input, variable, value) in values {
            writeln!(component, "      {input}: \"{value}\"").unwrap();
            writeln!(template, "    {variable}: \"{value}\"").unwrap();
        }
        let from_component = previewed_job(&component, "images");
        assert_eq!(from_component, previewed_job(&template, "images"), "command `{command}`");
        assert_eq!(from_component["variables"]["DOCKHAND_REPO"], "registry.example.com/acme/app");
    }
}

/// A value outside `options:` stops the pipeline before any job runs.
#[test]
fn gitlab_component_refuses_a_command_outside_its_options() {
    let project = GitlabProject::new(
        "include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/dockhand@$CI_COMMIT_SHA\n\
         \x20   inputs:\n      command: deploy\n",
        &[],
    );
    let output = project.gitlab_ci_local(&["--list", PREDEFINED]);
    let log = text(&output);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("not in the list of allowed options"), "{log}");
}

/// The cleanup job keeps the template's rule: scheduled pipelines only.
#[test]
fn gitlab_component_runs_cleanup_in_scheduled_pipelines_only() {
    let project = GitlabProject::new(
        "include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/dockhand@$CI_COMMIT_SHA\n\
         \x20   inputs:\n      command: build\n      job-name: check\n\
         \x20 - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/dockhand@$CI_COMMIT_SHA\n\
         \x20   inputs:\n      command: cleanup\n      job-name: registry-cleanup\n",
        &[],
    );
    let jobs = |source: &str| {
        let variable = format!("CI_PIPELINE_SOURCE={source}");
        let output = project.gitlab_ci_local(&["--list-csv", "--variable", &variable, PREDEFINED]);
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .skip_while(|line| !line.starts_with("name;"))
            .skip(1)
            .map(|line| line.split(';').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(jobs("push"), ["check"]);
    assert_eq!(jobs("schedule"), ["check", "registry-cleanup"]);
}

// --- the documentation's examples ---------------------------------------------------------

/// The ```yaml blocks of docs/packaging.md that are whole files: workflows (`name:`) and
/// GitLab pipelines (`include:`), written into `dir` as `.github/workflows/N.yml` or `N.gitlab-ci.yml`.
fn docs_examples(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let docs = std::fs::read_to_string(repo_root().join("docs/packaging.md")).unwrap();
    let (mut workflows, mut pipelines) = (Vec::new(), Vec::new());
    std::fs::create_dir_all(dir.join(".github/workflows")).unwrap();
    for (index, block) in docs.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap();
        let path = if block.starts_with("name:") {
            let path = dir.join(format!(".github/workflows/{index}.yml"));
            workflows.push(path.clone());
            path
        } else if block.starts_with("include:") {
            let path = dir.join(format!("{index}.gitlab-ci.yml"));
            pipelines.push(path.clone());
            path
        } else {
            continue;
        };
        std::fs::write(path, block).unwrap();
    }
    (workflows, pipelines)
}

#[test]
fn docs_examples_are_valid_workflows_and_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let (workflows, pipelines) = docs_examples(dir.path());
    assert_eq!((workflows.len(), pipelines.len()), (3, 3), "the examples moved");
    let schema = |name: &str, transform: Option<&str>, files: &[PathBuf]| {
        let mut command = Command::new(tool(".venv/bin/check-jsonschema"));
        command.args(["--builtin-schema", name]);
        if let Some(transform) = transform {
            command.args(["--data-transform", transform]);
        }
        let output = run(command.args(files));
        assert!(output.status.success(), "{name}: {}", text(&output));
    };
    schema("vendor.github-workflows", None, &workflows);
    schema("vendor.gitlab-ci", Some("gitlab-ci"), &pipelines);

    // the examples use `@v1` on purpose (semver usage); zizmor asks for commit pins, and
    // nothing else
    let (output, findings) = zizmor(&dir.path().join(".github/workflows"));
    let others: Vec<&Value> =
        findings.iter().filter(|finding| finding["ident"] != "unpinned-uses").collect();
    assert_eq!(others, Vec::<&Value>::new(), "{}", text(&output));
}

#[test]
fn gitlab_template_publishes_and_hands_the_references_to_later_jobs() {
    publishes_and_hands_the_references_to_later_jobs(
        "include:\n  - local: .gitlab-ci-template.yml\n\
         images:\n  stage: build\n  extends: .dockhand-publish\n",
    );
}

/// The component, included as GitLab's docs say a component project tests its own components
/// (`$CI_SERVER_FQDN/$CI_PROJECT_PATH/NAME@$CI_COMMIT_SHA`): gitlab-ci-local 4.70.0 resolves
/// such an include from the checkout (`templates/NAME.yml`) and interpolates the inputs itself,
/// checking types and `options:`; it skips `regex:` (with a warning), which
/// `gitlab_component_regexes_accept_the_defaults_and_refuse_bad_values` checks instead.
#[test]
fn gitlab_component_publishes_and_hands_the_references_to_later_jobs() {
    publishes_and_hands_the_references_to_later_jobs(
        "include:\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/dockhand@$CI_COMMIT_SHA\n\
         \x20   inputs:\n      command: publish\n      job-name: images\n      stage: build\n",
    );
}

/// `include` defines a publish job `images` in stage `build`; a `deploy` job needs it.
fn publishes_and_hands_the_references_to_later_jobs(include: &str) {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let variables = gitlab_variables(&registry);
    let project = GitlabProject::new(
        &format!(
            "{include}stages: [build, deploy]\n\
             deploy:\n  stage: deploy\n  needs: [images]\n  script:\n\
             \x20   - 'echo \"deploying: $DOCKHAND_PUSHED_DIGESTS\"'\n"
        ),
        &[],
    );
    let repo_dir = project.dir.path().join("repo");
    let mut pairs: Vec<(&str, String)> = variables.clone();
    for (name, value) in scratch_context(&repo_dir, "api") {
        pairs.push((name, value));
    }
    pairs.push(("GITLAB_CI", "true".to_owned()));
    let mut yaml = String::new();
    for (name, value) in &pairs {
        writeln!(yaml, "{name}: {}", serde_json::Value::from(value.as_str())).unwrap();
    }
    std::fs::write(repo_dir.join(".gitlab-ci-local-variables.yml"), yaml).unwrap();
    std::fs::write(
        repo_dir.join("dockhand.yaml"),
        "images:\n  - name: api\n    context: api\ntags: [\"{branch}\"]\n",
    )
    .unwrap();

    let output =
        project.gitlab_ci_local(&["--force-shell-executor", PREDEFINED, "--needs", "deploy"]);
    let log = text(&output);
    assert!(output.status.success(), "{log}");
    let host = registry.host();
    let digest = crate::support::peers::skopeo_digest(&registry, "acme/app/api:main");
    assert!(log.contains(&format!("deploying: {host}/acme/app/api:main@{digest}")), "{log}");
    // the report carries references and digests only: no secret, no path
    let report = std::fs::read_to_string(
        repo_dir.join(".gitlab-ci-local/artifacts/images/.gitlab-ci-reports/dotenv/dockhand.env"),
    )
    .or_else(|_| {
        std::fs::read_to_string(repo_dir.join(".gitlab-ci-local/builds/images/dockhand.env"))
    })
    .unwrap_or_else(|error| panic!("no dotenv report ({error}): {log}"));
    let names: Vec<&str> = report.lines().filter_map(|line| line.split('=').next()).collect();
    assert_eq!(names, ["DOCKHAND_PUSHED_REFERENCES", "DOCKHAND_PUSHED_DIGESTS"], "{report}");
    let tmp = project.tmp().display().to_string();
    for secret_or_path in [PASSWORD, "DOCKER_CONFIG", tmp.as_str()] {
        assert!(!report.contains(secret_or_path), "`{secret_or_path}` in the report: {report}");
    }
    assert!(!log.contains(PASSWORD), "the password was printed: {log}");
}

/// One TLS stack, rustls with ring: neither aws-lc (the AWS SDK's default) nor OpenSSL nor a
/// second rustls is in the dependency graph, dev-dependencies included (`Cargo.lock`), and
/// `cargo tree -i aws-lc-rs` finds nothing to print.
#[test]
fn one_tls_stack_with_ring_and_no_aws_lc() {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap();
    let packages: Vec<&str> = lock
        .lines()
        .filter_map(|line| line.strip_prefix("name = "))
        .map(|name| name.trim_matches('"'))
        .collect();
    for banned in [
        "aws-lc-rs",
        "aws-lc-sys",
        "aws-lc-fips-sys",
        "openssl",
        "openssl-sys",
        "native-tls",
        "s2n-tls",
    ] {
        assert!(!packages.contains(&banned), "`{banned}` is in Cargo.lock");
    }
    assert_eq!(packages.iter().filter(|name| **name == "rustls").count(), 1, "one rustls");
    assert!(packages.contains(&"ring"), "rustls uses ring");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = run(Command::new(cargo)
        .args(["tree", "--offline", "--locked", "-e", "all", "-i", "aws-lc-rs"])
        .current_dir(repo_root()));
    assert!(output.stdout.is_empty(), "cargo tree -i aws-lc-rs printed:\n{}", text(&output));
}
