//! Pure detection of the registry implementation from a registry host.
//!
//! Owns the anchored host rules of docs/registries.md §2.3, tried in order, first match
//! wins, `default` otherwise. An explicit implementation always overrides detection. Does no
//! I/O: probing a registry to confirm a guess is never done here.

use std::sync::LazyLock;

use regex::Regex;

use super::Implementation;
use crate::reference::RegistryHost;

/// Host rules, anchored, in the order they are tried.
static RULES: LazyLock<Vec<(Implementation, Regex)>> = LazyLock::new(|| {
    [
        (Implementation::DockerHub, r"^docker\.io$"),
        (
            Implementation::Ecr,
            r"^(\d{12})\.dkr(\.ecr|-ecr)(-fips)?\.([a-z0-9-]+)\.(amazonaws\.com(\.cn)?|amazonaws\.eu|on\.aws)$",
        ),
        (Implementation::Acr, r"^[a-z0-9-]+\.azurecr\.(io|cn|us)$"),
        (Implementation::Gcr, r"^([a-z0-9-]+\.)?gcr\.io$"),
        (Implementation::Gcr, r"^[a-z0-9-]+-docker\.pkg\.dev$"),
        (Implementation::Gcr, r"^container\.cloud\.google\.com$"),
        (Implementation::Github, r"^ghcr\.io$"),
        (Implementation::Github, r"^docker\.pkg\.github\.com$"),
        (Implementation::Gitlab, r"^registry\.gitlab\.com$"),
        (Implementation::Harbor, r"^harbor\."),
        (Implementation::Harbor, r"^demo\.goharbor\.io$"),
        (Implementation::Quay, r"^quay\."),
        (Implementation::Artifactory, r"\.jfrog\.io$"),
    ]
    .into_iter()
    .map(|(implementation, rule)| (implementation, Regex::new(rule).expect("static rule")))
    .collect()
});

/// The ECR account (registry id) and region named by an ECR host, if it is one.
pub fn ecr_account_and_region(host: &RegistryHost) -> Option<(String, String)> {
    let (_, rule) =
        RULES.iter().find(|(implementation, _)| *implementation == Implementation::Ecr)?;
    let captures = rule.captures(host.hostname())?;
    Some((captures[1].to_owned(), captures[4].to_owned()))
}

/// The implementation for `host`. `gitlab_registry` is `$CI_REGISTRY` when running in GitLab
/// CI: a self-managed GitLab registry has an arbitrary host, known only from the job.
pub fn detect(host: &RegistryHost, gitlab_registry: Option<&RegistryHost>) -> Implementation {
    if gitlab_registry == Some(host) {
        return Implementation::Gitlab;
    }
    let name = host.hostname();
    RULES
        .iter()
        .find(|(_, rule)| rule.is_match(name))
        .map_or(Implementation::Default, |(implementation, _)| *implementation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(input: &str) -> RegistryHost {
        input.parse().unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn hosts_map_to_implementations() {
        use Implementation as I;
        for (input, want) in [
            ("docker.io", I::DockerHub),
            ("index.docker.io", I::DockerHub),
            ("registry-1.docker.io", I::DockerHub),
            ("registry.hub.docker.com", I::DockerHub),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", I::Ecr),
            ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", I::Ecr),
            ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", I::Ecr),
            ("123456789012.dkr-ecr.eu-west-1.on.aws", I::Ecr),
            ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", I::Ecr),
            ("12345678901.dkr.ecr.us-east-1.amazonaws.com", I::Default),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io", I::Default),
            ("public.ecr.aws", I::Default),
            ("myreg.azurecr.io", I::Acr),
            ("myreg.azurecr.cn", I::Acr),
            ("myreg.azurecr.us", I::Acr),
            ("myreg.azurecr.io.example.com", I::Default),
            ("gcr.io", I::Gcr),
            ("eu.gcr.io", I::Gcr),
            ("europe-west1-docker.pkg.dev", I::Gcr),
            ("us-docker.pkg.dev", I::Gcr),
            ("container.cloud.google.com", I::Gcr),
            ("ghcr.io", I::Github),
            ("docker.pkg.github.com", I::Github),
            ("registry.gitlab.com", I::Gitlab),
            ("gitlab.com", I::Default),
            ("harbor.example.com", I::Harbor),
            ("demo.goharbor.io", I::Harbor),
            ("quay.io", I::Quay),
            ("quay.example.com", I::Quay),
            ("acme.jfrog.io", I::Artifactory),
            ("nexus.example.com:8082", I::Default),
            ("localhost:5000", I::Default),
            ("127.0.0.1:5000", I::Default),
            ("cr.selcloud.ru", I::Default),
        ] {
            assert_eq!(detect(&host(input), None), want, "{input}");
        }
    }

    #[test]
    fn gitlab_ci_registry_host_is_gitlab() {
        let registry = host("registry.example.com:5050");
        assert_eq!(detect(&registry, Some(&registry)), Implementation::Gitlab);
        assert_eq!(detect(&host("registry.example.com"), Some(&registry)), Implementation::Default);
    }

    #[test]
    fn ecr_host_parts() {
        assert_eq!(
            ecr_account_and_region(&host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")),
            Some(("123456789012".into(), "us-gov-west-1".into()))
        );
        assert_eq!(ecr_account_and_region(&host("ghcr.io")), None);
    }
}
