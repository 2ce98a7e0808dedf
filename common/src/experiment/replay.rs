//! Two runs of one job compared: bit for bit where their manifests say the
//! runs must agree ([`Agreement::Bitwise`]), else within the tolerance of
//! docs/semantics.md ("Reproducing a job"). Timings never count.

use serde::{Deserialize, Serialize};

use super::job::{EpochMetrics, JobResult};
use super::manifest::{Agreement, Provenance};

/// Without bitwise agreement: the largest difference in test accuracy
/// (absolute, a fraction) that still counts as the same result.
pub const ACCURACY_TOLERANCE: f64 = 0.05;

/// Without bitwise agreement: the largest relative difference in test loss
/// that still counts as the same result.
pub const LOSS_TOLERANCE: f64 = 0.10;

/// One figure of the two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was compared (`epoch 3 train_loss`, `weights_sha256`).
    pub what: String,
    /// The first run's value, as text.
    pub first: String,
    /// The second run's value, as text.
    pub second: String,
    /// Whether the two agree under the comparison's rule.
    pub agrees: bool,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Bitwise or within tolerance, and why.
    pub agreement: Agreement,
    /// Every figure compared, in order.
    pub checks: Vec<Check>,
}

impl Check {
    /// `what` compared for equality, each value shown as `{:?}` shows it.
    fn equal<T: std::fmt::Debug + PartialEq>(what: &str, first: T, second: T) -> Self {
        Check {
            what: what.to_owned(),
            first: format!("{first:?}"),
            second: format!("{second:?}"),
            agrees: first == second,
        }
    }
}

impl Comparison {
    /// True when every check agrees.
    pub fn agrees(&self) -> bool {
        self.checks.iter().all(|c| c.agrees)
    }

    /// The checks that disagree.
    pub fn differences(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.agrees)
    }
}

/// A number as text that names its bits (shortest round-trip form).
fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"))
}

fn same_bits(a: Option<f64>, b: Option<f64>) -> bool {
    a.map(f64::to_bits) == b.map(f64::to_bits)
}

/// The figures of one epoch that a run computes (not its timings).
fn epoch_figures(m: &EpochMetrics) -> Vec<(String, Option<f64>)> {
    let mut out = vec![
        ("train_loss".to_owned(), Some(m.train_loss)),
        ("train_accuracy".to_owned(), Some(m.train_accuracy)),
        ("val_loss".to_owned(), m.val_loss),
        ("val_accuracy".to_owned(), m.val_accuracy),
        ("test_loss".to_owned(), m.test_loss),
        ("test_accuracy".to_owned(), m.test_accuracy),
    ];
    for r in &m.firing_rates {
        out.push((format!("firing_rate/train/{}", r.layer), Some(r.train)));
        out.push((format!("firing_rate/eval/{}", r.layer), r.eval));
    }
    out
}

/// Every figure bit for bit: each epoch's, the selection, the confusion
/// matrix and the final weights' hash.
fn bitwise_checks(a: (&JobResult, &Provenance), b: (&JobResult, &Provenance)) -> Vec<Check> {
    let mut checks = vec![Check::equal("epochs", a.0.epochs.len(), b.0.epochs.len())];
    for (ea, eb) in a.0.epochs.iter().zip(&b.0.epochs) {
        let (fa, fb) = (epoch_figures(ea), epoch_figures(eb));
        let names_agree = fa.len() == fb.len();
        for ((name, va), (_, vb)) in fa.into_iter().zip(fb) {
            checks.push(Check {
                what: format!("epoch {} {name}", ea.epoch),
                first: show(va),
                second: show(vb),
                agrees: names_agree && same_bits(va, vb),
            });
        }
    }
    checks.push(Check::equal("best_epoch", a.0.best_epoch, b.0.best_epoch));
    for (what, va, vb) in [
        ("test_accuracy", a.0.test_accuracy, b.0.test_accuracy),
        ("test_loss", a.0.test_loss, b.0.test_loss),
    ] {
        checks.push(Check {
            what: what.to_owned(),
            first: show(Some(va)),
            second: show(Some(vb)),
            agrees: va.to_bits() == vb.to_bits(),
        });
    }
    checks.push(Check::equal("confusion", &a.0.confusion, &b.0.confusion));
    checks.push(Check {
        what: "weights_sha256".to_owned(),
        first: a.1.weights_sha256.clone(),
        second: b.1.weights_sha256.clone(),
        agrees: !a.1.weights_sha256.is_empty() && a.1.weights_sha256 == b.1.weights_sha256,
    });
    checks
}

/// The selected model's test figures within [`ACCURACY_TOLERANCE`] and
/// [`LOSS_TOLERANCE`].
fn tolerance_checks(a: &JobResult, b: &JobResult) -> Vec<Check> {
    let loss_scale = a
        .test_loss
        .abs()
        .max(b.test_loss.abs())
        .max(f64::MIN_POSITIVE);
    vec![
        Check {
            what: format!("test_accuracy (within {ACCURACY_TOLERANCE})"),
            first: show(Some(a.test_accuracy)),
            second: show(Some(b.test_accuracy)),
            agrees: (a.test_accuracy - b.test_accuracy).abs() <= ACCURACY_TOLERANCE,
        },
        Check {
            what: format!("test_loss (within {} %)", LOSS_TOLERANCE * 100.0),
            first: show(Some(a.test_loss)),
            second: show(Some(b.test_loss)),
            agrees: (a.test_loss - b.test_loss).abs() <= LOSS_TOLERANCE * loss_scale,
        },
    ]
}

/// Compares run `a` with run `b` of the same job under the rule their
/// manifests allow.
pub fn compare(a: (&JobResult, &Provenance), b: (&JobResult, &Provenance)) -> Comparison {
    let agreement = a.1.manifest.agreement_with(&b.1.manifest);
    let checks = match agreement {
        Agreement::Bitwise => bitwise_checks(a, b),
        Agreement::Tolerance { .. } => tolerance_checks(a.0, b.0),
    };
    Comparison { agreement, checks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::job::LayerRate;
    use crate::experiment::manifest::{Manifest, Switches};

    fn run(loss: f64) -> JobResult {
        JobResult {
            best_epoch: 1,
            test_accuracy: 0.5,
            test_loss: loss,
            val_accuracy: None,
            val_loss: None,
            confusion: vec![vec![1, 1], vec![0, 2]],
            train_seconds: 3.0,
            epochs: vec![EpochMetrics {
                epoch: 1,
                train_loss: loss,
                train_accuracy: 0.25,
                val_loss: None,
                val_accuracy: None,
                test_loss: Some(loss),
                test_accuracy: Some(0.5),
                epoch_seconds: 3.0,
                samples_per_second: 2.0,
                firing_rates: vec![LayerRate {
                    layer: "conv1".into(),
                    train: 0.1,
                    eval: Some(0.2),
                }],
            }],
            optimistic: false,
        }
    }

    fn provenance(threads: u32) -> Provenance {
        Provenance {
            manifest: Manifest {
                threads,
                switches: Switches {
                    deterministic: true,
                    ..Switches::default()
                },
                ..Manifest::default()
            },
            weights_sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn one_ulp_apart_is_a_bitwise_difference() {
        let a = run(0.5);
        let mut b = run(0.5);
        b.train_seconds = 9.0;
        b.epochs[0].epoch_seconds = 7.0;
        let same = compare((&a, &provenance(2)), (&b, &provenance(2)));
        assert_eq!(same.agreement, Agreement::Bitwise);
        assert!(same.agrees(), "timings decide nothing: {same:?}");
        b.epochs[0].train_loss = f64::from_bits(0.5f64.to_bits() + 1);
        let off = compare((&a, &provenance(2)), (&b, &provenance(2)));
        let diffs: Vec<_> = off.differences().map(|c| c.what.as_str()).collect();
        assert_eq!(diffs, ["epoch 1 train_loss"]);
    }

    #[test]
    fn other_weights_disagree() {
        let mut other = provenance(2);
        other.weights_sha256 = "cd".repeat(32);
        let c = compare((&run(0.5), &provenance(2)), (&run(0.5), &other));
        let diffs: Vec<_> = c.differences().map(|c| c.what.as_str()).collect();
        assert_eq!(diffs, ["weights_sha256"]);
    }

    #[test]
    fn other_thread_counts_compare_within_tolerance() {
        let c = compare((&run(0.5), &provenance(2)), (&run(0.54), &provenance(4)));
        assert!(matches!(c.agreement, Agreement::Tolerance { .. }));
        assert!(c.agrees(), "{c:?}");
        let far = compare((&run(0.5), &provenance(2)), (&run(0.6), &provenance(4)));
        assert!(!far.agrees());
    }
}
