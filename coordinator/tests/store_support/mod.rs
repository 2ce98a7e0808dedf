//! Shared helpers of the tests that fill a state database with the
//! scheduler: the eight recordings of the small experiments and a worker
//! with two GPUs.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_coordinator::ids::WorkerId;
use spikecv_coordinator::scheduler::{
    Assignment, Scheduler, SlotInfo, Submission, WorkerRegistration,
};

/// Eight SL-Animals-DVS recordings (two of each lighting): a 2-fold plan.
pub const FILES: [&str; 8] = [
    "user00_indoor",
    "user01_indoor",
    "user18_sunlight",
    "user19_sunlight",
    "user25_imse",
    "user26_imse",
    "user35_dc",
    "user36_dc",
];

/// [`FILES`] as owned strings.
pub fn files() -> Vec<String> {
    FILES.map(str::to_owned).to_vec()
}

/// The submission of the experiment `config_toml` over [`FILES`], its data
/// set's classes called `class_names`.
pub fn submission(config_toml: &str, class_names: Vec<String>) -> Submission {
    let config = ExperimentConfig::from_toml_str(config_toml).unwrap();
    let plan =
        spikecv_common::experiment::plan::plan_configurations(&config, &files(), None).unwrap();
    Submission {
        config,
        config_toml: config_toml.to_owned(),
        jobs: plan.jobs,
        configurations: plan.configurations,
        data_fingerprint: None,
        class_names,
        sample_counts: None,
    }
}

/// A worker `name` on `host` with two H200 slots, `cuda:0` and `cuda:1`.
pub fn two_gpu_worker(name: &str, host: &str) -> WorkerRegistration {
    WorkerRegistration {
        name: name.into(),
        host: host.into(),
        slots: ["cuda:0", "cuda:1"]
            .iter()
            .map(|d| SlotInfo {
                device: d.to_string(),
                device_name: "H200".into(),
                memory_bytes: 1 << 30,
                manifest: None,
            })
            .collect(),
        data_fingerprint: String::new(),
        trainers: Vec::new(),
    }
}

/// Registers [`two_gpu_worker`] `name` on `host` with `sched` and leases a
/// job on each of its slots (the test's experiment has two to give): the
/// worker and its two assignments.
pub fn two_gpus_leased(
    sched: &mut Scheduler,
    name: &str,
    host: &str,
) -> (WorkerId, Vec<Assignment>) {
    let worker = sched.register_worker(&two_gpu_worker(name, host)).unwrap();
    let leased = sched
        .lease(&worker, &["cuda:0".into(), "cuda:1".into()])
        .unwrap()
        .assignments;
    assert_eq!(leased.len(), 2);
    (worker, leased)
}
