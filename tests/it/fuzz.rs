//! Property tests that feed every parser of outside input arbitrary and hostile values
//! (proptest; cargo-fuzz would need a nightly toolchain): references, tag rules and the CI
//! values they render, durations, docker config files, the project file, token responses,
//! `WWW-Authenticate` and `Retry-After` headers, and the registry's JSON bodies (error
//! envelopes, manifests, image configs, saved plans).
//!
//! Each property: no panic (a panic fails the case), and what comes out is bounded by what
//! went in (a parsed value is never larger than a small multiple of its input, so a hostile
//! input cannot make dockhand hold more than it sent). Inputs are at most a few KiB, so each
//! case is quick; the case counts are in `docs/reliability.md`.

use std::collections::BTreeMap;
use std::path::Path;

use dockhand::ci::{CiContext, Provider, RefType};
use dockhand::cleanup::inventory::SourceLabels;
use dockhand::cleanup::plan_file::SavedPlan;
use dockhand::cleanup::policy::parse_duration;
use dockhand::docker_config::DockerConfig;
use dockhand::project::ProjectFile;
use dockhand::reference::{Digest, ImageRef, RegistryHost, RepoAddress, Tag};
use dockhand::registry::distribution::auth::{
    MAX_TOKEN_LIFETIME, parse_challenges, parse_token_response,
};
use dockhand::registry::distribution::retry::parse_retry_after;
use dockhand::registry::distribution::{ErrorEnvelope, ImageConfig, ManifestContent, RetryPolicy};
use dockhand::tags::TagRules;
use proptest::prelude::*;

/// Text that looks like what the parser expects, and what an attacker sends instead: the
/// characters of references, YAML, JSON and headers, control characters, quotes, non-ASCII.
fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        4 => "[a-z0-9]{1,8}",
        2 => prop::sample::select(vec![
            "/", ":", "@", ".", "-", "_", "sha256:", "localhost:5000", "ghcr.io", "{", "}", "[", "]",
            ",", "\"", "'", "\\", "\n", "\r\n", "\t", "\u{0}", "\u{1b}[2J", "::set-output ",
            "${{ }}", "$(", "`", "..", "%2F", "%", "#", "&a", "*a", "!!str ", "|", ">", "? ",
            "- ", "ё", "😀", "\u{202e}", "{sha}", "{branch}", "{short_sha}", "{pr}", "{tag}",
            "{semver}", "{date:%Y}", "{", "}}", "latest", "=", ";", "Bearer ", "Basic ",
            "realm=", "scope=", "service=", "9999999999999999999999", "-1", "1e400", "null",
        ]).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(pieces, 0..max).prop_map(|parts| parts.concat())
}

/// Arbitrary JSON, a few levels deep, with hostile strings and extreme numbers.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        hostile_text(6).prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "auths",
                        "auth",
                        "credsStore",
                        "credHelpers",
                        "identitytoken",
                        "username",
                        "password",
                        "token",
                        "access_token",
                        "expires_in",
                        "errors",
                        "code",
                        "message",
                        "schemaVersion",
                        "mediaType",
                        "manifests",
                        "layers",
                        "config",
                        "subject",
                        "annotations",
                        "created",
                        "Labels",
                        "images",
                        "repository",
                        "tags",
                        "digest",
                        "platform",
                        "size",
                    ])
                    .prop_map(str::to_owned),
                    hostile_text(3),
                ],
                inner,
                0..6,
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A branch or tag name as a CI could hand it over.
fn ci_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(hostile_text(12))
}

fn config() -> ProptestConfig {
    ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn references_parse_or_fail_cleanly(text in hostile_text(24)) {
        if let Ok(address) = text.parse::<RepoAddress>() {
            prop_assert_eq!(address.to_string().parse::<RepoAddress>().unwrap(), address.clone());
            // at most `docker.io/library/` is added
            prop_assert!(address.to_string().len() <= text.len() + 18);
        }
        if let Ok(reference) = text.parse::<ImageRef>() {
            prop_assert_eq!(reference.to_string().parse::<ImageRef>().unwrap(), reference);
        }
        if let Ok(tag) = text.parse::<Tag>() {
            prop_assert!(tag.as_str().len() <= 128 && !tag.as_str().is_empty());
        }
        if let Ok(digest) = text.parse::<Digest>() {
            prop_assert_eq!(digest.as_str(), text.as_str());
        }
        let _ = text.parse::<RegistryHost>();
    }

    #[test]
    fn tag_rules_render_only_valid_tags_from_any_ci_values(
        rules in prop::collection::vec(prop_oneof![
            3 => prop::sample::select(vec![
                "{branch}", "{branch}-{short_sha}", "{sha}", "pr-{pr}", "{tag}", "{semver}",
                "latest", "{date:%Y%m%d}-{short_sha}", "v{semver}",
            ]).prop_map(str::to_owned),
            1 => hostile_text(6),
        ], 0..4),
        branch in ci_value(),
        git_tag in ci_value(),
        pr in ci_value(),
        sha in prop::option::of("[0-9a-f]{40}|[0-9a-zA-Z]{0,12}"),
    ) {
        let Ok(rules) = TagRules::parse(&rules) else { return Ok(()) };
        let mut ctx = CiContext::empty(Provider::Generic);
        ctx.ref_type = Some(if git_tag.is_some() { RefType::Tag } else { RefType::Branch });
        ctx.ref_name = git_tag.clone().or(branch);
        ctx.tag = git_tag;
        ctx.pr_number = pr;
        ctx.sha = sha;
        if let Ok(rendered) = rules.render(&ctx, jiff::Timestamp::now(), &[]) {
            for tag in &rendered.tags {
                prop_assert!(tag.as_str().parse::<Tag>().is_ok(), "{tag}");
            }
        }
    }

    #[test]
    fn durations_parse_or_fail_cleanly(text in hostile_text(8), seconds in any::<u64>()) {
        let _ = parse_duration(&text);
        for unit in ["s", "m", "h", "d", "w", "ms"] {
            let _ = parse_duration(&format!("{seconds}{unit}"));
        }
    }

    #[test]
    fn token_responses_never_outlive_the_cap(value in json_value(), expires in any::<u64>()) {
        let _ = parse_token_response(value.to_string().as_bytes());
        let body = serde_json::json!({"token": "t", "expires_in": expires});
        let token = parse_token_response(body.to_string().as_bytes()).unwrap();
        prop_assert!(token.lifetime <= MAX_TOKEN_LIFETIME);
    }

    #[test]
    fn headers_parse_or_fail_cleanly(value in hostile_text(16)) {
        let challenges = parse_challenges([value.as_str()]);
        prop_assert!(challenges.len() <= value.len() + 1);
        // whatever a registry asks for, the client waits at most its policy's cap
        let policy = RetryPolicy::default();
        let asked = parse_retry_after(&value, jiff::Timestamp::now());
        prop_assert!(policy.delay(0, asked).0 <= policy.max_retry_after.max(policy.max_backoff));
    }

    #[test]
    fn registry_bodies_parse_or_fail_cleanly(value in json_value(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let body = value.to_string();
        for input in [body.as_bytes(), bytes.as_slice()] {
            let envelope = ErrorEnvelope::parse(input);
            prop_assert!(envelope.to_string().len() <= 4 * input.len() + 64);
            let _ = ManifestContent::parse(input);
            let _ = ImageConfig::parse(input);
            let _ = SourceLabels::parse(input);
            let _ = SavedPlan::parse(input, Path::new("plan.json"));
        }
    }
}

proptest! {
    // each case writes a file: fewer of them
    #![proptest_config(ProptestConfig { cases: 256, ..config() })]

    #[test]
    fn docker_configs_load_or_fail_cleanly(value in json_value(), text in hostile_text(16)) {
        let dir = tempfile::tempdir().unwrap();
        for content in [value.to_string(), text] {
            std::fs::write(dir.path().join("config.json"), &content).unwrap();
            let _ = DockerConfig::load(dir.path());
        }
    }

    #[test]
    fn project_files_parse_or_fail_cleanly(text in hostile_text(40), images in prop::collection::btree_map("[a-z]{1,5}", json_value(), 0..3)) {
        let _ = ProjectFile::parse(&text, Path::new("dockhand.yaml"));
        // a well-formed YAML document with arbitrary values under the keys dockhand reads
        let document: BTreeMap<&str, serde_json::Value> = BTreeMap::from([
            ("images", serde_json::Value::Array(images.into_values().collect())),
        ]);
        let yaml = serde_json::to_string(&document).unwrap();
        let _ = ProjectFile::parse(&yaml, Path::new("dockhand.yaml"));
    }
}

/// A YAML alias bomb that the file's types allow (one anchored map of 1,000 labels, named by
/// 5,000 images: 5 million labels from a 100 KiB file) is refused while it is read.
#[test]
fn a_yaml_alias_bomb_is_refused() {
    let labels: Vec<String> = (0..1000).map(|n| format!("l{n}: v")).collect();
    let mut text = format!("images:\n  - name: i0\n    labels: &big {{{}}}\n", labels.join(", "));
    for n in 1..5000 {
        text.push_str("  - name: i");
        text.push_str(&n.to_string());
        text.push_str("\n    labels: *big\n");
    }
    let error = ProjectFile::parse(&text, Path::new("dockhand.yaml")).unwrap_err();
    assert!(error.to_string().contains("budget breached"), "{error}");
}
