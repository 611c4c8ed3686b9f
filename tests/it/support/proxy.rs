//! A small fault proxy in front of a real registry (`docs/testing.md` §7).
//!
//! Forwards every request to the registry unchanged (one request per connection, `Connection:
//! close`, the client's `Host` kept so `Location` headers point back here), except that it can
//! page `tags/list` answers (`n`/`last` with relative, absolute or looping `Link` headers, or
//! `"tags": null`) and answer the next requests itself with a fault such as 429 + `Retry-After`.
//! It logs `METHOD target` for every request. Runs on one std thread on `127.0.0.1:0`, serving
//! one connection at a time; `Drop` stops and joins it.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the proxy writes the `Link` to the next tags page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStyle {
    /// `</v2/…/tags/list?n=N&last=X>; rel="next"`
    Relative,
    /// `<http://127.0.0.1:PORT/v2/…>; rel="next"`
    Absolute,
    /// Always points at the page after the first one, so a client that follows it loops.
    Looping,
    /// Serves the first page again and again, each time with a fresh `last=` (a hostile
    /// registry that never ends: no page repeats, no tag is new).
    Endless,
    /// `<http://localhost:PORT/v2/…>`: the same proxy under another origin.
    Foreign,
}

/// A canned answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub retry_after: Option<String>,
    /// A `WWW-Authenticate` header to send (for 401 faults).
    pub www_authenticate: Option<String>,
    /// A `Location` header to send (for redirects).
    pub location: Option<String>,
}

impl Fault {
    /// `status` with an optional `Retry-After`.
    pub fn status(status: u16, retry_after: Option<&str>) -> Self {
        Self {
            status,
            retry_after: retry_after.map(str::to_owned),
            www_authenticate: None,
            location: None,
        }
    }

    /// A `307` redirect to `location`.
    pub fn redirect(location: &str) -> Self {
        Self { location: Some(location.to_owned()), ..Self::status(307, None) }
    }
}

#[derive(Debug, Default)]
struct Behaviour {
    /// Page `tags/list` answers with this many tags per page.
    page_size: Option<(usize, LinkStyle)>,
    /// Answer `tags/list` with `"tags": null`.
    null_tags: bool,
    /// Answer the next requests with these, in order, before forwarding anything.
    faults: VecDeque<Fault>,
    /// Answer every request whose `METHOD target` contains the text with the fault, as many
    /// times as the count says (`None`: always).
    matching: Vec<(String, Fault, Option<usize>)>,
    log: Vec<String>,
}

pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Proxy {
    /// Starts a proxy in front of the registry at `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let thread = {
            let stop = Arc::clone(&stop);
            let behaviour = Arc::clone(&behaviour);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let _ = handle(stream, upstream_port, port, &behaviour);
                    }
                }
            })
        };
        Self { port, stop, thread: Some(thread), behaviour }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pages `tags/list` by `page_size` with `Link` headers written in `style`.
    pub fn page_tags(&self, page_size: usize, style: LinkStyle) {
        self.behaviour.lock().unwrap().page_size = Some((page_size, style));
    }

    /// Answers `tags/list` with `"tags": null`.
    pub fn null_tags(&self) {
        self.behaviour.lock().unwrap().null_tags = true;
    }

    /// Answers the next request with `fault` (faults queue up in order).
    pub fn inject(&self, fault: Fault) {
        self.behaviour.lock().unwrap().faults.push_back(fault);
    }

    /// Answers every request whose `METHOD target` contains `pattern` with `fault` (e.g.
    /// `"last="` for the second page of a paged tag list), from now on.
    pub fn inject_matching(&self, pattern: &str, fault: Fault) {
        self.behaviour.lock().unwrap().matching.push((pattern.to_owned(), fault, None));
    }

    /// Answers the next `times` requests whose `METHOD target` contains `pattern` with `fault`
    /// (e.g. `"PUT /v2/dh/app/blobs/uploads/"` for the body of a blob upload).
    pub fn inject_matching_times(&self, pattern: &str, fault: Fault, times: usize) {
        self.behaviour.lock().unwrap().matching.push((pattern.to_owned(), fault, Some(times)));
    }

    /// `METHOD target` of every request so far.
    pub fn log(&self) -> Vec<String> {
        self.behaviour.lock().unwrap().log.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(super) struct Request {
    pub(super) method: String,
    pub(super) target: String,
    /// Header lines without `Connection`, each ending in CRLF.
    pub(super) headers: String,
    pub(super) body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (any case).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }
}

/// The value of header `name` (any case) in header lines `headers`.
pub(super) fn header_in<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

pub(super) fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = String::new();
    let mut content_length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        let name = header.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if name == "content-length" {
            content_length =
                header.split(':').nth(1).unwrap_or_default().trim().parse().unwrap_or(0);
        }
        if name != "connection" {
            headers.push_str(&header);
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    Ok(Request { method, target, headers, body })
}

/// A response split into status line, header lines and a de-chunked body.
pub(super) struct Response {
    pub(super) status_line: String,
    pub(super) headers: Vec<String>,
    pub(super) body: Vec<u8>,
}

pub(super) fn parse_response(raw: &[u8]) -> Response {
    let split = raw.windows(4).position(|window| window == b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<String> = lines.map(str::to_owned).collect();
    let chunked = headers.iter().any(|h| {
        h.to_ascii_lowercase().starts_with("transfer-encoding:")
            && h.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response { status_line, headers, body }
}

fn dechunk(mut input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = input.windows(2).position(|window| window == b"\r\n") {
        let size_text = String::from_utf8_lossy(&input[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        input = &input[end + 2..];
        if size == 0 || input.len() < size {
            break;
        }
        out.extend_from_slice(&input[..size]);
        input = input.get(size + 2..).unwrap_or_default();
    }
    out
}

pub(super) fn write_response(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let mut head = format!("{}\r\n", response.status_line);
    for header in &response.headers {
        let lower = header.to_ascii_lowercase();
        if lower.starts_with("content-length:")
            || lower.starts_with("transfer-encoding:")
            || lower.starts_with("connection:")
        {
            continue;
        }
        head.push_str(header);
        head.push_str("\r\n");
    }
    let head =
        format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n", response.body.len());
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)
}

pub(super) fn forward(
    request: &Request,
    target: &str,
    upstream_port: u16,
) -> std::io::Result<Vec<u8>> {
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    upstream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{} {target} HTTP/1.1\r\n{}Connection: close\r\n\r\n",
        request.method, request.headers
    );
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&request.body)?;
    let mut raw = Vec::new();
    upstream.read_to_end(&mut raw)?;
    Ok(raw)
}

fn handle(
    mut stream: TcpStream,
    upstream_port: u16,
    port: u16,
    behaviour: &Mutex<Behaviour>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&stream)?;
    let (fault, page_size, null_tags) = {
        let mut behaviour = behaviour.lock().unwrap();
        let line = format!("{} {}", request.method, request.target);
        let matched = behaviour
            .matching
            .iter_mut()
            .find(|(pattern, _, times)| line.contains(pattern.as_str()) && *times != Some(0))
            .map(|(_, fault, times)| {
                if let Some(times) = times {
                    *times -= 1;
                }
                fault.clone()
            });
        behaviour.log.push(line);
        let fault = matched.or_else(|| behaviour.faults.pop_front());
        (fault, behaviour.page_size, behaviour.null_tags)
    };
    if let Some(fault) = fault {
        let mut headers = vec!["Content-Type: application/json".to_owned()];
        if let Some(retry_after) = &fault.retry_after {
            headers.push(format!("Retry-After: {retry_after}"));
        }
        if let Some(challenge) = &fault.www_authenticate {
            headers.push(format!("WWW-Authenticate: {challenge}"));
        }
        if let Some(location) = &fault.location {
            headers.push(format!("Location: {location}"));
        }
        let code = match fault.status {
            401 => "UNAUTHORIZED",
            405 => "UNSUPPORTED",
            429 | 503 => "TOOMANYREQUESTS",
            _ => "UNKNOWN",
        };
        let body =
            format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the test proxy"}}]}}"#)
                .into_bytes();
        let response =
            Response { status_line: format!("HTTP/1.1 {} Injected", fault.status), headers, body };
        return write_response(&mut stream, &response);
    }
    let url = url::Url::parse(&format!("http://proxy{}", request.target)).expect("request target");
    let is_tags = request.method == "GET" && url.path().ends_with("/tags/list");
    if !is_tags || (page_size.is_none() && !null_tags) {
        let raw = forward(&request, &request.target, upstream_port)?;
        return stream.write_all(&raw);
    }
    let mut response = parse_response(&forward(&request, url.path(), upstream_port)?);
    if !response.status_line.contains(" 200 ") {
        return write_response(&mut stream, &response);
    }
    let listed: serde_json::Value = serde_json::from_slice(&response.body).expect("tags JSON");
    if null_tags {
        response.body =
            serde_json::json!({ "name": listed["name"], "tags": null }).to_string().into_bytes();
        return write_response(&mut stream, &response);
    }
    let (size, style) = page_size.expect("paging is on");
    let tags = super::sorted_strings(&listed["tags"]);
    let last =
        url.query_pairs().find(|(name, _)| name == "last").map(|(_, value)| value.into_owned());
    let after: Vec<String> = tags
        .iter()
        .filter(|tag| style == LinkStyle::Endless || last.as_ref().is_none_or(|last| *tag > last))
        .cloned()
        .collect();
    let page: Vec<String> = after.iter().take(size).cloned().collect();
    if after.len() > page.len() || style == LinkStyle::Endless {
        let next_last = match style {
            LinkStyle::Looping => tags[size.min(tags.len()) - 1].clone(),
            LinkStyle::Endless => format!("fresh-{}", fastrand::u64(..)),
            LinkStyle::Relative | LinkStyle::Absolute | LinkStyle::Foreign => {
                page.last().cloned().unwrap_or_default()
            }
        };
        let path = format!("{}?n={size}&last={next_last}", url.path());
        let link = match style {
            LinkStyle::Absolute => format!("http://127.0.0.1:{port}{path}"),
            LinkStyle::Foreign => format!("http://localhost:{port}{path}"),
            LinkStyle::Relative | LinkStyle::Looping | LinkStyle::Endless => path,
        };
        response.headers.retain(|header| !header.to_ascii_lowercase().starts_with("link:"));
        response.headers.push(format!("Link: <{link}>; rel=\"next\""));
    }
    response.body =
        serde_json::json!({ "name": listed["name"], "tags": page }).to_string().into_bytes();
    write_response(&mut stream, &response)
}
