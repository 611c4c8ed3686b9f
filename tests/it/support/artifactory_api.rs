//! The Artifactory REST endpoints dockhand uses, in the stand-in (`stand_in.rs`), following
//! JFrog's REST API documentation ("JFrog REST APIs" on jfrog.com/help):
//! - Docker "List Docker Tags": `GET /artifactory/api/docker/{repo-key}/v2/{image}/tags/list`
//!   → `{"name", "tags"}` (404 `NAME_UNKNOWN` in the registry API's error shape);
//! - Storage "Get Folder Info": `GET /artifactory/api/storage/{repo-key}/{folder-path}` →
//!   `repo`, `path`, `created`, `createdBy`, `lastModified`, `modifiedBy`, `lastUpdated`,
//!   `children`, `uri`, times in the documented pattern `yyyy-MM-dd'T'HH:mm:ss.SSSZ`;
//! - "Delete Item": `DELETE /artifactory/{repo-key}/{path}` (204). For a Docker tag folder this
//!   removes that tag alone ("Deletion and cleanup of Docker tags and repositories"), which
//!   the stand-in plays on the real registry by moving the tag to a unique manifest and
//!   deleting that one;
//! - "Error Responses": `{"errors": [{"status": N, "message": "…"}]}`; 401 carries
//!   `WWW-Authenticate: Basic realm="Artifactory Realm"`.
//!
//! Requests authenticate with Basic `user:password` (or `user:access-token`) or
//! `Authorization: Bearer <access token>`; a login without the Delete permission gets 403.
//! The real Artifactory was not used.

use base64::Engine as _;

use super::stand_in::{ApiRequest, ApiResponse, State};

fn error(status: u16, message: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        &serde_json::json!({"errors": [{"status": status, "message": message}]}),
    )
}

/// Who is calling: `(name, may delete)`, `None` for no or wrong credentials.
fn caller(state: &State, request: &ApiRequest) -> Option<(String, bool)> {
    let value = request.authorization.as_deref()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return state.access_tokens.get(token).map(|may_delete| ("token".to_owned(), *may_delete));
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    match state.registry_users.get(user) {
        Some((expected, may_delete)) if expected == password => {
            Some((user.to_owned(), *may_delete))
        }
        _ => None,
    }
}

/// The documented time pattern `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, in UTC.
fn time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let Some((user, may_delete)) = caller(state, request) else {
        return error(401, "Bad credentials")
            .with_header("WWW-Authenticate: Basic realm=\"Artifactory Realm\"".to_owned());
    };
    let Some(path) = request.path.strip_prefix("/artifactory/") else {
        return error(404, "Not Found");
    };
    let segments: Vec<&str> = path.split('/').filter(|segment| !segment.is_empty()).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["api", "docker", key, "v2", image @ .., "tags", "list"]) if !image.is_empty() => {
            let repository = format!("{key}/{}", image.join("/"));
            let Some(versions) =
                state.repositories.get(&repository).filter(|versions| !versions.is_empty())
            else {
                return ApiResponse::json(
                    404,
                    &serde_json::json!({"errors": [{"code": "NAME_UNKNOWN", "message": "Repository name not known to registry.", "detail": {"name": image.join("/")}}]}),
                );
            };
            let mut tags: Vec<&str> = versions
                .iter()
                .flat_map(|version| version.tags.iter().map(|(tag, _)| tag.as_str()))
                .collect();
            tags.sort_unstable();
            ApiResponse::json(200, &serde_json::json!({"name": image.join("/"), "tags": tags}))
        }
        ("GET", ["api", "storage", key, image @ .., tag]) if !image.is_empty() => {
            let repository = format!("{key}/{}", image.join("/"));
            let pushed = state.repositories.get(&repository).and_then(|versions| {
                versions.iter().find_map(|version| {
                    version.tags.iter().find(|(name, _)| name == tag).map(|(_, at)| *at)
                })
            });
            let Some(pushed) = pushed else {
                return error(404, "Unable to find item");
            };
            let folder = format!("/{}/{tag}", image.join("/"));
            ApiResponse::json(
                200,
                &serde_json::json!({
                    "uri": format!("http://127.0.0.1:{}/artifactory/api/storage/{key}{folder}", state.api_port),
                    "repo": key,
                    "path": folder,
                    "created": time(pushed),
                    "createdBy": user,
                    "lastModified": time(pushed),
                    "modifiedBy": user,
                    "lastUpdated": time(pushed),
                    "children": [{"uri": "/manifest.json", "folder": false}],
                }),
            )
        }
        ("DELETE", [key, image @ .., tag]) if *key != "api" && !image.is_empty() => {
            let repository = format!("{key}/{}", image.join("/"));
            let item = format!("{key}:{}/{tag}", image.join("/"));
            let found = state.repositories.get(&repository).is_some_and(|versions| {
                versions.iter().any(|version| version.tags.iter().any(|(name, _)| name == tag))
            });
            if !found {
                return error(404, &format!("Could not locate artifact '{item}'."));
            }
            if !may_delete {
                return error(
                    403,
                    &format!(
                        "Not enough permissions to delete/overwrite artifact '{item}' (user: '{user}' needs DELETE permission)."
                    ),
                );
            }
            super::docker_hub_api::remove_tag_only(state, &repository, tag);
            ApiResponse { status: 204, headers: Vec::new(), body: String::new() }
        }
        _ => error(404, "Not Found"),
    }
}
