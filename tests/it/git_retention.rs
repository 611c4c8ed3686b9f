//! Git-aware retention end to end: real git repositories made with the `git` binary (an
//! origin with branches, a tag, a branch deleted before cloning, an old branch), cloned fully
//! and shallowly; the real registry holding images whose revision labels point at those
//! commits; `dockhand cleanup` run inside the clone with no `cleanup:` section (the default
//! keep policies), its plan checked tag by tag, then applied and checked with skopeo.

use std::collections::BTreeMap;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::cleanup::DAY;
use crate::support::binary::{Run, dockhand};
use crate::support::peers::skopeo_tags;
use crate::support::seed::{client, minutes_ago, push_image, push_labelled_image, tag_existing};
use crate::support::{Auth, Deletes, Registry};

const REVISION: &str = "org.opencontainers.image.revision";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Runs git in `dir` with a fixed identity, no user or system config, and both dates
/// `days_ago` days before now.
fn git(dir: &Path, days_ago: i64, args: &[&str]) -> String {
    let date = format!(
        "@{} +0000",
        (Timestamp::now() - SignedDuration::from_hours(24 * days_ago)).as_second()
    );
    let output = std::process::Command::new("git")
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
}

fn commit(dir: &Path, message: &str, days_ago: i64) -> String {
    git(dir, days_ago, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, 0, &["rev-parse", "HEAD"])
}

/// An origin with `main` (a, b, c), tag `v1.0.0` on b, `feature/x` (d on b), `stale` (f on
/// a, a month old) and `gone` (e on a, deleted before cloning). Returns the directory holding
/// `origin` and the commits by name.
fn origin() -> (tempfile::TempDir, BTreeMap<&'static str, String>) {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = root.path().join("origin");
    std::fs::create_dir(&origin).expect("origin dir");
    git(&origin, 0, &["init", "-q", "-b", "main"]);
    let mut ids = BTreeMap::new();
    ids.insert("a", commit(&origin, "a", 40));
    git(&origin, 30, &["checkout", "-q", "-b", "stale"]);
    ids.insert("f", commit(&origin, "f", 30));
    git(&origin, 0, &["checkout", "-q", "main"]);
    ids.insert("b", commit(&origin, "b", 5));
    git(&origin, 5, &["tag", "-a", "-m", "release", "v1.0.0"]);
    git(&origin, 0, &["checkout", "-q", "-b", "feature/x"]);
    ids.insert("d", commit(&origin, "d", 3));
    git(&origin, 0, &["checkout", "-q", "-b", "gone", &ids["a"]]);
    ids.insert("e", commit(&origin, "e", 4));
    git(&origin, 0, &["checkout", "-q", "main"]);
    ids.insert("c", commit(&origin, "c", 1));
    git(&origin, 0, &["branch", "-q", "-D", "gone"]);
    (root, ids)
}

/// Clones the origin into `<root>/NAME` with `options` and writes the project file there.
fn clone(root: &Path, name: &str, options: &[&str]) -> std::path::PathBuf {
    let url = format!("file://{}", root.join("origin").display());
    let mut argv = vec!["clone", "-q"];
    argv.extend_from_slice(options);
    argv.extend([url.as_str(), name]);
    git(root, 0, &argv);
    let dir = root.join(name);
    std::fs::write(
        dir.join("dockhand.yaml"),
        "images:\n  - name: api\ntags: [\"{sha}\", \"{branch}\", \"pr-{pr}\"]\n",
    )
    .expect("write dockhand.yaml");
    dir
}

/// Images of `acme/api`, built from the commits, three days old: `sha-<commit>` each, `main`
/// beside `sha-c`, `v1.0.0` beside `sha-b`, and `pr-7` (no labels).
async fn seed(registry: &Registry, ids: &BTreeMap<&'static str, String>) {
    let client = client(registry);
    let api = registry.repository("acme/api");
    let created = minutes_ago(3 * DAY);
    let mut digests = BTreeMap::new();
    for (name, ref_name) in [
        ("a", "main"),
        ("b", "main"),
        ("c", "main"),
        ("d", "feature/x"),
        ("e", "gone"),
        ("f", "stale"),
    ] {
        let labels = [(REVISION, ids[name].as_str()), (REF_NAME, ref_name)];
        let digest =
            push_labelled_image(&client, &api, &format!("sha-{name}"), &created, &labels).await;
        digests.insert(name, digest);
    }
    tag_existing(&client, &api, "main", &digests["c"]).await;
    tag_existing(&client, &api, "v1.0.0", &digests["b"]).await;
    push_image(&client, &api, Some("pr-7"), &created).await;
}

fn cleanup(dir: &Path, registry: &Registry, flags: &[&str]) -> Run {
    let mut argv = vec!["cleanup", "--output", "json"];
    argv.extend_from_slice(flags);
    dockhand(dir, &argv)
        .env("DOCKHAND_REPO", &format!("{}/acme", registry.host()))
        .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
        .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
        .env("DOCKHAND_REGISTRY_USERNAME", crate::support::registry::USER)
        .env("DOCKHAND_REGISTRY_PASSWORD", crate::support::registry::PASSWORD)
        .run()
}

/// Each tag under `key` with its reason.
fn reasons(document: &Value, key: &str) -> BTreeMap<String, String> {
    document[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {document}"))
        .iter()
        .map(|item| {
            (item["tag"].as_str().unwrap().to_owned(), item["reason"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_default_keep_policies_follow_the_checkout() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let (root, ids) = origin();
    seed(&registry, &ids).await;
    let dir = clone(root.path(), "clone", &[]);

    let run = cleanup(&dir, &registry, &["--dry-run"]);
    run.assert_code(0);
    let plan = run.json();
    let short = |name: &str| ids[name][..8].to_owned();
    let newest = |n: u32| format!("(a keep policy keeps the newest {n}); evidence: revision label");
    let want_kept: BTreeMap<String, String> = [
        ("main", format!("kept: branch `main`, image 1 {}", newest(2))),
        ("sha-c", format!("kept: branch `main`, image 1 {}", newest(2))),
        ("sha-b", format!("kept: tag `v1.0.0`, image 1 {}", newest(1))),
        ("v1.0.0", "kept: `v1.0.0` looks like a release (delete_releases is off)".to_owned()),
        ("sha-a", format!("kept: branch `main`, image 3 {}", newest(10))),
        ("sha-d", format!("kept: branch `feature/x`, image 1 {}", newest(2))),
        (
            "pr-7",
            "kept: PR #7 state unknown (no GitHub repository or GitLab project is known: GITHUB_REPOSITORY and CI_PROJECT_ID are unset), so its images stay; evidence: the tag read by tag rules `{branch}`, `pr-{pr}`".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(tag, reason)| (tag.to_owned(), reason))
    .collect();
    assert_eq!(reasons(&plan, "kept"), want_kept);
    let want_deleted: BTreeMap<String, String> = [
        ("sha-e", format!("deleted: branch `gone` no longer exists (commit `{}`); evidence: revision label", short("e"))),
        ("sha-f", "deleted: image 1 of branch `stale`, which no keep policy keeps; evidence: revision label".to_owned()),
    ]
    .into_iter()
    .map(|(tag, reason)| (tag.to_owned(), reason))
    .collect();
    assert_eq!(reasons(&plan, "would_delete"), want_deleted);
    assert_eq!(skopeo_tags(&registry, "acme/api").len(), 9, "a dry run deletes nothing");

    let run = cleanup(&dir, &registry, &[]);
    run.assert_code(0);
    assert_eq!(reasons(&run.json(), "deleted").keys().collect::<Vec<_>>(), ["sha-e", "sha-f"]);
    assert_eq!(
        skopeo_tags(&registry, "acme/api"),
        ["main", "pr-7", "sha-a", "sha-b", "sha-c", "sha-d", "v1.0.0"]
    );
}

#[tokio::test]
async fn a_shallow_clone_deletes_nothing_it_cannot_prove() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let (root, ids) = origin();
    seed(&registry, &ids).await;
    let dir = clone(root.path(), "shallow", &["--depth", "1", "--no-single-branch"]);

    let run = cleanup(&dir, &registry, &[]);
    run.assert_code(0);
    let document = run.json();
    assert_eq!(reasons(&document, "deleted"), BTreeMap::new());
    let kept = reasons(&document, "kept");
    for tag in ["sha-a", "sha-e", "sha-f"] {
        assert!(
            kept[tag].contains("shallow clone") && kept[tag].contains("fetch-depth: 0"),
            "{tag}: {}",
            kept[tag]
        );
    }
    assert_eq!(
        kept["sha-d"],
        "kept: branch `feature/x`, image 1 (a keep policy keeps the newest 2); evidence: revision label"
    );
    assert_eq!(skopeo_tags(&registry, "acme/api").len(), 9);
}

#[tokio::test]
async fn keep_policies_outside_a_checkout_are_refused() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("dockhand.yaml"),
        "images:\n  - name: api\ncleanup:\n  keep_policies:\n    - references: {branch: main}\n",
    )
    .expect("write dockhand.yaml");
    let run = cleanup(dir.path(), &registry, &["--dry-run"]);
    run.assert_code(1);
    assert!(run.stderr.contains("`cleanup.keep_policies` need a git checkout"), "{}", run.stderr);

    std::fs::write(
        dir.path().join("dockhand.yaml"),
        "images:\n  - name: api\ncleanup:\n  keep_policies:\n    - references: {branch: main, tag: v.*}\n",
    )
    .expect("write dockhand.yaml");
    let run = cleanup(dir.path(), &registry, &["--dry-run"]);
    run.assert_code(1);
    assert!(run.stderr.contains("must name exactly one of `branch` and `tag`"), "{}", run.stderr);
}

/// Images of pull requests follow their state as the GitHub API gives it (played by the GitHub
/// stand-in, following `@octokit/openapi`): an open one's stay, a merged or closed one's go once
/// older than the grace period; without a token they all stay, saying why.
#[tokio::test]
async fn pull_request_images_follow_their_state_standin() {
    use crate::support::stand_in::{Flavor, GithubToken, StandIn};
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let (root, ids) = origin();
    seed(&registry, &ids).await;
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for pr in ["pr-8", "pr-9"] {
        push_image(&client, &api, Some(pr), &minutes_ago(3 * DAY)).await;
    }
    let github = StandIn::start(Flavor::Github, registry.port());
    let token = "ghp_StandInPullRequestReader0000000001";
    github.add_github_token(token, GithubToken::FineGrained);
    github.add_pull_request("acme/app", 7, true, false);
    github.add_pull_request("acme/app", 8, false, true);
    github.add_pull_request("acme/app", 9, false, false);
    let dir = clone(root.path(), "clone", &[]);
    let run_with = |flags: &[&str], token: Option<&str>| {
        let mut argv = vec!["cleanup", "--output", "json"];
        argv.extend_from_slice(flags);
        let mut command = dockhand(&dir, &argv)
            .env("DOCKHAND_REPO", &format!("{}/acme", registry.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
            .env(
                "DOCKHAND_INSECURE_REGISTRIES",
                &format!(
                    "{},{}",
                    registry.insecure_hosts(),
                    github.api_url().trim_start_matches("http://")
                ),
            )
            .env("DOCKHAND_REGISTRY_USERNAME", crate::support::registry::USER)
            .env("DOCKHAND_REGISTRY_PASSWORD", crate::support::registry::PASSWORD)
            .env("GITHUB_REPOSITORY", "acme/app")
            .env("GITHUB_API_URL", &github.api_url());
        if let Some(token) = token {
            command = command.env("GITHUB_TOKEN", token);
        }
        command.run()
    };

    let without = run_with(&["--dry-run"], None);
    without.assert_code(0);
    let kept = reasons(&without.json(), "kept");
    for pr in ["pr-7", "pr-8", "pr-9"] {
        assert!(kept[pr].contains("state unknown (no GitHub token)"), "{pr}: {}", kept[pr]);
    }

    let run = run_with(&[], Some(token));
    run.assert_code(0).assert_not_printed(token);
    let document = run.json();
    let kept = reasons(&document, "kept");
    let deleted = reasons(&document, "deleted");
    assert!(kept["pr-7"].starts_with("kept: PR #7 is open"), "{}", kept["pr-7"]);
    assert!(deleted["pr-8"].starts_with("deleted: PR #8 is merged"), "{}", deleted["pr-8"]);
    assert!(deleted["pr-9"].starts_with("deleted: PR #9 is closed"), "{}", deleted["pr-9"]);
    let tags = skopeo_tags(&registry, "acme/api");
    assert!(tags.contains(&"pr-7".to_owned()), "{tags:?}");
    assert!(!tags.iter().any(|tag| tag == "pr-8" || tag == "pr-9"), "{tags:?}");
    let asked: Vec<String> =
        github.api_requests().into_iter().filter(|line| line.contains("/pulls/")).collect();
    assert_eq!(asked.len(), 3, "one request per pull request: {asked:?}");
}

/// The same on GitLab: merge request states from the GitLab stand-in's merge requests API,
/// asked with `DOCKHAND_GITLAB_TOKEN`; with only `CI_JOB_TOKEN` (which GitLab's merge requests
/// API refuses) the states are unknown, the images stay, and the reason names the fix.
#[tokio::test]
async fn merge_request_images_follow_their_state_on_gitlab_standin() {
    use crate::support::stand_in::{Flavor, GitlabToken, StandIn};
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let (root, ids) = origin();
    seed(&registry, &ids).await;
    let client = client(&registry);
    let api = registry.repository("acme/api");
    for pr in ["pr-8", "pr-9"] {
        push_image(&client, &api, Some(pr), &minutes_ago(3 * DAY)).await;
    }
    let gitlab = StandIn::start(Flavor::Gitlab, registry.port());
    gitlab.add_gitlab_project("acme/app", 42);
    let token = "glpat-StandInMergeRequestReader01";
    let job = "glcbt-StandInJobToken0000000001";
    gitlab.add_gitlab_token(token, GitlabToken::Access { delete: false });
    gitlab
        .add_gitlab_token(job, GitlabToken::Job { project: "acme/app".to_owned(), delete: false });
    gitlab.add_merge_request("acme/app", 7, "opened");
    gitlab.add_merge_request("acme/app", 8, "merged");
    gitlab.add_merge_request("acme/app", 9, "closed");
    let dir = clone(root.path(), "clone", &[]);
    let insecure =
        format!("{},{}", registry.insecure_hosts(), gitlab.api_url().trim_start_matches("http://"));
    let run_with = |flags: &[&str], token: (&str, &str)| {
        let mut argv = vec!["cleanup", "--output", "json"];
        argv.extend_from_slice(flags);
        dockhand(&dir, &argv)
            .env("DOCKHAND_REPO", &format!("{}/acme", registry.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
            .env("DOCKHAND_INSECURE_REGISTRIES", &insecure)
            .env("DOCKHAND_REGISTRY_USERNAME", crate::support::registry::USER)
            .env("DOCKHAND_REGISTRY_PASSWORD", crate::support::registry::PASSWORD)
            .env("CI_PROJECT_ID", "42")
            .env("CI_API_V4_URL", &format!("{}/api/v4", gitlab.api_url()))
            .env(token.0, token.1)
            .run()
    };

    let with_job_token = run_with(&["--dry-run"], ("CI_JOB_TOKEN", job));
    with_job_token.assert_code(0).assert_not_printed(job);
    let kept = reasons(&with_job_token.json(), "kept");
    for mr in ["pr-7", "pr-8", "pr-9"] {
        assert!(kept[mr].contains("state unknown (the GitLab API failed:"), "{mr}: {}", kept[mr]);
        assert!(kept[mr].contains("set DOCKHAND_GITLAB_TOKEN"), "{mr}: {}", kept[mr]);
    }
    let asked = |gitlab: &StandIn| {
        gitlab.api_requests().into_iter().filter(|line| line.contains("/merge_requests/")).count()
    };
    assert_eq!(asked(&gitlab), 1, "a refused job token is asked once");

    let run = run_with(&[], ("DOCKHAND_GITLAB_TOKEN", token));
    run.assert_code(0).assert_not_printed(token);
    let document = run.json();
    let kept = reasons(&document, "kept");
    let deleted = reasons(&document, "deleted");
    assert!(kept["pr-7"].starts_with("kept: MR !7 is open"), "{}", kept["pr-7"]);
    assert!(deleted["pr-8"].starts_with("deleted: MR !8 is merged"), "{}", deleted["pr-8"]);
    assert!(deleted["pr-9"].starts_with("deleted: MR !9 is closed"), "{}", deleted["pr-9"]);
    let tags = skopeo_tags(&registry, "acme/api");
    assert!(tags.contains(&"pr-7".to_owned()), "{tags:?}");
    assert!(!tags.iter().any(|tag| tag == "pr-8" || tag == "pr-9"), "{tags:?}");
    assert_eq!(asked(&gitlab), 1 + 3, "one request per merge request");
}

/// Release tags by version, with no project file and no checkout: the flags alone make
/// `cleanup.releases`. A dry run explains each release, then the cleanup leaves exactly the kept
/// tags, as skopeo sees them.
#[tokio::test]
async fn release_rules_keep_the_newest_of_each_major_and_minor() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let app = registry.repository("acme/app");
    let mut digests = BTreeMap::new();
    for version in ["v1.0.0", "v1.0.1", "v1.1.0", "v2.0.0", "v2.1.0", "v2.1.1", "v2.1.1-rc.1"] {
        let digest = push_image(&client, &app, Some(version), &minutes_ago(10 * DAY)).await;
        digests.insert(version, digest);
    }
    // the pre-release of a version not released yet is pushed last: it is the newest image
    push_image(&client, &app, Some("v3.0.0-rc.1"), &minutes_ago(DAY)).await;
    tag_existing(&client, &app, "latest", &digests["v2.1.1"]).await;
    tag_existing(&client, &app, "v1", &digests["v1.1.0"]).await;
    let dir = tempfile::tempdir().unwrap();
    let cleanup = |extra: &[&str]| {
        let repo = format!("{}/acme/app", registry.host());
        let mut argv = vec![
            "cleanup",
            "--repo",
            &repo,
            "--keep-releases-per-major",
            "1",
            "--keep-releases-per-minor",
            "1",
            "--keep-last",
            "0",
            "--output",
            "json",
        ];
        argv.extend_from_slice(extra);
        dockhand(dir.path(), &argv)
            .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
            .env("DOCKHAND_INSECURE_REGISTRIES", &registry.insecure_hosts())
            .run()
    };

    let planned = cleanup(&["--dry-run"]);
    planned.assert_code(0);
    let document = planned.json();
    let kept: BTreeMap<String, String> = [
        ("latest", "kept: `latest` points at release `v2.1.1`, which is kept"),
        ("v1", "kept: `v1` points at release `v1.1.0`, which is kept"),
        ("v1.0.1", "kept: `v1.0.1` is the newest 1.0 release"),
        ("v1.1.0", "kept: `v1.1.0` is the newest 1.1 release"),
        ("v2.0.0", "kept: `v2.0.0` is the newest 2.0 release"),
        ("v2.1.1", "kept: `v2.1.1` is the highest release of `app`"),
        (
            "v3.0.0-rc.1",
            "kept: `v3.0.0-rc.1` is a pre-release of 3.0.0, which has no release tag yet",
        ),
    ]
    .into_iter()
    .map(|(tag, reason)| (tag.to_owned(), reason.to_owned()))
    .collect();
    assert_eq!(reasons(&document, "kept"), kept);
    let would_delete: BTreeMap<String, String> = [
        (
            "v1.0.0",
            "deleted: `v1.0.0` is neither the newest 1.x release nor the newest 1.0 release",
        ),
        (
            "v2.1.0",
            "deleted: `v2.1.0` is neither the newest 2.x release nor the newest 2.1 release",
        ),
        ("v2.1.1-rc.1", "deleted: `v2.1.1-rc.1` is a pre-release of 2.1.1, which is released"),
    ]
    .into_iter()
    .map(|(tag, reason)| (tag.to_owned(), reason.to_owned()))
    .collect();
    assert_eq!(reasons(&document, "would_delete"), would_delete);

    cleanup(&[]).assert_code(0);
    assert_eq!(skopeo_tags(&registry, "acme/app"), kept.keys().cloned().collect::<Vec<_>>());
    for (tag, digest) in [("latest", "v2.1.1"), ("v1", "v1.1.0")] {
        assert_eq!(
            crate::support::peers::skopeo_digest(&registry, &format!("acme/app:{tag}")),
            digests[digest]
        );
    }
}
