//! The retention policy: the project file's `cleanup:` section plus the cleanup flags, validated
//! once into a [`Policy`].
//!
//! Owns resolving the project file's section ([`PolicySection`], modelled in `project.rs`) and
//! the flags' raw values ([`PolicyFlags`]) into a [`Policy`], the duration grammar
//! (`30m`, `2h`, `7d`, `1w`, `1d12h`), anchoring of `keep_tags`, and the conservative default used
//! when no count or age rule is configured. Does no I/O and decides nothing about particular
//! tags: that is `plan.rs`.
//!
//! Keep rules are OR-ed and keep always beats delete. When neither `keep_last` nor `keep_within`
//! is configured (by the file or a flag), the policy keeps the newest [`DEFAULT_KEEP_LAST`] images
//! of each image name and everything younger than [`DEFAULT_KEEP_WITHIN`]; `keep_tags` adds to
//! that default rather than replacing it, so `--keep-tag latest` alone never deletes yesterday's
//! build. `keep_last: 0` and `keep_within: 0s` turn a rule off explicitly (and so also the
//! default). Whatever else is configured, a tag that looks like a release
//! (`v?MAJOR.MINOR.PATCH`, no pre-release) is kept unless `delete_releases: true` (or
//! `--delete-releases`) lets the other rules decide it; so is a pre-release (`v2.0.0-rc.1`)
//! until its image has a release tag of that version (`v2.0.0`).
//!
//! `--delete-tag TAG` (repeatable) makes the policy targeted: exactly the named tags are
//! deleted and every other tag is kept, whatever the retention rules say (they, and
//! `delete_untagged`, are not applied); the planner's safety rules still hold.

use std::fmt::{self, Write as _};
use std::time::Duration;

use regex::Regex;

use crate::cleanup::git::ReferenceKind;
use crate::exit::{Classify, ExitStatus};
use crate::project::{KeepPolicySection, LimitSection, Operator, PolicySection, PreReleases};
use crate::reference::Tag;

/// Images of each image name kept when neither `keep_last` nor `keep_within` is configured.
pub const DEFAULT_KEEP_LAST: usize = 10;
/// Age below which everything is kept when neither `keep_last` nor `keep_within` is configured
/// (2 hours).
pub const DEFAULT_KEEP_WITHIN: Duration = Duration::from_secs(2 * 3600);

/// The cleanup policy flags as typed (`--keep-last`, `--keep-within`, …). They add to the
/// project file: a scalar flag overrides the file's value, `--keep-tag` patterns are appended
/// to the file's `keep_tags`, and a `true` switch turns its setting on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyFlags {
    pub keep_last: Option<usize>,
    pub keep_within: Option<String>,
    pub keep_tags: Vec<String>,
    pub delete_untagged: bool,
    pub delete_releases: bool,
    /// `--keep-releases-per-major`, `--keep-releases-per-minor`: override `cleanup.releases`'
    /// counts (and make the section when the file has none).
    pub keep_releases_per_major: Option<usize>,
    pub keep_releases_per_minor: Option<usize>,
    pub max_deletes: Option<usize>,
    pub max_duration: Option<String>,
    /// `--delete-tag`: delete exactly these tags (targeted mode).
    pub delete_tags: Vec<String>,
}

/// A validated, resolved retention policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N distinct digests of each image name, with every tag on them.
    pub keep_last: Option<usize>,
    /// Keep everything younger than this.
    pub keep_within: Option<Duration>,
    /// Keep tags matching any of these (anchored) patterns.
    pub keep_tags: Vec<KeepTag>,
    /// Delete untagged manifests that nothing kept needs.
    pub delete_untagged: bool,
    /// `false` (the default) keeps every tag that [`looks_like_release`].
    pub delete_releases: bool,
    /// At most this many deletions per run.
    pub max_deletes: Option<usize>,
    /// Stop deleting after this long (applied by the executor, not the planner).
    pub max_duration: Option<Duration>,
    /// Targeted mode (`--delete-tag`) when not empty: delete exactly these tags (matched
    /// against the tag as stored and as the image was published under it) and keep every
    /// other; the retention rules above then decide nothing, and untagged manifests stay.
    pub delete_tags: Vec<Tag>,
    /// Which git-aware retention applies inside a git checkout.
    pub git: GitRules,
    /// How long images of deleted branches and of commits no reference reaches stay.
    pub grace_period: Duration,
    /// `cleanup.releases`: release tags decided by version instead of all kept.
    pub releases: Option<ReleaseRules>,
}

/// `cleanup.releases`, validated: at least one count is set, and none is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseRules {
    /// The N highest releases of each major version stay.
    pub per_major: Option<usize>,
    /// The N highest releases of each major.minor version stay.
    pub per_minor: Option<usize>,
    pub pre_releases: PreReleases,
}

/// What a keep policy without `images_per_reference` keeps of each reference: its newest image.
pub const NEWEST_IMAGE: Limit = Limit { last: Some(1), within: None, operator: Operator::And };

/// How long images whose branch is gone stay by default (1 day).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(86_400);

/// Git-aware retention as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRules {
    /// `keep_policies` configured: they apply, and a git checkout is required.
    Configured(Vec<KeepPolicy>),
    /// Nothing configured (no `keep_policies`, `keep_last` or `keep_within`): inside a git
    /// checkout the default set ([`default_keep_policies`]) applies, outside it the count and
    /// age defaults alone.
    Default,
    /// Count or age rules configured without `keep_policies`: they alone decide.
    Off,
}

/// One git-aware keep policy, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepPolicy {
    pub kind: ReferenceKind,
    /// Matched against the whole reference name.
    pub pattern: KeepTag,
    /// Which matching references: the most recently committed to first.
    pub references: Limit,
    /// How many images of each selected reference, newest commit first (the newest one when
    /// `images_per_reference` is not given).
    pub images: Limit,
}

/// `last` N and/or within `in`, combined by `operator`; neither set selects everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub last: Option<usize>,
    pub within: Option<Duration>,
    pub operator: Operator,
}

impl Limit {
    /// `true` if and only if the item ranked `rank` (0 = newest) with `age` passes.
    pub fn admits(&self, rank: usize, age: Option<Duration>) -> bool {
        let by_count = self.last.map(|last| rank < last);
        // an unknown age is never "within": only a count can admit it then
        let by_age = self.within.map(|within| age.is_some_and(|age| age < within));
        match (by_count, by_age, self.operator) {
            (None, None, _) => true,
            (Some(one), None, _) | (None, Some(one), _) => one,
            (Some(count), Some(age), Operator::And) => count && age,
            (Some(count), Some(age), Operator::Or) => count || age,
        }
    }

    /// "the newest 2", "those of the last 1w", "the newest 10 of the last 1w".
    pub fn describe(&self) -> String {
        let joiner = match self.operator {
            Operator::And => "and",
            Operator::Or => "or",
        };
        match (self.last, self.within) {
            (None, None) => "all".to_owned(),
            (Some(last), None) => format!("the newest {last}"),
            (None, Some(within)) => format!("those of the last {}", format_duration(within)),
            (Some(last), Some(within)) => {
                format!("the newest {last} {joiner} those of the last {}", format_duration(within))
            }
        }
    }
}

/// The default keep policies inside a git checkout with no retention configured, given the
/// default branch's name (`main|master` when it is unknown):
/// 1. every git tag's image (the newest image its history holds);
/// 2. the 10 most recently committed-to branches of the last week, 2 images each;
/// 3. the default branch's 10 newest images.
pub fn default_keep_policies(default_branch: Option<&str>) -> Vec<KeepPolicy> {
    let week = Duration::from_secs(7 * 86_400);
    let default_branch = default_branch.map_or_else(|| "main|master".to_owned(), regex::escape);
    let pattern = |text: &str| KeepTag::new(text).expect("the default patterns compile");
    vec![
        KeepPolicy {
            kind: ReferenceKind::Tag,
            pattern: pattern(".*"),
            references: Limit::default(),
            images: NEWEST_IMAGE,
        },
        KeepPolicy {
            kind: ReferenceKind::Branch,
            pattern: pattern(".*"),
            references: Limit { last: Some(10), within: Some(week), operator: Operator::And },
            images: Limit { last: Some(2), ..Limit::default() },
        },
        KeepPolicy {
            kind: ReferenceKind::Branch,
            pattern: pattern(&default_branch),
            references: Limit::default(),
            images: Limit { last: Some(10), ..Limit::default() },
        },
    ]
}

/// One `keep_tags` pattern: the text the user wrote and its anchored compiled form
/// `^(?:PATTERN)$`, so `latest` keeps `latest` and not `latest-old`.
#[derive(Debug, Clone)]
pub struct KeepTag {
    pattern: String,
    regex: Regex,
}

impl KeepTag {
    /// Compiles `pattern` anchored at both ends.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(&format!("^(?:{pattern})$"))?;
        Ok(Self { pattern: pattern.to_owned(), regex })
    }

    /// The pattern as the user wrote it.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// `true` if and only if the whole of `tag` matches the pattern.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
}

impl PartialEq for KeepTag {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for KeepTag {}

/// Where a setting came from, named the way the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    KeepWithin,
    KeepTags,
    MaxDeletes,
    MaxDuration,
    DeleteReleases,
    KeepReleasesPerMajor,
    KeepReleasesPerMinor,
}

/// Whether a setting came from the project file or a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Flag,
}

/// A setting as the user wrote it: `cleanup.keep_within` in the file, `--keep-within` on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingName {
    pub setting: Setting,
    pub origin: Origin,
}

impl fmt::Display for SettingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, flag) = match self.setting {
            Setting::KeepWithin => ("keep_within", "keep-within"),
            Setting::KeepTags => ("keep_tags", "keep-tag"),
            Setting::MaxDeletes => ("max_deletes", "max-deletes"),
            Setting::DeleteReleases => ("delete_releases", "delete-releases"),
            Setting::KeepReleasesPerMajor => ("releases.keep_per_major", "keep-releases-per-major"),
            Setting::KeepReleasesPerMinor => ("releases.keep_per_minor", "keep-releases-per-minor"),
            Setting::MaxDuration => ("max_duration", "max-duration"),
        };
        match self.origin {
            Origin::File => write!(f, "cleanup.{file}"),
            Origin::Flag => write!(f, "--{flag}"),
        }
    }
}

/// Why a policy setting is rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid duration `{value}` for `{setting}`")]
    Duration {
        setting: SettingName,
        value: String,
        #[source]
        source: DurationError,
    },
    #[error("invalid regular expression `{pattern}` in `{setting}`")]
    KeepTag {
        setting: SettingName,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("`{setting}` must be more than zero")]
    Zero { setting: SettingName },
    #[error("`{0}` given to --delete-tag is not a valid tag")]
    DeleteTag(String),
    #[error(
        "`cleanup.keep_policies[{index}].references` must name exactly one of `branch` and `tag`"
    )]
    ReferenceKind { index: usize },
    #[error("invalid regular expression `{pattern}` in `cleanup.keep_policies[{index}]`")]
    KeepPolicyPattern {
        index: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("invalid duration `{value}` for `in` in `cleanup.keep_policies[{index}]`")]
    KeepPolicyDuration {
        index: usize,
        value: String,
        #[source]
        source: DurationError,
    },
    #[error("`last` in `cleanup.keep_policies[{index}]` must be more than zero")]
    KeepPolicyZero { index: usize },
    #[error("invalid duration `{value}` for `cleanup.grace_period`")]
    GracePeriod {
        value: String,
        #[source]
        source: DurationError,
    },
    #[error("`cleanup.releases` names neither `keep_per_major` nor `keep_per_minor`")]
    ReleasesEmpty,
    #[error("`{0}` must be more than zero")]
    ReleasesZero(SettingName),
    #[error("`cleanup.releases` and `{0}` contradict each other")]
    ReleasesAndDeleteReleases(SettingName),
}

impl Classify for PolicyError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::Duration { .. } => {
                "write a duration as numbers with units w, d, h, m, s from largest to smallest, e.g. `30m`, `2h`, `7d`, `1d12h`".to_owned()
            }
            Self::KeepTag { .. } => {
                "keep_tags are regular expressions matched against the whole tag, e.g. `latest` or `v\\d+\\..*`".to_owned()
            }
            Self::Zero { setting } => format!("remove `{setting}` to run without that limit"),
            Self::ReferenceKind { .. } => {
                "write e.g. `references: {branch: \"main|release/.*\"}` or `references: {tag: \".*\"}`".to_owned()
            }
            Self::KeepPolicyPattern { .. } => {
                "`branch` and `tag` are regular expressions matched against the whole name, e.g. `main` or `release/.*`".to_owned()
            }
            Self::KeepPolicyDuration { .. } | Self::GracePeriod { .. } => {
                "write a duration as numbers with units w, d, h, m, s from largest to smallest, e.g. `168h`, `7d`".to_owned()
            }
            Self::KeepPolicyZero { .. } => {
                "remove `last` to keep every one, or give a count of at least 1".to_owned()
            }
            Self::ReleasesEmpty | Self::ReleasesZero(_) => {
                "write e.g. `releases: {keep_per_major: 3, keep_per_minor: 1}`, or remove the section to keep every release".to_owned()
            }
            Self::ReleasesAndDeleteReleases(_) => {
                "`cleanup.releases` already decides which release tags go: remove `delete_releases` (or the section, to let keep_last and keep_within decide releases)".to_owned()
            }
            Self::DeleteTag(_) => {
                "a tag is at most 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`; dockhand's `{branch}` rule turns `feature/x` into `feature-x`".to_owned()
            }
        })
    }
}

/// What is wrong with a duration's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("it is empty")]
    Empty,
    #[error("`{0}` has no unit; add one of w, d, h, m, s")]
    MissingUnit(String),
    #[error("the unit `{0}` must follow a number")]
    MissingNumber(char),
    #[error("`{0}` is not a unit; use w, d, h, m or s")]
    UnknownUnit(char),
    #[error("units must go from largest to smallest, each at most once")]
    UnitOrder,
    #[error("it is too large")]
    TooLarge,
}

/// Units of the duration grammar, largest first, with their length in seconds.
const UNITS: [(char, u64); 5] =
    [('w', 7 * 86_400), ('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)];

/// Parses `30m`, `2h`, `7d`, `1w` and combinations such as `1d12h`: numbers each followed by
/// a unit (`w`, `d`, `h`, `m`, `s`), units from largest to smallest, each at most once. The
/// total may be zero and must be at most `i64::MAX` seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut last_unit: Option<usize> = None;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let Some(position) = UNITS.iter().position(|(unit, _)| *unit == c) else {
            return Err(DurationError::UnknownUnit(c));
        };
        if number.is_empty() {
            return Err(DurationError::MissingNumber(c));
        }
        if last_unit.is_some_and(|last| position <= last) {
            return Err(DurationError::UnitOrder);
        }
        last_unit = Some(position);
        let value: u64 = number.parse().map_err(|_| DurationError::TooLarge)?;
        total = value
            .checked_mul(UNITS[position].1)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or(DurationError::TooLarge)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(DurationError::MissingUnit(text.to_owned()));
    }
    if i64::try_from(total).is_err() {
        return Err(DurationError::TooLarge);
    }
    Ok(Duration::from_secs(total))
}

/// Writes the whole seconds of `duration` in the grammar [`parse_duration`] reads, e.g. `1d12h`;
/// `0s` for less than a second.
pub fn format_duration(duration: Duration) -> String {
    let mut rest = duration.as_secs();
    let mut out = String::new();
    for (unit, seconds) in UNITS {
        let count = rest / seconds;
        rest %= seconds;
        if count > 0 {
            let _ = write!(out, "{count}{unit}");
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

/// Writes `duration` for a person reading an age: its largest unit, followed by the next
/// smaller unit when that is not zero (`3d4h`, `35m`, `1w`), truncated to whole units.
pub fn format_approximately(duration: Duration) -> String {
    let total = duration.as_secs();
    let Some(first) = UNITS.iter().position(|(_, seconds)| total >= *seconds) else {
        return "0s".to_owned();
    };
    let (unit, seconds) = UNITS[first];
    let mut out = format!("{}{unit}", total / seconds);
    if let Some((next_unit, next_seconds)) = UNITS.get(first + 1) {
        let count = total % seconds / next_seconds;
        if count > 0 {
            let _ = write!(out, "{count}{next_unit}");
        }
    }
    out
}

/// The flag's value when given, else the file's, with where it came from.
fn chosen<T>(flag: Option<T>, file: Option<T>) -> Option<(T, Origin)> {
    flag.map(|value| (value, Origin::Flag)).or_else(|| file.map(|value| (value, Origin::File)))
}

/// `true` if and only if `tag` looks like a release: `MAJOR.MINOR.PATCH` of digits with an
/// optional leading `v` and nothing after (no pre-release, no build suffix).
pub fn looks_like_release(tag: &str) -> bool {
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// `cleanup.releases` validated, and whether `delete_releases` is on (which contradicts it).
fn releases(
    file: &PolicySection,
    flags: &PolicyFlags,
) -> Result<(Option<ReleaseRules>, bool), PolicyError> {
    let per_major = chosen(
        flags.keep_releases_per_major,
        file.releases.as_ref().and_then(|section| section.keep_per_major),
    );
    let per_minor = chosen(
        flags.keep_releases_per_minor,
        file.releases.as_ref().and_then(|section| section.keep_per_minor),
    );
    let rules = if file.releases.is_some() || per_major.is_some() || per_minor.is_some() {
        let pre_releases = file.releases.as_ref().and_then(|section| section.pre_releases);
        Some(release_rules(per_major, per_minor, pre_releases)?)
    } else {
        None
    };
    let delete_releases = chosen(
        flags.delete_releases.then_some(()),
        file.delete_releases.filter(|delete| *delete).map(|_| ()),
    );
    if let (Some(_), Some(((), origin))) = (rules, delete_releases) {
        let setting = SettingName { setting: Setting::DeleteReleases, origin };
        return Err(PolicyError::ReleasesAndDeleteReleases(setting));
    }
    Ok((rules, delete_releases.is_some()))
}

/// Validates `cleanup.releases`' counts, each with where it came from.
fn release_rules(
    per_major: Option<(usize, Origin)>,
    per_minor: Option<(usize, Origin)>,
    pre_releases: Option<PreReleases>,
) -> Result<ReleaseRules, PolicyError> {
    for (count, setting) in
        [(per_major, Setting::KeepReleasesPerMajor), (per_minor, Setting::KeepReleasesPerMinor)]
    {
        if let Some((0, origin)) = count {
            return Err(PolicyError::ReleasesZero(SettingName { setting, origin }));
        }
    }
    if per_major.is_none() && per_minor.is_none() {
        return Err(PolicyError::ReleasesEmpty);
    }
    Ok(ReleaseRules {
        per_major: per_major.map(|(count, _)| count),
        per_minor: per_minor.map(|(count, _)| count),
        pre_releases: pre_releases.unwrap_or_default(),
    })
}

/// Validates the `index`th keep policy.
fn keep_policy(index: usize, section: &KeepPolicySection) -> Result<KeepPolicy, PolicyError> {
    let references = &section.references;
    let (kind, pattern) = match (&references.branch, &references.tag) {
        (Some(pattern), None) => (ReferenceKind::Branch, pattern),
        (None, Some(pattern)) => (ReferenceKind::Tag, pattern),
        _ => return Err(PolicyError::ReferenceKind { index }),
    };
    let pattern = KeepTag::new(pattern).map_err(|source| PolicyError::KeepPolicyPattern {
        index,
        pattern: pattern.clone(),
        source,
    })?;
    let limit = |section: Option<&LimitSection>, absent: Limit| -> Result<Limit, PolicyError> {
        let Some(section) = section else { return Ok(absent) };
        if section.last == Some(0) {
            return Err(PolicyError::KeepPolicyZero { index });
        }
        let within = section
            .within
            .as_ref()
            .map(|text| {
                parse_duration(text).map_err(|source| PolicyError::KeepPolicyDuration {
                    index,
                    value: text.clone(),
                    source,
                })
            })
            .transpose()?;
        Ok(Limit { last: section.last, within, operator: section.operator.unwrap_or_default() })
    };
    Ok(KeepPolicy {
        kind,
        pattern,
        references: limit(references.limit.as_ref(), Limit::default())?,
        images: limit(section.images_per_reference.as_ref(), NEWEST_IMAGE)?,
    })
}

impl Policy {
    /// Resolves the file's section and the flags into one policy. Scalar flags override the
    /// file, `--keep-tag` patterns are appended to `keep_tags`, switches turn settings on.
    /// When neither names `keep_last` or `keep_within`, the conservative default applies:
    /// [`DEFAULT_KEEP_LAST`] and [`DEFAULT_KEEP_WITHIN`]; an explicit `0` / `0s` turns that rule
    /// off. `max_deletes` and `max_duration` must be more than zero.
    pub fn resolve(
        section: Option<&PolicySection>,
        flags: &PolicyFlags,
    ) -> Result<Self, PolicyError> {
        let empty = PolicySection::default();
        let file = section.unwrap_or(&empty);
        let name = |setting, origin| SettingName { setting, origin };
        let duration = |flag: Option<&String>, file: Option<&String>, setting| {
            chosen(flag, file)
                .map(|(text, origin)| {
                    parse_duration(text).map(|duration| (duration, origin)).map_err(|source| {
                        PolicyError::Duration {
                            setting: name(setting, origin),
                            value: text.clone(),
                            source,
                        }
                    })
                })
                .transpose()
        };
        let limit = |value: Option<(usize, Origin)>, setting| match value {
            Some((0, origin)) => Err(PolicyError::Zero { setting: name(setting, origin) }),
            other => Ok(other.map(|(value, _)| value)),
        };

        let keep_last = chosen(flags.keep_last, file.keep_last).map(|(count, _)| count);
        let keep_within =
            duration(flags.keep_within.as_ref(), file.keep_within.as_ref(), Setting::KeepWithin)?
                .map(|(duration, _)| duration);
        let keep_tags = file
            .keep_tags
            .iter()
            .map(|pattern| (pattern, Origin::File))
            .chain(flags.keep_tags.iter().map(|pattern| (pattern, Origin::Flag)))
            .map(|(pattern, origin)| {
                KeepTag::new(pattern).map_err(|source| PolicyError::KeepTag {
                    setting: name(Setting::KeepTags, origin),
                    pattern: pattern.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count_or_age_configured = keep_last.is_some() || keep_within.is_some();
        let git = match &file.keep_policies {
            Some(sections) => GitRules::Configured(
                sections
                    .iter()
                    .enumerate()
                    .map(|(index, section)| keep_policy(index, section))
                    .collect::<Result<_, _>>()?,
            ),
            None if count_or_age_configured => GitRules::Off,
            None => GitRules::Default,
        };
        let grace_period = match &file.grace_period {
            Some(text) => parse_duration(text)
                .map_err(|source| PolicyError::GracePeriod { value: text.clone(), source })?,
            None => DEFAULT_GRACE_PERIOD,
        };
        let (keep_last, keep_within) = if keep_last.is_none() && keep_within.is_none() {
            (Some(DEFAULT_KEEP_LAST), Some(DEFAULT_KEEP_WITHIN))
        } else {
            (
                keep_last.filter(|count| *count > 0),
                keep_within.filter(|duration| !duration.is_zero()),
            )
        };
        let max_duration = match duration(
            flags.max_duration.as_ref(),
            file.max_duration.as_ref(),
            Setting::MaxDuration,
        )? {
            Some((duration, origin)) if duration.is_zero() => {
                return Err(PolicyError::Zero { setting: name(Setting::MaxDuration, origin) });
            }
            other => other.map(|(duration, _)| duration),
        };
        let mut delete_tags: Vec<Tag> = flags
            .delete_tags
            .iter()
            .map(|tag| tag.parse().map_err(|_| PolicyError::DeleteTag(tag.clone())))
            .collect::<Result<_, _>>()?;
        delete_tags.sort();
        delete_tags.dedup();
        let targeted = !delete_tags.is_empty();
        let (releases, delete_releases) = releases(file, flags)?;
        Ok(Self {
            keep_last,
            keep_within,
            keep_tags,
            delete_untagged: !targeted
                && (flags.delete_untagged || file.delete_untagged.unwrap_or(false)),
            delete_releases,
            max_deletes: limit(chosen(flags.max_deletes, file.max_deletes), Setting::MaxDeletes)?,
            max_duration,
            delete_tags,
            git,
            grace_period,
            releases,
        })
    }

    /// The `--delete-tag` tag equal to any of `tags`, if one is.
    pub fn delete_tag_match(&self, tags: &[&str]) -> Option<&Tag> {
        self.delete_tags.iter().find(|named| tags.contains(&named.as_str()))
    }

    /// The first `keep_tags` pattern matching any of `tags`, if one does.
    pub fn keep_tag_match(&self, tags: &[&str]) -> Option<&KeepTag> {
        self.keep_tags.iter().find(|keep| tags.iter().any(|tag| keep.matches(tag)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;
    const D: u64 = 86_400;

    #[test]
    fn delete_tags_make_the_policy_targeted() {
        let file = PolicySection { delete_untagged: Some(true), ..PolicySection::default() };
        let flags = PolicyFlags {
            delete_tags: vec!["pr-12".into(), "b".into(), "pr-12".into()],
            ..PolicyFlags::default()
        };
        let policy = Policy::resolve(Some(&file), &flags).unwrap();
        let names: Vec<&str> = policy.delete_tags.iter().map(Tag::as_str).collect();
        assert_eq!(names, ["b", "pr-12"]);
        assert!(!policy.delete_untagged, "a targeted delete deletes only tags");
        assert_eq!(
            policy.delete_tag_match(&["api-pr-12", "pr-12"]).map(Tag::as_str),
            Some("pr-12")
        );
        assert_eq!(policy.delete_tag_match(&["pr-1"]), None);
        let bad = PolicyFlags { delete_tags: vec!["feature/x".into()], ..PolicyFlags::default() };
        let error = Policy::resolve(None, &bad).unwrap_err();
        assert!(matches!(&error, PolicyError::DeleteTag(tag) if tag == "feature/x"), "{error}");
        assert_eq!(error.exit_status(), ExitStatus::Usage);
    }

    #[test]
    fn durations_parse() {
        for (text, seconds) in [
            ("30m", 30 * 60),
            ("2h", 2 * H),
            ("7d", 7 * D),
            ("1w", 7 * D),
            ("1d12h", D + 12 * H),
            ("1w2d3h4m5s", 7 * D + 2 * D + 3 * H + 4 * 60 + 5),
            ("90s", 90),
            ("0h30m", 30 * 60),
            ("007m", 7 * 60),
            ("0s", 0),
            ("0d0h", 0),
        ] {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(seconds)), "{text}");
        }
    }

    #[test]
    fn duration_errors_say_what_is_wrong() {
        for (text, error) in [
            ("", DurationError::Empty),
            ("30", DurationError::MissingUnit("30".into())),
            ("1d12", DurationError::MissingUnit("1d12".into())),
            ("h", DurationError::MissingNumber('h')),
            ("2x", DurationError::UnknownUnit('x')),
            ("2 h", DurationError::UnknownUnit(' ')),
            ("-2h", DurationError::UnknownUnit('-')),
            ("12h1d", DurationError::UnitOrder),
            ("2h2h", DurationError::UnitOrder),
            ("99999999999999999999s", DurationError::TooLarge),
            ("99999999999999w", DurationError::TooLarge),
            ("9223372036854775808s", DurationError::TooLarge),
        ] {
            assert_eq!(parse_duration(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn durations_format() {
        for (seconds, exact, approximately) in [
            (0, "0s", "0s"),
            (59, "59s", "59s"),
            (2 * H, "2h", "2h"),
            (D + 12 * H, "1d12h", "1d12h"),
            (7 * D + 3 * H, "1w3h", "1w"),
            (35 * 60 + 20, "35m20s", "35m20s"),
            (3 * D + 4 * H + 5 * 60, "3d4h5m", "3d4h"),
            (8 * D + 5, "1w1d5s", "1w1d"),
        ] {
            let duration = Duration::from_secs(seconds);
            assert_eq!(format_duration(duration), exact, "{seconds}");
            assert_eq!(format_approximately(duration), approximately, "{seconds}");
        }
    }

    proptest::proptest! {
        #[test]
        fn durations_round_trip(seconds in 0u64..=(i64::MAX as u64)) {
            let duration = Duration::from_secs(seconds);
            proptest::prop_assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }

    #[test]
    fn releases_are_recognised() {
        for (tag, release) in [
            ("1.2.3", true),
            ("v1.2.3", true),
            ("v10.20.30", true),
            ("0.0.0", true),
            ("v1.2", false),
            ("1.2.3.4", false),
            ("v1.2.3-rc.1", false),
            ("1.2.3-beta", false),
            ("1.2.3_build5", false),
            ("V1.2.3", false),
            ("vv1.2.3", false),
            ("latest", false),
            ("1..3", false),
        ] {
            assert_eq!(looks_like_release(tag), release, "{tag}");
        }
    }

    fn patterns(policy: &Policy) -> Vec<&str> {
        policy.keep_tags.iter().map(KeepTag::pattern).collect()
    }

    #[test]
    fn nothing_configured_gives_the_conservative_default() {
        let policy = Policy::resolve(None, &PolicyFlags::default()).unwrap();
        assert_eq!(
            policy,
            Policy {
                keep_last: Some(10),
                keep_within: Some(Duration::from_secs(2 * H)),
                keep_tags: Vec::new(),
                delete_untagged: false,
                delete_releases: false,
                max_deletes: None,
                max_duration: None,
                delete_tags: Vec::new(),
                git: GitRules::Default,
                grace_period: DEFAULT_GRACE_PERIOD,
                releases: None,
            }
        );
        // the default is also what an empty section and switches alone give
        let section = PolicySection {
            delete_untagged: Some(true),
            max_deletes: Some(5),
            ..PolicySection::default()
        };
        let policy = Policy::resolve(Some(&section), &PolicyFlags::default()).unwrap();
        assert_eq!((policy.keep_last, policy.keep_within), (Some(10), Some(DEFAULT_KEEP_WITHIN)));
        assert!(policy.delete_untagged);
        assert_eq!(policy.max_deletes, Some(5));
    }

    #[test]
    fn a_count_or_age_rule_replaces_the_default_and_zero_turns_it_off() {
        let file = |keep_last: Option<usize>, keep_within: Option<&str>, keep_tags: &[&str]| {
            PolicySection {
                keep_last,
                keep_within: keep_within.map(str::to_owned),
                keep_tags: keep_tags.iter().map(|tag| (*tag).to_owned()).collect(),
                ..PolicySection::default()
            }
        };
        let flag =
            |keep_last: Option<usize>, keep_within: Option<&str>, keep_tags: &[&str]| PolicyFlags {
                keep_last,
                keep_within: keep_within.map(str::to_owned),
                keep_tags: keep_tags.iter().map(|tag| (*tag).to_owned()).collect(),
                ..PolicyFlags::default()
            };
        let default = (Some(DEFAULT_KEEP_LAST), Some(2 * H));
        for (section, flags, want) in [
            (file(Some(3), None, &[]), flag(None, None, &[]), (Some(3), None)),
            (file(None, None, &[]), flag(None, Some("1d"), &[]), (None, Some(D))),
            // keep_tags add to the default instead of replacing it
            (file(None, None, &["latest"]), flag(None, None, &[]), default),
            (file(None, None, &[]), flag(None, None, &["main"]), default),
            // an explicit zero turns a rule off, and with it the default
            (file(Some(0), None, &[]), flag(None, None, &[]), (None, None)),
            (file(Some(5), Some("0s"), &[]), flag(None, None, &[]), (Some(5), None)),
            (file(Some(0), None, &[]), flag(Some(4), None, &[]), (Some(4), None)),
            (file(Some(4), None, &[]), flag(Some(0), Some("0m"), &["latest"]), (None, None)),
        ] {
            let policy = Policy::resolve(Some(&section), &flags).unwrap();
            let got = (policy.keep_last, policy.keep_within.map(|duration| duration.as_secs()));
            assert_eq!(got, want, "{section:?} {flags:?}");
        }
    }

    #[test]
    fn flags_override_scalars_and_extend_keep_tags() {
        let section = PolicySection {
            keep_last: Some(10),
            keep_within: Some("2h".into()),
            keep_tags: vec!["latest".into(), r"v\d+\..*".into()],
            delete_untagged: Some(false),
            delete_releases: Some(true),
            max_deletes: Some(100),
            max_duration: Some("10m".into()),
            ..PolicySection::default()
        };
        let flags = PolicyFlags {
            keep_last: Some(3),
            keep_within: Some("1d12h".into()),
            keep_tags: vec!["main".into()],
            delete_untagged: true,
            delete_releases: false,
            max_deletes: None,
            max_duration: Some("1h".into()),
            ..PolicyFlags::default()
        };
        let policy = Policy::resolve(Some(&section), &flags).unwrap();
        assert_eq!(policy.keep_last, Some(3));
        assert_eq!(policy.keep_within, Some(Duration::from_secs(D + 12 * H)));
        assert_eq!(patterns(&policy), ["latest", r"v\d+\..*", "main"]);
        assert!(policy.delete_untagged, "a true switch turns the setting on");
        assert!(policy.delete_releases, "an absent switch leaves the file's value");
        assert_eq!(policy.max_deletes, Some(100), "an absent flag leaves the file's value");
        assert_eq!(policy.max_duration, Some(Duration::from_secs(H)));
    }

    #[test]
    fn keep_tags_are_anchored() {
        let policy = Policy::resolve(
            None,
            &PolicyFlags {
                keep_tags: vec!["latest".into(), r"v\d+".into(), "main|dev".into()],
                ..Default::default()
            },
        )
        .unwrap();
        for (tag, pattern) in [
            ("latest", Some("latest")),
            ("latest-old", None),
            ("my-latest", None),
            ("v12", Some(r"v\d+")),
            ("v12.1", None),
            ("main", Some("main|dev")),
            ("dev", Some("main|dev")),
            ("maintenance", None),
            ("old-dev", None),
        ] {
            assert_eq!(policy.keep_tag_match(&[tag]).map(KeepTag::pattern), pattern, "{tag}");
        }
        assert_eq!(
            policy.keep_tag_match(&["api-latest", "latest"]).map(KeepTag::pattern),
            Some("latest")
        );
    }

    #[test]
    fn errors_name_the_value_and_where_it_came_from() {
        let file = PolicySection {
            keep_within: Some("2x".into()),
            keep_tags: vec!["v(".into()],
            ..Default::default()
        };
        let error = Policy::resolve(Some(&file), &PolicyFlags::default()).unwrap_err();
        assert!(
            matches!(&error, PolicyError::Duration { setting: SettingName { setting: Setting::KeepWithin, origin: Origin::File }, value, source: DurationError::UnknownUnit('x') } if value == "2x"),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "invalid duration `2x` for `cleanup.keep_within`");
        assert_eq!(error.exit_status(), ExitStatus::Usage);

        let flags = PolicyFlags { max_duration: Some("5".into()), ..Default::default() };
        let error = Policy::resolve(None, &flags).unwrap_err();
        assert_eq!(error.to_string(), "invalid duration `5` for `--max-duration`");

        let file =
            PolicySection { keep_tags: vec!["ok".into(), "v(".into()], ..Default::default() };
        let error = Policy::resolve(Some(&file), &PolicyFlags::default()).unwrap_err();
        assert!(
            matches!(&error, PolicyError::KeepTag { pattern, .. } if pattern == "v("),
            "{error:?}"
        );
        assert_eq!(error.to_string(), "invalid regular expression `v(` in `cleanup.keep_tags`");
        assert!(error.hint().is_some_and(|hint| hint.contains("whole tag")));

        let flags = PolicyFlags { keep_tags: vec!["[".into()], ..Default::default() };
        let error = Policy::resolve(None, &flags).unwrap_err();
        assert_eq!(error.to_string(), "invalid regular expression `[` in `--keep-tag`");

        for (section, flags, setting) in [
            (
                PolicySection { max_deletes: Some(0), ..Default::default() },
                PolicyFlags::default(),
                "cleanup.max_deletes",
            ),
            (
                PolicySection::default(),
                PolicyFlags { max_duration: Some("0s".into()), ..Default::default() },
                "--max-duration",
            ),
        ] {
            let error = Policy::resolve(Some(&section), &flags).unwrap_err();
            assert!(matches!(error, PolicyError::Zero { .. }), "{error:?}");
            assert_eq!(error.to_string(), format!("`{setting}` must be more than zero"));
            assert_eq!(error.hint(), Some(format!("remove `{setting}` to run without that limit")));
        }
    }

    #[test]
    fn the_section_reads_from_yaml_and_rejects_unknown_keys() {
        let section: PolicySection = serde_saphyr::from_str(
            "keep_last: 10\nkeep_within: 2h\nkeep_tags: [\"latest\", \"v\\\\d+\\\\..*\"]\ndelete_untagged: true\n",
        )
        .unwrap();
        assert_eq!(
            section,
            PolicySection {
                keep_last: Some(10),
                keep_within: Some("2h".into()),
                keep_tags: vec!["latest".into(), r"v\d+\..*".into()],
                delete_untagged: Some(true),
                ..Default::default()
            }
        );
        let error = serde_saphyr::from_str::<PolicySection>("keep_lats: 3\n").unwrap_err();
        assert!(error.to_string().contains("keep_lats"), "{error}");
    }

    #[test]
    fn the_schema_lists_every_setting_and_nothing_else() {
        let schema = serde_json::to_value(schemars::schema_for!(PolicySection)).unwrap();
        let mut keys: Vec<&str> =
            schema["properties"].as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "delete_releases",
                "delete_untagged",
                "grace_period",
                "keep_last",
                "keep_policies",
                "keep_tags",
                "keep_within",
                "max_deletes",
                "max_duration",
                "releases"
            ]
        );
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false));
        assert_eq!(schema["properties"]["keep_within"]["pattern"], "^([0-9]+[wdhms])+$");
        assert_eq!(schema["properties"]["max_deletes"]["minimum"], 1);
    }

    #[test]
    fn the_releases_section_needs_a_count_and_excludes_delete_releases() {
        let resolve = |yaml: &str, flags: &PolicyFlags| {
            let section: PolicySection = serde_saphyr::from_str(yaml).unwrap();
            Policy::resolve(Some(&section), flags)
        };
        let policy = resolve("releases: {keep_per_major: 3}\n", &PolicyFlags::default()).unwrap();
        assert_eq!(
            policy.releases,
            Some(ReleaseRules {
                per_major: Some(3),
                per_minor: None,
                pre_releases: PreReleases::UntilReleased
            })
        );
        let policy =
            resolve("releases: {keep_per_minor: 1, pre_releases: keep}\n", &PolicyFlags::default())
                .unwrap();
        assert_eq!(policy.releases.unwrap().pre_releases, PreReleases::Keep);
        assert_eq!(resolve("keep_last: 3\n", &PolicyFlags::default()).unwrap().releases, None);

        let message = |yaml: &str, flags: &PolicyFlags| {
            let error = resolve(yaml, flags).unwrap_err();
            format!("{error}; {}", error.hint().unwrap())
        };
        assert_eq!(
            message("releases: {}\n", &PolicyFlags::default()),
            "`cleanup.releases` names neither `keep_per_major` nor `keep_per_minor`; write e.g. `releases: {keep_per_major: 3, keep_per_minor: 1}`, or remove the section to keep every release"
        );
        assert!(
            message("releases: {keep_per_major: 2, keep_per_minor: 0}\n", &PolicyFlags::default())
                .starts_with("`cleanup.releases.keep_per_minor` must be more than zero;")
        );
        assert!(
            message(
                "releases: {keep_per_major: 2}\ndelete_releases: true\n",
                &PolicyFlags::default()
            )
            .starts_with("`cleanup.releases` and `cleanup.delete_releases` contradict each other;")
        );
        let flag = PolicyFlags { delete_releases: true, ..PolicyFlags::default() };
        assert!(
            message("releases: {keep_per_major: 2}\n", &flag)
                .starts_with("`cleanup.releases` and `--delete-releases` contradict each other;")
        );
        // the flags override the section's counts, or make one
        let flags = PolicyFlags { keep_releases_per_minor: Some(2), ..PolicyFlags::default() };
        let rules = resolve("releases: {keep_per_major: 3, pre_releases: rules}\n", &flags)
            .unwrap()
            .releases
            .unwrap();
        assert_eq!((rules.per_major, rules.per_minor), (Some(3), Some(2)));
        assert_eq!(rules.pre_releases, PreReleases::Rules);
        let rules = resolve("keep_last: 1\n", &flags).unwrap().releases.unwrap();
        assert_eq!((rules.per_major, rules.per_minor), (None, Some(2)));
        let zero = PolicyFlags { keep_releases_per_major: Some(0), ..PolicyFlags::default() };
        assert!(
            message("keep_last: 1\n", &zero)
                .starts_with("`--keep-releases-per-major` must be more than zero;")
        );
        // `delete_releases: false` next to the section says nothing contradictory
        assert!(
            resolve(
                "releases: {keep_per_major: 2}\ndelete_releases: false\n",
                &PolicyFlags::default()
            )
            .is_ok()
        );
        assert!(
            serde_saphyr::from_str::<PolicySection>("releases: {pre_releases: never}\n").is_err()
        );
    }

    fn keep_policies(yaml: &str) -> Result<Policy, PolicyError> {
        let section: PolicySection = serde_saphyr::from_str(yaml).unwrap();
        Policy::resolve(Some(&section), &PolicyFlags::default())
    }

    #[test]
    fn keep_policies_read_as_werf_writes_them() {
        let policy = keep_policies(
            "keep_policies:\n  - references:\n      tag: \".*\"\n      limit: {last: 10}\n  - references:\n      branch: \"main|release/.*\"\n      limit: {last: 5, in: 168h, operator: Or}\n    images_per_reference: {last: 2, in: 7d, operator: And}\ngrace_period: 3d\n",
        )
        .unwrap();
        let GitRules::Configured(policies) = &policy.git else { panic!("{:?}", policy.git) };
        assert_eq!(policies.len(), 2);
        assert_eq!(policies[0].kind, ReferenceKind::Tag);
        assert_eq!(policies[0].references, Limit { last: Some(10), ..Limit::default() });
        assert_eq!(policies[0].images, NEWEST_IMAGE, "no images_per_reference: the newest one");
        let week = Duration::from_secs(7 * D);
        assert_eq!(policies[1].kind, ReferenceKind::Branch);
        assert!(
            policies[1].pattern.matches("release/2.x") && !policies[1].pattern.matches("xmain")
        );
        assert_eq!(
            policies[1].references,
            Limit { last: Some(5), within: Some(week), operator: Operator::Or }
        );
        assert_eq!(
            policies[1].images,
            Limit { last: Some(2), within: Some(week), operator: Operator::And }
        );
        assert_eq!(policy.grace_period, Duration::from_secs(3 * D));
        // keep_policies do not turn the count defaults off: they decide images git cannot place
        assert_eq!((policy.keep_last, policy.keep_within), (Some(10), Some(DEFAULT_KEEP_WITHIN)));
        let counted = keep_policies("keep_last: 3\n").unwrap();
        assert_eq!(counted.git, GitRules::Off, "count rules alone, as before");
    }

    #[test]
    fn limits_combine_by_their_operator() {
        let hour = Duration::from_secs(H);
        let and = Limit { last: Some(2), within: Some(hour), operator: Operator::And };
        let or = Limit { operator: Operator::Or, ..and };
        for (rank, age, want_and, want_or) in [
            (0, Some(30 * 60), true, true),
            (0, Some(2 * H), false, true),
            (5, Some(30 * 60), false, true),
            (5, Some(2 * H), false, false),
            (0, None, false, true),
        ] {
            let age = age.map(Duration::from_secs);
            assert_eq!(and.admits(rank, age), want_and, "{rank} {age:?}");
            assert_eq!(or.admits(rank, age), want_or, "{rank} {age:?}");
        }
        assert!(Limit::default().admits(1000, None));
        assert_eq!(and.describe(), "the newest 2 and those of the last 1h");
        assert_eq!(NEWEST_IMAGE.describe(), "the newest 1");
    }

    #[test]
    fn keep_policy_errors_name_the_policy() {
        for (yaml, message) in [
            (
                "keep_policies:\n  - references: {}\n",
                "`cleanup.keep_policies[0].references` must name exactly one of `branch` and `tag`",
            ),
            (
                "keep_policies:\n  - references: {tag: x}\n  - references: {branch: a, tag: b}\n",
                "`cleanup.keep_policies[1].references` must name exactly one of `branch` and `tag`",
            ),
            (
                "keep_policies:\n  - references: {branch: \"(\"}\n",
                "invalid regular expression `(` in `cleanup.keep_policies[0]`",
            ),
            (
                "keep_policies:\n  - references: {branch: main, limit: {in: 7x}}\n",
                "invalid duration `7x` for `in` in `cleanup.keep_policies[0]`",
            ),
            (
                "keep_policies:\n  - references: {branch: main}\n    images_per_reference: {last: 0}\n",
                "`last` in `cleanup.keep_policies[0]` must be more than zero",
            ),
            ("grace_period: soon\n", "invalid duration `soon` for `cleanup.grace_period`"),
        ] {
            let error = keep_policies(yaml).unwrap_err();
            assert_eq!(error.to_string(), message, "{yaml}");
            assert_eq!(error.exit_status(), ExitStatus::Usage);
            assert!(error.hint().is_some());
        }
        for bad in [
            "keep_policies:\n  - references: {branch: main, count: 3}\n",
            "keep_policies:\n  - references: {branch: main, limit: {operator: Xor}}\n",
        ] {
            assert!(serde_saphyr::from_str::<PolicySection>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_set_names_the_default_branch() {
        let policies = default_keep_policies(Some("trunk.v2"));
        assert_eq!(policies.len(), 3);
        assert!(
            policies[2].pattern.matches("trunk.v2") && !policies[2].pattern.matches("trunkxv2")
        );
        let fallback = default_keep_policies(None);
        assert!(fallback[2].pattern.matches("main") && fallback[2].pattern.matches("master"));
    }
}
