//! `--repo-implementation github` end to end against the GitHub Packages stand-in
//! (`support::stand_in`, following the OpenAPI description in npm `@octokit/openapi`; the
//! real GitHub was not used) paired with a real distribution registry behind a front that
//! refuses registry `DELETE` as ghcr.io does. Images are pushed through the front, so the
//! stand-in's package versions are the registry's manifests; skopeo, reading the real
//! registry, judges what is left.

use std::path::Path;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::Client;
use jiff::{SignedDuration, Timestamp};

use crate::cleanup::{DAY, project};
use crate::support::binary::{Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::seed::{minutes_ago, push_image, push_index, tag_existing};
use crate::support::stand_in::{Flavor, GithubToken, StandIn};
use crate::support::tags_of;
use crate::support::{Auth, Deletes, Registry};

/// A classic personal access token with what a cleanup needs.
const TOKEN: &str = "ghp_StandInClassicTokenWithAllScopes0001";
const SCOPES: &str = "read:packages, write:packages, delete:packages";

struct Setup {
    registry: Registry,
    github: StandIn,
    client: Client,
}

fn setup(organisation: bool) -> Setup {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let github = StandIn::start(Flavor::Github, registry.port());
    github.add_owner("acme", organisation);
    github.add_github_token(TOKEN, GithubToken::Classic(SCOPES));
    let client = github.client();
    Setup { registry, github, client }
}

impl Setup {
    fn repository(&self, path: &str) -> RepoAddress {
        self.github.repository(path)
    }

    async fn image(&self, path: &str, tag: &str, days: i64) -> Digest {
        self.github.image(&self.client, path, tag, days).await
    }

    fn command(&self, dir: &Path, flags: &[&str]) -> crate::support::binary::Dockhand {
        self.github.cleanup(dir, "github", "GITHUB_API_URL", flags)
    }

    fn cleanup(&self, dir: &Path, token: &str, flags: &[&str]) -> Run {
        self.command(dir, flags).env("DOCKHAND_GITHUB_TOKEN", token).run()
    }
}

#[tokio::test]
async fn a_sibling_tag_survives_and_no_registry_delete_is_sent_standin() {
    let setup = setup(true);
    let old = setup.image("acme/api", "latest", 10).await;
    tag_existing(&setup.client, &setup.repository("acme/api"), "build-1", &old).await;
    setup.github.set_time(
        "acme/api",
        "build-1",
        Timestamp::now() - SignedDuration::from_hours(240),
    );
    let older = setup.image("acme/api", "build-2", 11).await;
    let young = setup.image("acme/api", "build-3", 0).await;

    let dir = project(&["api"]);
    let run = setup.cleanup(
        dir.path(),
        TOKEN,
        &["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"],
    );
    run.assert_code(0).assert_not_printed(TOKEN);

    let registry = &setup.registry;
    assert_eq!(skopeo_tags(registry, "acme/api"), ["build-3", "latest"]);
    assert_eq!(skopeo_digest(registry, "acme/api:latest"), old);
    assert_eq!(skopeo_digest(registry, "acme/api:build-3"), young);
    assert!(!skopeo_resolves(registry, &format!("acme/api@{older}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "latest"]);

    // the org path was used, the throw-away version went too, and ghcr.io saw no DELETE
    let log = setup.github.log();
    assert!(log.iter().all(|line| !line.starts_with("REGISTRY DELETE")), "{log:?}");
    assert!(
        log.iter()
            .any(|line| line.starts_with("API DELETE /orgs/acme/packages/container/api/versions/"))
    );
    let versions = setup.github.versions("acme/api");
    let mut left: Vec<(String, Vec<String>)> = versions
        .iter()
        .map(|version| {
            (version.digest.clone(), version.tags.iter().map(|(tag, _)| tag.clone()).collect())
        })
        .collect();
    left.sort();
    let mut want = vec![
        (old.to_string(), vec!["latest".to_owned()]),
        (young.to_string(), vec!["build-3".to_owned()]),
    ];
    want.sort();
    assert_eq!(left, want);

    // a rerun finds nothing to delete and deletes nothing
    let before = setup.github.writes().len();
    let rerun = setup.cleanup(
        dir.path(),
        TOKEN,
        &["--keep-tag", "latest", "--keep-within", "2h", "--keep-last", "0"],
    );
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(setup.github.writes().len(), before, "{:?}", setup.github.writes());
}

#[tokio::test]
async fn a_kept_index_keeps_its_untagged_children_for_a_user_owner_standin() {
    let setup = setup(false);
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
    setup.github.set_time("acme/api", "multi", twenty_days);
    setup.github.set_time("acme/api", "old-multi", twenty_days);
    assert_eq!(setup.github.versions("acme/api").len(), 6);

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
    for digest in gone_children.iter().chain([&gone_index]) {
        assert!(!skopeo_resolves(registry, &format!("acme/api@{digest}")), "{digest} must go");
    }
    let mut left: Vec<String> =
        setup.github.versions("acme/api").into_iter().map(|version| version.digest).collect();
    left.sort();
    let mut want: Vec<String> =
        kept_children.iter().chain([&kept_index]).map(ToString::to_string).collect();
    want.sort();
    assert_eq!(left, want);
    let log = setup.github.api_requests();
    assert!(log.iter().any(|line| line.starts_with("API DELETE /users/acme/packages/container/api/versions/")), "{log:?}");
    assert_eq!(tags_of(&run.json(), "deleted"), ["-", "-", "old-multi"]);
}

#[tokio::test]
async fn a_signature_of_a_kept_image_stays_and_an_unreadable_manifest_deletes_nothing_standin() {
    let setup = setup(true);
    let kept = setup.image("acme/api", "stable", 10).await;
    let dropped = setup.image("acme/api", "build-1", 10).await;
    // cosign's tag schema for signatures (the registry has no referrers API)
    let kept_signature = format!("sha256-{}.sig", kept.hex());
    let dropped_signature = format!("sha256-{}.sig", dropped.hex());
    setup.image("acme/api", &kept_signature, 10).await;
    setup.image("acme/api", &dropped_signature, 10).await;
    let dir = project(&["api"]);
    let policy = ["--keep-tag", "stable", "--keep-last", "0", "--keep-within", "0s"];

    // one manifest ghcr.io cannot serve: the package is incomplete, nothing in it goes
    setup.github.fail_registry_gets(&format!("/manifests/{dropped}"));
    let run = setup.cleanup(dir.path(), TOKEN, &policy);
    run.assert_code(2);
    assert!(run.stderr.contains("is incomplete, so nothing in it was deleted"), "{}", run.stderr);
    assert!(setup.github.api_requests().iter().all(|line| !line.starts_with("API DELETE")));
    assert_eq!(skopeo_tags(&setup.registry, "acme/api").len(), 4);

    // readable again: the signature of the kept image stays, the other goes with its image
    setup.github.clear_registry_failures();
    let run = setup.cleanup(dir.path(), TOKEN, &policy);
    run.assert_code(0);
    let mut want = vec![kept_signature, "stable".to_owned()];
    want.sort();
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), want);
    let mut deleted = vec!["build-1".to_owned(), dropped_signature];
    deleted.sort();
    assert_eq!(tags_of(&run.json(), "deleted"), deleted);
}

#[tokio::test]
async fn a_dry_run_deletes_and_pushes_nothing_and_a_nested_package_is_url_encoded_standin() {
    let setup = setup(true);
    setup.image("acme/tools/api", "build-1", 5).await;
    setup.image("acme/tools/api", "build-2", 4).await;
    setup.image("acme/tools/api", "build-3", 3).await;
    let seeded = setup.github.log().len();
    let dir = project(&["tools/api"]);
    let run =
        setup.cleanup(dir.path(), TOKEN, &["--dry-run", "--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    let document = run.json();
    assert_eq!(tags_of(&document, "would_delete"), ["build-1", "build-2"]);
    let during: Vec<String> = setup.github.log()[seeded..].to_vec();
    assert!(
        during.iter().all(|line| {
            let method = line.split(' ').nth(1).unwrap_or_default();
            matches!(method, "GET" | "HEAD")
        }),
        "{during:?}"
    );
    assert!(
        during
            .iter()
            .any(|line| line
                .contains("/orgs/acme/packages/container/tools%2Fapi/versions?per_page=100")),
        "{during:?}"
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/tools/api"), ["build-1", "build-2", "build-3"]);
}

#[tokio::test]
async fn wrong_and_under_scoped_tokens_exit_1_with_nothing_deleted_standin() {
    let setup = setup(true);
    setup.image("acme/api", "build-1", 5).await;
    setup.image("acme/api", "build-2", 4).await;
    let read_only = "ghp_StandInReadOnlyToken0000000000000002";
    setup.github.add_github_token(read_only, GithubToken::Classic("read:packages"));
    let workflow = "ghs_StandInWorkflowTokenWithoutAdmin0003";
    setup.github.add_github_token(workflow, GithubToken::Workflow { admin: false });
    let dir = project(&["api"]);
    let policy = ["-vvv", "--keep-last", "0", "--keep-within", "0s"];
    let seeded = setup.github.writes().len();

    let wrong = "ghp_ThisTokenIsNotKnownToTheStandIn00004";
    let run = setup.cleanup(dir.path(), wrong, &policy);
    run.assert_code(1).assert_not_printed(wrong);
    assert!(run.stderr.contains("rejected the token"), "{}", run.stderr);

    let run = setup.cleanup(dir.path(), read_only, &policy);
    run.assert_code(1).assert_not_printed(read_only);
    assert!(
        run.stderr.contains("lacks the scope `delete:packages`, `write:packages`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: add the `delete:packages`"), "{}", run.stderr);

    let run = setup.cleanup(dir.path(), workflow, &policy);
    run.assert_code(1).assert_not_printed(workflow);
    assert!(run.stderr.contains("Resource not accessible by integration"), "{}", run.stderr);
    assert!(run.stderr.contains("Admin role"), "{}", run.stderr);

    // the only writes tried were the refused version deletes of the workflow token
    let during = &setup.github.writes()[seeded..];
    assert!(
        !during.is_empty() && during.iter().all(|line| line.starts_with("API DELETE")),
        "{during:?}"
    );
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1", "build-2"]);
    assert_eq!(setup.github.versions("acme/api").len(), 2);
}

#[tokio::test]
async fn fine_grained_and_app_tokens_are_accepted_standin() {
    let setup = setup(false);
    setup.image("acme/api", "build-1", 5).await;
    setup.image("acme/api", "build-2", 4).await;
    setup.image("acme/api", "build-3", 3).await;
    let fine_grained = "github_pat_StandInFineGrained_0000000005";
    setup.github.add_github_token(fine_grained, GithubToken::FineGrained);
    let app = "ghs_StandInWorkflowTokenWithAdminRole006";
    setup.github.add_github_token(app, GithubToken::Workflow { admin: true });
    let dir = project(&["api"]);
    let run = setup.cleanup(dir.path(), fine_grained, &["--keep-last", "2", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(fine_grained);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-2", "build-3"]);
    let run = setup.cleanup(dir.path(), app, &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0).assert_not_printed(app);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-3"]);
}

#[tokio::test]
async fn rate_limits_are_waited_out_without_a_storm_standin() {
    let setup = setup(true);
    for (tag, days) in [("build-1", 6), ("build-2", 5), ("build-3", 4), ("build-4", 3)] {
        setup.image("acme/api", tag, days).await;
    }
    setup.github.limit_deletes_per_minute(180);
    // the owner lookup is refused twice before it is answered
    setup.github.throttle(2, 1);
    let dir = project(&["api"]);
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), TOKEN, &["--keep-last", "1", "--keep-within", "0s"]);
    run.assert_code(0);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2), "Retry-After honoured");
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-4"]);
    assert_eq!(setup.github.delete_limit_hits(), 0);
    // 1 owner lookup + 1 page + 3 deletes, and one repeat for each of the 2 throttled answers
    let api = setup.github.api_requests();
    assert_eq!(api.len(), 7, "{api:?}");
    assert!(run.stderr.contains("rate limited"), "{}", run.stderr);
}

#[tokio::test]
async fn a_plain_http_api_not_named_insecure_is_refused_standin() {
    let setup = setup(true);
    setup.image("acme/api", "build-1", 5).await;
    let dir = project(&["api"]);
    let run = setup
        .command(dir.path(), &["--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_INSECURE_REGISTRIES", &setup.github.host())
        .env("DOCKHAND_GITHUB_TOKEN", TOKEN)
        .run();
    run.assert_code(1).assert_not_printed(TOKEN);
    assert!(
        run.stderr.contains("is plain HTTP, and its host is not named by `--insecure-registry`"),
        "{}",
        run.stderr
    );
    assert_eq!(setup.github.api_requests(), Vec::<String>::new());
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1"]);
}

#[tokio::test]
async fn unknown_owner_and_unknown_package_standin() {
    let setup = setup(true);
    // pushed past the front, so GitHub's side has no such package
    let direct = setup.registry.repository("acme/api");
    let direct_client = Client::new(setup.registry.client_options()).unwrap();
    push_image(&direct_client, &direct, Some("build-1"), &minutes_ago(3 * DAY)).await;
    let dir = project(&["api"]);
    let run = setup.cleanup(dir.path(), TOKEN, &["--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(1);
    assert!(run.stderr.contains("Package `acme/api` does not exist"), "{}", run.stderr);
    assert_eq!(skopeo_tags(&setup.registry, "acme/api"), ["build-1"]);

    // an image never pushed: nothing to clean, no API call needed
    let nothing = project(&["never-pushed"]);
    let run = setup.cleanup(nothing.path(), TOKEN, &["--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(0);
    assert_eq!(run.json()["deleted"], serde_json::json!([]));

    // an owner GitHub does not know
    let other = setup.repository("nobody/api");
    push_image(&setup.client, &other, Some("build-1"), &minutes_ago(3 * DAY)).await;
    let run = dockhand(dir.path(), &["cleanup", "--keep-last", "0", "--keep-within", "0s"])
        .env("DOCKHAND_REPO", &format!("{}/nobody", setup.github.host()))
        .env("DOCKHAND_REPO_IMPLEMENTATION", "github")
        .env("DOCKHAND_INSECURE_REGISTRIES", &setup.github.insecure_hosts())
        .env("GITHUB_API_URL", &setup.github.api_url())
        .env("GITHUB_TOKEN", TOKEN)
        .run();
    run.assert_code(1).assert_not_printed(TOKEN);
    assert!(run.stderr.contains("Owner `nobody` does not exist"), "{}", run.stderr);
}

/// The figures of docs/benchmarks.md ("GitHub Packages"), run only by
/// `scripts/bench-github.sh`: asserts correctness (every planned delete done, none refused),
/// prints the rates and counts, and asserts nothing about durations.
#[tokio::test]
#[ignore = "benchmark harness (minutes at GitHub's pace): run by scripts/bench-github.sh"]
#[expect(clippy::print_stdout, reason = "the figures are what scripts/bench-github.sh reads")]
async fn bench_github_deletes_standin() {
    let tags: usize =
        std::env::var("BENCH_TAGS").ok().and_then(|value| value.parse().ok()).unwrap_or(520);
    let keep = 20;
    let setup = setup(true);
    setup.github.limit_deletes_per_minute(180);
    for index in 0..tags {
        let days = i64::try_from(tags - index).unwrap();
        setup.image("acme/api", &format!("build-{index:04}"), days).await;
    }
    let before = setup.github.api_requests().len();
    let dir = project(&["api"]);
    let keep_last = keep.to_string();
    let started = std::time::Instant::now();
    let run = setup.cleanup(dir.path(), TOKEN, &["--keep-last", &keep_last, "--keep-within", "0s"]);
    let elapsed = started.elapsed();
    run.assert_code(0);
    let document = run.json();
    let deleted = document["deleted"].as_array().map_or(0, Vec::len);
    let failed = document["failed"].as_array().map_or(0, Vec::len);
    assert_eq!(deleted, tags - keep, "every planned delete done");
    assert_eq!(skopeo_tags(&setup.registry, "acme/api").len(), keep);
    let api_calls = setup.github.api_requests().len() - before;
    #[expect(clippy::cast_precision_loss, reason = "counts of requests")]
    let per_tag = api_calls as f64 / deleted as f64;
    let rate = setup.github.deletes_per_minute().unwrap_or_default();
    let refused = setup.github.delete_limit_hits();
    println!(
        "BENCH tags={tags} deleted={deleted} failed={failed} api_calls={api_calls} calls_per_deleted_tag={per_tag:.4} deletes_per_minute={rate:.1} refused_by_limit={refused} wall_seconds={:.1}",
        elapsed.as_secs_f64()
    );
    assert_eq!((failed, refused), (0, 0));
}
