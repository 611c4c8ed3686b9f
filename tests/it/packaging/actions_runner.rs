//! Just enough of the GitHub Actions runner to run a composite action the way it does.
//!
//! Follows the runner's documented protocol ("Metadata syntax for GitHub Actions", "Workflow
//! commands", "Variables"): the action directory is laid out under `_actions/OWNER/REPO/REF`;
//! inputs are the `with:` values over the `inputs:` defaults and reach the steps only through
//! `${{ }}` expressions (a composite action gets no `INPUT_*` variables); each step runs its
//! `run:` as `bash --noprofile --norc -eo pipefail FILE` with fresh files for `GITHUB_ENV`,
//! `GITHUB_OUTPUT`, `GITHUB_PATH` and `GITHUB_STEP_SUMMARY`, which are read back after the step
//! (`NAME=value` or `NAME<<DELIMITER` blocks); variables a step adds through `GITHUB_ENV` and
//! directories through `GITHUB_PATH` reach every later step of the job, and the step's own
//! `env:` wins over them; the first failing step stops the action.
//!
//! The expression evaluator knows exactly the contexts action.yml uses (`inputs.*`,
//! `github.token`, `github.action_path`, `runner.temp`, `steps.*.outputs.*`) and panics on
//! anything else, as it does on step keys it does not implement (`if:`, `uses:`,
//! `working-directory:`), so the emulation can never silently differ from the runner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The job's state: directories, the variables every step sees, and what steps exported.
pub struct Job {
    root: tempfile::TempDir,
    pub runner_temp: PathBuf,
    pub tool_cache: PathBuf,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub action_path: PathBuf,
    token: String,
    /// The job's environment: runner defaults and the workflow's `env:`.
    env: BTreeMap<String, String>,
    /// What steps appended to `GITHUB_ENV`, in force for every later step.
    exported: BTreeMap<String, String>,
    /// What steps appended to `GITHUB_PATH`, newest first.
    path_prepend: Vec<String>,
    step_counter: usize,
}

/// One step as it ran.
#[derive(Debug)]
pub struct Step {
    pub id: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The raw text the step appended to its `GITHUB_ENV` and `GITHUB_OUTPUT` files.
    pub github_env: String,
    pub github_output: String,
    pub summary: String,
}

/// One run of the action.
#[derive(Debug)]
pub struct ActionRun {
    pub steps: Vec<Step>,
    /// The action's `outputs:`, evaluated after its steps.
    pub outputs: BTreeMap<String, String>,
    pub success: bool,
}

impl ActionRun {
    pub fn step(&self, id: &str) -> &Step {
        self.steps
            .iter()
            .find(|step| step.id == id)
            .unwrap_or_else(|| panic!("step `{id}` did not run; steps that ran: {:#?}", self.steps))
    }

    /// Everything every step printed, as the job log would show it before masking.
    pub fn log(&self) -> String {
        let mut log = String::new();
        for step in &self.steps {
            log.push_str(&step.stdout);
            log.push_str(&step.stderr);
        }
        log
    }
}

impl Job {
    /// A job on repository `acme/app` whose workspace is empty and whose action is a copy of
    /// `action_source` (action.yml plus the `action/` directory), at `_actions/acme/dockhand/v1`.
    pub fn new(action_source: &Path, token: &str) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let base = root.path();
        let runner_temp = base.join("runner/_temp");
        let tool_cache = base.join("runner/_tool");
        let workspace = base.join("runner/work/app/app");
        let home = base.join("home");
        let action_path = base.join("runner/work/_actions/acme/dockhand/v1");
        for dir in [&runner_temp, &tool_cache, &workspace, &home, &action_path.join("action")] {
            std::fs::create_dir_all(dir).expect("runner dir");
        }
        std::fs::copy(action_source.join("action.yml"), action_path.join("action.yml"))
            .expect("copy action.yml");
        for entry in std::fs::read_dir(action_source.join("action")).expect("action/") {
            let entry = entry.expect("action/ entry");
            std::fs::copy(entry.path(), action_path.join("action").join(entry.file_name()))
                .expect("copy an action file");
        }
        let event = base.join("runner/_temp/_github_workflow/event.json");
        std::fs::create_dir_all(event.parent().expect("event dir")).expect("event dir");
        std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).expect("event");

        let mut env = BTreeMap::new();
        for (name, value) in [
            ("CI", "true"),
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/app"),
            ("GITHUB_REPOSITORY_OWNER", "acme"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_REF_NAME", "main"),
            ("GITHUB_REF_TYPE", "branch"),
            ("GITHUB_EVENT_NAME", "push"),
            ("GITHUB_RUN_ID", "4242"),
            ("GITHUB_JOB", "images"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
        ] {
            env.insert(name.to_owned(), value.to_owned());
        }
        let path = |p: &Path| p.display().to_string();
        env.insert("GITHUB_WORKSPACE".to_owned(), path(&workspace));
        env.insert("GITHUB_EVENT_PATH".to_owned(), path(&event));
        env.insert("RUNNER_TEMP".to_owned(), path(&runner_temp));
        env.insert("RUNNER_TOOL_CACHE".to_owned(), path(&tool_cache));
        env.insert("HOME".to_owned(), path(&home));
        env.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_default());

        Self {
            root,
            runner_temp,
            tool_cache,
            workspace,
            home,
            action_path,
            token: token.to_owned(),
            env,
            exported: BTreeMap::new(),
            path_prepend: Vec::new(),
            step_counter: 0,
        }
    }

    /// A variable of the workflow's `env:` (seen by every step).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.insert(name.to_owned(), value.to_owned());
    }

    /// Removes a variable the runner sets by default (e.g. `RUNNER_ARCH`, which older and
    /// self-hosted runners may not set).
    pub fn remove_env(&mut self, name: &str) {
        self.env.remove(name);
    }

    /// A variable that earlier steps exported through `GITHUB_ENV`.
    pub fn exported(&self, name: &str) -> Option<&str> {
        self.exported.get(name).map(String::as_str)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Runs the action with these `with:` values, as a step of this job.
    pub fn run_action(&mut self, with: &[(&str, &str)]) -> ActionRun {
        let text = std::fs::read_to_string(self.action_path.join("action.yml")).expect("action");
        let action: Value = serde_saphyr::from_str(&text).expect("action.yml parses");
        let runs = &action["runs"];
        assert_eq!(runs["using"], "composite", "this runner emulation runs composite actions");

        let declared = action["inputs"].as_object().expect("inputs: is a map");
        for (name, _) in with {
            assert!(declared.contains_key(*name), "`with:` names `{name}`, which is no input");
        }
        let mut inputs = BTreeMap::new();
        for (name, spec) in declared {
            let given =
                with.iter().find(|(key, _)| key == name).map(|(_, value)| (*value).to_owned());
            let value = given.unwrap_or_else(|| {
                let default = spec.get("default").map(scalar).unwrap_or_default();
                self.evaluate(&default, &BTreeMap::new(), &BTreeMap::new())
            });
            inputs.insert(name.clone(), value);
        }

        let mut steps = Vec::new();
        let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut success = true;
        for spec in runs["steps"].as_array().expect("steps: is a list") {
            let spec = spec.as_object().expect("a step is a map");
            for key in spec.keys() {
                assert!(
                    ["id", "name", "shell", "env", "run"].contains(&key.as_str()),
                    "the runner emulation does not implement the step key `{key}`"
                );
            }
            assert_eq!(spec.get("shell").map(scalar).as_deref(), Some("bash"), "shell: bash");
            let id = spec.get("id").map(scalar).expect("every step has an id");
            let mut step_env = BTreeMap::new();
            if let Some(env) = spec.get("env") {
                for (name, value) in env.as_object().expect("env: is a map") {
                    step_env.insert(
                        name.clone(),
                        self.evaluate(&scalar(value), &inputs, &step_outputs),
                    );
                }
            }
            let script = spec.get("run").map(scalar).expect("a composite step has run:");
            assert!(!script.contains("${{"), "step `{id}` expands an expression into run:");
            let step = self.run_step(&id, &script, &step_env);
            let outputs = parse_file_commands(&step.github_output);
            step_outputs.insert(id.clone(), outputs.into_iter().collect());
            let failed = step.code != 0;
            steps.push(step);
            if failed {
                success = false;
                break;
            }
        }

        let mut outputs = BTreeMap::new();
        if let Some(declared) = action["outputs"].as_object() {
            for (name, spec) in declared {
                let value = spec.get("value").map(scalar).unwrap_or_default();
                outputs.insert(name.clone(), self.evaluate(&value, &inputs, &step_outputs));
            }
        }
        ActionRun { steps, outputs, success }
    }

    fn run_step(&mut self, id: &str, script: &str, step_env: &BTreeMap<String, String>) -> Step {
        self.step_counter += 1;
        let files =
            self.runner_temp.join(format!("_runner_file_commands/step{}", self.step_counter));
        std::fs::create_dir_all(&files).expect("file commands dir");
        let file = |name: &str| {
            let path = files.join(name);
            std::fs::write(&path, "").expect("file command file");
            path
        };
        let (env_file, output_file, path_file, summary_file) =
            (file("env"), file("output"), file("path"), file("summary"));
        let script_file = files.join("script.sh");
        std::fs::write(&script_file, script).expect("step script");

        let mut env = self.env.clone();
        env.extend(self.exported.clone());
        if !self.path_prepend.is_empty() {
            let path = format!("{}:{}", self.path_prepend.join(":"), env["PATH"]);
            env.insert("PATH".to_owned(), path);
        }
        env.extend(step_env.clone());
        let show = |path: &Path| path.display().to_string();
        env.insert("GITHUB_ACTION_PATH".to_owned(), show(&self.action_path));
        env.insert("GITHUB_ENV".to_owned(), show(&env_file));
        env.insert("GITHUB_OUTPUT".to_owned(), show(&output_file));
        env.insert("GITHUB_PATH".to_owned(), show(&path_file));
        env.insert("GITHUB_STEP_SUMMARY".to_owned(), show(&summary_file));

        let output = Command::new("bash")
            .args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&script_file)
            .env_clear()
            .envs(&env)
            .current_dir(&self.workspace)
            .output()
            .expect("bash runs");
        let read = |path: &Path| std::fs::read_to_string(path).expect("file command file");
        let step = Step {
            id: id.to_owned(),
            code: output.status.code().expect("the step exits"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            github_env: read(&env_file),
            github_output: read(&output_file),
            summary: read(&summary_file),
        };
        self.exported.extend(parse_file_commands(&step.github_env));
        for line in read(&path_file).lines().filter(|line| !line.trim().is_empty()) {
            self.path_prepend.insert(0, line.to_owned());
        }
        step
    }

    /// Replaces each `${{ expression }}` in `text`.
    fn evaluate(
        &self,
        text: &str,
        inputs: &BTreeMap<String, String>,
        steps: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> String {
        let mut result = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${{") {
            result.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("unclosed ${{") + start;
            let expression = rest[start + 3..end].trim();
            result.push_str(&self.value_of(expression, inputs, steps));
            rest = &rest[end + 2..];
        }
        result.push_str(rest);
        result
    }

    fn value_of(
        &self,
        expression: &str,
        inputs: &BTreeMap<String, String>,
        steps: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> String {
        let parts: Vec<&str> = expression.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => {
                inputs.get(*name).cloned().unwrap_or_else(|| panic!("unknown input `{name}`"))
            }
            ["github", "token"] => self.token.clone(),
            ["github", "action_path"] => self.action_path.display().to_string(),
            ["runner", "temp"] => self.runner_temp.display().to_string(),
            ["steps", id, "outputs", name] => {
                steps.get(*id).and_then(|outputs| outputs.get(*name)).cloned().unwrap_or_default()
            }
            _ => panic!("the runner emulation cannot evaluate `{expression}`"),
        }
    }
}

/// A YAML scalar as the runner reads it: a string (numbers and booleans as written).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parses the text of a `GITHUB_ENV` or `GITHUB_OUTPUT` file: `NAME=value` lines and
/// `NAME<<DELIMITER` blocks. Panics on anything else, as the runner fails the step.
pub fn parse_file_commands(text: &str) -> Vec<(String, String)> {
    let mut entries = Vec::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let heredoc = line.find("<<");
        let equals = line.find('=');
        match (heredoc, equals) {
            (Some(marker), equals) if equals.is_none_or(|equals| marker < equals) => {
                let (name, delimiter) = (&line[..marker], &line[marker + 2..]);
                assert!(!delimiter.is_empty(), "empty delimiter for `{name}`");
                let mut value = Vec::new();
                loop {
                    let line = lines.next().unwrap_or_else(|| {
                        panic!("`{name}<<{delimiter}` has no closing `{delimiter}` line")
                    });
                    if line == delimiter {
                        break;
                    }
                    value.push(line);
                }
                entries.push((name.to_owned(), value.join("\n")));
            }
            (_, Some(equals)) => {
                entries.push((line[..equals].to_owned(), line[equals + 1..].to_owned()));
            }
            _ => panic!("not a file command line: `{line}`"),
        }
    }
    entries
}
