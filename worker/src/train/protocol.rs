//! Which epoch's model a protocol reports (DESIGN.md, "Cross-validation protocol").

use spikecv_common::experiment::job::EpochMetrics;
use spikecv_common::experiment::sections::ProtocolKind;

use crate::checkpoint::BestSoFar;
pub use spikecv_common::experiment::job::selected_epoch;

/// Whether an epoch with these figures replaces the current selection.
///
/// `train-val-test`: strictly lower validation loss (the first minimum wins,
/// as in the reference). `train-test`: strictly higher test accuracy (the first
/// maximum wins). `official`: every epoch, so the last one is reported (the
/// test set selects nothing). The first epoch is always selected.
pub fn improves(
    kind: ProtocolKind,
    best: Option<&BestSoFar>,
    val_loss: Option<f64>,
    test_accuracy: Option<f64>,
) -> bool {
    let Some(best) = best else {
        return true;
    };
    match kind {
        ProtocolKind::TrainValTest => match (val_loss, best.val_loss) {
            (Some(v), Some(b)) => v < b,
            (Some(_), None) => true,
            _ => false,
        },
        ProtocolKind::TrainTest => test_accuracy.is_some_and(|a| a > best.test_accuracy),
        ProtocolKind::Official => true,
    }
}

/// Whether the protocol needs the test set evaluated this epoch: always for
/// `train-test` (selection uses it); for `train-val-test` and `official` only
/// when the epoch becomes the selection (its test figures are reported, never
/// used to select; under `official` every epoch is the selection).
pub fn needs_test(kind: ProtocolKind, selected: bool) -> bool {
    match kind {
        ProtocolKind::TrainTest => true,
        ProtocolKind::TrainValTest | ProtocolKind::Official => selected,
    }
}

/// Early stopping (`training.patience`): whether the last of `epochs` is
/// `patience` or more epochs after the first one with the highest validation
/// accuracy, i.e. that many epochs went by without a strictly better one.
/// Never with `patience` 0 or without validation figures. Computed from the
/// metrics alone, so a job resumed from a checkpoint decides as it would have.
pub fn patience_exhausted(epochs: &[EpochMetrics], patience: u32) -> bool {
    if patience == 0 {
        return false;
    }
    let mut best: Option<(f64, u32)> = None;
    for m in epochs {
        if let Some(a) = m.val_accuracy
            && best.is_none_or(|(b, _)| a > b)
        {
            best = Some((a, m.epoch));
        }
    }
    match (best, epochs.last()) {
        (Some((_, at)), Some(last)) => last.epoch.saturating_sub(at) >= patience,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_reports_the_last_epoch() {
        let best = BestSoFar {
            epoch: 1,
            val_loss: None,
            val_accuracy: None,
            test_loss: 0.5,
            test_accuracy: 0.9,
            confusion: Vec::new(),
        };
        // A worse test accuracy still replaces the selection: the last epoch wins.
        assert!(improves(
            ProtocolKind::Official,
            Some(&best),
            None,
            Some(0.1)
        ));
        assert!(!improves(
            ProtocolKind::TrainTest,
            Some(&best),
            None,
            Some(0.1)
        ));
        assert!(needs_test(ProtocolKind::Official, true));
    }

    fn epochs(val_accuracies: &[f64]) -> Vec<EpochMetrics> {
        val_accuracies
            .iter()
            .zip(1..)
            .map(|(&a, epoch)| EpochMetrics {
                epoch,
                val_accuracy: Some(a),
                ..EpochMetrics::default()
            })
            .collect()
    }

    #[test]
    fn patience_counts_epochs_since_the_first_strictly_better_accuracy() {
        let e = epochs(&[0.2, 0.5, 0.5, 0.4]);
        // Best 0.5 first at epoch 2; epoch 3 only ties it.
        assert!(!patience_exhausted(&e[..3], 2));
        assert!(patience_exhausted(&e, 2));
        assert!(!patience_exhausted(&e, 3));
        assert!(patience_exhausted(&e[..3], 1));
        // Off, empty, or no validation figures: never.
        assert!(!patience_exhausted(&e, 0));
        assert!(!patience_exhausted(&[], 1));
        let no_val = vec![EpochMetrics::default(); 5];
        assert!(!patience_exhausted(&no_val, 1));
        // An improvement resets the count.
        assert!(!patience_exhausted(&epochs(&[0.2, 0.1, 0.1, 0.3, 0.3]), 2));
    }

    fn best(val_loss: Option<f64>, test_accuracy: f64) -> BestSoFar {
        BestSoFar {
            epoch: 1,
            val_loss,
            val_accuracy: None,
            test_loss: 0.0,
            test_accuracy,
            confusion: Vec::new(),
        }
    }

    #[test]
    fn val_loss_selects_strictly_lower() {
        let b = best(Some(0.5), 0.9);
        assert!(improves(ProtocolKind::TrainValTest, None, Some(1.0), None));
        assert!(improves(
            ProtocolKind::TrainValTest,
            Some(&b),
            Some(0.4),
            Some(0.1)
        ));
        assert!(!improves(
            ProtocolKind::TrainValTest,
            Some(&b),
            Some(0.5),
            Some(1.0)
        ));
    }

    #[test]
    fn selection_over_epochs_agrees_with_improves() {
        let epoch = |epoch, val_loss, test_accuracy| EpochMetrics {
            epoch,
            val_loss: Some(val_loss),
            test_loss: Some(1.0),
            test_accuracy,
            ..EpochMetrics::default()
        };
        let tested = [
            epoch(1, 0.5, Some(0.2)),
            epoch(2, 0.3, Some(0.9)),
            epoch(3, 0.3, Some(0.9)),
            epoch(4, 0.4, Some(0.95)),
        ];
        for kind in ProtocolKind::ALL {
            let mut best: Option<BestSoFar> = None;
            for m in &tested {
                if improves(kind, best.as_ref(), m.val_loss, m.test_accuracy) {
                    best = Some(BestSoFar {
                        epoch: m.epoch,
                        val_loss: m.val_loss,
                        val_accuracy: None,
                        test_loss: 1.0,
                        test_accuracy: m.test_accuracy.unwrap_or_default(),
                        confusion: Vec::new(),
                    });
                }
            }
            assert_eq!(
                selected_epoch(kind, &tested),
                best.map(|b| b.epoch),
                "{kind:?}"
            );
        }
        // Under train-test an epoch without test figures selects nothing
        // after the first, and any test accuracy beats none.
        let sparse = [
            epoch(1, 0.5, None),
            epoch(2, 0.4, Some(0.1)),
            epoch(3, 0.3, None),
        ];
        assert_eq!(selected_epoch(ProtocolKind::TrainTest, &sparse), Some(2));
        assert_eq!(selected_epoch(ProtocolKind::TrainValTest, &sparse), Some(3));
        assert_eq!(selected_epoch(ProtocolKind::Official, &[]), None);
    }

    #[test]
    fn test_accuracy_selects_strictly_higher() {
        let b = best(None, 0.5);
        assert!(improves(ProtocolKind::TrainTest, Some(&b), None, Some(0.6)));
        assert!(!improves(
            ProtocolKind::TrainTest,
            Some(&b),
            None,
            Some(0.5)
        ));
    }
}
