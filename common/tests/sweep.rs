//! `[sweep]`: configurations, labels, baselines and the errors naming the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use spikecv_common::events::frames::BinMode;
use spikecv_common::experiment::config::ExperimentConfig;
use spikecv_common::experiment::configurations::configurations;
use spikecv_common::experiment::error::ConfigError;

fn load(sweep: &str) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::from_toml_str(&format!(
        "[data]\nroot = \"d\"\n[training]\nepochs = 3\n[sweep]\n{sweep}"
    ))
}

fn err(sweep: &str) -> String {
    match load(sweep) {
        Ok(_) => panic!("accepted {sweep:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn grid_is_the_product_with_the_first_values_as_baseline() {
    let c =
        load("\"training.lr\" = [0.001, 0.0003]\n\"simulation.steps\" = [50, 100, 20]\n").unwrap();
    let confs = configurations(&c).unwrap();
    assert_eq!(confs.len(), 6);
    let labels: Vec<&str> = confs.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "steps=50 lr=0.001",
            "steps=50 lr=0.0003",
            "steps=100 lr=0.001",
            "steps=100 lr=0.0003",
            "steps=20 lr=0.001",
            "steps=20 lr=0.0003",
        ]
    );
    assert_eq!(confs.iter().filter(|c| c.baseline).count(), 1);
    assert!(confs[0].baseline);
    let c3 = &confs[3].config;
    assert_eq!((c3.simulation.steps, c3.training.lr), (100, 0.0003));
    // Everything else is the experiment's, and the sweep itself is gone.
    assert_eq!(c3.training.epochs, 3);
    assert!(c3.sweep.is_none());
    assert_eq!(confs[3].values["simulation.steps"].as_integer(), Some(100));
}

#[test]
fn unquoted_dotted_keys_mean_the_same() {
    let quoted = load(
        "\"training.bin_mode\" = [\"OR\", \"SUM\"]\n\"training.random_crop\" = [false, true]\n",
    )
    .unwrap();
    let bare =
        load("training.bin_mode = [\"OR\", \"SUM\"]\ntraining.random_crop = [false, true]\n")
            .unwrap();
    let a = configurations(&quoted).unwrap();
    let b = configurations(&bare).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[3].label, "bin_mode=SUM random_crop=true");
    assert_eq!(a[3].config.training.bin_mode, BinMode::Sum);
    assert!(a[3].config.training.random_crop);
}

#[test]
fn a_named_baseline_is_the_baseline() {
    let c = load(
        "\"training.lr\" = [0.001, 0.0003]\n\"simulation.tau\" = [0.3, 0.5]\nbaseline = { \"training.lr\" = 0.0003 }\n",
    )
    .unwrap();
    let confs = configurations(&c).unwrap();
    let base: Vec<&str> = confs
        .iter()
        .filter(|c| c.baseline)
        .map(|c| c.label.as_str())
        .collect();
    // The key the baseline leaves out takes its first value.
    assert_eq!(base, ["tau=0.3 lr=0.0003"]);
}

#[test]
fn zip_pairs_the_lists_up() {
    let c = load(
        "mode = \"zip\"\n\"training.lr\" = [0.001, 0.0003, 0.0001]\n\"simulation.steps\" = [50, 100, 100]\nbaseline = { \"simulation.steps\" = 100 }\n",
    )
    .unwrap();
    let confs = configurations(&c).unwrap();
    let labels: Vec<&str> = confs.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "steps=50 lr=0.001",
            "steps=100 lr=0.0003",
            "steps=100 lr=0.0001"
        ]
    );
    assert_eq!(
        confs.iter().map(|c| c.baseline).collect::<Vec<_>>(),
        [false, true, false]
    );
    let e = err("mode = \"zip\"\n\"training.lr\" = [0.001, 0.0003]\n\"simulation.steps\" = [50]\n");
    assert!(e.contains("sweep.training.lr") && e.contains("zip"), "{e}");
}

#[test]
fn every_bad_key_or_value_is_named() {
    let cases = [
        (
            "\"training.learning_rate\" = [0.1]",
            "sweep.training.learning_rate",
        ),
        (
            "\"training.checkpoint_every\" = [1, 2]",
            "sweep.training.checkpoint_every",
        ),
        ("\"protocol.folds\" = [2, 3]", "sweep.protocol.folds"),
        ("\"training.lr\" = [\"fast\"]", "sweep.training.lr"),
        ("\"training.lr\" = []", "sweep.training.lr"),
        ("\"training.lr\" = 0.1", "sweep.training.lr"),
        ("\"training.lr\" = [0.001, -0.1]", "sweep.training.lr"),
        ("\"simulation.tau\" = [0.3, 1.5]", "sweep.simulation.tau"),
        ("\"data.downscale\" = [1, 3]", "sweep.data.downscale"),
        (
            "\"training.bin_mode\" = [\"OR\", \"MAX\"]",
            "sweep.training.bin_mode",
        ),
        ("\"training.lr\" = [0.001, 0.001]", "sweep.training.lr"),
        (
            "\"training.lr\" = [0.001]\nbaseline = { \"training.lr\" = 0.5 }",
            "sweep.baseline.training.lr",
        ),
        (
            "\"training.lr\" = [0.001]\nbaseline = { \"simulation.steps\" = 5 }",
            "sweep.baseline.simulation.steps",
        ),
        (
            "mode = \"shuffle\"\n\"training.lr\" = [0.001]",
            "sweep.mode",
        ),
        ("mode = \"grid\"", "sweep."),
    ];
    for (body, key) in cases {
        let e = err(body);
        assert!(e.contains(key), "{body:?}: {e:?} does not name {key}");
    }
    // The message for a value that breaks validation says what is wrong.
    assert!(err("\"training.lr\" = [0.001, -0.1]").contains("-0.1"));
}

#[test]
fn without_a_sweep_nothing_changes() {
    let text = "[data]\nroot = \"d\"\n[training]\nlr = 0.01\n";
    let c = ExperimentConfig::from_toml_str(text).unwrap();
    assert!(c.sweep.is_none());
    assert!(!c.to_toml_string().contains("sweep"));
    let confs = configurations(&c).unwrap();
    assert_eq!(confs.len(), 1);
    assert!(confs[0].baseline && confs[0].label.is_empty());
    assert_eq!(confs[0].config, c);
}

#[test]
fn a_sweep_round_trips_through_toml() {
    let c = load("\"training.lr\" = [0.001, 0.0003]\nmode = \"zip\"\n").unwrap();
    let text = c.to_toml_string();
    assert!(text.contains("[sweep]"), "{text}");
    let back = ExperimentConfig::from_toml_str(&text).unwrap();
    assert_eq!(configurations(&back).unwrap(), configurations(&c).unwrap());
}

/// The written `[sweep]` is what a stored experiment's text (and so its id)
/// holds: quoted and bare dotted keys, the baseline table and the pruning
/// settings come back exactly as they were written.
#[test]
fn the_written_sweep_serialises_as_before() {
    let c = load(
        "\"training.lr\" = [0.001, 0.0003]\nsimulation.steps = [50, 100]\nmode = \"grid\"\nbaseline = { \"training.lr\" = 0.0003 }\nprune = \"median\"\nwarmup_epochs = 1\n",
    )
    .unwrap();
    let text = c.to_toml_string();
    let sweep = &text[text.find("[sweep]").unwrap()..];
    assert_eq!(
        sweep,
        "[sweep]\nmode = \"grid\"\nprune = \"median\"\n\"training.lr\" = [\n    0.001,\n    0.0003,\n]\nwarmup_epochs = 1\n\n[sweep.baseline]\n\"training.lr\" = 0.0003\n\n[sweep.simulation]\nsteps = [\n    50,\n    100,\n]\n"
    );
}

#[test]
fn rope_defaults_to_one_point_and_is_checked() {
    let rope = |s: &str| load(s).unwrap().sweep.unwrap().rope();
    assert_eq!(rope("training.lr = [0.1, 0.2]"), 1.0);
    assert_eq!(rope("rope = 0.5\ntraining.lr = [0.1, 0.2]"), 0.5);
    assert_eq!(rope("rope = 2\ntraining.lr = [0.1, 0.2]"), 2.0);
    assert_eq!(rope("rope = 0\ntraining.lr = [0.1, 0.2]"), 0.0);
    // rope is a setting, not a swept key: the configurations do not change.
    let configs = configurations(&load("rope = 0.5\ntraining.lr = [0.1, 0.2]").unwrap()).unwrap();
    assert_eq!(configs.len(), 2);
    for (bad, why) in [
        ("rope = -1.0", "at least 0"),
        ("rope = nan", "finite"),
        ("rope = inf", "finite"),
        ("rope = \"one\"", "not a number"),
    ] {
        let e = err(&format!("{bad}\ntraining.lr = [0.1, 0.2]"));
        assert!(e.contains("sweep.rope") && e.contains(why), "{bad}: {e}");
    }
}
