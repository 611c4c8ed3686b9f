//! The only writer of stdout and stderr.
//!
//! Owns how results are rendered (`text` or one JSON document), how errors are reported (one
//! `error:` line, `Caused by:` lines, a `hint:`), the log format on stderr, and GitHub
//! Actions workflow commands. It renders what it is given; it never decides what happened.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "this module is the one place that prints"
)]

use std::cell::Cell;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ci::Provider;
use crate::ci::export::{self, Export, Shell};
use crate::cli::OutputFormat;
use crate::env_vars::{self, EnvMap};

/// Where command results go.
#[derive(Debug)]
pub struct Output {
    format: OutputFormat,
    /// Running in GitHub Actions: errors are also emitted as `::error::` annotations.
    github_actions: bool,
    /// Running in GitLab CI: long logs are wrapped in collapsible sections.
    gitlab_ci: bool,
    /// The file `$GITHUB_OUTPUT` names: step outputs are appended there.
    outputs_file: Option<PathBuf>,
    /// The file `$GITHUB_STEP_SUMMARY` names: Markdown appended there.
    summary_file: Option<PathBuf>,
}

impl Output {
    /// An output for `format` in a job of `provider`, with the CI file commands `env` names.
    pub fn new(format: OutputFormat, provider: Provider, env: &EnvMap) -> Self {
        let file = |name: &str| env.get(name).filter(|value| !value.is_empty()).map(PathBuf::from);
        let github_actions = provider == Provider::Github;
        Self {
            format,
            github_actions,
            gitlab_ci: provider == Provider::Gitlab,
            outputs_file: file(env_vars::GITHUB_OUTPUT).filter(|_| github_actions),
            summary_file: file(env_vars::GITHUB_STEP_SUMMARY).filter(|_| github_actions),
        }
    }

    /// Appends step outputs to `$GITHUB_OUTPUT` (multi-line values with a delimiter that does
    /// not occur in them). Does nothing outside GitHub Actions.
    pub fn github_outputs(&self, outputs: &[(&str, String)]) -> std::io::Result<()> {
        let Some(path) = &self.outputs_file else { return Ok(()) };
        let exports: Vec<Export> =
            outputs.iter().map(|(name, value)| Export::new(*name, value.clone())).collect();
        let rendered = export::render(Shell::Github, &exports).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, error.to_string())
        })?;
        append(path, &rendered.github_env)
    }

    /// Appends Markdown to the step summary. Does nothing outside GitHub Actions.
    pub fn step_summary(&self, markdown: &str) -> std::io::Result<()> {
        match &self.summary_file {
            Some(path) => append(path, markdown),
            None => Ok(()),
        }
    }

    /// A progress counter for `total` items.
    pub fn progress(&self, label: &str, total: usize) -> Progress {
        let draw = std::io::stderr().is_terminal()
            && !self.github_actions
            && !self.gitlab_ci
            && log::log_enabled!(log::Level::Info);
        Progress { label: label.to_owned(), total, done: Cell::new(0), draw }
    }

    /// One line a child process (a builder) printed, passed to stderr as it comes, made
    /// [`inert`]: a line the child prints (`::add-mask::`, a GitLab section marker, ANSI
    /// sequences) is shown, never obeyed. `-q` silences it (the error report still quotes the
    /// last lines of a failed child).
    pub fn child_line(&self, line: &str) {
        if log::log_enabled!(log::Level::Info) {
            eprintln!("{}", inert(line));
        }
    }

    /// [`Output::child_line`] for one of several children running at the same time (builds
    /// of several images): prefixed with `[source] `, so that the interleaved lines of each
    /// stay apart.
    pub fn child_line_of(&self, source: &str, line: &str) {
        if log::log_enabled!(log::Level::Info) {
            eprintln!("[{}] {}", inert(source), inert(line));
        }
    }

    /// Opens a collapsible log section in GitLab CI (a plain heading elsewhere) and returns
    /// a guard that closes it.
    pub fn section(&self, name: &str, title: &str) -> Section {
        let now = jiff::Timestamp::now().as_second();
        if self.gitlab_ci {
            eprintln!("\x1b[0Ksection_start:{now}:{name}[collapsed=true]\r\x1b[0K{title}");
        } else if self.github_actions {
            eprintln!("::group::{title}");
        } else if log::log_enabled!(log::Level::Info) {
            // a plain heading is a log line: `-q` silences it
            eprintln!("== {title}");
        }
        Section {
            name: name.to_owned(),
            gitlab_ci: self.gitlab_ci,
            github_actions: self.github_actions,
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// Prints a result: `value` as one JSON document with `--output json`, else `text()`.
    pub fn result<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        match self.format {
            OutputFormat::Json => {
                let json = serde_json::to_string_pretty(value).expect("results always serialise");
                println!("{json}");
            }
            OutputFormat::Text => {
                let text = text();
                if !text.is_empty() {
                    println!("{}", text.trim_end_matches('\n'));
                }
            }
        }
    }

    /// Prints text on stdout as is, whatever the format (shell lines, a schema).
    pub fn raw(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        // a closed pipe (`dockhand ci-env | head`) is not worth a panic
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// Reports a failure on stderr: the message, each cause, and a hint.
    pub fn error(&self, message: &str, causes: &[String], hint: Option<&str>) {
        eprintln!("error: {}", inert(message));
        for cause in causes {
            eprintln!("  Caused by: {}", inert(cause));
        }
        if let Some(hint) = hint {
            eprintln!("hint: {}", inert(hint));
        }
        if self.github_actions {
            // annotations take one line: escape as the runner expects
            let escaped = message.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
            eprintln!("::error::{escaped}");
        }
    }
}

/// A one-line counter on stderr (`deleting: 12/40`), redrawn in place. Drawn only when
/// stderr is a terminal outside CI and info logs are on: CI logs get the plain lines instead.
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    done: Cell<usize>,
    draw: bool,
}

impl Progress {
    /// One more item finished.
    pub fn tick(&self) {
        let done = self.done.get() + 1;
        self.done.set(done);
        if self.draw {
            eprint!("\r{}: {done}/{}", self.label, self.total);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.draw && self.done.get() > 0 {
            eprintln!();
        }
    }
}

/// An open log section; closed when dropped.
#[derive(Debug)]
pub struct Section {
    name: String,
    gitlab_ci: bool,
    github_actions: bool,
}

impl Drop for Section {
    fn drop(&mut self) {
        if self.gitlab_ci {
            let now = jiff::Timestamp::now().as_second();
            eprintln!("\x1b[0Ksection_end:{now}:{}\r\x1b[0K", self.name);
        } else if self.github_actions {
            eprintln!("::endgroup::");
        }
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

/// Initialises logging on stderr. `RUST_LOG` wins; otherwise `-v`/`-q` pick the level.
pub fn init_logging(rust_log: Option<&str>, verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => log::LevelFilter::Info,
        (_, 1) => log::LevelFilter::Warn,
        (_, q) if q > 1 => log::LevelFilter::Error,
        (1, _) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // dependencies stay quiet unless asked for by RUST_LOG
    for noisy in ["reqwest", "hyper", "hyper_util", "rustls", "h2"] {
        builder.filter_module(noisy, log::LevelFilter::Warn.min(level));
    }
    // it logs every refused certificate as an error; the failure reaches the user once, in
    // dockhand's own error report
    builder.filter_module("rustls_platform_verifier", log::LevelFilter::Off);
    if let Some(filter) = rust_log {
        builder.parse_filters(filter);
    }
    // on a terminal a log line first clears the line, where a progress counter may stand
    let clear = if std::io::stderr().is_terminal() { "\x1b[2K\r" } else { "" };
    builder.format(move |buf, record| {
        let prefix = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        writeln!(buf, "{clear}{prefix}{}", inert(&record.args().to_string()))
    });
    builder.target(env_logger::Target::Stderr);
    let _ = builder.try_init();
}

/// `text` made safe to print where CI runners read commands out of the log: every control
/// character but the line break and tab is escaped (`\u{1b}`: no ANSI sequence, no carriage
/// return, no GitLab section marker), and a line that would begin a GitHub workflow command
/// (`::name::…`, leading blanks allowed) has those two colons written as `%3A%3A`. Registry
/// answers, tag names, CI variables and helpers' output reach errors and logs through this.
pub fn inert(text: &str) -> String {
    fn push_escaped(out: &mut String, text: &str) {
        for character in text.chars() {
            if character.is_control() && character != '\t' {
                out.extend(character.escape_unicode());
            } else {
                out.push(character);
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for (number, line) in text.split('\n').enumerate() {
        if number > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        let (lead, rest) = line.split_at(line.len() - trimmed.len());
        push_escaped(&mut out, lead);
        match rest.strip_prefix("::") {
            Some(after) => {
                out.push_str("%3A%3A");
                push_escaped(&mut out, after);
            }
            None => push_escaped(&mut out, rest),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::inert;

    #[test]
    fn outside_text_cannot_command_the_runner() {
        for (hostile, printed) in [
            ("plain `tag`: fine", "plain `tag`: fine"),
            ("denied\n::set-output name=x::y", "denied\n%3A%3Aset-output name=x::y"),
            ("  ::add-mask::abc", "  %3A%3Aadd-mask::abc"),
            ("\u{1b}[2Jcleared", "\\u{1b}[2Jcleared"),
            ("a\rb", "a\\u{d}b"),
            (
                "\u{1b}[0Ksection_start:1:x\r\u{1b}[0K",
                "\\u{1b}[0Ksection_start:1:x\\u{d}\\u{1b}[0K",
            ),
            ("tab\there", "tab\there"),
            ("\r::set-env", "\\u{d}%3A%3Aset-env"),
        ] {
            assert_eq!(inert(hostile), printed, "{hostile:?}");
        }
    }

    proptest::proptest! {
        /// Whatever comes in, no printed line starts a workflow command or holds a control
        /// character other than a tab.
        #[test]
        fn no_line_of_anything_is_a_command(text in proptest::prelude::any::<String>()) {
            let printed = inert(&text);
            for line in printed.split('\n') {
                proptest::prop_assert!(!line.trim_start().starts_with("::"), "{line:?}");
                proptest::prop_assert!(!line.chars().any(|c| c.is_control() && c != '\t'), "{line:?}");
            }
        }
    }
}
