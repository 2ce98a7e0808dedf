//! For `export_mlflow.rs`: a real `mlflow server` in a temporary directory, and
//! a state database written by the scheduler.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use spikecv_common::experiment::manifest::{Manifest, Provenance};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use spikecv_common::dataset::sl_animals::CLASS_NAMES;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_coordinator::commands::report::{ReportArgs, ReportFormat};
use spikecv_coordinator::ids::{AttemptId, WorkerId};
use spikecv_coordinator::scheduler::{
    FailureClass, ManualClock, Scheduler, SchedulerSettings, SlotInfo, WorkerRegistration,
};

/// The `mlflow` executable: on PATH, else in the project's `.venv/bin`.
pub fn mlflow_bin() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("mlflow"));
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/mlflow");
    on_path.chain([venv]).find(|p| p.is_file())
}

/// A tracking server with a SQLite backend and served artifacts, killed (its
/// whole process group) on drop.
pub struct MlflowServer {
    child: Child,
    uri: String,
    _dir: tempfile::TempDir,
}

impl MlflowServer {
    /// Starts `mlflow server` on a port it chooses itself (`--port 0`) and
    /// waits until it answers `/health`.
    pub fn start() -> Self {
        let bin = mlflow_bin().expect("MLflow is not installed (pip install mlflow)");
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
        let child = Command::new(&bin)
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                "1",
            ])
            .args(["--backend-store-uri", &db, "--artifacts-destination"])
            .arg(dir.path().join("artifacts"))
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        // Owned by the server from here: every panic below kills it on drop.
        let mut server = Self {
            child,
            uri: String::new(),
            _dir: dir,
        };
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(server.child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(server.child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut log = String::new();
        while server.uri.is_empty() && Instant::now() < deadline {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) else {
                if let Some(status) = server.child.try_wait().unwrap() {
                    panic!("mlflow server exited ({status}):\n{log}");
                }
                continue;
            };
            log.push_str(&line);
            log.push('\n');
            // uvicorn: "running on http://127.0.0.1:PORT"; gunicorn: "Listening at: http://...".
            if let Some(at) = line.find("http://127.0.0.1:") {
                let port: String = line[at + 17..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                server.uri = format!("http://127.0.0.1:{port}");
            }
        }
        assert!(
            !server.uri.is_empty(),
            "mlflow server named no port:\n{log}"
        );
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        while Instant::now() < deadline {
            let health = ureq::get(format!("{}/health", server.uri)).call();
            if health.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("mlflow server at {} never answered /health", server.uri);
    }

    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        self.uri.clone()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = "name = \"mlflow export\"\n[data]\nroot = \"unused\"\n[protocol]\n\
    kind = \"train-val-test\"\nfolds = 3\nseeds = [7]\nvariants = [\"whole\", \"reduced\"]\n[training]\n\
    epochs = 3\n[sweep]\n\"training.lr\" = [0.001, 0.01]\n";
const T0_MS: i64 = 1_780_000_000_000;

fn epoch(e: u32, i: usize) -> EpochMetrics {
    let k = i as f64;
    EpochMetrics {
        epoch: e,
        train_loss: 1.0 / f64::from(e) + 0.01 * k,
        train_accuracy: 0.2 * f64::from(e),
        val_loss: Some(0.9 - 0.1 * f64::from(e)),
        val_accuracy: Some(0.25 + 0.125 * f64::from(e) + 0.015625 * k),
        test_loss: None,
        test_accuracy: None,
        epoch_seconds: 4.0 + f64::from(e),
        samples_per_second: 90.0 + k + f64::from(e),
        firing_rates: Vec::new(),
    }
}

fn result(i: usize) -> JobResult {
    let epochs: Vec<EpochMetrics> = (1..=3).map(|e| epoch(e, i)).collect();
    let k = i as f64;
    JobResult {
        best_epoch: 2,
        test_accuracy: 0.25 + 0.0625 * k,
        test_loss: 0.75 - 0.03125 * k,
        val_accuracy: epochs[1].val_accuracy,
        val_loss: epochs[1].val_loss,
        // No confusion matrix: the export does not use it.
        confusion: Vec::new(),
        train_seconds: 15.5 + k,
        epochs,
        optimistic: false,
    }
}

/// A sweep of two configurations × two variants × 3 folds: jobs 0-8
/// succeeded, job 9 failed after one epoch, jobs 10 and 11 running with one
/// epoch reported.
pub struct StateFixture {
    _dir: tempfile::TempDir,
    /// The state database.
    pub db: PathBuf,
    /// The spikecv experiment id.
    pub experiment: String,
    sched: Scheduler,
    clock: ManualClock,
    worker: WorkerId,
    /// Jobs 10 and 11: (attempt, job id, device).
    running: Vec<(AttemptId, String, String)>,
}

impl StateFixture {
    /// Writes the state.
    pub fn new() -> Self {
        fn provenance(device: &str) -> Provenance {
            Provenance {
                manifest: Manifest {
                    spikecv_version: "0.1.0".into(),
                    libtorch: "2.11.0".into(),
                    cuda: Some("13.0".into()),
                    device: device.into(),
                    device_model: "NVIDIA H200".into(),
                    instruction_set: "sm_90".into(),
                    threads: 16,
                    precision: "float32".into(),
                    ..Manifest::default()
                },
                weights_sha256: "ab".repeat(32),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let clock = ManualClock::new(T0_MS);
        let mut sched =
            Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
        let class_names = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
        let submission = crate::store_support::submission(CONFIG, class_names);
        assert_eq!(submission.jobs.len(), 12);
        let experiment = sched.submit(&submission).unwrap().experiment.0;
        let slots: Vec<String> = (0..12).map(|i| format!("cuda:{i}")).collect();
        let worker = sched
            .register_worker(&WorkerRegistration {
                name: "node-1".into(),
                host: "node-1".into(),
                slots: slots
                    .iter()
                    .map(|d| SlotInfo {
                        device: d.clone(),
                        device_name: "H200".into(),
                        memory_bytes: 1 << 30,
                        manifest: None,
                    })
                    .collect(),
                data_fingerprint: String::new(),
                trainers: Vec::new(),
            })
            .unwrap();
        let leased = sched.lease(&worker, &slots).unwrap().assignments;
        assert_eq!(leased.len(), 12);
        for (i, a) in leased.iter().enumerate().take(9) {
            clock.advance_s(60);
            let r = result(i);
            for m in &r.epochs {
                sched.record_epoch(a.attempt, m).unwrap();
            }
            // Odd jobs come from a worker that sends its manifest.
            let provenance = (i % 2 == 1).then(|| provenance(&a.device));
            sched
                .complete_with(a.attempt, &r, provenance.as_ref())
                .unwrap();
        }
        sched.record_epoch(leased[9].attempt, &epoch(1, 9)).unwrap();
        sched
            .fail(
                leased[9].attempt,
                "non-finite loss at epoch 2",
                FailureClass::Deterministic,
            )
            .unwrap();
        let running = leased[10..]
            .iter()
            .enumerate()
            .map(|(i, a)| {
                sched.record_epoch(a.attempt, &epoch(1, 10 + i)).unwrap();
                (a.attempt, a.job.as_str().to_owned(), a.device.clone())
            })
            .collect();
        Self {
            _dir: dir,
            db,
            experiment,
            sched,
            clock,
            worker,
            running,
        }
    }

    /// Job 10 reports its last two epochs and succeeds; its id.
    pub fn finish_running_job(&mut self) -> String {
        let (attempt, job, _) = self.running[0].clone();
        self.clock.advance_s(60);
        let r = result(10);
        for m in &r.epochs[1..] {
            self.sched.record_epoch(attempt, m).unwrap();
        }
        self.sched.complete(attempt, &r).unwrap();
        job
    }

    /// Job 11 fails (transient), is leased again and reports another first
    /// epoch, so its stored epochs are no longer those exported; its id.
    pub fn retry_running_job(&mut self) -> String {
        let (attempt, job, device) = self.running[1].clone();
        self.clock.advance_s(60);
        self.sched
            .fail(attempt, "worker lost", FailureClass::Transient)
            .unwrap();
        let again = self
            .sched
            .lease(&self.worker, &[device])
            .unwrap()
            .assignments;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].job.as_str(), job);
        self.sched
            .record_epoch(again[0].attempt, &epoch(1, 20))
            .unwrap();
        job
    }
}

/// `coordinator report --format json` of the store, parsed.
pub fn report_json(db: &Path) -> Value {
    let args = ReportArgs {
        state: db.to_owned(),
        experiment: None,
        format: ReportFormat::Json,
        out: None,
    };
    let mut out = Vec::new();
    spikecv_coordinator::commands::report::run(&args, &mut out).unwrap();
    serde_json::from_slice(&out).unwrap()
}
