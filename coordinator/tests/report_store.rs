//! `coordinator report` on a real state database, written by the scheduler
//! (submit, lease, epochs, complete, fail): a partial run with one job
//! succeeded, one failed, one running and one pending.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod store_support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_coordinator::commands::report::{ReportArgs, ReportFormat, run};
use spikecv_coordinator::scheduler::{FailureClass, ManualClock, Scheduler, SchedulerSettings};

const CONFIG: &str = "name = \"store report\"\n[data]\nroot = \"unused\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [7]\nvariants = [\"whole\", \"reduced\"]\n[training]\nepochs = 3\n";
const ERROR: &str = "non-finite loss at epoch 2";
const T0_MS: i64 = 1_780_000_000_000;

fn epoch(e: u32, speed: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: e,
        train_loss: 0.1 / f64::from(e),
        train_accuracy: 0.2 * f64::from(e),
        val_loss: Some(0.08 - 0.01 * f64::from(e)),
        val_accuracy: Some(0.3 + 0.1 * f64::from(e)),
        test_loss: None,
        test_accuracy: None,
        epoch_seconds: 4.0 + f64::from(e),
        samples_per_second: speed + f64::from(e),
        firing_rates: Vec::new(),
    }
}

/// The test set of the first job (4 recordings x 19 classes = 76 samples),
/// 57 of them right: test accuracy 0.75, as the result says.
fn confusion() -> Vec<Vec<u32>> {
    (0..19u32)
        .map(|i| {
            (0..19u32)
                .map(|j| {
                    if i == j {
                        3
                    } else {
                        u32::from(j == (i + 1) % 19)
                    }
                })
                .collect()
        })
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    experiment: String,
    result: JobResult,
    other_epochs: Vec<EpochMetrics>,
}

/// Submits the 4-job experiment and drives it to a partial state.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let clock = ManualClock::new(T0_MS);
    let mut sched =
        Scheduler::open(&db, SchedulerSettings::default(), Box::new(clock.clone())).unwrap();
    let class_names = CLASS_NAMES.iter().map(|s| s.to_string()).collect();
    let submission = store_support::submission(CONFIG, class_names);
    assert_eq!(submission.jobs.len(), 4);
    let experiment = sched.submit(&submission).unwrap().experiment.0;
    let (worker, leased) = store_support::two_gpus_leased(&mut sched, "node-1", "node-1");
    clock.advance_s(60);
    let epochs: Vec<EpochMetrics> = (1..=3).map(|e| epoch(e, 90.0)).collect();
    for m in &epochs {
        sched.record_epoch(leased[0].attempt, m).unwrap();
    }
    let result = JobResult {
        best_epoch: 2,
        test_accuracy: 0.75,
        test_loss: 0.0431,
        val_accuracy: Some(0.5),
        val_loss: Some(0.06),
        confusion: confusion(),
        train_seconds: 15.5,
        epochs,
        optimistic: false,
    };
    sched.complete(leased[0].attempt, &result).unwrap();
    let other_epochs = vec![epoch(1, 50.0)];
    sched
        .record_epoch(leased[1].attempt, &other_epochs[0])
        .unwrap();
    sched
        .fail(leased[1].attempt, ERROR, FailureClass::Deterministic)
        .unwrap();
    let running = sched
        .lease(&worker, &["cuda:1".into()])
        .unwrap()
        .assignments;
    assert_eq!(running.len(), 1);
    sched
        .record_epoch(running[0].attempt, &epoch(1, 70.0))
        .unwrap();
    Fixture {
        _dir: dir,
        db,
        experiment,
        result,
        other_epochs,
    }
}

use spikecv_common::dataset::sl_animals::CLASS_NAMES;

fn report(
    db: &Path,
    experiment: Option<String>,
    format: ReportFormat,
    out: Option<&Path>,
) -> String {
    let args = ReportArgs {
        state: db.to_owned(),
        experiment,
        format,
        out: out.map(Path::to_owned),
    };
    let mut buf = Vec::new();
    run(&args, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn json_report_from_the_store() {
    let fx = fixture();
    let j: Value = serde_json::from_str(&report(&fx.db, None, ReportFormat::Json, None)).unwrap();
    assert_eq!(j["experiment"]["id"], fx.experiment.as_str());
    assert_eq!(j["experiment"]["config_toml"], CONFIG);
    assert_eq!(j["experiment"]["created_unix"], T0_MS / 1000);
    assert!(!j["experiment"]["config_hash"].as_str().unwrap().is_empty());
    assert_eq!(j["experiment"]["class_names"][18], "zebra");
    let p = &j["progress"];
    let count = |k: &str| p[k].as_u64().unwrap();
    assert_eq!(
        (
            count("planned"),
            count("succeeded"),
            count("failed"),
            count("pending")
        ),
        (4, 1, 1, 1)
    );
    assert_eq!(count("running") + count("leased"), 1);
    assert_eq!(p["complete"], false);

    // The one succeeded job stands behind its group's figures: 1 of 2 planned.
    let groups = j["groups"].as_array().unwrap();
    let with_result: Vec<&Value> = groups.iter().filter(|g| g["succeeded"] == 1).collect();
    assert_eq!(with_result.len(), 1);
    let g = with_result[0];
    assert_eq!(g["test_accuracy"]["count"], 1);
    assert_eq!(g["test_accuracy"]["planned"], 2);
    assert_eq!(g["test_accuracy"]["mean"], 0.75);
    assert_eq!(g["test_accuracy"]["std_population"], 0.0);
    assert!(g["test_accuracy"]["std_sample"].is_null());
    assert_eq!(g["val_accuracy"]["mean"], 0.5);
    assert_eq!(g["test_loss"]["mean"], 0.0431);
    assert_eq!(g["best_epoch"]["mean"], 2.0);
    assert_eq!(g["confusion_jobs"], 1);
    let conf: Vec<Vec<u32>> = serde_json::from_value(g["confusion"].clone()).unwrap();
    assert_eq!(conf, fx.result.confusion);

    // The failed job, with its error.
    let failed = j["failed_jobs"].as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"], ERROR);
    assert_eq!(failed[0]["worker"], "node-1");

    // Epochs came back from the store: 3 for the finished job, 1 each for the others.
    let jobs = j["jobs"].as_array().unwrap();
    let mut epochs: Vec<usize> = jobs
        .iter()
        .map(|j| j["epochs"].as_array().unwrap().len())
        .collect();
    epochs.sort_unstable();
    assert_eq!(epochs, vec![0, 1, 1, 3]);
    let done = jobs.iter().find(|j| j["status"] == "succeeded").unwrap();
    let back: Vec<EpochMetrics> = serde_json::from_value(done["epochs"].clone()).unwrap();
    assert_eq!(back, fx.result.epochs);
    assert_eq!(done["finished_unix"], T0_MS / 1000 + 60);

    // GPU hours: the finished job's train time plus the others' epoch time, all on cuda.
    let gpu =
        (fx.result.train_seconds + fx.other_epochs[0].epoch_seconds + epoch(1, 70.0).epoch_seconds)
            / 3600.0;
    assert!((j["compute"]["gpu_hours"].as_f64().unwrap() - gpu).abs() < 1e-12);
}

#[test]
fn markdown_and_plots_written_with_out() {
    let fx = fixture();
    let out = fx._dir.path().join("report");
    let said = report(
        &fx.db,
        Some(fx.experiment.clone()),
        ReportFormat::Md,
        Some(&out),
    );
    assert!(said.starts_with("wrote "), "{said}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**partial: 1 of 4 jobs**"), "{md}");
    assert!(md.contains(ERROR));
    assert!(md.contains("partial: 1 of 2 jobs"));
    assert!(md.contains("![test-accuracy-train-val-test.png](test-accuracy-train-val-test.png)"));
    let files = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(files, 1 + (2 * 2 + 1) * 2);
}

#[test]
fn csv_report_from_the_binary() {
    let fx = fixture();
    let bin = env!("CARGO_BIN_EXE_coordinator");
    let run = Command::new(bin)
        .args([
            "report",
            "--state",
            fx.db.to_str().unwrap(),
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8(run.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].starts_with(
        "experiment,variant,seed,fold,protocol,status,attempts,best_epoch,test_accuracy,"
    ));
    let done = lines.iter().find(|l| l.contains(",succeeded,")).unwrap();
    assert!(
        done.contains(",0.75,0.0431,0.5,0.06,15.5,node-1,cuda:"),
        "{done}"
    );

    let bad = Command::new(bin)
        .args([
            "report",
            "--state",
            fx.db.to_str().unwrap(),
            "--experiment",
            "nope",
            "--format",
            "md",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("experiment nope is not in the state database")
    );

    let missing = Command::new(bin)
        .args([
            "report",
            "--state",
            "/nonexistent/state.db",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
}
