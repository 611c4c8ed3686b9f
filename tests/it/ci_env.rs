//! `dockhand ci-env` end to end: the built executable, a cleared environment with variables
//! taken from the GitHub and GitLab documentation, and a real registry to log in to.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::binary::{Run, dockhand};
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

/// Parses `export NAME='value'` lines by letting a real `sh` evaluate them.
fn sourced(lines: &str, names: &[&str]) -> BTreeMap<String, String> {
    let mut script = lines.to_owned();
    for name in names {
        writeln!(script, "printf '%s\\0' \"${name}\"").unwrap();
    }
    let output = Command::new("sh").arg("-c").arg(&script).env_clear().output().unwrap();
    assert!(output.status.success(), "sh failed: {}", String::from_utf8_lossy(&output.stderr));
    let values: Vec<String> =
        output.stdout.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    names.iter().zip(values).map(|(name, value)| ((*name).to_owned(), value)).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn generic_env<'a>(
    registry: &'a Registry,
    tmp: &'a str,
    user: &'a str,
    password: &'a str,
) -> Vec<(&'static str, String)> {
    vec![
        ("TMPDIR", tmp.to_owned()),
        ("DOCKHAND_REGISTRY", registry.host()),
        ("DOCKHAND_REGISTRY_USERNAME", user.to_owned()),
        ("DOCKHAND_REGISTRY_PASSWORD", password.to_owned()),
        ("DOCKHAND_REPO", format!("{}/acme/app", registry.host())),
        ("DOCKHAND_INSECURE_REGISTRIES", registry.insecure_hosts()),
    ]
}

fn run_generic(dir: &Path, vars: &[(&'static str, String)], extra: &[&str]) -> Run {
    let mut args = vec!["ci-env", "generic"];
    args.extend_from_slice(extra);
    let mut command = dockhand(dir, &args);
    for (name, value) in vars {
        command = command.env(name, value);
    }
    command.run()
}

#[test]
fn generic_login_writes_a_private_config_skopeo_can_use() {
    for auth in [Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth, Deletes::Enabled);
        let work = tempfile::tempdir().unwrap();
        let tmp = work.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let tmp_str = tmp.display().to_string();
        let run = run_generic(work.path(), &generic_env(&registry, &tmp_str, USER, PASSWORD), &[]);
        run.assert_code(0).assert_not_printed(PASSWORD);

        let vars = sourced(
            &run.stdout,
            &["DOCKER_CONFIG", "DOCKHAND_REPO", "DOCKHAND_REPO_IMPLEMENTATION", "DOCKHAND_CI"],
        );
        let config_dir = PathBuf::from(&vars["DOCKER_CONFIG"]);
        assert!(config_dir.starts_with(&tmp), "{config_dir:?}");
        assert_eq!(mode(&config_dir), 0o700);
        assert_eq!(mode(&config_dir.join("config.json")), 0o600);
        assert_eq!(vars["DOCKHAND_REPO"], format!("{}/acme/app", registry.host()));
        assert_eq!(vars["DOCKHAND_REPO_IMPLEMENTATION"], "default");
        assert_eq!(vars["DOCKHAND_CI"], "generic");

        // skopeo, a peer client, authenticates with nothing but the job's DOCKER_CONFIG: the
        // repository does not exist yet, so a good login reads 404, and the negative control
        // (an empty config) reads 401
        let skopeo = |config_dir: &Path| {
            let output = Command::new("skopeo")
                .args([
                    "list-tags",
                    "--tls-verify=false",
                    &format!("docker://{}/acme/app", registry.host()),
                ])
                .env_clear()
                .env("DOCKER_CONFIG", config_dir)
                .env("HOME", work.path())
                .env("PATH", std::env::var("PATH").unwrap())
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stderr).to_lowercase()
        };
        let with_job_config = skopeo(&config_dir);
        assert!(with_job_config.contains("404"), "{auth:?}: {with_job_config}");
        let empty = work.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let without = skopeo(&empty);
        assert!(without.contains("401") || without.contains("unauthorized"), "{auth:?}: {without}");
    }
}

#[test]
fn rejected_credentials_exit_1_naming_registry_and_user() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().display().to_string();
    let wrong = "wrong-Sentinel-password-42";
    let run = run_generic(work.path(), &generic_env(&registry, &tmp, USER, wrong), &[]);
    run.assert_code(1).assert_not_printed(wrong);
    assert!(run.stderr.contains(&registry.host()) && run.stderr.contains(USER), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    // nothing was created for a job whose login failed
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("dockhand-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unreachable_registry_exits_2() {
    // bind and close a port so nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    let run = dockhand(work.path(), &["ci-env", "generic"])
        .env("TMPDIR", &work.path().display().to_string())
        .env("DOCKHAND_REGISTRY", &format!("127.0.0.1:{port}"))
        .env("DOCKHAND_REGISTRY_USERNAME", "u")
        .env("DOCKHAND_REGISTRY_PASSWORD", "unreachable-Sentinel")
        .env("DOCKHAND_INSECURE_REGISTRIES", &format!("127.0.0.1:{port}"))
        .run();
    run.assert_code(2).assert_not_printed("unreachable-Sentinel");
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
}

#[test]
fn parallel_jobs_on_one_home_never_share_a_config() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    let original = r#"{"auths":{"pull.example.com":{"auth":"cHVsbDpwdWxs"}},"proxies":{"default":{"noProxy":"x"}}}"#;
    std::fs::write(home.join(".docker/config.json"), original).unwrap();
    let tmp = work.path().display().to_string();

    let runs: Vec<(usize, Run)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let vars = generic_env(&registry, &tmp, USER, PASSWORD);
                let work = work.path();
                scope.spawn(move || {
                    let mut vars = vars;
                    // each job logs in under its own name: the registry accepts any user the
                    // htpasswd file knows, so use --no-login and check the files instead
                    vars[2].1 = format!("user{i}");
                    vars[3].1 = format!("password-{i}");
                    (i, run_generic(work, &vars, &["--no-login"]))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut dirs = std::collections::BTreeSet::new();
    for (i, run) in &runs {
        run.assert_code(0);
        let dir = PathBuf::from(&sourced(&run.stdout, &["DOCKER_CONFIG"])["DOCKER_CONFIG"]);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        let auth = config["auths"][registry.host()]["auth"].as_str().unwrap();
        let decoded = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, auth).unwrap(),
        )
        .unwrap();
        assert_eq!(decoded, format!("user{i}:password-{i}"));
        // the runner's own entries came along
        assert_eq!(config["auths"]["pull.example.com"]["auth"], "cHVsbDpwdWxs");
        assert_eq!(config["proxies"]["default"]["noProxy"], "x");
        dirs.insert(dir);
    }
    assert_eq!(dirs.len(), 16, "every job got its own directory");
    assert_eq!(
        std::fs::read_to_string(home.join(".docker/config.json")).unwrap(),
        original,
        "~/.docker untouched"
    );
    assert_eq!(std::fs::read_dir(home.join(".docker")).unwrap().count(), 1);
}

/// A GitHub Actions `push` to `main`, as the GitHub docs describe the variables.
fn github_push_env(work: &Path) -> Vec<(&'static str, String)> {
    let event = work.join("event.json");
    std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_REPOSITORY", "Octo-Org/Hello-World".into()),
        ("GITHUB_REPOSITORY_OWNER", "Octo-Org".into()),
        ("GITHUB_ACTOR", "octocat".into()),
        ("GITHUB_TOKEN", "ghs_Sentinel0123456789".into()),
        ("GITHUB_SHA", "ffac537e6cbbf934b08745a378932722df287a53".into()),
        ("GITHUB_REF", "refs/heads/main".into()),
        ("GITHUB_REF_NAME", "main".into()),
        ("GITHUB_REF_TYPE", "branch".into()),
        ("GITHUB_EVENT_NAME", "push".into()),
        ("GITHUB_EVENT_PATH", event.display().to_string()),
        ("GITHUB_RUN_ID", "1658821493".into()),
        ("GITHUB_JOB", "build".into()),
        ("GITHUB_SERVER_URL", "https://github.com".into()),
        ("RUNNER_TEMP", work.join("runner-temp").display().to_string()),
        ("GITHUB_ENV", work.join("github-env").display().to_string()),
    ]
}

fn with_env(
    mut command: crate::support::binary::Dockhand,
    vars: &[(&'static str, String)],
) -> crate::support::binary::Dockhand {
    for (name, value) in vars {
        command = command.env(name, value);
    }
    command
}

#[test]
fn github_shell_appends_to_github_env_and_masks_the_token() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("runner-temp")).unwrap();
    std::fs::write(work.path().join("github-env"), "EARLIER=kept\n").unwrap();
    let run = with_env(
        dockhand(work.path(), &["ci-env", "--shell", "github", "--no-login"]),
        &github_push_env(work.path()),
    )
    .run();
    run.assert_code(0);
    // stdout carries only masks: for the token and for the docker `auth` value derived from it
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "octocat:ghs_Sentinel0123456789",
    );
    assert_eq!(run.stdout, format!("::add-mask::ghs_Sentinel0123456789\n::add-mask::{auth}\n"));
    assert!(!run.stderr.contains("ghs_Sentinel0123456789"));

    let github_env = std::fs::read_to_string(work.path().join("github-env")).unwrap();
    assert!(!github_env.contains("ghs_Sentinel0123456789"));
    let runner_temp = work.path().join("runner-temp").display().to_string();
    let filtered = github_env.replace(&runner_temp, "[RUNNER_TEMP]");
    let filtered = regex::Regex::new(r"dockhand-[A-Za-z0-9]+")
        .unwrap()
        .replace_all(&filtered, "dockhand-[RANDOM]");
    insta::assert_snapshot!(filtered);

    // with `-o`, the masks still reach the log (stdout) and no secret reaches the file
    let run = with_env(
        dockhand(work.path(), &["ci-env", "--shell", "github", "--no-login", "-o", "out"]),
        &github_push_env(work.path()),
    )
    .run();
    run.assert_code(0);
    assert_eq!(run.stdout, format!("::add-mask::ghs_Sentinel0123456789\n::add-mask::{auth}\n"));
    let file = std::fs::read_to_string(work.path().join("out")).unwrap();
    assert!(!file.contains("ghs_Sentinel0123456789") && !file.contains(&auth), "{file}");
}

#[test]
fn gitlab_merge_request_exports() {
    let work = tempfile::tempdir().unwrap();
    let vars: Vec<(&'static str, String)> = vec![
        ("GITLAB_CI", "true".into()),
        ("CI_REGISTRY", "registry.example.com:5050".into()),
        ("CI_REGISTRY_IMAGE", "registry.example.com:5050/group/project".into()),
        ("CI_REGISTRY_USER", "gitlab-ci-token".into()),
        ("CI_REGISTRY_PASSWORD", "glcbt-Sentinel-abc".into()),
        ("CI_JOB_TOKEN", "glcbt-Sentinel-abc".into()),
        ("CI_COMMIT_SHA", "1ecfd275763eff1d6b4844ea3168962458c9f27a".into()),
        ("CI_COMMIT_REF_NAME", "feature/Login's \"$HOME\" `x`".into()),
        ("CI_MERGE_REQUEST_IID", "42".into()),
        ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", "2ecfd275763eff1d6b4844ea3168962458c9f27a".into()),
        ("CI_DEFAULT_BRANCH", "main".into()),
        ("CI_PIPELINE_ID", "1000".into()),
        ("CI_JOB_ID", "2000".into()),
        ("TMPDIR", work.path().display().to_string()),
    ];
    let run = with_env(dockhand(work.path(), &["ci-env", "--no-login"]), &vars).run();
    run.assert_code(0).assert_not_printed("glcbt-Sentinel-abc");
    let names = [
        "DOCKHAND_CI",
        "DOCKHAND_REPO",
        "DOCKHAND_REPO_IMPLEMENTATION",
        "DOCKHAND_SHA",
        "DOCKHAND_REF_NAME",
        "DOCKHAND_PR_NUMBER",
        "DOCKHAND_DEFAULT_BRANCH",
        "DOCKHAND_JOB_ID",
        "DOCKHAND_PIPELINE_ID",
    ];
    let values = sourced(&run.stdout, &names);
    assert_eq!(values["DOCKHAND_CI"], "gitlab");
    assert_eq!(values["DOCKHAND_REPO"], "registry.example.com:5050/group/project");
    assert_eq!(values["DOCKHAND_REPO_IMPLEMENTATION"], "gitlab");
    assert_eq!(values["DOCKHAND_SHA"], "2ecfd275763eff1d6b4844ea3168962458c9f27a");
    assert_eq!(
        values["DOCKHAND_REF_NAME"], "feature/Login's \"$HOME\" `x`",
        "quoting survives a real sh"
    );
    assert_eq!(values["DOCKHAND_PR_NUMBER"], "42");
    assert_eq!(values["DOCKHAND_DEFAULT_BRANCH"], "main");
    assert_eq!(values["DOCKHAND_JOB_ID"], "2000");
    assert_eq!(values["DOCKHAND_PIPELINE_ID"], "1000");
    let dir = sourced(&run.stdout, &["DOCKER_CONFIG"])["DOCKER_CONFIG"].clone();
    let config = std::fs::read_to_string(Path::new(&dir).join("config.json")).unwrap();
    assert!(config.contains("registry.example.com:5050"), "{config}");
}

#[test]
fn output_file_is_truncated_and_private() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("env.sh");
    std::fs::write(&file, "x".repeat(10_000)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = dockhand(
        work.path(),
        &["ci-env", "generic", "--no-login", "-o", "env.sh", "--shell", "dotenv"],
    )
    .env("TMPDIR", &work.path().display().to_string())
    .env("DOCKHAND_REPO", "localhost:5000/acme/app")
    .run();
    run.assert_code(0);
    assert!(run.stdout.is_empty());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains('x'.to_string().repeat(20).as_str()), "stale bytes survived: {text}");
    assert!(text.starts_with("DOCKER_CONFIG="), "{text}");
    assert!(text.contains("DOCKHAND_REPO=localhost:5000/acme/app\n"), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the old file's mode survived");
}

/// A value the shell cannot carry (a newline in dotenv) fails the command, and the job
/// directory made for it, credential inside, does not stay behind.
#[test]
fn a_refused_render_leaves_no_job_directory() {
    let work = tempfile::tempdir().unwrap();
    let run = dockhand(work.path(), &["ci-env", "generic", "--no-login", "--shell", "dotenv"])
        .env("TMPDIR", &work.path().display().to_string())
        .env("DOCKHAND_REPO", "localhost:5000/acme/app")
        .env("DOCKHAND_REGISTRY_USERNAME", "ci")
        .env("DOCKHAND_REGISTRY_PASSWORD", "p-Sentinel-123")
        .env("DOCKHAND_REF_NAME", "main\nEVIL=1")
        .run();
    run.assert_code(1).assert_not_printed("p-Sentinel-123");
    let left: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("dockhand-"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn output_file_refuses_a_symbolic_link() {
    let work = tempfile::tempdir().unwrap();
    let victim = work.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, work.path().join("out")).unwrap();
    let run = dockhand(work.path(), &["ci-env", "generic", "--no-login", "-o", "out"])
        .env("TMPDIR", &work.path().display().to_string())
        .env("DOCKHAND_REPO", "localhost:5000/acme/app")
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("is a symbolic link"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn bad_ci_env_input() {
    let work = tempfile::tempdir().unwrap();
    for (args, env, needle) in [
        (&["ci-env", "jenkins"][..], vec![], "unknown CI `jenkins`"),
        (&["ci-env", "--shell", "fish"], vec![], "fish"),
        (&["ci-env", "--shell", "github", "--no-login"], vec![], "GITHUB_ENV is not set"),
        (
            &["ci-env", "generic"],
            vec![("DOCKHAND_REGISTRY_PASSWORD", "p-Sentinel")],
            "DOCKHAND_REGISTRY_USERNAME",
        ),
        (&["ci-env", "generic"], vec![("DOCKHAND_REF_TYPE", "commit")], "DOCKHAND_REF_TYPE"),
    ] {
        let mut command =
            dockhand(work.path(), args).env("TMPDIR", &work.path().display().to_string());
        for (name, value) in env {
            command = command.env(name, value);
        }
        let run = command.run();
        run.assert_code(1).assert_not_printed("p-Sentinel");
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn secrets_stay_out_of_the_most_verbose_logs() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().display().to_string();
    let mut vars = generic_env(&registry, &tmp, USER, PASSWORD);
    vars.push(("RUST_LOG", "trace".to_owned()));
    let run = run_generic(work.path(), &vars, &["-vv"]);
    run.assert_code(0).assert_not_printed(PASSWORD);
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    run.assert_not_printed(&basic);
    assert!(run.stderr.contains("verified"), "{}", run.stderr);
}

/// The job's config, read back as JSON.
fn job_config(run: &Run) -> (PathBuf, serde_json::Value) {
    let dir = PathBuf::from(&sourced(&run.stdout, &["DOCKER_CONFIG"])["DOCKER_CONFIG"]);
    let config = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    (dir, config)
}

#[test]
fn the_runner_config_is_carried_over_as_it_is_with_a_helper_missing_from_path() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    // `dhmissing` is on no PATH here: installed later in the job, or only on the host
    let original = serde_json::json!({
        "auths": {"pull.example.com": {"auth": "cHVsbDpwdWxs"}},
        "credHelpers": {"gcr.io": "dhmissing", "europe-docker.pkg.dev": "dhmissing", "file.example.com": ""},
        "proxies": {"default": {"noProxy": "x"}},
        "detachKeys": "ctrl-e,e",
        "someFutureKey": {"nested": [1, 2]},
    });
    std::fs::write(home.join(".docker/config.json"), original.to_string()).unwrap();
    let tmp = work.path().display().to_string();
    let run = run_generic(work.path(), &generic_env(&registry, &tmp, USER, PASSWORD), &[]);
    run.assert_code(0).assert_not_printed(PASSWORD);
    assert!(
        run.stderr.contains("`docker-credential-dhmissing` is not on PATH; kept"),
        "{}",
        run.stderr
    );
    let (_, mut config) = job_config(&run);
    // everything but dockhand's own entry, the job's login, is the runner's, unchanged
    let login = config["auths"].as_object_mut().unwrap().remove(&registry.host()).unwrap();
    assert!(login["auth"].is_string());
    assert_eq!(config, original);
}

#[test]
fn with_a_creds_store_the_jobs_login_wins_in_every_client_and_the_store_keeps_the_rest() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    std::fs::create_dir_all(home.join(".docker")).unwrap();
    // a runner keychain that knows another registry and has no login for this one
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let store = bin.join("docker-credential-dhstore");
    std::fs::write(
        &store,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\ncase \"$1\" in\n  list) printf '{{\"other.example.com\":\"someone\"}}' ;;\n  *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
            log = work.path().join("store.log").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = r#"{"auths":{"other.example.com":{}},"credsStore":"dhstore"}"#;
    std::fs::write(home.join(".docker/config.json"), runner).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let tmp = work.path().display().to_string();
    let mut command = dockhand(work.path(), &["ci-env", "generic"]).env("PATH", &path);
    for (name, value) in generic_env(&registry, &tmp, USER, PASSWORD) {
        command = command.env(name, &value);
    }
    let run = command.run();
    run.assert_code(0);
    let (dir, config) = job_config(&run);
    assert_eq!(config.get("credsStore"), None, "{config}");
    assert_eq!(config["credHelpers"], serde_json::json!({"other.example.com": "dhstore"}));
    assert!(config["auths"][registry.host()]["auth"].is_string());
    assert_eq!(std::fs::read_to_string(home.join(".docker/config.json")).unwrap(), runner);

    // the same config with the store left in place: what the docker CLI got before
    let control = work.path().join("control");
    std::fs::create_dir(&control).unwrap();
    let mut with_store = config.clone();
    with_store["credsStore"] = "dhstore".into();
    with_store.as_object_mut().unwrap().remove("credHelpers");
    std::fs::write(control.join("config.json"), with_store.to_string()).unwrap();

    // every client that runs here, with nothing but DOCKER_CONFIG: the repository is empty,
    // so an authenticated read is "manifest unknown" and an anonymous one "unauthorized"
    let reference = format!("{}/acme/app:v1", registry.host());
    let xdg = work.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    let client = |program: &str, args: &[&str], config: &Path| {
        let output = Command::new(program)
            .args(args)
            .env_clear()
            .env("DOCKER_CONFIG", config)
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("PATH", &path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .to_lowercase();
        assert!(!output.status.success(), "{program}: {text}");
        text
    };
    let storage = work.path().join("buildah");
    let (root, runroot) = (storage.join("root"), storage.join("run"));
    let docker_ref = format!("docker://{reference}");
    let mut clients: Vec<(&str, Vec<&str>)> = vec![
        ("skopeo", vec!["inspect", "--raw", "--tls-verify=false", &docker_ref]),
        (
            "buildah",
            vec![
                "--root",
                root.to_str().unwrap(),
                "--runroot",
                runroot.to_str().unwrap(),
                "--storage-driver",
                "vfs",
                "pull",
                "--tls-verify=false",
                &docker_ref,
            ],
        ),
    ];
    // scripts/setup.sh does not install the docker CLI: where it is installed, it is checked too
    let docker = Command::new("docker").arg("--version").output().is_ok();
    if docker {
        clients.push(("docker", vec!["manifest", "inspect", "--insecure", &reference]));
    }
    for (program, args) in &clients {
        let text = client(program, args, &dir);
        // docker says "no such manifest", skopeo and buildah "manifest unknown"
        assert!(
            text.contains("manifest unknown") || text.contains("no such manifest"),
            "{program} with the job's config: {text}"
        );
    }
    if docker {
        // the negative control: with the store in place, the docker CLI asks it, not `auths`
        let text = client("docker", &["manifest", "inspect", "--insecure", &reference], &control);
        assert!(text.contains("no basic auth credentials"), "docker with the store: {text}");
        // and for the registry the store knows, the docker CLI still asks the store
        std::fs::write(work.path().join("store.log"), "").unwrap();
        let _ = client("docker", &["manifest", "inspect", "other.example.com/acme/app:v1"], &dir);
        let asked = std::fs::read_to_string(work.path().join("store.log")).unwrap();
        assert!(asked.contains("get"), "docker asked the store for other.example.com: {asked}");
    }
}
