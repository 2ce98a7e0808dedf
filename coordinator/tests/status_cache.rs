//! The status snapshot behind `/metrics` and `Watch`: many concurrent readers
//! cost the scheduler at most one status read per interval, and a change is in
//! the snapshot a reader gets one interval later.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use spikecv_coordinator::scheduler::SchedulerHandle;
use spikecv_coordinator::scheduler::{
    ManualClock, Scheduler, SchedulerSettings, SlotInfo, WorkerRegistration,
};
use spikecv_coordinator::status_cache::StatusCache;
use spikecv_coordinator::store::Store;

const MAX_AGE: Duration = Duration::from_millis(200);
const READERS: usize = 40;

fn registration(name: &str) -> WorkerRegistration {
    WorkerRegistration {
        name: name.into(),
        host: "node".into(),
        slots: vec![SlotInfo {
            device: "cpu:0".into(),
            device_name: "cpu".into(),
            memory_bytes: 1 << 30,
            manifest: None,
        }],
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_share_one_refresh_per_interval() {
    let scheduler = Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        SchedulerSettings::default(),
        Box::new(ManualClock::new(1_000_000)),
    )
    .unwrap();
    let sched = SchedulerHandle::spawn(scheduler).unwrap();
    let cache = StatusCache::new(sched.clone(), MAX_AGE);
    assert_eq!(cache.refreshes(), 0, "no reader, no status read");

    // READERS tasks ask as fast as they can for 1.2 s.
    let start = Instant::now();
    let run = Duration::from_millis(1200);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let mut got = 0_u32;
                while start.elapsed() < run {
                    let s = cache.get().await.unwrap();
                    assert!(s.workers.is_empty());
                    got += 1;
                    tokio::task::yield_now().await;
                }
                got
            })
        })
        .collect();
    let mut answers = 0;
    for r in readers {
        answers += r.await.unwrap();
    }
    let elapsed = start.elapsed();
    let refreshes = cache.refreshes();
    let allowed = elapsed.as_millis() / MAX_AGE.as_millis() + 1;
    assert!(
        refreshes as u128 <= allowed,
        "{refreshes} status reads in {elapsed:?} for {answers} answers (at most {allowed})"
    );
    assert!(
        refreshes >= 2,
        "the snapshot is refreshed while readers ask ({refreshes} reads in {elapsed:?})"
    );
    assert!(
        u64::from(answers) > 10 * refreshes,
        "{answers} answers from {refreshes} reads"
    );

    // A change on the scheduler is in the snapshot one interval later.
    let before = cache.get().await.unwrap();
    assert!(before.workers.is_empty());
    sched
        .call(|s| s.register_worker(&registration("w1")))
        .await
        .unwrap();
    tokio::time::sleep(MAX_AGE).await;
    let after = cache.get().await.unwrap();
    assert_eq!(
        after.workers.len(),
        1,
        "a change is seen within {MAX_AGE:?}"
    );
    assert_eq!(after.workers[0].name, "w1");

    // Idle readers cost nothing.
    let idle = cache.refreshes();
    tokio::time::sleep(3 * MAX_AGE).await;
    assert_eq!(cache.refreshes(), idle);
}
