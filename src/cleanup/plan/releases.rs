//! Release tags by version: which releases `cleanup.releases` keeps (the highest of each image,
//! the newest N of each major and of each major.minor), and the tags that merely point at a
//! kept release (`latest`, `v2`, `v2.3`).
//!
//! Pure: everything here is computed from the tag names of one repository's inventory. Versions
//! are ranked by semantic-version precedence, not by age: `v1.9.4` pushed today is still below
//! `v2.0.0`. Each image name is ranked on its own, and a version counts once however many tags
//! (`v2.3.1`, `2.3.1`) or digests carry it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use crate::cleanup::inventory::TagEntry;
use crate::cleanup::policy::{ReleaseRules, looks_like_release};
use crate::reference::Digest;

/// `MAJOR.MINOR.PATCH` of a release.
pub type Version = (u64, u64, u64);

/// The version a release tag (`v?MAJOR.MINOR.PATCH` of digits) names; `None` for anything else,
/// and for numbers too large to rank.
pub fn release_version(name: &str) -> Option<Version> {
    if !looks_like_release(name) {
        return None;
    }
    let mut parts = name.trim_start_matches('v').split('.').map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) => Some((major, minor, patch)),
        _ => None,
    }
}

/// The major and, if given, minor version a floating version tag (`v2`, `2.3`) names.
fn floating_version(name: &str) -> Option<(u64, Option<u64>)> {
    let text = name.strip_prefix('v').unwrap_or(name);
    let mut parts = text.split('.');
    let number = |part: Option<&str>| {
        part.filter(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))?
            .parse::<u64>()
            .ok()
    };
    let major = number(parts.next())?;
    let minor = match parts.next() {
        None => None,
        some => Some(number(some)?),
    };
    parts.next().is_none().then_some((major, minor))
}

/// Where a release stands among its image's releases (ranks count from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    highest: bool,
    of_major: usize,
    of_minor: usize,
}

/// Why `cleanup.releases` keeps a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rank {
    /// The image's highest release.
    Highest { image: String },
    /// Release `rank` of its major.minor (`scope` `2.3`) or major (`2.x`) version, `of` kept.
    Newest { rank: usize, of: usize, scope: String },
}

impl fmt::Display for Rank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Highest { image } => write!(f, "the highest release of `{image}`"),
            Self::Newest { rank: 1, scope, .. } => write!(f, "the newest {scope} release"),
            Self::Newest { of, scope, .. } => {
                write!(f, "among the newest {of} releases of {scope}")
            }
        }
    }
}

/// Why `cleanup.releases` does not keep a release: the limits it falls outside of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    limits: Vec<(usize, String)>,
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = |(of, scope): &(usize, String)| match of {
            1 => format!("the newest {scope} release"),
            of => format!("among the newest {of} releases of {scope}"),
        };
        match self.limits.as_slice() {
            [only] => write!(f, "not {}", limit(only)),
            [first, second] => write!(f, "neither {} nor {}", limit(first), limit(second)),
            _ => f.write_str("not kept by cleanup.releases"),
        }
    }
}

fn major_scope((major, _, _): Version) -> String {
    format!("{major}.x")
}

fn minor_scope((major, minor, _): Version) -> String {
    format!("{major}.{minor}")
}

/// The releases of one repository's images, ranked.
#[derive(Debug, Default)]
pub struct Releases<'a> {
    standings: HashMap<(&'a str, Version), Standing>,
    /// Per (image, digest): the release tags on it that the release rules keep, and their
    /// versions.
    kept_on: HashMap<(&'a str, &'a Digest), Vec<(Version, &'a str)>>,
}

impl<'a> Releases<'a> {
    /// Ranks every release tag of `tags`. `rules` is `cleanup.releases`; `protected` says whether
    /// every release stays anyway (no section, `delete_releases` off).
    pub fn new(tags: &'a [TagEntry], rules: Option<&ReleaseRules>, protected: bool) -> Self {
        let names = |entry: &'a TagEntry| [entry.tag.as_str(), entry.image_tag.as_str()];
        let mut versions: HashMap<&'a str, BTreeSet<Version>> = HashMap::new();
        for entry in tags {
            for version in names(entry).into_iter().filter_map(release_version) {
                versions.entry(entry.image.as_str()).or_default().insert(version);
            }
        }
        let mut releases = Self::default();
        for (image, versions) in versions {
            let mut of_major: HashMap<u64, usize> = HashMap::new();
            let mut of_minor: HashMap<(u64, u64), usize> = HashMap::new();
            for (position, &version) in versions.iter().rev().enumerate() {
                let (major, minor, _) = version;
                let major_rank = of_major.entry(major).or_default();
                *major_rank += 1;
                let minor_rank = of_minor.entry((major, minor)).or_default();
                *minor_rank += 1;
                releases.standings.insert(
                    (image, version),
                    Standing {
                        highest: position == 0,
                        of_major: *major_rank,
                        of_minor: *minor_rank,
                    },
                );
            }
        }
        for entry in tags {
            let image = entry.image.as_str();
            for name in names(entry) {
                let Some(version) = release_version(name) else { continue };
                let kept = match rules {
                    Some(rules) => releases.decide(image, version, rules).is_ok(),
                    None => protected,
                };
                if kept {
                    releases
                        .kept_on
                        .entry((image, &entry.digest))
                        .or_default()
                        .push((version, name));
                }
            }
        }
        for kept in releases.kept_on.values_mut() {
            kept.sort_unstable_by(|a, b| b.cmp(a));
            kept.dedup_by_key(|(version, _)| *version);
        }
        releases
    }

    /// `true` if and only if `image` has a release tag of `version`.
    pub fn has(&self, image: &str, version: Version) -> bool {
        self.standings.contains_key(&(image, version))
    }

    /// Whether `cleanup.releases` keeps `image`'s release `version`, and why.
    pub fn decide(
        &self,
        image: &str,
        version: Version,
        rules: &ReleaseRules,
    ) -> Result<Rank, Outside> {
        let Some(standing) = self.standings.get(&(image, version)) else {
            // every release of the inventory is ranked; one that is not is kept, never guessed at
            return Ok(Rank::Highest { image: image.to_owned() });
        };
        if standing.highest {
            return Ok(Rank::Highest { image: image.to_owned() });
        }
        let limits = [
            (rules.per_minor, standing.of_minor, minor_scope(version)),
            (rules.per_major, standing.of_major, major_scope(version)),
        ];
        let mut outside = Vec::new();
        for (limit, rank, scope) in limits {
            let Some(of) = limit else { continue };
            if rank <= of {
                return Ok(Rank::Newest { rank, of, scope });
            }
            outside.push((of, scope));
        }
        outside.reverse(); // the wider limit first: "neither … of 1.x nor … of 1.0"
        Err(Outside { limits: outside })
    }

    /// The kept release that `name` on `entry`'s digest stands for: for `latest` the highest
    /// kept release on the digest, for a floating version (`v2`, `2.3`) the highest kept
    /// release there of that major (and minor). The release's tag is returned.
    pub fn alias_of(&self, entry: &TagEntry, name: &str) -> Option<&'a str> {
        let kept = self.kept_on.get(&(entry.image.as_str(), &entry.digest))?;
        if name == "latest" {
            return kept.first().map(|(_, tag)| *tag);
        }
        let (major, minor) = floating_version(name)?;
        kept.iter()
            .find(|((kept_major, kept_minor, _), _)| {
                *kept_major == major && minor.is_none_or(|minor| minor == *kept_minor)
            })
            .map(|(_, tag)| *tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_and_floating_versions_parse() {
        assert_eq!(release_version("v2.3.1"), Some((2, 3, 1)));
        assert_eq!(release_version("10.0.0"), Some((10, 0, 0)));
        for not in ["v2.3", "2.3.1-rc.1", "latest", "v2.3.1.4", "99999999999999999999.0.0"] {
            assert_eq!(release_version(not), None, "{not}");
        }
        assert_eq!(floating_version("v2"), Some((2, None)));
        assert_eq!(floating_version("2.3"), Some((2, Some(3))));
        for not in ["v2.3.1", "v", "2.", "2.x", "latest", ".3", "v-1"] {
            assert_eq!(floating_version(not), None, "{not}");
        }
    }
}
