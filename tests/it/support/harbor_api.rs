//! The Harbor API endpoints dockhand uses, in the stand-in (`stand_in.rs`), following Harbor's
//! swagger (`api/v2.0/swagger.yaml`, "Harbor API" version 2.0, basic auth): under `/api/v2.0`,
//! - `GET /projects/{project_name}/repositories/{repository_name}/artifacts` (`page`,
//!   `page_size` ≤ 100, `with_tag`, `with_immutable_status`; `X-Total-Count` and a `Link`
//!   header relative to the host; artifacts with `digest`, `push_time`, `tags[]` of `name`,
//!   `push_time`, `immutable`);
//! - `DELETE …/artifacts/{reference}/tags/{tag_name}` (200; removes that tag only);
//! - `DELETE …/artifacts/{reference}` (200; removes the artifact and every tag on it).
//!
//! `{repository_name}` must be URL-encoded twice when it holds a `/`: Harbor decodes the path
//! once to route, so a name encoded once has a `/` after that and matches no route (404).
//! Errors are Harbor's `{"errors": [{"code", "message"}]}`: `UNAUTHORIZED` (401),
//! `FORBIDDEN` (403), `NOT_FOUND` (404), `PRECONDITION` (412: an immutable tag, or an artifact
//! carrying one). Tag immutability rules are tag patterns (`v*` or exact names). The real
//! Harbor was not used.

use base64::Engine as _;

use super::docker_hub_api::remove_tag_only;
use super::stand_in::{ApiRequest, ApiResponse, State, percent_decode as decode};

pub(super) fn error(status: u16, code: &str, message: &str) -> ApiResponse {
    ApiResponse::json(status, &serde_json::json!({"errors": [{"code": code, "message": message}]}))
}

fn immutable(state: &State, tag: &str) -> bool {
    state.harbor_immutable.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => tag.starts_with(prefix),
        None => pattern == tag,
    })
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let login = request
        .authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let user = login.and_then(|login| {
        let (user, password) = login.split_once(':')?;
        let (expected, delete) = state.harbor_users.get(user)?;
        (expected == password).then_some(*delete)
    });
    let Some(may_delete) = user else {
        return error(401, "UNAUTHORIZED", "unauthorized");
    };
    // the router sees the path decoded once: a `/` encoded only once splits the name
    let routed = decode(&request.path);
    let segments: Vec<&str> =
        routed.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    let ["api", "v2.0", "projects", project, "repositories", name, rest @ ..] = segments.as_slice()
    else {
        return error(404, "NOT_FOUND", "not found");
    };
    if !state.harbor_projects.contains(*project) {
        return error(404, "NOT_FOUND", &format!("project {project} not found"));
    }
    let path = format!("{project}/{}", decode(name));
    if state.repositories.get(&path).is_none_or(Vec::is_empty) {
        return error(404, "NOT_FOUND", &format!("repository {path} not found"));
    }
    match (request.method.as_str(), rest) {
        ("GET", ["artifacts"]) => list(state, request, &path),
        ("DELETE", ["artifacts", reference, "tags", tag]) => {
            let Some(digest) = resolve(state, &path, reference) else {
                return error(404, "NOT_FOUND", &format!("artifact {path}@{reference} not found"));
            };
            let on_it = state.repositories[&path].iter().any(|version| {
                version.digest == digest && version.tags.iter().any(|(name, _)| name == tag)
            });
            if !on_it {
                return error(404, "NOT_FOUND", &format!("tag {tag} not found"));
            }
            if !may_delete {
                return error(403, "FORBIDDEN", "forbidden");
            }
            if immutable(state, tag) {
                return error(
                    412,
                    "PRECONDITION",
                    &format!("the tag {tag} configured as immutable, cannot be deleted"),
                );
            }
            remove_tag_only(state, &path, tag);
            ApiResponse { status: 200, headers: Vec::new(), body: String::new() }
        }
        ("DELETE", ["artifacts", reference]) => {
            let Some(digest) = resolve(state, &path, reference) else {
                return error(404, "NOT_FOUND", &format!("artifact {path}@{reference} not found"));
            };
            if !may_delete {
                return error(403, "FORBIDDEN", "forbidden");
            }
            let tags: Vec<String> = state.repositories[&path]
                .iter()
                .filter(|version| version.digest == digest)
                .flat_map(|version| version.tags.iter().map(|(name, _)| name.clone()))
                .collect();
            if let Some(tag) = tags.iter().find(|tag| immutable(state, tag)) {
                return error(
                    412,
                    "PRECONDITION",
                    &format!("the artifact has an immutable tag {tag}, cannot be deleted"),
                );
            }
            state.delete_manifest(&path, &digest);
            ApiResponse { status: 200, headers: Vec::new(), body: String::new() }
        }
        _ => error(404, "NOT_FOUND", "not found"),
    }
}

/// The digest `reference` (a digest or a tag) names in `path`.
fn resolve(state: &State, path: &str, reference: &str) -> Option<String> {
    state.repositories.get(path)?.iter().find_map(|version| {
        let named =
            version.digest == reference || version.tags.iter().any(|(name, _)| name == reference);
        named.then(|| version.digest.clone())
    })
}

fn list(state: &State, request: &ApiRequest, path: &str) -> ApiResponse {
    let versions = &state.repositories[path];
    let page_size: usize = request
        .query
        .get("page_size")
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
        .clamp(1, 100);
    let page: usize =
        request.query.get("page").and_then(|value| value.parse().ok()).unwrap_or(1).max(1);
    let with_tag = request.query.get("with_tag").is_none_or(|value| value == "true");
    let with_immutable =
        request.query.get("with_immutable_status").is_some_and(|value| value == "true");
    let items: Vec<serde_json::Value> = versions
        .iter()
        .rev()
        .skip((page - 1) * page_size)
        .take(page_size)
        .map(|version| {
            let tags: Vec<serde_json::Value> = version
                .tags
                .iter()
                .map(|(name, pushed)| {
                    serde_json::json!({
                        "id": version.id * 1000 + 1,
                        "artifact_id": version.id,
                        "repository_id": 7,
                        "name": name,
                        "push_time": pushed.to_string(),
                        "pull_time": "0001-01-01T00:00:00.000Z",
                        "immutable": with_immutable && immutable(state, name),
                        "signed": false,
                    })
                })
                .collect();
            serde_json::json!({
                "id": version.id,
                "type": "IMAGE",
                "media_type": "application/vnd.oci.image.config.v1+json",
                "manifest_media_type": "application/vnd.oci.image.manifest.v1+json",
                "project_id": 1,
                "repository_id": 7,
                "digest": version.digest,
                "size": 1024,
                "push_time": version.created.to_string(),
                "pull_time": "0001-01-01T00:00:00.000Z",
                "tags": if with_tag && !tags.is_empty() { serde_json::json!(tags) } else { serde_json::Value::Null },
                "references": null,
            })
        })
        .collect();
    let mut response = ApiResponse::json(200, &serde_json::json!(items))
        .with_header(format!("X-Total-Count: {}", versions.len()));
    if page * page_size < versions.len() {
        let mut query: Vec<String> = request
            .query
            .iter()
            .filter(|(key, _)| *key != "page")
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        query.push(format!("page={}", page + 1));
        response = response.with_header(format!(
            "Link: <{}?{}>; rel=\"next\"",
            request.path,
            query.join("&")
        ));
    }
    response
}
