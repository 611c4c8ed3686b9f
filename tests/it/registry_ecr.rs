//! AWS ECR end to end: the built executable with `--repo-implementation ecr`, the AWS SDK
//! pointed at moto's server through `AWS_ENDPOINT_URL_ECR`, fake static credentials.
//!
//! moto has no registry API (`/v2/`), so the pairing is explicit: `support::moto::EcrFront`
//! serves both APIs on one 127.0.0.1 port, forwarding the ECR API to moto and `/v2/` to a real
//! distribution registry, with moto as the record of which tags and images exist (a manifest
//! pushed through `/v2/` is registered with moto's `PutImage`; what `BatchDeleteImage` removed
//! no longer resolves). What these tests prove about ECR is therefore what moto models of it;
//! the 100-ids limit of `BatchDeleteImage` (moto does not enforce it) is checked by counting
//! the ids of each call at the front.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use dockhand::reference::{Digest, RegistryHost, RepoAddress};
use dockhand::registry::distribution::{Client, ClientOptions, Credential};
use dockhand::secret::Secret;
use serde_json::{Value, json};

use crate::support::binary::{Dockhand, dockhand};
use crate::support::moto::{ACCOUNT, EcrFront, REGION};
use crate::support::{Auth, Deletes, Registry, seed, tags_of};

/// The secret half of the fake AWS credentials: it must never be printed.
const AWS_SECRET: &str = "ecr-test-secret-7d1f0c";
/// The registry password moto's `GetAuthorizationToken` mints.
const MOTO_PASSWORD: &str = "123456789012-auth-token";

/// A distribution registry and the front pairing it with moto.
struct Ecr {
    front: EcrFront,
    _registry: Registry,
}

impl Ecr {
    fn start() -> Self {
        let registry = Registry::start(Auth::Anonymous, Deletes::Disabled);
        Self { front: EcrFront::start(&registry), _registry: registry }
    }

    /// A front with the ECR repository `acme/api` created, a client to seed it, its address.
    fn with_repository() -> (Self, Client, RepoAddress) {
        let ecr = Self::start();
        ecr.create_repository("acme/api");
        let (client, api) = (ecr.client(), ecr.repository("acme/api"));
        (ecr, client, api)
    }

    /// `dockhand ARGS` in `dir` as a CI job with AWS credentials would run it, on the images
    /// repo `FRONT/acme`.
    fn dockhand(&self, dir: &Path, args: &[&str]) -> Dockhand {
        dockhand(dir, args)
            .env("TMPDIR", &dir.display().to_string())
            .env("AWS_ACCESS_KEY_ID", "AKIATESTECR")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_ECR", &self.front.endpoint())
            .env("DOCKHAND_INSECURE_REGISTRIES", &self.front.host())
            .env("DOCKHAND_REPO_IMPLEMENTATION", "ecr")
            .env("DOCKHAND_REPO", &format!("{}/acme", self.front.host()))
    }

    /// A client for seeding images through the front, logged in as moto's token says.
    fn client(&self) -> Client {
        let host: RegistryHost = self.front.host().parse().unwrap();
        let credential =
            Credential::Basic { username: "AWS".to_owned(), password: Secret::new(MOTO_PASSWORD) };
        Client::new(ClientOptions {
            insecure: vec![host.clone()],
            credentials: [(host, credential)].into(),
            ..ClientOptions::default()
        })
        .unwrap()
    }

    fn repository(&self, path: &str) -> RepoAddress {
        format!("{}/{path}", self.front.host()).parse().unwrap()
    }

    fn create_repository(&self, name: &str) {
        self.front.moto.call("CreateRepository", &json!({"repositoryName": name})).unwrap();
    }

    /// The tags of each image moto holds in `name`, sorted, by digest.
    fn images(&self, name: &str) -> Vec<(String, Vec<String>)> {
        let described = self
            .front
            .moto
            .call("DescribeImages", &json!({"repositoryName": name}))
            .unwrap_or_else(|(kind, _)| panic!("DescribeImages {name}: {kind}"));
        let mut images: Vec<(String, Vec<String>)> = described["imageDetails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|image| {
                let mut tags = crate::support::sorted_strings(&image["imageTags"]);
                tags.sort();
                (image["imageDigest"].as_str().unwrap().to_owned(), tags)
            })
            .collect();
        images.sort();
        images
    }

    /// Every tag moto holds in `name`, sorted.
    fn tags(&self, name: &str) -> Vec<String> {
        let mut tags: Vec<String> =
            self.images(name).into_iter().flat_map(|(_, tags)| tags).collect();
        tags.sort();
        tags
    }
}

/// `created` 30 days ago: older than any policy here, so only the push time can keep an image.
fn long_ago() -> String {
    seed::minutes_ago(30 * 24 * 60)
}

/// Pushes a small OCI image with a unique config saying [`long_ago`] under each of `tags`.
/// Returns its digest.
async fn push_image(client: &Client, repository: &RepoAddress, tags: &[&str]) -> Digest {
    let (first, others) = tags.split_first().expect("at least one tag");
    let digest = seed::push_image(client, repository, Some(first), &long_ago()).await;
    for tag in others {
        seed::tag_existing(client, repository, tag, &digest).await;
    }
    digest
}

/// A working directory with a project file of one image `api` (plus `extra`).
fn project(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dockhand.yaml"), format!("images:\n  - name: api\n{extra}"))
        .unwrap();
    dir
}

#[test]
fn ci_env_writes_a_minted_login_for_each_ecr_registry() {
    let ecr = Ecr::start();
    let work = tempfile::tempdir().unwrap();
    let east = format!("{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com");
    let other_account = "210987654321.dkr.ecr.us-east-1.amazonaws.com";
    let west = format!("{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com");
    let extra = format!("{east},{other_account} {west}");
    let run = ecr
        .dockhand(work.path(), &["-vvv", "ci-env", "generic"])
        .env("DOCKHAND_ECR_REGISTRIES", &extra)
        .run();
    run.assert_code(0).assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_PASSWORD}"));
    run.assert_not_printed(&token);
    let dir =
        run.stdout.lines().find_map(|line| line.strip_prefix("export DOCKER_CONFIG=")).map_or_else(
            || panic!("no DOCKER_CONFIG in {}", run.stdout),
            |value| value.trim_matches('\'').to_owned(),
        );
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&dir).join("config.json")).unwrap(),
    )
    .unwrap();
    let auths = config["auths"].as_object().unwrap();
    for host in [ecr.front.host().as_str(), east.as_str(), other_account, west.as_str()] {
        assert_eq!(auths[host]["auth"], token, "{host} in {config}");
    }
    // one token per region: us-east-1 (the images repo, both us-east-1 hosts), eu-west-1
    let minted = ecr.front.operations().iter().filter(|op| *op == "GetAuthorizationToken").count();
    assert_eq!(minted, 2, "{:?}", ecr.front.operations());

    // on GitHub the runner is told to mask the password and the docker `auth` value
    let github_env = work.path().join("github_env");
    std::fs::write(&github_env, "").unwrap();
    let run = ecr
        .dockhand(work.path(), &["ci-env", "generic", "--shell", "github"])
        .env("GITHUB_ENV", &github_env.display().to_string())
        .run();
    run.assert_code(0);
    let masks: Vec<&str> =
        run.stdout.lines().filter(|line| line.starts_with("::add-mask::")).collect();
    assert!(masks.contains(&format!("::add-mask::{MOTO_PASSWORD}").as_str()), "{masks:?}");
    assert!(masks.contains(&format!("::add-mask::{token}").as_str()), "{masks:?}");
}

#[test]
fn a_host_that_is_not_ecr_in_the_registry_list_is_a_usage_error() {
    let ecr = Ecr::start();
    let work = tempfile::tempdir().unwrap();
    let run = ecr
        .dockhand(work.path(), &["ci-env", "generic"])
        .env("DOCKHAND_ECR_REGISTRIES", "ghcr.io")
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("`ghcr.io` in `DOCKHAND_ECR_REGISTRIES` is not an ECR registry host"),
        "{}",
        run.stderr
    );
    assert!(ecr.front.operations().is_empty(), "{:?}", ecr.front.operations());
}

#[test]
fn a_plain_http_endpoint_not_named_insecure_is_refused() {
    let ecr = Ecr::start();
    let work = project("");
    let run = ecr
        .dockhand(work.path(), &["cleanup", "--dry-run"])
        .env("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:9")
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("`http://127.0.0.1:9` is plain HTTP"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: add `--insecure-registry 127.0.0.1:9`"), "{}", run.stderr);
}

#[test]
fn publish_creates_the_repository_with_the_project_settings() {
    let ecr = Ecr::start();
    let work = project(
        "    context: api\ntags: [\"{branch}\"]\nrepositories:\n  scan_on_push: true\n  tag_mutability: immutable\n",
    );
    let context = work.path().join("api");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("file.txt"), "ecr api").unwrap();
    std::fs::write(context.join("Containerfile"), "FROM scratch\nCOPY file.txt /file.txt\n")
        .unwrap();
    let storage = work.path().join("storage");
    std::fs::write(
        work.path().join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/root\"\nrunroot = \"{0}/run\"\n",
            storage.display()
        ),
    )
    .unwrap();
    let publish = || {
        ecr.dockhand(work.path(), &["run", "--output", "json"])
            .env("CONTAINERS_STORAGE_CONF", &work.path().join("storage.conf").display().to_string())
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs")
            .env("DOCKHAND_SHA", "1ecfd275763eff1d6b4844ea3168962458c9f27a")
            .env("DOCKHAND_REF_NAME", "main")
            .env("DOCKHAND_REF_TYPE", "branch")
            .run()
    };
    let run = publish();
    run.assert_code(0).assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    let described = ecr
        .front
        .moto
        .call("DescribeRepositories", &json!({"repositoryNames": ["acme/api"]}))
        .unwrap();
    let repository = &described["repositories"][0];
    assert_eq!(repository["imageScanningConfiguration"]["scanOnPush"], true, "{described}");
    assert_eq!(repository["imageTagMutability"], "IMMUTABLE", "{described}");
    assert_eq!(ecr.tags("acme/api"), ["main"]);
    let operations = ecr.front.operations();
    let created = operations.iter().position(|op| op == "CreateRepository").expect("created");
    assert_eq!(
        operations.first().map(String::as_str),
        Some("GetAuthorizationToken"),
        "{operations:?}"
    );
    assert!(created > 0, "{operations:?}");
    // the same commit again: the repository exists (fine), the image is already there
    publish().assert_code(0);
    assert_eq!(ecr.tags("acme/api"), ["main"]);
    assert_eq!(ecr.front.registry_deletes(), 0);
}

#[tokio::test]
async fn cleanup_by_push_time_removes_one_tag_of_two_and_leaves_the_image() {
    let (ecr, client, api) = Ecr::with_repository();
    let gone = push_image(&client, &api, &["old-1"]).await;
    let shared = push_image(&client, &api, &["old-2", "stable"]).await;
    std::thread::sleep(Duration::from_millis(4200));
    let young = push_image(&client, &api, &["new-1"]).await;

    let work = project("");
    let flags = [
        "cleanup",
        "--output",
        "json",
        "--keep-within",
        "3s",
        "--keep-last",
        "0",
        "--keep-tag",
        "stable",
    ];
    // a dry run plans and changes nothing
    let mut dry = flags.to_vec();
    dry.push("--dry-run");
    let plan = ecr.dockhand(work.path(), &dry).run();
    plan.assert_code(0);
    assert_eq!(ecr.tags("acme/api"), ["new-1", "old-1", "old-2", "stable"]);
    assert!(!ecr.front.operations().contains(&"BatchDeleteImage".to_owned()));

    let run = ecr.dockhand(work.path(), &flags).run();
    run.assert_code(0).assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    let document = run.json();
    assert_eq!(tags_of(&document, "deleted"), ["old-1", "old-2"]);
    assert_eq!(tags_of(&document, "kept"), ["new-1", "stable"]);
    // the config says 30 days for all: `new-1` is kept by its push time alone
    let young_reason = document["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["tag"] == "new-1")
        .map(|item| item["reason"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(young_reason.contains("pushed"), "{young_reason}");
    let images = ecr.images("acme/api");
    assert_eq!(
        images.iter().map(|(digest, tags)| (digest.as_str(), tags.clone())).collect::<Vec<_>>(),
        {
            let mut want = vec![
                (shared.as_str(), vec!["stable".to_owned()]),
                (young.as_str(), vec!["new-1".to_owned()]),
            ];
            want.sort();
            want
        }
    );
    assert!(images.iter().all(|(digest, _)| digest != gone.as_str()));
    assert_eq!(ecr.front.registry_deletes(), 0);
    let pages = ecr.front.describe_pages();

    // a rerun finds nothing more to delete
    let batches = ecr.front.batch_sizes().len();
    let rerun = ecr.dockhand(work.path(), &flags).run();
    rerun.assert_code(0);
    assert_eq!(tags_of(&rerun.json(), "deleted"), Vec::<String>::new());
    assert_eq!(ecr.front.batch_sizes().len(), batches);
    assert!(ecr.front.describe_pages() > pages, "the rerun read push times again");
}

#[tokio::test]
async fn keep_last_keeps_the_newest_pushes() {
    let (ecr, client, api) = Ecr::with_repository();
    for tag in ["b-1", "b-2", "b-3"] {
        push_image(&client, &api, &[tag]).await;
        std::thread::sleep(Duration::from_millis(1100));
    }
    let work = project("");
    let run = ecr
        .dockhand(
            work.path(),
            &["cleanup", "--output", "json", "--keep-last", "2", "--keep-within", "0s"],
        )
        .run();
    run.assert_code(0);
    assert_eq!(tags_of(&run.json(), "deleted"), ["b-1"]);
    assert_eq!(ecr.tags("acme/api"), ["b-2", "b-3"]);
}

#[tokio::test]
async fn over_a_hundred_deletions_go_in_calls_of_at_most_100_ids() {
    let (ecr, client, api) = Ecr::with_repository();
    let count = 300;
    let pushes = (0..count).map(|n| {
        let client = &client;
        let api = &api;
        async move { push_image(client, api, &[&format!("build-{n}")]).await }
    });
    futures_util::future::join_all(pushes).await;
    let work = project("");
    let run = ecr
        .dockhand(
            work.path(),
            &["cleanup", "--output", "json", "--keep-last", "0", "--keep-within", "0s"],
        )
        .run();
    run.assert_code(0);
    assert_eq!(run.json()["deleted"].as_array().map(Vec::len), Some(count));
    assert_eq!(ecr.tags("acme/api"), Vec::<String>::new());
    // one call per 100 deleted images: full batches, ECR's limit
    assert_eq!(ecr.front.batch_sizes(), [100, 100, 100]);
    assert_eq!(ecr.front.describe_page_sizes(), [Some(1000)], "one page of up to 1000 images");
    assert_eq!(ecr.front.registry_deletes(), 0);
}

#[tokio::test]
async fn a_per_id_failure_is_reported_and_exits_2_while_the_rest_goes() {
    let (ecr, client, api) = Ecr::with_repository();
    push_image(&client, &api, &["x-1"]).await;
    let failing = push_image(&client, &api, &["x-2"]).await;
    push_image(&client, &api, &["x-3"]).await;
    // real ECR refuses an image an index still needs; moto does not model it: the front does
    ecr.front.fail_image("x-2", "ImageReferencedByManifestList");
    ecr.front.fail_image(failing.as_str(), "ImageReferencedByManifestList");
    let work = project("");
    let run = ecr
        .dockhand(
            work.path(),
            &["cleanup", "--keep-going", "--keep-last", "0", "--keep-within", "0s"],
        )
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("ImageReferencedByManifestList"), "{}", run.stderr);
    assert!(run.stderr.contains(failing.as_str()), "{}", run.stderr);
    assert_eq!(ecr.tags("acme/api"), ["x-2"]);
}

#[test]
fn a_repository_ecr_does_not_have_is_reported_and_nothing_is_deleted() {
    let ecr = Ecr::start();
    let work = project("");
    let run = ecr
        .dockhand(
            work.path(),
            &["cleanup", "--output", "json", "--keep-last", "0", "--keep-within", "0s"],
        )
        .run();
    run.assert_code(0);
    assert!(run.stderr.contains("acme/api"), "{}", run.stderr);
    assert_eq!(tags_of(&run.json(), "deleted"), Vec::<String>::new());
    assert!(!ecr.front.operations().contains(&"BatchDeleteImage".to_owned()));
}

#[tokio::test]
async fn credentials_that_expire_mid_run_are_a_clear_credentials_error() {
    let (ecr, client, api) = Ecr::with_repository();
    push_image(&client, &api, &["e-1"]).await;
    let work = project("");
    let cleanup = || {
        ecr.dockhand(work.path(), &["-vvv", "cleanup", "--keep-last", "0", "--keep-within", "0s"])
            .run()
    };
    // GetAuthorizationToken and ListImages pass, DescribeImages meets an expired session: the
    // inventory is incomplete and nothing is deleted
    ecr.front.expire_credentials_after(2);
    let run = cleanup();
    run.assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is incomplete, so nothing in it was deleted"), "{}", run.stderr);
    assert!(run.stderr.contains("(ExpiredTokenException)"), "{}", run.stderr);
    assert!(!ecr.front.operations().contains(&"BatchDeleteImage".to_owned()));
    assert_eq!(ecr.tags("acme/api"), ["e-1"]);
    // one call later, the delete itself meets it: the item fails, refused for the credentials
    ecr.front.expire_credentials_after(3);
    let run = cleanup();
    run.assert_code(1).assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    assert!(run.stderr.contains("ECR `BatchDeleteImage`"), "{}", run.stderr);
    assert!(run.stderr.contains("(ExpiredTokenException)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: give the job AWS credentials that are current"),
        "{}",
        run.stderr
    );
    assert_eq!(ecr.tags("acme/api"), ["e-1"]);
}

#[test]
fn expired_credentials_before_anything_is_read_exit_1() {
    let ecr = Ecr::start();
    ecr.front.expire_credentials_after(0);
    let work = project("");
    let run = ecr.dockhand(work.path(), &["cleanup"]).run();
    run.assert_code(1).assert_not_printed(AWS_SECRET);
    assert!(run.stderr.contains("ECR `GetAuthorizationToken`"), "{}", run.stderr);
    assert!(run.stderr.contains("ExpiredTokenException"), "{}", run.stderr);
}

#[test]
fn login_without_a_password_mints_the_ecr_login_and_other_registries_need_one() {
    let ecr = Ecr::start();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("docker");
    let run = ecr
        .dockhand(work.path(), &["-vvv", "login", &ecr.front.host(), "--output", "json"])
        .env("DOCKHAND_DOCKER_CONFIG", &config.display().to_string())
        .run();
    run.assert_code(0).assert_not_printed(AWS_SECRET).assert_not_printed(MOTO_PASSWORD);
    assert_eq!(run.json()["username"], "AWS");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(config.join("config.json")).unwrap())
            .unwrap();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_PASSWORD}"));
    assert_eq!(written["auths"][ecr.front.host()]["auth"], token, "{written}");
    // the login was checked against `/v2/` (the front asks for exactly this login)
    assert!(run.stderr.contains("verified"), "{}", run.stderr);

    let run = ecr
        .dockhand(work.path(), &["login", "localhost:5000"])
        .env("DOCKHAND_REPO_IMPLEMENTATION", "default")
        .env("DOCKHAND_DOCKER_CONFIG", &config.display().to_string())
        .run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("`localhost:5000` needs a user name and a password"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn untagged_images_from_list_images_go_and_children_of_a_kept_index_stay() {
    let (ecr, client, api) = Ecr::with_repository();
    let children = [
        seed::push_image(&client, &api, None, &long_ago()).await,
        seed::push_image(&client, &api, None, &long_ago()).await,
    ];
    let index = seed::push_index(&client, &api, "multi", &children).await;
    let stray = seed::push_image(&client, &api, None, &long_ago()).await;
    let work = project("");
    let flags = ["cleanup", "--output", "json", "--keep-tag", "multi", "--keep-last", "0"];
    let run = ecr
        .dockhand(
            work.path(),
            &[&flags[..], &["--keep-within", "0s", "--delete-untagged"]].concat(),
        )
        .run();
    run.assert_code(0);
    assert!(ecr.front.operations().contains(&"ListImages".to_owned()));
    let left: Vec<String> = ecr.images("acme/api").into_iter().map(|(digest, _)| digest).collect();
    let mut want: Vec<String> = [&index, &children[0], &children[1]]
        .iter()
        .map(|digest| digest.as_str().to_owned())
        .collect();
    want.sort();
    assert_eq!(left, want, "the stray `{stray}` goes, the index and its children stay");
    assert_eq!(ecr.front.batch_sizes(), [1]);
    assert_eq!(ecr.front.registry_deletes(), 0);
}

#[test]
fn no_aws_credentials_at_all_is_exit_1_with_a_hint() {
    let ecr = Ecr::start();
    let work = project("");
    let run = dockhand(work.path(), &["cleanup", "--dry-run"])
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_ECR", &ecr.front.endpoint())
        .env("DOCKHAND_INSECURE_REGISTRIES", &ecr.front.host())
        .env("DOCKHAND_REPO_IMPLEMENTATION", "ecr")
        .env("DOCKHAND_REPO", &format!("{}/acme", ecr.front.host()))
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("no providers in chain provided credentials"), "{}", run.stderr);
    assert!(run.stderr.contains("hint: give the job AWS credentials"), "{}", run.stderr);
    assert!(ecr.front.operations().is_empty(), "nothing reached the API");
}
