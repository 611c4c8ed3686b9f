//! Google's side of the stand-in (`stand_in.rs`, [`super::stand_in::Flavor::Google`]): the
//! token endpoints a CI job's credentials go through, and the registry front's Google
//! behaviour. Follows Google's published descriptions; the real services were not used:
//! - the OAuth 2.0 token endpoint for service accounts ("Using OAuth 2.0 for Server to Server
//!   Applications", RFC 7523 JWT bearer grant): `POST /token` with
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and an RS256 `assertion` whose
//!   `iss` is the service account, `aud` the token URI, `scope` the scopes and `exp` at most an
//!   hour after `iat` → `{access_token, expires_in, token_type}`; errors
//!   `{error: invalid_grant, error_description}` with 400;
//! - the Security Token Service (`sts.googleapis.com`, REST reference `v1/token`, RFC 8693):
//!   `POST /v1/token` with `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//!   `audience` (the workload identity provider), `scope`, `requested_token_type`,
//!   `subject_token`, `subject_token_type` → `{access_token, issued_token_type, token_type,
//!   expires_in}`;
//! - the IAM Service Account Credentials API (REST reference
//!   `projects.serviceAccounts.generateAccessToken`): `POST
//!   /v1/projects/-/serviceAccounts/{email}:generateAccessToken` with a Bearer token and
//!   `{scope: [...]}` → `{accessToken, expireTime}`; a caller that may not impersonate gets
//!   403 `PERMISSION_DENIED`;
//! - the registry (Artifact Registry's Docker API as gcrane and Google's docs describe it):
//!   `oauth2accesstoken` with a token from the endpoints above (here as Basic credentials on
//!   every request), `DELETE /v2/<name>/manifests/<tag>` removes that tag alone (202), a
//!   manifest `DELETE` while tags point at it is refused with `GOOGLE_MANIFEST_DANGLING_TAG`,
//!   (or, with `google_tag_delete_takes_manifest`, deletes the manifest, as a registry that
//!   does not untag would), and `GET /v2/<name>/tags/list` carries the `manifest` map (digest → `tag`,
//!   `timeUploadedMs`, `timeCreatedMs`, `mediaType`, `imageSizeBytes`, numbers as strings).

use base64::Engine as _;

use super::proxy::{self, Request, Response};
use super::stand_in::{ApiRequest, ApiResponse, State};

/// The access token the test's own client seeds the registry with.
pub const SEED_TOKEN: &str = "ya29.stand-in-seed";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A fresh RSA key pair for a service account: `(private PKCS #8 PEM, public PEM)`, made with
/// `openssl` (2048 bits).
pub fn rsa_key_pair() -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    let public = dir.path().join("public.pem");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let private_path = private.display().to_string();
    let public_path = public.display().to_string();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &private_path,
    ]);
    run(&["pkey", "-in", &private_path, "-pubout", "-out", &public_path]);
    (std::fs::read_to_string(private).unwrap(), std::fs::read_to_string(public).unwrap())
}

fn oauth_error(error: &str, description: &str) -> ApiResponse {
    ApiResponse::json(400, &serde_json::json!({"error": error, "error_description": description}))
}

fn form(body: &[u8]) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn new_token(state: &mut State, kind: &str) -> String {
    let token = format!("ya29.{kind}-{:016x}", fastrand::u64(..));
    state.google_tokens.insert(token.clone());
    token
}

pub(super) fn handle(state: &mut State, request: &ApiRequest) -> ApiResponse {
    let segments: Vec<&str> =
        request.path.trim_matches('/').split('/').filter(|segment| !segment.is_empty()).collect();
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", ["token"]) => jwt_bearer(state, &form(&request.body)),
        ("POST", ["v1", "token"]) => token_exchange(state, &form(&request.body)),
        ("POST", ["v1", "projects", "-", "serviceAccounts", target]) => {
            match target.strip_suffix(":generateAccessToken") {
                Some(email) => generate_access_token(state, request, email),
                None => ApiResponse::json(
                    404,
                    &serde_json::json!({"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}}),
                ),
            }
        }
        _ => ApiResponse::json(
            404,
            &serde_json::json!({"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}}),
        ),
    }
}

fn jwt_bearer(state: &mut State, form: &std::collections::BTreeMap<String, String>) -> ApiResponse {
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    // the issuer names the key to check the signature with
    let claims_part = assertion.split('.').nth(1).unwrap_or_default();
    let unverified: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims_part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let issuer = unverified["iss"].as_str().unwrap_or_default().to_owned();
    let Some(public_pem) = state.google_accounts.get(&issuer).cloned() else {
        return oauth_error("invalid_grant", "Invalid grant: account not found");
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_pem.as_bytes()).expect("public key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[format!("http://127.0.0.1:{}/token", state.api_port)]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let Ok(verified) = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
    else {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    };
    let claims = verified.claims;
    let lifetime = claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0);
    if !(1..=3600).contains(&lifetime) {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    if claims["scope"].as_str() != Some(CLOUD_PLATFORM) {
        return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    let token = new_token(state, "service-account");
    ApiResponse::json(
        200,
        &serde_json::json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

fn token_exchange(
    state: &mut State,
    form: &std::collections::BTreeMap<String, String>,
) -> ApiResponse {
    let field = |name: &str| form.get(name).map_or("", String::as_str);
    if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    if field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
        return oauth_error("invalid_request", "Invalid requested_token_type.");
    }
    if !matches!(
        field("subject_token_type"),
        "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token"
    ) {
        return oauth_error("invalid_request", "Invalid subject_token_type.");
    }
    if !field("scope").split(' ').any(|scope| scope == CLOUD_PLATFORM) {
        return oauth_error("invalid_scope", "Invalid scope.");
    }
    let audience = field("audience").to_owned();
    match state.google_federation.get(&audience) {
        Some((subject, _)) if subject == field("subject_token") => {
            let token = new_token(state, "federated");
            state.google_federated.insert(token.clone(), audience);
            ApiResponse::json(
                200,
                &serde_json::json!({
                    "access_token": token,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                }),
            )
        }
        Some(_) => oauth_error("invalid_grant", "The provided subject token is not valid."),
        None => oauth_error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        ),
    }
}

fn generate_access_token(state: &mut State, request: &ApiRequest, email: &str) -> ApiResponse {
    let caller = request.authorization.as_deref().and_then(|value| value.strip_prefix("Bearer "));
    let audience = caller.and_then(|token| state.google_federated.get(token)).cloned();
    let Some(audience) = audience else {
        return ApiResponse::json(
            401,
            &serde_json::json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}),
        );
    };
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let scoped = body["scope"]
        .as_array()
        .is_some_and(|scopes| scopes.iter().any(|scope| scope.as_str() == Some(CLOUD_PLATFORM)));
    let allowed = state
        .google_federation
        .get(&audience)
        .is_some_and(|(_, impersonable)| impersonable.as_deref() == Some(email));
    if !allowed || !scoped {
        return ApiResponse::json(
            403,
            &serde_json::json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}}),
        );
    }
    let token = new_token(state, "impersonated");
    let expire = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    ApiResponse::json(200, &serde_json::json!({"accessToken": token, "expireTime": expire}))
}

fn registry_error(status_line: &str, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    Response {
        status_line: status_line.to_owned(),
        headers: vec!["Content-Type: application/json".to_owned()],
        body: body.to_string().into_bytes(),
    }
}

/// The Google registry's answer to `request` where it differs from distribution's: `None`
/// forwards the request unchanged.
pub(super) fn front(state: &mut State, request: &Request) -> Option<Response> {
    let token = request.header("authorization").and_then(|value| {
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, token) = decoded.split_once(':')?;
        (user == "oauth2accesstoken").then(|| token.to_owned())
    });
    if !token.is_some_and(|token| state.google_tokens.contains(&token)) {
        let mut response = registry_error(
            "HTTP/1.1 401 Unauthorized",
            "UNAUTHORIZED",
            "Unauthenticated request. Unauthenticated requests do not have permission",
        );
        response.headers.push("WWW-Authenticate: Basic realm=\"Artifact Registry\"".to_owned());
        return Some(response);
    }
    let path = request.target.split('?').next().unwrap_or_default();
    let inner = path.strip_prefix("/v2/")?;
    if request.method == "GET"
        && let Some(repository) = inner.strip_suffix("/tags/list")
    {
        return Some(tags_with_manifests(state, request, repository));
    }
    if request.method != "DELETE" {
        return None;
    }
    let (repository, reference) = inner.rsplit_once("/manifests/")?;
    let versions = state.repositories.get(repository).cloned().unwrap_or_default();
    if reference.contains(':') {
        let tags: Vec<String> = versions
            .iter()
            .filter(|version| version.digest == reference)
            .flat_map(|version| version.tags.iter().map(|(tag, _)| tag.clone()))
            .collect();
        if let Some(tag) = tags.first() {
            return Some(registry_error(
                "HTTP/1.1 400 Bad Request",
                "GOOGLE_MANIFEST_DANGLING_TAG",
                &format!("Manifest is still referenced by tag: {tag}"),
            ));
        }
        // no tag on it: distribution deletes it
        let raw = proxy::forward(request, &request.target, state.registry_port).ok()?;
        let response = proxy::parse_response(&raw);
        if response.status_line.contains(" 202 ")
            && let Some(versions) = state.repositories.get_mut(repository)
        {
            versions.retain(|version| version.digest != reference);
        }
        return Some(response);
    }
    let tagged =
        versions.iter().any(|version| version.tags.iter().any(|(tag, _)| tag == reference));
    if !tagged {
        return Some(registry_error(
            "HTTP/1.1 404 Not Found",
            "MANIFEST_UNKNOWN",
            &format!("Failed to fetch \"{reference}\""),
        ));
    }
    if state.google_tag_delete_takes_manifest {
        let digest = versions
            .iter()
            .find(|version| version.tags.iter().any(|(tag, _)| tag == reference))
            .map(|version| version.digest.clone())
            .expect("a tagged version");
        state.delete_manifest(repository, &digest);
    } else {
        super::docker_hub_api::remove_tag_only(state, repository, reference);
    }
    Some(Response {
        status_line: "HTTP/1.1 202 Accepted".to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
    })
}

/// The registry's tag list plus the `manifest` map of every manifest the stand-in knows.
fn tags_with_manifests(state: &State, request: &Request, repository: &str) -> Response {
    let raw =
        proxy::forward(request, &request.target, state.registry_port).expect("registry answers");
    let mut response = proxy::parse_response(&raw);
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&response.body) else {
        return response;
    };
    let mut map = serde_json::Map::new();
    for version in state.repositories.get(repository).into_iter().flatten() {
        let millis = version.created.as_millisecond().to_string();
        let tags: Vec<&str> = version.tags.iter().map(|(tag, _)| tag.as_str()).collect();
        map.insert(
            version.digest.clone(),
            serde_json::json!({
                "imageSizeBytes": "0",
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "tag": tags,
                "timeCreatedMs": millis,
                "timeUploadedMs": millis,
            }),
        );
    }
    body["manifest"] = serde_json::Value::Object(map);
    response.body = body.to_string().into_bytes();
    response
}
