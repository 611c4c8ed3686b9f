//! Manifests, indexes, descriptors and image configs, as far as dockhand reads them.
//!
//! Owns the four media types the client accepts (OCI manifest and index, Docker schema 2
//! manifest and manifest list; never schema 1), and small serde structs that read any of them
//! tolerantly: unknown fields are ignored, absent lists are empty, digests are parsed into
//! [`Digest`]. Why these are not `oci-spec` types is in `docs/architecture.md`. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use crate::reference::{Digest, Tag};

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json` (Docker schema 2)
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// `application/vnd.oci.image.config.v1+json`
pub const OCI_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The OCI 1.1 empty descriptor's media type, and its content (`{}`).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON: &[u8] = b"{}";
/// The `artifactType` of dockhand's throw-away manifests.
pub const TOMBSTONE_ARTIFACT: &str = "application/vnd.dockhand.tombstone.v1";
/// The annotation marking dockhand's throw-away manifests (its value: the tag it was pushed to).
pub const TOMBSTONE_ANNOTATION: &str = "dev.dockhand.tombstone";
/// The annotation that makes each throw-away manifest unique.
const TOMBSTONE_NONCE: &str = "dev.dockhand.tombstone.nonce";

/// The bytes of a throw-away manifest for `tag`: an OCI 1.1 artifact whose config and one
/// layer are the empty descriptor (the blob `empty` names, `{}`), unique through `nonce`.
pub fn tombstone(empty: &Digest, tag: &Tag, nonce: &str) -> String {
    let descriptor = serde_json::json!({
        "mediaType": OCI_EMPTY,
        "digest": empty,
        "size": EMPTY_JSON.len(),
        "data": "e30=",
    });
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": TOMBSTONE_ARTIFACT,
        "config": descriptor,
        "layers": [descriptor],
        "annotations": { TOMBSTONE_ANNOTATION: tag.as_str(), TOMBSTONE_NONCE: nonce },
    })
    .to_string()
}

/// The `Accept` header for manifest requests: every modern type, so OCI manifests do not 404
/// and Docker schema 2 is not converted to schema 1 (with another digest).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// `true` if and only if `media_type` is an OCI index or a Docker manifest list.
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// `true` if and only if `media_type` is one of the four types the client accepts.
pub fn is_supported_type(media_type: &str) -> bool {
    [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].contains(&media_type)
}

/// What a manifest `HEAD` tells: enough to resolve a tag without pulling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    /// The `Content-Type` the registry answered with (parameters removed).
    pub media_type: String,
    /// `Content-Length`, the manifest's size in bytes.
    pub size: u64,
}

/// A manifest as fetched: its exact bytes (which the digest covers) and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub content: ManifestContent,
}

/// The fields of an image manifest or index that dockhand uses. An image manifest has a
/// `config` and `layers`; an index has `manifests`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestContent {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub layers: Vec<Descriptor>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ManifestContent {
    /// Parses manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// A reference to content: media type, digest, size, and what else describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    #[serde(deserialize_with = "digest")]
    pub digest: Digest,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// The parts of an image config dockhand reads: when the image was built, and for what.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ImageConfig {
    /// `created`, if present and a valid RFC 3339 time.
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub created: Option<jiff::Timestamp>,
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn digest<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A `created` that is missing or not a time is `None`, not an error: it only informs age.
fn lenient_timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<jiff::Timestamp>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.and_then(|value| value.as_str().and_then(|text| text.parse().ok())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn reads_every_supported_shape() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"{OCI_IMAGE_CONFIG}","digest":"{A}","size":7}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{B}","size":9}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{B}","size":1}},"annotations":{{"k":"v"}}}}"#
        );
        let parsed = ManifestContent::parse(oci.as_bytes()).unwrap();
        assert_eq!(parsed.config.as_ref().map(|config| config.digest.as_str()), Some(A));
        assert_eq!(parsed.layers.len(), 1);
        assert_eq!(parsed.subject.map(|subject| subject.digest.to_string()), Some(B.to_owned()));
        assert_eq!(parsed.annotations.get("k").map(String::as_str), Some("v"));

        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[{{"mediaType":"{DOCKER_MANIFEST}","digest":"{A}","size":3,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}}]}}"#
        );
        let parsed = ManifestContent::parse(index.as_bytes()).unwrap();
        assert_eq!(
            parsed.manifests[0].platform.as_ref().map(|p| p.architecture.as_str()),
            Some("arm64")
        );
        assert!(parsed.config.is_none() && parsed.layers.is_empty());

        let nulls = r#"{"schemaVersion":2,"layers":null,"manifests":null,"annotations":null,"unknown":[1]}"#;
        assert_eq!(
            ManifestContent::parse(nulls.as_bytes()).unwrap(),
            ManifestContent { schema_version: 2, ..ManifestContent::default() }
        );

        let bad_digest = r#"{"manifests":[{"digest":"md5:abc","size":1}]}"#;
        assert!(ManifestContent::parse(bad_digest.as_bytes()).is_err());
    }

    #[test]
    fn image_config_created() {
        for (body, want) in [
            (
                r#"{"created":"2026-11-01T10:00:00.123456789Z","architecture":"amd64","os":"linux"}"#,
                Some("2026-11-01T10:00:00.123456789Z"),
            ),
            (r#"{"created":"2026-11-01T12:00:00+02:00"}"#, Some("2026-11-01T10:00:00Z")),
            (r#"{"created":"yesterday"}"#, None),
            (r#"{"created":null}"#, None),
            ("{}", None),
        ] {
            let config = ImageConfig::parse(body.as_bytes()).unwrap();
            assert_eq!(config.created, want.map(|text| text.parse().unwrap()), "{body}");
        }
    }

    #[test]
    fn media_type_classes() {
        for (media_type, index, supported) in [
            (OCI_MANIFEST, false, true),
            (OCI_INDEX, true, true),
            (DOCKER_MANIFEST, false, true),
            (DOCKER_MANIFEST_LIST, true, true),
            ("application/vnd.docker.distribution.manifest.v1+prettyjws", false, false),
        ] {
            assert_eq!(is_index_type(media_type), index, "{media_type}");
            assert_eq!(is_supported_type(media_type), supported, "{media_type}");
            assert!(MANIFEST_ACCEPT.contains(media_type) == supported, "{media_type}");
        }
    }
}
