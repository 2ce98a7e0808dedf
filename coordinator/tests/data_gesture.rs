//! `coordinator data synth --kind dvs-gesture`, `data import`, `data
//! inspect`, `data slice` and `data frames` on a synthetic DVS128 Gesture
//! download.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use spikecv_common::dataset::Dataset;
use spikecv_common::dataset::dvs_gesture::{FOLDER, TEST_LIST, TRAIN_LIST};
use spikecv_common::events::frames::BinMode;
use spikecv_common::events::frames::{Crop, FrameSpec, bin};
use spikecv_common::events::npy;

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
fn plan_folds_over_people_and_submission_counts_the_label_rows() {
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
    // Submitted: the data set's class names, and each test recording's label
    // rows counted (what a result's confusion matrix must add up to).
    let config = spikecv_common::experiment::config::ExperimentConfig::load(&exp).unwrap();
    let sub = spikecv_coordinator::scheduler::Submission::from_config(config, String::new(), None)
        .unwrap();
    assert_eq!(
        sub.class_names,
        spikecv_common::dataset::dvs_gesture::CLASS_NAMES.map(String::from)
    );
    let counts = sub.sample_counts.unwrap();
    assert_eq!(counts.len(), 12, "every recording is tested in some fold");
    assert!(counts.values().all(|&n| n == 11), "{counts:?}");
    assert!(dl.is_dir());
}

/// A 3-recording synthetic download whose first recording's label rows are
/// reversed (row 0 is class 10) and whose second lost its last row: 32 samples.
fn synth_reordered(tmp: &Path) -> PathBuf {
    let dl = tmp.join("download");
    ok(&[
        "data",
        "synth",
        "--kind",
        "dvs-gesture",
        "--out",
        s(&dl),
        "--recordings",
        "3",
        "--seed",
        "9",
    ]);
    let folder = dl.join(FOLDER);
    let edit = |rec: &str, f: &dyn Fn(&mut Vec<&str>)| {
        let path = folder.join(format!("{rec}_labels.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        let header = lines.remove(0);
        f(&mut lines);
        lines.insert(0, header);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    };
    edit("user01_fluorescent", &|rows| rows.reverse());
    edit("user01_lab", &|rows| {
        rows.pop();
    });
    dl
}

fn frames_config(tmp: &Path) -> PathBuf {
    let config = tmp.join("exp.toml");
    std::fs::write(
        &config,
        "[data]\nroot = \"download\"\nkind = \"dvs-gesture\"\n[simulation]\nsteps = 6\n\
         dt_ms = 20\n[training]\nbin_mode = \"SUM\"\n",
    )
    .unwrap();
    config
}

/// `samples.csv` as (sample, recording, row, class, class name) rows.
fn samples_csv(path: &Path) -> Vec<(String, String, usize, usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("sample,recording,row,class,class_name,start_us,end_us")
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 7, "{l}");
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].to_owned(),
            )
        })
        .collect()
}

#[test]
fn slice_writes_one_sample_per_label_row_with_its_class() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth_reordered(tmp.path());
    let ds = Dataset::open(&dl).unwrap();
    let out = tmp.path().join("cut");
    let text = ok(&["data", "slice", "--data", s(&dl), "--out", s(&out)]);
    assert!(text.contains("wrote 32 samples"), "{text}");
    assert!(text.contains("samples.csv"), "{text}");
    let names: BTreeSet<String> = std::fs::read_dir(out.join("sliced"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 32);
    assert!(names.contains("user01_fluorescent_10.npy"));
    assert!(names.contains("user01_lab_09.npy"));
    assert!(!names.contains("user01_lab_10.npy"));
    let rows = samples_csv(&out.join("samples.csv"));
    assert_eq!(rows.len(), 32);
    for (name, rec, row, class, class_name) in &rows {
        assert_eq!(*name, format!("{rec}_{row:02}"));
        assert!(names.contains(&format!("{name}.npy")), "{name}");
        assert_eq!(*class, ds.sample_classes(rec).unwrap()[*row], "{name}");
        assert_eq!(*class_name, ds.class_names()[*class], "{name}");
        let sliced = npy::read_events(&out.join("sliced").join(format!("{name}.npy"))).unwrap();
        assert_eq!(sliced, ds.sample_events(rec, *row).unwrap(), "{name}");
    }
    // Row 0 of the reversed recording is its last gesture.
    assert_eq!(
        rows[0],
        (
            "user01_fluorescent_00".to_owned(),
            "user01_fluorescent".to_owned(),
            0,
            10,
            "other_gestures".to_owned()
        )
    );
    assert!(!out.join("filelist.txt").exists());
}

#[test]
fn frames_bins_label_rows_and_names_their_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth_reordered(tmp.path());
    let ds = Dataset::open(&dl).unwrap();
    let config = frames_config(tmp.path());
    let spec = FrameSpec::dvs128(20, 6, BinMode::Sum);

    // The whole root: one file per label row, and samples.csv.
    let all = tmp.path().join("all");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&dl),
        "--config",
        s(&config),
        "--out",
        s(&all),
        "--threads",
        "2",
    ]);
    assert!(text.contains("wrote 32 samples"), "{text}");
    assert!(text.contains("samples.csv"), "{text}");
    assert_eq!(std::fs::read_dir(&all).unwrap().count(), 33);
    let rows = samples_csv(&all.join("samples.csv"));
    assert_eq!(rows.len(), 32);
    for (name, rec, row, class, class_name) in &rows {
        let (shape, values) = npy::read_f32(&all.join(format!("{name}.npy"))).unwrap();
        assert_eq!(shape, vec![2, 128, 128, 6]);
        let events = ds.sample_events(rec, *row).unwrap();
        assert_eq!(values, bin(&events, &spec, Crop::First), "{name}");
        assert_eq!(*class_name, ds.class_names()[*class]);
    }

    // A list into a folder: samples.csv lists them in the order asked.
    let some = tmp.path().join("some");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&dl),
        "--config",
        s(&config),
        "--sample",
        "user01_lab_03,user01_fluorescent_00",
        "--sample",
        "user01_lab_03",
        "--start",
        "1",
        "--out",
        s(&some),
    ]);
    assert!(text.contains("wrote 2 samples"), "{text}");
    let rows = samples_csv(&some.join("samples.csv"));
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(names, ["user01_lab_03", "user01_fluorescent_00"]);
    assert_eq!(rows[1].3, 10);
    let events = ds.sample_events("user01_fluorescent", 0).unwrap();
    let (_, values) = npy::read_f32(&some.join("user01_fluorescent_00.npy")).unwrap();
    assert_eq!(values, bin(&events, &spec, Crop::Start(1)));

    // One sample to a file: the summary names its row and class.
    let one = tmp.path().join("one.npy");
    let text = ok(&[
        "data",
        "frames",
        "--data",
        s(&dl),
        "--config",
        s(&config),
        "--sample",
        "user01_fluorescent_01",
        "--out",
        s(&one),
    ]);
    assert!(
        text.contains(
            "user01_fluorescent_01: label row 1 of user01_fluorescent, class 9 (air_guitar)"
        ),
        "{text}"
    );
    let events = ds.sample_events("user01_fluorescent", 1).unwrap();
    assert_eq!(
        npy::read_f32(&one).unwrap().1,
        bin(&events, &spec, Crop::First)
    );
}

#[test]
fn frames_names_a_missing_row_or_recording_and_where() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = synth_reordered(tmp.path());
    let config = frames_config(tmp.path());
    let frames = |sample: &str| {
        fails(&[
            "data",
            "frames",
            "--data",
            s(&dl),
            "--config",
            s(&config),
            "--sample",
            sample,
            "--out",
            s(&tmp.path().join("bad")),
        ])
    };
    let err = frames("user01_lab_10");
    assert!(
        err.contains("user01_lab_labels.csv")
            && err.contains("10 label rows")
            && err.contains("no row 10"),
        "{err}"
    );
    let err = frames("user99_lab_00");
    assert!(
        err.contains("\"user99_lab\"") && err.contains("trials_to_train.txt"),
        "{err}"
    );
    let err = frames("user01_lab");
    assert!(
        err.contains("bad sample name") && err.contains("label"),
        "{err}"
    );
    assert!(!tmp.path().join("bad").exists(), "nothing written");

    // More rows than two-digit names can number: slice and frames say which file.
    let labels = dl.join(FOLDER).join("user02_fluorescent_led_labels.csv");
    let mut text = String::from("class,startTime_usec,endTime_usec\n");
    for i in 0..101 {
        text.push_str(&format!("{},{},{}\n", i % 11 + 1, 1000 * i, 1000 * i + 500));
    }
    std::fs::write(&labels, text).unwrap();
    let err = frames("user02_fluorescent_led_00");
    assert!(
        err.contains("user02_fluorescent_led_labels.csv") && err.contains("101 label rows"),
        "{err}"
    );
    let err = fails(&[
        "data",
        "slice",
        "--data",
        s(&dl),
        "--out",
        s(&tmp.path().join("cut")),
    ]);
    assert!(
        err.contains("user02_fluorescent_led_labels.csv") && err.contains("00..99"),
        "{err}"
    );
    assert!(!tmp.path().join("cut").exists(), "nothing written");
}

#[test]
fn render_draws_a_label_row_and_names_a_missing_one() {
    let tmp = tempfile::tempdir().unwrap();
    // user01_lab's rows are reversed: row 00 is class 10 and its last row is 09.
    let dl = synth_reordered(tmp.path());
    let render = |sample: &str, png: &Path| {
        vec![
            "data".to_owned(),
            "render".to_owned(),
            "--data".to_owned(),
            s(&dl).to_owned(),
            "--sample".to_owned(),
            sample.to_owned(),
            "--out".to_owned(),
            s(png).to_owned(),
        ]
    };
    let png = tmp.path().join("row.png");
    let args = render("user01_lab_09", &png);
    let text = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(text.contains("wrote user01_lab_09"), "{text}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // Row 10 is past this recording's end, though an SL-Animals class 10 exists.
    let missing = tmp.path().join("missing.png");
    let args = render("user01_lab_10", &missing);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("user01_lab_labels.csv") && err.contains("no row 10"),
        "{err}"
    );
    assert!(!missing.exists());
}
