//! A sweep's configurations side by side: per variant and protocol, ranked,
//! each compared with the baseline pair by pair (same seed and fold) on test
//! accuracy: the corrected resampled t-test (the folds' training sets
//! overlap, so `ρ = 1/k` for k folds, 0 under the `official` protocol's one
//! split) with Holm-adjusted p-values across every comparison of the report,
//! the Bayesian correlated t-test's posterior probabilities against the
//! sweep's rope, and beside them the uncorrected paired t and Wilcoxon tests;
//! a recommendation made on validation accuracy only (train-val-test),
//! and what pruning saved.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;
use spikecv_common::stats::correlated::{self, CorrectedT, Posterior};
use spikecv_common::stats::paired::{self, PairedComparison};

use super::configurations::{ConfigurationInfo, NetworkSummary};
use super::early_stop::{Saving, unspent};
use super::groups::GroupReport;
use super::metric::{Metric, plausible};
use crate::store::records::JobRecord;

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
    /// Differences of test accuracy (candidate − baseline), their interval and
    /// the uncorrected tests (paired t, Wilcoxon).
    #[serde(flatten)]
    pub paired: PairedComparison,
    /// The corrected resampled t-test, the one the report leads with (`None`
    /// where no t-test can be made: fewer than two pairs, no spread).
    pub corrected_t: Option<CorrectedT>,
    /// The corrected t-test's p-value, Holm-adjusted over every comparison in
    /// the report.
    pub corrected_t_p_holm: Option<f64>,
    /// The Bayesian correlated t-test's posterior probabilities against the
    /// sweep's rope (`None` with fewer than two pairs).
    pub posterior: Option<Posterior>,
    /// The uncorrected t-test p-value, Holm-adjusted over every comparison in the report.
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
    /// Training samples per second over the epochs of its succeeded jobs.
    pub samples_per_second: Metric,
    /// The baseline's mean training speed over this configuration's (how
    /// many times faster the baseline trains; `None` for the baseline itself
    /// or without speeds on either side).
    pub baseline_speedup: Option<f64>,
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
    /// Half-width of the region of practical equivalence of the posteriors,
    /// percentage points (`[sweep] rope`).
    pub rope_pp: f64,
    /// What pruning saved.
    pub pruning: PruningSummary,
}

impl SweepComparison {
    /// Configuration `configuration` of `variant` under `protocol` against
    /// the baseline (`None` for the baseline itself and where none was made).
    pub fn versus_baseline(
        &self,
        variant: Variant,
        protocol: ProtocolKind,
        configuration: usize,
    ) -> Option<&BaselineComparison> {
        self.rankings
            .iter()
            .filter(|r| r.variant == variant && r.protocol == protocol)
            .flat_map(|r| &r.rows)
            .find(|row| row.configuration == configuration)?
            .versus_baseline
            .as_ref()
    }
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

/// The training speeds (samples/s) of every epoch of the succeeded jobs of
/// `configuration` for one variant under one protocol.
fn speeds(
    jobs: &[&JobRecord],
    variant: Variant,
    protocol: ProtocolKind,
    configuration: usize,
) -> Metric {
    let values: Vec<f64> = jobs
        .iter()
        .filter(|j| {
            j.variant == variant
                && j.protocol == protocol
                && j.configuration == configuration
                && j.status == JobStatus::Succeeded
        })
        .flat_map(|j| j.epochs.iter().map(|e| e.samples_per_second))
        .filter(|v| plausible(*v) && *v > 0.0)
        .collect();
    Metric::of(&values, values.len())
}

/// How many folds the jobs of one variant under one protocol were split into:
/// one under `official` (seeds on one split), else the highest fold number
/// of any of their jobs, plus one.
fn fold_count(jobs: &[&JobRecord], variant: Variant, protocol: ProtocolKind) -> u32 {
    if protocol == ProtocolKind::Official {
        return 1;
    }
    jobs.iter()
        .filter(|j| j.variant == variant && j.protocol == protocol)
        .map(|j| j.fold.saturating_add(1))
        .max()
        .unwrap_or(1)
}

/// `candidate` against `baseline` over the (seed, fold) slots both have, the
/// differences correlated by `rho`; p-values not yet Holm-adjusted.
fn paired_with(
    candidate: &BTreeMap<(u64, u32), f64>,
    baseline: &BTreeMap<(u64, u32), f64>,
    rho: f64,
    rope_pp: f64,
) -> Option<BaselineComparison> {
    let (c, b): (Vec<f64>, Vec<f64>) = candidate
        .iter()
        .filter_map(|(k, &c)| baseline.get(k).map(|&b| (c, b)))
        .unzip();
    let paired = paired::compare(&c, &b).ok()?;
    let d: Vec<f64> = c.iter().zip(&b).map(|(c, b)| c - b).collect();
    let d_pp: Vec<f64> = d.iter().map(|d| 100.0 * d).collect();
    Some(BaselineComparison {
        paired,
        corrected_t: correlated::corrected_t(&d, rho),
        corrected_t_p_holm: None,
        posterior: correlated::posterior(&d_pp, rho, rope_pp),
        t_test_p_holm: None,
        wilcoxon_p_holm: None,
    })
}

fn sort_key(row: &RankedRow, basis: RankBasis) -> Option<f64> {
    match basis {
        RankBasis::Validation => row.val_accuracy.as_ref().and_then(|m| m.mean),
        RankBasis::TestOptimistic => row.test_accuracy.mean,
    }
}

/// Ranks the configurations of each (variant, protocol), compares each with
/// the baseline (posteriors against a rope of `rope_pp` percentage points)
/// and Holm-adjusts the p-values across the whole report.
pub fn compare_configurations(
    infos: &[ConfigurationInfo],
    groups: &[GroupReport],
    jobs: &[&JobRecord],
    rope_pp: f64,
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
        if let Some(ranking) = ranking(infos, &members, baseline, jobs, rope_pp) {
            rankings.push(ranking);
        }
    }
    let comparisons = holm_adjust(&mut rankings);
    SweepComparison {
        baseline,
        rankings,
        comparisons,
        rope_pp,
        pruning: pruning_summary(infos, jobs),
    }
}

/// The ranking of `members`, the groups of one variant under one protocol
/// (`None` without any); p-values not yet Holm-adjusted.
fn ranking(
    infos: &[ConfigurationInfo],
    members: &[&GroupReport],
    baseline: Option<usize>,
    jobs: &[&JobRecord],
    rope_pp: f64,
) -> Option<Ranking> {
    let first = members.first()?;
    let (variant, protocol) = (first.variant, first.protocol);
    let basis = if first.optimistic {
        RankBasis::TestOptimistic
    } else {
        RankBasis::Validation
    };
    let base_acc = baseline.map(|b| accuracies(jobs, variant, protocol, b));
    let rho = correlated::rho_for_folds(fold_count(jobs, variant, protocol));
    let base_speed = baseline.and_then(|b| speeds(jobs, variant, protocol, b).mean);
    let mut rows: Vec<RankedRow> = members
        .iter()
        .map(|g| (g, speeds(jobs, variant, protocol, g.configuration)))
        .map(|(g, speed)| RankedRow {
            rank: 0,
            configuration: g.configuration,
            label: g.configuration_label.clone(),
            baseline: Some(g.configuration) == baseline,
            network: infos.get(g.configuration).and_then(|i| i.network.clone()),
            test_accuracy: g.test_accuracy.clone(),
            val_accuracy: g.val_accuracy.clone(),
            pruned: g.pruned,
            baseline_speedup: match (base_speed, speed.mean) {
                (Some(b), Some(c)) if Some(g.configuration) != baseline && c > 0.0 => Some(b / c),
                _ => None,
            },
            samples_per_second: speed,
            versus_baseline: match &base_acc {
                Some(b) if Some(g.configuration) != baseline => {
                    let c = accuracies(jobs, variant, protocol, g.configuration);
                    paired_with(&c, b, rho, rope_pp)
                }
                _ => None,
            },
        })
        .collect();
    rank_rows(&mut rows, basis);
    let recommended = match basis {
        RankBasis::Validation => rows
            .first()
            .filter(|r| r.rank == 1)
            .map(|r| r.configuration),
        RankBasis::TestOptimistic => None,
    };
    Some(Ranking {
        variant,
        protocol,
        optimistic: basis == RankBasis::TestOptimistic,
        ranked_by: basis,
        rows,
        recommended,
    })
}

/// Orders `rows` best first by `basis` (rows without a figure last, by
/// configuration on a tie) and numbers those with a figure from 1.
fn rank_rows(rows: &mut [RankedRow], basis: RankBasis) {
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
    for row in rows {
        if sort_key(row, basis).is_some() {
            rank += 1;
            row.rank = rank;
        }
    }
}

/// Fills the Holm-adjusted p-values of every comparison (corrected t,
/// uncorrected t and Wilcoxon each as their own family); returns the family
/// size.
fn holm_adjust(rankings: &mut [Ranking]) -> usize {
    let mut slots: Vec<&mut BaselineComparison> = rankings
        .iter_mut()
        .flat_map(|r| r.rows.iter_mut())
        .filter_map(|row| row.versus_baseline.as_mut())
        .collect();
    let corrected: Vec<Option<f64>> = slots
        .iter()
        .map(|c| c.corrected_t.map(|t| t.p_value))
        .collect();
    for (slot, p) in slots.iter_mut().zip(paired::holm(&corrected)) {
        slot.corrected_t_p_holm = p;
    }
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
