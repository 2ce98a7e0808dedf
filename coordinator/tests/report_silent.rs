//! Silent jobs in the report: a succeeded job whose output layer fired at no
//! training step is listed with the layer that went quiet first, and its
//! group says how many of its jobs were silent (Markdown and JSON); jobs
//! without firing rates, or whose output fired once, are not silent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod report_fixture;

use report_fixture as fx;
use spikecv_common::dataset::sl_animals::REDUCED;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::LayerRate;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{build_report, render_json, render_markdown};

const TVT: ProtocolKind = ProtocolKind::TrainValTest;

fn set_rates(job: &mut spikecv_coordinator::report::JobRecord, output: &[f64], fc1: &[f64]) {
    for (i, e) in job.epochs.iter_mut().enumerate() {
        let rate = |layer: &str, train: f64| LayerRate {
            layer: layer.into(),
            train,
            eval: Some(train),
        };
        e.firing_rates = vec![
            rate("conv1", 0.2),
            rate("conv2", 0.1),
            rate("fc1", fc1[i]),
            rate("fc2", output[i]),
        ];
    }
}

#[test]
fn silent_jobs_are_listed_and_counted_per_group() {
    let experiment = fx::experiment("train-val-test");
    let mut jobs = fx::jobs(TVT);
    let live = [0.1, 0.1, 0.1, 0.1, 0.1];
    for j in jobs.iter_mut().filter(|j| j.variant == Variant::WHOLE) {
        match (j.seed, j.fold) {
            // Output silent throughout, fc1 quiet from epoch 3: fc2 went first.
            (0, 2) => set_rates(j, &[0.0; 5], &[0.3, 0.1, 0.0, 0.0, 0.0]),
            // Both silent from epoch 1: the earlier layer, fc1, is named.
            (1, 1) => set_rates(j, &[0.0; 5], &[0.0; 5]),
            // The output fired at epoch 1 only: not silent.
            (1, 2) => set_rates(j, &[0.01, 0.0, 0.0, 0.0, 0.0], &live),
            _ => set_rates(j, &live, &live),
        }
    }
    let r = build_report(&experiment, &jobs, fx::NOW);
    let named: Vec<(u64, u32, &str, u32)> = r
        .silent_jobs
        .iter()
        .map(|s| (s.seed, s.fold, s.quiet_layer.as_str(), s.quiet_since))
        .collect();
    assert_eq!(named, vec![(0, 2, "fc2", 1), (1, 1, "fc1", 1)]);
    let whole = r
        .groups
        .iter()
        .find(|g| g.variant == Variant::WHOLE)
        .unwrap();
    assert_eq!((whole.silent_jobs, whole.succeeded), (2, 6));
    let reduced = r.groups.iter().find(|g| g.variant == REDUCED).unwrap();
    assert_eq!(reduced.silent_jobs, 0);

    let md = render_markdown(&r, &[]);
    assert!(md.contains("## Silent jobs"), "{md}");
    assert!(
        md.contains("- whole · train-val-test: 2 of 6 succeeded jobs silent"),
        "{md}"
    );
    assert!(
        md.contains("| whole | train-val-test | – | 0 | 2 | fc2 | 1 |"),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&r).unwrap()).unwrap();
    assert_eq!(json["silent_jobs"][1]["quiet_layer"], "fc1");

    // The fixture as it is (no firing rates): no section, no JSON keys.
    let plain = build_report(&experiment, &fx::jobs(TVT), fx::NOW);
    assert!(plain.silent_jobs.is_empty());
    assert!(!render_markdown(&plain, &[]).contains("Silent"));
    assert!(!render_json(&plain).unwrap().contains("silent_jobs"));
}
