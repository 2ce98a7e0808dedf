//! A report over a store written before the scheduler checked results (NaN,
//! infinities, 1e308 seconds, negative times, confusion matrices of another
//! class count first) stays finite, and its confusion sum has the data set's
//! class count whatever matrix came first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{ExperimentRecord, JobRecord, build_report, render_json};

fn experiment(classes: usize) -> ExperimentRecord {
    ExperimentRecord {
        id: "e1".into(),
        name: None,
        config_toml: "[data]\nroot = \"d\"\n[protocol]\nfolds = 4\nseeds = [0]\nvariants = [\"whole\"]\nkind = \"train-test\"\n".into(),
        config_hash: "h".into(),
        created_unix: 1_700_000_000,
        class_names: (0..classes).map(|i| format!("c{i}")).collect(),
    }
}

fn epoch(seconds: f64, speed: f64) -> EpochMetrics {
    EpochMetrics {
        epoch: 1,
        train_loss: 0.1,
        train_accuracy: 0.5,
        val_loss: None,
        val_accuracy: None,
        test_loss: Some(0.2),
        test_accuracy: Some(0.5),
        epoch_seconds: seconds,
        samples_per_second: speed,
        firing_rates: Vec::new(),
    }
}

fn job(fold: u32, accuracy: f64, seconds: f64, confusion: Vec<Vec<u32>>) -> JobRecord {
    let mut j = JobRecord::pending("e1", Variant::WHOLE, 0, fold, ProtocolKind::TrainTest);
    j.id = format!("j{fold}");
    j.status = JobStatus::Succeeded;
    j.test_accuracy = Some(accuracy);
    j.test_loss = Some(0.2);
    j.best_epoch = Some(1);
    j.train_seconds = Some(seconds);
    j.device = Some(
        if fold.is_multiple_of(2) {
            "cuda:0"
        } else {
            "cpu"
        }
        .into(),
    );
    j.epochs = vec![epoch(seconds, 1e308)];
    j.confusion = Some(confusion);
    j.finished_unix = Some(1_700_000_100);
    j
}

fn identity(n: usize, k: u32) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| (0..n).map(|j| if i == j { k } else { 0 }).collect())
        .collect()
}

/// Every number in a JSON value, with its path.
fn numbers(v: &serde_json::Value, path: String, out: &mut Vec<(String, f64)>) {
    match v {
        serde_json::Value::Number(n) => out.push((path, n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                numbers(x, format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                numbers(x, format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn hostile_stored_figures_leave_every_report_figure_finite() {
    let jobs = vec![
        // A 3-class matrix first: it must not set the size.
        job(0, 0.5, 1e308, identity(3, 1)),
        job(1, f64::NAN, -5.0, identity(2, 4)),
        job(2, 0.75, f64::INFINITY, identity(2, 2)),
        job(3, 1e308, 10.0, vec![vec![1, 2], vec![3]]),
    ];
    let report = build_report(&experiment(2), &jobs, 1_700_000_200);
    let c = &report.compute;
    assert!(
        c.train_seconds.is_finite() && c.train_seconds >= 0.0,
        "{c:?}"
    );
    assert!(c.gpu_hours.is_finite() && c.cpu_hours.is_finite(), "{c:?}");
    // Only the plausible 10 s of job 3 count; the others count as 0.
    assert_eq!(c.train_seconds, 10.0);
    let g = &report.groups[0];
    // Jobs 1 and 2 have 2x2 matrices; the 3x3 and the ragged one are left out.
    assert_eq!(g.confusion_jobs, 2);
    assert_eq!(g.confusion, Some(vec![vec![6, 0], vec![0, 6]]));
    // Accuracies: NaN and 1e308 are left out; 0.5 and 0.75 remain.
    assert_eq!(g.test_accuracy.mean, Some(0.625));

    // The JSON form holds no null where a number was, nor a non-finite one.
    let json: serde_json::Value = serde_json::from_str(&render_json(&report).unwrap()).unwrap();
    let mut all = Vec::new();
    numbers(&json["groups"], "groups".into(), &mut all);
    numbers(&json["compute"], "compute".into(), &mut all);
    assert!(!all.is_empty());
    for (path, v) in all {
        assert!(v.is_finite(), "{path} = {v}");
    }
}

#[test]
fn without_class_names_the_size_most_matrices_have_is_summed() {
    let jobs = vec![
        job(0, 0.5, 1.0, identity(3, 1)),
        job(1, 0.5, 1.0, identity(2, 1)),
        job(2, 0.5, 1.0, identity(2, 1)),
    ];
    let report = build_report(&experiment(0), &jobs, 1_700_000_200);
    let g = &report.groups[0];
    assert_eq!(g.confusion_jobs, 2);
    assert_eq!(
        g.confusion,
        Some(
            identity(2, 2)
                .iter()
                .map(|r| r.iter().map(|&x| u64::from(x)).collect())
                .collect()
        )
    );
}
