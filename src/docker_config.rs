//! The docker `config.json`: reading the runner's, and writing the job's private copy.
//!
//! Owns [`DockerConfig`] (the file's JSON object, unknown keys kept), credential lookup through
//! `auths`, `credHelpers` and `credsStore` ([`DockerConfig::credentials_for`]), the per-job
//! directory ([`create_job_dir`]: mode 0700, `config.json` 0600, marked as dockhand's) and the
//! removal of stale job directories. Never modifies the source config or `~/.docker`, never
//! logs a credential, and never quotes the content of a config in an error: it may hold
//! passwords.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::env_vars;
use crate::exit::{Classify, ExitStatus};
use crate::process::{Command, CommandError};
use crate::reference::RegistryHost;
use crate::secret::Secret;

/// The file name docker, buildah and skopeo read in `$DOCKER_CONFIG`.
pub const CONFIG_FILE: &str = "config.json";
/// Every job directory's name starts with this.
pub const JOB_DIR_PREFIX: &str = "dockhand-";
/// The file that marks a directory as a dockhand job directory (and dates it).
const MARKER_FILE: &str = ".dockhand-job-dir";
/// What the marker file says, for a human who finds it.
const MARKER_TEXT: &str =
    "Created by `dockhand ci-env` for one CI job; removed by dockhand when stale.\n";
/// Docker's built-in context, which needs no `contexts/` directory.
const DEFAULT_CONTEXT: &str = "default";
/// The user name a credential helper returns with an identity (refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

const AUTHS: &str = "auths";
const CRED_HELPERS: &str = "credHelpers";
const CREDS_STORE: &str = "credsStore";
const CURRENT_CONTEXT: &str = "currentContext";
const CLI_PLUGINS_EXTRA_DIRS: &str = "cliPluginsExtraDirs";
const CONTEXTS_DIR: &str = "contexts";
const CLI_PLUGINS_DIR: &str = "cli-plugins";

/// A docker `config.json`: a JSON object. Keys dockhand does not know are kept as they are.
/// `Debug` shows the top-level keys only, never credentials.
#[derive(Clone, PartialEq, Default)]
pub struct DockerConfig(Map<String, Value>);

pub use crate::secret::Credential;

/// The job's private docker config directory, as [`create_job_dir`] left it. The directory is
/// kept when this value is dropped: it must outlive the process that created it.
#[derive(Debug)]
pub struct JobDir {
    /// The directory, to export as `DOCKER_CONFIG`.
    pub path: PathBuf,
    /// The config written to `path/config.json`; call [`JobDir::write`] after changing it.
    pub config: DockerConfig,
}

/// Why a docker config could not be read, used or written. Never quotes a config's content.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    #[error("Failed to read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{origin}` is not valid JSON (line {line}, column {column})")]
    InvalidJson { origin: String, line: usize, column: usize },
    #[error("`{origin}` must be a JSON object")]
    NotAnObject { origin: String },
    #[error("In `{origin}`, `{key}` must be {expected}")]
    WrongType { origin: String, key: String, expected: &'static str },
    #[error("`{}` is not a regular file of at most 4 MiB", path.display())]
    NotAFile { path: PathBuf },
    #[error("The `auths` entry `{key}` is malformed: {problem}")]
    InvalidAuth { key: String, problem: &'static str },
    #[error("Credential helper `docker-credential-{helper}` is not on PATH")]
    HelperMissing { helper: String },
    #[error("Credential helper `docker-credential-{helper}` failed for `{server}`")]
    Helper {
        helper: String,
        server: String,
        #[source]
        source: Box<CommandError>,
    },
    #[error(
        "Credential helper `docker-credential-{helper}` answered `{server}` with malformed JSON"
    )]
    HelperOutput { helper: String, server: String },
    #[error("Failed to create a job directory in `{}`", parent.display())]
    CreateDir {
        parent: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Failed to copy `{}` to `{}`", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Failed to write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Classify for DockerConfigError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Read { .. }
            | Self::InvalidJson { .. }
            | Self::NotAnObject { .. }
            | Self::WrongType { .. }
            | Self::NotAFile { .. }
            | Self::InvalidAuth { .. }
            | Self::HelperMissing { .. } => ExitStatus::Usage,
            Self::Helper { source, .. } => source.exit_status(),
            Self::HelperOutput { .. }
            | Self::CreateDir { .. }
            | Self::Copy { .. }
            | Self::Write { .. } => ExitStatus::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::InvalidJson { origin, .. }
            | Self::NotAnObject { origin }
            | Self::WrongType { origin, .. } => {
                Some(format!("fix `{origin}`, or point `--docker-config` at another directory"))
            }
            Self::HelperMissing { helper } => Some(format!(
                "install `docker-credential-{helper}`, or remove it from the docker config"
            )),
            Self::CreateDir { .. } => Some(format!(
                "make the directory writable, or set `{}` to another directory",
                env_vars::TMPDIR
            )),
            _ => None,
        }
    }
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig").field("keys", &self.0.keys().collect::<Vec<_>>()).finish()
    }
}

impl DockerConfig {
    /// An empty config (`{}`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `text` as a config; `origin` names it in errors (a path, or a variable name).
    /// The keys dockhand reads must have the types the docker CLI gives them (`auths` an
    /// object of objects with string fields, `credHelpers` an object of strings,
    /// `credsStore` a string): anything else is an error naming the key, never ignored.
    fn parse(text: &str, origin: &str) -> Result<Self, DockerConfigError> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => {
                check_types(&map, origin)?;
                Ok(Self(map))
            }
            Ok(_) => Err(DockerConfigError::NotAnObject { origin: origin.to_owned() }),
            Err(error) => Err(DockerConfigError::InvalidJson {
                origin: origin.to_owned(),
                line: error.line(),
                column: error.column(),
            }),
        }
    }

    /// Reads `dir/config.json`. `None` when the file does not exist; a file that is not a JSON
    /// object is a usage error naming the file.
    pub fn load(dir: &Path) -> Result<Option<Self>, DockerConfigError> {
        let path = dir.join(CONFIG_FILE);
        // a FIFO or a device (`/dev/zero`) would be read forever: only a bounded regular file
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() && metadata.len() <= MAX_CONFIG_SIZE => {}
            Ok(_) => return Err(DockerConfigError::NotAFile { path }),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DockerConfigError::Read { path, source }),
        }
        match fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()).map(Some),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(DockerConfigError::Read { path, source }),
        }
    }

    /// Merges the config held in `DOCKER_AUTH_CONFIG`: its `auths` and `credHelpers` entries
    /// replace entries with the same key, any other top-level key replaces ours. Errors name
    /// the variable, never its content.
    pub fn merge_auth_config(&mut self, json: &str) -> Result<(), DockerConfigError> {
        let Self(other) = Self::parse(json, env_vars::DOCKER_AUTH_CONFIG)?;
        for (key, value) in other {
            match value {
                Value::Object(entries) if key == AUTHS || key == CRED_HELPERS => {
                    self.object_mut(&key).extend(entries);
                }
                value => {
                    self.0.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// Stores `username`/`password` for `registry` as `auths[registry.config_key()] =
    /// {"auth": base64("user:pass")}`, replacing any entry under the registry's other keys and
    /// any `credHelpers` entry for it, so that no other source shadows this login.
    ///
    /// The docker CLI sends every registry without a `credHelpers` entry to `credsStore` when
    /// one is set, and ignores `auths` then; a warning says so.
    pub fn set_auth(&mut self, registry: &RegistryHost, username: &str, password: &Secret) {
        let keys = registry.config_keys();
        for section in [AUTHS, CRED_HELPERS] {
            if let Some(Value::Object(entries)) = self.0.get_mut(section) {
                entries.retain(|key, _| !keys.contains(key));
            }
        }
        let auth = basic_auth_value(username, password);
        let mut entry = Map::new();
        entry.insert("auth".to_owned(), Value::String(auth));
        self.object_mut(AUTHS).insert(registry.config_key(), Value::Object(entry));
        if let Some(store) = self.string(CREDS_STORE) {
            log::warn!(
                "the docker config names `{CREDS_STORE}` `{store}`: the docker CLI will ask it, not \
                 `{CONFIG_FILE}`'s `{AUTHS}`, for `{registry}` (buildah, podman and skopeo ignore \
                 `{CREDS_STORE}`); with `docker-credential-{store}` on PATH, `dockhand ci-env` \
                 hands the store's registries to it by `{CRED_HELPERS}` entries instead"
            );
        }
    }

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

    /// Writes `dir/config.json` with mode 0600, replacing the file atomically (a temporary
    /// file in `dir`, renamed over it), so readers never see a partial file.
    pub fn write(&self, dir: &Path) -> Result<(), DockerConfigError> {
        let path = dir.join(CONFIG_FILE);
        let write_error = |source| DockerConfigError::Write { path: path.clone(), source };
        let mut text = serde_json::to_string_pretty(&self.0).expect("a JSON map serialises");
        text.push('\n');
        let mut file = tempfile::Builder::new()
            .prefix(".config.json.")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(write_error)?;
        file.write_all(text.as_bytes()).map_err(write_error)?;
        file.as_file().sync_all().map_err(write_error)?;
        file.persist(&path).map_err(|error| write_error(error.error))?;
        Ok(())
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
    fn carry_over_helpers(&mut self, path_env: Option<&str>) {
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

    /// The string under `key`, if it is a non-empty string.
    fn string(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str).filter(|value| !value.is_empty())
    }

    /// The object under `key`, created (or replacing a non-object) when needed.
    fn object_mut(&mut self, key: &str) -> &mut Map<String, Value> {
        let slot = self.0.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        slot.as_object_mut().expect("just made an object")
    }
}

/// The largest `config.json` read (real ones are a few KiB).
const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Checks the types of the keys dockhand reads (see [`DockerConfig::parse`]).
fn check_types(map: &Map<String, Value>, origin: &str) -> Result<(), DockerConfigError> {
    let wrong = |key: String, expected| DockerConfigError::WrongType {
        origin: origin.to_owned(),
        key,
        expected,
    };
    match map.get(AUTHS) {
        None => {}
        Some(Value::Object(auths)) => {
            for (host, entry) in auths {
                let Value::Object(fields) = entry else {
                    return Err(wrong(format!("{AUTHS}.{host}"), "an object"));
                };
                for field in ["auth", "identitytoken", "username", "password"] {
                    if fields.get(field).is_some_and(|value| !value.is_string()) {
                        return Err(wrong(format!("{AUTHS}.{host}.{field}"), "a string"));
                    }
                }
            }
        }
        Some(_) => return Err(wrong(AUTHS.to_owned(), "an object")),
    }
    match map.get(CRED_HELPERS) {
        None => {}
        Some(Value::Object(helpers)) => {
            if let Some((host, _)) = helpers.iter().find(|(_, helper)| !helper.is_string()) {
                return Err(wrong(format!("{CRED_HELPERS}.{host}"), "a string"));
            }
        }
        Some(_) => return Err(wrong(CRED_HELPERS.to_owned(), "an object")),
    }
    if map.get(CREDS_STORE).is_some_and(|store| !store.is_string()) {
        return Err(wrong(CREDS_STORE.to_owned(), "a string"));
    }
    Ok(())
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
    let output = match command.output() {
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

impl JobDir {
    /// Writes [`JobDir::config`] to the directory's `config.json`.
    pub fn write(&self) -> Result<(), DockerConfigError> {
        self.config.write(&self.path)
    }
}

/// The `auth` value a docker config stores for a login: base64 of `user:password`. A secret
/// in its own right (GitHub must be told to mask it).
pub fn basic_auth_value(username: &str, password: &Secret) -> String {
    BASE64.encode(format!("{username}:{}", password.expose()))
}

/// Creates the job's private docker config directory: `parent/dockhand-<random>` with mode
/// 0700, holding a marker file and `config.json` (0600).
///
/// The config starts as a copy of `source/config.json` (when `source` is given and has one),
/// then `auth_config` (the value of `DOCKER_AUTH_CONFIG`) is merged over it. After that:
/// every `credHelpers` entry is kept, with a warning for a helper not on `path_env`, and a
/// `credsStore` is turned into `credHelpers` entries as `DockerConfig::carry_over_helpers`
/// says; `contexts/` is copied when it exists, and `currentContext` is kept only when the
/// copy has it (or it is `default`); when `source` has `cli-plugins/`, its absolute path is
/// added to `cliPluginsExtraDirs` instead of copying it. Nothing else under `source` (`run/`,
/// `buildx/`, sockets…) is copied, and `source` is never modified. On failure nothing is left
/// behind.
pub fn create_job_dir(
    parent: &Path,
    source: Option<&Path>,
    auth_config: Option<&str>,
    path_env: Option<&str>,
) -> Result<JobDir, DockerConfigError> {
    let create_error = |source| DockerConfigError::CreateDir { parent: parent.to_owned(), source };
    let dir = tempfile::Builder::new()
        .prefix(JOB_DIR_PREFIX)
        .rand_bytes(12)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(create_error)?;
    let marker = dir.path().join(MARKER_FILE);
    fs::write(&marker, MARKER_TEXT)
        .map_err(|source| DockerConfigError::Write { path: marker, source })?;

    let source = source.map(std::path::absolute).transpose().map_err(create_error)?;
    let mut config = match &source {
        Some(source) => DockerConfig::load(source)?.unwrap_or_default(),
        None => DockerConfig::new(),
    };
    if let Some(json) = auth_config {
        config.merge_auth_config(json)?;
    }
    config.carry_over_helpers(path_env);

    let contexts =
        source.as_ref().map(|source| source.join(CONTEXTS_DIR)).filter(|dir| is_real_dir(dir));
    if let Some(contexts) = &contexts {
        copy_tree(contexts, &dir.path().join(CONTEXTS_DIR))?;
    }
    if let Some(current) = config.string(CURRENT_CONTEXT)
        && current != DEFAULT_CONTEXT
        && contexts.is_none()
    {
        log::warn!("dropping `{CURRENT_CONTEXT}` `{current}`: the source has no `{CONTEXTS_DIR}/`");
        config.0.remove(CURRENT_CONTEXT);
    }
    if let Some(plugins) =
        source.as_ref().map(|source| source.join(CLI_PLUGINS_DIR)).filter(|dir| is_real_dir(dir))
    {
        let plugins = Value::String(plugins.display().to_string());
        let slot =
            config.0.entry(CLI_PLUGINS_EXTRA_DIRS).or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let dirs = slot.as_array_mut().expect("just made an array");
        if !dirs.contains(&plugins) {
            dirs.push(plugins);
        }
    }

    config.write(dir.path())?;
    Ok(JobDir { path: dir.keep(), config })
}

/// `true` if and only if `path` is a directory and not a symbolic link.
fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Copies the directories and regular files under `from` to `to` (dirs 0700, files 0600).
/// Symbolic links, sockets and other special files are skipped.
fn copy_tree(from: &Path, to: &Path) -> Result<(), DockerConfigError> {
    let copy_error =
        |source| DockerConfigError::Copy { from: from.to_owned(), to: to.to_owned(), source };
    fs::create_dir(to).map_err(copy_error)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).map_err(copy_error)?;
    for entry in fs::read_dir(from).map_err(copy_error)? {
        let entry = entry.map_err(copy_error)?;
        let kind = entry.file_type().map_err(copy_error)?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else if kind.is_file() {
            let file_error = |error| DockerConfigError::Copy {
                from: source.clone(),
                to: target.clone(),
                source: error,
            };
            fs::copy(&source, &target).map_err(file_error)?;
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).map_err(file_error)?;
        } else {
            log::debug!("not copying `{}`: not a regular file or directory", source.display());
        }
    }
    Ok(())
}

/// Removes dockhand's own job directories under `parent` whose marker is older than `max_age`
/// at `now`: a directory counts as one only if it is named `dockhand-…`, is a real directory
/// (not a link) owned by this user with mode 0700, and holds the marker as a regular file
/// owned by this user. Anything else — another user's directory, a decoy with a copied
/// marker, a link — is left alone; links inside are removed, never followed. Failures are
/// logged, never returned. Returns how many directories were removed.
pub fn remove_stale_job_dirs(parent: &Path, max_age: Duration, now: SystemTime) -> usize {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(error) => {
            log::warn!("cannot list `{}` for stale job directories: {error}", parent.display());
            return 0;
        }
    };
    let user = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry.file_name().to_str().is_some_and(|name| name.starts_with(JOB_DIR_PREFIX));
        let owned = |meta: &fs::Metadata| meta.uid() == user;
        let ours = named
            && fs::symlink_metadata(&path)
                .is_ok_and(|meta| meta.is_dir() && owned(&meta) && meta.mode() & 0o777 == 0o700);
        if !ours {
            continue;
        }
        let Ok(marker) = fs::symlink_metadata(path.join(MARKER_FILE)) else { continue };
        let age = marker.modified().ok().and_then(|created| now.duration_since(created).ok());
        if !marker.is_file() || !owned(&marker) || age.is_none_or(|age| age <= max_age) {
            continue;
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => {
                log::debug!("removed stale job directory `{}`", path.display());
                removed += 1;
            }
            Err(error) => {
                log::warn!("cannot remove stale job directory `{}`: {error}", path.display());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    use serde_json::{Value, json};

    use super::{
        Credential, DockerConfig, DockerConfigError, MARKER_FILE, create_job_dir,
        remove_stale_job_dirs,
    };
    use crate::reference::RegistryHost;
    use crate::secret::Secret;

    const HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || { echo "unexpected command $1" >&2; exit 2; }
read -r server
case "$server" in
  registry.example.com) printf '{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}' "$server" ;;
  https://index.docker.io/v1/) printf '{"ServerURL":"%s","Username":"hub-user","Secret":"hub-pass"}' "$server" ;;
  token.example.com) printf '{"ServerURL":"%s","Username":"<token>","Secret":"refresh-token"}' "$server" ;;
  broken.example.com) echo "keychain is locked" >&2; exit 1 ;;
  garbled.example.com) echo "not json" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

    fn host(text: &str) -> RegistryHost {
        text.parse().unwrap()
    }

    /// Writes an executable script through a child process, so that no file descriptor open
    /// for writing leaks into other tests' children (which would make exec fail with ETXTBSY).
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        let status = std::process::Command::new("sh")
            .args(["-c", "printf '%s' \"$2\" > \"$1\" && chmod 755 \"$1\"", "sh"])
            .arg(&path)
            .arg(body)
            .status()
            .unwrap();
        assert!(status.success());
        path
    }

    /// A `PATH` holding only a directory with `docker-credential-test`.
    fn helper_path(dir: &Path) -> String {
        let bin = dir.join("bin");
        fs::create_dir(&bin).unwrap();
        script(&bin, "docker-credential-test", HELPER);
        bin.display().to_string()
    }

    fn config(value: Value) -> DockerConfig {
        let Value::Object(map) = value else { panic!("not an object") };
        DockerConfig(map)
    }

    fn basic(username: &str, password: &str) -> Credential {
        Credential::Basic { username: username.into(), password: Secret::new(password) }
    }

    /// Every file under `dir` with its bytes, and every directory with its mode.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current).unwrap() {
                let entry = entry.unwrap();
                let meta = fs::symlink_metadata(entry.path()).unwrap();
                let bytes =
                    if meta.is_file() { fs::read(entry.path()).unwrap() } else { Vec::new() };
                files.insert(entry.path(), (meta.permissions().mode(), bytes));
                if meta.is_dir() {
                    pending.push(entry.path());
                }
            }
        }
        files
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// A directory whose `config.json` is a link to `fifo`.
    fn fifo_dir(fifo: &Path) -> PathBuf {
        let dir = fifo.with_extension("dir");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(fifo, dir.join("config.json")).unwrap();
        dir
    }

    #[test]
    fn load_missing_invalid_and_valid() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(DockerConfig::load(dir.path()).unwrap(), None);

        fs::write(dir.path().join("config.json"), r#"{"auths": {"a": {"auth": "c2VjcmV0"}"#)
            .unwrap();
        let error = DockerConfig::load(dir.path()).unwrap_err();
        let DockerConfigError::InvalidJson { origin, line, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(origin, &dir.path().join("config.json").display().to_string());
        assert_eq!(*line, 1);
        assert!(!error.to_string().contains("c2VjcmV0"), "{error}");

        fs::write(dir.path().join("config.json"), "[1]").unwrap();
        assert!(matches!(
            DockerConfig::load(dir.path()),
            Err(DockerConfigError::NotAnObject { .. })
        ));

        for (text, key) in [
            (r#"{"auths": ["ghcr.io"]}"#, "auths"),
            (r#"{"auths": {"ghcr.io": "x"}}"#, "auths.ghcr.io"),
            (r#"{"auths": {"ghcr.io": {"auth": 12}}}"#, "auths.ghcr.io.auth"),
            (r#"{"credHelpers": {"ghcr.io": true}}"#, "credHelpers.ghcr.io"),
            (r#"{"credsStore": ["desktop"]}"#, "credsStore"),
        ] {
            fs::write(dir.path().join("config.json"), text).unwrap();
            let error = DockerConfig::load(dir.path()).unwrap_err();
            assert!(
                matches!(&error, DockerConfigError::WrongType { key: got, .. } if got == key),
                "{text}: {error:?}"
            );
        }

        // a FIFO is refused, not read forever
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let error = DockerConfig::load(&fifo_dir(&fifo)).unwrap_err();
        assert!(matches!(error, DockerConfigError::NotAFile { .. }), "{error:?}");

        fs::write(dir.path().join("config.json"), r#"{"auths": {}, "experimental": "enabled"}"#)
            .unwrap();
        let loaded = DockerConfig::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, config(json!({"auths": {}, "experimental": "enabled"})));
    }

    #[test]
    fn auth_config_overrides_same_keys_and_keeps_the_rest() {
        let mut merged = config(json!({
            "auths": {"a.example.com": {"auth": "old"}, "b.example.com": {"auth": "keep"}},
            "credHelpers": {"c.example.com": "ecr-login"},
            "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        }));
        merged
            .merge_auth_config(
                r#"{"auths": {"a.example.com": {"auth": "new"}, "d.example.com": {"auth": "add"}},
                    "credHelpers": {"e.example.com": "gcloud"}}"#,
            )
            .unwrap();
        assert_eq!(
            merged,
            config(json!({
                "auths": {
                    "a.example.com": {"auth": "new"},
                    "b.example.com": {"auth": "keep"},
                    "d.example.com": {"auth": "add"},
                },
                "credHelpers": {"c.example.com": "ecr-login", "e.example.com": "gcloud"},
                "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
            }))
        );
    }

    #[test]
    fn invalid_auth_config_names_the_variable_not_the_content() {
        let mut merged = DockerConfig::new();
        let error =
            merged.merge_auth_config(r#"{"auths": {"x": {"auth": "sentinel-secret"}"#).unwrap_err();
        assert!(
            matches!(&error, DockerConfigError::InvalidJson { origin, .. } if origin == "DOCKER_AUTH_CONFIG"),
            "{error:?}"
        );
        assert!(!error.to_string().contains("sentinel-secret"));
        assert!(!format!("{error:?}").contains("sentinel-secret"));
        let error = merged.merge_auth_config(r#""sentinel-secret""#).unwrap_err();
        assert!(error.to_string().contains("`DOCKER_AUTH_CONFIG`"), "{error}");
        assert!(!error.to_string().contains("sentinel-secret"));
        let error = merged.merge_auth_config(r#"{"auths": "sentinel-secret"}"#).unwrap_err();
        assert_eq!(error.to_string(), "In `DOCKER_AUTH_CONFIG`, `auths` must be an object");
        assert_eq!(merged, DockerConfig::new(), "a failed merge changes nothing");
    }

    #[test]
    fn set_auth_writes_the_config_key_and_removes_shadowing_entries() {
        let mut hub = config(json!({
            "auths": {"docker.io": {"auth": "b2xkOm9sZA=="}, "ghcr.io": {"auth": "Z2g6Z2g="}},
            "credHelpers": {"index.docker.io": "desktop", "ghcr.io": "gh"},
        }));
        hub.set_auth(&host("docker.io"), "hubuser", &Secret::new("p@ss:word"));
        assert_eq!(
            hub,
            config(json!({
                "auths": {
                    "https://index.docker.io/v1/": {"auth": "aHVidXNlcjpwQHNzOndvcmQ="},
                    "ghcr.io": {"auth": "Z2g6Z2g="},
                },
                "credHelpers": {"ghcr.io": "gh"},
            }))
        );
        assert_eq!(
            hub.credentials_for(&host("registry-1.docker.io"), None).unwrap(),
            Some(basic("hubuser", "p@ss:word"))
        );
        let mut local = DockerConfig::new();
        local.set_auth(&host("127.0.0.1:5000"), "ci", &Secret::new("pw"));
        assert_eq!(local, config(json!({"auths": {"127.0.0.1:5000": {"auth": "Y2k6cHc="}}})));
        assert!(!format!("{local:?}").contains("Y2k6cHc="), "Debug shows keys only");
    }

    #[test]
    fn credentials_from_auths() {
        let auths = config(json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
            "https://registry.example.com": {"username": "u", "password": "p"},
            "acr.azurecr.io": {"identitytoken": "refresh"},
            "empty.example.com": {},
            "bad.example.com": {"auth": "!!!"},
            "nocolon.example.com": {"auth": "bm9jb2xvbg=="},
        }}));
        for (registry, want) in [
            ("docker.io", Some(basic("hub", "hubpass"))),
            ("registry.example.com", Some(basic("u", "p"))),
            ("acr.azurecr.io", Some(Credential::IdentityToken(Secret::new("refresh")))),
            ("empty.example.com", None),
            ("other.example.com", None),
        ] {
            assert_eq!(auths.credentials_for(&host(registry), None).unwrap(), want, "{registry}");
        }
        for registry in ["bad.example.com", "nocolon.example.com"] {
            let error = auths.credentials_for(&host(registry), None).unwrap_err();
            assert!(
                matches!(&error, DockerConfigError::InvalidAuth { key, .. } if key == registry),
                "{error:?}"
            );
        }
    }

    #[test]
    fn credentials_from_a_real_helper() {
        let dir = tempfile::tempdir().unwrap();
        let path = helper_path(dir.path());
        let helpers = config(json!({
            "auths": {"registry.example.com": {"auth": "aWdub3JlZDppZ25vcmVk"}, "file.example.com": {"auth": "Zjpm"}},
            "credHelpers": {
                "registry.example.com": "test", "token.example.com": "test", "missing.example.com": "test",
                "broken.example.com": "test", "garbled.example.com": "test", "absent.example.com": "absent",
                "file.example.com": "",
            },
            "credsStore": "test",
        }));
        for (registry, want) in [
            ("registry.example.com", Some(basic("helper-user", "helper-pass"))),
            ("token.example.com", Some(Credential::IdentityToken(Secret::new("refresh-token")))),
            ("missing.example.com", None),
            ("file.example.com", Some(basic("f", "f"))),
            ("docker.io", Some(basic("hub-user", "hub-pass"))),
            ("store-miss.example.com", None),
        ] {
            assert_eq!(
                helpers.credentials_for(&host(registry), Some(&path)).unwrap(),
                want,
                "{registry}"
            );
        }

        let error = helpers.credentials_for(&host("broken.example.com"), Some(&path)).unwrap_err();
        let DockerConfigError::Helper { helper, server, .. } = &error else { panic!("{error:?}") };
        assert_eq!((helper.as_str(), server.as_str()), ("test", "broken.example.com"));
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(chain.contains("keychain is locked"), "{chain}");

        let error = helpers.credentials_for(&host("garbled.example.com"), Some(&path)).unwrap_err();
        assert!(matches!(error, DockerConfigError::HelperOutput { .. }), "{error:?}");
        // a helper that is not on PATH is skipped: the entry falls back to `auths`, the store
        // gives nothing
        assert_eq!(
            helpers.credentials_for(&host("absent.example.com"), Some(&path)).unwrap(),
            None
        );
        assert_eq!(
            helpers.credentials_for(&host("registry.example.com"), None).unwrap(),
            Some(basic("ignored", "ignored")),
            "no PATH, no helper: `auths`"
        );
        assert_eq!(helpers.credentials_for(&host("docker.io"), None).unwrap(), None);
    }

    /// A store that lists three registries and answers `get` for none of them.
    const STORE: &str = r#"#!/bin/sh
case "$1" in
  list) printf '{"ghcr.io":"u","https://index.docker.io/v1/":"hub","job.example.com":"old"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

    #[test]
    fn a_creds_store_answers_for_what_it_lists_and_logins_in_auths_win() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        script(&bin, "docker-credential-store", STORE);
        script(&bin, "docker-credential-broken", "#!/bin/sh\nexit 1\n");
        let path = bin.display().to_string();
        let source = dir.path().join("dot-docker");
        fs::create_dir(&source).unwrap();
        fs::write(
            source.join("config.json"),
            r#"{"auths":{"job.example.com":{"auth":"am9iOmpvYg=="},"ghcr.io":{}},
                "credHelpers":{"gcr.io":"gcloud"},"credsStore":"store"}"#,
        )
        .unwrap();
        let job = create_job_dir(dir.path(), Some(&source), None, Some(&path)).unwrap();
        assert_eq!(
            job.config,
            config(json!({
                "auths": {"job.example.com": {"auth": "am9iOmpvYg=="}, "ghcr.io": {}},
                "credHelpers": {
                    "gcr.io": "gcloud",
                    "ghcr.io": "store",
                    "https://index.docker.io/v1/": "store",
                },
            }))
        );
        assert_eq!(
            job.config.credentials_for(&host("job.example.com"), Some(&path)).unwrap(),
            Some(basic("job", "job"))
        );

        // a store whose helper is missing, or whose list fails, stays as it is
        for store in ["absent", "broken"] {
            fs::write(source.join("config.json"), format!(r#"{{"credsStore":"{store}"}}"#))
                .unwrap();
            let job = create_job_dir(dir.path(), Some(&source), None, Some(&path)).unwrap();
            assert_eq!(job.config, config(json!({"credsStore": store})), "{store}");
        }
    }

    #[test]
    fn write_is_0600_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "x".repeat(10_000)).unwrap();
        let small = config(json!({"auths": {}}));
        small.write(dir.path()).unwrap();
        assert_eq!(mode(&dir.path().join("config.json")), 0o600);
        assert_eq!(DockerConfig::load(dir.path()).unwrap(), Some(small));
        let leftovers: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["config.json"], "no temporary file left");
    }

    #[test]
    fn job_dir_copies_what_is_safe_and_leaves_the_source_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = helper_path(dir.path());
        let source = dir.path().join("dot-docker");
        fs::create_dir_all(source.join("contexts/meta/abc")).unwrap();
        fs::write(source.join("contexts/meta/abc/meta.json"), r#"{"Name":"remote"}"#).unwrap();
        fs::create_dir_all(source.join("cli-plugins")).unwrap();
        script(&source.join("cli-plugins"), "docker-buildx", "#!/bin/sh\n");
        for state in ["run", "buildx", "scout"] {
            fs::create_dir_all(source.join(state)).unwrap();
            fs::write(source.join(state).join("state"), "x").unwrap();
        }
        fs::write(
            source.join("config.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="}},
                "credHelpers":{"registry.example.com":"test","gcr.io":"gcloud"},
                "credsStore":"desktop","currentContext":"remote","detachKeys":"ctrl-e,e",
                "someFutureKey":{"nested":[1,2]}}"#,
        )
        .unwrap();
        let before = snapshot(&source);

        let parent = dir.path().join("runner-temp");
        fs::create_dir(&parent).unwrap();
        let job = create_job_dir(
            &parent,
            Some(&source),
            Some(r#"{"auths":{"registry.gitlab.example.com":{"auth":"Z2w6Z2w="}}}"#),
            Some(&path),
        )
        .unwrap();

        assert_eq!(snapshot(&source), before, "source byte-identical");
        assert_eq!(job.path.parent(), Some(parent.as_path()));
        assert!(job.path.file_name().unwrap().to_str().unwrap().starts_with("dockhand-"));
        assert_eq!(mode(&job.path), 0o700);
        assert_eq!(mode(&job.path.join("config.json")), 0o600);
        assert!(job.path.join(MARKER_FILE).is_file());
        assert_eq!(
            fs::read(job.path.join("contexts/meta/abc/meta.json")).unwrap(),
            br#"{"Name":"remote"}"#
        );
        for absent in ["run", "buildx", "scout", "cli-plugins"] {
            assert!(!job.path.join(absent).exists(), "{absent} copied");
        }
        let plugins = source.join("cli-plugins");
        let want = config(json!({
            "auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
                "registry.gitlab.example.com": {"auth": "Z2w6Z2w="},
            },
            "credHelpers": {"registry.example.com": "test", "gcr.io": "gcloud"},
            "credsStore": "desktop",
            "currentContext": "remote",
            "detachKeys": "ctrl-e,e",
            "someFutureKey": {"nested": [1, 2]},
            "cliPluginsExtraDirs": [plugins.display().to_string()],
        }));
        assert_eq!(job.config, want);
        assert_eq!(DockerConfig::load(&job.path).unwrap(), Some(want));
        assert_eq!(
            job.config.credentials_for(&host("registry.example.com"), Some(&path)).unwrap(),
            Some(basic("helper-user", "helper-pass"))
        );
    }

    #[test]
    fn current_context_without_contexts_is_dropped_and_no_source_gives_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        fs::create_dir(&source).unwrap();
        fs::write(
            source.join("config.json"),
            r#"{"currentContext":"gone","credsStore":"desktop"}"#,
        )
        .unwrap();
        let job = create_job_dir(dir.path(), Some(&source), None, None).unwrap();
        assert_eq!(job.config, config(json!({"credsStore": "desktop"})));

        let job = create_job_dir(dir.path(), None, None, None).unwrap();
        assert_eq!(DockerConfig::load(&job.path).unwrap(), Some(DockerConfig::new()));
        let missing =
            create_job_dir(dir.path(), Some(&dir.path().join("nowhere")), None, None).unwrap();
        assert_eq!(missing.config, DockerConfig::new());
    }

    #[test]
    fn job_dir_is_removed_when_the_source_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path().join("parent");
        fs::create_dir(&parent).unwrap();
        let error = create_job_dir(&parent, None, Some("{"), None).unwrap_err();
        assert!(matches!(error, DockerConfigError::InvalidJson { .. }));
        assert_eq!(fs::read_dir(&parent).unwrap().count(), 0);
    }

    #[test]
    fn stale_job_dirs_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let parent = dir.path();
        let old = create_job_dir(parent, None, None, None).unwrap();
        let fresh = create_job_dir(parent, None, None, None).unwrap();
        let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
        fs::File::options()
            .write(true)
            .open(old.path.join(MARKER_FILE))
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        let foreign = parent.join("dockhand-foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("config.json"), "{}").unwrap();
        // a decoy: named like a job directory, with an old marker, but mode 0755 (user data)
        let decoy = parent.join("dockhand-decoy");
        fs::create_dir(&decoy).unwrap();
        fs::set_permissions(&decoy, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(decoy.join("notes.txt"), "mine").unwrap();
        fs::write(decoy.join(MARKER_FILE), "").unwrap();
        fs::File::options()
            .write(true)
            .open(decoy.join(MARKER_FILE))
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        // another user's job directory, stale: theirs to remove (only root can make one here)
        let theirs = create_job_dir(parent, None, None, None).unwrap();
        let chowned = std::os::unix::fs::chown(&theirs.path, Some(65534), Some(65534)).is_ok();
        fs::File::options()
            .write(true)
            .open(theirs.path.join(MARKER_FILE))
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();
        // a stale job directory holding a link out: the link goes, its target stays
        let target = parent.join("target.txt");
        fs::write(&target, "outside").unwrap();
        std::os::unix::fs::symlink(&target, old.path.join("link")).unwrap();
        let other = parent.join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join(MARKER_FILE), "").unwrap();
        fs::File::options()
            .write(true)
            .open(other.join(MARKER_FILE))
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();

        let removed =
            remove_stale_job_dirs(parent, Duration::from_secs(24 * 3600), SystemTime::now());
        assert_eq!(removed, if chowned { 1 } else { 2 });
        assert!(!old.path.exists());
        assert!(fresh.path.join("config.json").is_file());
        assert!(foreign.join("config.json").is_file());
        assert!(other.join(MARKER_FILE).is_file());
        assert!(decoy.join("notes.txt").is_file());
        assert_eq!(theirs.path.exists(), chowned);
        assert_eq!(fs::read_to_string(&target).unwrap(), "outside");
        assert_eq!(
            remove_stale_job_dirs(&parent.join("nowhere"), Duration::ZERO, SystemTime::now()),
            0
        );
    }
}
