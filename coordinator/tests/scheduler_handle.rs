//! The scheduler thread's handle: a shutdown serves every call queued before
//! it, joins the thread and refuses later calls; a full queue sheds a call at
//! once with a typed error instead of queueing it without bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::FutureExt;
use spikecv_coordinator::scheduler::{
    ManualClock, Scheduler, SchedulerError, SchedulerHandle, SchedulerSettings,
};
use spikecv_coordinator::store::Store;

fn scheduler() -> Scheduler {
    Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        SchedulerSettings::default(),
        Box::new(ManualClock::new(0)),
    )
    .unwrap()
}

/// Occupies the scheduler thread until the returned sender is used (or
/// dropped); returns once the thread runs the blocking call.
async fn occupy(sched: &SchedulerHandle) -> std::sync::mpsc::Sender<()> {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let sched = sched.clone();
    tokio::spawn(async move {
        sched
            .call(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
    });
    started_rx.await.unwrap();
    release_tx
}

/// Queues a call without waiting for its answer (its closure still runs).
fn enqueue(
    sched: &SchedulerHandle,
    served: &Arc<AtomicUsize>,
) -> Option<Result<(), SchedulerError>> {
    let served = served.clone();
    sched
        .call(move |_| {
            served.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .now_or_never()
}

#[tokio::test]
async fn shutdown_serves_the_queued_calls_joins_the_thread_and_refuses_later_ones() {
    let sched = SchedulerHandle::spawn(scheduler()).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let release = occupy(&sched).await;
    for _ in 0..10 {
        assert!(
            enqueue(&sched, &served).is_none(),
            "queued, not answered yet"
        );
    }
    let stopping = {
        let sched = sched.clone();
        tokio::spawn(async move { sched.shutdown().await })
    };
    release.send(()).unwrap();
    stopping.await.unwrap().unwrap();
    // Joined: every call queued before the shutdown had run.
    assert_eq!(served.load(Ordering::SeqCst), 10);
    assert!(matches!(
        sched.call(|_| Ok(())).await,
        Err(SchedulerError::Stopped)
    ));
    // A second shutdown only returns.
    sched.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_sheds_calls_at_once_and_takes_them_again_when_it_drains() {
    let sched = SchedulerHandle::spawn_bounded(scheduler(), 2).unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let release = occupy(&sched).await;
    assert!(enqueue(&sched, &served).is_none());
    assert!(enqueue(&sched, &served).is_none());
    let shed = enqueue(&sched, &served);
    assert!(
        matches!(shed, Some(Err(SchedulerError::Busy { limit: 2 }))),
        "{shed:?}"
    );
    release.send(()).unwrap();
    // Served after the two queued ones (the queue may still be full).
    sched.call_waiting(|_| Ok(())).await.unwrap();
    assert_eq!(served.load(Ordering::SeqCst), 2, "the shed call never ran");
    // Drained: a plain call is taken again.
    sched.call(|_| Ok(())).await.unwrap();
    sched.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_call_that_panics_is_reported_as_a_crash_not_a_stop() {
    let sched = SchedulerHandle::spawn(scheduler()).unwrap();
    let r: Result<(), SchedulerError> = sched.call(|_| panic!("a bug in a call")).await;
    assert!(matches!(r, Err(SchedulerError::Crashed)), "{r:?}");
    assert!(matches!(
        sched.shutdown().await,
        Err(SchedulerError::Crashed)
    ));
}
