//! The dashboard's JSON API in process: the handlers over a real store file
//! that a scheduler fills (two seeds × two folds, one job done, one running),
//! compared with REPORT's aggregation of the same store; then the HTTP routes
//! on a loopback listener: token checks (the login link's session cookie, no
//! token in URLs), the Host check, the page, `/metrics` beside it, and the
//! event stream pushing a change without a new request. A worker found
//! suspect by deterministic replay shows as suspect (reason, job, since,
//! the command that clears it) until it is cleared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sched_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult, JobStatus, LayerRate};
use spikecv_coordinator::auth::Token;
use spikecv_coordinator::dashboard::jobs::JobsQuery;
use spikecv_coordinator::dashboard::{self, Dashboard, DashboardConfig, DashboardError, overview};
use spikecv_coordinator::metrics::{MetricsSource, serve_http};
use spikecv_coordinator::report::{build_report, from_store};
use spikecv_coordinator::scheduler::{
    Assignment, ManualClock, Scheduler, SchedulerSettings, SlotInfo, Submission, WorkerRegistration,
};

const T0: i64 = 1_700_000_000_000;
const EPOCHS: u32 = 3;

/// A data root with a file list of eight recordings and an experiment over it.
fn experiment(dir: &Path) -> Submission {
    let root = dir.join("data");
    std::fs::create_dir_all(&root).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("user{:02}_dc", 40 + i)).collect();
    std::fs::write(root.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    let text = format!(
        "name = \"dash\"\n[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0, 1]\nvariants = [\"whole\"]\n[training]\nepochs = {EPOCHS}\n",
        root.display().to_string()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    Submission::from_config(config, text, None).unwrap()
}

fn epoch(e: u32, k: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: e,
        train_loss: 0.5 / f64::from(e) + k,
        train_accuracy: 0.2 * f64::from(e),
        val_loss: Some(0.4 / f64::from(e)),
        val_accuracy: Some(0.15 * f64::from(e) + k),
        test_loss: Some(0.45 / f64::from(e)),
        test_accuracy: Some(0.1 * f64::from(e) + k),
        epoch_seconds: 2.0 + k,
        samples_per_second: 100.0 + 10.0 * k,
        firing_rates: vec![
            LayerRate {
                layer: "conv1".into(),
                train: 0.1 * f64::from(e),
                eval: Some(0.05 * f64::from(e)),
            },
            LayerRate {
                layer: "fc2".into(),
                train: 0.01 * f64::from(e),
                eval: None,
            },
        ],
    }
}

fn result(test: f64, epochs: Vec<EpochMetrics>) -> JobResult {
    JobResult {
        best_epoch: 2,
        test_accuracy: test,
        test_loss: 0.2,
        val_accuracy: Some(test - 0.05),
        val_loss: Some(0.25),
        // None reported: the dashboard shows no matrix, and a made-up one
        // would have to fit the 76 test samples of 19 classes.
        confusion: vec![],
        train_seconds: 7.5,
        epochs,
        optimistic: false,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    sched: Scheduler,
    leased: Vec<Assignment>,
}

/// Four jobs: the first succeeded (3 epochs), the second runs (2 epochs), two pending.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let mut sched =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    sched.submit(&experiment(dir.path())).unwrap();
    let reg = WorkerRegistration {
        name: "gpu-node-1".into(),
        host: "node1".into(),
        slots: ["cuda:0", "cuda:1"]
            .map(|d| SlotInfo {
                device: d.into(),
                device_name: "H200".into(),
                memory_bytes: 1 << 30,
                manifest: None,
            })
            .to_vec(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    };
    let worker = sched.register_worker(&reg).unwrap();
    let leased = sched
        .lease(&worker, &["cuda:0".into(), "cuda:1".into()])
        .unwrap()
        .assignments;
    assert_eq!(leased.len(), 2);
    clock.advance_s(5);
    let done: Vec<EpochMetrics> = (1..=EPOCHS).map(|e| epoch(e, 0.0)).collect();
    for m in &done {
        sched.record_epoch(leased[0].attempt, m).unwrap();
    }
    sched
        .complete(leased[0].attempt, &result(0.6, done))
        .unwrap();
    for e in 1..=2 {
        sched
            .record_epoch(leased[1].attempt, &epoch(e, 0.05))
            .unwrap();
    }
    Fixture {
        _dir: dir,
        db,
        sched,
        leased,
    }
}

#[test]
fn overview_matches_report_aggregation() {
    let f = fixture();
    let conn = from_store::open_read_only(&f.db).unwrap();
    let o = overview::overview(&conn, T0 + 60_000).unwrap();
    assert_eq!(o.experiments.len(), 1);
    let e = &o.experiments[0];

    // The same figures as `coordinator report` (REPORT's records, with epochs).
    let exp = from_store::experiments(&conn).unwrap().remove(0);
    let report = build_report(
        &exp,
        &from_store::jobs(&conn, &exp.id).unwrap(),
        (T0 + 60_000) / 1000,
    );
    assert_eq!(e.id, report.experiment.id);
    assert_eq!(e.config_hash, report.experiment.config_hash);
    assert_eq!(e.progress, report.progress);
    assert_eq!(e.progress.planned, 4);
    assert_eq!(e.progress.succeeded, 1);
    assert_eq!(e.progress.running, 1);
    assert_eq!(e.wall_seconds, report.compute.wall_seconds);
    assert_eq!(e.aggregate.len(), report.groups.len());
    for (g, r) in e.aggregate.iter().zip(&report.groups) {
        assert_eq!(g.test_accuracy, r.test_accuracy);
        assert_eq!(g.val_accuracy, r.val_accuracy);
        assert_eq!(g.test_loss, r.test_loss);
        assert_eq!((g.planned, g.succeeded), (r.planned, r.succeeded));
    }
    assert_eq!(e.aggregate[0].test_accuracy.mean, Some(0.6));
    assert!(e.partial, "two jobs are not finished");
    assert_eq!(e.epochs, Some(EPOCHS));
    // One running job at its latest epoch (2): 100 + 10 × 0.05 samples/s.
    assert!((e.samples_per_second - 100.5).abs() < 1e-9);
    // ETA: epochs left (1 + 3 + 3) × 2.05 s per epoch over 1 running job.
    let eta = e.eta_seconds.unwrap();
    assert!((eta - 7.0 * 2.05).abs() < 1e-9, "eta {eta}");

    assert_eq!(o.workers.len(), 1);
    let w = &o.workers[0];
    assert_eq!(
        (w.name.as_str(), w.host.as_str(), w.state),
        ("gpu-node-1", "node1", "alive")
    );
    assert_eq!(w.slots.len(), 2);
    assert_eq!(w.jobs.len(), 1);
    assert_eq!(w.jobs[0].job, f.leased[1].job.as_str());
    assert_eq!(w.jobs[0].epoch, Some(2));
    assert_eq!(w.last_seen_ms, T0 + 5_000);
}

fn query(pairs: &[(&str, &str)]) -> JobsQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    JobsQuery::from_pairs(&pairs).unwrap()
}

#[test]
fn jobs_table_filters_sorts_and_pages() {
    let f = fixture();
    let conn = from_store::open_read_only(&f.db).unwrap();
    let all = dashboard::jobs_page(&conn, &query(&[])).unwrap();
    assert_eq!((all.total, all.matched, all.rows.len()), (4, 4, 4));
    let col = |name: &str| all.columns.iter().position(|c| *c == name).unwrap();
    // Plan order: the first leased job is first; the columns say what each cell is.
    assert_eq!(all.rows[0][col("job")], f.leased[0].job.as_str());
    assert_eq!(all.rows[0][col("state")], "succeeded");
    assert_eq!(all.rows[0][col("test_accuracy")], 0.6);
    assert_eq!(all.rows[0][col("worker")], "gpu-node-1");
    // A running job shows its latest epoch's accuracies and epoch x/N.
    let running = all
        .rows
        .iter()
        .find(|r| r[col("state")] == "running")
        .unwrap();
    assert_eq!(running[col("epoch")], 2);
    assert_eq!(running[col("of")], EPOCHS);
    assert_eq!(
        running[col("test_accuracy")],
        epoch(2, 0.05).test_accuracy.unwrap()
    );
    // Pending jobs: epoch unknown, total from the config.
    let pending = all
        .rows
        .iter()
        .find(|r| r[col("state")] == "pending")
        .unwrap();
    assert!(pending[col("epoch")].is_null());
    assert_eq!(pending[col("of")], EPOCHS);

    let ok = dashboard::jobs_page(&conn, &query(&[("state", "succeeded")])).unwrap();
    assert_eq!((ok.total, ok.matched), (4, 1));
    let active = dashboard::jobs_page(&conn, &query(&[("state", "active")])).unwrap();
    assert_eq!(active.matched, 1);
    let seed1 = dashboard::jobs_page(&conn, &query(&[("seed", "1")])).unwrap();
    assert_eq!(seed1.matched, 2);
    assert!(seed1.rows.iter().all(|r| r[col("seed")] == 1));
    let text = dashboard::jobs_page(&conn, &query(&[("q", "CUDA:1")])).unwrap();
    assert_eq!(
        text.matched, 1,
        "search is case-insensitive over worker and device"
    );

    // Sorted by test accuracy, descending: values first (largest first), missing last.
    let sorted =
        dashboard::jobs_page(&conn, &query(&[("sort", "test_accuracy"), ("dir", "desc")])).unwrap();
    let accs: Vec<Option<f64>> = sorted
        .rows
        .iter()
        .map(|r| r[col("test_accuracy")].as_f64())
        .collect();
    assert_eq!(accs[0], Some(0.6));
    assert_eq!(accs[1], epoch(2, 0.05).test_accuracy);
    let page = dashboard::jobs_page(
        &conn,
        &query(&[("sort", "seed"), ("offset", "1"), ("limit", "2")]),
    )
    .unwrap();
    assert_eq!((page.offset, page.rows.len(), page.matched), (1, 2, 4));
    let seeds: Vec<u64> = page
        .rows
        .iter()
        .map(|r| r[col("seed")].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![0, 1]);

    let bad = |k: &str, v: &str| {
        JobsQuery::from_pairs(&[(k.to_owned(), v.to_owned())])
            .err()
            .unwrap_or_else(|| panic!("{k}={v} accepted"))
    };
    assert!(matches!(
        bad("sort", "bogus"),
        DashboardError::BadRequest { param: "sort", .. }
    ));
    assert!(matches!(
        bad("limit", "0"),
        DashboardError::BadRequest { param: "limit", .. }
    ));
    assert!(matches!(
        bad("seed", "x"),
        DashboardError::BadRequest { param: "seed", .. }
    ));
    let unknown = dashboard::jobs_page(&conn, &query(&[("experiment", "nope")])).unwrap_err();
    assert!(matches!(unknown, DashboardError::UnknownExperiment { .. }));
}

#[test]
fn job_detail_has_learning_curves() {
    let f = fixture();
    let conn = from_store::open_read_only(&f.db).unwrap();
    let d = dashboard::job_detail(&conn, f.leased[0].job.as_str()).unwrap();
    assert_eq!(d.state, "succeeded");
    assert_eq!(d.epoch, vec![1, 2, 3]);
    let want: Vec<f64> = (1..=EPOCHS).map(|e| epoch(e, 0.0).train_loss).collect();
    assert_eq!(d.train_loss, want);
    let want: Vec<Option<f64>> = (1..=EPOCHS).map(|e| epoch(e, 0.0).test_accuracy).collect();
    assert_eq!(d.test_accuracy_curve, want);
    assert_eq!(d.best_epoch, Some(2));
    assert_eq!(d.firing_rates, epoch(EPOCHS, 0.0).firing_rates);
    assert_eq!(d.firing_rates_epoch, Some(EPOCHS));
    let r = dashboard::job_detail(&conn, f.leased[1].job.as_str()).unwrap();
    assert_eq!((r.state, r.epoch.len()), ("running", 2));
    assert_eq!(r.firing_rates, epoch(2, 0.0).firing_rates);
    assert_eq!(r.firing_rates_epoch, Some(2));
    let missing = dashboard::job_detail(&conn, "no-such-job").unwrap_err();
    assert!(matches!(missing, DashboardError::UnknownJob { .. }));
    assert_eq!(missing.status(), "404 Not Found");
}

/// One HTTP/1.1 GET over a fresh connection; returns (status code, head, body).
fn get(addr: std::net::SocketAddr, target: &str, headers: &str) -> (u16, String, String) {
    get_as(addr, &addr.to_string(), target, headers)
}

/// As [`get`], with `Host: host`.
fn get_as(
    addr: std::net::SocketAddr,
    host: &str,
    target: &str,
    headers: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// Reads server-sent events until one named `overview`; returns its data.
fn next_overview(lines: &mut impl BufRead) -> serde_json::Value {
    let mut event = String::new();
    loop {
        let mut line = String::new();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "event stream ended"
        );
        let line = line.trim_end();
        if let Some(name) = line.strip_prefix("event: ") {
            event = name.to_owned();
        } else if let Some(data) = line.strip_prefix("data: ")
            && event == "overview"
        {
            return serde_json::from_str(data).unwrap();
        }
    }
}

#[test]
fn http_routes_tokens_metrics_and_live_events() {
    let mut f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dash = Dashboard::start(
            DashboardConfig {
                state: f.db.clone(),
                tokens: vec![Token::new("s3cret")],
                poll_interval: Duration::from_millis(50),
                http_port: addr.port(),
                tls: false,
                session_lifetime: dashboard::session::DEFAULT_LIFETIME,
                logouts_file: None,
            },
            stop_rx.clone(),
        );
        let source: MetricsSource = Arc::new(|| Box::pin(async { "spikecv_up 1\n".to_owned() }));
        let mut stop = stop_rx.clone();
        tokio::spawn(serve_http(
            listener,
            source,
            Some(dash.fallback()),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
        addr
    });

    let (code, head, body) = get(addr, "/", "");
    assert_eq!(code, 200);
    assert!(
        head.contains("text/html") && body.contains("app.js"),
        "{head}"
    );
    assert!(head.contains("Content-Security-Policy"));
    let (code, _, js) = get(addr, "/app.js", "");
    assert_eq!(code, 200);
    assert!(js.contains("EventSource"));
    assert_eq!(get(addr, "/metrics", "").2, "spikecv_up 1\n");
    assert_eq!(get(addr, "/nope", "").0, 404);

    assert_eq!(get(addr, "/api/overview", "").0, 401);
    assert_eq!(
        get(addr, "/api/overview", "Authorization: Bearer wrong\r\n").0,
        401
    );
    let (code, _, body) = get(addr, "/api/overview", "Authorization: Bearer s3cret\r\n");
    assert_eq!(code, 200);
    let o: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(o["experiments"][0]["progress"]["succeeded"], 1);
    // A token in the URL is not accepted; the login link sets a session
    // cookie and sends the browser on to a clean URL.
    assert_eq!(get(addr, "/api/overview?token=s3cret", "").0, 401);
    assert_eq!(get(addr, "/login?token=wrong", "").0, 401);
    let (code, head, _) = get(addr, "/login?token=s3cret", "");
    assert_eq!(code, 303, "{head}");
    assert!(head.contains("\r\nLocation: /\r\n"), "{head}");
    let set_cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    assert!(!set_cookie.contains("s3cret"), "{set_cookie}");
    let session = format!("Cookie: {}\r\n", set_cookie.split(';').next().unwrap());
    assert_eq!(get(addr, "/api/overview", &session).0, 200);
    let (code, _, body) = get(addr, "/api/jobs?state=running&limit=10", &session);
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["matched"], 1);
    let (code, _, body) = get(addr, "/api/jobs?sort=bogus", &session);
    assert_eq!(code, 400);
    assert!(body.contains("sort"), "{body}");
    let id = f.leased[0].job.as_str();
    let (code, _, body) = get(addr, &format!("/api/job?id={id}"), &session);
    assert_eq!(code, 200);
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["epoch"].as_array().unwrap().len(), 3);
    assert_eq!(d["firing_rates_epoch"], 3);
    let rates = d["firing_rates"].as_array().unwrap();
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0]["layer"], "conv1");
    assert!((rates[0]["train"].as_f64().unwrap() - 0.3).abs() < 1e-12);
    assert!((rates[0]["eval"].as_f64().unwrap() - 0.15).abs() < 1e-12);
    assert!(rates[1]["eval"].is_null());
    assert_eq!(get(addr, "/api/job?id=none", &session).0, 404);
    // A page of another site reaching this listener by DNS rebinding.
    let (code, _, body) = get_as(addr, "evil.example:80", "/api/overview", &session);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--http-host"), "{body}");
    let (code, _, _) = get_as(addr, &format!("localhost:{}", addr.port()), "/metrics", "");
    assert_eq!(code, 200);

    // The event stream: an overview at once, another when a job finishes.
    assert_eq!(get(addr, "/api/events", "").0, 401);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n{session}\r\n"
    )
    .unwrap();
    let mut lines = BufReader::new(s);
    let mut status = String::new();
    lines.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let first = next_overview(&mut lines);
    assert_eq!(first["experiments"][0]["progress"]["succeeded"], 1);
    let epochs: Vec<EpochMetrics> = (1..=EPOCHS).map(|e| epoch(e, 0.05)).collect();
    f.sched
        .record_epoch(f.leased[1].attempt, &epochs[2])
        .unwrap();
    f.sched
        .complete(f.leased[1].attempt, &result(0.7, epochs))
        .unwrap();
    let mut next = next_overview(&mut lines);
    while next["experiments"][0]["progress"]["succeeded"] == 1 {
        next = next_overview(&mut lines);
    }
    let e = &next["experiments"][0];
    assert_eq!(e["progress"]["succeeded"], 2);
    assert_eq!(e["aggregate"][0]["test_accuracy"]["count"], 2);
    let mean = e["aggregate"][0]["test_accuracy"]["mean"].as_f64().unwrap();
    assert!((mean - 0.65).abs() < 1e-12);
    assert_eq!(f.sched.status().unwrap().counts.succeeded, 2);
    let _ = stop_tx.send(true);
}

#[test]
fn eta_counts_epochs_left_over_parallel_jobs() {
    use spikecv_coordinator::report::JobRecord;
    let line = |status: JobStatus, at: Option<u32>, latest: Option<f64>, train: Option<f64>| {
        let mut j = JobRecord::pending(
            "e",
            spikecv_common::dataset::variant::Variant::WHOLE,
            0,
            0,
            spikecv_common::experiment::sections::ProtocolKind::TrainValTest,
        );
        j.status = status;
        j.progress_epoch = at;
        j.train_seconds = train;
        j.epochs.extend(latest.map(|s| EpochMetrics {
            epoch_seconds: s,
            ..epoch(1, 0.0)
        }));
        j
    };
    // Nothing left.
    assert_eq!(
        overview::eta_seconds(&[line(JobStatus::Succeeded, None, None, Some(10.0))], 10, 2),
        Some(0.0)
    );
    // No timing yet.
    assert_eq!(
        overview::eta_seconds(&[line(JobStatus::Pending, None, None, None)], 10, 2),
        None
    );
    // Two running (3 s and 5 s per epoch, at epochs 4 and 6 of 10) and one pending:
    // (6 + 4 + 10) epochs × 4 s over 2 jobs.
    let jobs = [
        line(JobStatus::Running, Some(4), Some(3.0), None),
        line(JobStatus::Running, Some(6), Some(5.0), None),
        line(JobStatus::Pending, None, None, None),
    ];
    assert_eq!(overview::eta_seconds(&jobs, 10, 8), Some(20.0 * 4.0 / 2.0));
    // Nothing running: finished jobs' seconds per epoch over the alive slots.
    let jobs = [
        line(JobStatus::Succeeded, None, None, Some(50.0)),
        line(JobStatus::Pending, None, None, None),
        line(JobStatus::Pending, None, None, None),
    ];
    assert_eq!(overview::eta_seconds(&jobs, 10, 4), Some(20.0 * 5.0 / 4.0));
    assert_eq!(overview::eta_seconds(&jobs, 10, 0), None);
}

#[test]
fn status_and_dashboard_give_the_same_eta() {
    let f = fixture();
    let conn = from_store::open_read_only(&f.db).unwrap();
    let o = overview::overview(&conn, T0 + 60_000).unwrap();
    let dashboard = o.experiments[0].eta_seconds;
    let status = f.sched.status().unwrap().eta_seconds;
    // One job running at epoch 2 of 3 (2.05 s per epoch), two pending (3
    // epochs each): 7 epochs left at 2.05 s, one job in parallel.
    assert!(dashboard.is_some());
    assert_eq!(dashboard, status);
    let want = 7.0 * 2.05;
    assert!(
        (dashboard.unwrap() - want).abs() < 1e-9,
        "{dashboard:?} vs {want}"
    );
}

#[test]
fn a_suspect_worker_shows_as_suspect_until_cleared() {
    use sched_support::verify::{make_suspect, named, verify_submission};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let mut s =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    s.submit(&verify_submission("\"all\"", 3, "verified", 2))
        .unwrap();
    let mallory = named(&mut s, "mallory", 4);
    let alice = named(&mut s, "alice", 4);
    let bob = named(&mut s, "bob", 4);
    clock.advance_s(7);
    let job = make_suspect(&mut s, &mallory, [&alice, &bob], 2);

    let conn = from_store::open_read_only(&db).unwrap();
    let o = overview::overview(&conn, T0 + 60_000).unwrap();
    assert_eq!(o.workers.len(), 3);
    let by_name = |o: &overview::Overview, name: &str| {
        o.workers.iter().find(|w| w.name == name).cloned().unwrap()
    };
    let m = by_name(&o, "mallory");
    let suspect = m.suspect.as_ref().expect("mallory shows as suspect");
    assert_eq!(suspect.job, job.as_str());
    assert_eq!(suspect.since_ms, T0 + 7_000);
    assert!(!suspect.reason.is_empty());
    assert_eq!(suspect.reason, s.suspects().unwrap()[0].reason);
    assert_eq!(suspect.clear_command, "coordinator worker clear mallory");
    assert!(by_name(&o, "alice").suspect.is_none());
    assert!(by_name(&o, "bob").suspect.is_none());
    // The page reads it from the overview's JSON.
    let json = serde_json::to_value(&o).unwrap();
    let w = json["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "mallory")
        .unwrap();
    assert_eq!(w["suspect"]["job"], job.as_str());
    assert_eq!(
        w["suspect"]["clear_command"],
        "coordinator worker clear mallory"
    );

    // Cleared (nothing else changes): the version moves, so the live page
    // is pushed the overview without the suspect.
    s.clear_suspect("mallory").unwrap();
    let cleared = overview::overview(&conn, T0 + 60_000).unwrap();
    assert_ne!(cleared.version, o.version);
    assert!(cleared.workers.iter().all(|w| w.suspect.is_none()));
    assert_eq!(
        serde_json::to_value(&cleared).unwrap()["workers"][0]["suspect"],
        serde_json::Value::Null
    );
}

#[test]
fn jobs_of_a_trainer_no_worker_has_show_as_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = ManualClock::new(T0);
    let mut sched =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("user{:02}_dc", 40 + i)).collect();
    std::fs::write(root.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    let text = format!(
        "[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n[trainer]\nname = \"stbp-pytorch\"\n",
        root.display().to_string()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    sched
        .submit(&Submission::from_config(config, text, None).unwrap())
        .unwrap();
    let waits = || {
        let conn = from_store::open_read_only(&db).unwrap();
        let o = overview::overview(&conn, T0).unwrap();
        o.waiting_for_trainers
            .iter()
            .map(|w| (w.trainer.clone(), w.jobs))
            .collect::<Vec<_>>()
    };
    assert_eq!(waits(), vec![("stbp-pytorch".to_owned(), 2)]);
    let mut reg = sched_support::registration("able", 1);
    reg.trainers = vec![spikecv_common::experiment::trainer::TrainerInfo {
        name: "stbp-pytorch".into(),
        script_sha256: "ab".repeat(32),
        deterministic: false,
    }];
    sched.register_worker(&reg).unwrap();
    assert!(waits().is_empty());
}
