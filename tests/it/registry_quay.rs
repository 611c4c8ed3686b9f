//! `--repo-implementation quay` end to end against the Quay API stand-in
//! (`support::stand_in`, following Quay's API docs; the real Quay was not used) paired with a
//! real distribution registry behind a front that refuses registry `DELETE`. skopeo, reading
//! the real registry, judges what is left.

use std::path::Path;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::{Dockhand, Run};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, StandIn};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

/// An OAuth application token with `repo:write`.
const TOKEN: &str = "StandInQuayOAuthTokenRepoWrite000000001";
const PATH: &str = "acme/api";

struct Setup {
    registry: Registry,
    quay: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let quay = StandIn::start(Flavor::Quay, registry.port());
    quay.add_quay_token(TOKEN, true);
    let client = quay.client();
    Setup { registry, quay, client }
}

impl Setup {
    fn repository(&self) -> RepoAddress {
        self.quay.repository(PATH)
    }

    async fn image(&self, tag: &str, days: i64) -> Digest {
        self.quay.image(&self.client, PATH, tag, days).await
    }

    fn command(&self, dir: &Path, flags: &[&str]) -> Dockhand {
        self.quay.cleanup(dir, "quay", "DOCKHAND_REGISTRY_API_URL", flags)
    }

    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        self.command(dir, flags).env("DOCKHAND_QUAY_TOKEN", TOKEN).run()
    }

    fn api_deletes(&self) -> Vec<String> {
        let mut deletes: Vec<String> = self
            .quay
            .api_requests()
            .into_iter()
            .filter(|line| line.starts_with("API DELETE"))
            .collect();
        deletes.sort();
        deletes
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_through_the_tag_delete_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    setup.quay.set_time(PATH, "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    // its image config says it was built just now; the tag's start_ts says 11 days ago
    push_image(&setup.client, &setup.repository(), Some("build-2"), &minutes_ago(0)).await;
    setup.quay.set_time(PATH, "build-2", Timestamp::now() - SignedDuration::from_hours(264));
    let young = setup.image("build-3", 0).await;

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0).assert_not_printed(TOKEN);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["build-3", "latest"]);
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
    assert_eq!(
        setup.api_deletes(),
        [
            "API DELETE /api/v1/repository/acme/api/tag/build-1",
            "API DELETE /api/v1/repository/acme/api/tag/build-2"
        ]
    );
    let log = setup.quay.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");

    // a rerun deletes nothing
    let before = setup.quay.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.quay.writes().len(), before, "{:?}", setup.quay.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_children_standin() {
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
    push_index(&setup.client, &repository, "old-multi", &gone_children).await;
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.quay.set_time(PATH, "multi", twenty_days);
    setup.quay.set_time(PATH, "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup
        .cleanup(dir.path(), &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(TOKEN);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["multi"]);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:multi")), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("{PATH}@{child}")), "{child} must stay");
    }
    assert_eq!(setup.api_deletes(), ["API DELETE /api/v1/repository/acme/api/tag/old-multi"]);
}

#[tokio::test]
async fn missing_wrong_and_read_only_tokens_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    let read_only = "StandInQuayOAuthTokenRepoRead0000000002";
    setup.quay.add_quay_token(read_only, false);
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];

    let run = setup.command(dir.path(), &policy).run();
    run.assert_code(1);
    assert!(run.stderr.contains("DOCKHAND_QUAY_TOKEN is not set"), "{}", run.stderr);

    let wrong = "StandInQuayUnknownToken00000000000003";
    let run = setup.command(dir.path(), &policy).env("DOCKHAND_QUAY_TOKEN", wrong).run();
    run.assert_code(1).assert_not_printed(wrong);
    assert!(
        run.stderr.contains("Quay rejected the token (DOCKHAND_QUAY_TOKEN) (401 `Invalid token`)"),
        "{}",
        run.stderr
    );

    let run = setup.command(dir.path(), &policy).env("DOCKHAND_QUAY_TOKEN", read_only).run();
    run.assert_code(1).assert_not_printed(read_only);
    assert!(run.stderr.contains("(403 `Unauthorized`)"), "{}", run.stderr);
    assert!(run.stderr.contains("`repo:write` scope"), "{}", run.stderr);

    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-1", "build-2"]);
    let log = setup.quay.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
}

#[tokio::test]
async fn an_unreachable_api_exits_2_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = project(&["api"]);
    let run = setup
        .command(dir.path(), &["--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_REGISTRY_API_URL", &format!("http://127.0.0.1:{port}"))
        .env("DOCKHAND_INSECURE_REGISTRIES", &format!("{},127.0.0.1:{port}", setup.quay.host()))
        .env("DOCKHAND_QUAY_TOKEN", TOKEN)
        .run();
    run.assert_code(2).assert_not_printed(TOKEN);
    assert!(
        run.stderr.contains(&format!(
            "Cannot reach `http://127.0.0.1:{port}/api/v1/repository/acme/api/tag/"
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
    setup.quay.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-2"]);
}
