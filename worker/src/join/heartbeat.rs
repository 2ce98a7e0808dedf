//! The heartbeat task: every `heartbeat_seconds` it reports the progress of the
//! running attempts, and applies the answer (attempts to cancel, drain).

use std::sync::Arc;

use spikecv_common::proto::HeartbeatRequest;

use super::retry::is_transient;
use super::state::Shared;

/// Runs until aborted.
pub async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.heartbeat_interval()).await;
        let running = shared.progress();
        if running.is_empty() {
            // The lease loop polls while slots are free; it doubles as a heartbeat.
            continue;
        }
        let request = HeartbeatRequest {
            worker_id: shared.worker_id(),
            registration: Some(shared.registration.clone()),
            running,
            worker_secret: shared.worker_secret(),
        };
        let mut client = shared.client.clone();
        match client.heartbeat(request).await {
            Ok(r) => {
                let r = r.into_inner();
                shared.apply_control(&r.worker_id, &r.worker_secret, &r.cancel, r.drain, 0);
            }
            Err(status) if is_transient(&status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "heartbeat failed; training goes on");
            }
            Err(status) => {
                tracing::error!(code = ?status.code(), message = status.message(), "heartbeat refused");
            }
        }
    }
}
