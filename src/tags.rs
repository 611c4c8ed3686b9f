//! Tag rules: templates such as `{sha}`, `v{major}.{minor}` or `latest`, and the tags they give
//! for one CI context.
//!
//! Owns the rule syntax (parsed once into [`TagRules`] when settings are resolved, so a typo
//! fails before anything is built), the value of every placeholder for a [`CiContext`], and the
//! decision whether `latest` may move to this build ([`decide_latest`]). Pure: the clock is the
//! `now` parameter and the registry's existing tags are handed in by the caller. Must not know
//! naming modes (the tags it gives are the image's own, before `naming` adds a monorepo
//! prefix), builders or registries.

use std::collections::BTreeSet;
use std::fmt;

use jiff::Timestamp;

use crate::ci::{CiContext, RefType};
use crate::exit::{Classify, ExitStatus};
use crate::naming::sanitize_tag;
use crate::reference::Tag;

/// The rule text that asks for `latest`.
pub const LATEST: &str = "latest";

/// A value a rule can take from the CI context, written `{name}` in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{sha}`: the full commit hash (40 hex digits, or 64 in SHA-256 repositories), lowercase.
    Sha,
    /// `{short_sha}`: the first 8 hex digits of the commit hash.
    ShortSha,
    /// `{branch}`: the branch name as a slug (lowercase, other characters `-`); absent on tag builds.
    Branch,
    /// `{tag}`: the git tag as it is (sanitised like every rendered tag); absent on branch builds.
    Tag,
    /// `{semver}`: the git tag without a leading `v`, when it is a valid semantic version
    /// (`v2.0.0-rc.1` → `2.0.0-rc.1`). Build metadata keeps its content with `+` written `_`,
    /// because tags cannot hold `+` (`1.2.3+build.5` → `1.2.3_build.5`, as Helm does).
    Semver,
    /// `{major}`: the major version of a semver git tag; absent for pre-releases, so that a
    /// release candidate never moves a `v2` tag.
    Major,
    /// `{minor}`: the minor version of a semver git tag; absent for pre-releases.
    Minor,
    /// `{patch}`: the patch version of a semver git tag; absent for pre-releases.
    Patch,
    /// `{pr}`: the pull or merge request number.
    Pr,
    /// `{job}`: the CI job id.
    Job,
    /// `{date}`: the UTC date of `now` as `YYYYMMDD`.
    Date,
    /// `{ref}`: the branch or the git tag, as a slug.
    Ref,
}

impl Placeholder {
    /// Every placeholder, in the order the documentation lists them.
    pub const ALL: [Self; 12] = [
        Self::Sha,
        Self::ShortSha,
        Self::Branch,
        Self::Tag,
        Self::Semver,
        Self::Major,
        Self::Minor,
        Self::Patch,
        Self::Pr,
        Self::Job,
        Self::Date,
        Self::Ref,
    ];

    /// The name written between braces.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha => "sha",
            Self::ShortSha => "short_sha",
            Self::Branch => "branch",
            Self::Tag => "tag",
            Self::Semver => "semver",
            Self::Major => "major",
            Self::Minor => "minor",
            Self::Patch => "patch",
            Self::Pr => "pr",
            Self::Job => "job",
            Self::Date => "date",
            Self::Ref => "ref",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|placeholder| placeholder.name() == name)
    }

    /// This placeholder's value in `ctx` at `now`, before tag sanitisation, or why it has none.
    pub fn value(self, ctx: &CiContext, now: Timestamp) -> Result<String, Absent> {
        match self {
            Self::Sha => full_sha(ctx),
            Self::ShortSha => full_sha(ctx).map(|sha| sha[..8].to_owned()),
            Self::Branch => branch(ctx).map(slug).ok_or(Absent::NotABranchBuild),
            Self::Tag => git_tag(ctx).map(str::to_owned).ok_or(Absent::NotATagBuild),
            Self::Semver => release(ctx).map(|release| semver_text(&release.version)),
            Self::Major => stable_release(ctx).map(|version| version.major.to_string()),
            Self::Minor => stable_release(ctx).map(|version| version.minor.to_string()),
            Self::Patch => stable_release(ctx).map(|version| version.patch.to_string()),
            Self::Pr => {
                ctx.pr_number.clone().filter(|pr| !pr.is_empty()).ok_or(Absent::NotAPullRequest)
            }
            Self::Job => ctx.job_id.clone().filter(|job| !job.is_empty()).ok_or(Absent::NoJobId),
            Self::Date => Ok(now.strftime("%Y%m%d").to_string()),
            Self::Ref => git_tag(ctx).or_else(|| branch(ctx)).map(slug).ok_or(Absent::NoRef),
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

/// Why a placeholder has no value in a CI context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Absent {
    #[error("the CI context has no commit SHA")]
    NoSha,
    #[error("`{0}` is not a full commit SHA (40 or 64 hex digits)")]
    ShaNotFull(String),
    #[error("this is not a branch build")]
    NotABranchBuild,
    #[error("this is not a tag build")]
    NotATagBuild,
    #[error("git tag `{0}` is not a semantic version (`[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`)")]
    NotSemver(String),
    #[error("git tag `{0}` is a pre-release")]
    PreRelease(String),
    #[error("this is not a pull or merge request build")]
    NotAPullRequest,
    #[error("the CI context has no job id")]
    NoJobId,
    #[error("the CI context has neither a branch nor a git tag")]
    NoRef,
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRule {
    source: String,
    kind: RuleKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleKind {
    /// `latest`: applied only to the highest stable release, see [`decide_latest`].
    Latest,
    Template(Vec<Segment>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Field(Placeholder),
}

impl TagRule {
    /// The rule as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `true` if and only if this is the `latest` rule.
    pub fn is_latest(&self) -> bool {
        self.kind == RuleKind::Latest
    }
}

impl TagRule {
    /// Every way `tag` can have been rendered by this rule, each reading as the placeholder
    /// values it implies, in segment order: the rule read backwards. A placeholder's value must
    /// look like what it renders (`{sha}` 40 or 64 lowercase hex digits, `{short_sha}` 8,
    /// `{pr}`, `{major}`, `{minor}`, `{patch}` digits, `{date}` 8 digits, `{semver}` a semantic
    /// version with `_` for `+`, `{branch}` and `{ref}` a slug, `{tag}` and `{job}` any tag
    /// text). `latest` has no placeholder: it reads back as one empty reading when `tag` is
    /// `latest`. Pure; at most [`MAX_READINGS`] readings are returned.
    pub fn read_back(&self, tag: &str) -> Vec<Vec<(Placeholder, String)>> {
        match &self.kind {
            RuleKind::Latest => {
                if tag == LATEST {
                    vec![Vec::new()]
                } else {
                    Vec::new()
                }
            }
            RuleKind::Template(segments) => {
                let mut readings = Vec::new();
                read_segments(segments, tag, &mut Vec::new(), &mut readings);
                readings
            }
        }
    }
}

/// The most readings [`TagRule::read_back`] returns for one tag.
pub const MAX_READINGS: usize = 16;

fn read_segments(
    segments: &[Segment],
    rest: &str,
    values: &mut Vec<(Placeholder, String)>,
    readings: &mut Vec<Vec<(Placeholder, String)>>,
) {
    if readings.len() >= MAX_READINGS {
        return;
    }
    let Some((segment, later)) = segments.split_first() else {
        if rest.is_empty() {
            readings.push(values.clone());
        }
        return;
    };
    match segment {
        Segment::Literal(literal) => {
            if let Some(after) = rest.strip_prefix(literal.as_str()) {
                read_segments(later, after, values, readings);
            }
        }
        Segment::Field(placeholder) => {
            for end in (1..=rest.len()).filter(|&end| rest.is_char_boundary(end)) {
                let value = &rest[..end];
                if could_render(*placeholder, value) {
                    values.push((*placeholder, value.to_owned()));
                    read_segments(later, &rest[end..], values, readings);
                    values.pop();
                }
            }
        }
    }
}

/// `true` if `value` looks like something `placeholder` renders to.
fn could_render(placeholder: Placeholder, value: &str) -> bool {
    let hex = |length: usize| {
        value.len() == length
            && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let digits = || !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match placeholder {
        Placeholder::Sha => hex(40) || hex(64),
        Placeholder::ShortSha => hex(8),
        Placeholder::Pr | Placeholder::Major | Placeholder::Minor | Placeholder::Patch => digits(),
        Placeholder::Date => value.len() == 8 && digits(),
        Placeholder::Semver => semver_of_tag_text(value).is_some(),
        Placeholder::Branch | Placeholder::Ref => slug(value) == value && !value.is_empty(),
        Placeholder::Tag | Placeholder::Job => {
            value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        }
    }
}

/// The semantic version a rendered `{semver}` stands for (`1.2.3_build.5` is `1.2.3+build.5`).
pub fn semver_of_tag_text(text: &str) -> Option<semver::Version> {
    let text = match text.split_once('_') {
        Some((version, build)) => format!("{version}+{build}"),
        None => text.to_owned(),
    };
    semver::Version::parse(&text).ok()
}

impl fmt::Display for TagRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for TagRule {
    type Err = TagRuleError;

    fn from_str(rule: &str) -> Result<Self, Self::Err> {
        if rule.is_empty() {
            return Err(TagRuleError::Empty);
        }
        if rule == LATEST {
            return Ok(Self { source: rule.to_owned(), kind: RuleKind::Latest });
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = rule.char_indices();
        while let Some((position, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '}')) => break,
                            Some((_, '{')) | None => {
                                return Err(TagRuleError::Unbalanced {
                                    rule: rule.to_owned(),
                                    brace: '{',
                                    position,
                                });
                            }
                            Some((_, other)) => name.push(other),
                        }
                    }
                    let Some(placeholder) = Placeholder::from_name(&name) else {
                        return Err(TagRuleError::UnknownPlaceholder {
                            rule: rule.to_owned(),
                            name,
                        });
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Field(placeholder));
                }
                '}' => {
                    return Err(TagRuleError::Unbalanced {
                        rule: rule.to_owned(),
                        brace: '}',
                        position,
                    });
                }
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        if let [Segment::Literal(text)] = segments.as_slice()
            && sanitize_tag(text).is_none()
        {
            return Err(TagRuleError::NeverATag(rule.to_owned()));
        }
        Ok(Self { source: rule.to_owned(), kind: RuleKind::Template(segments) })
    }
}

/// What is wrong with a tag rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagRuleError {
    #[error("a tag rule is empty")]
    Empty,
    #[error("tag rule `{rule}` uses the unknown placeholder `{{{name}}}`")]
    UnknownPlaceholder { rule: String, name: String },
    #[error("tag rule `{rule}` has an unbalanced `{brace}` at byte {position}")]
    Unbalanced { rule: String, brace: char, position: usize },
    #[error("tag rule `{0}` can never give a valid tag")]
    NeverATag(String),
    #[error("no tag rules are given")]
    NoRules,
}

impl Classify for TagRuleError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        let names: Vec<String> = Placeholder::ALL.iter().map(ToString::to_string).collect();
        Some(format!(
            "tag rules are text with placeholders among {} (or the rule `latest`); braces only around a placeholder",
            names.join(", ")
        ))
    }
}

/// The validated tag rules of a project, in the user's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRules {
    rules: Vec<TagRule>,
}

impl TagRules {
    /// Parses every rule; the first bad one is the error. An empty list is an error too.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, TagRuleError> {
        if rules.is_empty() {
            return Err(TagRuleError::NoRules);
        }
        let rules = rules.iter().map(|rule| rule.as_ref().parse()).collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// These rules plus `latest` at the end, unless a `latest` rule is already there (for an
    /// option such as `--latest`).
    #[must_use]
    pub fn with_latest(mut self) -> Self {
        if !self.includes_latest() {
            self.rules.push(TagRule { source: LATEST.to_owned(), kind: RuleKind::Latest });
        }
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[TagRule] {
        &self.rules
    }

    /// `true` if and only if one of the rules is `latest`.
    pub fn includes_latest(&self) -> bool {
        self.rules.iter().any(TagRule::is_latest)
    }

    /// `true` if and only if [`render`](Self::render) will look at the existing tags: the rules
    /// include `latest` and `ctx` builds a stable semver release. Otherwise the caller need not
    /// read the registry and may pass `&[]`.
    pub fn needs_existing_tags(&self, ctx: &CiContext) -> bool {
        self.includes_latest() && stable_release(ctx).is_ok()
    }

    /// The tags these rules give for `ctx` at `now`, deduplicated, in rule order.
    ///
    /// `existing` are the image's tags already in the registry (in monorepo mode without the
    /// image prefix, see [`crate::naming::image_of_tag`]); only `latest` looks at them. A rule
    /// whose placeholder has no value in `ctx` gives no tag, nor does a rule that renders to
    /// nothing usable: both are listed in [`Rendered::skipped`] (which
    /// [`Rendered::log_skipped`] reports). It is an error only when no rule gives a tag.
    pub fn render(
        &self,
        ctx: &CiContext,
        now: Timestamp,
        existing: &[Tag],
    ) -> Result<Rendered, TagRenderError> {
        let mut rendered = Rendered { tags: Vec::new(), skipped: Vec::new() };
        for rule in &self.rules {
            let outcome = match &rule.kind {
                RuleKind::Latest => match decide_latest(ctx, existing) {
                    LatestDecision::Apply => Ok(LATEST.to_owned()),
                    LatestDecision::Skip(reason) => Err(SkipReason::Latest(reason)),
                },
                RuleKind::Template(segments) => render_template(segments, ctx, now),
            };
            let tag = outcome.and_then(|text| {
                sanitize_tag(&text).ok_or(SkipReason::Unusable { rendered: text })
            });
            match tag {
                Ok(tag) if rendered.tags.contains(&tag) => {
                    log::debug!("tag rule `{rule}` gives `{tag}` again");
                }
                Ok(tag) => rendered.tags.push(tag),
                Err(reason) => {
                    rendered.skipped.push(SkippedRule { rule: rule.source.clone(), reason });
                }
            }
        }
        if rendered.tags.is_empty() {
            return Err(TagRenderError::NoTags { skipped: rendered.skipped });
        }
        Ok(rendered)
    }
}

fn render_template(
    segments: &[Segment],
    ctx: &CiContext,
    now: Timestamp,
) -> Result<String, SkipReason> {
    let mut text = String::new();
    for segment in segments {
        match segment {
            Segment::Literal(literal) => text.push_str(literal),
            Segment::Field(placeholder) => match placeholder.value(ctx, now) {
                Ok(value) => text.push_str(&value),
                Err(absent) => {
                    return Err(SkipReason::Missing { placeholder: *placeholder, absent });
                }
            },
        }
    }
    Ok(text)
}

/// The tags rendered for one build, and the rules that gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// At least one tag, deduplicated, in rule order.
    pub tags: Vec<Tag>,
    pub skipped: Vec<SkippedRule>,
}

impl Rendered {
    /// Logs each skipped rule not already in `reported` (and adds it there), so that rules
    /// rendered for several images, or checked before a build and rendered again for its
    /// publish, are reported once: a rule that renders to nothing usable as a warning, one
    /// without a value for this build (a `{tag}` on a branch) as information.
    pub fn log_skipped(&self, reported: &mut BTreeSet<String>) {
        for SkippedRule { rule, reason } in &self.skipped {
            let message = format!("tag rule `{rule}` skipped: {reason}");
            if !reported.insert(message.clone()) {
                continue;
            }
            if matches!(reason, SkipReason::Unusable { .. }) {
                log::warn!("{message}");
            } else {
                log::info!("{message}");
            }
        }
    }
}

/// A rule that gave no tag, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    pub rule: String,
    pub reason: SkipReason,
}

/// Why a rule gave no tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("`{placeholder}` has no value: {absent}")]
    Missing { placeholder: Placeholder, absent: Absent },
    #[error("it renders to `{rendered}`, which leaves nothing usable as a tag")]
    Unusable { rendered: String },
    #[error("{0}")]
    Latest(LatestSkip),
}

/// No rule gave a tag for this build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagRenderError {
    #[error("no tag rule gives a tag for this build ({})", describe_skipped(.skipped))]
    NoTags { skipped: Vec<SkippedRule> },
}

fn describe_skipped(skipped: &[SkippedRule]) -> String {
    let parts: Vec<String> =
        skipped.iter().map(|skipped| format!("`{}`: {}", skipped.rule, skipped.reason)).collect();
    parts.join("; ")
}

impl Classify for TagRenderError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(
            "add a rule every build can fill, such as `{sha}`, or check that the CI facts \
             (DOCKHAND_SHA, DOCKHAND_REF_NAME, DOCKHAND_REF_TYPE) are set"
                .to_owned(),
        )
    }
}

/// Whether `latest` moves to this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestDecision {
    Apply,
    Skip(LatestSkip),
}

/// Why `latest` stays where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LatestSkip {
    #[error("`latest` is only moved by a release tag build, and this is not a tag build")]
    NotATagBuild,
    #[error("`latest` is only moved by a release, and git tag `{0}` is not a semantic version")]
    NotSemver(String),
    #[error("`latest` is not moved by pre-release `{0}`")]
    PreRelease(String),
    #[error("`latest` stays on `{newer}`, a newer release than `{this}`")]
    NewerRelease { this: String, newer: Tag },
}

/// Whether this build may take `latest`: if and only if it builds a git tag that is a stable
/// (not pre-release) semantic version at least as high as every stable semver tag in
/// `existing` (a leading `v` is ignored on both sides; other tags are ignored). Rebuilding the
/// highest release again keeps `latest` on it.
pub fn decide_latest(ctx: &CiContext, existing: &[Tag]) -> LatestDecision {
    let version = match stable_release(ctx) {
        Ok(version) => version,
        Err(Absent::PreRelease(tag)) => return LatestDecision::Skip(LatestSkip::PreRelease(tag)),
        Err(Absent::NotSemver(tag)) => return LatestDecision::Skip(LatestSkip::NotSemver(tag)),
        Err(_) => return LatestDecision::Skip(LatestSkip::NotATagBuild),
    };
    let key = |version: &semver::Version| (version.major, version.minor, version.patch);
    let newest = existing
        .iter()
        .filter_map(|tag| parse_version(tag.as_str()).map(|parsed| (tag, parsed)))
        .filter(|(_, parsed)| parsed.pre.is_empty())
        .max_by_key(|(_, parsed)| key(parsed));
    match newest {
        Some((tag, parsed)) if key(&parsed) > key(&version) => {
            LatestDecision::Skip(LatestSkip::NewerRelease {
                this: version.to_string(),
                newer: tag.clone(),
            })
        }
        _ => LatestDecision::Apply,
    }
}

/// The commit hash, lowercased, if it is a full one.
fn full_sha(ctx: &CiContext) -> Result<String, Absent> {
    let sha = ctx.sha.as_deref().filter(|sha| !sha.is_empty()).ok_or(Absent::NoSha)?;
    let lower = sha.to_ascii_lowercase();
    if matches!(lower.len(), 40 | 64) && lower.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(Absent::ShaNotFull(sha.to_owned()))
    }
}

/// The git tag being built: the context's tag, or its ref name on a tag build.
fn git_tag(ctx: &CiContext) -> Option<&str> {
    let from_ref = || ctx.ref_name.as_deref().filter(|_| ctx.ref_type == Some(RefType::Tag));
    ctx.tag.as_deref().or_else(from_ref).filter(|tag| !tag.is_empty())
}

/// The branch being built: the ref name, unless this is a tag build.
fn branch(ctx: &CiContext) -> Option<&str> {
    if ctx.ref_type == Some(RefType::Tag) || git_tag(ctx).is_some() {
        return None;
    }
    ctx.ref_name.as_deref().filter(|name| !name.is_empty())
}

/// Lowercase, every character outside `[a-z0-9._-]` becomes `-`, runs of `-` are squeezed and
/// `-`/`.` trimmed from both ends (`feature/Login-Page` → `feature-login-page`): what
/// `{branch}` and `{ref}` render.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().map(|c| c.to_ascii_lowercase()) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.trim_matches(['-', '.']).to_owned()
}

/// A git tag and the semantic version it names.
struct Release {
    tag: String,
    version: semver::Version,
}

fn parse_version(text: &str) -> Option<semver::Version> {
    semver::Version::parse(text.strip_prefix('v').unwrap_or(text)).ok()
}

fn release(ctx: &CiContext) -> Result<Release, Absent> {
    let tag = git_tag(ctx).ok_or(Absent::NotATagBuild)?;
    let version = parse_version(tag).ok_or_else(|| Absent::NotSemver(tag.to_owned()))?;
    Ok(Release { tag: tag.to_owned(), version })
}

fn stable_release(ctx: &CiContext) -> Result<semver::Version, Absent> {
    let release = release(ctx)?;
    if release.version.pre.is_empty() {
        Ok(release.version)
    } else {
        Err(Absent::PreRelease(release.tag))
    }
}

fn semver_text(version: &semver::Version) -> String {
    let mut text = format!("{}.{}.{}", version.major, version.minor, version.patch);
    if !version.pre.is_empty() {
        text.push('-');
        text.push_str(version.pre.as_str());
    }
    if !version.build.is_empty() {
        text.push('_');
        text.push_str(version.build.as_str());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::Provider;

    const SHA: &str = "ffac537e6cbbf934b08745a378932722df287a53";
    const NOW: &str = "2024-06-01T12:00:00Z";
    const ALL_RULES: [&str; 8] = [
        "{sha}",
        "{branch}",
        "sha-{short_sha}",
        "{semver}",
        "v{major}.{minor}",
        "pr-{pr}",
        "{date}-{short_sha}",
        "latest",
    ];

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn tags(list: &[&str]) -> Vec<Tag> {
        list.iter().map(|tag| tag.parse().unwrap()).collect()
    }

    /// GitHub Actions, `push` to a branch (`GITHUB_REF_NAME`, `GITHUB_REF_TYPE=branch`, `GITHUB_SHA`).
    fn github_push(branch: &str) -> CiContext {
        CiContext {
            sha: Some(SHA.into()),
            ref_name: Some(branch.into()),
            ref_type: Some(RefType::Branch),
            default_branch: Some("main".into()),
            job_id: Some("build".into()),
            pipeline_id: Some("1658821493".into()),
            ..CiContext::empty(Provider::Github)
        }
    }

    /// GitHub Actions, `push` of a tag (`GITHUB_REF_TYPE=tag`, `GITHUB_REF_NAME` is the tag).
    fn github_tag(tag: &str) -> CiContext {
        CiContext { ref_type: Some(RefType::Tag), tag: Some(tag.into()), ..github_push(tag) }
    }

    /// GitHub Actions, `pull_request` #42 from `feature/login`, head commit as the SHA.
    fn github_pull_request() -> CiContext {
        CiContext {
            pr_number: Some("42".into()),
            pr_head_sha: Some(SHA.into()),
            ..github_push("feature/login")
        }
    }

    /// GitLab CI merge request pipeline: `CI_COMMIT_REF_NAME` is the source branch,
    /// `CI_MERGE_REQUEST_IID` the request, `CI_JOB_ID` a number.
    fn gitlab_merge_request() -> CiContext {
        CiContext {
            sha: Some(SHA.to_uppercase()),
            ref_name: Some("fix/Bug_123".into()),
            ref_type: Some(RefType::Branch),
            pr_number: Some("7".into()),
            default_branch: Some("main".into()),
            job_id: Some("8374521".into()),
            ..CiContext::empty(Provider::Gitlab)
        }
    }

    fn generic_sha_only() -> CiContext {
        CiContext { sha: Some(SHA.into()), ..CiContext::empty(Provider::Generic) }
    }

    #[test]
    fn every_rule_in_every_context() {
        let rules = TagRules::parse(&ALL_RULES).unwrap();
        let existing = tags(&["1.2.2", "v1.0.0", "main", "3.0.0-beta.1"]);
        let date = "20240601-ffac537e";
        let cases: [(&str, CiContext, &[&str], &[&str]); 7] = [
            (
                "push to main",
                github_push("main"),
                &[SHA, "main", "sha-ffac537e", date],
                &["{semver}", "v{major}.{minor}", "pr-{pr}", "latest"],
            ),
            (
                "push to feature/Login-Page",
                github_push("feature/Login-Page"),
                &[SHA, "feature-login-page", "sha-ffac537e", date],
                &["{semver}", "v{major}.{minor}", "pr-{pr}", "latest"],
            ),
            (
                "tag v1.2.3",
                github_tag("v1.2.3"),
                &[SHA, "sha-ffac537e", "1.2.3", "v1.2", date, "latest"],
                &["{branch}", "pr-{pr}"],
            ),
            (
                "tag v2.0.0-rc.1",
                github_tag("v2.0.0-rc.1"),
                &[SHA, "sha-ffac537e", "2.0.0-rc.1", date],
                &["{branch}", "v{major}.{minor}", "pr-{pr}", "latest"],
            ),
            (
                "pull_request #42",
                github_pull_request(),
                &[SHA, "feature-login", "sha-ffac537e", "pr-42", date],
                &["{semver}", "v{major}.{minor}", "latest"],
            ),
            (
                "GitLab merge request",
                gitlab_merge_request(),
                &[SHA, "fix-bug_123", "sha-ffac537e", "pr-7", date],
                &["{semver}", "v{major}.{minor}", "latest"],
            ),
            (
                "generic, only a sha",
                generic_sha_only(),
                &[SHA, "sha-ffac537e", date],
                &["{branch}", "{semver}", "v{major}.{minor}", "pr-{pr}", "latest"],
            ),
        ];
        for (name, ctx, want, want_skipped) in cases {
            let rendered =
                rules.render(&ctx, now(), &existing).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(rendered.tags, tags(want), "{name}");
            let skipped: Vec<&str> = rendered.skipped.iter().map(|s| s.rule.as_str()).collect();
            assert_eq!(skipped, want_skipped, "{name}");
        }
    }

    #[test]
    fn skip_reasons_name_what_the_context_lacks() {
        let rules = TagRules::parse(&ALL_RULES).unwrap();
        let rendered = rules.render(&github_push("main"), now(), &[]).unwrap();
        let reasons: Vec<(&str, SkipReason)> =
            rendered.skipped.iter().map(|s| (s.rule.as_str(), s.reason.clone())).collect();
        assert_eq!(
            reasons,
            [
                (
                    "{semver}",
                    SkipReason::Missing {
                        placeholder: Placeholder::Semver,
                        absent: Absent::NotATagBuild
                    }
                ),
                (
                    "v{major}.{minor}",
                    SkipReason::Missing {
                        placeholder: Placeholder::Major,
                        absent: Absent::NotATagBuild
                    }
                ),
                (
                    "pr-{pr}",
                    SkipReason::Missing {
                        placeholder: Placeholder::Pr,
                        absent: Absent::NotAPullRequest
                    }
                ),
                ("latest", SkipReason::Latest(LatestSkip::NotATagBuild)),
            ]
        );
        let rc = rules.render(&github_tag("v2.0.0-rc.1"), now(), &[]).unwrap();
        assert!(rc.skipped.contains(&SkippedRule {
            rule: "v{major}.{minor}".into(),
            reason: SkipReason::Missing {
                placeholder: Placeholder::Major,
                absent: Absent::PreRelease("v2.0.0-rc.1".into())
            },
        }));
        assert!(rc.skipped.contains(&SkippedRule {
            rule: "latest".into(),
            reason: SkipReason::Latest(LatestSkip::PreRelease("v2.0.0-rc.1".into())),
        }));
    }

    #[test]
    fn each_placeholder() {
        let release = CiContext { job_id: Some("8374521".into()), ..github_tag("v1.2.3+build.5") };
        let odd_tag = github_tag("Release/2024.06");
        for (ctx, placeholder, want) in [
            (&release, Placeholder::Sha, Ok(SHA.to_owned())),
            (&release, Placeholder::ShortSha, Ok("ffac537e".to_owned())),
            (&release, Placeholder::Branch, Err(Absent::NotABranchBuild)),
            (&release, Placeholder::Tag, Ok("v1.2.3+build.5".to_owned())),
            (&release, Placeholder::Semver, Ok("1.2.3_build.5".to_owned())),
            (&release, Placeholder::Major, Ok("1".to_owned())),
            (&release, Placeholder::Minor, Ok("2".to_owned())),
            (&release, Placeholder::Patch, Ok("3".to_owned())),
            (&release, Placeholder::Pr, Err(Absent::NotAPullRequest)),
            (&release, Placeholder::Job, Ok("8374521".to_owned())),
            (&release, Placeholder::Date, Ok("20240601".to_owned())),
            (&release, Placeholder::Ref, Ok("v1.2.3-build.5".to_owned())),
            (&odd_tag, Placeholder::Tag, Ok("Release/2024.06".to_owned())),
            (&odd_tag, Placeholder::Ref, Ok("release-2024.06".to_owned())),
            (&odd_tag, Placeholder::Semver, Err(Absent::NotSemver("Release/2024.06".into()))),
            (&odd_tag, Placeholder::Patch, Err(Absent::NotSemver("Release/2024.06".into()))),
        ] {
            assert_eq!(placeholder.value(ctx, now()), want, "{placeholder} in {:?}", ctx.tag);
        }
    }

    #[test]
    fn commit_hashes() {
        for (sha, want) in [
            (Some(SHA.to_uppercase()), Ok(SHA.to_owned())),
            (Some("a".repeat(64)), Ok("a".repeat(64))),
            (Some("ffac537".to_owned()), Err(Absent::ShaNotFull("ffac537".into()))),
            (Some("z".repeat(40)), Err(Absent::ShaNotFull("z".repeat(40)))),
            (Some(String::new()), Err(Absent::NoSha)),
            (None, Err(Absent::NoSha)),
        ] {
            let ctx = CiContext { sha: sha.clone(), ..CiContext::empty(Provider::Generic) };
            assert_eq!(Placeholder::Sha.value(&ctx, now()), want, "{sha:?}");
        }
    }

    #[test]
    fn branch_slugs() {
        for (branch, want) in [
            ("main", "main"),
            ("feature/Login-Page", "feature-login-page"),
            ("Fix__Bug_1", "fix__bug_1"),
            ("release/1.x", "release-1.x"),
            ("--weird//name..", "weird-name"),
            ("dependabot/npm_and_yarn/@types/node-20.1", "dependabot-npm_and_yarn-types-node-20.1"),
            ("ünïcode", "n-code"),
        ] {
            assert_eq!(
                Placeholder::Branch.value(&github_push(branch), now()).unwrap(),
                want,
                "{branch}"
            );
        }
    }

    #[test]
    fn date_is_the_utc_day_of_now() {
        let late_in_new_york: Timestamp = "2024-06-01T23:30:00-05:00".parse().unwrap();
        assert_eq!(
            Placeholder::Date.value(&generic_sha_only(), late_in_new_york).unwrap(),
            "20240602"
        );
    }

    #[test]
    fn tag_build_known_only_by_ref_type() {
        let ctx = CiContext {
            ref_name: Some("v3.1.4".into()),
            ref_type: Some(RefType::Tag),
            ..CiContext::empty(Provider::Generic)
        };
        assert_eq!(Placeholder::Semver.value(&ctx, now()).unwrap(), "3.1.4");
        assert_eq!(Placeholder::Branch.value(&ctx, now()), Err(Absent::NotABranchBuild));
    }

    #[test]
    fn duplicates_are_dropped_in_rule_order() {
        let rules = TagRules::parse(&["{ref}", "{branch}", "main", "{sha}", "{sha}"]).unwrap();
        let rendered = rules.render(&github_push("main"), now(), &[]).unwrap();
        assert_eq!(rendered.tags, tags(&["main", SHA]));
        assert!(rendered.skipped.is_empty());
    }

    #[test]
    fn a_rule_rendering_to_nothing_usable_is_skipped() {
        let rules = TagRules::parse(&["{branch}", "{sha}"]).unwrap();
        let rendered = rules.render(&github_push("ü/ö"), now(), &[]).unwrap();
        assert_eq!(rendered.tags, tags(&[SHA]));
        assert_eq!(
            rendered.skipped,
            [SkippedRule {
                rule: "{branch}".into(),
                reason: SkipReason::Unusable { rendered: String::new() }
            }]
        );
    }

    #[test]
    fn literal_text_is_sanitised() {
        let rules = TagRules::parse(&["build/{job}", "{tag}"]).unwrap();
        let ctx = CiContext { job_id: Some("12".into()), ..github_tag("Release/2024.06") };
        assert_eq!(
            rules.render(&ctx, now(), &[]).unwrap().tags,
            tags(&["build-12", "Release-2024.06"])
        );
    }

    #[test]
    fn no_tag_at_all_is_an_error_naming_the_rules_and_reasons() {
        let rules = TagRules::parse(&["{semver}", "pr-{pr}", "latest"]).unwrap();
        let error = rules.render(&github_push("main"), now(), &[]).unwrap_err();
        let TagRenderError::NoTags { skipped } = &error;
        assert_eq!(skipped.len(), 3);
        assert_eq!(
            error.to_string(),
            "no tag rule gives a tag for this build (`{semver}`: `{semver}` has no value: this is not a tag build; \
             `pr-{pr}`: `{pr}` has no value: this is not a pull or merge request build; \
             `latest`: `latest` is only moved by a release tag build, and this is not a tag build)"
        );
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        let empty = CiContext::empty(Provider::Generic);
        let error =
            TagRules::parse(&["{sha}", "{ref}"]).unwrap().render(&empty, now(), &[]).unwrap_err();
        assert!(matches!(&error, TagRenderError::NoTags { skipped } if skipped.len() == 2));
    }

    #[test]
    fn parse_errors_name_the_rule() {
        for (rule, want) in [
            ("", TagRuleError::Empty),
            (
                "{nope}",
                TagRuleError::UnknownPlaceholder { rule: "{nope}".into(), name: "nope".into() },
            ),
            ("{}", TagRuleError::UnknownPlaceholder { rule: "{}".into(), name: String::new() }),
            (
                "{SHA}",
                TagRuleError::UnknownPlaceholder { rule: "{SHA}".into(), name: "SHA".into() },
            ),
            (
                "sha-{short_sha",
                TagRuleError::Unbalanced { rule: "sha-{short_sha".into(), brace: '{', position: 4 },
            ),
            ("v}", TagRuleError::Unbalanced { rule: "v}".into(), brace: '}', position: 1 }),
            (
                "{{sha}}",
                TagRuleError::Unbalanced { rule: "{{sha}}".into(), brace: '{', position: 0 },
            ),
            ("///", TagRuleError::NeverATag("///".into())),
        ] {
            assert_eq!(rule.parse::<TagRule>(), Err(want.clone()), "{rule:?}");
            assert_eq!(TagRules::parse(&["{sha}", rule]), Err(want), "{rule:?}");
        }
        assert_eq!(TagRules::parse::<&str>(&[]), Err(TagRuleError::NoRules));
        let error = TagRules::parse(&["{nope}"]).unwrap_err();
        assert_eq!(error.to_string(), "tag rule `{nope}` uses the unknown placeholder `{nope}`");
        assert_eq!(error.exit_status(), ExitStatus::Usage);
        assert!(error.hint().unwrap().contains("{short_sha}"));
    }

    #[test]
    fn rules_keep_their_text() {
        let rules = TagRules::parse(&["v{major}", "stable"]).unwrap().with_latest().with_latest();
        let texts: Vec<String> = rules.rules().iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["v{major}", "stable", "latest"]);
        assert!(rules.includes_latest());
        assert!(!TagRules::parse(&["{sha}"]).unwrap().includes_latest());
    }

    #[test]
    fn latest_decisions() {
        let stable = ["1.2.2", "v1.0.0", "main", "sha-ffac537e", "3.0.0-beta.1"];
        for (ctx, existing, want) in [
            (github_tag("v1.2.3"), &stable[..], LatestDecision::Apply),
            (github_tag("v1.2.3"), &[][..], LatestDecision::Apply),
            (github_tag("1.2.3"), &["v1.2.3", "latest"][..], LatestDecision::Apply),
            (
                github_tag("v1.2.3"),
                &["v1.10.0", "1.2.2"][..],
                LatestDecision::Skip(LatestSkip::NewerRelease {
                    this: "1.2.3".into(),
                    newer: "v1.10.0".parse().unwrap(),
                }),
            ),
            (
                github_tag("v1.2.3"),
                &["2.0.0"][..],
                LatestDecision::Skip(LatestSkip::NewerRelease {
                    this: "1.2.3".into(),
                    newer: "2.0.0".parse().unwrap(),
                }),
            ),
            (
                github_tag("v2.0.0-rc.1"),
                &[][..],
                LatestDecision::Skip(LatestSkip::PreRelease("v2.0.0-rc.1".into())),
            ),
            (
                github_tag("nightly"),
                &[][..],
                LatestDecision::Skip(LatestSkip::NotSemver("nightly".into())),
            ),
            (github_push("main"), &[][..], LatestDecision::Skip(LatestSkip::NotATagBuild)),
            (github_pull_request(), &[][..], LatestDecision::Skip(LatestSkip::NotATagBuild)),
        ] {
            assert_eq!(
                decide_latest(&ctx, &tags(existing)),
                want,
                "{:?} {existing:?}",
                ctx.ref_name
            );
        }
    }

    #[test]
    fn existing_tags_are_needed_only_for_a_stable_release_with_latest() {
        let with_latest = TagRules::parse(&["{sha}", "latest"]).unwrap();
        let without = TagRules::parse(&["{sha}"]).unwrap();
        assert!(with_latest.needs_existing_tags(&github_tag("v1.2.3")));
        assert!(!with_latest.needs_existing_tags(&github_tag("v2.0.0-rc.1")));
        assert!(!with_latest.needs_existing_tags(&github_push("main")));
        assert!(!without.needs_existing_tags(&github_tag("v1.2.3")));
    }

    fn readings(rule: &str, tag: &str) -> Vec<Vec<(&'static str, String)>> {
        let rule: TagRule = rule.parse().unwrap();
        rule.read_back(tag)
            .into_iter()
            .map(|reading| {
                reading
                    .into_iter()
                    .map(|(placeholder, value)| (placeholder.name(), value))
                    .collect()
            })
            .collect()
    }

    fn one(pairs: &[(&'static str, &str)]) -> Vec<Vec<(&'static str, String)>> {
        vec![pairs.iter().map(|(name, value)| (*name, (*value).to_owned())).collect()]
    }

    #[test]
    fn rules_read_backwards() {
        let short = &SHA[..8];
        for (rule, tag, want) in [
            ("{sha}", SHA, one(&[("sha", SHA)])),
            ("{sha}", short, Vec::new()),
            ("{sha}", "FFAC537E6CBBF934B08745A378932722DF287A53", Vec::new()),
            ("sha-{short_sha}", &format!("sha-{short}") as &str, one(&[("short_sha", short)])),
            ("sha-{short_sha}", "sha-ffac537", Vec::new()),
            ("sha-{short_sha}", "main", Vec::new()),
            ("pr-{pr}", "pr-42", one(&[("pr", "42")])),
            ("pr-{pr}", "pr-x", Vec::new()),
            ("{branch}", "feature-login", one(&[("branch", "feature-login")])),
            ("{branch}", "Feature", Vec::new()),
            ("{branch}", "-x", Vec::new()),
            ("{semver}", "1.2.3", one(&[("semver", "1.2.3")])),
            ("{semver}", "2.0.0-rc.1", one(&[("semver", "2.0.0-rc.1")])),
            ("{semver}", "1.2.3_build.5", one(&[("semver", "1.2.3_build.5")])),
            ("{semver}", "v1.2.3", Vec::new()),
            ("{tag}", "v1.2.3", one(&[("tag", "v1.2.3")])),
            ("v{major}.{minor}", "v2.7", one(&[("major", "2"), ("minor", "7")])),
            (
                "{date}-{short_sha}",
                &format!("20240601-{short}"),
                one(&[("date", "20240601"), ("short_sha", short)]),
            ),
            ("latest", "latest", vec![Vec::new()]),
            ("latest", "main", Vec::new()),
            ("fixed", "fixed", vec![Vec::new()]),
        ] {
            assert_eq!(readings(rule, tag), want, "{rule} {tag}");
        }
    }

    #[test]
    fn ambiguous_tags_give_every_reading() {
        let short = &SHA[..8];
        // a branch slug may hold `-`, so `{branch}-{short_sha}` has one reading only when the
        // rest is not 8 hex digits
        assert_eq!(
            readings("{branch}-{short_sha}", &format!("feature-x-{short}")),
            one(&[("branch", "feature-x"), ("short_sha", short)])
        );
        assert_eq!(readings("{branch}-{pr}", "a-1-2"), one(&[("branch", "a-1"), ("pr", "2")]));
        assert_eq!(
            readings("{ref}-{job}", "a-b-c"),
            [one(&[("ref", "a"), ("job", "b-c")]), one(&[("ref", "a-b"), ("job", "c")])].concat()
        );
        // `{ref}-{job}`: every split is a reading, and there are at most MAX_READINGS
        let long = vec!["a"; 40].join("-");
        assert_eq!(readings("{ref}-{job}", &long).len(), MAX_READINGS);
    }

    #[test]
    fn reading_back_what_render_gives_finds_the_facts() {
        let rules = TagRules::parse(&ALL_RULES).unwrap();
        for ctx in [github_push("main"), github_tag("v1.2.3"), github_tag("v2.0.0-rc.1")] {
            let rendered = rules.render(&ctx, now(), &[]).unwrap();
            for tag in &rendered.tags {
                let found = rules.rules().iter().any(|rule| {
                    rule.read_back(tag.as_str()).iter().any(|reading| {
                        reading.iter().all(|(placeholder, value)| {
                            placeholder.value(&ctx, now()).is_ok_and(|want| want == *value)
                        })
                    })
                });
                assert!(found, "`{tag}` does not read back to the facts of {ctx:?}");
            }
        }
    }
}
