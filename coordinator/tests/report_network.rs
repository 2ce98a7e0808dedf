//! The report names each configuration's network compactly and gives its
//! parameter count and FLOPs per sample (issue 24, item 4): in the JSON, the
//! Markdown header and sweep ranking, and the CSV, each figure checked
//! against one counted by hand here from the layer shapes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{
    ExperimentRecord, JobRecord, build_report, render_csv, render_json, render_markdown,
};

const CREATED: i64 = 1_780_000_000;

/// The reference SLANIMALSNet at 128 × 128 with `classes` classes, counted by
/// hand: conv1 2→20 3×3 (126 × 126 out, avg-pool to 63), conv2 20→50 3×3
/// (61 × 61, avg-pool to 30), fc1 50·30·30 = 45000 → 200, fc2 200 → classes;
/// (parameters, multiply-accumulates per time step).
fn reference_by_hand(classes: u64) -> (u64, u64) {
    let conv1 = (20 * 2 * 3 * 3 + 20, 126 * 126 * 20 * 2 * 3 * 3);
    let conv2 = (50 * 20 * 3 * 3 + 50, 61 * 61 * 50 * 20 * 3 * 3);
    let fc1 = (45_000 * 200 + 200, 45_000 * 200);
    let fc2 = (200 * classes + classes, 200 * classes);
    (
        conv1.0 + conv2.0 + fc1.0 + fc2.0,
        conv1.1 + conv2.1 + fc1.1 + fc2.1,
    )
}

/// `c8k5s2-p2m-f19` at 128 × 128: conv 2→8 5×5 stride 2 (62 × 62), max-pool
/// to 31, linear 8·31·31 = 7688 → 19; (parameters, MACs per step).
fn small_by_hand() -> (u64, u64) {
    let conv = (8 * 2 * 5 * 5 + 8, 62 * 62 * 8 * 2 * 5 * 5);
    let fc = (7688 * 19 + 19, 7688 * 19);
    (conv.0 + fc.0, conv.1 + fc.1)
}

const SMALL: &str = "[{ conv = 8, kernel = 5, stride = 2 }, { pool = \"max\", size = 2 }, \
                     { flatten = true }, { linear = 19 }]";

fn experiment(sweep: bool, class_names: Vec<String>) -> ExperimentRecord {
    let mut toml = "name = \"net\"\n[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\n\
                    folds = 2\nseeds = [0]\nvariants = [\"whole\"]\n[simulation]\nsteps = 4\n\
                    [training]\nepochs = 2\ntest_steps = 8\n"
        .to_owned();
    if sweep {
        toml.push_str(&format!(
            "[sweep]\n\"network.blocks\" = [\"reference\", {SMALL}]\n"
        ));
    }
    ExperimentRecord {
        id: "net-exp".into(),
        name: Some("net".into()),
        config_toml: toml,
        config_hash: "abc".into(),
        created_unix: CREATED,
        class_names,
    }
}

fn jobs(configurations: usize) -> Vec<JobRecord> {
    let mut out = Vec::new();
    for c in 0..configurations {
        for fold in 0..2u32 {
            let mut j = JobRecord::pending(
                "net-exp",
                Variant::WHOLE,
                0,
                fold,
                ProtocolKind::TrainValTest,
            );
            j.id = format!("job-{c}-{fold}");
            j.configuration = c;
            j.status = JobStatus::Succeeded;
            j.test_accuracy = Some(0.5 + 0.1 * c as f64 + 0.01 * f64::from(fold));
            j.val_accuracy = Some(0.4 + 0.1 * c as f64);
            j.test_loss = Some(1.0);
            j.best_epoch = Some(2);
            out.push(j);
        }
    }
    out
}

#[test]
fn a_sweep_of_two_networks_names_both_with_their_counts() {
    let report = build_report(&experiment(true, Vec::new()), &jobs(2), CREATED + 100);
    let (ref_params, ref_macs) = reference_by_hand(19);
    let (small_params, small_macs) = small_by_hand();
    assert_eq!(ref_params, 9_013_449);
    assert_eq!(small_params, 146_499);
    let c = &report.configurations;
    assert_eq!(c.len(), 2);
    let reference = c[0].network.as_ref().expect("the reference resolves");
    assert_eq!(reference.name, "c20k3-p2a-c50k3-p2a-f200-f19");
    assert!(reference.reference);
    assert_eq!(reference.parameters, ref_params);
    assert_eq!((reference.steps, reference.test_steps), (4, 8));
    assert_eq!(reference.flops_per_sample, 2 * ref_macs * 4);
    assert_eq!(reference.test_flops_per_sample, 2 * ref_macs * 8);
    let small = c[1].network.as_ref().expect("the small list resolves");
    assert_eq!(small.name, "c8k5s2-p2m-f19");
    assert!(!small.reference);
    assert_eq!(small.parameters, small_params);
    assert_eq!(small.flops_per_sample, 2 * small_macs * 4);
    assert_eq!(small.test_flops_per_sample, 2 * small_macs * 8);

    // The ranking rows carry them too.
    let ranking = &report.sweep.as_ref().unwrap().rankings[0];
    for row in &ranking.rows {
        assert_eq!(row.network.as_ref(), c[row.configuration].network.as_ref());
    }

    // JSON.
    let json: serde_json::Value = serde_json::from_str(&render_json(&report).unwrap()).unwrap();
    assert_eq!(
        json["configurations"][0]["network"]["parameters"],
        ref_params
    );
    assert_eq!(
        json["configurations"][1]["network"]["name"],
        "c8k5s2-p2m-f19"
    );
    assert_eq!(
        json["sweep"]["rankings"][0]["rows"][0]["network"]["flops_per_sample"],
        2 * small_macs * 4,
        "the small network ranks first on validation accuracy"
    );

    // Markdown: the header points to the ranking, which has the columns.
    let md = render_markdown(&report, &[]);
    assert!(
        md.contains("- Networks: 2 different ones across the configurations"),
        "{md}"
    );
    assert!(
        md.contains("| rank | configuration | network | parameters | FLOPs/sample |"),
        "{md}"
    );
    // 2 · 48,208,160 MACs · 4 steps = 385,665,280 FLOPs.
    assert_eq!(2 * ref_macs * 4, 385_665_280);
    assert!(
        md.contains(
            "| 2 | **network=reference** (baseline) | `c20k3-p2a-c50k3-p2a-f200-f19` | 9,013,449 | 386 MFLOPs |"
        ),
        "{md}"
    );
    // 2 · 1,683,672 · 4 = 13,469,376 FLOPs.
    assert!(
        md.contains("| 1 | network=c8k5s2-p2m-f19 | `c8k5s2-p2m-f19` | 146,499 | 13.5 MFLOPs |"),
        "{md}"
    );

    // CSV: every job's row names its network.
    let csv = render_csv(&report);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (conf, net, params, flops) = (
        col("configuration"),
        col("network"),
        col("parameters"),
        col("flops_per_sample"),
    );
    let mut rows = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let (name, p, f) = if cells[conf] == "network=reference" {
            ("c20k3-p2a-c50k3-p2a-f200-f19", ref_params, 2 * ref_macs * 4)
        } else {
            ("c8k5s2-p2m-f19", small_params, 2 * small_macs * 4)
        };
        assert_eq!(cells[net], name, "{line}");
        assert_eq!(cells[params].parse::<u64>().unwrap(), p, "{line}");
        assert_eq!(cells[flops].parse::<u64>().unwrap(), f, "{line}");
        rows += 1;
    }
    assert_eq!(rows, 4);
}

#[test]
fn an_experiment_without_a_sweep_has_one_network_line() {
    let report = build_report(&experiment(false, Vec::new()), &jobs(1), CREATED + 100);
    let md = render_markdown(&report, &[]);
    // 2 · 48,208,160 · 8 = 771,330,560 FLOPs per test sample.
    assert!(
        md.contains(
            "- Network: `c20k3-p2a-c50k3-p2a-f200-f19` (reference), 9,013,449 parameters, 386 MFLOPs per training sample (forward, T = 4), 771 MFLOPs per validation or test sample (T = 8)"
        ),
        "{md}"
    );
    assert!(
        !md.contains("| FLOPs/sample |"),
        "no ranking without a sweep"
    );
}

#[test]
fn the_networks_are_counted_for_the_data_sets_classes() {
    // Two classes recorded: the reference ends in 200 → 2; a written list
    // ending in 19 does not resolve and has no figures (a dash, not a guess).
    let names = vec!["a".to_owned(), "b".to_owned()];
    let report = build_report(&experiment(true, names), &jobs(2), CREATED + 100);
    let reference = report.configurations[0].network.as_ref().unwrap();
    assert_eq!(reference.name, "c20k3-p2a-c50k3-p2a-f200-f2");
    assert_eq!(reference.parameters, reference_by_hand(2).0);
    assert_eq!(reference.parameters, 9_010_032);
    assert_eq!(report.configurations[1].network, None);
    let md = render_markdown(&report, &[]);
    assert!(
        md.contains("| network=c8k5s2-p2m-f19 | – | – | – |"),
        "{md}"
    );
}
