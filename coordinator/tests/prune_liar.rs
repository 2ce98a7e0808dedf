//! Pruner poisoning over the real protocol: a hand-made worker that holds the
//! token reports a validation accuracy of 1.0, and an honest job of another
//! configuration in its fold is pruned on it (median pruning). When the liar's
//! attempt fails, that decision is undone: the pruned job goes back to
//! pending, and the honest workers complete every job of the sweep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;
mod sched_support;

use net_support::{Joined, join, lease_slots, start_on_file};
use sched_support::{submission_over, sweep_epoch};
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus};
use spikecv_common::experiment::plan::JobId;
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    Assignment, CompleteRequest, FailRequest, LeaseResponse, ReportEpochRequest,
};
use spikecv_coordinator::scheduler::{ManualClock, Scheduler, SchedulerSettings, Submission};
use spikecv_coordinator::store::Store;

const EPOCHS: u32 = 3;

/// Two learning rates × two folds, median pruning from epoch 2.
fn sweep() -> Submission {
    submission_over(
        &format!(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\n\
             variants = [\"whole\"]\n[training]\nepochs = {EPOCHS}\n\
             [sweep]\n\"training.lr\" = [0.001, 0.0000001]\nprune = \"median\"\nwarmup_epochs = 1\n"
        ),
        8,
        Some("fp-A"),
        &["cat", "dog"],
    )
}

/// An epoch with validation accuracy `val` (test accuracy 0.5).
fn epoch(epoch: u32, val: f64) -> EpochMetrics {
    sweep_epoch(epoch, val, 0.5)
}

/// An honest result of `epochs` epochs: two classes, one sample of each per
/// test recording, every sample called "cat" (accuracy 0.5).
fn honest_result(a: &Assignment, epochs: u32) -> JobResult {
    let per_class = a.split.as_ref().unwrap().test.len() as u32;
    JobResult {
        best_epoch: 1,
        test_accuracy: 0.5,
        test_loss: 1.0,
        val_accuracy: Some(0.5),
        val_loss: Some(1.0),
        confusion: vec![vec![per_class, 0], vec![per_class, 0]],
        train_seconds: 3.0,
        epochs: (1..=epochs).map(|e| epoch(e, 0.5)).collect(),
        optimistic: false,
    }
}

async fn lease(client: &mut WorkerClient, who: &Joined, name: &str) -> LeaseResponse {
    lease_slots(client, who, name, "fp-A", 1).await
}

/// Reports `m`; whether the coordinator answered "stop".
async fn report(client: &mut WorkerClient, who: &Joined, a: &Assignment, m: &EpochMetrics) -> bool {
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: a.attempt_id.clone(),
            metrics: Some(m.to_proto()),
            worker: who.creds(),
        })
        .await
        .unwrap()
        .into_inner()
        .cancel
}

async fn status_of(server: &net_support::TestServer, job: &str) -> JobStatus {
    let job = JobId::new(job.to_owned());
    server
        .sched
        .call(move |s| Ok(s.store().job(&job)?.unwrap().status))
        .await
        .unwrap()
}

/// The attempts `prune_evidence` names for `job`.
async fn evidence(server: &net_support::TestServer, job: &str) -> Vec<u64> {
    let job = job.to_owned();
    server
        .sched
        .call(move |s| {
            let conn = s.store().conn();
            let mut stmt =
                conn.prepare("SELECT attempt FROM prune_evidence WHERE job = ?1 ORDER BY attempt")?;
            let rows = stmt
                .query_map([job], |r| r.get::<_, i64>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().map(|a| a as u64).collect())
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_liars_metrics_prune_an_honest_job_until_its_attempt_fails_then_every_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let plan = sweep();
    {
        let mut s = Scheduler::with_store(
            Store::open(&db).unwrap(),
            SchedulerSettings::default(),
            Box::new(ManualClock::new(1_000_000)),
        )
        .unwrap();
        s.submit(&plan).unwrap();
    }
    let server = start_on_file(2, "fp-A", &db).await;
    let mut client = server.worker(None);
    let liar = join(&mut client, "liar", "fp-A").await;
    let mut honest = Vec::new();
    for i in 0..3 {
        honest.push(join(&mut client, &format!("honest{i}"), "fp-A").await);
    }
    let mut lied = lease(&mut client, &liar, "liar").await.assignments;
    let lied = lied.remove(0);
    let planned = |a: &Assignment| {
        plan.jobs
            .iter()
            .find(|j| j.id.as_str() == a.job_id)
            .map(|j| (j.configuration, j.fold))
            .unwrap()
    };
    let (liar_config, liar_fold) = planned(&lied);
    let mut held = Vec::new();
    for (i, who) in honest.iter().enumerate() {
        let mut got = lease(&mut client, who, &format!("honest{i}"))
            .await
            .assignments;
        held.push((who.clone(), got.remove(0)));
    }
    // The honest job of another configuration in the liar's fold.
    let victim = held
        .iter()
        .position(|(_, a)| {
            let (c, f) = planned(a);
            f == liar_fold && c != liar_config
        })
        .expect("the sweep puts another configuration in the liar's fold");

    // The liar's made-up accuracy of 1.0, then the honest epochs.
    for e in 1..=2 {
        assert!(!report(&mut client, &liar, &lied, &epoch(e, 1.0)).await);
    }
    let mut stopped = Vec::new();
    for (who, a) in &held {
        assert!(!report(&mut client, who, a, &epoch(1, 0.5)).await);
        stopped.push(report(&mut client, who, a, &epoch(2, 0.5)).await);
    }
    let victim_job = held[victim].1.job_id.clone();
    assert_eq!(
        stopped.iter().filter(|s| **s).count(),
        1,
        "only the job compared with the liar is pruned: {stopped:?}"
    );
    assert!(stopped[victim]);
    assert_eq!(status_of(&server, &victim_job).await, JobStatus::Pruned);
    let proof = evidence(&server, &victim_job).await;
    let liar_attempt: u64 = lied.attempt_id.parse().unwrap();
    assert!(proof.contains(&liar_attempt), "{proof:?}");

    // The liar's attempt fails: the decision its metrics made is undone.
    client
        .fail(FailRequest {
            attempt_id: lied.attempt_id.clone(),
            error: "gone".to_owned(),
            deterministic: false,
            worker: liar.creds(),
        })
        .await
        .unwrap();
    assert_eq!(status_of(&server, &victim_job).await, JobStatus::Pending);
    assert!(evidence(&server, &victim_job).await.is_empty());

    // The honest workers finish what they hold, then everything else.
    for (i, (who, a)) in held.iter().enumerate() {
        if i == victim {
            continue;
        }
        report(&mut client, who, a, &epoch(3, 0.5)).await;
        complete(&mut client, who, a).await;
    }
    // The sweep's jobs come first in the queue (submitted first); the
    // server's own experiment is not this test's.
    let who = honest[0].clone();
    'queue: for _ in 0..20 {
        let r = lease(&mut client, &who, "honest0").await;
        for a in r.assignments {
            if !plan.jobs.iter().any(|j| j.id.as_str() == a.job_id) {
                break 'queue;
            }
            let epochs = ExperimentConfig::from_toml_str(&a.config_toml)
                .unwrap()
                .training
                .epochs;
            for e in 1..=epochs {
                assert!(!report(&mut client, &who, &a, &epoch(e, 0.5)).await);
            }
            complete(&mut client, &who, &a).await;
        }
    }
    for job in &plan.jobs {
        assert_eq!(
            status_of(&server, job.id.as_str()).await,
            JobStatus::Succeeded,
            "job {} (configuration {}, fold {})",
            job.id,
            job.configuration,
            job.fold
        );
    }
    server.stop().await;
}

async fn complete(client: &mut WorkerClient, who: &Joined, a: &Assignment) {
    let epochs = ExperimentConfig::from_toml_str(&a.config_toml)
        .unwrap()
        .training
        .epochs;
    client
        .complete(CompleteRequest {
            attempt_id: a.attempt_id.clone(),
            result: Some(honest_result(a, epochs).to_proto()),
            device: "cpu".to_owned(),
            worker: who.creds(),
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .unwrap();
}
