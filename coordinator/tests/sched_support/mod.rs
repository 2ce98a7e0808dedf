//! Shared helpers of the scheduler tests: a scheduler over an in-memory
//! store, a submission of an experiment over
//! made-up recordings, a worker's registration, a sweep job's epoch and the
//! figures of an honest job of six test samples; [`verify`] has those of
//! deterministic replay.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};
use spikecv_common::experiment::plan::plan_configurations;
use spikecv_coordinator::scheduler::{
    ManualClock, Scheduler, SchedulerSettings, SlotInfo, Submission, WorkerRegistration,
};
use spikecv_coordinator::store::Store;

pub mod verify;

/// `config_toml` planned over `recordings` made-up recordings
/// (`user00_dc`, ...) and the data fingerprint `fingerprint`, with the
/// classes `classes` (one sample of each per recording).
pub fn submission_over(
    config_toml: &str,
    recordings: usize,
    fingerprint: Option<&str>,
    classes: &[&str],
) -> Submission {
    let config = ExperimentConfig::from_toml_str(config_toml).unwrap();
    let names: Vec<String> = (0..recordings).map(|i| format!("user{i:02}_dc")).collect();
    let plan = plan_configurations(&config, &names, fingerprint).unwrap();
    Submission {
        config_toml: config.to_toml_string(),
        config,
        jobs: plan.jobs,
        configurations: plan.configurations,
        data_fingerprint: fingerprint.map(str::to_owned),
        class_names: classes.iter().map(|c| (*c).to_owned()).collect(),
        sample_counts: None,
    }
}

/// Plausible metrics of `epoch` (test figures included).
pub fn metrics(epoch: u32) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 0.1,
        train_accuracy: 0.5,
        val_loss: Some(0.3),
        val_accuracy: Some(0.5),
        test_loss: Some(0.2),
        test_accuracy: Some(0.5),
        epoch_seconds: 1.0,
        samples_per_second: 10.0,
        firing_rates: Vec::new(),
    }
}

/// What an honest worker sends after `epochs` epochs of a job with two
/// classes and three test recordings: a confusion matrix of the six test
/// samples and the accuracy it gives.
pub fn honest_result(epochs: u32) -> JobResult {
    JobResult {
        best_epoch: 2,
        test_accuracy: 5.0 / 6.0,
        test_loss: 0.2,
        val_accuracy: Some(0.5),
        val_loss: Some(0.3),
        confusion: vec![vec![3, 0], vec![1, 2]],
        train_seconds: 3.0,
        epochs: (1..=epochs).map(metrics).collect(),
        optimistic: false,
    }
}

/// A registration of `name` on host `h` with `slots` GPU slots.
pub fn registration(name: &str, slots: usize) -> WorkerRegistration {
    WorkerRegistration {
        name: name.into(),
        host: "h".into(),
        slots: (0..slots)
            .map(|i| SlotInfo {
                device: format!("cuda:{i}"),
                device_name: "gpu".into(),
                memory_bytes: 0,
                manifest: None,
            })
            .collect(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

/// A sweep job's epoch with validation accuracy `val` and test accuracy
/// `test` (losses 1.0, a minute long).
pub fn sweep_epoch(epoch: u32, val: f64, test: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 1.0,
        train_accuracy: 0.5,
        val_loss: Some(1.0),
        val_accuracy: Some(val),
        test_loss: Some(1.0),
        test_accuracy: Some(test),
        epoch_seconds: 60.0,
        samples_per_second: 10.0,
        firing_rates: Vec::new(),
    }
}

/// A scheduler over an in-memory store with the default settings, on `clock`.
pub fn scheduler(clock: &ManualClock) -> Scheduler {
    Scheduler::with_store(
        Store::open_in_memory().unwrap(),
        SchedulerSettings::default(),
        Box::new(clock.clone()),
    )
    .unwrap()
}
