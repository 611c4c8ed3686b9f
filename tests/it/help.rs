//! `--help` of every command, snapshotted: the help text is part of the contract users read.

use crate::support::binary::dockhand;

#[test]
fn help_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &[][..],
        &["ci-env"],
        &["login"],
        &["registry"],
        &["registry", "detect"],
        &["images"],
        &["build"],
        &["publish"],
        &["cleanup"],
        &["run"],
        &["schema"],
        &["version"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = dockhand(dir.path(), &args).run();
        run.assert_code(0);
        let name = if command.is_empty() { "dockhand".to_owned() } else { command.join("_") };
        insta::assert_snapshot!(format!("help_{name}"), run.stdout);
    }
}

#[test]
fn version_names_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(dir.path(), &["--version"]).run();
    run.assert_code(0);
    assert!(
        run.stdout.starts_with(&format!("dockhand {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        run.stdout
    );
}

/// `dockhand version`: the build's facts, the same revision `--version` names.
#[test]
fn version_prints_the_build_facts() {
    let dir = tempfile::tempdir().unwrap();
    let short = dockhand(dir.path(), &["--version"]).run();
    let run = dockhand(dir.path(), &["version", "--output", "json"]).run();
    run.assert_code(0);
    let facts = run.json();
    assert_eq!(facts["version"], env!("CARGO_PKG_VERSION"));
    let revision = facts["revision"].as_str().unwrap();
    assert!(short.stdout.contains(&format!("({revision})")), "{} vs {revision}", short.stdout);
    // the test binary is a debug build for the host; a developer's build has no commit time
    assert_eq!(facts["profile"], "debug");
    assert!(facts["target"].as_str().unwrap().ends_with("-linux-gnu"), "{facts}");
    assert!(facts["rustc"].as_str().unwrap().starts_with("rustc 1."), "{facts}");
    assert!(facts["source_date_epoch"].is_null(), "{facts}");
    let text = dockhand(dir.path(), &["version"]).run();
    assert!(text.stdout.contains("commit time: (not a release build)"), "{}", text.stdout);
}

#[test]
fn secret_env_values_are_hidden_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(dir.path(), &["ci-env", "--help"])
        .env("DOCKHAND_REGISTRY_PASSWORD", "sentinel-password-1234")
        .run();
    run.assert_code(0).assert_not_printed("sentinel-password-1234");
}
