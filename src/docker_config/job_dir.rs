//! The job's private docker config directory: making it (mode 0700, `config.json` 0600, a
//! marker saying it is dockhand's) from the runner's config, and removing stale ones that an
//! earlier job of this user left behind.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::{DockerConfig, DockerConfigError};

/// Every job directory's name starts with this.
pub const JOB_DIR_PREFIX: &str = "dockhand-";

/// The file that marks a directory as a dockhand job directory (and dates it).
pub(super) const MARKER_FILE: &str = ".dockhand-job-dir";

/// What the marker file says, for a human who finds it.
const MARKER_TEXT: &str =
    "Created by `dockhand ci-env` for one CI job; removed by dockhand when stale.\n";

/// Docker's built-in context, which needs no `contexts/` directory.
const DEFAULT_CONTEXT: &str = "default";

const CURRENT_CONTEXT: &str = "currentContext";

const CLI_PLUGINS_EXTRA_DIRS: &str = "cliPluginsExtraDirs";

const CONTEXTS_DIR: &str = "contexts";

const CLI_PLUGINS_DIR: &str = "cli-plugins";

/// The job's private docker config directory, as [`create_job_dir`] left it. The directory is
/// kept when this value is dropped: it must outlive the process that created it.
#[derive(Debug)]
pub struct JobDir {
    /// The directory, to export as `DOCKER_CONFIG`.
    pub path: PathBuf,
    /// The config written to `path/config.json`; call [`JobDir::write`] after changing it.
    pub config: DockerConfig,
}

impl JobDir {
    /// Writes [`JobDir::config`] to the directory's `config.json`.
    pub fn write(&self) -> Result<(), DockerConfigError> {
        self.config.write(&self.path)
    }
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
