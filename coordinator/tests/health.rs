//! The coordinator answers a gRPC health check and a registration over a real
//! socket on 127.0.0.1:0, and refuses a worker that speaks another protocol;
//! its health turns NOT_SERVING while the scheduler thread is stuck and
//! SERVING again when it answers.

mod net_support;

use std::time::{Duration, Instant};

use spikecv_common::proto::PROTOCOL_VERSION;
use spikecv_coordinator::auth::AuthConfig;
use spikecv_coordinator::health::HealthSettings;
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

/// The statuses of the server (`""`) and both services.
async fn statuses(
    health: &mut HealthClient<tonic::transport::Channel>,
) -> anyhow::Result<Vec<ServingStatus>> {
    let mut out = Vec::new();
    for service in ["", "spikecv.v1.Coordinator", "spikecv.v1.Admin"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await?
            .into_inner();
        out.push(r.status());
    }
    Ok(out)
}

/// Polls until every status is `want`; fails after `within`.
async fn wait_for_all(
    health: &mut HealthClient<tonic::transport::Channel>,
    want: ServingStatus,
    within: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let now = statuses(health).await?;
        if now.iter().all(|s| *s == want) {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < within,
            "still {now:?} after {within:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn health_turns_not_serving_while_the_scheduler_thread_is_stuck() -> anyhow::Result<()> {
    let settings = HealthSettings {
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(100),
    };
    let server = net_support::start_watched(2, "fp", settings).await;
    let mut health = HealthClient::new(server.options(None).channel()?);
    wait_for_all(&mut health, ServingStatus::Serving, Duration::ZERO).await?;

    // Block the scheduler thread for 3 s, as a stuck store call would.
    let stall = Duration::from_secs(3);
    let sched = server.sched.clone();
    let stalled_at = Instant::now();
    let stuck = tokio::spawn(async move {
        sched
            .call(move |_| {
                std::thread::sleep(stall);
                Ok(())
            })
            .await
    });
    wait_for_all(
        &mut health,
        ServingStatus::NotServing,
        Duration::from_secs(2),
    )
    .await?;
    assert!(
        stalled_at.elapsed() < stall,
        "NOT_SERVING while the thread is stuck"
    );
    // Health answers while the scheduler does not; it is SERVING again as soon
    // as the thread answers.
    stuck.await??;
    wait_for_all(&mut health, ServingStatus::Serving, Duration::from_secs(2)).await?;
    let mut client = server.worker(None);
    client
        .register(net_support::registration("after", "fp"))
        .await?;
    server.stop().await;
    Ok(())
}
