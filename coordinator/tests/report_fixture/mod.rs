//! Job records with known results for the report tests: a train-val-test
//! experiment over both variants, 2 seeds × 3 folds each (12 jobs planned).
//! The whole set is finished; the reduced set is partial: 3 succeeded, one
//! failed (with an error holding a comma, a quote and a pipe), one running and
//! one pending. Every value comes from simple formulas of (variant, seed, fold),
//! so the tests can recompute each figure independently.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::sl_animals::REDUCED;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::{EpochMetrics, JobStatus};
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{ExperimentRecord, JobRecord};

pub const EXPERIMENT: &str = "exp-3f9a";
pub const CREATED: i64 = 1_780_000_000;
pub const NOW: i64 = CREATED + 7_654;
pub const EPOCHS: u32 = 5;
pub const FAILED_ERROR: &str = "CUDA out of memory, tried \"2 GiB\" | epoch 3";

pub use spikecv_common::dataset::sl_animals::CLASS_NAMES;

pub fn config_toml(kind: &str) -> String {
    format!(
        "name = \"report fixture\"\n[data]\nroot = \"data/synthetic\"\n[protocol]\nkind = \"{kind}\"\nfolds = 3\nseeds = [0, 1]\nvariants = [\"whole\", \"reduced\"]\n[training]\nepochs = {EPOCHS}\n"
    )
}

pub fn experiment(kind: &str) -> ExperimentRecord {
    ExperimentRecord {
        id: EXPERIMENT.into(),
        name: Some("report fixture".into()),
        config_toml: config_toml(kind),
        config_hash: "9c1d2e3f4a5b6c7d".into(),
        created_unix: CREATED,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
    }
}

fn variant_index(v: Variant) -> f64 {
    match v {
        Variant::WHOLE => 0.0,
        REDUCED => 1.0,
        other => panic!("the fixture has no {other} jobs"),
    }
}

pub fn test_accuracy(v: Variant, seed: u64, fold: u32) -> f64 {
    0.41 + 0.071 * f64::from(fold)
        + 0.0137 * seed as f64
        + 0.113 * variant_index(v)
        + 0.0009 * f64::from(fold * fold)
}
pub fn val_accuracy(v: Variant, seed: u64, fold: u32) -> f64 {
    0.52 + 0.021 * f64::from(fold) - 0.011 * seed as f64 + 0.05 * variant_index(v)
}
pub fn test_loss(v: Variant, seed: u64, fold: u32) -> f64 {
    0.0412 - 0.0031 * f64::from(fold) + 0.0007 * seed as f64 - 0.002 * variant_index(v)
}
pub fn val_loss(v: Variant, seed: u64, fold: u32) -> f64 {
    0.039 - 0.001 * f64::from(fold) + 0.0002 * seed as f64 + 0.0003 * variant_index(v)
}
pub fn best_epoch(_v: Variant, seed: u64, fold: u32) -> u32 {
    1 + (fold * 2 + seed as u32) % EPOCHS
}
pub fn train_seconds(v: Variant, seed: u64, fold: u32) -> f64 {
    600.5 + 37.25 * f64::from(fold) + 11.0 * seed as f64 + 100.0 * variant_index(v)
}
pub fn device(seed: u64, fold: u32) -> &'static str {
    if seed == 1 && fold == 2 {
        "cpu"
    } else if fold.is_multiple_of(2) {
        "cuda:0"
    } else {
        "cuda:1"
    }
}
pub fn worker(seed: u64, fold: u32) -> &'static str {
    if seed == 1 && fold == 2 {
        "cpu-node"
    } else {
        "gpu-a"
    }
}

pub fn epoch(v: Variant, seed: u64, fold: u32, e: u32) -> EpochMetrics {
    let f = f64::from(fold);
    EpochMetrics {
        epoch: e,
        train_loss: 0.09 / f64::from(e) + 0.001 * f + 0.0005 * seed as f64,
        train_accuracy: 0.1 * f64::from(e),
        val_loss: Some(0.05 - 0.002 * f64::from(e)),
        val_accuracy: Some(0.2 + 0.07 * f64::from(e) + 0.01 * f + 0.02 * variant_index(v)),
        test_loss: Some(0.05 - 0.001 * f64::from(e)),
        test_accuracy: Some(0.25 + 0.06 * f64::from(e) + 0.01 * f),
        epoch_seconds: 2.5 + 0.5 * f,
        samples_per_second: 100.0 + 10.0 * f + f64::from(e) + 3.0 * seed as f64,
        firing_rates: Vec::new(),
    }
}

pub fn confusion(seed: u64, fold: u32) -> Vec<Vec<u32>> {
    (0..19u32)
        .map(|i| {
            (0..19u32)
                .map(|j| {
                    if i == j {
                        3 + (i + fold + seed as u32) % 4
                    } else if (i * 7 + j * 3 + fold).is_multiple_of(5) {
                        1
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

pub fn succeeded(v: Variant, seed: u64, fold: u32, protocol: ProtocolKind) -> JobRecord {
    let mut j = JobRecord::pending(EXPERIMENT, v, seed, fold, protocol);
    j.status = JobStatus::Succeeded;
    j.attempts = 1 + (fold % 2);
    j.best_epoch = Some(best_epoch(v, seed, fold));
    j.test_accuracy = Some(test_accuracy(v, seed, fold));
    j.test_loss = Some(test_loss(v, seed, fold));
    if protocol == ProtocolKind::TrainValTest {
        j.val_accuracy = Some(val_accuracy(v, seed, fold));
        j.val_loss = Some(val_loss(v, seed, fold));
    }
    j.train_seconds = Some(train_seconds(v, seed, fold));
    j.worker = Some(worker(seed, fold).into());
    j.device = Some(device(seed, fold).into());
    j.epochs = (1..=EPOCHS).map(|e| epoch(v, seed, fold, e)).collect();
    j.confusion = Some(confusion(seed, fold));
    j.finished_unix = Some(CREATED + 1000 * i64::from(fold) + 100 * seed as i64);
    j
}

/// The 12 planned jobs: whole all succeeded; reduced seed 0 succeeded on every
/// fold, seed 1: fold 0 failed, fold 1 running (2 epochs), fold 2 pending.
pub fn jobs(protocol: ProtocolKind) -> Vec<JobRecord> {
    let mut jobs = Vec::new();
    for seed in 0..2u64 {
        for fold in 0..3u32 {
            jobs.push(succeeded(Variant::WHOLE, seed, fold, protocol));
        }
    }
    for fold in 0..3u32 {
        jobs.push(succeeded(REDUCED, 0, fold, protocol));
    }
    let mut failed = JobRecord::pending(EXPERIMENT, REDUCED, 1, 0, protocol);
    failed.status = JobStatus::Failed;
    failed.attempts = 3;
    failed.worker = Some("gpu-b".into());
    failed.device = Some("cuda:3".into());
    failed.error = Some(FAILED_ERROR.into());
    failed.epochs = (1..=2).map(|e| epoch(REDUCED, 1, 0, e)).collect();
    failed.finished_unix = Some(CREATED + 50);
    jobs.push(failed);
    let mut running = JobRecord::pending(EXPERIMENT, REDUCED, 1, 1, protocol);
    running.status = JobStatus::Running;
    running.attempts = 1;
    running.worker = Some("gpu-a".into());
    running.device = Some("cuda:0".into());
    running.epochs = (1..=2).map(|e| epoch(REDUCED, 1, 1, e)).collect();
    jobs.push(running);
    jobs.push(JobRecord::pending(EXPERIMENT, REDUCED, 1, 2, protocol));
    jobs
}

/// Seconds a job has trained: its train time, or its epochs' time while unfinished.
pub fn job_seconds(j: &JobRecord) -> f64 {
    j.train_seconds
        .unwrap_or_else(|| j.epochs.iter().map(|e| e.epoch_seconds).sum())
}

/// Mean and standard deviation with ddof, by the two-pass textbook formula.
pub fn mean_std(xs: &[f64], ddof: usize) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let ss: f64 = xs.iter().map(|x| (x - mean) * (x - mean)).sum();
    (mean, (ss / (n - ddof as f64)).sqrt())
}

pub fn pct(x: f64) -> String {
    format!("{:.2}", x * 100.0)
}
