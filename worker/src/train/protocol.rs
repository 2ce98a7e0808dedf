//! Which epoch's model a protocol reports (DESIGN.md, "Cross-validation protocol").

use spikecv_common::config::ProtocolKind;

use crate::checkpoint::BestSoFar;

/// Whether an epoch with these figures replaces the current selection.
///
/// `train-val-test`: strictly lower validation loss (the first minimum wins,
/// as in the reference). `train-test`: strictly higher test accuracy (the first
/// maximum wins). The first epoch is always selected.
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
    }
}

/// Whether the protocol needs the test set evaluated this epoch: always for
/// `train-test` (selection uses it); for `train-val-test` only when the epoch
/// becomes the selection (its test figures are reported, never used to select).
pub fn needs_test(kind: ProtocolKind, selected: bool) -> bool {
    match kind {
        ProtocolKind::TrainTest => true,
        ProtocolKind::TrainValTest => selected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
