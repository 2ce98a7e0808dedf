//! Silent jobs: a spiking network whose output layer never fires has a
//! constant loss and no gradient, and learns nothing whatever its settings.
//! From the firing rates workers report with each epoch, a job is silent when
//! its output layer (the last LIF layer) fired at no training step of any
//! epoch; the report names the layer that went quiet first.

use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::sections::ProtocolKind;

use crate::store::records::JobRecord;

/// A job whose output layer never fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilentJob {
    /// The job's id.
    pub job: String,
    /// Data set variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Seed.
    pub seed: u64,
    /// Fold.
    pub fold: u32,
    /// Configuration index.
    pub configuration: usize,
    /// The layer that went quiet first: of the layers silent at the last
    /// epoch, the one silent since the earliest epoch (the first in network
    /// order on a tie).
    pub quiet_layer: String,
    /// The epoch from which that layer stayed silent.
    pub quiet_since: u32,
}

/// `Some` when `job`'s output layer has a zero training rate in every epoch
/// that reported rates (and at least one did).
pub fn silent(job: &JobRecord) -> Option<SilentJob> {
    let epochs: Vec<_> = job
        .epochs
        .iter()
        .filter(|e| !e.firing_rates.is_empty())
        .collect();
    let last = epochs.last()?;
    let output = last.firing_rates.last()?;
    let never_fired = epochs.iter().all(|e| {
        e.firing_rates
            .iter()
            .find(|r| r.layer == output.layer)
            .is_some_and(|r| r.train == 0.0)
    });
    if !never_fired {
        return None;
    }
    // For each layer silent at the last epoch: the first epoch of its final
    // silent run.
    let mut first: Option<(u32, &str)> = None;
    for r in last.firing_rates.iter().filter(|r| r.train == 0.0) {
        let mut since = last.epoch;
        for e in epochs.iter().rev() {
            match e.firing_rates.iter().find(|x| x.layer == r.layer) {
                Some(x) if x.train == 0.0 => since = e.epoch,
                _ => break,
            }
        }
        if first.is_none_or(|(s, _)| since < s) {
            first = Some((since, &r.layer));
        }
    }
    let (quiet_since, quiet_layer) = first?;
    Some(SilentJob {
        job: job.id.clone(),
        variant: job.variant,
        protocol: job.protocol,
        seed: job.seed,
        fold: job.fold,
        configuration: job.configuration,
        quiet_layer: quiet_layer.to_owned(),
        quiet_since,
    })
}

#[cfg(test)]
mod tests {
    use spikecv_common::experiment::job::{EpochMetrics, LayerRate};

    use super::*;

    fn rates(epoch: u32, train: &[f64]) -> EpochMetrics {
        let names = ["conv1", "conv2", "fc1", "fc2"];
        EpochMetrics {
            epoch,
            firing_rates: names
                .iter()
                .zip(train)
                .map(|(n, &t)| LayerRate {
                    layer: (*n).into(),
                    train: t,
                    eval: None,
                })
                .collect(),
            ..EpochMetrics::default()
        }
    }

    fn job(epochs: Vec<EpochMetrics>) -> JobRecord {
        let mut j = JobRecord::pending("e", Variant::WHOLE, 5, 1, ProtocolKind::TrainTest);
        j.epochs = epochs;
        j
    }

    #[test]
    fn the_layer_silent_since_the_earliest_epoch_is_named() {
        // fc1 falls silent at epoch 2, fc2 at epoch 1 and never fires.
        let j = job(vec![
            rates(1, &[0.3, 0.1, 0.01, 0.0]),
            rates(2, &[0.3, 0.1, 0.0, 0.0]),
            rates(3, &[0.3, 0.1, 0.0, 0.0]),
        ]);
        let s = silent(&j).unwrap();
        assert_eq!((s.quiet_layer.as_str(), s.quiet_since), ("fc2", 1));
        // conv2 silent from epoch 1 too: the earlier layer wins the tie.
        let j = job(vec![
            rates(1, &[0.3, 0.0, 0.0, 0.0]),
            rates(2, &[0.3, 0.0, 0.0, 0.0]),
        ]);
        let s = silent(&j).unwrap();
        assert_eq!((s.quiet_layer.as_str(), s.quiet_since), ("conv2", 1));
    }

    #[test]
    fn an_output_layer_that_fired_once_or_no_rates_is_not_silent() {
        let j = job(vec![
            rates(1, &[0.3, 0.1, 0.01, 0.001]),
            rates(2, &[0.3, 0.1, 0.0, 0.0]),
        ]);
        assert_eq!(silent(&j), None);
        assert_eq!(silent(&job(vec![EpochMetrics::default()])), None);
        assert_eq!(silent(&job(Vec::new())), None);
    }
}
