//! HTTPS end to end: `haven serve --tls-cert --tls-key` serves the DynamoDB API over TLS; the AWS
//! SDK for Rust verifies the certificate against the CA it trusts and refuses a server it cannot
//! verify; a renewed certificate is served to new connections without a restart.

mod common;

use std::path::Path;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use common::HavenServer;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test certificate authority and a `localhost` certificate it signed.
struct Authority {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        Authority {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Installs the certificate and key as a renewal tool would: each file written aside, then
    /// renamed over the old one.
    fn install(&self, dir: &Path) {
        for (name, text) in [("key.pem", &self.key_pem), ("cert.pem", &self.cert_pem)] {
            let aside = dir.join(format!("{name}.new"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, dir.join(name)).unwrap();
        }
    }
}

fn start_tls(dir: &Path) -> HavenServer {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    HavenServer::start_with(&[
        "--in-memory",
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
}

/// An SDK client over HTTPS that trusts only `ca_pem` (a new client: a new connection).
fn client_trusting(server: &HavenServer, ca_pem: &str) -> aws_sdk_dynamodb::Client {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ca_pem.as_bytes());
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .unwrap(),
        )
        .build_https();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(format!("https://localhost:{}", server.address.port()))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "tests",
        ))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .http_client(http)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Whether a call failed before any answer from the service (the TLS handshake was refused).
fn refused_by_tls<T, E, R>(result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>) -> bool {
    matches!(
        result,
        Err(aws_sdk_dynamodb::error::SdkError::DispatchFailure(_))
    )
}

#[tokio::test]
async fn a_client_that_trusts_the_ca_talks_to_haven_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::new("Haven test CA");
    authority.install(dir.path());
    let server = start_tls(dir.path());

    let client = client_trusting(&server, &authority.ca_pem);
    common::create_table(&client, "Secure", &[("pk", "S")]).await;
    let tables = client.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["Secure"]);

    let stranger = client_trusting(&server, &Authority::new("Another CA").ca_pem);
    assert!(refused_by_tls(stranger.list_tables().send().await));
    // Plain HTTP on the TLS port gets no DynamoDB answer.
    let plain = common::sdk_client(&format!("http://{}", server.address));
    assert!(plain.list_tables().send().await.is_err());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = Authority::new("First CA");
    first.install(dir.path());
    let server = start_tls(dir.path());
    client_trusting(&server, &first.ca_pem)
        .list_tables()
        .send()
        .await
        .unwrap();

    let second = Authority::new("Second CA");
    second.install(dir.path());
    client_trusting(&server, &second.ca_pem)
        .list_tables()
        .send()
        .await
        .unwrap();
    let old_trust = client_trusting(&server, &first.ca_pem);
    assert!(refused_by_tls(old_trust.list_tables().send().await));

    // A broken pair is not installed: the server keeps serving the last good one.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    client_trusting(&server, &second.ca_pem)
        .list_tables()
        .send()
        .await
        .unwrap();
}
