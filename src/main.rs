//! The `dockhand` executable: reads the process environment once, parses the command line,
//! runs the command and maps its outcome to the SPEC's exit code.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use dockhand::ci;
use dockhand::cli::Cli;
use dockhand::commands::{self, Invocation};
use dockhand::env_vars::{self, EnvMap};
use dockhand::exit::ExitStatus;
use dockhand::output::{self, Output};

fn main() -> ExitCode {
    // reqwest is built without a default crypto provider: ring is the one dockhand ships
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env: EnvMap = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect();

    let parsed = ignore_empty_env(Cli::command(), &env)
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            // --help and --version are successes; any other parse failure is the user's input (1)
            return ExitCode::from(if error.use_stderr() { ExitStatus::Usage.code() } else { 0 });
        }
    };
    output::init_logging(
        env.get(env_vars::RUST_LOG).map(String::as_str),
        cli.global.verbose,
        cli.global.quiet,
    );
    let output = Output::new(cli.global.output, ci::detect_provider(&env), &env);
    let workdir = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(error) => {
            output.error("Cannot read the working directory", &[error.to_string()], None);
            return ExitCode::from(ExitStatus::Failure.code());
        }
    };
    let invocation = Invocation { env: &env, workdir: &workdir };
    match commands::run(cli, &invocation, &output) {
        Ok(status) => ExitCode::from(status.code()),
        Err(failure) => {
            failure.report(&output);
            ExitCode::from(failure.exit_status().code())
        }
    }
}

/// CI systems often define variables as empty strings; an empty `DOCKHAND_*` variable means
/// "not set" rather than an invalid value, so its flag stops reading it.
fn ignore_empty_env(command: clap::Command, env: &EnvMap) -> clap::Command {
    let empty = |arg: &clap::Arg| {
        arg.get_env()
            .and_then(|name| name.to_str())
            .is_some_and(|name| env.get(name).is_some_and(String::is_empty))
    };
    let names: Vec<String> =
        command.get_subcommands().map(|sub| sub.get_name().to_owned()).collect();
    let command = command.mut_args(|arg| if empty(&arg) { arg.env(None) } else { arg });
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, |sub| ignore_empty_env(sub, env))
    })
}
