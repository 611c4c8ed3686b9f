//! `--repo-implementation artifactory` end to end against the Artifactory stand-in
//! (`support::stand_in`, following JFrog's REST API documentation; the real Artifactory was
//! not used) paired with a real distribution registry behind a front that refuses registry
//! `DELETE`, so the tests prove none is sent. The images repo is `FRONT/docker-local`: the
//! repository key is the path's first component. skopeo, reading the real registry, judges
//! what is left.

use std::path::Path;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::{Dockhand, Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, StandIn, basic_login as basic};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

const USER: &str = "ci-deployer";
const PASSWORD: &str = "AKCp8StandInApiKeyOrPassword0001";
const KEY: &str = "docker-local";

struct Setup {
    registry: Registry,
    artifactory: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let artifactory = StandIn::start(Flavor::Artifactory, registry.port());
    artifactory.add_user(USER, PASSWORD, true);
    let client = artifactory.client();
    Setup { registry, artifactory, client }
}

impl Setup {
    fn repository(&self, image: &str) -> RepoAddress {
        self.artifactory.repository(&format!("{KEY}/{image}"))
    }

    async fn image(&self, image: &str, tag: &str, days: i64) -> Digest {
        self.artifactory.image(&self.client, &format!("{KEY}/{image}"), tag, days).await
    }

    fn set_time(&self, image: &str, tag: &str, at: Timestamp) {
        self.artifactory.set_time(&format!("{KEY}/{image}"), tag, at);
    }

    /// `dockhand cleanup --output json FLAGS` on `FRONT/docker-local` with the login `entry`.
    fn command(&self, dir: &Path, entry: &serde_json::Value, flags: &[&str]) -> Dockhand {
        let mut argv = vec!["cleanup", "--output", "json"];
        argv.extend_from_slice(flags);
        dockhand(dir, &argv)
            .env("DOCKHAND_REPO", &format!("{}/{KEY}", self.artifactory.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", "artifactory")
            .env("DOCKHAND_INSECURE_REGISTRIES", &self.artifactory.insecure_hosts())
            .env("DOCKHAND_REGISTRY_API_URL", &self.artifactory.api_url())
            .env("DOCKER_CONFIG", &self.artifactory.docker_config(dir, entry))
    }

    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        self.command(dir, &basic(USER, PASSWORD), flags).run()
    }

    fn api_deletes(&self) -> Vec<String> {
        let mut deletes: Vec<String> = self
            .artifactory
            .api_requests()
            .into_iter()
            .filter(|line| line.starts_with("API DELETE"))
            .collect();
        deletes.sort();
        deletes
    }

    fn tags(&self, image: &str) -> Vec<String> {
        skopeo_tags(&self.registry, &format!("{KEY}/{image}"))
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_the_tag_folder_delete_and_a_rerun_deletes_nothing_standin() {
    let setup = setup();
    let old = setup.image("api", "latest", 10).await;
    tag_existing(&setup.client, &setup.repository("api"), "build-1", &old).await;
    setup.set_time("api", "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    setup.image("api", "build-2", 11).await;
    let young = setup.image("api", "build-3", 0).await;
    // built 10 days ago but pushed (its folder written) just now: the folder's time counts
    let repushed = setup.image("api", "build-4", 10).await;
    setup.set_time("api", "build-4", Timestamp::now());

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0).assert_not_printed(PASSWORD);

    assert_eq!(setup.tags("api"), ["build-3", "build-4", "latest"]);
    let registry = &setup.registry;
    assert_eq!(skopeo_digest(registry, &format!("{KEY}/api:latest")), old);
    assert_eq!(skopeo_digest(registry, &format!("{KEY}/api:build-3")), young);
    assert_eq!(skopeo_digest(registry, &format!("{KEY}/api:build-4")), repushed);
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "build-4", "latest"]);
    assert_eq!(
        setup.api_deletes(),
        [
            "API DELETE /artifactory/docker-local/api/build-1",
            "API DELETE /artifactory/docker-local/api/build-2"
        ]
    );
    let log = setup.artifactory.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
    assert!(
        log.contains(&"API GET /artifactory/api/docker/docker-local/v2/api/tags/list".to_owned()),
        "{log:?}"
    );
    assert!(
        log.contains(&"API GET /artifactory/api/storage/docker-local/api/build-4".to_owned()),
        "{log:?}"
    );

    let before = setup.artifactory.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.artifactory.writes().len(), before, "{:?}", setup.artifactory.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_untagged_children_standin() {
    let setup = setup();
    let repository = setup.repository("api");
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
    setup.set_time("api", "multi", twenty_days);
    setup.set_time("api", "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup.cleanup(
        dir.path(),
        &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s", "--delete-untagged"],
    );
    run.assert_code(0).assert_not_printed(PASSWORD);
    assert_eq!(setup.tags("api"), ["multi"]);
    let registry = &setup.registry;
    assert_eq!(skopeo_digest(registry, &format!("{KEY}/api:multi")), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("{KEY}/api@{child}")), "{child} must stay");
    }
    assert_eq!(setup.api_deletes(), ["API DELETE /artifactory/docker-local/api/old-multi"]);
    assert!(tags_of(&run.json(), "deleted").contains(&"old-multi".to_owned()));
}

#[tokio::test]
async fn wrong_credentials_and_a_login_without_delete_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("api", "build-1", 5).await;
    setup.image("api", "build-2", 4).await;
    let reader_password = "AKCp8StandInReaderOnly00000002";
    setup.artifactory.add_user("reader", reader_password, false);
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];

    let wrong = "NotThePassword0003";
    let run = setup.command(dir.path(), &basic(USER, wrong), &policy).run();
    run.assert_code(1).assert_not_printed(wrong);
    assert!(
        run.stderr.contains("Artifactory rejected user `ci-deployer` (401 `Bad credentials`)"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.api_deletes(), Vec::<String>::new());

    let run = setup.command(dir.path(), &basic("reader", reader_password), &policy).run();
    run.assert_code(1).assert_not_printed(reader_password);
    assert!(
        run.stderr.contains("Not enough permissions to delete/overwrite artifact"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Delete/Overwrite permission"), "{}", run.stderr);
    assert_eq!(setup.tags("api"), ["build-1", "build-2"]);
}

#[tokio::test]
async fn an_unreachable_api_exits_2_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("api", "build-1", 5).await;
    setup.image("api", "build-2", 4).await;
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = project(&["api"]);
    let run = setup
        .command(dir.path(), &basic(USER, PASSWORD), &["--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_REGISTRY_API_URL", &format!("http://{closed}"))
        .env(
            "DOCKHAND_INSECURE_REGISTRIES",
            &format!("{},{closed}", setup.artifactory.insecure_hosts()),
        )
        .run();
    run.assert_code(2).assert_not_printed(PASSWORD);
    assert!(run.stderr.contains(&format!("Cannot reach `http://{closed}/")), "{}", run.stderr);
    assert_eq!(setup.tags("api"), ["build-1", "build-2"]);
    let writes = setup.artifactory.writes();
    assert!(writes.iter().all(|line| !line.contains("DELETE")), "{writes:?}");
}

#[tokio::test]
async fn an_access_token_goes_as_bearer_and_429s_are_waited_out_standin() {
    let setup = setup();
    for (tag, days) in [("build-1", 5), ("build-2", 4), ("build-3", 3)] {
        setup.image("api", tag, days).await;
    }
    let token = "eyJ2ZXIiOiIyIiwidHlwIjoiSldUIn0.StandInAccessToken.0004";
    setup.artifactory.add_access_token(token, true);
    setup.artifactory.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup
        .command(
            dir.path(),
            &serde_json::json!({"identitytoken": token}),
            &["--keep-last", "1", "--keep-within", "0s"],
        )
        .run();
    run.assert_code(0).assert_not_printed(token);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert_eq!(setup.tags("api"), ["build-3"]);
    assert_eq!(
        setup.api_deletes(),
        [
            "API DELETE /artifactory/docker-local/api/build-1",
            "API DELETE /artifactory/docker-local/api/build-2"
        ]
    );
}

#[tokio::test]
async fn an_image_artifactory_does_not_know_exits_1_standin() {
    let setup = setup();
    // pushed past the front, so Artifactory's side has no such image
    let direct = setup.registry.repository(&format!("{KEY}/api"));
    let direct_client = Client::new(setup.registry.client_options()).unwrap();
    push_image(&direct_client, &direct, Some("build-1"), &minutes_ago(3 * DAY)).await;
    let dir = project(&["api"]);
    let run = setup.cleanup(dir.path(), &["--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(1).assert_not_printed(PASSWORD);
    assert!(
        run.stderr.contains("Image `api` is not in Artifactory repository `docker-local`"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.tags("api"), ["build-1"]);

    // an images repo whose path names no repository key
    setup.artifactory.image(&setup.client, "api", "build-1", 3).await;
    let run = dockhand(dir.path(), &["cleanup", "--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_REPO", &setup.artifactory.host())
        .env("DOCKHAND_REPO_IMPLEMENTATION", "artifactory")
        .env("DOCKHAND_INSECURE_REGISTRIES", &setup.artifactory.insecure_hosts())
        .env("DOCKHAND_REGISTRY_API_URL", &setup.artifactory.api_url())
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("names no Artifactory repository key"), "{}", run.stderr);
    assert!(run.stderr.contains("DOCKHAND_ARTIFACTORY_REPO_KEY"), "{}", run.stderr);
}
