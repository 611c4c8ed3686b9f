//! Errors of the OCI distribution client and the registry's error envelope.
//!
//! Owns [`DistributionError`], its exit classification, and [`ErrorEnvelope`]: the
//! `{"errors":[{"code","message","detail"}]}` body registries send with a failed request, parsed
//! into typed [`Code`]s so callers match on codes, never on message text. Never holds a password
//! or token: credentials appear here only as the account name.

use std::fmt;

use reqwest::StatusCode;
use serde::Deserialize;

use crate::exit::{Classify, ExitStatus};
use crate::reference::RegistryHost;

/// One error code of the distribution spec, or a vendor's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    ManifestUnverified,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// A code outside the spec, kept verbatim.
    Other(String),
}

impl Code {
    /// The code as the registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::ManifestUnverified => "MANIFEST_UNVERIFIED",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::TagInvalid => "TAG_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Other(code) => code,
        }
    }
}

impl From<String> for Code {
    fn from(code: String) -> Self {
        match code.as_str() {
            "BLOB_UNKNOWN" => Self::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => Self::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => Self::BlobUploadUnknown,
            "DIGEST_INVALID" => Self::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => Self::ManifestBlobUnknown,
            "MANIFEST_INVALID" => Self::ManifestInvalid,
            "MANIFEST_UNKNOWN" => Self::ManifestUnknown,
            "MANIFEST_UNVERIFIED" => Self::ManifestUnverified,
            "NAME_INVALID" => Self::NameInvalid,
            "NAME_UNKNOWN" => Self::NameUnknown,
            "SIZE_INVALID" => Self::SizeInvalid,
            "TAG_INVALID" => Self::TagInvalid,
            "UNAUTHORIZED" => Self::Unauthorized,
            "DENIED" => Self::Denied,
            "UNSUPPORTED" => Self::Unsupported,
            "TOOMANYREQUESTS" | "TOO_MANY_REQUESTS" => Self::TooManyRequests,
            _ => Self::Other(code),
        }
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a registry error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegistryErrorEntry {
    pub code: Code,
    #[serde(default)]
    pub message: String,
    /// Free-form JSON the registry attached, kept as text.
    #[serde(default, deserialize_with = "detail_as_text")]
    pub detail: Option<String>,
}

fn detail_as_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(value.filter(|value| !value.is_null()).map(|value| value.to_string()))
}

/// Longest excerpt of a non-envelope body kept for the error message.
const EXCERPT_LIMIT: usize = 200;

/// What a registry said about a failed request: its error envelope, or (when the body was not
/// one) a short excerpt of the body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorEnvelope {
    pub errors: Vec<RegistryErrorEntry>,
    /// The start of a body that was not an error envelope (e.g. `text/plain`), if any.
    pub excerpt: Option<String>,
}

#[derive(Deserialize)]
struct EnvelopeBody {
    #[serde(default)]
    errors: Vec<RegistryErrorEntry>,
}

impl ErrorEnvelope {
    /// Parses a response body. A body that is not an envelope is kept as a short excerpt.
    pub fn parse(body: &[u8]) -> Self {
        match serde_json::from_slice::<EnvelopeBody>(body) {
            Ok(parsed) if !parsed.errors.is_empty() => {
                Self { errors: parsed.errors, excerpt: None }
            }
            _ => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let excerpt = (!text.is_empty()).then(|| {
                    let cut: String = text.chars().take(EXCERPT_LIMIT).collect();
                    cut.replace(['\n', '\r'], " ")
                });
                Self { errors: Vec::new(), excerpt }
            }
        }
    }

    /// `true` if and only if the envelope carries `code`.
    pub fn has(&self, code: &Code) -> bool {
        self.errors.iter().any(|entry| &entry.code == code)
    }

    /// `true` if and only if the envelope carries at least one of `codes`.
    pub fn has_any(&self, codes: &[Code]) -> bool {
        codes.iter().any(|code| self.has(code))
    }
}

impl fmt::Display for ErrorEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            return match &self.excerpt {
                Some(excerpt) => write!(f, "{excerpt}"),
                None => f.write_str("no error details"),
            };
        }
        for (index, entry) in self.errors.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", entry.code)?;
            if !entry.message.is_empty() {
                write!(f, ": {}", entry.message)?;
            }
        }
        Ok(())
    }
}

/// Who presented credentials, for messages: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    Anonymous,
    User(String),
    IdentityToken,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::User(name) => write!(f, "user `{name}`"),
            Self::IdentityToken => f.write_str("an identity token"),
        }
    }
}

/// A request the client made, named for messages: `HEAD 127.0.0.1:5000/dh/app:v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub method: reqwest::Method,
    /// What the request was about, e.g. `127.0.0.1:5000/dh/app:v1` or `127.0.0.1:5000/v2/`.
    pub target: String,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum DistributionError {
    /// The registry or its token service refused the credentials (HTTP 401 on login).
    #[error("Registry `{registry}` rejected the credentials of {account}")]
    CredentialsRejected { registry: RegistryHost, account: Account, envelope: Box<ErrorEnvelope> },

    /// The registry wants credentials and none were given.
    #[error("Registry `{registry}` requires credentials and none were given")]
    CredentialsMissing { registry: RegistryHost },

    /// The credentials were accepted but do not allow the operation (401 with a token that has
    /// every scope we asked for, or 403).
    #[error("`{operation}` was denied to {account} ({envelope})")]
    Denied {
        operation: Operation,
        registry: RegistryHost,
        account: Account,
        envelope: Box<ErrorEnvelope>,
    },

    /// No connection could be made, or it broke, after every retry.
    #[error("Registry `{registry}` is unreachable (`{operation}`)")]
    Unreachable {
        registry: RegistryHost,
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },

    /// TLS refused the connection: the registry's certificate is not trusted or not valid.
    #[error("Registry `{registry}` failed the TLS check (`{operation}`)")]
    Tls {
        registry: RegistryHost,
        operation: Operation,
        #[source]
        source: reqwest::Error,
    },

    /// The registry answered with a status the operation does not expect (after retries, for
    /// retryable statuses).
    #[error("`{operation}` failed with HTTP {status} ({envelope})")]
    Registry { operation: Operation, status: StatusCode, envelope: Box<ErrorEnvelope> },

    /// The registry refuses to delete by tag (distribution 2.8: `400 DIGEST_INVALID`): fall back
    /// to a throw-away manifest and a delete by digest.
    #[error(
        "Registry `{registry}` does not delete tags (`{operation}` answered HTTP {status}: {envelope})"
    )]
    TagDeleteUnsupported {
        registry: RegistryHost,
        operation: Operation,
        status: StatusCode,
        envelope: Box<ErrorEnvelope>,
    },

    /// Deletes are disabled on the registry (`405 UNSUPPORTED`).
    #[error(
        "Registry `{registry}` has deletes disabled (`{operation}` answered HTTP {status}: {envelope})"
    )]
    DeletesDisabled {
        registry: RegistryHost,
        operation: Operation,
        status: StatusCode,
        envelope: Box<ErrorEnvelope>,
    },

    /// The token service answered with an error or an unusable body.
    #[error("Token service `{realm}` for registry `{registry}` failed: {problem}")]
    TokenService { registry: RegistryHost, realm: String, problem: String },

    /// A token service or upload location would receive credentials over plain HTTP although
    /// its host is not named insecure.
    #[error("Registry `{registry}` sends credentials to `{url}` over plain HTTP; refusing")]
    InsecureRealm { registry: RegistryHost, url: String },

    /// The registry's answer could not be understood.
    #[error("`{operation}` returned an unusable response: {problem}")]
    UnexpectedResponse { operation: Operation, problem: String },

    /// Content did not hash to the digest it was asked for by (read from a registry), or is
    /// to be uploaded under (read from a file).
    #[error("`{operation}`: the content has digest `{actual}`, expected `{expected}`")]
    DigestMismatch { operation: Operation, expected: String, actual: String },

    /// A blob to upload could not be read from its file (missing, unreadable, or shorter than
    /// its size).
    #[error("Cannot read the blob file `{}`", path.display())]
    BlobRead {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Following `Link` headers revisited a page, or reached a page that adds no new entry.
    #[error("`{operation}` pagination loops: page `{page}` was already read or adds nothing new")]
    PaginationLoop { operation: Operation, page: String },

    /// A `Link` to the next page leaves the registry's origin (another host, port or scheme).
    #[error(
        "`{operation}`: the next page `{page}` is not on the registry's own origin; dockhand does not follow it"
    )]
    ForeignPage { operation: Operation, page: String },

    /// A listing grew past what dockhand reads for one repository.
    #[error("`{operation}`: more than {limit} {what}; dockhand stops reading there")]
    ListingTooLong { operation: Operation, limit: usize, what: &'static str },

    /// The HTTP client could not be built (e.g. no TLS provider).
    #[error("Could not build the HTTP client")]
    ClientBuild(#[source] reqwest::Error),
}

impl DistributionError {
    /// The registry's error envelope, when the registry answered with one.
    pub fn envelope(&self) -> Option<&ErrorEnvelope> {
        match self {
            Self::CredentialsRejected { envelope, .. }
            | Self::Denied { envelope, .. }
            | Self::Registry { envelope, .. }
            | Self::TagDeleteUnsupported { envelope, .. }
            | Self::DeletesDisabled { envelope, .. } => Some(envelope.as_ref()),
            _ => None,
        }
    }

    /// The HTTP status the registry answered with, when the error is such an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Registry { status, .. }
            | Self::TagDeleteUnsupported { status, .. }
            | Self::DeletesDisabled { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// `true` if and only if the registry answered 404 (the object or repository is unknown).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }
}

impl Classify for DistributionError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            Self::CredentialsRejected { .. }
            | Self::CredentialsMissing { .. }
            | Self::Denied { .. }
            | Self::InsecureRealm { .. } => ExitStatus::Usage,
            Self::Registry { status, .. }
                if *status == StatusCode::UNAUTHORIZED || *status == StatusCode::FORBIDDEN =>
            {
                ExitStatus::Usage
            }
            _ => ExitStatus::Failure,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::CredentialsRejected { registry, account, .. } => Some(format!(
                "check the password or token of {account} for `{registry}`; a token needs at least read access to the registry"
            )),
            Self::CredentialsMissing { registry } => Some(format!(
                "log in to `{registry}` (`dockhand login {registry} --username USER --password-stdin`) or pass credentials through the CI environment"
            )),
            Self::Denied { registry, account, .. } => Some(format!(
                "grant {account} the permission this operation needs on `{registry}` (pull, push or delete)"
            )),
            Self::Tls { .. } if super::no_ca_certificates() => Some(
                "this machine has no CA certificates, so no HTTPS certificate can be verified: install them (`ca-certificates`), point SSL_CERT_FILE at a CA bundle, or use an image of dockhand that ships them".into(),
            ),
            Self::Tls { registry, .. } => Some(format!(
                "if `{registry}` uses a certificate from a private CA, point SSL_CERT_FILE at that CA's certificate; a registry that speaks plain HTTP needs `--insecure-registry {registry}`"
            )),
            Self::Unreachable { registry, .. } => Some(format!(
                "check that `{registry}` is the right host and port and is up; a registry that speaks plain HTTP needs `--insecure-registry {registry}`"
            )),
            Self::InsecureRealm { registry, .. } => Some(format!(
                "use HTTPS for the token service, or name the hosts with `--insecure-registry` if plain HTTP is intended for `{registry}`"
            )),
            Self::DeletesDisabled { registry, .. } => Some(format!(
                "enable deletes on `{registry}` (distribution: `storage.delete.enabled: true`) or skip cleanup"
            )),
            Self::Registry { status, .. } if status.is_server_error() => {
                Some("the registry failed; rerun later".to_owned())
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_parse_into_codes() {
        for (body, codes, display) in [
            (
                r#"{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content","detail":"invalid"}]}"#,
                vec![Code::DigestInvalid],
                "DIGEST_INVALID: provided digest did not match uploaded content",
            ),
            (
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository","Name":"dh/app","Action":"pull"}]},{"code":"DENIED"}]}"#,
                vec![Code::Unauthorized, Code::Denied],
                "UNAUTHORIZED: authentication required; DENIED",
            ),
            (
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                vec![Code::TooManyRequests],
                "TOOMANYREQUESTS: slow down",
            ),
            (
                r#"{"errors":[{"code":"PROJECT_POLICY_VIOLATION","message":"no"}]}"#,
                vec![Code::Other("PROJECT_POLICY_VIOLATION".to_owned())],
                "PROJECT_POLICY_VIOLATION: no",
            ),
            ("404 page not found\n", vec![], "404 page not found"),
            ("", vec![], "no error details"),
            (r#"{"errors":[]}"#, vec![], r#"{"errors":[]}"#),
        ] {
            let envelope = ErrorEnvelope::parse(body.as_bytes());
            let got: Vec<Code> = envelope.errors.iter().map(|entry| entry.code.clone()).collect();
            assert_eq!(got, codes, "{body}");
            assert_eq!(envelope.to_string(), display, "{body}");
        }
    }

    #[test]
    fn detail_is_kept_as_json_text() {
        let envelope = ErrorEnvelope::parse(
            br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"dh/app"}}]}"#,
        );
        assert_eq!(envelope.errors[0].detail.as_deref(), Some(r#"{"name":"dh/app"}"#));
        assert!(envelope.has_any(&[Code::ManifestUnknown, Code::NameUnknown]));
        assert!(!envelope.has(&Code::ManifestUnknown));
    }

    #[test]
    fn long_plain_bodies_are_cut() {
        let body = "x".repeat(1000);
        let envelope = ErrorEnvelope::parse(body.as_bytes());
        assert_eq!(envelope.excerpt.map(|text| text.len()), Some(EXCERPT_LIMIT));
    }

    #[test]
    fn credential_errors_exit_1_and_remote_errors_exit_2() {
        let registry: RegistryHost = "127.0.0.1:5000".parse().unwrap();
        let rejected = DistributionError::CredentialsRejected {
            registry: registry.clone(),
            account: Account::User("ciuser".to_owned()),
            envelope: Box::default(),
        };
        assert_eq!(rejected.exit_status(), ExitStatus::Usage);
        assert_eq!(
            rejected.to_string(),
            "Registry `127.0.0.1:5000` rejected the credentials of user `ciuser`"
        );
        assert!(rejected.hint().is_some_and(|hint| hint.contains("127.0.0.1:5000")));
        let server = DistributionError::Registry {
            operation: Operation { method: reqwest::Method::GET, target: "x".to_owned() },
            status: StatusCode::SERVICE_UNAVAILABLE,
            envelope: Box::default(),
        };
        assert_eq!(server.exit_status(), ExitStatus::Failure);
    }
}
