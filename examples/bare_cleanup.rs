//! The registry-bound floor of a cleanup, for benchmarks: a bare HTTP client that does only the
//! requests "keep the newest N images" needs, with no safety checks at all.
//!
//! ```sh
//! cargo run --release --example bare_cleanup -- 127.0.0.1:5000 20 bench/a bench/b bench/c
//! ```
//!
//! Per repository (all at once, 16 requests in flight in total): list the tags, `GET` each tag's
//! manifest (its digest and config), `GET` each config for `created`, then `DELETE` by digest
//! every image but the newest N. Plain HTTP, anonymous, tags assumed to be on distinct digests
//! (true for what `examples/seed.rs` pushes). Not something to run on a real registry: it does
//! not re-check anything and would delete sibling tags.
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a tool that reports what it did")]

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use tokio::sync::Semaphore;

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
const IN_FLIGHT: usize = 16;

struct Bare {
    http: reqwest::Client,
    base: String,
    permits: Arc<Semaphore>,
}

impl Bare {
    async fn get(&self, url: String, accept: Option<&str>) -> (String, Vec<u8>) {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let mut request = self.http.get(&url);
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        let response = request.send().await.expect("GET");
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (digest, response.bytes().await.expect("body").to_vec())
    }

    /// The digest and config `created` of `repository:tag`.
    async fn image(&self, repository: &str, tag: String) -> (String, String) {
        let (digest, body) =
            self.get(format!("{}/{repository}/manifests/{tag}", self.base), Some(ACCEPT)).await;
        let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
        let config = manifest["config"]["digest"].as_str().expect("a config").to_owned();
        let (_, body) = self.get(format!("{}/{repository}/blobs/{config}", self.base), None).await;
        let config: serde_json::Value = serde_json::from_slice(&body).expect("config JSON");
        (digest, config["created"].as_str().unwrap_or_default().to_owned())
    }

    async fn delete(&self, repository: &str, digest: &str) {
        let _permit = self.permits.acquire().await.expect("semaphore open");
        let url = format!("{}/{repository}/manifests/{digest}", self.base);
        let response = self.http.delete(&url).send().await.expect("DELETE");
        assert!(response.status().is_success(), "DELETE {url}: {}", response.status());
    }

    /// Deletes all but the newest `keep` images of `repository`; returns how many it deleted.
    async fn clean(&self, repository: &str, keep: usize) -> usize {
        let (_, body) = self.get(format!("{}/{repository}/tags/list", self.base), None).await;
        let listed: serde_json::Value = serde_json::from_slice(&body).expect("tags JSON");
        let tags: Vec<String> = listed["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag.as_str().map(str::to_owned))
            .collect();
        let mut images: Vec<(String, String)> = stream::iter(tags)
            .map(|tag| self.image(repository, tag))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        // RFC 3339 in UTC sorts as text; newest first
        images.sort_by(|a, b| b.1.cmp(&a.1));
        let doomed: Vec<String> = images.into_iter().skip(keep).map(|(digest, _)| digest).collect();
        let count = doomed.len();
        stream::iter(doomed)
            .map(|digest| async move { self.delete(repository, &digest).await })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<()>>()
            .await;
        count
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, keep, repositories @ ..] = args.as_slice() else {
        eprintln!("usage: bare_cleanup HOST KEEP REPOSITORY...");
        std::process::exit(1);
    };
    let keep: usize = keep.parse().expect("KEEP is a number");
    // reqwest is built without a TLS provider in this crate; plain HTTP still needs one set
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bare = Bare {
        http: reqwest::Client::builder().build().expect("an HTTP client"),
        base: format!("http://{host}/v2"),
        permits: Arc::new(Semaphore::new(IN_FLIGHT)),
    };
    let started = Instant::now();
    let deleted: usize =
        join_all(repositories.iter().map(|repository| bare.clean(repository, keep)))
            .await
            .into_iter()
            .sum();
    println!("deleted {deleted} images in {:.2} s", started.elapsed().as_secs_f64());
}
