//! Image references: registry hosts, repositories, tags and digests, parsed once.
//!
//! Owns [`RegistryHost`], [`RepoAddress`], [`Tag`], [`Digest`] and [`ImageRef`], their
//! validation and Docker Hub normalisation, and the `Display` of their canonical forms. After
//! `settings`, no function takes a reference as `&str`. Does no I/O and knows no vendor beyond
//! Docker Hub's aliases (which decide what an address *means*).

use std::fmt;
use std::str::FromStr;

/// The canonical name of Docker Hub in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host the Docker Hub registry API is served from.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The key the docker CLI stores Docker Hub credentials under in `config.json`.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";
/// Hosts that all mean Docker Hub.
const DOCKER_HUB_ALIASES: [&str; 4] =
    ["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"];
/// Longest tag the distribution spec allows.
pub const MAX_TAG_LENGTH: usize = 128;

/// What is wrong with a reference, phrased so the user knows what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference `{input}`: {problem}")]
    Invalid { input: String, problem: Problem },
}

/// The specific defect in a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("it is empty")]
    Empty,
    #[error("it contains whitespace")]
    Whitespace,
    #[error("remove the `{0}` scheme: references name a host, not a URL")]
    Scheme(String),
    #[error("the registry host `{0}` is not a valid host[:port]")]
    Host(String),
    #[error("repository must be lowercase (`{0}`)")]
    Uppercase(String),
    #[error(
        "path component `{0}` must be lowercase letters and digits separated by `.`, `_`, `__` or `-`"
    )]
    Component(String),
    #[error(
        "the images repo must not carry a tag or digest (`{0}`); give tags with `tags:` or `--tag`"
    )]
    TagInRepo(String),
    #[error(
        "tag `{0}` must be 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    Tag(String),
    #[error(
        "digest `{0}` must be `sha256:` followed by 64 lowercase hex digits (or `sha512:` and 128)"
    )]
    Digest(String),
    #[error("the repository path is missing")]
    MissingPath,
}

fn invalid(input: &str, problem: Problem) -> ReferenceError {
    ReferenceError::Invalid { input: input.to_owned(), problem }
}

/// A registry host with an optional port, lowercased. All Docker Hub aliases become `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegistryHost(String);

impl RegistryHost {
    /// The canonical `host[:port]` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host name without the port.
    pub fn hostname(&self) -> &str {
        if self.0.starts_with('[') {
            return self.0.split_once(']').map_or(self.0.as_str(), |(h, _)| &h[1..]);
        }
        self.0.rsplit_once(':').map_or(self.0.as_str(), |(host, _)| host)
    }

    /// `true` if and only if this is Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB
    }

    /// The host[:port] the registry API is reached at (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() { DOCKER_HUB_API_HOST } else { &self.0 }
    }

    /// The keys a docker `config.json` may store this registry's credentials under, most
    /// specific first: `host`, `https://host`, `http://host`, `https://host/v1/` and, for
    /// Docker Hub, every alias and `https://index.docker.io/v1/`.
    pub fn config_keys(&self) -> Vec<String> {
        let hosts: Vec<&str> =
            if self.is_docker_hub() { DOCKER_HUB_ALIASES.to_vec() } else { vec![self.as_str()] };
        let mut keys = Vec::new();
        if self.is_docker_hub() {
            keys.push(DOCKER_HUB_CONFIG_KEY.to_owned());
        }
        for host in hosts {
            for key in [
                host.to_owned(),
                format!("https://{host}"),
                format!("http://{host}"),
                format!("https://{host}/v1/"),
                format!("https://{host}/v2/"),
            ] {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// The key dockhand writes this registry's credentials under in `config.json`: `host[:port]`,
    /// or `https://index.docker.io/v1/` for Docker Hub, as the docker CLI does.
    pub fn config_key(&self) -> String {
        if self.is_docker_hub() { DOCKER_HUB_CONFIG_KEY.to_owned() } else { self.0.clone() }
    }
}

impl fmt::Display for RegistryHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RegistryHost {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_text(input)?;
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(invalid(input, Problem::Scheme(format!("{scheme}://"))));
        }
        let lower = input.to_ascii_lowercase();
        if !valid_host(&lower) {
            return Err(invalid(input, Problem::Host(input.to_owned())));
        }
        if DOCKER_HUB_ALIASES.contains(&lower.as_str()) {
            return Ok(Self(DOCKER_HUB.to_owned()));
        }
        Ok(Self(lower))
    }
}

fn check_text(input: &str) -> Result<(), ReferenceError> {
    if input.is_empty() {
        return Err(invalid(input, Problem::Empty));
    }
    if input.chars().any(char::is_whitespace) {
        return Err(invalid(input, Problem::Whitespace));
    }
    Ok(())
}

/// `host`, `host:port`, or `[ipv6]:port`; host labels of letters, digits and `-`.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else { return false };
        if inner.is_empty() || !inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => return valid_port(port),
            None => return after.is_empty(),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    labels_ok && port.is_none_or(valid_port)
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit())
}

/// One repository path component: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        // a separator: `.`, `_`, `__` or one or more `-`, always followed by an alphanumeric
        let start = i;
        match c {
            b'.' => i += 1,
            b'_' => i += if bytes.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit())
        {
            return false;
        }
    }
    true
}

/// `true` if and only if `path` is a valid repository path (components joined by `/`).
pub fn valid_repository_path(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(valid_component)
}

/// An images repo or repository: a registry and a path (which may be empty when the address
/// names only a registry, e.g. `localhost:5000`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoAddress {
    pub registry: RegistryHost,
    /// `/`-separated lowercase path, possibly empty.
    pub path: String,
}

impl RepoAddress {
    /// A repository below this address: `self/child`.
    #[must_use]
    pub fn join(&self, child: &str) -> Self {
        let path =
            if self.path.is_empty() { child.to_owned() } else { format!("{}/{child}", self.path) };
        Self { registry: self.registry.clone(), path }
    }

    /// The number of path components (0 for a bare registry).
    pub fn depth(&self) -> usize {
        if self.path.is_empty() { 0 } else { self.path.split('/').count() }
    }
}

impl fmt::Display for RepoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.registry)
        } else {
            write!(f, "{}/{}", self.registry, self.path)
        }
    }
}

/// Splits `input` into a registry and the rest, the way the docker CLI does: the first
/// component is a registry only if it contains `.` or `:` or is `localhost`.
/// `bare_registry` allows an input that is only a registry (`localhost:5000`), which an images
/// repo may be and an image reference may not (`alpine:3.20` is a name and a tag).
fn split_registry(
    input: &str,
    bare_registry: bool,
) -> Result<(RegistryHost, &str, bool), ReferenceError> {
    if let Some((scheme, _)) = input.split_once("://") {
        return Err(invalid(input, Problem::Scheme(format!("{scheme}://"))));
    }
    match input.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            let host = first
                .parse::<RegistryHost>()
                .map_err(|_| invalid(input, Problem::Host(first.to_owned())))?;
            Ok((host, rest, true))
        }
        None if bare_registry
            && (input.contains('.') || input.contains(':') || input == "localhost") =>
        {
            // a bare registry, e.g. `localhost:5000` or `ghcr.io`
            if input.contains('@') {
                return Err(invalid(input, Problem::TagInRepo(input.to_owned())));
            }
            let host = input
                .parse::<RegistryHost>()
                .map_err(|_| invalid(input, Problem::Host(input.to_owned())))?;
            Ok((host, "", true))
        }
        _ => Ok((RegistryHost(DOCKER_HUB.to_owned()), input, false)),
    }
}

fn check_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Ok(());
    }
    for component in path.split('/') {
        if !valid_component(component) {
            if component.chars().any(|c| c.is_ascii_uppercase())
                && valid_component(&component.to_ascii_lowercase())
            {
                return Err(invalid(input, Problem::Uppercase(path.to_owned())));
            }
            return Err(invalid(input, Problem::Component(component.to_owned())));
        }
    }
    Ok(())
}

/// Docker Hub's one-component names live under `library/`.
fn normalise_hub_path(registry: &RegistryHost, path: &str) -> String {
    if registry.is_docker_hub() && !path.is_empty() && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_owned()
    }
}

impl FromStr for RepoAddress {
    type Err = ReferenceError;

    /// Parses an images repo: `[host[:port]/]path`, no tag, no digest. A path without a
    /// registry means Docker Hub (`acme/app` → `docker.io/acme/app`, `app` →
    /// `docker.io/library/app`).
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_text(input)?;
        let (registry, path, explicit) = split_registry(input, true)?;
        let last = path.rsplit('/').next().unwrap_or_default();
        if last.contains(':') || path.contains('@') {
            return Err(invalid(input, Problem::TagInRepo(input.to_owned())));
        }
        if explicit && path.is_empty() && input.ends_with('/') {
            return Err(invalid(input, Problem::MissingPath));
        }
        check_path(input, path)?;
        let path = if explicit { path.to_owned() } else { normalise_hub_path(&registry, path) };
        Ok(Self { registry, path })
    }
}

/// A validated tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `true` if and only if `tag` matches the distribution tag grammar.
pub fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    tag.len() <= MAX_TAG_LENGTH
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl FromStr for Tag {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if valid_tag(input) {
            Ok(Self(input.to_owned()))
        } else {
            Err(invalid(input, Problem::Tag(input.to_owned())))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest, e.g. `sha256:` + 64 lowercase hex digits. Shared, not copied, when cloned:
/// an inventory holds each digest in several places (the tags on it, the manifest map, index
/// children, the plan), and at 100,000 images the copies were most of its memory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(std::sync::Arc<str>);

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(format!("sha256:{:x}", sha2::Sha256::digest(bytes)).into())
    }

    /// The hex part after `algorithm:`.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// The tag under which the OCI referrers tag schema (for registries without the referrers
    /// API) stores the referrers of this digest: `<algorithm>-<hex>`, the algorithm cut to 32
    /// and the hex to 64 characters as that schema says, so it is always a valid tag. The
    /// inverse of [`referrers_subject`] for SHA-256.
    pub fn referrers_tag(&self) -> Tag {
        let (algorithm, hex) = self.0.split_once(':').unwrap_or(("sha256", &self.0));
        let cut = |text: &str, limit: usize| text.chars().take(limit).collect::<String>();
        Tag(format!("{}-{}", cut(algorithm, 32), cut(hex, 64)))
    }
}

/// The subject digest a tag in the referrers tag schema names: `sha256-<hex>` (OCI 1.1
/// fallback) or with a suffix such as cosign's `.sig`, `.att`, `.sbom`.
pub fn referrers_subject(tag: &Tag) -> Option<Digest> {
    let name = tag.as_str();
    let name = name.split_once('.').map_or(name, |(head, _)| head);
    let (algorithm, hex) = name.split_once('-')?;
    format!("{algorithm}:{hex}").parse().ok()
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let ok = match input.split_once(':') {
            Some(("sha256", hex)) => hex.len() == 64,
            Some(("sha512", hex)) => hex.len() == 128,
            _ => false,
        } && input
            .split_once(':')
            .is_some_and(|(_, hex)| hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        if ok {
            Ok(Self(input.into()))
        } else {
            Err(invalid(input, Problem::Digest(input.to_owned())))
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full image reference: `registry/path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    pub repository: RepoAddress,
    pub tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn tagged(repository: RepoAddress, tag: Tag) -> Self {
        Self { repository, tag: Some(tag), digest: None }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    /// Parses `[host[:port]/]path[:tag][@digest]` with Docker Hub normalisation.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        check_text(input)?;
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.parse::<Digest>()?)),
            None => (input, None),
        };
        let (registry, remainder, explicit) = split_registry(rest, false)?;
        let (path, tag) = match remainder.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => (path, Some(tag.parse::<Tag>()?)),
            _ => (remainder, None),
        };
        if path.is_empty() {
            return Err(invalid(input, Problem::MissingPath));
        }
        check_path(input, path)?;
        let path = if explicit { path.to_owned() } else { normalise_hub_path(&registry, path) };
        Ok(Self { repository: RepoAddress { registry, path }, tag, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrers_tags_name_their_subject_and_back() {
        let digest = Digest::sha256_of(b"subject");
        let tag = digest.referrers_tag();
        assert_eq!(tag.as_str(), format!("sha256-{}", digest.hex()));
        assert_eq!(referrers_subject(&tag), Some(digest.clone()));
        let signature: Tag = format!("{tag}.sig").parse().unwrap();
        assert_eq!(referrers_subject(&signature), Some(digest));
        assert_eq!(referrers_subject(&"v1.2.3".parse().unwrap()), None);
        assert_eq!(referrers_subject(&"sha256-short".parse().unwrap()), None);
    }

    #[test]
    fn repo_addresses_normalise() {
        for (input, registry, path) in [
            ("ghcr.io/acme/app", "ghcr.io", "acme/app"),
            ("GHCR.IO/acme/app", "ghcr.io", "acme/app"),
            ("localhost:5000/team/app", "localhost:5000", "team/app"),
            ("localhost/app", "localhost", "app"),
            ("127.0.0.1:5000", "127.0.0.1:5000", ""),
            ("ghcr.io", "ghcr.io", ""),
            ("acme/app", "docker.io", "acme/app"),
            ("app", "docker.io", "library/app"),
            ("docker.io/acme", "docker.io", "acme"),
            ("index.docker.io/acme/app", "docker.io", "acme/app"),
            ("registry-1.docker.io/acme/app", "docker.io", "acme/app"),
            ("registry.hub.docker.com/library/alpine", "docker.io", "library/alpine"),
            ("[::1]:5000/app", "[::1]:5000", "app"),
            (
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b/c",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                "a/b/c",
            ),
            ("reg.example.com/a__b/c-d/e--f/g.h", "reg.example.com", "a__b/c-d/e--f/g.h"),
        ] {
            let address: RepoAddress = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(address.registry.as_str(), registry, "{input}");
            assert_eq!(address.path, path, "{input}");
        }
    }

    #[test]
    fn repo_address_errors_say_what_to_fix() {
        for (input, problem) in [
            ("", Problem::Empty),
            ("ghcr.io/acme app", Problem::Whitespace),
            ("https://ghcr.io/acme/app", Problem::Scheme("https://".into())),
            ("ghcr.io/Acme/app", Problem::Uppercase("Acme/app".into())),
            ("ghcr.io/acme/app:v1", Problem::TagInRepo("ghcr.io/acme/app:v1".into())),
            (
                "ghcr.io/acme/app@sha256:abc",
                Problem::TagInRepo("ghcr.io/acme/app@sha256:abc".into()),
            ),
            ("ghcr.io/acme//app", Problem::Component(String::new())),
            ("ghcr.io/acme/-app", Problem::Component("-app".into())),
            ("ghcr.io/acme/app_", Problem::Component("app_".into())),
            ("ghcr.io/a___b", Problem::Component("a___b".into())),
            ("ghcr.io/", Problem::MissingPath),
            ("exa_mple.com/app", Problem::Host("exa_mple.com".into())),
            ("localhost:port/app", Problem::Host("localhost:port".into())),
        ] {
            match input.parse::<RepoAddress>() {
                Err(ReferenceError::Invalid { problem: got, .. }) => {
                    assert_eq!(got, problem, "{input}");
                }
                Ok(ok) => panic!("{input} parsed as {ok}"),
            }
        }
    }

    #[test]
    fn image_refs_round_trip() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for (input, canonical) in [
            ("alpine", "docker.io/library/alpine".to_owned()),
            ("alpine:3.20", "docker.io/library/alpine:3.20".to_owned()),
            ("localhost:5000/app:v1", "localhost:5000/app:v1".to_owned()),
            ("localhost:5000/app", "localhost:5000/app".to_owned()),
            (&format!("ghcr.io/acme/app:v1@{digest}"), format!("ghcr.io/acme/app:v1@{digest}")),
            (&format!("ghcr.io/acme/app@{digest}"), format!("ghcr.io/acme/app@{digest}")),
        ] {
            let reference: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(reference.to_string(), canonical);
        }
    }

    #[test]
    fn image_ref_errors() {
        for (input, problem) in [
            ("localhost:5000/app:", Problem::Tag(String::new())),
            ("localhost:5000/app:-x", Problem::Tag("-x".into())),
            ("localhost:5000/app@sha256:xyz", Problem::Digest("sha256:xyz".into())),
            ("localhost:5000/App:v1", Problem::Uppercase("App".into())),
        ] {
            match input.parse::<ImageRef>() {
                Err(ReferenceError::Invalid { problem: got, .. }) => {
                    assert_eq!(got, problem, "{input}");
                }
                Ok(ok) => panic!("{input} parsed as {ok}"),
            }
        }
    }

    #[test]
    fn tags() {
        assert!(valid_tag("v1.2.3-rc.1"));
        assert!(valid_tag("_x"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("a/b"));
        assert!(!valid_tag(""));
    }

    #[test]
    fn hub_config_keys_cover_every_alias() {
        let hub: RegistryHost = "index.docker.io".parse().unwrap();
        assert_eq!(hub.as_str(), "docker.io");
        assert_eq!(hub.config_key(), DOCKER_HUB_CONFIG_KEY);
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        let keys = hub.config_keys();
        assert_eq!(keys[0], DOCKER_HUB_CONFIG_KEY);
        assert!(keys.contains(&"registry-1.docker.io".to_owned()));
        let local: RegistryHost = "localhost:5000".parse().unwrap();
        assert_eq!(local.hostname(), "localhost");
        assert_eq!(local.config_keys()[..2], ["localhost:5000", "https://localhost:5000"]);
    }

    #[test]
    fn digests() {
        let digest = Digest::sha256_of(b"{}");
        assert_eq!(
            digest.as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(format!("sha256:{}", "A".repeat(64)).parse::<Digest>().is_err());
        assert!(format!("md5:{}", "a".repeat(32)).parse::<Digest>().is_err());
    }
}
