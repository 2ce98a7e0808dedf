//! Plans of sweeps: configurations × variants × seeds × folds, the same folds
//! for every configuration, and job ids that depend on the configuration only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::plan::{plan, plan_configurations};

fn config(extra: &str) -> ExperimentConfig {
    let text = format!("[data]\nroot = \"d\"\n[protocol]\nseeds = [0, 1]\nfolds = 3\n{extra}");
    ExperimentConfig::from_toml_str(&text).unwrap()
}

fn file_list() -> Vec<String> {
    let mut v: Vec<String> = (0..6).map(|i| format!("user{i:02}_indoor")).collect();
    v.extend((25..35).map(|i| format!("user{i:02}_imse")));
    v
}

const SWEEP: &str = "[sweep]\n\"training.lr\" = [0.001, 0.0003]\n\"training.bin_mode\" = [\"OR\", \"SUM\", \"SUM_NORM\"]\n";

#[test]
fn every_configuration_gets_the_same_folds() {
    let p = plan_configurations(&config(SWEEP), &file_list(), Some("fp")).unwrap();
    assert_eq!(p.configurations.len(), 6);
    let per_config = 2 * 2 * 3;
    assert_eq!(p.jobs.len(), 6 * per_config);
    let first = &p.jobs[..per_config];
    for c in 0..6 {
        let jobs = &p.jobs[c * per_config..(c + 1) * per_config];
        assert!(jobs.iter().all(|j| j.configuration == c));
        for (a, b) in jobs.iter().zip(first) {
            assert_eq!((a.variant, a.seed, a.fold), (b.variant, b.seed, b.fold));
            assert_eq!(a.split, b.split);
        }
    }
    let mut ids: Vec<_> = p.jobs.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), p.jobs.len(), "ids differ between configurations");
}

#[test]
fn a_job_runs_its_configurations_values() {
    let p = plan_configurations(&config(SWEEP), &file_list(), None).unwrap();
    let job = p.jobs.iter().find(|j| j.configuration == 5).unwrap();
    let c = p.job_config(job).unwrap();
    assert_eq!(c.training.lr, 0.0003);
    assert_eq!(p.configurations[5].label, "bin_mode=SUM_NORM lr=0.0003");
    assert!(c.sweep.is_none());
    assert_eq!(
        (c.protocol.seeds.clone(), c.protocol.variants.clone()),
        (vec![job.seed], vec![job.variant])
    );
    assert!(!c.to_toml_string().contains("sweep"));
}

#[test]
fn a_configuration_has_the_same_ids_in_any_sweep() {
    let a = plan_configurations(
        &config("[sweep]\n\"training.lr\" = [0.001, 0.0003]\n"),
        &file_list(),
        Some("fp"),
    )
    .unwrap();
    let b = plan_configurations(
        &config("[sweep]\n\"training.lr\" = [0.0003, 0.0001]\nbaseline = { \"training.lr\" = 0.0001 }\n"),
        &file_list(),
        Some("fp"),
    )
    .unwrap();
    let ids = |p: &spikecv_common::experiment::plan::Plan, c: usize| -> Vec<String> {
        p.jobs
            .iter()
            .filter(|j| j.configuration == c)
            .map(|j| j.id.to_string())
            .collect()
    };
    assert_eq!(ids(&a, 1), ids(&b, 0));
    assert_ne!(ids(&a, 0), ids(&b, 0));
    // And the same as an experiment without a sweep that sets the value.
    let single = plan(
        &config("[training]\nlr = 0.0003\n"),
        &file_list(),
        Some("fp"),
    )
    .unwrap();
    let single: Vec<String> = single.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(single, ids(&a, 1));
}

#[test]
fn the_json_form_groups_jobs_by_configuration() {
    let p = plan_configurations(&config(SWEEP), &file_list(), None).unwrap();
    let entries = p.configuration_entries();
    assert_eq!(entries.len(), 6);
    assert!(entries[0].baseline && entries.iter().skip(1).all(|e| !e.baseline));
    assert!(entries.iter().all(|e| e.jobs.len() == 12));
    let json = serde_json::to_value(&entries[1]).unwrap();
    assert_eq!(json["label"], "bin_mode=OR lr=0.0003");
    assert_eq!(json["values"]["training.lr"], 0.0003);
    assert_eq!(json["values"]["training.bin_mode"], "OR");
    assert_eq!(json["jobs"][0]["job"], p.jobs[12].id.as_str());
}
