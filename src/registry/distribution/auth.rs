//! Registry authentication: credentials, `WWW-Authenticate` challenges, scopes and tokens.
//!
//! Owns [`Credential`] (what the client presents), the challenge parser (Basic and Bearer, with
//! quoted values that contain commas), [`TokenScope`], the token request (`GET <realm>?service&scope`
//! with Basic credentials, or the `OAuth2` refresh-token `POST` for identity tokens), the token
//! response, and the token cache keyed by realm, service and sorted scopes. Sends no request
//! itself (the client in `mod.rs` does, with its retries and concurrency limit) and never
//! formats a secret: tokens and passwords stay [`Secret`]s until they become a header.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use url::Url;

use super::error::Account;
use crate::secret::Secret;

pub use crate::secret::Credential;

impl Credential {
    /// Who this credential belongs to, for messages.
    pub fn account(&self) -> Account {
        match self {
            Self::Anonymous => Account::Anonymous,
            Self::Basic { username, .. } => Account::User(username.clone()),
            Self::IdentityToken(_) => Account::IdentityToken,
        }
    }

    /// The `Authorization: Basic …` value, for a username and password.
    pub(crate) fn basic_header(&self) -> Option<HeaderValue> {
        let Self::Basic { username, password } = self else { return None };
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// An `Authorization: Bearer …` value.
pub(crate) fn bearer_header(token: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`: send the username and password with every request.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`: fetch a token at the realm.
    Bearer(BearerChallenge),
}

/// The parameters of a Bearer challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The token service URL.
    pub realm: String,
    pub service: Option<String>,
    /// The scopes the registry wants, split at spaces.
    pub scopes: Vec<TokenScope>,
    /// `insufficient_scope`, `invalid_token`, … when the registry says why it refused a token.
    pub error: Option<String>,
}

impl BearerChallenge {
    /// `true` if and only if the registry refused a token for lacking a scope.
    pub fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// A token scope, e.g. `repository:dh/app:pull,push`. Scopes from challenges are kept
/// verbatim; the client builds its own with [`TokenScope::repository`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenScope(String);

/// What the client needs to do in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read tags, manifests and blobs.
    Pull,
    /// Read and write.
    Push,
    /// Delete manifests (distribution asks for the `delete` action).
    Delete,
}

impl TokenScope {
    /// The scope for `access` in the repository at `path`.
    pub fn repository(path: &str, access: Access) -> Self {
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "delete",
        };
        Self(format!("repository:{path}:{actions}"))
    }

    /// The scope for the comma-separated `actions` in the repository at `path`, for a
    /// vendor API that registry tokens authorise with actions of its own (ACR's
    /// `metadata_read`).
    pub fn repository_actions(path: &str, actions: &str) -> Self {
        Self(format!("repository:{path}:{actions}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses every challenge in `WWW-Authenticate` header values. Schemes other than Basic and
/// Bearer, and Bearer challenges without a realm, are skipped.
pub fn parse_challenges<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Challenge> {
    values.into_iter().flat_map(parse_header).collect()
}

/// One raw challenge: scheme and parameters (names lowercased).
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

fn parse_header(value: &str) -> Vec<Challenge> {
    let mut parser = Parser { input: value.as_bytes(), at: 0 };
    let mut raw = Vec::new();
    while let Some(challenge) = parser.challenge() {
        raw.push(challenge);
    }
    raw.iter().filter_map(to_challenge).collect()
}

fn to_challenge(raw: &RawChallenge) -> Option<Challenge> {
    let param =
        |name: &str| raw.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    if raw.scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if raw.scheme.eq_ignore_ascii_case("bearer") {
        let realm = param("realm").filter(|realm| !realm.is_empty())?;
        let scopes = param("scope")
            .map(|scope| {
                scope
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(|s| TokenScope(s.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        return Some(Challenge::Bearer(BearerChallenge {
            realm,
            service: param("service"),
            scopes,
            error: param("error"),
        }));
    }
    None
}

/// A small cursor over `challenge = scheme [ 1*SP ( token68 / #auth-param ) ]`, with
/// challenges separated by commas (RFC 9110 §11.6.1).
struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

impl Parser<'_> {
    fn skip_whitespace(&mut self) {
        while self.at < self.input.len() && matches!(self.input[self.at], b' ' | b'\t') {
            self.at += 1;
        }
    }

    fn skip_separators(&mut self) {
        while self.at < self.input.len() && matches!(self.input[self.at], b' ' | b'\t' | b',') {
            self.at += 1;
        }
    }

    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.at < self.input.len() && is_token_char(self.input[self.at]) {
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.input[start..self.at]).into_owned())
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn quoted(&mut self) -> String {
        // at the opening quote
        self.at += 1;
        let mut value = Vec::new();
        while let Some(byte) = self.peek() {
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    if let Some(escaped) = self.peek() {
                        value.push(escaped);
                        self.at += 1;
                    }
                }
                other => value.push(other),
            }
        }
        String::from_utf8_lossy(&value).into_owned()
    }

    /// After a token: `true` if it is a parameter name (followed by `=` and a value, not by
    /// the `=` padding of a token68).
    fn at_param_equals(&self) -> bool {
        let mut at = self.at;
        while at < self.input.len() && matches!(self.input[at], b' ' | b'\t') {
            at += 1;
        }
        self.input.get(at) == Some(&b'=') && self.input.get(at + 1) != Some(&b'=')
    }

    fn challenge(&mut self) -> Option<RawChallenge> {
        loop {
            self.skip_separators();
            if self.at >= self.input.len() {
                return None;
            }
            if let Some(scheme) = self.token() {
                let params = self.params();
                return Some(RawChallenge { scheme, params });
            }
            // junk: skip one byte and try again
            self.at += 1;
        }
    }

    fn params(&mut self) -> Vec<(String, String)> {
        let mut params = Vec::new();
        loop {
            self.skip_whitespace();
            let mark = self.at;
            // a parameter may follow a comma; a token not followed by `=` starts the next challenge
            while self.peek() == Some(b',') {
                self.at += 1;
                self.skip_whitespace();
            }
            let Some(name) = self.token() else {
                self.at = mark;
                return params;
            };
            if !self.at_param_equals() {
                if params.is_empty() && mark == self.at - name.len() && self.peek() != Some(b',') {
                    // token68 right after the scheme (e.g. `Negotiate abc==`): skip it
                    while self.peek().is_some_and(|byte| byte != b',') {
                        self.at += 1;
                    }
                    return params;
                }
                self.at = mark;
                return params;
            }
            self.skip_whitespace();
            self.at += 1; // `=`
            self.skip_whitespace();
            let value = if self.peek() == Some(b'"') {
                self.quoted()
            } else {
                self.token().unwrap_or_default()
            };
            params.push((name.to_ascii_lowercase(), value));
        }
    }
}

/// A token service's answer.
#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// A bearer token and how long it may be used.
#[derive(Debug, Clone)]
pub struct Token {
    pub token: Secret,
    pub lifetime: Duration,
}

/// Lifetime assumed when the token service does not say (the distribution token spec's 60 s).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// How long before the stated expiry a cached token stops being used.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// The longest a token is cached, whatever the token service says (a hostile one may say
/// 2^64 - 1 seconds).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses a token response: `token` or else `access_token`, and `expires_in` (default 60 s,
/// at most [`MAX_TOKEN_LIFETIME`]).
pub fn parse_token_response(body: &[u8]) -> Result<Token, String> {
    let parsed: TokenBody = serde_json::from_slice(body)
        .map_err(|error| format!("the token response is not JSON ({error})"))?;
    let token = parsed
        .token
        .filter(|token| !token.is_empty())
        .or(parsed.access_token.filter(|token| !token.is_empty()))
        .ok_or_else(|| "the token response has neither `token` nor `access_token`".to_owned())?;
    let lifetime = parsed
        .expires_in
        .filter(|&seconds| seconds > 0)
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
        .min(MAX_TOKEN_LIFETIME);
    Ok(Token { token: Secret::new(token), lifetime })
}

/// The token request URL: `realm?service=…&scope=…&scope=…[&account=…]`.
pub fn token_url(
    realm: &Url,
    service: Option<&str>,
    scopes: &[TokenScope],
    credential: &Credential,
) -> Url {
    let mut url = realm.clone();
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope.as_str());
        }
        if let Credential::Basic { username, .. } = credential {
            query.append_pair("account", username);
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    url
}

/// The `OAuth2` form for exchanging an identity (refresh) token at the realm.
pub fn refresh_token_form(
    service: Option<&str>,
    scopes: &[TokenScope],
    refresh_token: &Secret,
) -> String {
    let scope = scopes.iter().map(TokenScope::as_str).collect::<Vec<_>>().join(" ");
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token");
    if let Some(service) = service {
        form.append_pair("service", service);
    }
    if !scope.is_empty() {
        form.append_pair("scope", &scope);
    }
    form.append_pair("client_id", "dockhand");
    form.append_pair("refresh_token", refresh_token.expose());
    form.finish()
}

/// Where a token is valid: realm, service and the sorted, deduplicated scopes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    realm: String,
    service: Option<String>,
    scopes: Vec<TokenScope>,
}

impl TokenKey {
    pub fn new(challenge: &BearerChallenge, scopes: &[TokenScope]) -> Self {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        Self { realm: challenge.realm.clone(), service: challenge.service.clone(), scopes }
    }

    pub fn scopes(&self) -> &[TokenScope] {
        &self.scopes
    }
}

/// Tokens by [`TokenKey`], each until shortly before it expires.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenKey, (Secret, Instant)>>,
}

impl TokenCache {
    /// The cached token for `key`, if it has not expired.
    pub fn get(&self, key: &TokenKey) -> Option<Secret> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(token, _)| token.clone())
    }

    pub fn insert(&self, key: TokenKey, token: &Token) {
        let usable = token.lifetime.saturating_sub(EXPIRY_MARGIN).max(token.lifetime / 2);
        let Some(until) = Instant::now().checked_add(usable) else { return };
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.insert(key, (token.token.clone(), until));
    }

    pub fn remove(&self, key: &TokenKey) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(
        realm: &str,
        service: Option<&str>,
        scopes: &[&str],
        error: Option<&str>,
    ) -> Challenge {
        Challenge::Bearer(BearerChallenge {
            realm: realm.to_owned(),
            service: service.map(str::to_owned),
            scopes: scopes.iter().map(|s| TokenScope((*s).to_owned())).collect(),
            error: error.map(str::to_owned),
        })
    }

    #[test]
    fn challenges() {
        for (header, want) in [
            (r#"Basic realm="dh-basic""#, vec![Challenge::Basic]),
            ("basic realm=x", vec![Challenge::Basic]),
            (
                r#"Bearer realm="http://127.0.0.1:1/token",service="dh-registry""#,
                vec![bearer("http://127.0.0.1:1/token", Some("dh-registry"), &[], None)],
            ),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#,
                vec![bearer(
                    "https://auth.docker.io/token",
                    Some("registry.docker.io"),
                    &["repository:a/b:pull,push"],
                    None,
                )],
            ),
            (
                r#"Bearer realm="http://x/token",service="s",scope="repository:dh/app:delete",error="insufficient_scope""#,
                vec![bearer(
                    "http://x/token",
                    Some("s"),
                    &["repository:dh/app:delete"],
                    Some("insufficient_scope"),
                )],
            ),
            (
                r#"Bearer realm = "http://x/t" , service="s", scope="repository:a:pull repository:b:pull""#,
                vec![bearer(
                    "http://x/t",
                    Some("s"),
                    &["repository:a:pull", "repository:b:pull"],
                    None,
                )],
            ),
            (
                r#"Basic realm="r", Bearer realm="http://x/t",service="s""#,
                vec![Challenge::Basic, bearer("http://x/t", Some("s"), &[], None)],
            ),
            (
                r#"Negotiate abc==, Bearer realm="http://x/t""#,
                vec![bearer("http://x/t", None, &[], None)],
            ),
            (
                r#"Bearer realm="a\"b",service=unquoted"#,
                vec![bearer("a\"b", Some("unquoted"), &[], None)],
            ),
            (r#"BEARER Realm="http://x/t""#, vec![bearer("http://x/t", None, &[], None)]),
            (r#"Bearer service="no realm""#, vec![]),
            ("", vec![]),
            (",,, ", vec![]),
        ] {
            assert_eq!(parse_challenges([header]), want, "{header}");
        }
    }

    #[test]
    fn insufficient_scope_is_recognised() {
        let challenges = parse_challenges([
            r#"Bearer realm="r",error="insufficient_scope",scope="repository:dh/app:delete""#,
        ]);
        let Some(Challenge::Bearer(challenge)) = challenges.first() else {
            panic!("not a bearer challenge: {challenges:?}")
        };
        assert!(challenge.insufficient_scope());
    }

    #[test]
    fn token_responses() {
        for (body, want) in [
            (r#"{"token":"t1","expires_in":300}"#, Ok(("t1", 300))),
            (r#"{"access_token":"t2"}"#, Ok(("t2", 60))),
            (r#"{"token":"","access_token":"t3","expires_in":0}"#, Ok(("t3", 60))),
            (r#"{"token":"t4","expires_in":18446744073709551615}"#, Ok(("t4", 86_400))),
            (
                r#"{"token":"t4","access_token":"other","issued_at":"2026-01-01T00:00:00Z"}"#,
                Ok(("t4", 60)),
            ),
            (r#"{"expires_in":300}"#, Err(())),
            ("not json", Err(())),
        ] {
            let got = parse_token_response(body.as_bytes())
                .map(|token| (token.token.expose().to_owned(), token.lifetime.as_secs()))
                .map_err(|_| ());
            assert_eq!(got, want.map(|(token, seconds)| (token.to_owned(), seconds)), "{body}");
        }
    }

    proptest::proptest! {
        /// Whatever lifetime a token service claims, caching the token neither panics nor
        /// keeps it longer than the cap.
        #[test]
        fn any_token_lifetime_is_cached_safely(seconds: u64) {
            let body = format!(r#"{{"token":"t","expires_in":{seconds}}}"#);
            let token = parse_token_response(body.as_bytes()).unwrap();
            proptest::prop_assert!(token.lifetime <= MAX_TOKEN_LIFETIME);
            let key = TokenKey { realm: "r".to_owned(), service: None, scopes: Vec::new() };
            let cache = TokenCache::default();
            cache.insert(key.clone(), &token);
            proptest::prop_assert!(cache.get(&key).is_some());
        }
    }

    #[test]
    fn token_urls() {
        let realm: Url = "http://127.0.0.1:9/token?x=1".parse().unwrap();
        let basic =
            Credential::Basic { username: "ci user".to_owned(), password: Secret::new("pw") };
        for (service, scopes, credential, want) in [
            (None, vec![], &Credential::Anonymous, "http://127.0.0.1:9/token?x=1"),
            (
                Some("dh-registry"),
                vec![
                    TokenScope::repository("dh/app", Access::Push),
                    TokenScope::repository("dh/b", Access::Pull),
                ],
                &basic,
                "http://127.0.0.1:9/token?x=1&service=dh-registry&scope=repository%3Adh%2Fapp%3Apull%2Cpush&scope=repository%3Adh%2Fb%3Apull&account=ci+user",
            ),
        ] {
            assert_eq!(token_url(&realm, service, &scopes, credential).as_str(), want);
        }
        let bare: Url = "https://auth.example/token".parse().unwrap();
        assert_eq!(
            token_url(&bare, None, &[], &Credential::Anonymous).as_str(),
            "https://auth.example/token"
        );
    }

    #[test]
    fn refresh_form_carries_scope_and_token() {
        let form = refresh_token_form(
            Some("dh-registry"),
            &[
                TokenScope::repository("dh/app", Access::Pull),
                TokenScope::repository("dh/app", Access::Delete),
            ],
            &Secret::new("r&t"),
        );
        assert_eq!(
            form,
            "grant_type=refresh_token&service=dh-registry&scope=repository%3Adh%2Fapp%3Apull+repository%3Adh%2Fapp%3Adelete&client_id=dockhand&refresh_token=r%26t"
        );
    }

    #[test]
    fn token_keys_ignore_scope_order_and_duplicates() {
        let challenge =
            BearerChallenge { realm: "r".to_owned(), service: None, scopes: vec![], error: None };
        let a = TokenScope::repository("a", Access::Pull);
        let b = TokenScope::repository("b", Access::Push);
        assert_eq!(
            TokenKey::new(&challenge, &[a.clone(), b.clone(), a.clone()]),
            TokenKey::new(&challenge, &[b.clone(), a.clone()])
        );
        let cache = TokenCache::default();
        let key = TokenKey::new(&challenge, &[a]);
        cache.insert(
            key.clone(),
            &Token { token: Secret::new("t"), lifetime: Duration::from_secs(300) },
        );
        assert_eq!(cache.get(&key).map(|t| t.expose().to_owned()), Some("t".to_owned()));
        assert!(cache.get(&TokenKey::new(&challenge, &[b])).is_none());
        cache.remove(&key);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn basic_header_is_sensitive_and_encoded() {
        let credential =
            Credential::Basic { username: "ciuser".to_owned(), password: Secret::new("cipass") };
        let header = credential.basic_header().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Basic Y2l1c2VyOmNpcGFzcw==");
        assert!(Credential::Anonymous.basic_header().is_none());
        assert_eq!(
            format!("{credential:?}"),
            r#"Basic { username: "ciuser", password: Secret(****) }"#
        );
    }
}
