//! The figures of each group (variant, protocol and, in a sweep,
//! configuration): mean ± std (population and sample) over every (seed, fold)
//! job, per-seed and per-fold tables and the confusion matrix summed.
//!
//! Every figure carries the count of jobs behind it and the count planned, so
//! a partial run is never mistaken for a finished one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use spikecv_common::dataset::variant::Variant;
use spikecv_common::experiment::job::JobStatus;
use spikecv_common::experiment::sections::ProtocolKind;

use super::configurations::ConfigurationInfo;
use super::jobs::{GroupKey, JobKey, protocol_of};
use super::metric::{Metric, values};
use crate::store::records::JobRecord;

/// The metrics of one seed over its folds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeedRow {
    /// The seed.
    pub seed: u64,
    /// Test accuracy over the seed's folds.
    pub test_accuracy: Metric,
    /// Validation accuracy over the seed's folds (`None` for train-test).
    pub val_accuracy: Option<Metric>,
}

/// The metrics of one fold over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoldRow {
    /// The fold (0-based).
    pub fold: u32,
    /// Test accuracy over the seeds.
    pub test_accuracy: Metric,
    /// Validation accuracy over the seeds (`None` for train-test).
    pub val_accuracy: Option<Metric>,
    /// Test loss over the seeds.
    pub test_loss: Metric,
}

/// Everything reported for one variant under one protocol (and, in a sweep,
/// one configuration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// Index of the configuration in the report's `configurations` (0 without a sweep).
    pub configuration: usize,
    /// The configuration's label (empty without a sweep).
    pub configuration_label: String,
    /// Data set variant.
    pub variant: Variant,
    /// Protocol.
    pub protocol: ProtocolKind,
    /// True for train-test: best test accuracy over epochs, an optimistic figure.
    pub optimistic: bool,
    /// Jobs planned (distinct seed × fold), less those pruned.
    pub planned: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// Jobs the sweep's pruner stopped (left out of every figure).
    pub pruned: usize,
    /// Test accuracy over every succeeded (seed, fold) job.
    pub test_accuracy: Metric,
    /// Validation accuracy of the selected models (`None` for train-test).
    pub val_accuracy: Option<Metric>,
    /// Test loss of the selected models.
    pub test_loss: Metric,
    /// Epoch of the selected models.
    pub best_epoch: Metric,
    /// Per-seed test accuracy (mean over folds).
    pub per_seed: Vec<SeedRow>,
    /// Spread between seeds: summary of the per-seed mean test accuracies.
    pub seed_spread: Metric,
    /// Per-fold metrics (over seeds).
    pub per_fold: Vec<FoldRow>,
    /// Confusion matrix `[true][predicted]` summed over the jobs that have one.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Jobs whose confusion matrix is in the sum.
    pub confusion_jobs: usize,
    /// Succeeded jobs whose output layer never fired ([`super::silent`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub silent_jobs: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One report per group of `planned`, in key order, each labelled with its
/// configuration's label (`#<index>` when `infos` does not list it).
pub fn groups(
    planned: &BTreeSet<JobKey>,
    by_key: &BTreeMap<JobKey, &JobRecord>,
    infos: &[ConfigurationInfo],
    classes: Option<usize>,
) -> Vec<GroupReport> {
    let group_keys: BTreeSet<GroupKey> = planned.iter().map(JobKey::group).collect();
    group_keys
        .iter()
        .map(|&group| {
            let keys: Vec<JobKey> = planned
                .iter()
                .copied()
                .filter(|k| k.group() == group)
                .collect();
            let c = group.configuration;
            let protocol = protocol_of(group.protocol);
            let mut g = group_report(group.variant, protocol, &keys, by_key, classes);
            g.configuration = c;
            g.configuration_label = infos
                .get(c)
                .map_or_else(|| format!("#{c}"), |i| i.label.clone());
            g
        })
        .collect()
}

/// The report of one group: `keys` are its planned jobs.
fn group_report(
    variant: Variant,
    protocol: ProtocolKind,
    keys: &[JobKey],
    by_key: &BTreeMap<JobKey, &JobRecord>,
    classes: Option<usize>,
) -> GroupReport {
    let optimistic = protocol == ProtocolKind::TrainTest;
    let pruned: BTreeSet<JobKey> = keys
        .iter()
        .copied()
        .filter(|k| by_key.get(k).is_some_and(|j| j.status == JobStatus::Pruned))
        .collect();
    let keys: Vec<JobKey> = keys
        .iter()
        .copied()
        .filter(|k| !pruned.contains(k))
        .collect();
    let keys = &keys[..];
    let done: Vec<&JobRecord> = keys
        .iter()
        .filter_map(|k| by_key.get(k).copied())
        .filter(|j| j.status == JobStatus::Succeeded)
        .collect();
    let planned = keys.len();
    // Only train-val-test holds out a validation set (train-test and the
    // data set's own split test the model of the last or best epoch).
    let has_val = protocol == ProtocolKind::TrainValTest;
    let val = |jobs: &[&JobRecord], n: usize| {
        has_val.then(|| Metric::of(&values(jobs, |j| j.val_accuracy), n))
    };

    let seeds: BTreeSet<u64> = keys.iter().map(|k| k.seed).collect();
    let folds: BTreeSet<u32> = keys.iter().map(|k| k.fold).collect();
    let per_seed: Vec<SeedRow> = seeds
        .iter()
        .map(|&seed| {
            let n = keys.iter().filter(|k| k.seed == seed).count();
            let jobs: Vec<&JobRecord> = done.iter().copied().filter(|j| j.seed == seed).collect();
            SeedRow {
                seed,
                test_accuracy: Metric::of(&values(&jobs, |j| j.test_accuracy), n),
                val_accuracy: val(&jobs, n),
            }
        })
        .collect();
    let seed_means: Vec<f64> = per_seed
        .iter()
        .filter_map(|r| r.test_accuracy.mean)
        .collect();
    let per_fold = folds
        .iter()
        .map(|&fold| {
            let n = keys.iter().filter(|k| k.fold == fold).count();
            let jobs: Vec<&JobRecord> = done.iter().copied().filter(|j| j.fold == fold).collect();
            FoldRow {
                fold,
                test_accuracy: Metric::of(&values(&jobs, |j| j.test_accuracy), n),
                val_accuracy: val(&jobs, n),
                test_loss: Metric::of(&values(&jobs, |j| j.test_loss), n),
            }
        })
        .collect();

    let (confusion, confusion_jobs) = sum_confusions(&done, classes);
    GroupReport {
        configuration: 0,
        configuration_label: String::new(),
        variant,
        protocol,
        optimistic,
        planned,
        succeeded: done.len(),
        pruned: pruned.len(),
        test_accuracy: Metric::of(&values(&done, |j| j.test_accuracy), planned),
        val_accuracy: val(&done, planned),
        test_loss: Metric::of(&values(&done, |j| j.test_loss), planned),
        best_epoch: Metric::of(&values(&done, |j| j.best_epoch.map(f64::from)), planned),
        seed_spread: Metric::of(&seed_means, seeds.len()),
        per_seed,
        per_fold,
        confusion,
        confusion_jobs,
        silent_jobs: 0,
    }
}

/// Sums the square confusion matrices of `classes` classes (the data set's;
/// when it is not known, the size most matrices have, the smaller on a tie),
/// so that no one job's matrix decides the size for the rest.
fn sum_confusions(jobs: &[&JobRecord], classes: Option<usize>) -> (Option<Vec<Vec<u64>>>, usize) {
    let square = |m: &&Vec<Vec<u32>>| !m.is_empty() && m.iter().all(|row| row.len() == m.len());
    let matrices: Vec<&Vec<Vec<u32>>> = jobs
        .iter()
        .filter_map(|j| j.confusion.as_ref())
        .filter(square)
        .collect();
    let common = classes.or_else(|| {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for m in &matrices {
            *counts.entry(m.len()).or_default() += 1;
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(n, _)| n)
    });
    let Some(n) = common else {
        return (None, 0);
    };
    let mut sum: Option<Vec<Vec<u64>>> = None;
    let mut used = 0;
    for m in matrices.into_iter().filter(|m| m.len() == n) {
        let acc = sum.get_or_insert_with(|| vec![vec![0; n]; n]);
        for (a, r) in acc.iter_mut().zip(m) {
            for (x, &y) in a.iter_mut().zip(r) {
                *x += u64::from(y);
            }
        }
        used += 1;
    }
    (sum, used)
}
