//! Runs the built `dockhand` executable with a cleared environment and an explicit map, the
//! way a CI runner would, and captures what it printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of the executable printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    /// stdout as the one JSON document `--output json` prints.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("{error}: {}", self.stdout))
    }

    /// Asserts that `secret` appears in neither stream.
    #[track_caller]
    pub fn assert_not_printed(&self, secret: &str) -> &Self {
        assert!(!self.stdout.contains(secret), "secret printed on stdout:\n{}", self.stdout);
        assert!(!self.stderr.contains(secret), "secret printed on stderr:\n{}", self.stderr);
        self
    }
}

/// A command line for the executable with only the variables the test gives it.
pub struct Dockhand {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
    stdin: Option<String>,
}

/// A run of `dockhand ARGS` in `cwd` with `PATH` (so git and helpers resolve) and `HOME`.
pub fn dockhand(cwd: &Path, args: &[&str]) -> Dockhand {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());
    env.insert("HOME".to_owned(), cwd.join("home").display().to_string());
    Dockhand {
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        env,
        cwd: cwd.to_owned(),
        stdin: None,
    }
}

impl Dockhand {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (name, value) in vars {
            self.env.insert(name.to_owned(), value.to_owned());
        }
        self
    }

    pub fn stdin(mut self, input: &str) -> Self {
        self.stdin = Some(input.to_owned());
        self
    }

    /// Runs it to completion.
    pub fn run(self) -> Run {
        let command = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        self.run_with(command)
    }

    /// Runs it to completion under GNU time (`time -v`, installed by `scripts/setup.sh`) and
    /// returns the peak resident set size in KiB: the largest of dockhand's and of any child
    /// it waited for (the kernel reports the maximum over the process tree).
    pub fn run_measured(self, scratch: &Path) -> (Run, u64) {
        let report = scratch.join("time-report.txt");
        let mut command = Command::new("time");
        command.arg("-v").arg("-o").arg(&report).arg(env!("CARGO_BIN_EXE_dockhand"));
        let run = self.run_with(command);
        let text = std::fs::read_to_string(&report).unwrap_or_else(|error| {
            panic!("GNU time wrote no report ({error}); run scripts/setup.sh")
        });
        let peak = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in GNU time's report:\n{text}"));
        (run, peak)
    }

    /// Starts it with stdout and stderr piped, for a test that reads them while it runs (the
    /// caller waits for it, or kills it).
    pub fn spawn(self) -> std::process::Child {
        let command = Command::new(env!("CARGO_BIN_EXE_dockhand"));
        self.start(command)
    }

    fn start(&self, mut command: Command) -> std::process::Child {
        let mut child = command
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd)
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the dockhand executable starts");
        if let Some(input) = &self.stdin {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(input.as_bytes())
                .expect("stdin written");
        }
        child
    }

    fn run_with(self, command: Command) -> Run {
        let child = self.start(command);
        let output = child.wait_with_output().expect("dockhand finishes");
        Run {
            code: output.status.code().expect("dockhand exits, not killed by a signal"),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}
