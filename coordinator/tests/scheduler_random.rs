//! Random interleavings of every scheduler operation (seeded, so deterministic),
//! with the store's invariants checked after each step: one open attempt per
//! live job and it is the current one, nothing changes on a refused call, a job
//! succeeds at most once, retry and loss bounds hold, and a reopened store
//! carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rusqlite::types::Value;
use spikecv_common::config::ExperimentConfig;
use spikecv_common::job::{EpochMetrics, JobResult};
use spikecv_common::mt19937::Mt19937;
use spikecv_common::plan::plan_configurations;
use spikecv_coordinator::scheduler::{
    AttemptId, FailureClass, ManualClock, Progress, Scheduler, SchedulerError, SchedulerSettings,
    SlotInfo, Submission, WorkerId, WorkerRegistration,
};

fn submission() -> Submission {
    let config = ExperimentConfig::from_toml_str(
        "[data]\nroot = \"d\"\n[protocol]\nfolds = 3\nseeds = [0, 1]\nvariants = [\"whole\"]\nmax_attempts = 2\n",
    )
    .unwrap();
    let recordings: Vec<String> = (0..9).map(|i| format!("user{i:02}_dc")).collect();
    let plan = plan_configurations(&config, &recordings, None).unwrap();
    Submission {
        config_toml: config.to_toml_string(),
        config,
        jobs: plan.jobs,
        configurations: plan.configurations,
        data_fingerprint: None,
        class_names: vec![],
    }
}

fn settings() -> SchedulerSettings {
    SchedulerSettings {
        heartbeat_seconds: 5,
        lease_timeout_seconds: 30,
        max_lost: 4,
    }
}

fn result(epoch: u32) -> JobResult {
    let m = EpochMetrics {
        epoch,
        train_loss: 0.1,
        train_accuracy: 0.5,
        val_loss: None,
        val_accuracy: None,
        test_loss: Some(0.2),
        test_accuracy: Some(0.5),
        epoch_seconds: 1.0,
        samples_per_second: 10.0,
    };
    JobResult {
        best_epoch: epoch,
        test_accuracy: 0.5,
        test_loss: 0.2,
        val_accuracy: None,
        val_loss: None,
        confusion: vec![],
        train_seconds: 10.0,
        epochs: vec![m],
        optimistic: true,
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
            .prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))
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
    s.store().conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn check_invariants(s: &Scheduler) {
    let bad = [
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
        "SELECT count(*) FROM jobs WHERE (status IN ('succeeded','failed','cancelled')) != (finished_ms IS NOT NULL)",
        // bounds
        "SELECT count(*) FROM jobs WHERE failures > max_attempts OR lost_attempts > 4",
        "SELECT count(*) FROM jobs WHERE status = 'pending' AND (failures >= max_attempts OR lost_attempts >= 4)",
        // attempts counts the leases
        "SELECT count(*) FROM jobs j WHERE attempts != (SELECT count(*) FROM attempts a WHERE a.job = j.id)",
        // no checkpoint is kept for a succeeded job
        "SELECT count(*) FROM checkpoints c JOIN jobs j ON j.id = c.job WHERE j.status = 'succeeded'",
    ];
    for sql in bad {
        assert_eq!(count(s, sql), 0, "invariant broken: {sql}\n{}", dump(s));
    }
}

fn reg(i: u32) -> WorkerRegistration {
    WorkerRegistration {
        name: format!("worker{i}"),
        host: "h".into(),
        slots: vec![SlotInfo {
            device: "cuda:0".into(),
            device_name: "gpu".into(),
            memory_bytes: 0,
        }],
        data_fingerprint: String::new(),
    }
}

/// Runs `steps` random operations; returns (calls refused as fenced, calls that succeeded).
fn run(seed: u32, steps: usize) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let clock = ManualClock::new(1_000_000);
    let open = || Scheduler::open(&path, settings(), Box::new(clock.clone())).unwrap();
    let mut s = open();
    s.submit(&submission()).unwrap();
    let mut rng = Mt19937::new(seed);
    let mut pick = |n: usize| rng.random_interval(n as u64 - 1) as usize;
    let mut workers: Vec<WorkerId> = Vec::new();
    let mut attempts: Vec<(AttemptId, WorkerId)> = Vec::new();
    let mut jobs = Vec::new();
    let (mut fenced, mut ok) = (0, 0);
    for step in 0..steps {
        let before = dump(&s);
        let op = pick(14);
        let attempt = if attempts.is_empty() {
            None
        } else {
            Some(attempts[pick(attempts.len())].clone())
        };
        let outcome: Result<(), SchedulerError> = match op {
            0 => {
                let r = s.register_worker(&reg(workers.len() as u32));
                r.map(|w| workers.push(w))
            }
            1 | 2 if !workers.is_empty() => {
                let w = workers[pick(workers.len())].clone();
                let free: Vec<String> = (0..pick(3)).map(|i| format!("cuda:{i}")).collect();
                s.lease(&w, &free).map(|out| {
                    for a in out.assignments {
                        jobs.push(a.job.clone());
                        attempts.push((a.attempt, w.clone()));
                    }
                })
            }
            3 => match &attempt {
                Some((a, w)) => s
                    .heartbeat(
                        w,
                        &[Progress {
                            attempt: *a,
                            epoch: 1,
                            of: 3,
                        }],
                    )
                    .map(|_| ()),
                None => Ok(()),
            },
            4 => attempt.map_or(Ok(()), |(a, _)| {
                s.record_epoch(a, &result(1).epochs[0]).map(|_| ())
            }),
            5 => attempt.map_or(Ok(()), |(a, _)| {
                s.put_checkpoint(a, 1, &[step as u8; 16]).map(|_| ())
            }),
            6 | 7 => attempt.map_or(Ok(()), |(a, _)| s.complete(a, &result(2))),
            8 => attempt.map_or(Ok(()), |(a, _)| {
                s.fail(a, "transient", FailureClass::Transient).map(|_| ())
            }),
            9 if pick(4) == 0 => attempt.map_or(Ok(()), |(a, _)| {
                s.fail(a, "deterministic", FailureClass::Deterministic)
                    .map(|_| ())
            }),
            10 => attempt.map_or(Ok(()), |(a, _)| s.release(a)),
            11 => {
                clock.advance_s(pick(40) as i64);
                s.expire_leases().map(|_| ())
            }
            12 if !jobs.is_empty() && pick(5) == 0 => {
                let j = jobs[pick(jobs.len())].clone();
                s.cancel(&j)
            }
            13 if pick(10) == 0 => {
                drop(s);
                s = open();
                Ok(())
            }
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => ok += 1,
            Err(SchedulerError::Store(e)) => panic!("step {step}: store error {e}"),
            Err(e @ SchedulerError::Fenced { .. }) => {
                fenced += 1;
                assert_eq!(
                    dump(&s),
                    before,
                    "step {step}: refused call ({e}) changed the store"
                );
            }
            Err(e) => {
                assert_eq!(
                    dump(&s),
                    before,
                    "step {step}: refused call ({e}) changed the store"
                );
            }
        }
        check_invariants(&s);
    }
    // Everything ends: keep leasing and completing until no job is left.
    let w = s.register_worker(&reg(99)).unwrap();
    for _ in 0..100 {
        clock.advance_s(31);
        s.expire_leases().unwrap();
        let out = s.lease(&w, &["cuda:0".to_owned()]).unwrap();
        if out.all_done {
            break;
        }
        for a in out.assignments {
            s.complete(a.attempt, &result(3)).unwrap();
        }
    }
    check_invariants(&s);
    assert_eq!(s.status().unwrap().counts.unfinished(), 0);
    (fenced, ok)
}

#[test]
fn random_interleavings_keep_the_invariants() {
    for seed in 0..6 {
        let (fenced, ok) = run(seed, 400);
        // The interleavings do exercise both sides of the fence.
        assert!(
            fenced > 20 && ok > 100,
            "seed {seed}: {fenced} fenced, {ok} accepted"
        );
    }
}
