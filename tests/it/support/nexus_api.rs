//! The Nexus Repository REST endpoints dockhand uses, in the stand-in (`stand_in.rs`),
//! following Sonatype's Nexus Repository REST API (the Swagger description it serves at
//! `/service/rest/swagger.json`, "Search" and "Components"):
//! - `GET /service/rest/v1/search?repository=&format=docker&name=&version=&continuationToken=`
//!   → `{"items": [component], "continuationToken": …}`; a component has `id`, `repository`,
//!   `format`, `group`, `name` (the image), `version` (the tag) and `assets` (the manifest
//!   `v2/{name}/manifests/{tag}` with `checksum.sha256`, `lastModified`, `blobCreated`). Nexus
//!   pages 50 items; the stand-in pages [`PAGE`] so that tests cross pages. An unknown
//!   repository answers 422 with a JSON string, as Nexus's validation errors are;
//! - `DELETE /service/rest/v1/components/{id}` → 204, 404 for an unknown id, 403 without the
//!   delete privilege.
//!
//! Sonatype's documentation leaves open whether deleting a Docker component keeps other tags
//! on the same manifest; the stand-in plays the worst case: it deletes the manifest's digest
//! on the real registry, and every tag on it goes. A 401 has no body and
//! `WWW-Authenticate: BASIC realm="Sonatype Nexus Repository Manager"`. Basic users come from
//! [`super::stand_in::StandIn::add_user`]. The real Nexus was not used.

use base64::Engine as _;

use super::stand_in::{ApiRequest, ApiResponse, State};

/// The Nexus repository behind the front.
pub const REPOSITORY: &str = "docker-hosted";
/// Components per search page.
const PAGE: usize = 3;

fn text(status: u16, message: &str) -> ApiResponse {
    ApiResponse::json(status, &serde_json::Value::String(message.to_owned()))
}

/// `(user, may delete)` of a valid Basic login.
fn caller(state: &State, request: &ApiRequest) -> Option<(String, bool)> {
    let encoded = request.authorization.as_deref()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    match state.registry_users.get(user) {
        Some((expected, may_delete)) if expected == password => {
            Some((user.to_owned(), *may_delete))
        }
        _ => None,
    }
}

fn component_id(image: &str, tag: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{REPOSITORY}:{image}:{tag}"))
}

/// `(image, tag)` of a component id.
fn component_of(id: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(id).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let rest = decoded.strip_prefix(&format!("{REPOSITORY}:"))?;
    let (image, tag) = rest.rsplit_once(':')?;
    Some((image.to_owned(), tag.to_owned()))
}

fn time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let Some((user, may_delete)) = caller(state, request) else {
        return ApiResponse { status: 401, headers: Vec::new(), body: String::new() }.with_header(
            "WWW-Authenticate: BASIC realm=\"Sonatype Nexus Repository Manager\"".to_owned(),
        );
    };
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/service/rest/v1/search") => search(state, request, &user),
        ("DELETE", path) if path.starts_with("/service/rest/v1/components/") => {
            let id = &path["/service/rest/v1/components/".len()..];
            let digest = component_of(id).and_then(|(image, tag)| {
                let versions = state.repositories.get(&image)?;
                let version = versions
                    .iter()
                    .find(|version| version.tags.iter().any(|(name, _)| *name == tag))?;
                Some((image, version.digest.clone()))
            });
            let Some((image, digest)) = digest else {
                return text(404, "Component not found");
            };
            if !may_delete {
                return text(403, "Access denied");
            }
            // the worst case the documentation leaves open: the manifest goes with every tag
            state.delete_manifest(&image, &digest);
            ApiResponse { status: 204, headers: Vec::new(), body: String::new() }
        }
        _ => text(404, "Not Found"),
    }
}

fn search(state: &State, request: &ApiRequest, user: &str) -> ApiResponse {
    let query = &request.query;
    if query.get("repository").map(String::as_str) != Some(REPOSITORY) {
        return text(422, "Repository not found");
    }
    if query.get("format").map(String::as_str) != Some("docker") {
        return ApiResponse::json(
            200,
            &serde_json::json!({"items": [], "continuationToken": null}),
        );
    }
    let name = query.get("name").cloned().unwrap_or_default();
    let mut tags: Vec<(&str, &str, jiff::Timestamp, jiff::Timestamp)> = state
        .repositories
        .get(&name)
        .into_iter()
        .flatten()
        .flat_map(|version| {
            version.tags.iter().map(move |(tag, pushed)| {
                (tag.as_str(), version.digest.as_str(), *pushed, version.created)
            })
        })
        .filter(|(tag, ..)| query.get("version").is_none_or(|wanted| wanted == tag))
        .collect();
    tags.sort_by(|a, b| a.0.cmp(b.0));
    let start = query
        .get("continuationToken")
        .and_then(|token| usize::from_str_radix(token, 16).ok())
        .unwrap_or(0);
    let items: Vec<serde_json::Value> = tags
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|(tag, digest, pushed, created)| {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            let path = format!("v2/{name}/manifests/{tag}");
            serde_json::json!({
                "id": component_id(&name, tag),
                "repository": REPOSITORY,
                "format": "docker",
                "group": null,
                "name": name,
                "version": tag,
                "assets": [{
                    "downloadUrl": format!("http://127.0.0.1:{}/repository/{REPOSITORY}/{path}", state.api_port),
                    "path": path,
                    "id": component_id(&name, &format!("{tag}:asset")),
                    "repository": REPOSITORY,
                    "format": "docker",
                    "checksum": {"sha1": "0000000000000000000000000000000000000000", "sha256": hex},
                    "contentType": "application/vnd.oci.image.manifest.v1+json",
                    "lastModified": time(*pushed),
                    "blobCreated": time(*created),
                    "lastDownloaded": null,
                    "uploader": user,
                    "fileSize": 0,
                }],
            })
        })
        .collect();
    let next = (start + PAGE < tags.len()).then(|| format!("{:x}", start + PAGE));
    ApiResponse::json(200, &serde_json::json!({"items": items, "continuationToken": next}))
}
