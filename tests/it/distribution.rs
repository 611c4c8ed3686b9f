//! The OCI distribution client against a real `docker-registry` (CNCF distribution 2.8).

use std::collections::BTreeMap;

use dockhand::exit::{Classify, ExitStatus};
use dockhand::reference::{Digest, RepoAddress, Tag};
use dockhand::registry::distribution::manifest::{
    self, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use dockhand::registry::distribution::{
    Account, BlobSource, BlobTransfer, Client, ClientOptions, Code, Credential, DeleteSupport,
    DistributionError, ManifestRef, ReferrersSource, RetryPolicy, TOMBSTONE_ANNOTATION,
};
use dockhand::secret::Secret;

use crate::support::peers::{self, Buildah};
use crate::support::proxy::{Fault, LinkStyle, Proxy};
use crate::support::seed::{client_as, push_layered_image};
use crate::support::token_issuer::{self, REFRESH_TOKEN};
use crate::support::{Auth, Deletes, Registry, registry};

fn client(registry: &Registry) -> Client {
    Client::new(registry.client_options()).expect("client")
}

fn tag(name: &str) -> Tag {
    name.parse().expect("tag")
}

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|name| tag(name)).collect()
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic { username: username.to_owned(), password: Secret::new(password) }
}

/// Asserts that neither the message chain nor the debug form of `error` shows `secret`.
fn assert_secret_hidden(error: &DistributionError, secret: &str) {
    let mut text = format!("{error:?} {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        text.push_str(&hint);
    }
    assert!(!text.contains(secret), "secret leaked: {text}");
}

#[tokio::test]
async fn verify_credentials_on_an_anonymous_registry_accepts_anyone() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    for credential in [Credential::Anonymous, basic("whoever", "whatever")] {
        client.verify_credentials(&registry.registry_host(), &credential).await.expect("accepted");
    }
}

#[tokio::test]
async fn verify_credentials_with_htpasswd() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let client = client(&registry);
    let host = registry.registry_host();
    client
        .verify_credentials(&host, &basic(registry::USER, registry::PASSWORD))
        .await
        .expect("full user");
    client
        .verify_credentials(&host, &basic(registry::PULL_PUSH_USER, registry::PULL_PUSH_PASSWORD))
        .await
        .expect("second user");

    let wrong = "wrong-Sentinel-0a1b";
    let error = client.verify_credentials(&host, &basic(registry::USER, wrong)).await.unwrap_err();
    match &error {
        DistributionError::CredentialsRejected { registry: rejected, account, .. } => {
            assert_eq!(rejected, &host);
            assert_eq!(account, &Account::User(registry::USER.to_owned()));
        }
        other => panic!("expected CredentialsRejected, got {other:?}"),
    }
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert_eq!(
        error.to_string(),
        format!("Registry `{host}` rejected the credentials of user `ciuser`")
    );
    assert_secret_hidden(&error, wrong);

    let error = client.verify_credentials(&host, &Credential::Anonymous).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::CredentialsMissing { registry } if registry == &host),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
}

#[tokio::test]
async fn verify_credentials_with_a_token_service() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let client = client(&registry);
    let host = registry.registry_host();
    client
        .verify_credentials(&host, &basic(registry::USER, registry::PASSWORD))
        .await
        .expect("full user");
    client
        .verify_credentials(&host, &basic(registry::PULL_PUSH_USER, registry::PULL_PUSH_PASSWORD))
        .await
        .expect("pull,push user");
    client
        .verify_credentials(&host, &Credential::IdentityToken(Secret::new(REFRESH_TOKEN)))
        .await
        .expect("identity token");
    // anonymous tokens carry no access, but `/v2/` accepts any valid token (as Docker Hub does)
    client.verify_credentials(&host, &Credential::Anonymous).await.expect("anonymous token");

    let issuer = registry.issuer().expect("token variant");
    let requests = issuer.requests();
    assert_eq!(
        requests
            .iter()
            .map(|request| (request.method.as_str(), request.account.as_str()))
            .collect::<Vec<_>>(),
        [
            ("GET", token_issuer::FULL_USER),
            ("GET", token_issuer::PULL_PUSH_USER),
            ("POST", "refresh"),
            ("GET", "anonymous")
        ]
    );
    assert!(
        requests.iter().all(|request| request.scopes.is_empty()),
        "login asks for no scope: {requests:?}"
    );

    let wrong = "wrong-Sentinel-9e8d";
    let error = client.verify_credentials(&host, &basic(registry::USER, wrong)).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::CredentialsRejected { account: Account::User(user), .. } if user == registry::USER),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert_secret_hidden(&error, wrong);

    let error = client
        .verify_credentials(&host, &Credential::IdentityToken(Secret::new(wrong)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            DistributionError::CredentialsRejected { account: Account::IdentityToken, .. }
        ),
        "{error:?}"
    );
    assert_secret_hidden(&error, wrong);
}

#[tokio::test]
async fn verify_credentials_reports_an_unreachable_registry() {
    // a port that was free a moment ago: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host: dockhand::reference::RegistryHost = format!("127.0.0.1:{port}").parse().unwrap();
    let options = ClientOptions {
        insecure: vec![host.clone()],
        retry: RetryPolicy {
            max_retries: 1,
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(1),
            max_retry_after: std::time::Duration::from_millis(1),
        },
        ..ClientOptions::default()
    };
    let client = Client::new(options).unwrap();
    let error = client.verify_credentials(&host, &basic("u", "p")).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::Unreachable { registry, .. } if registry == &host),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Failure);
    assert!(error.hint().is_some_and(|hint| hint.contains("--insecure-registry")));
}

/// Everything publish and cleanup need, against every auth variant with deletes enabled;
/// skopeo reads back what the client wrote.
#[tokio::test]
async fn operations_in_every_auth_variant() {
    for auth in [Auth::Anonymous, Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth, Deletes::Enabled);
        let client = client_as(&registry, registry.credential());
        let repository = registry.repository("dh/app");

        let v1 = push_layered_image(&client, &repository, "v1", &format!("{auth:?} one")).await;
        let v2 = push_layered_image(&client, &repository, "v2", &format!("{auth:?} two")).await;
        let again = client
            .put_manifest(
                &repository,
                &ManifestRef::Tag(tag("latest")),
                OCI_MANIFEST,
                &client
                    .get_manifest(&repository, &ManifestRef::Digest(v1.clone()))
                    .await
                    .unwrap()
                    .bytes,
            )
            .await
            .expect("second tag");
        assert_eq!(again, v1, "{auth:?}");

        assert_eq!(
            client.list_tags(&repository).await.unwrap(),
            tags(&["latest", "v1", "v2"]),
            "{auth:?}"
        );
        assert_eq!(peers::skopeo_tags(&registry, "dh/app"), ["latest", "v1", "v2"], "{auth:?}");
        assert_eq!(peers::skopeo_digest(&registry, "dh/app:v2"), v2, "{auth:?}");

        let head = client
            .head_manifest(&repository, &ManifestRef::Tag(tag("v1")))
            .await
            .unwrap()
            .expect("v1 exists");
        assert_eq!(
            (head.digest.clone(), head.media_type.as_str()),
            (v1.clone(), OCI_MANIFEST),
            "{auth:?}"
        );
        let manifest =
            client.get_manifest(&repository, &ManifestRef::Tag(tag("v1"))).await.unwrap();
        assert_eq!(manifest.digest, v1, "{auth:?}");
        assert_eq!(head.size, manifest.bytes.len() as u64, "{auth:?}");
        assert!(
            client
                .head_manifest(&repository, &ManifestRef::Tag(tag("missing")))
                .await
                .unwrap()
                .is_none()
        );

        let config = manifest.content.config.expect("an image has a config");
        assert!(client.blob_exists(&repository, &config.digest).await.unwrap(), "{auth:?}");
        assert!(
            !client.blob_exists(&repository, &Digest::sha256_of(b"never uploaded")).await.unwrap(),
            "{auth:?}"
        );
        let image_config = client.get_image_config(&repository, &config.digest).await.unwrap();
        assert_eq!(image_config.created, Some("2026-11-01T10:00:00Z".parse().unwrap()), "{auth:?}");

        assert_eq!(
            client.probe_deletes(&repository).await.unwrap(),
            DeleteSupport::Enabled,
            "{auth:?}"
        );

        // distribution 2.8 has no tag delete: the caller is told so, distinctly
        let error = client.delete_tag(&repository, &tag("v1")).await.unwrap_err();
        assert!(
            matches!(&error, DistributionError::TagDeleteUnsupported { envelope, .. } if envelope.has(&Code::DigestInvalid)),
            "{auth:?}: {error:?}"
        );

        // the throw-away manifest removes `v1` alone; `latest` (same digest) stays
        let tombstone = client.push_empty_manifest(&repository, &tag("v1")).await.unwrap();
        assert_ne!(tombstone, v1);
        client.delete_manifest(&repository, &tombstone).await.unwrap();
        assert_eq!(peers::skopeo_tags(&registry, "dh/app"), ["latest", "v2"], "{auth:?}");
        assert_eq!(peers::skopeo_digest(&registry, "dh/app:latest"), v1, "{auth:?}");

        client.delete_manifest(&repository, &v2).await.unwrap();
        let error = client.delete_manifest(&repository, &v2).await.unwrap_err();
        assert!(error.is_not_found(), "{auth:?}: {error:?}");
        assert!(
            error.envelope().is_some_and(|envelope| envelope.has(&Code::ManifestUnknown)),
            "{auth:?}"
        );
        client.delete_manifest(&repository, &v1).await.unwrap();
        // every tag deleted: the registry answers `"tags": null`
        assert_eq!(client.list_tags(&repository).await.unwrap(), Vec::<Tag>::new(), "{auth:?}");
    }
}

/// The throw-away manifest is a valid OCI 1.1 artifact: the image-spec schema accepts it (the
/// old form, with `layers: []`, it rejects), it names its artifact type and is unique per push.
#[tokio::test]
async fn the_throw_away_manifest_follows_the_image_spec() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let repository = registry.repository("dh/tombstone");
    let first = client.push_empty_manifest(&repository, &tag("v1")).await.unwrap();
    let raw = peers::skopeo_raw(&registry, "dh/tombstone:v1");
    assert_eq!(Digest::sha256_of(&raw), first);
    peers::image_spec_check("image-manifest-schema.json", &raw).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.dockhand.tombstone.v1");
    assert_eq!(manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
    assert_eq!(manifest["layers"][0], manifest["config"]);
    assert_eq!(manifest["annotations"][TOMBSTONE_ANNOTATION], "v1");
    let second = client.push_empty_manifest(&repository, &tag("v1")).await.unwrap();
    assert_ne!(first, second, "each throw-away manifest is unique");

    let old_form = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": manifest["config"],
        "layers": [],
    });
    let refused =
        peers::image_spec_check("image-manifest-schema.json", old_form.to_string().as_bytes());
    assert!(refused.unwrap_err().contains("should be non-empty"));
}

/// A digest delete removes every tag on that digest: the reason cleanup uses throw-away
/// manifests (measured on distribution 2.8: `v1` and `latest` both go).
#[tokio::test]
async fn deleting_a_digest_removes_every_tag_on_it() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let repository = registry.repository("dh/app");
    let digest = push_layered_image(&client, &repository, "v1", "shared").await;
    let bytes =
        client.get_manifest(&repository, &ManifestRef::Digest(digest.clone())).await.unwrap().bytes;
    client
        .put_manifest(&repository, &ManifestRef::Tag(tag("latest")), OCI_MANIFEST, &bytes)
        .await
        .unwrap();
    push_layered_image(&client, &repository, "other", "not shared").await;

    client.delete_manifest(&repository, &digest).await.unwrap();
    assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&["other"]));
    assert_eq!(peers::skopeo_tags(&registry, "dh/app"), ["other"]);
}

#[tokio::test]
async fn deletes_disabled_are_reported_distinctly() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Disabled);
    let client = client_as(&registry, registry.credential());
    let repository = registry.repository("dh/app");
    let digest = push_layered_image(&client, &repository, "v1", "kept").await;

    assert_eq!(client.probe_deletes(&repository).await.unwrap(), DeleteSupport::Disabled);
    let error = client.delete_manifest(&repository, &digest).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::DeletesDisabled { status, envelope, .. }
            if status.as_u16() == 405 && envelope.has(&Code::Unsupported)),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Failure);
    let error = client.delete_tag(&repository, &tag("v1")).await.unwrap_err();
    assert!(matches!(&error, DistributionError::TagDeleteUnsupported { .. }), "{error:?}");
    assert_eq!(peers::skopeo_tags(&registry, "dh/app"), ["v1"]);
}

/// The token service grants the pull,push-only user no `delete`: the client asks for the
/// `delete` scope, is refused, and says so as a denial (exit 1), not a server failure.
#[tokio::test]
async fn a_user_without_delete_permission_is_denied() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let limited = Credential::Basic {
        username: registry::PULL_PUSH_USER.to_owned(),
        password: Secret::new(registry::PULL_PUSH_PASSWORD),
    };
    let client = client_as(&registry, limited);
    let repository = registry.repository("dh/app");
    let digest = push_layered_image(&client, &repository, "v1", "pushed by the limited user").await;

    let error = client.delete_manifest(&repository, &digest).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::Denied { account: Account::User(user), .. } if user == registry::PULL_PUSH_USER),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert_secret_hidden(&error, registry::PULL_PUSH_PASSWORD);
    let issuer = registry.issuer().expect("token variant");
    assert!(
        issuer.requests().iter().any(|request| request.scopes == ["repository:dh/app:delete"]),
        "{:?}",
        issuer.requests()
    );
    assert_eq!(peers::skopeo_tags(&registry, "dh/app"), ["v1"]);
}

#[tokio::test]
async fn wrong_password_for_an_operation_is_rejected() {
    for auth in [Auth::Htpasswd, Auth::Token] {
        let registry = Registry::start(auth, Deletes::Enabled);
        let wrong = "wrong-Sentinel-4c4c";
        let client = client_as(
            &registry,
            Credential::Basic { username: registry::USER.to_owned(), password: Secret::new(wrong) },
        );
        let error = client.list_tags(&registry.repository("dh/app")).await.unwrap_err();
        assert!(
            matches!(&error, DistributionError::CredentialsRejected { .. }),
            "{auth:?}: {error:?}"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        assert_secret_hidden(&error, wrong);

        let error = client_as(&registry, Credential::Anonymous)
            .list_tags(&registry.repository("dh/app"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, DistributionError::CredentialsMissing { .. }),
            "{auth:?}: {error:?}"
        );
    }
}

#[tokio::test]
async fn identity_tokens_work_for_operations() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let client = client_as(&registry, Credential::IdentityToken(Secret::new(REFRESH_TOKEN)));
    let repository = registry.repository("dh/app");
    let digest = push_layered_image(&client, &repository, "v1", "via identity token").await;
    client.delete_manifest(&repository, &digest).await.unwrap();
    let issuer = registry.issuer().expect("token variant");
    assert!(
        issuer
            .requests()
            .iter()
            .all(|request| request.method == "POST" && request.account == "refresh")
    );
    // one token per scope set, reused from the cache afterwards
    let scope_sets: Vec<Vec<String>> =
        issuer.requests().into_iter().map(|request| request.scopes).collect();
    assert_eq!(
        scope_sets,
        [
            vec!["repository:dh/app:pull,push".to_owned()],
            vec!["repository:dh/app:delete".to_owned()]
        ]
    );
}

#[tokio::test]
async fn unknown_repository_has_no_tags_to_list() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let error = client(&registry).list_tags(&registry.repository("dh/nothing")).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert!(error.envelope().is_some_and(|envelope| envelope.has(&Code::NameUnknown)), "{error:?}");
}

/// Images built and pushed by buildah (OCI, Docker schema 2, and an OCI index) resolve to the
/// digests skopeo computes, with the right media types.
#[tokio::test]
async fn resolves_images_pushed_by_buildah() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let client = client_as(&registry, registry.credential());
    let buildah = Buildah::new(registry.dir());
    buildah.image("dh/one", "one", "amd64");
    buildah.push(&registry, "dh/one", "dh/app:oci", false);
    buildah.push(&registry, "dh/one", "dh/app:docker", true);
    buildah.image("dh/arm", "arm", "arm64");
    buildah.push_index(&registry, "dh/multi", &["dh/one", "dh/arm"], "dh/app:multi");

    let repository = registry.repository("dh/app");
    assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&["docker", "multi", "oci"]));
    for (name, media_type) in
        [("oci", OCI_MANIFEST), ("docker", DOCKER_MANIFEST), ("multi", OCI_INDEX)]
    {
        let head = client
            .head_manifest(&repository, &ManifestRef::Tag(tag(name)))
            .await
            .unwrap()
            .expect(name);
        assert_eq!(head.media_type, media_type, "{name}");
        assert_eq!(
            head.digest,
            peers::skopeo_digest(&registry, &format!("dh/app:{name}")),
            "{name}"
        );
        let manifest = client
            .get_manifest(&repository, &ManifestRef::Digest(head.digest.clone()))
            .await
            .unwrap();
        assert_eq!(manifest.media_type, media_type, "{name}");
        assert_eq!(manifest.digest, head.digest, "{name}");
    }
    let index = client.get_manifest(&repository, &ManifestRef::Tag(tag("multi"))).await.unwrap();
    let mut architectures: Vec<String> = index
        .content
        .manifests
        .iter()
        .filter_map(|child| child.platform.as_ref().map(|platform| platform.architecture.clone()))
        .collect();
    architectures.sort();
    assert_eq!(architectures, ["amd64", "arm64"]);
    for child in &index.content.manifests {
        let manifest = client
            .get_manifest(&repository, &ManifestRef::Digest(child.digest.clone()))
            .await
            .unwrap();
        assert!(manifest.content.config.is_some(), "{}", child.digest);
        assert!(!manifest::is_index_type(&manifest.media_type));
    }
    assert!(
        !manifest::is_index_type(DOCKER_MANIFEST) && manifest::is_index_type(DOCKER_MANIFEST_LIST)
    );
}

/// Writes `content` to a file in `dir` and describes it as a blob with `digest`.
fn file_blob(dir: &std::path::Path, name: &str, content: &[u8], digest: &Digest) -> BlobSource {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    BlobSource::File { path, size: content.len() as u64, digest: digest.clone() }
}

#[tokio::test]
async fn blobs_are_mounted_across_repositories_or_uploaded() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let client = client_as(&registry, registry.credential());
    let files = tempfile::tempdir().unwrap();
    let source = registry.repository("dh/source");
    let content = b"a blob to share";
    let digest = client.upload_blob(&source, &BlobSource::Bytes(content.to_vec())).await.unwrap();
    assert_eq!(digest, Digest::sha256_of(content));

    // a mount never opens the file: this one does not even exist
    let target = registry.repository("dh/target");
    let nowhere = BlobSource::File {
        path: files.path().join("not-there"),
        size: content.len() as u64,
        digest: digest.clone(),
    };
    assert_eq!(
        client.mount_or_upload_blob(&target, &source, &nowhere).await.unwrap(),
        BlobTransfer::Mounted
    );
    assert!(client.blob_exists(&target, &digest).await.unwrap());

    // the source does not have it: the registry opens an upload instead, and the client
    // streams the file into it
    let elsewhere = registry.repository("dh/elsewhere");
    let empty = registry.repository("dh/empty");
    let file = file_blob(files.path(), "blob", content, &digest);
    assert_eq!(
        client.mount_or_upload_blob(&elsewhere, &empty, &file).await.unwrap(),
        BlobTransfer::Uploaded
    );
    assert_eq!(client.get_blob(&elsewhere, &digest).await.unwrap(), content);

    // a file that is not the blob it claims to be is refused, and the registry keeps nothing
    let claimed = Digest::sha256_of(b"the real content");
    let wrong = file_blob(files.path(), "wrong", b"other bytes of that size", &claimed);
    let error = client.mount_or_upload_blob(&elsewhere, &empty, &wrong).await.unwrap_err();
    assert!(matches!(error, DistributionError::DigestMismatch { .. }), "{error:?}");
    assert!(!client.blob_exists(&elsewhere, &claimed).await.unwrap());
}

#[tokio::test]
async fn file_blobs_are_streamed_and_checked_against_their_digest() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let client = client_as(&registry, registry.credential());
    let repository = registry.repository("dh/files");
    let files = tempfile::tempdir().unwrap();
    // several chunks of the streamed body, the last one partial
    let mut content = vec![0; 3 * dockhand::registry::distribution::blob::CHUNK_SIZE + 17];
    fastrand::Rng::with_seed(11).fill(&mut content);
    let digest = Digest::sha256_of(&content);
    let blob = file_blob(files.path(), "layer", &content, &digest);
    assert_eq!(client.upload_blob(&repository, &blob).await.unwrap(), digest);
    assert_eq!(client.get_blob(&repository, &digest).await.unwrap(), content);

    let claimed = Digest::sha256_of(b"not this");
    let mut changed = content.clone();
    changed[content.len() - 1] ^= 1;
    let wrong = file_blob(files.path(), "changed", &changed, &claimed);
    let error = client.upload_blob(&repository, &wrong).await.unwrap_err();
    match &error {
        DistributionError::DigestMismatch { expected, actual, .. } => {
            assert_eq!(expected, claimed.as_str());
            assert_eq!(actual, Digest::sha256_of(&changed).as_str());
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(!client.blob_exists(&repository, &claimed).await.unwrap());
    assert!(!client.blob_exists(&repository, &Digest::sha256_of(&changed)).await.unwrap());

    let missing = BlobSource::File {
        path: files.path().join("missing"),
        size: 3,
        digest: Digest::sha256_of(b"abc"),
    };
    let error = client.upload_blob(&repository, &missing).await.unwrap_err();
    match &error {
        DistributionError::BlobRead { path, source } => {
            assert_eq!(path, &files.path().join("missing"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected BlobRead, got {other:?}"),
    }
}

/// distribution 2.8 has no referrers API (404): the client falls back to the tag schema.
#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    let repository = registry.repository("dh/app");
    let subject = push_layered_image(&client, &repository, "v1", "signed image").await;
    let none = client.referrers(&repository, &subject).await.unwrap();
    assert_eq!((none.descriptors.len(), none.source), (0, ReferrersSource::TagSchema));

    let signature = push_layered_image(&client, &repository, "signature", "a signature").await;
    let signature_size = client
        .head_manifest(&repository, &ManifestRef::Digest(signature.clone()))
        .await
        .unwrap()
        .unwrap()
        .size;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": signature, "size": signature_size, "artifactType": "application/vnd.dev.sig"}],
    })
    .to_string();
    let fallback_tag = tag(&format!("sha256-{}", subject.hex()));
    client
        .put_manifest(&repository, &ManifestRef::Tag(fallback_tag), OCI_INDEX, index.as_bytes())
        .await
        .unwrap();

    let found = client.referrers(&repository, &subject).await.unwrap();
    assert_eq!(found.source, ReferrersSource::TagSchema);
    assert_eq!(found.descriptors.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(), [signature]);
    assert_eq!(found.descriptors[0].artifact_type.as_deref(), Some("application/vnd.dev.sig"));
}

/// A registry behind the fault proxy, with a client that speaks plain HTTP to the proxy.
fn behind_proxy() -> (Registry, Proxy, Client, RepoAddress) {
    behind_proxy_with(Auth::Anonymous)
}

fn behind_proxy_with(auth: Auth) -> (Registry, Proxy, Client, RepoAddress) {
    let registry = Registry::start(auth, Deletes::Enabled);
    let proxy = Proxy::start(registry.port());
    let host: dockhand::reference::RegistryHost = proxy.host().parse().unwrap();
    let mut options = registry.client_options();
    // the proxy stands in for the registry; the token service (if any) stays named insecure
    options.insecure.retain(|insecure| insecure.as_str() != registry.host());
    options.insecure.push(host.clone());
    options.credentials = BTreeMap::from([(host, registry.credential())]);
    let client = Client::new(options).unwrap();
    let repository: RepoAddress = format!("{}/dh/app", proxy.host()).parse().unwrap();
    (registry, proxy, client, repository)
}

#[tokio::test]
async fn tags_are_paged_through_relative_and_absolute_links() {
    let (_registry, proxy, client, repository) = behind_proxy();
    let names = ["a", "b", "c", "d", "e"];
    for name in names {
        push_layered_image(&client, &repository, name, name).await;
    }
    for style in [LinkStyle::Relative, LinkStyle::Absolute] {
        proxy.page_tags(2, style);
        let before = proxy.log().len();
        assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&names), "{style:?}");
        let pages: Vec<String> = proxy.log()[before..]
            .iter()
            .filter(|line| line.contains("/tags/list"))
            .cloned()
            .collect();
        assert_eq!(
            pages,
            [
                "GET /v2/dh/app/tags/list?n=1000",
                "GET /v2/dh/app/tags/list?n=2&last=b",
                "GET /v2/dh/app/tags/list?n=2&last=d",
            ],
            "{style:?}"
        );
    }
    proxy.page_tags(2, LinkStyle::Looping);
    let error = client.list_tags(&repository).await.unwrap_err();
    assert!(matches!(error, DistributionError::PaginationLoop { .. }), "{error:?}");

    // a fresh `last=` on every page, and never a new tag: stopped at the first such page
    proxy.page_tags(2, LinkStyle::Endless);
    let before = proxy.log().len();
    let error = client.list_tags(&repository).await.unwrap_err();
    assert!(matches!(error, DistributionError::PaginationLoop { .. }), "{error:?}");
    assert_eq!(proxy.log().len() - before, 2);

    // a next page on another origin is never requested
    proxy.page_tags(2, LinkStyle::Foreign);
    let before = proxy.log().len();
    let error = client.list_tags(&repository).await.unwrap_err();
    assert!(matches!(error, DistributionError::ForeignPage { .. }), "{error:?}");
    assert_eq!(proxy.log().len() - before, 1);
}

#[tokio::test]
async fn null_tags_are_an_empty_list() {
    let (_registry, proxy, client, repository) = behind_proxy();
    push_layered_image(&client, &repository, "v1", "v1").await;
    proxy.null_tags();
    assert_eq!(client.list_tags(&repository).await.unwrap(), Vec::<Tag>::new());
}

#[tokio::test]
async fn rate_limits_are_waited_out_and_retries_are_bounded() {
    let (_registry, proxy, client, repository) = behind_proxy();
    push_layered_image(&client, &repository, "v1", "v1").await;
    let soon = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2)))
        .unwrap();
    for retry_after in [Some("0".to_owned()), Some("300".to_owned()), Some(soon), None] {
        proxy.inject(Fault::status(429, retry_after.as_deref()));
        let before = proxy.log().len();
        assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&["v1"]), "{retry_after:?}");
        assert_eq!(proxy.log().len() - before, 2, "{retry_after:?}: one 429, one success");
    }
    // 503 twice then success: retried (the test options allow two retries)
    proxy.inject(Fault::status(503, None));
    proxy.inject(Fault::status(503, None));
    assert!(
        client.head_manifest(&repository, &ManifestRef::Tag(tag("v1"))).await.unwrap().is_some()
    );
    // three 429s exhaust the retries: the registry's answer is reported with its code
    for _ in 0..3 {
        proxy.inject(Fault::status(429, Some("1")));
    }
    let error = client.list_tags(&repository).await.unwrap_err();
    assert_eq!(error.status().map(|status| status.as_u16()), Some(429), "{error:?}");
    assert!(error.envelope().is_some_and(|envelope| envelope.has(&Code::TooManyRequests)));
    assert_eq!(error.exit_status(), ExitStatus::Failure);
    // a 503 to a POST (not idempotent) is not repeated
    proxy.inject(Fault::status(503, None));
    let before = proxy.log().len();
    let error =
        client.upload_blob(&repository, &BlobSource::Bytes(b"x".to_vec())).await.unwrap_err();
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503), "{error:?}");
    assert_eq!(proxy.log().len() - before, 1);
}

/// A 401 `insufficient_scope` makes the client ask once more with the scope the registry
/// named added to its own.
#[tokio::test]
async fn insufficient_scope_widens_the_token_once() {
    let (registry, proxy, client, repository) = behind_proxy_with(Auth::Token);
    push_layered_image(&client, &repository, "v1", "v1").await;
    let issuer = registry.issuer().expect("token variant");
    proxy.inject(Fault {
        status: 401,
        retry_after: None,
        www_authenticate: Some(format!(
            r#"Bearer realm="{}",service="{}",scope="repository:dh/app:pull,push,delete",error="insufficient_scope""#,
            issuer.realm(),
            token_issuer::SERVICE
        )),
        location: None,
    });
    let before = issuer.requests().len();
    assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&["v1"]));
    let scope_sets: Vec<Vec<String>> =
        issuer.requests()[before..].iter().map(|request| request.scopes.clone()).collect();
    assert_eq!(
        scope_sets,
        [
            vec!["repository:dh/app:pull".to_owned()],
            vec![
                "repository:dh/app:pull".to_owned(),
                "repository:dh/app:pull,push,delete".to_owned()
            ],
        ]
    );
}

/// An upload session is single-use: a `PUT` that failed with 503 is not sent again to the
/// same session; the client opens a new session and streams the file again from its start,
/// as often as the retry policy allows (two retries in the test options).
#[tokio::test]
async fn a_failed_upload_starts_a_new_session() {
    let (_registry, proxy, client, repository) = behind_proxy();
    let files = tempfile::tempdir().unwrap();
    let content = b"layer bytes, sent twice".to_vec();
    let digest = Digest::sha256_of(&content);
    let blob = file_blob(files.path(), "layer", &content, &digest);
    let uploads = |from: usize| -> Vec<String> {
        proxy.log()[from..]
            .iter()
            .filter(|line| line.contains("/blobs/uploads/"))
            .map(|line| line.split('/').next().unwrap_or_default().trim().to_owned())
            .collect()
    };
    let put = "PUT /v2/dh/app/blobs/uploads/";

    proxy.inject_matching_times(put, Fault::status(503, None), 1);
    let before = proxy.log().len();
    assert_eq!(client.upload_blob(&repository, &blob).await.unwrap(), digest);
    assert_eq!(uploads(before), ["POST", "PUT", "POST", "PUT"]);
    assert_eq!(client.get_blob(&repository, &digest).await.unwrap(), content);

    let other = b"another layer".to_vec();
    let other_digest = Digest::sha256_of(&other);
    let blob = file_blob(files.path(), "other", &other, &other_digest);
    proxy.inject_matching_times(put, Fault::status(503, None), 3);
    let before = proxy.log().len();
    let error = client.upload_blob(&repository, &blob).await.unwrap_err();
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503), "{error:?}");
    assert_eq!(uploads(before), ["POST", "PUT", "POST", "PUT", "POST", "PUT"]);
    assert!(!client.blob_exists(&repository, &other_digest).await.unwrap());
}

/// Naming the registry insecure does not send its credentials over plain HTTP to a token
/// service on another host: that host must be named too.
#[tokio::test]
async fn a_plain_http_token_service_must_be_named_insecure_itself() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let mut options = registry.client_options();
    options.insecure = vec![registry.registry_host()];
    options.credentials = BTreeMap::from([(registry.registry_host(), registry.credential())]);
    let client = Client::new(options).unwrap();
    let issuer = registry.issuer().expect("token variant");
    let error = client.list_tags(&registry.repository("dh/app")).await.unwrap_err();
    assert!(matches!(error, DistributionError::InsecureRealm { .. }), "{error:?}");
    assert!(issuer.requests().is_empty());
}

/// A redirect to plain HTTP on a host not named insecure is refused before it is followed;
/// one to a host named insecure is followed.
#[tokio::test]
async fn redirects_to_plain_http_reach_only_hosts_named_insecure() {
    let (registry, proxy, client, repository) = behind_proxy();
    push_layered_image(&client, &repository, "v1", "v1").await;
    let elsewhere = Proxy::start(registry.port());
    let target = |host: &str| format!("http://{host}/v2/dh/app/tags/list");
    proxy.inject_matching_times(
        "GET /v2/dh/app/tags/list",
        Fault::redirect(&target(&elsewhere.host())),
        1,
    );
    let error = client.list_tags(&repository).await.unwrap_err();
    assert!(
        dockhand::exit::causes(&error)
            .iter()
            .any(|cause| cause.contains("plain HTTP goes only to hosts named")),
        "{error:?}"
    );
    assert!(elsewhere.log().is_empty(), "{:?}", elsewhere.log());

    // the same redirect back to the proxy itself (named insecure) is followed
    proxy.inject_matching_times(
        "GET /v2/dh/app/tags/list",
        Fault::redirect(&target(&proxy.host())),
        1,
    );
    assert_eq!(client.list_tags(&repository).await.unwrap(), tags(&["v1"]));
}

/// A server that accepts and then never answers holds each attempt only as long as the read
/// timeout allows; the error says the registry could not be reached.
#[tokio::test]
async fn a_silent_server_is_given_up_on_after_the_read_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    // keep every accepted connection open, never writing a byte, until the test is done
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let held = std::thread::spawn(move || {
        let open: Vec<_> = listener.incoming().take(3).collect();
        let _ = finished.recv();
        drop(open);
    });
    let options = ClientOptions {
        insecure: vec![host.parse().unwrap()],
        read_timeout: std::time::Duration::from_millis(200),
        retry: RetryPolicy { max_retries: 2, ..RetryPolicy::default() },
        ..ClientOptions::default()
    };
    let client = Client::new(options).unwrap();
    let repository: RepoAddress = format!("{host}/dh/app").parse().unwrap();
    let error = client.list_tags(&repository).await.unwrap_err();
    let DistributionError::Unreachable { source, .. } = &error else { panic!("{error:?}") };
    assert!(source.is_timeout(), "{source:?}");
    done.send(()).unwrap();
    held.join().unwrap();
}
