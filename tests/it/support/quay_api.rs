//! The Quay API endpoints dockhand uses, in the stand-in (`stand_in.rs`), following Quay's API
//! docs (docs.quay.io, "Red Hat Quay API guide", `tag` resource; OAuth 2 bearer tokens with
//! scopes `repo:read` / `repo:write`): under `/api/v1`,
//! - `GET /repository/{repository}/tag/` (`onlyActiveTags`, `limit` ≤ 100, `page`; answers
//!   `tags[]` with `name`, `manifest_digest`, `is_manifest_list`, `start_ts` in seconds since
//!   the epoch, `last_modified`, and `page`, `has_additional`);
//! - `DELETE /repository/{repository}/tag/{tag}` (204; removes that tag only).
//!
//! `{repository}` is `namespace/name`. Errors are Quay's `{"status", "error_message", "title",
//! "error_type", "detail"}`: 401 `invalid_token`, 403 `insufficient_scope`, 404 `not_found`.
//! The real Quay was not used.

use super::docker_hub_api::remove_tag_only;
use super::stand_in::{ApiRequest, ApiResponse, State};

pub(super) fn error(status: u16, kind: &str, message: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        &serde_json::json!({
            "status": status, "error_message": message, "title": kind, "error_type": kind, "detail": message,
        }),
    )
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let token = request.authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
    let Some(write) = token.and_then(|token| state.quay_tokens.get(token)).copied() else {
        return error(401, "invalid_token", "Invalid token");
    };
    let segments: Vec<&str> =
        request.path.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    let ["api", "v1", "repository", rest @ ..] = segments.as_slice() else {
        return error(404, "not_found", "Not Found");
    };
    let (repository, tag) = match rest {
        [names @ .., "tag"] => (names.join("/"), None),
        [names @ .., "tag", tag] => (names.join("/"), Some(*tag)),
        _ => return error(404, "not_found", "Not Found"),
    };
    if state.repositories.get(&repository).is_none_or(Vec::is_empty) {
        return error(404, "not_found", "Not Found");
    }
    match (request.method.as_str(), tag) {
        ("GET", None) => list(state, request, &repository),
        ("DELETE", Some(tag)) => {
            if !write {
                return error(403, "insufficient_scope", "Unauthorized");
            }
            let found = state.repositories[&repository]
                .iter()
                .any(|version| version.tags.iter().any(|(name, _)| name == tag));
            if !found {
                return error(404, "not_found", "Not Found");
            }
            remove_tag_only(state, &repository, tag);
            ApiResponse { status: 204, headers: Vec::new(), body: String::new() }
        }
        _ => error(405, "method_not_allowed", "Method Not Allowed"),
    }
}

fn list(state: &State, request: &ApiRequest, repository: &str) -> ApiResponse {
    let limit: usize =
        request.query.get("limit").and_then(|value| value.parse().ok()).unwrap_or(50).clamp(1, 100);
    let page: usize =
        request.query.get("page").and_then(|value| value.parse().ok()).unwrap_or(1).max(1);
    let mut tags: Vec<(&str, &str, jiff::Timestamp)> = state.repositories[repository]
        .iter()
        .flat_map(|version| {
            version.tags.iter().map(|(tag, set)| (tag.as_str(), version.digest.as_str(), *set))
        })
        .collect();
    // newest first, as Quay lists them
    tags.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
    let items: Vec<serde_json::Value> = tags
        .iter()
        .skip((page - 1) * limit)
        .take(limit)
        .map(|(name, digest, set)| {
            serde_json::json!({
                "name": name,
                "reversion": false,
                "start_ts": set.as_second(),
                "manifest_digest": digest,
                "is_manifest_list": false,
                "size": 1024,
                "last_modified": set.strftime("%a, %d %b %Y %H:%M:%S -0000").to_string(),
            })
        })
        .collect();
    ApiResponse::json(
        200,
        &serde_json::json!({"tags": items, "page": page, "has_additional": page * limit < tags.len()}),
    )
}
