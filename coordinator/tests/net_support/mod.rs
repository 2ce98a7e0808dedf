//! Shared helpers of the network tests: an in-process coordinator on a real
//! loopback socket over an in-memory store and a hand-driven clock, a small
//! experiment over a file list, and clients.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::Path;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::proto::client::{AdminServiceClient, ClientOptions, WorkerClient};
use spikecv_common::proto::{
    Assignment, CompleteRequest, LeaseRequest, LeaseResponse, PROTOCOL_VERSION, RegisterRequest,
    Slot, WorkerCredentials,
};
use spikecv_coordinator::auth::AuthConfig;
use spikecv_coordinator::conn_limits::ConnLimits;
use spikecv_coordinator::health::HealthSettings;
use spikecv_coordinator::scheduler::SchedulerHandle;
use spikecv_coordinator::scheduler::{ManualClock, Scheduler, SchedulerSettings, Submission};
use spikecv_coordinator::server::{ServerOptions, serve_with_health};
use spikecv_coordinator::service::{CheckpointLimits, CoordinatorService};
use spikecv_coordinator::store::Store;

/// Lease timeout of the test scheduler.
pub const LEASE_TIMEOUT_S: i64 = 30;

/// A coordinator running in this process.
pub struct TestServer {
    pub url: String,
    pub sched: SchedulerHandle,
    pub clock: ManualClock,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl TestServer {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    /// Client options for this server with a token.
    pub fn options(&self, token: Option<&str>) -> ClientOptions {
        ClientOptions {
            url: self.url.clone(),
            token: token.map(str::to_owned),
            ..ClientOptions::default()
        }
    }

    pub fn worker(&self, token: Option<&str>) -> WorkerClient {
        self.options(token).worker_client().unwrap()
    }

    pub fn admin(&self, token: Option<&str>) -> AdminServiceClient {
        self.options(token).admin_client().unwrap()
    }

    /// Jobs in `state`, as `coordinator status` reads them.
    pub async fn jobs_in(&self, state: &str) -> u64 {
        let status = self
            .admin(None)
            .status(spikecv_common::proto::StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        status
            .jobs
            .iter()
            .find(|j| j.state == state)
            .map_or(0, |j| j.count)
    }
}

/// Writes a data root holding only a file list of `names`.
pub fn file_list_root(dir: &Path, names: &[&str]) {
    std::fs::write(dir.join("filelist.txt"), names.join("\n") + "\n").unwrap();
}

/// An experiment of `folds` folds × seed 0 × the whole variant over 4 recordings,
/// submitted with the data fingerprint `fp`, served with `auth`.
pub async fn start(folds: u32, fp: &str, auth: AuthConfig) -> TestServer {
    start_with(
        folds,
        fp,
        ServerOptions {
            auth,
            tls: None,
            health_listen: None,
            conn_limits: ConnLimits::default(),
        },
    )
    .await
}

/// As [`start`], with any server options (TLS).
pub async fn start_with(folds: u32, fp: &str, options: ServerOptions) -> TestServer {
    let store = Store::open_in_memory().unwrap();
    start_store(folds, fp, options, Served::default(), store).await
}

/// As [`start`], the health watchdog pinging the scheduler as `health` says.
pub async fn start_watched(folds: u32, fp: &str, health: HealthSettings) -> TestServer {
    let options = ServerOptions {
        auth: AuthConfig::default(),
        tls: None,
        health_listen: None,
        conn_limits: ConnLimits::default(),
    };
    let store = Store::open_in_memory().unwrap();
    let served = Served {
        health,
        ..Served::default()
    };
    start_store(folds, fp, options, served, store).await
}

/// As [`start`] without tokens, over a store file at `db` (for readers such as
/// the report and the dashboard that open it beside the server).
pub async fn start_on_file(folds: u32, fp: &str, db: &Path) -> TestServer {
    let options = ServerOptions {
        auth: AuthConfig::default(),
        tls: None,
        health_listen: None,
        conn_limits: ConnLimits::default(),
    };
    let store = Store::open(db).unwrap();
    start_store(folds, fp, options, Served::default(), store).await
}

/// As [`start_on_file`], with other limits on checkpoint transfers.
pub async fn start_limited(
    folds: u32,
    fp: &str,
    db: &Path,
    limits: CheckpointLimits,
) -> TestServer {
    let options = ServerOptions {
        auth: AuthConfig::default(),
        tls: None,
        health_listen: None,
        conn_limits: ConnLimits::default(),
    };
    let served = Served {
        limits,
        ..Served::default()
    };
    start_store(folds, fp, options, served, Store::open(db).unwrap()).await
}

/// How the test server runs beside its options: the health watchdog's
/// settings and the checkpoint transfer limits.
#[derive(Default)]
struct Served {
    health: HealthSettings,
    limits: CheckpointLimits,
}

async fn start_store(
    folds: u32,
    fp: &str,
    options: ServerOptions,
    served: Served,
    store: Store,
) -> TestServer {
    let Served { health, limits } = served;
    let data = tempfile::tempdir().unwrap();
    file_list_root(
        data.path(),
        &["user00_indoor", "user01_indoor", "user35_dc", "user36_dc"],
    );
    let text = format!(
        "[data]\nroot = {:?}\n[protocol]\nfolds = {folds}\nseeds = [0]\nvariants = [\"whole\"]\n[training]\nepochs = 2\n",
        data.path().display().to_string()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    let clock = ManualClock::new(1_000_000);
    let settings = SchedulerSettings {
        heartbeat_seconds: 1,
        lease_timeout_seconds: LEASE_TIMEOUT_S as u32,
        ..SchedulerSettings::default()
    };
    let mut scheduler = Scheduler::with_store(store, settings, Box::new(clock.clone())).unwrap();
    let submission = Submission::from_config(config, text, Some(fp.to_owned())).unwrap();
    scheduler.submit(&submission).unwrap();
    let sched = SchedulerHandle::spawn(scheduler).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!(
        "{scheme}://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = CoordinatorService::new(sched.clone(), 1).with_checkpoint_limits(limits);
    let task = tokio::spawn(async move {
        serve_with_health(listener, service, options, health, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestServer {
        url,
        sched,
        clock,
        stop: Some(stop),
        task: Some(task),
        _data: data,
    }
}

/// A registration with one CPU slot.
pub fn registration(name: &str, fp: &str) -> RegisterRequest {
    RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: name.to_owned(),
        host: "test".to_owned(),
        slots: vec![Slot {
            device: "cpu".to_owned(),
            device_name: "cpu".to_owned(),
            memory_bytes: 0,
            manifest: None,
        }],
        data_fingerprint: fp.to_owned(),
        trainers: Vec::new(),
    }
}

/// A registered worker's id and secret.
#[derive(Debug, Clone)]
pub struct Joined {
    pub id: String,
    pub secret: String,
}

impl Joined {
    /// The credentials its attempt calls carry.
    pub fn creds(&self) -> Option<WorkerCredentials> {
        Some(WorkerCredentials {
            worker_id: self.id.clone(),
            secret: self.secret.clone(),
        })
    }
}

/// Registers `name` (one CPU slot, fingerprint `fp`).
pub async fn join(client: &mut WorkerClient, name: &str, fp: &str) -> Joined {
    let r = client
        .register(registration(name, fp))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.worker_secret.is_empty());
    Joined {
        id: r.worker_id,
        secret: r.worker_secret,
    }
}

/// A lease of `who` (registered as `name` with data `fp`) asking for `slots`
/// CPU slots.
pub async fn lease_slots(
    client: &mut WorkerClient,
    who: &Joined,
    name: &str,
    fp: &str,
    slots: usize,
) -> LeaseResponse {
    client
        .lease(LeaseRequest {
            worker_id: who.id.clone(),
            registration: Some(registration(name, fp)),
            free_slots: vec!["cpu".to_owned(); slots],
            running: vec![],
            worker_secret: who.secret.clone(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Plausible metrics of epoch `epoch`.
pub fn metrics(epoch: u32) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 0.5,
        train_accuracy: 0.5,
        val_loss: Some(0.4),
        val_accuracy: Some(0.5),
        test_loss: None,
        test_accuracy: None,
        epoch_seconds: 1.0,
        samples_per_second: 10.0,
        firing_rates: Vec::new(),
    }
}

/// A plausible result of two epochs (without a confusion matrix: the test
/// data set's size is not this helper's to know).
pub fn result() -> JobResult {
    JobResult {
        best_epoch: 1,
        test_accuracy: 0.5,
        test_loss: 0.25,
        val_accuracy: Some(0.5),
        val_loss: Some(0.4),
        confusion: vec![],
        train_seconds: 2.0,
        epochs: vec![metrics(1), metrics(2)],
        optimistic: false,
    }
}

/// The one job a lease of one CPU slot gives `who` (registered as `name`
/// with fingerprint `fp`), if any.
pub async fn lease_one(
    client: &mut WorkerClient,
    who: &Joined,
    name: &str,
    fp: &str,
) -> Option<Assignment> {
    lease_slots(client, who, name, fp, 1)
        .await
        .assignments
        .pop()
}

/// Completes `attempt` of `who` with [`result`].
pub async fn complete(client: &mut WorkerClient, who: &Joined, attempt: &str) -> tonic::Result<()> {
    client
        .complete(CompleteRequest {
            attempt_id: attempt.to_owned(),
            result: Some(result().to_proto()),
            device: "cpu".to_owned(),
            worker: who.creds(),
            manifest: None,
            weights_sha256: String::new(),
        })
        .await
        .map(|_| ())
}
