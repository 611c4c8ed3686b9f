//! One function per command: resolve settings, call the modules that do the work, hand the
//! result to `output`.
//!
//! Owns the order of the phases of each command (validate everything, then contact
//! registries) and nothing else: parsing lives in `cli`/`settings`, the work in the modules,
//! rendering in `output`.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::ci::export::{self, Export, Shell};
use crate::ci::{self, CiContext, Credentials, Provider, ProviderChoice};
use crate::cli::{CiEnvArgs, Cli, Command, DetectArgs, GlobalArgs, LoginArgs, RegistryCommand};
use crate::docker_config::{self, DockerConfig};
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::output::Output;
use crate::project::ProjectFile;
use crate::publish::{self, Target};
use crate::reference::{ReferenceError, RegistryHost, RepoAddress};
use crate::registry::distribution::{Client, ClientOptions, Credential};
use crate::secret::Secret;
use crate::settings::{GlobalSettings, ImagesSettings, SettingsError};

/// Job directories older than this, left by earlier jobs under the same parent, are removed.
const STALE_JOB_DIR_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Any error a command can end with, classified for the exit code.
pub struct Failure(Box<dyn ClassifiedError>);

/// An error that knows its exit code.
pub trait ClassifiedError: std::error::Error + Classify {}
impl<E: std::error::Error + Classify> ClassifiedError for E {}

impl<E: std::error::Error + Classify + 'static> From<E> for Failure {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl Failure {
    pub fn exit_status(&self) -> ExitStatus {
        self.0.exit_status()
    }

    /// Reports the error through `output`: message, causes, hint.
    pub fn report(&self, output: &Output) {
        let mut causes = Vec::new();
        let mut source = self.0.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        output.error(&self.0.to_string(), &causes, self.0.hint().as_deref());
    }
}

/// A command that later work implements; it fails with exit 2 and says so.
#[derive(Debug, thiserror::Error)]
#[error("`dockhand {0}` is not implemented yet")]
pub struct NotImplemented(&'static str);

impl Classify for NotImplemented {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Failure
    }
}

/// A command-line value that `cli` accepts as text and the command cannot use.
#[derive(Debug, thiserror::Error)]
pub enum ArgumentError {
    #[error("Invalid value for {argument}: {message}")]
    Invalid { argument: &'static str, message: String },
    #[error("Invalid registry `{value}`")]
    Registry {
        value: String,
        #[source]
        source: ReferenceError,
    },
    #[error("No password on stdin for `dockhand login`")]
    EmptyPassword,
    #[error("Cannot read the password from stdin")]
    Stdin(#[source] std::io::Error),
    #[error("`--shell github` appends to the file `$GITHUB_ENV` names, and GITHUB_ENV is not set")]
    NoGithubEnv,
    #[error("Cannot write `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for ArgumentError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::Stdin(_) | Self::Write { .. } => ExitStatus::Failure,
            _ => ExitStatus::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::EmptyPassword => Some("pipe it in: `printf %s \"$TOKEN\" | dockhand login REGISTRY -u USER --password-stdin`".into()),
            Self::NoGithubEnv => Some("use `--shell github` inside a GitHub Actions step, or another --shell".into()),
            _ => None,
        }
    }
}

/// What a command needs from the process: its environment and working directory.
pub struct Process<'a> {
    pub env: &'a EnvMap,
    pub workdir: &'a Path,
}

/// Runs the parsed command line.
pub fn run(cli: Cli, process: &Process<'_>, output: &Output) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Schema => {
            output.raw(&(ProjectFile::json_schema() + "\n"));
            Ok(ExitStatus::Success)
        }
        Command::Registry(RegistryCommand::Detect(args)) => {
            let settings =
                GlobalSettings::resolve(&cli.global, process.env, process.workdir, None)?;
            registry_detect(&args, &settings, output)
        }
        Command::CiEnv(args) => ci_env(&args, &cli.global, process, output),
        Command::Login(args) => {
            let settings =
                GlobalSettings::resolve(&cli.global, process.env, process.workdir, None)?;
            login(&args, &settings, output)
        }
        Command::Images(args) => {
            let ci = ci::detect(ProviderChoice::Auto, process.env, process.workdir)?;
            let settings =
                GlobalSettings::resolve(&cli.global, process.env, process.workdir, Some(&ci))?;
            let images = ImagesSettings::resolve(&settings, &args.tags)?;
            let targets = plan_targets(&images, &ci, &[])?;
            output.result(&targets, || {
                targets
                    .iter()
                    .map(|target| target.reference.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(ExitStatus::Success)
        }
        Command::Build(_) => Err(NotImplemented("build").into()),
        Command::Publish(_) => Err(NotImplemented("publish").into()),
        Command::Cleanup(_) => Err(NotImplemented("cleanup").into()),
        Command::Run(_) => Err(NotImplemented("run").into()),
    }
}

/// `registry detect --output json`: exactly the SPEC's keys.
#[derive(Debug, Serialize)]
struct Detection {
    address: String,
    registry: String,
    repository: String,
    implementation: &'static str,
    nested_repositories: bool,
    create_repository_before_push: bool,
    tag_delete: &'static str,
    default_mode: &'static str,
}

fn registry_detect(
    args: &DetectArgs,
    settings: &GlobalSettings,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let address: RepoAddress = match &args.address {
        Some(address) => address
            .parse()
            .map_err(|source| SettingsError::Repo { origin: "the ADDR argument", source })?,
        None => settings.require_repo()?.clone(),
    };
    let implementation = settings.implementation_for(&address);
    let capabilities = implementation.capabilities(&address);
    let detection = Detection {
        address: address.to_string(),
        registry: address.registry.to_string(),
        repository: address.path.clone(),
        implementation: implementation.name(),
        nested_repositories: capabilities.nested_repositories,
        create_repository_before_push: capabilities.create_repository_before_push,
        tag_delete: capabilities.tag_delete.name(),
        default_mode: capabilities.default_mode.name(),
    };
    output.result(&detection, || {
        format!(
            "address:                        {}\nregistry:                       {}\nrepository:                     {}\nimplementation:                 {}\nnested repositories:            {}\ncreate repository before push:  {}\ntag delete:                     {}\ndefault mode:                   {}\n",
            detection.address,
            detection.registry,
            detection.repository,
            detection.implementation,
            detection.nested_repositories,
            detection.create_repository_before_push,
            detection.tag_delete,
            detection.default_mode,
        )
    });
    Ok(ExitStatus::Success)
}

/// Every reference this build publishes: the tag rules rendered for `ci`, each image named in
/// the images repo. `existing` are the tags already in the registry (for `latest`).
fn plan_targets(
    images: &ImagesSettings,
    ci: &CiContext,
    existing: &[crate::reference::Tag],
) -> Result<Vec<Target>, Failure> {
    let rendered = images.tag_rules.render(ci, jiff::Timestamp::now(), existing)?;
    let names: Vec<&str> = images.images.iter().map(|image| image.name.as_str()).collect();
    Ok(publish::targets(&images.repo, images.mode, &names, &rendered.tags)?)
}

/// Runs one async command to completion on a single-threaded runtime: registry calls are I/O
/// bound and concurrency comes from async, not threads.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime always builds")
        .block_on(future)
}

/// A distribution client honouring `--insecure-registry`.
fn client(settings: &GlobalSettings) -> Result<Client, Failure> {
    Ok(Client::new(ClientOptions {
        insecure: settings.insecure_registries.clone(),
        ..ClientOptions::default()
    })?)
}

/// Checks `credentials` against their registry's `/v2/`.
fn verify(settings: &GlobalSettings, credentials: &Credentials) -> Result<(), Failure> {
    let client = client(settings)?;
    let credential = Credential::Basic {
        username: credentials.username.clone(),
        password: credentials.password.clone(),
    };
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

/// Writes `text` to `path`, truncating, with mode 0600.
fn write_private(path: &Path, text: &str, append: bool) -> Result<(), ArgumentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).mode(0o600);
    if append {
        options.append(true)
    } else {
        options.write(true).truncate(true)
    };
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| ArgumentError::Write { path: path.to_owned(), source })
}

fn ci_env(
    args: &CiEnvArgs,
    global: &GlobalArgs,
    process: &Process<'_>,
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
            process
                .env
                .get(env_vars::GITHUB_ENV)
                .filter(|f| !f.is_empty())
                .map(PathBuf::from)
                .ok_or(ArgumentError::NoGithubEnv)?,
        ),
        _ => None,
    };
    let ci = ci::detect(choice, process.env, process.workdir)?;
    let settings = GlobalSettings::resolve(global, process.env, process.workdir, Some(&ci))?;
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
    let parent = job_dir_parent(&ci, process.env);
    let removed =
        docker_config::remove_stale_job_dirs(&parent, STALE_JOB_DIR_AGE, SystemTime::now());
    if removed > 0 {
        log::info!("removed {removed} stale dockhand config dir(s) from `{}`", parent.display());
    }
    let source = settings.docker_config.is_dir().then_some(settings.docker_config.as_path());
    let mut job = docker_config::create_job_dir(
        &parent,
        source,
        process.env.get(env_vars::DOCKER_AUTH_CONFIG).map(String::as_str),
        process.env.get(env_vars::PATH).map(String::as_str),
    )?;
    if let Some(credentials) = &ci.credentials {
        job.config.set_auth(&credentials.registry, &credentials.username, &credentials.password);
    }
    job.write()?;

    let exports = ci_exports(&ci, &settings, &job.path);
    let rendered = export::render(shell, &exports)?;
    let mut stdout = rendered.stdout;
    if let (Shell::Github, Some(credentials)) = (shell, &ci.credentials) {
        // the runner masks only what it was told about: the token and the docker `auth` value
        stdout.push_str(&export::mask_lines(credentials.password.expose()));
        stdout.push_str(&export::mask_lines(&docker_config::basic_auth_value(
            &credentials.username,
            &credentials.password,
        )));
    }
    if let Some(file) = &github_env {
        write_private(file, &rendered.github_env, true)?;
    }
    match &args.output_file {
        Some(path) => write_private(&process.workdir.join(path), &stdout, false)?,
        None => output.raw(&stdout),
    }
    log::info!("job docker config: {}", job.path.display());
    Ok(ExitStatus::Success)
}

fn login(
    args: &LoginArgs,
    settings: &GlobalSettings,
    output: &Output,
) -> Result<ExitStatus, Failure> {
    let registry: RegistryHost = args
        .registry
        .parse()
        .map_err(|source| ArgumentError::Registry { value: args.registry.clone(), source })?;
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).map_err(ArgumentError::Stdin)?;
    let password = password
        .strip_suffix('\n')
        .map_or(password.as_str(), |p| p.strip_suffix('\r').unwrap_or(p));
    if password.is_empty() {
        return Err(ArgumentError::EmptyPassword.into());
    }
    let credentials =
        Credentials { registry, username: args.username.clone(), password: Secret::new(password) };
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
