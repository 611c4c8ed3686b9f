//! Blobs on their way to a registry: bytes in memory, or a file streamed from disk.
//!
//! Owns [`BlobSource`] and the request body of a file upload: the file is opened afresh for
//! every attempt, read in chunks of [`CHUNK_SIZE`] bytes, hashed on the way, and the body
//! fails, before its last chunk leaves, when the content is not the blob it should be (another
//! digest, or shorter than its size). The registry then never receives a complete upload and
//! the client reports what was wrong. Never holds more of a file than a few chunks; knows
//! nothing about upload sessions or retries (that is `operations.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::reference::Digest;

/// Bytes read from a file per chunk of a streamed body.
pub const CHUNK_SIZE: usize = 256 << 10;

/// The slowest upload rate a file upload's timeout allows for: the request timeout grows by
/// one second per this many bytes.
pub const MIN_UPLOAD_RATE: u64 = 1 << 20;

/// Where the content of a blob to upload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// Bytes in memory: small blobs dockhand generates (an image config, the config of a
    /// throw-away manifest). Their digest is their SHA-256.
    Bytes(Vec<u8>),
    /// A file, read in chunks while it is sent (image layers). It must hold exactly `size`
    /// bytes hashing to `digest` (`sha256:` or `sha512:`); the upload checks that on the way.
    File { path: PathBuf, size: u64, digest: Digest },
}

impl BlobSource {
    /// The digest the blob is uploaded under.
    pub fn digest(&self) -> Digest {
        match self {
            Self::Bytes(bytes) => Digest::sha256_of(bytes),
            Self::File { digest, .. } => digest.clone(),
        }
    }

    /// The blob's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::File { size, .. } => *size,
        }
    }
}

/// The longest a request may take to send a body of `size` bytes streamed from a file:
/// `base` plus one second per [`MIN_UPLOAD_RATE`] bytes.
pub fn upload_timeout(base: Duration, size: u64) -> Duration {
    base.saturating_add(Duration::from_secs(size / MIN_UPLOAD_RATE))
}

/// Why a file body stopped before its end.
#[derive(Debug)]
pub(crate) enum FileProblem {
    /// The file could not be opened or read, or ended early.
    Read(std::io::Error),
    /// The file's content hashes to `actual`, not to the digest it was uploaded under.
    Mismatch { actual: String },
}

/// The body of a file upload, able to start over: [`FileBody::body`] opens the file again for
/// every request, and the last failure is kept for the caller ([`FileBody::take_problem`]),
/// since the HTTP client only reports that the body broke.
#[derive(Debug, Clone)]
pub(crate) struct FileBody {
    path: PathBuf,
    size: u64,
    digest: Digest,
    problem: Arc<Mutex<Option<FileProblem>>>,
}

/// The digest being computed, in the algorithm of the expected digest.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn like(digest: &Digest) -> Self {
        use sha2::Digest as _;
        if digest.as_str().starts_with("sha512:") {
            Self::Sha512(sha2::Sha512::new())
        } else {
            Self::Sha256(sha2::Sha256::new())
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
    }

    fn finish(self) -> String {
        use sha2::Digest as _;
        match self {
            Self::Sha256(hasher) => format!("sha256:{:x}", hasher.finalize()),
            Self::Sha512(hasher) => format!("sha512:{:x}", hasher.finalize()),
        }
    }
}

/// Where one pass over the file is.
struct Reading {
    body: FileBody,
    file: Option<tokio::fs::File>,
    hasher: Hasher,
    read: u64,
    done: bool,
}

impl FileBody {
    pub fn new(path: &Path, size: u64, digest: &Digest) -> Self {
        Self {
            path: path.to_owned(),
            size,
            digest: digest.clone(),
            problem: Arc::new(Mutex::new(None)),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// A fresh request body: the file from its start, checked as it is read.
    pub fn body(&self) -> reqwest::Body {
        reqwest::Body::wrap_stream(self.chunks())
    }

    /// What stopped the last body early, if anything did; cleared by reading it.
    pub fn take_problem(&self) -> Option<FileProblem> {
        self.problem.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn fail(&self, problem: FileProblem) -> std::io::Error {
        let error = match &problem {
            FileProblem::Read(error) => std::io::Error::new(error.kind(), error.to_string()),
            FileProblem::Mismatch { actual } => std::io::Error::other(format!(
                "`{}` hashes to `{actual}`, not `{}`",
                self.path.display(),
                self.digest
            )),
        };
        *self.problem.lock().unwrap_or_else(PoisonError::into_inner) = Some(problem);
        error
    }

    /// The file's first `size` bytes in chunks; an error instead of the last chunk when they
    /// do not hash to the digest, and an error when the file ends early.
    fn chunks(
        &self,
    ) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
        let start = Reading {
            body: self.clone(),
            file: None,
            hasher: Hasher::like(&self.digest),
            read: 0,
            done: false,
        };
        futures_util::stream::unfold(start, |mut reading| async move {
            if reading.done {
                return None;
            }
            let item = reading.next_chunk().await;
            if item.as_ref().is_none_or(Result::is_err) {
                reading.done = true;
            }
            item.map(|item| (item, reading))
        })
    }
}

impl Reading {
    /// The next chunk, `None` after the last one, or the error that ends the body.
    async fn next_chunk(&mut self) -> Option<Result<Vec<u8>, std::io::Error>> {
        let body = &self.body;
        let file = match &mut self.file {
            Some(file) => file,
            None => match tokio::fs::File::open(&body.path).await {
                Ok(file) => self.file.insert(file),
                Err(error) => return Some(Err(body.fail(FileProblem::Read(error)))),
            },
        };
        let left = body.size - self.read;
        let mut chunk = vec![0; usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK_SIZE)];
        let mut filled = 0;
        while filled < chunk.len() {
            match file.read(&mut chunk[filled..]).await {
                Ok(0) => {
                    let read = self.read + filled as u64;
                    return Some(Err(body.fail(FileProblem::Read(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the file ends after {read} of {} bytes", body.size),
                    )))));
                }
                Ok(n) => filled += n,
                Err(error) => return Some(Err(body.fail(FileProblem::Read(error)))),
            }
        }
        self.hasher.update(&chunk);
        self.read += chunk.len() as u64;
        if self.read < body.size {
            return Some(Ok(chunk));
        }
        // the last chunk (or none, for an empty blob): it leaves only if the digest matches
        let hasher = std::mem::replace(&mut self.hasher, Hasher::like(&body.digest));
        let actual = hasher.finish();
        if actual != body.digest.as_str() {
            return Some(Err(body.fail(FileProblem::Mismatch { actual })));
        }
        self.done = true;
        (!chunk.is_empty()).then_some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt as _;

    use super::*;

    /// Everything the body yields: the chunk sizes, then the error that ended it, if any.
    async fn drain(body: &FileBody) -> (Vec<usize>, Option<std::io::Error>) {
        let mut sizes = Vec::new();
        let mut chunks = std::pin::pin!(body.chunks());
        while let Some(item) = chunks.next().await {
            match item {
                Ok(chunk) => sizes.push(chunk.len()),
                Err(error) => return (sizes, Some(error)),
            }
        }
        (sizes, None)
    }

    fn content(size: usize) -> Vec<u8> {
        let mut bytes = vec![0; size];
        fastrand::Rng::with_seed(7).fill(&mut bytes);
        bytes
    }

    #[tokio::test]
    async fn a_matching_file_is_sent_in_chunks_each_time_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        for (size, chunks) in [
            (0, vec![]),
            (5, vec![5]),
            (CHUNK_SIZE, vec![CHUNK_SIZE]),
            (2 * CHUNK_SIZE + 3, vec![CHUNK_SIZE, CHUNK_SIZE, 3]),
        ] {
            let bytes = content(size);
            let path = dir.path().join(format!("blob-{size}"));
            std::fs::write(&path, &bytes).unwrap();
            let body = FileBody::new(&path, size as u64, &Digest::sha256_of(&bytes));
            for pass in 0..2 {
                let (sizes, error) = drain(&body).await;
                assert_eq!(sizes, chunks, "{size} bytes, pass {pass}");
                assert!(error.is_none(), "{size} bytes, pass {pass}: {error:?}");
                assert!(body.take_problem().is_none());
            }
        }
    }

    #[tokio::test]
    async fn sha512_digests_are_checked_too() {
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let bytes = content(1000);
        let path = dir.path().join("blob");
        std::fs::write(&path, &bytes).unwrap();
        let digest: Digest = format!("sha512:{:x}", sha2::Sha512::digest(&bytes)).parse().unwrap();
        let body = FileBody::new(&path, 1000, &digest);
        assert_eq!(drain(&body).await.0, [1000]);
        assert!(body.take_problem().is_none());
    }

    #[tokio::test]
    async fn wrong_content_never_yields_its_last_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content(CHUNK_SIZE + 10);
        let path = dir.path().join("blob");
        std::fs::write(&path, &bytes).unwrap();
        let expected = Digest::sha256_of(b"something else");
        let body = FileBody::new(&path, bytes.len() as u64, &expected);
        let (sizes, error) = drain(&body).await;
        assert_eq!(sizes, [CHUNK_SIZE], "the first chunk goes, the last is held back");
        assert!(error.is_some());
        match body.take_problem() {
            Some(FileProblem::Mismatch { actual }) => {
                assert_eq!(actual, Digest::sha256_of(&bytes).as_str());
            }
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(body.take_problem().is_none(), "taking the problem clears it");
    }

    #[tokio::test]
    async fn short_longer_and_missing_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = content(100);
        let path = dir.path().join("blob");
        std::fs::write(&path, &bytes).unwrap();
        let digest = Digest::sha256_of(&bytes);

        let short = FileBody::new(&path, 101, &digest);
        let (sizes, error) = drain(&short).await;
        assert!(sizes.is_empty());
        assert_eq!(error.map(|error| error.kind()), Some(std::io::ErrorKind::UnexpectedEof));
        assert!(matches!(short.take_problem(), Some(FileProblem::Read(_))));

        // only the first `size` bytes are read, and they are not the blob
        let long = FileBody::new(&path, 99, &digest);
        assert!(drain(&long).await.1.is_some());
        assert!(matches!(long.take_problem(), Some(FileProblem::Mismatch { .. })));

        let missing = FileBody::new(&dir.path().join("missing"), 100, &digest);
        assert_eq!(
            drain(&missing).await.1.map(|error| error.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
        assert!(matches!(missing.take_problem(), Some(FileProblem::Read(_))));
    }

    #[test]
    fn uploads_get_a_second_per_mebibyte() {
        let base = Duration::from_secs(120);
        for (size, want) in [(0, 120), (MIN_UPLOAD_RATE - 1, 120), (1 << 30, 120 + 1024)] {
            assert_eq!(upload_timeout(base, size), Duration::from_secs(want), "{size}");
        }
    }

    #[test]
    fn sources_know_their_digest_and_size() {
        let bytes = BlobSource::Bytes(b"{}".to_vec());
        assert_eq!(bytes.digest(), Digest::sha256_of(b"{}"));
        assert_eq!(bytes.size(), 2);
        let file = BlobSource::File {
            path: "/layout/blobs/sha256/x".into(),
            size: 7,
            digest: Digest::sha256_of(b"x"),
        };
        assert_eq!((file.digest(), file.size()), (Digest::sha256_of(b"x"), 7));
    }
}
