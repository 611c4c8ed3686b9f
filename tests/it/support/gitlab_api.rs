//! The GitLab REST API endpoints dockhand uses, in the stand-in (`stand_in.rs`), following
//! GitLab's REST API docs (docs.gitlab.com, "Container registry API" and "REST API":
//! authentication, pagination, status codes): under `/api/v4`,
//! - `GET /projects/:id/registry/repositories` (`:id` the numeric id or the URL-encoded path;
//!   `per_page` ≤ 100, `page`; `Link` and `X-Next-Page` headers; items `id`, `name`, `path`,
//!   `project_id`, `location`, `created_at`);
//! - `GET /projects/:id/registry/repositories/:repository_id/tags` (items `name`, `path`,
//!   `location`, paged the same way);
//! - `GET …/tags/:tag_name` (`digest`, `revision`, `created_at`: when the manifest was created,
//!   `total_size`);
//! - `DELETE …/tags/:tag_name` (200; removes that tag only);
//! - `GET /projects/:id/merge_requests/:merge_request_iid` ("Merge requests API": `id`, `iid`,
//!   `project_id`, `state` `opened|closed|locked|merged`, `merged_at`, `closed_at`), for access
//!   tokens only: a job token is refused with 401, as GitLab's job token documentation lists no
//!   merge request endpoint among those a job token reaches.
//!
//! Tokens come as `PRIVATE-TOKEN` (access tokens) or `JOB-TOKEN` (job tokens; one reaches only
//! its own project), each only in its own header; errors are GitLab's `{"message": "401 Unauthorized"}`, `"403 Forbidden"`,
//! `"404 Project Not Found"`, `"404 Repository Not Found"`, `"404 Tag Not Found"`. A project's
//! registry repositories are the registry's repositories at its path or up to three levels
//! below. The real GitLab was not used.

use super::docker_hub_api::remove_tag_only;
use super::stand_in::{ApiRequest, ApiResponse, GitlabToken, State, percent_decode as decode};

fn message(status: u16, text: &str) -> ApiResponse {
    ApiResponse::json(status, &serde_json::json!({ "message": text }))
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    // an access token counts only as `PRIVATE-TOKEN`, a job token only as `JOB-TOKEN`
    let access = request.header("private-token").and_then(|token| state.gitlab_tokens.get(token));
    let job = request.header("job-token").and_then(|token| state.gitlab_tokens.get(token));
    let token = match (access, job) {
        (Some(token @ GitlabToken::Access { .. }), _)
        | (_, Some(token @ GitlabToken::Job { .. })) => token.clone(),
        _ => return message(401, "401 Unauthorized"),
    };
    let segments: Vec<&str> =
        request.path.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    if let ["api", "v4", "projects", project, "merge_requests", iid] = segments.as_slice() {
        return merge_request(state, &token, &decode(project), iid);
    }
    let ["api", "v4", "projects", project, "registry", "repositories", rest @ ..] =
        segments.as_slice()
    else {
        return message(404, "404 Not Found");
    };
    let project = decode(project);
    let found = state
        .gitlab_projects
        .iter()
        .find(|(path, id)| **path == project || id.to_string() == project);
    let Some((project_path, project_id)) = found.map(|(path, id)| (path.clone(), *id)) else {
        return message(404, "404 Project Not Found");
    };
    let delete = match &token {
        GitlabToken::Access { delete } => *delete,
        GitlabToken::Job { project, delete } => {
            if *project != project_path {
                return message(404, "404 Project Not Found");
            }
            *delete
        }
    };
    let repositories = repositories_of(state, &project_path);
    match (request.method.as_str(), rest) {
        ("GET", []) => {
            let items: Vec<serde_json::Value> = repositories
                .iter()
                .map(|(path, id)| {
                    serde_json::json!({
                        "id": id,
                        "name": path.strip_prefix(&project_path).unwrap_or_default().trim_start_matches('/'),
                        "path": path,
                        "project_id": project_id,
                        "location": format!("127.0.0.1:{}/{path}", state.registry_port),
                        "created_at": "2026-01-01T00:00:00.000Z",
                        "cleanup_policy_started_at": null,
                    })
                })
                .collect();
            paged(state.api_port, request, &items)
        }
        ("GET", [id, "tags"]) => {
            let Some(path) = repository_path(&repositories, id) else {
                return message(404, "404 Repository Not Found");
            };
            let mut tags: Vec<String> =
                tags_of(state, &path).into_iter().map(|(tag, _, _)| tag).collect();
            tags.sort();
            let items: Vec<serde_json::Value> = tags
                .iter()
                .map(|tag| {
                    serde_json::json!({
                        "name": tag,
                        "path": format!("{path}:{tag}"),
                        "location": format!("127.0.0.1:{}/{path}:{tag}", state.registry_port),
                    })
                })
                .collect();
            paged(state.api_port, request, &items)
        }
        ("GET", [id, "tags", tag]) => {
            let Some(path) = repository_path(&repositories, id) else {
                return message(404, "404 Repository Not Found");
            };
            tag_details(state, &path, &decode(tag))
        }
        ("DELETE", [id, "tags", tag]) => {
            let Some(path) = repository_path(&repositories, id) else {
                return message(404, "404 Repository Not Found");
            };
            if !delete {
                return message(403, "403 Forbidden");
            }
            let tag = decode(tag);
            if !tags_of(state, &path).iter().any(|(name, _, _)| *name == tag) {
                return message(404, "404 Tag Not Found");
            }
            remove_tag_only(state, &path, &tag);
            ApiResponse { status: 200, headers: Vec::new(), body: String::new() }
        }
        _ => message(404, "404 Not Found"),
    }
}

/// `GET …/tags/:tag_name`.
/// `GET /projects/:id/merge_requests/:iid` for an access token.
fn merge_request(state: &State, token: &GitlabToken, project: &str, iid: &str) -> ApiResponse {
    if matches!(token, GitlabToken::Job { .. }) {
        return message(401, "401 Unauthorized");
    }
    let found = state
        .gitlab_projects
        .iter()
        .find(|(path, id)| **path == project || id.to_string() == project);
    let Some((path, id)) = found else { return message(404, "404 Project Not Found") };
    let found = iid.parse::<u64>().ok().and_then(|iid| {
        state.gitlab_merge_requests.get(&(path.clone(), iid)).map(|state| (iid, *state))
    });
    let Some((iid, merge_state)) = found else { return message(404, "404 Not found") };
    let at = |when: &str| (merge_state == when).then_some("2026-11-30T10:00:00.000Z");
    ApiResponse::json(
        200,
        &serde_json::json!({
            "id": 1000 + iid,
            "iid": iid,
            "project_id": id,
            "title": format!("change {iid}"),
            "state": merge_state,
            "merged_at": at("merged"),
            "closed_at": at("closed"),
            "source_branch": format!("feature/{iid}"),
            "target_branch": "main",
        }),
    )
}

fn tag_details(state: &State, path: &str, tag: &str) -> ApiResponse {
    let Some((_, digest, created)) =
        tags_of(state, path).into_iter().find(|(name, _, _)| *name == tag)
    else {
        return message(404, "404 Tag Not Found");
    };
    ApiResponse::json(
        200,
        &serde_json::json!({
            "name": tag,
            "path": format!("{path}:{tag}"),
            "location": format!("127.0.0.1:{}/{path}:{tag}", state.registry_port),
            "revision": digest.trim_start_matches("sha256:"),
            "short_revision": &digest["sha256:".len()..][..9],
            "digest": digest,
            "created_at": created.to_string(),
            "total_size": 1024,
        }),
    )
}

/// The registry repositories of the project at `project` (its path and up to three levels
/// below) with their ids, handing out ids to new ones.
fn repositories_of(state: &mut State, project: &str) -> Vec<(String, u64)> {
    let paths: Vec<String> = state
        .repositories
        .iter()
        .filter(|(_, versions)| !versions.is_empty())
        .map(|(path, _)| path.clone())
        .filter(|path| {
            path == project
                || path
                    .strip_prefix(project)
                    .and_then(|below| below.strip_prefix('/'))
                    .is_some_and(|below| below.split('/').count() <= 3)
        })
        .collect();
    let mut listed = Vec::new();
    for path in paths {
        let next = u64::try_from(state.gitlab_repository_ids.len()).unwrap() + 101;
        let id = *state.gitlab_repository_ids.entry(path.clone()).or_insert(next);
        listed.push((path, id));
    }
    listed
}

fn repository_path(repositories: &[(String, u64)], id: &str) -> Option<String> {
    repositories.iter().find(|(_, known)| known.to_string() == id).map(|(path, _)| path.clone())
}

/// `(tag, digest, manifest created)` of every tag of `path`.
fn tags_of(state: &State, path: &str) -> Vec<(String, String, jiff::Timestamp)> {
    state
        .repositories
        .get(path)
        .into_iter()
        .flatten()
        .flat_map(|version| {
            version
                .tags
                .iter()
                .map(|(tag, _)| (tag.clone(), version.digest.clone(), version.created))
        })
        .collect()
}

/// `items` paged by `per_page` (≤ 100, default 20) and `page`, with GitLab's headers.
fn paged(api_port: u16, request: &ApiRequest, items: &[serde_json::Value]) -> ApiResponse {
    let per_page: usize = request
        .query
        .get("per_page")
        .and_then(|value| value.parse().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let page: usize =
        request.query.get("page").and_then(|value| value.parse().ok()).unwrap_or(1).max(1);
    let slice: Vec<&serde_json::Value> =
        items.iter().skip((page - 1) * per_page).take(per_page).collect();
    let mut response = ApiResponse::json(200, &serde_json::json!(slice))
        .with_header(format!("X-Total: {}", items.len()))
        .with_header(format!("X-Page: {page}"))
        .with_header(format!("X-Per-Page: {per_page}"));
    if page * per_page < items.len() {
        let next = format!(
            "http://127.0.0.1:{api_port}{}?per_page={per_page}&page={}",
            request.path,
            page + 1
        );
        response = response
            .with_header(format!("X-Next-Page: {}", page + 1))
            .with_header(format!("Link: <{next}>; rel=\"next\""));
    } else {
        response = response.with_header("X-Next-Page: ".to_owned());
    }
    response
}
