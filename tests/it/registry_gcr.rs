//! `--repo-implementation gcr` end to end against the Google stand-in (`support::google_api`:
//! Google's OAuth 2.0 token endpoint, STS, IAM Credentials, and a registry front behaving as
//! Artifact Registry's Docker API is documented; the real services were not used) paired with a
//! real distribution registry. skopeo, reading the real registry, judges what is left.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use dockhand::reference::Digest;
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::{Dockhand, Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, StandIn};
use crate::support::{Auth, Deletes, Registry, rsa_key_pair, tags_of};

const EMAIL: &str = "ci-cleanup@acme-prod.iam.gserviceaccount.com";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ci/providers/github";
const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.stand-in-oidc.Sentinel-6b1d";

struct Setup {
    registry: Registry,
    google: StandIn,
    client: Client,
    /// The service account's private key (PEM), registered with the stand-in.
    private_key: String,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let google = StandIn::start(Flavor::Google, registry.port());
    let (private_key, public_key) = rsa_key_pair();
    google.add_google_account(EMAIL, &public_key);
    let client = google.client();
    Setup { registry, google, client, private_key }
}

impl Setup {
    /// A service-account key file in `dir` with `private_key`, its token URI at the stand-in.
    fn key_file(&self, dir: &Path, private_key: &str) -> PathBuf {
        let path = dir.join("key.json");
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": "0123456789abcdef",
            "private_key": private_key,
            "client_email": EMAIL,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.google.api_url()),
        });
        std::fs::write(&path, key.to_string()).unwrap();
        path
    }

    /// An external-account file in `dir` whose subject token is `subject` (a JSON file with
    /// the field `value`, as google-github-actions/auth writes it), impersonating `EMAIL`.
    fn external_account_file(&self, dir: &Path, subject: &str) -> PathBuf {
        let token_file = dir.join("oidc.json");
        std::fs::write(&token_file, serde_json::json!({"value": subject}).to_string()).unwrap();
        let path = dir.join("external.json");
        let api = self.google.api_url();
        let file = serde_json::json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{api}/v1/token"),
            "service_account_impersonation_url": format!("{api}/v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken"),
            "credential_source": {"file": token_file, "format": {"type": "json", "subject_token_field_name": "value"}},
        });
        std::fs::write(&path, file.to_string()).unwrap();
        path
    }

    /// `dockhand ARGS` in `dir` on the images repo `FRONT/acme` as `gcr`, with the credentials
    /// file `credentials`.
    fn dockhand(&self, dir: &Path, args: &[&str], credentials: &Path) -> Dockhand {
        dockhand(dir, args)
            .env("TMPDIR", &dir.display().to_string())
            .env("DOCKHAND_REPO", &format!("{}/acme", self.google.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", "gcr")
            .env("DOCKHAND_INSECURE_REGISTRIES", &self.google.insecure_hosts())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &credentials.display().to_string())
    }

    fn cleanup(&self, dir: &Path, credentials: &Path, flags: &[&str]) -> Run {
        let mut argv = vec!["cleanup", "--output", "json"];
        argv.extend_from_slice(flags);
        self.dockhand(dir, &argv, credentials).run()
    }

    async fn image(&self, tag: &str, days: i64) -> Digest {
        self.google.image(&self.client, "acme/api", tag, days).await
    }

    fn registry_deletes(&self) -> Vec<String> {
        let log = self.google.log();
        log.into_iter().filter(|line| line.starts_with("REGISTRY DELETE")).collect()
    }
}

/// Asserts that no Google access token (`ya29.…`) reached the output.
fn assert_no_token_printed(run: &Run) {
    assert!(!run.stdout.contains("ya29.") && !run.stderr.contains("ya29."), "{}", run.stderr);
}

#[tokio::test]
async fn a_sibling_tag_survives_and_ages_come_from_the_tag_list_standin() {
    let setup = setup();
    let repository = setup.google.repository("acme/api");
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &repository, "build-1", &old).await;
    let older = setup.image("build-2", 11).await;
    let young = setup.image("build-3", 0).await;
    // its config says 30 days, the registry says it was uploaded now: the registry wins
    push_image(&setup.client, &repository, Some("fresh"), &minutes_ago(30 * DAY)).await;

    let dir = project(&["api"]);
    let key = setup.key_file(dir.path(), &setup.private_key);
    let policy = ["-vv", "--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &key, &policy);
    run.assert_code(0);
    assert_no_token_printed(&run);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["build-3", "fresh", "latest"]);
    assert_eq!(skopeo_digest(registry, "acme/api:latest"), old);
    assert_eq!(skopeo_digest(registry, "acme/api:build-3"), young);
    assert!(!skopeo_resolves(registry, &format!("acme/api@{older}")), "build-2's image goes");
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "fresh", "latest"]);
    // build-1 by its tag; build-2's manifest is refused while tagged, so its tag goes first
    let deletes = setup.registry_deletes();
    assert!(deletes.contains(&"REGISTRY DELETE /v2/acme/api/manifests/build-1".to_owned()));
    assert!(deletes.contains(&"REGISTRY DELETE /v2/acme/api/manifests/build-2".to_owned()));
    assert!(deletes.contains(&format!("REGISTRY DELETE /v2/acme/api/manifests/{older}")));
    assert!(!deletes.contains(&format!("REGISTRY DELETE /v2/acme/api/manifests/{old}")));
    let minted = setup.google.api_requests();
    assert_eq!(minted, ["API POST /token"], "one access token for the run");

    // a rerun deletes nothing
    let before = setup.google.writes().len();
    let rerun = setup.cleanup(dir.path(), &key, &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    let writes = setup.google.writes();
    assert!(
        writes[before..]
            .iter()
            .all(|line| line.starts_with("REGISTRY DELETE /v2/acme/api/manifests/sha256:")),
        "only the harmless delete probe: {writes:?}"
    );
}

#[tokio::test]
async fn a_tag_delete_that_takes_its_manifest_stops_tag_deletes_standin() {
    let setup = setup();
    let repository = setup.google.repository("acme/api");
    let first = setup.image("build-1", 10).await;
    tag_existing(&setup.client, &repository, "latest", &first).await;
    let second = setup.image("build-2", 10).await;
    tag_existing(&setup.client, &repository, "stable", &second).await;
    setup.google.google_tag_delete_takes_manifest();

    let dir = project(&["api"]);
    let key = setup.key_file(dir.path(), &setup.private_key);
    let flags =
        ["--keep-tag", "latest", "--keep-tag", "stable", "--keep-last", "0", "--keep-within", "0s"];
    let run = setup.cleanup(dir.path(), &key, &flags);
    run.assert_code(2);
    assert!(run.stderr.contains("also removed the manifest"), "{}", run.stderr);
    // the checked tag delete cost its image (and the sibling on it); the other tag was then
    // moved to a throw-away manifest, and its sibling kept its image
    let left = skopeo_tags(&setup.registry, "acme/api");
    let (survivor, digest, moved) = match left.as_slice() {
        [tag] if tag == "latest" => ("latest", first, "build-1"),
        [tag] if tag == "stable" => ("stable", second, "build-2"),
        other => panic!("one kept tag survives: {other:?}"),
    };
    assert_eq!(skopeo_digest(&setup.registry, &format!("acme/api:{survivor}")), digest);
    let log = setup.google.log();
    let seeded = log.iter().position(|line| line == "API POST /token").expect("minted");
    assert!(
        log[seeded..].contains(&format!("REGISTRY PUT /v2/acme/api/manifests/{moved}")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_kept_index_keeps_its_children_and_untagged_manifests_are_listed_standin() {
    let setup = setup();
    let repository = setup.google.repository("acme/api");
    let old = minutes_ago(20 * DAY);
    let kept_children = [
        push_image(&setup.client, &repository, None, &old).await,
        push_image(&setup.client, &repository, None, &old).await,
    ];
    let kept_index = push_index(&setup.client, &repository, "multi", &kept_children).await;
    let gone_children = [
        push_image(&setup.client, &repository, None, &old).await,
        push_image(&setup.client, &repository, None, &old).await,
    ];
    push_index(&setup.client, &repository, "old-multi", &gone_children).await;
    let orphan = push_image(&setup.client, &repository, None, &old).await;
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.google.set_time("acme/api", "multi", twenty_days);
    setup.google.set_time("acme/api", "old-multi", twenty_days);

    let dir = project(&["api"]);
    let key = setup.key_file(dir.path(), &setup.private_key);
    let flags =
        ["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s", "--delete-untagged"];
    let run = setup.cleanup(dir.path(), &key, &flags);
    run.assert_code(0);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["multi"]);
    assert_eq!(skopeo_digest(registry, "acme/api:multi"), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("acme/api@{child}")), "{child} must stay");
    }
    for gone in gone_children.iter().chain([&orphan]) {
        assert!(!skopeo_resolves(registry, &format!("acme/api@{gone}")), "{gone} must go");
    }
}

#[tokio::test]
async fn wrong_credentials_exit_1_and_nothing_is_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    let seeded = setup.google.writes().len();
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];

    // a key Google does not know for this account: the JWT's signature is refused
    let (other_key, _) = rsa_key_pair();
    let key = setup.key_file(dir.path(), &other_key);
    let run = setup.cleanup(dir.path(), &key, &policy);
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("Google refused the credentials of `{EMAIL}`")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Invalid JWT Signature."), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);

    // a federated identity whose token the provider does not accept
    setup.google.add_google_federation(AUDIENCE, OIDC_TOKEN, Some(EMAIL));
    let external = setup.external_account_file(dir.path(), "eyJ.not-the-ci-token.x");
    let run = setup.cleanup(dir.path(), &external, &policy);
    run.assert_code(1).assert_not_printed("not-the-ci-token");
    assert!(run.stderr.contains("The provided subject token is not valid."), "{}", run.stderr);

    // a file that is no credentials file
    std::fs::write(dir.path().join("bad.json"), r#"{"type": "authorized_user"}"#).unwrap();
    let run = setup.cleanup(dir.path(), &dir.path().join("bad.json"), &policy);
    run.assert_code(1);
    assert!(run.stderr.contains("`authorized_user`"), "{}", run.stderr);

    assert_eq!(setup.google.writes()[seeded..], [] as [String; 0]);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2"]);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_exits_2_and_nothing_is_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    let seeded = setup.google.writes().len();
    let dir = project(&["api"]);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let key_path = dir.path().join("key.json");
    let mut key: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(setup.key_file(dir.path(), &setup.private_key)).unwrap(),
    )
    .unwrap();
    key["token_uri"] = format!("http://{closed_host}/token").into();
    std::fs::write(&key_path, key.to_string()).unwrap();
    let run = setup
        .dockhand(dir.path(), &["cleanup", "--keep-last", "0", "--keep-within", "0s"], &key_path)
        .env(
            "DOCKHAND_INSECURE_REGISTRIES",
            &format!("{},{closed_host}", setup.google.insecure_hosts()),
        )
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!("Cannot reach `http://{closed_host}/token`")),
        "{}",
        run.stderr
    );
    assert_eq!(setup.google.writes()[seeded..], [] as [String; 0]);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1"]);

    // a plain-HTTP token endpoint on a host not named insecure is refused before any request
    let run = setup.dockhand(dir.path(), &["cleanup", "--dry-run"], &key_path).run();
    run.assert_code(1);
    assert!(run.stderr.contains("is plain HTTP"), "{}", run.stderr);
}

#[test]
fn ci_env_and_login_write_the_minted_login_standin() {
    let setup = setup();
    setup.google.add_google_federation(AUDIENCE, OIDC_TOKEN, Some(EMAIL));
    let work = tempfile::tempdir().unwrap();
    let external = setup.external_account_file(work.path(), OIDC_TOKEN);
    let run = setup.dockhand(work.path(), &["-vv", "ci-env", "generic"], &external).run();
    run.assert_code(0).assert_not_printed(OIDC_TOKEN);
    assert_no_token_printed(&run);
    let dir =
        run.stdout.lines().find_map(|line| line.strip_prefix("export DOCKER_CONFIG=")).map_or_else(
            || panic!("no DOCKER_CONFIG in {}", run.stdout),
            |value| value.trim_matches('\'').to_owned(),
        );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("config.json")).unwrap(),
    )
    .unwrap();
    let auth = config["auths"][setup.google.host()]["auth"].as_str().expect("a login for the host");
    let decoded =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(auth).unwrap()).unwrap();
    let (user, token) = decoded.split_once(':').unwrap();
    assert_eq!(user, "oauth2accesstoken");
    assert!(token.starts_with("ya29.impersonated-"), "the service account's own token: {token}");
    assert_eq!(
        setup.google.api_requests(),
        [
            "API POST /v1/token".to_owned(),
            format!("API POST /v1/projects/-/serviceAccounts/{EMAIL}:generateAccessToken"),
        ]
    );

    // `login` without a password mints the service account's login and checks it on `/v2/`
    let key = setup.key_file(work.path(), &setup.private_key);
    let config_dir = work.path().join("docker");
    let run = setup
        .dockhand(work.path(), &["-vv", "login", &setup.google.host(), "--output", "json"], &key)
        .env("DOCKHAND_DOCKER_CONFIG", &config_dir.display().to_string())
        .run();
    run.assert_code(0);
    assert_no_token_printed(&run);
    assert_eq!(run.json()["username"], "oauth2accesstoken");
    assert!(run.stderr.contains("verified"), "{}", run.stderr);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(config_dir.join("config.json")).unwrap())
            .unwrap();
    assert!(written["auths"][setup.google.host()]["auth"].is_string(), "{written}");

    // a principal that may not impersonate the service account
    setup.google.add_google_federation(AUDIENCE, OIDC_TOKEN, None);
    let run = setup.dockhand(work.path(), &["ci-env", "generic"], &external).run();
    run.assert_code(1);
    assert!(run.stderr.contains("iam.serviceAccounts.getAccessToken"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("credentials of `{EMAIL}`")), "{}", run.stderr);
}
