//! The docker `config.json`: reading the runner's, and writing the job's private copy.
//!
//! Owns [`DockerConfig`] (the file's JSON object, unknown keys kept: reading, type checks,
//! merging `DOCKER_AUTH_CONFIG`, writing), with two parts beside it: `credentials.rs`, lookup
//! through `auths`, `credHelpers` and `credsStore` ([`DockerConfig::credentials_for`]) and
//! running the helpers; `job_dir.rs`, the per-job directory ([`create_job_dir`]: mode 0700,
//! `config.json` 0600, marked as dockhand's) and the removal of stale ones. Never modifies the source config or `~/.docker`, never
//! logs a credential, and never quotes the content of a config in an error: it may hold
//! passwords.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use crate::env_vars;
use crate::exit::{Classify, ExitStatus};
use crate::process::CommandError;
use crate::reference::RegistryHost;
use crate::secret::Secret;

/// The file name docker, buildah and skopeo read in `$DOCKER_CONFIG`.
pub const CONFIG_FILE: &str = "config.json";

const AUTHS: &str = "auths";
const CRED_HELPERS: &str = "credHelpers";
const CREDS_STORE: &str = "credsStore";

/// A docker `config.json`: a JSON object. Keys dockhand does not know are kept as they are.
/// `Debug` shows the top-level keys only, never credentials.
#[derive(Clone, PartialEq, Default)]
pub struct DockerConfig(Map<String, Value>);

pub use crate::secret::Credential;

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

    /// Writes `dir/config.json` with mode 0600, replacing the file atomically (a temporary
    /// file in `dir`, renamed over it), so readers never see a partial file.
    pub fn write(&self, dir: &Path) -> Result<(), DockerConfigError> {
        let path = dir.join(CONFIG_FILE);
        let mut text = serde_json::to_string_pretty(&self.0).expect("a JSON map serialises");
        text.push('\n');
        replace_private_file(&path, text.as_bytes())
            .map_err(|source| DockerConfigError::Write { path, source })
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

/// Replaces the file `path` with a new one holding `bytes`, mode 0600 whatever an old file's
/// mode was: written and synced beside it, then renamed over it, so readers never see a
/// partial file and a symbolic link at `path` is replaced, never followed.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".dockhand-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// The `auth` value a docker config stores for a login: base64 of `user:password`. A secret
/// in its own right (GitHub must be told to mask it).
pub fn basic_auth_value(username: &str, password: &Secret) -> String {
    BASE64.encode(format!("{username}:{}", password.expose()))
}

mod credentials;
mod job_dir;

pub use job_dir::{JOB_DIR_PREFIX, JobDir, create_job_dir, remove_stale_job_dirs};

#[cfg(test)]
mod tests;
