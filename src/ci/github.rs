//! GitHub Actions: the job's facts from `GITHUB_*` variables and the event payload.
//!
//! Owns the translation of a GitHub Actions environment (github.com, GHES and GHE.com with data
//! residency) into a [`CiContext`]. Reads the event JSON that `GITHUB_EVENT_PATH` names, and
//! nothing else; never writes files. A missing or malformed event file only loses the facts it
//! would have given, with a warning.

use std::fs;
use std::path::Path;

use serde_json::Value;

use super::{CiContext, CiError, JobLogin, Provider, RefType, non_empty};
use crate::env_vars::{self, EnvMap};
use crate::reference::{RegistryHost, RepoAddress, valid_repository_path};
use crate::registry::Implementation;
use crate::secret::Secret;

/// The container registry of github.com.
const GHCR: &str = "ghcr.io";
/// `GITHUB_SERVER_URL` on github.com.
const GITHUB_COM: &str = "https://github.com";

/// The facts of a GitHub Actions job.
///
/// - registry: `ghcr.io`, or `containers.<host>` when `GITHUB_SERVER_URL` is not
///   `https://github.com` (GHES, GHE.com);
/// - credentials: `GITHUB_ACTOR` / `GITHUB_TOKEN`, only when both are set;
/// - repo: `<registry>/<lowercased GITHUB_REPOSITORY>` (left unset, with a warning, when the
///   repository name is not a valid image name);
/// - on `pull_request` events: `sha` is the head commit `pull_request.head.sha` (not the
///   synthetic merge commit in `GITHUB_SHA`) and `ref_name` is `GITHUB_HEAD_REF`; for every
///   event with a `pull_request` payload, `pr_number` and `pr_head_sha` come from it;
/// - `default_branch` from the payload's `repository.default_branch`.
pub fn context(env: &EnvMap) -> Result<CiContext, CiError> {
    let registry = registry(env)?;
    let event = read_event(env);
    let pull_request = event.as_ref().and_then(|event| event.get("pull_request"));
    let is_pull_request =
        non_empty(env, env_vars::GITHUB_EVENT_NAME).is_some_and(|name| name == "pull_request");

    // the payload is a file anyone with write access shapes: keep only well-formed values
    let pr_number = pull_request
        .and_then(|pr| pr.get("number"))
        .and_then(scalar)
        .filter(|number| well_formed("pull_request.number", number, is_pr_number));
    let pr_head_sha = pull_request
        .and_then(|pr| pr.pointer("/head/sha"))
        .and_then(Value::as_str)
        .filter(|sha| !sha.is_empty() && well_formed("pull_request.head.sha", sha, is_commit_id))
        .map(str::to_owned);
    let sha = match (is_pull_request, &pr_head_sha) {
        (true, Some(head)) => Some(head.clone()),
        _ => non_empty(env, env_vars::GITHUB_SHA),
    };
    // push events carry the head commit's time
    let commit_time = event
        .as_ref()
        .and_then(|event| event.get("head_commit"))
        .filter(|commit| commit.get("id").and_then(Value::as_str) == sha.as_deref())
        .and_then(|commit| commit.get("timestamp"))
        .and_then(Value::as_str)
        .and_then(|text| text.parse::<jiff::Timestamp>().ok());
    let ref_name = if is_pull_request {
        non_empty(env, env_vars::GITHUB_HEAD_REF)
    } else {
        non_empty(env, env_vars::GITHUB_REF_NAME)
    };
    let ref_type = match non_empty(env, env_vars::GITHUB_REF_TYPE).as_deref() {
        Some("tag") => Some(RefType::Tag),
        Some("branch") => Some(RefType::Branch),
        _ => None,
    };
    let tag = if ref_type == Some(RefType::Tag) { ref_name.clone() } else { None };
    let default_branch = event
        .as_ref()
        .and_then(|event| event.pointer("/repository/default_branch"))
        .and_then(Value::as_str)
        .filter(|branch| !branch.is_empty())
        .map(str::to_owned);

    let credentials = match (
        non_empty(env, env_vars::GITHUB_ACTOR),
        non_empty(env, env_vars::GITHUB_TOKEN),
    ) {
        (Some(username), Some(token)) => {
            Some(JobLogin { registry: registry.clone(), username, password: Secret::new(token) })
        }
        (_, None) => {
            log::info!(
                "`{}` is not set: no registry login for `{registry}` (map it into `env:` to log in)",
                env_vars::GITHUB_TOKEN
            );
            None
        }
        (None, Some(_)) => {
            log::warn!(
                "`{}` is not set: no registry login for `{registry}`",
                env_vars::GITHUB_ACTOR
            );
            None
        }
    };

    Ok(CiContext {
        provider: Provider::Github,
        repo: repo(env, &registry),
        credentials,
        implementation: Some(Implementation::Github),
        sha,
        ref_name,
        ref_type,
        tag,
        pr_number,
        pr_head_sha,
        default_branch,
        job_id: non_empty(env, env_vars::GITHUB_JOB),
        pipeline_id: non_empty(env, env_vars::GITHUB_RUN_ID),
        commit_time,
    })
}

/// `ghcr.io` on github.com, `containers.<server host>` elsewhere.
fn registry(env: &EnvMap) -> Result<RegistryHost, CiError> {
    let server = non_empty(env, env_vars::GITHUB_SERVER_URL);
    let server = match server.as_deref().map(|url| url.trim_end_matches('/')) {
        None | Some(GITHUB_COM) => return Ok(GHCR.parse().expect("`ghcr.io` is a valid host")),
        Some(url) => url,
    };
    let invalid_url =
        || CiError::InvalidUrl { variable: env_vars::GITHUB_SERVER_URL, value: server.to_owned() };
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .ok_or_else(invalid_url)?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid_url());
    }
    format!("containers.{authority}").parse().map_err(|source| CiError::InvalidReference {
        variable: env_vars::GITHUB_SERVER_URL,
        source,
    })
}

/// `<registry>/<lowercased owner/repo>`, or `None` when the name cannot be an image name.
fn repo(env: &EnvMap, registry: &RegistryHost) -> Option<RepoAddress> {
    let repository = non_empty(env, env_vars::GITHUB_REPOSITORY)?.to_ascii_lowercase();
    if valid_repository_path(&repository) {
        Some(RepoAddress { registry: registry.clone(), path: repository })
    } else {
        log::warn!(
            "`{}` (`{repository}`) is not a valid image repository name; set `{}` to choose one",
            env_vars::GITHUB_REPOSITORY,
            env_vars::DOCKHAND_REPO
        );
        None
    }
}

/// The event payload, or `None` (with a log line) when there is none or it cannot be read.
fn read_event(env: &EnvMap) -> Option<Value> {
    let Some(path) = non_empty(env, env_vars::GITHUB_EVENT_PATH) else {
        log::debug!("`{}` is not set: no event payload", env_vars::GITHUB_EVENT_PATH);
        return None;
    };
    let path = Path::new(&path);
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => {
            log::warn!("cannot read the event payload `{}`: {error}", path.display());
            return None;
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(event) => Some(event),
        Err(error) => {
            log::warn!(
                "the event payload `{}` is not valid JSON (line {}, column {})",
                path.display(),
                error.line(),
                error.column()
            );
            None
        }
    }
}

/// A JSON number or string as text.
/// `check(value)`, with a warning naming the event field when it fails.
fn well_formed(field: &str, value: &str, check: fn(&str) -> bool) -> bool {
    let ok = check(value);
    if !ok {
        log::warn!("ignoring the event payload's `{field}`: `{value}` is not well-formed");
    }
    ok
}

/// A pull request number: 1 to 20 ASCII digits.
fn is_pr_number(value: &str) -> bool {
    (1..=20).contains(&value.len()) && value.bytes().all(|byte| byte.is_ascii_digit())
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits.
fn is_commit_id(value: &str) -> bool {
    matches!(value.len(), 40 | 64) && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::context;
    use crate::ci::{CiContext, CiError, JobLogin, Provider, RefType};
    use crate::env_vars::EnvMap;
    use crate::registry::Implementation;
    use crate::secret::Secret;

    /// The variables every GitHub Actions job has (docs.github.com, "Variables" reference).
    fn base_env(event_path: &Path) -> EnvMap {
        [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_REPOSITORY", "Octo-Org/Hello-World"),
            ("GITHUB_REPOSITORY_OWNER", "Octo-Org"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_RUN_ID", "1658821493"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_JOB", "build"),
            ("GITHUB_WORKFLOW", "CI"),
            ("RUNNER_TEMP", "/home/runner/work/_temp"),
            ("GITHUB_TOKEN", "ghs_exampletoken"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("GITHUB_EVENT_PATH".to_owned(), event_path.display().to_string())])
        .collect()
    }

    fn with(mut env: EnvMap, pairs: &[(&str, &str)]) -> EnvMap {
        for (k, v) in pairs {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        env
    }

    const HEAD: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
    const MERGE: &str = "1f3a2b4c5d6e7f8091a2b3c4d5e6f708192a3b4c";
    const PUSHED: &str = "ffac537e6cbbf934b08745a378932722df287a53";

    fn expected(pairs: impl FnOnce(&mut CiContext)) -> CiContext {
        let mut context = CiContext::empty(Provider::Github);
        context.credentials = Some(JobLogin {
            registry: "ghcr.io".parse().unwrap(),
            username: "octocat".into(),
            password: Secret::new("ghs_exampletoken"),
        });
        context.repo = Some("ghcr.io/octo-org/hello-world".parse().unwrap());
        context.implementation = Some(Implementation::Github);
        context.job_id = Some("build".into());
        context.pipeline_id = Some("1658821493".into());
        pairs(&mut context);
        context
    }

    /// A push payload and a pull request payload, as the runner writes them.
    fn event_files(dir: &Path) -> (PathBuf, PathBuf) {
        let push_event = dir.join("push.json");
        std::fs::write(
            &push_event,
            r#"{"ref":"refs/heads/main","after":"ffac537e6cbbf934b08745a378932722df287a53",
                "repository":{"full_name":"Octo-Org/Hello-World","default_branch":"main"}}"#,
        )
        .unwrap();
        let pr_event = dir.join("pr.json");
        std::fs::write(
            &pr_event,
            format!(
                r#"{{"action":"synchronize","number":42,
                    "pull_request":{{"number":42,"head":{{"ref":"feature/x","sha":"{HEAD}"}},
                                     "base":{{"ref":"main","sha":"{PUSHED}"}}}},
                    "repository":{{"default_branch":"main"}}}}"#
            ),
        )
        .unwrap();

        (push_event, pr_event)
    }

    #[test]
    fn push_events() {
        let dir = tempfile::tempdir().unwrap();
        let (push_event, _) = event_files(dir.path());
        let cases: Vec<(&str, EnvMap, CiContext)> = vec![
            (
                "push to a branch",
                with(
                    base_env(&push_event),
                    &[
                        ("GITHUB_EVENT_NAME", "push"),
                        ("GITHUB_SHA", PUSHED),
                        ("GITHUB_REF", "refs/heads/main"),
                        ("GITHUB_REF_NAME", "main"),
                        ("GITHUB_REF_TYPE", "branch"),
                        ("GITHUB_HEAD_REF", ""),
                        ("GITHUB_BASE_REF", ""),
                    ],
                ),
                expected(|c| {
                    c.sha = Some(PUSHED.into());
                    c.ref_name = Some("main".into());
                    c.ref_type = Some(RefType::Branch);
                    c.default_branch = Some("main".into());
                }),
            ),
            (
                "push of a tag",
                with(
                    base_env(&push_event),
                    &[
                        ("GITHUB_EVENT_NAME", "push"),
                        ("GITHUB_SHA", PUSHED),
                        ("GITHUB_REF", "refs/tags/v1.2.3"),
                        ("GITHUB_REF_NAME", "v1.2.3"),
                        ("GITHUB_REF_TYPE", "tag"),
                    ],
                ),
                expected(|c| {
                    c.sha = Some(PUSHED.into());
                    c.ref_name = Some("v1.2.3".into());
                    c.ref_type = Some(RefType::Tag);
                    c.tag = Some("v1.2.3".into());
                    c.default_branch = Some("main".into());
                }),
            ),
        ];
        for (name, env, want) in cases {
            assert_eq!(context(&env).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn a_push_event_gives_the_head_commits_time() {
        let dir = tempfile::tempdir().unwrap();
        // the `push` payload's `head_commit` (docs.github.com, "Webhook events and payloads")
        let event = dir.path().join("push.json");
        std::fs::write(
            &event,
            format!(
                r#"{{"ref":"refs/heads/main","head_commit":{{"id":"{PUSHED}","timestamp":"2024-06-01T14:00:00+02:00"}}}}"#
            ),
        )
        .unwrap();
        let push = |sha: &str| {
            let env = with(base_env(&event), &[("GITHUB_EVENT_NAME", "push"), ("GITHUB_SHA", sha)]);
            context(&env).unwrap().commit_time
        };
        assert_eq!(push(PUSHED), Some("2024-06-01T12:00:00Z".parse().unwrap()));
        // the payload's commit is not the one built: its time says nothing
        assert_eq!(push("0000000000000000000000000000000000000000"), None);
    }

    #[test]
    fn pull_request_events() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pr_event) = event_files(dir.path());
        let cases: Vec<(&str, EnvMap, CiContext)> = vec![
            (
                "pull request: head commit and source branch, not the merge commit",
                with(
                    base_env(&pr_event),
                    &[
                        ("GITHUB_EVENT_NAME", "pull_request"),
                        ("GITHUB_SHA", MERGE),
                        ("GITHUB_REF", "refs/pull/42/merge"),
                        ("GITHUB_REF_NAME", "42/merge"),
                        ("GITHUB_REF_TYPE", "branch"),
                        ("GITHUB_HEAD_REF", "feature/x"),
                        ("GITHUB_BASE_REF", "main"),
                    ],
                ),
                expected(|c| {
                    c.sha = Some(HEAD.into());
                    c.ref_name = Some("feature/x".into());
                    c.ref_type = Some(RefType::Branch);
                    c.pr_number = Some("42".into());
                    c.pr_head_sha = Some(HEAD.into());
                    c.default_branch = Some("main".into());
                }),
            ),
            (
                "pull_request_target builds the base: GITHUB_SHA, but the PR facts are known",
                with(
                    base_env(&pr_event),
                    &[
                        ("GITHUB_EVENT_NAME", "pull_request_target"),
                        ("GITHUB_SHA", PUSHED),
                        ("GITHUB_REF", "refs/heads/main"),
                        ("GITHUB_REF_NAME", "main"),
                        ("GITHUB_REF_TYPE", "branch"),
                        ("GITHUB_HEAD_REF", "feature/x"),
                    ],
                ),
                expected(|c| {
                    c.sha = Some(PUSHED.into());
                    c.ref_name = Some("main".into());
                    c.ref_type = Some(RefType::Branch);
                    c.pr_number = Some("42".into());
                    c.pr_head_sha = Some(HEAD.into());
                    c.default_branch = Some("main".into());
                }),
            ),
            (
                "missing event file: GITHUB_SHA and no payload facts",
                with(
                    base_env(&dir.path().join("absent.json")),
                    &[
                        ("GITHUB_EVENT_NAME", "pull_request"),
                        ("GITHUB_SHA", MERGE),
                        ("GITHUB_REF_NAME", "42/merge"),
                        ("GITHUB_REF_TYPE", "branch"),
                        ("GITHUB_HEAD_REF", "feature/x"),
                    ],
                ),
                expected(|c| {
                    c.sha = Some(MERGE.into());
                    c.ref_name = Some("feature/x".into());
                    c.ref_type = Some(RefType::Branch);
                }),
            ),
        ];
        for (name, env, want) in cases {
            assert_eq!(context(&env).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn malformed_event_file_is_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, "{not json").unwrap();
        let env = with(
            base_env(&event),
            &[("GITHUB_EVENT_NAME", "push"), ("GITHUB_SHA", PUSHED), ("GITHUB_REF_NAME", "main")],
        );
        let got = context(&env).unwrap();
        assert_eq!(got.sha.as_deref(), Some(PUSHED));
        assert_eq!(got.default_branch, None);
    }

    #[test]
    fn ghes_and_ghe_com_use_the_containers_subdomain() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("none.json");
        for (server, registry, repo) in [
            ("https://github.com/", "ghcr.io", "ghcr.io/octo-org/hello-world"),
            (
                "https://ghes.example.com",
                "containers.ghes.example.com",
                "containers.ghes.example.com/octo-org/hello-world",
            ),
            (
                "https://Octo.GHE.com",
                "containers.octo.ghe.com",
                "containers.octo.ghe.com/octo-org/hello-world",
            ),
            (
                "http://ghes.local:8080/",
                "containers.ghes.local:8080",
                "containers.ghes.local:8080/octo-org/hello-world",
            ),
        ] {
            let env = with(base_env(&event), &[("GITHUB_SERVER_URL", server)]);
            let got = context(&env).unwrap();
            assert_eq!(got.repo.unwrap().to_string(), repo, "{server}");
            assert_eq!(got.credentials.unwrap().registry.as_str(), registry, "{server}");
            assert_eq!(got.implementation, Some(Implementation::Github), "{server}");
        }
    }

    #[test]
    fn invalid_server_url_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("none.json");
        for server in ["ghes.example.com", "https://", "https://user@host", "https://bad host"] {
            let env = with(base_env(&event), &[("GITHUB_SERVER_URL", server)]);
            let error = context(&env).unwrap_err();
            assert!(
                matches!(
                    error,
                    CiError::InvalidUrl { variable: "GITHUB_SERVER_URL", .. }
                        | CiError::InvalidReference { variable: "GITHUB_SERVER_URL", .. }
                ),
                "{server}: {error:?}"
            );
        }
    }

    #[test]
    fn credentials_need_actor_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("none.json");
        let mut env = base_env(&event);
        env.remove("GITHUB_TOKEN");
        assert_eq!(context(&env).unwrap().credentials, None);
        let mut env = base_env(&event);
        env.remove("GITHUB_ACTOR");
        assert_eq!(context(&env).unwrap().credentials, None);
    }

    #[test]
    fn repository_that_is_no_image_name_leaves_the_repo_unset() {
        let dir = tempfile::tempdir().unwrap();
        let env =
            with(base_env(&dir.path().join("none.json")), &[("GITHUB_REPOSITORY", "acme/.github")]);
        let got = context(&env).unwrap();
        assert_eq!(got.repo, None);
        assert!(got.credentials.is_some());
    }

    #[test]
    fn malformed_pull_request_fields_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("hostile.json");
        std::fs::write(
            &event,
            r#"{"pull_request":{"number":"42; rm -rf /","head":{"sha":"$(id)\n::add-mask::x"}}}"#,
        )
        .unwrap();
        let env = with(base_env(&event), &[("GITHUB_EVENT_NAME", "pull_request")]);
        let got = context(&env).unwrap();
        assert_eq!((got.pr_number, got.pr_head_sha), (None, None));
        // the head commit is not taken from the payload: GITHUB_SHA stays
        assert_eq!(got.sha.as_deref(), env.get("GITHUB_SHA").map(String::as_str));
        assert!(super::is_commit_id(HEAD) && super::is_pr_number("42") && !super::is_pr_number(""));
    }
}
