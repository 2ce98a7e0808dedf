//! The coordinator answers a gRPC health check and a registration over a real
//! socket on 127.0.0.1:0, and refuses a worker that speaks another protocol.

use spikecv_common::proto::coordinator_client::CoordinatorClient;
use spikecv_common::proto::{PROTOCOL_VERSION, RegisterRequest};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn health_and_register_over_loopback() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spikecv_coordinator::server::serve(listener, async {
        let _ = stop_rx.await;
    }));

    let url = format!("http://{addr}");
    let channel = tonic::transport::Channel::from_shared(url.clone())?
        .connect()
        .await?;
    let mut health = HealthClient::new(channel);
    let overall = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner();
    assert_eq!(overall.status(), ServingStatus::Serving);
    let named = health
        .check(HealthCheckRequest {
            service: "spikecv.v1.Coordinator".into(),
        })
        .await?
        .into_inner();
    assert_eq!(named.status(), ServingStatus::Serving);

    let mut client = CoordinatorClient::connect(url).await?;
    let ok = client
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            worker_name: "t".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert!(!ok.worker_id.is_empty());
    let refused = client
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION + 1,
            worker_name: "old".into(),
            ..Default::default()
        })
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a wrong protocol version was accepted"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
