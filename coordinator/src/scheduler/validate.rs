//! Checks of the numbers a worker reports, before anything is stored: every
//! metric is finite (a NaN or an infinity cannot be stored as JSON and would
//! break every later report and dashboard read of the job) and accuracies are
//! fractions.

use spikecv_common::job::{EpochMetrics, JobResult};

use super::SchedulerError;

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

/// `Ok` when every number of one epoch's metrics is finite and its accuracies
/// are fractions.
pub(super) fn check_epoch(m: &EpochMetrics) -> Result<(), SchedulerError> {
    let at = |what: &str| format!("epoch {} {what}", m.epoch);
    check_finite(&at("train_loss"), Some(m.train_loss))?;
    check_fraction(&at("train_accuracy"), Some(m.train_accuracy))?;
    check_finite(&at("val_loss"), m.val_loss)?;
    check_fraction(&at("val_accuracy"), m.val_accuracy)?;
    check_finite(&at("test_loss"), m.test_loss)?;
    check_fraction(&at("test_accuracy"), m.test_accuracy)?;
    check_finite(&at("epoch_seconds"), Some(m.epoch_seconds))?;
    check_finite(&at("samples_per_second"), Some(m.samples_per_second))
}

/// `Ok` when every number of a result (its epochs included) is finite and its
/// accuracies are fractions.
pub(super) fn check_result(r: &JobResult) -> Result<(), SchedulerError> {
    check_fraction("test_accuracy", Some(r.test_accuracy))?;
    check_finite("test_loss", Some(r.test_loss))?;
    check_fraction("val_accuracy", r.val_accuracy)?;
    check_finite("val_loss", r.val_loss)?;
    check_finite("train_seconds", Some(r.train_seconds))?;
    r.epochs.iter().try_for_each(check_epoch)
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
        }
    }

    #[test]
    fn non_finite_numbers_are_refused_naming_the_field() {
        assert!(check_epoch(&epoch()).is_ok());
        let mut m = epoch();
        m.train_loss = f64::NAN;
        let e = check_epoch(&m).unwrap_err().to_string();
        assert!(e.contains("train_loss") && e.contains("NaN"), "{e}");
        let mut m = epoch();
        m.test_loss = Some(f64::INFINITY);
        assert!(
            check_epoch(&m)
                .unwrap_err()
                .to_string()
                .contains("test_loss")
        );
        let mut m = epoch();
        m.train_accuracy = f64::NAN;
        assert!(
            check_epoch(&m)
                .unwrap_err()
                .to_string()
                .contains("train_accuracy")
        );
        let mut m = epoch();
        m.val_accuracy = Some(1.5);
        assert!(
            check_epoch(&m)
                .unwrap_err()
                .to_string()
                .contains("val_accuracy")
        );
    }
}
