//! AWS Elastic Container Registry: the registry seam through ECR's own API.
//!
//! Owns the ECR host's account and region, the AWS SDK client (the standard credential chain,
//! web identity included, over rustls with ring through an explicitly built HTTP client), the
//! registry login `GetAuthorizationToken` mints (user `AWS`), creating repositories before the
//! first push (`CreateRepository`, with scan-on-push and tag mutability from the project file),
//! push times from `DescribeImages` (pages of 1,000) and deletes through `BatchDeleteImage`
//! (at most 100 image ids a call; every per-id failure becomes that item's error). Reads and
//! pushes stay on the distribution client: ECR serves `/v2/` for them. No registry `DELETE` is
//! ever sent: ECR's registry API has none that works (docs/registries.md §2.2).
//!
//! The SDK finds the credentials and the endpoint override (`AWS_ENDPOINT_URL_ECR`, then
//! `AWS_ENDPOINT_URL`) in the process environment itself; dockhand reads the region and the
//! endpoint from its [`EnvMap`] only to choose the region for a host that names none and to
//! refuse a plain-HTTP endpoint the user did not name with `--insecure-registry`.

use std::collections::BTreeMap;
use std::error::Error as StdError;

use aws_config::BehaviorVersion;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::create_repository::CreateRepositoryError;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::operation::list_images::ListImagesError;
use aws_sdk_ecr::types::{
    DescribeImagesFilter, ImageIdentifier, ImageScanningConfiguration, ImageTagMutability,
    ListImagesFilter, TagStatus,
};
use base64::Engine as _;
use jiff::Timestamp;

use super::detect::ecr_account_and_region;
use super::distribution::{Client, Credential, DeleteSupport, named_insecure};
use super::{Capabilities, MintedLogin, RegistryError, Removal, Untagged, Vendor};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::project::{RepositoriesSection, TagMutability};
use crate::reference::{Digest, RegistryHost, RepoAddress, Tag};
use crate::secret::Secret;

/// Most image ids one `BatchDeleteImage` call takes (ECR's API limit).
pub const BATCH_DELETE_LIMIT: usize = 100;
/// Most images one `DescribeImages` or `ListImages` page returns (ECR's API limit).
pub const PAGE_SIZE: i32 = 1000;

/// A failed call to the ECR API, or an answer dockhand cannot use.
#[derive(Debug, thiserror::Error)]
pub enum EcrError {
    #[error("ECR `{operation}` for `{target}` failed{}", code_suffix(.code.as_deref()))]
    Api {
        operation: &'static str,
        target: String,
        /// The AWS error code (`RepositoryNotFoundException`, `ExpiredTokenException`, …).
        code: Option<String>,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("`{image}` was not deleted from `{repository}`: the `BatchDeleteImage` call for it failed{}", code_suffix(.code.as_deref()))]
    BatchFailed { repository: RepoAddress, image: String, code: Option<String> },
    #[error("ECR refused to delete `{image}` from `{repository}`: {code}: {reason}")]
    ImageFailure { repository: RepoAddress, image: String, code: String, reason: String },
    #[error("ECR `GetAuthorizationToken` for `{registry}` returned no usable token")]
    TokenMissing { registry: RegistryHost },
    #[error(
        "The ECR endpoint `{endpoint}` is plain HTTP, and `{host}` is not named by `--insecure-registry`"
    )]
    InsecureEndpoint { endpoint: String, host: String },
    #[error(
        "`{0}` in `DOCKHAND_ECR_REGISTRIES` is not an ECR registry host (ACCOUNT.dkr.ecr.REGION.amazonaws.com)"
    )]
    NotEcrHost(String),
}

fn code_suffix(code: Option<&str>) -> String {
    code.map(|code| format!(" ({code})")).unwrap_or_default()
}

/// AWS error codes that mean the credentials are missing, wrong, expired or not allowed.
const CREDENTIAL_CODES: [&str; 7] = [
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "ExpiredToken",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "IncompleteSignature",
];

impl EcrError {
    fn api<E, R>(operation: &'static str, target: &impl ToString, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = error.code().map(str::to_owned);
        Self::Api { operation, target: target.to_string(), code, source: Box::new(error) }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::BatchFailed { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// `true` if and only if the credentials were refused (or none were found).
    fn is_credentials(&self) -> bool {
        if self.code().is_some_and(|code| CREDENTIAL_CODES.contains(&code)) {
            return true;
        }
        if let Self::Api { source, code: None, .. } = self {
            // the SDK reports a chain that found nothing as a dispatch failure whose cause
            // says so; it never reached the API
            let mut cause: Option<&(dyn StdError + 'static)> = Some(source.as_ref());
            while let Some(error) = cause {
                if error.to_string().contains("credentials") {
                    return true;
                }
                cause = error.source();
            }
        }
        false
    }
}

impl Classify for EcrError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::InsecureEndpoint { .. } | Self::NotEcrHost(_) => ExitStatus::Usage,
            _ if self.is_credentials() => ExitStatus::Usage,
            _ if self.code() == Some("RepositoryNotFoundException") => ExitStatus::Usage,
            _ => ExitStatus::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            _ if self.is_credentials() => Some(
                "give the job AWS credentials that are current (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE) and allowed the ECR actions in docs/registries.md".to_owned(),
            ),
            _ if self.code() == Some("RepositoryNotFoundException") => Some(
                "check the repository name and account, or publish once: dockhand creates ECR repositories on the first push".to_owned(),
            ),
            Self::InsecureEndpoint { host, .. } => {
                Some(format!("add `--insecure-registry {host}`, or use an https:// endpoint"))
            }
            Self::ImageFailure { .. } | Self::BatchFailed { .. } => {
                Some("rerun the cleanup; items already deleted are not deleted again".to_owned())
            }
            _ => None,
        }
    }
}

/// The ECR account and region of `host`; for another host (`--repo-implementation ecr`), the
/// region from `AWS_REGION`/`AWS_DEFAULT_REGION` (else the SDK's profile) and no account: ECR
/// then uses the default registry of the credentials' account.
fn account_and_region(host: &RegistryHost, env: &EnvMap) -> (Option<String>, Option<String>) {
    if let Some((account, region)) = ecr_account_and_region(host) {
        return (Some(account), Some(region));
    }
    let region = [env_vars::AWS_REGION, env_vars::AWS_DEFAULT_REGION]
        .into_iter()
        .find_map(|name| env.get(name).filter(|value| !value.is_empty()).cloned());
    (None, region)
}

/// Refuses a plain-HTTP endpoint override whose host is not named insecure.
fn check_endpoint(env: &EnvMap, insecure: &[RegistryHost]) -> Result<(), EcrError> {
    let Some(endpoint) = [env_vars::AWS_ENDPOINT_URL_ECR, env_vars::AWS_ENDPOINT_URL]
        .into_iter()
        .find_map(|name| env.get(name).filter(|value| !value.is_empty()))
    else {
        return Ok(());
    };
    let Some(rest) = endpoint.strip_prefix("http://") else { return Ok(()) };
    let host = rest.split('/').next().unwrap_or_default().to_owned();
    if named_insecure(insecure, &host) {
        Ok(())
    } else {
        Err(EcrError::InsecureEndpoint { endpoint: endpoint.clone(), host })
    }
}

/// The ECR API client of one region.
async fn sdk_client(region: Option<String>) -> aws_sdk_ecr::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    aws_sdk_ecr::Client::new(&loader.load().await)
}

/// Mints the registry login for `registry` with the caller's AWS credentials.
async fn mint(api: &aws_sdk_ecr::Client, registry: &RegistryHost) -> Result<MintedLogin, EcrError> {
    let answer = api
        .get_authorization_token()
        .send()
        .await
        .map_err(|error| EcrError::api("GetAuthorizationToken", &registry, error))?;
    let missing = || EcrError::TokenMissing { registry: registry.clone() };
    let data = answer.authorization_data().first().ok_or_else(missing)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.authorization_token().ok_or_else(missing)?)
        .map_err(|_| missing())?;
    let decoded = String::from_utf8(decoded).map_err(|_| missing())?;
    let (username, password) = decoded.split_once(':').ok_or_else(missing)?;
    if username.is_empty() || password.is_empty() {
        return Err(missing());
    }
    let expires = data.expires_at().and_then(|at| Timestamp::from_second(at.secs()).ok());
    if let Some(expires) = expires {
        log::info!("ECR login for `{registry}` minted, valid until {expires}");
    }
    Ok(MintedLogin {
        registry: registry.clone(),
        username: username.to_owned(),
        password: Secret::new(password),
    })
}

/// The ECR hosts `DOCKHAND_ECR_REGISTRIES` names (space- or comma-separated), in order.
pub fn extra_registries(env: &EnvMap) -> Result<Vec<RegistryHost>, EcrError> {
    let list = env.get(env_vars::DOCKHAND_ECR_REGISTRIES).map_or("", String::as_str);
    let mut hosts: Vec<RegistryHost> = Vec::new();
    for name in list.split([' ', ',', '\n']).filter(|name| !name.is_empty()) {
        let host: RegistryHost = name.parse().map_err(|_| EcrError::NotEcrHost(name.to_owned()))?;
        if ecr_account_and_region(&host).is_none() {
            return Err(EcrError::NotEcrHost(name.to_owned()));
        }
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

/// The registry logins of `registries` (ECR hosts, several accounts and regions): one
/// `GetAuthorizationToken` per region, its token valid for every account the credentials may
/// use there.
pub async fn job_logins(
    registries: &[RegistryHost],
    env: &EnvMap,
    insecure: &[RegistryHost],
) -> Result<Vec<MintedLogin>, EcrError> {
    check_endpoint(env, insecure)?;
    let mut by_region: BTreeMap<Option<String>, MintedLogin> = BTreeMap::new();
    let mut logins = Vec::new();
    for registry in registries {
        let (_, region) = account_and_region(registry, env);
        let login = if let Some(login) = by_region.get(&region) {
            MintedLogin { registry: registry.clone(), ..login.clone() }
        } else {
            let login = mint(&sdk_client(region.clone()).await, registry).await?;
            by_region.insert(region, login.clone());
            login
        };
        logins.push(login);
    }
    Ok(logins)
}

/// An ECR registry: the distribution client for reads and pushes, the ECR API for the rest.
#[derive(Debug)]
pub struct Ecr {
    client: Client,
    api: aws_sdk_ecr::Client,
    /// The account of the registry host; `None` for the credentials' own (non-ECR host).
    registry_id: Option<String>,
    capabilities: Capabilities,
    repositories: RepositoriesSection,
}

impl Ecr {
    /// Connects to the ECR registry of `repo`. Where `options` carries no credential for its
    /// host, the login is minted with `GetAuthorizationToken`.
    pub async fn connect(
        repo: &RepoAddress,
        mut options: super::distribution::ClientOptions,
        env: &EnvMap,
        capabilities: Capabilities,
        repositories: &RepositoriesSection,
    ) -> Result<Self, RegistryError> {
        check_endpoint(env, &options.insecure)?;
        let (registry_id, region) = account_and_region(&repo.registry, env);
        let api = sdk_client(region).await;
        if !options.credentials.contains_key(&repo.registry) {
            let login = mint(&api, &repo.registry).await?;
            log::debug!("no docker config entry for `{}`: using the ECR login", repo.registry);
            options.credentials.insert(
                repo.registry.clone(),
                Credential::Basic { username: login.username, password: login.password },
            );
        }
        Ok(Self {
            client: Client::new(options)?,
            api,
            registry_id,
            capabilities,
            repositories: *repositories,
        })
    }

    /// Removes `ids` (each a tag or a digest) from `repository` in calls of at most
    /// [`BATCH_DELETE_LIMIT`] ids; one result per id, in order. `ImageNotFound` is already gone.
    async fn batch_delete(
        &self,
        repository: &RepoAddress,
        ids: &[ImageIdentifier],
    ) -> Vec<Result<Removal, RegistryError>> {
        let mut results = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_DELETE_LIMIT) {
            let answer = self
                .api
                .batch_delete_image()
                .set_registry_id(self.registry_id.clone())
                .repository_name(&repository.path)
                .set_image_ids(Some(chunk.to_vec()))
                .send()
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(error) => {
                    // the whole call failed: its first id carries the cause, the others the code
                    let error = EcrError::api("BatchDeleteImage", &repository, error);
                    let code = error.code().map(str::to_owned);
                    results.push(Err(RegistryError::Ecr(error)));
                    results.extend(chunk[1..].iter().map(|id| {
                        Err(RegistryError::Ecr(EcrError::BatchFailed {
                            repository: repository.clone(),
                            image: describe(id),
                            code: code.clone(),
                        }))
                    }));
                    continue;
                }
            };
            log::debug!(
                "BatchDeleteImage `{repository}`: {} ids, {} deleted, {} failures",
                chunk.len(),
                answer.image_ids().len(),
                answer.failures().len()
            );
            for id in chunk {
                let failure = answer.failures().iter().find(|failure| {
                    failure.image_id().is_some_and(|failed| same_image(failed, id))
                });
                results.push(match failure {
                    None => Ok(Removal::Removed),
                    Some(failure) => {
                        let code = failure.failure_code().map_or("", |code| code.as_str());
                        if code == "ImageNotFound" {
                            Ok(Removal::AlreadyGone)
                        } else {
                            Err(RegistryError::Ecr(EcrError::ImageFailure {
                                repository: repository.clone(),
                                image: describe(id),
                                code: code.to_owned(),
                                reason: failure.failure_reason().unwrap_or_default().to_owned(),
                            }))
                        }
                    }
                });
            }
        }
        results
    }
}

/// `true` if and only if the failure's id names the same tag or digest as `id`.
fn same_image(failed: &ImageIdentifier, id: &ImageIdentifier) -> bool {
    match (id.image_tag(), id.image_digest()) {
        (Some(tag), _) => failed.image_tag() == Some(tag),
        (None, Some(digest)) => failed.image_digest() == Some(digest),
        (None, None) => false,
    }
}

fn describe(id: &ImageIdentifier) -> String {
    id.image_tag().or(id.image_digest()).unwrap_or_default().to_owned()
}

fn tag_id(tag: &Tag) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(tag.as_str()).build()
}

fn digest_id(digest: &Digest) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(digest.as_str()).build()
}

fn untagged(removal: Result<Removal, RegistryError>) -> Result<Untagged, RegistryError> {
    removal.map(|removal| match removal {
        Removal::Removed => Untagged::Removed,
        Removal::AlreadyGone => Untagged::AlreadyGone,
    })
}

impl Vendor for Ecr {
    fn client(&self) -> &Client {
        &self.client
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn ensure_repository(&self, repository: &RepoAddress) -> Result<(), RegistryError> {
        let mut request = self
            .api
            .create_repository()
            .set_registry_id(self.registry_id.clone())
            .repository_name(&repository.path);
        if let Some(scan_on_push) = self.repositories.scan_on_push {
            request = request.image_scanning_configuration(
                ImageScanningConfiguration::builder().scan_on_push(scan_on_push).build(),
            );
        }
        if let Some(mutability) = self.repositories.tag_mutability {
            request = request.image_tag_mutability(match mutability {
                TagMutability::Mutable => ImageTagMutability::Mutable,
                TagMutability::Immutable => ImageTagMutability::Immutable,
            });
        }
        match request.send().await {
            Ok(_) => {
                log::info!("ECR repository `{repository}` created");
                Ok(())
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(CreateRepositoryError::is_repository_already_exists_exception) =>
            {
                log::debug!("ECR repository `{repository}` exists");
                Ok(())
            }
            Err(error) => Err(EcrError::api("CreateRepository", &repository, error).into()),
        }
    }

    /// `imagePushedAt` of every tagged image, from `DescribeImages` in pages of 1,000. A
    /// repository ECR does not know has no tags: an empty map.
    async fn tag_times(
        &self,
        repository: &RepoAddress,
    ) -> Result<BTreeMap<Tag, Timestamp>, RegistryError> {
        let mut times = BTreeMap::new();
        let mut pages = self
            .api
            .describe_images()
            .set_registry_id(self.registry_id.clone())
            .repository_name(&repository.path)
            .filter(DescribeImagesFilter::builder().tag_status(TagStatus::Tagged).build())
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut pages_read = 0;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(DescribeImagesError::is_repository_not_found_exception) =>
                {
                    log::info!("ECR has no repository `{repository}`");
                    break;
                }
                Err(error) => {
                    return Err(EcrError::api("DescribeImages", &repository, error).into());
                }
            };
            pages_read += 1;
            for image in page.image_details() {
                let pushed =
                    image.image_pushed_at().and_then(|at| Timestamp::from_second(at.secs()).ok());
                for (tag, pushed) in image
                    .image_tags()
                    .iter()
                    .filter_map(|tag| Some((tag.parse::<Tag>().ok()?, pushed?)))
                {
                    times.insert(tag, pushed);
                }
            }
        }
        log::debug!("DescribeImages `{repository}`: {} tags in {pages_read} pages", times.len());
        Ok(times)
    }

    /// `ListImages` with `tagStatus = UNTAGGED`, pages of 1,000: the children of multi-arch
    /// indexes, signatures and images whose last tag moved away. A repository ECR does not know
    /// has none.
    async fn untagged_manifests(
        &self,
        repository: &RepoAddress,
    ) -> Result<Vec<Digest>, RegistryError> {
        let mut digests = Vec::new();
        let mut pages = self
            .api
            .list_images()
            .set_registry_id(self.registry_id.clone())
            .repository_name(&repository.path)
            .filter(ListImagesFilter::builder().tag_status(TagStatus::Untagged).build())
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(ListImagesError::is_repository_not_found_exception) =>
                {
                    break;
                }
                Err(error) => return Err(EcrError::api("ListImages", &repository, error).into()),
            };
            let listed = page.image_ids().iter().filter_map(ImageIdentifier::image_digest);
            digests.extend(listed.filter_map(|digest| digest.parse::<Digest>().ok()));
        }
        log::debug!("ListImages `{repository}`: {} untagged images", digests.len());
        Ok(digests)
    }

    /// ECR deletes through its API, always enabled: nothing to probe.
    async fn probe_deletes(
        &self,
        _repository: &RepoAddress,
    ) -> Result<DeleteSupport, RegistryError> {
        Ok(DeleteSupport::Enabled)
    }

    /// `BatchDeleteImage` by `imageTag`: ECR removes that tag and leaves the image while
    /// another tag is on it.
    async fn untag(&self, repository: &RepoAddress, tag: &Tag) -> Result<Untagged, RegistryError> {
        let mut results = self.untag_many(repository, std::slice::from_ref(tag)).await;
        results.pop().expect("one result per tag")
    }

    /// `BatchDeleteImage` by `imageDigest`: the image and every tag on it.
    async fn delete_manifest(
        &self,
        repository: &RepoAddress,
        digest: &Digest,
    ) -> Result<Removal, RegistryError> {
        let mut results = self.delete_manifests(repository, std::slice::from_ref(digest)).await;
        results.pop().expect("one result per digest")
    }

    fn batch_limit(&self) -> usize {
        BATCH_DELETE_LIMIT
    }

    async fn untag_many(
        &self,
        repository: &RepoAddress,
        tags: &[Tag],
    ) -> Vec<Result<Untagged, RegistryError>> {
        let ids: Vec<ImageIdentifier> = tags.iter().map(tag_id).collect();
        self.batch_delete(repository, &ids).await.into_iter().map(untagged).collect()
    }

    async fn delete_manifests(
        &self,
        repository: &RepoAddress,
        digests: &[Digest],
    ) -> Vec<Result<Removal, RegistryError>> {
        let ids: Vec<ImageIdentifier> = digests.iter().map(digest_id).collect();
        self.batch_delete(repository, &ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> RegistryHost {
        text.parse().unwrap()
    }

    #[test]
    fn account_and_region_come_from_the_host_else_the_environment() {
        let env: EnvMap =
            [(env_vars::AWS_DEFAULT_REGION.to_owned(), "eu-west-3".to_owned())].into();
        assert_eq!(
            account_and_region(&host("123456789012.dkr.ecr.eu-central-1.amazonaws.com"), &env),
            (Some("123456789012".to_owned()), Some("eu-central-1".to_owned()))
        );
        assert_eq!(
            account_and_region(&host("127.0.0.1:5000"), &env),
            (None, Some("eu-west-3".to_owned()))
        );
        let both: EnvMap = [
            (env_vars::AWS_REGION.to_owned(), "us-west-2".to_owned()),
            (env_vars::AWS_DEFAULT_REGION.to_owned(), "eu-west-3".to_owned()),
        ]
        .into();
        assert_eq!(
            account_and_region(&host("127.0.0.1:5000"), &both).1.as_deref(),
            Some("us-west-2")
        );
        assert_eq!(account_and_region(&host("127.0.0.1:5000"), &EnvMap::new()), (None, None));
    }

    #[test]
    fn plain_http_endpoints_need_the_insecure_flag() {
        let env: EnvMap =
            [(env_vars::AWS_ENDPOINT_URL.to_owned(), "http://127.0.0.1:4566".to_owned())].into();
        assert!(
            matches!(check_endpoint(&env, &[]), Err(EcrError::InsecureEndpoint { host, .. }) if host == "127.0.0.1:4566")
        );
        assert!(check_endpoint(&env, &[host("127.0.0.1:4566")]).is_ok());
        let https: EnvMap =
            [(env_vars::AWS_ENDPOINT_URL_ECR.to_owned(), "https://ecr.example".to_owned())].into();
        assert!(check_endpoint(&https, &[]).is_ok());
        assert!(check_endpoint(&EnvMap::new(), &[]).is_ok());
    }

    #[test]
    fn failures_match_their_id() {
        let tag = tag_id(&"v1".parse().unwrap());
        let digest = ImageIdentifier::builder().image_digest("sha256:aa").build();
        assert!(same_image(&tag, &tag));
        assert!(!same_image(&digest, &tag));
        assert!(same_image(&digest, &digest));
        assert_eq!(describe(&tag), "v1");
    }
}
