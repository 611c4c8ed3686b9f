//! Every environment variable dockhand reads or exports, one documented constant each.
//!
//! Owns names only, no logic. Only `main.rs` reads the process environment (into an
//! [`EnvMap`]); every other module takes the map, so tests pass maps built from the GitHub and
//! GitLab documentation instead of mutating the process environment.

use std::collections::BTreeMap;

/// The process environment as read once by `main.rs`, or built by a test.
pub type EnvMap = BTreeMap<String, String>;

// --- dockhand's own settings (flags have the same meaning) ---

/// Project file, like `--config`.
pub const DOCKHAND_CONFIG: &str = "DOCKHAND_CONFIG";
/// Images repo, like `--repo`; exported by `ci-env`.
pub const DOCKHAND_REPO: &str = "DOCKHAND_REPO";
/// Registry implementation, like `--repo-implementation`; exported by `ci-env` (never `auto`).
pub const DOCKHAND_REPO_IMPLEMENTATION: &str = "DOCKHAND_REPO_IMPLEMENTATION";
/// Naming mode, like `--repo-mode`.
pub const DOCKHAND_REPO_MODE: &str = "DOCKHAND_REPO_MODE";
/// Docker config directory dockhand reads credentials from, like `--docker-config`.
pub const DOCKHAND_DOCKER_CONFIG: &str = "DOCKHAND_DOCKER_CONFIG";
/// Comma-separated hosts spoken to over plain HTTP, like `--insecure-registry`.
pub const DOCKHAND_INSECURE_REGISTRIES: &str = "DOCKHAND_INSECURE_REGISTRIES";
/// Longest wait for a connection, like `--connect-timeout` (e.g. `15s`).
pub const DOCKHAND_CONNECT_TIMEOUT: &str = "DOCKHAND_CONNECT_TIMEOUT";
/// Longest wait for more bytes of an answer, like `--read-timeout` (e.g. `30s`).
pub const DOCKHAND_READ_TIMEOUT: &str = "DOCKHAND_READ_TIMEOUT";
/// Longest wait for one whole request, like `--request-timeout` (e.g. `2m`).
pub const DOCKHAND_REQUEST_TIMEOUT: &str = "DOCKHAND_REQUEST_TIMEOUT";
/// `text` or `json`, like `--output`.
pub const DOCKHAND_OUTPUT: &str = "DOCKHAND_OUTPUT";
/// Builder backend, like `--builder` (`build`, `publish` and `run`).
pub const DOCKHAND_BUILDER: &str = "DOCKHAND_BUILDER";
/// `--build-timeout`: how long one image's build may take (`30m`, `1h30m`) before the builder
/// is stopped and the command fails (exit 2). Unset: no limit.
pub const DOCKHAND_BUILD_TIMEOUT: &str = "DOCKHAND_BUILD_TIMEOUT";
/// `--platform`: the platforms every image is built for, comma-separated (`linux/amd64,linux/arm64`),
/// instead of the images' `platforms:` (`build` and `run`).
pub const DOCKHAND_PLATFORMS: &str = "DOCKHAND_PLATFORMS";
/// `--jobs`: how many images `build` and `run` build at the same time (a whole number, at
/// least 1; default: the project file's `jobs:`, else 1).
pub const DOCKHAND_JOBS: &str = "DOCKHAND_JOBS";

// --- generic runner inputs and the CI facts `ci-env` exports ---

/// Registry host for `ci-env generic`.
pub const DOCKHAND_REGISTRY: &str = "DOCKHAND_REGISTRY";
/// Registry user for `ci-env generic`.
pub const DOCKHAND_REGISTRY_USERNAME: &str = "DOCKHAND_REGISTRY_USERNAME";
/// Registry password or token for `ci-env generic`. Never exported, never printed.
pub const DOCKHAND_REGISTRY_PASSWORD: &str = "DOCKHAND_REGISTRY_PASSWORD";
/// Full commit SHA of the build.
pub const DOCKHAND_SHA: &str = "DOCKHAND_SHA";
/// Branch or tag name of the build.
pub const DOCKHAND_REF_NAME: &str = "DOCKHAND_REF_NAME";
/// `branch` or `tag`.
pub const DOCKHAND_REF_TYPE: &str = "DOCKHAND_REF_TYPE";
/// The git tag being built, when the build is for a tag.
pub const DOCKHAND_TAG: &str = "DOCKHAND_TAG";
/// The source repository's web address for the `org.opencontainers.image.source` label and
/// annotation, before the CI's (`GITHUB_SERVER_URL`/`GITHUB_REPOSITORY`, `CI_PROJECT_URL`) and
/// the checkout's `origin` remote (credentials stripped).
pub const DOCKHAND_SOURCE: &str = "DOCKHAND_SOURCE";
/// Pull/merge request number, when the build is for one.
pub const DOCKHAND_PR_NUMBER: &str = "DOCKHAND_PR_NUMBER";
/// Head commit of the pull/merge request (not the synthetic merge commit).
pub const DOCKHAND_PR_HEAD_SHA: &str = "DOCKHAND_PR_HEAD_SHA";
/// The repository's default branch.
pub const DOCKHAND_DEFAULT_BRANCH: &str = "DOCKHAND_DEFAULT_BRANCH";
/// The CI job id.
pub const DOCKHAND_JOB_ID: &str = "DOCKHAND_JOB_ID";
/// The CI pipeline (workflow run) id.
pub const DOCKHAND_PIPELINE_ID: &str = "DOCKHAND_PIPELINE_ID";
/// Which CI `ci-env` detected: `github`, `gitlab` or `generic`.
pub const DOCKHAND_CI: &str = "DOCKHAND_CI";

// --- docker ---

/// Docker's own config directory variable; `ci-env` exports it.
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// A whole docker `config.json` in one variable (GitLab runners, some CI systems).
pub const DOCKER_AUTH_CONFIG: &str = "DOCKER_AUTH_CONFIG";

// --- registry vendor APIs (credentials and base URLs for native deletes) ---

/// GitHub token for the Packages API (`github` implementation), before `GITHUB_TOKEN` and the
/// docker config password of the registry host. Never printed.
pub const DOCKHAND_GITHUB_TOKEN: &str = "DOCKHAND_GITHUB_TOKEN";
/// Docker Hub user (or organisation) name for the Hub API (`dockerhub` implementation), with
/// `DOCKHAND_DOCKERHUB_TOKEN`; else the docker config entry of the registry host.
pub const DOCKHAND_DOCKERHUB_USERNAME: &str = "DOCKHAND_DOCKERHUB_USERNAME";
/// Docker Hub access token (personal or organisation) or password for the Hub API. Never
/// printed.
pub const DOCKHAND_DOCKERHUB_TOKEN: &str = "DOCKHAND_DOCKERHUB_TOKEN";
/// Docker Hub API base URL (default `https://hub.docker.com`; a stand-in in tests).
pub const DOCKHAND_DOCKERHUB_API_URL: &str = "DOCKHAND_DOCKERHUB_API_URL";
/// Base URL of the vendor API that runs on the registry's own server (`artifactory`, `nexus`,
/// `harbor` with `/api/v2.0` below it, `quay` with `/api/v1`), default `https://<registry host>`
/// (`http://` for a host named by `--insecure-registry`); set it where the API has another
/// host or port (Nexus's REST API beside a Docker connector).
pub const DOCKHAND_REGISTRY_API_URL: &str = "DOCKHAND_REGISTRY_API_URL";
/// Artifactory repository key of the images repo when its path does not start with it
/// (subdomain or port access method); then the whole path is the image path.
pub const DOCKHAND_ARTIFACTORY_REPO_KEY: &str = "DOCKHAND_ARTIFACTORY_REPO_KEY";
/// Name of the Nexus repository behind the registry host (`nexus` implementation): the images'
/// path does not carry it, and the REST API needs it to find components.
pub const DOCKHAND_NEXUS_REPOSITORY: &str = "DOCKHAND_NEXUS_REPOSITORY";

/// GitLab access token (personal, group or project) with the `api` scope for the GitLab REST
/// API (`gitlab` implementation: tag ages, tag deletes where the registry lacks the OCI tag
/// delete), before `CI_JOB_TOKEN`. Never printed.
pub const DOCKHAND_GITLAB_TOKEN: &str = "DOCKHAND_GITLAB_TOKEN";
/// Quay OAuth application token (or robot token) with `repo:write` for Quay's API (`quay`
/// implementation: tag ages and tag deletes). Never printed.
pub const DOCKHAND_QUAY_TOKEN: &str = "DOCKHAND_QUAY_TOKEN";

// --- builders (read by `build`; the tools read them too) ---

/// buildah's storage driver (e.g. `vfs` in unprivileged containers); passed as `--storage-driver`.
pub const STORAGE_DRIVER: &str = "STORAGE_DRIVER";
/// buildah's isolation (`chroot` in containers without user namespaces); passed as `--isolation`.
pub const BUILDAH_ISOLATION: &str = "BUILDAH_ISOLATION";
/// Seconds since the Unix epoch to write into images instead of the build time (config
/// `created`, history, layer file times, the `org.opencontainers.image.created` label), so that
/// rebuilding one commit gives one digest. Read by `build` and `run` (default: the commit's
/// time when known); set for docker and buildx, passed to buildah as `--timestamp`.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// docker's choice between BuildKit (`1`) and the classic builder (`0`); left to the user's
/// environment, set to `1` for a `docker build` with secrets when unset (`--secret` needs it).
pub const DOCKER_BUILDKIT: &str = "DOCKER_BUILDKIT";
/// The buildx builder instance `docker buildx build` uses (docker's own variable).
pub const BUILDX_BUILDER: &str = "BUILDX_BUILDER";
/// Set by `build` for buildah (and podman's docker shim) when registries are named insecure: a
/// per-build `registries.conf` that allows plain HTTP to those registries only.
pub const CONTAINERS_REGISTRIES_CONF: &str = "CONTAINERS_REGISTRIES_CONF";

// --- process ---

/// Home directory; `~/.docker` is the default docker config.
pub const HOME: &str = "HOME";
/// Executable search path, used to find credential helpers and builders.
pub const PATH: &str = "PATH";
/// Temp directory for the job's docker config outside GitHub Actions, and for each build's
/// temporary files (`dockhand-build-*`, removed when the build ends; `/var/tmp` when unset).
pub const TMPDIR: &str = "TMPDIR";
/// Log filter for env_logger.
pub const RUST_LOG: &str = "RUST_LOG";
/// Disables colours when set.
pub const NO_COLOR: &str = "NO_COLOR";

// --- GitHub Actions (docs.github.com: "Variables" reference) ---

/// `true` on every GitHub Actions runner.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// `owner/repo`; may contain uppercase.
pub const GITHUB_REPOSITORY: &str = "GITHUB_REPOSITORY";
/// The owner of the repository.
pub const GITHUB_REPOSITORY_OWNER: &str = "GITHUB_REPOSITORY_OWNER";
/// The user that triggered the run; the registry user for ghcr.io.
pub const GITHUB_ACTOR: &str = "GITHUB_ACTOR";
/// Token for ghcr.io and the REST API; only present when the workflow maps it into `env:`.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// Commit SHA (on `pull_request`, the synthetic merge commit).
pub const GITHUB_SHA: &str = "GITHUB_SHA";
/// Full ref, e.g. `refs/heads/main`.
pub const GITHUB_REF: &str = "GITHUB_REF";
/// Short ref name, e.g. `main`, `v1.2.3`, `42/merge`.
pub const GITHUB_REF_NAME: &str = "GITHUB_REF_NAME";
/// `branch` or `tag`.
pub const GITHUB_REF_TYPE: &str = "GITHUB_REF_TYPE";
/// Source branch of a pull request.
pub const GITHUB_HEAD_REF: &str = "GITHUB_HEAD_REF";
/// Target branch of a pull request.
pub const GITHUB_BASE_REF: &str = "GITHUB_BASE_REF";
/// The triggering event, e.g. `push`, `pull_request`.
pub const GITHUB_EVENT_NAME: &str = "GITHUB_EVENT_NAME";
/// Path of the event payload JSON.
pub const GITHUB_EVENT_PATH: &str = "GITHUB_EVENT_PATH";
/// Workflow run id.
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
/// Job id (the job's key in the workflow).
pub const GITHUB_JOB: &str = "GITHUB_JOB";
/// `https://github.com` or the GHES URL.
pub const GITHUB_SERVER_URL: &str = "GITHUB_SERVER_URL";
/// REST API base URL (GHES, or a stand-in in tests); also where the `github` implementation
/// deletes package versions.
pub const GITHUB_API_URL: &str = "GITHUB_API_URL";
/// File that later steps read variables from (`NAME=value` lines).
pub const GITHUB_ENV: &str = "GITHUB_ENV";
/// File of step outputs (`name=value` lines).
pub const GITHUB_OUTPUT: &str = "GITHUB_OUTPUT";
/// Markdown file shown on the run's summary page.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// Per-job temp directory, emptied at the start and end of each job.
pub const RUNNER_TEMP: &str = "RUNNER_TEMP";

// --- GitLab CI (docs.gitlab.com: "Predefined CI/CD variables") ---

/// `true` in every GitLab CI job.
pub const GITLAB_CI: &str = "GITLAB_CI";
/// Registry host[:port] of the instance.
pub const CI_REGISTRY: &str = "CI_REGISTRY";
/// The project's images repo, e.g. `registry.gitlab.com/group/project`.
pub const CI_REGISTRY_IMAGE: &str = "CI_REGISTRY_IMAGE";
/// Registry user (`gitlab-ci-token`).
pub const CI_REGISTRY_USER: &str = "CI_REGISTRY_USER";
/// Registry password (the job token).
pub const CI_REGISTRY_PASSWORD: &str = "CI_REGISTRY_PASSWORD";
/// The job token; also the GitLab REST API's credential when `DOCKHAND_GITLAB_TOKEN` is unset
/// (its own project only).
pub const CI_JOB_TOKEN: &str = "CI_JOB_TOKEN";
/// Commit SHA.
pub const CI_COMMIT_SHA: &str = "CI_COMMIT_SHA";
/// Branch or tag name.
pub const CI_COMMIT_REF_NAME: &str = "CI_COMMIT_REF_NAME";
/// Branch name; unset in tag and merge request pipelines.
pub const CI_COMMIT_BRANCH: &str = "CI_COMMIT_BRANCH";
/// Tag name; set only in tag pipelines.
pub const CI_COMMIT_TAG: &str = "CI_COMMIT_TAG";
/// When `CI_COMMIT_SHA` was made, ISO 8601 (`2022-01-31T16:47:55Z`): the default
/// `SOURCE_DATE_EPOCH` of builds.
pub const CI_COMMIT_TIMESTAMP: &str = "CI_COMMIT_TIMESTAMP";
/// Merge request number within the project.
pub const CI_MERGE_REQUEST_IID: &str = "CI_MERGE_REQUEST_IID";
/// Head commit of the merge request's source branch.
pub const CI_MERGE_REQUEST_SOURCE_BRANCH_SHA: &str = "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA";
/// The project's default branch.
pub const CI_DEFAULT_BRANCH: &str = "CI_DEFAULT_BRANCH";
/// Pipeline id.
pub const CI_PIPELINE_ID: &str = "CI_PIPELINE_ID";
/// Job id.
pub const CI_JOB_ID: &str = "CI_JOB_ID";
/// The project's numeric id: which project's merge requests git-aware retention asks about.
pub const CI_PROJECT_ID: &str = "CI_PROJECT_ID";
/// The project's web address.
pub const CI_PROJECT_URL: &str = "CI_PROJECT_URL";
/// REST API base URL of the instance; the GitLab API dockhand calls (default
/// `https://gitlab.com/api/v4`).
pub const CI_API_V4_URL: &str = "CI_API_V4_URL";

// --- AWS (ECR); the AWS SDK also reads its own credential variables ---

/// Region of the ECR API when the registry host does not name one (`--repo-implementation ecr`
/// on another host).
pub const AWS_REGION: &str = "AWS_REGION";
/// Region, when `AWS_REGION` is not set.
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// ECR API base URL (a local emulator in tests); plain `http://` only for a host named by `--insecure-registry`.
pub const AWS_ENDPOINT_URL_ECR: &str = "AWS_ENDPOINT_URL_ECR";
/// Base URL of every AWS API, when `AWS_ENDPOINT_URL_ECR` is not set.
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// Space- or comma-separated ECR registry hosts `ci-env` logs in to besides the images repo's (other accounts or regions).
pub const DOCKHAND_ECR_REGISTRIES: &str = "DOCKHAND_ECR_REGISTRIES";

// --- Google (GCR, Artifact Registry) ---

/// A Google credentials file: a service-account key or a workload identity federation
/// (external account) configuration. With it, dockhand mints the `oauth2accesstoken` login of
/// Google registries (`ci-env`, `login`, and any command without a docker config entry for the
/// host); the token endpoints are the ones the file names.
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";

// --- Azure (ACR): Microsoft Entra ID credentials, named as Azure's own tools name them ---

/// The application (client) id of the service principal or of the managed identity.
pub const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
/// The directory (tenant) id the service principal belongs to.
pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
/// A client secret of the service principal: with `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`,
/// dockhand mints the ACR login of `*.azurecr.io` registries.
pub const AZURE_CLIENT_SECRET: &str = "AZURE_CLIENT_SECRET";
/// A file holding the CI's OIDC token (workload identity federation), exchanged at Entra ID
/// as a client assertion, with `AZURE_CLIENT_ID` and `AZURE_TENANT_ID`.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// Entra ID authority (default `https://login.microsoftonline.com`; sovereign clouds have their
/// own); plain `http://` only for a host named by `--insecure-registry`.
pub const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// GitHub Actions' OIDC token service, set in jobs with `permissions: id-token: write`: used for
/// workload identity federation with Entra ID when `AZURE_FEDERATED_TOKEN_FILE` is not set.
pub const ACTIONS_ID_TOKEN_REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The bearer token for `ACTIONS_ID_TOKEN_REQUEST_URL`.
pub const ACTIONS_ID_TOKEN_REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// `true`: take the Entra token from the machine's managed identity (Azure VMs, scale sets and
/// self-hosted runners on them; the user-assigned one `AZURE_CLIENT_ID` names, if set).
pub const DOCKHAND_AZURE_MANAGED_IDENTITY: &str = "DOCKHAND_AZURE_MANAGED_IDENTITY";
/// The managed identity endpoint (default
/// `http://169.254.169.254/metadata/identity/oauth2/token`, Azure's instance metadata service).
pub const DOCKHAND_AZURE_IMDS_URL: &str = "DOCKHAND_AZURE_IMDS_URL";
/// The Entra token's scope (default `https://management.azure.com/.default`; registries that
/// refuse Azure Resource Manager tokens want `https://containerregistry.azure.net/.default`).
pub const DOCKHAND_AZURE_SCOPE: &str = "DOCKHAND_AZURE_SCOPE";
