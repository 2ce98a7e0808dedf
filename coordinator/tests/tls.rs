//! TLS with client certificates (test material in tests/fixtures/tls, made by
//! its make.sh): a client that trusts the CA and presents a certificate it
//! signed gets through; one without a certificate, or speaking plain HTTP/2,
//! does not.

mod net_support;

use std::path::PathBuf;

use net_support::{registration, start_with};
use spikecv_common::proto::client::ClientOptions;
use spikecv_coordinator::server::{ServerOptions, TlsFiles};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls")).join(name)
}

#[tokio::test]
async fn tls_with_client_certificates() {
    let options = ServerOptions {
        auth: Default::default(),
        tls: Some(TlsFiles {
            cert: fixture("server.pem"),
            key: fixture("server.key"),
            client_ca: Some(fixture("ca.pem")),
        }),
        health_listen: None,
    };
    let server = start_with(2, "fp", options).await;
    let good = ClientOptions {
        url: server.url.clone(),
        tls_ca: Some(fixture("ca.pem")),
        tls_identity: Some((fixture("client.pem"), fixture("client.key"))),
        ..ClientOptions::default()
    };
    let id = good
        .worker_client()
        .unwrap()
        .register(registration("tls", "fp"))
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    assert!(!id.is_empty());

    let no_cert = ClientOptions {
        tls_identity: None,
        ..good.clone()
    };
    assert!(
        no_cert
            .worker_client()
            .unwrap()
            .register(registration("x", "fp"))
            .await
            .is_err()
    );
    let plain = ClientOptions {
        url: server.url.replace("https://", "http://"),
        ..ClientOptions::default()
    };
    assert!(
        plain
            .worker_client()
            .unwrap()
            .register(registration("y", "fp"))
            .await
            .is_err()
    );
    server.stop().await;
}
