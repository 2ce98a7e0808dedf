//! `[sweep] mode = "random"`: the baseline first, draws that a seed fixes,
//! values inside their ranges and from their distributions (Kolmogorov-Smirnov
//! over 500 draws), the same splits for every configuration, and errors that
//! name the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::{Configuration, configurations};
use spikecv_common::experiment::error::ConfigError;
use spikecv_common::experiment::plan::plan_configurations;

const RANGES: &str = "mode = \"random\"
samples = 500
seed = 7
\"training.lr\" = { log_uniform = [1e-5, 1e-2] }
\"simulation.vth\" = { uniform = [0.1, 0.5] }
\"simulation.steps\" = { int_uniform = [16, 64] }
\"training.batch\" = [4, 8, 16]
";

fn load(sweep: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(&format!(
        "[data]\nroot = \"d\"\n[training]\nepochs = 3\n[protocol]\nseeds = [0, 1]\nfolds = 3\n[sweep]\n{sweep}"
    ))
}

fn drawn(sweep: &str) -> Vec<Configuration> {
    configurations(&load(sweep).unwrap()).unwrap()
}

fn floats(confs: &[Configuration], key: &str) -> Vec<f64> {
    confs[1..]
        .iter()
        .map(|c| c.values[key].as_float().unwrap())
        .collect()
}

/// The Kolmogorov-Smirnov statistic of `sample` against the CDF `cdf`.
fn ks_statistic(mut sample: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    sample.sort_by(f64::total_cmp);
    let n = sample.len() as f64;
    sample
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// D at which a true distribution is rejected with probability 0.001 over n
/// draws (the asymptotic Kolmogorov critical value 1.95 / √n).
fn critical(n: usize) -> f64 {
    1.95 / (n as f64).sqrt()
}

#[test]
fn the_baseline_is_the_experiment_as_written_and_comes_first() {
    let confs = drawn(RANGES);
    assert_eq!(confs.len(), 501);
    assert!(confs[0].baseline);
    assert_eq!(confs.iter().filter(|c| c.baseline).count(), 1);
    let written = load(RANGES).unwrap();
    let base = &confs[0].config;
    assert_eq!(base.training.lr, written.training.lr);
    assert_eq!(base.simulation.vth, written.simulation.vth);
    assert_eq!(base.simulation.steps, written.simulation.steps);
    assert_eq!(confs[0].values["training.batch"].as_integer(), Some(8));
    assert!(confs[0].label.contains("lr=0.001"), "{}", confs[0].label);
    // `baseline = {...}` sets the baseline's values.
    let named = drawn(&format!(
        "{RANGES}baseline = {{ \"training.lr\" = 0.0005 }}\n"
    ));
    assert_eq!(named[0].config.training.lr, 0.0005);
    assert_eq!(
        named[1..],
        confs[1..],
        "the draws do not depend on the baseline"
    );
}

#[test]
fn a_seed_gives_the_same_configurations_and_another_seed_others() {
    let a = drawn(RANGES);
    let b = drawn(RANGES);
    assert_eq!(a, b);
    let c = drawn(&RANGES.replace("seed = 7", "seed = 8"));
    let same = a[1..]
        .iter()
        .zip(&c[1..])
        .filter(|(x, y)| x.values == y.values)
        .count();
    assert!(same < 5, "{same} of 500 draws equal under another seed");
    // Every configuration distinct.
    let mut labels: Vec<&str> = a.iter().map(|c| c.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), a.len());
}

#[test]
fn draws_stay_in_their_ranges_and_lists() {
    let confs = drawn(RANGES);
    for c in &confs[1..] {
        let t = &c.config;
        assert!((1e-5..=1e-2).contains(&t.training.lr), "{}", t.training.lr);
        assert!(
            (0.1..=0.5).contains(&t.simulation.vth),
            "{}",
            t.simulation.vth
        );
        assert!((16..=64).contains(&t.simulation.steps));
        assert!([4, 8, 16].contains(&t.training.batch));
    }
    // Every listed batch and both ends of the integer range turn up.
    for batch in [4, 8, 16] {
        assert!(confs.iter().any(|c| c.config.training.batch == batch));
    }
    for steps in [16, 64] {
        assert!(confs.iter().any(|c| c.config.simulation.steps == steps));
    }
}

#[test]
fn uniform_and_log_uniform_draws_follow_their_distributions() {
    let confs = drawn(RANGES);
    let vth = floats(&confs, "simulation.vth");
    let d = ks_statistic(vth.clone(), |x| ((x - 0.1) / 0.4).clamp(0.0, 1.0));
    assert!(d < critical(vth.len()), "uniform: D = {d}");
    let lr = floats(&confs, "training.lr");
    let (a, b) = (1e-5f64.ln(), 1e-2f64.ln());
    let d = ks_statistic(lr.clone(), |x| ((x.ln() - a) / (b - a)).clamp(0.0, 1.0));
    assert!(d < critical(lr.len()), "log-uniform: D = {d}");
    // The test can tell: the log-uniform draws are far from uniform.
    let d_wrong = ks_statistic(lr.clone(), |x| ((x - 1e-5) / (1e-2 - 1e-5)).clamp(0.0, 1.0));
    assert!(
        d_wrong > critical(lr.len()),
        "uniform CDF not rejected: D = {d_wrong}"
    );
}

#[test]
fn every_configuration_runs_on_the_same_splits() {
    let config = load(&RANGES.replace("samples = 500", "samples = 20")).unwrap();
    let mut files: Vec<String> = (0..6).map(|i| format!("user{i:02}_indoor")).collect();
    files.extend((25..35).map(|i| format!("user{i:02}_imse")));
    let plan = plan_configurations(&config, &files, None).unwrap();
    assert_eq!(plan.configurations.len(), 21);
    let per = plan.jobs.len() / 21;
    let first = &plan.jobs[..per];
    for c in 1..21 {
        for (a, b) in plan.jobs[c * per..(c + 1) * per].iter().zip(first) {
            assert_eq!(a.configuration, c);
            assert_eq!(
                (a.variant, a.seed, a.fold, &a.split),
                (b.variant, b.seed, b.fold, &b.split)
            );
        }
    }
}

#[test]
fn mistakes_are_refused_naming_the_key() {
    let cases = [
        (
            "\"training.lr\" = { log_uniform = [1e-5, 1e-2] }\n",
            "range needs mode",
        ),
        (
            "mode = \"random\"\n\"training.lr\" = [0.1, 0.2]\n",
            "needs samples",
        ),
        (
            "mode = \"random\"\nsamples = 3\n\"training.lr\" = { log_uniform = [0.0, 1e-2] }\n",
            "low > 0",
        ),
        (
            "mode = \"random\"\nsamples = 3\n\"training.lr\" = { uniform = [0.1, 0.01] }\n",
            "low < high",
        ),
        (
            "mode = \"random\"\nsamples = 3\n\"simulation.steps\" = { int_uniform = [1.5, 9] }\n",
            "integers",
        ),
        (
            "mode = \"random\"\nsamples = 0\n\"training.lr\" = [0.1, 0.2]\n",
            "1 to",
        ),
        (
            "mode = \"random\"\nsamples = 5\n\"training.batch\" = [4, 16]\n",
            "distinct",
        ),
        (
            "mode = \"random\"\nsamples = 3\n\"training.warp\" = [1, 2]\n",
            "not a key",
        ),
        (
            "mode = \"random\"\nsamples = 3\nseed = -1\n\"training.lr\" = [0.1, 0.2]\n",
            "negative",
        ),
        (
            "samples = 3\n\"training.lr\" = [0.1, 0.2]\n",
            "only mode = \"random\"",
        ),
        (
            "mode = \"random\"\nsamples = 3\n\"simulation.steps\" = { uniform = [16, 64] }\n",
            "simulation.steps",
        ),
    ];
    for (sweep, expected) in cases {
        let error = match load(sweep) {
            Ok(_) => panic!("accepted {sweep:?}"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(expected), "{sweep:?}: {error}");
        assert!(error.contains("sweep"), "{sweep:?}: {error}");
    }
}
