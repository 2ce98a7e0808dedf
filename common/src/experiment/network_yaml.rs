//! Imports the reference implementation's `network.yaml` (sections
//! `Simulation`, `Training`, `Path`, `Testing`) into an [`ExperimentConfig`].
//!
//! The file is a two-level mapping of scalars, so it is parsed by hand: a
//! section line `Name:` at column 0, then indented `key: value` lines; `#`
//! starts a comment. Keys that only matter to the reference's own scripts
//! (`cuda`, `load_model`, `Path.file_list`, `weights`, `logs`, `out`) are
//! ignored; any other unknown key is an error, as in the TOML config.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::events::frames::BinMode;
use crate::experiment::config::ExperimentConfig;
use crate::experiment::error::ConfigError;
use crate::experiment::sections::{DataConfig, OptimizerKind};

/// Keys read from the reference file and deliberately ignored.
const IGNORED: [(&str, &str); 6] = [
    ("Training", "cuda"),
    ("Training", "load_model"),
    ("Path", "file_list"),
    ("Path", "weights"),
    ("Path", "logs"),
    ("Path", "out"),
];

fn parse_error(line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError::Parse {
        path: PathBuf::from("<network.yaml>"),
        message: format!("line {line}: {}", message.into()),
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str, line: usize) -> Result<T, ConfigError> {
    value.parse().map_err(|_| {
        parse_error(
            line,
            format!("{key}: {value:?} is not a number of the right kind"),
        )
    })
}

fn boolean(key: &str, value: &str, line: usize) -> Result<bool, ConfigError> {
    match value {
        "True" | "true" | "yes" => Ok(true),
        "False" | "false" | "no" => Ok(false),
        _ => Err(parse_error(
            line,
            format!("{key}: {value:?} is not True or False"),
        )),
    }
}

/// Parses the text of a reference `network.yaml`; the result is validated.
/// `Testing.steps` becomes `training.test_steps` when random crop is on
/// (otherwise tests use `Simulation.steps`, as the reference does); the
/// `Training.seed` becomes the only seed.
pub fn from_network_yaml(text: &str) -> Result<ExperimentConfig, ConfigError> {
    let mut config = ExperimentConfig {
        name: None,
        data: DataConfig {
            downscale: 1,
            root: PathBuf::from("data"),
            kind: Default::default(),
        },
        protocol: Default::default(),
        simulation: Default::default(),
        training: Default::default(),
        network: None,
        sweep: None,
        trainer: None,
    };
    let mut section: Option<String> = None;
    let mut testing_steps: Option<u32> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.split('#').next().unwrap_or_default();
        if content.trim().is_empty() {
            continue;
        }
        let indented = content.starts_with([' ', '\t']);
        let Some((key, value)) = content.trim().split_once(':') else {
            return Err(parse_error(
                line,
                format!("expected `key: value`, found {:?}", content.trim()),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if !indented {
            if !value.is_empty() {
                return Err(parse_error(
                    line,
                    format!("section {key} must not have a value"),
                ));
            }
            section = Some(key.to_owned());
            continue;
        }
        let Some(sec) = section.as_deref() else {
            return Err(parse_error(line, format!("key {key} outside any section")));
        };
        if IGNORED.contains(&(sec, key)) {
            continue;
        }
        let sim = &mut config.simulation;
        let tr = &mut config.training;
        match (sec, key) {
            ("Simulation", "steps") => sim.steps = number(key, value, line)?,
            ("Simulation", "dt") => sim.dt_ms = number(key, value, line)?,
            ("Simulation", "a1") => sim.a = number(key, value, line)?,
            ("Simulation", "Vth") => sim.vth = number(key, value, line)?,
            ("Simulation", "tau") => sim.tau = number(key, value, line)?,
            ("Training", "seed") => config.protocol.seeds = vec![number(key, value, line)?],
            ("Training", "batch") => tr.batch = number(key, value, line)?,
            ("Training", "tst_batch") => tr.test_batch = number(key, value, line)?,
            ("Training", "epochs") => tr.epochs = number(key, value, line)?,
            ("Training", "lr") => tr.lr = number(key, value, line)?,
            ("Training", "momentum") => tr.momentum = number(key, value, line)?,
            ("Training", "random_crop") => tr.random_crop = boolean(key, value, line)?,
            ("Training", "optimizer") => {
                tr.optimizer = match value {
                    "ADAM" | "Adam" | "adam" => OptimizerKind::Adam,
                    "SGD" | "sgd" => OptimizerKind::Sgd,
                    other => {
                        return Err(parse_error(
                            line,
                            format!("optimizer {other:?} is not ADAM or SGD"),
                        ));
                    }
                }
            }
            // The names are BinMode's own (as `[training] bin_mode` spells them).
            ("Training", "bin_mode") => {
                tr.bin_mode = BinMode::deserialize(toml::Value::from(value)).map_err(|_| {
                    parse_error(
                        line,
                        format!("bin_mode {value:?} is not OR, SUM or SUM_NORM"),
                    )
                })?;
            }
            ("Path", "data") => config.data.root = PathBuf::from(value),
            ("Testing", "steps") => testing_steps = Some(number(key, value, line)?),
            _ => return Err(parse_error(line, format!("unknown key {sec}.{key}"))),
        }
    }
    config.training.test_steps = match (config.training.random_crop, testing_steps) {
        (true, Some(t)) => t,
        _ => config.simulation.steps,
    };
    config.validate()?;
    Ok(config)
}

/// Reads a reference `network.yaml`; a relative `Path.data` is resolved
/// against the file's folder.
pub fn load_network_yaml(path: &Path) -> Result<ExperimentConfig, ConfigError> {
    ExperimentConfig::load_with(path, from_network_yaml)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/network.yaml"));

    #[test]
    fn reads_the_reference_file() -> Result<(), ConfigError> {
        let c = from_network_yaml(REFERENCE)?;
        assert_eq!(
            c.simulation,
            crate::experiment::sections::SimulationConfig::default()
        );
        assert_eq!(
            (c.training.batch, c.training.test_batch, c.training.epochs),
            (8, 32, 400)
        );
        assert_eq!(c.training.optimizer, OptimizerKind::Adam);
        assert_eq!(c.training.bin_mode, BinMode::Or);
        assert!(!c.training.random_crop);
        assert_eq!(c.training.test_steps, 50);
        assert_eq!(c.protocol.seeds, vec![0]);
        assert_eq!(c.data.root, PathBuf::from("../data/"));
        Ok(())
    }

    #[test]
    fn random_crop_takes_the_testing_steps() -> Result<(), ConfigError> {
        let text = REFERENCE
            .replace("random_crop:  False", "random_crop:  True")
            .replace("steps:        50", "steps:        17");
        let c = from_network_yaml(&text)?;
        assert_eq!((c.simulation.steps, c.training.test_steps), (17, 145));
        Ok(())
    }

    #[test]
    fn bad_input_names_line_and_key() {
        for (text, needle) in [
            ("Simulation:\n    steps: many\n", "line 2"),
            ("Training:\n    optimiser: ADAM\n", "Training.optimiser"),
            ("    steps: 5\n", "outside any section"),
            ("Training:\n    lr: -1.0\n", "training.lr"),
        ] {
            let err = from_network_yaml(text)
                .map(|_| ())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(needle), "{err:?} does not mention {needle}");
        }
    }
}
