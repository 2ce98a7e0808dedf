//! One status snapshot shared by every reader of `/metrics` and the admin
//! `Watch` stream, so that neither puts a full-table read on the scheduler
//! thread per request or per client.
//!
//! A single refresher task asks the scheduler for [`StatusSnapshot`] when a
//! reader needs a fresher one than it has, and at most once per `max_age`. A
//! reader gets a snapshot whose read began less than `max_age` before it asked:
//! a change the scheduler made at least `max_age` before the request is in it.
//! However many readers ask, the scheduler answers at most one status call per
//! `max_age` for all of them; with no readers it answers none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::scheduler::{SchedulerHandle, StatusSnapshot};

/// How old a snapshot may be by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);

/// Why no snapshot could be had (shared by every reader of the failed read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no status snapshot: {0}")]
pub struct StatusUnavailable(pub String);

/// A snapshot and when its read began.
#[derive(Clone)]
struct Taken {
    at: Instant,
    result: Result<Arc<StatusSnapshot>, StatusUnavailable>,
}

/// What the refresher task owns until the first reader starts it.
struct Idle {
    sched: SchedulerHandle,
    demand: mpsc::Receiver<()>,
    publish: watch::Sender<Option<Taken>>,
}

/// The shared status snapshot (cheap to clone; every clone shares it).
#[derive(Clone)]
pub struct StatusCache {
    max_age: Duration,
    latest: watch::Receiver<Option<Taken>>,
    demand: mpsc::Sender<()>,
    refreshes: Arc<AtomicU64>,
    idle: Arc<Mutex<Option<Idle>>>,
}

impl std::fmt::Debug for StatusCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusCache")
            .field("max_age", &self.max_age)
            .field("refreshes", &self.refreshes())
            .finish_non_exhaustive()
    }
}

impl StatusCache {
    /// A cache over the scheduler behind `sched`; its refresher task starts
    /// (on the current tokio runtime) at the first [`StatusCache::get`] and
    /// ends when every clone of the cache is dropped.
    pub fn new(sched: SchedulerHandle, max_age: Duration) -> Self {
        let (demand_tx, demand_rx) = mpsc::channel(1);
        let (publish, latest) = watch::channel(None);
        Self {
            max_age,
            latest,
            demand: demand_tx,
            refreshes: Arc::default(),
            idle: Arc::new(Mutex::new(Some(Idle {
                sched,
                demand: demand_rx,
                publish,
            }))),
        }
    }

    /// How many status reads the scheduler has been asked for so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The largest age of a snapshot [`StatusCache::get`] returns.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// A snapshot whose read began less than `max_age` before this call
    /// (waiting for the next refresh when the current one is older), or the
    /// error that read ended with.
    pub async fn get(&self) -> Result<Arc<StatusSnapshot>, StatusUnavailable> {
        let asked = Instant::now();
        let max_age = self.max_age;
        let fresh = move |t: &Option<Taken>| {
            t.as_ref()
                .is_some_and(|t| asked.saturating_duration_since(t.at) < max_age)
        };
        let mut latest = self.latest.clone();
        if !fresh(&latest.borrow_and_update()) {
            self.start_refresher();
            // Full: a demand is already waiting, and the refresh it brings
            // begins after now.
            let _ = self.demand.try_send(());
        }
        let taken = latest
            .wait_for(fresh)
            .await
            .map_err(|_| StatusUnavailable("the status refresher has stopped".into()))?;
        taken.as_ref().map_or_else(
            || Err(StatusUnavailable("none taken yet".into())),
            |t| t.result.clone(),
        )
    }

    fn start_refresher(&self) {
        let idle = match self.idle.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(idle) = idle {
            tokio::spawn(refresh(idle, self.max_age, self.refreshes.clone()));
        }
    }
}

/// Serves demands until every cache clone is gone: one status read per
/// demand, at most one per `max_age`.
async fn refresh(mut idle: Idle, max_age: Duration, refreshes: Arc<AtomicU64>) {
    let mut last: Option<Instant> = None;
    while idle.demand.recv().await.is_some() {
        if let Some(last) = last {
            tokio::time::sleep_until(last + max_age).await;
        }
        let at = Instant::now();
        last = Some(at);
        refreshes.fetch_add(1, Ordering::Relaxed);
        let result = idle
            .sched
            .call_waiting(|s| s.status())
            .await
            .map(Arc::new)
            .map_err(|e| StatusUnavailable(e.to_string()));
        if let Err(e) = &result {
            tracing::warn!(error = %e, "status snapshot failed");
        }
        idle.publish.send_replace(Some(Taken { at, result }));
    }
}
