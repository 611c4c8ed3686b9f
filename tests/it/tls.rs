//! HTTPS, as every hosted registry speaks it: a registry with a certificate from a private CA,
//! trusted through `SSL_CERT_FILE` (the variable corporate runners set), and refused without it.

use crate::support::binary::dockhand;
use crate::support::registry::{PASSWORD, USER};
use crate::support::{Auth, Deletes, Registry};

#[test]
fn login_over_tls_with_a_private_ca() {
    let registry = Registry::start_tls(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let login = |ca: Option<&std::path::Path>| {
        let mut command = dockhand(work.path(), &["ci-env", "generic"])
            .env("TMPDIR", &work.path().display().to_string())
            .env("DOCKHAND_REGISTRY", &registry.host())
            .env("DOCKHAND_REGISTRY_USERNAME", USER)
            .env("DOCKHAND_REGISTRY_PASSWORD", PASSWORD);
        if let Some(ca) = ca {
            command = command.env("SSL_CERT_FILE", &ca.display().to_string());
        }
        command.run()
    };
    // trusted: the login is checked over HTTPS (no --insecure-registry anywhere)
    let trusted = login(Some(&registry.ca_file()));
    trusted.assert_code(0).assert_not_printed(PASSWORD);
    assert!(trusted.stderr.contains("verified"), "{}", trusted.stderr);
    // not trusted: a remote failure naming the certificate problem, nothing sent in clear
    let untrusted = login(None);
    untrusted.assert_code(2).assert_not_printed(PASSWORD);
    assert!(untrusted.stderr.to_lowercase().contains("certificate"), "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains("hint: if `"), "{}", untrusted.stderr);
    assert!(untrusted.stderr.contains("SSL_CERT_FILE"), "{}", untrusted.stderr);
    assert!(
        !untrusted.stderr.contains("retry"),
        "a certificate problem is not retried: {}",
        untrusted.stderr
    );
}

/// A machine without CA certificates (an image `FROM scratch` that ships none): plain HTTP to
/// a registry named insecure still works, and HTTPS fails saying that certificates are missing.
#[test]
fn without_ca_certificates_plain_http_works_and_https_says_why_it_cannot() {
    let plain = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let tls = Registry::start_tls(Auth::Htpasswd, Deletes::Enabled);
    let work = tempfile::tempdir().unwrap();
    let nowhere = work.path().join("no-such-ca-bundle.pem");
    let login = |registry: &Registry, insecure: bool| {
        let mut command = dockhand(work.path(), &["ci-env", "generic"])
            .env("TMPDIR", &work.path().display().to_string())
            .env("SSL_CERT_FILE", &nowhere.display().to_string())
            .env("SSL_CERT_DIR", &work.path().join("no-such-dir").display().to_string())
            .env("DOCKHAND_REGISTRY", &registry.host())
            .env("DOCKHAND_REGISTRY_USERNAME", USER)
            .env("DOCKHAND_REGISTRY_PASSWORD", PASSWORD);
        if insecure {
            command = command.env("DOCKHAND_INSECURE_REGISTRIES", &registry.host());
        }
        command.run()
    };
    let over_http = login(&plain, true);
    over_http.assert_code(0).assert_not_printed(PASSWORD);
    assert!(over_http.stderr.contains("verified"), "{}", over_http.stderr);

    let over_https = login(&tls, false);
    over_https.assert_code(2).assert_not_printed(PASSWORD);
    assert!(
        over_https.stderr.contains("hint: this machine has no CA certificates"),
        "{}",
        over_https.stderr
    );
}
