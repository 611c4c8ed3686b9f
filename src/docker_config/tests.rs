use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::job_dir::MARKER_FILE;
use super::{Credential, DockerConfig, DockerConfigError, create_job_dir, remove_stale_job_dirs};
use crate::reference::RegistryHost;
use crate::secret::Secret;

const HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unexpected command $1" >&2; exit 2; }
read -r server
case "$server" in
registry.example.com) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}' "$server" ;;
https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub-user","Secret":"hub-pass"}' "$server" ;;
token.example.com) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-token"}' "$server" ;;
broken.example.com) echo "keychain is locked" >&2; exit 1 ;;
garbled.example.com) echo "not json" ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

fn host(text: &str) -> RegistryHost {
    text.parse().unwrap()
}

/// Writes an executable script through a child process, so that no file descriptor open
/// for writing leaks into other tests' children (which would make exec fail with ETXTBSY).
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let status = std::process::Command::new("sh")
        .args(["-c", "printf '%s' \"$2\" > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(&path)
        .arg(body)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// A `PATH` holding only a directory with `docker-credential-test`.
fn helper_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin, "docker-credential-test", HELPER);
    bin.display().to_string()
}

fn config(value: Value) -> DockerConfig {
    let Value::Object(map) = value else { panic!("not an object") };
    DockerConfig(map)
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic { username: username.into(), password: Secret::new(password) }
}

/// Every file under `dir` with its bytes, and every directory with its mode.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let meta = fs::symlink_metadata(entry.path()).unwrap();
            let bytes = if meta.is_file() { fs::read(entry.path()).unwrap() } else { Vec::new() };
            files.insert(entry.path(), (meta.permissions().mode(), bytes));
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    files
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A directory whose `config.json` is a link to `fifo`.
fn fifo_dir(fifo: &Path) -> PathBuf {
    let dir = fifo.with_extension("dir");
    fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink(fifo, dir.join("config.json")).unwrap();
    dir
}

#[test]
fn load_missing_invalid_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(DockerConfig::load(dir.path()).unwrap(), None);

    fs::write(dir.path().join("config.json"), r#"{"auths": {"a": {"auth": "c2VjcmV0"}"#).unwrap();
    let error = DockerConfig::load(dir.path()).unwrap_err();
    let DockerConfigError::InvalidJson { origin, line, .. } = &error else { panic!("{error:?}") };
    assert_eq!(origin, &dir.path().join("config.json").display().to_string());
    assert_eq!(*line, 1);
    assert!(!error.to_string().contains("c2VjcmV0"), "{error}");

    fs::write(dir.path().join("config.json"), "[1]").unwrap();
    assert!(matches!(DockerConfig::load(dir.path()), Err(DockerConfigError::NotAnObject { .. })));

    for (text, key) in [
        (r#"{"auths": ["ghcr.io"]}"#, "auths"),
        (r#"{"auths": {"ghcr.io": "x"}}"#, "auths.ghcr.io"),
        (r#"{"auths": {"ghcr.io": {"auth": 12}}}"#, "auths.ghcr.io.auth"),
        (r#"{"credHelpers": {"ghcr.io": true}}"#, "credHelpers.ghcr.io"),
        (r#"{"credsStore": ["desktop"]}"#, "credsStore"),
    ] {
        fs::write(dir.path().join("config.json"), text).unwrap();
        let error = DockerConfig::load(dir.path()).unwrap_err();
        assert!(
            matches!(&error, DockerConfigError::WrongType { key: got, .. } if got == key),
            "{text}: {error:?}"
        );
    }

    // a FIFO is refused, not read forever
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let error = DockerConfig::load(&fifo_dir(&fifo)).unwrap_err();
    assert!(matches!(error, DockerConfigError::NotAFile { .. }), "{error:?}");

    fs::write(dir.path().join("config.json"), r#"{"auths": {}, "experimental": "enabled"}"#)
        .unwrap();
    let loaded = DockerConfig::load(dir.path()).unwrap().unwrap();
    assert_eq!(loaded, config(json!({"auths": {}, "experimental": "enabled"})));
}

#[test]
fn auth_config_overrides_same_keys_and_keeps_the_rest() {
    let mut merged = config(json!({
        "auths": {"a.example.com": {"auth": "old"}, "b.example.com": {"auth": "keep"}},
        "credHelpers": {"c.example.com": "ecr-login"},
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
    }));
    merged
        .merge_auth_config(
            r#"{"auths": {"a.example.com": {"auth": "new"}, "d.example.com": {"auth": "add"}},
                "credHelpers": {"e.example.com": "gcloud"}}"#,
        )
        .unwrap();
    assert_eq!(
        merged,
        config(json!({
            "auths": {
                "a.example.com": {"auth": "new"},
                "b.example.com": {"auth": "keep"},
                "d.example.com": {"auth": "add"},
            },
            "credHelpers": {"c.example.com": "ecr-login", "e.example.com": "gcloud"},
            "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        }))
    );
}

#[test]
fn invalid_auth_config_names_the_variable_not_the_content() {
    let mut merged = DockerConfig::new();
    let error =
        merged.merge_auth_config(r#"{"auths": {"x": {"auth": "sentinel-secret"}"#).unwrap_err();
    assert!(
        matches!(&error, DockerConfigError::InvalidJson { origin, .. } if origin == "DOCKER_AUTH_CONFIG"),
        "{error:?}"
    );
    assert!(!error.to_string().contains("sentinel-secret"));
    assert!(!format!("{error:?}").contains("sentinel-secret"));
    let error = merged.merge_auth_config(r#""sentinel-secret""#).unwrap_err();
    assert!(error.to_string().contains("`DOCKER_AUTH_CONFIG`"), "{error}");
    assert!(!error.to_string().contains("sentinel-secret"));
    let error = merged.merge_auth_config(r#"{"auths": "sentinel-secret"}"#).unwrap_err();
    assert_eq!(error.to_string(), "In `DOCKER_AUTH_CONFIG`, `auths` must be an object");
    assert_eq!(merged, DockerConfig::new(), "a failed merge changes nothing");
}

#[test]
fn set_auth_writes_the_config_key_and_removes_shadowing_entries() {
    let mut hub = config(json!({
        "auths": {"docker.io": {"auth": "b2xkOm9sZA=="}, "ghcr.io": {"auth": "Z2g6Z2g="}},
        "credHelpers": {"index.docker.io": "desktop", "ghcr.io": "gh"},
    }));
    hub.set_auth(&host("docker.io"), "hubuser", &Secret::new("p@ss:word"));
    assert_eq!(
        hub,
        config(json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHVidXNlcjpwQHNzOndvcmQ="},
                "ghcr.io": {"auth": "Z2g6Z2g="},
            },
            "credHelpers": {"ghcr.io": "gh"},
        }))
    );
    assert_eq!(
        hub.credentials_for(&host("registry-1.docker.io"), None).unwrap(),
        Some(basic("hubuser", "p@ss:word"))
    );
    let mut local = DockerConfig::new();
    local.set_auth(&host("127.0.0.1:5000"), "ci", &Secret::new("pw"));
    assert_eq!(local, config(json!({"auths": {"127.0.0.1:5000": {"auth": "Y2k6cHc="}}})));
    assert!(!format!("{local:?}").contains("Y2k6cHc="), "Debug shows keys only");
}

#[test]
fn credentials_from_auths() {
    let auths = config(json!({"auths": {
        "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
        "https://registry.example.com": {"username": "u", "password": "p"},
        "acr.azurecr.io": {"identitytoken": "refresh"},
        "empty.example.com": {},
        "bad.example.com": {"auth": "!!!"},
        "nocolon.example.com": {"auth": "bm9jb2xvbg=="},
    }}));
    for (registry, want) in [
        ("docker.io", Some(basic("hub", "hubpass"))),
        ("registry.example.com", Some(basic("u", "p"))),
        ("acr.azurecr.io", Some(Credential::IdentityToken(Secret::new("refresh")))),
        ("empty.example.com", None),
        ("other.example.com", None),
    ] {
        assert_eq!(auths.credentials_for(&host(registry), None).unwrap(), want, "{registry}");
    }
    for registry in ["bad.example.com", "nocolon.example.com"] {
        let error = auths.credentials_for(&host(registry), None).unwrap_err();
        assert!(
            matches!(&error, DockerConfigError::InvalidAuth { key, .. } if key == registry),
            "{error:?}"
        );
    }
}

#[test]
fn credentials_from_a_real_helper() {
    let dir = tempfile::tempdir().unwrap();
    let path = helper_path(dir.path());
    let helpers = config(json!({
        "auths": {"registry.example.com": {"auth": "aWdub3JlZDppZ25vcmVk"}, "file.example.com": {"auth": "Zjpm"}},
        "credHelpers": {
            "registry.example.com": "test", "token.example.com": "test", "missing.example.com": "test",
            "broken.example.com": "test", "garbled.example.com": "test", "absent.example.com": "absent",
            "file.example.com": "",
        },
        "credsStore": "test",
    }));
    for (registry, want) in [
        ("registry.example.com", Some(basic("helper-user", "helper-pass"))),
        ("token.example.com", Some(Credential::IdentityToken(Secret::new("refresh-token")))),
        ("missing.example.com", None),
        ("file.example.com", Some(basic("f", "f"))),
        ("docker.io", Some(basic("hub-user", "hub-pass"))),
        ("store-miss.example.com", None),
    ] {
        assert_eq!(
            helpers.credentials_for(&host(registry), Some(&path)).unwrap(),
            want,
            "{registry}"
        );
    }

    let error = helpers.credentials_for(&host("broken.example.com"), Some(&path)).unwrap_err();
    let DockerConfigError::Helper { helper, server, .. } = &error else { panic!("{error:?}") };
    assert_eq!((helper.as_str(), server.as_str()), ("test", "broken.example.com"));
    let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(chain.contains("keychain is locked"), "{chain}");

    let error = helpers.credentials_for(&host("garbled.example.com"), Some(&path)).unwrap_err();
    assert!(matches!(error, DockerConfigError::HelperOutput { .. }), "{error:?}");
    // a helper that is not on PATH is skipped: the entry falls back to `auths`, the store
    // gives nothing
    assert_eq!(helpers.credentials_for(&host("absent.example.com"), Some(&path)).unwrap(), None);
    assert_eq!(
        helpers.credentials_for(&host("registry.example.com"), None).unwrap(),
        Some(basic("ignored", "ignored")),
        "no PATH, no helper: `auths`"
    );
    assert_eq!(helpers.credentials_for(&host("docker.io"), None).unwrap(), None);
}

/// A store that lists three registries and answers `get` for none of them.
const STORE: &str = r#"#!/bin/sh
case "$1" in
list) printf '{"ghcr.io":"u","https://index.docker.io/v1/":"hub","job.example.com":"old"}' ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

#[test]
fn a_creds_store_answers_for_what_it_lists_and_logins_in_auths_win() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    script(&bin, "docker-credential-store", STORE);
    script(&bin, "docker-credential-broken", "#!/bin/sh\nexit 1\n");
    let path = bin.display().to_string();
    let source = dir.path().join("dot-docker");
    fs::create_dir(&source).unwrap();
    fs::write(
        source.join("config.json"),
        r#"{"auths":{"job.example.com":{"auth":"am9iOmpvYg=="},"ghcr.io":{}},
            "credHelpers":{"gcr.io":"gcloud"},"credsStore":"store"}"#,
    )
    .unwrap();
    let job = create_job_dir(dir.path(), Some(&source), None, Some(&path)).unwrap();
    assert_eq!(
        job.config,
        config(json!({
            "auths": {"job.example.com": {"auth": "am9iOmpvYg=="}, "ghcr.io": {}},
            "credHelpers": {
                "gcr.io": "gcloud",
                "ghcr.io": "store",
                "https://index.docker.io/v1/": "store",
            },
        }))
    );
    assert_eq!(
        job.config.credentials_for(&host("job.example.com"), Some(&path)).unwrap(),
        Some(basic("job", "job"))
    );

    // a store whose helper is missing, or whose list fails, stays as it is
    for store in ["absent", "broken"] {
        fs::write(source.join("config.json"), format!(r#"{{"credsStore":"{store}"}}"#)).unwrap();
        let job = create_job_dir(dir.path(), Some(&source), None, Some(&path)).unwrap();
        assert_eq!(job.config, config(json!({"credsStore": store})), "{store}");
    }
}

#[test]
fn write_is_0600_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("config.json"), "x".repeat(10_000)).unwrap();
    let small = config(json!({"auths": {}}));
    small.write(dir.path()).unwrap();
    assert_eq!(mode(&dir.path().join("config.json")), 0o600);
    assert_eq!(DockerConfig::load(dir.path()).unwrap(), Some(small));
    let leftovers: Vec<_> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["config.json"], "no temporary file left");
}

#[test]
fn job_dir_copies_what_is_safe_and_leaves_the_source_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = helper_path(dir.path());
    let source = dir.path().join("dot-docker");
    fs::create_dir_all(source.join("contexts/meta/abc")).unwrap();
    fs::write(source.join("contexts/meta/abc/meta.json"), r#"{"Name":"remote"}"#).unwrap();
    fs::create_dir_all(source.join("cli-plugins")).unwrap();
    script(&source.join("cli-plugins"), "docker-buildx", "#!/bin/sh\n");
    for state in ["run", "buildx", "scout"] {
        fs::create_dir_all(source.join(state)).unwrap();
        fs::write(source.join(state).join("state"), "x").unwrap();
    }
    fs::write(
        source.join("config.json"),
        r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="}},
            "credHelpers":{"registry.example.com":"test","gcr.io":"gcloud"},
            "credsStore":"desktop","currentContext":"remote","detachKeys":"ctrl-e,e",
            "someFutureKey":{"nested":[1,2]}}"#,
    )
    .unwrap();
    let before = snapshot(&source);

    let parent = dir.path().join("runner-temp");
    fs::create_dir(&parent).unwrap();
    let job = create_job_dir(
        &parent,
        Some(&source),
        Some(r#"{"auths":{"registry.gitlab.example.com":{"auth":"Z2w6Z2w="}}}"#),
        Some(&path),
    )
    .unwrap();

    assert_eq!(snapshot(&source), before, "source byte-identical");
    assert_eq!(job.path.parent(), Some(parent.as_path()));
    assert!(job.path.file_name().unwrap().to_str().unwrap().starts_with("dockhand-"));
    assert_eq!(mode(&job.path), 0o700);
    assert_eq!(mode(&job.path.join("config.json")), 0o600);
    assert!(job.path.join(MARKER_FILE).is_file());
    assert_eq!(
        fs::read(job.path.join("contexts/meta/abc/meta.json")).unwrap(),
        br#"{"Name":"remote"}"#
    );
    for absent in ["run", "buildx", "scout", "cli-plugins"] {
        assert!(!job.path.join(absent).exists(), "{absent} copied");
    }
    let plugins = source.join("cli-plugins");
    let want = config(json!({
        "auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
            "registry.gitlab.example.com": {"auth": "Z2w6Z2w="},
        },
        "credHelpers": {"registry.example.com": "test", "gcr.io": "gcloud"},
        "credsStore": "desktop",
        "currentContext": "remote",
        "detachKeys": "ctrl-e,e",
        "someFutureKey": {"nested": [1, 2]},
        "cliPluginsExtraDirs": [plugins.display().to_string()],
    }));
    assert_eq!(job.config, want);
    assert_eq!(DockerConfig::load(&job.path).unwrap(), Some(want));
    assert_eq!(
        job.config.credentials_for(&host("registry.example.com"), Some(&path)).unwrap(),
        Some(basic("helper-user", "helper-pass"))
    );
}

#[test]
fn current_context_without_contexts_is_dropped_and_no_source_gives_an_empty_config() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("config.json"), r#"{"currentContext":"gone","credsStore":"desktop"}"#)
        .unwrap();
    let job = create_job_dir(dir.path(), Some(&source), None, None).unwrap();
    assert_eq!(job.config, config(json!({"credsStore": "desktop"})));

    let job = create_job_dir(dir.path(), None, None, None).unwrap();
    assert_eq!(DockerConfig::load(&job.path).unwrap(), Some(DockerConfig::new()));
    let missing =
        create_job_dir(dir.path(), Some(&dir.path().join("nowhere")), None, None).unwrap();
    assert_eq!(missing.config, DockerConfig::new());
}

#[test]
fn job_dir_is_removed_when_the_source_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent");
    fs::create_dir(&parent).unwrap();
    let error = create_job_dir(&parent, None, Some("{"), None).unwrap_err();
    assert!(matches!(error, DockerConfigError::InvalidJson { .. }));
    assert_eq!(fs::read_dir(&parent).unwrap().count(), 0);
}

#[test]
fn stale_job_dirs_are_removed_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path();
    let old = create_job_dir(parent, None, None, None).unwrap();
    let fresh = create_job_dir(parent, None, None, None).unwrap();
    let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
    fs::File::options()
        .write(true)
        .open(old.path.join(MARKER_FILE))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let foreign = parent.join("dockhand-foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("config.json"), "{}").unwrap();
    // a decoy: named like a job directory, with an old marker, but mode 0755 (user data)
    let decoy = parent.join("dockhand-decoy");
    fs::create_dir(&decoy).unwrap();
    fs::set_permissions(&decoy, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(decoy.join("notes.txt"), "mine").unwrap();
    fs::write(decoy.join(MARKER_FILE), "").unwrap();
    fs::File::options()
        .write(true)
        .open(decoy.join(MARKER_FILE))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    // another user's job directory, stale: theirs to remove (only root can make one here)
    let theirs = create_job_dir(parent, None, None, None).unwrap();
    let chowned = std::os::unix::fs::chown(&theirs.path, Some(65534), Some(65534)).is_ok();
    fs::File::options()
        .write(true)
        .open(theirs.path.join(MARKER_FILE))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    // a stale job directory holding a link out: the link goes, its target stays
    let target = parent.join("target.txt");
    fs::write(&target, "outside").unwrap();
    std::os::unix::fs::symlink(&target, old.path.join("link")).unwrap();
    let other = parent.join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join(MARKER_FILE), "").unwrap();
    fs::File::options()
        .write(true)
        .open(other.join(MARKER_FILE))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();

    let removed = remove_stale_job_dirs(parent, Duration::from_secs(24 * 3600), SystemTime::now());
    assert_eq!(removed, if chowned { 1 } else { 2 });
    assert!(!old.path.exists());
    assert!(fresh.path.join("config.json").is_file());
    assert!(foreign.join("config.json").is_file());
    assert!(other.join(MARKER_FILE).is_file());
    assert!(decoy.join("notes.txt").is_file());
    assert_eq!(theirs.path.exists(), chowned);
    assert_eq!(fs::read_to_string(&target).unwrap(), "outside");
    assert_eq!(
        remove_stale_job_dirs(&parent.join("nowhere"), Duration::ZERO, SystemTime::now()),
        0
    );
}
