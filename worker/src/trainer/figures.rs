//! The figures of an events line checked as the coordinator will check them
//! (docs/trainers.md; `coordinator/src/scheduler/validate.rs`): losses,
//! accuracies and times finite and in range, validation figures exactly
//! under `train-val-test`, a test confusion matrix of the data set's classes
//! whose total is the test set's size and whose trace gives the test
//! accuracy.

use spikecv_common::experiment::sections::ProtocolKind;

/// A check's failure: what is wrong.
pub type Checked<T> = Result<T, String>;

/// Largest loss accepted (the coordinator's bound).
pub const MAX_LOSS: f64 = 1e6;
/// Largest epoch time or training rate accepted (the coordinator's bound).
pub const MAX_SECONDS: f64 = 1e9;
/// How far a test accuracy may be from its confusion matrix's trace over its
/// total (the coordinator's tolerance).
pub const ACCURACY_TOLERANCE: f64 = 1e-9;

/// Validation figures exactly under `train-val-test`; test figures both
/// or neither; every value in range.
pub fn figures(
    protocol: ProtocolKind,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    test_loss: Option<f64>,
    test_accuracy: Option<f64>,
) -> Checked<()> {
    let with_val = protocol == ProtocolKind::TrainValTest;
    match (with_val, val_loss, val_accuracy) {
        (true, Some(l), Some(a)) => {
            loss("val_loss", l)?;
            fraction("val_accuracy", a)?;
        }
        (true, _, _) => {
            return Err("val_loss and val_accuracy are required under train-val-test".into());
        }
        (false, None, None) => {}
        (false, _, _) => {
            return Err(format!(
                "val_loss and val_accuracy are left out under {} (no validation set)",
                protocol.as_str()
            ));
        }
    }
    match (test_loss, test_accuracy) {
        (Some(l), Some(a)) => {
            loss("test_loss", l)?;
            fraction("test_accuracy", a)
        }
        (None, None) => Ok(()),
        _ => Err("test_loss and test_accuracy go together".into()),
    }
}

/// `classes × classes` counts summing to the test set's size, whose trace
/// over that size is `accuracy`.
pub fn confusion(
    m: &[Vec<u32>],
    classes: usize,
    test_samples: usize,
    accuracy: f64,
) -> Checked<()> {
    let n = classes;
    if m.len() != n || m.iter().any(|row| row.len() != n) {
        return Err(format!(
            "confusion must be {n} rows of {n} counts (one per class)"
        ));
    }
    let total: u64 = m.iter().flatten().map(|&c| u64::from(c)).sum();
    if total != test_samples as u64 {
        return Err(format!(
            "confusion counts {total} samples; the test set has {}",
            test_samples
        ));
    }
    let trace: u64 = m.iter().enumerate().map(|(i, r)| u64::from(r[i])).sum();
    let from_matrix = if total == 0 {
        0.0
    } else {
        trace as f64 / total as f64
    };
    if (from_matrix - accuracy).abs() > ACCURACY_TOLERANCE {
        return Err(format!(
            "test_accuracy {accuracy} contradicts the confusion matrix ({trace} of {total} right)"
        ));
    }
    Ok(())
}

/// `v` finite and in `[0, max]`, else an error naming `name`.
pub fn bounded(name: &str, v: f64, max: f64) -> Checked<()> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} is {v}; it must be finite, in [0, {max:e}]"))
    }
}

/// A loss: in `[0, MAX_LOSS]`.
pub fn loss(name: &str, v: f64) -> Checked<()> {
    bounded(name, v, MAX_LOSS)
}

/// An accuracy: in `[0, 1]`.
pub fn fraction(name: &str, v: f64) -> Checked<()> {
    bounded(name, v, 1.0)
}
