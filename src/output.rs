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

use std::io::Write;

use serde::Serialize;

use crate::cli::OutputFormat;

/// Where command results go.
#[derive(Debug)]
pub struct Output {
    format: OutputFormat,
    /// Running in GitHub Actions: errors are also emitted as `::error::` annotations.
    github_actions: bool,
}

impl Output {
    pub fn new(format: OutputFormat, github_actions: bool) -> Self {
        Self { format, github_actions }
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
        eprintln!("error: {message}");
        for cause in causes {
            eprintln!("  Caused by: {cause}");
        }
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        if self.github_actions {
            // annotations take one line: escape as the runner expects
            let escaped = message.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
            eprintln!("::error::{escaped}");
        }
    }
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
    if let Some(filter) = rust_log {
        builder.parse_filters(filter);
    }
    builder.format(|buf, record| {
        let prefix = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        writeln!(buf, "{prefix}{}", record.args())
    });
    builder.target(env_logger::Target::Stderr);
    let _ = builder.try_init();
}
