//! The GitHub REST endpoints dockhand uses, in the stand-in (`stand_in.rs`), following the
//! OpenAPI description on npm `@octokit/openapi` (`api.github.com.json`, version
//! 2022-11-28): `GET /users/{username}` (`type` `User` | `Organization`),
//! `GET /{orgs/{org}|users/{username}}/packages/container/{package_name}/versions`
//! (`page`, `per_page` ≤ 100, `Link` header; 404 `Package not found.` for an unknown package)
//! and `DELETE …/versions/{package_version_id}` (204), and `GET
//! /repos/{owner}/{repo}/pulls/{pull_number}` (schema `pull-request`: `number`, `state`
//! `open`|`closed`, `merged_at`; 404 `Not Found`). Errors use the `basic-error` shape
//! (`message`, `documentation_url`, `status`). The real GitHub was not used.

use super::stand_in::{ApiRequest, ApiResponse, GithubToken, State, Version};

const DOCS: &str = "https://docs.github.com/rest/packages/packages";

fn error(status: u16, message: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        &serde_json::json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
    )
}

fn version_json(state: &State, base: &str, version: &Version) -> serde_json::Value {
    let tags: Vec<&str> = version.tags.iter().map(|(tag, _)| tag.as_str()).collect();
    serde_json::json!({
        "id": version.id,
        "name": version.digest,
        "url": format!("{base}/versions/{}", version.id),
        "package_html_url": format!("http://127.0.0.1:{}/packages", state.api_port),
        "created_at": version.created.to_string(),
        "updated_at": version.updated.to_string(),
        "html_url": format!("http://127.0.0.1:{}/versions/{}", state.api_port, version.id),
        "metadata": {"package_type": "container", "container": {"tags": tags}},
    })
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let token = request
        .authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("token ")))
        .and_then(|token| state.github_tokens.get(token).cloned());
    let Some(token) = token else {
        return error(401, "Bad credentials");
    };
    state.remaining = state.remaining.saturating_sub(1);
    let reset = jiff::Timestamp::now().as_second() + 3600;
    let mut response = route(state, request, &token)
        .with_header("x-ratelimit-limit: 5000".to_owned())
        .with_header(format!("x-ratelimit-remaining: {}", state.remaining))
        .with_header(format!("x-ratelimit-used: {}", 5000 - state.remaining))
        .with_header(format!("x-ratelimit-reset: {reset}"))
        .with_header("x-ratelimit-resource: core".to_owned())
        .with_header("x-github-api-version-selected: 2022-11-28".to_owned());
    if let GithubToken::Classic(scopes) = token {
        response = response.with_header(format!("x-oauth-scopes: {scopes}"));
    }
    response
}

fn route(state: &mut State, request: &ApiRequest, token: &GithubToken) -> ApiResponse {
    let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["repos", owner, repo, "pulls", number]) => {
            let key = format!("{owner}/{repo}#{number}");
            match state.pull_requests.get(&key) {
                Some((open, merged)) => ApiResponse::json(
                    200,
                    &serde_json::json!({
                        "number": number.parse::<u64>().unwrap_or_default(),
                        "state": if *open { "open" } else { "closed" },
                        "merged_at": if *merged { serde_json::json!("2026-11-30T10:00:00Z") } else { serde_json::Value::Null },
                        "merged": merged,
                    }),
                ),
                None => error(404, "Not Found"),
            }
        }
        ("GET", ["users", owner]) => match state.owners.get(*owner) {
            Some(organisation) => ApiResponse::json(
                200,
                &serde_json::json!({
                    "login": owner,
                    "id": 1000 + owner.len(),
                    "type": if *organisation { "Organization" } else { "User" },
                    "site_admin": false,
                }),
            ),
            None => error(404, "Not Found"),
        },
        ("GET", [kind, owner, "packages", "container", name, "versions"]) => {
            let Some(repository) = package_repository(state, kind, owner, name) else {
                return error(404, "Package not found.");
            };
            list_versions(state, request, kind, owner, name, &repository)
        }
        ("DELETE", [kind, owner, "packages", "container", name, "versions", id]) => {
            let Some(repository) = package_repository(state, kind, owner, name) else {
                return error(404, "Package not found.");
            };
            match token {
                GithubToken::Workflow { admin: false } => {
                    return error(403, "Resource not accessible by integration");
                }
                GithubToken::Classic(scopes) if !scopes.contains("delete:packages") => {
                    return error(
                        403,
                        "You must have the delete:packages scope to delete a package version.",
                    );
                }
                _ => {}
            }
            if let Err(wait) = state.take_delete() {
                return error(
                    403,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                )
                .with_header(format!("retry-after: {wait}"));
            }
            let id: u64 = id.parse().unwrap_or(0);
            let digest = state.repositories[&repository]
                .iter()
                .find(|version| version.id == id)
                .map(|version| version.digest.clone());
            match digest {
                Some(digest) => {
                    state.delete_manifest(&repository, &digest);
                    ApiResponse { status: 204, headers: Vec::new(), body: String::new() }
                }
                None => error(404, "Not Found"),
            }
        }
        _ => error(404, "Not Found"),
    }
}

/// The registry repository of package `name` (URL-encoded) of `owner` under `kind`
/// (`orgs`/`users`, which must match the owner's type), if it has versions.
fn package_repository(state: &State, kind: &str, owner: &str, name: &str) -> Option<String> {
    let organisation = *state.owners.get(owner)?;
    if (kind == "orgs") != organisation || !matches!(kind, "orgs" | "users") {
        return None;
    }
    let repository = format!("{owner}/{}", name.replace("%2F", "/").replace("%2f", "/"));
    state.repositories.get(&repository).filter(|versions| !versions.is_empty())?;
    Some(repository)
}

fn list_versions(
    state: &State,
    request: &ApiRequest,
    kind: &str,
    owner: &str,
    name: &str,
    repository: &str,
) -> ApiResponse {
    let per_page: usize = request
        .query
        .get("per_page")
        .and_then(|value| value.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize =
        request.query.get("page").and_then(|value| value.parse().ok()).unwrap_or(1).max(1);
    // newest first, as GitHub lists them
    let mut versions: Vec<&Version> = state.repositories[repository].iter().collect();
    versions.sort_by_key(|version| std::cmp::Reverse(version.id));
    let pages = versions.len().div_ceil(per_page).max(1);
    let base =
        format!("http://127.0.0.1:{}/{kind}/{owner}/packages/container/{name}", state.api_port);
    let body: Vec<serde_json::Value> = versions
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|version| version_json(state, &base, version))
        .collect();
    let mut response = ApiResponse::json(200, &serde_json::Value::Array(body));
    let link = |page: usize, rel: &str| {
        format!("<{base}/versions?per_page={per_page}&page={page}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(page - 1, "prev"));
        links.push(link(1, "first"));
    }
    if !links.is_empty() {
        response = response.with_header(format!("Link: {}", links.join(", ")));
    }
    response
}
