//! Fixtures shared by the integration tests: the built executable, real registries, a token
//! service, a fault proxy, stand-ins for vendor APIs, and seeding a registry with images.
//!
//! Everything here starts on `127.0.0.1:0` and stops in `Drop`, so a test stops what it starts.

pub mod acr_api;
mod artifactory_api;
pub mod binary;
mod docker_hub_api;
mod github_api;
mod gitlab_api;
mod google_api;
mod harbor_api;
pub use google_api::rsa_key_pair;
pub mod moto;
mod nexus_api;
pub mod peers;
pub mod proxy;
mod quay_api;
pub mod registry;
pub mod seed;
pub mod stand_in;
pub mod token_issuer;

pub use registry::{Auth, Deletes, Registry};

/// The strings of a JSON array (a tags list), sorted; `null` or a missing key is empty.
pub fn sorted_strings(array: &serde_json::Value) -> Vec<String> {
    let mut strings: Vec<String> = array
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect();
    strings.sort();
    strings
}

/// The `tag` of every item under `key` of a cleanup's JSON, sorted (`-` for untagged items).
pub fn tags_of(document: &serde_json::Value, key: &str) -> Vec<String> {
    let mut tags: Vec<String> = document[key]
        .as_array()
        .unwrap_or_else(|| panic!("no `{key}` in {document}"))
        .iter()
        .map(|item| item["tag"].as_str().unwrap_or("-").to_owned())
        .collect();
    tags.sort();
    tags
}
