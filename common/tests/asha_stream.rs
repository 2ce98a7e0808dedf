//! Successive halving (`prune = "asha"`) over simulated streams of epoch
//! results, against a small reference implementation written here from the
//! rule's statement: the same configurations stop, at the same rungs, after
//! the same results.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::prune::Pruner;
use spikecv_common::experiment::prune::asha::AshaRule;

/// One epoch result: configuration, job, epoch, validation accuracy.
type Event = (usize, usize, u32, f64);

/// A stream: `configs` configurations of `jobs` jobs each, every job
/// reporting its epochs in order, jobs interleaved at random; a
/// configuration's quality sets its accuracies' level.
fn stream(rng: &mut ChaCha8Rng, configs: usize, jobs: usize, epochs: u32) -> Vec<Event> {
    let quality: Vec<f64> = (0..configs).map(|_| rng.random::<f64>()).collect();
    let mut next: Vec<(usize, usize, u32)> = (0..configs)
        .flat_map(|c| (0..jobs).map(move |j| (c, j, 1)))
        .collect();
    let mut out = Vec::new();
    while !next.is_empty() {
        let i = rng.random_range(0..next.len());
        let (c, j, e) = next[i];
        let noise = rng.random::<f64>() * 0.2;
        // Accuracies on a 1/64 grid, as a validation set of 64 samples gives.
        let accuracy = ((quality[c] * 0.7 + noise + 0.01 * f64::from(e)) * 64.0).floor() / 64.0;
        out.push((c, j, e, accuracy.clamp(0.0, 1.0)));
        if e == epochs {
            next.swap_remove(i);
        } else {
            next[i].2 += 1;
        }
    }
    out
}

/// What the coordinator does with the rule: results stored per epoch; at a
/// rung, the reporting job's configuration judged on everything stored
/// there; a stopped configuration's later results never arrive.
fn production(rule: &AshaRule, events: &[Event]) -> BTreeMap<usize, (u32, usize)> {
    let mut stored: BTreeMap<u32, Vec<(usize, f64)>> = BTreeMap::new();
    let mut stopped = BTreeMap::new();
    for (i, &(c, _, e, a)) in events.iter().enumerate() {
        if stopped.contains_key(&c) {
            continue;
        }
        let at = stored.entry(e).or_default();
        at.push((c, a));
        if rule.judge(e, c, at).is_some() {
            stopped.insert(c, (e, i));
        }
    }
    stopped
}

/// The rule as stated, written independently: rungs at first·η^k < epochs;
/// at a rung, a configuration's score is the mean over its jobs there; it
/// stops if strictly below the (1 − 1/η) quantile (numpy's linear one) of the
/// other configurations' scores there; the first one at a rung goes on.
fn reference(rule: &AshaRule, events: &[Event]) -> BTreeMap<usize, (u32, usize)> {
    let eta = rule.reduction_factor as usize;
    let mut rungs = BTreeSet::new();
    let mut r = rule.first_rung as usize;
    while r < rule.max_epochs as usize {
        rungs.insert(r as u32);
        r *= eta;
    }
    // rung → configuration → accuracies seen
    let mut seen: BTreeMap<u32, BTreeMap<usize, Vec<f64>>> = BTreeMap::new();
    let mut stopped = BTreeMap::new();
    for (i, &(c, _, e, a)) in events.iter().enumerate() {
        if stopped.contains_key(&c) {
            continue;
        }
        let at = seen.entry(e).or_default();
        at.entry(c).or_default().push(a);
        if !rungs.contains(&e) {
            continue;
        }
        let score = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len() as f64;
        let own = score(&at[&c]);
        let mut others: Vec<f64> = at
            .iter()
            .filter(|(k, _)| **k != c)
            .map(|(_, v)| score(v))
            .collect();
        if others.is_empty() {
            continue;
        }
        others.sort_by(f64::total_cmp);
        let h = (others.len() - 1) as f64 * (1.0 - 1.0 / eta as f64);
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        let cutoff = others[lo] + (h - lo as f64) * (others[hi] - others[lo]);
        if own < cutoff {
            stopped.insert(c, (e, i));
        }
    }
    stopped
}

#[test]
fn matches_the_reference_on_random_streams() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let (mut total_stopped, mut total_kept) = (0, 0);
    for case in 0..200 {
        let configs = rng.random_range(1..12);
        let jobs = rng.random_range(1..5);
        let epochs = rng.random_range(2..30);
        let rule = AshaRule {
            reduction_factor: rng.random_range(2..5),
            first_rung: rng.random_range(1..epochs),
            max_epochs: epochs,
        };
        let events = stream(&mut rng, configs, jobs, epochs);
        let ours = production(&rule, &events);
        let theirs = reference(&rule, &events);
        assert_eq!(ours, theirs, "case {case}: {rule:?}");
        total_stopped += ours.len();
        total_kept += configs - ours.len();
    }
    assert!(
        total_stopped > 100,
        "the streams stop almost nothing: {total_stopped}"
    );
    assert!(
        total_kept > 100,
        "the streams stop almost everything: {total_kept} kept"
    );
}

fn config(sweep: &str) -> Result<ExperimentConfig, spikecv_common::experiment::error::ConfigError> {
    ExperimentConfig::from_toml_str(&format!(
        "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\n[training]\nepochs = 20\n[sweep]\n\"training.lr\" = [0.1, 0.01, 0.001]\n{sweep}"
    ))
}

#[test]
fn settings_are_read_and_checked_naming_the_key() {
    let c = config("prune = \"asha\"\nreduction_factor = 2\nfirst_rung = 2").unwrap();
    let rule = c.pruning().unwrap().and_then(Pruner::asha).unwrap();
    assert_eq!(rule.rungs(), [2, 4, 8, 16]);
    assert_eq!(
        c.pruning().unwrap().and_then(Pruner::median),
        None,
        "not the median rule"
    );
    let defaults = config("prune = \"asha\"")
        .unwrap()
        .pruning()
        .unwrap()
        .and_then(Pruner::asha)
        .unwrap();
    assert_eq!((defaults.reduction_factor, defaults.first_rung), (3, 1));
    for (sweep, key) in [
        (
            "prune = \"asha\"\nreduction_factor = 1",
            "sweep.reduction_factor",
        ),
        ("prune = \"asha\"\nfirst_rung = 20", "sweep.first_rung"),
        ("prune = \"asha\"\nfirst_rung = 0", "sweep.first_rung"),
        ("prune = \"asha\"\nwarmup_epochs = 2", "sweep.warmup_epochs"),
        ("reduction_factor = 2", "sweep.reduction_factor"),
        ("prune = \"median\"\nfirst_rung = 2", "sweep.first_rung"),
    ] {
        let err = config(sweep).expect_err(sweep).to_string();
        assert!(err.contains(key), "{sweep}: {err}");
    }
    let test_protocol = ExperimentConfig::from_toml_str(
        "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-test\"\n[training]\nepochs = 20\n[sweep]\n\"training.lr\" = [0.1, 0.01]\nprune = \"asha\"",
    );
    assert!(
        test_protocol
            .unwrap_err()
            .to_string()
            .contains("train-val-test")
    );
}
