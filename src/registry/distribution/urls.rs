//! The URLs of the distribution API, and the ones registries hand back.
//!
//! Owns building `/v2/…` URLs from typed repositories, tags and digests (never from strings a
//! user typed), the choice of `http` (only for hosts named insecure) or `https`, and resolving
//! the `Link` (pagination) and `Location` (uploads) headers, relative or absolute. Pure.

use url::Url;

use crate::reference::{Digest, RegistryHost, RepoAddress, Tag};

/// What a manifest is addressed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManifestRef {
    Tag(Tag),
    Digest(Digest),
}

impl From<Tag> for ManifestRef {
    fn from(tag: Tag) -> Self {
        Self::Tag(tag)
    }
}

impl From<Digest> for ManifestRef {
    fn from(digest: Digest) -> Self {
        Self::Digest(digest)
    }
}

impl From<&Tag> for ManifestRef {
    fn from(tag: &Tag) -> Self {
        Self::Tag(tag.clone())
    }
}

impl From<&Digest> for ManifestRef {
    fn from(digest: &Digest) -> Self {
        Self::Digest(digest.clone())
    }
}

impl ManifestRef {
    fn as_str(&self) -> &str {
        match self {
            Self::Tag(tag) => tag.as_str(),
            Self::Digest(digest) => digest.as_str(),
        }
    }
}

/// `repository:tag` or `repository@digest`, for messages.
pub fn display_reference(repository: &RepoAddress, reference: &ManifestRef) -> String {
    match reference {
        ManifestRef::Tag(tag) => format!("{repository}:{tag}"),
        ManifestRef::Digest(digest) => format!("{repository}@{digest}"),
    }
}

/// The root of the registry API: `http://host[:port]` for insecure hosts, else `https://…`.
pub fn base(registry: &RegistryHost, insecure: bool) -> Url {
    let scheme = if insecure { "http" } else { "https" };
    // a validated host[:port] always makes a valid URL
    Url::parse(&format!("{scheme}://{}/", registry.api_host()))
        .unwrap_or_else(|_| unreachable!("`{registry}` was validated as host[:port]"))
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(path);
    url
}

/// `GET /v2/`: the API version check and authentication probe.
pub fn ping(base: &Url) -> Url {
    join(base, "/v2/")
}

/// `GET /v2/<name>/tags/list[?n=…]`.
pub fn tags(base: &Url, repository: &RepoAddress, page_size: Option<usize>) -> Url {
    let mut url = join(base, &format!("/v2/{}/tags/list", repository.path));
    if let Some(page_size) = page_size {
        url.query_pairs_mut().append_pair("n", &page_size.to_string());
    }
    url
}

/// `/v2/<name>/manifests/<reference>`.
pub fn manifest(base: &Url, repository: &RepoAddress, reference: &ManifestRef) -> Url {
    join(base, &format!("/v2/{}/manifests/{}", repository.path, reference.as_str()))
}

/// `/v2/<name>/blobs/<digest>`.
pub fn blob(base: &Url, repository: &RepoAddress, digest: &Digest) -> Url {
    join(base, &format!("/v2/{}/blobs/{digest}", repository.path))
}

/// `POST /v2/<name>/blobs/uploads/`: starts an upload.
pub fn uploads(base: &Url, repository: &RepoAddress) -> Url {
    join(base, &format!("/v2/{}/blobs/uploads/", repository.path))
}

/// `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>`: a cross-repository mount.
pub fn mount(base: &Url, repository: &RepoAddress, digest: &Digest, from: &RepoAddress) -> Url {
    let mut url = uploads(base, repository);
    url.query_pairs_mut().append_pair("mount", digest.as_str()).append_pair("from", &from.path);
    url
}

/// `GET /v2/<name>/referrers/<digest>`.
pub fn referrers(base: &Url, repository: &RepoAddress, digest: &Digest) -> Url {
    join(base, &format!("/v2/{}/referrers/{digest}", repository.path))
}

/// An upload location with `digest=<digest>` added to whatever query it already has.
pub fn with_digest(location: &Url, digest: &Digest) -> Url {
    let mut url = location.clone();
    url.query_pairs_mut().append_pair("digest", digest.as_str());
    url
}

/// Resolves a `Location` header against the URL of the request that returned it.
pub fn resolve(current: &Url, location: &str) -> Option<Url> {
    current.join(location.trim()).ok()
}

/// The `rel="next"` target of `Link` header values, resolved against `current`.
pub fn next_link<'a>(values: impl IntoIterator<Item = &'a str>, current: &Url) -> Option<Url> {
    values.into_iter().flat_map(split_links).find_map(|(target, params)| {
        let is_next = params.iter().any(|(name, value)| {
            name.eq_ignore_ascii_case("rel")
                && value.split_ascii_whitespace().any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next { resolve(current, &target) } else { None }
    })
}

/// `<target>; name="value"; name=value, <target2>; …` → targets with their parameters.
fn split_links(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let target = rest[open + 1..open + close].to_owned();
        rest = &rest[open + close + 1..];
        let mut params = Vec::new();
        // parameters up to the next `,` outside quotes
        let mut end = rest.len();
        let mut in_quotes = false;
        for (index, character) in rest.char_indices() {
            match character {
                '"' => in_quotes = !in_quotes,
                ',' if !in_quotes => {
                    end = index;
                    break;
                }
                _ => {}
            }
        }
        for param in rest[..end].split(';') {
            if let Some((name, value)) = param.split_once('=') {
                params.push((name.trim().to_owned(), value.trim().trim_matches('"').to_owned()));
            }
        }
        links.push((target, params));
        rest = &rest[end..];
    }
    links
}

/// `true` if and only if `url` points at the same scheme, host and port as `base`, so the
/// registry's credentials may be sent to it.
pub fn same_origin(url: &Url, base: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
}

/// `host[:port]` of a URL, as a registry host would be written.
pub fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(input: &str) -> RepoAddress {
        input.parse().unwrap()
    }

    #[test]
    fn api_urls() {
        let registry: RegistryHost = "127.0.0.1:5000".parse().unwrap();
        let base = base(&registry, true);
        let repo = repository("127.0.0.1:5000/dh/web/app");
        let tag: Tag = "v1.2".parse().unwrap();
        let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let from = repository("127.0.0.1:5000/dh/other");
        for (got, want) in [
            (ping(&base), "http://127.0.0.1:5000/v2/".to_owned()),
            (tags(&base, &repo, None), "http://127.0.0.1:5000/v2/dh/web/app/tags/list".to_owned()),
            (
                tags(&base, &repo, Some(100)),
                "http://127.0.0.1:5000/v2/dh/web/app/tags/list?n=100".to_owned(),
            ),
            (
                manifest(&base, &repo, &ManifestRef::Tag(tag)),
                "http://127.0.0.1:5000/v2/dh/web/app/manifests/v1.2".to_owned(),
            ),
            (
                manifest(&base, &repo, &ManifestRef::Digest(digest.clone())),
                format!("http://127.0.0.1:5000/v2/dh/web/app/manifests/{digest}"),
            ),
            (
                blob(&base, &repo, &digest),
                format!("http://127.0.0.1:5000/v2/dh/web/app/blobs/{digest}"),
            ),
            (
                uploads(&base, &repo),
                "http://127.0.0.1:5000/v2/dh/web/app/blobs/uploads/".to_owned(),
            ),
            (
                mount(&base, &repo, &digest, &from),
                format!(
                    "http://127.0.0.1:5000/v2/dh/web/app/blobs/uploads/?mount=sha256%3A{}&from=dh%2Fother",
                    "a".repeat(64)
                ),
            ),
            (
                referrers(&base, &repo, &digest),
                format!("http://127.0.0.1:5000/v2/dh/web/app/referrers/{digest}"),
            ),
        ] {
            assert_eq!(got.as_str(), want);
        }
    }

    #[test]
    fn scheme_follows_insecure_and_docker_hub_uses_its_api_host() {
        let hub: RegistryHost = "docker.io".parse().unwrap();
        assert_eq!(base(&hub, false).as_str(), "https://registry-1.docker.io/");
        let local: RegistryHost = "localhost:5000".parse().unwrap();
        assert_eq!(base(&local, false).as_str(), "https://localhost:5000/");
        assert_eq!(base(&local, true).as_str(), "http://localhost:5000/");
    }

    #[test]
    fn links() {
        let current: Url = "http://127.0.0.1:5000/v2/dh/app/tags/list?n=2".parse().unwrap();
        for (header, want) in [
            (
                r#"</v2/dh/app/tags/list?last=b&n=2>; rel="next""#,
                Some("http://127.0.0.1:5000/v2/dh/app/tags/list?last=b&n=2"),
            ),
            (
                "<http://other:1/v2/dh/app/tags/list?last=b&n=2>; rel=next",
                Some("http://other:1/v2/dh/app/tags/list?last=b&n=2"),
            ),
            (
                r#"</first>; rel="first", </v2/x?last=c>; rel="next""#,
                Some("http://127.0.0.1:5000/v2/x?last=c"),
            ),
            (
                r#"</v2/x?last=c>; title="a, b"; rel="prev next""#,
                Some("http://127.0.0.1:5000/v2/x?last=c"),
            ),
            (r#"</prev>; rel="prev""#, None),
            ("", None),
            ("garbage", None),
        ] {
            assert_eq!(next_link([header], &current).as_ref().map(Url::as_str), want, "{header}");
        }
    }

    #[test]
    fn locations_and_digests() {
        let current: Url = "http://127.0.0.1:5000/v2/dh/app/blobs/uploads/".parse().unwrap();
        let digest: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        for (location, want) in [
            (
                "/v2/dh/app/blobs/uploads/u1?_state=s",
                "http://127.0.0.1:5000/v2/dh/app/blobs/uploads/u1?_state=s&digest=sha256%3Abbbb",
            ),
            (
                "http://127.0.0.1:5000/v2/dh/app/blobs/uploads/u2",
                "http://127.0.0.1:5000/v2/dh/app/blobs/uploads/u2?digest=sha256%3Abbbb",
            ),
            (
                "https://storage.example/upload/u3",
                "https://storage.example/upload/u3?digest=sha256%3Abbbb",
            ),
        ] {
            let resolved = with_digest(&resolve(&current, location).unwrap(), &digest);
            assert!(resolved.as_str().starts_with(want), "{location}: {resolved}");
        }
    }

    #[test]
    fn origins() {
        let base: Url = "http://127.0.0.1:5000/".parse().unwrap();
        for (url, want) in [
            ("http://127.0.0.1:5000/v2/x", true),
            ("http://127.0.0.1:5001/v2/x", false),
            ("https://127.0.0.1:5000/v2/x", false),
            ("http://localhost:5000/v2/x", false),
        ] {
            assert_eq!(same_origin(&url.parse().unwrap(), &base), want, "{url}");
        }
        assert_eq!(host_port(&"http://127.0.0.1:5000/x".parse().unwrap()), "127.0.0.1:5000");
        assert_eq!(host_port(&"https://ghcr.io/x".parse().unwrap()), "ghcr.io");
    }
}
