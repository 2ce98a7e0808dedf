//! Early-stopped jobs in the report: a succeeded job with fewer epochs than
//! its configuration's is listed with the epoch it stopped at and the time its
//! remaining epochs would have taken (its own mean epoch time), in Markdown and
//! JSON; a report without such jobs has no early-stopping section.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod report_fixture;

use report_fixture as fx;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_coordinator::report::{build_report, render_json, render_markdown};

const TVT: ProtocolKind = ProtocolKind::TrainValTest;

#[test]
fn stopped_jobs_are_listed_with_their_epoch_and_the_time_saved() {
    let mut experiment = fx::experiment("train-val-test");
    experiment.config_toml.push_str("patience = 2\n");
    let mut jobs = fx::jobs(TVT);
    // Whole, seed 0, folds 1 and 2 stopped after 3 of 5 epochs.
    let mut expected = Vec::new();
    for j in jobs
        .iter_mut()
        .filter(|j| j.variant == Variant::WHOLE && j.seed == 0 && (j.fold == 1 || j.fold == 2))
    {
        j.epochs.truncate(3);
        let mean = j.epochs.iter().map(|e| e.epoch_seconds).sum::<f64>() / 3.0;
        expected.push((j.fold, 2.0 * mean));
    }
    let r = build_report(&experiment, &jobs, fx::NOW);
    let e = r
        .early_stopping
        .as_ref()
        .expect("an early-stopping summary");
    assert_eq!(e.jobs.len(), 2);
    for (job, (fold, saved)) in e.jobs.iter().zip(&expected) {
        assert_eq!(
            (job.variant, job.seed, job.fold),
            (Variant::WHOLE, 0, *fold)
        );
        assert_eq!((job.stopped_epoch, job.epochs), (3, fx::EPOCHS));
        assert!((job.saved_seconds - saved).abs() < 1e-9, "{job:?}");
    }
    assert_eq!(e.saving.epochs_saved, 4);
    let total: f64 = expected.iter().map(|(_, s)| s).sum();
    assert!((e.saving.saved_seconds - total).abs() < 1e-9);

    let md = render_markdown(&r, &[]);
    assert!(md.contains("## Early stopping"), "{md}");
    assert!(md.contains("| whole | – | 0 | 1 | 3 | 5 |"), "{md}");
    assert!(
        md.contains(
            "Early stopping ended 2 job(s) before their last epoch and saved an estimated 4 epochs"
        ),
        "{md}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&r).unwrap()).unwrap();
    assert_eq!(json["early_stopping"]["jobs"][1]["fold"], 2);
    assert_eq!(json["early_stopping"]["epochs_saved"], 4);

    // Every job trained its epochs: no section, no JSON key.
    let full = build_report(&experiment, &fx::jobs(TVT), fx::NOW);
    assert!(full.early_stopping.is_none());
    assert!(!render_markdown(&full, &[]).contains("Early stopping"));
    assert!(!render_json(&full).unwrap().contains("early_stopping"));
}
