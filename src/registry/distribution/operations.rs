//! The registry operations of [`Client`]: tags, manifests, blobs, deletes and referrers.
//!
//! Each method takes typed repositories, tags and digests, asks for the narrowest scope
//! (`pull` to read, `pull,push` to write, `delete` to delete), and turns the registry's answer
//! into a typed result or a [`DistributionError`] carrying the registry's error codes. Bodies
//! are verified against their digests. Decides nothing about what to keep or delete.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::auth::{Access, TokenScope};
use super::blob::{BlobSource, FileBody, FileProblem};
use super::error::{Code, DistributionError, ErrorEnvelope, Operation};
use super::manifest::{self, Descriptor, ImageConfig, Manifest, ManifestContent, ManifestHead};
use super::urls::{self, ManifestRef};
use super::{Client, Exchange, Outgoing, Payload, retry};
use crate::reference::{Digest, RepoAddress, Tag};

/// Tags asked for per page (`n`); registries may send fewer, or ignore it.
const TAG_PAGE_SIZE: usize = 1000;
/// Pages followed before giving up (a registry that never stops paging).
pub const MAX_TAG_PAGES: usize = 10_000;
/// Distinct tags read from one repository before giving up (memory stays bounded).
pub const MAX_TAGS: usize = 1_000_000;
/// Largest manifest accepted (distribution's own limit is 4 MiB).
const MANIFEST_LIMIT: usize = 4 << 20;
/// Largest blob [`Client::get_blob`] reads into memory.
const BLOB_LIMIT: usize = 64 << 20;
/// Largest tags page accepted.
const TAGS_PAGE_LIMIT: usize = 32 << 20;

/// Whether a registry deletes manifests, as the harmless probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteSupport {
    /// A delete of an unknown digest answered 404 (or 202): deletes are enabled.
    Enabled,
    /// It answered 405 or `UNSUPPORTED`: deletes are disabled.
    Disabled,
}

/// How a blob reached the target repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobTransfer {
    /// The registry linked the existing blob (201).
    Mounted,
    /// The registry did not mount (202) and the content was uploaded.
    Uploaded,
}

/// Where a referrers list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The referrers API (`GET /v2/<name>/referrers/<digest>`).
    Api,
    /// The registry has no referrers API; the `sha256-<hex>` tag schema was read instead.
    TagSchema,
}

/// The manifests that name a digest as their `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    pub descriptors: Vec<Descriptor>,
    pub source: ReferrersSource,
}

#[derive(Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// GCR's and Artifact Registry's extension: digest → what the registry records about it.
    #[serde(default)]
    manifest: Option<BTreeMap<String, serde_json::Value>>,
}

/// A repository's tag list with what the registry adds to it.
#[derive(Debug, Default)]
pub struct TagListing {
    /// Every tag, sorted, without duplicates.
    pub tags: Vec<Tag>,
    /// The `manifest` map some registries add to each page (GCR, Artifact Registry: digest →
    /// its tags and times), merged over the pages, unparsed; empty elsewhere.
    pub manifests: BTreeMap<String, serde_json::Value>,
}

/// The answer of a vendor API on the registry's origin ([`Client::registry_api`]).
#[derive(Debug)]
pub struct RegistryApiReply {
    pub status: StatusCode,
    /// The body, at most 16 MiB of it.
    pub body: Vec<u8>,
    /// The `Link: rel="next"` target as a path and query on the same origin, if any.
    pub next: Option<String>,
}

impl RegistryApiReply {
    /// The registry-style error envelope of the body (`{"errors": [...]}`), for messages.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope::parse(&self.body)
    }
}

/// Largest body [`Client::registry_api`] reads.
const REGISTRY_API_BODY_LIMIT: usize = 16 << 20;

/// The digest of `bytes` in the algorithm of `expected`.
fn digest_like(expected: &Digest, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    if expected.as_str().starts_with("sha512:") {
        format!("sha512:{:x}", sha2::Sha512::digest(bytes))
    } else {
        Digest::sha256_of(bytes).to_string()
    }
}

/// `true` if and only if a blob upload that failed with `error` may start over in a new
/// session: the connection broke, or a gateway or the registry was overloaded (502/503/504).
/// A 429 is not here: the client already waited it out, as often as the policy allows.
fn restartable(error: &DistributionError) -> bool {
    match error {
        DistributionError::Unreachable { .. } => true,
        DistributionError::Registry { status, .. } => {
            retry::retryable_status(*status) && *status != StatusCode::TOO_MANY_REQUESTS
        }
        _ => false,
    }
}

/// `Content-Type` without parameters.
fn media_type_of(exchange: &Exchange) -> Option<String> {
    exchange
        .header(header::CONTENT_TYPE)
        .map(|value| value.split(';').next().unwrap_or_default().trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| unreachable!("`{text}` is a constant header value"))
}

impl Client {
    fn operation(method: &Method, target: String) -> Operation {
        Operation { method: method.clone(), target }
    }

    /// The error for an answer the operation did not expect: 401/403 are a denial, anything
    /// else a registry failure with its envelope.
    fn refused(
        &self,
        repository: &RepoAddress,
        operation: Operation,
        exchange: &Exchange,
    ) -> DistributionError {
        if exchange.status == StatusCode::FORBIDDEN || exchange.status == StatusCode::UNAUTHORIZED {
            return DistributionError::Denied {
                operation,
                registry: repository.registry.clone(),
                account: self.credential(&repository.registry).account(),
                envelope: exchange.envelope(),
            };
        }
        DistributionError::Registry {
            operation,
            status: exchange.status,
            envelope: exchange.envelope(),
        }
    }

    fn registry_url(&self, repository: &RepoAddress) -> url::Url {
        self.base(&repository.registry)
    }

    /// Every tag of `repository`, sorted and without duplicates. Follows `Link: rel="next"`
    /// (relative or absolute, on the registry's own origin only) with `n`/`last`; `"tags":
    /// null` is an empty list. Duplicates are dropped as pages arrive. Fails with
    /// [`DistributionError::PaginationLoop`] if a page repeats or a page after the first adds
    /// no new tag, [`DistributionError::ForeignPage`] for a next page elsewhere,
    /// [`DistributionError::ListingTooLong`] past [`MAX_TAG_PAGES`] pages or [`MAX_TAGS`]
    /// tags, and with a `Registry` error (404, `NAME_UNKNOWN`) for an unknown repository.
    pub async fn list_tags(&self, repository: &RepoAddress) -> Result<Vec<Tag>, DistributionError> {
        Ok(self.tag_listing(repository).await?.tags)
    }

    /// [`Client::list_tags`], with the `manifest` map of the registries that add one.
    pub async fn tag_listing(
        &self,
        repository: &RepoAddress,
    ) -> Result<TagListing, DistributionError> {
        let operation = Self::operation(&Method::GET, format!("{repository} tags"));
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let mut url = urls::tags(&self.registry_url(repository), repository, Some(TAG_PAGE_SIZE));
        let mut seen_pages = HashSet::from([url.to_string()]);
        let mut seen_last = HashSet::new();
        let mut names = BTreeSet::new();
        let mut manifests = BTreeMap::new();
        for _ in 0..MAX_TAG_PAGES {
            let mut outgoing = Outgoing::new(Method::GET, url.clone());
            outgoing.body_limit = TAGS_PAGE_LIMIT;
            let exchange =
                self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
            if !exchange.status.is_success() {
                return Err(self.refused(repository, operation, &exchange));
            }
            if exchange.truncated {
                return Err(DistributionError::UnexpectedResponse {
                    operation,
                    problem: "a tags page is larger than 32 MiB".to_owned(),
                });
            }
            let page: TagsPage = serde_json::from_slice(&exchange.body).map_err(|error| {
                DistributionError::UnexpectedResponse {
                    operation: operation.clone(),
                    problem: format!("the tags page is not a tag list ({error})"),
                }
            })?;
            let before = names.len();
            names.extend(page.tags.unwrap_or_default());
            manifests.extend(page.manifest.unwrap_or_default());
            if names.len() > MAX_TAGS {
                return Err(DistributionError::ListingTooLong {
                    operation,
                    limit: MAX_TAGS,
                    what: "tags",
                });
            }
            if names.len() == before && seen_pages.len() > 1 {
                return Err(DistributionError::PaginationLoop { operation, page: url.to_string() });
            }
            let links = exchange
                .headers
                .get_all(header::LINK)
                .iter()
                .filter_map(|value| value.to_str().ok());
            let Some(next) = urls::next_link(links, &url) else {
                let tags = Self::sorted_tags(&operation, names)?;
                return Ok(TagListing { tags, manifests });
            };
            if !urls::same_origin(&next, &url) {
                return Err(DistributionError::ForeignPage { operation, page: next.to_string() });
            }
            let last = next
                .query_pairs()
                .find(|(name, _)| name == "last")
                .map(|(_, value)| value.into_owned());
            let repeated_last = last.as_ref().is_some_and(|last| !seen_last.insert(last.clone()));
            if !seen_pages.insert(next.to_string()) || repeated_last {
                return Err(DistributionError::PaginationLoop {
                    operation,
                    page: next.to_string(),
                });
            }
            url = next;
        }
        Err(DistributionError::ListingTooLong { operation, limit: MAX_TAG_PAGES, what: "pages" })
    }

    fn sorted_tags(
        operation: &Operation,
        names: BTreeSet<String>,
    ) -> Result<Vec<Tag>, DistributionError> {
        names
            .into_iter()
            .map(|name| {
                name.parse::<Tag>().map_err(|error| DistributionError::UnexpectedResponse {
                    operation: operation.clone(),
                    problem: error.to_string(),
                })
            })
            .collect()
    }

    /// Resolves a manifest with `HEAD` (which registries do not count as a pull): its digest,
    /// media type and size, or `None` if the registry answers 404. Falls back to a `GET` when
    /// the registry sends no `Docker-Content-Digest` for a tag.
    pub async fn head_manifest(
        &self,
        repository: &RepoAddress,
        reference: &ManifestRef,
    ) -> Result<Option<ManifestHead>, DistributionError> {
        let operation =
            Self::operation(&Method::HEAD, urls::display_reference(repository, reference));
        let url = urls::manifest(&self.registry_url(repository), repository, reference);
        let outgoing = Outgoing::new(Method::HEAD, url)
            .header(header::ACCEPT, header_value(manifest::MANIFEST_ACCEPT));
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let exchange = self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
        if exchange.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !exchange.status.is_success() {
            return Err(self.refused(repository, operation, &exchange));
        }
        let header_digest = exchange
            .header(header::HeaderName::from_static("docker-content-digest"))
            .and_then(|value| value.parse::<Digest>().ok());
        let digest = match (header_digest, reference) {
            (Some(digest), _) => digest,
            (None, ManifestRef::Digest(digest)) => digest.clone(),
            (None, ManifestRef::Tag(_)) => {
                let manifest = self.get_manifest(repository, reference).await?;
                let size = manifest.bytes.len() as u64;
                return Ok(Some(ManifestHead {
                    digest: manifest.digest,
                    media_type: manifest.media_type,
                    size,
                }));
            }
        };
        let media_type =
            media_type_of(&exchange).ok_or_else(|| DistributionError::UnexpectedResponse {
                operation: operation.clone(),
                problem: "no Content-Type".to_owned(),
            })?;
        let size = exchange
            .header(header::CONTENT_LENGTH)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0);
        Ok(Some(ManifestHead { digest, media_type, size }))
    }

    /// Fetches a manifest and checks that its exact bytes hash to the digest asked for (or, for
    /// a tag, to the `Docker-Content-Digest` the registry sent). Schema 1 is refused.
    pub async fn get_manifest(
        &self,
        repository: &RepoAddress,
        reference: &ManifestRef,
    ) -> Result<Manifest, DistributionError> {
        let operation =
            Self::operation(&Method::GET, urls::display_reference(repository, reference));
        let url = urls::manifest(&self.registry_url(repository), repository, reference);
        let mut outgoing = Outgoing::new(Method::GET, url)
            .header(header::ACCEPT, header_value(manifest::MANIFEST_ACCEPT));
        outgoing.body_limit = MANIFEST_LIMIT;
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let exchange = self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
        if !exchange.status.is_success() {
            return Err(self.refused(repository, operation, &exchange));
        }
        let unexpected = |problem: String| DistributionError::UnexpectedResponse {
            operation: operation.clone(),
            problem,
        };
        if exchange.truncated {
            return Err(unexpected("the manifest is larger than 4 MiB".to_owned()));
        }
        let expected = match reference {
            ManifestRef::Digest(digest) => Some(digest.clone()),
            ManifestRef::Tag(_) => exchange
                .header(header::HeaderName::from_static("docker-content-digest"))
                .and_then(|value| value.parse::<Digest>().ok()),
        };
        let digest = match expected {
            Some(expected) => {
                let actual = digest_like(&expected, &exchange.body);
                if actual != expected.as_str() {
                    return Err(DistributionError::DigestMismatch {
                        operation,
                        expected: expected.to_string(),
                        actual,
                    });
                }
                expected
            }
            None => Digest::sha256_of(&exchange.body),
        };
        let content = ManifestContent::parse(&exchange.body)
            .map_err(|error| unexpected(format!("the manifest is not valid JSON ({error})")))?;
        // the header decides; a generic one (`application/json`) defers to the body's field
        let header_type = media_type_of(&exchange);
        let media_type = header_type
            .clone()
            .filter(|media_type| manifest::is_supported_type(media_type))
            .or_else(|| {
                content
                    .media_type
                    .clone()
                    .filter(|media_type| manifest::is_supported_type(media_type))
            })
            .or(header_type)
            .or_else(|| content.media_type.clone())
            .ok_or_else(|| unexpected("the manifest has no media type".to_owned()))?;
        if !manifest::is_supported_type(&media_type) {
            return Err(unexpected(format!(
                "the manifest has the unsupported media type `{media_type}`"
            )));
        }
        Ok(Manifest { digest, media_type, bytes: exchange.body, content })
    }

    /// Stores a manifest under `reference` with `Content-Type: media_type` and returns its
    /// digest (the SHA-256 of `bytes`, checked against the registry's `Docker-Content-Digest`).
    pub async fn put_manifest(
        &self,
        repository: &RepoAddress,
        reference: &ManifestRef,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, DistributionError> {
        let operation =
            Self::operation(&Method::PUT, urls::display_reference(repository, reference));
        let content_type = HeaderValue::from_str(media_type).map_err(|_| {
            DistributionError::UnexpectedResponse {
                operation: operation.clone(),
                problem: format!("`{media_type}` is not a valid media type"),
            }
        })?;
        let url = urls::manifest(&self.registry_url(repository), repository, reference);
        let mut outgoing =
            Outgoing::new(Method::PUT, url).header(header::CONTENT_TYPE, content_type);
        outgoing.body = Some(Payload::Bytes(bytes.to_vec()));
        let scopes = [TokenScope::repository(&repository.path, Access::Push)];
        let exchange = self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
        if !exchange.status.is_success() {
            return Err(self.refused(repository, operation, &exchange));
        }
        let digest = Digest::sha256_of(bytes);
        if let Some(returned) =
            exchange.header(header::HeaderName::from_static("docker-content-digest"))
            && returned != digest.as_str()
        {
            return Err(DistributionError::DigestMismatch {
                operation,
                expected: digest.to_string(),
                actual: returned.to_owned(),
            });
        }
        Ok(digest)
    }

    /// `true` if and only if the repository has the blob (`HEAD` answered 2xx; 404 is `false`).
    pub async fn blob_exists(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<bool, DistributionError> {
        let operation = Self::operation(&Method::HEAD, format!("{repository} blob {digest}"));
        let url = urls::blob(&self.registry_url(repository), repository, digest);
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let exchange = self
            .execute(&repository.registry, &operation, &Outgoing::new(Method::HEAD, url), &scopes)
            .await?;
        match exchange.status {
            status if status.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.refused(repository, operation, &exchange)),
        }
    }

    /// Reads a whole blob into memory (meant for image configs; at most 64 MiB) and checks
    /// its digest.
    pub async fn get_blob(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Vec<u8>, DistributionError> {
        let operation = Self::operation(&Method::GET, format!("{repository} blob {digest}"));
        let url = urls::blob(&self.registry_url(repository), repository, digest);
        let mut outgoing = Outgoing::new(Method::GET, url);
        outgoing.body_limit = BLOB_LIMIT;
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let exchange = self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
        if !exchange.status.is_success() {
            return Err(self.refused(repository, operation, &exchange));
        }
        if exchange.truncated {
            return Err(DistributionError::UnexpectedResponse {
                operation,
                problem: "the blob is larger than 64 MiB".to_owned(),
            });
        }
        let actual = digest_like(digest, &exchange.body);
        if actual != digest.as_str() {
            return Err(DistributionError::DigestMismatch {
                operation,
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(exchange.body)
    }

    /// Reads an image config blob (for its `created` time).
    pub async fn get_image_config(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<ImageConfig, DistributionError> {
        let bytes = self.get_blob(repository, digest).await?;
        ImageConfig::parse(&bytes).map_err(|error| DistributionError::UnexpectedResponse {
            operation: Self::operation(&Method::GET, format!("{repository} blob {digest}")),
            problem: format!("the image config is not valid JSON ({error})"),
        })
    }

    /// Uploads `blob` in one piece (`POST` an upload session, then `PUT` the content with its
    /// digest) and returns the digest. A [`BlobSource::File`] is streamed from disk with its
    /// `Content-Length`, hashed on the way, and cut off before its last chunk when it is not
    /// the blob it claims to be: [`DistributionError::DigestMismatch`] (or
    /// [`DistributionError::BlobRead`] when the file cannot be read or is short), and the
    /// registry never commits it.
    ///
    /// Retries: a failed `POST` is not repeated (it is not idempotent). An upload session is
    /// single-use, so a `PUT` is never sent again to the same session after a broken
    /// connection or a 502/503/504; instead a new session is started and the content sent
    /// again from the start (a file from a fresh handle), at most
    /// [`RetryPolicy::max_retries`](super::RetryPolicy::max_retries) times. A 429 is answered
    /// before the upload is taken, so the client repeats that `PUT` like any request. Content
    /// that is not the blob is never retried.
    pub async fn upload_blob(
        &self,
        repository: &RepoAddress,
        blob: &BlobSource,
    ) -> Result<Digest, DistributionError> {
        let digest = blob.digest();
        let session = self.start_upload(repository).await?;
        self.upload_through(repository, blob, &digest, session).await?;
        Ok(digest)
    }

    /// `POST …/blobs/uploads/`: a new upload session, with the URL it was asked at.
    async fn start_upload(
        &self,
        repository: &RepoAddress,
    ) -> Result<(url::Url, Exchange), DistributionError> {
        let operation = Self::operation(&Method::POST, format!("{repository} blob upload"));
        let url = urls::uploads(&self.registry_url(repository), repository);
        let scopes = [TokenScope::repository(&repository.path, Access::Push)];
        let exchange = self
            .execute(
                &repository.registry,
                &operation,
                &Outgoing::new(Method::POST, url.clone()),
                &scopes,
            )
            .await?;
        if exchange.status != StatusCode::ACCEPTED {
            return Err(self.refused(repository, operation, &exchange));
        }
        Ok((url, exchange))
    }

    /// Sends `blob` through `session`, and through new sessions while the `PUT` fails
    /// transiently and the retry policy allows (see [`Client::upload_blob`]).
    async fn upload_through(
        &self,
        repository: &RepoAddress,
        blob: &BlobSource,
        digest: &Digest,
        mut session: (url::Url, Exchange),
    ) -> Result<(), DistributionError> {
        let policy = self.inner.options.retry;
        let mut retry = 0;
        loop {
            let (url, started) = &session;
            match self.finish_upload(repository, url, started, digest, blob).await {
                Err(error) if retry < policy.max_retries && restartable(&error) => {
                    let (delay, _) = policy.delay(retry, None);
                    retry += 1;
                    log::warn!(
                        "{error}; uploading blob {digest} to {repository} again in a new session (retry {retry} of {}) in {} ms",
                        policy.max_retries,
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    session = self.start_upload(repository).await?;
                }
                result => return result,
            }
        }
    }

    /// `PUT`s `blob` to the upload session an answer to `POST …/uploads/` opened, once.
    async fn finish_upload(
        &self,
        repository: &RepoAddress,
        request_url: &url::Url,
        started: &Exchange,
        digest: &Digest,
        blob: &BlobSource,
    ) -> Result<(), DistributionError> {
        let operation = Self::operation(&Method::PUT, format!("{repository} blob {digest}"));
        let location = started
            .header(header::LOCATION)
            .and_then(|location| urls::resolve(request_url, location))
            .ok_or_else(|| DistributionError::UnexpectedResponse {
                operation: operation.clone(),
                problem: "the upload has no usable Location".to_owned(),
            })?;
        let mut outgoing = Outgoing::new(Method::PUT, urls::with_digest(&location, digest))
            .header(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let file = match blob {
            BlobSource::Bytes(bytes) => {
                outgoing.body = Some(Payload::Bytes(bytes.clone()));
                None
            }
            BlobSource::File { path, size, .. } => {
                let file = FileBody::new(path, *size, digest);
                outgoing.body = Some(Payload::File(file.clone()));
                Some((path, file))
            }
        };
        // a session URL is single-use: repeating the PUT could only fail differently
        outgoing.idempotent = false;
        let scopes = [TokenScope::repository(&repository.path, Access::Push)];
        let result = self.execute(&repository.registry, &operation, &outgoing, &scopes).await;
        if let Some((path, file)) = file
            && let Some(problem) = file.take_problem()
        {
            return Err(match problem {
                FileProblem::Read(source) => {
                    DistributionError::BlobRead { path: path.clone(), source }
                }
                FileProblem::Mismatch { actual } => DistributionError::DigestMismatch {
                    operation,
                    expected: digest.to_string(),
                    actual,
                },
            });
        }
        let exchange = result?;
        if !exchange.status.is_success() {
            return Err(self.refused(repository, operation, &exchange));
        }
        Ok(())
    }

    /// Makes `blob` (already in repository `from` of the same registry) available in `to` by
    /// a cross-repository mount. When the registry does not mount (202, e.g. it cannot read
    /// `from`), uploads it through the session that answer opened, as [`Client::upload_blob`]
    /// does; a file is opened only then.
    pub async fn mount_or_upload_blob(
        &self,
        to: &RepoAddress,
        from: &RepoAddress,
        blob: &BlobSource,
    ) -> Result<BlobTransfer, DistributionError> {
        let digest = blob.digest();
        let operation =
            Self::operation(&Method::POST, format!("{to} blob mount {digest} from {}", from.path));
        let url = urls::mount(&self.registry_url(to), to, &digest, from);
        let scopes = [
            TokenScope::repository(&to.path, Access::Push),
            TokenScope::repository(&from.path, Access::Pull),
        ];
        let exchange = self
            .execute(&to.registry, &operation, &Outgoing::new(Method::POST, url.clone()), &scopes)
            .await?;
        match exchange.status {
            StatusCode::CREATED => Ok(BlobTransfer::Mounted),
            StatusCode::ACCEPTED => {
                self.upload_through(to, blob, &digest, (url, exchange)).await?;
                Ok(BlobTransfer::Uploaded)
            }
            _ => Err(self.refused(to, operation, &exchange)),
        }
    }

    fn delete_outcome(
        &self,
        repository: &RepoAddress,
        operation: Operation,
        exchange: &Exchange,
    ) -> Result<(), DistributionError> {
        if exchange.status.is_success() {
            return Ok(());
        }
        let envelope = exchange.envelope();
        if exchange.status == StatusCode::METHOD_NOT_ALLOWED || envelope.has(&Code::Unsupported) {
            return Err(DistributionError::DeletesDisabled {
                registry: repository.registry.clone(),
                operation,
                status: exchange.status,
                envelope,
            });
        }
        Err(self.refused(repository, operation, exchange))
    }

    /// Sends `method` to `path_and_query` (from `/`) on the registry of `repository`: a vendor
    /// API the registry's own tokens authorise (ACR's `/acr/v1/`), with a token for `scopes`,
    /// the retries and the limits of every registry request. Any status but a refused
    /// credential is returned for the caller to judge; a next page elsewhere than the
    /// registry's origin is [`DistributionError::ForeignPage`].
    pub async fn registry_api(
        &self,
        repository: &RepoAddress,
        method: Method,
        path_and_query: &str,
        scopes: &[TokenScope],
    ) -> Result<RegistryApiReply, DistributionError> {
        let base = self.registry_url(repository);
        let operation =
            Self::operation(&method, format!("{}{path_and_query}", repository.registry));
        let url = base.join(path_and_query).map_err(|_| DistributionError::UnexpectedResponse {
            operation: operation.clone(),
            problem: format!("`{path_and_query}` is no path on the registry"),
        })?;
        let mut outgoing = Outgoing::new(method, url.clone());
        outgoing.body_limit = REGISTRY_API_BODY_LIMIT;
        let exchange = self.execute(&repository.registry, &operation, &outgoing, scopes).await?;
        let next = match urls::next_link(
            exchange.headers.get_all(header::LINK).iter().filter_map(|value| value.to_str().ok()),
            &url,
        ) {
            Some(next) if urls::same_origin(&next, &base) => {
                Some(next[url::Position::BeforePath..].to_owned())
            }
            Some(next) => {
                return Err(DistributionError::ForeignPage { operation, page: next.to_string() });
            }
            None => None,
        };
        Ok(RegistryApiReply { status: exchange.status, body: exchange.body, next })
    }

    /// Deletes the manifest `digest`. **Every tag on that digest goes with it.** Fails with
    /// [`DistributionError::DeletesDisabled`] on 405/`UNSUPPORTED`, and with a `Registry`
    /// error whose [`DistributionError::is_not_found`] is true when the manifest is gone.
    pub async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<(), DistributionError> {
        let (operation, exchange) =
            self.send_delete(repository, &ManifestRef::Digest(digest.clone())).await?;
        self.delete_outcome(repository, operation, &exchange)
    }

    /// `DELETE …/manifests/<reference>` with the `delete` scope: the request both deletes share.
    async fn send_delete(
        &self,
        repository: &RepoAddress,
        reference: &ManifestRef,
    ) -> Result<(Operation, Exchange), DistributionError> {
        let operation =
            Self::operation(&Method::DELETE, urls::display_reference(repository, reference));
        let url = urls::manifest(&self.registry_url(repository), repository, reference);
        let scopes = [TokenScope::repository(&repository.path, Access::Delete)];
        let exchange = self
            .execute(&repository.registry, &operation, &Outgoing::new(Method::DELETE, url), &scopes)
            .await?;
        Ok((operation, exchange))
    }

    /// Deletes only the tag (OCI distribution spec 1.1 `DELETE …/manifests/<tag>`). Fails with
    /// [`DistributionError::TagDeleteUnsupported`] when the registry refuses tag deletes (400
    /// `DIGEST_INVALID` as distribution 2.8 answers, 405, or `UNSUPPORTED`): the caller may
    /// then fall back to [`Client::push_empty_manifest`] and a digest delete, after checking
    /// [`Client::probe_deletes`] (405 can also mean deletes are off altogether).
    pub async fn delete_tag(
        &self,
        repository: &RepoAddress,
        tag: &Tag,
    ) -> Result<(), DistributionError> {
        let (operation, exchange) =
            self.send_delete(repository, &ManifestRef::Tag(tag.clone())).await?;
        if exchange.status.is_success() {
            return Ok(());
        }
        let envelope = exchange.envelope();
        if exchange.status == StatusCode::METHOD_NOT_ALLOWED
            || envelope.has_any(&[Code::DigestInvalid, Code::Unsupported])
        {
            return Err(DistributionError::TagDeleteUnsupported {
                registry: repository.registry.clone(),
                operation,
                status: exchange.status,
                envelope,
            });
        }
        Err(self.refused(repository, operation, &exchange))
    }

    /// Finds out, harmlessly, whether the registry deletes: `DELETE` of a random digest that
    /// cannot exist answers 404 when deletes are enabled and 405/`UNSUPPORTED` when they are
    /// disabled. A 401/403 (no `delete` permission) is an error.
    pub async fn probe_deletes(
        &self,
        repository: &RepoAddress,
    ) -> Result<DeleteSupport, DistributionError> {
        let mut seed = jiff::Timestamp::now().as_nanosecond().to_le_bytes().to_vec();
        seed.extend(std::iter::repeat_with(|| fastrand::u8(..)).take(32));
        match self.delete_manifest(repository, &Digest::sha256_of(&seed)).await {
            Ok(()) => Ok(DeleteSupport::Enabled),
            Err(error) if error.is_not_found() => Ok(DeleteSupport::Enabled),
            Err(DistributionError::DeletesDisabled { .. }) => Ok(DeleteSupport::Disabled),
            Err(error) => Err(error),
        }
    }

    /// The manifests whose `subject` is `digest`: from the referrers API, or, when it answers
    /// 404, from the index tagged `sha256-<hex>` (the OCI tag schema; absent means none).
    pub async fn referrers(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Referrers, DistributionError> {
        if let Some(referrers) = self.referrers_api(repository, digest).await? {
            return Ok(referrers);
        }
        match self.get_manifest(repository, &ManifestRef::Tag(digest.referrers_tag())).await {
            Ok(index) => Ok(Referrers {
                descriptors: index.content.manifests,
                source: ReferrersSource::TagSchema,
            }),
            Err(error) if error.is_not_found() => {
                Ok(Referrers { descriptors: Vec::new(), source: ReferrersSource::TagSchema })
            }
            Err(error) => Err(error),
        }
    }

    /// The referrers API's list for `digest`, or `None` when the registry answers 404: it has
    /// no referrers API (one request; the tag schema is not looked at).
    pub async fn referrers_api(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Option<Referrers>, DistributionError> {
        let operation =
            Self::operation(&Method::GET, format!("{repository} referrers of {digest}"));
        let url = urls::referrers(&self.registry_url(repository), repository, digest);
        let mut outgoing = Outgoing::new(Method::GET, url)
            .header(header::ACCEPT, header_value(manifest::OCI_INDEX));
        outgoing.body_limit = MANIFEST_LIMIT;
        let scopes = [TokenScope::repository(&repository.path, Access::Pull)];
        let exchange = self.execute(&repository.registry, &operation, &outgoing, &scopes).await?;
        if exchange.status.is_success() {
            let index = ManifestContent::parse(&exchange.body).map_err(|error| {
                DistributionError::UnexpectedResponse {
                    operation,
                    problem: format!("the referrers list is not an index ({error})"),
                }
            })?;
            let referrers =
                Referrers { descriptors: index.manifests, source: ReferrersSource::Api };
            return Ok(Some(referrers));
        }
        if exchange.status != StatusCode::NOT_FOUND {
            return Err(self.refused(repository, operation, &exchange));
        }
        Ok(None)
    }

    /// Points `tag` at a new, unique throw-away manifest and returns its digest. Deleting that
    /// digest then removes `tag` and nothing else: the way to delete one tag where the registry
    /// has no tag delete. The manifest is an OCI 1.1 artifact (`artifactType`
    /// [`manifest::TOMBSTONE_ARTIFACT`], the empty descriptor as config and as its one layer),
    /// which the image-spec schema accepts, made unique by its annotations (the tag and a
    /// nonce).
    pub async fn push_empty_manifest(
        &self,
        repository: &RepoAddress,
        tag: &Tag,
    ) -> Result<Digest, DistributionError> {
        let empty = BlobSource::Bytes(manifest::EMPTY_JSON.to_vec());
        let empty_digest = self.upload_blob(repository, &empty).await?;
        let nonce =
            format!("{}-{:016x}", jiff::Timestamp::now().as_nanosecond(), fastrand::u64(..));
        let manifest = manifest::tombstone(&empty_digest, tag, &nonce);
        self.put_manifest(
            repository,
            &ManifestRef::Tag(tag.clone()),
            manifest::OCI_MANIFEST,
            manifest.as_bytes(),
        )
        .await
    }
}
