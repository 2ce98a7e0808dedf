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

mod http_support;
mod store_support;

use std::path::Path;

use http_support::{free_addr, get, serve};
use serde_json::Value;
use spikecv_common::dataset::sl_animals::CLASS_NAMES;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_coordinator::commands::report::{ReportArgs, ReportFormat, run};
use spikecv_coordinator::scheduler::{FailureClass, ManualClock, Scheduler, SchedulerSettings};

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
    let mut class_names: Vec<String> = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    class_names[0] = CLASS.to_owned();
    let submission = store_support::submission(&config_toml, class_names);
    assert_eq!(submission.config.name.as_deref(), Some(EXPERIMENT));
    let clock = ManualClock::new(1_780_000_000_000);
    let mut sched =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    sched.submit(&submission).unwrap();
    let (_, leased) = store_support::two_gpus_leased(&mut sched, WORKER, HOST);
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

#[test]
fn hostile_names_stay_data_in_metrics_and_the_dashboard_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path());
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let web = free_addr();
    let _serve = serve(&db, &dir.path().join("token"), web, &[]);
    let (code, _, metrics) = get(web, "/metrics", "");
    assert_eq!(code, 200);
    assert!(metrics.contains("spikecv_jobs"), "{metrics}");
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
