//! Rendering the variables `ci-env` exports, per `--shell`.
//!
//! Owns [`Shell`], [`Export`], [`render`] and [`skip_comment`]: pure functions from names and
//! values to text, quoting each value so that the shell reads back exactly the bytes given (or
//! refusing a value the target cannot carry). Does not decide which variables to export, does
//! not write files and does not print: `ci-env` hands the text to the output edge.

use std::fmt;
use std::str::FromStr;

use crate::exit::{Classify, ExitStatus};

/// The syntax `ci-env` prints its variables in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// POSIX sh and compatible (`bash`, `zsh`, `dash`): `export NAME='value'`.
    Sh,
    /// PowerShell: `$env:NAME = 'value'`.
    Powershell,
    /// A Windows batch file to `call`: `set "NAME=value"`.
    Cmd,
    /// `NAME=value` lines, as GitLab's dotenv reports read them (no quoting, no expansion).
    Dotenv,
    /// GitHub Actions: lines for the file `$GITHUB_ENV` names, plus `::add-mask::` commands.
    Github,
}

impl Shell {
    /// Every shell, in the order `--shell` documents them.
    pub const ALL: [Self; 5] = [Self::Sh, Self::Powershell, Self::Cmd, Self::Dotenv, Self::Github];

    /// The name used by `--shell`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sh => "sh",
            Self::Powershell => "powershell",
            Self::Cmd => "cmd",
            Self::Dotenv => "dotenv",
            Self::Github => "github",
        }
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Shell {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|shell| shell.name() == input).ok_or_else(|| {
            format!("unknown shell `{input}`; expected sh, powershell, cmd, dotenv or github")
        })
    }
}

/// One variable to export. `secret` values are masked on GitHub (and must not be logged).
#[derive(Clone, PartialEq, Eq)]
pub struct Export {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl Export {
    /// A variable whose value may be shown.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into(), secret: false }
    }

    /// A variable whose value must be masked and never logged.
    pub fn secret(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self { name: name.into(), value: value.into(), secret: true }
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value: &dyn fmt::Debug = if self.secret { &"****" } else { &self.value };
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("value", value)
            .field("secret", &self.secret)
            .finish()
    }
}

/// The text [`render`] produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    /// What goes to stdout (or the `-o` file): one line per variable, each ending in `\n`.
    /// For [`Shell::Github`], the `::add-mask::` commands for every secret value instead.
    pub stdout: String,
    /// For [`Shell::Github`] only (empty otherwise): the text to append to the file
    /// `$GITHUB_ENV` names.
    pub github_env: String,
}

/// Why a variable cannot be rendered for a shell. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error(
        "`{0}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
    )]
    InvalidName(String),
    #[error("The value of `{name}` contains a NUL byte, which no environment variable can hold")]
    Nul { name: String },
    #[error("The value of `{name}` spans several lines, which `--shell {shell}` cannot express")]
    Newline { name: String, shell: Shell },
    #[error("The value of `{name}` contains `\"`, which `--shell cmd` cannot express safely")]
    Quote { name: String },
}

impl Classify for ExportError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Newline { .. } | Self::Quote { .. } => {
                Some("use `--shell sh`, `--shell powershell` or `--shell github`".to_owned())
            }
            Self::InvalidName(_) | Self::Nul { .. } => None,
        }
    }
}

/// Renders `exports` for `shell`, in order. Fails on the first variable the shell cannot carry.
pub fn render(shell: Shell, exports: &[Export]) -> Result<Rendered, ExportError> {
    let mut rendered = Rendered::default();
    for export in exports {
        check(export)?;
        match shell {
            Shell::Sh => rendered.stdout.push_str(&sh_line(export)),
            Shell::Powershell => rendered.stdout.push_str(&powershell_line(export)),
            Shell::Cmd => rendered.stdout.push_str(&cmd_line(export)?),
            Shell::Dotenv => rendered.stdout.push_str(&dotenv_line(export)?),
            Shell::Github => {
                if export.secret {
                    rendered.stdout.push_str(&mask_lines(&export.value));
                }
                rendered.github_env.push_str(&github_env_entry(export));
            }
        }
    }
    Ok(rendered)
}

/// A comment line (ending in `\n`) saying that `name` was not exported, and why, e.g.
/// `# skip DOCKHAND_REPO: already set`. For [`Shell::Github`] the line belongs on stdout.
pub fn skip_comment(shell: Shell, name: &str, reason: &str) -> String {
    let one_line = |text: &str| text.replace(['\r', '\n'], " ");
    let marker = if shell == Shell::Cmd { "REM" } else { "#" };
    format!("{marker} skip {}: {}\n", one_line(name), one_line(reason))
}

fn check(export: &Export) -> Result<(), ExportError> {
    let mut chars = export.name.chars();
    let valid_name = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(ExportError::InvalidName(export.name.clone()));
    }
    if export.value.contains('\0') {
        return Err(ExportError::Nul { name: export.name.clone() });
    }
    Ok(())
}

fn single_line(export: &Export, shell: Shell) -> Result<(), ExportError> {
    if export.value.contains(['\n', '\r']) {
        return Err(ExportError::Newline { name: export.name.clone(), shell });
    }
    Ok(())
}

/// `export NAME='value'`: nothing is special inside single quotes except `'` itself, which
/// closes the quote, gets escaped, and reopens it.
fn sh_line(export: &Export) -> String {
    format!("export {}='{}'\n", export.name, export.value.replace('\'', r"'\''"))
}

/// `$env:NAME = 'value'`, in ASCII only: Windows PowerShell 5.1 reads a script without a BOM
/// as the ANSI code page (cp1252), where a UTF-8 `ё` turns into bytes that can end the string
/// early. So ASCII runs go in single quotes (`'` doubled) and every other character is added as
/// `[char]0xXXXX` (or `[char]::ConvertFromUtf32(0xXXXXX)` beyond the BMP), which also covers
/// the typographic quotes PowerShell would take for `'`. The expression starts with a string,
/// so `+` concatenates.
fn powershell_line(export: &Export) -> String {
    use std::fmt::Write as _;
    let mut expression = String::from("'");
    let mut quoted = true;
    for c in export.value.chars() {
        if c.is_ascii() {
            if !quoted {
                expression.push_str(" + '");
                quoted = true;
            }
            if c == '\'' {
                expression.push('\'');
            }
            expression.push(c);
        } else {
            if quoted {
                expression.push('\'');
                quoted = false;
            }
            let code = u32::from(c);
            if code <= 0xFFFF {
                let _ = write!(expression, " + [char]0x{code:04X}");
            } else {
                let _ = write!(expression, " + [char]::ConvertFromUtf32(0x{code:X})");
            }
        }
    }
    if quoted {
        expression.push('\'');
    }
    format!("$env:{} = {expression}\n", export.name)
}

/// `set "NAME=value"`: inside the quotes `&|<>^` are literal; `%` is doubled, which is how a
/// batch file writes a literal `%`. A `"` would end the quoting, so it is refused. `!` is
/// literal as long as delayed expansion is off, as it is by default.
fn cmd_line(export: &Export) -> Result<String, ExportError> {
    single_line(export, Shell::Cmd)?;
    if export.value.contains('"') {
        return Err(ExportError::Quote { name: export.name.clone() });
    }
    Ok(format!("set \"{}={}\"\n", export.name, export.value.replace('%', "%%")))
}

/// `NAME=value`, verbatim: dotenv readers take the rest of the line as the value.
fn dotenv_line(export: &Export) -> Result<String, ExportError> {
    single_line(export, Shell::Dotenv)?;
    Ok(format!("{}={}\n", export.name, export.value))
}

/// `NAME=value`, or for a value with line breaks a `NAME<<DELIMITER` block ended by a line
/// holding only the delimiter, which is chosen so that it does not occur in the value.
fn github_env_entry(export: &Export) -> String {
    if !export.value.contains(['\n', '\r']) {
        return format!("{}={}\n", export.name, export.value);
    }
    let mut delimiter = "DOCKHAND_EOF".to_owned();
    let mut n = 0_usize;
    while export.value.contains(delimiter.as_str()) {
        n += 1;
        delimiter = format!("DOCKHAND_EOF_{n}");
    }
    format!("{}<<{delimiter}\n{}\n{delimiter}\n", export.name, export.value)
}

/// `::add-mask::` for each non-empty line of `value`. The runner unescapes `%25`, `%0D` and
/// `%0A` in command data, so `%` is escaped to keep the masked text equal to the value.
pub fn mask_lines(value: &str) -> String {
    let mut masks = String::new();
    for line in value.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line)) {
        if !line.is_empty() {
            masks.push_str("::add-mask::");
            masks.push_str(&line.replace('%', "%25").replace('\r', "%0D"));
            masks.push('\n');
        }
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::{Export, ExportError, Rendered, Shell, render, skip_comment};

    /// Values that break naive quoting.
    const HARD_VALUES: [&str; 9] = [
        "plain",
        "with spaces  and\ttab",
        "it's",
        r#"say "hi""#,
        "$HOME ${PATH} $(id)",
        "`id` and \\ backslash",
        "100% %PATH% ^&|<>()!",
        "",
        "''''",
    ];

    fn one(shell: Shell, export: Export) -> Result<Rendered, ExportError> {
        render(shell, &[export])
    }

    #[test]
    fn shell_names_round_trip() {
        for shell in Shell::ALL {
            assert_eq!(shell.name().parse::<Shell>(), Ok(shell));
        }
        assert!("bash".parse::<Shell>().unwrap_err().contains("`bash`"));
    }

    #[test]
    fn rendered_lines() {
        for (shell, value, want) in [
            (Shell::Sh, "a b", "export NAME='a b'\n"),
            (Shell::Sh, "it's", "export NAME='it'\\''s'\n"),
            (Shell::Sh, "$X `id` \"q\"", "export NAME='$X `id` \"q\"'\n"),
            (Shell::Sh, "l1\nl2", "export NAME='l1\nl2'\n"),
            (Shell::Powershell, "it's", "$env:NAME = 'it''s'\n"),
            (Shell::Powershell, "$X `n \"q\"", "$env:NAME = '$X `n \"q\"'\n"),
            (Shell::Powershell, "it\u{2019}s", "$env:NAME = 'it' + [char]0x2019 + 's'\n"),
            (Shell::Powershell, "\u{451};calc;#", "$env:NAME = '' + [char]0x0451 + ';calc;#'\n"),
            (
                Shell::Powershell,
                "a\u{1F600}",
                "$env:NAME = 'a' + [char]::ConvertFromUtf32(0x1F600)\n",
            ),
            (Shell::Powershell, "", "$env:NAME = ''\n"),
            (Shell::Powershell, "l1\nl2", "$env:NAME = 'l1\nl2'\n"),
            (Shell::Cmd, "100% done", "set \"NAME=100%% done\"\n"),
            (Shell::Cmd, "a&b|c<d>e^f", "set \"NAME=a&b|c<d>e^f\"\n"),
            (Shell::Cmd, "it's $X", "set \"NAME=it's $X\"\n"),
            (Shell::Dotenv, "a b 'c' \"d\" $e %f%", "NAME=a b 'c' \"d\" $e %f%\n"),
            (Shell::Dotenv, "", "NAME=\n"),
        ] {
            let rendered = one(shell, Export::new("NAME", value)).unwrap();
            assert_eq!(rendered.stdout, want, "{shell} {value:?}");
            assert_eq!(rendered.github_env, "", "{shell} {value:?}");
        }
    }

    proptest::proptest! {
        /// Whatever the value, the PowerShell line is ASCII, so cp1252 (Windows PowerShell 5.1
        /// without a BOM) and UTF-8 read the same bytes.
        #[test]
        fn powershell_lines_are_ascii(value in proptest::prelude::any::<String>()) {
            let value: String = value.chars().filter(|c| *c != '\0').collect();
            let rendered = one(Shell::Powershell, Export::new("NAME", &value)).unwrap();
            proptest::prop_assert!(rendered.stdout.is_ascii(), "{:?}", rendered.stdout);
        }
    }

    #[test]
    fn refused_values_name_the_variable() {
        for (shell, value, want) in [
            (Shell::Cmd, "l1\nl2", ExportError::Newline { name: "NAME".into(), shell: Shell::Cmd }),
            (Shell::Cmd, "l1\rl2", ExportError::Newline { name: "NAME".into(), shell: Shell::Cmd }),
            (Shell::Cmd, "say \"hi\"", ExportError::Quote { name: "NAME".into() }),
            (
                Shell::Dotenv,
                "l1\nl2",
                ExportError::Newline { name: "NAME".into(), shell: Shell::Dotenv },
            ),
            (Shell::Sh, "nul\0byte", ExportError::Nul { name: "NAME".into() }),
            (Shell::Github, "nul\0byte", ExportError::Nul { name: "NAME".into() }),
        ] {
            assert_eq!(one(shell, Export::new("NAME", value)), Err(want), "{shell} {value:?}");
        }
        let error = one(Shell::Dotenv, Export::secret("PASS", "l1\nsecret-line")).unwrap_err();
        assert!(error.to_string().contains("`PASS`"));
        assert!(!error.to_string().contains("secret-line"));
    }

    #[test]
    fn invalid_names_are_refused_for_every_shell() {
        for shell in Shell::ALL {
            for name in ["", "1A", "A-B", "A B", "A;rm", "A=B", "ÄB"] {
                assert_eq!(
                    one(shell, Export::new(name, "v")),
                    Err(ExportError::InvalidName(name.to_owned())),
                    "{shell} {name:?}"
                );
            }
            assert!(one(shell, Export::new("_Ok_1", "v")).is_ok(), "{shell}");
        }
    }

    #[test]
    fn sh_lines_read_back_byte_for_byte() {
        let mut values: Vec<String> = HARD_VALUES.iter().map(|v| (*v).to_owned()).collect();
        values.push("line 1\nline 2\n".to_owned());
        values.push("trailing newline\n\n".to_owned());
        values.push("unicode: \u{e9}\u{2019}\u{1F600}".to_owned());
        for value in values {
            let rendered = one(Shell::Sh, Export::new("DOCKHAND_T", value.clone())).unwrap();
            let script = format!("{}printf %s \"$DOCKHAND_T\"", rendered.stdout);
            let output = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .env_clear()
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{value:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            assert_eq!(output.stdout, value.as_bytes(), "{value:?}");
        }
    }

    #[test]
    fn github_single_line_and_masks() {
        let rendered = render(
            Shell::Github,
            &[
                Export::new("DOCKHAND_REPO", "ghcr.io/acme/app"),
                Export::secret("DOCKHAND_TOKEN", "p%40ss"),
                Export::secret("DOCKHAND_EMPTY", ""),
            ],
        )
        .unwrap();
        assert_eq!(
            rendered.github_env,
            "DOCKHAND_REPO=ghcr.io/acme/app\nDOCKHAND_TOKEN=p%40ss\nDOCKHAND_EMPTY=\n"
        );
        assert_eq!(rendered.stdout, "::add-mask::p%2540ss\n");
    }

    #[test]
    fn github_multi_line_values_use_a_delimiter_not_in_the_value() {
        for (value, want) in [
            ("a\nb", "K<<DOCKHAND_EOF\na\nb\nDOCKHAND_EOF\n"),
            ("DOCKHAND_EOF\nx", "K<<DOCKHAND_EOF_1\nDOCKHAND_EOF\nx\nDOCKHAND_EOF_1\n"),
            (
                "DOCKHAND_EOF\nDOCKHAND_EOF_1\n",
                "K<<DOCKHAND_EOF_2\nDOCKHAND_EOF\nDOCKHAND_EOF_1\n\nDOCKHAND_EOF_2\n",
            ),
        ] {
            let rendered = one(Shell::Github, Export::new("K", value)).unwrap();
            assert_eq!(rendered.github_env, want, "{value:?}");
            assert_eq!(rendered.stdout, "", "not secret, not masked");
        }
    }

    #[test]
    fn github_masks_every_line_of_a_multi_line_secret() {
        let rendered =
            one(Shell::Github, Export::secret("KEY", "-----BEGIN-----\r\nabc\n\n-----END-----\n"))
                .unwrap();
        assert_eq!(
            rendered.stdout,
            "::add-mask::-----BEGIN-----\n::add-mask::abc\n::add-mask::-----END-----\n"
        );
        assert!(rendered.github_env.starts_with("KEY<<DOCKHAND_EOF\n-----BEGIN-----\r\nabc\n"));
    }

    #[test]
    fn skip_comments() {
        for (shell, want) in [
            (Shell::Sh, "# skip DOCKHAND_REPO: already set\n"),
            (Shell::Powershell, "# skip DOCKHAND_REPO: already set\n"),
            (Shell::Cmd, "REM skip DOCKHAND_REPO: already set\n"),
            (Shell::Dotenv, "# skip DOCKHAND_REPO: already set\n"),
            (Shell::Github, "# skip DOCKHAND_REPO: already set\n"),
        ] {
            assert_eq!(skip_comment(shell, "DOCKHAND_REPO", "already set"), want, "{shell}");
        }
        assert_eq!(skip_comment(Shell::Sh, "A", "two\nlines"), "# skip A: two lines\n");
    }

    #[test]
    fn debug_hides_secret_values() {
        let debug = format!("{:?}", Export::secret("TOKEN", "hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(format!("{:?}", Export::new("REPO", "ghcr.io/a/b")).contains("ghcr.io/a/b"));
    }
}
