//! `coordinator data synth --kind dvs-gesture`, `data import` and `data
//! inspect` on a synthetic DVS128 Gesture download.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::path::{Path, PathBuf};

use spikecv_common::gesture::{FOLDER, TEST_LIST, TRAIN_LIST};

use cli_support::*;

fn synth(tmp: &Path) -> PathBuf {
    let dl = tmp.join("download");
    let text = ok(&[
        "data",
        "synth",
        "--kind",
        "dvs-gesture",
        "--out",
        s(&dl),
        "--seed",
        "5",
    ]);
    assert!(text.contains("wrote 12 recordings, 132 samples"), "{text}");
    dl
}

#[test]
fn synth_import_inspect_shows_11_classes_6_people_132_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth(tmp.path());
    assert!(dl.join("DvsGesture/user01_fluorescent.aedat").is_file());
    assert!(
        dl.join("DvsGesture/user01_fluorescent_labels.csv")
            .is_file()
    );
    let root = tmp.path().join("root");
    let text = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(
        text.contains("imported 12 recordings") && text.contains("27 files hard-linked"),
        "{text}"
    );
    for line in [
        "kind:        dvs-gesture",
        "recordings:  12",
        "people:      6",
        "classes:     11",
        "samples:     132",
        "hand_clapping",
        "other_gestures",
        "problems:    none",
    ] {
        assert!(text.contains(line), "{line:?} in {text}");
    }
    assert!(root.join(FOLDER).join(TRAIN_LIST).is_file());
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["data", "inspect", s(&root), "--json"])).unwrap();
    assert_eq!(json["kind"], "dvs-gesture");
    assert_eq!(json["people"], 6);
    assert_eq!(json["samples"], 132);
    assert_eq!(json["classes"].as_array().unwrap().len(), 11);
    assert_eq!(json["classes"][10]["samples"], 12);
    // The imported root and the download are the same data set.
    let fp = |p: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["data", "inspect", s(p), "--json"])).unwrap();
        v["fingerprint"].as_str().unwrap().to_owned()
    };
    assert_eq!(fp(&root), fp(&dl));
    // Importing again keeps what is there.
    let again = ok(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(again.contains("27 already there"), "{again}");
}

#[test]
fn a_missing_trial_or_one_listed_twice_fails_the_import() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth(tmp.path());
    let folder = dl.join(FOLDER);
    std::fs::remove_file(folder.join("user24_natural_labels.csv")).unwrap();
    let root = tmp.path().join("root");
    let err = fails(&["data", "import", s(&dl), "--out", s(&root)]);
    assert!(err.contains("user24_natural_labels.csv"), "{err}");
    assert!(!root.join(FOLDER).exists(), "nothing written");
    // --allow-missing leaves the trial out of the lists it writes.
    let text = ok(&[
        "data",
        "import",
        s(&dl),
        "--out",
        s(&root),
        "--allow-missing",
    ]);
    assert!(text.contains("imported 11 recordings"), "{text}");
    let test_list = std::fs::read_to_string(root.join(FOLDER).join(TEST_LIST)).unwrap();
    assert!(!test_list.contains("user24_natural"), "{test_list}");

    let list = folder.join(TEST_LIST);
    let mut text = std::fs::read_to_string(&list).unwrap();
    text.push_str("user01_lab.aedat\n");
    std::fs::write(&list, text).unwrap();
    let err = fails(&["data", "import", s(&dl), "--out", s(&tmp.path().join("r2"))]);
    assert!(
        err.contains("trials_to_test.txt, line") && err.contains("listed twice"),
        "{err}"
    );
}

#[test]
fn plan_folds_over_people_and_submission_is_refused_for_now() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth(tmp.path());
    let exp = tmp.path().join("exp.toml");
    std::fs::write(
        &exp,
        "[data]\nroot = \"download\"\nkind = \"dvs-gesture\"\n[protocol]\nfolds = 3\n",
    )
    .unwrap();
    let text = ok(&["plan", "--experiment", s(&exp), "--json"]);
    let jobs: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(jobs.len(), 3, "whole variant, one seed, three folds");
    let person = |v: &serde_json::Value| v.as_str().unwrap().split('_').next().unwrap().to_owned();
    for job in &jobs {
        let side = |k: &str| -> std::collections::BTreeSet<String> {
            job[k].as_array().unwrap().iter().map(person).collect()
        };
        assert!(side("train").is_disjoint(&side("test")), "{job}");
        assert!(side("val").is_disjoint(&side("test")), "{job}");
        assert!(side("train").is_disjoint(&side("val")), "{job}");
    }
    // Training it is not done: the coordinator refuses the experiment.
    let config = spikecv_common::config::ExperimentConfig::load(&exp).unwrap();
    let err = spikecv_coordinator::scheduler::Submission::from_config(config, String::new(), None)
        .unwrap_err();
    assert!(err.to_string().contains("not supported yet"), "{err}");
    assert!(dl.is_dir());
}
