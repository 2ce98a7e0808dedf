//! A worker that holds the token and lies about its work, over a real
//! loopback socket: a heartbeat whose progress cannot be (epoch 4,000,000,000
//! of a two-epoch job, epochs going back) is refused naming the field; a
//! 25 MiB `Complete` is refused from its length prefix; a lease/release loop
//! on one job ends with the job failed and its attempts bounded. Throughout,
//! an honest worker's job completes and `status` answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use net_support::{
    Joined, complete, join, lease_one, metrics, registration, result, start_on_file,
};
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    AttemptProgress, CompleteRequest, HeartbeatRequest, LeaseRequest, ReleaseRequest,
    ReportEpochRequest,
};
use spikecv_coordinator::call_limits::RESULT_MESSAGE_BYTES;
use spikecv_coordinator::scheduler::DEFAULT_MAX_RELEASES;
use tonic::Code;

/// `protocol.max_attempts` when an experiment does not set it (the
/// documented default; the test experiment leaves it out).
const DEFAULT_MAX_ATTEMPTS: usize = 3;

async fn heartbeat(
    client: &mut WorkerClient,
    who: &Joined,
    name: &str,
    attempt: &str,
    epoch: u32,
    epochs: u32,
) -> tonic::Result<()> {
    client
        .heartbeat(HeartbeatRequest {
            worker_id: who.id.clone(),
            registration: Some(registration(name, "fp-A")),
            running: vec![AttemptProgress {
                attempt_id: attempt.to_owned(),
                epoch,
                epochs,
            }],
            worker_secret: who.secret.clone(),
        })
        .await
        .map(|_| ())
}

async fn report(client: &mut WorkerClient, who: &Joined, attempt: &str, epoch: u32) {
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: attempt.to_owned(),
            metrics: Some(metrics(epoch).to_proto()),
            worker: who.creds(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn impossible_heartbeat_progress_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_file(2, "fp-A", &dir.path().join("state.db")).await;
    let mut client = server.worker(None);
    let who = join(&mut client, "liar", "fp-A").await;
    let job = lease_one(&mut client, &who, "liar", "fp-A").await.unwrap();
    let a = job.attempt_id.as_str();

    // Epoch 4,000,000,000 of 7, on a job of two epochs.
    let err = heartbeat(&mut client, &who, "liar", a, 4_000_000_000, 7)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("running[0].epoch"), "{err}");
    assert!(err.message().contains("4000000000"), "{err}");
    // A total past the job's epochs.
    let err = heartbeat(&mut client, &who, "liar", a, 1, 7)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("running[0].epochs"), "{err}");
    // The same lie inside a Lease.
    let err = client
        .lease(LeaseRequest {
            worker_id: who.id.clone(),
            registration: Some(registration("liar", "fp-A")),
            free_slots: vec![],
            running: vec![AttemptProgress {
                attempt_id: a.to_owned(),
                epoch: 4_000_000_000,
                epochs: 2,
            }],
            worker_secret: who.secret.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("running[0].epoch"), "{err}");

    // Both epochs reported, then a heartbeat back at epoch 0.
    report(&mut client, &who, a, 1).await;
    report(&mut client, &who, a, 2).await;
    let err = heartbeat(&mut client, &who, "liar", a, 0, 2)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(
        err.message().contains("running[0].epoch is 0")
            && err.message().contains("already reported epoch 2"),
        "{err}"
    );

    // True progress is taken, and the job completes; status answers.
    heartbeat(&mut client, &who, "liar", a, 2, 2).await.unwrap();
    heartbeat(&mut client, &who, "liar", a, 1, 2).await.unwrap();
    complete(&mut client, &who, a).await.unwrap();
    assert_eq!(server.jobs_in("succeeded").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_complete_of_25_mib_is_refused_from_its_length_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_on_file(2, "fp-A", &dir.path().join("state.db")).await;
    let mut client = server.worker(None);
    let who = join(&mut client, "w", "fp-A").await;
    let job = lease_one(&mut client, &who, "w", "fp-A").await.unwrap();
    let a = job.attempt_id.as_str();
    let mut huge = result();
    huge.epochs = vec![metrics(1); 2];
    let err = client
        .complete(CompleteRequest {
            attempt_id: a.to_owned(),
            result: Some(huge.to_proto()),
            device: "d".repeat(25 << 20),
            worker: who.creds(),
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err}"
    );
    assert!(
        err.message().contains("/spikecv.v1.Coordinator/Complete")
            && err
                .message()
                .contains(&format!("limit is {RESULT_MESSAGE_BYTES} bytes")),
        "{err}"
    );
    const { assert!(RESULT_MESSAGE_BYTES < 25 << 20) };
    // The server still answers, and the honest Complete of the same attempt
    // goes through.
    assert_eq!(server.jobs_in("succeeded").await, 0);
    report(&mut client, &who, a, 1).await;
    complete(&mut client, &who, a).await.unwrap();
    assert_eq!(server.jobs_in("succeeded").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_lease_release_loop_fails_its_job_and_its_attempts_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_on_file(2, "fp-A", &db).await;
    let mut honest = server.worker(None);
    let h = join(&mut honest, "honest", "fp-A").await;
    let mut looper = server.worker(None);
    let l = join(&mut looper, "looper", "fp-A").await;
    let honest_job = lease_one(&mut honest, &h, "honest", "fp-A").await.unwrap();
    let first = lease_one(&mut looper, &l, "looper", "fp-A").await.unwrap();
    let looped_job = first.job_id.clone();
    assert_ne!(looped_job, honest_job.job_id);

    let mut cycles = 0;
    let mut current = Some(first);
    while let Some(job) = current {
        assert_eq!(job.job_id, looped_job, "only the looped job is pending");
        looper
            .release(ReleaseRequest {
                attempt_id: job.attempt_id.clone(),
                worker: l.creds(),
            })
            .await
            .unwrap();
        cycles += 1;
        assert!(cycles <= 1000, "the loop never ends");
        if cycles == 5 {
            // The honest worker is served meanwhile.
            report(&mut honest, &h, &honest_job.attempt_id, 1).await;
            complete(&mut honest, &h, &honest_job.attempt_id)
                .await
                .unwrap();
        }
        current = lease_one(&mut looper, &l, "looper", "fp-A").await;
    }
    let bound = DEFAULT_MAX_RELEASES as usize + DEFAULT_MAX_ATTEMPTS;
    assert_eq!(cycles, bound, "releases past the limit count as failures");
    assert_eq!(server.jobs_in("failed").await, 1);
    assert_eq!(server.jobs_in("succeeded").await, 1);

    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM attempts WHERE job = ?1",
            [&looped_job],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows as usize, bound);
    let (state, error): (String, String) = conn
        .query_row(
            "SELECT status, error FROM jobs WHERE id = ?1",
            [&looped_job],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(state, "failed");
    assert!(error.contains("--max-releases-per-job"), "{error}");
    server.stop().await;
}
