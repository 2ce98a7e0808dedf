//! Helpers of the multi-process tests: builds and finds the `coordinator`
//! binary beside `worker`, makes a tiny synthetic data set and experiment, and
//! starts, watches and kills real processes on loopback; the sweep tests'
//! report checks are in `sweep.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spikecv_common::dataset::synth::{SynthOptions, SynthSize, generate};
use spikecv_common::proto::StatusRequest;
use spikecv_common::proto::client::ClientOptions;

pub mod sweep;

/// The worker binary under test.
pub fn worker_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_worker"))
}

/// The coordinator binary beside the worker binary (same profile folder).
/// `cargo test --workspace` builds it; with `cargo test -p spikecv-worker` run
/// `cargo build -p spikecv-coordinator` first (scripts/test.sh does). Cargo holds
/// the target folder's lock while tests run, so a test cannot build it itself.
pub fn coordinator_bin() -> PathBuf {
    let bin = worker_bin().parent().unwrap().join("coordinator");
    assert!(
        bin.is_file(),
        "no coordinator binary at {}: run `cargo build -p spikecv-coordinator` (same profile) first",
        bin.display()
    );
    bin
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Recordings of the tiny data set: 3 indoor (S3) and 5 others, so both
/// variants have at least 4 recordings for 4 folds.
pub const RECORDINGS: [&str; 8] = [
    "user00_indoor",
    "user01_indoor",
    "user02_indoor",
    "user18_sunlight",
    "user19_sunlight",
    "user20_sunlight",
    "user21_sunlight",
    "user22_sunlight",
];

/// Writes the tiny synthetic data set (file list narrowed to [`RECORDINGS`]).
pub fn make_data(dir: &Path, seed: u64) {
    generate(
        dir,
        &SynthOptions {
            seed,
            size: SynthSize::Tiny,
            recordings: None,
        },
    )
    .unwrap();
    std::fs::write(dir.join("filelist.txt"), RECORDINGS.join("\n") + "\n").unwrap();
}

/// `[simulation]` and `[training]` of the multi-process tests' experiments:
/// T = 2, 2 epochs, a checkpoint every epoch (a job ends in seconds on a CPU).
pub const TINY_RUN: &str = "[simulation]\nsteps = 2\ndt_ms = 30\n[training]\nbatch = 16\n\
    test_batch = 32\nepochs = 2\ntest_steps = 2\ncheckpoint_every = 1\n";

/// 2 seeds × 4 folds × 2 variants, T = 2, 2 epochs, a checkpoint every epoch,
/// on a 32 × 32 input (`downscale = 4`): the protocol is the same at any input
/// size, and the network is 25 times smaller than at 128 × 128.
pub fn write_experiment(path: &Path, data: &Path) {
    let text = format!(
        r#"name = "join-test"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-val-test"
folds = 4
seeds = [0, 1]
variants = ["whole", "reduced"]
{TINY_RUN}"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Sends SIGKILL and reaps.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the exit status, at most `limit`.
    pub fn wait_for(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts `coordinator serve` (stderr to `log`).
pub fn start_coordinator(
    port: u16,
    experiment: &Path,
    state: &Path,
    metrics_port: u16,
    log: &Path,
) -> Proc {
    serve(port, Some(experiment), state, metrics_port, log)
}

/// Starts `coordinator serve` without an experiment (they are submitted).
pub fn start_server(port: u16, state: &Path, metrics_port: u16, log: &Path) -> Proc {
    serve(port, None, state, metrics_port, log)
}

fn serve(
    port: u16,
    experiment: Option<&Path>,
    state: &Path,
    metrics_port: u16,
    log: &Path,
) -> Proc {
    let mut command = Command::new(coordinator_bin());
    command.args(["serve", "--listen", &format!("127.0.0.1:{port}")]);
    if let Some(e) = experiment {
        command.arg("--experiment").arg(e);
    }
    let child = command
        .arg("--state")
        .arg(state)
        .args(["--metrics", &format!("127.0.0.1:{metrics_port}")])
        .args(["--heartbeat-seconds", "1", "--lease-timeout-seconds", "5"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Proc {
        child,
        name: "coordinator".into(),
    }
}

/// Starts `worker join` on the CPU (stderr to `<work>/worker.log`).
pub fn start_worker(port: u16, data: &Path, work: &Path, name: &str) -> Proc {
    start_worker_with(port, data, work, name, &[], &[])
}

/// [`start_worker`] with more flags and environment variables.
pub fn start_worker_with(
    port: u16,
    data: &Path,
    work: &Path,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Proc {
    std::fs::create_dir_all(work).unwrap();
    let child = Command::new(worker_bin())
        .args([
            "join",
            "--coordinator",
            &format!("http://127.0.0.1:{port}"),
            "--gpus",
            "cpu",
        ])
        .arg("--data")
        .arg(data)
        .arg("--work-dir")
        .arg(work)
        .args([
            "--name",
            name,
            "--exit-when-done",
            "--max-backoff-seconds",
            "1",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        // Three workers share the test machine: one libtorch thread each.
        .env("OMP_NUM_THREADS", "1")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("worker.log")).unwrap())
        .spawn()
        .unwrap();
    Proc {
        child,
        name: name.into(),
    }
}

/// Job counts by state from the coordinator (None while it is unreachable).
pub async fn job_counts(port: u16) -> Option<BTreeMap<String, u64>> {
    let mut client = ClientOptions {
        url: format!("http://127.0.0.1:{port}"),
        ..ClientOptions::default()
    }
    .admin_client()
    .ok()?;
    let s = client.status(StatusRequest {}).await.ok()?.into_inner();
    Some(s.jobs.into_iter().map(|j| (j.state, j.count)).collect())
}

/// Polls until `pred` holds on the job counts, at most `limit`.
pub async fn wait_counts(
    port: u16,
    limit: Duration,
    pred: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> BTreeMap<String, u64> {
    let start = Instant::now();
    loop {
        if let Some(c) = job_counts(port).await
            && pred(&c)
        {
            return c;
        }
        assert!(
            start.elapsed() < limit,
            "job counts did not reach the expected state within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `GET /metrics` text.
pub fn metrics_text(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The value of a metric without labels.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// What a finished job wrote, keyed by (variant, seed, fold): the result with
/// timings removed, and the bytes of its final weights.
pub type Results = BTreeMap<(String, u64, u64), (serde_json::Value, Vec<u8>)>;

fn strip_times(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for key in [
                "train_seconds",
                "epoch_seconds",
                "samples_per_second",
                "device",
            ] {
                m.remove(key);
            }
            m.values_mut().for_each(strip_times);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Collects the finished jobs under the work folders; panics if a job finished twice.
pub fn collect_results(work_dirs: &[PathBuf]) -> Results {
    collect_results_after_kill(work_dirs, None)
}

/// [`collect_results`] for a run where the worker with folder `killed` was
/// SIGKILLed: a job it had finished on disk but not yet reported is run again
/// elsewhere, which is right, and both copies must then be identical. Any other
/// job that finished twice is a failure.
pub fn collect_results_after_kill(work_dirs: &[PathBuf], killed: Option<&Path>) -> Results {
    let mut out = Results::new();
    let mut found_in: BTreeMap<(String, u64, u64), PathBuf> = BTreeMap::new();
    for w in work_dirs {
        let Ok(entries) = std::fs::read_dir(w) else {
            continue;
        };
        for e in entries {
            let dir = e.unwrap().path();
            let metrics = dir.join("metrics.json");
            if !metrics.is_file() {
                continue;
            }
            let mut v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
            let key = (
                v["variant"].as_str().unwrap().to_owned(),
                v["seed"].as_u64().unwrap(),
                v["fold"].as_u64().unwrap(),
            );
            strip_times(&mut v);
            let weights = std::fs::read(dir.join("final.safetensors")).unwrap();
            if let Some(earlier) = out.get(&key) {
                let first = &found_in[&key];
                let rerun = killed.is_some_and(|k| first.starts_with(k) || dir.starts_with(k));
                assert!(
                    rerun,
                    "job {key:?} finished twice ({} and {})",
                    first.display(),
                    dir.display()
                );
                assert!(
                    earlier.0 == v && earlier.1 == weights,
                    "job {key:?} finished on the killed worker and again elsewhere, differently"
                );
                continue;
            }
            found_in.insert(key.clone(), dir.clone());
            out.insert(key, (v, weights));
        }
    }
    out
}
