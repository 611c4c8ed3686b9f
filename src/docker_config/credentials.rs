//! Where a registry's credential comes from in a docker config: `credHelpers`, `auths`, then
//! `credsStore`, and running the credential helpers (bounded in time and output, their output
//! never quoted in an error).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{
    AUTHS, BASE64, CRED_HELPERS, CREDS_STORE, Credential, DockerConfig, DockerConfigError,
};
use crate::env_vars;
use crate::process::{Command, CommandError};
use crate::reference::RegistryHost;
use crate::secret::Secret;

/// The user name a credential helper returns with an identity (refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

impl DockerConfig {
    /// The credentials for `registry`, looked up as the docker CLI does, under every key the
    /// registry may be stored as ([`RegistryHost::config_keys`]):
    ///
    /// 1. a `credHelpers` entry → `docker-credential-<name> get` (an entry naming the empty
    ///    helper means "use `auths`");
    /// 2. an `auths` entry with `auth` (base64 `user:pass`), `username`/`password`, or
    ///    `identitytoken`;
    /// 3. `credsStore` → `docker-credential-<name> get`.
    ///
    /// Helpers are looked up on `path_env` (a `PATH` value) and get it as their `PATH`. A
    /// helper answering "credentials not found" gives `None`; a helper that fails is an error
    /// naming it. A helper that is not on `path_env` is skipped with a warning (the config may
    /// be meant for tools that find it, e.g. on the host when dockhand runs in a container):
    /// a `credHelpers` entry then falls back to `auths`, a `credsStore` gives `None`.
    pub fn credentials_for(
        &self,
        registry: &RegistryHost,
        path_env: Option<&str>,
    ) -> Result<Option<Credential>, DockerConfigError> {
        let keys = registry.config_keys();
        if let Some(Value::Object(helpers)) = self.0.get(CRED_HELPERS)
            && let Some((key, Value::String(helper))) =
                keys.iter().find_map(|key| helpers.get_key_value(key.as_str()))
            && !helper.is_empty()
        {
            if find_helper(helper, path_env).is_some() {
                return run_helper(helper, key, path_env);
            }
            log::warn!(
                "`{CRED_HELPERS}` names `docker-credential-{helper}` for `{key}`, which is not on \
                 PATH: dockhand's own requests skip it and look in `{AUTHS}`"
            );
        }
        if let Some(Value::Object(auths)) = self.0.get(AUTHS) {
            for key in &keys {
                if let Some(credential) =
                    auths.get(key).map(|entry| auth_entry(key, entry)).transpose()?.flatten()
                {
                    return Ok(Some(credential));
                }
            }
        }
        match self.string(CREDS_STORE) {
            Some(store) if find_helper(store, path_env).is_none() => {
                log::warn!(
                    "`{CREDS_STORE}` names `docker-credential-{store}`, which is not on PATH: \
                     dockhand's own requests to `{registry}` go without its credentials"
                );
                Ok(None)
            }
            Some(store) => run_helper(store, &registry.config_key(), path_env),
            None => Ok(None),
        }
    }

    /// Carries the credential helpers over as they are: an entry whose helper is not on
    /// `path_env` is kept (the tools that read the config may find it where dockhand does not)
    /// with a warning. A `credsStore` whose helper is on `path_env` is replaced by one
    /// `credHelpers` entry naming the store for each registry it lists (`docker-credential-X
    /// list`) that has no credential in `auths` and no `credHelpers` entry: the docker CLI
    /// asks a `credsStore` for every registry without a `credHelpers` entry and then ignores
    /// `auths`, so without this a job's login in `auths` would lose to the store there, while
    /// buildah, podman and skopeo never read `credsStore` at all. So the job's login wins for
    /// the job's registries in every client, and the store still answers for the rest.
    /// A store whose helper is missing or whose `list` fails is kept, with a warning.
    pub(super) fn carry_over_helpers(&mut self, path_env: Option<&str>) {
        if let Some(Value::Object(helpers)) = self.0.get(CRED_HELPERS) {
            for (key, helper) in helpers {
                let name = helper.as_str().unwrap_or_default();
                if !name.is_empty() && find_helper(name, path_env).is_none() {
                    log::warn!(
                        "`{CRED_HELPERS}` entry `{key}`: `docker-credential-{name}` is not on PATH; \
                         kept for the tools that find it, skipped by dockhand's own requests"
                    );
                }
            }
        }
        let Some(store) = self.string(CREDS_STORE).map(str::to_owned) else { return };
        let Some(program) = find_helper(&store, path_env) else {
            log::warn!(
                "`{CREDS_STORE}` `{store}`: `docker-credential-{store}` is not on PATH; kept as it \
                 is, so the docker CLI asks it, not `{AUTHS}`, for every registry"
            );
            return;
        };
        let mut command = Command::new(program).arg("list").stdin(Vec::new());
        if let Some(path) = path_env {
            command = command.env(env_vars::PATH, path);
        }
        let listed = command
            .output()
            .ok()
            .and_then(|output| serde_json::from_str::<Map<String, Value>>(&output.stdout).ok());
        let Some(listed) = listed else {
            log::warn!(
                "`{CREDS_STORE}` `{store}`: `docker-credential-{store} list` failed; kept as it is, \
                 so the docker CLI asks it, not `{AUTHS}`, for every registry"
            );
            return;
        };
        let has_login = |server: &str| {
            self.0
                .get(AUTHS)
                .and_then(|auths| auths.get(server))
                .is_some_and(|entry| matches!(auth_entry(server, entry), Ok(Some(_))))
        };
        let servers: Vec<String> = listed
            .keys()
            .filter(|server| !server.is_empty() && !has_login(server))
            .cloned()
            .collect();
        let helpers = self.object_mut(CRED_HELPERS);
        for server in &servers {
            helpers.entry(server.clone()).or_insert_with(|| Value::String(store.clone()));
        }
        self.0.remove(CREDS_STORE);
        log::info!(
            "`{CREDS_STORE}` `{store}` answers for the {} registr{} it lists, by `{CRED_HELPERS}` entries, so that `{AUTHS}` logins win elsewhere",
            servers.len(),
            if servers.len() == 1 { "y" } else { "ies" }
        );
    }
}

/// The credential an `auths` entry holds, `None` for an entry without one (as written next to
/// a `credsStore`).
fn auth_entry(key: &str, entry: &Value) -> Result<Option<Credential>, DockerConfigError> {
    let invalid = |problem| DockerConfigError::InvalidAuth { key: key.to_owned(), problem };
    let field = |name: &str| entry.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    if let Some(token) = field("identitytoken") {
        return Ok(Some(Credential::IdentityToken(Secret::new(token))));
    }
    if let Some(auth) = field("auth") {
        let decoded =
            BASE64.decode(auth.trim()).map_err(|_| invalid("`auth` is not base64")).and_then(
                |bytes| String::from_utf8(bytes).map_err(|_| invalid("`auth` is not UTF-8")),
            )?;
        let (username, password) =
            decoded.split_once(':').ok_or_else(|| invalid("`auth` is not `user:password`"))?;
        return Ok(Some(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }));
    }
    match (field("username"), field("password")) {
        (Some(username), Some(password)) => Ok(Some(Credential::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        })),
        _ => Ok(None),
    }
}

/// The executable `docker-credential-<name>` on `path_env`, if there is one. Names with a
/// path separator are never looked up.
fn find_helper(name: &str, path_env: Option<&str>) -> Option<PathBuf> {
    if name.is_empty() || name.contains('/') {
        return None;
    }
    crate::process::find_program(&format!("docker-credential-{name}"), path_env)
}

/// How long a credential helper may run (a real one answers in milliseconds; one that waits
/// for a keychain prompt nobody will answer in CI would hang the job).
const HELPER_TIME_LIMIT: Duration = Duration::from_secs(30);

/// The most a credential helper may print on either stream.
const HELPER_OUTPUT_LIMIT: usize = 1 << 20;

/// What `docker-credential-<name> get` prints.
#[derive(serde::Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with `server` on stdin.
fn run_helper(
    helper: &str,
    server: &str,
    path_env: Option<&str>,
) -> Result<Option<Credential>, DockerConfigError> {
    let program = find_helper(helper, path_env)
        .ok_or_else(|| DockerConfigError::HelperMissing { helper: helper.to_owned() })?;
    let mut command = Command::new(program).arg("get").stdin(format!("{server}\n"));
    if let Some(path) = path_env {
        command = command.env(env_vars::PATH, path);
    }
    let output = match command.output_bounded(HELPER_TIME_LIMIT, HELPER_OUTPUT_LIMIT) {
        Ok(output) => output,
        Err(CommandError::Failed { stdout, stderr, .. })
            if [&stdout, &stderr].iter().any(|text| text.contains("credentials not found")) =>
        {
            log::debug!("`docker-credential-{helper}` has no credentials for `{server}`");
            return Ok(None);
        }
        Err(source) => {
            // a failed helper's stdout may hold the credential: never quote it
            let source = match source {
                CommandError::Failed { command, status, stderr, .. } => {
                    CommandError::Failed { command, status, stdout: String::new(), stderr }
                }
                other => other,
            };
            return Err(DockerConfigError::Helper {
                helper: helper.to_owned(),
                server: server.to_owned(),
                source: Box::new(source),
            });
        }
    };
    let reply: HelperReply = serde_json::from_str(&output.stdout).map_err(|_| {
        DockerConfigError::HelperOutput { helper: helper.to_owned(), server: server.to_owned() }
    })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    let secret = Secret::new(reply.secret);
    Ok(Some(if reply.username == IDENTITY_TOKEN_USER {
        Credential::IdentityToken(secret)
    } else {
        Credential::Basic { username: reply.username, password: secret }
    }))
}
