//! A sweep's configurations side by side: per variant and protocol, ranked,
//! each compared with the baseline pair by pair (same seed and fold) on test
//! accuracy, with Holm-adjusted p-values across every comparison of the
//! report, a recommendation made on validation accuracy only (train-val-test),
//! and what pruning saved.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spikecv_common::dataset::kind::Variant;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::Configuration;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_common::stats::paired::{self, PairedComparison};

use super::aggregate::{GroupReport, Metric};
use super::early_stop::{Saving, unspent};
use super::model::JobRecord;

/// A configuration's network in brief: its compact name and its size.
///
/// The counts are [`spikecv_common::experiment::network::Network`]'s: parameters are the
/// conv and linear layers' weights plus biases; FLOPs are 2 × the
/// multiply-accumulates of the conv and linear layers per time step × the
/// steps, for one sample's forward pass (no biases, LIF updates, pooling,
/// backward pass, nor the savings of sparse spikes). The worker runs a
/// training sample for `simulation.steps` time steps and a validation or test
/// sample for `training.test_steps`, so both figures are given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// Compact name, e.g. `c20k3-p2a-c50k3-p2a-f200-f19`.
    pub name: String,
    /// Whether it is the default network (no `[network]`: SLANIMALSNet with
    /// the reference's parameter names).
    pub reference: bool,
    /// Trainable parameters (weights and biases).
    pub parameters: u64,
    /// FLOPs of one training sample's forward pass (`simulation.steps` steps).
    pub flops_per_sample: u64,
    /// `simulation.steps`.
    pub steps: u32,
    /// FLOPs of one validation or test sample's forward pass
    /// (`training.test_steps` steps).
    pub test_flops_per_sample: u64,
    /// `training.test_steps`.
    pub test_steps: u32,
}

impl NetworkSummary {
    /// The network of `config` on a data set of `classes` classes; `None`
    /// when it does not resolve (e.g. a last layer of another class count).
    pub fn of(config: &ExperimentConfig, classes: u32) -> Option<Self> {
        let network = config.network(classes).ok()?;
        let (steps, test_steps) = (config.simulation.steps, config.training.test_steps);
        Some(Self {
            name: network.compact_name(),
            reference: config.network.is_none(),
            parameters: network.param_count(),
            flops_per_sample: network.flops_per_sample(steps),
            steps,
            test_flops_per_sample: network.flops_per_sample(test_steps),
            test_steps,
        })
    }
}

/// One configuration of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationInfo {
    /// Its index (jobs' `configuration`).
    pub index: usize,
    /// Readable label, e.g. `lr=0.0003 steps=100` (empty without a sweep).
    pub label: String,
    /// The swept values by dotted key.
    pub values: BTreeMap<String, toml::Value>,
    /// Whether the others are compared with this one.
    pub baseline: bool,
    /// Epochs a job of it trains (`None` when the config did not parse).
    pub epochs: Option<u32>,
    /// Its network: compact name, parameters, FLOPs per sample (`None` when
    /// the config did not parse or its network does not resolve).
    pub network: Option<NetworkSummary>,
}

impl ConfigurationInfo {
    /// The experiment's configurations, each network resolved for `classes`
    /// classes; when its config did not parse, one unnamed entry per index
    /// `planned` mentions, none of them a baseline, without a network.
    pub fn list(
        configs: &[Configuration],
        planned: impl Iterator<Item = usize>,
        classes: u32,
    ) -> Vec<Self> {
        if !configs.is_empty() {
            return configs
                .iter()
                .enumerate()
                .map(|(index, c)| Self {
                    index,
                    label: c.label.clone(),
                    values: c.values.clone(),
                    baseline: c.baseline,
                    epochs: Some(c.config.training.epochs),
                    network: NetworkSummary::of(&c.config, classes),
                })
                .collect();
        }
        let max = planned.max().unwrap_or(0);
        (0..=max)
            .map(|index| Self {
                index,
                label: if max == 0 {
                    String::new()
                } else {
                    format!("#{index}")
                },
                values: BTreeMap::new(),
                baseline: max == 0,
                epochs: None,
                network: None,
            })
            .collect()
    }
}

/// Which accuracy a ranking orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBasis {
    /// Mean validation accuracy of the selected models (train-val-test).
    Validation,
    /// Mean test accuracy (train-test: optimistic, no recommendation).
    TestOptimistic,
}

/// A configuration against the baseline over the same (seed, fold) jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineComparison {
    /// Differences of test accuracy (candidate − baseline), their interval and tests.
    #[serde(flatten)]
    pub paired: PairedComparison,
    /// The t-test p-value, Holm-adjusted over every comparison in the report.
    pub t_test_p_holm: Option<f64>,
    /// The Wilcoxon p-value, Holm-adjusted over every comparison in the report.
    pub wilcoxon_p_holm: Option<f64>,
}

/// One configuration's line in a ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedRow {
    /// 1 for the best; configurations without a figure come last, unranked (0).
    pub rank: usize,
    /// Configuration index.
    pub configuration: usize,
    /// Its label.
    pub label: String,
    /// Whether it is the baseline.
    pub baseline: bool,
    /// Its network (as [`ConfigurationInfo::network`]).
    pub network: Option<NetworkSummary>,
    /// Test accuracy over its succeeded jobs.
    pub test_accuracy: Metric,
    /// Validation accuracy over its succeeded jobs (train-val-test).
    pub val_accuracy: Option<Metric>,
    /// Jobs pruned.
    pub pruned: usize,
    /// The comparison with the baseline (`None` for the baseline itself).
    pub versus_baseline: Option<BaselineComparison>,
}

/// The configurations of one variant under one protocol, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    /// Data set variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// True for train-test: every figure here is optimistic.
    pub optimistic: bool,
    /// What the order is by.
    pub ranked_by: RankBasis,
    /// The configurations, ranked.
    pub rows: Vec<RankedRow>,
    /// The configuration with the best mean validation accuracy (train-val-test
    /// only: a choice made on test data would be optimistic).
    pub recommended: Option<usize>,
}

/// Compute pruning saved, estimated from each pruned job's own epoch times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruningSummary {
    /// Jobs pruned.
    pub pruned_jobs: usize,
    /// What they did not spend.
    #[serde(flatten)]
    pub saving: Saving,
}

/// The sweep's part of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepComparison {
    /// The baseline's index (`None` when unknown: config did not parse).
    pub baseline: Option<usize>,
    /// One ranking per variant and protocol.
    pub rankings: Vec<Ranking>,
    /// How many comparisons the Holm adjustment spans.
    pub comparisons: usize,
    /// What pruning saved.
    pub pruning: PruningSummary,
}

/// Test accuracy of each succeeded job of one group, by (seed, fold).
fn accuracies(
    jobs: &[&JobRecord],
    variant: Variant,
    protocol: ProtocolKind,
    configuration: usize,
) -> BTreeMap<(u64, u32), f64> {
    jobs.iter()
        .filter(|j| {
            j.variant == variant
                && j.protocol == protocol
                && j.configuration == configuration
                && j.status == JobStatus::Succeeded
        })
        .filter_map(|j| j.test_accuracy.map(|a| ((j.seed, j.fold), a)))
        .collect()
}

/// `candidate` against `baseline` over the (seed, fold) slots both have.
fn paired_with(
    candidate: &BTreeMap<(u64, u32), f64>,
    baseline: &BTreeMap<(u64, u32), f64>,
) -> Option<PairedComparison> {
    let (c, b): (Vec<f64>, Vec<f64>) = candidate
        .iter()
        .filter_map(|(k, &c)| baseline.get(k).map(|&b| (c, b)))
        .unzip();
    paired::compare(&c, &b).ok()
}

fn sort_key(row: &RankedRow, basis: RankBasis) -> Option<f64> {
    match basis {
        RankBasis::Validation => row.val_accuracy.as_ref().and_then(|m| m.mean),
        RankBasis::TestOptimistic => row.test_accuracy.mean,
    }
}

/// Ranks the configurations of each (variant, protocol), compares each with
/// the baseline and Holm-adjusts the p-values across the whole report.
pub fn compare_configurations(
    infos: &[ConfigurationInfo],
    groups: &[GroupReport],
    jobs: &[&JobRecord],
) -> SweepComparison {
    let baseline = infos.iter().find(|i| i.baseline).map(|i| i.index);
    let kinds: BTreeSet<(Variant, &'static str)> = groups
        .iter()
        .map(|g| (g.variant, g.protocol.as_str()))
        .collect();
    let mut rankings = Vec::new();
    for (variant, protocol_name) in kinds {
        let members: Vec<&GroupReport> = groups
            .iter()
            .filter(|g| g.variant == variant && g.protocol.as_str() == protocol_name)
            .collect();
        let Some(first) = members.first() else {
            continue;
        };
        let protocol = first.protocol;
        let basis = if first.optimistic {
            RankBasis::TestOptimistic
        } else {
            RankBasis::Validation
        };
        let base_acc = baseline.map(|b| accuracies(jobs, variant, protocol, b));
        let mut rows: Vec<RankedRow> = members
            .iter()
            .map(|g| RankedRow {
                rank: 0,
                configuration: g.configuration,
                label: g.configuration_label.clone(),
                baseline: Some(g.configuration) == baseline,
                network: infos.get(g.configuration).and_then(|i| i.network.clone()),
                test_accuracy: g.test_accuracy.clone(),
                val_accuracy: g.val_accuracy.clone(),
                pruned: g.pruned,
                versus_baseline: match &base_acc {
                    Some(b) if Some(g.configuration) != baseline => {
                        let c = accuracies(jobs, variant, protocol, g.configuration);
                        paired_with(&c, b).map(|paired| BaselineComparison {
                            paired,
                            t_test_p_holm: None,
                            wilcoxon_p_holm: None,
                        })
                    }
                    _ => None,
                },
            })
            .collect();
        rows.sort_by(|a, b| {
            match (sort_key(a, basis), sort_key(b, basis)) {
                (Some(x), Some(y)) => y.total_cmp(&x),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then(a.configuration.cmp(&b.configuration))
        });
        let mut rank = 0;
        for row in &mut rows {
            if sort_key(row, basis).is_some() {
                rank += 1;
                row.rank = rank;
            }
        }
        let recommended = match basis {
            RankBasis::Validation => rows
                .first()
                .filter(|r| r.rank == 1)
                .map(|r| r.configuration),
            RankBasis::TestOptimistic => None,
        };
        rankings.push(Ranking {
            variant,
            protocol,
            optimistic: basis == RankBasis::TestOptimistic,
            ranked_by: basis,
            rows,
            recommended,
        });
    }
    let comparisons = holm_adjust(&mut rankings);
    SweepComparison {
        baseline,
        rankings,
        comparisons,
        pruning: pruning_summary(infos, jobs),
    }
}

/// Fills the Holm-adjusted p-values of every comparison (t-test and
/// Wilcoxon each as their own family); returns the family size.
fn holm_adjust(rankings: &mut [Ranking]) -> usize {
    let mut slots: Vec<&mut BaselineComparison> = rankings
        .iter_mut()
        .flat_map(|r| r.rows.iter_mut())
        .filter_map(|row| row.versus_baseline.as_mut())
        .collect();
    let t: Vec<Option<f64>> = slots.iter().map(|c| c.paired.t_test_p).collect();
    let w: Vec<Option<f64>> = slots
        .iter()
        .map(|c| c.paired.wilcoxon.map(|w| w.p_value))
        .collect();
    let (t, w) = (paired::holm(&t), paired::holm(&w));
    for ((slot, t), w) in slots.iter_mut().zip(t).zip(w) {
        slot.t_test_p_holm = t;
        slot.wilcoxon_p_holm = w;
    }
    slots.len()
}

/// Epochs and time the pruned jobs did not spend.
fn pruning_summary(infos: &[ConfigurationInfo], jobs: &[&JobRecord]) -> PruningSummary {
    let mut s = PruningSummary {
        pruned_jobs: 0,
        saving: Saving::default(),
    };
    for j in jobs.iter().filter(|j| j.status == JobStatus::Pruned) {
        s.pruned_jobs += 1;
        let Some(total) = infos.get(j.configuration).and_then(|i| i.epochs) else {
            continue;
        };
        let Some((left, seconds)) = unspent(j, total) else {
            continue;
        };
        s.saving.add(j, left, seconds);
    }
    s
}
