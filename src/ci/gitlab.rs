//! GitLab CI: the job's facts from the predefined `CI_*` variables.
//!
//! Owns the translation of a GitLab CI environment into a [`CiContext`]. The registry of a
//! self-managed instance has an arbitrary host, so the implementation is set to `gitlab` here
//! rather than left to host rules. Pure: reads only the map it is given.

use super::{CiContext, CiError, JobLogin, Provider, RefType, non_empty, registry_var, repo_var};
use crate::env_vars::{self, EnvMap};
use crate::registry::Implementation;
use crate::secret::Secret;

/// The registry user that goes with `CI_JOB_TOKEN`.
pub const JOB_TOKEN_USER: &str = "gitlab-ci-token";

/// The facts of a GitLab CI job.
///
/// - registry: `CI_REGISTRY` (host, possibly with a port), else the registry of
///   `CI_REGISTRY_IMAGE`; repo: `CI_REGISTRY_IMAGE`; implementation: `gitlab` whenever either
///   is set;
/// - credentials: `CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD` when both are set, else
///   `gitlab-ci-token` / `CI_JOB_TOKEN`;
/// - `sha`: `CI_MERGE_REQUEST_SOURCE_BRANCH_SHA` when set (merged results pipelines, where
///   `CI_COMMIT_SHA` is the merge commit), else `CI_COMMIT_SHA`; in merge request pipelines
///   that is also `pr_head_sha`;
/// - `ref_type` is `tag` if and only if `CI_COMMIT_TAG` is set.
pub fn context(env: &EnvMap) -> Result<CiContext, CiError> {
    let repo = repo_var(env, env_vars::CI_REGISTRY_IMAGE)?;
    let registry = registry_var(env, env_vars::CI_REGISTRY)?
        .or_else(|| repo.as_ref().map(|repo| repo.registry.clone()));

    let login = match (
        non_empty(env, env_vars::CI_REGISTRY_USER),
        non_empty(env, env_vars::CI_REGISTRY_PASSWORD),
        non_empty(env, env_vars::CI_JOB_TOKEN),
    ) {
        (Some(user), Some(password), _) => Some((user, password)),
        (_, _, Some(token)) => Some((JOB_TOKEN_USER.to_owned(), token)),
        _ => None,
    };
    let credentials = match (registry.clone(), login) {
        (Some(registry), Some((username, password))) => {
            Some(JobLogin { registry, username, password: Secret::new(password) })
        }
        (None, Some(_)) => {
            log::info!(
                "neither `{}` nor `{}` is set: the project has no container registry to log in to",
                env_vars::CI_REGISTRY,
                env_vars::CI_REGISTRY_IMAGE
            );
            None
        }
        (_, None) => None,
    };

    let tag = non_empty(env, env_vars::CI_COMMIT_TAG);
    let ref_name = non_empty(env, env_vars::CI_COMMIT_REF_NAME);
    let ref_type = match (&tag, &ref_name) {
        (Some(_), _) => Some(RefType::Tag),
        (None, Some(_)) => Some(RefType::Branch),
        (None, None) => None,
    };
    let pr_number = non_empty(env, env_vars::CI_MERGE_REQUEST_IID);
    let source_sha = non_empty(env, env_vars::CI_MERGE_REQUEST_SOURCE_BRANCH_SHA);
    let sha = source_sha.clone().or_else(|| non_empty(env, env_vars::CI_COMMIT_SHA));
    let pr_head_sha = if pr_number.is_some() { sha.clone() } else { None };
    // the timestamp is `CI_COMMIT_SHA`'s: of no use when the build is of another commit
    let commit_time = non_empty(env, env_vars::CI_COMMIT_TIMESTAMP)
        .filter(|_| sha == non_empty(env, env_vars::CI_COMMIT_SHA))
        .and_then(|text| match text.parse::<jiff::Timestamp>() {
            Ok(time) => Some(time),
            Err(error) => {
                log::warn!("`{}` is not a timestamp ({error})", env_vars::CI_COMMIT_TIMESTAMP);
                None
            }
        });

    Ok(CiContext {
        provider: Provider::Gitlab,
        implementation: (registry.is_some() || repo.is_some()).then_some(Implementation::Gitlab),
        credentials,
        repo,
        sha,
        ref_name,
        ref_type,
        tag,
        pr_number,
        pr_head_sha,
        default_branch: non_empty(env, env_vars::CI_DEFAULT_BRANCH),
        job_id: non_empty(env, env_vars::CI_JOB_ID),
        pipeline_id: non_empty(env, env_vars::CI_PIPELINE_ID),
        commit_time,
    })
}

#[cfg(test)]
mod tests {
    use super::context;
    use crate::ci::{CiContext, CiError, JobLogin, Provider, RefType};
    use crate::env_vars::EnvMap;
    use crate::registry::Implementation;
    use crate::secret::Secret;

    const SHA: &str = "1ecfd275763eff1d6b4844ea3168962458c9f27a";
    const MERGE: &str = "9a3c0b4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

    /// Predefined variables every job has (docs.gitlab.com, "Predefined CI/CD variables").
    fn env(pairs: &[(&str, &str)]) -> EnvMap {
        [
            ("CI", "true"),
            ("GITLAB_CI", "true"),
            ("CI_SERVER_URL", "https://gitlab.example.com"),
            ("CI_API_V4_URL", "https://gitlab.example.com/api/v4"),
            ("CI_PROJECT_PATH", "gitlab-org/gitlab-foss"),
            ("CI_REGISTRY", "registry.example.com:5050"),
            ("CI_REGISTRY_IMAGE", "registry.example.com:5050/gitlab-org/gitlab-foss"),
            ("CI_REGISTRY_USER", "gitlab-ci-token"),
            ("CI_REGISTRY_PASSWORD", "glcbt-registry"),
            ("CI_JOB_TOKEN", "glcbt-job"),
            ("CI_DEFAULT_BRANCH", "main"),
            ("CI_JOB_ID", "50"),
            ("CI_PIPELINE_ID", "1000"),
            ("CI_COMMIT_SHA", SHA),
            ("CI_COMMIT_SHORT_SHA", "1ecfd275"),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn expected(change: impl FnOnce(&mut CiContext)) -> CiContext {
        let mut context = CiContext::empty(Provider::Gitlab);
        context.credentials = Some(JobLogin {
            registry: "registry.example.com:5050".parse().unwrap(),
            username: "gitlab-ci-token".into(),
            password: Secret::new("glcbt-registry"),
        });
        context.repo = Some("registry.example.com:5050/gitlab-org/gitlab-foss".parse().unwrap());
        context.implementation = Some(Implementation::Gitlab);
        context.sha = Some(SHA.into());
        context.default_branch = Some("main".into());
        context.job_id = Some("50".into());
        context.pipeline_id = Some("1000".into());
        change(&mut context);
        context
    }

    #[test]
    fn the_commit_timestamp_is_used_for_its_own_commit_only() {
        let time = |pairs: &[(&str, &str)]| context(&env(pairs)).unwrap().commit_time;
        let want: jiff::Timestamp = "2022-01-31T16:47:55Z".parse().unwrap();
        assert_eq!(time(&[("CI_COMMIT_TIMESTAMP", "2022-01-31T16:47:55+00:00")]), Some(want));
        assert_eq!(time(&[("CI_COMMIT_TIMESTAMP", "2022-01-31T17:47:55+01:00")]), Some(want));
        // merged results: the build is of the source branch head, whose time GitLab does not give
        let merged = [
            ("CI_COMMIT_TIMESTAMP", "2022-01-31T16:47:55Z"),
            ("CI_COMMIT_SHA", MERGE),
            ("CI_MERGE_REQUEST_IID", "7"),
            ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", SHA),
        ];
        assert_eq!(time(&merged), None);
        assert_eq!(time(&[("CI_COMMIT_TIMESTAMP", "yesterday")]), None);
        assert_eq!(time(&[]), None);
    }

    #[test]
    fn branch_tag_and_merge_request_pipelines() {
        for (name, env, want) in [
            (
                "branch pipeline",
                env(&[("CI_COMMIT_REF_NAME", "main"), ("CI_COMMIT_BRANCH", "main")]),
                expected(|c| {
                    c.ref_name = Some("main".into());
                    c.ref_type = Some(RefType::Branch);
                }),
            ),
            (
                "tag pipeline",
                env(&[("CI_COMMIT_REF_NAME", "v1.0.0"), ("CI_COMMIT_TAG", "v1.0.0")]),
                expected(|c| {
                    c.ref_name = Some("v1.0.0".into());
                    c.ref_type = Some(RefType::Tag);
                    c.tag = Some("v1.0.0".into());
                }),
            ),
            (
                "merge request pipeline (source branch sha empty)",
                env(&[
                    ("CI_PIPELINE_SOURCE", "merge_request_event"),
                    ("CI_COMMIT_REF_NAME", "feature"),
                    ("CI_MERGE_REQUEST_IID", "7"),
                    ("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"),
                    ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", ""),
                ]),
                expected(|c| {
                    c.ref_name = Some("feature".into());
                    c.ref_type = Some(RefType::Branch);
                    c.pr_number = Some("7".into());
                    c.pr_head_sha = Some(SHA.into());
                }),
            ),
            (
                "merged results pipeline: the source branch head, not the merge commit",
                env(&[
                    ("CI_PIPELINE_SOURCE", "merge_request_event"),
                    ("CI_COMMIT_SHA", MERGE),
                    ("CI_COMMIT_REF_NAME", "feature"),
                    ("CI_MERGE_REQUEST_IID", "7"),
                    ("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA", SHA),
                ]),
                expected(|c| {
                    c.ref_name = Some("feature".into());
                    c.ref_type = Some(RefType::Branch);
                    c.pr_number = Some("7".into());
                    c.pr_head_sha = Some(SHA.into());
                }),
            ),
        ] {
            assert_eq!(context(&env).unwrap(), want, "{name}");
        }
    }

    #[test]
    fn credentials_prefer_registry_user_then_job_token() {
        for (name, pairs, user, password) in [
            ("both registry variables", vec![], "gitlab-ci-token", "glcbt-registry"),
            (
                "custom registry user",
                vec![("CI_REGISTRY_USER", "deployer"), ("CI_REGISTRY_PASSWORD", "gldt-x")],
                "deployer",
                "gldt-x",
            ),
            (
                "no registry password",
                vec![("CI_REGISTRY_PASSWORD", "")],
                "gitlab-ci-token",
                "glcbt-job",
            ),
            ("no registry user", vec![("CI_REGISTRY_USER", "")], "gitlab-ci-token", "glcbt-job"),
        ] {
            let got = context(&env(&pairs)).unwrap().credentials.unwrap();
            assert_eq!((got.username.as_str(), got.password.expose()), (user, password), "{name}");
        }
        let none =
            env(&[("CI_REGISTRY_USER", ""), ("CI_REGISTRY_PASSWORD", ""), ("CI_JOB_TOKEN", "")]);
        assert_eq!(context(&none).unwrap().credentials, None);
    }

    #[test]
    fn registry_defaults_to_the_image_registry_and_may_be_absent() {
        let got = context(&env(&[("CI_REGISTRY", "")])).unwrap();
        assert_eq!(got.credentials.unwrap().registry.as_str(), "registry.example.com:5050");
        let got = context(&env(&[("CI_REGISTRY", ""), ("CI_REGISTRY_IMAGE", "")])).unwrap();
        assert_eq!((got.credentials, got.repo, got.implementation), (None, None, None));
    }

    #[test]
    fn invalid_registry_values_name_the_variable() {
        for (pairs, variable) in [
            (
                vec![("CI_REGISTRY_IMAGE", "registry.example.com/Group/Project")],
                "CI_REGISTRY_IMAGE",
            ),
            (vec![("CI_REGISTRY_IMAGE", "registry.example.com/app:latest")], "CI_REGISTRY_IMAGE"),
            (vec![("CI_REGISTRY", "https://registry.example.com")], "CI_REGISTRY"),
            (vec![("CI_REGISTRY", "bad host")], "CI_REGISTRY"),
        ] {
            let error = context(&env(&pairs)).unwrap_err();
            assert!(
                matches!(&error, CiError::InvalidReference { variable: v, .. } if *v == variable),
                "{pairs:?}: {error:?}"
            );
            assert!(error.to_string().contains(&format!("`{variable}`")));
        }
    }
}
