//! Plans the cleanup of a synthetic repository with 10,000 tags (or the count given as the first
//! argument), so planning cost and peak memory can be measured without a registry:
//!
//! ```sh
//! cargo build --example plan_10k && /usr/bin/time -v target/debug/examples/plan_10k 10000
//! ```
//!
//! The repository is in monorepo layout: 20 image names, two tags on each digest, every tenth
//! digest a multi-arch index with two untagged children, every fifth image signed by an untagged
//! referrer, ages spread over 200 days. The policy is the default one plus `keep_tags: [latest]`
//! and `delete_untagged`.
#![expect(clippy::print_stdout, reason = "an example that reports what it measured")]

use std::collections::BTreeMap;
use std::time::Instant;

use dockhand::cleanup::inventory::{
    Inventory, ManifestEntry, RepositoryInventory, SourceLabels, TagEntry, TimeSource,
};
use dockhand::cleanup::plan::{DeleteMethod, plan};
use dockhand::cleanup::policy::{Policy, PolicyFlags};
use dockhand::reference::Digest;
use jiff::{SignedDuration, Timestamp};

const IMAGES: usize = 20;

fn manifest(children: Vec<Digest>, subject: Option<Digest>, created: Timestamp) -> ManifestEntry {
    ManifestEntry {
        children,
        subject,
        created: Some(created),
        created_source: TimeSource::ImageConfigCreated,
        tombstone: false,
        source: SourceLabels::default(),
    }
}

fn synthetic(tags: usize, now: Timestamp) -> Inventory {
    let address = "localhost:5000/acme/app".parse().expect("a valid address");
    let mut manifests = BTreeMap::new();
    let mut entries = Vec::with_capacity(tags);
    let digests = tags.div_ceil(2);
    let mut extra = 0u64;
    let mut fresh = || {
        extra += 1;
        Digest::sha256_of(format!("extra-{extra}").as_bytes())
    };
    for number in 0..digests {
        let digest = Digest::sha256_of(format!("image-{number}").as_bytes());
        let minutes = i64::try_from(number * 57 % (200 * 24 * 60)).expect("small");
        let created = now - SignedDuration::from_mins(minutes);
        let entry = if number % 10 == 0 {
            let children = vec![fresh(), fresh()];
            for child in &children {
                manifests.insert(child.clone(), manifest(Vec::new(), None, created));
            }
            manifest(children, None, created)
        } else {
            manifest(Vec::new(), None, created)
        };
        if number % 5 == 0 {
            manifests.insert(fresh(), manifest(Vec::new(), Some(digest.clone()), created));
        }
        manifests.insert(digest.clone(), entry);
        let image = format!("svc{}", number % IMAGES);
        for suffix in ["sha", "build"] {
            if entries.len() == tags {
                break;
            }
            let image_tag = if number < IMAGES && suffix == "sha" {
                "latest".to_owned()
            } else {
                format!("{suffix}-{number}")
            };
            entries.push(TagEntry {
                tag: format!("{image}-{image_tag}").parse().expect("a valid tag"),
                image: image.clone(),
                image_tag,
                digest: digest.clone(),
                pushed: None,
                locked: None,
            });
        }
    }
    Inventory {
        repositories: vec![RepositoryInventory {
            address,
            complete: true,
            tags: entries,
            manifests,
            foreign_tags: BTreeMap::new(),
        }],
    }
}

fn main() {
    let tags = std::env::args().nth(1).and_then(|count| count.parse().ok()).unwrap_or(10_000);
    let now: Timestamp = "2026-06-01T12:00:00Z".parse().expect("a valid instant");
    let flags = PolicyFlags {
        keep_tags: vec!["latest".to_owned()],
        delete_untagged: true,
        ..PolicyFlags::default()
    };
    let policy = Policy::resolve(None, &flags).expect("a valid policy");
    let inventory = synthetic(tags, now);
    let manifests: usize =
        inventory.repositories.iter().map(|repository| repository.manifests.len()).sum();

    let started = Instant::now();
    let planned = plan(&inventory, &policy, now);
    let elapsed = started.elapsed();

    let by_digest =
        planned.deleted.iter().filter(|deletion| deletion.method == DeleteMethod::Digest).count();
    println!("tags:            {tags}");
    println!("manifests:       {manifests}");
    println!("kept items:      {}", planned.kept.len());
    println!("deleted items:   {} ({by_digest} by digest)", planned.deleted.len());
    println!("planning took:   {elapsed:?}");
}
