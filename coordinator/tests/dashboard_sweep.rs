//! The dashboard of a sweep: the jobs table has a configuration column and
//! filter, and the overview's aggregate is per configuration, as the report's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_coordinator::dashboard::{self, jobs::JobsQuery, overview};
use spikecv_coordinator::report::from_store;
use spikecv_coordinator::scheduler::{ManualClock, Scheduler, SchedulerSettings, Submission};

const T0: i64 = 1_700_000_000_000;

fn query(pairs: &[(&str, &str)]) -> JobsQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    JobsQuery::from_pairs(&pairs).unwrap()
}

#[test]
fn configuration_is_a_column_a_filter_and_an_aggregate_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root).unwrap();
    let names: Vec<String> = (0..8).map(|i| format!("user{:02}_dc", 40 + i)).collect();
    std::fs::write(root.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    let text = format!(
        "name = \"dash-sweep\"\n[data]\nroot = {:?}\n[protocol]\nfolds = 2\nseeds = [0]\n\
         variants = [\"whole\"]\n[sweep]\n\"training.lr\" = [0.001, 0.0003]\n",
        root.display().to_string()
    );
    let config = ExperimentConfig::from_toml_str(&text).unwrap();
    let db = dir.path().join("state.db");
    let mut sched = Scheduler::open(
        &db,
        SchedulerSettings::default(),
        Box::new(ManualClock::new(T0)),
    )
    .unwrap();
    sched
        .submit(&Submission::from_config(config, text, None).unwrap())
        .unwrap();
    let conn = from_store::open_read_only(&db).unwrap();

    let all = dashboard::jobs_page(&conn, &query(&[])).unwrap();
    assert_eq!(all.configurations, vec!["lr=0.001", "lr=0.0003"]);
    assert_eq!(all.total, 4);
    let col = all
        .columns
        .iter()
        .position(|c| *c == "configuration")
        .unwrap();
    let labels: Vec<&str> = all.rows.iter().map(|r| r[col].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        vec!["lr=0.001", "lr=0.001", "lr=0.0003", "lr=0.0003"]
    );

    let one = dashboard::jobs_page(&conn, &query(&[("configuration", "lr=0.0003")])).unwrap();
    assert_eq!(one.matched, 2);
    assert!(one.rows.iter().all(|r| r[col] == "lr=0.0003"));
    let sorted =
        dashboard::jobs_page(&conn, &query(&[("sort", "configuration"), ("dir", "desc")])).unwrap();
    assert_eq!(sorted.rows[0][col], "lr=0.0003");

    let o = overview::overview(&conn, T0 + 1_000).unwrap();
    let groups: Vec<&str> = o.experiments[0]
        .aggregate
        .iter()
        .map(|g| g.configuration.as_str())
        .collect();
    assert_eq!(groups, vec!["lr=0.001", "lr=0.0003"]);
    // Each aggregate row names its network with its size: the reference at
    // 128 × 128 for 19 classes has 380 + 9,050 + 9,000,200 + 3,819 parameters
    // (conv1 2→20 3×3, conv2 20→50 3×3, fc1 45000→200, fc2 200→19, biases).
    for g in &o.experiments[0].aggregate {
        let n = g.network.as_ref().expect("the reference resolves");
        assert_eq!(n.name, "c20k3-p2a-c50k3-p2a-f200-f19");
        assert_eq!(n.parameters, 380 + 9_050 + 9_000_200 + 3_819);
    }
}
