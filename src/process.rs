//! Child processes: run a program, feed it stdin, capture what it prints, or stream it.
//!
//! Owns [`Command`], [`Output`] and [`CommandError`]. Callers build the argument vector (git,
//! credential helpers, builders); this module only runs it. Secrets reach a child through
//! [`Command::stdin`] or [`Command::env`], never through arguments, and neither stdin nor
//! environment values ever appear in [`Command`]'s `Display` or in errors. A failed run keeps
//! the child's stderr so the user sees why it failed.
//!
//! Long-running children (builders) go through [`Command::stream`]: each line is handed to the
//! caller as it comes, only a bounded tail is kept for the error, and the child runs in a
//! process group of its own, so that a timeout or dockhand's own termination
//! ([`forward_termination`]: SIGTERM or SIGINT, how CI cancels a job) stops the child and
//! everything it started: SIGTERM to the group, then SIGKILL after [`STOP_GRACE`].

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::process::{self, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use crate::exit::{Classify, ExitStatus};

/// How many trailing lines of a failed child's output an error message quotes.
const QUOTED_LINES: usize = 20;
/// How much of a streamed child's output (its last lines) is kept for the error report.
pub const TAIL_BYTES: usize = 64 * 1024;
/// How long a stopped child's process group has between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Process groups of the streamed children running now: what a termination signal stops.
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());
/// The signal that asked dockhand to stop (0: none yet).
static TERMINATING: AtomicI32 = AtomicI32::new(0);

/// A child process to run: program, arguments, working directory, extra environment, stdin.
pub struct Command {
    inner: process::Command,
    /// Program and arguments, for messages. Never holds a secret: secrets go through stdin or env.
    argv: Vec<OsString>,
    /// `NAME=value` words shown before the program in messages ([`Command::show_env`]).
    shown_env: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl Command {
    /// A command running `program` (a name looked up on the child's `PATH`, or a path) with
    /// the parent's environment.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        let program = program.as_ref();
        Self {
            inner: process::Command::new(program),
            argv: vec![program.to_owned()],
            shown_env: Vec::new(),
            stdin: None,
        }
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

    /// Sets one environment variable for the child and shows it before the program in messages
    /// (`NAME=value program args…`), for variables that matter to reproduce a run. Never pass a
    /// secret here.
    #[must_use]
    pub fn show_env(mut self, name: &str, value: &str) -> Self {
        self.inner.env(name, value);
        self.shown_env.push(format!("{name}={value}"));
        self
    }

    /// Writes `bytes` to the child's stdin, then closes it. The bytes are never printed.
    /// Without this the child's stdin is empty (`/dev/null`).
    #[must_use]
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Starts the child with stdout and stderr piped, and its stdin (if any) fed from a thread,
    /// so a child that prints before reading cannot deadlock dockhand. Returns how the command
    /// is shown in messages, the child, and the stdin writer.
    #[expect(clippy::type_complexity, reason = "a private triple, named at each use")]
    fn spawn_piped(
        mut self,
    ) -> Result<(String, process::Child, Option<thread::JoinHandle<io::Result<()>>>), CommandError>
    {
        let display = self.to_string();
        self.inner
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .inner
            .spawn()
            .map_err(|source| CommandError::Spawn { command: display.clone(), source })?;
        let writer = match (child.stdin.take(), self.stdin.take()) {
            (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || pipe.write_all(&bytes))),
            _ => None,
        };
        Ok((display, child, writer))
    }

    /// [`Command::output`] for a short-lived helper that dockhand does not trust to behave (a
    /// credential helper): stopped (killed) when it runs longer than `limit` or prints more
    /// than `max_output` bytes on either stream, with [`CommandError::TimedOut`] or
    /// [`CommandError::TooMuchOutput`]; its output is never quoted then.
    pub fn output_bounded(
        self,
        limit: Duration,
        max_output: usize,
    ) -> Result<Output, CommandError> {
        use std::io::Read as _;
        use std::sync::atomic::AtomicBool;
        let (display, mut child, _writer) = self.spawn_piped()?;
        let overflow = std::sync::Arc::new(AtomicBool::new(false));
        let read = |pipe: Option<Box<dyn io::Read + Send>>| {
            let overflow = std::sync::Arc::clone(&overflow);
            thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(pipe) = pipe {
                    let cap = u64::try_from(max_output).unwrap_or(u64::MAX).saturating_add(1);
                    let _ = pipe.take(cap).read_to_end(&mut bytes);
                }
                if bytes.len() > max_output {
                    overflow.store(true, Ordering::SeqCst);
                }
                bytes
            })
        };
        let stdout =
            read(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn io::Read + Send>));
        let stderr =
            read(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn io::Read + Send>));
        let started = std::time::Instant::now();
        let status = loop {
            if overflow.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TooMuchOutput { command: display, limit: max_output });
            }
            if started.elapsed() >= limit {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    command: display,
                    after: limit,
                    tail: String::new(),
                });
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(source) => return Err(CommandError::Wait { command: display, source }),
            }
        };
        let text = |handle: thread::JoinHandle<Vec<u8>>| {
            String::from_utf8_lossy(&handle.join().unwrap_or_default()).into_owned()
        };
        let (stdout, stderr) = (text(stdout), text(stderr));
        if overflow.load(Ordering::SeqCst) {
            return Err(CommandError::TooMuchOutput { command: display, limit: max_output });
        }
        if !status.success() {
            return Err(CommandError::Failed { command: display, status, stdout, stderr });
        }
        Ok(Output { stdout, stderr })
    }

    /// Runs the child to completion and captures stdout and stderr.
    ///
    /// Fails when the program cannot be started, when writing its stdin fails for another
    /// reason than the child closing it early, or when it exits unsuccessfully (the error then
    /// carries both outputs).
    pub fn output(self) -> Result<Output, CommandError> {
        let (display, child, writer) = self.spawn_piped()?;
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

impl Command {
    /// Runs the child to completion in a process group of its own, handing every line it
    /// prints on stdout or stderr to `on_line` as soon as it is read (the two streams
    /// interleaved as they come). Only the last [`TAIL_BYTES`] are kept, for the error.
    ///
    /// When `timeout` passes, or when dockhand is asked to terminate (see
    /// [`forward_termination`]), the whole group is stopped (SIGTERM, SIGKILL after
    /// [`STOP_GRACE`]) and the run fails with [`CommandError::TimedOut`] or
    /// [`CommandError::Interrupted`]. A failed exit gives [`CommandError::Failed`] whose
    /// `stderr` is that tail (both streams) and whose `stdout` is empty.
    pub async fn stream(
        mut self,
        timeout: Option<Duration>,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<(), CommandError> {
        let display = self.to_string();
        let stdin = self.stdin.take();
        self.inner
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut self.inner, 0);
        let mut command = tokio::process::Command::from(self.inner);
        command.kill_on_drop(true);
        // spawned and registered under the lock, so a signal cannot fall in between
        let (mut child, running) = {
            let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
            let child = command
                .spawn()
                .map_err(|source| CommandError::Spawn { command: display.clone(), source })?;
            let group = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(Pid::from_raw)
                .expect("a child that was just spawned has a process id");
            running.push(group);
            (child, Running(group))
        };
        let group = running.0;
        let writer = match (child.stdin.take(), stdin) {
            (Some(mut pipe), Some(bytes)) => {
                Some(tokio::spawn(async move { pipe.write_all(&bytes).await }))
            }
            _ => None,
        };
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).split(b'\n');
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr is piped")).split(b'\n');
        let (mut stdout_open, mut stderr_open) = (true, true);
        let mut tail = Tail::default();
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        let mut timed_out = false;
        let mut kill_at: Option<Instant> = None;
        while stdout_open || stderr_open {
            tokio::select! {
                segment = stdout.next_segment(), if stdout_open => match segment {
                    Ok(Some(bytes)) => tail.push(&bytes, on_line),
                    _ => stdout_open = false,
                },
                segment = stderr.next_segment(), if stderr_open => match segment {
                    Ok(Some(bytes)) => tail.push(&bytes, on_line),
                    _ => stderr_open = false,
                },
                () = at(deadline), if !timed_out => {
                    log::debug!("`{display}` ran past its timeout: stopping its process group");
                    timed_out = true;
                    signal_group(group, Signal::TERM);
                    kill_at = Some(Instant::now() + STOP_GRACE);
                },
                () = at(kill_at) => {
                    signal_group(group, Signal::KILL);
                    kill_at = None;
                },
            }
        }
        let interrupted = terminating();
        if timed_out || interrupted.is_some() {
            // whatever is left of the group goes too: the leader, even exited, still holds it
            signal_group(group, Signal::KILL);
        }
        let status = child
            .wait()
            .await
            .map_err(|source| CommandError::Wait { command: display.clone(), source })?;
        drop(running);
        let written = match writer {
            Some(handle) => handle.await.unwrap_or(Ok(())),
            None => Ok(()),
        };
        if let Some(signal) = interrupted {
            return Err(CommandError::Interrupted { command: display, signal });
        }
        if let (true, Some(after)) = (timed_out, timeout) {
            return Err(CommandError::TimedOut { command: display, after, tail: tail.text() });
        }
        if !status.success() {
            return Err(CommandError::Failed {
                command: display,
                status,
                stdout: String::new(),
                stderr: tail.text(),
            });
        }
        match written {
            Err(source) if source.kind() != io::ErrorKind::BrokenPipe => {
                Err(CommandError::Stdin { command: display, source })
            }
            _ => Ok(()),
        }
    }
}

/// A streamed child's process group, listed in [`RUNNING`] while this lives.
struct Running(Pid);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|group| *group != self.0);
    }
}

/// Completes at `instant`, never when there is none.
async fn at(instant: Option<Instant>) {
    match instant {
        Some(instant) => tokio::time::sleep_until(instant).await,
        None => std::future::pending().await,
    }
}

/// Sends `signal` to every process of `group`; a group already gone is not an error.
fn signal_group(group: Pid, signal: Signal) {
    if let Err(error) = rustix::process::kill_process_group(group, signal) {
        log::debug!("signal {signal:?} to process group {group:?}: {error}");
    }
}

/// The last lines of a child's output, at most [`TAIL_BYTES`] of them.
#[derive(Debug, Default)]
struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl Tail {
    /// Hands one line (without its newline, or a carriage return before it) to `on_line` and
    /// keeps it, dropping the oldest lines beyond the bound.
    fn push(&mut self, bytes: &[u8], on_line: &mut dyn FnMut(&str)) {
        let line = String::from_utf8_lossy(bytes.strip_suffix(b"\r").unwrap_or(bytes)).into_owned();
        on_line(&line);
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > TAIL_BYTES {
            let Some(oldest) = self.lines.pop_front() else { break };
            self.bytes -= oldest.len() + 1;
        }
    }

    fn text(&self) -> String {
        let mut text = String::with_capacity(self.bytes);
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// The signal dockhand was asked to terminate with, once one arrived.
fn terminating() -> Option<TerminationSignal> {
    match TERMINATING.load(Ordering::SeqCst) {
        0 => None,
        number if number == Signal::INT.as_raw() => Some(TerminationSignal::Interrupt),
        _ => Some(TerminationSignal::Terminate),
    }
}

/// A signal with which CI (or a user at a terminal) stops dockhand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationSignal {
    /// SIGTERM: CI systems cancelling a job.
    Terminate,
    /// SIGINT: Ctrl-C.
    Interrupt,
}

impl TerminationSignal {
    fn signal(self) -> Signal {
        match self {
            Self::Terminate => Signal::TERM,
            Self::Interrupt => Signal::INT,
        }
    }
}

impl fmt::Display for TerminationSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        })
    }
}

/// Makes SIGTERM and SIGINT stop the streamed children before dockhand stops: from now on,
/// such a signal stops every running [`Command::stream`] child's process group (which then
/// fails with [`CommandError::Interrupted`], so its caller's temporary files are removed on
/// the way out); when none runs, dockhand exits at once with status 128 + the signal number,
/// as a shell reports a process the signal ended. Called before the first build; later calls
/// add nothing. Watches from a thread of its own.
pub fn forward_termination() -> io::Result<()> {
    static WATCHING: Mutex<bool> = Mutex::new(false);
    let mut watching = WATCHING.lock().unwrap_or_else(PoisonError::into_inner);
    if !*watching {
        watch_termination()?;
        *watching = true;
    }
    Ok(())
}

fn watch_termination() -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut terminate, mut interrupt) = {
        let _context = runtime.enter();
        (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
    };
    thread::Builder::new().name("termination".into()).spawn(move || {
        runtime.block_on(async {
            loop {
                let received = tokio::select! {
                    _ = terminate.recv() => TerminationSignal::Terminate,
                    _ = interrupt.recv() => TerminationSignal::Interrupt,
                };
                stop_running(received);
            }
        });
    })?;
    Ok(())
}

/// What [`forward_termination`] does on `received`.
fn stop_running(received: TerminationSignal) {
    let number = received.signal().as_raw();
    TERMINATING.store(number, Ordering::SeqCst);
    let groups = RUNNING.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if groups.is_empty() {
        std::process::exit(128 + number);
    }
    log::warn!("{received} received: stopping the running builder");
    for group in &groups {
        signal_group(*group, Signal::TERM);
    }
    thread::sleep(STOP_GRACE);
    for group in RUNNING.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        signal_group(*group, Signal::KILL);
    }
}

impl fmt::Display for Command {
    /// The variables given to [`Command::show_env`], the program and its arguments,
    /// space-separated (stdin and the rest of the environment are not shown).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.shown_env.iter().map(|word| std::borrow::Cow::Borrowed(word.as_str()));
        let words: Vec<_> =
            shown.chain(self.argv.iter().map(|arg| arg.to_string_lossy())).collect();
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
    #[error("`{command}` was stopped after running for {}s, its time limit", .after.as_secs())]
    TimedOut {
        command: String,
        after: Duration,
        /// The last lines it printed (both streams), at most [`TAIL_BYTES`].
        tail: String,
    },
    #[error("`{command}` was stopped because dockhand received {signal}")]
    Interrupted { command: String, signal: TerminationSignal },
    #[error("`{command}` was stopped: it printed more than {limit} bytes")]
    TooMuchOutput { command: String, limit: usize },
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
    use std::time::{Duration, Instant};

    use super::{Command, CommandError, TAIL_BYTES};
    use crate::exit::{Classify, ExitStatus};

    #[test]
    fn shown_variables_reach_the_child_and_lead_the_command_in_messages() {
        let error = Command::new("sh")
            .args(["-c", "echo \"epoch $SOURCE_DATE_EPOCH\"; exit 3"])
            .env("HIDDEN", "not-shown")
            .show_env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap_err();
        let CommandError::Failed { command, stdout, .. } = &error else { panic!("{error:?}") };
        assert_eq!(
            command,
            "SOURCE_DATE_EPOCH=1700000000 sh -c echo \"epoch $SOURCE_DATE_EPOCH\"; exit 3"
        );
        assert_eq!(stdout.trim(), "epoch 1700000000");
        assert!(!error.to_string().contains("not-shown"), "{error}");
    }

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

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn stream_hands_over_each_line_before_the_child_ends() {
        let mut lines = Vec::new();
        let mut on_line = |line: &str| lines.push((line.to_owned(), Instant::now()));
        let started = Instant::now();
        runtime()
            .block_on(
                Command::new("sh")
                    .args([
                        "-c",
                        "echo one; sleep 1; printf 'two\\r\\n' >&2; sleep 0.3; printf three",
                    ])
                    .stream(None, &mut on_line),
            )
            .unwrap();
        let ended = Instant::now();
        let texts: Vec<&str> = lines.iter().map(|(line, _)| line.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert!(ended - lines[0].1 >= Duration::from_millis(800), "`one` came at the end");
        assert!(lines[0].1 - started < Duration::from_millis(800));
    }

    #[test]
    fn stream_keeps_a_bounded_tail_for_the_error() {
        let mut count = 0;
        let mut on_line = |_: &str| count += 1;
        let error = runtime()
            .block_on(
                Command::new("sh")
                    .args(["-c", "seq 1 20000; echo last words >&2; exit 4"])
                    .stream(None, &mut on_line),
            )
            .unwrap_err();
        assert_eq!(count, 20_001);
        let CommandError::Failed { status, stdout, stderr, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(status.code(), Some(4));
        assert!(stdout.is_empty());
        assert!(stderr.len() <= TAIL_BYTES && stderr.len() > TAIL_BYTES - 16, "{}", stderr.len());
        assert!(stderr.ends_with("20000\nlast words\n"), "{stderr}");
        assert!(!stderr.starts_with("1\n"));
        assert!(error.to_string().ends_with("20000\nlast words"), "{error}");
    }

    #[test]
    fn stream_timeout_stops_the_whole_process_group() {
        let mut pids = Vec::new();
        let mut on_line = |line: &str| pids.push(line.to_owned());
        let started = Instant::now();
        let error = runtime()
            .block_on(
                Command::new("sh")
                    .args(["-c", "sleep 60 & echo $!; sleep 61"])
                    .stream(Some(Duration::from_millis(500)), &mut on_line),
            )
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped at once: {:?}",
            started.elapsed()
        );
        let CommandError::TimedOut { after, tail, .. } = &error else { panic!("{error:?}") };
        assert_eq!(*after, Duration::from_millis(500));
        assert_eq!(tail.trim(), pids[0]);
        assert_eq!(error.exit_status(), ExitStatus::Failure);
        // the background child was in the group too: it is gone (reaped by init) soon after
        let proc = std::path::PathBuf::from(format!("/proc/{}", pids[0]));
        let deadline = Instant::now() + Duration::from_secs(3);
        while alive(&proc) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(&proc), "{} survived the timeout", pids[0]);
    }

    /// A process that exists and is not a zombie.
    fn alive(proc: &std::path::Path) -> bool {
        std::fs::read_to_string(proc.join("stat")).is_ok_and(|stat| {
            stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
    }

    #[test]
    fn missing_program_is_a_usage_error_with_a_hint() {
        let error = Command::new("dockhand-no-such-program").arg("x").output().unwrap_err();
        assert!(error.is_not_found());
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        assert_eq!(error.hint().unwrap(), "install `dockhand-no-such-program` or put it on PATH");
        assert_eq!(error.to_string(), "Failed to start `dockhand-no-such-program x`");
    }

    #[test]
    fn a_bounded_run_stops_a_hanging_or_flooding_helper() {
        let limit = Duration::from_millis(300);
        let hang = Command::new("sh").args(["-c", "sleep 30"]).output_bounded(limit, 1024);
        assert!(matches!(hang, Err(CommandError::TimedOut { .. })), "{hang:?}");
        let flood = Command::new("sh")
            .args(["-c", "yes \"$WORD\""])
            .env("WORD", "secret-ish")
            .output_bounded(Duration::from_secs(30), 1024);
        let Err(error) = flood else { panic!("{flood:?}") };
        assert!(matches!(error, CommandError::TooMuchOutput { limit: 1024, .. }), "{error:?}");
        assert!(!error.to_string().contains("secret-ish"), "{error}");
        let fine = Command::new("sh")
            .args(["-c", "read line; printf '%s' \"$line\""])
            .stdin("hello\n")
            .output_bounded(Duration::from_secs(30), 1024)
            .unwrap();
        assert_eq!(fine.stdout, "hello");
    }
}
