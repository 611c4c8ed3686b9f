//! `--repo-implementation gitlab` end to end against the GitLab REST API stand-in
//! (`support::stand_in`, following GitLab's REST API docs; the real GitLab was not used)
//! paired with a real distribution registry, which refuses the OCI tag delete
//! (`DIGEST_INVALID`) as GitLab before 16.4 does, so tags go through the REST API. skopeo,
//! reading the real registry, judges what is left.

use std::path::Path;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::Run;
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, GitlabToken, StandIn};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

/// A project access token with the `api` scope and the Developer role.
const TOKEN: &str = "glpat-StandInApiScopeDeveloper01";
/// The images of project `acme/shop` live below it.
const PROJECT: &str = "acme/shop";

struct Setup {
    registry: Registry,
    gitlab: StandIn,
    client: Client,
}

fn setup() -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let gitlab = StandIn::start(Flavor::Gitlab, registry.port());
    gitlab.add_gitlab_project(PROJECT, 42);
    gitlab.add_gitlab_token(TOKEN, GitlabToken::Access { delete: true });
    let client = gitlab.client();
    Setup { registry, gitlab, client }
}

impl Setup {
    fn repository(&self) -> RepoAddress {
        self.gitlab.repository("acme/shop/api")
    }

    async fn image(&self, tag: &str, days: i64) -> Digest {
        self.gitlab.image(&self.client, "acme/shop/api", tag, days).await
    }

    /// `dockhand cleanup` on `FRONT/acme/shop`, the API at `api` (`CI_API_V4_URL`).
    fn command_at(
        &self,
        dir: &Path,
        api: &str,
        flags: &[&str],
    ) -> crate::support::binary::Dockhand {
        self.gitlab
            .cleanup(dir, "gitlab", "CI_API_V4_URL", flags)
            .env("CI_API_V4_URL", api)
            .env("DOCKHAND_REPO", &format!("{}/{PROJECT}", self.gitlab.host()))
    }

    fn command(&self, dir: &Path, flags: &[&str]) -> crate::support::binary::Dockhand {
        self.command_at(dir, &format!("{}/api/v4", self.gitlab.api_url()), flags)
    }

    fn cleanup(&self, dir: &Path, flags: &[&str]) -> Run {
        self.command(dir, flags).env("DOCKHAND_GITLAB_TOKEN", TOKEN).run()
    }

    fn api_deletes(&self) -> Vec<String> {
        let mut deletes: Vec<String> = self
            .gitlab
            .api_requests()
            .into_iter()
            .filter(|line| line.starts_with("API DELETE"))
            .collect();
        deletes.sort();
        deletes
    }

    fn registry_deletes(&self) -> Vec<String> {
        self.gitlab.log().into_iter().filter(|line| line.starts_with("REGISTRY DELETE")).collect()
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_and_the_api_gives_ages_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    let repository = setup.repository();
    tag_existing(&setup.client, &repository, "build-1", &old).await;
    // its image config says it was built just now; the API's created_at says 11 days ago
    let aged = push_image(&setup.client, &repository, Some("build-2"), &minutes_ago(0)).await;
    setup.gitlab.set_time(
        "acme/shop/api",
        "build-2",
        Timestamp::now() - SignedDuration::from_hours(264),
    );
    let young = setup.image("build-3", 0).await;

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"];
    let run = setup.cleanup(dir.path(), &policy);
    run.assert_code(0).assert_not_printed(TOKEN);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/shop/api"), ["build-3", "latest"]);
    assert_eq!(skopeo_digest(registry, "acme/shop/api:latest"), old);
    assert_eq!(skopeo_digest(registry, "acme/shop/api:build-3"), young);
    assert!(!skopeo_resolves(registry, &format!("acme/shop/api@{aged}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    let reasons: Vec<&str> = document["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["reason"].as_str())
        .collect();
    assert!(reasons.iter().all(|reason| reason.contains("(pushed ")), "{reasons:?}");
    // the twin of `latest` went alone through the REST API, after the registry refused it
    assert_eq!(
        setup.api_deletes(),
        ["API DELETE /api/v4/projects/acme%2Fshop/registry/repositories/101/tags/build-1"]
    );
    let registry_deletes = setup.registry_deletes();
    assert!(
        registry_deletes
            .contains(&"REGISTRY DELETE /v2/acme/shop/api/manifests/build-1".to_owned())
    );
    assert!(
        registry_deletes.contains(&format!("REGISTRY DELETE /v2/acme/shop/api/manifests/{aged}"))
    );
    assert!(
        !registry_deletes.iter().any(|line| line.ends_with(old.as_str())),
        "{registry_deletes:?}"
    );

    // a rerun deletes nothing
    let before = setup.gitlab.writes().len();
    let rerun = setup.cleanup(dir.path(), &policy);
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.gitlab.writes().len(), before, "{:?}", setup.gitlab.writes());
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
    setup.gitlab.set_time("acme/shop/api", "multi", twenty_days);
    setup.gitlab.set_time("acme/shop/api", "old-multi", twenty_days);

    let dir = project(&["api"]);
    let run = setup
        .cleanup(dir.path(), &["--keep-tag", "multi", "--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(TOKEN);
    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/shop/api"), ["multi"]);
    assert_eq!(skopeo_digest(registry, "acme/shop/api:multi"), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(registry, &format!("acme/shop/api@{child}")), "{child} must stay");
    }
    assert!(!skopeo_resolves(registry, &format!("acme/shop/api@{gone_index}")));
    assert_eq!(tags_of(&run.json(), "deleted"), ["old-multi"]);
}

#[tokio::test]
async fn wrong_and_under_permitted_tokens_exit_1_with_nothing_deleted_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    tag_existing(&setup.client, &setup.repository(), "build-2", &old).await;
    let dir = project(&["api"]);
    let policy = ["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"];
    let seeded = setup.gitlab.writes().len();

    let wrong = "glpat-NotKnownToTheStandIn0003";
    let run = setup.command(dir.path(), &policy).env("DOCKHAND_GITLAB_TOKEN", wrong).run();
    run.assert_code(1).assert_not_printed(wrong);
    assert!(
        run.stderr.contains("rejected the token (DOCKHAND_GITLAB_TOKEN) (401 `401 Unauthorized`)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`api` scope"), "{}", run.stderr);

    // a job token of another project: GitLab answers as if the project did not exist
    let job = "glcbt-StandInJobTokenOfOtherProject";
    setup
        .gitlab
        .add_gitlab_token(job, GitlabToken::Job { project: "acme/other".to_owned(), delete: true });
    let run = setup.command(dir.path(), &policy).env("CI_JOB_TOKEN", job).run();
    run.assert_code(1).assert_not_printed(job);
    assert!(
        run.stderr.contains("No GitLab project holds the container repository `acme/shop/api`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("CI_JOB_TOKEN reaches only the container registry of the job's own project"),
        "{}",
        run.stderr
    );

    // a job token whose pipeline user may not delete
    let reporter = "glcbt-StandInJobTokenOfAReporter";
    setup.gitlab.add_gitlab_token(
        reporter,
        GitlabToken::Job { project: PROJECT.to_owned(), delete: false },
    );
    let run = setup.command(dir.path(), &policy).env("CI_JOB_TOKEN", reporter).run();
    run.assert_code(1).assert_not_printed(reporter);
    assert!(run.stderr.contains("(403 `403 Forbidden`)"), "{}", run.stderr);
    assert!(run.stderr.contains("deleting tags needs Developer or higher"), "{}", run.stderr);

    let during = &setup.gitlab.writes()[seeded..];
    assert!(
        during.iter().all(|line| line.contains(" DELETE ")),
        "nothing was pushed, only refused deletes were tried: {during:?}"
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/shop/api"), ["build-1", "build-2", "latest"]);
}

#[tokio::test]
async fn the_job_token_of_the_project_cleans_up_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    let job = "glcbt-StandInJobTokenOfTheProject";
    setup
        .gitlab
        .add_gitlab_token(job, GitlabToken::Job { project: PROJECT.to_owned(), delete: true });
    let dir = project(&["api"]);
    let run = setup
        .command(dir.path(), &["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"])
        .env("CI_JOB_TOKEN", job)
        .run();
    run.assert_code(0).assert_not_printed(job);
    assert_eq!(tags_of(&run.json(), "deleted"), ["build-1"]);
    assert_eq!(skopeo_tags(&setup.registry, "acme/shop/api"), ["latest"]);
    assert_eq!(skopeo_digest(&setup.registry, "acme/shop/api:latest"), old);
    assert_eq!(
        setup.api_deletes(),
        ["API DELETE /api/v4/projects/acme%2Fshop/registry/repositories/101/tags/build-1"]
    );
}

#[tokio::test]
async fn without_a_token_ages_come_from_the_image_configs_and_tag_deletes_fail_standin() {
    let setup = setup();
    let old = setup.image("latest", 10).await;
    tag_existing(&setup.client, &setup.repository(), "build-1", &old).await;
    setup.image("build-2", 9).await;
    let dir = project(&["api"]);
    let run = setup
        .command(
            dir.path(),
            &["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "1h", "--keep-going"],
        )
        .run();
    // build-2 goes by digest through the registry; build-1, the twin of `latest`, needs the API
    run.assert_code(1);
    assert!(
        run.stderr.contains("neither DOCKHAND_GITLAB_TOKEN nor CI_JOB_TOKEN is set"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("ages come from the image configs"), "{}", run.stderr);
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-2"]);
    let reason = document["deleted"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("(image config created "), "{reason}");
    assert_eq!(skopeo_tags(&setup.registry, "acme/shop/api"), ["build-1", "latest"]);
    assert_eq!(setup.gitlab.api_requests(), [] as [String; 0]);
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
    let seeded = setup.gitlab.writes().len();
    let run = setup
        .command_at(
            dir.path(),
            &format!("http://127.0.0.1:{port}/api/v4"),
            &["--keep-last", "0", "--keep-within", "0s"],
        )
        .env("DOCKHAND_INSECURE_REGISTRIES", &format!("{},127.0.0.1:{port}", setup.gitlab.host()))
        .env("DOCKHAND_GITLAB_TOKEN", TOKEN)
        .run();
    run.assert_code(2).assert_not_printed(TOKEN);
    assert!(
        run.stderr.contains(&format!("Cannot reach `http://127.0.0.1:{port}/api/v4/projects/")),
        "{}",
        run.stderr
    );
    assert_eq!(setup.gitlab.writes()[seeded..], [] as [String; 0]);
    assert_eq!(skopeo_tags(&setup.registry, "acme/shop/api"), ["build-1", "build-2"]);
}

#[tokio::test]
async fn rate_limits_are_waited_out_standin() {
    let setup = setup();
    setup.image("build-1", 5).await;
    setup.image("build-2", 4).await;
    setup.gitlab.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, "acme/shop/api"), ["build-2"]);
}
