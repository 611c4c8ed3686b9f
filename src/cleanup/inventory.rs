//! What a cleanup plans from: per repository, its tags, the digests they resolve to, and the
//! manifests behind them (index children, referrer subjects, ages).
//!
//! Owns the inventory's types. Reading them from a registry is not here yet; whoever fills an
//! [`Inventory`] must set [`RepositoryInventory::complete`] to `false` when any read failed, so
//! the planner deletes nothing in that repository. Decides nothing about what to delete.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::reference::{Digest, RepoAddress, Tag};

/// Every repository in scope of one cleanup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub repositories: Vec<RepositoryInventory>,
}

/// One repository's tags and manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInventory {
    pub address: RepoAddress,
    /// `true` if and only if every read for this repository succeeded: the tag list (all
    /// pages), each tag's digest, and every manifest that had to be expanded (indexes,
    /// referrers). When `false`, the planner keeps everything in the repository.
    pub complete: bool,
    /// Every tag in scope, each once.
    pub tags: Vec<TagEntry>,
    /// Every manifest read: the digest of each tag (required; a tagged digest missing here
    /// counts as an incomplete inventory), each index child and referrer found, and untagged
    /// manifests the registry lists (those are here without any tag pointing to them).
    pub manifests: BTreeMap<Digest, ManifestEntry>,
}

/// One tag and what it resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    /// The tag as stored in the registry (in monorepo mode it carries the image prefix).
    pub tag: Tag,
    /// The image name the tag belongs to, from `naming`'s inverse (the repository below the
    /// images repo in multirepo mode, the tag's `IMAGE-` prefix in monorepo mode).
    pub image: String,
    /// The tag as the image was published under it: equal to `tag` in multirepo mode, the part
    /// after `IMAGE-` in monorepo mode. `keep_tags` and release detection match this or `tag`.
    pub image_tag: String,
    pub digest: Digest,
    /// When this tag was last pushed, where a native API records it per tag (Docker Hub's
    /// `tag_last_pushed`, Harbor's `push_time`); `None` otherwise. It takes precedence over
    /// the manifest's `created`.
    pub pushed: Option<Timestamp>,
}

/// One manifest in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub media_type: String,
    /// The manifests an image index lists (empty for an image manifest).
    pub children: Vec<Digest>,
    /// The manifest this one refers to (OCI 1.1 `subject`): set for signatures, SBOMs and
    /// attestations.
    pub subject: Option<Digest>,
    /// When the manifest was pushed or its image built; `None` when unknown.
    pub created: Option<Timestamp>,
    /// Where `created` came from.
    pub created_source: TimeSource,
}

impl ManifestEntry {
    /// The manifest's age reference point and its source, if both are known.
    pub fn created_at(&self) -> Option<(Timestamp, TimeSource)> {
        match (self.created, self.created_source) {
            (Some(_), TimeSource::Unknown) | (None, _) => None,
            (Some(at), source) => Some((at, source)),
        }
    }
}

/// Where an age came from, so every plan reason can say what it relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// A push time recorded by the registry's native API (per tag or per image).
    TagPushed,
    /// The `created` field of the image's config blob.
    ImageConfigCreated,
    /// Nothing says how old it is; the planner never deletes on an unknown age.
    Unknown,
}

impl TimeSource {
    /// The words a reason uses before the age: "pushed", "image config created".
    pub fn describe(self) -> &'static str {
        match self {
            Self::TagPushed => "pushed",
            Self::ImageConfigCreated => "image config created",
            Self::Unknown => "age unknown",
        }
    }
}
