//! A forging worker caught by deterministic replay, over the real protocol:
//! a real `coordinator serve` with `[protocol] verify = "all"`, four named
//! workers made by hand (three honest, one, `mallory`, completing its jobs
//! with made-up figures: every test sample right). Mallory's forged result
//! is replayed by another credential, disagrees, gets a third run that
//! agrees with the replay: the job's figures are replaced by the majority's
//! and mallory is suspect (no leases). The report's figures equal those of
//! an honest run, its verification section names mallory in JSON and
//! Markdown, `coordinator status` names it, and `coordinator worker clear`
//! clears it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;
mod net_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli_support::{ok, s};
use net_support::file_list_root;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::manifest::{Manifest, Switches};
use spikecv_common::proto::client::{ClientOptions, WorkerClient};
use spikecv_common::proto::{
    Assignment, CompleteRequest, LeaseRequest, PROTOCOL_VERSION, RegisterRequest, Slot,
    WorkerCredentials,
};

const CLASSES: usize = 19;
/// Two test recordings per fold (four recordings, two folds), one sample
/// of each class in each.
const PER_CLASS: u32 = 2;

struct Served {
    child: Child,
    url: String,
    admin: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// `coordinator serve` of 2 folds × 2 seeds with `verify = "all"`.
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        file_list_root(&data, &["user35_dc", "user36_dc", "user37_dc", "user38_dc"]);
        let exp = dir.path().join("experiment.toml");
        std::fs::write(
            &exp,
            format!(
                "name = \"verified\"\n[data]\nroot = {:?}\n[protocol]\nkind = \"train-test\"\nfolds = 2\n\
                 seeds = [0, 1]\nvariants = [\"whole\"]\nverify = \"all\"\n[training]\nepochs = 2\n",
                s(&data)
            ),
        )
        .unwrap();
        let admin = dir.path().join("admin");
        std::fs::write(&admin, "admin-secret\n").unwrap();
        let worker = dir.path().join("worker");
        std::fs::write(&worker, "shared-worker-secret\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = dir.path().join("state.db");
        let log = dir.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--state"])
            .arg(&state)
            .arg("--experiment")
            .arg(&exp)
            .arg("--token-file")
            .arg(&worker)
            .arg("--admin-token-file")
            .arg(&admin)
            .arg("--allow-unfingerprinted-data")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            admin,
            state,
            _dir: dir,
        };
        let t0 = Instant::now();
        while !std::fs::read_to_string(&log)
            .unwrap()
            .contains("coordinator listening")
        {
            assert!(served.child.try_wait().unwrap().is_none(), "serve exited");
            assert!(t0.elapsed() < Duration::from_secs(30), "never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    /// `coordinator ARGS` against this server with the admin token.
    fn admin(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--coordinator", &self.url, "--token-file", s(&self.admin)]);
        ok(&all)
    }
}

/// The slots' environment: every worker the same CPU build and threads.
fn environment() -> Manifest {
    Manifest {
        spikecv_version: "0.1.0".into(),
        libtorch: "2.11.0".into(),
        device: "cpu".into(),
        device_model: "test cpu".into(),
        instruction_set: "AVX2".into(),
        threads: 2,
        precision: "float32".into(),
        ..Manifest::default()
    }
}

/// A hand-made worker holding its own credential.
struct HandWorker {
    name: String,
    client: WorkerClient,
    id: String,
    secret: String,
}

fn registration(name: &str) -> RegisterRequest {
    RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: name.to_owned(),
        host: "test".to_owned(),
        slots: vec![Slot {
            device: "cpu".to_owned(),
            device_name: "cpu".to_owned(),
            memory_bytes: 0,
            manifest: Some(environment().to_proto()),
        }],
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

impl HandWorker {
    async fn join(served: &Served, name: &str) -> HandWorker {
        let token = served.admin(&["worker", "add", name]);
        let mut client = ClientOptions {
            url: served.url.clone(),
            token: Some(token.trim().to_owned()),
            ..ClientOptions::default()
        }
        .worker_client()
        .unwrap();
        let r = client
            .register(registration(name))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.worker_id, name);
        HandWorker {
            name: name.to_owned(),
            client,
            id: r.worker_id,
            secret: r.worker_secret,
        }
    }

    /// One lease of its one slot: the job, and whether all is done.
    async fn lease(&mut self) -> (Option<Assignment>, bool) {
        let r = self
            .client
            .lease(LeaseRequest {
                worker_id: self.id.clone(),
                registration: Some(registration(&self.name)),
                free_slots: vec!["cpu".to_owned()],
                running: vec![],
                worker_secret: self.secret.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        (r.assignments.into_iter().next(), r.all_done)
    }

    /// Completes `a` with `result` and its weights' hash, as trained
    /// deterministic on its slot.
    async fn complete(&mut self, a: &Assignment, result: &JobResult, weights: &str) {
        let switches = Switches {
            deterministic: true,
            ..Switches::default()
        };
        self.client
            .complete(CompleteRequest {
                attempt_id: a.attempt_id.clone(),
                result: Some(result.to_proto()),
                device: "cpu".to_owned(),
                worker: Some(WorkerCredentials {
                    worker_id: self.id.clone(),
                    secret: self.secret.clone(),
                }),
                manifest: Some(environment().for_job(switches, "").to_proto()),
                weights_sha256: weights.repeat(32),
            })
            .await
            .unwrap();
    }
}

/// A result whose confusion matrix has `correct` samples of each class
/// right (the others called class 0 or 1), with per-epoch figures.
fn result(correct: u32) -> JobResult {
    let mut confusion = vec![vec![0u32; CLASSES]; CLASSES];
    for (class, row) in confusion.iter_mut().enumerate() {
        row[class] += correct;
        row[usize::from(class == 0)] += PER_CLASS - correct;
    }
    let right: u32 = (0..CLASSES).map(|c| confusion[c][c]).sum();
    let accuracy = f64::from(right) / f64::from(PER_CLASS * CLASSES as u32);
    let epoch = |epoch| EpochMetrics {
        epoch,
        train_loss: 0.5,
        train_accuracy: 0.5,
        val_loss: None,
        val_accuracy: None,
        test_loss: Some(0.25),
        test_accuracy: Some(accuracy),
        epoch_seconds: 1.0,
        samples_per_second: 10.0,
        firing_rates: Vec::new(),
    };
    JobResult {
        best_epoch: 2,
        test_accuracy: accuracy,
        test_loss: 0.25,
        val_accuracy: None,
        val_loss: None,
        confusion,
        train_seconds: 2.0,
        epochs: vec![epoch(1), epoch(2)],
        optimistic: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forging_worker_is_outvoted_marked_suspect_and_named_in_the_report() {
    let served = Served::start();
    let mut mallory = HandWorker::join(&served, "mallory").await;
    let mut honest = Vec::new();
    for name in ["alice", "bob", "carol"] {
        honest.push(HandWorker::join(&served, name).await);
    }
    let (forged, truth) = (result(PER_CLASS), result(1));

    // Mallory takes the first job and reports every sample right.
    let (a, _) = mallory.lease().await;
    let a = a.expect("a job for mallory");
    mallory.complete(&a, &forged, "ff").await;

    // The honest workers run everything else and every replay, one lease
    // at a time; mallory keeps asking and, once suspect, gets nothing.
    let mut mallory_after = Vec::new();
    let mut done = false;
    for _round in 0..40 {
        let mut all_done = true;
        for w in &mut honest {
            let (job, finished) = w.lease().await;
            all_done &= finished;
            if let Some(job) = job {
                w.complete(&job, &truth, "ab").await;
                all_done = false;
            }
        }
        let (job, _) = mallory.lease().await;
        mallory_after.extend(job.map(|j| j.job_id));
        if all_done {
            done = true;
            break;
        }
    }
    assert!(done, "every job and replay finished");
    assert!(
        mallory_after.is_empty(),
        "a suspect worker gets no lease: {mallory_after:?}"
    );

    // The status names mallory.
    let status = served.admin(&["status"]);
    assert!(
        status.contains("SUSPECT: mallory"),
        "status names the suspect:\n{status}"
    );

    // The report: the honest figures everywhere, mallory named.
    let json = ok(&["report", "--state", s(&served.state), "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let v = &report["verification"];
    assert_eq!(v["counts"]["sampled"], 4, "{v}");
    assert_eq!(v["counts"]["bitwise"], 4, "{v}");
    assert_eq!(v["counts"]["replaced"], 1, "{v}");
    assert_eq!(v["suspects"][0]["name"], "mallory", "{v}");
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4);
    for j in jobs {
        assert_eq!(
            j["test_accuracy"].as_f64(),
            Some(truth.test_accuracy),
            "{j}"
        );
        assert_ne!(j["worker"], "mallory", "{j}");
    }
    let mean = &report["groups"][0]["test_accuracy"]["mean"];
    assert!(
        (mean.as_f64().unwrap() - truth.test_accuracy * 100.0).abs() < 1e-9
            || (mean.as_f64().unwrap() - truth.test_accuracy).abs() < 1e-12,
        "the mean is the honest one: {mean}"
    );
    let md = ok(&["report", "--state", s(&served.state), "--format", "md"]);
    assert!(md.contains("## Verification"), "{md}");
    assert!(md.contains("Suspect worker mallory"), "{md}");
    assert!(
        md.contains("4 of the results were verified by a deterministic replay"),
        "{md}"
    );

    // Cleared, mallory is no longer suspect.
    let cleared = served.admin(&["worker", "clear", "mallory"]);
    assert!(cleared.contains("cleared mallory"), "{cleared}");
    let status = served.admin(&["status"]);
    assert!(!status.contains("SUSPECT"), "{status}");
}
