//! One function per command: resolve settings, call the modules that do the work, hand the
//! result to `output`.
//!
//! Owns the order of the phases of each command (validate everything, then contact
//! registries) and nothing else: parsing lives in `cli`/`settings`, the work in the modules,
//! rendering in `output`.

mod ci_env;
mod cleanup;
mod images;
mod registry;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};

use crate::ci::{CiContext, JobLogin};
use crate::cli::{Cli, Command, GlobalArgs, RegistryCommand};
use crate::docker_config::DockerConfig;
use crate::env_vars::{self, EnvMap};
use crate::exit::{Classify, ExitStatus};
use crate::output::Output;
use crate::project::ProjectFile;
use crate::reference::{ReferenceError, RegistryHost, RepoAddress};
use crate::registry::Registry;
use crate::registry::distribution::{Client, ClientOptions, Credential};
use crate::settings::GlobalSettings;

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
        output.error(&self.0.to_string(), &crate::exit::causes(&*self.0), self.0.hint().as_deref());
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
    #[error("`{0}` needs a user name and a password: this registry's vendor mints no login")]
    NoPassword(RegistryHost),
    #[error("Cannot read the password from stdin")]
    Stdin(#[source] std::io::Error),
    #[error("`--shell github` appends to the file `$GITHUB_ENV` names, and GITHUB_ENV is not set")]
    NoGithubEnv,
    #[error("`{}` is a symbolic link; dockhand does not write through links", path.display())]
    Symlink { path: PathBuf },
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
            Self::EmptyPassword | Self::NoPassword(_) => Some("pipe it in: `printf %s \"$TOKEN\" | dockhand login REGISTRY -u USER --password-stdin`".into()),
            Self::NoGithubEnv => Some("use `--shell github` inside a GitHub Actions step, or another --shell".into()),
            Self::Symlink { .. } => Some("name a regular file (or a new path) instead".into()),
            _ => None,
        }
    }
}

/// `dockhand version`: what this binary was built from and with, stamped in by `build.rs`.
/// JSON keys: `version`, `revision`, `target`, `profile`, `rustc`, `source_date_epoch` (the
/// commit time of a release build, else `null`).
#[derive(Debug, serde::Serialize)]
struct BuildFacts {
    version: &'static str,
    revision: &'static str,
    target: &'static str,
    profile: &'static str,
    rustc: &'static str,
    source_date_epoch: Option<i64>,
}

impl BuildFacts {
    fn of_this_binary() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("DOCKHAND_REVISION"),
            target: env!("DOCKHAND_TARGET"),
            profile: env!("DOCKHAND_PROFILE"),
            rustc: env!("DOCKHAND_RUSTC"),
            source_date_epoch: env!("DOCKHAND_SOURCE_DATE_EPOCH").parse().ok(),
        }
    }

    fn text(&self) -> String {
        let epoch = match self.source_date_epoch.map(jiff::Timestamp::from_second) {
            Some(Ok(time)) => format!("{time:.0}"),
            _ => "(not a release build)".to_owned(),
        };
        format!(
            "dockhand {}
revision: {}
target: {}
profile: {}
compiler: {}
commit time: {epoch}",
            self.version, self.revision, self.target, self.profile, self.rustc
        )
    }
}

/// How dockhand was invoked, besides its arguments: the process environment (read once, in
/// `main`) and the working directory.
pub struct Invocation<'a> {
    pub env: &'a EnvMap,
    pub workdir: &'a Path,
}

/// Runs the parsed command line.
pub fn run(cli: Cli, invocation: &Invocation<'_>, output: &Output) -> Result<ExitStatus, Failure> {
    match cli.command {
        Command::Schema => {
            output.raw(&(ProjectFile::json_schema() + "\n"));
            Ok(ExitStatus::Success)
        }
        Command::Version => {
            let facts = BuildFacts::of_this_binary();
            output.result(&facts, || facts.text());
            Ok(ExitStatus::Success)
        }
        Command::Registry(RegistryCommand::Detect(args)) => {
            let settings =
                GlobalSettings::resolve(&cli.global, invocation.env, invocation.workdir, None)?;
            registry::detect(&args, &settings, output)
        }
        Command::CiEnv(args) => ci_env::ci_env(&args, &cli.global, invocation, output),
        Command::Login(args) => {
            let settings =
                GlobalSettings::resolve(&cli.global, invocation.env, invocation.workdir, None)?;
            ci_env::login(&args, &settings, invocation.env, output)
        }
        Command::Images(args) => images::images(&args, &cli.global, invocation, output),
        Command::Build(args) => images::build(&args, &cli.global, invocation, output),
        Command::Publish(args) => images::publish(&args, &cli.global, invocation, output),
        Command::Cleanup(args) => cleanup::cleanup(&args, &cli.global, invocation, output),
        Command::Run(args) => images::run(&args, &cli.global, invocation, output),
    }
}

/// The CI context (detected) and the global settings resolved with it: what every command that
/// builds, names or deletes images starts from.
fn job_settings(
    global: &GlobalArgs,
    invocation: &Invocation<'_>,
) -> Result<(CiContext, GlobalSettings), Failure> {
    let ci =
        crate::ci::detect(crate::ci::ProviderChoice::Auto, invocation.env, invocation.workdir)?;
    let settings = GlobalSettings::resolve(global, invocation.env, invocation.workdir, Some(&ci))?;
    Ok((ci, settings))
}

/// Runs async work to completion on the process's one single-threaded runtime: registry calls
/// are I/O bound and concurrency comes from async, not threads. Every call shares that
/// runtime, so connections a client opened in one call stay usable in the next.
fn block_on<F: Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime always builds");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// A distribution client honouring `--insecure-registry`, with no stored credentials.
fn client(settings: &GlobalSettings) -> Result<Client, Failure> {
    Ok(Client::new(client_options(
        settings,
        BTreeMap::new(),
        ClientOptions::default().concurrency,
    ))?)
}

fn client_options(
    settings: &GlobalSettings,
    credentials: BTreeMap<RegistryHost, Credential>,
    concurrency: usize,
) -> ClientOptions {
    ClientOptions {
        insecure: settings.insecure_registries.clone(),
        credentials,
        concurrency,
        connect_timeout: settings.timeouts.connect,
        read_timeout: settings.timeouts.read,
        request_timeout: settings.timeouts.request,
        ..ClientOptions::default()
    }
}

/// The registry of `repo`, connected with its credentials: from the docker config in use (as
/// `ci-env` or `docker login` left it, plus `DOCKER_AUTH_CONFIG`), else the CI job's own
/// login, else anonymous. Requests in flight are limited to what its implementation
/// tolerates (`Capabilities::concurrency`).
fn connect(
    settings: &GlobalSettings,
    env: &EnvMap,
    ci: Option<&CiContext>,
    repo: &RepoAddress,
) -> Result<Registry, Failure> {
    let mut config = DockerConfig::load(&settings.docker_config)?;
    if let Some(json) = env.get(env_vars::DOCKER_AUTH_CONFIG).filter(|json| !json.is_empty()) {
        config.get_or_insert_with(DockerConfig::new).merge_auth_config(json)?;
    }
    let implementation = settings.implementation_for(repo);
    let concurrency = implementation.capabilities(repo).concurrency;
    let path = env.get(env_vars::PATH).map(String::as_str);
    let registry = &repo.registry;
    let from_config = match &config {
        Some(config) => config.credentials_for(registry, path)?,
        None => None,
    };
    let from_ci = || {
        ci?.credentials
            .as_ref()
            .filter(|login| &login.registry == registry)
            .map(JobLogin::credential)
    };
    let mut credentials = BTreeMap::new();
    match from_config.or_else(from_ci) {
        Some(credential) => {
            credentials.insert(registry.clone(), credential);
        }
        None => log::debug!("no credentials for `{registry}`: anonymous"),
    }
    let options = client_options(settings, credentials, concurrency);
    Ok(block_on(crate::registry::connect(
        implementation,
        repo,
        options,
        env,
        &settings.project.repositories,
    ))?)
}
