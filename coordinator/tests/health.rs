//! The coordinator answers a gRPC health check and a registration over a real
//! socket on 127.0.0.1:0, and refuses a worker that speaks another protocol.

mod net_support;

use spikecv_common::proto::PROTOCOL_VERSION;
use spikecv_coordinator::auth::AuthConfig;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test]
async fn health_and_register_over_loopback() -> anyhow::Result<()> {
    let server = net_support::start(2, "fp", AuthConfig::default()).await;
    let mut health = HealthClient::new(server.options(None).channel()?);
    for service in ["", "spikecv.v1.Coordinator", "spikecv.v1.Admin"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }

    let mut client = server.worker(None);
    let ok = client
        .register(net_support::registration("t", "fp"))
        .await?
        .into_inner();
    assert!(!ok.worker_id.is_empty());
    assert_eq!(ok.heartbeat_seconds, 1);
    let mut old = net_support::registration("old", "fp");
    old.protocol_version = PROTOCOL_VERSION + 1;
    let refused = client
        .register(old)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a wrong protocol version was accepted"))?;
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("protocol version"),
        "{}",
        refused.message()
    );
    server.stop().await;
    Ok(())
}
