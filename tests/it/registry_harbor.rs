//! `--repo-implementation harbor` end to end against the Harbor API stand-in
//! (`support::stand_in`, following Harbor's swagger, v2.0; the real Harbor was not used)
//! paired with a real distribution registry behind a front that refuses registry `DELETE`
//! (`UNSUPPORTED`) as Harbor does for tags. skopeo, reading the real registry, judges what is
//! left. The repository `shop/api` of project `acme` exercises the double encoding.

use std::path::Path;

use base64::Engine as _;
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

const ROBOT: &str = "robot$acme+ci";
const SECRET: &str = "StandInRobotSecret0000000001";
const PATH: &str = "acme/shop/api";

struct Setup {
    registry: Registry,
    harbor: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let harbor = StandIn::start(Flavor::Harbor, registry.port());
    harbor.add_harbor_project("acme");
    harbor.add_harbor_user(ROBOT, SECRET, true);
    let client = harbor.client();
    Setup { registry, harbor, client }
}

impl Setup {
    fn repository(&self) -> RepoAddress {
        self.harbor.repository(PATH)
    }

    async fn image(&self, tag: &str, days: i64) -> Digest {
        self.harbor.image(&self.client, PATH, tag, days).await
    }

    /// `dockhand cleanup` on `FRONT/acme/shop` logged in as `user` (a docker config in `dir`),
    /// the API at `api`.
    fn command_as(
        &self,
        dir: &Path,
        user: &str,
        secret: &str,
        api: &str,
        flags: &[&str],
    ) -> Dockhand {
        let config_dir = dir.join("docker");
        std::fs::create_dir_all(&config_dir).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        std::fs::write(
            config_dir.join("config.json"),
            serde_json::json!({"auths": {self.harbor.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        self.harbor
            .cleanup(dir, "harbor", "DOCKHAND_REGISTRY_API_URL", flags)
            .env("DOCKHAND_REGISTRY_API_URL", api)
            .env("DOCKHAND_REPO", &format!("{}/acme/shop", self.harbor.host()))
            .env("DOCKER_CONFIG", &config_dir.display().to_string())
    }

    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        self.command_as(dir, ROBOT, SECRET, &self.harbor.api_url(), flags).run()
    }

    fn api_deletes(&self) -> Vec<String> {
        let mut deletes: Vec<String> = self
            .harbor
            .api_requests()
            .into_iter()
            .filter(|line| line.starts_with("API DELETE"))
            .collect();
        deletes.sort();
        deletes
    }
}

const API_REPO: &str = "API DELETE /api/v2.0/projects/acme/repositories/shop%252Fapi/artifacts";

#[tokio::test]
async fn a_sibling_tag_survives_through_the_tag_delete_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    setup.harbor.set_time(PATH, "build-1", Timestamp::now() - SignedDuration::from_hours(240));
    // its image config says it was built just now; Harbor's push_time says 11 days ago
    let aged =
        push_image(&setup.client, &setup.repository(), Some("build-2"), &minutes_ago(0)).await;
    setup.harbor.set_time(PATH, "build-2", Timestamp::now() - SignedDuration::from_hours(264));
    let young = setup.image("build-3", 0).await;

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0).assert_not_printed(SECRET);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["build-3", "latest"]);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:latest")), old);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:build-3")), young);
    assert!(!skopeo_resolves(registry, &format!("{PATH}@{aged}")));
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
        [format!("{API_REPO}/build-1/tags/build-1"), format!("{API_REPO}/{aged}")]
    );
    let log = setup.harbor.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");

    // a rerun deletes nothing
    let before = setup.harbor.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.harbor.writes().len(), before, "{:?}", setup.harbor.writes());
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
    let gone_index = push_index(&setup.client, &repository, "old-multi", &gone_children).await;
    let twenty_days = Timestamp::now() - SignedDuration::from_hours(20 * 24);
    setup.harbor.set_time(PATH, "multi", twenty_days);
    setup.harbor.set_time(PATH, "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup
        .cleanup(dir.path(), &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(SECRET);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, PATH), ["multi"]);
    assert_eq!(skopeo_digest(registry, &format!("{PATH}:multi")), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("{PATH}@{child}")), "{child} must stay");
    }
    assert_eq!(setup.api_deletes(), [format!("{API_REPO}/{gone_index}")]);
}

#[tokio::test]
async fn immutable_tags_are_kept_with_a_reason_and_their_twins_go_alone_standin() {
    let setup = setup();
    setup.harbor.add_harbor_immutable_rule("v*");
    let release = setup.image("v1.0.0", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &release).await;
    setup.image("build-2", 9).await;

    let dir = project(&["api"]);
    let targeted = setup.cleanup(dir.path(), &["--delete-tag", "v1.0.0"]);
    targeted.assert_code(0);
    let kept = targeted.json()["kept"].clone();
    let reason =
        kept.as_array().unwrap().iter().find(|item| item["tag"] == "v1.0.0").unwrap()["reason"]
            .clone();
    assert_eq!(
        reason,
        "kept: the registry refuses to delete it (immutable: a Harbor tag immutability rule matches it)"
    );
    assert_eq!(setup.api_deletes(), [] as [String; 0]);

    let run = setup
        .cleanup(dir.path(), &["--delete-releases", "--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(0);
    let document = run.json();
    assert_eq!(tags_of(&document, "kept"), ["v1.0.0"]);
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["v1.0.0"]);
    assert_eq!(skopeo_digest(&setup.registry, &format!("{PATH}:v1.0.0")), release);
    let deletes = setup.api_deletes();
    assert!(deletes.contains(&format!("{API_REPO}/build-1/tags/build-1")), "{deletes:?}");
    assert!(!deletes.iter().any(|line| line.contains(release.as_str())), "{deletes:?}");
}

#[tokio::test]
async fn wrong_and_under_permitted_logins_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    setup.harbor.add_harbor_user("robot$acme+reader", "StandInReaderSecret", false);
    let dir = project(&["api"]);
    let policy = ["--keep-last", "0", "--keep-within", "0s"];
    let api = setup.harbor.api_url();

    let run = setup.command_as(dir.path(), ROBOT, "NotTheSecret", &api, &policy).run();
    run.assert_code(1).assert_not_printed("NotTheSecret");
    assert!(
        run.stderr.contains("Harbor rejected the login of `robot$acme+ci` (401 `unauthorized`)"),
        "{}",
        run.stderr
    );

    let run = setup
        .command_as(dir.path(), "robot$acme+reader", "StandInReaderSecret", &api, &policy)
        .run();
    run.assert_code(1).assert_not_printed("StandInReaderSecret");
    assert!(run.stderr.contains("Harbor refused `robot$acme+reader` access"), "{}", run.stderr);
    assert!(run.stderr.contains("(403 `forbidden`)"), "{}", run.stderr);

    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-1", "build-2"]);
    let log = setup.harbor.log();
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
        .command_as(
            dir.path(),
            ROBOT,
            SECRET,
            &format!("http://127.0.0.1:{port}"),
            &["--keep-last", "0", "--keep-within", "0s"],
        )
        .env("DOCKHAND_INSECURE_REGISTRIES", &format!("{},127.0.0.1:{port}", setup.harbor.host()))
        .run();
    run.assert_code(2).assert_not_printed(SECRET);
    assert!(
        run.stderr
            .contains(&format!("Cannot reach `http://127.0.0.1:{port}/api/v2.0/projects/acme/")),
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
    setup.harbor.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, PATH), ["build-2"]);
}
