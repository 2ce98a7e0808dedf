//! TLS with client certificates (test material in tests/fixtures/tls, made by
//! its make.sh): a client that trusts the CA and presents a certificate it
//! signed gets through; one without a certificate, or speaking plain HTTP/2,
//! does not. Raw TCP peers that start a TLS handshake and never finish it
//! (part of a ClientHello, or nothing) are closed after the handshake
//! timeout while an honest client and `status` keep answering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use std::path::PathBuf;
use std::time::Duration;

use net_support::{registration, start_with};
use spikecv_common::proto::StatusRequest;
use spikecv_common::proto::client::ClientOptions;
use spikecv_coordinator::conn_limits::ConnLimits;
use spikecv_coordinator::server::{ServerOptions, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        conn_limits: ConnLimits::default(),
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

/// Asks for `coordinator status` through `client` (it must answer).
async fn status(client: &ClientOptions) {
    client
        .admin_client()
        .unwrap()
        .status(StatusRequest {})
        .await
        .unwrap();
}

/// Whether the server closes `conn` (end of file or reset) within 10 s.
async fn closed_by_server(conn: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // An alert or other bytes from the server: read on.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_closed_after_the_timeout() {
    let options = ServerOptions {
        auth: Default::default(),
        tls: Some(TlsFiles {
            cert: fixture("server.pem"),
            key: fixture("server.key"),
            client_ca: None,
        }),
        health_listen: None,
        conn_limits: ConnLimits {
            handshake_timeout: Duration::from_millis(500),
            ..ConnLimits::default()
        },
    };
    let server = start_with(2, "fp", options).await;
    let addr = server.url.replace("https://localhost", "127.0.0.1");
    // Twenty peers send the start of a ClientHello (a handshake record
    // announcing 512 bytes, then 10 of them) and stop; five send nothing.
    let mut stalled = Vec::new();
    for i in 0..25 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i < 20 {
            conn.write_all(&[
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0,
            ])
            .await
            .unwrap();
        }
        stalled.push(conn);
    }
    // Meanwhile an honest client registers and status answers.
    let honest = ClientOptions {
        url: server.url.clone(),
        tls_ca: Some(fixture("ca.pem")),
        ..ClientOptions::default()
    };
    honest
        .worker_client()
        .unwrap()
        .register(registration("honest", "fp"))
        .await
        .unwrap();
    status(&honest).await;
    for (i, conn) in stalled.iter_mut().enumerate() {
        assert!(
            closed_by_server(conn).await,
            "stalled connection {i} still open"
        );
    }
    // And the server still answers afterwards.
    status(&honest).await;
    server.stop().await;
}
