//! DVS128 Gesture end to end (issue 25) with real processes on real sockets:
//! a synthetic download made by `coordinator data synth --kind dvs-gesture`
//! is imported, inspected (11 classes, 6 people, 132 samples), planned two
//! ways (3 folds over people; the official split, one job per seed), both
//! experiments submitted to `coordinator serve` and trained by two CPU
//! workers, and reported with 11 × 11 confusion matrices whose rows count
//! each class as the test recordings' labels files do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod join_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use join_support::sweep::{ended, report_of};
use join_support::*;
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);

fn coordinator(args: &[&str]) -> Output {
    let out = Command::new(coordinator_bin()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "coordinator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A DVS128 Gesture experiment on `root`: 32 × 32 input, [`TINY_RUN`].
fn write_experiment(path: &Path, root: &Path, name: &str, protocol: &str) {
    let text = format!(
        r#"name = "{name}"
[data]
root = {:?}
kind = "dvs-gesture"
downscale = 4
[protocol]
{protocol}
{TINY_RUN}"#,
        root.display().to_string()
    );
    std::fs::write(path, text).unwrap();
}

/// Each class's samples over `recordings`, from their labels files.
fn class_counts(root: &Path, recordings: &[String]) -> Vec<u64> {
    let mut counts = vec![0u64; 11];
    for r in recordings {
        let text = std::fs::read_to_string(root.join("DvsGesture").join(format!("{r}_labels.csv")))
            .unwrap();
        for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
            let class: usize = line.split(',').next().unwrap().trim().parse().unwrap();
            counts[class - 1] += 1;
        }
    }
    counts
}

fn person(recording: &str) -> &str {
    recording.split('_').next().unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synthetic_gesture_download_is_imported_planned_trained_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (download, root) = (tmp.path().join("download"), tmp.path().join("root"));
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // Made, imported, inspected.
    coordinator(&[
        "data",
        "synth",
        "--kind",
        "dvs-gesture",
        "--out",
        &s(&download),
    ]);
    coordinator(&["data", "import", &s(&download), "--out", &s(&root)]);
    let inspect = json_of(&coordinator(&["data", "inspect", &s(&root), "--json"]));
    assert_eq!(inspect["kind"], "dvs-gesture", "{inspect}");
    assert_eq!(inspect["classes"].as_array().unwrap().len(), 11);
    assert_eq!(inspect["people"], 6);
    assert_eq!(inspect["samples"], 132);

    // Planned: folds over people, and the official split.
    let kfold = tmp.path().join("kfold.toml");
    write_experiment(
        &kfold,
        &root,
        "gesture-kfold",
        "kind = \"train-test\"\nfolds = 3\nseeds = [0]",
    );
    let official = tmp.path().join("official.toml");
    write_experiment(
        &official,
        &root,
        "gesture-official",
        "kind = \"official\"\nseeds = [0, 1]",
    );
    let plan = json_of(&coordinator(&[
        "plan",
        "--experiment",
        &s(&kfold),
        "--json",
    ]));
    let jobs = plan.as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    let mut tested = BTreeSet::new();
    for j in jobs {
        let (train, test) = (strings(&j["train"]), strings(&j["test"]));
        let train_people: BTreeSet<&str> = train.iter().map(|r| person(r)).collect();
        let test_people: BTreeSet<&str> = test.iter().map(|r| person(r)).collect();
        assert!(train_people.is_disjoint(&test_people), "{j}");
        assert_eq!(test_people.len(), 2, "6 people in 3 folds: {j}");
        assert_eq!(train.len() + test.len(), 12);
        tested.extend(test);
    }
    assert_eq!(tested.len(), 12, "every recording tested once");
    let plan = json_of(&coordinator(&[
        "plan",
        "--experiment",
        &s(&official),
        "--json",
    ]));
    let jobs = plan.as_array().unwrap();
    assert_eq!(jobs.len(), 2, "one job per seed");
    for j in jobs {
        assert_eq!(
            (&j["protocol"], &j["fold"]),
            (&Value::from("official"), &Value::from(0))
        );
        let people = |set: &str| -> BTreeSet<String> {
            strings(&j[set])
                .iter()
                .map(|r| person(r).to_owned())
                .collect()
        };
        assert_eq!(
            people("train"),
            ["user01", "user02", "user03", "user04"]
                .map(String::from)
                .into()
        );
        assert_eq!(
            people("test"),
            ["user24", "user25"].map(String::from).into()
        );
        assert!(strings(&j["val"]).is_empty());
    }

    // Served, submitted, trained by two workers.
    coordinator_bin();
    let (port, metrics) = (free_port(), free_port());
    let state = tmp.path().join("state.db");
    let log = tmp.path().join("c.log");
    let _c = start_server(port, &state, metrics, &log);
    let url = format!("http://127.0.0.1:{port}");
    let mut ids = Vec::new();
    for e in [&kfold, &official] {
        let start = Instant::now();
        let out = loop {
            let out = Command::new(coordinator_bin())
                .args(["submit", "--coordinator", &url, "--experiment", &s(e)])
                .output()
                .unwrap();
            if out.status.success() || start.elapsed() > Duration::from_secs(30) {
                break out;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = text
            .strip_prefix("experiment ")
            .unwrap()
            .split(':')
            .next()
            .unwrap();
        ids.push(id.to_owned());
    }
    let works = [tmp.path().join("w0"), tmp.path().join("w1")];
    let mut workers = [
        start_worker(port, &root, &works[0], "w0"),
        start_worker(port, &root, &works[1], "w1"),
    ];
    for w in &mut workers {
        assert!(w.wait_for(LIMIT).success(), "{} exits 0", w.name);
    }
    let counts = wait_counts(port, Duration::from_secs(10), ended(5)).await;
    assert_eq!(counts.get("succeeded").copied(), Some(5), "{counts:?}");

    // Reported with 11-class confusion matrices that count the labels.
    for (id, jobs, seeds) in [(&ids[0], 3, 1), (&ids[1], 2, 2)] {
        let json: Value = serde_json::from_str(&report_of(&state, id, "json")).unwrap();
        assert_eq!(json["progress"]["complete"], true, "{json}");
        let names = strings(&json["experiment"]["class_names"]);
        assert_eq!(names.len(), 11);
        assert_eq!(names[0], "hand_clapping");
        assert_eq!(json["jobs"].as_array().unwrap().len(), jobs);
        let group = &json["groups"][0];
        let confusion: Vec<Vec<u64>> = serde_json::from_value(group["confusion"].clone()).unwrap();
        assert_eq!(confusion.len(), 11);
        assert!(confusion.iter().all(|row| row.len() == 11));
        // Every test recording's labels, once per seed that tested it.
        let test: Vec<String> = if seeds == 1 {
            tested.iter().cloned().collect()
        } else {
            let mut t = Vec::new();
            for _ in 0..seeds {
                t.extend(tested.iter().filter(|r| person(r) >= "user24").cloned());
            }
            t
        };
        let rows: Vec<u64> = confusion.iter().map(|r| r.iter().sum()).collect();
        assert_eq!(rows, class_counts(&root, &test), "{id}");
        let md = report_of(&state, id, "md");
        for name in &names {
            // Markdown cells escape `_`.
            let cell = name.replace('_', "\\_");
            assert!(
                md.contains(&cell),
                "class {cell} in the Markdown report:\n{md}"
            );
        }
    }
    let by_protocol: BTreeMap<String, Value> = ids
        .iter()
        .map(|id| {
            let json: Value = serde_json::from_str(&report_of(&state, id, "json")).unwrap();
            (
                json["groups"][0]["protocol"].as_str().unwrap().to_owned(),
                json,
            )
        })
        .collect();
    assert!(
        by_protocol.contains_key("official"),
        "{:?}",
        by_protocol.keys()
    );
}
