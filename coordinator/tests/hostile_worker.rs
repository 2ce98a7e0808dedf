//! A worker that holds the token but misbehaves, over a real loopback socket:
//! it cannot report on another worker's attempts, cannot take more jobs than
//! it registered slots, cannot store huge strings or non-finite metrics, and
//! the run goes on; the report and the dashboard still read the store after.
//! An experiment beyond the config bounds is refused at submit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod net_support;

use net_support::{Joined, join, lease_slots, metrics, registration, result, start, start_on_file};
use spikecv_common::experiment::job::JobResult;
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    CheckpointChunk, CompleteRequest, DownloadCheckpointRequest, FailRequest, LeaseRequest,
    LeaseResponse, ReleaseRequest, ReportEpochRequest, StatusRequest, SubmitRequest,
    WorkerCredentials,
};
use spikecv_coordinator::auth::AuthConfig;
use spikecv_coordinator::dashboard::overview;
use spikecv_coordinator::report::{build_report, from_store};
use spikecv_coordinator::scheduler::Clock;
use tonic::Code;

async fn lease(client: &mut WorkerClient, who: &Joined, name: &str, slots: usize) -> LeaseResponse {
    lease_slots(client, who, name, "fp-A", slots).await
}

async fn complete(
    client: &mut WorkerClient,
    who: Option<WorkerCredentials>,
    attempt: &str,
    result: &JobResult,
) -> tonic::Result<()> {
    client
        .complete(CompleteRequest {
            attempt_id: attempt.to_owned(),
            result: Some(result.to_proto()),
            device: "cpu".to_owned(),
            worker: who,
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .map(|_| ())
}

/// Every attempt call `who` can make about `attempt`; the codes they got.
async fn every_call(
    client: &mut WorkerClient,
    who: Option<WorkerCredentials>,
    attempt: &str,
) -> Vec<(&'static str, Code)> {
    let code = |r: tonic::Result<()>| r.err().map_or(Code::Ok, |s| s.code());
    let mut out = Vec::new();
    let r = client
        .report_epoch(ReportEpochRequest {
            attempt_id: attempt.to_owned(),
            metrics: Some(metrics(1).to_proto()),
            worker: who.clone(),
        })
        .await
        .map(|_| ());
    out.push(("ReportEpoch", code(r)));
    let chunk = CheckpointChunk {
        attempt_id: attempt.to_owned(),
        epoch: 1,
        data: vec![1, 2, 3],
        sha256: "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81".to_owned(),
        worker: who.clone(),
        size: 3,
    };
    let r = client
        .upload_checkpoint(tokio_stream::iter(vec![chunk]))
        .await
        .map(|_| ());
    out.push(("UploadCheckpoint", code(r)));
    let r = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: attempt.to_owned(),
            worker: who.clone(),
        })
        .await
        .map(|_| ());
    out.push(("DownloadCheckpoint", code(r)));
    let r = client
        .fail(FailRequest {
            attempt_id: attempt.to_owned(),
            error: "sabotage".to_owned(),
            deterministic: true,
            worker: who.clone(),
        })
        .await
        .map(|_| ());
    out.push(("Fail", code(r)));
    let r = client
        .release(ReleaseRequest {
            attempt_id: attempt.to_owned(),
            worker: who.clone(),
        })
        .await
        .map(|_| ());
    out.push(("Release", code(r)));
    let mut perfect = result();
    perfect.test_accuracy = 1.0;
    out.push((
        "Complete",
        code(complete(client, who, attempt, &perfect).await),
    ));
    out
}

async fn succeeded(server: &net_support::TestServer) -> (u64, u64) {
    let status = server
        .admin(None)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let ok = status
        .jobs
        .iter()
        .find(|j| j.state == "succeeded")
        .map_or(0, |j| j.count);
    (ok, status.total_jobs)
}

#[tokio::test]
async fn another_workers_calls_about_an_attempt_are_refused_and_the_job_completes() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut a = server.worker(None);
    let a_id = join(&mut a, "a", "fp-A").await;
    let mut b = server.worker(None);
    let b_id = join(&mut b, "b", "fp-A").await;
    let job = lease(&mut a, &a_id, "a", 1).await.assignments.remove(0);

    // b, with its own valid credentials, about a's attempt.
    for (call, code) in every_call(&mut b, b_id.creds(), &job.attempt_id).await {
        assert_eq!(code, Code::PermissionDenied, "{call} by another worker");
    }
    // b claiming to be a, with its own secret or none.
    let forged = |secret: &str| {
        Some(WorkerCredentials {
            worker_id: a_id.id.clone(),
            secret: secret.to_owned(),
        })
    };
    for secret in [b_id.secret.as_str(), "", "00"] {
        for (call, code) in every_call(&mut b, forged(secret), &job.attempt_id).await {
            assert_eq!(code, Code::PermissionDenied, "{call} with a forged secret");
        }
    }
    // No credentials at all.
    for (call, code) in every_call(&mut b, None, &job.attempt_id).await {
        assert_eq!(code, Code::InvalidArgument, "{call} without credentials");
    }
    // b cannot take over a's id through a lease either.
    let hijack = b
        .lease(LeaseRequest {
            worker_id: a_id.id.clone(),
            registration: Some(registration("a", "fp-A")),
            free_slots: vec!["cpu".to_owned()],
            running: vec![],
            worker_secret: b_id.secret.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hijack.code(), Code::PermissionDenied);

    // Nothing of that reached the job: a reports and completes it.
    a.report_epoch(ReportEpochRequest {
        attempt_id: job.attempt_id.clone(),
        metrics: Some(metrics(1).to_proto()),
        worker: a_id.creds(),
    })
    .await
    .unwrap();
    complete(&mut a, a_id.creds(), &job.attempt_id, &result())
        .await
        .unwrap();
    let next = lease(&mut a, &a_id, "a", 1).await.assignments.remove(0);
    complete(&mut a, a_id.creds(), &next.attempt_id, &result())
        .await
        .unwrap();
    assert_eq!(succeeded(&server).await, (2, 2));
    server.stop().await;
}

#[tokio::test]
async fn a_lease_gives_no_more_jobs_than_the_worker_registered_slots() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut w = server.worker(None);
    let id = join(&mut w, "one-slot", "fp-A").await;
    let r = lease(&mut w, &id, "one-slot", 500).await;
    assert_eq!(r.assignments.len(), 1);
    let too_many = w
        .lease(LeaseRequest {
            worker_id: id.id.clone(),
            registration: Some(registration("one-slot", "fp-A")),
            free_slots: vec!["cpu".to_owned(); 100_000],
            running: vec![],
            worker_secret: id.secret.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(too_many.message().contains("free_slots"), "{too_many:?}");
    server.stop().await;
}

#[tokio::test]
async fn over_long_strings_are_refused_naming_the_field_and_registering_again_takes_no_identity_over()
 {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut w = server.worker(None);
    // Past every field's limit, within the message limit of registrations.
    let huge = "x".repeat(300 << 10);
    let mut reg = registration(&huge, "fp-A");
    let refused = w.register(reg.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("worker_name"), "{refused:?}");
    assert!(refused.message().len() < 1000, "the name is not echoed");
    reg.worker_name = "w".to_owned();
    reg.host = huge.clone();
    let refused = w.register(reg.clone()).await.unwrap_err();
    assert!(refused.message().contains("host"), "{refused:?}");
    reg.host = "test".to_owned();
    reg.slots[0].device_name = huge.clone();
    let refused = w.register(reg.clone()).await.unwrap_err();
    assert!(refused.message().contains("device_name"), "{refused:?}");
    // Control characters (a terminal escape) in a name: refused, naming the
    // field and the character.
    reg.slots[0].device_name = "cpu".to_owned();
    reg.worker_name = "w\u{1b}[2J".to_owned();
    let refused = w.register(reg).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("worker_name") && refused.message().contains("U+001B"),
        "{refused:?}"
    );
    // A right-to-left override (a name that reads as another), a zero-width
    // space and a line separator: refused the same way.
    for (name, code) in [
        ("gpu-1\u{202E}3-edon", "U+202E"),
        ("gpu\u{200B}1", "U+200B"),
        ("gpu\u{2028}1", "U+2028"),
    ] {
        let refused = w.register(registration(name, "fp-A")).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().contains("worker_name") && refused.message().contains(code),
            "{refused:?}"
        );
    }

    // Registrations under the name of a live worker get identities of their
    // own: none takes another's over (the table is bounded by --max-workers).
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(join(&mut w, "w", "fp-A").await);
    }
    let distinct: std::collections::BTreeSet<&str> = ids.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(distinct.len(), 20);
    let status = server
        .admin(None)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.workers.len(), 20);
    // The first one still works under its own secret.
    assert_eq!(lease(&mut w, &ids[0], "w", 1).await.assignments.len(), 1);

    // A huge error text is refused, naming the field; a short one is taken.
    let me = ids.pop().unwrap();
    let job = lease(&mut w, &me, "w", 1).await.assignments.remove(0);
    let fail = |error: String| FailRequest {
        attempt_id: job.attempt_id.clone(),
        error,
        deterministic: false,
        worker: me.creds(),
    };
    let refused = w.fail(fail("x".repeat(20 << 10))).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("error"), "{refused:?}");
    assert!(
        w.fail(fail("out of memory".to_owned()))
            .await
            .unwrap()
            .into_inner()
            .will_retry
    );
    server.stop().await;
}

#[tokio::test]
async fn non_finite_metrics_are_refused_and_report_and_overview_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let server = start_on_file(2, "fp-A", &db).await;
    let mut w = server.worker(None);
    let me = join(&mut w, "w", "fp-A").await;
    let job = lease(&mut w, &me, "w", 1).await.assignments.remove(0);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut m = metrics(1);
        m.train_loss = bad;
        let refused = w
            .report_epoch(ReportEpochRequest {
                attempt_id: job.attempt_id.clone(),
                metrics: Some(m.to_proto()),
                worker: me.creds(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}");
        assert!(refused.message().contains("train_loss"), "{refused:?}");
    }
    let mut m = metrics(1);
    m.val_accuracy = Some(f64::NAN);
    let refused = w
        .report_epoch(ReportEpochRequest {
            attempt_id: job.attempt_id.clone(),
            metrics: Some(m.to_proto()),
            worker: me.creds(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut r = result();
    r.epochs[1].test_loss = Some(f64::NAN);
    let refused = complete(&mut w, me.creds(), &job.attempt_id, &r)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut r = result();
    r.test_loss = f64::INFINITY;
    let refused = complete(&mut w, me.creds(), &job.attempt_id, &r)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    // The attempt goes on: a sound report and completion are taken.
    complete(&mut w, me.creds(), &job.attempt_id, &result())
        .await
        .unwrap();
    assert_eq!(succeeded(&server).await, (1, 2));

    // `coordinator report`'s reading and `/api/overview`'s both work.
    let conn = from_store::open_read_only(&db).unwrap();
    let now = server.clock.now_ms();
    let o = overview::overview(&conn, now).unwrap();
    assert_eq!(o.experiments[0].progress.succeeded, 1);
    let exp = from_store::experiments(&conn).unwrap().remove(0);
    let report = build_report(&exp, &from_store::jobs(&conn, &exp.id).unwrap(), now / 1000);
    assert_eq!(report.progress.succeeded, 1);
    server.stop().await;
}

#[tokio::test]
async fn an_experiment_beyond_the_config_bounds_is_refused_at_submit_naming_the_key() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    net_support::file_list_root(dir.path(), &["user00_indoor", "user01_indoor"]);
    let text = format!(
        "[data]\nroot = {:?}\n[simulation]\nsteps = 10000000\n",
        dir.path().display().to_string()
    );
    let refused = server
        .admin(None)
        .submit(SubmitRequest { config_toml: text })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("simulation.steps"),
        "{refused:?}"
    );
    server.stop().await;
}
