//! Publishing: every built image under every tag, named by the images repo and mode.
//!
//! Owns which references a build produces ([`targets`], pure) and pushing an image from an
//! OCI image layout ([`push_layout`]): each blob is uploaded once per repository (or mounted
//! from a repository of the same registry that already has it), child manifests of an index go
//! by digest, and every tag is one manifest PUT of the same bytes, so all tags of an image
//! share one digest. A tag that already names the image's digest (a reproducible rebuild of
//! the same commit) is left alone: the repository's tags are listed and each existing one
//! resolved with a HEAD first, and when every
//! tag of a repository is current nothing is uploaded there at all. Manifests are read into memory (they are small and their bytes are
//! sent); config and layer blobs are streamed from their files and checked against their
//! digests on the way, never read whole. Must never delete anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures_util::future::try_join_all;
use serde::Serialize;

use crate::builder::{self, Backend, BuildError, Builder, Built, BuiltImage, docker};
use crate::env_vars::EnvMap;
use crate::exit::{Classify, ExitStatus};
use crate::naming::{self, Mode, NamingError};
use crate::process::{self, CommandError};
use crate::reference::{Digest, ImageRef, RegistryHost, RepoAddress, Tag};
use crate::registry::distribution::manifest::{self as media, ManifestContent};
use crate::registry::distribution::{BlobSource, Client, DistributionError, ManifestRef};
use crate::registry::{Registry, RegistryError};

/// Why an image could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("The built image `{image}` has no usable OCI layout at `{}`: {problem}", dir.display())]
    Layout { image: String, dir: PathBuf, problem: String },
    #[error("Failed to push `{reference}`")]
    Push {
        reference: String,
        #[source]
        source: Box<DistributionError>,
    },
    #[error("Cannot prepare repository `{repository}` for the push")]
    Repository {
        repository: RepoAddress,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("Registry stored `{reference}` as `{actual}`, but the image is `{expected}`")]
    DigestChanged { reference: String, expected: Digest, actual: Digest },
    #[error("`docker push` of `{reference}` failed")]
    DockerPush {
        reference: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error("`docker push` of `{reference}` printed no digest")]
    DockerDigest { reference: String },
    #[error("No image `{image}` built by {builder} for this commit: nothing was pushed")]
    NotBuilt {
        image: String,
        builder: Builder,
        #[source]
        source: Box<BuildError>,
    },
    #[error(
        "The local image `{reference}` of `{image}` was built for {}, not for commit `{expected}`: nothing was pushed",
        found.as_ref().map_or_else(|| "no commit".to_owned(), |found| format!("commit `{found}`"))
    )]
    OtherRevision {
        image: String,
        builder: Builder,
        reference: String,
        expected: String,
        found: Option<String>,
    },
}

impl Classify for PublishError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Push { source, .. } => source.exit_status(),
            Self::Repository { source, .. } => source.exit_status(),
            Self::DockerPush { source, .. } => source.exit_status(),
            Self::Layout { .. } | Self::DigestChanged { .. } | Self::DockerDigest { .. } => {
                ExitStatus::Failure
            }
            Self::NotBuilt { .. } | Self::OtherRevision { .. } => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Push { source, .. } => source.hint(),
            Self::Repository { source, .. } => source.hint(),
            Self::DockerPush { source, .. } => source.hint(),
            Self::DockerDigest { .. } => Some("check the docker CLI's output above; dockhand expects `TAG: digest: sha256:… size: N`".into()),
            Self::Layout { .. } => Some("rebuild the image (`dockhand build`) and publish again".into()),
            Self::DigestChanged { .. } => {
                Some("the registry rewrote the manifest (e.g. converted its format); push with an OCI-capable registry".into())
            }
            Self::NotBuilt { builder, .. } | Self::OtherRevision { builder, .. } => Some(format!(
                "run `dockhand build --builder {builder}` for this commit first (same job, or the same image storage), then `dockhand publish --builder {builder}`"
            )),
        }
    }
}

/// Checks that the image an earlier `dockhand build` left in `backend`'s storage is there and
/// was built for `revision` (its `org.opencontainers.image.revision` label), so that publish
/// never pushes an image of another builder or of another commit. `revision` is the label the
/// build of this commit writes; `None` (no commit known) checks only that the image exists.
pub fn check_built(
    backend: &Backend,
    built: &BuiltImage,
    revision: Option<&str>,
    env: &EnvMap,
) -> Result<(), PublishError> {
    let reference = match &built.built {
        Built::Buildah(local) => &local.reference,
        Built::DockerStore(reference) => reference,
    };
    let labels = builder::local_labels(backend, reference, env).map_err(|source| {
        PublishError::NotBuilt {
            image: built.image.clone(),
            builder: built.builder,
            source: Box::new(source),
        }
    })?;
    let found = labels.get(builder::LABEL_REVISION);
    match revision {
        Some(expected) if found.map(String::as_str) != Some(expected) => {
            Err(PublishError::OtherRevision {
                image: built.image.clone(),
                builder: built.builder,
                reference: reference.to_string(),
                expected: expected.to_owned(),
                found: found.cloned(),
            })
        }
        _ => Ok(()),
    }
}

/// One reference to publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The image name from the project file.
    pub image: String,
    /// The full reference, `registry/repository:tag`.
    #[serde(serialize_with = "serialize_display")]
    pub reference: ImageRef,
    /// The repository the reference lives in.
    pub repository: String,
    /// The tag as stored in the registry (in monorepo mode it starts with the image name).
    pub tag: String,
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// The references `images` gets under `tags` in `repo` with `mode`, image by image, in the
/// order of the tags.
pub fn targets(
    repo: &RepoAddress,
    mode: Mode,
    images: &[&str],
    tags: &[Tag],
) -> Result<Vec<Target>, NamingError> {
    let mut targets = Vec::with_capacity(images.len() * tags.len());
    for image in images {
        for tag in tags {
            let reference = naming::image_ref(repo, mode, image, tag)?;
            targets.push(Target {
                image: (*image).to_owned(),
                repository: reference.repository.to_string(),
                tag: reference.tag.as_ref().map(ToString::to_string).unwrap_or_default(),
                reference,
            });
        }
    }
    Ok(targets)
}

/// One reference pushed, with the digest the registry stored it under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pushed {
    pub image: String,
    /// `registry/repository:tag`.
    pub reference: String,
    pub digest: Digest,
    /// `true` when the tag already named this digest, so nothing was sent for it (shown in
    /// JSON only then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
}

/// A manifest read from the layout: its exact bytes and media type.
#[derive(Debug, Clone)]
struct Node {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
}

/// An image in an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), as
/// `buildah push … oci:DIR` and `buildx --output type=oci` write it.
#[derive(Debug)]
pub struct Layout {
    image: String,
    dir: PathBuf,
    /// The image's top manifest (an image manifest or an index).
    top: Node,
    /// An index's child manifests, pushed by digest before the index.
    children: Vec<Node>,
    /// Every config and layer blob, without repeats.
    blobs: Vec<(Digest, u64)>,
}

impl Layout {
    /// Reads the single image `dir` holds, checking every manifest against its digest.
    pub fn read(image: &str, dir: &Path) -> Result<Self, PublishError> {
        let problem = |problem: String| PublishError::Layout {
            image: image.to_owned(),
            dir: dir.to_owned(),
            problem,
        };
        let index = std::fs::read(dir.join("index.json"))
            .map_err(|e| problem(format!("cannot read index.json ({e})")))?;
        let index = ManifestContent::parse(&index)
            .map_err(|e| problem(format!("index.json is not valid ({e})")))?;
        let [entry] = index.manifests.as_slice() else {
            return Err(problem(format!(
                "index.json lists {} images, expected 1",
                index.manifests.len()
            )));
        };
        let read_node = |digest: &Digest,
                         media_type: &str|
         -> Result<(Node, ManifestContent), PublishError> {
            let bytes = read_blob(dir, digest).map_err(problem)?;
            let content = ManifestContent::parse(&bytes)
                .map_err(|e| problem(format!("manifest `{digest}` is not valid ({e})")))?;
            let media_type = content.media_type.clone().unwrap_or_else(|| media_type.to_owned());
            Ok((Node { digest: digest.clone(), media_type, bytes }, content))
        };
        let (top, content) = read_node(&entry.digest, &entry.media_type)?;
        let mut children = Vec::new();
        let mut images = Vec::new();
        if media::is_index_type(&top.media_type) {
            for child in &content.manifests {
                let (node, child_content) = read_node(&child.digest, &child.media_type)?;
                children.push(node);
                images.push(child_content);
            }
        } else {
            images.push(content);
        }
        let mut seen = BTreeSet::new();
        let blobs = images
            .iter()
            .flat_map(|image| image.config.iter().chain(&image.layers))
            .filter(|descriptor| seen.insert(descriptor.digest.clone()))
            .map(|descriptor| (descriptor.digest.clone(), descriptor.size))
            .collect();
        Ok(Self { image: image.to_owned(), dir: dir.to_owned(), top, children, blobs })
    }

    /// The digest every tag of this image will have.
    pub fn digest(&self) -> &Digest {
        &self.top.digest
    }
}

/// Where the layout in `dir` keeps blob `digest`: `blobs/<algorithm>/<hex>`.
fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    let (algorithm, hex) = digest.as_str().split_once(':').unwrap_or(("sha256", digest.hex()));
    dir.join("blobs").join(algorithm).join(hex)
}

/// The content of blob `digest` in the layout, checked against the digest: for manifests,
/// which are small and whose bytes are needed.
fn read_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, String> {
    let (algorithm, _) = digest.as_str().split_once(':').unwrap_or(("sha256", digest.hex()));
    let bytes = std::fs::read(blob_path(dir, digest))
        .map_err(|e| format!("cannot read blob `{digest}` ({e})"))?;
    if algorithm == "sha256" && Digest::sha256_of(&bytes) != *digest {
        return Err(format!("blob `{digest}` does not match its digest"));
    }
    Ok(bytes)
}

/// Repositories that already hold a blob, per registry: the source of cross-repository mounts.
#[derive(Debug, Default)]
pub struct BlobLocations(BTreeMap<(RegistryHost, Digest), RepoAddress>);

/// Makes every repository of `targets` ready for a push (creating it where the registry
/// needs that), once each.
pub async fn ensure_repositories(
    registry: &Registry,
    targets: &[Target],
) -> Result<(), PublishError> {
    let repositories: BTreeSet<&RepoAddress> =
        targets.iter().map(|target| &target.reference.repository).collect();
    for repository in repositories {
        registry.ensure_repository(repository).await.map_err(|source| {
            PublishError::Repository { repository: repository.clone(), source: Box::new(source) }
        })?;
    }
    Ok(())
}

/// Pushes `layout` to every target (all of one image): blobs once per repository, then one
/// manifest PUT per tag, for the tags that do not already name the layout's digest (the tag
/// list and a HEAD per existing tag say; a tag they cannot resolve is pushed). Returns every target, those left
/// alone marked `unchanged`; each push is logged as it completes, so a failure part-way leaves
/// a record of what is already in the registry.
pub async fn push_layout(
    registry: &Registry,
    layout: &Layout,
    targets: &[Target],
    locations: &mut BlobLocations,
) -> Result<Vec<Pushed>, PublishError> {
    let client = registry.client();
    let mut by_repository: BTreeMap<&RepoAddress, Vec<&Target>> = BTreeMap::new();
    for target in targets {
        by_repository.entry(&target.reference.repository).or_default().push(target);
    }
    let mut pushed = Vec::with_capacity(targets.len());
    for (repository, targets) in by_repository {
        let (current, targets) = current_tags(client, layout, repository, targets).await;
        for target in current {
            log::info!("{} is already {}: nothing sent", target.reference, layout.top.digest);
            pushed.push(Pushed {
                image: layout.image.clone(),
                reference: target.reference.to_string(),
                digest: layout.top.digest.clone(),
                unchanged: true,
            });
        }
        let Some(first) = targets.first().map(|target| &target.reference) else {
            continue;
        };
        let fail =
            |source| PublishError::Push { reference: first.to_string(), source: Box::new(source) };
        let uploads = layout.blobs.iter().map(|(digest, size)| {
            let from = locations
                .0
                .get(&(repository.registry.clone(), digest.clone()))
                .filter(|from| *from != repository);
            upload_blob(client, layout, first, digest, *size, from)
        });
        try_join_all(uploads).await?;
        for (digest, _) in &layout.blobs {
            locations.0.insert((repository.registry.clone(), digest.clone()), repository.clone());
        }
        for child in &layout.children {
            client
                .put_manifest(
                    repository,
                    &ManifestRef::Digest(child.digest.clone()),
                    &child.media_type,
                    &child.bytes,
                )
                .await
                .map_err(fail)?;
        }
        let puts = targets.iter().map(|target| async move {
            let tag = target.reference.tag.clone().expect("targets are tagged");
            let digest = client
                .put_manifest(
                    repository,
                    &ManifestRef::Tag(tag),
                    &layout.top.media_type,
                    &layout.top.bytes,
                )
                .await
                .map_err(|source| PublishError::Push {
                    reference: target.reference.to_string(),
                    source: Box::new(source),
                })?;
            if digest != layout.top.digest {
                return Err(PublishError::DigestChanged {
                    reference: target.reference.to_string(),
                    expected: layout.top.digest.clone(),
                    actual: digest,
                });
            }
            log::info!("pushed {}@{digest}", target.reference);
            Ok(Pushed {
                image: layout.image.clone(),
                reference: target.reference.to_string(),
                digest,
                unchanged: false,
            })
        });
        pushed.extend(try_join_all(puts).await?);
    }
    Ok(pushed)
}

/// Splits `targets` (all in `repository`) into the tags that already name the layout's digest
/// and the rest: one tag list (a repository that does not exist has none), then one manifest
/// HEAD per tag that exists. A read that fails counts the tag as not current: the push that
/// follows reports what is wrong.
async fn current_tags<'t>(
    client: &Client,
    layout: &Layout,
    repository: &RepoAddress,
    targets: Vec<&'t Target>,
) -> (Vec<&'t Target>, Vec<&'t Target>) {
    let existing: Option<BTreeSet<Tag>> = match client.list_tags(repository).await {
        Ok(tags) => Some(tags.into_iter().collect()),
        Err(error) if error.is_not_found() => Some(BTreeSet::new()),
        Err(error) => {
            log::debug!("cannot list the tags of {repository} before the push: {error}");
            None
        }
    };
    let existing = &existing;
    let heads = targets.iter().map(|target| async move {
        let tag = target.reference.tag.clone().expect("targets are tagged");
        if existing.as_ref().is_some_and(|existing| !existing.contains(&tag)) {
            return false;
        }
        match client.head_manifest(repository, &ManifestRef::Tag(tag)).await {
            Ok(head) => head.is_some_and(|head| head.digest == layout.top.digest),
            Err(error) => {
                log::debug!("cannot resolve {} before the push: {error}", target.reference);
                false
            }
        }
    });
    let current = futures_util::future::join_all(heads).await;
    let (current, stale): (Vec<_>, Vec<_>) =
        targets.into_iter().zip(current).partition(|(_, current)| *current);
    (current.into_iter().map(|(t, _)| t).collect(), stale.into_iter().map(|(t, _)| t).collect())
}

/// Makes one blob present in the repository of `reference`: nothing if it is there, a mount
/// from `from` if a repository of the same registry has it, else an upload streamed from the
/// layout's file (opened only when the registry did not mount). A file that is not the blob
/// its digest names is a layout error.
async fn upload_blob(
    client: &Client,
    layout: &Layout,
    reference: &ImageRef,
    digest: &Digest,
    size: u64,
    from: Option<&RepoAddress>,
) -> Result<(), PublishError> {
    let repository = &reference.repository;
    let fail = |source| match source {
        DistributionError::DigestMismatch { actual, .. } => PublishError::Layout {
            image: layout.image.clone(),
            dir: layout.dir.clone(),
            problem: format!("blob `{digest}` does not match its digest (it hashes to `{actual}`)"),
        },
        DistributionError::BlobRead { source, .. } => PublishError::Layout {
            image: layout.image.clone(),
            dir: layout.dir.clone(),
            problem: format!("cannot read blob `{digest}` ({source})"),
        },
        source => PublishError::Push { reference: reference.to_string(), source: Box::new(source) },
    };
    if client.blob_exists(repository, digest).await.map_err(fail)? {
        log::debug!("{repository}: blob {digest} already there");
        return Ok(());
    }
    let blob =
        BlobSource::File { path: blob_path(&layout.dir, digest), size, digest: digest.clone() };
    if let Some(from) = from {
        let how = client.mount_or_upload_blob(repository, from, &blob).await.map_err(fail)?;
        log::debug!("{repository}: blob {digest} ({size} bytes) {how:?} from {from}");
    } else {
        client.upload_blob(repository, &blob).await.map_err(fail)?;
        log::debug!("{repository}: blob {digest} ({size} bytes) uploaded");
    }
    Ok(())
}

/// Pushes an image the docker daemon holds (`docker`/`buildx --load` builds) with the docker
/// CLI: `docker tag` then `docker push` per target. The daemon skips layers the registry has,
/// so extra tags cost a manifest upload each. Credentials come from `config`, never argv.
pub fn push_with_docker(
    config: Option<&PathBuf>,
    image: &str,
    local: &ImageRef,
    targets: &[Target],
    env: &EnvMap,
) -> Result<Vec<Pushed>, PublishError> {
    let run = |args: Vec<std::ffi::OsString>, reference: &ImageRef| {
        env.iter()
            .fold(process::Command::new("docker").args(args), |command, (name, value)| {
                command.env(name, value)
            })
            .output()
            .map_err(|source| PublishError::DockerPush {
                reference: reference.to_string(),
                source: Box::new(source),
            })
    };
    let mut pushed = Vec::with_capacity(targets.len());
    for target in targets {
        run(docker::tag_argv(config, local, &target.reference), &target.reference)?;
        let output = run(docker::push_argv(config, &target.reference), &target.reference)?;
        let digest = docker::pushed_digest(&output.stdout).ok_or_else(|| {
            PublishError::DockerDigest { reference: target.reference.to_string() }
        })?;
        log::info!("pushed {}@{digest}", target.reference);
        pushed.push(Pushed {
            image: image.to_owned(),
            reference: target.reference.to_string(),
            digest,
            unchanged: false,
        });
    }
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_in_both_modes() {
        let repo: RepoAddress = "localhost:5000/acme/app".parse().unwrap();
        let tags: Vec<Tag> = ["main", "1.2.3"].iter().map(|t| t.parse().unwrap()).collect();
        let multi = targets(&repo, Mode::Multirepo, &["api", "web"], &tags).unwrap();
        let names: Vec<String> = multi.iter().map(|t| t.reference.to_string()).collect();
        assert_eq!(
            names,
            [
                "localhost:5000/acme/app/api:main",
                "localhost:5000/acme/app/api:1.2.3",
                "localhost:5000/acme/app/web:main",
                "localhost:5000/acme/app/web:1.2.3"
            ]
        );
        assert_eq!(multi[0].repository, "localhost:5000/acme/app/api");
        assert_eq!(multi[0].tag, "main");

        let mono = targets(&repo, Mode::Monorepo, &["api"], &tags).unwrap();
        assert_eq!(mono[1].reference.to_string(), "localhost:5000/acme/app:api-1.2.3");
        assert_eq!(mono[1].repository, "localhost:5000/acme/app");
        assert_eq!(mono[1].tag, "api-1.2.3");
        let json = serde_json::to_value(&mono[1]).unwrap();
        assert_eq!(json["reference"], "localhost:5000/acme/app:api-1.2.3");
        assert_eq!(json["image"], "api");
    }
}
