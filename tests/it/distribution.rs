//! The OCI distribution client against a real `docker-registry` (CNCF distribution 2.8).

use dockhand::exit::{Classify, ExitStatus};
use dockhand::registry::distribution::{
    Account, Client, ClientOptions, Credential, DistributionError, RetryPolicy,
};
use dockhand::secret::Secret;

use crate::support::token_issuer::{self, REFRESH_TOKEN};
use crate::support::{Auth, Deletes, Registry, registry};

fn client(registry: &Registry) -> Client {
    Client::new(registry.client_options()).expect("client")
}

fn basic(username: &str, password: &str) -> Credential {
    Credential::Basic { username: username.to_owned(), password: Secret::new(password) }
}

/// Asserts that neither the message chain nor the debug form of `error` shows `secret`.
fn assert_secret_hidden(error: &DistributionError, secret: &str) {
    let mut text = format!("{error:?} {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if let Some(hint) = error.hint() {
        text.push_str(&hint);
    }
    assert!(!text.contains(secret), "secret leaked: {text}");
}

#[tokio::test]
async fn verify_credentials_on_an_anonymous_registry_accepts_anyone() {
    let registry = Registry::start(Auth::Anonymous, Deletes::Enabled);
    let client = client(&registry);
    for credential in [Credential::Anonymous, basic("whoever", "whatever")] {
        client.verify_credentials(&registry.registry_host(), &credential).await.expect("accepted");
    }
}

#[tokio::test]
async fn verify_credentials_with_htpasswd() {
    let registry = Registry::start(Auth::Htpasswd, Deletes::Enabled);
    let client = client(&registry);
    let host = registry.registry_host();
    client
        .verify_credentials(&host, &basic(registry::USER, registry::PASSWORD))
        .await
        .expect("full user");
    client
        .verify_credentials(&host, &basic(registry::PULL_PUSH_USER, registry::PULL_PUSH_PASSWORD))
        .await
        .expect("second user");

    let wrong = "wrong-Sentinel-0a1b";
    let error = client.verify_credentials(&host, &basic(registry::USER, wrong)).await.unwrap_err();
    match &error {
        DistributionError::CredentialsRejected { registry: rejected, account, .. } => {
            assert_eq!(rejected, &host);
            assert_eq!(account, &Account::User(registry::USER.to_owned()));
        }
        other => panic!("expected CredentialsRejected, got {other:?}"),
    }
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert_eq!(
        error.to_string(),
        format!("Registry `{host}` rejected the credentials of user `ciuser`")
    );
    assert_secret_hidden(&error, wrong);

    let error = client.verify_credentials(&host, &Credential::Anonymous).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::CredentialsMissing { registry } if registry == &host),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
}

#[tokio::test]
async fn verify_credentials_with_a_token_service() {
    let registry = Registry::start(Auth::Token, Deletes::Enabled);
    let client = client(&registry);
    let host = registry.registry_host();
    client
        .verify_credentials(&host, &basic(registry::USER, registry::PASSWORD))
        .await
        .expect("full user");
    client
        .verify_credentials(&host, &basic(registry::PULL_PUSH_USER, registry::PULL_PUSH_PASSWORD))
        .await
        .expect("pull,push user");
    client
        .verify_credentials(&host, &Credential::IdentityToken(Secret::new(REFRESH_TOKEN)))
        .await
        .expect("identity token");
    // anonymous tokens carry no access, but `/v2/` accepts any valid token (as Docker Hub does)
    client.verify_credentials(&host, &Credential::Anonymous).await.expect("anonymous token");

    let issuer = registry.issuer().expect("token variant");
    let requests = issuer.requests();
    assert_eq!(
        requests
            .iter()
            .map(|request| (request.method.as_str(), request.account.as_str()))
            .collect::<Vec<_>>(),
        [
            ("GET", token_issuer::FULL_USER),
            ("GET", token_issuer::PULL_PUSH_USER),
            ("POST", "refresh"),
            ("GET", "anonymous")
        ]
    );
    assert!(
        requests.iter().all(|request| request.scopes.is_empty()),
        "login asks for no scope: {requests:?}"
    );

    let wrong = "wrong-Sentinel-9e8d";
    let error = client.verify_credentials(&host, &basic(registry::USER, wrong)).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::CredentialsRejected { account: Account::User(user), .. } if user == registry::USER),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Usage);
    assert_secret_hidden(&error, wrong);

    let error = client
        .verify_credentials(&host, &Credential::IdentityToken(Secret::new(wrong)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            DistributionError::CredentialsRejected { account: Account::IdentityToken, .. }
        ),
        "{error:?}"
    );
    assert_secret_hidden(&error, wrong);
}

#[tokio::test]
async fn verify_credentials_reports_an_unreachable_registry() {
    // a port that was free a moment ago: nothing listens there
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let host: dockhand::reference::RegistryHost = format!("127.0.0.1:{port}").parse().unwrap();
    let options = ClientOptions {
        insecure: vec![host.clone()],
        retry: RetryPolicy {
            max_retries: 1,
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(1),
            max_retry_after: std::time::Duration::from_millis(1),
        },
        ..ClientOptions::default()
    };
    let client = Client::new(options).unwrap();
    let error = client.verify_credentials(&host, &basic("u", "p")).await.unwrap_err();
    assert!(
        matches!(&error, DistributionError::Unreachable { registry, .. } if registry == &host),
        "{error:?}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Failure);
    assert!(error.hint().is_some_and(|hint| hint.contains("--insecure-registry")));
}
