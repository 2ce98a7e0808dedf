//! Checks of the numbers a worker reports against the experiment, before
//! anything is stored: every metric is finite (a NaN or an infinity cannot be
//! stored as JSON and would break every later report and dashboard read of
//! the job), non-negative and below a bound far past any real run (so sums
//! over many jobs stay finite), accuracies are fractions, epochs lie in
//! `1..=epochs`, and a confusion matrix has the data set's class count, the
//! test set's size as its total and a trace that agrees with the reported
//! test accuracy. A refusal names the field.

use spikecv_common::experiment::error::bounds;
use spikecv_common::experiment::job::{EpochMetrics, JobResult};

use super::SchedulerError;
use crate::store::experiments::{self, SampleShape};
use crate::store::jobs::JobRow;
use rusqlite::Connection;

/// Largest loss accepted (the network's losses are means over rates in
/// [0, 1]: an honest one stays far below).
pub const MAX_LOSS: f64 = 1e6;
/// Largest epoch or training time accepted, in seconds (about 31 years).
pub const MAX_SECONDS: f64 = 1e9;
/// Largest training rate accepted, in samples per second.
pub const MAX_SAMPLES_PER_SECOND: f64 = 1e9;
/// How far a test accuracy may be from its confusion matrix's trace over its
/// total (both are the same division on the worker).
const ACCURACY_TOLERANCE: f64 = 1e-9;

fn bad(message: String) -> SchedulerError {
    SchedulerError::BadRequest { message }
}

/// `Ok` when `value` (if any) is finite; else a bad request naming `name`.
fn check_finite(name: &str, value: Option<f64>) -> Result<(), SchedulerError> {
    match value {
        Some(v) if !v.is_finite() => Err(bad(format!("{name} is {v}; metrics must be finite"))),
        _ => Ok(()),
    }
}

/// `Ok` when `value` (if any) is finite and in `[0, max]`; else a bad request
/// naming `name`.
fn check_bounded(name: &str, value: Option<f64>, max: f64) -> Result<(), SchedulerError> {
    check_finite(name, value)?;
    match value {
        Some(v) if !(0.0..=max).contains(&v) => {
            Err(bad(format!("{name} is {v}; it must lie in [0, {max:e}]")))
        }
        _ => Ok(()),
    }
}

/// `Ok` when `value` (if any) is a fraction in [0, 1]; else a bad request naming `name`.
pub(super) fn check_fraction(name: &str, value: Option<f64>) -> Result<(), SchedulerError> {
    check_finite(name, value)?;
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(bad(format!("{name} {v} is not a fraction in [0, 1]")))
        }
        _ => Ok(()),
    }
}

/// `Ok` when `epoch` lies in `1..=planned` (no upper bound when the job's
/// epoch count is not known); else a bad request naming `field`.
pub(super) fn check_epoch_number(
    field: &str,
    epoch: u32,
    planned: Option<u32>,
) -> Result<(), SchedulerError> {
    if epoch == 0 {
        return Err(bad(format!("{field} is 0; epochs are numbered from 1")));
    }
    match planned {
        Some(n) if epoch > n => Err(bad(format!(
            "{field} is {epoch}; the job trains {n} epochs (training.epochs)"
        ))),
        _ => Ok(()),
    }
}

/// `Ok` when a heartbeat's progress of one attempt (`running[index]`) fits
/// its job: `epoch` done of `of` in all, neither past the job's `planned`
/// epochs (nor past [`bounds::EPOCHS`] when the job's count is not known),
/// the epoch not past `of` when `of` is given, and not below the last epoch
/// the attempt itself reported (`reported`) by more than one (a heartbeat
/// read just before a report may arrive just after it). A refusal names the
/// field.
pub(super) fn check_progress(
    index: usize,
    epoch: u32,
    of: u32,
    planned: Option<u32>,
    reported: Option<u32>,
) -> Result<(), SchedulerError> {
    let most = planned.unwrap_or(bounds::EPOCHS);
    let whose = match planned {
        Some(n) => format!("the job trains {n} epochs (training.epochs)"),
        None => format!("at most {most} epochs are allowed"),
    };
    if epoch > most {
        return Err(bad(format!("running[{index}].epoch is {epoch}; {whose}")));
    }
    if of > most {
        return Err(bad(format!("running[{index}].epochs is {of}; {whose}")));
    }
    if of > 0 && epoch > of {
        return Err(bad(format!(
            "running[{index}].epoch is {epoch}, past running[{index}].epochs ({of})"
        )));
    }
    if let Some(last) = reported
        && epoch.saturating_add(1) < last
    {
        return Err(bad(format!(
            "running[{index}].epoch is {epoch}; the attempt already reported epoch {last}"
        )));
    }
    Ok(())
}

/// `Ok` when every number of one epoch's metrics is in range: the epoch in
/// `1..=planned`, losses, seconds and rates finite, non-negative and bounded,
/// accuracies fractions.
pub(super) fn check_epoch(m: &EpochMetrics, planned: Option<u32>) -> Result<(), SchedulerError> {
    check_epoch_number("epoch", m.epoch, planned)?;
    let at = |what: &str| format!("epoch {} {what}", m.epoch);
    check_bounded(&at("train_loss"), Some(m.train_loss), MAX_LOSS)?;
    check_fraction(&at("train_accuracy"), Some(m.train_accuracy))?;
    check_bounded(&at("val_loss"), m.val_loss, MAX_LOSS)?;
    check_fraction(&at("val_accuracy"), m.val_accuracy)?;
    check_bounded(&at("test_loss"), m.test_loss, MAX_LOSS)?;
    check_fraction(&at("test_accuracy"), m.test_accuracy)?;
    check_bounded(&at("epoch_seconds"), Some(m.epoch_seconds), MAX_SECONDS)?;
    check_bounded(
        &at("samples_per_second"),
        Some(m.samples_per_second),
        MAX_SAMPLES_PER_SECOND,
    )?;
    check_firing_rates(m)
}

/// Whether two reports of one epoch carry the same figures (losses and
/// accuracies; times may differ): a repeated report must, and a
/// checkpoint's record must list the reported ones.
pub(super) fn same_figures(a: &EpochMetrics, b: &EpochMetrics) -> bool {
    a.epoch == b.epoch
        && a.train_loss == b.train_loss
        && a.train_accuracy == b.train_accuracy
        && a.val_loss == b.val_loss
        && a.val_accuracy == b.val_accuracy
        && a.test_loss == b.test_loss
        && a.test_accuracy == b.test_accuracy
}

/// Most LIF layers an epoch's firing rates may name.
pub const MAX_RATE_LAYERS: usize = 64;
/// Longest layer name in firing rates.
pub const MAX_LAYER_NAME_BYTES: usize = 64;

/// `Ok` when an epoch's firing rates are at most [`MAX_RATE_LAYERS`] layers
/// with short printable names and fractions as rates.
fn check_firing_rates(m: &EpochMetrics) -> Result<(), SchedulerError> {
    if m.firing_rates.len() > MAX_RATE_LAYERS {
        return Err(bad(format!(
            "epoch {} firing_rates: {} layers, at most {MAX_RATE_LAYERS}",
            m.epoch,
            m.firing_rates.len()
        )));
    }
    for (i, r) in m.firing_rates.iter().enumerate() {
        let at = |what: &str| format!("epoch {} firing_rates[{i}].{what}", m.epoch);
        if r.layer.is_empty() || r.layer.len() > MAX_LAYER_NAME_BYTES {
            return Err(bad(format!(
                "{} must be 1 to {MAX_LAYER_NAME_BYTES} bytes",
                at("layer")
            )));
        }
        spikecv_common::names::check_no_control(&r.layer)
            .map_err(|e| bad(format!("{}: {e}", at("layer"))))?;
        check_fraction(&at("train"), Some(r.train))?;
        check_fraction(&at("eval"), r.eval)?;
    }
    Ok(())
}

/// What a result is checked against: the job's experiment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Expected {
    /// Epochs the job trains (`None`: not known, no upper bound).
    pub epochs: Option<u32>,
    /// Classes of the data set (`None`: not known).
    pub classes: Option<usize>,
    /// Samples of the job's test set (`None`: not known).
    pub test_samples: Option<u64>,
}

/// `Ok` when a confusion matrix fits the experiment: `classes` rows of
/// `classes` counts, `test_samples` in all, and `test_accuracy` its trace over
/// its total. An empty matrix (none reported) passes: it adds nothing to a
/// report.
fn check_confusion(r: &JobResult, want: &Expected) -> Result<(), SchedulerError> {
    let m = &r.confusion;
    if m.is_empty() {
        return Ok(());
    }
    let n = want.classes.unwrap_or(m.len());
    if m.len() != n || m.iter().any(|row| row.len() != n) {
        let shape = m.iter().map(Vec::len).collect::<Vec<_>>();
        return Err(bad(format!(
            "confusion has {} rows of {shape:?} counts; the data set has {n} classes, so {n} rows of {n}",
            m.len()
        )));
    }
    let total: u64 = m.iter().flatten().map(|&c| u64::from(c)).sum();
    if let Some(samples) = want.test_samples
        && total != samples
    {
        return Err(bad(format!(
            "confusion counts {total} test samples; the job's test set has {samples}"
        )));
    }
    if total == 0 {
        return Err(bad("confusion counts no test sample".into()));
    }
    let trace: u64 = m.iter().enumerate().map(|(i, row)| u64::from(row[i])).sum();
    let accuracy = trace as f64 / total as f64;
    if (accuracy - r.test_accuracy).abs() > ACCURACY_TOLERANCE {
        return Err(bad(format!(
            "test_accuracy {} contradicts the confusion matrix ({trace} of {total} correct = {accuracy})",
            r.test_accuracy
        )));
    }
    Ok(())
}

/// `Ok` when every number of a result is in range and fits the experiment:
/// its epochs (each checked as [`check_epoch`], in increasing order), its best
/// epoch, its figures and its confusion matrix.
pub(super) fn check_result(r: &JobResult, want: &Expected) -> Result<(), SchedulerError> {
    check_epoch_number("best_epoch", r.best_epoch, want.epochs)?;
    check_fraction("test_accuracy", Some(r.test_accuracy))?;
    check_bounded("test_loss", Some(r.test_loss), MAX_LOSS)?;
    check_fraction("val_accuracy", r.val_accuracy)?;
    check_bounded("val_loss", r.val_loss, MAX_LOSS)?;
    check_bounded("train_seconds", Some(r.train_seconds), MAX_SECONDS)?;
    for m in &r.epochs {
        check_epoch(m, want.epochs)?;
    }
    if let Some(w) = r.epochs.windows(2).find(|w| w[1].epoch <= w[0].epoch) {
        return Err(bad(format!(
            "epochs: epoch {} follows epoch {}; they must increase",
            w[1].epoch, w[0].epoch
        )));
    }
    check_confusion(r, want)
}

/// What a result of `job` is checked against: its epochs, its data set's
/// classes and its test set's size (the stored samples of each test
/// recording; without them, one sample per class).
pub(super) fn expected(conn: &Connection, job: &JobRow) -> Result<Expected, SchedulerError> {
    let SampleShape { classes, counts } = experiments::sample_shape(conn, &job.experiment)?;
    let test_samples = match counts {
        Some(counts) => job
            .split
            .test
            .iter()
            .map(|r| counts.get(r).copied())
            .sum::<Option<u64>>(),
        None => classes.map(|c| job.split.test.len() as u64 * c as u64),
    };
    Ok(Expected {
        epochs: job.planned_epochs,
        classes,
        test_samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch() -> EpochMetrics {
        EpochMetrics {
            epoch: 1,
            train_loss: 0.5,
            train_accuracy: 0.5,
            val_loss: None,
            val_accuracy: None,
            test_loss: Some(0.4),
            test_accuracy: Some(0.6),
            epoch_seconds: 1.0,
            samples_per_second: 10.0,
            firing_rates: Vec::new(),
        }
    }

    #[test]
    fn firing_rates_must_be_fractions_of_named_layers() {
        let mut m = epoch();
        m.firing_rates = vec![spikecv_common::experiment::job::LayerRate {
            layer: "conv1".into(),
            train: 0.2,
            eval: Some(0.1),
        }];
        assert!(check_epoch(&m, Some(3)).is_ok());
        m.firing_rates[0].train = 1.5;
        let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
        assert!(e.contains("firing_rates[0].train"), "{e}");
        m.firing_rates[0].train = 0.2;
        m.firing_rates[0].eval = Some(f64::NAN);
        let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
        assert!(e.contains("firing_rates[0].eval"), "{e}");
        m.firing_rates[0].eval = None;
        m.firing_rates[0].layer = "x\u{1b}".into();
        let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
        assert!(
            e.contains("firing_rates[0].layer") && e.contains("U+001B"),
            "{e}"
        );
        m.firing_rates = vec![m.firing_rates[0].clone(); MAX_RATE_LAYERS + 1];
        m.firing_rates.iter_mut().for_each(|r| r.layer = "l".into());
        assert!(check_epoch(&m, Some(3)).is_err());
    }

    #[test]
    fn non_finite_numbers_are_refused_naming_the_field() {
        assert!(check_epoch(&epoch(), Some(3)).is_ok());
        let mut m = epoch();
        m.train_loss = f64::NAN;
        let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
        assert!(e.contains("train_loss") && e.contains("NaN"), "{e}");
        let mut m = epoch();
        m.test_loss = Some(f64::INFINITY);
        assert!(
            check_epoch(&m, Some(3))
                .unwrap_err()
                .to_string()
                .contains("test_loss")
        );
        let mut m = epoch();
        m.train_accuracy = f64::NAN;
        assert!(
            check_epoch(&m, Some(3))
                .unwrap_err()
                .to_string()
                .contains("train_accuracy")
        );
        let mut m = epoch();
        m.val_accuracy = Some(1.5);
        assert!(
            check_epoch(&m, Some(3))
                .unwrap_err()
                .to_string()
                .contains("val_accuracy")
        );
    }

    fn result() -> JobResult {
        JobResult {
            best_epoch: 2,
            test_accuracy: 0.75,
            test_loss: 0.3,
            val_accuracy: None,
            val_loss: None,
            confusion: vec![vec![2, 0], vec![1, 1]],
            train_seconds: 2.0,
            epochs: vec![
                epoch(),
                EpochMetrics {
                    epoch: 2,
                    ..epoch()
                },
            ],
            optimistic: true,
        }
    }

    const WANT: Expected = Expected {
        epochs: Some(3),
        classes: Some(2),
        test_samples: Some(4),
    };

    fn refusal(r: &JobResult) -> String {
        check_result(r, &WANT).unwrap_err().to_string()
    }

    #[test]
    fn epochs_outside_the_experiment_are_refused() {
        let mut m = epoch();
        m.epoch = 0;
        assert!(
            check_epoch(&m, Some(3))
                .unwrap_err()
                .to_string()
                .contains("epoch is 0")
        );
        m.epoch = 4;
        let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
        assert!(
            e.contains("epoch is 4") && e.contains("training.epochs"),
            "{e}"
        );
        assert!(
            check_epoch(&m, None).is_ok(),
            "no known bound: only 0 is refused"
        );
        let mut r = result();
        r.best_epoch = 9;
        assert!(refusal(&r).contains("best_epoch"));
        let mut r = result();
        r.epochs.swap(0, 1);
        assert!(refusal(&r).contains("must increase"));
    }

    #[test]
    fn negative_and_huge_figures_are_refused_naming_the_field() {
        for (field, set) in [
            (
                "epoch_seconds",
                (|m: &mut EpochMetrics| m.epoch_seconds = -1.0) as fn(&mut EpochMetrics),
            ),
            ("epoch_seconds", |m| m.epoch_seconds = 1e308),
            ("samples_per_second", |m| m.samples_per_second = 1e300),
            ("train_loss", |m| m.train_loss = -0.5),
            ("test_loss", |m| m.test_loss = Some(1e200)),
        ] {
            let mut m = epoch();
            set(&mut m);
            let e = check_epoch(&m, Some(3)).unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
        let mut r = result();
        r.train_seconds = 1e308;
        assert!(refusal(&r).contains("train_seconds"));
        assert!(check_result(&result(), &WANT).is_ok());
    }

    #[test]
    fn a_confusion_matrix_must_fit_the_data_set_and_the_accuracy() {
        let mut r = result();
        r.confusion = vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 2]];
        assert!(refusal(&r).contains("2 classes"), "{}", refusal(&r));
        let mut r = result();
        r.confusion = vec![vec![2, 0], vec![1]];
        assert!(refusal(&r).contains("2 rows of 2"));
        let mut r = result();
        r.confusion = vec![vec![4, 0], vec![2, 2]];
        assert!(refusal(&r).contains("8 test samples"), "{}", refusal(&r));
        let mut r = result();
        r.test_accuracy = 1.0;
        assert!(refusal(&r).contains("contradicts"), "{}", refusal(&r));
        // Nothing known about the data set: the matrix must still agree with
        // itself and the accuracy.
        let mut r = result();
        r.test_accuracy = 0.5;
        assert!(check_result(&r, &Expected::default()).is_err());
        let mut r = result();
        r.confusion = vec![];
        assert!(check_result(&r, &WANT).is_ok(), "no matrix reported");
    }
}
