//! The default implementation of the registry seam: everything through the OCI distribution
//! API, as the CNCF distribution registry, zot and GitLab's registry speak it (`gcr.rs` wraps
//! it for Google's registries).
//!
//! Owns the single-tag removal that registry API offers: the OCI 1.1 tag `DELETE` where the
//! registry has it; else (distribution 2.8 answers `400 DIGEST_INVALID`) the tag is pointed at
//! a unique throw-away manifest whose digest the caller deletes afterwards, which removes that
//! tag and nothing else (docs/registries.md §3). Once a registry has refused one tag delete,
//! later tags go straight to the throw-away manifest.

use std::sync::atomic::{AtomicBool, Ordering};

use super::distribution::{Client, DeleteSupport, DistributionError};
use super::{Capabilities, RegistryError, Removal, Untagged, Vendor};
use crate::reference::{Digest, RepoAddress, Tag};

/// A registry reached through the distribution API alone.
#[derive(Debug)]
pub struct Distribution {
    client: Client,
    capabilities: Capabilities,
    /// Set once the registry refused an OCI tag delete: later tags use the throw-away manifest.
    tag_delete_refused: AtomicBool,
}

impl Distribution {
    pub fn new(client: Client, capabilities: Capabilities) -> Self {
        Self { client, capabilities, tag_delete_refused: AtomicBool::new(false) }
    }
}

impl Vendor for Distribution {
    fn client(&self) -> &Client {
        &self.client
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        Ok(self.client.probe_deletes(repository).await?)
    }

    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        if !self.tag_delete_refused.load(Ordering::Relaxed) {
            match self.client.delete_tag(repository, tag).await {
                Ok(()) => return Ok(Untagged::Removed),
                Err(DistributionError::TagDeleteUnsupported { .. }) => {
                    self.tag_delete_refused.store(true, Ordering::Relaxed);
                }
                Err(error) if error.is_not_found() => return Ok(Untagged::AlreadyGone),
                Err(source) => return Err(RegistryError::TagDelete(source)),
            }
        }
        match self.client.push_empty_manifest(repository, tag).await {
            Ok(digest) => Ok(Untagged::Tombstoned(digest)),
            Err(source) => Err(RegistryError::Tombstone(source)),
        }
    }

    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        super::delete_by_digest(&self.client, repository, digest).await
    }
}
