//! The project file, `dockhand.yaml`.
//!
//! Owns the file's model, its parsing with file/line/column errors (unknown keys are errors)
//! and the JSON Schema `dockhand schema` prints. Does not decide precedence between the file,
//! flags and environment: that is `settings`.
//!
//! YAML is parsed with serde-saphyr: serde_yaml and serde_yml are unmaintained, and
//! serde-saphyr is pure Rust, maintained, and reports line and column with a snippet for both
//! syntax errors and type errors, which is what a user fixing a pipeline needs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::exit::{Classify, ExitStatus};

/// The default project file name, looked up in the working directory.
pub const DEFAULT_FILE: &str = "dockhand.yaml";

/// `dockhand.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dockhand.yaml", description = "dockhand project file")]
pub struct ProjectFile {
    /// Images repo, e.g. `ghcr.io/acme/app`; `--repo`/`DOCKHAND_REPO` override it.
    pub repo: Option<String>,
    /// Registry implementation (`auto` or a name); `--repo-implementation` overrides it.
    pub implementation: Option<String>,
    /// Naming mode: `auto`, `multirepo` or `monorepo`; `--repo-mode` overrides it.
    pub mode: Option<String>,
    /// Builder backend: `buildah` (default), `docker` or `buildx`.
    pub builder: Option<String>,
    /// How many images are built at the same time, each after its `from_image:`;
    /// `--jobs`/`DOCKHAND_JOBS` override it [default: 1].
    #[schemars(range(min = 1))]
    pub jobs: Option<u64>,
    /// The images this project builds. Without any, the project is one nameless image built
    /// from the file's directory (`Containerfile`, else `Dockerfile`).
    #[serde(default)]
    pub images: Vec<ImageSection>,
    /// Tag rules rendered from the CI context, e.g. `["{sha}", "{branch}", "{semver}"]`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Retention policy for `dockhand cleanup`; the policy flags add to it.
    #[serde(default)]
    pub cleanup: Option<PolicySection>,
    /// Settings for the repositories dockhand creates before the first push, on registries that
    /// need them created (ECR). Ignored elsewhere and for repositories that exist.
    #[serde(default)]
    pub repositories: RepositoriesSection,
}

/// The `repositories:` section of `dockhand.yaml`: how new repositories are created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepositoriesSection {
    /// Scan each image when it is pushed. Default: the registry's (off on ECR).
    pub scan_on_push: Option<bool>,
    /// `mutable` (a tag may be pushed again) or `immutable`. Default: the registry's
    /// (`mutable` on ECR). dockhand's cleanup works with both on ECR.
    pub tag_mutability: Option<TagMutability>,
}

/// Whether a tag may be pushed again to another image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TagMutability {
    Mutable,
    Immutable,
}

/// One image of the project.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageSection {
    /// Image name used by the naming modes (`REPO/NAME:TAG` or `REPO:NAME-TAG`). Without it
    /// (or with `name: ~`) the image is nameless: it lands in the images repo itself,
    /// `REPO:TAG`, in either mode, and must be the project's only image.
    #[serde(default)]
    pub name: Option<String>,
    /// Build context, relative to the project file [default: the file's directory].
    #[serde(default)]
    pub context: Option<PathBuf>,
    /// Containerfile inside the context [default: `Containerfile`, then `Dockerfile`].
    #[serde(default)]
    pub containerfile: Option<PathBuf>,
    /// Build arguments.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Target stage of a multi-stage build.
    #[serde(default)]
    pub target: Option<String>,
    /// Platforms, e.g. `linux/amd64`.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Extra image labels; they override the OCI labels taken from the CI context.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Another image of the project (its `name:`) this one is built from: it is built first,
    /// in the same run, and its local image is passed as the build argument `BASE_IMAGE`, which
    /// the Containerfile uses as `ARG BASE_IMAGE` then `FROM ${BASE_IMAGE}`.
    #[serde(default)]
    pub from_image: Option<String>,
    /// Build secrets for `RUN --mount=type=secret,id=ID` steps, by id: `{src: FILE}` (relative
    /// to the project file's directory) or `{env: VARIABLE}` (of the job's environment). Only
    /// the path or the variable's name reaches the builder's command line.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSection>,
}

/// Where a build secret of `secrets:` comes from: exactly one of the two keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretSection {
    /// A file, relative to the project file's directory.
    Src(PathBuf),
    /// An environment variable of the job.
    Env(String),
}

impl ImageSection {
    /// The image the project is when its file lists none, or when it has no file: nameless,
    /// built from the project directory with its `Containerfile`, else `Dockerfile`.
    pub fn implicit() -> Self {
        Self {
            name: None,
            context: None,
            containerfile: None,
            build_args: BTreeMap::new(),
            target: None,
            platforms: Vec::new(),
            labels: BTreeMap::new(),
            secrets: BTreeMap::new(),
            from_image: None,
        }
    }
}

/// A project file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("Cannot read the project file `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Invalid project file `{}`:\n{message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Classify for ProjectError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Read { .. } => Some(
                "check --config / DOCKHAND_CONFIG, or remove it to run without a project file"
                    .into(),
            ),
            Self::Invalid { .. } => Some(
                "`dockhand schema` prints the JSON Schema of every key the file may have".into(),
            ),
        }
    }
}

impl ProjectFile {
    /// Parses YAML text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProjectError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|error| ProjectError::Invalid {
            path: path.to_owned(),
            message: parser_message(&error.to_string(), path),
        })
    }

    /// Reads and parses the file at `path`: a regular file of at most 4 MiB (a FIFO or a
    /// device such as `/dev/zero` would be read forever).
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        const MAX_SIZE: u64 = 4 << 20;
        let read = |source| ProjectError::Read { path: path.to_owned(), source };
        let metadata = std::fs::metadata(path).map_err(read)?;
        if !metadata.is_file() || metadata.len() > MAX_SIZE {
            return Err(read(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a regular file of at most 4 MiB",
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text, path)
    }

    /// The JSON Schema of the file, pretty-printed.
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(ProjectFile);
        serde_json::to_string_pretty(&schema).expect("a schema always serialises")
    }
}

/// The parser's message as part of dockhand's own error: the snippet names its source
/// `<input>`, so the real file is named instead, and the parser's own `error: ` header is
/// dropped, so that one failure prints one line starting with `error:` (log parsers and
/// GitHub's `::error::` annotations count them). Position and caret snippet stay.
fn parser_message(raw: &str, path: &Path) -> String {
    let named = raw.replace("<input>", &path.display().to_string());
    named
        .lines()
        .map(|line| line.strip_prefix("error: ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `cleanup:` section of `dockhand.yaml`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Keep the newest N images (distinct digests) of each image name, with every tag on them.
    /// `0` turns the rule off. Without `keep_last` and `keep_within` the default is 10 and `2h`.
    pub keep_last: Option<usize>,
    /// Keep everything younger than this duration, e.g. `30m`, `2h`, `7d`, `1w`, `1d12h`. `0s`
    /// turns the rule off.
    #[schemars(pattern(r"^([0-9]+[wdhms])+$"))]
    pub keep_within: Option<String>,
    /// Keep tags matching any of these regular expressions (matched against the whole tag).
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Also delete manifests no tag points to, when nothing kept needs them. Default `false`.
    pub delete_untagged: Option<bool>,
    /// Let the other rules delete release tags (`v?MAJOR.MINOR.PATCH`), which are otherwise
    /// always kept. Default `false`.
    pub delete_releases: Option<bool>,
    /// Delete at most this many items per run; the rest waits for the next run (exit code 3).
    #[schemars(range(min = 1))]
    pub max_deletes: Option<usize>,
    /// Stop deleting after this duration; the rest waits for the next run (exit code 3).
    #[schemars(pattern(r"^([0-9]+[wdhms])+$"))]
    pub max_duration: Option<String>,
    /// Git-aware retention, as werf's keepPolicies: each policy keeps the images of the
    /// branches or tags it selects. Needs a git checkout; without this section (and without
    /// `keep_last`/`keep_within`) a checkout gets the documented default set.
    pub keep_policies: Option<Vec<KeepPolicySection>>,
    /// How long images of deleted branches, and of commits no branch or tag reaches, stay
    /// before git-aware retention deletes them, e.g. `1d` (the default).
    #[schemars(pattern(r"^([0-9]+[wdhms])+$"))]
    pub grace_period: Option<String>,
    /// Semantic-version retention of release tags (`v?MAJOR.MINOR.PATCH`): the highest release
    /// of each image and the newest releases of each major and major.minor version stay, every
    /// other release tag goes. Without this section every release tag stays (unless
    /// `delete_releases`).
    pub releases: Option<ReleasesSection>,
}

/// `cleanup.releases`: which release tags stay, by version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasesSection {
    /// Keep the N highest releases of each major version (`2.x`).
    #[schemars(range(min = 1))]
    pub keep_per_major: Option<usize>,
    /// Keep the N highest releases of each major.minor version (`2.3.x`).
    #[schemars(range(min = 1))]
    pub keep_per_minor: Option<usize>,
    /// What happens to pre-releases (`v2.0.0-rc.1`), which never count as releases:
    /// `until_released` (the default) keeps one until its version has a release tag and
    /// deletes it then; `keep` keeps every one; `rules` leaves them to the other rules.
    pub pre_releases: Option<PreReleases>,
}

/// How `cleanup.releases` treats pre-release tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreReleases {
    /// Kept until the image has a release tag of that version, then deleted.
    #[default]
    UntilReleased,
    /// Always kept.
    Keep,
    /// Decided by the other rules (`keep_within`, git-aware retention, `keep_last`).
    Rules,
}

/// One git-aware keep policy: which references, and how many of their images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepPolicySection {
    pub references: ReferencesSection,
    /// How many images of each selected reference to keep, newest commit first; without it
    /// every image of the reference is kept.
    pub images_per_reference: Option<LimitSection>,
}

/// Which references a keep policy selects: exactly one of `branch` and `tag`, a regular
/// expression matched against the whole name (`main`, `feature/x`, `v1.2.3`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferencesSection {
    pub branch: Option<String>,
    pub tag: Option<String>,
    /// How many of the matching references, the most recently committed to first; without it
    /// every matching reference.
    pub limit: Option<LimitSection>,
}

/// A count and an age: `last` N, committed to `in` the last duration, combined by `operator`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitSection {
    pub last: Option<usize>,
    /// A duration such as `168h` or `7d`.
    #[serde(rename = "in")]
    #[schemars(pattern(r"^([0-9]+[wdhms])+$"))]
    pub within: Option<String>,
    /// `And` (the default): both `last` and `in` must hold; `Or`: either.
    pub operator: Option<Operator>,
}

/// How `last` and `in` combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Operator {
    #[default]
    #[serde(alias = "and")]
    And,
    #[serde(alias = "or")]
    Or,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectFile, ProjectError> {
        ProjectFile::parse(text, Path::new("dockhand.yaml"))
    }

    #[test]
    fn full_file() {
        let file = parse(
            "repo: localhost:5000/acme/app\nimages:\n  - name: api\n    context: services/api\n    containerfile: Containerfile\n    build_args: {V: \"1\"}\ntags: [\"{sha}\", \"{branch}\"]\n",
        )
        .unwrap();
        assert_eq!(file.repo.as_deref(), Some("localhost:5000/acme/app"));
        assert_eq!(file.images[0].name.as_deref(), Some("api"));
        assert_eq!(file.images[0].context.as_deref(), Some(Path::new("services/api")));
        assert_eq!(file.images[0].build_args["V"], "1");
        assert_eq!(file.tags, ["{sha}", "{branch}"]);
    }

    #[test]
    fn secrets_name_a_file_or_a_variable_never_both() {
        let file = parse(
            "images:\n  - secrets:\n      npmrc: {src: .npmrc}\n      token:\n        env: NPM_TOKEN\n",
        )
        .unwrap();
        let secrets = &file.images[0].secrets;
        assert_eq!(secrets["npmrc"], SecretSection::Src(".npmrc".into()));
        assert_eq!(secrets["token"], SecretSection::Env("NPM_TOKEN".into()));
        for bad in [
            "images:\n  - secrets:\n      t: {src: a, env: B}\n",
            "images:\n  - secrets:\n      t: {value: hunter2}\n",
            "images:\n  - secrets:\n      t: {}\n",
            "images:\n  - secrets:\n      t: .npmrc\n",
        ] {
            let Err(ProjectError::Invalid { message, .. }) = parse(bad) else { panic!("{bad}") };
            assert!(message.contains("dockhand.yaml"), "{bad}: {message}");
        }
    }

    #[test]
    fn an_image_may_be_nameless() {
        for text in ["images:\n  - context: .\n", "images:\n  - name: ~\n", "images: [{}]\n"] {
            let file = parse(text).unwrap();
            assert_eq!(file.images.len(), 1, "{text}");
            assert_eq!(file.images[0].name, None, "{text}");
        }
        let schema: serde_json::Value = serde_json::from_str(&ProjectFile::json_schema()).unwrap();
        let image = &schema["$defs"]["ImageSection"];
        let required = image["required"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!required.iter().any(|key| key == "name"), "{image}");
    }

    #[test]
    fn empty_file_is_empty_project() {
        assert_eq!(parse("").unwrap(), ProjectFile::default());
        assert_eq!(parse("# only a comment\n").unwrap(), ProjectFile::default());
    }

    #[test]
    fn unknown_keys_are_errors_with_position() {
        let Err(ProjectError::Invalid { message, .. }) = parse("repo: a/b\nimagez: []\n") else {
            panic!("an unknown key must be rejected");
        };
        assert!(message.contains("imagez"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn syntax_errors_have_position() {
        let Err(ProjectError::Invalid { message, .. }) = parse("images:\n  - name: [api\n") else {
            panic!("invalid YAML must be rejected");
        };
        assert!(message.contains("line"), "{message}");
        assert!(!message.lines().any(|line| line.starts_with("error:")), "{message}");
        assert!(message.contains("dockhand.yaml:2:11"), "{message}");
    }

    #[test]
    fn schema_names_every_key() {
        let schema = ProjectFile::json_schema();
        for key in ["repo", "images", "tags", "containerfile", "build_args", "additionalProperties"]
        {
            assert!(schema.contains(key), "{key}");
        }
    }

    #[test]
    fn only_a_bounded_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("dockhand.yaml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        // a FIFO nobody writes to would block `read_to_string` forever
        let error = ProjectFile::load(&fifo).unwrap_err();
        assert!(matches!(error, ProjectError::Read { .. }), "{error}");
        let error = ProjectFile::load(dir.path()).unwrap_err();
        assert!(matches!(error, ProjectError::Read { .. }), "a directory: {error}");
        let file = dir.path().join("ok.yaml");
        std::fs::write(&file, "images: [{name: api}]\n").unwrap();
        assert_eq!(ProjectFile::load(&file).unwrap().images.len(), 1);
    }
}
