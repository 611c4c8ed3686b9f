//! The digest-facts cache (`--facts-cache FILE`): what a digest names never changes, so a
//! scheduled cleanup keeps the manifests and image-config facts it read in a file that the CI
//! caches between runs (`actions/cache`, GitLab `cache:`), and the next run reads only what is
//! new. Tags still resolve afresh every run (a tag can move); what a digest's manifest says
//! (index children, subject, config) and what its config says (`created`, git labels) does not.
//!
//! One fact of a repository is kept too, for a day: whether the registry answered the referrers
//! API when it was last probed there. A registry rarely gains or loses the API, and a wrong
//! answer only changes how referrers are found (the API, or the `sha256-…` tags of the tag
//! list), never what a manifest's own `subject` says; past a day the probe is sent again.
//!
//! Owns the file's format and its checks: each manifest is kept as its exact bytes, and an
//! entry whose bytes do not hash to its digest is dropped on load; the config facts (too large
//! to keep as bytes) are covered by a SHA-256 of their serialisation, and are all dropped when
//! it does not match. A file that is missing, unreadable, of another version or not this
//! format is ignored with a warning: the run reads everything, as without a cache. The file is
//! written whole, replacing the old one (0600), with the facts of this run's inventory only, so
//! it does not grow with digests that are gone. Does no network I/O.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::reference::Digest;

/// The format's version; a file of another is ignored.
const VERSION: u32 = 1;
/// Largest cache file read.
const MAX_SIZE: u64 = 256 << 20;

/// How long a referrers probe's answer is used instead of probing again (1 day).
pub const PROBE_TRUSTED_FOR: SignedDuration = SignedDuration::from_hours(24);

/// Whether a repository's registry answered the referrers API, and when that was probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferrersProbe {
    pub api: bool,
    pub at: Timestamp,
}

/// A manifest as read: its media type and exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedManifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// What an image config says that a cleanup uses: `created` and the git labels
/// (`org.opencontainers.image.revision`, `.ref.name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CachedConfig {
    pub created: Option<Timestamp>,
    pub revision: Option<String>,
    pub ref_name: Option<String>,
}

/// The facts of earlier runs (when loaded) or of this run (when collected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactsCache {
    pub manifests: HashMap<Digest, CachedManifest>,
    pub configs: HashMap<Digest, CachedConfig>,
    /// Repository (`registry/path`) → its last referrers probe.
    pub referrers: HashMap<String, ReferrersProbe>,
}

#[derive(Serialize, Deserialize)]
struct FileFormat {
    version: u32,
    /// Digest → media type and the manifest as text (manifests are JSON).
    manifests: BTreeMap<String, FileManifest>,
    /// Config digest → its facts.
    configs: BTreeMap<String, FileConfig>,
    /// SHA-256 of `configs` serialised as compact JSON.
    configs_sha256: String,
    /// Repository → its last referrers probe (absent from files of earlier releases).
    #[serde(default)]
    referrers: BTreeMap<String, FileProbe>,
}

#[derive(Serialize, Deserialize)]
struct FileProbe {
    api: bool,
    /// RFC 3339.
    probed_at: String,
}

#[derive(Serialize, Deserialize)]
struct FileManifest {
    media_type: String,
    manifest: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct FileConfig {
    /// RFC 3339, as jiff prints it (every digit kept).
    created: Option<String>,
    revision: Option<String>,
    ref_name: Option<String>,
}

fn configs_checksum(configs: &BTreeMap<String, FileConfig>) -> String {
    let text = serde_json::to_string(configs).unwrap_or_default();
    Digest::sha256_of(text.as_bytes()).to_string()
}

impl FactsCache {
    /// The facts in `text`: every manifest whose bytes hash to its digest, and the config facts
    /// when their checksum holds. `Err` says why the whole file is ignored.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let file: FileFormat =
            serde_json::from_slice(text).map_err(|error| format!("not a facts cache ({error})"))?;
        if file.version != VERSION {
            return Err(format!("version {} (this dockhand writes {VERSION})", file.version));
        }
        let mut cache = Self::default();
        let mut dropped = 0usize;
        for (key, entry) in file.manifests {
            match key.parse::<Digest>() {
                Ok(digest) if Digest::sha256_of(entry.manifest.as_bytes()) == digest => {
                    cache.manifests.insert(
                        digest,
                        CachedManifest {
                            media_type: entry.media_type,
                            bytes: entry.manifest.into_bytes(),
                        },
                    );
                }
                _ => dropped += 1,
            }
        }
        if dropped > 0 {
            log::warn!("facts cache: {dropped} manifests do not match their digests; read again");
        }
        if configs_checksum(&file.configs) == file.configs_sha256 {
            for (key, entry) in file.configs {
                if let Ok(digest) = key.parse::<Digest>() {
                    let created = entry.created.and_then(|text| text.parse::<Timestamp>().ok());
                    let config = CachedConfig {
                        created,
                        revision: entry.revision,
                        ref_name: entry.ref_name,
                    };
                    cache.configs.insert(digest, config);
                }
            }
        } else {
            log::warn!("facts cache: the image-config facts fail their checksum; read again");
        }
        for (repository, probe) in file.referrers {
            if let Ok(at) = probe.probed_at.parse::<Timestamp>() {
                cache.referrers.insert(repository, ReferrersProbe { api: probe.api, at });
            }
        }
        Ok(cache)
    }

    /// The cache at `path`; empty (with a warning) when it is missing, unreadable or invalid.
    pub fn load(path: &Path) -> Self {
        let read = match std::fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                log::info!(
                    "facts cache `{}` does not exist yet: reading everything",
                    path.display()
                );
                return Self::default();
            }
            Ok(metadata) if !metadata.is_file() || metadata.len() > MAX_SIZE => {
                Err("not a regular file of at most 256 MiB".to_owned())
            }
            Err(error) => Err(error.to_string()),
            Ok(_) => std::fs::read(path).map_err(|error| error.to_string()),
        };
        match read.and_then(|bytes| Self::parse(&bytes)) {
            Ok(cache) => {
                log::info!(
                    "facts cache `{}`: {} manifests, {} image configs",
                    path.display(),
                    cache.manifests.len(),
                    cache.configs.len()
                );
                cache
            }
            Err(problem) => {
                log::warn!("facts cache `{}` ignored: {problem}", path.display());
                Self::default()
            }
        }
    }

    /// The file's text for these facts; manifests that are not UTF-8 are left out.
    pub fn to_text(&self) -> String {
        let manifests = self
            .manifests
            .iter()
            .filter_map(|(digest, manifest)| {
                let text = String::from_utf8(manifest.bytes.clone()).ok()?;
                let entry =
                    FileManifest { media_type: manifest.media_type.clone(), manifest: text };
                Some((digest.to_string(), entry))
            })
            .collect();
        let configs: BTreeMap<String, FileConfig> = self
            .configs
            .iter()
            .map(|(digest, facts)| {
                let entry = FileConfig {
                    created: facts.created.map(|created| created.to_string()),
                    revision: facts.revision.clone(),
                    ref_name: facts.ref_name.clone(),
                };
                (digest.to_string(), entry)
            })
            .collect();
        let configs_sha256 = configs_checksum(&configs);
        let referrers = self
            .referrers
            .iter()
            .map(|(repository, probe)| {
                let entry = FileProbe { api: probe.api, probed_at: probe.at.to_string() };
                (repository.clone(), entry)
            })
            .collect();
        let file = FileFormat { version: VERSION, manifests, configs, configs_sha256, referrers };
        serde_json::to_string(&file).expect("a facts cache always serialises")
    }

    /// Writes these facts to `path`, replacing what was there; a failure is a warning (the
    /// cleanup itself succeeded).
    pub fn save(&self, path: &Path) {
        match crate::docker_config::replace_private_file(path, self.to_text().as_bytes()) {
            Ok(()) => log::info!(
                "facts cache `{}` written: {} manifests, {} image configs",
                path.display(),
                self.manifests.len(),
                self.configs.len()
            ),
            Err(error) => log::warn!("facts cache `{}` not written: {error}", path.display()),
        }
    }

    /// Adds `other`'s facts to these.
    pub fn extend(&mut self, other: Self) {
        self.manifests.extend(other.manifests);
        self.configs.extend(other.configs);
        self.referrers.extend(other.referrers);
    }

    /// The probe of `repository` to go by at `now`: one made less than
    /// [`PROBE_TRUSTED_FOR`] ago (and not in the future).
    pub fn recent_probe(&self, repository: &str, now: Timestamp) -> Option<ReferrersProbe> {
        let probe = self.referrers.get(repository)?;
        let age = now.duration_since(probe.at);
        (!age.is_negative() && age < PROBE_TRUSTED_FOR).then_some(*probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FactsCache {
        let bytes = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":2},"layers":[]}"#.to_vec();
        let mut cache = FactsCache::default();
        cache.manifests.insert(
            Digest::sha256_of(&bytes),
            CachedManifest {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                bytes,
            },
        );
        cache.referrers.insert(
            "localhost:5000/acme/api".into(),
            ReferrersProbe { api: false, at: "2026-01-02T03:04:05Z".parse().unwrap() },
        );
        cache.configs.insert(
            format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            CachedConfig {
                created: Some("2026-01-02T03:04:05Z".parse().unwrap()),
                revision: Some("abc".into()),
                ref_name: None,
            },
        );
        cache
    }

    #[test]
    fn facts_survive_a_round_trip() {
        let cache = sample();
        assert_eq!(FactsCache::parse(cache.to_text().as_bytes()).unwrap(), cache);
    }

    #[test]
    fn a_probe_is_trusted_for_a_day() {
        let cache = sample();
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let probe =
            cache.recent_probe("localhost:5000/acme/api", at + SignedDuration::from_hours(23));
        assert_eq!(probe, Some(ReferrersProbe { api: false, at }));
        for later in [SignedDuration::from_hours(24), SignedDuration::from_hours(-1)] {
            assert_eq!(cache.recent_probe("localhost:5000/acme/api", at + later), None);
        }
        assert_eq!(cache.recent_probe("localhost:5000/acme/web", at), None);
        // a file of an earlier release, without probes, still reads
        let mut file: serde_json::Value = serde_json::from_str(&cache.to_text()).unwrap();
        file.as_object_mut().unwrap().remove("referrers");
        let read = FactsCache::parse(file.to_string().as_bytes()).unwrap();
        assert!(read.referrers.is_empty());
        assert_eq!(read.manifests, cache.manifests);
    }

    #[test]
    fn a_manifest_that_does_not_match_its_digest_is_dropped() {
        let mut file: serde_json::Value = serde_json::from_str(&sample().to_text()).unwrap();
        for entry in file["manifests"].as_object_mut().unwrap().values_mut() {
            let edited = entry["manifest"].as_str().unwrap().replace("\"size\":2", "\"size\":3");
            entry["manifest"] = serde_json::Value::String(edited);
        }
        let cache = FactsCache::parse(file.to_string().as_bytes()).unwrap();
        assert!(cache.manifests.is_empty());
        assert_eq!(cache.configs.len(), 1, "the configs' checksum still holds");
    }

    #[test]
    fn config_facts_that_fail_their_checksum_are_all_dropped() {
        let text = sample().to_text().replace("2026-01-02T03:04:05Z", "2020-01-02T03:04:05Z");
        let cache = FactsCache::parse(text.as_bytes()).unwrap();
        assert!(cache.configs.is_empty(), "an edited `created` could make an image look old");
        assert_eq!(cache.manifests.len(), 1);
    }

    #[test]
    fn other_files_are_refused_whole() {
        assert!(FactsCache::parse(b"not json").is_err());
        assert!(
            FactsCache::parse(
                b"{\"version\": 2, \"manifests\": {}, \"configs\": {}, \"configs_sha256\": \"\"}"
            )
            .is_err()
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FactsCache::load(&dir.path().join("absent.json")), FactsCache::default());
        assert_eq!(FactsCache::load(dir.path()), FactsCache::default(), "a directory");
        let path = dir.path().join("cache.json");
        sample().save(&path);
        assert_eq!(FactsCache::load(&path), sample());
    }
}
