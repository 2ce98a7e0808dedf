//! The size limits of an experiment: configurations of a sweep and jobs in
//! all, refused before anything is expanded, with the sizes issue 23 needs
//! (1,000 configurations, 100,000 jobs) still accepted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::error::{ConfigError, bounds};

fn values(n: usize, scale: f64) -> String {
    let list: Vec<String> = (1..=n).map(|i| format!("{:e}", i as f64 * scale)).collect();
    format!("[{}]", list.join(", "))
}

fn experiment(protocol: &str, sweep: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(&format!(
        "[data]\nroot = \"d\"\n[protocol]\n{protocol}\n[sweep]\n{sweep}\n"
    ))
}

#[test]
fn a_thousand_configurations_and_a_hundred_thousand_jobs_are_accepted() {
    let seeds: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    let protocol = format!(
        "folds = 10\nseeds = [{}]\nvariants = [\"whole\"]",
        seeds.join(", ")
    );
    let sweep = format!("\"training.lr\" = {}", values(1000, 1e-6));
    let config = experiment(&protocol, &sweep).unwrap();
    let n = spikecv_common::experiment::configurations::configurations(&config)
        .unwrap()
        .len();
    assert_eq!(n * 10 * 10, 100_000);
}

#[test]
fn a_grid_past_the_limit_is_refused_at_once_naming_its_size() {
    // 4 keys x 1000 values: 10^12 configurations, refused without expanding.
    let sweep = [
        ("training.lr", 1e-6),
        ("training.momentum", 1e-4),
        ("simulation.vth", 1e-3),
        ("simulation.tau", 1e-3),
    ]
    .map(|(k, s)| format!("\"{k}\" = {}", values(1000, s)))
    .join("\n");
    let t0 = Instant::now();
    let err = experiment("folds = 2\nseeds = [0]", &sweep).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    match &err {
        ConfigError::TooLarge {
            what, count, limit, ..
        } => {
            assert_eq!((*what, *count), ("configurations", 1_000_000_000_000));
            assert_eq!(*limit, bounds::CONFIGURATIONS as u64);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("the limit is 10000"), "{err}");
    // One list longer than the limit is refused before its values are checked.
    let long = format!(
        "\"training.lr\" = {}",
        values(bounds::CONFIGURATIONS + 1, 1e-9)
    );
    let err = experiment("folds = 2\nseeds = [0]", &long).unwrap_err();
    assert!(
        matches!(&err, ConfigError::TooLarge { key, .. } if key == "sweep.training.lr"),
        "{err}"
    );
}

#[test]
fn jobs_past_the_limit_are_refused_naming_the_product() {
    let seeds: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let protocol = format!(
        "folds = 10\nseeds = [{}]\nvariants = [\"whole\", \"reduced\"]",
        seeds.join(", ")
    );
    // 1000 configurations x 100 seeds x 2 variants x 10 folds = 2,000,000.
    let sweep = format!("\"training.lr\" = {}", values(1000, 1e-6));
    let err = experiment(&protocol, &sweep).unwrap_err();
    match &err {
        ConfigError::TooLarge { count, limit, .. } => {
            assert_eq!((*count, *limit), (2_000_000, bounds::JOBS));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("jobs"), "{err}");
}
