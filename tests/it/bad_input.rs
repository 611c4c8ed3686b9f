//! Bad input: every case is one clear `error:` line (plus causes and a hint) and the SPEC's
//! exit code, before any registry is contacted.

use crate::support::binary::dockhand;

#[test]
fn bad_input_table() {
    use std::fmt::Write as _;
    let mut everything = String::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("unknown-key.yaml"), "repo: localhost:5000/a\nimagez: []\n")
        .unwrap();
    std::fs::write(dir.path().join("invalid.yaml"), "images:\n  - name: [api\n").unwrap();
    for (args, code, needle) in [
        (&["registry", "detect", "ghcr.io/Acme/app"][..], 1, "repository must be lowercase"),
        (&["registry", "detect", "https://ghcr.io/acme"], 1, "remove the `https://` scheme"),
        (&["registry", "detect", "ghcr.io/acme/app:v1"], 1, "must not carry a tag or digest"),
        (
            &["--repo-implementation", "gitea", "registry", "detect", "ghcr.io/a"],
            1,
            "unknown registry implementation `gitea`",
        ),
        (
            &["--repo-mode", "mono", "registry", "detect", "ghcr.io/a"],
            1,
            "unknown repo mode `mono`",
        ),
        (
            &["--config", "unknown-key.yaml", "registry", "detect", "ghcr.io/a"],
            1,
            "unknown field `imagez`",
        ),
        (&["--config", "invalid.yaml", "registry", "detect", "ghcr.io/a"], 1, "line 2 column 11"),
        (
            &["--config", "missing.yaml", "registry", "detect", "ghcr.io/a"],
            1,
            "Cannot read the project file",
        ),
        (&["registry", "detect"], 1, "No images repo is configured"),
        (
            &["--read-timeout", "0s", "registry", "detect", "ghcr.io/a"],
            1,
            "Invalid --read-timeout: it must be more than zero",
        ),
        (
            &["--connect-timeout", "5", "registry", "detect", "ghcr.io/a"],
            1,
            "Invalid --connect-timeout: `5` has no unit",
        ),
        (&["no-such-command"], 1, "unrecognized subcommand"),
        (&["--output", "yaml", "schema"], 1, "invalid value 'yaml'"),
    ] {
        let run = dockhand(dir.path(), args).run();
        run.assert_code(code);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?} printed on stdout: {}", run.stdout);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        let _ = writeln!(everything, "$ dockhand {}\n{}", args.join(" "), run.stderr);
    }
    // the whole of what a user reads, error, causes and hints, in one reviewed snapshot
    insta::with_settings!({filters => vec![(regex::escape(&dir.path().display().to_string()).as_str(), "[DIR]")]}, {
        insta::assert_snapshot!(everything);
    });
}

#[test]
fn errors_carry_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(dir.path(), &["registry", "detect"]).run();
    run.assert_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines[0], "error: No images repo is configured");
    assert!(lines.last().unwrap().starts_with("hint: pass --repo ADDR"), "{}", run.stderr);
}

#[test]
fn detect_prints_exactly_the_spec_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(
        dir.path(),
        &[
            "registry",
            "detect",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app",
            "--output",
            "json",
        ],
    )
    .run();
    run.assert_code(0);
    insta::assert_snapshot!(run.stdout);
}

#[test]
fn empty_variables_mean_unset() {
    // CI systems often define variables as empty strings
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(dir.path(), &["registry", "detect", "ghcr.io/acme/app", "--output", "json"])
        .env("DOCKHAND_OUTPUT", "")
        .env("DOCKHAND_REPO_IMPLEMENTATION", "")
        .env("DOCKHAND_REPO_MODE", "")
        .env("DOCKHAND_CONFIG", "")
        .run();
    run.assert_code(0);
    assert!(run.stdout.contains("\"implementation\": \"github\""), "{}", run.stdout);
    let run = dockhand(dir.path(), &["registry", "detect"]).env("DOCKHAND_REPO", "").run();
    run.assert_code(1);
    assert!(run.stderr.starts_with("error: No images repo is configured"), "{}", run.stderr);
}

#[test]
fn an_invalid_project_file_is_one_error_line_with_its_snippet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("unknown-key.yaml"), "repo: localhost:5000/a\nimagez: []\n")
        .unwrap();
    std::fs::write(dir.path().join("invalid.yaml"), "images:\n  - name: [api\n").unwrap();
    for (file, position, snippet) in [
        ("invalid.yaml", "line 2 column 11", "invalid.yaml:2:11"),
        ("unknown-key.yaml", "line 2 column 1", "unknown-key.yaml:2:1"),
    ] {
        let run =
            dockhand(dir.path(), &["--config", file, "registry", "detect", "ghcr.io/a"]).run();
        run.assert_code(1);
        let errors = run.stderr.lines().filter(|line| line.starts_with("error:")).count();
        assert_eq!(errors, 1, "{file}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: Invalid project file"), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(position), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(snippet), "{file}: {}", run.stderr);
        assert!(run.stderr.contains('^'), "{file}: the caret snippet: {}", run.stderr);
    }
}

/// A credential helper that fails with the credential on stdout and nothing on stderr: the
/// error names the helper and its status, never what it printed.
#[test]
fn a_failing_credential_helpers_stdout_is_never_quoted() {
    use std::os::unix::fs::PermissionsExt as _;
    const SECRET: &str = "s3cr3t-from-the-helper";
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-dhleaky");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nprintf '{{\"Username\":\"ci\",\"Secret\":\"{SECRET}\"}}'\nexit 3\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("docker");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credHelpers":{"127.0.0.1:9":"dhleaky"}}"#)
        .unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap());
    let run =
        dockhand(dir.path(), &["-vvv", "cleanup", "--repo", "127.0.0.1:9/acme/app", "--dry-run"])
            .env("PATH", &path)
            .env("DOCKER_CONFIG", &config.display().to_string())
            .run();
    run.assert_code(2).assert_not_printed(SECRET);
    assert!(
        run.stderr
            .contains("Credential helper `docker-credential-dhleaky` failed for `127.0.0.1:9`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("exited with status 3"), "{}", run.stderr);
}

/// Outside text in an error (here the address typed, as a CI variable would bring it) cannot
/// start a workflow command or carry an ANSI escape onto the log.
#[test]
fn hostile_text_in_errors_is_inert() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "ghcr.io/Acme\n::add-mask::x\n\u{1b}[2J";
    let run = dockhand(dir.path(), &["registry", "detect", hostile]).run();
    run.assert_code(1);
    assert!(run.stderr.contains("%3A%3Aadd-mask::x"), "{}", run.stderr);
    for line in run.stderr.lines() {
        assert!(!line.trim_start().starts_with("::"), "{line:?}");
        assert!(!line.contains('\u{1b}'), "{line:?}");
    }
}
