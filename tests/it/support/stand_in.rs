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
//!
//! Both can answer the next API requests with 429 + `Retry-After` ([`StandIn::throttle`]), and
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
use dockhand::registry::distribution::{Client, ClientOptions};
use jiff::{SignedDuration, Timestamp};

use super::binary::{Dockhand, dockhand};
use super::proxy::{self, Request, Response};

/// Which vendor the API plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Github,
    DockerHub,
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
    /// Docker Hub identifier → (secret, access).
    pub(super) hub_users: BTreeMap<String, (String, HubAccess)>,
    /// Docker Hub access tokens handed out → (identifier, access).
    pub(super) hub_tokens: BTreeMap<String, (String, HubAccess)>,
    /// Docker Hub: `/v2/auth/token` is not there (an older Hub): only `/v2/users/login` works.
    pub(super) hub_no_auth_token: bool,
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
    pub(super) body: Vec<u8>,
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

    /// A distribution client that talks plain HTTP to the front, anonymously.
    pub fn client(&self) -> Client {
        Client::new(ClientOptions {
            insecure: vec![self.host().parse().expect("front host")],
            ..ClientOptions::default()
        })
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

    pub fn add_github_token(&self, token: &str, kind: GithubToken) {
        self.state.lock().unwrap().github_tokens.insert(token.to_owned(), kind);
    }

    pub fn add_hub_user(&self, identifier: &str, secret: &str, access: HubAccess) {
        self.state
            .lock()
            .unwrap()
            .hub_users
            .insert(identifier.to_owned(), (secret.to_owned(), access));
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

    /// Every request that changes something: API deletes and registry writes.
    pub fn writes(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|line| {
                let method = line.split(' ').nth(1).unwrap_or_default();
                matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
                    && !line.contains("/v2/auth/token")
                    && !line.contains("/v2/users/login")
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
    if request.method == "DELETE" {
        let message = match flavor {
            Flavor::Github => "delete is not supported on this registry; use the Packages API",
            Flavor::DockerHub => "The operation is unsupported.",
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
    let authorization = raw.headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("authorization").then(|| value.trim().to_owned())
    });
    let request = ApiRequest {
        method: raw.method.clone(),
        path: url.path().to_owned(),
        query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        authorization,
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
                }),
                Flavor::DockerHub => serde_json::json!({"detail": "Rate limit exceeded"}),
            };
            ApiResponse::json(429, &body).with_header(format!("Retry-After: {retry_after}"))
        } else {
            match flavor {
                Flavor::Github => super::github_api::handle(&mut state, &request),
                Flavor::DockerHub => super::docker_hub_api::handle(&mut state, &request),
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
