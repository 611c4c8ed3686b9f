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

#[test]
fn secret_env_values_are_hidden_in_help() {
    let dir = tempfile::tempdir().unwrap();
    let run = dockhand(dir.path(), &["ci-env", "--help"])
        .env("DOCKHAND_REGISTRY_PASSWORD", "sentinel-password-1234")
        .run();
    run.assert_code(0).assert_not_printed("sentinel-password-1234");
}
