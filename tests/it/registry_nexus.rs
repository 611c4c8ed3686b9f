//! `--repo-implementation nexus` end to end against the Nexus stand-in (`support::stand_in`,
//! following Sonatype's Nexus Repository REST API; the real Nexus was not used) paired with a
//! real distribution registry behind a front that forwards digest `DELETE`s (Nexus's Docker
//! API has them) and refuses tag deletes. The stand-in's component delete takes every tag on
//! the manifest (the worst case Sonatype's documentation leaves open), so a sibling tag that
//! survives proves dockhand moved the deleted tag to a manifest of its own first. skopeo,
//! reading the real registry, judges what is left.

use std::path::Path;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::{Dockhand, Run};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, StandIn, basic_login};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

const USER: &str = "ci-deployer";
const PASSWORD: &str = "NexusStandInPassword0001";
/// The Nexus repository of the stand-in (`nexus_api::REPOSITORY`).
const NEXUS_REPOSITORY: &str = "docker-hosted";

struct Setup {
    registry: Registry,
    nexus: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let nexus = StandIn::start(Flavor::Nexus, registry.port());
    nexus.add_user(USER, PASSWORD, true);
    let client = nexus.client();
    Setup { registry, nexus, client }
}

impl Setup {
    fn repository(&self, path: &str) -> RepoAddress {
        self.nexus.repository(path)
    }

    async fn image(&self, path: &str, tag: &str, days: i64) -> Digest {
        self.nexus.image(&self.client, path, tag, days).await
    }

    /// `dockhand cleanup --output json FLAGS` on `FRONT/acme` as `user`/`password`.
    fn command(&self, dir: &Path, user: &str, password: &str, flags: &[&str]) -> Dockhand {
        self.nexus
            .cleanup(dir, "nexus", "DOCKHAND_REGISTRY_API_URL", flags)
            .env("DOCKHAND_NEXUS_REPOSITORY", NEXUS_REPOSITORY)
            .env("DOCKER_CONFIG", &self.nexus.docker_config(dir, &basic_login(user, password)))
    }

    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        self.command(dir, USER, PASSWORD, flags).run()
    }

    fn api_deletes(&self) -> usize {
        self.nexus.api_requests().iter().filter(|line| line.starts_with("API DELETE")).count()
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_the_component_delete_and_a_rerun_deletes_nothing_standin() {
    let setup = setup();
    let old = setup.image("acme/api", "latest", 10).await;
    tag_existing(&setup.client, &setup.repository("acme/api"), "build-1", &old).await;
    setup.nexus.set_time("acme/api", "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    let older = setup.image("acme/api", "build-2", 11).await;
    let young = setup.image("acme/api", "build-3", 0).await;
    // built 10 days ago but pushed just now: the asset's lastModified counts
    let repushed = setup.image("acme/api", "build-4", 10).await;
    setup.nexus.set_time("acme/api", "build-4", Timestamp::now());

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0).assert_not_printed(PASSWORD);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["build-3", "build-4", "latest"]);
    assert_eq!(skopeo_digest(registry, "acme/api:latest"), old);
    assert_eq!(skopeo_digest(registry, "acme/api:build-3"), young);
    assert_eq!(skopeo_digest(registry, "acme/api:build-4"), repushed);
    assert!(!skopeo_resolves(registry, &format!("acme/api@{older}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "build-4", "latest"]);
    // build-1 went as the component of its own throw-away manifest, build-2 as its component
    assert_eq!(setup.api_deletes(), 2);
    let log = setup.nexus.log();
    assert!(
        log.iter().any(|line| line.starts_with("REGISTRY PUT /v2/acme/api/manifests/build-1")),
        "{log:?}"
    );
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
    assert!(
        log.iter().any(|line| line.contains("version=build-1")),
        "the throw-away component is looked up by tag: {log:?}"
    );

    let before = setup.nexus.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.nexus.writes().len(), before, "{:?}", setup.nexus.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_children_and_untagged_ones_go_by_digest_standin() {
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
    let gone_index = push_index(&setup.client, &repository, "old-multi", &gone_children).await;
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.nexus.set_time("acme/api", "multi", twenty_days);
    setup.nexus.set_time("acme/api", "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup.cleanup(
        dir.path(),
        &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s", "--delete-untagged"],
    );
    run.assert_code(0).assert_not_printed(PASSWORD);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["multi"]);
    assert_eq!(skopeo_digest(registry, "acme/api:multi"), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("acme/api@{child}")), "{child} must stay");
    }
    for digest in gone_children.iter().chain([&gone_index]) {
        assert!(!skopeo_resolves(registry, &format!("acme/api@{digest}")), "{digest} must go");
    }
    // the tagged index as its component, its untagged children through the registry API
    assert_eq!(setup.api_deletes(), 1);
    let registry_deletes: Vec<String> =
        setup.nexus.log().into_iter().filter(|line| line.starts_with("REGISTRY DELETE")).collect();
    assert_eq!(registry_deletes.len(), 2, "{registry_deletes:?}");
    assert_eq!(tags_of(&run.json(), "deleted"), ["-", "-", "old-multi"]);
}

#[tokio::test]
async fn wrong_credentials_and_a_user_without_delete_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("acme/api", "build-1", 5).await;
    setup.image("acme/api", "build-2", 4).await;
    let reader_password = "NexusStandInReaderOnly0002";
    setup.nexus.add_user("reader", reader_password, false);
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];

    let wrong = "NotThePassword0003";
    let run = setup.command(dir.path(), USER, wrong, &policy).run();
    run.assert_code(1).assert_not_printed(wrong);
    assert!(run.stderr.contains("Nexus rejected user `ci-deployer` (401)"), "{}", run.stderr);
    assert_eq!(setup.api_deletes(), 0);

    let run = setup.command(dir.path(), "reader", reader_password, &policy).run();
    run.assert_code(1).assert_not_printed(reader_password);
    assert!(
        run.stderr
            .contains("Nexus refused to delete tag `build-1` of `acme/api` (403 `Access denied`)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nx-repository-view-docker-<repository>-delete"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2"]);
}

#[tokio::test]
async fn an_unreachable_api_exits_2_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("acme/api", "build-1", 5).await;
    setup.image("acme/api", "build-2", 4).await;
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = project(&["api"]);
    let run = setup
        .command(dir.path(), USER, PASSWORD, &["--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_REGISTRY_API_URL", &format!("http://{closed}"))
        .env("DOCKHAND_INSECURE_REGISTRIES", &format!("{},{closed}", setup.nexus.insecure_hosts()))
        .run();
    run.assert_code(2).assert_not_printed(PASSWORD);
    assert!(run.stderr.contains(&format!("Cannot reach `http://{closed}/")), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2"]);
    let writes = setup.nexus.writes();
    assert!(writes.iter().all(|line| !line.contains("DELETE")), "{writes:?}");
}

#[tokio::test]
async fn pages_are_followed_and_429s_are_waited_out_standin() {
    let setup = setup();
    for (tag, days) in [("build-1", 7), ("build-2", 6), ("build-3", 5), ("build-4", 4)] {
        setup.image("acme/api", tag, days).await;
    }
    setup.nexus.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(PASSWORD);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-4"]);
    let api = setup.nexus.api_requests();
    assert!(api.iter().any(|line| line.contains("continuationToken=3")), "{api:?}");
    assert_eq!(setup.api_deletes(), 3);
}

#[tokio::test]
async fn an_unnamed_or_unknown_nexus_repository_exits_1_standin() {
    let setup = setup();
    setup.image("acme/api", "build-1", 5).await;
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];

    let run = setup
        .command(dir.path(), USER, PASSWORD, &policy)
        .env("DOCKHAND_NEXUS_REPOSITORY", "")
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("set DOCKHAND_NEXUS_REPOSITORY"), "{}", run.stderr);
    assert_eq!(setup.nexus.api_requests(), Vec::<String>::new());

    let run = setup
        .command(dir.path(), USER, PASSWORD, &policy)
        .env("DOCKHAND_NEXUS_REPOSITORY", "docker-proxy")
        .run();
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("Nexus has no Docker repository `docker-proxy` (or the login cannot see it): Repository not found"),
        "{}",
        run.stderr
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1"]);
    assert_eq!(setup.api_deletes(), 0);
}
