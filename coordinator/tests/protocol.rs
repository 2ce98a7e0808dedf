//! The worker protocol over a real loopback socket: fencing of late reports,
//! checkpoint upload/download for resuming elsewhere, exactly-once completion,
//! the data fingerprint check, and token authentication.

mod net_support;

use net_support::{Joined, LEASE_TIMEOUT_S, complete, join, metrics, registration, start};
use sha2::{Digest, Sha256};
use spikecv_common::proto::client::WorkerClient;
use spikecv_common::proto::{
    CheckpointChunk, DownloadCheckpointRequest, LeaseRequest, ReportEpochRequest, StatusRequest,
};
use spikecv_coordinator::auth::{AuthConfig, Token};
use tonic::Code;

async fn lease(
    client: &mut WorkerClient,
    who: &Joined,
    name: &str,
    slots: usize,
) -> tonic::Result<spikecv_common::proto::LeaseResponse> {
    client
        .lease(LeaseRequest {
            worker_id: who.id.clone(),
            registration: Some(registration(name, "fp-A")),
            free_slots: vec!["cpu".to_owned(); slots],
            running: vec![],
            worker_secret: who.secret.clone(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn upload(
    client: &mut WorkerClient,
    who: &Joined,
    attempt: &str,
    epoch: u32,
    bytes: &[u8],
    sha: &str,
) -> tonic::Result<u64> {
    // Small inputs in 7-byte chunks (many messages); big ones in 256 KiB.
    let size = if bytes.len() > 1000 { 256 << 10 } else { 7 };
    let chunks: Vec<CheckpointChunk> = bytes
        .chunks(size)
        .enumerate()
        .map(|(i, c)| CheckpointChunk {
            attempt_id: if i == 0 {
                attempt.to_owned()
            } else {
                String::new()
            },
            epoch,
            data: c.to_vec(),
            sha256: if (i + 1) * size >= bytes.len() {
                sha.to_owned()
            } else {
                String::new()
            },
            worker: if i == 0 { who.creds() } else { None },
            size: if i == 0 { bytes.len() as u64 } else { 0 },
        })
        .collect();
    client
        .upload_checkpoint(tokio_stream::iter(chunks))
        .await
        .map(|r| r.into_inner().bytes)
}

#[tokio::test]
async fn late_reports_of_a_fenced_attempt_are_refused_and_the_job_resumes_from_its_checkpoint() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut a = server.worker(None);
    let a_id = join(&mut a, "a", "fp-A").await;
    let first = lease(&mut a, &a_id, "a", 1).await.unwrap();
    assert_eq!(first.assignments.len(), 1);
    let job = first.assignments[0].clone();
    assert!(!job.has_checkpoint);
    assert_eq!(job.device, "cpu");
    a.report_epoch(ReportEpochRequest {
        attempt_id: job.attempt_id.clone(),
        metrics: Some(metrics(1).to_proto()),
        worker: a_id.creds(),
    })
    .await
    .unwrap();
    let ckpt: Vec<u8> = (0..100u8).collect();
    let sha = hex::encode(Sha256::digest(&ckpt));
    // A checkpoint whose sha256 does not match is refused and not stored.
    let torn = upload(&mut a, &a_id, &job.attempt_id, 1, &ckpt[..50], &sha)
        .await
        .unwrap_err();
    assert_eq!(torn.code(), Code::DataLoss);
    assert_eq!(
        upload(&mut a, &a_id, &job.attempt_id, 1, &ckpt, &sha)
            .await
            .unwrap(),
        100
    );

    // Worker a goes silent; its lease runs out.
    server.clock.advance_s(LEASE_TIMEOUT_S + 1);
    let expired = server.sched.call(|s| s.expire_leases()).await.unwrap();
    assert_eq!(expired.len(), 1);

    // Worker b gets the job again, with the checkpoint.
    let mut b = server.worker(None);
    let b_id = join(&mut b, "b", "fp-A").await;
    let second = lease(&mut b, &b_id, "b", 2).await.unwrap();
    let again = second
        .assignments
        .iter()
        .find(|x| x.job_id == job.job_id)
        .expect("the expired job is leased again")
        .clone();
    assert_ne!(again.attempt_id, job.attempt_id);
    assert!(again.has_checkpoint);
    let mut stream = b
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: again.attempt_id.clone(),
            worker: b_id.creds(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    let mut got_sha = String::new();
    while let Some(c) = stream.message().await.unwrap() {
        got.extend_from_slice(&c.data);
        if !c.sha256.is_empty() {
            got_sha = c.sha256;
        }
    }
    assert_eq!(got, ckpt);
    assert_eq!(got_sha, sha);

    // Every late report of the fenced attempt is refused.
    let late_epoch = a
        .report_epoch(ReportEpochRequest {
            attempt_id: job.attempt_id.clone(),
            metrics: Some(metrics(2).to_proto()),
            worker: a_id.creds(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        late_epoch.code(),
        Code::FailedPrecondition,
        "{late_epoch:?}"
    );
    let late_upload = upload(&mut a, &a_id, &job.attempt_id, 2, &ckpt, &sha)
        .await
        .unwrap_err();
    assert_eq!(late_upload.code(), Code::FailedPrecondition);
    let late_complete = complete(&mut a, &a_id, &job.attempt_id).await.unwrap_err();
    assert_eq!(late_complete.code(), Code::FailedPrecondition);
    // The old attempt cannot download either.
    let late_download = a
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: job.attempt_id.clone(),
            worker: a_id.creds(),
        })
        .await
        .expect_err("download by a fenced attempt");
    assert_eq!(late_download.code(), Code::FailedPrecondition);

    // The current attempt completes exactly once.
    complete(&mut b, &b_id, &again.attempt_id).await.unwrap();
    let twice = complete(&mut b, &b_id, &again.attempt_id)
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let status = server
        .admin(None)
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let succeeded = status
        .jobs
        .iter()
        .find(|j| j.state == "succeeded")
        .unwrap()
        .count;
    assert_eq!(succeeded, 1);
    assert_eq!(status.total_jobs, 2);

    // A heartbeat naming the fenced attempt tells the worker to drop it.
    let beat = a
        .heartbeat(spikecv_common::proto::HeartbeatRequest {
            worker_id: a_id.id.clone(),
            worker_secret: a_id.secret.clone(),
            registration: Some(registration("a", "fp-A")),
            running: vec![spikecv_common::proto::AttemptProgress {
                attempt_id: job.attempt_id.clone(),
                epoch: 2,
                epochs: 2,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(beat.cancel, vec![job.attempt_id.clone()]);
    server.stop().await;
}

#[tokio::test]
async fn a_worker_with_another_data_set_is_refused() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut w = server.worker(None);
    let refused = w.register(registration("other", "fp-B")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("fp-A") && refused.message().contains("fp-B"),
        "{}",
        refused.message()
    );
    let by_lease = w
        .lease(LeaseRequest {
            worker_id: String::new(),
            registration: Some(registration("other", "fp-B")),
            free_slots: vec!["cpu".to_owned()],
            running: vec![],
            worker_secret: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(by_lease.code(), Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_worker_id_registers_again_under_a_new_id() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut w = server.worker(None);
    // As after a coordinator that lost its record of the worker: the id is
    // not taken over (no credential names it); the caller gets a new one.
    let before = Joined {
        id: "w-from-before".to_owned(),
        secret: "its-secret".to_owned(),
    };
    let r = lease(&mut w, &before, "w", 1).await.unwrap();
    assert_ne!(r.worker_id, "w-from-before");
    assert_eq!(r.assignments.len(), 1);
    assert!(!r.worker_secret.is_empty(), "a new secret with the new id");
    let now = Joined {
        id: r.worker_id.clone(),
        secret: r.worker_secret.clone(),
    };
    // From now on the new id is known: only its secret speaks for it.
    let impostor = Joined {
        id: now.id.clone(),
        secret: "its-secret".to_owned(),
    };
    let refused = lease(&mut w, &impostor, "w", 1).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    lease(&mut w, &now, "w", 1).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn calls_without_the_token_are_refused() {
    let auth = AuthConfig {
        worker: Some(Token::new("worker-secret")),
        admin: Some(Token::new("admin-secret")),
    };
    let server = start(2, "fp-A", auth).await;
    let none = server
        .worker(None)
        .register(registration("a", "fp-A"))
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(!none.message().contains("secret"));
    let wrong = server
        .worker(Some("worker-secreT"))
        .register(registration("a", "fp-A"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    server
        .worker(Some("worker-secret"))
        .register(registration("a", "fp-A"))
        .await
        .unwrap();
    // Admin calls need the admin token.
    let admin_by_worker = server
        .admin(Some("worker-secret"))
        .status(StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(admin_by_worker.code(), Code::Unauthenticated);
    let admin_none = server
        .admin(None)
        .status(StatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(admin_none.code(), Code::Unauthenticated);
    server
        .admin(Some("admin-secret"))
        .status(StatusRequest {})
        .await
        .unwrap();
    server.stop().await;
}

/// Reads a whole checkpoint download; the error of a stream that fails midway.
async fn download(
    client: &mut WorkerClient,
    who: &Joined,
    attempt: &str,
) -> tonic::Result<(Vec<u8>, usize)> {
    let mut stream = client
        .download_checkpoint(DownloadCheckpointRequest {
            attempt_id: attempt.to_owned(),
            worker: who.creds(),
        })
        .await?
        .into_inner();
    let (mut got, mut chunks) = (Vec::new(), 0);
    while let Some(c) = stream.message().await? {
        got.extend_from_slice(&c.data);
        chunks += 1;
    }
    Ok((got, chunks))
}

#[tokio::test]
async fn big_checkpoints_stream_through_files_and_a_damaged_file_is_not_sent() {
    let server = start(2, "fp-A", AuthConfig::default()).await;
    let mut a = server.worker(None);
    let id = join(&mut a, "a", "fp-A").await;
    let job = lease(&mut a, &id, "a", 1).await.unwrap().assignments[0].clone();
    // 2.5 MiB: more than two of the coordinator's 1 MiB download chunks.
    let ckpt: Vec<u8> = (0..(5u32 << 19)).map(|i| (i * 31 % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&ckpt));
    // A checkpoint follows its epoch's report.
    a.report_epoch(ReportEpochRequest {
        attempt_id: job.attempt_id.clone(),
        metrics: Some(metrics(2).to_proto()),
        worker: id.creds(),
    })
    .await
    .unwrap();
    let n = upload(&mut a, &id, &job.attempt_id, 2, &ckpt, &sha)
        .await
        .unwrap();
    assert_eq!(n, ckpt.len() as u64);
    let (got, chunks) = download(&mut a, &id, &job.attempt_id).await.unwrap();
    assert_eq!((got == ckpt, chunks), (true, 3));

    // The bytes are a file in the checkpoint directory, not a database blob.
    let record = server
        .sched
        .call(move |s| {
            s.checkpoint_record(&spikecv_common::experiment::plan::JobId::new(job.job_id))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.path.parent(),
        Some(server.sched.checkpoint_dir().path())
    );
    assert_eq!(std::fs::read(&record.path).unwrap(), ckpt);

    // A file altered on disk ends the download with DATA_LOSS, and a missing one
    // too (the worker then trains from epoch 0; NOT_FOUND would tell it its
    // attempt is unknown, and it would drop the job), instead of handing out
    // wrong bytes.
    let mut damaged = ckpt.clone();
    damaged[(3 << 19) + 5] ^= 1;
    std::fs::write(&record.path, &damaged).unwrap();
    let err = download(&mut a, &id, &job.attempt_id).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    std::fs::remove_file(&record.path).unwrap();
    let err = download(&mut a, &id, &job.attempt_id).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
}
