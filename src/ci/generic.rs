//! Any other runner: the job's facts from `DOCKHAND_*` variables, else from the git checkout.
//!
//! Owns the translation of a generic environment into a [`CiContext`]. When the commit or the
//! ref is not given, asks `git` about the checkout in the working directory; git being absent,
//! or the directory not being a checkout, only leaves those facts unknown. Never writes files.

use std::path::Path;

use super::{CiContext, CiError, JobLogin, Provider, RefType, non_empty, registry_var, repo_var};
use crate::env_vars::{self, EnvMap};
use crate::process::Command;
use crate::secret::Secret;

/// The facts of a job on a runner dockhand has no special knowledge of.
///
/// - repo `DOCKHAND_REPO`; registry `DOCKHAND_REGISTRY`, else the repo's registry;
/// - credentials `DOCKHAND_REGISTRY_USERNAME` / `DOCKHAND_REGISTRY_PASSWORD`: both or neither;
/// - `DOCKHAND_SHA`, `DOCKHAND_REF_NAME`, `DOCKHAND_REF_TYPE` (`branch`|`tag`), `DOCKHAND_TAG`,
///   `DOCKHAND_PR_NUMBER`, `DOCKHAND_PR_HEAD_SHA`, `DOCKHAND_DEFAULT_BRANCH`,
///   `DOCKHAND_JOB_ID`, `DOCKHAND_PIPELINE_ID` when set;
/// - without `DOCKHAND_SHA`: `git rev-parse HEAD` in `workdir`; without `DOCKHAND_REF_NAME`:
///   the checked-out branch, else a tag pointing exactly at `HEAD`;
/// - `tag` is `DOCKHAND_TAG`, else the ref name when the ref is a tag. A ref type that is not
///   given and not known from git stays unknown. The commit's time is looked up only for
///   builds ([`CiContext::find_commit_time`]), as for every provider.
pub fn context(env: &EnvMap, workdir: &Path) -> Result<CiContext, CiError> {
    let repo = repo_var(env, env_vars::DOCKHAND_REPO)?;
    let registry = registry_var(env, env_vars::DOCKHAND_REGISTRY)?
        .or_else(|| repo.as_ref().map(|repo| repo.registry.clone()));
    let credentials = match (
        non_empty(env, env_vars::DOCKHAND_REGISTRY_USERNAME),
        non_empty(env, env_vars::DOCKHAND_REGISTRY_PASSWORD),
    ) {
        (Some(username), Some(password)) => {
            let registry = registry.ok_or(CiError::MissingRegistry {
                registry: env_vars::DOCKHAND_REGISTRY,
                repo: env_vars::DOCKHAND_REPO,
            })?;
            Some(JobLogin::from_user(
                registry,
                username,
                Secret::new(password),
                env_vars::DOCKHAND_REGISTRY_USERNAME,
            )?)
        }
        (Some(_), None) => {
            return Err(CiError::IncompleteCredentials {
                missing: env_vars::DOCKHAND_REGISTRY_PASSWORD,
                present: env_vars::DOCKHAND_REGISTRY_USERNAME,
            });
        }
        (None, Some(_)) => {
            return Err(CiError::IncompleteCredentials {
                missing: env_vars::DOCKHAND_REGISTRY_USERNAME,
                present: env_vars::DOCKHAND_REGISTRY_PASSWORD,
            });
        }
        (None, None) => None,
    };

    let given_ref_type = non_empty(env, env_vars::DOCKHAND_REF_TYPE)
        .map(|value| {
            value.parse::<RefType>().map_err(|_| CiError::InvalidRefType {
                variable: env_vars::DOCKHAND_REF_TYPE,
                value,
            })
        })
        .transpose()?;
    let sha = non_empty(env, env_vars::DOCKHAND_SHA).or_else(|| git_head(workdir));
    let (ref_name, ref_type) = match non_empty(env, env_vars::DOCKHAND_REF_NAME) {
        Some(name) => (Some(name), given_ref_type),
        None => match git_ref(workdir) {
            Some((name, kind)) => (Some(name), given_ref_type.or(Some(kind))),
            None => (None, given_ref_type),
        },
    };
    let tag = non_empty(env, env_vars::DOCKHAND_TAG)
        .or_else(|| if ref_type == Some(RefType::Tag) { ref_name.clone() } else { None });

    Ok(CiContext {
        provider: Provider::Generic,
        credentials,
        repo,
        implementation: None,
        sha,
        ref_name,
        ref_type,
        tag,
        pr_number: non_empty(env, env_vars::DOCKHAND_PR_NUMBER),
        pr_head_sha: non_empty(env, env_vars::DOCKHAND_PR_HEAD_SHA),
        default_branch: non_empty(env, env_vars::DOCKHAND_DEFAULT_BRANCH),
        job_id: non_empty(env, env_vars::DOCKHAND_JOB_ID),
        pipeline_id: non_empty(env, env_vars::DOCKHAND_PIPELINE_ID),
        commit_time: None,
    })
}

/// The committer date of `sha` in the checkout at `workdir` (`git show -s --format=%ct`), or
/// `None` when git is missing, the directory is not a checkout or it lacks that commit.
pub(super) fn commit_time(workdir: &Path, sha: &str) -> Option<jiff::Timestamp> {
    let seconds = git(workdir, &["show", "-s", "--format=%ct", sha, "--"])?;
    jiff::Timestamp::from_second(seconds.parse().ok()?).ok()
}

/// The URL of the `origin` remote of the checkout at `workdir`, as configured (it may carry
/// credentials: see [`public_source_url`]).
pub fn origin_url(workdir: &Path) -> Option<String> {
    git(workdir, &["remote", "get-url", "origin"])
}

/// The web address of a source repository from a git remote URL, credentials removed:
/// `https://user:token@host/group/app.git` → `https://host/group/app`; the SSH forms
/// `git@host:group/app.git` and `ssh://git@host:22/group/app` → `https://host/group/app`.
/// `None` for what is no network remote (a path, `file://`).
pub fn public_source_url(remote: &str) -> Option<String> {
    let remote = remote.trim();
    let (host, path) = match url::Url::parse(remote) {
        Ok(mut url) if matches!(url.scheme(), "http" | "https") => {
            url.set_username("").ok()?;
            url.set_password(None).ok()?;
            url.set_query(None);
            url.set_fragment(None);
            let text = url.to_string();
            return Some(text.trim_end_matches('/').trim_end_matches(".git").to_owned());
        }
        Ok(url) if matches!(url.scheme(), "ssh" | "git" | "git+ssh") => {
            (url.host_str()?.to_owned(), url.path().to_owned())
        }
        Ok(_) => return None,
        // scp-like `[user@]host:path`
        Err(_) => {
            let (before, path) = remote.split_once(':')?;
            let host = before.rsplit_once('@').map_or(before, |(_, host)| host);
            if host.is_empty() || host.contains('/') || path.starts_with("//") {
                return None;
            }
            (host.to_owned(), path.to_owned())
        }
    };
    let path = path.trim_start_matches('/').trim_end_matches('/').trim_end_matches(".git");
    (!path.is_empty()).then(|| format!("https://{host}/{path}"))
}

/// The full commit of `HEAD` in `workdir`.
fn git_head(workdir: &Path) -> Option<String> {
    git(workdir, &["rev-parse", "--verify", "-q", "HEAD"])
}

/// The checked-out branch, else a tag pointing exactly at `HEAD`.
fn git_ref(workdir: &Path) -> Option<(String, RefType)> {
    if let Some(branch) = git(workdir, &["symbolic-ref", "--short", "-q", "HEAD"]) {
        return Some((branch, RefType::Branch));
    }
    git(workdir, &["describe", "--tags", "--exact-match", "HEAD"]).map(|tag| (tag, RefType::Tag))
}

/// The trimmed stdout of `git <args>` run in `workdir`, or `None` (logged at debug level) when
/// git is missing, fails, or prints nothing.
fn git(workdir: &Path, args: &[&str]) -> Option<String> {
    match Command::new("git").current_dir(workdir).args(args).output() {
        Ok(output) => Some(output.stdout.trim().to_owned()).filter(|text| !text.is_empty()),
        Err(error) => {
            log::debug!("no git facts from `{}`: {error}", workdir.display());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::context;
    use crate::ci::{CiError, Provider, RefType};
    use crate::env_vars::EnvMap;

    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Runs git in `dir` with a fixed identity and no user or system config.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = std::process::Command::new("git")
            .current_dir(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn checkout() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q", "-b", "trunk"]);
        git(dir.path(), &["commit", "-q", "--allow-empty", "-m", "one"]);
        let sha = git(dir.path(), &["rev-parse", "HEAD"]);
        (dir, sha)
    }

    #[test]
    fn source_urls_from_git_remotes_lose_their_credentials() {
        use super::public_source_url as url;
        let want = Some("https://gitlab.example.com/group/app".to_owned());
        assert_eq!(
            url("https://gitlab-ci-token:glcbt-secret@gitlab.example.com/group/app.git"),
            want
        );
        assert_eq!(url("https://gitlab.example.com/group/app/"), want);
        assert_eq!(url("git@gitlab.example.com:group/app.git"), want);
        assert_eq!(url("ssh://git@gitlab.example.com:2222/group/app.git"), want);
        assert_eq!(
            url("https://x-access-token:ghs_x@github.com:8443/acme/app.git?x=1"),
            Some("https://github.com:8443/acme/app".to_owned())
        );
        assert_eq!(url("/srv/git/app.git"), None);
        assert_eq!(url("file:///srv/git/app.git"), None);
        assert_eq!(url("C:/repos/app"), None);
        assert_eq!(url(""), None);
    }

    #[test]
    fn everything_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let got = context(
            &env(&[
                ("DOCKHAND_REPO", "localhost:5000/acme/app"),
                ("DOCKHAND_REGISTRY_USERNAME", "ci"),
                ("DOCKHAND_REGISTRY_PASSWORD", "pw"),
                ("DOCKHAND_SHA", "0123456789abcdef0123456789abcdef01234567"),
                ("DOCKHAND_REF_NAME", "v2.0.0"),
                ("DOCKHAND_REF_TYPE", "tag"),
                ("DOCKHAND_PR_NUMBER", "9"),
                ("DOCKHAND_PR_HEAD_SHA", "89abcdef0123456789abcdef0123456789abcdef"),
                ("DOCKHAND_DEFAULT_BRANCH", "main"),
                ("DOCKHAND_JOB_ID", "j1"),
                ("DOCKHAND_PIPELINE_ID", "p1"),
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(got.provider, Provider::Generic);
        let credentials = got.credentials.unwrap();
        assert_eq!(credentials.registry.as_str(), "localhost:5000");
        assert_eq!((credentials.username.as_str(), credentials.password.expose()), ("ci", "pw"));
        assert_eq!(got.repo.unwrap().to_string(), "localhost:5000/acme/app");
        assert_eq!(got.implementation, None);
        assert_eq!(got.sha.as_deref(), Some("0123456789abcdef0123456789abcdef01234567"));
        assert_eq!(got.ref_name.as_deref(), Some("v2.0.0"));
        assert_eq!(got.ref_type, Some(RefType::Tag));
        assert_eq!(got.tag.as_deref(), Some("v2.0.0"));
        assert_eq!(got.pr_number.as_deref(), Some("9"));
        assert_eq!(got.pr_head_sha.as_deref(), Some("89abcdef0123456789abcdef0123456789abcdef"));
        assert_eq!(got.default_branch.as_deref(), Some("main"));
        assert_eq!(got.job_id.as_deref(), Some("j1"));
        assert_eq!(got.pipeline_id.as_deref(), Some("p1"));
    }

    #[test]
    fn explicit_registry_wins_over_the_repo_registry() {
        let dir = tempfile::tempdir().unwrap();
        let got = context(
            &env(&[
                ("DOCKHAND_REPO", "acme/app"),
                ("DOCKHAND_REGISTRY", "Registry.Example.com:5000"),
                ("DOCKHAND_REGISTRY_USERNAME", "ci"),
                ("DOCKHAND_REGISTRY_PASSWORD", "pw"),
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(got.credentials.unwrap().registry.as_str(), "registry.example.com:5000");
        assert_eq!(got.repo.unwrap().to_string(), "docker.io/acme/app");
    }

    #[test]
    fn usage_errors_name_the_variable() {
        type Check = fn(&CiError) -> bool;
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<(&str, &str)>, Check)> = vec![
            (vec![("DOCKHAND_REGISTRY_USERNAME", "ci")], |e| {
                matches!(
                    e,
                    CiError::IncompleteCredentials { missing: "DOCKHAND_REGISTRY_PASSWORD", .. }
                )
            }),
            (vec![("DOCKHAND_REGISTRY_PASSWORD", "pw")], |e| {
                matches!(
                    e,
                    CiError::IncompleteCredentials { missing: "DOCKHAND_REGISTRY_USERNAME", .. }
                )
            }),
            (
                vec![("DOCKHAND_REGISTRY_USERNAME", "ci"), ("DOCKHAND_REGISTRY_PASSWORD", "pw")],
                |e| matches!(e, CiError::MissingRegistry { .. }),
            ),
            (vec![("DOCKHAND_REF_TYPE", "branches")], |e| {
                matches!(e, CiError::InvalidRefType { variable: "DOCKHAND_REF_TYPE", .. })
            }),
            (vec![("DOCKHAND_REPO", "localhost:5000/Acme")], |e| {
                matches!(e, CiError::InvalidReference { variable: "DOCKHAND_REPO", .. })
            }),
            (vec![("DOCKHAND_REGISTRY", "http://localhost:5000")], |e| {
                matches!(e, CiError::InvalidReference { variable: "DOCKHAND_REGISTRY", .. })
            }),
        ];
        for (pairs, check) in cases {
            let error = context(&env(&pairs), dir.path()).unwrap_err();
            assert!(check(&error), "{pairs:?}: {error:?}");
        }
    }

    #[test]
    fn password_is_not_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let error = context(&env(&[("DOCKHAND_REGISTRY_PASSWORD", "sentinel-pw")]), dir.path())
            .unwrap_err();
        assert!(!error.to_string().contains("sentinel-pw"));
        assert!(!format!("{error:?}").contains("sentinel-pw"));
    }

    #[test]
    fn sha_and_branch_from_the_checkout() {
        let (dir, sha) = checkout();
        let got = context(&env(&[]), dir.path()).unwrap();
        assert_eq!(got.sha.as_deref(), Some(sha.as_str()));
        assert_eq!(got.ref_name.as_deref(), Some("trunk"));
        assert_eq!(got.ref_type, Some(RefType::Branch));
        assert_eq!(got.tag, None);
    }

    #[test]
    fn tag_from_a_detached_checkout() {
        let (dir, sha) = checkout();
        git(dir.path(), &["tag", "v1.0.0"]);
        git(dir.path(), &["checkout", "-q", "--detach", "v1.0.0"]);
        let got = context(&env(&[]), dir.path()).unwrap();
        assert_eq!(got.sha.as_deref(), Some(sha.as_str()));
        assert_eq!(got.ref_name.as_deref(), Some("v1.0.0"));
        assert_eq!(got.ref_type, Some(RefType::Tag));
        assert_eq!(got.tag.as_deref(), Some("v1.0.0"));
    }

    #[test]
    fn environment_overrides_the_checkout() {
        let (dir, _) = checkout();
        let got = context(
            &env(&[
                ("DOCKHAND_SHA", "abc"),
                ("DOCKHAND_REF_NAME", "release"),
                ("DOCKHAND_REF_TYPE", "branch"),
            ]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(got.sha.as_deref(), Some("abc"));
        assert_eq!(got.ref_name.as_deref(), Some("release"));
        assert_eq!(got.ref_type, Some(RefType::Branch));
    }

    #[test]
    fn not_a_checkout_leaves_the_facts_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let got = context(&env(&[]), dir.path()).unwrap();
        assert_eq!((got.sha, got.ref_name, got.ref_type, got.tag), (None, None, None, None));
    }
}
