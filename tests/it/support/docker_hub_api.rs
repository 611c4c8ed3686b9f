//! The Docker Hub API endpoints dockhand uses, in the stand-in (`stand_in.rs`), following the
//! Docker Hub API reference (docs.docker.com, "Docker Hub API", OpenAPI): `POST /v2/auth/token`
//! (`identifier` + `secret` → `access_token`), the older `POST /v2/users/login` (`username` +
//! `password` → `token`), `GET /v2/namespaces/{namespace}/repositories/{repository}/tags`
//! (`page`, `page_size` ≤ 100; `count`, absolute `next`/`previous` URLs, `results` with
//! `name`, `digest`, `media_type`, `last_updated`, `tag_last_pushed`) and
//! `DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/` (204, removes that tag only).
//! A token from a personal access token without the Delete permission gets the Hub's 403
//! "access is forbidden with a JWT issued from a personal access token". The real Docker Hub
//! was not used.

use super::proxy::{self, Request};
use super::stand_in::{ApiRequest, ApiResponse, HubAccess, State};

fn detail(status: u16, message: &str) -> ApiResponse {
    ApiResponse::json(status, &serde_json::json!({"detail": message, "message": message}))
}

fn with_limits(response: ApiResponse, state: &State) -> ApiResponse {
    let reset = jiff::Timestamp::now().as_second() + 60;
    response
        .with_header("x-ratelimit-limit: 600".to_owned())
        .with_header(format!("x-ratelimit-remaining: {}", state.remaining.min(600)))
        .with_header(format!("x-ratelimit-reset: {reset}"))
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    state.remaining = state.remaining.saturating_sub(1);
    let response = route(state, request);
    with_limits(response, state)
}

fn login(
    state: &mut State,
    body: &[u8],
    user_key: &str,
    secret_key: &str,
    token_key: &str,
) -> ApiResponse {
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let identifier = body[user_key].as_str().unwrap_or_default();
    let secret = body[secret_key].as_str().unwrap_or_default();
    match state.hub_users.get(identifier) {
        Some((expected, access)) if expected == secret => {
            let token = format!("hub-jwt-{:016x}", fastrand::u64(..));
            let access = *access;
            state.hub_tokens.insert(token.clone(), (identifier.to_owned(), access));
            ApiResponse::json(200, &serde_json::json!({ token_key: token }))
        }
        _ => detail(401, "Incorrect authentication credentials"),
    }
}

fn route(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let segments: Vec<&str> =
        request.path.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["v2", "auth", "token"]) if !state.hub_no_auth_token => {
            login(state, &request.body, "identifier", "secret", "access_token")
        }
        ("POST", ["v2", "users", "login"]) => {
            login(state, &request.body, "username", "password", "token")
        }
        ("GET", ["v2", "namespaces", namespace, "repositories", repository, "tags"]) => {
            let Some(access) = authorised(state, request) else {
                return detail(401, "authentication required");
            };
            let _ = access;
            list_tags(state, request, namespace, repository)
        }
        ("DELETE", ["v2", "repositories", namespace, repository, "tags", tag]) => {
            let Some(access) = authorised(state, request) else {
                return detail(401, "authentication required");
            };
            if access != HubAccess::ReadWriteDelete {
                return detail(
                    403,
                    "access is forbidden with a JWT issued from a personal access token",
                );
            }
            let path = format!("{namespace}/{repository}");
            let found = state.repositories.get(&path).is_some_and(|versions| {
                versions.iter().any(|version| version.tags.iter().any(|(name, _)| name == tag))
            });
            if !found {
                return detail(404, "tag not found");
            }
            // the Hub removes the tag and keeps the manifest, even when it ends up untagged
            remove_tag_only(state, &path, tag);
            ApiResponse { status: 204, headers: Vec::new(), body: String::new() }
        }
        _ => detail(404, "object not found"),
    }
}

fn authorised(state: &State, request: &ApiRequest) -> Option<HubAccess> {
    let token = request.authorization.as_deref()?.strip_prefix("Bearer ")?;
    state.hub_tokens.get(token).map(|(_, access)| *access)
}

fn list_tags(
    state: &State,
    request: &ApiRequest,
    namespace: &str,
    repository: &str,
) -> ApiResponse {
    let path = format!("{namespace}/{repository}");
    let Some(versions) = state.repositories.get(&path).filter(|versions| !versions.is_empty())
    else {
        return detail(404, "object not found");
    };
    let page_size: usize = request
        .query
        .get("page_size")
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let page: usize =
        request.query.get("page").and_then(|value| value.parse().ok()).unwrap_or(1).max(1);
    // newest push first, as the Hub orders by `last_updated`
    let mut tags: Vec<(&str, &str, jiff::Timestamp)> = versions
        .iter()
        .flat_map(|version| {
            version
                .tags
                .iter()
                .map(|(tag, pushed)| (tag.as_str(), version.digest.as_str(), *pushed))
        })
        .collect();
    tags.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let results: Vec<serde_json::Value> = tags
        .iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .map(|(tag, digest, pushed)| {
            serde_json::json!({
                "name": tag,
                "digest": digest,
                "media_type": "application/vnd.oci.image.manifest.v1+json",
                "content_type": "image",
                "last_updated": pushed.to_string(),
                "tag_last_pushed": pushed.to_string(),
                "tag_last_pulled": null,
                "tag_status": "active",
                "full_size": 0,
                "images": [],
            })
        })
        .collect();
    let base = format!(
        "http://127.0.0.1:{}/v2/namespaces/{namespace}/repositories/{repository}/tags",
        state.api_port
    );
    let url = |page: usize| format!("{base}?page={page}&page_size={page_size}");
    let next = (page * page_size < tags.len()).then(|| url(page + 1));
    let previous = (page > 1).then(|| url(page - 1));
    ApiResponse::json(
        200,
        &serde_json::json!({"count": tags.len(), "next": next, "previous": previous, "results": results}),
    )
}

/// Removes `tag` alone on the real registry behind (which has no tag delete): points it at a
/// unique manifest and deletes that one, leaving the manifest it pointed at in place. This is
/// the stand-in's bookkeeping, not dockhand's (Artifactory's tag-folder delete uses it too).
pub(super) fn remove_tag_only(state: &mut State, repository: &str, tag: &str) {
    let port = state.registry_port;
    let send = |method: &str, target: &str, content_type: Option<&str>, body: Vec<u8>| {
        let mut headers = format!("Host: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
        if let Some(content_type) = content_type {
            headers = format!("{headers}Content-Type: {content_type}\r\n");
        }
        let request =
            Request { method: method.to_owned(), target: target.to_owned(), headers, body };
        proxy::parse_response(&proxy::forward(&request, target, port).expect("registry answers"))
    };
    let config = b"{}".to_vec();
    let config_digest = dockhand::reference::Digest::sha256_of(&config).to_string();
    let started = send("POST", &format!("/v2/{repository}/blobs/uploads/"), None, Vec::new());
    let location = started
        .headers
        .iter()
        .find_map(|header| {
            let (name, value) = header.split_once(':')?;
            name.eq_ignore_ascii_case("location").then(|| value.trim().to_owned())
        })
        .expect("upload location");
    let location = match location.find("/v2/") {
        Some(start) => location[start..].to_owned(),
        None => location,
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let uploaded =
        send("PUT", &format!("{location}{separator}digest={config_digest}"), None, config.clone());
    assert!(uploaded.status_line.contains(" 201 "), "blob upload: {}", uploaded.status_line);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
        "layers": [],
        "annotations": {"stand-in": format!("untag-{tag}-{:016x}", fastrand::u64(..))},
    })
    .to_string()
    .into_bytes();
    let digest = dockhand::reference::Digest::sha256_of(&manifest).to_string();
    let put = send(
        "PUT",
        &format!("/v2/{repository}/manifests/{tag}"),
        Some("application/vnd.oci.image.manifest.v1+json"),
        manifest,
    );
    assert!(put.status_line.contains(" 201 "), "tag move: {}", put.status_line);
    let deleted = send("DELETE", &format!("/v2/{repository}/manifests/{digest}"), None, Vec::new());
    assert!(deleted.status_line.contains(" 202 "), "delete: {}", deleted.status_line);
    if let Some(versions) = state.repositories.get_mut(repository) {
        for version in versions.iter_mut() {
            version.tags.retain(|(name, _)| name != tag);
        }
    }
}
