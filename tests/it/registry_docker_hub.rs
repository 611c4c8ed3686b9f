//! `--repo-implementation dockerhub` end to end against the Docker Hub stand-in
//! (`support::stand_in`, following the Docker Hub API reference; the real Docker Hub was not
//! used) paired with a real distribution registry behind a front that refuses registry
//! `DELETE` (`UNSUPPORTED`) as Docker Hub does. skopeo, reading the real registry, judges what
//! is left.

use std::path::Path;

use base64::Engine as _;
use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::Run;
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, HubAccess, StandIn};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

const USER: &str = "acme-ci";
/// A personal access token with "Read, Write, Delete".
const TOKEN: &str = "dckr_pat_StandInReadWriteDelete000000001";

struct Setup {
    registry: Registry,
    hub: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let hub = StandIn::start(Flavor::DockerHub, registry.port());
    hub.add_hub_user(USER, TOKEN, HubAccess::ReadWriteDelete);
    let client = hub.client();
    Setup { registry, hub, client }
}

impl Setup {
    fn repository(&self, path: &str) -> RepoAddress {
        self.hub.repository(path)
    }

    async fn image(&self, path: &str, tag: &str, days: i64) -> Digest {
        self.hub.image(&self.client, path, tag, days).await
    }

    fn command(&self, dir: &Path, flags: &[&str]) -> crate::support::binary::Dockhand {
        self.hub.cleanup(dir, "dockerhub", "DOCKHAND_DOCKERHUB_API_URL", flags)
    }

    fn cleanup(&self, dir: &Path, token: &str, flags: &[&str]) -> Run {
        self.command(dir, flags)
            .env("DOCKHAND_DOCKERHUB_USERNAME", USER)
            .env("DOCKHAND_DOCKERHUB_TOKEN", token)
            .run()
    }

    fn api_deletes(&self) -> Vec<String> {
        self.hub.api_requests().into_iter().filter(|line| line.starts_with("API DELETE")).collect()
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_through_the_hub_tag_delete_standin() {
    let setup = setup();
    let old = setup.image("acme/api", "latest", 10).await;
    tag_existing(&setup.client, &setup.repository("acme/api"), "build-1", &old).await;
    setup.hub.set_time("acme/api", "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    let older = setup.image("acme/api", "build-2", 11).await;
    let young = setup.image("acme/api", "build-3", 0).await;

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), TOKEN, &policy);
    run.assert_code(0).assert_not_printed(TOKEN);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["build-3", "latest"]);
    assert_eq!(skopeo_digest(registry, "acme/api:latest"), old);
    assert_eq!(skopeo_digest(registry, "acme/api:build-3"), young);
    // the Hub deletes tags only: the untagged manifest stays for the Hub to keep or collect
    assert!(skopeo_resolves(registry, &format!("acme/api@{older}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "latest"]);
    let mut deletes = setup.api_deletes();
    deletes.sort();
    assert_eq!(
        deletes,
        [
            "API DELETE /v2/repositories/acme/api/tags/build-1/",
            "API DELETE /v2/repositories/acme/api/tags/build-2/"
        ]
    );
    let log = setup.hub.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
    assert!(
        log.iter().all(|line| !line.starts_with("REGISTRY GET /v2/acme/api/manifests/build-")),
        "tags are resolved with HEAD, not GET (a GET is a pull): {log:?}"
    );

    // a rerun deletes nothing
    let before = setup.hub.writes().len();
    let rerun = setup.cleanup(dir.path(), TOKEN, &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.hub.writes().len(), before, "{:?}", setup.hub.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_untagged_children_standin() {
    let setup = setup();
    let repository = setup.repository("acme/api");
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
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.hub.set_time("acme/api", "multi", twenty_days);
    setup.hub.set_time("acme/api", "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup.cleanup(
        dir.path(),
        TOKEN,
        &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s", "--delete-untagged"],
    );
    run.assert_code(0).assert_not_printed(TOKEN);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["multi"]);
    assert_eq!(skopeo_digest(registry, "acme/api:multi"), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("acme/api@{child}")), "{child} must stay");
    }
    assert_eq!(setup.api_deletes(), ["API DELETE /v2/repositories/acme/api/tags/old-multi/"]);
    assert!(tags_of(&run.json(), "deleted").contains(&"old-multi".to_owned()));
}

#[tokio::test]
async fn a_dry_run_deletes_and_pushes_nothing_standin() {
    let setup = setup();
    for (tag, days) in [("build-1", 5), ("build-2", 4), ("build-3", 3)] {
        setup.image("acme/api", tag, days).await;
    }
    let seeded = setup.hub.writes().len();
    let dir = project(&["api"]);
    let run =
        setup.cleanup(dir.path(), TOKEN, &["--dry-run", "--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert_eq!(tags_of(&run.json(), "would_delete"), ["build-1", "build-2"]);
    assert_eq!(setup.hub.writes()[seeded..], [] as [String; 0]);
    assert!(
        setup.hub.api_requests().iter().any(|line| line
            .starts_with("API GET /v2/namespaces/acme/repositories/api/tags?page_size=100")),
        "{:?}",
        setup.hub.api_requests()
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2", "build-3"]);
}

#[tokio::test]
async fn wrong_and_under_permitted_tokens_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("acme/api", "build-1", 5).await;
    setup.image("acme/api", "build-2", 4).await;
    let read_write = "dckr_pat_StandInReadWriteOnly00000000002";
    setup.hub.add_hub_user("acme-rw", read_write, HubAccess::ReadWrite);
    let dir = project(&["api"]);
    let policy = ["-vvv", "--keep-last", "0", "--keep-within", "0s"];
    let seeded = setup.hub.writes().len();

    let wrong = "dckr_pat_NotKnownToTheStandIn000000000003";
    let run = setup.cleanup(dir.path(), wrong, &policy);
    run.assert_code(1).assert_not_printed(wrong);
    assert!(
        run.stderr.contains("Docker Hub rejected the credentials of `acme-ci`"),
        "{}",
        run.stderr
    );

    let run = setup
        .command(dir.path(), &policy)
        .env("DOCKHAND_DOCKERHUB_USERNAME", "acme-rw")
        .env("DOCKHAND_DOCKERHUB_TOKEN", read_write)
        .run();
    run.assert_code(1).assert_not_printed(read_write);
    assert!(run.stderr.contains("lacks the Delete permission"), "{}", run.stderr);
    assert!(run.stderr.contains("\"Read, Write, Delete\""), "{}", run.stderr);

    let during = &setup.hub.writes()[seeded..];
    assert!(during.iter().all(|line| line.starts_with("API DELETE")), "{during:?}");
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2"]);
}

#[tokio::test]
async fn the_older_login_and_the_docker_config_credential_work_standin() {
    let setup = setup();
    for (tag, days) in [("build-1", 5), ("build-2", 4), ("build-3", 3)] {
        setup.image("acme/api", tag, days).await;
    }
    setup.hub.hub_without_auth_token();
    let dir = project(&["api"]);
    let config_dir = dir.path().join("docker");
    std::fs::create_dir(&config_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"));
    std::fs::write(
        config_dir.join("config.json"),
        serde_json::json!({"auths": {setup.hub.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let run = setup
        .command(dir.path(), &["--keep-last", "1", "--keep-within", "0s"])
        .env("DOCKER_CONFIG", &config_dir.display().to_string())
        .run();
    run.assert_code(0).assert_not_printed(TOKEN);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-3"]);
    let api = setup.hub.api_requests();
    assert!(api.contains(&"API POST /v2/auth/token".to_owned()), "{api:?}");
    assert!(api.contains(&"API POST /v2/users/login".to_owned()), "{api:?}");
}

#[tokio::test]
async fn rate_limits_are_waited_out_without_a_storm_standin() {
    let setup = setup();
    for (tag, days) in [("build-1", 5), ("build-2", 4), ("build-3", 3)] {
        setup.image("acme/api", tag, days).await;
    }
    setup.hub.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), TOKEN, &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-3"]);
    // login (refused twice, then answered) + 1 tag page + 2 deletes
    let api = setup.hub.api_requests();
    assert_eq!(api.len(), 6, "{api:?}");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
}

#[tokio::test]
async fn a_repository_unknown_to_the_hub_exits_1_standin() {
    let setup = setup();
    let direct = setup.registry.repository("acme/api");
    let direct_client = Client::new(setup.registry.client_options()).unwrap();
    push_image(&direct_client, &direct, Some("build-1"), &minutes_ago(3 * DAY)).await;
    let dir = project(&["api"]);
    let run = setup.cleanup(dir.path(), TOKEN, &["--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(1).assert_not_printed(TOKEN);
    assert!(
        run.stderr.contains("Repository `acme/api` does not exist on Docker Hub"),
        "{}",
        run.stderr
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1"]);
}
