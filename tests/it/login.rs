//! `dockhand login`: checks credentials against a real registry (htpasswd and token auth) and
//! writes them to the docker config in use, reading the password from stdin only.

use crate::support::binary::dockhand;
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

#[test]
fn login_checks_and_saves_credentials() {
    for auth in [Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth, Deletes::Enabled);
        let work = tempfile::tempdir().unwrap();
        let config_dir = work.path().join("cfg");
        let run =
            dockhand(work.path(), &["login", &registry.host(), "-u", USER, "--password-stdin"])
                .env("DOCKER_CONFIG", &config_dir.display().to_string())
                .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
                .stdin(&format!("{PASSWORD}\n"))
                .run();
        run.assert_code(0).assert_not_printed(PASSWORD);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(config_dir.join("config.json")).unwrap())
                .unwrap();
        let auth_value = config["auths"][registry.host()]["auth"].as_str().unwrap();
        let expected = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}"),
        );
        assert_eq!(auth_value, expected, "{auth:?}");
        // ~/.docker is untouched when DOCKER_CONFIG points elsewhere
        assert!(!work.path().join("home/.docker").exists());
    }
}

#[test]
fn login_rejections() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let config_dir = work.path().join("cfg");
    for (stdin, code, needle) in [
        ("wrong-Sentinel-pw\n", 1, "rejected the credentials of user `ciuser`"),
        ("", 1, "No password on stdin"),
        ("\n", 1, "No password on stdin"),
    ] {
        let run =
            dockhand(work.path(), &["login", &registry.host(), "-u", USER, "--password-stdin"])
                .env("DOCKER_CONFIG", &config_dir.display().to_string())
                .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
                .stdin(stdin)
                .run();
        run.assert_code(code).assert_not_printed("wrong-Sentinel-pw");
        assert!(run.stderr.contains(needle), "{stdin:?}: {}", run.stderr);
        assert!(!config_dir.join("config.json").exists(), "nothing saved after a failed login");
    }
    // a `:` in the username would split differently at the registry
    let run =
        dockhand(work.path(), &["login", &registry.host(), "-u", "admin:x", "--password-stdin"])
            .env("DOCKER_CONFIG", &config_dir.display().to_string())
            .stdin("pw\n")
            .run();
    run.assert_code(1);
    assert!(run.stderr.contains("contains `:`"), "{}", run.stderr);
    assert!(!config_dir.join("config.json").exists());
    // the password is never an argument
    let run =
        dockhand(work.path(), &["login", &registry.host(), "-u", USER, "--password", "x"]).run();
    run.assert_code(1);
}
