//! Azure's side of the stand-in (`stand_in.rs`, [`super::stand_in::Flavor::Acr`]). Follows
//! Microsoft's published descriptions; the real services were not used:
//! - **Entra ID** (Microsoft identity platform, "OAuth 2.0 client credentials flow"):
//!   `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, `client_id`,
//!   `scope` (`…/.default`) and either `client_secret` or `client_assertion_type`
//!   (`urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) + `client_assertion` (a
//!   federated OIDC token) → `{token_type, expires_in, access_token}`; errors
//!   `{error, error_description: "AADSTS…"}` with 400/401;
//! - the **instance metadata service** ("How to use managed identities for Azure resources on
//!   a VM to acquire an access token"): `GET /metadata/identity/oauth2/token?api-version=
//!   2018-02-01&resource=…[&client_id=…]` with `Metadata: true`;
//! - **GitHub Actions' OIDC token service** (GitHub docs, "About security hardening with OpenID
//!   Connect"): `GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request bearer token →
//!   `{value}`;
//! - the **registry** (ACR's "AAD-OAuth" description in the Azure/acr repository and the ACR
//!   data-plane REST reference), on the front: a Bearer challenge for every `/v2/` and
//!   `/acr/v1/` request (realm `/oauth2/token`, scopes `repository:NAME:pull|push|delete|
//!   metadata_read`, `insufficient_scope` when the token lacks one); `GET /oauth2/token` with
//!   Basic credentials (an admin user, or `00000000-0000-0000-0000-000000000000` with a refresh
//!   token) and `POST /oauth2/token` (`grant_type=refresh_token`) → `{access_token}`; `POST
//!   /oauth2/exchange` (`grant_type=access_token`, `service`, `tenant`, `access_token`) →
//!   `{refresh_token}` for an identity with a role on the registry; `GET
//!   /acr/v1/{name}/_tags` and `_manifests` (`n`, `last`, a relative `Link` to the next page;
//!   `changeableAttributes` with `deleteEnabled`/`writeEnabled`); `DELETE
//!   /acr/v1/{name}/_tags/{tag}` (202, untags only; 405 for a locked tag or manifest, 404
//!   `TAG_UNKNOWN`); a manifest `DELETE` by digest passes to the registry (which takes every
//!   tag on it) unless the manifest is locked. Errors are `{"errors": [{code, message}]}`.
//!
//! A token without `delete` is what an identity without a delete role gets: the registry
//! grants only the actions the identity has.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::proxy::{Request, Response};
use super::stand_in::{ApiRequest, ApiResponse, State};

/// The registry login the test's own client seeds with (an admin user).
pub const SEED_USER: &str = "seed-admin";
pub const SEED_PASSWORD: &str = "seed-admin-password";
/// The registry user a refresh token logs in as.
pub const REFRESH_USER: &str = "00000000-0000-0000-0000-000000000000";

/// How an Entra ID application proves itself.
#[derive(Debug, Clone)]
pub enum AppProof {
    Secret(String),
    /// The federated OIDC token its federated credential accepts.
    Federated(String),
}

#[derive(Debug, Default)]
pub(super) struct AcrState {
    /// Entra ID applications: client id → (tenant, proof).
    pub(super) apps: BTreeMap<String, (String, AppProof)>,
    /// Identities with a role on the registry → whether it lets them delete (AcrDelete).
    pub(super) roles: BTreeMap<String, bool>,
    /// Entra access tokens handed out → the identity.
    entra_tokens: BTreeMap<String, String>,
    /// ACR refresh tokens handed out → the identity.
    refresh_tokens: BTreeMap<String, String>,
    /// ACR access tokens handed out → the scopes granted.
    access_tokens: BTreeMap<String, Vec<String>>,
    /// `repo:tag` or `repo@digest` → (deleteEnabled, writeEnabled).
    pub(super) locks: BTreeMap<String, (bool, bool)>,
    /// The machine's managed identity, if it has one.
    pub(super) managed_identity: Option<String>,
    /// GitHub's OIDC service: (request token, the OIDC token it hands out).
    pub(super) github_oidc: Option<(String, String)>,
}

fn random(kind: &str) -> String {
    format!("{kind}-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn entra_error(status: u16, error: &str, description: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        &serde_json::json!({"error": error, "error_description": description, "error_codes": [0]}),
    )
}

/// Entra ID, the metadata service and GitHub's OIDC service, on the API port.
pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            entra_token(&mut state.acr, tenant, &form(&request.body))
        }
        ("GET", ["metadata", "identity", "oauth2", "token"]) => managed_identity(state, request),
        ("GET", ["github-oidc"]) => github_oidc(state, request),
        _ => entra_error(404, "not_found", "AADSTS90002: no such endpoint"),
    }
}

fn entra_token(acr: &mut AcrState, tenant: &str, form: &BTreeMap<String, String>) -> ApiResponse {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return entra_error(400, "unsupported_grant_type", "AADSTS70003: unsupported grant type");
    }
    if !field("scope").ends_with("/.default") {
        return entra_error(400, "invalid_scope", "AADSTS1002012: the scope must end in /.default");
    }
    let client = field("client_id");
    let Some((app_tenant, proof)) = acr.apps.get(client).cloned() else {
        return entra_error(
            400,
            "unauthorized_client",
            &format!("AADSTS700016: Application with identifier '{client}' was not found"),
        );
    };
    if app_tenant != tenant {
        return entra_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found"),
        );
    }
    match proof {
        AppProof::Secret(secret) if field("client_secret") == secret => {}
        AppProof::Secret(_) => {
            return entra_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            );
        }
        AppProof::Federated(token)
            if field("client_assertion_type")
                == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                && field("client_assertion") == token => {}
        AppProof::Federated(_) => {
            return entra_error(
                400,
                "invalid_client",
                "AADSTS700213: No matching federated identity record found for presented assertion subject",
            );
        }
    }
    let token = random("eyJ0.entra");
    acr.entra_tokens.insert(token.clone(), client.to_owned());
    ApiResponse::json(
        200,
        &serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

fn managed_identity(state: &mut State, request: &ApiRequest) -> ApiResponse {
    if request.header("metadata") != Some("true") {
        return entra_error(400, "invalid_request", "Required metadata header not specified");
    }
    let acr = &mut state.acr;
    let wanted = request.query.get("client_id");
    let Some(identity) = acr.managed_identity.clone().filter(|id| wanted.is_none_or(|w| w == id))
    else {
        return entra_error(400, "invalid_request", "Identity not found");
    };
    let token = random("eyJ0.managed");
    acr.entra_tokens.insert(token.clone(), identity);
    let resource = request.query.get("resource").cloned().unwrap_or_default();
    ApiResponse::json(
        200,
        &serde_json::json!({"access_token": token, "expires_in": "86399", "resource": resource, "token_type": "Bearer"}),
    )
}

fn github_oidc(state: &State, request: &ApiRequest) -> ApiResponse {
    let bearer = request.authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
    match &state.acr.github_oidc {
        Some((expected, token))
            if bearer == Some(expected.as_str())
                && request.query.get("audience").map(String::as_str)
                    == Some("api://AzureADTokenExchange") =>
        {
            ApiResponse::json(200, &serde_json::json!({"count": 1, "value": token}))
        }
        _ => ApiResponse::json(401, &serde_json::json!({"message": "Bad credentials"})),
    }
}

fn registry_error(status: u16, code: &str, message: &str) -> Response {
    let reason = match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "Status",
    };
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    Response {
        status_line: format!("HTTP/1.1 {status} {reason}"),
        headers: vec!["Content-Type: application/json".to_owned()],
        body: body.to_string().into_bytes(),
    }
}

fn json(status: u16, body: &serde_json::Value) -> Response {
    Response { body: body.to_string().into_bytes(), ..registry_error(status, "", "") }
}

/// The identity a Basic login is, and whether it may delete.
fn basic_identity(state: &State, request: &Request) -> Option<(String, bool)> {
    let encoded = request.header("authorization")?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))?;
    if user == REFRESH_USER {
        let identity = state.acr.refresh_tokens.get(&password)?;
        return Some((identity.clone(), *state.acr.roles.get(identity)?));
    }
    let (expected, may_delete) = state.registry_users.get(&user)?;
    (*expected == password).then_some((user, *may_delete))
}

/// An access token for the requested scopes, less the `delete` action where it is not allowed.
fn grant(acr: &mut AcrState, scopes: &[String], may_delete: bool) -> Response {
    let granted: Vec<String> = scopes
        .iter()
        .filter_map(|scope| {
            let (resource, actions) = scope.rsplit_once(':')?;
            let kept: Vec<&str> =
                actions.split(',').filter(|action| may_delete || *action != "delete").collect();
            Some(format!("{resource}:{}", kept.join(",")))
        })
        .collect();
    let token = random("acr-access");
    acr.access_tokens.insert(token.clone(), granted);
    json(200, &serde_json::json!({"access_token": token}))
}

/// The scope a registry request needs: `(repository, action)`, `None` for `/v2/` itself.
fn needed(method: &str, path: &str) -> Option<(String, &'static str)> {
    if let Some(rest) = path.strip_prefix("/acr/v1/") {
        let name = ["/_tags", "/_manifests"].iter().find_map(|part| rest.find(part))?;
        let action = if method == "DELETE" { "delete" } else { "metadata_read" };
        return Some((rest[..name].to_owned(), action));
    }
    let rest = path.strip_prefix("/v2/")?;
    let name = ["/manifests/", "/blobs/", "/tags/list", "/referrers/"]
        .iter()
        .filter_map(|part| rest.find(part))
        .min()?;
    let action = match method {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "push",
    };
    Some((rest[..name].to_owned(), action))
}

fn allows(granted: &[String], repository: &str, action: &str) -> bool {
    granted.iter().any(|scope| {
        scope.strip_prefix("repository:").and_then(|rest| rest.rsplit_once(':')).is_some_and(
            |(name, actions)| {
                name == repository
                    && actions.split(',').any(|granted| {
                        granted == action
                            || granted == "*"
                            || (action == "pull" && granted == "push")
                    })
            },
        )
    })
}

fn challenge(request: &Request, scope: Option<&str>, insufficient: bool) -> Response {
    let host = request.header("host").unwrap_or("127.0.0.1");
    let mut value = format!("Bearer realm=\"http://{host}/oauth2/token\",service=\"{host}\"");
    if let Some(scope) = scope {
        value = format!("{value},scope=\"{scope}\"");
    }
    if insufficient {
        value.push_str(",error=\"insufficient_scope\"");
    }
    let mut response = registry_error(
        401,
        "UNAUTHORIZED",
        "authentication required, visit https://aka.ms/acr/authorization for more information.",
    );
    response.headers.push(format!("WWW-Authenticate: {value}"));
    response
}

/// The ACR registry's answer to `request` on the front: tokens, the data-plane API, and the
/// checks every registry request passes; `None` forwards it to the registry.
pub(super) fn front(state: &mut State, request: &Request) -> Option<Response> {
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let query: BTreeMap<String, Vec<String>> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .fold(BTreeMap::new(), |mut map, (key, value)| {
            map.entry(key).or_insert_with(Vec::new).push(value);
            map
        });
    match (request.method.as_str(), path) {
        ("GET", "/oauth2/token") => {
            let Some((_, may_delete)) = basic_identity(state, request) else {
                return Some(registry_error(401, "UNAUTHORIZED", "authentication required"));
            };
            let scopes = query.get("scope").cloned().unwrap_or_default();
            return Some(grant(&mut state.acr, &scopes, may_delete));
        }
        ("POST", "/oauth2/token") => {
            let form = form(&request.body);
            let identity = form
                .get("refresh_token")
                .and_then(|token| state.acr.refresh_tokens.get(token))
                .cloned();
            let may_delete = identity.and_then(|identity| state.acr.roles.get(&identity).copied());
            let (Some("refresh_token"), Some(may_delete)) =
                (form.get("grant_type").map(String::as_str), may_delete)
            else {
                return Some(registry_error(401, "UNAUTHORIZED", "invalid refresh token"));
            };
            let scopes: Vec<String> = form
                .get("scope")
                .map(|scope| scope.split(' ').map(str::to_owned).collect())
                .unwrap_or_default();
            return Some(grant(&mut state.acr, &scopes, may_delete));
        }
        ("POST", "/oauth2/exchange") => {
            let form = form(&request.body);
            let identity = form
                .get("access_token")
                .and_then(|token| state.acr.entra_tokens.get(token))
                .cloned()
                .filter(|identity| state.acr.roles.contains_key(identity));
            if form.get("grant_type").map(String::as_str) != Some("access_token") {
                return Some(registry_error(400, "UNSUPPORTED", "unsupported grant type"));
            }
            let Some(identity) = identity else {
                return Some(registry_error(
                    401,
                    "UNAUTHORIZED",
                    "The identity has no role assignment on this registry",
                ));
            };
            let token = random("acr-refresh");
            state.acr.refresh_tokens.insert(token.clone(), identity);
            return Some(json(200, &serde_json::json!({"refresh_token": token})));
        }
        _ => {}
    }
    let bearer = request.header("authorization").and_then(|value| value.strip_prefix("Bearer "));
    let granted = bearer.and_then(|token| state.acr.access_tokens.get(token)).cloned();
    let need = needed(&request.method, path);
    let scope = need.as_ref().map(|(name, action)| format!("repository:{name}:{action}"));
    let Some(granted) = granted else { return Some(challenge(request, scope.as_deref(), false)) };
    if let Some((name, action)) = &need
        && !allows(&granted, name, action)
    {
        return Some(challenge(request, scope.as_deref(), true));
    }
    if path.starts_with("/acr/v1/") {
        if let Some(retry_after) = state.throttle.pop_front() {
            let mut response = registry_error(429, "TOOMANYREQUESTS", "too many requests");
            response.headers.push(format!("Retry-After: {retry_after}"));
            return Some(response);
        }
        let (name, _) = need?;
        return Some(data_plane(state, &request.method, path, &name, &query));
    }
    // a locked manifest is not deleted
    if request.method == "DELETE"
        && let Some((name, reference)) =
            path.strip_prefix("/v2/").and_then(|rest| rest.rsplit_once("/manifests/"))
        && state
            .acr
            .locks
            .get(&format!("{name}@{reference}"))
            .is_some_and(|(delete, write)| !delete || !write)
    {
        return Some(registry_error(
            405,
            "DENIED",
            "The operation is disallowed on this registry, repository or image.",
        ));
    }
    None
}

fn attributes(state: &State, key: &str) -> serde_json::Value {
    let (delete, write) = state.acr.locks.get(key).copied().unwrap_or((true, true));
    serde_json::json!({"deleteEnabled": delete, "writeEnabled": write, "readEnabled": true, "listEnabled": true})
}

/// The data-plane endpoints, for a caller whose token has the scope.
fn data_plane(
    state: &mut State,
    method: &str,
    path: &str,
    name: &str,
    query: &BTreeMap<String, Vec<String>>,
) -> Response {
    let versions = state.repositories.get(name).cloned().unwrap_or_default();
    if versions.is_empty() {
        return registry_error(404, "NAME_UNKNOWN", &format!("repository {name} is not found"));
    }
    let rest = &path["/acr/v1/".len() + name.len()..];
    let first = |key: &str| query.get(key).and_then(|values| values.first()).cloned();
    let page_size: usize = first("n").and_then(|n| n.parse().ok()).unwrap_or(100).clamp(1, 100);
    let last = first("last");
    match (method, rest) {
        ("GET", "/_tags") => {
            let mut tags: Vec<(String, serde_json::Value)> = versions
                .iter()
                .flat_map(|version| {
                    version.tags.iter().map(|(tag, pushed)| {
                        (
                            tag.clone(),
                            serde_json::json!({
                                "name": tag, "digest": version.digest,
                                "createdTime": version.created.to_string(), "lastUpdateTime": pushed.to_string(),
                                "signed": false, "changeableAttributes": attributes(state, &format!("{name}:{tag}")),
                            }),
                        )
                    })
                })
                .collect();
            tags.sort_by(|a, b| a.0.cmp(&b.0));
            let (page, more) = paged(tags, last.as_deref(), page_size);
            let mut response = json(
                200,
                &serde_json::json!({"registry": "stand-in", "imageName": name, "tags": page.iter().map(|(_, t)| t).collect::<Vec<_>>()}),
            );
            if let (true, Some((last, _))) = (more, page.last()) {
                response.headers.push(format!(
                    "Link: </acr/v1/{name}/_tags?last={last}&n={page_size}>; rel=\"next\""
                ));
            }
            response
        }
        ("GET", "/_manifests") => {
            let mut manifests: Vec<(String, serde_json::Value)> = versions
                .iter()
                .map(|version| {
                    let tags: Vec<&str> = version.tags.iter().map(|(tag, _)| tag.as_str()).collect();
                    (
                        version.digest.clone(),
                        serde_json::json!({
                            "digest": version.digest, "imageSize": 0,
                            "createdTime": version.created.to_string(), "lastUpdateTime": version.updated.to_string(),
                            "mediaType": "application/vnd.oci.image.manifest.v1+json", "tags": tags,
                            "changeableAttributes": attributes(state, &format!("{name}@{}", version.digest)),
                        }),
                    )
                })
                .collect();
            manifests.sort_by(|a, b| a.0.cmp(&b.0));
            let (page, more) = paged(manifests, last.as_deref(), page_size);
            let mut response = json(
                200,
                &serde_json::json!({"registry": "stand-in", "imageName": name, "manifests": page.iter().map(|(_, m)| m).collect::<Vec<_>>()}),
            );
            if let (true, Some((last, _))) = (more, page.last()) {
                response.headers.push(format!(
                    "Link: </acr/v1/{name}/_manifests?last={last}&n={page_size}>; rel=\"next\""
                ));
            }
            response
        }
        ("DELETE", rest) if rest.starts_with("/_tags/") => {
            let tag = super::stand_in::percent_decode(&rest["/_tags/".len()..]);
            let Some(version) =
                versions.iter().find(|version| version.tags.iter().any(|(t, _)| *t == tag))
            else {
                return registry_error(
                    404,
                    "TAG_UNKNOWN",
                    &format!("the specified tag {tag} does not exist"),
                );
            };
            let locked = |key: String| {
                state.acr.locks.get(&key).is_some_and(|(delete, write)| !delete || !write)
            };
            if locked(format!("{name}:{tag}")) || locked(format!("{name}@{}", version.digest)) {
                return registry_error(
                    405,
                    "DENIED",
                    "The operation is disallowed on this registry, repository or image.",
                );
            }
            super::docker_hub_api::remove_tag_only(state, name, &tag);
            Response {
                status_line: "HTTP/1.1 202 Accepted".to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            }
        }
        _ => registry_error(404, "NOT_FOUND", "not found"),
    }
}

/// The items after `last` (by key), at most `size`, and whether more follow.
fn paged(
    items: Vec<(String, serde_json::Value)>,
    last: Option<&str>,
    size: usize,
) -> (Vec<(String, serde_json::Value)>, bool) {
    let after: Vec<_> =
        items.into_iter().filter(|(key, _)| last.is_none_or(|last| key.as_str() > last)).collect();
    let more = after.len() > size;
    (after.into_iter().take(size).collect(), more)
}
