//! A real CNCF distribution registry (`docker-registry serve`) for one test.
//!
//! Each [`Registry`] has its own temp dir (storage, config, log, htpasswd, token certificate),
//! listens on `127.0.0.1:0` and is found through the `listening on` log line. Variants: auth
//! {anonymous, htpasswd (bcrypt via `htpasswd -Bbn`), token (the in-process
//! [`TokenIssuer`])} × deletes {enabled, disabled}. `Drop` kills the child by its pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use dockhand::reference::{RegistryHost, RepoAddress};
use dockhand::registry::distribution::{ClientOptions, Credential, RetryPolicy};
use dockhand::secret::Secret;

use super::token_issuer::{self, TokenIssuer};

/// How clients authenticate to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    Htpasswd,
    Token,
}

/// Whether `storage.delete.enabled` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletes {
    Enabled,
    Disabled,
}

/// The full user (htpasswd and token variants).
pub const USER: &str = token_issuer::FULL_USER;
pub const PASSWORD: &str = token_issuer::FULL_PASSWORD;
/// The pull,push-only user (token variant; in the htpasswd variant it has every right).
pub const PULL_PUSH_USER: &str = token_issuer::PULL_PUSH_USER;
pub const PULL_PUSH_PASSWORD: &str = token_issuer::PULL_PUSH_PASSWORD;

/// How long the registry may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    auth: Auth,
    issuer: Option<TokenIssuer>,
}

impl Registry {
    pub fn start(auth: Auth, deletes: Deletes) -> Self {
        Self::start_with(auth, deletes, false)
    }

    /// A registry serving HTTPS with a certificate for `127.0.0.1` issued by a test CA, whose
    /// certificate is at [`Registry::ca_file`].
    pub fn start_tls(auth: Auth, deletes: Deletes) -> Self {
        Self::start_with(auth, deletes, true)
    }

    /// The test CA's certificate (PEM) of a [`Registry::start_tls`] registry.
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    fn start_with(auth: Auth, deletes: Deletes, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let data = root.join("data");
        std::fs::create_dir(&data).expect("data dir");
        let mut issuer = None;
        let auth_section = match auth {
            Auth::Anonymous => String::new(),
            Auth::Htpasswd => {
                let mut lines = String::new();
                for (user, password) in [(USER, PASSWORD), (PULL_PUSH_USER, PULL_PUSH_PASSWORD)] {
                    let output = Command::new("htpasswd")
                        .args(["-Bbn", user, password])
                        .output()
                        .expect("run htpasswd");
                    assert!(output.status.success(), "htpasswd failed");
                    lines.push_str(String::from_utf8_lossy(&output.stdout).trim());
                    lines.push('\n');
                }
                let path = root.join("htpasswd");
                std::fs::write(&path, lines).expect("write htpasswd");
                format!("auth:\n  htpasswd:\n    realm: dh-basic\n    path: {}\n", path.display())
            }
            Auth::Token => {
                let certificate = root.join("token.crt");
                let started = TokenIssuer::start(&certificate);
                let section = format!(
                    "auth:\n  token:\n    realm: \"{}\"\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    started.realm(),
                    token_issuer::SERVICE,
                    token_issuer::ISSUER,
                    certificate.display()
                );
                issuer = Some(started);
                section
            }
        };
        let delete = match deletes {
            Deletes::Enabled => "  delete:\n    enabled: true\n",
            Deletes::Disabled => "",
        };
        let tls_section = if tls { write_tls_files(root) } else { String::new() };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n{delete}http:\n  addr: 127.0.0.1:0\n  secret: test-not-secret\n{tls_section}{auth_section}",
            data.display()
        );
        let config_path = root.join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let log_path = root.join("registry.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut registry = Self { child, dir, port: 0, auth, issuer };
        registry.port = registry.wait_for_port(&log_path);
        registry
    }

    fn wait_for_port(&mut self, log_path: &Path) -> u16 {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            if let Some(port) = log.split("listening on 127.0.0.1:").nth(1).and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|digits| digits.parse().ok())
            }) {
                return port;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}:\n{log}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "docker-registry printed no address:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn registry_host(&self) -> RegistryHost {
        self.host().parse().expect("registry host")
    }

    /// The hosts to name insecure (comma-separated, as `DOCKHAND_INSECURE_REGISTRIES` takes
    /// them): the registry and, for the token variant, its plain-HTTP token service.
    pub fn insecure_hosts(&self) -> String {
        std::iter::once(self.host())
            .chain(self.issuer.as_ref().map(TokenIssuer::host))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The repository `path` on this registry.
    pub fn repository(&self, path: &str) -> RepoAddress {
        format!("{}/{path}", self.host()).parse().expect("repository")
    }

    /// The test's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn auth(&self) -> Auth {
        self.auth
    }

    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The full user's credential, or anonymous for the anonymous variant.
    pub fn credential(&self) -> Credential {
        match self.auth {
            Auth::Anonymous => Credential::Anonymous,
            Auth::Htpasswd | Auth::Token => {
                Credential::Basic { username: USER.to_owned(), password: Secret::new(PASSWORD) }
            }
        }
    }

    /// Client options that speak plain HTTP to this registry and retry quickly.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            insecure: self
                .insecure_hosts()
                .split(',')
                .map(|host| host.parse().expect("insecure host"))
                .collect(),
            retry: RetryPolicy {
                max_retries: 2,
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                max_retry_after: Duration::from_millis(100),
            },
            ..ClientOptions::default()
        }
    }

    /// A containers-auth.json for skopeo and buildah with the full user (empty `auths` for the
    /// anonymous variant).
    pub fn auth_file(&self) -> PathBuf {
        let path = self.dir().join("auth.json");
        let auths = match self.auth {
            Auth::Anonymous => serde_json::json!({}),
            Auth::Htpasswd | Auth::Token => {
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
                serde_json::json!({ self.host(): { "auth": auth } })
            }
        };
        std::fs::write(&path, serde_json::json!({ "auths": auths }).to_string())
            .expect("write auth file");
        path
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a test CA (`ca.pem`) and a server certificate for `127.0.0.1`/`localhost` signed by
/// it (`server.pem`, `server.key`) into `root`; returns the registry's `http.tls` section.
fn write_tls_files(root: &Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "dockhand test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
    server_params.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let server = server_params.signed_by(&server_key, &ca).expect("server certificate");
    std::fs::write(root.join("ca.pem"), ca.pem()).expect("write CA");
    std::fs::write(root.join("server.pem"), server.pem()).expect("write server certificate");
    std::fs::write(root.join("server.key"), server_key.serialize_pem()).expect("write server key");
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        root.join("server.pem").display(),
        root.join("server.key").display()
    )
}
