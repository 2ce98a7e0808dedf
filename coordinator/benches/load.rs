//! Load benchmark of the coordinator: N simulated workers (no training) register,
//! lease, heartbeat and complete M jobs against one real `coordinator serve`
//! process on loopback. Reports jobs/s, lease and complete latency (p50, p99),
//! the time the coordinator took to plan and store the experiment, and its RSS.
//!
//! The experiment stays within the config's limits (at most 1,000 seeds): 4
//! folds × up to 1,000 seeds × a sweep of `training.lr` values when more jobs
//! are asked for (100,000 = 4 × 1,000 × 25). If the coordinator exits, the
//! bench stops with the tail of its log instead of waiting for it.
//!
//! cargo bench -p spikecv-coordinator --bench load                 # 1,000 workers, 100,000 jobs
//! cargo bench -p spikecv-coordinator --bench load -- --quick      # 50 workers, 2,000 jobs
//! cargo bench -p spikecv-coordinator --bench load -- --workers 200 --jobs 10000
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spikecv_common::experiment::job::JobResult;
use spikecv_common::proto::client::ClientOptions;
use spikecv_common::proto::{
    AttemptProgress, CompleteRequest, HeartbeatRequest, LeaseRequest, PROTOCOL_VERSION,
    RegisterRequest, Slot, WorkerCredentials,
};

struct Args {
    workers: usize,
    jobs: usize,
}

fn args() -> Args {
    let mut a = Args {
        workers: 1000,
        jobs: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--quick" => {
                a.workers = 50;
                a.jobs = 2000;
            }
            "--workers" => a.workers = it.next().and_then(|v| v.parse().ok()).expect("--workers N"),
            "--jobs" => a.jobs = it.next().and_then(|v| v.parse().ok()).expect("--jobs N"),
            _ => {} // `cargo bench` passes --bench; ignore the rest
        }
    }
    a
}

/// Folds of the bench's experiment (8 recordings).
const FOLDS: usize = 4;
/// Seeds at most: the config's limit.
const MAX_SEEDS: usize = spikecv_common::experiment::error::bounds::SEEDS;

/// Writes an experiment of at least `jobs` jobs; returns its path and its
/// job count (FOLDS × seeds × configurations).
fn write_experiment(dir: &Path, jobs: usize) -> (std::path::PathBuf, usize) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let names: Vec<String> = (35..43).map(|u| format!("user{u:02}_dc")).collect();
    std::fs::write(data.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    let configurations = jobs.div_ceil(FOLDS * MAX_SEEDS).max(1);
    let seeds = jobs.div_ceil(FOLDS * configurations);
    let seed_list: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    let sweep = if configurations > 1 {
        let lrs: Vec<String> = (1..=configurations)
            .map(|i| format!("{:e}", i as f64 * 1e-4))
            .collect();
        format!("[sweep]\n\"training.lr\" = [{}]\n", lrs.join(", "))
    } else {
        String::new()
    };
    let path = dir.join("experiment.toml");
    std::fs::write(
        &path,
        format!(
            "[data]\nroot = {:?}\n[protocol]\nfolds = {FOLDS}\nseeds = [{}]\nvariants = [\"whole\"]\n{sweep}",
            data.display().to_string(),
            seed_list.join(",")
        ),
    )
    .unwrap();
    (path, FOLDS * seeds * configurations)
}

/// Stops the bench with the coordinator's log when the coordinator has exited.
fn stop_if_exited(coordinator: &std::sync::Mutex<std::process::Child>, log: &Path) {
    let exited = coordinator
        .lock()
        .map(|mut c| c.try_wait().ok().flatten())
        .unwrap_or(None);
    if let Some(status) = exited {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        eprintln!(
            "load: the coordinator exited ({status}); its log ends:\n{}",
            tail.join("\n")
        );
        std::process::exit(1);
    }
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn result() -> JobResult {
    JobResult {
        best_epoch: 1,
        test_accuracy: 0.5,
        test_loss: 0.1,
        val_accuracy: Some(0.5),
        val_loss: Some(0.1),
        // No confusion matrix: its total would have to be each fold's test
        // set size, which the simulated workers do not know.
        confusion: vec![],
        train_seconds: 1.0,
        epochs: vec![],
        optimistic: false,
    }
}

#[derive(Default)]
struct Lat {
    lease: Vec<Duration>,
    complete: Vec<Duration>,
    completed: usize,
}

async fn simulated_worker(
    url: String,
    i: usize,
    result: Arc<spikecv_common::proto::JobResult>,
) -> Lat {
    let mut client = ClientOptions {
        url,
        ..ClientOptions::default()
    }
    .worker_client()
    .unwrap();
    let reg = RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        worker_name: format!("sim-{i}"),
        host: "bench".into(),
        slots: vec![Slot {
            device: "cpu".into(),
            device_name: "cpu".into(),
            memory_bytes: 0,
            manifest: None,
        }],
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    };
    let (id, secret) = loop {
        match client.register(reg.clone()).await {
            Ok(r) => {
                let r = r.into_inner();
                break (r.worker_id, r.worker_secret);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut lat = Lat::default();
    loop {
        let t = Instant::now();
        let r = client
            .lease(LeaseRequest {
                worker_id: id.clone(),
                registration: Some(reg.clone()),
                free_slots: vec!["cpu".into()],
                running: vec![],
                worker_secret: secret.clone(),
            })
            .await;
        lat.lease.push(t.elapsed());
        let r = match r {
            Ok(r) => r.into_inner(),
            // Load shed by the coordinator: an honest worker retries.
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(s) => panic!("lease failed: {s}"),
        };
        if r.assignments.is_empty() {
            if r.all_done {
                return lat;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        for a in r.assignments {
            client
                .heartbeat(HeartbeatRequest {
                    worker_id: id.clone(),
                    registration: Some(reg.clone()),
                    running: vec![AttemptProgress {
                        attempt_id: a.attempt_id.clone(),
                        epoch: 1,
                        epochs: 1,
                    }],
                    worker_secret: secret.clone(),
                })
                .await
                .unwrap();
            let t = Instant::now();
            client
                .complete(CompleteRequest {
                    attempt_id: a.attempt_id,
                    result: Some((*result).clone()),
                    device: "cpu".into(),
                    worker: Some(WorkerCredentials {
                        worker_id: id.clone(),
                        secret: secret.clone(),
                    }),
                    manifest: None,
                    weights_sha256: String::new(),
                })
                .await
                .unwrap();
            lat.complete.push(t.elapsed());
            lat.completed += 1;
        }
    }
}

/// The coordinator under test: its process (shared with the watchdog), its
/// pid, log and URL.
struct Coordinator {
    child: Arc<std::sync::Mutex<std::process::Child>>,
    pid: u32,
    log: std::path::PathBuf,
    url: String,
}

/// Starts `coordinator serve` on a free loopback port with the experiment.
fn start_coordinator(dir: &Path, experiment: &Path) -> Coordinator {
    let log = dir.join("coordinator.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--experiment")
        .arg(experiment)
        .arg("--state")
        .arg(dir.join("state.db"))
        .args(["--heartbeat-seconds", "5", "--lease-timeout-seconds", "120"])
        // The data root holds only a file list: nothing to fingerprint.
        .arg("--allow-unfingerprinted-data")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Coordinator {
        pid: child.id(),
        child: Arc::new(std::sync::Mutex::new(child)),
        log,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// An admin client of the coordinator at `url`.
fn admin(url: &str) -> spikecv_common::proto::client::AdminServiceClient {
    ClientOptions {
        url: url.to_owned(),
        ..ClientOptions::default()
    }
    .admin_client()
    .unwrap()
}

/// Waits until the coordinator answers (planning and storing the jobs comes
/// first).
async fn wait_ready(c: &Coordinator) {
    let mut probe = admin(&c.url);
    while probe
        .status(spikecv_common::proto::StatusRequest {})
        .await
        .is_err()
    {
        stop_if_exited(&c.child, &c.log);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the simulated workers to the end, watching that the coordinator
/// stays up; returns each worker's latencies.
async fn run_workers(
    c: &Coordinator,
    workers: usize,
    result: Arc<spikecv_common::proto::JobResult>,
) -> Vec<Lat> {
    let watch = (c.child.clone(), c.log.clone());
    let watchdog = tokio::spawn(async move {
        loop {
            stop_if_exited(&watch.0, &watch.1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let tasks: Vec<_> = (0..workers)
        .map(|i| tokio::spawn(simulated_worker(c.url.clone(), i, result.clone())))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    watchdog.abort();
    out
}

/// Prints throughput, latencies and the coordinator's memory; returns the
/// jobs completed.
fn print_load(c: &Coordinator, lats: &[Lat], wall: Duration) -> usize {
    let completed: usize = lats.iter().map(|l| l.completed).sum();
    let mut lease: Vec<Duration> = lats.iter().flat_map(|l| l.lease.iter().copied()).collect();
    let mut complete: Vec<Duration> = lats
        .iter()
        .flat_map(|l| l.complete.iter().copied())
        .collect();
    lease.sort();
    complete.sort();
    let peak = rss_kib(c.pid, "VmHWM:");
    let rss = rss_kib(c.pid, "VmRSS:");
    println!(
        "load: {completed} jobs completed exactly once in {:.2} s: {:.0} jobs/s ({} lease calls, {:.0} calls/s incl. heartbeats and completes)",
        wall.as_secs_f64(),
        completed as f64 / wall.as_secs_f64(),
        lease.len(),
        (lease.len() + 2 * completed) as f64 / wall.as_secs_f64()
    );
    println!(
        "load: lease latency p50 {:.2} ms, p99 {:.2} ms; complete latency p50 {:.2} ms, p99 {:.2} ms",
        percentile(&lease, 0.5).as_secs_f64() * 1e3,
        percentile(&lease, 0.99).as_secs_f64() * 1e3,
        percentile(&complete, 0.5).as_secs_f64() * 1e3,
        percentile(&complete, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "load: coordinator RSS now {} MiB, peak {} MiB",
        rss / 1024,
        peak / 1024
    );
    completed
}

/// Asks the coordinator for its counts, prints them and checks that every
/// job succeeded, none left or counted twice.
async fn check_status(url: &str, jobs: usize) {
    let status = admin(url)
        .status(spikecv_common::proto::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let count = |state: &str| {
        status
            .jobs
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum::<u64>()
    };
    println!(
        "load: coordinator status: {} of {} jobs succeeded, {} pending, {} running",
        count("succeeded"),
        status.total_jobs,
        count("pending"),
        count("leased") + count("running")
    );
    assert_eq!(count("succeeded"), jobs as u64);
    assert_eq!(status.total_jobs, jobs as u64);
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let (experiment, jobs) = write_experiment(dir.path(), a.jobs);
    let started = Instant::now();
    let coordinator = start_coordinator(dir.path(), &experiment);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(wait_ready(&coordinator));
    let ready = started.elapsed();
    let rss_ready = rss_kib(coordinator.pid, "VmRSS:");
    println!(
        "load: {} workers, {jobs} jobs; coordinator ready (plan + store) in {:.2} s, RSS {} MiB",
        a.workers,
        ready.as_secs_f64(),
        rss_ready / 1024
    );
    let result = Arc::new(result().to_proto());
    let t0 = Instant::now();
    let lats = rt.block_on(run_workers(&coordinator, a.workers, result));
    let completed = print_load(&coordinator, &lats, t0.elapsed());
    assert_eq!(completed, jobs, "every job completed exactly once");
    // The coordinator agrees: every job succeeded, none is left or counted twice.
    rt.block_on(check_status(&coordinator.url, jobs));
    if let Ok(mut c) = coordinator.child.lock() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
