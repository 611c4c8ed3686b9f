//! A distribution token service for tests: the real registry's `auth.token` realm.
//!
//! Follows the distribution token authentication spec as `docs/testing.md` §4 records it:
//! `GET /token?service&scope&account` with optional Basic credentials, and the `OAuth2`
//! `POST /token` (`grant_type=refresh_token`) for identity tokens. Tokens are ES256 JWTs whose
//! `x5c` header holds a self-signed certificate, written to disk as the registry's
//! `rootcertbundle`. Runs on a std thread bound to `127.0.0.1:0`; `Drop` stops and joins it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

/// The `service` the registry is configured with.
pub const SERVICE: &str = "dh-registry";
/// The `issuer` the registry is configured with.
pub const ISSUER: &str = "dh-issuer";
/// A user granted every action asked for.
pub const FULL_USER: &str = "ciuser";
pub const FULL_PASSWORD: &str = "cipass-Sentinel-7f3a";
/// A user granted at most `pull` and `push`.
pub const PULL_PUSH_USER: &str = "pushonly";
pub const PULL_PUSH_PASSWORD: &str = "pushonly-Sentinel-91c2";
/// A user that may only pull: a push is refused (HTTP 401 `insufficient_scope` → denied).
pub const PULL_ONLY_USER: &str = "readonly";
pub const PULL_ONLY_PASSWORD: &str = "readonly-Sentinel-3b8d";
/// An identity (refresh) token that stands for the full user.
pub const REFRESH_TOKEN: &str = "refresh-Sentinel-5d0e";

/// One token request as the issuer saw it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub method: String,
    /// `ciuser`, `pushonly`, `refresh` (identity token) or `anonymous`.
    pub account: String,
    pub scopes: Vec<String>,
}

pub struct TokenIssuer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

struct Signer {
    key: jsonwebtoken::EncodingKey,
    certificate: String,
}

impl TokenIssuer {
    /// Starts the issuer and writes its certificate to `certificate_path`.
    pub fn start(certificate_path: &Path) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key pair");
        let certificate = rcgen::CertificateParams::new(vec![ISSUER.to_owned()])
            .expect("certificate params")
            .self_signed(&key)
            .expect("self-signed certificate");
        std::fs::write(certificate_path, certificate.pem()).expect("write rootcertbundle");
        let signer = Signer {
            key: jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
                .expect("signing key"),
            certificate: base64::engine::general_purpose::STANDARD.encode(certificate.der()),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind issuer");
        let port = listener.local_addr().expect("issuer address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &signer, &requests);
                    }
                }
            })
        };
        Self { port, stop, thread: Some(thread), requests }
    }

    /// The realm URL to configure the registry with.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.host())
    }

    /// `127.0.0.1:PORT`: to be named insecure with the registry, since it speaks plain HTTP.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn serve(
    mut stream: TcpStream,
    signer: &Signer,
    requests: &Mutex<Vec<TokenRequest>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_owned()),
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let url = url::Url::parse(&format!("http://issuer{target}")).expect("request target");
    if url.path() != "/token" {
        return respond(&mut stream, "404 Not Found", r#"{"details":"not found"}"#);
    }
    let (account, scopes) = if method == "POST" {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let field =
            |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        if field("grant_type").as_deref() != Some("refresh_token")
            || field("refresh_token").as_deref() != Some(REFRESH_TOKEN)
        {
            return respond(
                &mut stream,
                "401 Unauthorized",
                r#"{"details":"invalid refresh token"}"#,
            );
        }
        let scopes = field("scope")
            .map(|scope| scope.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
        ("refresh".to_owned(), scopes)
    } else {
        let scopes: Vec<String> = url
            .query_pairs()
            .filter(|(key, _)| key == "scope")
            .map(|(_, value)| value.into_owned())
            .collect();
        let account = match authorization.as_deref().and_then(|value| value.strip_prefix("Basic "))
        {
            None => "anonymous".to_owned(),
            Some(encoded) => {
                let decoded =
                    base64::engine::general_purpose::STANDARD.decode(encoded).unwrap_or_default();
                let decoded = String::from_utf8_lossy(&decoded).into_owned();
                match decoded.split_once(':') {
                    Some((FULL_USER, FULL_PASSWORD)) => FULL_USER.to_owned(),
                    Some((PULL_PUSH_USER, PULL_PUSH_PASSWORD)) => PULL_PUSH_USER.to_owned(),
                    Some((PULL_ONLY_USER, PULL_ONLY_PASSWORD)) => PULL_ONLY_USER.to_owned(),
                    _ => {
                        return respond(
                            &mut stream,
                            "401 Unauthorized",
                            r#"{"details":"incorrect username or password"}"#,
                        );
                    }
                }
            }
        };
        (account, scopes)
    };
    requests.lock().unwrap().push(TokenRequest {
        method: method.clone(),
        account: account.clone(),
        scopes: scopes.clone(),
    });
    let token = sign(signer, &account, &scopes);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
        "issued_at": jiff::Timestamp::now().to_string(),
    });
    respond(&mut stream, "200 OK", &body.to_string())
}

/// The actions `account` gets out of `requested`.
fn granted(account: &str, requested: &str) -> Vec<String> {
    let allowed: &[&str] = match account {
        FULL_USER | "refresh" => &["pull", "push", "delete", "*"],
        PULL_PUSH_USER => &["pull", "push"],
        PULL_ONLY_USER => &["pull"],
        _ => &[],
    };
    requested.split(',').filter(|action| allowed.contains(action)).map(str::to_owned).collect()
}

fn sign(signer: &Signer, account: &str, scopes: &[String]) -> String {
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|scope| {
            // `repository:dh/app:pull,push`; names never contain `:` here
            let mut parts = scope.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": granted(account, actions)}))
        })
        .collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": account,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", fastrand::u64(..)),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![signer.certificate.clone()]);
    jsonwebtoken::encode(&header, &claims, &signer.key).expect("sign token")
}
