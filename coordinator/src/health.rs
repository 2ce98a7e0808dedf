//! The gRPC health status follows the scheduler thread: a watchdog pings the
//! scheduler actor every `interval`; a ping unanswered after `timeout` (the
//! thread is stuck, e.g. on a long store operation or a lock) turns the server
//! (`""`) and both services NOT_SERVING, and the answer, when it comes, turns
//! them SERVING again. A scheduler that has stopped keeps them NOT_SERVING.

use std::time::Duration;

use spikecv_common::proto::admin_server::AdminServer;
use spikecv_common::proto::coordinator_server::CoordinatorServer;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::scheduler::SchedulerHandle;
use crate::service::CoordinatorService;

/// How the watchdog pings the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Time between the end of one ping and the start of the next.
    pub interval: Duration,
    /// How long a ping may wait for an answer before the server is reported
    /// NOT_SERVING.
    pub timeout: Duration,
}

impl Default for HealthSettings {
    /// A ping every 5 s; NOT_SERVING after 10 s without an answer (a status
    /// read over 100,000 jobs takes well under a second).
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The health-checked names: the whole server and both services.
fn names() -> [&'static str; 3] {
    [
        "",
        <CoordinatorServer<CoordinatorService> as NamedService>::NAME,
        <AdminServer<CoordinatorService> as NamedService>::NAME,
    ]
}

/// Sets every health-checked name to `status`.
pub async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in names() {
        reporter.set_service_status(name, status).await;
    }
}

/// Pings the scheduler until the task is dropped or aborted, reporting what it
/// finds through `reporter` whenever that changes.
pub async fn watchdog(sched: SchedulerHandle, reporter: HealthReporter, settings: HealthSettings) {
    let mut serving = true;
    loop {
        let ping = sched.call_waiting(|_| Ok(()));
        tokio::pin!(ping);
        let answer = tokio::select! {
            r = &mut ping => r,
            () = tokio::time::sleep(settings.timeout) => {
                if serving {
                    tracing::warn!(timeout = ?settings.timeout, "the scheduler thread does not answer; health: NOT_SERVING");
                    report(&reporter, ServingStatus::NotServing).await;
                    serving = false;
                }
                // The same ping: a stuck thread gets no pile of new ones.
                ping.await
            }
        };
        let now = answer.is_ok();
        if now != serving {
            if now {
                tracing::info!("the scheduler thread answers again; health: SERVING");
            } else {
                tracing::error!("the scheduler thread has stopped; health: NOT_SERVING");
            }
            let status = if now {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            report(&reporter, status).await;
            serving = now;
        }
        tokio::time::sleep(settings.interval).await;
    }
}
