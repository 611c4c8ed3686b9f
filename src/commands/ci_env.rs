//! `dockhand ci-env` and `dockhand login`: the job's isolated docker config and credentials.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{ArgumentError, Failure, Invocation, block_on, client};
use crate::ci::export::{self, Export, Shell};
use crate::ci::{self, CiContext, JobLogin, Provider, ProviderChoice};
use crate::cli::{CiEnvArgs, GlobalArgs, LoginArgs};
use crate::docker_config::{self, DockerConfig};
use crate::env_vars::{self, EnvMap};
use crate::exit::ExitStatus;
use crate::output::Output;
use crate::reference::{RegistryHost, RepoAddress};
use crate::registry;
use crate::secret::Secret;
use crate::settings::GlobalSettings;

/// Job directories older than this, left by earlier jobs under the same parent, are removed.
const STALE_JOB_DIR_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Checks `credentials` against their registry's `/v2/`.
fn verify(settings: &GlobalSettings, credentials: &JobLogin) -> Result<(), Failure> {
    let client = client(settings)?;
    let credential = credentials.credential();
    block_on(client.verify_credentials(&credentials.registry, &credential))?;
    log::info!("credentials of `{}` for `{}` verified", credentials.username, credentials.registry);
    Ok(())
}

/// Where the job's docker config directory goes: `$RUNNER_TEMP` on GitHub (emptied by the
/// runner after every job), else `$TMPDIR`, else `/tmp`.
fn job_dir_parent(ci: &CiContext, env: &EnvMap) -> PathBuf {
    let runner_temp = env.get(env_vars::RUNNER_TEMP).filter(|dir| !dir.is_empty());
    match runner_temp {
        Some(dir) if ci.provider == Provider::Github => PathBuf::from(dir),
        _ => env
            .get(env_vars::TMPDIR)
            .filter(|dir| !dir.is_empty())
            .map_or_else(std::env::temp_dir, PathBuf::from),
    }
}

/// The variables `ci-env` exports, in a stable order. Unknown facts are left out rather than
/// exported empty, so a later `${VAR:-default}` still works.
fn ci_exports(ci: &CiContext, settings: &GlobalSettings, job_dir: &Path) -> Vec<Export> {
    let dir = job_dir.display().to_string();
    let mut exports = vec![
        Export::new(env_vars::DOCKER_CONFIG, &dir),
        Export::new(env_vars::DOCKHAND_DOCKER_CONFIG, &dir),
        Export::new(env_vars::DOCKHAND_CI, ci.provider.name()),
    ];
    if let Some(repo) = &settings.repo {
        exports.push(Export::new(env_vars::DOCKHAND_REPO, repo.to_string()));
        exports.push(Export::new(
            env_vars::DOCKHAND_REPO_IMPLEMENTATION,
            settings.implementation_for(repo).name(),
        ));
    }
    let facts = [
        (env_vars::DOCKHAND_SHA, ci.sha.as_deref()),
        (env_vars::DOCKHAND_REF_NAME, ci.ref_name.as_deref()),
        (env_vars::DOCKHAND_REF_TYPE, ci.ref_type.map(ci::RefType::name)),
        (env_vars::DOCKHAND_TAG, ci.tag.as_deref()),
        (env_vars::DOCKHAND_PR_NUMBER, ci.pr_number.as_deref()),
        (env_vars::DOCKHAND_PR_HEAD_SHA, ci.pr_head_sha.as_deref()),
        (env_vars::DOCKHAND_DEFAULT_BRANCH, ci.default_branch.as_deref()),
        (env_vars::DOCKHAND_JOB_ID, ci.job_id.as_deref()),
        (env_vars::DOCKHAND_PIPELINE_ID, ci.pipeline_id.as_deref()),
    ];
    exports.extend(facts.into_iter().filter_map(|(name, value)| Some(Export::new(name, value?))));
    exports
}

/// Appends `text` to the file `path` names (the runner's `$GITHUB_ENV`), creating it with mode
/// 0600; a symbolic link there is refused, never followed.
fn append_private(path: &Path, text: &str) -> Result<(), ArgumentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    refuse_symlink(path)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| ArgumentError::Write { path: path.to_owned(), source })
}

/// Replaces the file `path` with a new one holding `text`, mode 0600 whatever the old file's
/// mode was: written beside it and renamed over it. A symbolic link there is refused, never
/// followed.
fn replace_private(path: &Path, text: &str) -> Result<(), ArgumentError> {
    refuse_symlink(path)?;
    docker_config::replace_private_file(path, text.as_bytes())
        .map_err(|source| ArgumentError::Write { path: path.to_owned(), source })
}

fn refuse_symlink(path: &Path) -> Result<(), ArgumentError> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => {
            Err(ArgumentError::Symlink { path: path.to_owned() })
        }
        _ => Ok(()),
    }
}

pub(super) fn ci_env(
    args: &CiEnvArgs,
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let choice: ProviderChoice =
        args.ci.parse().map_err(|message| ArgumentError::Invalid { argument: "CI", message })?;
    let shell: Shell = args
        .shell
        .parse()
        .map_err(|message| ArgumentError::Invalid { argument: "--shell", message })?;
    let github_env = match shell {
        Shell::Github => Some(
            invocation
                .env
                .get(env_vars::GITHUB_ENV)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .ok_or(ArgumentError::NoGithubEnv)?,
        ),
        _ => None,
    };
    let ci = ci::detect(choice, invocation.env, invocation.workdir)?;
    let settings = GlobalSettings::resolve(global, invocation.env, invocation.workdir, Some(&ci))?;
    log::debug!("CI: {}", ci.provider);

    // everything is validated; now the network, then the file system
    match (&ci.credentials, args.no_login) {
        (Some(credentials), false) => verify(&settings, credentials)?,
        (Some(credentials), true) => log::info!(
            "credentials for `{}` written without checking them (--no-login)",
            credentials.registry
        ),
        (None, _) => log::info!(
            "no registry credentials in this CI environment; the job's config carries the runner's only"
        ),
    }
    let repo =
        settings.repo.as_ref().map(|repo| (&repo.registry, settings.implementation_for(repo)));
    let to_mint = registry::logins_to_mint(repo, invocation.env)?;
    let minted = if to_mint.is_empty() {
        Vec::new()
    } else {
        block_on(registry::mint_logins(&to_mint, invocation.env, &settings.insecure_registries))?
    };
    for login in &minted {
        log::info!("login for `{}` minted from the vendor's credentials", login.registry);
    }
    let parent = job_dir_parent(&ci, invocation.env);
    let removed =
        docker_config::remove_stale_job_dirs(&parent, STALE_JOB_DIR_AGE, SystemTime::now());
    if removed > 0 {
        log::info!("removed {removed} stale dockhand config dir(s) from `{}`", parent.display());
    }
    let source = settings.docker_config.is_dir().then_some(settings.docker_config.as_path());
    let mut job = docker_config::create_job_dir(
        &parent,
        source,
        invocation.env.get(env_vars::DOCKER_AUTH_CONFIG).map(String::as_str),
        invocation.env.get(env_vars::PATH).map(String::as_str),
    )?;
    if let Some(credentials) = &ci.credentials {
        job.config.set_auth(&credentials.registry, &credentials.username, &credentials.password);
    }
    // a job directory nobody is told about must not stay behind with the credential in it
    let exported = (|| -> Result<(), Failure> {
        for login in &minted {
            job.config.set_auth(&login.registry, &login.username, &login.password);
        }
        job.write()?;
        let exports = ci_exports(&ci, &settings, &job.path);
        let rendered = export::render(shell, &exports)?;
        if shell == Shell::Github {
            // the runner masks only what it was told about, in its log: each token and its
            // docker `auth` value (always on stdout, never into a file)
            let logins = ci.credentials.iter().map(|login| (&login.username, &login.password));
            let minted = minted.iter().map(|login| (&login.username, &login.password));
            let mut masks = String::new();
            for (username, password) in logins.chain(minted) {
                masks.push_str(&export::mask_lines(password.expose()));
                masks.push_str(&export::mask_lines(&docker_config::basic_auth_value(
                    username, password,
                )));
            }
            output.raw(&masks);
        }
        if let Some(file) = &github_env {
            append_private(file, &rendered.github_env)?;
        }
        match &args.output_file {
            Some(path) => replace_private(&invocation.workdir.join(path), &rendered.stdout)?,
            None => output.raw(&rendered.stdout),
        }
        Ok(())
    })();
    if exported.is_err()
        && let Err(error) = std::fs::remove_dir_all(&job.path)
    {
        log::warn!("cannot remove the unused job directory `{}`: {error}", job.path.display());
    }
    exported?;
    log::info!("job docker config: {}", job.path.display());
    Ok(ExitStatus::Success)
}

pub(super) fn login(
    args: &LoginArgs,
    settings: &GlobalSettings,
    env: &EnvMap,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let registry: RegistryHost = args
        .registry
        .parse()
        .map_err(|source| ArgumentError::Registry { value: args.registry.clone(), source })?;
    let credentials = match &args.username {
        Some(username) if args.password_stdin => read_login(registry, username)?,
        _ => {
            let address = RepoAddress { registry: registry.clone(), path: String::new() };
            let implementation = settings.implementation_for(&address);
            let minted = block_on(registry::mint_login(
                &registry,
                implementation,
                env,
                &settings.insecure_registries,
            ))?;
            let login = minted.ok_or(ArgumentError::NoPassword(registry))?;
            JobLogin {
                registry: login.registry,
                username: login.username,
                password: login.password,
            }
        }
    };
    verify(settings, &credentials)?;
    let dir = &settings.docker_config;
    std::fs::create_dir_all(dir)
        .map_err(|source| ArgumentError::Write { path: dir.clone(), source })?;
    let mut config = DockerConfig::load(dir)?.unwrap_or_default();
    config.set_auth(&credentials.registry, &credentials.username, &credentials.password);
    config.write(dir)?;
    output.result(
        &serde_json::json!({"registry": credentials.registry.to_string(), "username": credentials.username, "config": dir.join(docker_config::CONFIG_FILE)}),
        || format!("Login to `{}` as `{}` saved in `{}`", credentials.registry, credentials.username, dir.join(docker_config::CONFIG_FILE).display()),
    );
    Ok(ExitStatus::Success)
}

/// The login `dockhand login -u USER --password-stdin` was given.
fn read_login(registry: RegistryHost, username: &str) -> Result<JobLogin, Failure> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).map_err(ArgumentError::Stdin)?;
    let password = password
        .strip_suffix('\n')
        .map_or(password.as_str(), |p| p.strip_suffix('\r').unwrap_or(p));
    if password.is_empty() {
        return Err(ArgumentError::EmptyPassword.into());
    }
    Ok(JobLogin::from_user(registry, username.to_owned(), Secret::new(password), "--username")?)
}
