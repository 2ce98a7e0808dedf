//! `coordinator plan`: the JSON shape DESIGN.md fixes, and a clear error without
//! a file list.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_coordinator::commands::plan::{PlanArgs, PlanCmdError, run};

fn setup(with_list: bool) -> (tempfile::TempDir, PlanArgs) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    if with_list {
        let names: Vec<String> = (0..5)
            .map(|i| format!("user{i:02}_indoor"))
            .chain((25..32).map(|i| format!("user{i:02}_imse")))
            .collect();
        std::fs::write(data.join("filelist.txt"), names.join("\n") + "\n").unwrap();
    }
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        "[data]\nroot = \"data\"\n[protocol]\nseeds = [0, 3]\nvariants = [\"whole\", \"reduced\"]\n",
    )
    .unwrap();
    let args = PlanArgs {
        experiment: exp,
        json: true,
        data: None,
        no_fingerprint: false,
    };
    (dir, args)
}

#[test]
fn json_has_one_object_per_job_with_its_recordings() {
    let (_dir, args) = setup(true);
    let mut out = Vec::new();
    run(&args, &mut out).unwrap();
    let jobs: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(jobs.len(), 2 * 2 * 4);
    let keys: Vec<&str> = jobs[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "fold", "job", "protocol", "seed", "test", "train", "val", "variant"
        ]
    );
    assert_eq!(jobs[0]["variant"], "whole");
    assert_eq!(jobs[0]["protocol"], "train-val-test");
    assert_eq!(
        (jobs[0]["seed"].as_u64(), jobs[0]["fold"].as_u64()),
        (Some(0), Some(0))
    );
    let last = &jobs[15];
    assert_eq!(
        (
            last["variant"].as_str(),
            last["seed"].as_u64(),
            last["fold"].as_u64()
        ),
        (Some("reduced"), Some(3), Some(3))
    );
    for job in &jobs {
        let n = ["train", "val", "test"]
            .iter()
            .map(|k| job[*k].as_array().unwrap().len())
            .sum::<usize>();
        assert_eq!(n, if job["variant"] == "whole" { 12 } else { 7 });
        assert!(!job["val"].as_array().unwrap().is_empty());
    }
    // The table form lists the same jobs.
    let mut table = Vec::new();
    run(
        &PlanArgs {
            json: false,
            ..args
        },
        &mut table,
    )
    .unwrap();
    let text = String::from_utf8(table).unwrap();
    assert!(text.contains(jobs[5]["job"].as_str().unwrap()));
    assert!(text.trim_end().ends_with("16 jobs"));
}

#[test]
fn a_root_without_a_file_list_is_a_clear_error() {
    let (_dir, args) = setup(false);
    let err = run(&args, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, PlanCmdError::Plan(_)));
    assert!(err.to_string().contains("filelist.txt"), "{err}");
}

#[test]
fn a_sweep_lists_its_configurations_and_their_jobs() {
    let (dir, args) = setup(true);
    let mut text = std::fs::read_to_string(&args.experiment).unwrap();
    text.push_str(
        "[sweep]\n\"training.lr\" = [0.001, 0.0003]\nbaseline = { \"training.lr\" = 0.0003 }\n",
    );
    std::fs::write(&args.experiment, text).unwrap();
    let mut out = Vec::new();
    run(&args, &mut out).unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let configs = plan["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 2);
    assert_eq!(configs[0]["label"], "lr=0.001");
    assert_eq!(configs[1]["values"]["training.lr"], 0.0003);
    assert_eq!(
        (
            configs[0]["baseline"].as_bool(),
            configs[1]["baseline"].as_bool()
        ),
        (Some(false), Some(true))
    );
    let a = configs[0]["jobs"].as_array().unwrap();
    let b = configs[1]["jobs"].as_array().unwrap();
    assert_eq!((a.len(), b.len()), (16, 16));
    for (x, y) in a.iter().zip(b) {
        assert_ne!(x["job"], y["job"]);
        for key in ["variant", "seed", "fold", "train", "val", "test"] {
            assert_eq!(x[key], y[key], "{key}: the same folds for both");
        }
    }
    let mut table = Vec::new();
    run(
        &PlanArgs {
            json: false,
            ..args
        },
        &mut table,
    )
    .unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("configuration lr=0.0003 (baseline)"),
        "{table}"
    );
    assert!(table.trim_end().ends_with("32 jobs in 2 configurations"));
    drop(dir);
}

#[test]
fn a_bad_sweep_key_is_named() {
    let (_dir, args) = setup(true);
    let mut text = std::fs::read_to_string(&args.experiment).unwrap();
    text.push_str("[sweep]\n\"training.lr\" = [0.001, 0]\n");
    std::fs::write(&args.experiment, text).unwrap();
    let err = run(&args, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, PlanCmdError::Config(_)));
    assert!(err.to_string().contains("sweep.training.lr"), "{err}");
}
