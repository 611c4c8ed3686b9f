//! The OCI distribution client: what every registry implementation speaks underneath.
//!
//! Owns [`Client`]: challenge authentication (Basic, Bearer tokens cached per scope, identity
//! tokens), credential checks against `/v2/`, bounded retries of transient failures, and a
//! limit on requests in flight; the registry operations themselves (tags, manifests, blobs,
//! deletes, referrers) are in `operations.rs`. Knows no vendor: quirks belong to the vendor
//! files, which call this client. Never retries a 4xx other than 429, and never puts a secret
//! into an error or a log line.

pub mod auth;
pub mod blob;
pub mod error;
pub mod manifest;
mod operations;
pub mod retry;
pub mod urls;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;
use url::Url;

pub use auth::Credential;
use auth::{BearerChallenge, Challenge, Token, TokenCache, TokenKey, TokenScope};
pub use blob::BlobSource;
use blob::FileBody;
pub use error::{Account, Code, DistributionError, ErrorEnvelope, Operation};
pub use manifest::{
    Descriptor, ImageConfig, Manifest, ManifestContent, ManifestHead, TOMBSTONE_ANNOTATION,
};
pub use operations::{
    BlobTransfer, DeleteSupport, Referrers, ReferrersSource, RegistryApiReply, TagListing,
};
pub use retry::RetryPolicy;
pub use urls::ManifestRef;

use crate::reference::RegistryHost;

/// The `User-Agent` dockhand sends.
pub const USER_AGENT: &str = concat!("dockhand/", env!("CARGO_PKG_VERSION"));

/// Largest body read from a ping or token response.
const SMALL_BODY_LIMIT: usize = 1 << 20;

/// How the client connects, retries and limits itself.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Hosts spoken to over plain HTTP; every other host gets HTTPS.
    pub insecure: Vec<RegistryHost>,
    pub user_agent: String,
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for more bytes of an answer once it started (a stalled or dripping server).
    pub read_timeout: Duration,
    /// Longest wait for one whole request, body included. A blob streamed from a file gets
    /// one more second per MiB ([`blob::upload_timeout`]), so large layers are not cut off.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// Requests in flight at once, across every registry this client talks to.
    pub concurrency: usize,
    /// What to present to each registry; registries not listed get [`Credential::Anonymous`].
    /// [`Client::verify_credentials`] takes its credential as an argument instead.
    pub credentials: BTreeMap<RegistryHost, Credential>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            user_agent: USER_AGENT.to_owned(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            concurrency: 16,
            credentials: BTreeMap::new(),
        }
    }
}

/// An OCI distribution client. Cheap to clone: clones share connections, tokens and the
/// concurrency limit.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    permits: Semaphore,
    /// The challenge each registry answered with, by API base URL.
    challenges: Mutex<HashMap<Url, Challenge>>,
    tokens: TokenCache,
    /// Held while fetching a token, so concurrent requests wait for one fetch.
    token_fetch: tokio::sync::Mutex<()>,
}

/// What a request sends.
#[derive(Clone)]
enum Payload {
    Bytes(Vec<u8>),
    /// Streamed from a file, afresh for each try.
    File(FileBody),
}

/// A request, kept so it can be sent again.
#[derive(Clone)]
struct Outgoing {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Payload>,
    /// Safe to repeat after a broken connection or a 502/503/504 (429 is always repeatable).
    idempotent: bool,
    body_limit: usize,
}

impl Outgoing {
    fn new(method: Method, url: Url) -> Self {
        let idempotent = method != Method::POST && method != Method::PATCH;
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            body_limit: SMALL_BODY_LIMIT,
        }
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// A registry's answer, body read in full.
struct Exchange {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    /// The body was longer than the request's limit and was cut there.
    truncated: bool,
}

impl Exchange {
    #[expect(
        clippy::unnecessary_box_returns,
        reason = "the envelope only ever goes into a boxed field of `DistributionError`"
    )]
    fn envelope(&self) -> Box<ErrorEnvelope> {
        ErrorEnvelope::parse(&self.body).into()
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    fn challenges(&self) -> Vec<Challenge> {
        auth::parse_challenges(
            self.headers
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|value| value.to_str().ok()),
        )
    }
}

/// `true` if and only if the failure is TLS refusing the connection (an untrusted or invalid
/// certificate, a failed handshake): something retrying cannot change.
fn is_tls_failure(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<rustls::Error>() {
            return true;
        }
        // rustls reaches reqwest inside (nested) `io::Error`s, whose `source()` skips the error
        // they wrap: step into that one instead
        source = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}

/// The challenge the client answers: Bearer if offered (it carries scopes), else Basic.
fn preferred(challenges: Vec<Challenge>) -> Option<Challenge> {
    let mut basic = None;
    for challenge in challenges {
        match challenge {
            Challenge::Bearer(_) => return Some(challenge),
            Challenge::Basic => basic = Some(Challenge::Basic),
        }
    }
    basic
}

/// `true` if and only if `host` (`host[:port]`, as a URL names it) is one of the hosts named
/// with `--insecure-registry`, or the API host of one: the only hosts spoken to over plain HTTP.
pub fn named_insecure(insecure: &[RegistryHost], host: &str) -> bool {
    insecure.iter().any(|named| named.as_str() == host || named.api_host() == host)
}

/// Redirects followed per request before giving up (reqwest's own default).
const MAX_REDIRECTS: usize = 10;

/// Follows redirects (registries send blobs to a CDN on another host; reqwest drops the
/// `Authorization` header there), but never to plain HTTP on a host not named insecure: an
/// HTTPS registry must not be able to turn a request into cleartext.
fn redirect_policy(insecure: &[RegistryHost]) -> reqwest::redirect::Policy {
    let insecure = insecure.to_vec();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let target = attempt.url();
        if target.scheme() != "https" && !named_insecure(&insecure, &urls::host_port(target)) {
            let refusal = format!(
                "refused a redirect to `{target}`: plain HTTP goes only to hosts named with --insecure-registry"
            );
            return attempt.error(refusal);
        }
        attempt.follow()
    })
}

/// Set once a client was built on a machine without CA certificates.
static NO_CA_CERTIFICATES: AtomicBool = AtomicBool::new(false);

/// `true` once [`http_client`] found no CA certificates on this machine: every HTTPS
/// certificate is then refused, and the TLS error says why.
pub fn no_ca_certificates() -> bool {
    NO_CA_CERTIFICATES.load(Ordering::Relaxed)
}

/// The HTTP client every request to a registry or a vendor API goes through: the process's
/// ring TLS (installed here if nothing is yet), `options`' user agent and timeouts, and
/// redirects that never reach plain HTTP on a host not named insecure. On a machine without CA
/// certificates (an image `FROM scratch` without them, `SSL_CERT_FILE` pointing nowhere) the
/// system's verifier cannot start: the client then trusts no certificate at all, so plain HTTP
/// to the registries named insecure still works and HTTPS fails with a hint saying why.
pub fn http_client(options: &ClientOptions) -> Result<reqwest::Client, reqwest::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = || {
        reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .timeout(options.request_timeout)
            .redirect(redirect_policy(&options.insecure))
    };
    builder().build().or_else(|error| {
        log::debug!("no CA certificates to verify HTTPS with ({error}): trusting none");
        NO_CA_CERTIFICATES.store(true, Ordering::Relaxed);
        builder().tls_certs_only(std::iter::empty()).build()
    })
}

impl Client {
    /// Builds a client. Installs the ring TLS provider for the process if none is installed yet,
    /// so library users and tests need no setup.
    pub fn new(options: ClientOptions) -> Result<Self, DistributionError> {
        let http = http_client(&options).map_err(DistributionError::ClientBuild)?;
        let permits = Semaphore::new(options.concurrency.max(1));
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                options,
                permits,
                challenges: Mutex::new(HashMap::new()),
                tokens: TokenCache::default(),
                token_fetch: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// `true` if and only if `host` (`host[:port]`) was named insecure.
    fn is_insecure_host(&self, host: &str) -> bool {
        named_insecure(&self.inner.options.insecure, host)
    }

    fn is_insecure(&self, registry: &RegistryHost) -> bool {
        self.is_insecure_host(registry.as_str()) || self.is_insecure_host(registry.api_host())
    }

    fn base(&self, registry: &RegistryHost) -> Url {
        urls::base(registry, self.is_insecure(registry))
    }

    /// Checks `credential` against the registry the way `docker login` does: `GET /v2/`, answer
    /// its Basic or Bearer challenge (a token with no scope), and ask `/v2/` again.
    ///
    /// Returns [`DistributionError::CredentialsRejected`] when the registry or its token service
    /// refuses the credential, [`DistributionError::CredentialsMissing`] when it wants one and
    /// none was given, and [`DistributionError::Unreachable`] when no connection succeeds.
    pub async fn verify_credentials(
        &self,
        registry: &RegistryHost,
        credential: &Credential,
    ) -> Result<(), DistributionError> {
        let url = urls::ping(&self.base(registry));
        let operation = Operation { method: Method::GET, target: format!("{registry}/v2/") };
        let first =
            self.send(registry, &operation, &Outgoing::new(Method::GET, url.clone())).await?;
        if first.status.is_success() {
            return Ok(());
        }
        if first.status != StatusCode::UNAUTHORIZED {
            return Err(DistributionError::Registry {
                operation,
                status: first.status,
                envelope: first.envelope(),
            });
        }
        let authorization = match preferred(first.challenges()) {
            Some(Challenge::Basic) => credential.basic_header().ok_or_else(|| {
                DistributionError::CredentialsMissing { registry: registry.clone() }
            })?,
            Some(Challenge::Bearer(challenge)) => {
                let token = self.fetch_token(registry, &challenge, &[], credential).await?;
                auth::bearer_header(&token.token).ok_or_else(|| {
                    DistributionError::TokenService {
                        registry: registry.clone(),
                        realm: challenge.realm.clone(),
                        problem: "the token is not a valid header value".to_owned(),
                    }
                })?
            }
            None => {
                return Err(DistributionError::Registry {
                    operation,
                    status: first.status,
                    envelope: first.envelope(),
                });
            }
        };
        let again = Outgoing::new(Method::GET, url).header(header::AUTHORIZATION, authorization);
        let second = self.send(registry, &operation, &again).await?;
        if second.status.is_success() {
            Ok(())
        } else if second.status == StatusCode::UNAUTHORIZED
            || second.status == StatusCode::FORBIDDEN
        {
            Err(DistributionError::CredentialsRejected {
                registry: registry.clone(),
                account: credential.account(),
                envelope: second.envelope(),
            })
        } else {
            Err(DistributionError::Registry {
                operation,
                status: second.status,
                envelope: second.envelope(),
            })
        }
    }

    /// Asks the challenge's token service for a token covering `scopes`.
    async fn fetch_token(
        &self,
        registry: &RegistryHost,
        challenge: &BearerChallenge,
        scopes: &[TokenScope],
        credential: &Credential,
    ) -> Result<Token, DistributionError> {
        let token_service = |problem: String| DistributionError::TokenService {
            registry: registry.clone(),
            realm: challenge.realm.clone(),
            problem,
        };
        let realm: Url = challenge
            .realm
            .parse()
            .map_err(|_| token_service("the realm is not a URL".to_owned()))?;
        match realm.scheme() {
            "https" => {}
            "http" => {
                // the realm's own host must be named insecure: naming the registry does not
                // let its credentials travel in cleartext to another host
                let allowed = self.is_insecure_host(&urls::host_port(&realm));
                if !allowed && *credential != Credential::Anonymous {
                    return Err(DistributionError::InsecureRealm {
                        registry: registry.clone(),
                        url: challenge.realm.clone(),
                    });
                }
            }
            other => {
                return Err(token_service(format!(
                    "the realm has the unsupported scheme `{other}`"
                )));
            }
        }
        let service = challenge.service.as_deref();
        let outgoing = match credential {
            Credential::IdentityToken(refresh_token) => {
                let mut outgoing = Outgoing::new(Method::POST, realm.clone()).header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                outgoing.body = Some(Payload::Bytes(
                    auth::refresh_token_form(service, scopes, refresh_token).into_bytes(),
                ));
                // exchanging a refresh token has no side effect: repeat it like a GET
                outgoing.idempotent = true;
                outgoing
            }
            Credential::Basic { .. } => {
                let url = auth::token_url(&realm, service, scopes, credential);
                let outgoing = Outgoing::new(Method::GET, url);
                match credential.basic_header() {
                    Some(value) => outgoing.header(header::AUTHORIZATION, value),
                    None => outgoing,
                }
            }
            Credential::Anonymous => {
                Outgoing::new(Method::GET, auth::token_url(&realm, service, scopes, credential))
            }
        };
        let mut shown = realm.clone();
        shown.set_query(None);
        let operation = Operation { method: outgoing.method.clone(), target: shown.to_string() };
        let exchange = self.send(registry, &operation, &outgoing).await?;
        if exchange.truncated {
            return Err(token_service("the token response is larger than 1 MiB".to_owned()));
        }
        if exchange.status.is_success() {
            return auth::parse_token_response(&exchange.body).map_err(token_service);
        }
        if exchange.status == StatusCode::UNAUTHORIZED || exchange.status == StatusCode::FORBIDDEN {
            return Err(match credential {
                Credential::Anonymous => {
                    DistributionError::CredentialsMissing { registry: registry.clone() }
                }
                _ => DistributionError::CredentialsRejected {
                    registry: registry.clone(),
                    account: credential.account(),
                    envelope: exchange.envelope(),
                },
            });
        }
        Err(token_service(format!("HTTP {} ({})", exchange.status, exchange.envelope())))
    }

    /// The credential configured for `registry`.
    fn credential(&self, registry: &RegistryHost) -> Credential {
        self.inner.options.credentials.get(registry).cloned().unwrap_or_default()
    }

    fn known_challenge(&self, base: &Url) -> Option<Challenge> {
        let challenges = self.inner.challenges.lock().unwrap_or_else(PoisonError::into_inner);
        challenges.get(base).cloned()
    }

    fn learn_challenge(&self, base: &Url, challenge: Challenge) {
        let mut challenges = self.inner.challenges.lock().unwrap_or_else(PoisonError::into_inner);
        challenges.insert(base.clone(), challenge);
    }

    /// The `Authorization` value for a request needing `scopes`, once the registry's challenge
    /// is known (none before: the first request goes out bare and learns it), with the token's
    /// cache key when it is a Bearer token.
    async fn authorization(
        &self,
        registry: &RegistryHost,
        base: &Url,
        credential: &Credential,
        scopes: &[TokenScope],
    ) -> Result<Option<(HeaderValue, Option<TokenKey>)>, DistributionError> {
        let missing = || DistributionError::CredentialsMissing { registry: registry.clone() };
        match self.known_challenge(base) {
            None => Ok(None),
            Some(Challenge::Basic) => {
                Ok(Some((credential.basic_header().ok_or_else(missing)?, None)))
            }
            Some(Challenge::Bearer(challenge)) => {
                let key = TokenKey::new(&challenge, scopes);
                let token = if let Some(token) = self.inner.tokens.get(&key) {
                    token
                } else {
                    let _fetching = self.inner.token_fetch.lock().await;
                    if let Some(token) = self.inner.tokens.get(&key) {
                        token
                    } else {
                        let token = self
                            .fetch_token(registry, &challenge, key.scopes(), credential)
                            .await?;
                        self.inner.tokens.insert(key.clone(), &token);
                        token.token
                    }
                };
                let value =
                    auth::bearer_header(&token).ok_or_else(|| DistributionError::TokenService {
                        registry: registry.clone(),
                        realm: challenge.realm.clone(),
                        problem: "the token is not a valid header value".to_owned(),
                    })?;
                Ok(Some((value, Some(key))))
            }
        }
    }

    /// Sends `outgoing` with the registry's credentials for `scopes`, answering challenges:
    /// the first 401 teaches the client the registry's challenge, an `insufficient_scope`
    /// widens the scopes once, and a cached token that stopped working is replaced once. A
    /// request to another origin (an upload location on a storage host) goes without them.
    async fn execute(
        &self,
        registry: &RegistryHost,
        operation: &Operation,
        outgoing: &Outgoing,
        scopes: &[TokenScope],
    ) -> Result<Exchange, DistributionError> {
        let base = self.base(registry);
        if !urls::same_origin(&outgoing.url, &base) {
            return self.send(registry, operation, outgoing).await;
        }
        let credential = self.credential(registry);
        let mut scopes = scopes.to_vec();
        let (mut learned, mut widened, mut renewed) = (false, false, false);
        loop {
            let mut request = outgoing.clone();
            let authorization = self.authorization(registry, &base, &credential, &scopes).await?;
            let mut token_key = None;
            if let Some((value, key)) = authorization {
                request.headers.insert(header::AUTHORIZATION, value);
                token_key = key;
            }
            let sent_credentials = request.headers.contains_key(header::AUTHORIZATION);
            let exchange = self.send(registry, operation, &request).await?;
            if exchange.status != StatusCode::UNAUTHORIZED {
                return Ok(exchange);
            }
            let Some(challenge) = preferred(exchange.challenges()) else { return Ok(exchange) };
            if !sent_credentials && !learned {
                learned = true;
                self.learn_challenge(&base, challenge);
                continue;
            }
            if let Challenge::Bearer(bearer) = &challenge {
                if bearer.insufficient_scope() && !widened {
                    widened = true;
                    let before = scopes.len();
                    for scope in &bearer.scopes {
                        if !scopes.contains(scope) {
                            scopes.push(scope.clone());
                        }
                    }
                    if scopes.len() > before {
                        continue;
                    }
                }
                if let Some(key) = token_key.filter(|_| !renewed) {
                    // the cached token may have expired early or been revoked
                    renewed = true;
                    self.inner.tokens.remove(&key);
                    self.learn_challenge(&base, challenge);
                    continue;
                }
            }
            return Err(match (&credential, &challenge) {
                (Credential::Anonymous, _) => {
                    DistributionError::CredentialsMissing { registry: registry.clone() }
                }
                (_, Challenge::Basic) => DistributionError::CredentialsRejected {
                    registry: registry.clone(),
                    account: credential.account(),
                    envelope: exchange.envelope(),
                },
                (_, Challenge::Bearer(_)) => DistributionError::Denied {
                    operation: operation.clone(),
                    registry: registry.clone(),
                    account: credential.account(),
                    envelope: exchange.envelope(),
                },
            });
        }
    }

    /// Sends `outgoing`, repeating it on 429 (always) and on 502/503/504 or a broken connection
    /// (idempotent requests only), waiting as [`RetryPolicy`] says. Holds one permit of the
    /// concurrency limit while a request is in flight, none while waiting.
    async fn send(
        &self,
        registry: &RegistryHost,
        operation: &Operation,
        outgoing: &Outgoing,
    ) -> Result<Exchange, DistributionError> {
        let policy = self.inner.options.retry;
        let mut retry = 0;
        loop {
            let attempt = self.attempt(outgoing).await;
            let (retry_after, why) = match attempt {
                Ok(Attempt::Done(exchange)) => return Ok(exchange),
                Ok(Attempt::Transient { status, retry_after, exchange }) => {
                    let repeatable = outgoing.idempotent || status == StatusCode::TOO_MANY_REQUESTS;
                    if !repeatable || retry >= policy.max_retries {
                        return Ok(exchange);
                    }
                    (retry_after, format!("HTTP {status}"))
                }
                Err(source) if is_tls_failure(&source) => {
                    // a certificate that is not trusted now will not be trusted in a second
                    return Err(DistributionError::Tls {
                        registry: registry.clone(),
                        operation: operation.clone(),
                        source,
                    });
                }
                Err(source) => {
                    let repeatable =
                        outgoing.idempotent && !source.is_builder() && !source.is_redirect();
                    if !repeatable || retry >= policy.max_retries {
                        return Err(DistributionError::Unreachable {
                            registry: registry.clone(),
                            operation: operation.clone(),
                            source,
                        });
                    }
                    (None, "a connection failure".to_owned())
                }
            };
            let (delay, capped) = policy.delay(retry, retry_after);
            if let Some(asked) = capped {
                log::warn!(
                    "`{operation}`: the registry asked to wait {} s; waiting {} s (the configured maximum)",
                    asked.as_secs(),
                    delay.as_secs()
                );
            }
            retry += 1;
            log::warn!(
                "`{operation}` got {why}; retry {retry} of {} in {} ms",
                policy.max_retries,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One try of `outgoing`, the answer's body read in full (up to its limit). A file
    /// payload is sent with its `Content-Length` and a timeout that grows with its size.
    async fn attempt(&self, outgoing: &Outgoing) -> Result<Attempt, reqwest::Error> {
        let _permit = self.inner.permits.acquire().await;
        let mut request = self
            .inner
            .http
            .request(outgoing.method.clone(), outgoing.url.clone())
            .headers(outgoing.headers.clone());
        match &outgoing.body {
            None => {}
            Some(Payload::Bytes(bytes)) => request = request.body(bytes.clone()),
            Some(Payload::File(file)) => {
                request = request
                    .header(header::CONTENT_LENGTH, file.size())
                    .timeout(blob::upload_timeout(self.inner.options.request_timeout, file.size()))
                    .body(file.body());
            }
        }
        let mut response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > outgoing.body_limit {
                body.extend_from_slice(&chunk[..outgoing.body_limit - body.len()]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let exchange = Exchange { status, headers, body, truncated };
        if retry::retryable_status(status) {
            let retry_after = exchange
                .headers
                .get(header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| retry::parse_retry_after(value, jiff::Timestamp::now()));
            return Ok(Attempt::Transient { status, retry_after, exchange });
        }
        Ok(Attempt::Done(exchange))
    }
}

enum Attempt {
    Done(Exchange),
    Transient { status: StatusCode, retry_after: Option<Duration>, exchange: Exchange },
}
