//! A small JSON-over-HTTPS client for the vendors' own REST APIs (GitHub Packages, Docker
//! Hub, GitLab, Harbor, Quay, Artifactory, Nexus) and OAuth token endpoints (Google, Entra ID
//! and ACR),
//! vendor-neutral.
//!
//! Owns what those APIs share: one reqwest client (the process's ring TLS, like the
//! distribution client), a credential header (bearer token, basic login or a vendor's own
//! header) that is never logged, waiting out rate limits (429,
//! or 403 with `Retry-After` or `x-ratelimit-remaining: 0`: the wait the server asks for,
//! else until `x-ratelimit-reset`, else a doubling backoff; a few tries, never a storm), a
//! pacer that spaces deletes so a per-minute limit is never reached.
//! What a status means is for the vendor file to say.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};

use super::distribution::retry::parse_retry_after;
use super::distribution::urls::host_port;
use super::distribution::{ClientOptions, http_client, named_insecure};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::reference::RegistryHost;
use crate::secret::Secret;

/// Tries of one request that keeps being rate limited, the first included.
const ATTEMPTS: u32 = 4;
/// Longest single wait for a rate limit; a server asking for more gets an error instead.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Largest response body read.
const BODY_LIMIT: usize = 16 << 20;

/// A REST request that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("Cannot reach `{url}`")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("`{url}` kept answering {status} (rate limited) after {ATTEMPTS} tries")]
    RateLimited { url: String, status: StatusCode },
    #[error("Cannot set up the HTTP client for the registry's API")]
    ClientBuild(#[source] reqwest::Error),
    #[error("API URL `{url}` is not an `https://` (or `http://`) URL")]
    InvalidUrl { url: String },
    #[error("API URL `{url}` is plain HTTP, and its host is not named by `--insecure-registry`")]
    PlainHttp { url: String },
}

impl Classify for RestError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::InvalidUrl { .. } | Self::PlainHttp { .. } => ExitStatus::Usage,
            Self::Unreachable { .. } | Self::RateLimited { .. } | Self::ClientBuild(_) => {
                ExitStatus::Failure
            }
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::PlainHttp { url } => Some(format!(
                "use `https://`, or name the API's host and port with `--insecure-registry` (tests, local stand-ins) to allow `{url}`"
            )),
            Self::RateLimited { .. } => Some(
                "the API's rate limit is reached: rerun later (a rerun continues where this one stopped)".to_owned(),
            ),
            _ => None,
        }
    }
}

/// The API base URL `value` without a trailing `/`: `https://`, or `http://` only to a host
/// named in `insecure` (as the registry API is).
pub fn api_base(value: &str, insecure: &[RegistryHost]) -> Result<String, RestError> {
    let base = value.trim_end_matches('/').to_owned();
    let invalid = || RestError::InvalidUrl { url: base.clone() };
    let url = url::Url::parse(&base).map_err(|_| invalid())?;
    url.host_str().ok_or_else(invalid)?;
    match url.scheme() {
        "https" => Ok(base),
        "http" if named_insecure(insecure, &host_port(&url)) => Ok(base),
        "http" => Err(RestError::PlainHttp { url: base }),
        _ => Err(invalid()),
    }
}

/// The base URL of a vendor API served by the registry's own server (Artifactory, Nexus):
/// `DOCKHAND_REGISTRY_API_URL` when set, else `https://HOST[:PORT]` of `registry`, or
/// `http://` where that host is named insecure (as the registry API is then).
pub fn registry_api_base(
    env: &EnvMap,
    registry: &RegistryHost,
    insecure: &[RegistryHost],
) -> Result<String, RestError> {
    if let Some(value) =
        env.get(env_vars::DOCKHAND_REGISTRY_API_URL).filter(|value| !value.is_empty())
    {
        return api_base(value, insecure);
    }
    registry_origin(registry, insecure)
}

/// `https://HOST[:PORT]` of `registry`, or `http://` where that host is named insecure (as the
/// registry API is then).
pub fn registry_origin(
    registry: &RegistryHost,
    insecure: &[RegistryHost],
) -> Result<String, RestError> {
    let scheme = if insecure.contains(registry) { "http" } else { "https" };
    api_base(&format!("{scheme}://{registry}"), insecure)
}

/// `text` as one URL path segment: every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`)
/// percent-encoded, so `a/b` becomes `a%2Fb` (and, encoded again, `a%252Fb`).
pub fn path_segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// An answer: status, headers and the body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.body)
    }

    /// What the API says went wrong: the first of `keys` the JSON body has as a string, else
    /// the start of the body.
    pub fn message(&self, keys: &[&str]) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|body| keys.iter().find_map(|key| body[*key].as_str().map(str::to_owned)))
            .unwrap_or_else(|| self.body.chars().take(200).collect())
    }

    /// The `rel="next"` target of the `Link` header, if any.
    pub fn next_link(&self) -> Option<String> {
        self.header("link")?.split(',').find_map(|part| {
            let (target, params) = part.split_once(';')?;
            params
                .contains("rel=\"next\"")
                .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
        })
    }
}

/// Spaces requests at least `interval` apart (their starts), across concurrent callers.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    next: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Pacer {
    /// At most `per_minute` starts in any minute.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            interval: Duration::from_secs(60) / per_minute.max(1),
            next: tokio::sync::Mutex::new(None),
        }
    }

    /// Waits for the next free slot.
    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = tokio::time::Instant::now();
            let at = next.map_or(now, |next| next.max(now));
            *next = Some(at + self.interval);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// A client for one vendor API.
#[derive(Debug)]
pub struct Rest {
    http: reqwest::Client,
    headers: HeaderMap,
    /// The credential header: its name and its value.
    credential: Mutex<Option<(header::HeaderName, Secret)>>,
}

impl Rest {
    /// A client sending `headers` (e.g. `Accept`) with every request, with the registry
    /// client's TLS, timeouts and redirect rules (`options`).
    pub fn new(options: &ClientOptions, headers: HeaderMap) -> Result<Self, RestError> {
        let http = http_client(options).map_err(RestError::ClientBuild)?;
        Ok(Self { http, headers, credential: Mutex::new(None) })
    }

    /// Sends `Authorization: Bearer TOKEN` from now on.
    pub fn set_token(&self, token: &Secret) {
        self.set_credential(
            header::AUTHORIZATION,
            Secret::new(format!("Bearer {}", token.expose())),
        );
    }

    /// Sends `Authorization: Basic …` of `username` and `password` from now on.
    pub fn set_basic(&self, username: &str, password: &Secret) {
        use base64::Engine as _;
        let pair = format!("{username}:{}", password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        self.set_credential(header::AUTHORIZATION, Secret::new(format!("Basic {encoded}")));
    }

    /// Sends the header `name: VALUE` from now on (a vendor's own token header, e.g. GitLab's
    /// `PRIVATE-TOKEN`), instead of any other credential.
    pub fn set_credential(&self, name: header::HeaderName, value: Secret) {
        *self.credential.lock().expect("credential lock") = Some((name, value));
    }

    /// Sends the request, waiting out rate limits; any other status is the caller's to judge.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Reply, RestError> {
        self.send_body(method, url, json.map(Body::Json)).await
    }

    /// `POST`s `form` as `application/x-www-form-urlencoded` (OAuth token endpoints), as
    /// [`Rest::send`] does JSON.
    pub async fn send_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Reply, RestError> {
        let encoded =
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        self.send_body(Method::POST, url, Some(Body::Form(encoded))).await
    }

    async fn send_body(
        &self,
        method: Method,
        url: &str,
        body: Option<Body<'_>>,
    ) -> Result<Reply, RestError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), url).headers(self.headers.clone());
            if let Some((name, value)) = self.credential.lock().expect("credential lock").as_ref() {
                let mut value = HeaderValue::from_str(value.expose())
                    .unwrap_or_else(|_| HeaderValue::from_static("invalid"));
                value.set_sensitive(true);
                request = request.header(name, value);
            }
            match &body {
                Some(Body::Json(json)) => request = request.json(json),
                Some(Body::Form(form)) => {
                    request = request
                        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(form.clone());
                }
                None => {}
            }
            log::debug!("API {method} {url}");
            let response = request
                .send()
                .await
                .map_err(|source| RestError::Unreachable { url: url.to_owned(), source })?;
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = response
                .bytes()
                .await
                .map_err(|source| RestError::Unreachable { url: url.to_owned(), source })?;
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]).into_owned();
            let reply = Reply { status, headers, body };
            let Some(wait) = rate_limit_wait(&reply, attempt) else {
                return Ok(reply);
            };
            if attempt >= ATTEMPTS || wait > MAX_WAIT {
                return Err(RestError::RateLimited { url: url.to_owned(), status });
            }
            log::warn!(
                "`{url}` answered {status} (rate limited): waiting {:.1} s before try {} of {ATTEMPTS}",
                wait.as_secs_f64(),
                attempt + 1
            );
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request body.
enum Body<'a> {
    Json(&'a serde_json::Value),
    /// Already encoded.
    Form(String),
}

/// How long to wait before repeating a rate-limited request, `None` if `reply` is not one.
fn rate_limit_wait(reply: &Reply, attempt: u32) -> Option<Duration> {
    let now = jiff::Timestamp::now();
    let retry_after = reply.header("retry-after").and_then(|value| parse_retry_after(value, now));
    let exhausted = reply.header("x-ratelimit-remaining") == Some("0");
    let limited = reply.status == StatusCode::TOO_MANY_REQUESTS
        || (reply.status == StatusCode::FORBIDDEN && (retry_after.is_some() || exhausted));
    if !limited {
        return None;
    }
    if let Some(wait) = retry_after {
        return Some(wait);
    }
    let reset = reply
        .header("x-ratelimit-reset")
        .and_then(|value| value.trim().parse::<i64>().ok())
        .filter(|_| exhausted)
        .and_then(|epoch| jiff::Timestamp::from_second(epoch).ok());
    if let Some(reset) = reset {
        return Some(Duration::try_from(now.duration_until(reset)).unwrap_or(Duration::ZERO));
    }
    Some(Duration::from_secs(60) * 2u32.pow(attempt.saturating_sub(1).min(4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&'static str, &str)]) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        Reply { status: StatusCode::from_u16(status).unwrap(), headers: map, body: String::new() }
    }

    #[test]
    fn rate_limit_waits() {
        let secs = Duration::from_secs;
        assert_eq!(rate_limit_wait(&reply(200, &[]), 1), None);
        assert_eq!(rate_limit_wait(&reply(403, &[]), 1), None, "a plain 403 is a permission");
        assert_eq!(rate_limit_wait(&reply(429, &[("retry-after", "7")]), 1), Some(secs(7)));
        assert_eq!(rate_limit_wait(&reply(403, &[("retry-after", "300")]), 1), Some(secs(300)));
        assert_eq!(rate_limit_wait(&reply(429, &[]), 1), Some(secs(60)));
        assert_eq!(rate_limit_wait(&reply(429, &[]), 2), Some(secs(120)));
        let reset = (jiff::Timestamp::now().as_second() + 30).to_string();
        let wait = rate_limit_wait(
            &reply(403, &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)]),
            1,
        )
        .unwrap();
        assert!(wait <= secs(30) && wait >= secs(28), "{wait:?}");
    }

    #[test]
    fn api_base_urls() {
        let insecure: Vec<RegistryHost> = vec!["127.0.0.1:8080".parse().unwrap()];
        let base = |value: &str| api_base(value, &insecure);
        assert_eq!(base("https://api.github.com/").unwrap(), "https://api.github.com");
        assert_eq!(base("https://ghe.example/api/v3").unwrap(), "https://ghe.example/api/v3");
        assert_eq!(base("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert!(matches!(base("http://127.0.0.1:9090"), Err(RestError::PlainHttp { .. })));
        assert!(matches!(base("http://api.example"), Err(RestError::PlainHttp { .. })));
        assert!(matches!(base("ftp://api.example"), Err(RestError::InvalidUrl { .. })));
        assert!(matches!(base("api.example"), Err(RestError::InvalidUrl { .. })));
    }

    #[test]
    fn registry_api_base_defaults_to_the_registry_host() {
        let insecure: Vec<RegistryHost> = vec!["127.0.0.1:8081".parse().unwrap()];
        let host = |value: &str| value.parse::<RegistryHost>().unwrap();
        let mut env = EnvMap::new();
        assert_eq!(
            registry_api_base(&env, &host("acme.jfrog.io"), &insecure).unwrap(),
            "https://acme.jfrog.io"
        );
        assert_eq!(
            registry_api_base(&env, &host("127.0.0.1:8081"), &insecure).unwrap(),
            "http://127.0.0.1:8081"
        );
        env.insert(env_vars::DOCKHAND_REGISTRY_API_URL.to_owned(), "https://nexus.example/".into());
        assert_eq!(
            registry_api_base(&env, &host("nexus.example:8082"), &insecure).unwrap(),
            "https://nexus.example"
        );
        env.insert(env_vars::DOCKHAND_REGISTRY_API_URL.to_owned(), "http://nexus.example".into());
        assert!(matches!(
            registry_api_base(&env, &host("nexus.example:8082"), &insecure),
            Err(RestError::PlainHttp { .. })
        ));
    }

    #[test]
    fn path_segments() {
        assert_eq!(path_segment("group/project"), "group%2Fproject");
        assert_eq!(path_segment(&path_segment("team/app/sub")), "team%252Fapp%252Fsub");
        assert_eq!(path_segment("v1.2_rc-3~x"), "v1.2_rc-3~x");
        assert_eq!(path_segment("a b+c"), "a%20b%2Bc");
    }

    #[test]
    fn next_links() {
        let link = r#"<https://api.example/x?page=2>; rel="next", <https://api.example/x?page=5>; rel="last""#;
        assert_eq!(
            reply(200, &[("link", link)]).next_link().as_deref(),
            Some("https://api.example/x?page=2")
        );
        let last_page = r#"<https://api.example/x?page=1>; rel="first""#;
        assert_eq!(reply(200, &[("link", last_page)]).next_link(), None);
        assert_eq!(reply(200, &[]).next_link(), None);
    }

    #[tokio::test]
    async fn pacer_spaces_starts() {
        let pacer = Pacer::per_minute(1200);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            pacer.wait().await;
        }
        let elapsed = start.elapsed();
        // the first start is immediate, each of the other four waits 50 ms
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    }
}
