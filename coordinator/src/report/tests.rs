//! Report inputs of both data sets, and what every stage makes of them.

use spikecv_common::dataset::dvs_gesture::kind::DVS_GESTURE;
use spikecv_common::dataset::sl_animals::kind::SL_ANIMALS;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;

use super::compute::report::{Report, build_report, data_kind_of};
use super::render::json::render_json;
use super::render::markdown::render_markdown;
use super::render::plots::write_plots;
use crate::store::records::{ExperimentRecord, JobRecord};

const GESTURE_CONFIG: &str = "name = \"gesture\"\n[data]\nroot = \"d\"\nkind = \"dvs-gesture\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n";
const SL_ANIMALS_CONFIG: &str = "name = \"animals\"\n[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\nfolds = 2\nseeds = [0]\nvariants = [\"whole\"]\n";

fn experiment(config_toml: &str, class_names: &[&str]) -> ExperimentRecord {
    ExperimentRecord {
        id: "exp-1".into(),
        name: None,
        config_toml: config_toml.into(),
        config_hash: "abc".into(),
        created_unix: 1_780_000_000,
        class_names: class_names.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// Both folds succeeded, each with an `n`-class confusion matrix: 5 on
/// the diagonal, one sample of class 0 taken for the last class.
fn jobs(n: usize) -> Vec<JobRecord> {
    (0..2u32)
        .map(|fold| {
            let mut j =
                JobRecord::pending("exp-1", Variant::WHOLE, 0, fold, ProtocolKind::TrainValTest);
            j.status = JobStatus::Succeeded;
            j.test_accuracy = Some(0.8 + 0.1 * f64::from(fold));
            j.val_accuracy = Some(0.75);
            j.test_loss = Some(0.5);
            j.best_epoch = Some(3);
            let mut m = vec![vec![0u32; n]; n];
            for (i, row) in m.iter_mut().enumerate() {
                row[i] = 5;
            }
            m[0][n - 1] = 1;
            j.confusion = Some(m);
            j
        })
        .collect()
}

/// A finished DVS128 Gesture experiment (2 folds, 11-class matrices).
fn gesture_report() -> Report {
    let names = spikecv_common::dataset::dvs_gesture::CLASS_NAMES;
    build_report(
        &experiment(GESTURE_CONFIG, &names),
        &jobs(names.len()),
        1_780_000_100,
    )
}

#[test]
fn a_gesture_report_has_the_gesture_table_and_eleven_classes() {
    let r = gesture_report();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.experiment.data_kind, DVS_GESTURE);
    assert!(r.published == DVS_GESTURE.published(), "{:?}", r.published);
    assert_eq!(r.experiment.class_names.len(), 11);
    let confusion = r.groups[0].confusion.as_ref().unwrap();
    assert_eq!(confusion.len(), 11);
    assert!(confusion.iter().all(|row| row.len() == 11));
    assert_eq!(confusion[0][0], 10);
    assert_eq!(confusion[0][10], 2);
    assert_eq!(r.groups[0].confusion_jobs, 2);
    // The network's last layer has one unit per gesture class.
    let network = r.configurations[0].network.as_ref().unwrap();
    assert!(network.name.ends_with("-f11"), "{}", network.name);
}

#[test]
fn without_stored_class_names_the_network_follows_the_data_set() {
    let r = build_report(&experiment(GESTURE_CONFIG, &[]), &jobs(11), 1_780_000_100);
    let network = r.configurations[0].network.as_ref().unwrap();
    assert!(network.name.ends_with("-f11"), "{}", network.name);
    // The matrices' own size is summed when the store has no names.
    assert_eq!(r.groups[0].confusion.as_ref().unwrap().len(), 11);
    let r = build_report(
        &experiment(SL_ANIMALS_CONFIG, &[]),
        &jobs(19),
        1_780_000_100,
    );
    let network = r.configurations[0].network.as_ref().unwrap();
    assert!(network.name.ends_with("-f19"), "{}", network.name);
}

#[test]
fn gesture_markdown_names_the_data_set_its_classes_and_its_figures() {
    let md = render_markdown(&gesture_report(), &[]);
    assert!(
        md.contains("\n## Compared with published figures on DVS128 Gesture\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "- Data set: DVS128 Gesture, 11 classes: hand\\_clapping, right\\_hand\\_wave,"
        ),
        "{md}"
    );
    assert!(md.contains("right\\_arm\\_counter\\_clockwise"), "{md}");
    assert!(md.contains("other\\_gestures\n"), "{md}");
    assert!(md.contains(
        "| method | official split (users 1-23 train, 24-29 test) | k-fold over people | classes | protocol |"
    ));
    assert!(
        md.contains(
            "| SLAYER (Shrestha \\& Orchard, NeurIPS 2018) | 93.64 % ± 0.49 | not given | 11 |"
        ),
        "{md}"
    );
    assert!(md.contains("| 95.54 % ± 0.16 | not given | 11 |"), "{md}");
    assert!(md.contains("whether it selects on the test set is not stated"));
    // This run's k-fold figure is not put in the official split's column.
    assert!(
        md.contains("| this run, train-val-test | not run | 85.00 % ± 5.00 (2 of 2 jobs) | 11 | train-val-test, ± population std"),
        "{md}"
    );
    // Nothing of SL-Animals-DVS' table.
    for absent in [
        "reduced (no S3)",
        "Vasudevan",
        "4-fold over recordings",
        "## Compared with published figures\n",
    ] {
        assert!(!md.contains(absent), "{absent:?} in {md}");
    }
}

#[test]
fn an_official_split_run_stands_in_the_published_figures_column() {
    let config = GESTURE_CONFIG
        .replace("train-val-test", "official")
        .replace("seeds = [0]", "seeds = [0, 1]");
    let names = spikecv_common::dataset::dvs_gesture::CLASS_NAMES;
    let jobs: Vec<JobRecord> = (0..2u64)
        .map(|seed| {
            let mut j =
                JobRecord::pending("exp-1", Variant::WHOLE, seed, 0, ProtocolKind::Official);
            j.status = JobStatus::Succeeded;
            j.test_accuracy = Some(0.9 + 0.02 * seed as f64);
            j.test_loss = Some(0.3);
            j
        })
        .collect();
    let r = build_report(&experiment(&config, &names), &jobs, 1_780_000_100);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].protocol, ProtocolKind::Official);
    assert!(!r.groups[0].optimistic);
    assert!(r.groups[0].val_accuracy.is_none());
    let md = render_markdown(&r, &[]);
    assert!(
        md.contains("| this run, official | 91.00 % ± 1.00 (2 of 2 jobs) | not run | 11 | official, ± population std over (seed, fold) jobs |"),
        "{md}"
    );
}

#[test]
fn gesture_json_has_the_gesture_rows_and_eleven_classes() {
    let j: serde_json::Value =
        serde_json::from_str(&render_json(&gesture_report()).unwrap()).unwrap();
    assert_eq!(j["experiment"]["data_kind"], "dvs-gesture");
    let names = j["experiment"]["class_names"].as_array().unwrap();
    assert_eq!(names.len(), 11);
    assert_eq!(names[10], "other_gestures");
    let confusion = j["groups"][0]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 11);
    assert!(
        confusion
            .iter()
            .all(|row| row.as_array().unwrap().len() == 11)
    );
    let published = j["published"].as_array().unwrap();
    assert_eq!(published.len(), 3);
    for row in published {
        assert!(
            row.get("whole").is_none() && row.get("reduced").is_none(),
            "{row}"
        );
        assert!(row["official_split"]["mean_percent"].is_f64(), "{row}");
    }
    assert_eq!(published[1]["official_split"]["mean_percent"], 93.64);
    assert_eq!(published[1]["official_split"]["std_percent"], 0.49);
    assert_eq!(published[2]["official_split"]["mean_percent"], 95.54);
    assert_eq!(published[2]["classes"], 11);
}

#[test]
fn an_sl_animals_report_keeps_its_table_and_layout() {
    let names = spikecv_common::dataset::sl_animals::CLASS_NAMES;
    let r = build_report(
        &experiment(SL_ANIMALS_CONFIG, &names),
        &jobs(19),
        1_780_000_100,
    );
    assert_eq!(r.experiment.data_kind, SL_ANIMALS);
    assert_eq!(r.published, SL_ANIMALS.published());
    let md = render_markdown(&r, &[]);
    assert!(md.contains("\n## Compared with published figures\n\nTest accuracy, mean ± population std. Published figures are 4-fold over recordings, ± std over folds.\n"));
    assert!(md.contains("| method | whole set | reduced (no S3) | protocol |"));
    assert!(
        !md.contains("- Data set:") && !md.contains("DVS128"),
        "{md}"
    );
    let j: serde_json::Value = serde_json::from_str(&render_json(&r).unwrap()).unwrap();
    assert!(j["experiment"].get("data_kind").is_none());
    assert_eq!(j["published"][0]["whole"]["mean_percent"], 56.2);
    assert_eq!(j["groups"][0]["confusion"].as_array().unwrap().len(), 19);
}

#[test]
fn the_data_set_is_read_from_the_stored_toml_alone() {
    assert_eq!(data_kind_of(SL_ANIMALS_CONFIG), Ok(SL_ANIMALS));
    assert_eq!(data_kind_of(GESTURE_CONFIG), Ok(DVS_GESTURE));
    // A config this build does not accept in full still names its data set.
    let unknown_protocol = GESTURE_CONFIG.replace("train-val-test", "some-future-kind");
    assert_eq!(data_kind_of(&unknown_protocol), Ok(DVS_GESTURE));
    assert_eq!(data_kind_of("not = [toml"), Ok(SL_ANIMALS));
    assert!(data_kind_of("[data]\nkind = \"mnist\"\n").is_err());
    assert!(data_kind_of("[data]\nkind = 3\n").is_err());
    // An unknown data set is said, and the default's table shown.
    let r = build_report(
        &experiment("[data]\nroot = \"d\"\nkind = \"mnist\"\n", &[]),
        &[],
        1_780_000_100,
    );
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("data set is not known")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.published, SL_ANIMALS.published());
}

#[test]
fn a_gesture_confusion_matrix_is_labelled_with_the_gesture_names() {
    let report = gesture_report();
    let dir = tempfile::tempdir().unwrap();
    write_plots(&report, dir.path()).unwrap();
    let svg =
        std::fs::read_to_string(dir.path().join("confusion-whole-train-val-test.svg")).unwrap();
    let texts: Vec<&str> = svg
        .split("<text")
        .skip(1)
        .filter_map(|t| Some(t[t.find('>')? + 1..t.find("</text>")?].trim()))
        .collect();
    for name in spikecv_common::dataset::dvs_gesture::CLASS_NAMES {
        // Once beside the rows (true class), once below the columns.
        assert_eq!(texts.iter().filter(|t| **t == name).count(), 2, "{name}");
    }
    assert!(!texts.contains(&"class 0"));
    if let Ok(keep) = std::env::var("SPIKECV_KEEP_PLOTS") {
        for f in [
            "confusion-whole-train-val-test.png",
            "confusion-whole-train-val-test.svg",
        ] {
            std::fs::copy(dir.path().join(f), std::path::Path::new(&keep).join(f)).unwrap();
        }
    }
}

/// The Markdown table of the first group's confusion matrix: its header line
/// and its body rows.
fn confusion_table(md: &str) -> (String, Vec<String>) {
    let start = md
        .find("\n## Confusion matrices\n")
        .unwrap_or_else(|| panic!("no confusion section:\n{md}"));
    let mut lines = md[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| true \\\\ predicted |"));
    let header = lines.next().unwrap().to_owned();
    let body = lines
        .skip(1)
        .take_while(|l| l.starts_with("| **"))
        .map(str::to_owned)
        .collect();
    (header, body)
}

#[test]
fn the_markdown_shows_the_summed_confusion_matrix_for_both_data_sets() {
    // DVS128 Gesture: 11 classes, names with underscores escaped.
    let md = render_markdown(&gesture_report(), &[]);
    assert!(
        md.contains("### whole, train-val-test: summed over 2 job(s)"),
        "{md}"
    );
    let (header, body) = confusion_table(&md);
    assert!(
        header.contains("| hand\\_clapping | right\\_hand\\_wave |"),
        "{header}"
    );
    assert!(header.ends_with("| other\\_gestures |"), "{header}");
    assert_eq!(body.len(), 11);
    // Row 0: 5 + 5 on the diagonal, 1 + 1 taken for the last class.
    assert_eq!(
        body[0],
        "| **hand\\_clapping** | 10 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 2 |"
    );
    assert!(body[10].starts_with("| **other\\_gestures** |") && body[10].ends_with("| 10 |"));

    // SL-Animals-DVS: 19 classes.
    let names = spikecv_common::dataset::sl_animals::CLASS_NAMES;
    let r = build_report(
        &experiment(SL_ANIMALS_CONFIG, &names),
        &jobs(19),
        1_780_000_100,
    );
    let (header, body) = confusion_table(&render_markdown(&r, &[]));
    assert!(
        header.starts_with("| true \\\\ predicted | cat | dog | camel |"),
        "{header}"
    );
    assert_eq!(header.matches(" | ").count(), 19);
    assert_eq!(body.len(), 19);
    assert!(body[0].starts_with("| **cat** | 10 | 0 |") && body[0].ends_with("| 2 |"));

    // Without stored names: the matrix's own indices.
    let r = build_report(
        &experiment(SL_ANIMALS_CONFIG, &[]),
        &jobs(19),
        1_780_000_100,
    );
    let (header, _) = confusion_table(&render_markdown(&r, &[]));
    assert!(header.contains("| class 0 | class 1 |") && header.ends_with("| class 18 |"));
    // No job with a matrix: no section.
    let r = build_report(&experiment(SL_ANIMALS_CONFIG, &names), &[], 1_780_000_100);
    assert!(!render_markdown(&r, &[]).contains("Confusion matrices"));
}

/// The methods paragraph of a report: (Markdown, JSON's `methods`).
fn methods_of(r: &Report) -> (String, String) {
    let md = render_markdown(r, &[]);
    let json: serde_json::Value = serde_json::from_str(&render_json(r).unwrap()).unwrap();
    let start = md.find("\n## Methods\n\n").unwrap() + "\n## Methods\n\n".len();
    let end = md[start..].find("\n## ").map_or(md.len(), |e| start + e);
    (
        md[start..end].trim().to_owned(),
        json["methods"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn the_methods_paragraph_states_how_the_figures_were_made() {
    // Two folds over people (DVS128 Gesture), seed 0, test accuracies 0.8 and
    // 0.9: mean 85.00 %, sample standard deviation 7.07 pp (|0.9 - 0.8| / √2).
    let (md, json) = methods_of(&gesture_report());
    assert_eq!(md, json, "Markdown and JSON carry the same text");
    for want in [
        "DVS128 Gesture (11 classes), variant whole (every recording)",
        "2-fold cross-validation over people (all recordings of a person in the same fold)",
        "KFold(n_splits=2, shuffle=True, random_state=seed)",
        "15 % of the training people were held out for validation",
        "the lowest validation loss",
        "with seed 0;",
        "whole set, train-val-test: 85.00 ± 7.07 % (n = 2 of 2)",
        "Of 2 planned jobs, 2 succeeded and 0 failed.",
    ] {
        assert!(md.contains(want), "methods lack {want:?}:\n{md}");
    }
    assert!(!md.contains("optimistic"), "{md}");
    assert!(!md.contains("Holm"), "no sweep, no tests: {md}");
}

#[test]
fn sl_animals_folds_are_over_recordings_in_the_methods() {
    let r = build_report(
        &experiment(SL_ANIMALS_CONFIG, &[]),
        &jobs(19),
        1_780_000_100,
    );
    let (md, _) = methods_of(&r);
    assert!(md.contains("SL-Animals-DVS (19 classes)"), "{md}");
    assert!(
        md.contains("2-fold cross-validation over recordings:"),
        "{md}"
    );
    assert!(!md.contains("people"), "{md}");
}

#[test]
fn a_configuration_that_does_not_parse_has_no_methods_but_says_why() {
    let r = build_report(&experiment("[protocol]\nkind = 3\n", &[]), &jobs(19), 0);
    let (md, _) = methods_of(&r);
    assert!(
        md.starts_with("No methods text: the stored configuration does not parse"),
        "{md}"
    );
}
