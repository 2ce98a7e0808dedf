//! Issue 22, "workers that hang, lie or collide": the worker recovers instead
//! of giving up.
//! 1. A checkpoint that downloads fine but does not load (here 4 KiB of 0xAB,
//!    stored by a hand-made worker through the real protocol) costs only its
//!    epochs: a real `worker join` trains the job from epoch 0 and it succeeds.
//! 2. A worker whose identity the coordinator refuses mid-run (PERMISSION_DENIED
//!    on Lease) registers afresh and carries on, instead of exiting: against a
//!    fake coordinator in this process, driving `spikecv_worker::join::join`.
//!
//! Test 1 needs the coordinator binary beside the worker binary: `cargo test
//! --workspace` builds both; otherwise `cargo build -p spikecv-coordinator` first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use join_support::*;
use sha2::{Digest, Sha256};
use spikecv_common::proto::client::{ClientOptions, WorkerClient};
use spikecv_common::proto::coordinator_server::{Coordinator, CoordinatorServer};
use spikecv_common::proto::{
    Assignment, CheckpointChunk, CompleteRequest, CompleteResponse, DownloadCheckpointRequest,
    EpochMetrics, FailRequest, FailResponse, HeartbeatRequest, HeartbeatResponse, LeaseRequest,
    LeaseResponse, PROTOCOL_VERSION, RegisterRequest, RegisterResponse, ReleaseRequest,
    ReleaseResponse, ReportEpochRequest, ReportEpochResponse, Slot, UploadCheckpointResponse,
    WorkerCredentials,
};
use spikecv_worker::join::{JoinConfig, JoinOutcome, join};
use tonic::{Request, Response, Status, Streaming};

/// 1 seed × 2 folds × 1 variant (2 jobs), train-test, T = 2, 2 epochs, a
/// checkpoint every epoch, on a 32 × 32 input.
fn write_small_experiment(path: &Path, data: &Path) {
    let text = format!(
        r#"name = "join-recovery"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-test"
folds = 2
seeds = [0]
variants = ["whole"]
{TINY_RUN}"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

const JOBS: u64 = 2;
/// The hand-made worker's epoch-1 training loss: no real epoch reports it.
const FAKE_LOSS: f64 = 0.123_456_789;

/// The folder `worker join` gives a job (its id with odd characters replaced).
fn job_dir(job_id: &str) -> String {
    job_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Leases one job as a worker that never trains: retries until the
/// coordinator hands one out.
async fn lease_one(
    client: &mut WorkerClient,
    reg: &RegisterRequest,
    who: &WorkerCredentials,
) -> Assignment {
    let start = Instant::now();
    loop {
        let r = client
            .lease(LeaseRequest {
                worker_id: who.worker_id.clone(),
                registration: Some(reg.clone()),
                free_slots: vec!["cpu".into()],
                running: Vec::new(),
                worker_secret: who.secret.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.assignments.len() <= 1, "one free slot, one job at most");
        if let Some(a) = r.assignments.into_iter().next() {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the coordinator handed out no job"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_that_does_not_load_trains_from_epoch_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 7);
    let experiment = tmp.path().join("experiment.toml");
    write_small_experiment(&experiment, &data);
    coordinator_bin();
    let (port, metrics) = (free_port(), free_port());
    let state = tmp.path().join("state.db");
    let _coordinator = start_coordinator(
        port,
        &experiment,
        &state,
        metrics,
        &tmp.path().join("coordinator.log"),
    );
    let counts = wait_counts(port, Duration::from_secs(60), |c| {
        c.values().sum::<u64>() == JOBS
    })
    .await;
    assert_eq!(counts.get("pending").copied(), Some(JOBS), "{counts:?}");

    // A hand-made worker: leases a job, reports epoch 1, stores a checkpoint
    // that no network can load, and hands the job back.
    let mut client = ClientOptions {
        url: format!("http://127.0.0.1:{port}"),
        ..ClientOptions::default()
    }
    .worker_client()
    .unwrap();
    let fingerprint = spikecv_common::dataset::Dataset::open(&data)
        .unwrap()
        .fingerprint()
        .unwrap();
    let reg = RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: "hand-made".into(),
        host: "test".into(),
        slots: vec![Slot {
            device: "cpu".into(),
            device_name: "cpu".into(),
            memory_bytes: 0,
            manifest: None,
        }],
        data_fingerprint: fingerprint,
        trainers: Vec::new(),
    };
    let registered = client.register(reg.clone()).await.unwrap().into_inner();
    let who = WorkerCredentials {
        worker_id: registered.worker_id,
        secret: registered.worker_secret,
    };
    let a = lease_one(&mut client, &reg, &who).await;
    assert!(!a.has_checkpoint, "a fresh job has no checkpoint yet");
    client
        .report_epoch(ReportEpochRequest {
            attempt_id: a.attempt_id.clone(),
            metrics: Some(EpochMetrics {
                epoch: 1,
                train_loss: FAKE_LOSS,
                train_accuracy: 0.25,
                val_loss: None,
                val_accuracy: None,
                test_loss: Some(2.5),
                test_accuracy: Some(0.25),
                epoch_seconds: 1.0,
                samples_per_second: 10.0,
                firing_rates: Vec::new(),
            }),
            worker: Some(who.clone()),
        })
        .await
        .unwrap();
    let garbage = vec![0xABu8; 4096];
    let chunk = CheckpointChunk {
        attempt_id: a.attempt_id.clone(),
        epoch: 1,
        data: garbage.clone(),
        sha256: hex::encode(Sha256::digest(&garbage)),
        worker: Some(who.clone()),
        size: garbage.len() as u64,
    };
    let stored = client
        .upload_checkpoint(tokio_stream::iter(vec![chunk]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.bytes, garbage.len() as u64);
    client
        .release(ReleaseRequest {
            attempt_id: a.attempt_id.clone(),
            worker: Some(who.clone()),
        })
        .await
        .unwrap();
    let counts = job_counts(port).await.unwrap();
    assert_eq!(
        counts.get("pending").copied(),
        Some(JOBS),
        "the released job is back in the queue: {counts:?}"
    );
    let ckpt_dir = tmp.path().join("state.db.checkpoints");
    assert_eq!(
        std::fs::read_dir(&ckpt_dir).unwrap().count(),
        1,
        "the coordinator kept the released job's checkpoint"
    );

    // A real worker takes both jobs, the released one with its checkpoint.
    let work = tmp.path().join("w0");
    let mut worker = start_worker(port, &data, &work, "w0");
    assert!(
        worker.wait_for(Duration::from_secs(120)).success(),
        "the worker exits 0 when the work is done"
    );
    let counts = wait_counts(port, Duration::from_secs(10), |c| {
        c.get("succeeded").copied() == Some(JOBS)
    })
    .await;
    assert_eq!(counts.values().sum::<u64>(), JOBS, "{counts:?}");
    let log = std::fs::read_to_string(work.join("worker.log")).unwrap();
    assert!(
        log.contains("checkpoint downloaded"),
        "the checkpoint itself arrived intact: {log}"
    );
    assert!(
        log.contains("the checkpoint does not load; training from epoch 0"),
        "the worker says the checkpoint does not load: {log}"
    );
    assert!(!log.contains("job failed"), "no attempt failed: {log}");

    // Every job finished exactly once (collect_results panics on a second).
    let results = collect_results(std::slice::from_ref(&work));
    assert_eq!(results.len(), JOBS as usize, "jobs with results");
    let metrics_file = work.join(job_dir(&a.job_id)).join("metrics.json");
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&metrics_file).unwrap()).unwrap();
    let epochs = m["result"]["epochs"].as_array().unwrap();
    let numbers: Vec<u64> = epochs
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "the job trained every epoch: {m}");
    assert_ne!(
        epochs[0]["train_loss"].as_f64(),
        Some(FAKE_LOSS),
        "epoch 1 was trained, not taken from the hand-made worker"
    );
    assert!(
        !work
            .join(job_dir(&a.job_id))
            .join("checkpoint.safetensors")
            .exists(),
        "the finished job's checkpoint is gone"
    );
    assert_eq!(
        std::fs::read_dir(&ckpt_dir).unwrap().count(),
        0,
        "the coordinator dropped its checkpoints when the jobs succeeded"
    );
}

/// What the fake coordinator of test 2 saw.
#[derive(Debug, Default)]
struct Seen {
    /// Identities handed out (by Register, or by a Lease without an id, as the
    /// real coordinator does): (id, secret).
    identities: Vec<(String, String)>,
    /// Register calls.
    registers: usize,
    /// Every lease: (worker id, secret).
    leases: Vec<(String, String)>,
}

/// A coordinator that refuses the first identity it gave out, and has no work
/// for the second.
#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
}

impl Fake {
    fn enroll(&self) -> (String, String) {
        let mut seen = self.seen.lock().unwrap();
        let n = seen.identities.len() + 1;
        let identity = (format!("w-{n}"), format!("secret-{n}"));
        seen.identities.push(identity.clone());
        identity
    }
}

#[tonic::async_trait]
impl Coordinator for Fake {
    async fn register(
        &self,
        _request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.seen.lock().unwrap().registers += 1;
        let (worker_id, worker_secret) = self.enroll();
        Ok(Response::new(RegisterResponse {
            worker_id,
            heartbeat_seconds: 1,
            worker_secret,
        }))
    }

    async fn lease(
        &self,
        request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let r = request.into_inner();
        self.seen
            .lock()
            .unwrap()
            .leases
            .push((r.worker_id.clone(), r.worker_secret.clone()));
        if r.worker_id.is_empty() {
            // An unknown worker with its registration: enrolled, no work yet.
            let (worker_id, worker_secret) = self.enroll();
            return Ok(Response::new(LeaseResponse {
                worker_id,
                worker_secret,
                heartbeat_seconds: 1,
                ..LeaseResponse::default()
            }));
        }
        if r.worker_id == "w-2" && r.worker_secret == "secret-2" {
            return Ok(Response::new(LeaseResponse {
                worker_id: r.worker_id,
                all_done: true,
                heartbeat_seconds: 1,
                ..LeaseResponse::default()
            }));
        }
        Err(Status::permission_denied(format!(
            "worker {} is not known under that secret",
            r.worker_id
        )))
    }

    async fn heartbeat(
        &self,
        _request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Ok(Response::new(HeartbeatResponse::default()))
    }

    async fn report_epoch(
        &self,
        _request: Request<ReportEpochRequest>,
    ) -> Result<Response<ReportEpochResponse>, Status> {
        Err(Status::unimplemented("ReportEpoch"))
    }

    async fn upload_checkpoint(
        &self,
        _request: Request<Streaming<CheckpointChunk>>,
    ) -> Result<Response<UploadCheckpointResponse>, Status> {
        Err(Status::unimplemented("UploadCheckpoint"))
    }

    type DownloadCheckpointStream = futures::stream::Empty<Result<CheckpointChunk, Status>>;

    async fn download_checkpoint(
        &self,
        _request: Request<DownloadCheckpointRequest>,
    ) -> Result<Response<Self::DownloadCheckpointStream>, Status> {
        Err(Status::unimplemented("DownloadCheckpoint"))
    }

    async fn complete(
        &self,
        _request: Request<CompleteRequest>,
    ) -> Result<Response<CompleteResponse>, Status> {
        Err(Status::unimplemented("Complete"))
    }

    async fn fail(&self, _request: Request<FailRequest>) -> Result<Response<FailResponse>, Status> {
        Err(Status::unimplemented("Fail"))
    }

    async fn release(
        &self,
        _request: Request<ReleaseRequest>,
    ) -> Result<Response<ReleaseResponse>, Status> {
        Err(Status::unimplemented("Release"))
    }

    async fn enrol(
        &self,
        _request: Request<spikecv_common::proto::EnrolRequest>,
    ) -> Result<Response<spikecv_common::proto::EnrolResponse>, Status> {
        Err(Status::unimplemented("Enrol"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refused_mid_run_registers_again_instead_of_exiting() {
    let fake = Fake::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CoordinatorServer::new(fake.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let tmp = tempfile::tempdir().unwrap();
    let client = ClientOptions {
        url: format!("http://{addr}"),
        ..ClientOptions::default()
    };
    let mut config = JoinConfig::new(client, "cpu", 1, Some("refused".into())).unwrap();
    config.work_dir = tmp.path().join("work");
    config.exit_when_done = true;
    config.max_backoff = Duration::from_millis(200);
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        join(config, std::future::pending::<()>()),
    )
    .await
    .expect("join ended within 30 s")
    .expect("join ended without an error");
    server.abort();
    assert_eq!(outcome, JoinOutcome::AllDone);

    let seen = fake.seen.lock().unwrap();
    assert_eq!(
        seen.identities,
        [
            ("w-1".to_owned(), "secret-1".to_owned()),
            ("w-2".to_owned(), "secret-2".to_owned())
        ],
        "registered twice: {seen:?}"
    );
    assert!(
        seen.registers >= 1,
        "the worker starts with Register: {seen:?}"
    );
    let refused = seen.leases.iter().filter(|(id, _)| id == "w-1").count();
    assert_eq!(
        refused, 1,
        "the refused identity is not tried again: {seen:?}"
    );
    let last = seen.leases.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("w-2", "secret-2"),
        "later leases carry the new id and secret: {seen:?}"
    );
    let after_refusal = seen.leases.iter().skip_while(|(id, _)| id != "w-1").skip(1);
    assert!(after_refusal.clone().all(|(id, _)| id != "w-1"), "{seen:?}");
    assert!(
        after_refusal.filter(|(id, _)| id == "w-2").count() >= 1,
        "{seen:?}"
    );
}
