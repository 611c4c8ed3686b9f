//! AWS ECR for tests: moto's server (PyPI `moto[server]`, in the repository's `.venv`) for
//! the ECR control plane, paired with the real distribution registry for `/v2/`.
//!
//! moto implements the ECR JSON API (AWS JSON 1.1, `X-Amz-Target:
//! AmazonEC2ContainerRegistry_V20150921.<Operation>`) but serves no registry API, and it knows
//! an image only when it came in through its own `PutImage`. [`EcrFront`] makes the two agree
//! the way real ECR is one service: it listens on one `127.0.0.1` port for both APIs and
//! - forwards every ECR API call to moto, counting calls per operation and ids per
//!   `BatchDeleteImage`, and can answer per-id failures or an expired-token error itself;
//! - serves `/v2/` from the distribution registry for content (blobs, manifest bodies) and from
//!   moto for what exists: a manifest `PUT` to a repository moto does not have is refused with
//!   `404 NAME_UNKNOWN` (as ECR refuses pushes to a missing repository), a stored one is
//!   registered with `PutImage` (tag and digest), the tag list comes from `ListImages`, and a
//!   manifest resolves only while `DescribeImages` knows its tag or digest — so a tag
//!   `BatchDeleteImage` removed is gone from `/v2/` too;
//! - asks for the login moto's `GetAuthorizationToken` mints (Basic, user `AWS`) on `/v2/`,
//!   answering 401 otherwise, and refuses registry `DELETE` with `405 UNSUPPORTED` (counted:
//!   dockhand must never send one to ECR).
//!
//! Everything runs on `127.0.0.1:0`; `Drop` stops the front's thread and kills moto.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Registry;
use super::proxy::{Request, Response, forward, parse_response, read_request, write_response};

/// The account moto uses for every call.
pub const ACCOUNT: &str = "123456789012";
/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A `moto_server` process on a free port.
pub struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    pub fn start() -> Self {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        assert!(binary.exists(), "{} is missing: run scripts/setup.sh", binary.display());
        let dir = tempfile::tempdir().expect("temp dir");
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let mut moto = Self { child, port: 0, _dir: dir };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(port) = text.split("Running on http://127.0.0.1:").nth(1).and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|d| d.parse().ok())
            }) {
                moto.port = port;
                return moto;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited with {status}:\n{text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto printed no address:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Calls the ECR operation `operation` with `input`: `Ok(answer)` or `Err((type, answer))`.
    pub fn call(&self, operation: &str, input: &Value) -> Result<Value, (String, Value)> {
        call(self.port, operation, input)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls moto at `port` directly, with a SigV4-shaped header (moto routes on it).
fn call(port: u16, operation: &str, input: &Value) -> Result<Value, (String, Value)> {
    let body = input.to_string();
    let headers = format!(
        "Host: 127.0.0.1:{port}\r\nX-Amz-Target: AmazonEC2ContainerRegistry_V20150921.{operation}\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/{REGION}/ecr/aws4_request, SignedHeaders=host, Signature=x\r\nContent-Length: {}\r\n",
        body.len()
    );
    let request =
        Request { method: "POST".into(), target: "/".into(), headers, body: body.into_bytes() };
    let response = parse_response(&forward(&request, "/", port).expect("moto answers"));
    let value: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if response.status_line.contains(" 200 ") {
        Ok(value)
    } else {
        let kind = value["__type"].as_str().unwrap_or("unknown").to_owned();
        Err((kind, value))
    }
}

#[derive(Debug, Default)]
struct State {
    /// ECR operations in order, with the number of image ids of each `BatchDeleteImage`.
    calls: Vec<(String, usize)>,
    /// The `maxResults` of each `DescribeImages` call (`None` when not sent).
    describe_max_results: Vec<Option<i64>>,
    /// Registry `DELETE`s received (each refused).
    registry_deletes: usize,
    /// Tags or digests `BatchDeleteImage` reports as failed with this code instead of deleting.
    failing: BTreeMap<String, String>,
    /// After this many more ECR calls, every call answers `ExpiredTokenException`.
    expire_after: Option<usize>,
    /// The `Authorization` value `/v2/` accepts.
    expected_auth: String,
}

/// ECR as one service on one port: see the module's header.
pub struct EcrFront {
    pub moto: Moto,
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
}

impl EcrFront {
    /// A front pairing a new moto with `registry` (anonymous, so only the front checks logins).
    pub fn start(registry: &Registry) -> Self {
        let moto = Moto::start();
        let token = moto.call("GetAuthorizationToken", &json!({})).expect("token");
        let token = token["authorizationData"][0]["authorizationToken"].as_str().unwrap();
        let state = Arc::new(Mutex::new(State {
            expected_auth: format!("Basic {token}"),
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind front");
        let port = listener.local_addr().expect("front address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let state = Arc::clone(&state);
            let (moto_port, registry_port) = (moto.port(), registry.port());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = handle(stream, moto_port, registry_port, &state);
                    }
                }
            })
        };
        Self { moto, port, stop, thread: Some(thread), state }
    }

    /// `127.0.0.1:PORT`: the registry host and the ECR endpoint.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_ECR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The ECR operations called so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The number of image ids of each `BatchDeleteImage` call so far.
    pub fn batch_sizes(&self) -> Vec<usize> {
        let state = self.state.lock().unwrap();
        state.calls.iter().filter(|(name, _)| name == "BatchDeleteImage").map(|(_, n)| *n).collect()
    }

    /// The number of `DescribeImages` calls so far.
    pub fn describe_pages(&self) -> usize {
        self.operations().iter().filter(|name| *name == "DescribeImages").count()
    }

    /// The page size (`maxResults`) each `DescribeImages` call asked for.
    pub fn describe_page_sizes(&self) -> Vec<Option<i64>> {
        self.state.lock().unwrap().describe_max_results.clone()
    }

    /// Registry `DELETE`s received so far.
    pub fn registry_deletes(&self) -> usize {
        self.state.lock().unwrap().registry_deletes
    }

    /// Makes `BatchDeleteImage` report the id `tag_or_digest` as failed with `code`, leaving
    /// it in place.
    pub fn fail_image(&self, tag_or_digest: &str, code: &str) {
        self.state.lock().unwrap().failing.insert(tag_or_digest.to_owned(), code.to_owned());
    }

    /// After `calls` more ECR API calls, answer every one with `ExpiredTokenException`.
    pub fn expire_credentials_after(&self, calls: usize) {
        self.state.lock().unwrap().expire_after = Some(calls);
    }
}

impl Drop for EcrFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request.headers.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn answer(
    stream: &mut TcpStream,
    status: &str,
    headers: Vec<String>,
    body: &Value,
) -> std::io::Result<()> {
    let response = Response {
        status_line: format!("HTTP/1.1 {status}"),
        headers,
        body: body.to_string().into_bytes(),
    };
    write_response(stream, &response)
}

fn registry_error(
    stream: &mut TcpStream,
    status: &str,
    code: &str,
    message: &str,
) -> std::io::Result<()> {
    let body = json!({"errors": [{"code": code, "message": message}]});
    answer(stream, status, vec!["Content-Type: application/json".into()], &body)
}

fn handle(
    mut stream: TcpStream,
    moto_port: u16,
    registry_port: u16,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&stream)?;
    if let Some(target) = header(&request, "X-Amz-Target") {
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        return ecr_api(&mut stream, &request, &operation, moto_port, state);
    }
    let expected = state.lock().unwrap().expected_auth.clone();
    if header(&request, "Authorization") != Some(expected.as_str()) {
        let challenge = format!(
            "WWW-Authenticate: Basic realm=\"http://127.0.0.1:{registry_port}/\",service=\"ecr.amazonaws.com\""
        );
        let body = json!({"errors": [{"code": "DENIED", "message": "Your authorization token has expired. Reauthenticate and try again."}]});
        return answer(
            &mut stream,
            "401 Unauthorized",
            vec![challenge, "Content-Type: application/json".into()],
            &body,
        );
    }
    if request.method == "DELETE" {
        state.lock().unwrap().registry_deletes += 1;
        return registry_error(
            &mut stream,
            "405 Method Not Allowed",
            "UNSUPPORTED",
            "The operation is unsupported.",
        );
    }
    let path = request.target.split('?').next().unwrap_or_default().to_owned();
    let Some(rest) = path.strip_prefix("/v2/").filter(|rest| !rest.is_empty()) else {
        let raw = forward(&request, &request.target, registry_port)?;
        return stream.write_all(&raw);
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return tags_list(&mut stream, name, moto_port);
    }
    let Some((name, reference)) = rest.rsplit_once("/manifests/") else {
        let raw = forward(&request, &request.target, registry_port)?;
        return stream.write_all(&raw);
    };
    if request.method == "PUT" {
        return put_manifest(&mut stream, &request, name, reference, moto_port, registry_port);
    }
    let id = if reference.starts_with("sha256:") {
        json!({"imageDigest": reference})
    } else {
        json!({"imageTag": reference})
    };
    let described =
        call(moto_port, "DescribeImages", &json!({"repositoryName": name, "imageIds": [id]}));
    let digest = match described {
        Ok(found) => {
            found["imageDetails"][0]["imageDigest"].as_str().unwrap_or_default().to_owned()
        }
        Err((kind, _)) if kind == "RepositoryNotFoundException" => {
            return registry_error(
                &mut stream,
                "404 Not Found",
                "NAME_UNKNOWN",
                "The repository does not exist",
            );
        }
        Err(_) => {
            return registry_error(
                &mut stream,
                "404 Not Found",
                "MANIFEST_UNKNOWN",
                "Requested image not found",
            );
        }
    };
    let raw = forward(&request, &format!("/v2/{name}/manifests/{digest}"), registry_port)?;
    stream.write_all(&raw)
}

fn tags_list(stream: &mut TcpStream, name: &str, moto_port: u16) -> std::io::Result<()> {
    let mut tags = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut input =
            json!({"repositoryName": name, "filter": {"tagStatus": "TAGGED"}, "maxResults": 1000});
        if let Some(token) = &token {
            input["nextToken"] = json!(token);
        }
        match call(moto_port, "ListImages", &input) {
            Ok(page) => {
                for id in page["imageIds"].as_array().into_iter().flatten() {
                    if let Some(tag) = id["imageTag"].as_str() {
                        tags.push(tag.to_owned());
                    }
                }
                token = page["nextToken"].as_str().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            Err(_) => {
                return registry_error(
                    stream,
                    "404 Not Found",
                    "NAME_UNKNOWN",
                    "The repository does not exist",
                );
            }
        }
    }
    tags.sort();
    tags.dedup();
    answer(
        stream,
        "200 OK",
        vec!["Content-Type: application/json".into()],
        &json!({"name": name, "tags": tags}),
    )
}

fn put_manifest(
    stream: &mut TcpStream,
    request: &Request,
    name: &str,
    reference: &str,
    moto_port: u16,
    registry_port: u16,
) -> std::io::Result<()> {
    if call(moto_port, "DescribeRepositories", &json!({"repositoryNames": [name]})).is_err() {
        let message = format!(
            "The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
        );
        return registry_error(stream, "404 Not Found", "NAME_UNKNOWN", &message);
    }
    let raw = forward(request, &request.target, registry_port)?;
    let response = parse_response(&raw);
    if !response.status_line.contains(" 201 ") {
        return stream.write_all(&raw);
    }
    let digest = response
        .headers
        .iter()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case("Docker-Content-Digest").then(|| value.trim().to_owned())
        })
        .expect("distribution answers a digest");
    let mut input = json!({
        "repositoryName": name,
        "imageManifest": String::from_utf8_lossy(&request.body),
        "imageDigest": digest,
    });
    if let Some(media_type) = header(request, "Content-Type") {
        input["imageManifestMediaType"] = json!(media_type);
    }
    if !reference.starts_with("sha256:") {
        input["imageTag"] = json!(reference);
    }
    match call(moto_port, "PutImage", &input) {
        Ok(_) => stream.write_all(&raw),
        Err((kind, _)) if kind == "ImageAlreadyExistsException" => stream.write_all(&raw),
        Err((kind, body)) => {
            let message = body["message"].as_str().unwrap_or(&kind).to_owned();
            registry_error(stream, "400 Bad Request", "TAG_INVALID", &message)
        }
    }
}

fn ecr_api(
    stream: &mut TcpStream,
    request: &Request,
    operation: &str,
    moto_port: u16,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    let mut input: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let (expired, failing) = {
        let mut state = state.lock().unwrap();
        let ids = input["imageIds"].as_array().map_or(0, Vec::len);
        state.calls.push((operation.to_owned(), ids));
        if operation == "DescribeImages" {
            state.describe_max_results.push(input["maxResults"].as_i64());
        }
        let expired = match &mut state.expire_after {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        (expired, state.failing.clone())
    };
    let json_type = "Content-Type: application/x-amz-json-1.1".to_owned();
    if expired {
        let body = json!({"__type": "ExpiredTokenException", "message": "The security token included in the request is expired"});
        return answer(stream, "400 Bad Request", vec![json_type], &body);
    }
    let mut injected = Vec::new();
    if operation == "BatchDeleteImage"
        && let Some(ids) = input["imageIds"].as_array_mut()
    {
        ids.retain(|id| {
            let named = id["imageTag"].as_str().or(id["imageDigest"].as_str());
            let failing = named.and_then(|name| failing.get(name));
            if let Some(code) = failing {
                injected.push(json!({"imageId": id.clone(), "failureCode": code, "failureReason": "injected by the test front"}));
            }
            failing.is_none()
        });
    }
    let emptied = input["imageIds"].as_array().is_some_and(Vec::is_empty);
    if operation == "BatchDeleteImage" && emptied {
        let output = json!({"imageIds": [], "failures": injected});
        return answer(stream, "200 OK", vec![json_type], &output);
    }
    match call(moto_port, operation, &input) {
        Ok(mut output) => {
            if let Some(failures) = output.get_mut("failures").and_then(Value::as_array_mut) {
                failures.extend(injected);
            } else if !injected.is_empty() {
                output["failures"] = Value::Array(injected);
            }
            answer(stream, "200 OK", vec![json_type], &output)
        }
        Err((_, body)) => answer(stream, "400 Bad Request", vec![json_type], &body),
    }
}
