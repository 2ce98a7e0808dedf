//! TLS with client certificates (test material in tests/fixtures/tls, made by
//! its make.sh): a client that trusts the CA and presents a certificate it
//! signed gets through; one without a certificate, or speaking plain HTTP/2,
//! does not. Raw TCP peers that start a TLS handshake and never finish it
//! (part of a ClientHello, or nothing) are closed after the handshake
//! timeout while an honest client and `status` keep answering. A client
//! certificate whose name is a named worker's is that worker, without a
//! token, at most its slots, and cannot take another name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use std::path::PathBuf;
use std::time::Duration;

use net_support::{registration, start_with};
use spikecv_common::proto::client::ClientOptions;
use spikecv_common::proto::{
    AddWorkerRequest, CreateEnrolmentRequest, EnrolRequest, LeaseRequest, RemoveWorkerRequest,
    StatusRequest,
};
use spikecv_coordinator::auth::{AuthConfig, Token};
use spikecv_coordinator::conn_limits::ConnLimits;
use spikecv_coordinator::server::{ServerOptions, TlsFiles};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

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

/// A worker client over `server` with the client certificate (CN `client`)
/// and `token`.
fn with_certificate(server: &net_support::TestServer, token: Option<&str>) -> ClientOptions {
    ClientOptions {
        url: server.url.clone(),
        token: token.map(str::to_owned),
        tls_ca: Some(fixture("ca.pem")),
        tls_identity: Some((fixture("client.pem"), fixture("client.key"))),
        ..ClientOptions::default()
    }
}

/// A lease as `who` asking for four CPU slots (registered with four).
fn lease_four(who: &str, secret: &str) -> LeaseRequest {
    let mut reg = registration("i-choose-my-name", "fp");
    reg.slots = vec![reg.slots[0].clone(); 4];
    LeaseRequest {
        worker_id: who.to_owned(),
        registration: Some(reg),
        free_slots: vec!["cpu".to_owned(); 4],
        running: vec![],
        worker_secret: secret.to_owned(),
    }
}

#[tokio::test]
async fn a_client_certificate_that_names_a_worker_is_that_worker() {
    let options = ServerOptions {
        auth: AuthConfig {
            worker: Some(Token::new("shared")),
            admin: Some(Token::new("admin")),
        },
        tls: Some(TlsFiles {
            cert: fixture("server.pem"),
            key: fixture("server.key"),
            client_ca: Some(fixture("ca.pem")),
        }),
        health_listen: None,
        conn_limits: ConnLimits::default(),
    };
    let server = start_with(2, "fp", options).await;
    let admin = with_certificate(&server, Some("admin"));
    let mut bare = with_certificate(&server, None).worker_client().unwrap();

    // While no credential is named `client`, the certificate alone is no one.
    let refused = bare.register(registration("x", "fp")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let add = |name: &str, slots: u32| {
        let admin = admin.clone();
        let name = name.to_owned();
        async move {
            admin
                .admin_client()
                .unwrap()
                .add_worker(AddWorkerRequest { name, slots })
                .await
                .unwrap()
                .into_inner()
        }
    };
    add("client", 1).await;
    let other = add("gpu-other", 4).await;

    // Without a token, and beside the shared one, the certificate is `client`.
    let mut shared = with_certificate(&server, Some("shared"))
        .worker_client()
        .unwrap();
    for client in [&mut bare, &mut shared] {
        let r = client
            .register(registration("i-choose-my-name", "fp"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.worker_id, "client");
    }
    // It holds at most the credential's one slot, whatever it declares.
    let lease = bare.lease(lease_four("", "")).await.unwrap().into_inner();
    assert_eq!(lease.worker_id, "client");
    assert_eq!(lease.assignments.len(), 1, "one slot, one job");
    let secret = lease.worker_secret;

    // It cannot take another name: another worker's id, another worker's
    // credential beside it, an enrolment token beside it.
    let denied = bare
        .lease(lease_four("gpu-other", &secret))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut as_other = with_certificate(&server, Some(&other.token))
        .worker_client()
        .unwrap();
    let denied = as_other
        .register(registration("x", "fp"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let enrolment = admin
        .admin_client()
        .unwrap()
        .create_enrolment(CreateEnrolmentRequest {
            uses: 1,
            ttl_seconds: 60,
            slots: 1,
        })
        .await
        .unwrap()
        .into_inner();
    let mut enrolling = with_certificate(&server, Some(&enrolment.token))
        .worker_client()
        .unwrap();
    let denied = enrolling
        .enrol(EnrolRequest {
            name_hint: "fresh".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Once the credential is removed, the certificate is no one again.
    admin
        .admin_client()
        .unwrap()
        .remove_worker(RemoveWorkerRequest {
            name: "client".to_owned(),
        })
        .await
        .unwrap();
    let refused = bare.register(registration("x", "fp")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    status(&admin).await;
    server.stop().await;
}
