//! Training scripts over real processes (docs/trainers.md): `coordinator
//! serve` and `worker join` processes on loopback, the scripts in
//! `worker/tests/trainers/` speaking through the Python helper (`python/`).
//!
//! - A job of a trainer only one worker registered goes to that worker only
//!   (the other, with none, runs nothing and leaves when all is done); before
//!   it joins, the coordinator reports the jobs as waiting for the trainer.
//!   SIGKILLed mid-job, its job resumes on a third worker from the script's
//!   last uploaded checkpoint, and every job ends once.
//! - Cancelling the experiment reaches the running script as SIGTERM.
//! - A script that crashes, one that writes garbage and one that hangs each
//!   fail their attempt with a clear error.
//!
//! Skipped (with a message) when the project's venv has no Python.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use join_support::sweep::report;
use join_support::*;
use spikecv_common::proto::client::ClientOptions;
use spikecv_common::proto::{CancelRequest, StatusRequest, StatusResponse};

const LIMIT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The venv's Python, `None` (the test is skipped) without one.
fn python() -> Option<PathBuf> {
    let p = repo().join(".venv/bin/python");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipped: no {}", p.display());
        None
    }
}

fn script(name: &str) -> String {
    repo()
        .join("worker/tests/trainers")
        .join(name)
        .display()
        .to_string()
}

/// `[trainer] name = trainer` (or a sweep over `trainers`) on the tiny set:
/// 2 folds, one seed, 3 epochs, a checkpoint every epoch.
fn write_experiment(path: &Path, data: &Path, trainer: &str, extra: &str) {
    let text = format!(
        r#"name = "trainers-test"
[data]
root = {:?}
downscale = 4
[protocol]
kind = "train-val-test"
folds = 2
seeds = [0]
variants = ["whole"]
max_attempts = 3
{extra}
[simulation]
steps = 2
dt_ms = 30
[training]
batch = 16
test_batch = 32
epochs = 3
test_steps = 2
checkpoint_every = 1
[trainer]
name = "{trainer}"
"#,
        data.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

/// The environment a worker's scripts need: the helper on PYTHONPATH and
/// the venv's Python for `.py` scripts.
fn script_env(python: &Path) -> Vec<(String, String)> {
    vec![
        (
            "PYTHONPATH".into(),
            repo().join("python").display().to_string(),
        ),
        ("SPIKECV_PYTHON".into(), python.display().to_string()),
    ]
}

fn start(
    port: u16,
    data: &Path,
    work: &Path,
    name: &str,
    trainers: &[(&str, &str)],
    env: &[(String, String)],
) -> Proc {
    let flags: Vec<String> = trainers
        .iter()
        .flat_map(|(n, s)| ["--trainer".to_owned(), format!("{n}={}", script(s))])
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    start_worker_with(port, data, work, name, &flags, &env)
}

async fn status(port: u16) -> Option<StatusResponse> {
    let mut client = ClientOptions {
        url: format!("http://127.0.0.1:{port}"),
        ..ClientOptions::default()
    }
    .admin_client()
    .ok()?;
    Some(client.status(StatusRequest {}).await.ok()?.into_inner())
}

/// Polls the coordinator's status until `pred` holds, at most `limit`.
async fn wait_status(
    port: u16,
    what: &str,
    pred: impl Fn(&StatusResponse) -> bool,
) -> StatusResponse {
    let start = Instant::now();
    loop {
        if let Some(s) = status(port).await
            && pred(&s)
        {
            return s;
        }
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn count(s: &StatusResponse, state: &str) -> u64 {
    s.jobs
        .iter()
        .find(|j| j.state == state)
        .map_or(0, |j| j.count)
}

/// Every file named `name` under `dir`.
fn find(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(find(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
    out
}

/// Pids of the processes whose working folder is under `dir` (Linux's
/// `/proc`; none elsewhere).
fn processes_under(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

/// A coordinator serving the experiment of [`write_experiment`] over a
/// tiny data set in a folder of its own.
struct Run {
    tmp: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    state: PathBuf,
    _coordinator: Proc,
}

fn serve(trainer: &str, extra: &str) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    make_data(&data, 5);
    let experiment = tmp.path().join("e.toml");
    write_experiment(&experiment, &data, trainer, extra);
    let (port, state) = (free_port(), tmp.path().join("state.db"));
    let coordinator = start_coordinator(
        port,
        &experiment,
        &state,
        free_port(),
        &tmp.path().join("c.log"),
    );
    Run {
        tmp,
        data,
        port,
        state,
        _coordinator: coordinator,
    }
}

fn jobs_of(state: &Path) -> Vec<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_str(&report(state, "json")).unwrap();
    json["jobs"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_runs_only_where_registered_and_resumes_after_a_kill() {
    let Some(python) = python() else { return };
    let Run {
        tmp,
        data,
        port,
        state,
        _coordinator,
    } = serve("good", "");

    // No worker has the trainer yet: both jobs wait for it.
    let s = wait_status(port, "the jobs waiting for trainer good", |s| {
        s.waiting_for_trainers
            .iter()
            .any(|t| t.trainer == "good" && t.jobs == 2)
    })
    .await;
    assert_eq!(count(&s, "pending"), 2);

    let env = script_env(&python);
    // On b each epoch ends with a 5 s pause: time to kill it mid-job, and
    // a script that outlived it would go on for 10 s more.
    let mut slow = env.clone();
    slow.push(("GOOD_PAUSE".into(), "5".into()));
    let plain_dir = tmp.path().join("plain");
    let mut plain = start(port, &data, &plain_dir, "plain", &[], &env);
    let b_dir = tmp.path().join("b");
    let mut b = start(port, &data, &b_dir, "b", &[("good", "good.py")], &slow);

    // The coordinator holds a checkpoint a script of b wrote (a committed
    // `.ckpt` beside the store): kill b.
    let held = PathBuf::from(format!(
        "{}.checkpoints",
        state.canonicalize().unwrap().display()
    ));
    let start_wait = Instant::now();
    while !std::fs::read_dir(&held).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "ckpt"))
    }) {
        assert!(
            start_wait.elapsed() < LIMIT,
            "no checkpoint from b reached the coordinator"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !processes_under(&b_dir).is_empty(),
        "b's script runs in b's job folder"
    );
    b.kill();
    // b's script dies with it.
    let gone = Instant::now();
    while !processes_under(&b_dir).is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(3),
            "a script of the killed worker still runs: {:?}",
            processes_under(&b_dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let c_dir = tmp.path().join("c");
    let mut c = start(port, &data, &c_dir, "c", &[("good", "good.py")], &env);
    assert!(c.wait_for(LIMIT).success(), "c exits 0 when all is done");
    assert!(plain.wait_for(LIMIT).success(), "plain exits 0 too");

    let jobs = jobs_of(&state);
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        assert_eq!(j["status"], "succeeded", "{j}");
        assert_ne!(
            j["worker"], "plain",
            "a worker without the trainer ran it: {j}"
        );
    }
    let attempts: u64 = jobs.iter().map(|j| j["attempts"].as_u64().unwrap()).sum();
    assert!(
        (3..=4).contains(&attempts),
        "one job at least was taken from b and ended once: {jobs:?}"
    );
    let resumed = find(&c_dir, "resumed.txt");
    assert!(!resumed.is_empty(), "c resumed a job of b");
    for r in &resumed {
        let text = std::fs::read_to_string(r).unwrap();
        let epoch: u32 = text.split(' ').next().unwrap().parse().unwrap();
        assert!(epoch >= 1, "{text}");
        assert!(
            text.ends_with(&format!("after epoch {epoch}")),
            "the script got back its own checkpoint: {text}"
        );
    }
    assert!(
        find(&plain_dir, "job.json").is_empty() && find(&plain_dir, "state.txt").is_empty(),
        "plain ran no script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_reaches_the_script_as_sigterm() {
    let Some(python) = python() else { return };
    let Run {
        tmp,
        data,
        port,
        state,
        _coordinator,
    } = serve("stop", "");
    let dir = tmp.path().join("w");
    let env = script_env(&python);
    let mut w = start(port, &data, &dir, "w", &[("stop", "stop.py")], &env);
    wait_status(port, "a job running", |s| count(s, "running") >= 1).await;
    let mut client = ClientOptions {
        url: format!("http://127.0.0.1:{port}"),
        ..ClientOptions::default()
    }
    .admin_client()
    .unwrap();
    client
        .cancel(CancelRequest {
            experiment: "trainers-test".into(),
            ..CancelRequest::default()
        })
        .await
        .unwrap();
    assert!(w.wait_for(LIMIT).success(), "the worker exits 0");
    let stopped = find(&dir, "sigterm.txt");
    assert!(!stopped.is_empty(), "a running script got SIGTERM");
    for j in jobs_of(&state) {
        assert_eq!(j["status"], "cancelled", "{j}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_garbled_and_hanging_scripts_fail_with_clear_errors() {
    let Some(python) = python() else { return };
    let Run {
        tmp,
        data,
        port,
        state,
        _coordinator,
    } = serve(
        "crash",
        "epoch_timeout_s = 3\n[sweep]\n\"trainer.name\" = [\"crash\", \"garbage\", \"hang\"]",
    );
    let env = script_env(&python);
    let trainers = [
        ("crash", "crash.py"),
        ("garbage", "garbage.py"),
        ("hang", "hang.py"),
    ];
    let mut w = start(port, &data, &tmp.path().join("w"), "w", &trainers, &env);
    assert!(w.wait_for(LIMIT).success(), "the worker exits 0");
    let json: serde_json::Value = serde_json::from_str(&report(&state, "json")).unwrap();
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 6);
    for j in jobs {
        assert_eq!(j["status"], "failed", "{j}");
        let error = j["error"].as_str().unwrap_or_default();
        let index = j["configuration"].as_u64().unwrap() as usize;
        let label = json["configurations"][index]["label"]
            .as_str()
            .unwrap_or_default();
        let expected = if label.contains("crash") {
            "boom: the data loader fell over on purpose"
        } else if label.contains("garbage") {
            "this is not json at all"
        } else {
            "epoch"
        };
        assert!(error.contains(expected), "{label}: {error}");
    }
}
