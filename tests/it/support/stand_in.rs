//! Stateful stand-ins for vendor APIs that cannot run here (no GitHub, no Docker Hub), each
//! paired with a real CNCF distribution registry for the `/v2/` side. The real services were
//! not used; tests against these are named `*_standin`.
//!
//! A [`StandIn`] opens two listeners on `127.0.0.1:0`, one std thread each, one connection at a
//! time (`Connection: close`):
//! - the **registry front** forwards every registry request to the real registry unchanged,
//!   except `DELETE`, which it refuses the way the vendor does (ghcr.io and Docker Hub both
//!   answer 405 `UNSUPPORTED`). Every manifest `PUT` that the registry accepts is recorded:
//!   that is where the API's state comes from, so API and registry always agree (a version
//!   per distinct digest, the tags pointing at it, when it was created and last tagged);
//! - the **API** answers only the endpoints dockhand uses, as the vendor's published API
//!   description gives them:
//!   - GitHub ([`Flavor::Github`]): the REST OpenAPI description published on npm as
//!     `@octokit/openapi` (`api.github.com.json`, paths `/users/{username}` and
//!     `/{orgs/{org}|users/{username}}/packages/{package_type}/{package_name}/versions[/{package_version_id}]`,
//!     schemas `package-version` with `metadata.container.tags`, `basic-error`), plus GitHub's
//!     documented rate-limit headers (`x-ratelimit-*`), `x-oauth-scopes` for classic tokens,
//!     `Link` pagination (`per_page` ≤ 100) and the secondary limit of 180 deletes a minute
//!     (403 with `retry-after`). See `github_api.rs`.
//!   - Docker Hub ([`Flavor::DockerHub`]): the Docker Hub API reference (docs.docker.com,
//!     "Docker Hub API"): `POST /v2/auth/token`, `POST /v2/users/login`,
//!     `GET /v2/namespaces/{namespace}/repositories/{repository}/tags` (`page_size` ≤ 100,
//!     absolute `next` URLs, `tag_last_pushed`) and
//!     `DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/`. See `docker_hub_api.rs`.
//!   - Artifactory ([`Flavor::Artifactory`]): JFrog's REST API documentation ("JFrog REST
//!     APIs": Delete Item, Get Folder Info, Docker "List Docker Tags", Error Responses). See
//!     `artifactory_api.rs`.
//!   - Nexus ([`Flavor::Nexus`]): Sonatype's Nexus Repository REST API (its Swagger
//!     description, `/service/rest/swagger.json`: search and components). See `nexus_api.rs`.
//!     Nexus's Docker API deletes manifests by digest, so this front forwards a digest
//!     `DELETE` (and forgets that version) and refuses only tag deletes.
//!   - Google ([`Flavor::Google`]): the OAuth 2.0 token endpoint (JWT bearer grant), STS
//!     `v1/token`, IAM `generateAccessToken`, and a registry front that wants an
//!     `oauth2accesstoken` login, untags on a tag `DELETE` and refuses a manifest `DELETE`
//!     while tags point at it. See `google_api.rs`.
//!
//!   - GitLab ([`Flavor::Gitlab`]): GitLab's REST API docs (docs.gitlab.com, "Container
//!     registry API"): `GET /api/v4/projects/:id/registry/repositories`,
//!     `GET …/registry/repositories/:repository_id/tags[/:tag_name]` and
//!     `DELETE …/tags/:tag_name`, with `PRIVATE-TOKEN` / `JOB-TOKEN` and GitLab's error bodies.
//!     Its front passes registry deletes on. See `gitlab_api.rs`.
//!   - Harbor ([`Flavor::Harbor`]): Harbor's swagger (v2.0): the artifact list and the tag and
//!     artifact deletes, basic auth, tag immutability rules. See `harbor_api.rs`.
//!   - Quay ([`Flavor::Quay`]): Quay's API docs (the `tag` resource: list and delete, bearer
//!     tokens). See `quay_api.rs`.
//!
//! All can answer the next API requests with 429 + `Retry-After` ([`StandIn::throttle`]), and
//! the front can fail chosen registry reads with 500 ([`StandIn::fail_registry_gets`]).
//! Every request is logged as `API METHOD target` or `REGISTRY METHOD target`. `Drop` stops
//! and joins both threads.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dockhand::reference::{Digest, RepoAddress};
use dockhand::registry::distribution::{Client, ClientOptions, Credential};
use jiff::{SignedDuration, Timestamp};

use super::binary::{Dockhand, dockhand};
use super::proxy::{self, Request, Response};

/// A docker config `auths` entry for `user` and `password`.
pub fn basic_login(user: &str, password: &str) -> serde_json::Value {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    serde_json::json!({ "auth": auth })
}

/// Which vendor the API plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Github,
    DockerHub,
    Artifactory,
    Nexus,
    Gitlab,
    Harbor,
    Quay,
    /// Artifact Registry / gcr.io and Google's token endpoints (`google_api.rs`).
    Google,
    /// Azure Container Registry on the front, Entra ID on the API port (`acr_api.rs`).
    Acr,
}

/// A manifest the registry holds, as the vendor's API sees it.
#[derive(Debug, Clone)]
pub struct Version {
    pub id: u64,
    pub digest: String,
    /// Tags with the time each was last pushed.
    pub tags: Vec<(String, Timestamp)>,
    pub created: Timestamp,
    pub updated: Timestamp,
}

/// What a GitHub token is and may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubToken {
    /// A classic personal access token with these scopes (sent back in `x-oauth-scopes`).
    Classic(&'static str),
    /// A fine-grained token or an App installation token: no `x-oauth-scopes` header.
    FineGrained,
    /// A workflow's `GITHUB_TOKEN`; `admin` says whether its repository has the Admin role on
    /// the packages (else deletes answer 403 `Resource not accessible by integration`).
    Workflow { admin: bool },
}

/// A GitLab token the API knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitlabToken {
    /// A personal, group or project access token: `delete` says whether it has the `api` scope
    /// and the Developer role (else deletes answer 403).
    Access { delete: bool },
    /// A job's `CI_JOB_TOKEN`: it reaches only `project`, with the pipeline user's role.
    Job { project: String, delete: bool },
}

/// What a Docker Hub access token may do (the PAT permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubAccess {
    ReadWriteDelete,
    ReadWrite,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) registry_port: u16,
    pub(super) api_port: u16,
    /// Repository path → its versions, oldest first.
    pub(super) repositories: BTreeMap<String, Vec<Version>>,
    pub(super) next_id: u64,
    pub(super) log: Vec<String>,
    /// GitHub owners and whether each is an organisation.
    pub(super) owners: BTreeMap<String, bool>,
    pub(super) github_tokens: BTreeMap<String, GithubToken>,
    /// GitHub pull requests, `owner/repo#number` → (open, merged).
    pub(super) pull_requests: BTreeMap<String, (bool, bool)>,
    /// Docker Hub identifier → (secret, access).
    pub(super) hub_users: BTreeMap<String, (String, HubAccess)>,
    /// Docker Hub access tokens handed out → (identifier, access).
    pub(super) hub_tokens: BTreeMap<String, (String, HubAccess)>,
    /// Artifactory, Nexus and ACR (admin) users → (password, may delete).
    pub(super) registry_users: BTreeMap<String, (String, bool)>,
    /// Artifactory access tokens (sent as Bearer) → may delete.
    pub(super) access_tokens: BTreeMap<String, bool>,
    /// Docker Hub: `/v2/auth/token` is not there (an older Hub): only `/v2/users/login` works.
    pub(super) hub_no_auth_token: bool,
    /// Harbor user (or robot account) → (password, may delete).
    pub(super) harbor_users: BTreeMap<String, (String, bool)>,
    pub(super) harbor_projects: std::collections::BTreeSet<String>,
    /// Harbor tag immutability rules: tag patterns (`v*`, or an exact name).
    pub(super) harbor_immutable: Vec<String>,
    /// Quay bearer tokens → whether each may write (`repo:write`).
    pub(super) quay_tokens: BTreeMap<String, bool>,
    /// GitLab project path → project id.
    pub(super) gitlab_projects: BTreeMap<String, u64>,
    pub(super) gitlab_tokens: BTreeMap<String, GitlabToken>,
    /// GitLab registry repository path → its id, handed out when first listed.
    pub(super) gitlab_repository_ids: BTreeMap<String, u64>,
    /// GitLab merge requests, (project path, iid) → `state` (`opened`, `closed`, `merged`, `locked`).
    pub(super) gitlab_merge_requests: BTreeMap<(String, u64), &'static str>,
    /// Answer the next API requests with 429 and this `Retry-After`.
    pub(super) throttle: VecDeque<u64>,
    /// Enforce at most this many deletes in any 60 s (GitHub's secondary limit).
    pub(super) deletes_per_minute: Option<usize>,
    pub(super) recent_deletes: VecDeque<Instant>,
    /// When each accepted delete arrived.
    pub(super) accepted_deletes: Vec<Instant>,
    /// Deletes refused for the per-minute limit.
    pub(super) delete_limit_hits: usize,
    pub(super) remaining: u64,
    /// Registry `GET`s whose target contains one of these answer 500.
    pub(super) failing_gets: Vec<String>,
    /// Google service accounts → their public key (PEM).
    pub(super) google_accounts: BTreeMap<String, String>,
    /// Google workload identity providers (audience) → (the subject token they accept, the
    /// service account their principal may impersonate).
    pub(super) google_federation: BTreeMap<String, (String, Option<String>)>,
    /// Google access tokens handed out (and the seeding one): what the registry accepts.
    pub(super) google_tokens: std::collections::BTreeSet<String>,
    /// Federated (STS) tokens → their audience.
    pub(super) google_federated: BTreeMap<String, String>,
    /// Google: a tag `DELETE` deletes the manifest (and every tag on it), as a registry that
    /// does not untag would.
    pub(super) google_tag_delete_takes_manifest: bool,
    /// ACR and Entra ID.
    pub(super) acr: super::acr_api::AcrState,
}

impl State {
    /// Records that `reference` (a tag or a digest) of `repository` now names `digest`.
    fn record_put(&mut self, repository: &str, reference: &str, digest: &str) {
        let now = Timestamp::now();
        let versions = self.repositories.entry(repository.to_owned()).or_default();
        let is_tag = !reference.contains(':');
        if is_tag {
            for version in versions.iter_mut() {
                version.tags.retain(|(tag, _)| tag != reference);
            }
        }
        let position = versions.iter().position(|version| version.digest == digest);
        let position = position.unwrap_or_else(|| {
            self.next_id += 1;
            versions.push(Version {
                id: self.next_id,
                digest: digest.to_owned(),
                tags: Vec::new(),
                created: now,
                updated: now,
            });
            versions.len() - 1
        });
        if is_tag {
            let version = &mut versions[position];
            version.tags.push((reference.to_owned(), now));
            version.updated = now;
        }
    }

    /// Deletes the manifest `digest` of `repository` on the real registry (removing every tag
    /// on it) and forgets its version.
    pub(super) fn delete_manifest(&mut self, repository: &str, digest: &str) {
        let request = Request {
            method: "DELETE".to_owned(),
            target: format!("/v2/{repository}/manifests/{digest}"),
            headers: format!("Host: 127.0.0.1:{}\r\n", self.registry_port),
            body: Vec::new(),
        };
        let raw = proxy::forward(&request, &request.target, self.registry_port)
            .expect("the registry answers a DELETE");
        let response = proxy::parse_response(&raw);
        assert!(
            response.status_line.contains(" 202 ") || response.status_line.contains(" 404 "),
            "registry DELETE of {repository}@{digest}: {}",
            response.status_line
        );
        if let Some(versions) = self.repositories.get_mut(repository) {
            versions.retain(|version| version.digest != digest);
        }
    }

    /// A delete is allowed now under the per-minute limit (and is counted), else the seconds
    /// until one is.
    pub(super) fn take_delete(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        let Some(limit) = self.deletes_per_minute else {
            self.accepted_deletes.push(now);
            return Ok(());
        };
        while self.recent_deletes.front().is_some_and(|at| now - *at >= Duration::from_secs(60)) {
            self.recent_deletes.pop_front();
        }
        if self.recent_deletes.len() >= limit {
            self.delete_limit_hits += 1;
            let oldest = self.recent_deletes.front().copied().expect("limit > 0");
            let wait = Duration::from_secs(60).saturating_sub(now - oldest);
            return Err(wait.as_secs() + 1);
        }
        self.recent_deletes.push_back(now);
        self.accepted_deletes.push(now);
        Ok(())
    }
}

/// A parsed API request.
pub(super) struct ApiRequest {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: BTreeMap<String, String>,
    pub(super) authorization: Option<String>,
    /// Every header line, as sent.
    pub(super) headers: String,
    pub(super) body: Vec<u8>,
}

impl ApiRequest {
    /// The value of header `name` (any case).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        proxy::header_in(&self.headers, name)
    }
}

/// `text` with each `%XX` decoded once.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        if let Some(byte) = escaped {
            decoded.push(byte);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An API answer.
pub(super) struct ApiResponse {
    pub(super) status: u16,
    pub(super) headers: Vec<String>,
    pub(super) body: String,
}

impl ApiResponse {
    pub(super) fn json(status: u16, body: &serde_json::Value) -> Self {
        Self { status, headers: Vec::new(), body: body.to_string() }
    }

    pub(super) fn with_header(mut self, header: String) -> Self {
        self.headers.push(header);
        self
    }
}

pub struct StandIn {
    flavor: Flavor,
    api_port: u16,
    front_port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
}

impl StandIn {
    /// Starts a `flavor` API and a registry front for the registry at `127.0.0.1:registry_port`.
    pub fn start(flavor: Flavor, registry_port: u16) -> Self {
        let api = TcpListener::bind("127.0.0.1:0").expect("bind API");
        let front = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let api_port = api.local_addr().expect("API address").port();
        let front_port = front.local_addr().expect("front address").port();
        let state = Arc::new(Mutex::new(State {
            registry_port,
            api_port,
            remaining: 5000,
            google_tokens: [super::google_api::SEED_TOKEN.to_owned()].into(),
            registry_users: [(
                super::acr_api::SEED_USER.to_owned(),
                (super::acr_api::SEED_PASSWORD.to_owned(), true),
            )]
            .into(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let serve = |listener: TcpListener, api: bool| {
            let stop = Arc::clone(&stop);
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = if api {
                            serve_api(stream, flavor, &state)
                        } else {
                            serve_front(stream, flavor, &state)
                        };
                    }
                }
            })
        };
        let threads = vec![serve(api, true), serve(front, false)];
        Self { flavor, api_port, front_port, stop, threads, state }
    }

    /// The API base URL (`GITHUB_API_URL`, `DOCKHAND_DOCKERHUB_API_URL`).
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// `127.0.0.1:PORT` of the registry front: what `--repo` names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.front_port)
    }

    /// A distribution client that talks plain HTTP to the front, anonymously (Google: with a
    /// seeding token the front accepts; ACR: as its seeding admin user).
    pub fn client(&self) -> Client {
        let host: dockhand::reference::RegistryHost = self.host().parse().expect("front host");
        let mut credentials = BTreeMap::new();
        if self.flavor == Flavor::Google {
            credentials.insert(
                host.clone(),
                Credential::Basic {
                    username: "oauth2accesstoken".to_owned(),
                    password: dockhand::secret::Secret::new(super::google_api::SEED_TOKEN),
                },
            );
        }
        if self.flavor == Flavor::Acr {
            credentials.insert(
                host.clone(),
                Credential::Basic {
                    username: super::acr_api::SEED_USER.to_owned(),
                    password: dockhand::secret::Secret::new(super::acr_api::SEED_PASSWORD),
                },
            );
        }
        Client::new(ClientOptions { insecure: vec![host], credentials, ..ClientOptions::default() })
            .expect("client")
    }

    /// The repository `path` behind the front.
    pub fn repository(&self, path: &str) -> RepoAddress {
        format!("{}/{path}", self.host()).parse().expect("repository")
    }

    /// Pushes through the front a small image under `tag`, `days` old: its config's `created`
    /// and the API's times agree.
    pub async fn image(&self, client: &Client, path: &str, tag: &str, days: i64) -> Digest {
        let minutes = days * 24 * 60;
        let created = super::seed::minutes_ago(minutes);
        let digest =
            super::seed::push_image(client, &self.repository(path), Some(tag), &created).await;
        self.set_time(path, tag, Timestamp::now() - SignedDuration::from_mins(minutes));
        digest
    }

    /// `dockhand cleanup --output json FLAGS` in `dir` on the images repo `FRONT/acme` as
    /// `implementation`, with the API at `api_variable` and plain HTTP to front and API.
    pub fn cleanup(
        &self,
        dir: &std::path::Path,
        implementation: &str,
        api_variable: &str,
        flags: &[&str],
    ) -> Dockhand {
        let mut argv = vec!["cleanup", "--output", "json"];
        argv.extend_from_slice(flags);
        dockhand(dir, &argv)
            .env("DOCKHAND_REPO", &format!("{}/acme", self.host()))
            .env("DOCKHAND_REPO_IMPLEMENTATION", implementation)
            .env("DOCKHAND_INSECURE_REGISTRIES", &self.insecure_hosts())
            .env(api_variable, &self.api_url())
    }

    /// `DOCKHAND_INSECURE_REGISTRIES` for talking plain HTTP to the front and the API.
    pub fn insecure_hosts(&self) -> String {
        format!("{},127.0.0.1:{}", self.host(), self.api_port)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// A GitHub owner (`organisation`: an org, else a user).
    pub fn add_owner(&self, owner: &str, organisation: bool) {
        self.state.lock().unwrap().owners.insert(owner.to_owned(), organisation);
    }

    /// A pull request of `repository` (`owner/repo`): open, or closed (merged or not).
    pub fn add_pull_request(&self, repository: &str, number: u64, open: bool, merged: bool) {
        let key = format!("{repository}#{number}");
        self.state.lock().unwrap().pull_requests.insert(key, (open, merged));
    }

    pub fn add_github_token(&self, token: &str, kind: GithubToken) {
        self.state.lock().unwrap().github_tokens.insert(token.to_owned(), kind);
    }

    /// A Harbor project.
    pub fn add_harbor_project(&self, project: &str) {
        self.state.lock().unwrap().harbor_projects.insert(project.to_owned());
    }

    /// A Harbor user or robot account; `delete` says whether it may delete artifacts and tags.
    pub fn add_harbor_user(&self, user: &str, password: &str, delete: bool) {
        self.state
            .lock()
            .unwrap()
            .harbor_users
            .insert(user.to_owned(), (password.to_owned(), delete));
    }

    /// A tag immutability rule for tags matching `pattern` (`v*`, or an exact name).
    pub fn add_harbor_immutable_rule(&self, pattern: &str) {
        self.state.lock().unwrap().harbor_immutable.push(pattern.to_owned());
    }

    /// A Quay token; `write` says whether it has `repo:write`.
    pub fn add_quay_token(&self, token: &str, write: bool) {
        self.state.lock().unwrap().quay_tokens.insert(token.to_owned(), write);
    }

    /// A GitLab project at `path` (`group/project`), with id `id`.
    pub fn add_gitlab_project(&self, path: &str, id: u64) {
        self.state.lock().unwrap().gitlab_projects.insert(path.to_owned(), id);
    }

    /// A merge request `iid` of the GitLab project at `path`, in `state` (`opened`, `closed`,
    /// `merged` or `locked`).
    pub fn add_merge_request(&self, path: &str, iid: u64, state: &'static str) {
        self.state.lock().unwrap().gitlab_merge_requests.insert((path.to_owned(), iid), state);
    }

    pub fn add_gitlab_token(&self, token: &str, kind: GitlabToken) {
        self.state.lock().unwrap().gitlab_tokens.insert(token.to_owned(), kind);
    }

    pub fn add_hub_user(&self, identifier: &str, secret: &str, access: HubAccess) {
        self.state
            .lock()
            .unwrap()
            .hub_users
            .insert(identifier.to_owned(), (secret.to_owned(), access));
    }

    /// An Artifactory or Nexus user; `may_delete` is the Delete permission on the repository.
    pub fn add_user(&self, username: &str, password: &str, may_delete: bool) {
        self.state
            .lock()
            .unwrap()
            .registry_users
            .insert(username.to_owned(), (password.to_owned(), may_delete));
    }

    /// An Artifactory access token (Bearer); `may_delete` as for [`StandIn::add_user`].
    pub fn add_access_token(&self, token: &str, may_delete: bool) {
        self.state.lock().unwrap().access_tokens.insert(token.to_owned(), may_delete);
    }

    /// A docker config directory in `dir` whose entry for the front is `entry` (e.g.
    /// [`basic_login`]); its path, for `DOCKER_CONFIG`.
    pub fn docker_config(&self, dir: &std::path::Path, entry: &serde_json::Value) -> String {
        let config_dir = dir.join("docker");
        std::fs::create_dir_all(&config_dir).expect("docker config dir");
        let config = serde_json::json!({"auths": {self.host(): entry}});
        std::fs::write(config_dir.join("config.json"), config.to_string()).expect("config.json");
        config_dir.display().to_string()
    }

    /// A Google service account whose key's public half is `public_pem`.
    pub fn add_google_account(&self, email: &str, public_pem: &str) {
        self.state.lock().unwrap().google_accounts.insert(email.to_owned(), public_pem.to_owned());
    }

    /// A Google workload identity provider `audience` accepting `subject_token`, whose
    /// principal may impersonate `impersonable`.
    pub fn add_google_federation(
        &self,
        audience: &str,
        subject_token: &str,
        impersonable: Option<&str>,
    ) {
        self.state.lock().unwrap().google_federation.insert(
            audience.to_owned(),
            (subject_token.to_owned(), impersonable.map(str::to_owned)),
        );
    }

    /// An Entra ID application of `tenant` that proves itself with `proof`.
    pub fn add_entra_app(&self, client: &str, tenant: &str, proof: super::acr_api::AppProof) {
        self.state.lock().unwrap().acr.apps.insert(client.to_owned(), (tenant.to_owned(), proof));
    }

    /// A role on the ACR registry for the identity `identity` (a client id, or an admin user
    /// added with [`StandIn::add_user`]); `delete` says whether it includes deleting.
    pub fn add_acr_role(&self, identity: &str, delete: bool) {
        self.state.lock().unwrap().acr.roles.insert(identity.to_owned(), delete);
    }

    /// Locks `key` (`repo:tag` or `repo@digest`) in ACR: `deleteEnabled`, `writeEnabled`.
    pub fn lock_acr(&self, key: &str, delete_enabled: bool, write_enabled: bool) {
        self.state
            .lock()
            .unwrap()
            .acr
            .locks
            .insert(key.to_owned(), (delete_enabled, write_enabled));
    }

    /// Gives the machine the managed identity `identity`.
    pub fn set_managed_identity(&self, identity: &str) {
        self.state.lock().unwrap().acr.managed_identity = Some(identity.to_owned());
    }

    /// Makes GitHub's OIDC service hand out `token` to callers with `request_token`.
    pub fn set_github_oidc(&self, request_token: &str, token: &str) {
        self.state.lock().unwrap().acr.github_oidc =
            Some((request_token.to_owned(), token.to_owned()));
    }

    /// Makes the Google front's tag `DELETE` delete the manifest with every tag on it.
    pub fn google_tag_delete_takes_manifest(&self) {
        self.state.lock().unwrap().google_tag_delete_takes_manifest = true;
    }

    /// Makes `POST /v2/auth/token` answer 404, as on a Hub without it.
    pub fn hub_without_auth_token(&self) {
        self.state.lock().unwrap().hub_no_auth_token = true;
    }

    /// Answers the next `times` API requests with 429 and `Retry-After: retry_after`.
    pub fn throttle(&self, times: usize, retry_after: u64) {
        self.state.lock().unwrap().throttle.extend(std::iter::repeat_n(retry_after, times));
    }

    /// Answers every registry `GET` whose target contains `pattern` with 500 (a manifest that
    /// cannot be read).
    pub fn fail_registry_gets(&self, pattern: &str) {
        self.state.lock().unwrap().failing_gets.push(pattern.to_owned());
    }

    /// Serves every registry read again.
    pub fn clear_registry_failures(&self) {
        self.state.lock().unwrap().failing_gets.clear();
    }

    /// Refuses deletes beyond `limit` in any 60 s with 403 + `retry-after`.
    pub fn limit_deletes_per_minute(&self, limit: usize) {
        self.state.lock().unwrap().deletes_per_minute = Some(limit);
    }

    /// Deletes refused for the per-minute limit so far.
    pub fn delete_limit_hits(&self) -> usize {
        self.state.lock().unwrap().delete_limit_hits
    }

    /// Accepted deletes per minute, from the first to the last one (`None` below two).
    pub fn deletes_per_minute(&self) -> Option<f64> {
        let state = self.state.lock().unwrap();
        let (first, last) = (state.accepted_deletes.first()?, state.accepted_deletes.last()?);
        let span = (*last - *first).as_secs_f64();
        #[expect(clippy::cast_precision_loss, reason = "a count of deletes")]
        let intervals = (state.accepted_deletes.len() - 1) as f64;
        (span > 0.0).then(|| intervals * 60.0 / span)
    }

    /// Sets when the version carrying `tag` in `repository` was created and last tagged.
    pub fn set_time(&self, repository: &str, tag: &str, at: Timestamp) {
        let mut state = self.state.lock().unwrap();
        let versions = state.repositories.get_mut(repository).expect("known repository");
        let version = versions
            .iter_mut()
            .find(|version| version.tags.iter().any(|(name, _)| name == tag))
            .unwrap_or_else(|| panic!("no version tagged `{tag}`"));
        version.created = at;
        version.updated = at;
        for (name, pushed) in &mut version.tags {
            if name == tag {
                *pushed = at;
            }
        }
    }

    /// The versions of `repository`, oldest first.
    pub fn versions(&self, repository: &str) -> Vec<Version> {
        self.state.lock().unwrap().repositories.get(repository).cloned().unwrap_or_default()
    }

    /// Every request so far, `API METHOD target` or `REGISTRY METHOD target`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// The API requests so far.
    pub fn api_requests(&self) -> Vec<String> {
        self.log().into_iter().filter(|line| line.starts_with("API ")).collect()
    }

    /// Every request that changes something: API deletes and registry writes (token requests
    /// are not).
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|line| {
                let method = line.split(' ').nth(1).unwrap_or_default();
                matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
                    && !line.contains("/v2/auth/token")
                    && !line.contains("/v2/users/login")
                    && !matches!(line.split(' ').nth(2), Some("/token" | "/v1/token"))
                    && !line.ends_with(":generateAccessToken")
                    && !line.contains("/oauth2/")
            })
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.api_port));
        let _ = TcpStream::connect(("127.0.0.1", self.front_port));
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn serve_front(mut stream: TcpStream, flavor: Flavor, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = proxy::read_request(&stream)?;
    let (registry_port, failing) = {
        let mut state = state.lock().unwrap();
        state.log.push(format!("REGISTRY {} {}", request.method, request.target));
        let failing = request.method == "GET"
            && state.failing_gets.iter().any(|pattern| request.target.contains(pattern.as_str()));
        (state.registry_port, failing)
    };
    if failing {
        let body = serde_json::json!({"errors": [{"code": "UNKNOWN", "message": "unknown error"}]});
        let response = Response {
            status_line: "HTTP/1.1 500 Internal Server Error".to_owned(),
            headers: vec!["Content-Type: application/json".to_owned()],
            body: body.to_string().into_bytes(),
        };
        return proxy::write_response(&mut stream, &response);
    }
    if matches!(flavor, Flavor::Google | Flavor::Acr) {
        let mut locked = state.lock().unwrap();
        let answer = if flavor == Flavor::Google {
            super::google_api::front(&mut locked, &request)
        } else {
            super::acr_api::front(&mut locked, &request)
        };
        drop(locked);
        if let Some(response) = answer {
            return proxy::write_response(&mut stream, &response);
        }
    }
    let digest_delete = request.method == "DELETE"
        && manifest_target(&request.target).is_some_and(|(_, reference)| reference.contains(':'));
    // GitLab's registry deletes (the distribution registry behind answers tag deletes as an
    // instance before GitLab 16.4 does), Nexus's and ACR's delete digests; the others refuse
    // every registry delete
    if request.method == "DELETE"
        && flavor != Flavor::Gitlab
        && !(matches!(flavor, Flavor::Nexus | Flavor::Acr) && digest_delete)
    {
        let message = match flavor {
            Flavor::Github => "delete is not supported on this registry; use the Packages API",
            Flavor::DockerHub | Flavor::Gitlab | Flavor::Harbor | Flavor::Quay | Flavor::Google => {
                "The operation is unsupported."
            }
            Flavor::Artifactory => "dockhand sends no registry DELETE to Artifactory",
            Flavor::Nexus => "dockhand sends no registry tag DELETE to Nexus",
            Flavor::Acr => "dockhand sends no registry tag DELETE to ACR",
        };
        let body = serde_json::json!({"errors": [{"code": "UNSUPPORTED", "message": message}]});
        let response = Response {
            status_line: "HTTP/1.1 405 Method Not Allowed".to_owned(),
            headers: vec!["Content-Type: application/json".to_owned()],
            body: body.to_string().into_bytes(),
        };
        return proxy::write_response(&mut stream, &response);
    }
    let raw = proxy::forward(&request, &request.target, registry_port)?;
    if request.method == "PUT"
        && let Some((repository, reference)) = manifest_target(&request.target)
    {
        let response = proxy::parse_response(&raw);
        if response.status_line.contains(" 201 ") {
            let digest = Digest::sha256_of(&request.body).to_string();
            state.lock().unwrap().record_put(&repository, &reference, &digest);
        }
    }
    if digest_delete
        && let Some((repository, digest)) = manifest_target(&request.target)
        && proxy::parse_response(&raw).status_line.contains(" 202 ")
        && let Some(versions) = state.lock().unwrap().repositories.get_mut(&repository)
    {
        versions.retain(|version| version.digest != digest);
    }
    stream.write_all(&raw)
}

/// `(repository, reference)` of a `/v2/<repository>/manifests/<reference>` target.
fn manifest_target(target: &str) -> Option<(String, String)> {
    let path = target.split('?').next()?.strip_prefix("/v2/")?;
    let (repository, reference) = path.rsplit_once("/manifests/")?;
    Some((repository.to_owned(), reference.to_owned()))
}

fn serve_api(mut stream: TcpStream, flavor: Flavor, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let raw = proxy::read_request(&stream)?;
    let url = url::Url::parse(&format!("http://api{}", raw.target)).expect("request target");
    let authorization = raw.header("authorization").map(str::to_owned);
    let request = ApiRequest {
        method: raw.method.clone(),
        path: url.path().to_owned(),
        query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        authorization,
        headers: raw.headers.clone(),
        body: raw.body,
    };
    let response = {
        let mut state = state.lock().unwrap();
        state.log.push(format!("API {} {}", raw.method, raw.target));
        if let Some(retry_after) = state.throttle.pop_front() {
            let body = match flavor {
                Flavor::Github => serde_json::json!({
                    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                })
                .to_string(),
                Flavor::DockerHub => serde_json::json!({"detail": "Rate limit exceeded"}).to_string(),
                // GitLab's throttle answers plain text
                Flavor::Gitlab => "Retry later\n".to_owned(),
                Flavor::Harbor => super::harbor_api::error(429, "TOO_MANY_REQUESTS", "too many requests").body,
                Flavor::Quay => super::quay_api::error(429, "too_many_requests", "Too Many Requests").body,
                Flavor::Artifactory => serde_json::json!({
                    "errors": [{"status": 429, "message": "Too Many Requests"}],
                })
                .to_string(),
                Flavor::Nexus => serde_json::json!("Too Many Requests").to_string(),
                Flavor::Google => serde_json::json!({
                    "error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"},
                })
                .to_string(),
                Flavor::Acr => serde_json::json!({
                    "error": "temporarily_unavailable", "error_description": "AADSTS50196: too many requests",
                })
                .to_string(),
            };
            ApiResponse { status: 429, headers: vec![format!("Retry-After: {retry_after}")], body }
        } else {
            match flavor {
                Flavor::Github => super::github_api::handle(&mut state, &request),
                Flavor::DockerHub => super::docker_hub_api::handle(&mut state, &request),
                Flavor::Artifactory => super::artifactory_api::handle(&mut state, &request),
                Flavor::Nexus => super::nexus_api::handle(&mut state, &request),
                Flavor::Gitlab => super::gitlab_api::handle(&mut state, &request),
                Flavor::Harbor => super::harbor_api::handle(&mut state, &request),
                Flavor::Quay => super::quay_api::handle(&mut state, &request),
                Flavor::Google => super::google_api::handle(&mut state, &request),
                Flavor::Acr => super::acr_api::handle(&mut state, &request),
            }
        }
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", response.status, reason(response.status));
    head.push_str("Content-Type: application/json; charset=utf-8\r\n");
    for header in &response.headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    let head =
        format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len());
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        _ => "Status",
    }
}
