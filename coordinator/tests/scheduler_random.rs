//! An invariant test of the scheduler (its model-based counterpart, which
//! compares every answer and state with a model, is `scheduler_model.rs`):
//! thousands of short random sequences
//! (seeded, so deterministic) of register, lease, heartbeat, report, upload,
//! complete, fail, release, expiry, cancel and coordinator restart, from
//! honest workers and hostile ones (greedy leases, epochs out of range or
//! going back, non-finite or huge figures, checkpoints ahead of their
//! reports, results that contradict their confusion matrix, calls about
//! another worker's or a finished attempt, a second worker under a live
//! worker's name). After every step: a refused call changed nothing, a call
//! about an attempt that had ended was refused, every job ends at most once,
//! no worker holds more open attempts than it registered slots, no
//! checkpoint outlives its job or passes its attempt's reported epochs, and
//! the store's own consistency rules hold; at the end of each sequence the
//! report builds and every figure in it is finite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::Value;
use sched_support::{metrics, registration, submission_over};
use spikecv_common::experiment::cv::mt19937::Mt19937;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::plan::JobId;
use spikecv_coordinator::report::{build_report, from_store, render_json};
use spikecv_coordinator::scheduler::{
    AttemptId, Clock, Credentials, FailureClass, ManualClock, Progress, Scheduler, SchedulerError,
    SchedulerSettings, Submission, WorkerId, WorkerSecret,
};

/// Epochs every job trains.
const EPOCHS: u32 = 3;
/// Seconds an attempt may go without a new epoch.
const EPOCH_TIMEOUT_S: i64 = 60;
/// Seconds a lease lasts without a heartbeat.
const LEASE_TIMEOUT_S: i64 = 30;
/// Lost leases before a job fails.
const MAX_LOST: u32 = 4;

fn submission() -> Submission {
    submission_over(
        &format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = 3\nseeds = [0, 1]\nvariants = [\"whole\"]\n\
             max_attempts = 2\nepoch_timeout_s = {EPOCH_TIMEOUT_S}\n[training]\nepochs = {EPOCHS}\n"
        ),
        9,
        None,
        // Two classes, three test recordings per fold: six test samples.
        &["a", "b"],
    )
}

fn settings() -> SchedulerSettings {
    SchedulerSettings {
        heartbeat_seconds: 5,
        lease_timeout_seconds: LEASE_TIMEOUT_S as u32,
        max_lost: MAX_LOST,
        ..SchedulerSettings::default()
    }
}

fn honest_result() -> JobResult {
    sched_support::honest_result(EPOCHS)
}

/// Epoch metrics a hostile worker sends (every one of them must be refused).
fn hostile_metrics(kind: usize, last: u32) -> EpochMetrics {
    match kind {
        0 => metrics(0),
        1 => metrics(EPOCHS + 1),
        2 => EpochMetrics {
            train_loss: f64::NAN,
            ..metrics(last + 1)
        },
        3 => EpochMetrics {
            epoch_seconds: 1e308,
            ..metrics(last + 1)
        },
        4 => EpochMetrics {
            samples_per_second: -1.0,
            firing_rates: Vec::new(),
            ..metrics(last + 1)
        },
        _ => EpochMetrics {
            val_accuracy: Some(1.5),
            ..metrics(last + 1)
        },
    }
}

/// Results a hostile worker sends (every one of them must be refused).
fn hostile_result(kind: usize) -> JobResult {
    let honest = honest_result();
    match kind {
        0 => JobResult {
            test_accuracy: 1.0,
            ..honest
        },
        1 => JobResult {
            confusion: vec![vec![2, 0, 0], vec![0, 2, 0], vec![0, 0, 2]],
            ..honest
        },
        2 => JobResult {
            confusion: vec![vec![30, 0], vec![10, 20]],
            ..honest
        },
        3 => JobResult {
            best_epoch: EPOCHS + 1,
            ..honest
        },
        4 => JobResult {
            train_seconds: f64::INFINITY,
            ..honest
        },
        _ => JobResult {
            epochs: vec![metrics(2), metrics(1)],
            ..honest
        },
    }
}

/// Every row of the tables the scheduler writes, as text.
fn dump(s: &Scheduler) -> String {
    let conn = s.store().conn();
    let mut out = String::new();
    for table in [
        "jobs",
        "attempts",
        "workers",
        "epoch_metrics",
        "checkpoints",
        "experiments",
    ] {
        let mut stmt = conn
            .prepare_cached(&format!("SELECT * FROM {table} ORDER BY rowid"))
            .unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        for row in rows {
            out.push_str(&format!("{table}: {:?}\n", row.unwrap()));
        }
    }
    out
}

fn count(s: &Scheduler, sql: &str) -> i64 {
    s.store()
        .conn()
        .prepare_cached(sql)
        .unwrap()
        .query_row([], |r| r.get(0))
        .unwrap()
}

/// Rules the store must keep after every step; each query counts violations.
const INVARIANTS: &[&str] = &[
    // live jobs have a current attempt, others none
    "SELECT count(*) FROM jobs WHERE (status IN ('leased','running')) != (current_attempt IS NOT NULL)",
    // the current attempt is open and belongs to the job
    "SELECT count(*) FROM jobs j JOIN attempts a ON a.id = j.current_attempt
     WHERE a.ended_ms IS NOT NULL OR a.job != j.id",
    // every open attempt is its job's current one
    "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job
     WHERE a.ended_ms IS NULL AND (j.current_attempt IS NULL OR j.current_attempt != a.id)",
    // a job succeeds at most once, and only succeeded jobs have a result
    "SELECT count(*) FROM (SELECT job FROM attempts WHERE outcome = 'succeeded' GROUP BY job HAVING count(*) > 1)",
    "SELECT count(*) FROM jobs WHERE (status = 'succeeded') != (result_json IS NOT NULL)",
    "SELECT count(*) FROM jobs WHERE (status IN ('succeeded','failed','cancelled','pruned')) != (finished_ms IS NOT NULL)",
    // retry and loss bounds
    "SELECT count(*) FROM jobs WHERE failures > max_attempts OR lost_attempts > 4",
    "SELECT count(*) FROM jobs WHERE status = 'pending' AND (failures >= max_attempts OR lost_attempts >= 4)",
    // attempts counts the leases
    "SELECT count(*) FROM jobs j WHERE attempts != (SELECT count(*) FROM attempts a WHERE a.job = j.id)",
    // no worker holds more open attempts than it registered slots
    "SELECT count(*) FROM workers w
     WHERE (SELECT count(*) FROM attempts a WHERE a.worker = w.id AND a.ended_ms IS NULL)
         > json_array_length(w.slots_json)",
    // no checkpoint outlives its job's run
    "SELECT count(*) FROM checkpoints c JOIN jobs j ON j.id = c.job
     WHERE j.status IN ('succeeded','failed','cancelled','pruned')",
    // a checkpoint never passes what its attempt reported, nor the plan
    "SELECT count(*) FROM checkpoints c JOIN attempts a ON a.id = c.attempt
     WHERE a.last_epoch IS NULL OR c.epoch > a.last_epoch OR c.epoch < 1 OR c.epoch > 3",
    // stored epochs lie in 1..=epochs
    "SELECT count(*) FROM epoch_metrics m JOIN jobs j ON j.id = m.job
     WHERE m.epoch < 1 OR m.epoch > j.epochs",
    // an attempt's last epoch never passes the plan
    "SELECT count(*) FROM attempts WHERE last_epoch > 3",
];

fn check_invariants(s: &Scheduler, context: &str) {
    for sql in INVARIANTS {
        assert_eq!(
            count(s, sql),
            0,
            "{context}: invariant broken: {sql}\n{}",
            dump(s)
        );
    }
}

/// Whether the store holds `attempt` open.
fn is_open(s: &Scheduler, attempt: AttemptId) -> bool {
    s.store()
        .conn()
        .prepare_cached("SELECT ended_ms IS NULL FROM attempts WHERE id = ?1")
        .unwrap()
        .query_row([attempt.0 as i64], |r| r.get(0))
        .unwrap_or(false)
}

fn last_epoch(s: &Scheduler, attempt: AttemptId) -> u32 {
    s.store()
        .conn()
        .prepare_cached("SELECT coalesce(last_epoch, 0) FROM attempts WHERE id = ?1")
        .unwrap()
        .query_row([attempt.0 as i64], |r| r.get(0))
        .unwrap_or(0)
}

/// Workers heard from within the lease timeout and not lost: their
/// identities must never be handed to another registration.
fn live_workers(s: &Scheduler, now_ms: i64) -> Vec<String> {
    let conn = s.store().conn();
    let mut stmt = conn
        .prepare_cached("SELECT id FROM workers WHERE state != 'lost' AND last_seen_ms > ?1")
        .unwrap();
    stmt.query_map([now_ms - LEASE_TIMEOUT_S * 1000], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The report built from the store file: every figure in it is finite.
fn check_report(path: &Path, context: &str) {
    let conn = from_store::open_read_only(path).unwrap();
    for exp in from_store::experiments(&conn).unwrap() {
        let jobs = from_store::jobs(&conn, &exp.id).unwrap();
        let report = build_report(&exp, &jobs, 1_000_000);
        let c = &report.compute;
        assert!(
            c.train_seconds.is_finite() && c.gpu_hours.is_finite() && c.cpu_hours.is_finite(),
            "{context}: {c:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&render_json(&report).unwrap()).unwrap();
        for part in ["groups", "compute"] {
            let mut all = Vec::new();
            numbers(&json[part], part.into(), &mut all);
            for (where_, v) in all {
                assert!(v.is_finite(), "{context}: {where_} = {v}");
            }
        }
        for g in &report.groups {
            for m in [&g.test_accuracy, &g.test_loss, &g.best_epoch] {
                assert!(m.mean.is_none_or(f64::is_finite), "{context}: {m:?}");
                assert!(m.std_sample.is_none_or(f64::is_finite), "{context}: {m:?}");
            }
        }
    }
}

/// Every number in a JSON value, with its path.
fn numbers(v: &serde_json::Value, path: String, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => out.push((path, n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                numbers(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// A registered worker as the test drives it.
#[derive(Clone)]
struct Worker {
    id: WorkerId,
    secret: WorkerSecret,
    name: String,
    slots: usize,
}

/// What one step did.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    hostile_refused: usize,
    completed: usize,
    restarts: usize,
}

/// Runs one sequence of `steps` operations; adds what happened to `tally`.
fn run(seed: u32, steps: usize, tally: &mut Tally) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(1_000_000_000);
    let open = || Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    let mut s = open();
    s.submit(&submission()).unwrap();
    let mut rng = Mt19937::new(seed);
    let mut pick = move |n: usize| rng.random_interval(n as u64 - 1) as usize;
    let mut workers: Vec<Worker> = Vec::new();
    let mut attempts: BTreeMap<AttemptId, (usize, JobId)> = BTreeMap::new();

    for step in 0..steps {
        let context = format!("seed {seed} step {step}");
        let before = dump(&s);
        let attempt = if attempts.is_empty() {
            None
        } else {
            let keys: Vec<&AttemptId> = attempts.keys().collect();
            let a = *keys[pick(keys.len())];
            Some((a, attempts[&a].0, is_open(&s, a)))
        };
        // (outcome, whether the call was hostile and had to be refused,
        // whether it concerned the attempt picked above)
        let (outcome, hostile, about_attempt): (Result<(), SchedulerError>, bool, bool) =
            match pick(20) {
                0 | 1 => {
                    let name = format!("worker{}", workers.len());
                    let slots = 1 + pick(3);
                    let r = s.register(&registration(&name, slots));
                    (
                        r.map(|r| {
                            workers.push(Worker {
                                id: r.id,
                                secret: r.secret,
                                name,
                                slots,
                            })
                        }),
                        false,
                        false,
                    )
                }
                // A second worker under a live worker's name and host.
                2 if !workers.is_empty() => {
                    let twin = workers[pick(workers.len())].clone();
                    let live = live_workers(&s, clock.now_ms());
                    let r = s.register(&registration(&twin.name, twin.slots)).unwrap();
                    assert!(
                        !live.contains(&r.id.0),
                        "{context}: a registration took over live worker {}",
                        r.id
                    );
                    workers.push(Worker {
                        id: r.id,
                        secret: r.secret,
                        ..twin
                    });
                    (Ok(()), false, false)
                }
                // Honest leases ask for their free slots; greedy ones for more.
                3..=5 if !workers.is_empty() => {
                    let wi = pick(workers.len());
                    let w = workers[wi].clone();
                    let asked = if pick(3) == 0 {
                        w.slots + 3
                    } else {
                        pick(w.slots + 1)
                    };
                    let free: Vec<String> = (0..asked).map(|i| format!("cuda:{i}")).collect();
                    let r = s.lease(&w.id, &free).map(|out| {
                        for a in out.assignments {
                            attempts.insert(a.attempt, (wi, a.job));
                        }
                    });
                    (r, false, false)
                }
                6 => match attempt {
                    Some((a, wi, _)) => {
                        let w = &workers[wi];
                        let p = Progress {
                            attempt: a,
                            epoch: last_epoch(&s, a),
                            of: EPOCHS,
                        };
                        (s.heartbeat(&w.id, &[p]).map(|_| ()), false, false)
                    }
                    None => (Ok(()), false, false),
                },
                7 | 8 => match attempt {
                    Some((a, _, _)) => {
                        let next = (last_epoch(&s, a) + 1).min(EPOCHS);
                        (s.record_epoch(a, &metrics(next)).map(|_| ()), false, true)
                    }
                    None => (Ok(()), false, false),
                },
                9 => match attempt {
                    Some((a, _, _)) => {
                        let m = hostile_metrics(pick(6), last_epoch(&s, a));
                        let going_back = last_epoch(&s, a) >= 2 && pick(2) == 0;
                        let m = if going_back {
                            metrics(last_epoch(&s, a) - 1)
                        } else {
                            m
                        };
                        (s.record_epoch(a, &m).map(|_| ()), true, true)
                    }
                    None => (Ok(()), false, false),
                },
                10 => match attempt {
                    Some((a, _, _)) => {
                        let epoch = last_epoch(&s, a);
                        let r = s.put_checkpoint(a, epoch, &[step as u8; 16]).map(|_| ());
                        // Before any report, epoch 0 must be refused.
                        (r, epoch == 0, true)
                    }
                    None => (Ok(()), false, false),
                },
                11 => match attempt {
                    Some((a, _, _)) => {
                        let ahead = last_epoch(&s, a) + 1 + pick(2) as u32;
                        let r = s.put_checkpoint(a, ahead, &[1; 8]).map(|_| ());
                        (r, true, true)
                    }
                    None => (Ok(()), false, false),
                },
                12 | 13 => match attempt {
                    Some((a, _, _)) => {
                        let r = s.complete(a, &honest_result());
                        if r.is_ok() {
                            tally.completed += 1;
                        }
                        (r, false, true)
                    }
                    None => (Ok(()), false, false),
                },
                14 => match attempt {
                    Some((a, _, _)) => (s.complete(a, &hostile_result(pick(6))), true, true),
                    None => (Ok(()), false, false),
                },
                // Another worker's credentials on this attempt.
                15 => match attempt {
                    Some((a, wi, _))
                        if workers.len() > 1 && workers.iter().any(|w| w.id != workers[wi].id) =>
                    {
                        let others: Vec<&Worker> =
                            workers.iter().filter(|w| w.id != workers[wi].id).collect();
                        let other = others[pick(others.len())];
                        let c = Credentials {
                            worker: other.id.clone(),
                            secret: other.secret.clone(),
                        };
                        // Not even a twin under the same name may speak for it.
                        (s.authorize(&c, a), true, false)
                    }
                    _ => (Ok(()), false, false),
                },
                16 => match attempt {
                    Some((a, _, _)) => {
                        let class = if pick(4) == 0 {
                            FailureClass::Deterministic
                        } else {
                            FailureClass::Transient
                        };
                        (s.fail(a, "failed", class).map(|_| ()), false, true)
                    }
                    None => (Ok(()), false, false),
                },
                17 => match attempt {
                    Some((a, _, _)) => (s.release(a), false, true),
                    None => (Ok(()), false, false),
                },
                18 => {
                    clock.advance_s(pick(2 * EPOCH_TIMEOUT_S as usize) as i64);
                    (s.expire_leases().map(|_| ()), false, false)
                }
                _ => {
                    if pick(3) == 0 {
                        drop(s);
                        s = open();
                        tally.restarts += 1;
                    } else if let Some((_, job)) =
                        attempts.values().nth(pick(attempts.len().max(1)))
                    {
                        let job = job.clone();
                        match s.cancel(&job) {
                            Err(SchedulerError::AlreadyFinished { .. }) | Ok(()) => {}
                            Err(e) => panic!("{context}: cancel: {e}"),
                        }
                    }
                    (Ok(()), false, false)
                }
            };
        match &outcome {
            Ok(()) => {
                tally.accepted += 1;
                assert!(
                    !hostile,
                    "{context}: a hostile call was accepted\n{}",
                    dump(&s)
                );
                if about_attempt && let Some((a, _, open_before)) = attempt {
                    assert!(
                        open_before,
                        "{context}: a call about ended attempt {a} was accepted"
                    );
                }
            }
            Err(SchedulerError::Store(e)) => panic!("{context}: store error {e}"),
            Err(e) => {
                tally.refused += 1;
                if hostile {
                    tally.hostile_refused += 1;
                }
                assert_eq!(
                    dump(&s),
                    before,
                    "{context}: refused call ({e}) changed the store"
                );
            }
        }
        check_invariants(&s, &context);
    }
    check_report(&path, &format!("seed {seed}"));
}

#[test]
fn random_sequences_of_honest_and_hostile_workers_keep_the_invariants() {
    let mut tally = Tally::default();
    let started = std::time::Instant::now();
    for seed in 0..1200 {
        run(seed, 30, &mut tally);
    }
    eprintln!("{tally:?} in {:?}", started.elapsed());
    // The sequences do reach every side: accepted and refused calls, hostile
    // ones refused, jobs completed, restarts.
    assert!(
        tally.accepted > 20_000
            && tally.refused > 5_000
            && tally.hostile_refused > 2_000
            && tally.completed > 500
            && tally.restarts > 200,
        "{tally:?}"
    );
}

#[test]
fn honest_workers_finish_every_job_after_any_sequence() {
    for seed in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let clock = ManualClock::new(1_000_000_000);
        let mut s = Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
        s.submit(&submission()).unwrap();
        let w = s
            .register(&registration(&format!("w{seed}"), 1 + seed as usize % 3))
            .unwrap();
        let free: Vec<String> = (0..3).map(|i| format!("cuda:{i}")).collect();
        for _ in 0..100 {
            let out = s.lease(&w.id, &free).unwrap();
            if out.all_done {
                break;
            }
            for a in out.assignments {
                for e in 1..=EPOCHS {
                    s.record_epoch(a.attempt, &metrics(e)).unwrap();
                    s.put_checkpoint(a.attempt, e, &[e as u8; 8]).unwrap();
                }
                s.complete(a.attempt, &honest_result()).unwrap();
            }
        }
        assert_eq!(s.status().unwrap().counts.succeeded, 6);
        assert_eq!(count(&s, "SELECT count(*) FROM checkpoints"), 0);
        check_invariants(&s, "honest run");
        check_report(&path, "honest run");
    }
}
