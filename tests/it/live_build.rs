//! Live build output, the build timeout and cancellation, end to end: the dockhand executable
//! runs real buildah (vfs storage and chroot isolation in the test's temp dir) on a
//! Containerfile whose `RUN` step prints, then sleeps (the lines it prints are computed, so that
//! the `STEP` line echoing the command does not already contain them). The test reads dockhand's stderr while
//! it runs and looks at `/proc` for the builder's process group during and after the run.
//! The same projects check that build secrets from the project file and from `--secret` reach
//! the `RUN` step, and that a SIGTERM stops every build of `--jobs 2` running at once.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::binary::dockhand;
use crate::support::peers::{commit_busybox_base, run, write_storage_conf};

const SHA: &str = "5d2c6b0f1e9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A project with one image `api` whose `RUN` step is `run`, in storage of its own that holds a
/// busybox base image (`localhost/dh/busybox:base`).
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(run: &str) -> Self {
        Self::with_file(run, "images:\n  - name: api\n    context: api\n")
    }

    /// [`Project::new`] with `dockhand.yaml` holding `file`.
    fn with_file(run: &str, file: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let context = dir.path().join("api");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(
            context.join("Containerfile"),
            format!("FROM localhost/dh/busybox:base\nRUN {run}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("dockhand.yaml"), file).unwrap();
        write_storage_conf(dir.path());
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let project = Self { dir };
        commit_busybox_base(|args| project.buildah(args));
        project
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The job's `TMPDIR`: dockhand's and buildah's temporary files go there.
    fn tmp(&self) -> PathBuf {
        self.path().join("tmp")
    }

    fn buildah(&self, args: &[&str]) -> String {
        let stdout = run(Command::new("buildah")
            .args(args)
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", self.path())
            .env("CONTAINERS_STORAGE_CONF", self.path().join("storage.conf"))
            .env("STORAGE_DRIVER", "vfs"));
        String::from_utf8(stdout).unwrap()
    }

    /// `dockhand ARGS` on a GitLab runner (so build output goes into collapsible sections),
    /// started with stderr piped and read line by line by a thread.
    fn start(&self, args: &[&str]) -> Running {
        self.start_with(args, &[])
    }

    /// [`Project::start`] with the variables `env` added to the job's environment.
    fn start_with(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = dockhand(self.path(), args)
            .envs(env.iter().copied())
            .env("CONTAINERS_STORAGE_CONF", &self.path().join("storage.conf").display().to_string())
            .env("BUILDAH_ISOLATION", "chroot")
            .env("STORAGE_DRIVER", "vfs")
            .env("TMPDIR", &self.tmp().display().to_string())
            // a per-build registries.conf: a temporary file dockhand must remove
            .env("DOCKHAND_INSECURE_REGISTRIES", "127.0.0.1:9")
            .env("GITLAB_CI", "true")
            .env("CI", "true")
            .env("CI_COMMIT_SHA", SHA)
            .env("CI_COMMIT_REF_NAME", "main")
            .env("CI_COMMIT_BRANCH", "main")
            .spawn();
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send((line, Instant::now())).is_err() {
                    break;
                }
            }
        });
        Running { child, lines, seen: Vec::new(), reader: Some(reader), started: Instant::now() }
    }
}

/// A dockhand process being watched.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(String, Instant)>,
    seen: Vec<(String, Instant)>,
    reader: Option<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Running {
    /// Waits (at most two minutes) for a stderr line containing `text`, and returns when it came.
    fn wait_for(&mut self, text: &str) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some((_, at)) = self.seen.iter().find(|(line, _)| line.contains(text)) {
                return *at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(error) => {
                    panic!("{error}: no line with {text:?} on stderr; so far:\n{}", self.stderr())
                }
            }
        }
    }

    fn stderr(&self) -> String {
        self.seen.iter().flat_map(|(line, _)| [line.as_str(), "\n"]).collect()
    }

    /// Waits for dockhand to exit; returns its exit code and everything it wrote on stderr.
    fn finish(mut self) -> (i32, String, Instant) {
        let status = self.child.wait().unwrap();
        let ended = Instant::now();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.seen.extend(self.lines.try_iter());
        let code = status.code().expect("dockhand exits by itself, not by a signal");
        (code, self.stderr(), ended)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // a failed assertion must not leave dockhand (and its builder) running
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The process group of the running `buildah … bud` whose arguments name `project`'s storage.
fn builder_group(project: &Project) -> i32 {
    builder_groups(project, 1)[0]
}

/// The process groups of the `count` running `buildah … bud` processes of `project`'s storage
/// (one per build running at the same time).
fn builder_groups(project: &Project, count: usize) -> Vec<i32> {
    let storage = project.path().join("storage.conf");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // the storage is named in the environment, not the arguments: check it there
        let mut found: Vec<i32> = processes()
            .into_iter()
            .filter(|process| {
                process.cmdline.starts_with("buildah")
                    && process.cmdline.contains(" bud ")
                    && std::fs::read(format!("/proc/{}/environ", process.pid)).is_ok_and(
                        |environ| contains(&environ, storage.to_string_lossy().as_bytes()),
                    )
            })
            .map(|process| process.group)
            .collect();
        found.sort_unstable();
        found.dedup();
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "not {count} buildah processes of this test found");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A live (not zombie) process.
struct Process {
    pid: u32,
    group: i32,
    cmdline: String,
}

/// Every live process on the machine, from `/proc`.
fn processes() -> Vec<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp …`: comm may hold spaces, so split after the last `)`
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            continue;
        }
        let Some(group) = fields.get(2).and_then(|group| group.parse().ok()) else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default();
        found.push(Process { pid, group, cmdline });
    }
    found
}

/// Asserts that no live process is left in `group`, allowing two seconds for init to reap.
fn assert_group_gone(group: i32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left: Vec<String> = processes()
            .into_iter()
            .filter(|process| process.group == group)
            .map(|process| format!("{} {}", process.pid, process.cmdline))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "builder processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The names of what is left in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn build_output_is_shown_while_the_build_runs_in_a_section_per_image() {
    let project = Project::new(
        "echo live-start-$((6*7)) && echo '::add-mask::secret' && sleep 5 && echo live-end-$((6*7))",
    );
    let mut running = project.start(&["build"]);
    let start = running.wait_for("live-start-42");
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the first line of the RUN step must be seen while the build runs"
    );
    let group = builder_group(&project);
    let own_group = std::fs::read_to_string(format!("/proc/{}/stat", running.child.id()))
        .unwrap()
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(str::to_owned))
        .unwrap();
    assert_ne!(group.to_string(), own_group, "the builder runs in a process group of its own");
    let end = running.wait_for("live-end-42");
    let (code, stderr, ended) = running.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(end - start >= Duration::from_secs(4), "the sleep separates the two lines: {stderr}");
    assert!(ended - start >= Duration::from_secs(4), "seen long before the end: {stderr}");
    // a GitLab section around the builder's output, opened before it and closed after it
    let open = stderr.find("section_start:").expect("section opened");
    let marker = stderr.find("live-start-42").unwrap();
    let close = stderr.find("section_end:").expect("section closed");
    assert!(open < marker && marker < close, "{stderr}");
    assert!(stderr[open..].starts_with("section_start:"));
    assert!(stderr.contains(":dockhand_build_api[collapsed=true]\r\x1b[0Kdockhand: build api"));
    assert!(stderr[close..].contains(":dockhand_build_api\r"), "{stderr}");
    // the builder's lines are shown, never obeyed as workflow commands
    assert!(stderr.contains("\n%3A%3Aadd-mask::secret\n"), "{stderr}");
    assert!(!stderr.lines().any(|line| line.starts_with("::add-mask")), "{stderr}");
    assert_group_gone(group);
    assert_eq!(entries(&project.tmp()), Vec::<String>::new(), "temporary files left behind");
}

#[test]
fn a_build_past_its_timeout_is_stopped_and_exits_2() {
    let project = Project::new("echo timeout-$((6*7)) && sleep 127");
    let mut running = project.start(&["build", "--build-timeout", "8s"]);
    running.wait_for("timeout-42");
    let group = builder_group(&project);
    assert!(
        processes().iter().any(|process| process.cmdline == "sleep 127 " && process.group == group),
        "the RUN step runs in the builder's process group"
    );
    let started = running.started;
    let (code, stderr, ended) = running.finish();
    assert_eq!(code, 2, "{stderr}");
    assert!(ended - started < Duration::from_secs(60), "stopped long before the sleep ends");
    assert!(
        stderr.contains(
            "error: Building image `api` with buildah took longer than the build timeout (8s)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("hint: raise `--build-timeout`"), "{stderr}");
    // the section was closed although the build failed
    assert!(stderr.contains("section_end:"), "{stderr}");
    assert_group_gone(group);
    assert!(
        !processes().iter().any(|process| process.cmdline.contains("sleep 127")),
        "the RUN step survived"
    );
    assert_eq!(entries(&project.tmp()), Vec::<String>::new(), "temporary files left behind");
}

#[test]
fn sigterm_stops_the_builder_removes_temporary_files_and_exits_2() {
    let project = Project::new("echo cancel-$((6*7)) && sleep 131");
    let mut running = project.start(&["build"]);
    running.wait_for("cancel-42");
    let group = builder_group(&project);
    assert!(
        processes().iter().any(|process| process.cmdline == "sleep 131 " && process.group == group),
        "the RUN step runs in the builder's process group"
    );
    let during = entries(&project.tmp());
    assert!(
        during.iter().any(|name| name.starts_with("dockhand-registries-")),
        "the per-build registries.conf exists during the build: {during:?}"
    );
    let pid = rustix::process::Pid::from_raw(i32::try_from(running.child.id()).unwrap()).unwrap();
    let sent = Instant::now();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let (code, stderr, ended) = running.finish();
    assert_eq!(code, 2, "{stderr}");
    assert!(ended - sent < Duration::from_secs(30), "stopped promptly: {:?}", ended - sent);
    assert!(
        stderr.contains("error: Building image `api` with buildah was cancelled by SIGTERM"),
        "{stderr}"
    );
    assert_group_gone(group);
    assert!(
        !processes().iter().any(|process| process.cmdline.contains("sleep 131")),
        "the RUN step survived"
    );
    assert_eq!(entries(&project.tmp()), Vec::<String>::new(), "temporary files left behind");
}

#[test]
fn build_secrets_from_the_project_file_and_flags_reach_the_run_step() {
    let project = Project::with_file(
        "--mount=type=secret,id=tok --mount=type=secret,id=key --mount=type=secret,id=flag \
         cat /run/secrets/tok /run/secrets/key /run/secrets/flag > /seen",
        "images:\n  - name: api\n    context: api\n    secrets:\n      \
         tok: {env: DH_TOKEN}\n      key: {src: key.txt}\n      flag: {env: DH_NOT_THIS}\n",
    );
    std::fs::write(project.path().join("key.txt"), "|from-file").unwrap();
    let env = [("DH_TOKEN", "from-env"), ("DH_FLAG", "|from-flag")];
    // the flag replaces the file's `flag` entry, whose variable is not even set
    let running = project.start_with(&["build", "--secret", "id=flag,env=DH_FLAG"], &env);
    let (code, stderr, _) = running.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("from-env"), "a secret's value is never printed: {stderr}");
    let container = project.buildah(&["from", &format!("localhost/dockhand/api:{}", &SHA[..12])]);
    let seen =
        project.buildah(&["run", "--isolation", "chroot", container.trim(), "--", "cat", "/seen"]);
    assert_eq!(seen, "from-env|from-file|from-flag");

    // a flag that is not `id=…,src=…` or `id=…,env=…` is refused before anything runs, naming
    // only its keys: the value could be the secret itself
    let running = project.start_with(&["build", "--secret", "id=flag,value=hunter2"], &[]);
    let (code, stderr, _) = running.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("not keys `id,value`"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn sigterm_stops_every_build_running_in_parallel() {
    let project = Project::with_file(
        "echo par-api-$((6*7)) && sleep 133",
        "images:\n  - name: api\n    context: api\n  - name: worker\n    context: worker\n",
    );
    let worker = project.path().join("worker");
    std::fs::create_dir(&worker).unwrap();
    std::fs::write(
        worker.join("Containerfile"),
        "FROM localhost/dh/busybox:base\nRUN echo par-worker-$((6*7)) && sleep 137\n",
    )
    .unwrap();
    let mut running = project.start(&["build", "--jobs", "2"]);
    running.wait_for("[api] par-api-42");
    running.wait_for("[worker] par-worker-42");
    let groups = builder_groups(&project, 2);
    assert_eq!(groups.len(), 2, "each build in a process group of its own: {groups:?}");
    let pid = rustix::process::Pid::from_raw(i32::try_from(running.child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let (code, stderr, _) = running.finish();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("was cancelled by SIGTERM"), "{stderr}");
    for group in groups {
        assert_group_gone(group);
    }
    assert!(
        !processes().iter().any(|process| process.cmdline.contains("sleep 133")
            || process.cmdline.contains("sleep 137")),
        "a RUN step survived"
    );
    assert_eq!(entries(&project.tmp()), Vec::<String>::new(), "temporary files left behind");
}
