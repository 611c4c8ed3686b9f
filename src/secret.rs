//! Secrets: passwords and tokens that must never be printed.
//!
//! Owns the [`Secret`] wrapper. Its `Debug` and `Display` are redacted, it does not implement
//! `Serialize`, and the only way to read the value is [`Secret::expose`], which makes every use
//! of a credential easy to find in review. [`Credential`] pairs a secret with what it is
//! presented as.

use std::fmt;

/// A credential (password, token). Redacted in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call it only where the value leaves the process on purpose: an
    /// `Authorization` header, a child's stdin, a `config.json` written with mode 0600.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `true` if and only if the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// What a client presents to a registry, as found in a docker config or a CI environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credential {
    /// No credentials; token services may still hand out anonymous pull tokens.
    #[default]
    Anonymous,
    /// A user name with a password or access token.
    Basic { username: String, password: Secret },
    /// An OAuth identity (refresh) token: exchanged at the registry's token endpoint with
    /// `grant_type=refresh_token`, never sent as a password.
    IdentityToken(Secret),
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(****)");
        assert_eq!(secret.to_string(), "****");
        assert_eq!(secret.expose(), "hunter2");
    }
}
