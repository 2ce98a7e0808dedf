//! Admin- and worker-supplied text rendered in every format, escaped where it
//! is rendered: an experiment named like an HTML tag with a pipe, backticks
//! and a formula, a worker named `=cmd()|<img …> x"y` on host `x"\ny` (as a
//! store written before names were checked could hold), a class name and an
//! error message with markup. A real state database written by the
//! scheduler; the Markdown and CSV reports through `coordinator report`'s
//! code; `/metrics` and the dashboard's API from a real `coordinator serve
//! --http` over raw TCP. The expected escaped forms are written out here by
//! the rules of each format (CommonMark backslash escapes, RFC 4180 quoting
//! with OWASP's leading `'` against formulas, JSON string escapes), not taken
//! from the renderers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use spikecv_common::dataset::sl_animals::CLASS_NAMES;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_coordinator::commands::report::{ReportArgs, ReportFormat, run};
use spikecv_coordinator::scheduler::{
    FailureClass, ManualClock, Scheduler, SchedulerSettings, SlotInfo, Submission,
    WorkerRegistration,
};

const EXPERIMENT: &str = "<img src=x onerror=alert(1)> a|b ```=cmd() # h";
const WORKER: &str = "=cmd()|<img src=x onerror=alert(1)> x\"y";
const HOST: &str = "x\"\ny";
const CLASS: &str = "<b>cat</b>|x\"y";
const ERROR: &str = "=HYPERLINK(\"http://x\")|<script>alert(1)</script>";
const TOKEN: &str = "hostile-names-token";

fn epoch(e: u32) -> EpochMetrics {
    EpochMetrics {
        epoch: e,
        train_loss: 0.1 / f64::from(e),
        train_accuracy: 0.2 * f64::from(e),
        val_loss: Some(0.05),
        val_accuracy: Some(0.4),
        test_loss: None,
        test_accuracy: None,
        epoch_seconds: 4.0,
        samples_per_second: 90.0,
        firing_rates: Vec::new(),
    }
}

/// A store with the hostile names: one job succeeded, one failed.
fn store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("state.db");
    let config_toml = format!(
        "name = '{EXPERIMENT}'\n[data]\nroot = \"unused\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [7]\nvariants = [\"whole\"]\n[training]\nepochs = 2\n"
    );
    let config = ExperimentConfig::from_toml_str(&config_toml).unwrap();
    assert_eq!(config.name.as_deref(), Some(EXPERIMENT));
    let files: Vec<String> = [
        "user00_indoor",
        "user01_indoor",
        "user18_sunlight",
        "user19_sunlight",
        "user25_imse",
        "user26_imse",
        "user35_dc",
        "user36_dc",
    ]
    .map(str::to_owned)
    .to_vec();
    let plan =
        spikecv_common::experiment::plan::plan_configurations(&config, &files, None).unwrap();
    let mut class_names: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    class_names[0] = CLASS.to_owned();
    let submission = Submission {
        config,
        config_toml,
        jobs: plan.jobs,
        configurations: plan.configurations,
        data_fingerprint: None,
        class_names,
        sample_counts: None,
    };
    let clock = ManualClock::new(1_780_000_000_000);
    let mut sched =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    sched.submit(&submission).unwrap();
    let worker = sched
        .register_worker(&WorkerRegistration {
            name: WORKER.into(),
            host: HOST.into(),
            slots: ["cuda:0", "cuda:1"]
                .iter()
                .map(|d| SlotInfo {
                    device: d.to_string(),
                    device_name: "H200".into(),
                    memory_bytes: 1 << 30,
                })
                .collect(),
            data_fingerprint: String::new(),
        })
        .unwrap();
    let leased = sched
        .lease(&worker, &["cuda:0".into(), "cuda:1".into()])
        .unwrap()
        .assignments;
    assert_eq!(leased.len(), 2);
    clock.advance_s(60);
    let epochs = vec![epoch(1), epoch(2)];
    for m in &epochs {
        sched.record_epoch(leased[0].attempt, m).unwrap();
    }
    // Test set: 4 recordings x 19 classes, all right (76 on the diagonal).
    let confusion = (0..19u32)
        .map(|i| (0..19u32).map(|j| if i == j { 4 } else { 0 }).collect())
        .collect();
    let result = JobResult {
        best_epoch: 2,
        test_accuracy: 1.0,
        test_loss: 0.01,
        val_accuracy: Some(0.4),
        val_loss: Some(0.05),
        confusion,
        train_seconds: 8.0,
        epochs,
        optimistic: false,
    };
    sched.complete(leased[0].attempt, &result).unwrap();
    sched
        .fail(leased[1].attempt, ERROR, FailureClass::Deterministic)
        .unwrap();
    db
}

fn report(db: &Path, format: ReportFormat) -> String {
    let args = ReportArgs {
        state: db.to_owned(),
        experiment: None,
        format,
        out: None,
    };
    let mut buf = Vec::new();
    run(&args, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

/// `text` without its fenced code blocks (the submitted configuration is
/// shown verbatim inside one, where nothing is markup).
fn outside_code_blocks(text: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let ticks: String = line.chars().take_while(|c| *c == '`').collect();
        match &fence {
            None if ticks.len() >= 3 => fence = Some(ticks),
            None => {
                out.push_str(line);
                out.push('\n');
            }
            Some(open) if line.trim_end() == open.as_str() => fence = None,
            Some(_) => {}
        }
    }
    assert!(fence.is_none(), "a code block is never closed");
    out
}

#[test]
fn hostile_names_are_escaped_in_markdown_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());

    let md = report(&db, ReportFormat::Md);
    // The heading: every markup character backslash-escaped.
    let heading = "# spikecv report: \\<img src=x onerror=alert(1)\\> a\\|b \\`\\`\\`=cmd() # h";
    assert_eq!(md.lines().next(), Some(heading), "{md}");
    // The worker in the jobs and compute tables, the error in the failures,
    // the class in the confusion matrix.
    for escaped in [
        "| =cmd()\\|\\<img src=x onerror=alert(1)\\> x\"y |",
        "| =HYPERLINK(\"http://x\")\\|\\<script\\>alert(1)\\</script\\> |",
        "\\<b\\>cat\\</b\\>\\|x\"y",
    ] {
        assert!(md.contains(escaped), "no {escaped:?} in\n{md}");
    }
    // Outside the configuration's code block no raw tag, pipe-split name or
    // formula of ours is left.
    let prose = outside_code_blocks(&md);
    for raw in ["<img", "<script>", "<b>", "a|b", "cmd()|", "```=cmd()"] {
        let unescaped = prose
            .match_indices(raw)
            .any(|(i, _)| !prose[..i].ends_with('\\'));
        assert!(!unescaped, "raw {raw:?} in\n{prose}");
    }
    // The configuration block is fenced longer than the name's backticks, so
    // it ends where the report ends it.
    assert!(
        md.contains(&format!("````toml\nname = '{EXPERIMENT}'\n")),
        "{md}"
    );
    assert!(md.trim_end().ends_with("\n````"), "{md}");

    let csv = report(&db, ReportFormat::Csv);
    // RFC 4180 quotes (a doubled `"`), and a leading `'` before a formula.
    let worker = "\"'=cmd()|<img src=x onerror=alert(1)> x\"\"y\"";
    let error = "\"'=HYPERLINK(\"\"http://x\"\")|<script>alert(1)</script>\"";
    assert!(csv.contains(&format!(",{worker},cuda:")), "{csv}");
    assert!(csv.contains(&format!(",{error},")), "{csv}");
    for line in csv.lines() {
        for field in line.split(',') {
            assert!(
                !field.starts_with(['=', '+', '@']),
                "a formula cell {field:?} in {line}"
            );
        }
    }
}

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: SocketAddr, target: &str, headers: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, head.to_owned(), body.to_owned())
}

#[test]
fn hostile_names_stay_data_in_metrics_and_the_dashboard_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let web = free();
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_coordinator"))
            .args(["serve", "--state"])
            .arg(&db)
            .args(["--listen", &free().to_string(), "--http", &web.to_string()])
            .arg("--token-file")
            .arg(dir.path().join("token"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let metrics = loop {
        if TcpStream::connect(web).is_ok() {
            let (code, _, body) = get(web, "/metrics", "");
            if code == 200 && body.contains("spikecv_jobs") {
                break body;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // /metrics names no experiment or worker; its label values are fixed states.
    for raw in ["<img", "cmd()", "x\""] {
        assert!(!metrics.contains(raw), "{raw:?} in\n{metrics}");
    }
    for line in metrics.lines().filter(|l| l.contains('{')) {
        assert!(line.contains("{state=\""), "{line}");
    }

    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let (code, head, body) = get(web, "/api/overview", &bearer);
    assert_eq!(code, 200, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    // JSON string escapes: the quote and the line feed never raw in the body.
    assert!(body.contains(r#""x\"\ny""#), "{body}");
    assert!(!body.contains("x\"\ny"), "{body}");
    let o: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(o["experiments"][0]["name"], EXPERIMENT);
    assert_eq!(o["workers"][0]["name"], WORKER);
    assert_eq!(o["workers"][0]["host"], HOST);
    let (code, _, jobs) = get(web, "/api/jobs", &bearer);
    assert_eq!(code, 200);
    let jobs: Value = serde_json::from_str(&jobs).unwrap();
    let columns = jobs["columns"].as_array().unwrap();
    let worker = columns.iter().position(|c| c == "worker").unwrap();
    assert!(
        jobs["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r[worker] == WORKER),
        "{jobs}"
    );
}
