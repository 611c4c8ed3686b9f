//! Image naming: where an image lands in the images repo, and the way back.
//!
//! Owns the naming [`Mode`]s — multirepo `REPO/IMAGE:TAG` and monorepo `REPO:IMAGE-TAG` —,
//! the choice `auto` makes, the inverse mapping cleanup needs (repository or tag → image
//! name), and tag sanitisation. Pure: no I/O, no knowledge of builders or registries beyond
//! the [`Mode`] their capabilities suggest.

use std::fmt;
use std::str::FromStr;

use crate::exit::{Classify, ExitStatus};
use crate::reference::{
    ImageRef, MAX_TAG_LENGTH, RepoAddress, Tag, valid_repository_path, valid_tag,
};

/// How images share the images repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// One repository per image: `REPO/IMAGE:TAG`.
    Multirepo,
    /// One repository for all images, the image name in the tag: `REPO:IMAGE-TAG`.
    Monorepo,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Multirepo => "multirepo",
            Self::Monorepo => "monorepo",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The mode the user asked for: a [`Mode`] or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestedMode {
    /// Let the implementation's capabilities and the address decide.
    #[default]
    Auto,
    Fixed(Mode),
}

impl RequestedMode {
    /// The mode in force: the fixed one, or `default_mode` for `auto`.
    pub fn resolve(self, default_mode: Mode) -> Mode {
        match self {
            Self::Auto => default_mode,
            Self::Fixed(mode) => mode,
        }
    }
}

/// A mode name that is not `auto`, `multirepo` or `monorepo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown repo mode `{0}`; expected `auto`, `multirepo` or `monorepo`")]
pub struct UnknownMode(pub String);

impl FromStr for RequestedMode {
    type Err = UnknownMode;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "auto" => Ok(Self::Auto),
            "multirepo" => Ok(Self::Fixed(Mode::Multirepo)),
            "monorepo" => Ok(Self::Fixed(Mode::Monorepo)),
            other => Err(UnknownMode(other.to_owned())),
        }
    }
}

/// Why an image cannot be named in the images repo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    #[error(
        "image name `{0}` must be lowercase letters and digits separated by `.`, `_`, `__`, `-` or `/`"
    )]
    ImageName(String),
    #[error(
        "`{image}-{tag}` is not a valid tag (at most {MAX_TAG_LENGTH} characters of letters, digits, `_`, `.`, `-`)"
    )]
    MonorepoTag { image: String, tag: String },
    #[error("monorepo mode needs a repository in the images repo, not only the registry `{0}`")]
    MonorepoWithoutRepository(String),
    #[error(
        "a nameless image lands in the images repo itself, which needs a repository, not only the registry `{0}`"
    )]
    NamelessWithoutRepository(String),
}

impl Classify for NamingError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::ImageName(_) => "rename the image in dockhand.yaml".into(),
            Self::MonorepoTag { .. } => "shorten the tag rule or the image name, or use --repo-mode multirepo".into(),
            Self::MonorepoWithoutRepository(_) => {
                "add a repository to the images repo (e.g. `localhost:5000/app`) or use --repo-mode multirepo".into()
            }
            Self::NamelessWithoutRepository(_) => {
                "add a repository to the images repo (e.g. `localhost:5000/app`) or give the image a `name:` in dockhand.yaml".into()
            }
        })
    }
}

/// `true` if and only if `name` can be an image name (a repository path fragment).
pub fn valid_image_name(name: &str) -> bool {
    valid_repository_path(name)
}

/// The reference of image `image` tagged `tag` in `repo` under `mode`.
pub fn image_ref(
    repo: &RepoAddress,
    mode: Mode,
    image: &str,
    tag: &Tag,
) -> Result<ImageRef, NamingError> {
    if !valid_image_name(image) {
        return Err(NamingError::ImageName(image.to_owned()));
    }
    match mode {
        Mode::Multirepo => Ok(ImageRef::tagged(repo.join(image), tag.clone())),
        Mode::Monorepo => {
            if repo.path.is_empty() {
                return Err(NamingError::MonorepoWithoutRepository(repo.to_string()));
            }
            let combined = format!("{image}-{tag}");
            let combined: Tag = combined.parse().map_err(|_| NamingError::MonorepoTag {
                image: image.to_owned(),
                tag: tag.to_string(),
            })?;
            Ok(ImageRef::tagged(repo.clone(), combined))
        }
    }
}

/// Where a nameless image goes: the images repo itself, `REPO:TAG`, in either mode. That is
/// multirepo naming of the image called like the repo's last path component below the repo's
/// parent (`ghcr.io/acme/app` → base `ghcr.io/acme`, image `app`), so this returns that base
/// and name, and [`image_ref`] with [`Mode::Multirepo`] and its inverse [`image_of_repository`]
/// name the image and find its tags unchanged: every tag of the repository is the image's.
pub fn nameless_placement(repo: &RepoAddress) -> Result<(RepoAddress, String), NamingError> {
    let Some((parent, last)) = (match repo.path.rsplit_once('/') {
        Some((parent, last)) => Some((parent, last)),
        None if repo.path.is_empty() => None,
        None => Some(("", repo.path.as_str())),
    }) else {
        return Err(NamingError::NamelessWithoutRepository(repo.to_string()));
    };
    let base = RepoAddress { registry: repo.registry.clone(), path: parent.to_owned() };
    Ok((base, last.to_owned()))
}

/// The inverse of [`image_ref`] for multirepo: the image a repository belongs to, if it lies
/// directly or deeper below `repo`.
pub fn image_of_repository<'a>(repo: &RepoAddress, repository: &'a RepoAddress) -> Option<&'a str> {
    if repository.registry != repo.registry {
        return None;
    }
    if repo.path.is_empty() {
        return (!repository.path.is_empty()).then_some(repository.path.as_str());
    }
    repository.path.strip_prefix(&repo.path)?.strip_prefix('/').filter(|rest| !rest.is_empty())
}

/// The inverse of [`image_ref`] for monorepo: which of `images` a stored tag belongs to and the
/// tag it was published under. The longest matching image name wins, so `api` and `api-v2`
/// can share a repository.
pub fn image_of_tag<'a, 't>(images: &[&'a str], stored: &'t str) -> Option<(&'a str, &'t str)> {
    images
        .iter()
        .filter_map(|image| {
            let rest = stored.strip_prefix(image)?.strip_prefix('-')?;
            (!rest.is_empty()).then_some((*image, rest))
        })
        .max_by_key(|(image, _)| image.len())
}

/// Turns arbitrary text (a branch name, a rendered rule) into a valid tag, or `None` when
/// nothing usable is left. Characters outside `[A-Za-z0-9_.-]` become `-`, runs of `-` are
/// squeezed, leading `.`/`-` and trailing `-` are dropped, and the result is cut to 128.
pub fn sanitize_tag(raw: &str) -> Option<Tag> {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_start_matches(['.', '-']);
    let mut cut: String = trimmed.chars().take(MAX_TAG_LENGTH).collect();
    while cut.ends_with('-') {
        cut.pop();
    }
    debug_assert!(cut.is_empty() || valid_tag(&cut));
    cut.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(input: &str) -> RepoAddress {
        input.parse().unwrap()
    }

    fn tag(input: &str) -> Tag {
        input.parse().unwrap()
    }

    #[test]
    fn multirepo_names() {
        for (address, image, t, want) in [
            ("ghcr.io/acme/app", "api", "v1", "ghcr.io/acme/app/api:v1"),
            ("localhost:5000", "web", "main", "localhost:5000/web:main"),
            ("docker.io/acme", "api", "v1", "docker.io/acme/api:v1"),
            ("localhost:5000/team", "svc/worker", "v2", "localhost:5000/team/svc/worker:v2"),
        ] {
            let got = image_ref(&repo(address), Mode::Multirepo, image, &tag(t)).unwrap();
            assert_eq!(got.to_string(), want, "{address} {image} {t}");
        }
    }

    #[test]
    fn monorepo_names() {
        for (address, image, t, want) in [
            ("ghcr.io/acme/app", "api", "v1", "ghcr.io/acme/app:api-v1"),
            ("localhost:5000/app", "web", "main", "localhost:5000/app:web-main"),
            ("docker.io/acme/app", "api", "1.2.3", "docker.io/acme/app:api-1.2.3"),
        ] {
            let got = image_ref(&repo(address), Mode::Monorepo, image, &tag(t)).unwrap();
            assert_eq!(got.to_string(), want, "{address} {image} {t}");
        }
    }

    #[test]
    fn naming_errors() {
        assert_eq!(
            image_ref(&repo("localhost:5000/app"), Mode::Monorepo, "svc/worker", &tag("v1")),
            Err(NamingError::MonorepoTag { image: "svc/worker".into(), tag: "v1".into() })
        );
        assert_eq!(
            image_ref(&repo("localhost:5000/app"), Mode::Multirepo, "Api", &tag("v1")),
            Err(NamingError::ImageName("Api".into()))
        );
        assert_eq!(
            image_ref(&repo("localhost:5000"), Mode::Monorepo, "api", &tag("v1")),
            Err(NamingError::MonorepoWithoutRepository("localhost:5000".into()))
        );
        let long = "a".repeat(126);
        assert_eq!(
            image_ref(&repo("localhost:5000/app"), Mode::Monorepo, "api", &tag(&long)),
            Err(NamingError::MonorepoTag { image: "api".into(), tag: long })
        );
    }

    #[test]
    fn a_nameless_image_lands_in_the_repo_itself() {
        for address in ["ghcr.io/acme/app", "localhost:5000/app", "docker.io/a/b/c"] {
            let images_repo = repo(address);
            let (base, image) = nameless_placement(&images_repo).unwrap();
            let got = image_ref(&base, Mode::Multirepo, &image, &tag("v1")).unwrap();
            assert_eq!(got.to_string(), format!("{address}:v1"));
            assert_eq!(got.repository, images_repo);
            assert_eq!(image_of_repository(&base, &images_repo), Some(image.as_str()));
        }
        assert_eq!(
            nameless_placement(&repo("localhost:5000")),
            Err(NamingError::NamelessWithoutRepository("localhost:5000".into()))
        );
    }

    #[test]
    fn inverse_multirepo() {
        let base = repo("localhost:5000/team");
        assert_eq!(image_of_repository(&base, &repo("localhost:5000/team/api")), Some("api"));
        assert_eq!(image_of_repository(&base, &repo("localhost:5000/team/a/b")), Some("a/b"));
        assert_eq!(image_of_repository(&base, &repo("localhost:5000/team")), None);
        assert_eq!(image_of_repository(&base, &repo("localhost:5000/teamx/api")), None);
        assert_eq!(image_of_repository(&base, &repo("localhost:5001/team/api")), None);
        assert_eq!(
            image_of_repository(&repo("localhost:5000"), &repo("localhost:5000/api")),
            Some("api")
        );
    }

    #[test]
    fn inverse_monorepo_prefers_the_longest_image() {
        let images = ["api", "api-v2", "web"];
        for (stored, want) in [
            ("api-main", Some(("api", "main"))),
            ("api-v2-main", Some(("api-v2", "main"))),
            ("api-v2", Some(("api", "v2"))),
            ("web-1.0", Some(("web", "1.0"))),
            ("web-", None),
            ("worker-main", None),
            ("latest", None),
        ] {
            assert_eq!(image_of_tag(&images, stored), want, "{stored}");
        }
    }

    #[test]
    fn round_trip_both_modes() {
        let base = repo("localhost:5000/acme/app");
        for image in ["api", "web", "svc/worker"] {
            let multi = image_ref(&base, Mode::Multirepo, image, &tag("v1")).unwrap();
            assert_eq!(image_of_repository(&base, &multi.repository), Some(image));
        }
        for image in ["api", "web", "api-v2"] {
            let mono = image_ref(&base, Mode::Monorepo, image, &tag("v1")).unwrap();
            let stored = mono.tag.unwrap();
            assert_eq!(
                image_of_tag(&["api", "web", "api-v2"], stored.as_str()),
                Some((image, "v1"))
            );
        }
    }

    #[test]
    fn sanitising_tags() {
        let long = "x".repeat(200);
        for (raw, want) in [
            ("main", Some("main")),
            ("feature/Login", Some("feature-Login")),
            ("refs/heads/a  b", Some("refs-heads-a-b")),
            ("..hidden", Some("hidden")),
            ("-x-", Some("x")),
            ("v1.2.3+build.5", Some("v1.2.3-build.5")),
            ("ünïcode", Some("n-code")),
            ("///", None),
            ("", None),
            (long.as_str(), Some(&long[..128])),
        ] {
            assert_eq!(sanitize_tag(raw).as_ref().map(Tag::as_str), want, "{raw:?}");
        }
    }

    #[test]
    fn requested_modes() {
        assert_eq!(
            "auto".parse::<RequestedMode>().unwrap().resolve(Mode::Monorepo),
            Mode::Monorepo
        );
        assert_eq!(
            "multirepo".parse::<RequestedMode>().unwrap().resolve(Mode::Monorepo),
            Mode::Multirepo
        );
        assert_eq!("mono".parse::<RequestedMode>(), Err(UnknownMode("mono".into())));
    }
}
