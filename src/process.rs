//! Child processes: run a program, feed it stdin, capture what it prints.
//!
//! Owns [`Command`], [`Output`] and [`CommandError`]. Callers build the argument vector (git,
//! credential helpers, builders); this module only runs it. Secrets reach a child through
//! [`Command::stdin`] or [`Command::env`], never through arguments, and neither stdin nor
//! environment values ever appear in [`Command`]'s `Display` or in errors. A failed run keeps
//! the child's stderr so the user sees why it failed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{self, Stdio};
use std::thread;

use crate::exit::{Classify, ExitStatus};

/// How many trailing lines of a failed child's output an error message quotes.
const QUOTED_LINES: usize = 20;

/// A child process to run: program, arguments, working directory, extra environment, stdin.
pub struct Command {
    inner: process::Command,
    /// Program and arguments, for messages. Never holds a secret: secrets go through stdin or env.
    argv: Vec<OsString>,
    stdin: Option<Vec<u8>>,
}

impl Command {
    /// A command running `program` (a name looked up on the child's `PATH`, or a path) with
    /// the parent's environment.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self { inner: process::Command::new(program), argv: vec![program.to_owned()], stdin: None }
    }

    /// Appends one argument. Never pass a secret here: arguments are visible to every user of
    /// the machine and are printed in errors.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.inner.arg(arg.as_ref());
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments, like [`Command::arg`] for each.
    #[must_use]
    pub fn args<I, S>(self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Self::arg)
    }

    /// Runs the child in `dir`.
    #[must_use]
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.inner.current_dir(dir);
        self
    }

    /// Sets one environment variable for the child. The value is never printed.
    #[must_use]
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.inner.env(name, value);
        self
    }

    /// Writes `bytes` to the child's stdin, then closes it. The bytes are never printed.
    /// Without this the child's stdin is empty (`/dev/null`).
    #[must_use]
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the child to completion and captures stdout and stderr.
    ///
    /// Fails when the program cannot be started, when writing its stdin fails for another
    /// reason than the child closing it early, or when it exits unsuccessfully (the error then
    /// carries both outputs).
    pub fn output(mut self) -> Result<Output, CommandError> {
        let display = self.to_string();
        self.inner
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .inner
            .spawn()
            .map_err(|source| CommandError::Spawn { command: display.clone(), source })?;
        // Feed stdin from a thread so a child that prints before reading cannot deadlock us.
        let writer = match (child.stdin.take(), self.stdin.take()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || pipe.write_all(&bytes))),
            _ => None,
        };
        let result = child.wait_with_output();
        let written = writer.map(|handle| handle.join().unwrap_or(Ok(())));
        let output =
            result.map_err(|source| CommandError::Wait { command: display.clone(), source })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            return Err(CommandError::Failed {
                command: display,
                status: output.status,
                stdout,
                stderr,
            });
        }
        if let Some(Err(source)) = written
            && source.kind() != io::ErrorKind::BrokenPipe
        {
            return Err(CommandError::Stdin { command: display, source });
        }
        Ok(Output { stdout, stderr })
    }
}

impl fmt::Display for Command {
    /// The program and its arguments, space-separated (stdin and environment are not shown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<_> = self.argv.iter().map(|arg| arg.to_string_lossy()).collect();
        f.write_str(&words.join(" "))
    }
}

/// What a successful child printed, decoded as UTF-8 (invalid bytes replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Why a child process did not succeed. `command` is the program and its arguments.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("Failed to start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("Failed to write the standard input of `{command}`")]
    Stdin {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("Failed to wait for `{command}`")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` {}{}", describe_status(*.status), quote_output(.stderr, .stdout))]
    Failed { command: String, status: process::ExitStatus, stdout: String, stderr: String },
}

impl CommandError {
    /// `true` if and only if the program was not found (not installed, or not on `PATH`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Spawn { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl Classify for CommandError {
    fn exit_status(&self) -> ExitStatus {
        if self.is_not_found() { ExitStatus::Usage } else { ExitStatus::Failure }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Spawn { command, .. } if self.is_not_found() => {
                let program = command.split(' ').next().unwrap_or(command);
                Some(format!("install `{program}` or put it on PATH"))
            }
            _ => None,
        }
    }
}

fn describe_status(status: process::ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => format!("was terminated ({status})"),
    }
}

/// `: <last lines of stderr>` (or of stdout when stderr is empty), or nothing.
fn quote_output(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() { stdout.trim() } else { stderr.trim() };
    if text.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(QUOTED_LINES)..];
    format!(": {}", tail.join("\n"))
}

/// The executable file `program` in one of the directories of `path_env` (a `PATH` value),
/// the way a shell would find it.
pub fn find_program(program: &str, path_env: Option<&str>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path_env?).map(|dir| dir.join(program)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::{Command, CommandError};
    use crate::exit::{Classify, ExitStatus};

    #[test]
    fn captures_stdout_and_feeds_stdin() {
        let output = Command::new("sh")
            .args(["-c", "read line; printf 'got %s' \"$line\"; printf warn >&2"])
            .stdin("hello\n")
            .output()
            .unwrap();
        assert_eq!(output.stdout, "got hello");
        assert_eq!(output.stderr, "warn");
    }

    #[test]
    fn env_and_current_dir_reach_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("sh")
            .args(["-c", "printf '%s %s' \"$DOCKHAND_TEST_VALUE\" \"$(pwd -P)\""])
            .env("DOCKHAND_TEST_VALUE", "v")
            .current_dir(dir.path())
            .output()
            .unwrap();
        let expected = format!("v {}", dir.path().canonicalize().unwrap().display());
        assert_eq!(output.stdout, expected);
    }

    #[test]
    fn failure_keeps_stderr_and_hides_stdin() {
        let error = Command::new("sh")
            .args(["-c", "cat >/dev/null; echo 'bad thing' >&2; exit 3"])
            .stdin("s3cret-stdin")
            .output()
            .unwrap_err();
        let CommandError::Failed { status, stderr, .. } = &error else { panic!("{error:?}") };
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "bad thing\n");
        let message = error.to_string();
        assert_eq!(
            message,
            "`sh -c cat >/dev/null; echo 'bad thing' >&2; exit 3` exited with status 3: bad thing"
        );
        assert!(!format!("{error:?}").contains("s3cret-stdin"));
        assert_eq!(error.exit_status(), ExitStatus::Failure);
    }

    #[test]
    fn a_child_that_ignores_stdin_still_succeeds() {
        let output =
            Command::new("true").stdin(vec![b'x'; 1 << 20]).output().expect("broken pipe ignored");
        assert_eq!(output.stdout, "");
    }

    #[test]
    fn missing_program_is_a_usage_error_with_a_hint() {
        let error = Command::new("dockhand-no-such-program").arg("x").output().unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        assert_eq!(error.hint().unwrap(), "install `dockhand-no-such-program` or put it on PATH");
        assert_eq!(error.to_string(), "Failed to start `dockhand-no-such-program x`");
    }
}
