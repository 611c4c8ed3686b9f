//! Seeds a local registry with many small, distinct images, for benchmarks:
//!
//! ```sh
//! cargo run --release --example seed -- 127.0.0.1:5000 bench/app 400 60
//! ```
//!
//! Pushes COUNT images to REPOSITORY on HOST (plain HTTP, anonymous) tagged `t0000`, `t0001`,
//! …, each an OCI manifest without layers whose config blob is unique and says `created`
//! spread evenly over the last DAYS days (the highest tag is the newest). 16 pushes run at once.
#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a tool that reports what it did")]

use std::time::Instant;

use dockhand::reference::RepoAddress;
use dockhand::registry::distribution::manifest::{OCI_IMAGE_CONFIG, OCI_MANIFEST};
use dockhand::registry::distribution::{
    BlobSource, Client, ClientOptions, DistributionError, ManifestRef,
};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};

async fn push(
    client: &Client,
    repository: &RepoAddress,
    number: usize,
    created: Timestamp,
) -> Result<(), DistributionError> {
    let config = serde_json::json!({
        // whole seconds in UTC, so that shell loops may sort the times as text
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"seed": format!("{repository}-{number}")}},
        "rootfs": {"type": "layers", "diff_ids": []},
    })
    .to_string();
    let config_digest =
        client.upload_blob(repository, &BlobSource::Bytes(config.clone().into_bytes())).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_IMAGE_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [],
    })
    .to_string();
    let tag = format!("t{number:04}").parse().expect("a valid tag");
    client
        .put_manifest(repository, &ManifestRef::Tag(tag), OCI_MANIFEST, manifest.as_bytes())
        .await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, path, count, days] = args.as_slice() else {
        eprintln!("usage: seed HOST REPOSITORY COUNT DAYS");
        std::process::exit(1);
    };
    let repository: RepoAddress = format!("{host}/{path}").parse().expect("a valid repository");
    let count: usize = count.parse().expect("COUNT is a number");
    let days: i64 = days.parse().expect("DAYS is a number");
    let client = Client::new(ClientOptions {
        insecure: vec![host.parse().expect("a valid host")],
        ..ClientOptions::default()
    })
    .expect("a client");
    let now = Timestamp::now();
    let span = SignedDuration::from_hours(days * 24);
    let started = Instant::now();
    stream::iter(0..count)
        .map(|number| {
            let age = span * i32::try_from(count - number).expect("a small count")
                / i32::try_from(count).expect("a small count");
            let client = &client;
            let repository = &repository;
            async move { push(client, repository, number, now - age).await }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|error| panic!("seeding failed: {error}"));
    println!("seeded {count} images into {repository} in {:.2} s", started.elapsed().as_secs_f64());
}
