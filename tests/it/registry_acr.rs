//! `--repo-implementation acr` end to end against the ACR stand-in (`support::acr_api`,
//! following ACR's AAD-OAuth description and data-plane REST reference, Microsoft identity
//! platform's client credentials flow and the instance metadata service; the real Azure was not
//! used), paired with a real distribution registry behind a front that wants ACR's tokens.
//! skopeo, reading the real registry, judges what is left.

use std::path::Path;

use base64::Engine as _;
use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::acr_api::AppProof;
use crate::support::binary::{Dockhand, Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, StandIn, basic_login};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

/// An admin user of the registry (its name and one of its passwords).
const ADMIN: &str = "acmeregistry";
const ADMIN_PASSWORD: &str = "StandInAcrAdminPassword0001";
const PATH: &str = "acme/api";
const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "66666666-7777-8888-9999-000000000000";
const CLIENT_SECRET: &str = "StandInEntraClientSecret~0001";
const OIDC_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.stand-in-github-oidc.Sentinel-acr";

struct Setup {
    registry: Registry,
    acr: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let acr = StandIn::start(Flavor::Acr, registry.port());
    acr.add_user(ADMIN, ADMIN_PASSWORD, true);
    let client = acr.client();
    Setup { registry, acr, client }
}

impl Setup {
    fn repository(&self) -> RepoAddress {
        self.acr.repository(PATH)
    }

    async fn image(&self, tag: &str, days: i64) -> Digest {
        self.acr.image(&self.client, PATH, tag, days).await
    }

    /// `dockhand cleanup --output json FLAGS` on `FRONT/acme`, Entra ID at the API port, with
    /// no docker config entry.
    fn command(&self, dir: &Path, flags: &[&str]) -> Dockhand {
        let empty = dir.join("empty-docker");
        std::fs::create_dir_all(&empty).unwrap();
        self.acr
            .cleanup(dir, "acr", "AZURE_AUTHORITY_HOST", flags)
            .env("DOCKER_CONFIG", &empty.display().to_string())
    }

    /// [`Setup::command`] logged in as the admin user.
    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        let config = self.acr.docker_config(dir, &basic_login(ADMIN, ADMIN_PASSWORD));
        self.command(dir, flags).env("DOCKER_CONFIG", &config).run()
    }

    /// `command` with the service principal's secret in the environment.
    fn with_secret(command: Dockhand, secret: &str) -> Dockhand {
        command
            .env("AZURE_CLIENT_ID", CLIENT)
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_SECRET", secret)
    }

    /// Every untag and delete sent, sorted.
    fn deletes(&self) -> Vec<String> {
        let mut deletes: Vec<String> =
            self.acr.log().into_iter().filter(|line| line.contains(" DELETE ")).collect();
        deletes.sort();
        deletes
    }
}

/// No Entra, refresh or access token, nor a secret, reached the output.
fn assert_no_secret_printed(run: &Run) {
    for secret in
        ["eyJ0.", "acr-refresh-", "acr-access-", CLIENT_SECRET, ADMIN_PASSWORD, OIDC_TOKEN]
    {
        run.assert_not_printed(secret);
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_and_locked_tags_are_kept_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    setup.acr.set_time(PATH, "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    // its image config says it was built just now; the tag's lastUpdateTime says 11 days ago
    let alone =
        push_image(&setup.client, &setup.repository(), Some("build-2"), &minutes_ago(0)).await;
    setup.acr.set_time(PATH, "build-2", Timestamp::now() - SignedDuration::from_hours(264));
    let young = setup.image("build-3", 0).await;
    setup.image("locked-tag", 12).await;
    let locked_manifest = setup.image("locked-manifest", 12).await;
    setup.acr.lock_acr(&format!("{PATH}:locked-tag"), false, true);
    setup.acr.lock_acr(&format!("{PATH}@{locked_manifest}"), true, false);

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0);
    assert_no_secret_printed(&run);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["build-3", "latest", "locked-manifest", "locked-tag"]);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:latest")), old);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:build-3")), young);
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    let reasons: Vec<&str> = document["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["reason"].as_str())
        .collect();
    assert!(reasons.iter().all(|reason| reason.contains("(pushed ")), "{reasons:?}");
    let reason_of = |tag: &str| {
        document["kept"].as_array().unwrap().iter().find(|item| item["tag"] == tag).unwrap()
            ["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        reason_of("locked-tag"),
        "kept: the registry refuses to delete it (locked in ACR (deleteEnabled: false))"
    );
    assert_eq!(
        reason_of("locked-manifest"),
        "kept: the registry refuses to delete it (its manifest is locked in ACR (writeEnabled: false))"
    );
    // build-1 shares its manifest with `latest`: untagged through the API; build-2 was its
    // manifest's only tag: the manifest goes
    assert_eq!(
        setup.deletes(),
        [
            "REGISTRY DELETE /acr/v1/acme/api/_tags/build-1".to_owned(),
            format!("REGISTRY DELETE /v2/acme/api/manifests/{alone}"),
        ]
    );

    // a rerun deletes nothing
    let before = setup.acr.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.acr.writes().len(), before, "{:?}", setup.acr.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_children_and_untagged_manifests_go_standin() {
    let setup = setup();
    let repository = setup.repository();
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
    let gone_index = push_index(&setup.client, &repository, "old-multi", &gone_children).await;
    let orphan = push_image(&setup.client, &repository, None, &old).await;
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.acr.set_time(PATH, "multi", twenty_days);
    setup.acr.set_time(PATH, "old-multi", twenty_days);

    let dir = project(&["api"]);
    let flags =
        ["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s", "--delete-untagged"];
    let run = setup.cleanup(dir.path(), &flags);
    run.assert_code(0);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["multi"]);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:multi")), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("{PATH}@{child}")), "{child} must stay");
    }
    for gone in gone_children.iter().chain([&orphan]) {
        assert!(!skopeo_resolves(registry, &format!("{PATH}@{gone}")), "{gone} must go");
    }
    // the index was its tag's only manifest, its children and the orphan untagged: each
    // deleted by digest, nothing of the kept index
    let mut expected: Vec<String> = [&gone_index, &gone_children[0], &gone_children[1], &orphan]
        .iter()
        .map(|digest| format!("REGISTRY DELETE /v2/acme/api/manifests/{digest}"))
        .collect();
    expected.sort();
    assert_eq!(setup.deletes(), expected);
}

#[tokio::test]
async fn a_service_principal_secret_mints_the_login_and_wrong_ones_delete_nothing_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    setup.acr.add_entra_app(CLIENT, TENANT, AppProof::Secret(CLIENT_SECRET.to_owned()));
    let dir = project(&["api"]);
    let policy = ["--keep-last", "1", "--keep-within", "0s"];

    // no docker config entry and no Entra ID credentials
    let run = setup.command(dir.path(), &policy).run();
    run.assert_code(1);
    assert!(run.stderr.contains("requires credentials and none were given"), "{}", run.stderr);

    // a wrong secret
    let wrong = "StandInWrongSecret~0002";
    let run = Setup::with_secret(setup.command(dir.path(), &policy), wrong).run();
    run.assert_code(1).assert_not_printed(wrong);
    assert!(
        run.stderr.contains(&format!("Entra ID refused the credentials of `{CLIENT}`")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("AADSTS7000215"), "{}", run.stderr);

    // the right secret, but no role on the registry
    let run = Setup::with_secret(setup.command(dir.path(), &policy), CLIENT_SECRET).run();
    run.assert_code(1);
    assert_no_secret_printed(&run);
    assert!(run.stderr.contains("refused the Entra token at `/oauth2/exchange`"), "{}", run.stderr);
    assert!(run.stderr.contains("AcrDelete"), "{}", run.stderr);

    // a role that may push but not delete: the delete is denied, nothing goes
    setup.acr.add_acr_role(CLIENT, false);
    let run = Setup::with_secret(setup.command(dir.path(), &policy), CLIENT_SECRET).run();
    run.assert_code(1);
    assert_no_secret_printed(&run);
    assert!(run.stderr.contains("was denied to"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-1", "build-2"]);

    // with AcrDelete the same command deletes; the Entra ID login comes before a (stale)
    // docker config entry
    setup.acr.add_acr_role(CLIENT, true);
    let stale = setup.acr.docker_config(dir.path(), &basic_login(ADMIN, "stale-password"));
    let run = Setup::with_secret(setup.command(dir.path(), &policy), CLIENT_SECRET)
        .env("DOCKER_CONFIG", &stale)
        .run();
    run.assert_code(0);
    assert_no_secret_printed(&run);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-2"]);
    assert!(
        setup.acr.log().iter().any(|line| line == &format!("API POST /{TENANT}/oauth2/v2.0/token")),
        "{:?}",
        setup.acr.log()
    );
}

#[tokio::test]
async fn an_unreachable_authority_exits_2_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = project(&["api"]);
    let run = Setup::with_secret(
        setup.command(dir.path(), &["--keep-last", "0", "--keep-within", "0s"]),
        CLIENT_SECRET,
    )
    .env("AZURE_AUTHORITY_HOST", &format!("http://127.0.0.1:{port}"))
    .env("DOCKHAND_INSECURE_REGISTRIES", &format!("{},127.0.0.1:{port}", setup.acr.host()))
    .run();
    run.assert_code(2);
    assert_no_secret_printed(&run);
    assert!(
        run.stderr.contains(&format!(
            "Cannot reach `http://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token`"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-1", "build-2"]);
}

#[tokio::test]
async fn rate_limits_are_waited_out_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    setup.acr.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("HTTP 429"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-2"]);
}

/// The login `ci-env` wrote for the front: `(user, password)`.
fn written_login(run: &Run, host: &str) -> (String, String) {
    let dir =
        run.stdout.lines().find_map(|line| line.strip_prefix("export DOCKER_CONFIG=")).map_or_else(
            || panic!("no DOCKER_CONFIG in {}", run.stdout),
            |value| value.trim_matches('\'').to_owned(),
        );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("config.json")).unwrap(),
    )
    .unwrap();
    let auth = config["auths"][host]["auth"].as_str().expect("a login for the host");
    let decoded =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(auth).unwrap()).unwrap();
    let (user, password) = decoded.split_once(':').unwrap();
    (user.to_owned(), password.to_owned())
}

#[test]
fn ci_env_and_login_mint_the_refresh_token_login_standin() {
    let setup = setup();
    let work = tempfile::tempdir().unwrap();
    let base = |args: &[&str]| {
        dockhand(work.path(), args)
            .env("TMPDIR", &work.path().display().to_string())
            .env("DOCKHAND_REPO", &format!("{}/acme", setup.acr.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", "acr")
            .env("DOCKHAND_INSECURE_REGISTRIES", &setup.acr.insecure_hosts())
            .env("AZURE_AUTHORITY_HOST", &setup.acr.api_url())
    };

    // workload identity federation through GitHub's OIDC token service
    setup.acr.add_entra_app(CLIENT, TENANT, AppProof::Federated(OIDC_TOKEN.to_owned()));
    setup.acr.add_acr_role(CLIENT, true);
    setup.acr.set_github_oidc("request-token-1", OIDC_TOKEN);
    let run = base(&["-vv", "ci-env", "generic"])
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_TENANT_ID", TENANT)
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            &format!("{}/github-oidc?api-version=2.0", setup.acr.api_url()),
        )
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-1")
        .run();
    run.assert_code(0).assert_not_printed("request-token-1");
    assert_no_secret_printed(&run);
    let (user, password) = written_login(&run, &setup.acr.host());
    assert_eq!(user, "00000000-0000-0000-0000-000000000000");
    assert!(password.starts_with("acr-refresh-"), "{password}");

    // the same through a token file (AKS workload identity, GitLab `id_tokens` written out)
    let token_file = work.path().join("federated-token");
    std::fs::write(&token_file, format!("{OIDC_TOKEN}\n")).unwrap();
    let run = base(&["ci-env", "generic"])
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file.display().to_string())
        .run();
    run.assert_code(0);
    assert!(written_login(&run, &setup.acr.host()).1.starts_with("acr-refresh-"));

    // a managed identity; `login` checks the minted login against `/v2/`
    setup.acr.set_managed_identity("vm-identity");
    setup.acr.add_acr_role("vm-identity", false);
    let config_dir = work.path().join("docker");
    let run = base(&["-vv", "login", &setup.acr.host(), "--output", "json"])
        .env("DOCKHAND_AZURE_MANAGED_IDENTITY", "true")
        .env(
            "DOCKHAND_AZURE_IMDS_URL",
            &format!("{}/metadata/identity/oauth2/token", setup.acr.api_url()),
        )
        .env("DOCKHAND_DOCKER_CONFIG", &config_dir.display().to_string())
        .run();
    run.assert_code(0);
    assert_no_secret_printed(&run);
    assert_eq!(run.json()["username"], "00000000-0000-0000-0000-000000000000");
    assert!(run.stderr.contains("verified"), "{}", run.stderr);

    // a federated token Entra ID does not accept
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.someone-else").unwrap();
    let run = base(&["ci-env", "generic"])
        .env("AZURE_CLIENT_ID", CLIENT)
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_FEDERATED_TOKEN_FILE", &token_file.display().to_string())
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("AADSTS700213"), "{}", run.stderr);
    assert!(run.stderr.contains("federated credential"), "{}", run.stderr);
}
