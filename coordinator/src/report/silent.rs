//! Silent jobs: a spiking network whose output layer never fires has a
//! constant loss and no gradient, and learns nothing whatever its settings.
//! From the firing rates workers report with each epoch, a job is silent when
//! its output layer (the last LIF layer) fired at no training step of any
//! epoch; the report names the layer that went quiet first.

use std::fmt::Write as _;

use serde::Serialize;
use spikecv_common::dataset::kind::Variant;
use spikecv_common::experiment::sections::ProtocolKind;

use super::aggregate::Report;
use super::model::JobRecord;

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

/// Writes the silent-jobs section: how many succeeded jobs of each group
/// were silent, then one row per silent job (nothing when there are none).
pub fn write_markdown(out: &mut String, r: &Report) -> std::fmt::Result {
    use super::markdown::cell;

    let (jobs, infos) = (&r.silent_jobs, &r.configurations);
    if jobs.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n## Silent jobs\n")?;
    for g in r.groups.iter().filter(|g| g.silent_jobs > 0) {
        let label = if g.configuration_label.is_empty() {
            String::new()
        } else {
            format!(" [{}]", cell(&g.configuration_label))
        };
        writeln!(
            out,
            "- {}{label} · {}: {} of {} succeeded jobs silent (they are in the figures above).",
            g.variant, g.protocol, g.silent_jobs, g.succeeded
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "The output layer of these jobs never fired in training: their loss stays constant and no gradient flows, so they learn nothing (try another seed, a lower threshold or a longer time window). The quiet layer is the one that fell silent first.\n"
    )?;
    writeln!(
        out,
        "| variant | protocol | configuration | seed | fold | quiet layer | silent since epoch |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for j in jobs {
        let label = infos
            .get(j.configuration)
            .map(|i| i.label.as_str())
            .filter(|l| !l.is_empty())
            .map_or_else(|| "–".to_owned(), cell);
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            j.variant,
            j.protocol,
            label,
            j.seed,
            j.fold,
            cell(&j.quiet_layer),
            j.quiet_since
        )?;
    }
    Ok(())
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
        let mut j = JobRecord::pending("e", Variant::Whole, 5, 1, ProtocolKind::TrainTest);
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
