//! `dockhand cleanup` against a real `docker-registry` (deletes enabled unless said otherwise),
//! with skopeo as the independent judge of what is left, and the fault proxy counting and
//! breaking requests. Images are seeded through dockhand's own client: small distinct OCI
//! manifests, each with a unique config blob whose `created` sets its age.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use dockhand::cleanup::execute::{ApplyOptions, Executor, Outcome, Skip};
use dockhand::cleanup::inventory::{self, Inventory, ReadOptions, Resolve, Scope};
use dockhand::cleanup::plan;
use dockhand::cleanup::policy::{Policy, PolicyFlags};
use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::ClientOptions;
use dockhand::registry::{Implementation, Registry as Connected};
use jiff::Timestamp;
use serde_json::Value;

use crate::support::binary::{Run, dockhand};
use crate::support::peers::{skopeo_digest, skopeo_resolves, skopeo_tags};
use crate::support::proxy::{Fault, LinkStyle, Proxy};
use crate::support::seed::{client, minutes_ago, push_image, push_index, tag_existing};
use crate::support::{Auth, Deletes, Registry, registry, tags_of};

pub(crate) const DAY: i64 = 24 * 60;

fn client_options(registry: &Registry) -> ClientOptions {
    let mut options = registry.client_options();
    options.credentials = BTreeMap::from([(registry.registry_host(), registry.credential())]);
    options
}

/// `registry` through the registry seam, as the default implementation.
async fn connect(registry: &Registry, repo: &RepoAddress) -> Connected {
    let env = dockhand::env_vars::EnvMap::new();
    dockhand::registry::connect(
        Implementation::Default,
        repo,
        client_options(registry),
        &env,
        &dockhand::project::RepositoriesSection::default(),
    )
    .await
    .expect("connect")
}

/// A project directory with `dockhand.yaml` naming `images`.
pub(crate) fn project(images: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("project dir");
    let list: Vec<String> = images.iter().map(|image| format!("  - name: {image}")).collect();
    std::fs::write(dir.path().join("dockhand.yaml"), format!("images:\n{}\n", list.join("\n")))
        .expect("write dockhand.yaml");
    dir
}

/// `dockhand cleanup FLAGS` on the images repo `host/acme`, talking plain HTTP to `host`.
fn cleanup(dir: &Path, host: &str, flags: &[&str]) -> Run {
    cleanup_with(dir, host, flags, &[])
}

/// [`cleanup`] with more variables (e.g. a CI's).
fn cleanup_with(dir: &Path, host: &str, flags: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut argv = vec!["cleanup"];
    argv.extend_from_slice(flags);
    dockhand(dir, &argv)
        .env("DOCKHAND_REPO", &format!("{host}/acme"))
        .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
        .env("DOCKHAND_INSECURE_REGISTRIES", host)
        .envs(vars.iter().copied())
        .run()
}

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().expect("an object").keys().map(String::as_str).collect()
}

/// Every PUT or DELETE the proxy saw.
fn writes(proxy: &Proxy) -> Vec<String> {
    proxy
        .log()
        .into_iter()
        .filter(|line| {
            line.starts_with("PUT ") || line.starts_with("DELETE ") || line.starts_with("POST ")
        })
        .collect()
}

#[tokio::test]
async fn sibling_tags_on_one_digest_the_kept_one_survives() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let old = push_image(&client, &api, Some("latest"), &minutes_ago(10 * DAY)).await;
    tag_existing(&client, &api, "build-1", &old).await;
    let older = push_image(&client, &api, Some("build-2"), &minutes_ago(11 * DAY)).await;
    let young = push_image(&client, &api, Some("build-3"), &minutes_ago(30)).await;

    let dir = project(&["api"]);
    let config_dir = dir.path().join("docker");
    std::fs::create_dir(&config_dir).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registry::USER,
        registry::PASSWORD
    ));
    std::fs::write(
        config_dir.join("config.json"),
        serde_json::json!({"auths": {registry.host(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let mut argv = vec!["cleanup", "--output", "json", "--keep-tag", "latest"];
    argv.extend(["--keep-within", "2h", "--keep-last", "0"]);
    let run = dockhand(dir.path(), &argv)
        .env("DOCKHAND_REPO", &format!("{}/acme", registry.host()))
        .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
        .env("DOCKER_CONFIG", &config_dir.display().to_string())
        .run();
    run.assert_code(0).assert_not_printed(registry::PASSWORD);

    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-3", "latest"]);
    assert_eq!(skopeo_digest(&registry, "acme/api:latest"), old);
    assert_eq!(skopeo_digest(&registry, "acme/api:build-3"), young);
    assert!(!skopeo_resolves(&registry, &format!("acme/api@{older}")));

    let document = run.json();
    assert_eq!(keys(&document), ["deleted", "kept"]);
    assert_eq!(tags_of(&document, "deleted"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["build-3", "latest"]);
    // `build-1` shares its digest with the kept `latest`: the tag alone goes
    let mut removes: Vec<(&str, &str)> = document["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| (item["tag"].as_str().unwrap(), item["removes"].as_str().unwrap()))
        .collect();
    removes.sort_unstable();
    assert_eq!(removes, [("build-1", "tag"), ("build-2", "manifest")]);
    let item = &document["kept"].as_array().unwrap()[0];
    assert_eq!(keys(item), ["digest", "image", "reason", "repository", "tag"]);
    assert_eq!(item["repository"], format!("{}/acme/api", registry.host()));
    assert_eq!(item["image"], "api");
    let reasons: Vec<&str> = document["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"kept: matches keep_tags `latest`"), "{reasons:?}");
}

#[tokio::test]
async fn untagged_children_of_a_kept_index_stay() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let old = minutes_ago(20 * DAY);
    let kept_children =
        [push_image(&client, &api, None, &old).await, push_image(&client, &api, None, &old).await];
    let kept_index = push_index(&client, &api, "multi", &kept_children).await;
    let gone_children =
        [push_image(&client, &api, None, &old).await, push_image(&client, &api, None, &old).await];
    let gone_index = push_index(&client, &api, "old-multi", &gone_children).await;
    // an untagged image nothing refers to: the distribution API cannot list it, so it stays
    let stray = push_image(&client, &api, None, &old).await;

    let proxy = Proxy::start(registry.port());
    let dir = project(&["api"]);
    let mut argv = vec!["--output", "json", "--keep-tag", "multi", "--keep-last", "0"];
    argv.extend(["--keep-within", "0s", "--delete-untagged"]);
    let run = cleanup(dir.path(), &proxy.host(), &argv);
    run.assert_code(0);
    // the index goes before its children, so an interrupted run never leaves it half-resolvable
    let deletes: Vec<String> =
        writes(&proxy).into_iter().filter(|line| line.starts_with("DELETE")).collect();
    let position = |digest: &Digest| {
        deletes.iter().position(|line| line.ends_with(digest.as_str())).expect("deleted")
    };
    for child in &gone_children {
        assert!(position(&gone_index) < position(child), "{deletes:?}");
    }
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["multi"]);
    assert_eq!(skopeo_digest(&registry, "acme/api:multi"), kept_index);
    for child in &kept_children {
        assert!(skopeo_resolves(&registry, &format!("acme/api@{child}")), "{child} must stay");
    }
    for digest in gone_children.iter().chain([&gone_index]) {
        assert!(!skopeo_resolves(&registry, &format!("acme/api@{digest}")), "{digest} must go");
    }
    assert!(skopeo_resolves(&registry, &format!("acme/api@{stray}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["-", "-", "old-multi"]);
    let child_reasons: Vec<&str> = document["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["tag"].is_null())
        .map(|item| item["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        child_reasons, ["kept: reachable from kept tag `multi` as an index child"; 2],
        "{document}"
    );
}

#[tokio::test]
async fn a_signature_of_a_kept_image_stays_and_one_of_a_deleted_image_goes() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let kept = push_image(&client, &api, Some("stable"), &minutes_ago(10 * DAY)).await;
    let dropped = push_image(&client, &api, Some("build-1"), &minutes_ago(10 * DAY)).await;
    // cosign writes signatures with the zero time as `created`
    let kept_signature = format!("sha256-{}.sig", kept.hex());
    let dropped_signature = format!("sha256-{}.sig", dropped.hex());
    push_image(&client, &api, Some(&kept_signature), "0001-01-01T00:00:00Z").await;
    push_image(&client, &api, Some(&dropped_signature), "0001-01-01T00:00:00Z").await;

    let dir = project(&["api"]);
    let run = cleanup(
        dir.path(),
        &registry.host(),
        &["--output", "json", "--keep-tag", "stable", "--keep-last", "0", "--keep-within", "0s"],
    );
    run.assert_code(0);
    let mut want = vec![kept_signature.clone(), "stable".to_owned()];
    want.sort();
    assert_eq!(skopeo_tags(&registry, "acme/api"), want);
    assert!(!skopeo_resolves(&registry, &format!("acme/api@{dropped}")));
    let document = run.json();
    let mut deleted = vec!["build-1".to_owned(), dropped_signature];
    deleted.sort();
    assert_eq!(tags_of(&document, "deleted"), deleted);
}

#[tokio::test]
async fn monorepo_cleans_each_image_and_leaves_foreign_tags_alone() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let app = registry.repository("acme");
    let api_old = push_image(&client, &app, Some("api-1"), &minutes_ago(3 * DAY)).await;
    let api_new = push_image(&client, &app, Some("api-2"), &minutes_ago(2 * DAY)).await;
    let web_old = push_image(&client, &app, Some("web-1"), &minutes_ago(3 * DAY)).await;
    push_image(&client, &app, Some("web-2"), &minutes_ago(2 * DAY)).await;
    // a tag of no image of the project, on the digest of a tag that goes
    tag_existing(&client, &app, "tools-1", &api_old).await;

    let dir = project(&["api", "web"]);
    let run = dockhand(
        dir.path(),
        &["cleanup", "--output", "json", "--keep-last", "1", "--keep-within", "0s"],
    )
    .env("DOCKHAND_REPO", &format!("{}/acme", registry.host()))
    .env("DOCKHAND_REPO_MODE", "monorepo")
    .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
    .run();
    run.assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme"), ["api-2", "tools-1", "web-2"]);
    assert_eq!(skopeo_digest(&registry, "acme:tools-1"), api_old);
    assert_eq!(skopeo_digest(&registry, "acme:api-2"), api_new);
    assert!(!skopeo_resolves(&registry, &format!("acme@{web_old}")));
    assert!(run.stderr.contains("1 tags belong to no image of the project"), "{}", run.stderr);

    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["api-1", "web-1"]);
    assert_eq!(tags_of(&document, "kept"), ["api-2", "web-2"]);
    let images: Vec<&str> = document["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["api", "web"]);
}

#[tokio::test]
async fn a_tag_repointed_between_plan_and_apply_is_left_alone() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let old = minutes_ago(10 * DAY);
    push_image(&client, &api, Some("build-1"), &old).await;
    let second = push_image(&client, &api, Some("build-2"), &old).await;
    push_image(&client, &api, Some("stable"), &old).await;

    let dir = project(&["api"]);
    let policy = ["--keep-tag", "stable", "--keep-last", "0", "--keep-within", "0s"];
    let mut argv = vec!["--dry-run", "--plan-out", "plan.json"];
    argv.extend(policy);
    cleanup(dir.path(), &registry.host(), &argv).assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-1", "build-2", "stable"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    assert_eq!(tags_of(&saved, "would_delete"), ["build-1", "build-2"]);

    // a push re-points build-1 (to an image just as old, which a fresh plan would delete)
    let repushed = push_image(&client, &api, Some("build-1"), &old).await;
    let mut argv = vec!["--output", "json", "--apply-plan", "plan.json"];
    argv.extend(policy);
    let run = cleanup(dir.path(), &registry.host(), &argv);
    run.assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-1", "stable"]);
    assert_eq!(skopeo_digest(&registry, "acme/api:build-1"), repushed);
    assert!(!skopeo_resolves(&registry, &format!("acme/api@{second}")));
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["build-2"]);
    let build_1 = document["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["tag"] == "build-1")
        .expect("build-1 is kept");
    let file = dir.path().join("plan.json");
    assert_eq!(build_1["reason"], format!("kept: not in the applied plan `{}`", file.display()));
}

#[tokio::test]
async fn a_listing_that_fails_half_way_deletes_nothing() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for tag in ["a", "b", "c", "d", "e"] {
        push_image(&client, &api, Some(tag), &minutes_ago(10 * DAY)).await;
    }
    proxy.page_tags(2, LinkStyle::Relative);
    proxy.inject_matching("last=d", Fault::status(500, None));
    let dir = project(&["api"]);
    let run = cleanup(
        dir.path(),
        &proxy.host(),
        &["--output", "json", "--keep-last", "0", "--keep-within", "0s"],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!("The inventory of `{}/acme/api` is incomplete", proxy.host())),
        "{}",
        run.stderr
    );
    assert_eq!(writes(&proxy), Vec::<String>::new());
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["a", "b", "c", "d", "e"]);
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_manifest_read_keeps_its_repository_and_cleans_the_others() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    for path in ["acme/api", "acme/web"] {
        let repository = registry.repository(path);
        for tag in ["a", "b"] {
            push_image(&client, &repository, Some(tag), &minutes_ago(10 * DAY)).await;
        }
    }
    proxy.inject_matching("GET /v2/acme/api/manifests/b", Fault::status(500, None));
    let dir = project(&["api", "web"]);
    let run = cleanup(dir.path(), &proxy.host(), &["--keep-last", "0", "--keep-within", "0s"]);
    run.assert_code(2);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["a", "b"]);
    assert_eq!(skopeo_tags(&registry, "acme/web"), Vec::<String>::new());
    assert!(writes(&proxy).iter().all(|line| !line.contains("/acme/api/")), "{:?}", writes(&proxy));
    assert!(run.stdout.contains("kept: inventory incomplete"), "{}", run.stdout);
}

#[tokio::test]
async fn deletes_disabled_is_a_clear_error_and_nothing_is_pushed() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Disabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let old = push_image(&client, &api, Some("latest"), &minutes_ago(10 * DAY)).await;
    tag_existing(&client, &api, "build-1", &old).await;
    push_image(&client, &api, Some("build-2"), &minutes_ago(10 * DAY)).await;

    let dir = project(&["api"]);
    let run = cleanup(
        dir.path(),
        &proxy.host(),
        &["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"],
    );
    run.assert_code(1);
    assert!(
        run.stderr.contains(&format!("error: Registry `{}` has deletes disabled", proxy.host())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: enable deletes"), "{}", run.stderr);
    // the probe is the only write, and it deleted nothing (a random digest)
    let writes = writes(&proxy);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("DELETE /v2/acme/api/manifests/sha256:"), "{writes:?}");
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-1", "build-2", "latest"]);
    assert_eq!(skopeo_digest(&registry, "acme/api:build-1"), old);
}

#[tokio::test]
async fn a_rerun_finishes_what_a_budget_left_and_removes_a_leftover_throw_away_manifest() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for (tag, days) in [("a", 14), ("b", 13), ("c", 12), ("d", 11), ("keep", 10)] {
        push_image(&client, &api, Some(tag), &minutes_ago(days * DAY)).await;
    }
    // an interrupted earlier cleanup left `e` on a throw-away manifest
    client.push_empty_manifest(&api, &"e".parse().unwrap()).await.expect("tombstone");

    let dir = project(&["api"]);
    let policy =
        ["--output", "json", "--keep-tag", "keep", "--keep-last", "0", "--keep-within", "0s"];
    let mut argv = policy.to_vec();
    argv.extend(["--max-deletes", "3"]);
    let first = cleanup(dir.path(), &registry.host(), &argv);
    first.assert_code(3);
    assert!(first.stderr.contains("rerun to continue"), "{}", first.stderr);
    assert_eq!(skopeo_tags(&registry, "acme/api").len(), 3);
    let document = first.json();
    assert_eq!(document["deleted"].as_array().unwrap().len(), 3);

    let second = cleanup(dir.path(), &registry.host(), &argv);
    second.assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["keep"]);
    let all: Vec<String> = tags_of(&first.json(), "deleted")
        .into_iter()
        .chain(tags_of(&second.json(), "deleted"))
        .collect();
    let mut all = all;
    all.sort();
    assert_eq!(all, ["a", "b", "c", "d", "e"]);

    let third = cleanup(dir.path(), &registry.host(), &policy);
    third.assert_code(0);
    assert_eq!(tags_of(&third.json(), "deleted"), Vec::<String>::new());
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["keep"]);
}

/// The largest duration the grammar accepts is beyond any instant: no deadline, no panic.
#[tokio::test]
async fn the_largest_max_duration_means_no_deadline() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    push_image(&client, &api, Some("latest"), &minutes_ago(10 * DAY)).await;
    push_image(&client, &api, Some("build-1"), &minutes_ago(10 * DAY)).await;
    let dir = project(&["api"]);
    let run = cleanup(
        dir.path(),
        &registry.host(),
        &["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"]
            .into_iter()
            .chain(["--max-duration", "9223372036854775807s"])
            .collect::<Vec<_>>(),
    );
    run.assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["latest"]);
}

#[tokio::test]
async fn a_dry_run_deletes_nothing() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let old = push_image(&client, &api, Some("latest"), &minutes_ago(10 * DAY)).await;
    tag_existing(&client, &api, "build-1", &old).await;
    push_image(&client, &api, Some("build-2"), &minutes_ago(10 * DAY)).await;
    let dir = project(&["api"]);
    let run = cleanup(
        dir.path(),
        &proxy.host(),
        &[
            "--dry-run",
            "--output",
            "json",
            "--keep-tag",
            "latest",
            "--keep-last",
            "0",
            "--keep-within",
            "0s",
        ],
    );
    run.assert_code(0);
    assert_eq!(writes(&proxy), Vec::<String>::new());
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-1", "build-2", "latest"]);
    let document = run.json();
    assert_eq!(keys(&document), ["kept", "would_delete"]);
    assert_eq!(tags_of(&document, "would_delete"), ["build-1", "build-2"]);
    assert_eq!(tags_of(&document, "kept"), ["latest"]);
    for item in document["would_delete"].as_array().unwrap() {
        assert_eq!(keys(item), ["digest", "image", "reason", "removes", "repository", "tag"]);
        assert!(item["reason"].as_str().unwrap().starts_with("deleted: "), "{item}");
    }

    // the text form lists every tag with its reason
    let text = cleanup(
        dir.path(),
        &proxy.host(),
        &["--dry-run", "--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"],
    );
    text.assert_code(0);
    assert!(text.stdout.contains("latest   sha256:"), "{}", text.stdout);
    assert!(text.stdout.ends_with("1 kept, 2 to delete (dry run)\n"), "{}", text.stdout);
    assert_eq!(writes(&proxy), Vec::<String>::new());
    // the table as a user reads it (ports and digests vary)
    insta::with_settings!({filters => vec![
        (r"127\.0\.0\.1:\d+", "[HOST]"),
        (r"sha256:[0-9a-f]{12}", "sha256:[DIGEST]"),
        (r"\d+ days ago", "[N] days ago"),
    ]}, {
        insta::assert_snapshot!(text.stdout);
    });
}

/// Through the library: what happens between the plan and the deletes is noticed.
#[tokio::test]
async fn changes_after_the_plan_are_skipped_not_deleted() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let api = registry.repository("acme/api");
    let connected = connect(&registry, &api).await;
    let client = connected.client();
    let old = minutes_ago(10 * DAY);
    let first = push_image(client, &api, Some("build-1"), &old).await;
    push_image(client, &api, Some("build-2"), &old).await;
    let third = push_image(client, &api, Some("build-3"), &old).await;
    let options = ReadOptions { concurrency: 4, resolve: Resolve::Head };
    let read = inventory::read(&connected, &api, &Scope::Image("api".to_owned()), options).await;
    assert!(read.inventory.complete, "{:?}", read.problems);
    let inventory = Inventory { repositories: vec![read.inventory] };
    let flags = PolicyFlags {
        keep_last: Some(0),
        keep_within: Some("0s".to_owned()),
        ..PolicyFlags::default()
    };
    let policy = Policy::resolve(None, &flags).unwrap();
    let planned = plan::plan(&inventory, &policy, Timestamp::now());
    assert_eq!(planned.deleted.len(), 3);

    // meanwhile: build-2 is re-pointed, and a new tag lands on build-3's digest
    let moved_to = push_image(client, &api, Some("build-2"), &old).await;
    tag_existing(client, &api, "hotfix", &third).await;

    let executor = Executor::new(&connected);
    let options = ApplyOptions { keep_going: false, deadline: None, progress: None };
    let report = executor.apply(&planned, &inventory, options).await.unwrap();
    let outcomes: BTreeMap<String, String> = planned
        .deleted
        .iter()
        .zip(&report.outcomes)
        .map(|(deletion, outcome)| {
            let described = match outcome {
                Outcome::Deleted => "deleted".to_owned(),
                Outcome::Moved(now) => format!("moved to {now}"),
                Outcome::Skipped(Skip::NewTag(tag)) => format!("needed by {tag}"),
                other => format!("{other:?}"),
            };
            (deletion.item.tag.as_ref().unwrap().to_string(), described)
        })
        .collect();
    assert_eq!(
        outcomes,
        BTreeMap::from([
            ("build-1".to_owned(), "deleted".to_owned()),
            ("build-2".to_owned(), format!("moved to {moved_to}")),
            ("build-3".to_owned(), "needed by hotfix".to_owned()),
        ])
    );
    assert!(report.broken.is_empty(), "{:?}", report.broken);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-2", "build-3", "hotfix"]);
    assert!(!skopeo_resolves(&registry, &format!("acme/api@{first}")));
    assert_eq!(skopeo_digest(&registry, "acme/api:hotfix"), third);
}

#[tokio::test]
async fn ci_runs_get_step_outputs_a_summary_and_a_collapsible_log() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    push_image(&client, &api, Some("build-1"), &minutes_ago(10 * DAY)).await;
    push_image(&client, &api, Some("latest"), &minutes_ago(10 * DAY)).await;
    let dir = project(&["api"]);
    let outputs = dir.path().join("github-output");
    let summary = dir.path().join("step-summary");
    let flags = ["--keep-tag", "latest", "--keep-last", "0", "--keep-within", "0s"];
    let github = cleanup_with(
        dir.path(),
        &registry.host(),
        &flags,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_OUTPUT", &outputs.display().to_string()),
            ("GITHUB_STEP_SUMMARY", &summary.display().to_string()),
        ],
    );
    github.assert_code(0);
    assert!(
        github.stderr.contains("::group::dockhand cleanup: inventory and deletions\n"),
        "{}",
        github.stderr
    );
    assert!(github.stderr.contains("::endgroup::"), "{}", github.stderr);
    assert_eq!(std::fs::read_to_string(&outputs).unwrap(), "kept=1\ndeleted=1\n");
    let markdown = std::fs::read_to_string(&summary).unwrap();
    assert!(
        markdown.contains(&format!("| `{}/acme/api` | 1 | 1 | 0 |", registry.host())),
        "{markdown}"
    );
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["latest"]);

    let gitlab = cleanup_with(dir.path(), &registry.host(), &flags, &[("GITLAB_CI", "true")]);
    gitlab.assert_code(0);
    assert!(gitlab.stderr.contains("section_start:"), "{}", gitlab.stderr);
    // a name of its own: the GitLab template wraps the whole command in `dockhand_cleanup`
    assert!(gitlab.stderr.contains(
        ":dockhand_cleanup_progress[collapsed=true]\r\x1b[0Kdockhand cleanup: inventory and deletions"
    ));
    assert!(gitlab.stderr.contains("section_end:"), "{}", gitlab.stderr);
}

#[tokio::test]
async fn keep_going_reports_every_failure_and_deletes_the_rest() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let mut digests = BTreeMap::new();
    for tag in ["a", "b", "c", "d"] {
        digests.insert(tag, push_image(&client, &api, Some(tag), &minutes_ago(10 * DAY)).await);
    }
    proxy.inject_matching(
        &format!("DELETE /v2/acme/api/manifests/{}", digests["b"]),
        Fault::status(500, None),
    );
    let dir = project(&["api"]);
    let policy = ["--output", "json", "--keep-last", "0", "--keep-within", "0s"];
    let mut argv = policy.to_vec();
    argv.push("--keep-going");
    let run = cleanup(dir.path(), &proxy.host(), &argv);
    run.assert_code(2);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["b"]);
    let document = run.json();
    assert_eq!(keys(&document), ["deleted", "failed", "kept"]);
    assert_eq!(tags_of(&document, "deleted"), ["a", "c", "d"]);
    assert_eq!(tags_of(&document, "failed"), ["b"]);
    let error = document["failed"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("Deleting `{}/acme/api@{}` failed", proxy.host(), digests["b"])),
        "{error}"
    );
    assert!(run.stderr.contains("error: Deleting `"), "{}", run.stderr);

    // without --keep-going the first failure stops what has not started yet
    for tag in ["e", "f", "g", "h", "i", "j"] {
        push_image(&client, &api, Some(tag), &minutes_ago(10 * DAY)).await;
    }
    let run = cleanup(dir.path(), &proxy.host(), &policy);
    run.assert_code(2);
    let document = run.json();
    assert_eq!(tags_of(&document, "failed"), ["b"]);
    let mut left = tags_of(&document, "kept");
    for item in document["kept"].as_array().unwrap() {
        assert_eq!(item["reason"], "kept: not attempted after an earlier failure", "{item}");
    }
    left.push("b".to_owned());
    left.sort();
    assert_eq!(skopeo_tags(&registry, "acme/api"), left);
    assert_eq!(tags_of(&document, "deleted").len() + left.len(), 7);
}

#[tokio::test]
async fn a_passed_deadline_deletes_nothing_and_leaves_the_rest_for_a_rerun() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let api = registry.repository("acme/api");
    let connected = connect(&registry, &api).await;
    let client = connected.client();
    let old = push_image(client, &api, Some("old"), &minutes_ago(10 * DAY)).await;
    tag_existing(client, &api, "sibling", &old).await;
    push_image(client, &api, Some("keep"), &minutes_ago(10)).await;
    let options = ReadOptions { concurrency: 4, resolve: Resolve::Get };
    let read = inventory::read(&connected, &api, &Scope::Image("api".to_owned()), options).await;
    let inventory = Inventory { repositories: vec![read.inventory] };
    let flags = PolicyFlags { keep_last: Some(1), ..PolicyFlags::default() };
    let policy = Policy::resolve(None, &flags).unwrap();
    let planned = plan::plan(&inventory, &policy, Timestamp::now());
    assert_eq!(planned.deleted.len(), 2, "{planned:?}");
    let executor = Executor::new(&connected);
    let deadline = Some(std::time::Instant::now());
    let report = executor
        .apply(&planned, &inventory, ApplyOptions { keep_going: false, deadline, progress: None })
        .await
        .unwrap();
    assert!(
        report.outcomes.iter().all(|outcome| matches!(outcome, Outcome::Skipped(Skip::Deadline))),
        "{:?}",
        report.outcomes
    );
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["keep", "old", "sibling"]);
}

/// On a terminal the deletions are counted on one redrawn line; in a pipe (CI logs) they are not.
#[tokio::test]
async fn a_terminal_gets_a_progress_counter_and_a_pipe_does_not() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for build in 1..=3 {
        push_image(&client, &api, Some(&format!("build-{build}")), &minutes_ago(10 * DAY)).await;
    }
    let dir = project(&["api"]);
    let host = registry.host();
    let flags = ["--keep-last", "0", "--keep-within", "0s", "--keep-tag", "build-3"];

    // in a pipe: plain lines only
    let piped = cleanup(dir.path(), &host, &flags);
    piped.assert_code(0);
    assert!(!piped.stderr.contains("\rdeleting:"), "{}", piped.stderr);
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-3"]);

    // `script` runs the command on a real pseudo-terminal and copies what it shows
    push_image(&client, &api, Some("build-4"), &minutes_ago(10 * DAY)).await;
    let command = format!(
        "env -i PATH=\"$PATH\" HOME={home} DOCKHAND_REPO={host}/acme DOCKHAND_REPO_IMPLEMENTATION=default \
         DOCKHAND_INSECURE_REGISTRIES={host} {bin} cleanup {flags}",
        home = dir.path().display(),
        bin = env!("CARGO_BIN_EXE_dockhand"),
        flags = flags.join(" "),
    );
    let shown = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(dir.path())
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{screen}");
    assert!(screen.contains("\rdeleting: 1/1"), "{screen:?}");
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-3"]);
}

/// Many manifests sharing one config blob: each gets the config's `created`, however the
/// reads interleave (a manifest read after its config was could be left without an age).
#[tokio::test]
async fn manifests_sharing_a_config_all_get_its_age_on_every_run() {
    use dockhand::registry::distribution::BlobSource;
    use dockhand::registry::distribution::manifest::{OCI_IMAGE_CONFIG, OCI_MANIFEST};
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let api = registry.repository("acme/api");
    let connected = connect(&registry, &api).await;
    let client = connected.client();
    let config = serde_json::json!({
        "created": minutes_ago(10 * DAY),
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string();
    let config_digest =
        client.upload_blob(&api, &BlobSource::Bytes(config.clone().into_bytes())).await.unwrap();
    for number in 0..40 {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_IMAGE_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": [],
            "annotations": {"build": number.to_string()},
        })
        .to_string();
        crate::support::seed::put(
            client,
            &api,
            Some(&format!("build-{number}")),
            OCI_MANIFEST,
            body.as_bytes(),
        )
        .await;
    }
    for run in 0..10 {
        let options = ReadOptions { concurrency: 8, resolve: Resolve::Head };
        let read =
            inventory::read(&connected, &api, &Scope::Image("api".to_owned()), options).await;
        assert!(read.inventory.complete, "{:?}", read.problems);
        let unknown: Vec<String> = read
            .inventory
            .tags
            .iter()
            .filter(|entry| read.inventory.manifests[&entry.digest].created_at().is_none())
            .map(|entry| entry.tag.to_string())
            .collect();
        assert_eq!(unknown, Vec::<String>::new(), "run {run}");
    }
}

/// A registry that keeps throttling the inventory (asking for a minute's wait each time) does
/// not outlast `--max-duration`: the run ends at the deadline with exit 3, nothing deleted.
#[tokio::test]
async fn max_duration_governs_the_inventory_too() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    push_image(&client, &api, Some("build-1"), &minutes_ago(10 * DAY)).await;
    proxy.inject_matching("/tags/list", Fault::status(429, Some("60")));
    let dir = project(&["api"]);
    let run = cleanup(dir.path(), &proxy.host(), &["--keep-last", "0", "--max-duration", "2s"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("max_duration (2s) was reached while reading the inventory"),
        "{}",
        run.stderr
    );
    assert_eq!(writes(&proxy), Vec::<String>::new());
    assert_eq!(skopeo_tags(&registry, "acme/api"), ["build-1"]);
}

/// Two identical cleanups racing on one repository (as two pipelines of one project can): each
/// re-checks before it deletes and treats a 404 as already gone, so no kept tag is lost or
/// moved, whatever the interleaving. Distribution 2.8 may fail one racer's request while the
/// other writes or deletes beside it (500 on a digest delete during a manifest write, or 400
/// `MANIFEST_BLOB_UNKNOWN` when both point one tag at a throw-away manifest): that racer
/// reports the item failed (exit 2) and a rerun finishes it, ending where one cleanup alone
/// ends (but for a tag such a 500 may leave dangling: listed, naming no manifest). Repeated,
/// since a race may not show in one round.
#[tokio::test]
async fn two_racing_cleanups_end_where_one_ends() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let api = registry.repository("acme/api");
    let dir = project(&["api"]);
    let host = registry.host();
    // what every round keeps stays for the next ones
    let mut kept = BTreeMap::new();
    for round in 0..3 {
        for n in 0..16 {
            let old = minutes_ago(10 * DAY + n);
            let digest = push_image(&client, &api, Some(&format!("build-{round}-{n}")), &old).await;
            // every other old image is also a kept release: its build tag goes alone (through a
            // throw-away manifest on this registry)
            if n % 2 == 0 {
                let keep = format!("keep-{round}-{n}");
                tag_existing(&client, &api, &keep, &digest).await;
                kept.insert(keep, digest);
            }
        }
        for n in 0..4 {
            let young = format!("young-{round}-{n}");
            let digest = push_image(&client, &api, Some(&young), &minutes_ago(5)).await;
            kept.insert(young, digest);
        }
        let flags = ["--keep-tag", "keep-.*", "--keep-within", "2h", "--keep-last", "0"];
        let runs = std::thread::scope(|scope| {
            let racers: Vec<_> =
                (0..2).map(|_| scope.spawn(|| cleanup(dir.path(), &host, &flags))).collect();
            racers.into_iter().map(|racer| racer.join().unwrap()).collect::<Vec<_>>()
        });
        for run in &runs {
            assert!(matches!(run.code, 0 | 2), "exit {}: {}", run.code, run.stderr);
        }
        // every kept tag is still there, on its digest, before any rerun
        for (tag, digest) in &kept {
            assert_eq!(&skopeo_digest(&registry, &format!("acme/api:{tag}")), digest, "{tag}");
        }
        cleanup(dir.path(), &host, &flags).assert_code(0);
        // what resolves is what one cleanup keeps; a tag distribution left dangling (listed,
        // its manifest gone, after a 500) names nothing and cannot be deleted by anyone
        let resolving: Vec<String> = skopeo_tags(&registry, "acme/api")
            .into_iter()
            .filter(|tag| skopeo_resolves(&registry, &format!("acme/api:{tag}")))
            .collect();
        let expected: Vec<String> = kept.keys().cloned().collect();
        assert_eq!(resolving, expected, "round {round}");
    }
}

/// With `--facts-cache`, a second run reads only what is new: tags are resolved with `HEAD`,
/// and the manifests and image configs of digests seen before come from the file. The plan is
/// the same; a cache with a tampered age is not believed; an unreadable file is ignored.
#[tokio::test]
#[expect(clippy::print_stderr, reason = "the request counts show in `--nocapture` runs")]
async fn a_facts_cache_halves_a_rerun_and_changes_no_plan() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for n in 0..20 {
        push_image(&client, &api, Some(&format!("build-{n}")), &minutes_ago((20 - n) * DAY)).await;
    }
    let children = [
        push_image(&client, &api, None, &minutes_ago(3 * DAY)).await,
        push_image(&client, &api, None, &minutes_ago(3 * DAY)).await,
    ];
    push_index(&client, &api, "multi", &children).await;
    let dir = project(&["api"]);
    let cache = dir.path().join("facts.json");
    let flags = ["--dry-run", "--output", "json", "--keep-last", "5", "--keep-within", "0s"];
    let with_cache = |flags: &[&str]| {
        let mut all = flags.to_vec();
        all.extend(["--facts-cache", "facts.json"]);
        cleanup(dir.path(), &proxy.host(), &all)
    };
    let requests = |from: usize| proxy.log().len() - from;

    let before = proxy.log().len();
    let plain = cleanup(dir.path(), &proxy.host(), &flags);
    plain.assert_code(0);
    let plain_requests = requests(before);

    let before = proxy.log().len();
    let cold = with_cache(&flags);
    cold.assert_code(0);
    let cold_requests = requests(before);
    assert!(cache.is_file(), "the cache is written");
    assert_eq!(cold.json(), plain.json(), "a cold cache changes nothing");
    assert_eq!(cold_requests, plain_requests, "a cold run reads as a run without a cache does");

    let before = proxy.log().len();
    let warm = with_cache(&flags);
    warm.assert_code(0);
    let warm_requests = requests(before);
    assert_eq!(warm.json(), plain.json(), "the same plan");
    let reads: Vec<String> = proxy.log().split_off(before);
    assert!(reads.iter().all(|line| !line.contains("/blobs/")), "no config read: {reads:?}");
    assert!(
        !reads.iter().any(|line| line.contains("/manifests/") && !line.starts_with("HEAD ")),
        "tags resolved by HEAD alone: {reads:?}"
    );
    assert!(
        !reads.iter().any(|line| line.contains("/referrers/")),
        "the referrers probe of a day ago is not sent again: {reads:?}"
    );
    assert!(
        2 * warm_requests <= plain_requests,
        "warm {warm_requests} vs {plain_requests} requests"
    );
    eprintln!(
        "requests: without a cache {plain_requests}, cold {cold_requests}, warm {warm_requests}"
    );

    // an edited age in the file is not believed: the config facts are read again
    let text = std::fs::read_to_string(&cache).unwrap();
    let year = jiff::Timestamp::now().strftime("%Y").to_string();
    std::fs::write(&cache, text.replace(&format!("\"created\":\"{year}"), "\"created\":\"2001"))
        .unwrap();
    let before = proxy.log().len();
    let tampered = with_cache(&flags);
    tampered.assert_code(0);
    assert_eq!(tampered.json(), plain.json());
    assert!(
        proxy.log()[before..].iter().any(|line| line.contains("/blobs/")),
        "configs read again"
    );
    assert!(tampered.stderr.contains("fail their checksum"), "{}", tampered.stderr);

    // a file that is no cache is ignored, and replaced
    std::fs::write(&cache, "not a cache").unwrap();
    let ignored = with_cache(&flags);
    ignored.assert_code(0);
    assert_eq!(ignored.json(), plain.json());
    assert!(ignored.stderr.contains("ignored"), "{}", ignored.stderr);
    assert!(std::fs::read_to_string(&cache).unwrap().starts_with("{\"version\":1"));
}
