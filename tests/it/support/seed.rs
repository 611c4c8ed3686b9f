//! Seeding a real registry through dockhand's own client: small OCI images (each with a unique
//! config, so each has its own digest), tags on existing manifests, and image indexes.

use std::collections::BTreeMap;

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::manifest::{OCI_IMAGE_CONFIG, OCI_INDEX, OCI_MANIFEST};
use dockhand::registry::distribution::{BlobSource, Client, Credential, ManifestRef};
use jiff::{SignedDuration, Timestamp};

use super::Registry;

/// A client that presents `credential` to `registry` for every operation.
pub fn client_as(registry: &Registry, credential: Credential) -> Client {
    let mut options = registry.client_options();
    options.credentials = BTreeMap::from([(registry.registry_host(), credential)]);
    Client::new(options).expect("client")
}

/// A client with the registry's full user (anonymous for the anonymous variant).
pub fn client(registry: &Registry) -> Client {
    client_as(registry, registry.credential())
}

/// `created` `minutes` ago, as an image config writes it.
pub fn minutes_ago(minutes: i64) -> String {
    (Timestamp::now() - SignedDuration::from_mins(minutes)).to_string()
}

/// Pushes a small OCI image (no layers, a unique config saying `created`) under `tag`, or
/// untagged (by digest) when `tag` is `None`. Returns its digest.
pub async fn push_image(
    client: &Client,
    repository: &RepoAddress,
    tag: Option<&str>,
    created: &str,
) -> Digest {
    let seed = format!("{}-{}", tag.unwrap_or("untagged"), fastrand::u64(..));
    push_manifest(client, repository, tag, created, &seed, &[], &[]).await
}

/// [`push_image`] with these labels in its config as well (e.g. the OCI revision label).
pub async fn push_labelled_image(
    client: &Client,
    repository: &RepoAddress,
    tag: &str,
    created: &str,
    labels: &[(&str, &str)],
) -> Digest {
    let seed = format!("{tag}-{}", fastrand::u64(..));
    push_manifest(client, repository, Some(tag), created, &seed, &[], labels).await
}

/// Pushes a one-layer OCI image whose layer is `content` under `tag`. Returns its digest.
pub async fn push_layered_image(
    client: &Client,
    repository: &RepoAddress,
    tag: &str,
    content: &str,
) -> Digest {
    let layer = client
        .upload_blob(repository, &BlobSource::Bytes(content.as_bytes().to_vec()))
        .await
        .expect("upload layer");
    let layers = [(layer, content.len())];
    push_manifest(client, repository, Some(tag), "2026-11-01T10:00:00Z", content, &layers, &[])
        .await
}

/// An OCI image manifest over a config saying `created` and labelled `seed` (and `labels`),
/// and `layers` (digest, size) already uploaded.
async fn push_manifest(
    client: &Client,
    repository: &RepoAddress,
    tag: Option<&str>,
    created: &str,
    seed: &str,
    layers: &[(Digest, usize)],
    labels: &[(&str, &str)],
) -> Digest {
    let diff_ids: Vec<&Digest> = layers.iter().map(|(digest, _)| digest).collect();
    let mut all_labels = serde_json::Map::new();
    all_labels.insert("seed".to_owned(), seed.into());
    for (key, value) in labels {
        all_labels.insert((*key).to_owned(), (*value).into());
    }
    let config = serde_json::json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": all_labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string();
    let config_digest = client
        .upload_blob(repository, &BlobSource::Bytes(config.clone().into_bytes()))
        .await
        .expect("upload config");
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_IMAGE_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": layers,
    })
    .to_string();
    put(client, repository, tag, OCI_MANIFEST, body.as_bytes()).await
}

/// Puts the manifest `body` under `tag`, or by its digest when `tag` is `None`.
pub async fn put(
    client: &Client,
    repository: &RepoAddress,
    tag: Option<&str>,
    media_type: &str,
    body: &[u8],
) -> Digest {
    let reference = match tag {
        Some(tag) => ManifestRef::Tag(tag.parse().expect("tag")),
        None => ManifestRef::Digest(Digest::sha256_of(body)),
    };
    client.put_manifest(repository, &reference, media_type, body).await.expect("put manifest")
}

/// Points `tag` at the existing manifest `digest`.
pub async fn tag_existing(client: &Client, repository: &RepoAddress, tag: &str, digest: &Digest) {
    let manifest = client
        .get_manifest(repository, &ManifestRef::Digest(digest.clone()))
        .await
        .expect("get manifest");
    put(client, repository, Some(tag), &manifest.media_type, &manifest.bytes).await;
}

/// Pushes an OCI index of `children` (the first for amd64, the others for arm64) under `tag`.
pub async fn push_index(
    client: &Client,
    repository: &RepoAddress,
    tag: &str,
    children: &[Digest],
) -> Digest {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .enumerate()
        .map(|(position, child)| {
            let architecture = if position == 0 { "amd64" } else { "arm64" };
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": child,
                "size": 1,
                "platform": {"architecture": architecture, "os": "linux"},
            })
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            .to_string();
    put(client, repository, Some(tag), OCI_INDEX, body.as_bytes()).await
}
