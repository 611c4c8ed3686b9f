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
