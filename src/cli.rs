//! The command line as the user typed it.
//!
//! Owns the clap definitions ([`Cli`], [`Command`], the `*Args` structs), their help text and
//! the environment variable each flag falls back to. Reads no files, environment or network
//! itself and validates nothing across flags: `settings` turns these raw values into typed,
//! checked settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::env_vars;

/// The version with the git revision it was built from, e.g. `0.1.0 (529cfb4)` (set by
/// `build.rs`; the revision is left out when the source is not a git checkout).
pub const VERSION: &str = env!("DOCKHAND_VERSION");

const ABOUT: &str = "Ship container images from CI: isolated per-job docker config, registry \
detection, build, publish and safe cleanup";

const LONG_ABOUT: &str = "\
Ship container images from CI.

dockhand reads the CI environment (GitHub Actions, GitLab CI, or explicit variables on any \
runner), writes an isolated per-job docker config so parallel jobs never share a login, detects \
the registry implementation from the images repo address, and runs build → publish → cleanup.

Exit codes: 0 success; 1 wrong input, configuration or credentials; 2 a registry or tool failed; \
3 a time or delete budget was reached (rerun to continue).";

/// dockhand's command line.
#[derive(Debug, Parser)]
#[command(name = "dockhand", version = VERSION, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Project file [default: dockhand.yaml in the working directory, if present]
    #[arg(long, global = true, value_name = "FILE", env = env_vars::DOCKHAND_CONFIG)]
    pub config: Option<PathBuf>,

    /// Images repo, e.g. `ghcr.io/acme/app` or `localhost:5000/team/app`
    #[arg(long, global = true, value_name = "ADDR", env = env_vars::DOCKHAND_REPO)]
    pub repo: Option<String>,

    /// Registry implementation: `auto`, or one of default, ecr, acr, dockerhub, gcr, github,
    /// gitlab, harbor, quay, artifactory, nexus [default: auto]
    #[arg(long, global = true, value_name = "NAME", env = env_vars::DOCKHAND_REPO_IMPLEMENTATION)]
    pub repo_implementation: Option<String>,

    /// Naming mode: `auto`, `multirepo` (REPO/IMAGE:TAG) or `monorepo` (REPO:IMAGE-TAG)
    /// [default: auto]
    #[arg(long, global = true, value_name = "MODE", env = env_vars::DOCKHAND_REPO_MODE)]
    pub repo_mode: Option<String>,

    /// Docker config directory credentials are read from [default: $DOCKER_CONFIG, else
    /// ~/.docker]
    #[arg(long, global = true, value_name = "DIR", env = env_vars::DOCKHAND_DOCKER_CONFIG)]
    pub docker_config: Option<PathBuf>,

    /// Talk plain HTTP to this registry host[:port] (repeatable; for local registries)
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        env = env_vars::DOCKHAND_INSECURE_REGISTRIES,
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// Longest wait for a TCP and TLS connection to a registry or API host, e.g. `15s`
    /// [default: 15s]
    #[arg(long, global = true, value_name = "DURATION", env = env_vars::DOCKHAND_CONNECT_TIMEOUT)]
    pub connect_timeout: Option<String>,

    /// Longest wait for more bytes of an answer (a stalled or dripping server) [default: 30s]
    #[arg(long, global = true, value_name = "DURATION", env = env_vars::DOCKHAND_READ_TIMEOUT)]
    pub read_timeout: Option<String>,

    /// Longest wait for one whole request, body included; uploads from a file get one second
    /// more per MiB [default: 2m]
    #[arg(long, global = true, value_name = "DURATION", env = env_vars::DOCKHAND_REQUEST_TIMEOUT)]
    pub request_timeout: Option<String>,

    /// Output format: `json` prints one JSON document on stdout; logs always go to stderr
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, env = env_vars::DOCKHAND_OUTPUT)]
    pub output: OutputFormat,

    /// More logs on stderr (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Fewer logs on stderr (-q errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// `text` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write an isolated docker config for this CI job and print the variables that export it
    #[command(name = "ci-env", long_about = CI_ENV_ABOUT)]
    CiEnv(CiEnvArgs),

    /// Add one registry's credentials to the docker config in use, after checking them
    Login(LoginArgs),

    /// Inspect registries
    #[command(subcommand)]
    Registry(RegistryCommand),

    /// Print the image references the configuration gives for the current CI context
    Images(ImagesArgs),

    /// Build every image of the project file
    Build(BuildCommandArgs),

    /// Push the built images under every tag the tag rules give
    Publish(PublishArgs),

    /// Delete what the retention policy no longer keeps (plan with --dry-run)
    #[command(after_help = CLEANUP_AFTER_HELP)]
    Cleanup(CleanupArgs),

    /// Build, publish and clean up in one process, stopping at the first failed phase
    Run(RunArgs),

    /// Print the JSON Schema of dockhand.yaml
    Schema,

    /// Print the build's facts: version, git revision, target, profile, compiler, commit time
    Version,
}

const CLEANUP_AFTER_HELP: &str = "\
Scope: with a project file listing `images:`, those images in the images repo (in monorepo \
mode only their `IMAGE-` tags); without one (or for a nameless image), the repository --repo / \
DOCKHAND_REPO names, all its tags. \
Without --keep-last or --keep-within (here or in the file), the newest 10 images and everything \
younger than 2h are kept; release tags (v1.2.3) are kept unless --delete-releases.

--delete-tag TAG deletes exactly the tags named and keeps every other, whatever the policy: \
a named tag whose digest another tag still needs goes alone, and a named tag that does not \
exist is reported, not an error.";

const CI_ENV_ABOUT: &str = "\
Write an isolated docker config for this CI job and print the variables that export it.

Creates a fresh private directory (0700) holding config.json (0600) with the runner's existing \
credentials plus this job's registry login, so parallel jobs never share ~/.docker, which is \
never modified. Prints shell lines exporting DOCKER_CONFIG, DOCKHAND_* settings and the CI \
facts later phases use. Unless --no-login, the credentials are checked against the registry \
first.

  GitHub Actions  ghcr.io as $GITHUB_ACTOR with $GITHUB_TOKEN (map it into env:)
  GitLab CI       $CI_REGISTRY as $CI_REGISTRY_USER/$CI_REGISTRY_PASSWORD (or gitlab-ci-token/$CI_JOB_TOKEN)
  generic         $DOCKHAND_REGISTRY as $DOCKHAND_REGISTRY_USERNAME/$DOCKHAND_REGISTRY_PASSWORD

Typical use:  exports=$(dockhand ci-env) && eval \"$exports\"   or   dockhand ci-env --shell github
(`eval \"$(dockhand ci-env)\"` would hide a failure: eval succeeds on empty input)";

#[derive(Debug, Args)]
pub struct CiEnvArgs {
    /// Which CI to read: auto, github, gitlab or generic
    #[arg(default_value = "auto", value_name = "CI")]
    pub ci: String,

    /// How to print the variables: sh, powershell, cmd, dotenv, or github (appends to
    /// $GITHUB_ENV and masks secrets)
    #[arg(long, default_value = "sh", value_name = "SHELL")]
    pub shell: String,

    /// Write the lines to FILE instead of stdout (a new file, mode 0600, replacing any old one;
    /// a symbolic link is refused). With `--shell github` the mask lines still go to stdout
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    pub output_file: Option<PathBuf>,

    /// Write the credentials without checking them against the registry
    #[arg(long)]
    pub no_login: bool,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port], e.g. ghcr.io or localhost:5000
    #[arg(value_name = "REGISTRY")]
    pub registry: String,

    /// User name (with --password-stdin)
    #[arg(long, short = 'u', requires = "password_stdin")]
    pub username: Option<String>,

    /// Read the password or token from stdin (the only way to pass one). Without it, only
    /// registries that mint their own login from the vendor's credentials (ECR) can be logged in
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Print the registry, repository, implementation and capabilities of an address
    Detect(DetectArgs),
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Address to inspect, e.g. ghcr.io/acme/app [default: the images repo]
    #[arg(value_name = "ADDR")]
    pub address: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Tag rule to use instead of the file's `tags:` (repeatable), e.g. `{branch}`
    #[arg(long = "tag", value_name = "RULE")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Builder backend: buildah, docker or buildx; publish must name the one that built the
    /// images [default: the file's `builder:`, else buildah]
    #[arg(long, value_name = "NAME", env = env_vars::DOCKHAND_BUILDER)]
    pub builder: Option<String>,
}

/// How `build` and `run` run the builder.
#[derive(Debug, Args)]
pub struct BuildRunArgs {
    /// Stop an image's build that takes longer than this, e.g. `30m` or `1h30m`, and fail
    /// (exit 2) [default: no limit]
    #[arg(long, value_name = "DURATION", env = env_vars::DOCKHAND_BUILD_TIMEOUT)]
    pub build_timeout: Option<String>,
    /// A build secret for every image's `RUN --mount=type=secret,id=ID` steps: `id=ID,src=FILE`
    /// or `id=ID,env=VARIABLE` (repeatable; wins over an image's `secrets:` entry of that id).
    /// Only the file's path or the variable's name reaches the builder's command line
    #[arg(long = "secret", value_name = "SECRET")]
    pub secrets: Vec<String>,
    /// Platforms to build every image for, instead of the images' `platforms:`, e.g.
    /// `linux/amd64,linux/arm64` (comma-separated or repeated); several make one image index
    /// per image (buildah only)
    #[arg(long = "platform", value_name = "OS/ARCH", value_delimiter = ',', env = env_vars::DOCKHAND_PLATFORMS)]
    pub platforms: Vec<String>,
    /// Build up to N images at the same time, each after the image its `from_image:` names;
    /// their output lines are prefixed with the image's name [default: the file's `jobs:`,
    /// else 1]
    #[arg(long, value_name = "N", env = env_vars::DOCKHAND_JOBS)]
    pub jobs: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildCommandArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub build_run: BuildRunArgs,
}

/// The tag rules of `publish` and `run`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// Tag rule to use instead of the file's `tags:` (repeatable), e.g. `{branch}`
    #[arg(long = "tag", value_name = "RULE")]
    pub tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub tags: TagArgs,
    // `--builder`: the builder whose storage holds what `dockhand build` made
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Debug, Args)]
#[expect(clippy::struct_excessive_bools, reason = "one field per command-line switch")]
pub struct CleanupArgs {
    /// Plan only: print what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Keep the newest N images (distinct digests) per image name, with every tag on them
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,

    /// Keep everything younger than DURATION, e.g. 2h or 7d
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,

    /// Keep tags matching this anchored regex (repeatable)
    #[arg(long = "keep-tag", value_name = "REGEX")]
    pub keep_tags: Vec<String>,

    /// Also delete untagged manifests that nothing kept refers to
    #[arg(long)]
    pub delete_untagged: bool,

    /// Stop after N deletes (exit 3: rerun to continue)
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<usize>,

    /// Stop after DURATION (exit 3: rerun to continue)
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,

    /// Allow deleting tags that look like releases (v1.2.3); they are kept otherwise
    #[arg(long)]
    pub delete_releases: bool,

    /// Keep the N highest releases (v1.2.3) of each major version and delete older ones (with
    /// the image's highest release always kept); see cleanup.releases
    #[arg(long, value_name = "N")]
    pub keep_releases_per_major: Option<usize>,

    /// Keep the N highest releases of each major.minor version and delete older ones (with the
    /// image's highest release always kept); see cleanup.releases
    #[arg(long, value_name = "N")]
    pub keep_releases_per_minor: Option<usize>,

    /// Go on after a failed delete and report every failure at the end (exit 2)
    #[arg(long)]
    pub keep_going: bool,

    /// Save the plan as JSON to FILE (with --dry-run: review it, then --apply-plan it)
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,

    /// Keep what each digest's manifest and image config say in FILE between runs (cache it in
    /// CI), so a rerun reads only digests it has not seen; a bad or missing FILE is ignored
    #[arg(long, value_name = "FILE")]
    pub facts_cache: Option<PathBuf>,

    /// Apply a plan saved with --plan-out, after checking each tag still points where it did
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub apply_plan: Option<PathBuf>,

    /// Delete exactly this tag (repeatable) and keep every other, whatever the policy; a
    /// missing tag is reported, not an error
    #[arg(long = "delete-tag", value_name = "TAG")]
    pub delete_tags: Vec<String>,
}

impl CleanupArgs {}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub build_run: BuildRunArgs,
    #[command(flatten)]
    pub publish: TagArgs,
    #[command(flatten)]
    pub cleanup: CleanupArgs,
}
