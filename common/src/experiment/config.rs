//! The experiment and training configuration (one TOML file serves both the
//! coordinator and `worker train`), with the reference project's defaults and
//! checks that reject bad values with a message naming the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::variant::Variant;
use crate::experiment::error::{ConfigError, at_least_one, at_most, bounds, invalid};
use crate::experiment::network::{InputShape, LifSettings, Network, NetworkError, NetworkSpec};
use crate::experiment::prune::Pruner;
use crate::experiment::sections::{
    DataConfig, ProtocolConfig, ProtocolKind, SimulationConfig, TrainingConfig,
};
use crate::experiment::sweep::SweepSpec;
use crate::experiment::sweep::keys::{set_values, show_values, sweep_err};
use crate::experiment::trainer::TrainerConfig;

/// The whole file: `[data]`, `[protocol]`, `[simulation]`, `[training]`,
/// `[network]`, `[sweep]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// An optional human name for the experiment.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the data set lives.
    pub data: DataConfig,
    /// The cross-validation matrix.
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Time and neuron parameters.
    #[serde(default)]
    pub simulation: SimulationConfig,
    /// Optimisation and input settings.
    #[serde(default)]
    pub training: TrainingConfig,
    /// `[network]`: the block list ([`crate::experiment::network`]); absent (and left out
    /// of the serialised config, so identities made before it existed stand)
    /// for the reference SLANIMALSNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    /// `[sweep]`: configurations to compare ([`crate::experiment::sweep`]); absent (and
    /// left out of the serialised config) for a single configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSpec>,
    /// `[trainer]`: the training script that runs the jobs
    /// ([`crate::experiment::trainer`]); absent (and left out of the
    /// serialised config) for the native engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<TrainerConfig>,
}

impl ExperimentConfig {
    /// Reads, parses and validates a TOML file; a relative `data.root` is resolved
    /// against the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with(path, Self::from_toml_str)
    }

    /// Reads the file at `path` and parses it with `parse`; a parse error
    /// names the file and a relative `data.root` is resolved against its folder.
    pub(crate) fn load_with(
        path: &Path,
        parse: impl FnOnce(&str) -> Result<Self, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut config = parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if config.data.root.is_relative()
            && let Some(dir) = path.parent()
        {
            config.data.root = dir.join(&config.data.root);
        }
        Ok(config)
    }

    /// Parses and validates TOML text (paths are left as written).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let mut config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        // The default variants narrow to those the data set offers.
        if config.protocol.variants == ProtocolConfig::default().variants {
            let offered = config.data.kind.variants();
            config.protocol.variants.retain(|v| offered.contains(v));
        }
        // A verified experiment trains every job deterministic: the original
        // and its replay alike, and no worker can tell which is replayed.
        if config.protocol.verify.is_some() {
            config.training.deterministic = true;
        }
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML text (what ran, saved beside the weights).
    pub fn to_toml_string(&self) -> String {
        // Serialising plain structs of numbers, strings and enums cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The config one job runs: this one with the seed and variant lists
    /// narrowed to the job's own (a job's stored config does not grow with the
    /// experiment's matrix, and nothing in it concerns other jobs) and without
    /// `[sweep]` (a sweep's job runs one configuration, already applied),
    /// and without a `[trainer]` that names the native engine (with any
    /// script settings it carries for a sweep's other rows).
    pub fn for_job(&self, seed: u64, variant: Variant) -> Self {
        let mut job = self.clone();
        job.protocol.seeds = vec![seed];
        job.protocol.variants = vec![variant];
        job.sweep = None;
        if job.trainer.as_ref().is_some_and(TrainerConfig::is_native) {
            job.trainer = None;
        }
        job
    }

    /// Checks every value's range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let p = &self.protocol;
        if p.folds < 2 {
            return Err(invalid(
                "protocol.folds",
                format!("{} folds; need at least 2", p.folds),
            ));
        }
        if p.seeds.is_empty() {
            return Err(invalid("protocol.seeds", "no seeds given"));
        }
        if p.variants.is_empty() {
            return Err(invalid("protocol.variants", "no variants given"));
        }
        let offered = self.data.kind.variants();
        if let Some(v) = p.variants.iter().find(|v| !offered.contains(v)) {
            return Err(invalid(
                "protocol.variants",
                format!(
                    "{v} is not offered by {} (it offers {})",
                    self.data.kind,
                    offered
                        .iter()
                        .map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if !(p.val_fraction > 0.0 && p.val_fraction < 1.0) {
            return Err(invalid(
                "protocol.val_fraction",
                format!("{} is not in (0, 1)", p.val_fraction),
            ));
        }
        at_least_one("protocol.max_attempts", p.max_attempts)?;
        if let Some(verify) = p.verify {
            verify.validate()?;
            if !self.training.deterministic {
                return Err(invalid(
                    "training.deterministic",
                    "protocol.verify replays jobs to compare them bit for bit: every job must train deterministic",
                ));
            }
        }
        if p.kind == ProtocolKind::Official && !self.data.kind.has_official_split() {
            return Err(invalid(
                "protocol.kind",
                format!(
                    "\"official\": {} has no split of its own; use \"train-val-test\" or \"train-test\"",
                    self.data.kind
                ),
            ));
        }
        if self.training.patience > 0 && p.kind != ProtocolKind::TrainValTest {
            return Err(invalid(
                "training.patience",
                "early stopping watches validation accuracy: it needs protocol.kind = \"train-val-test\"",
            ));
        }
        if let Some(name) = &self.name {
            if name.len() > bounds::NAME_BYTES {
                return Err(invalid(
                    "name",
                    format!("{} bytes; the limit is {}", name.len(), bounds::NAME_BYTES),
                ));
            }
            crate::names::check_no_control(name).map_err(|m| invalid("name", m))?;
        }
        at_most("protocol.folds", p.folds, bounds::FOLDS)?;
        if p.seeds.len() > bounds::SEEDS {
            return Err(invalid(
                "protocol.seeds",
                format!("{} seeds; the limit is {}", p.seeds.len(), bounds::SEEDS),
            ));
        }
        at_most(
            "protocol.max_attempts",
            p.max_attempts,
            bounds::MAX_ATTEMPTS,
        )?;
        at_most(
            "protocol.epoch_timeout_s",
            p.epoch_timeout_s,
            bounds::EPOCH_TIMEOUT_S,
        )?;
        self.data.validate()?;
        self.simulation.validate()?;
        self.training.validate()?;
        if let Some(trainer) = &self.trainer {
            trainer.validate()?;
        }
        self.validate_network(self.data.kind.classes() as u32)?;
        self.validate_sweep()
    }

    /// The experiment's block list: `[network]`'s, or the reference for
    /// `classes` classes when there is none.
    pub fn network_spec(&self, classes: u32) -> NetworkSpec {
        match &self.network {
            Some(spec) => spec.clone(),
            None => NetworkSpec::reference(classes),
        }
    }

    /// The experiment's network resolved on its input (DVS128 down-scaled by
    /// `data.downscale`) with `[simulation]`'s neuron settings.
    pub fn network(&self, classes: u32) -> Result<Network, NetworkError> {
        self.network_spec(classes).resolve(
            InputShape::dvs128(self.data.downscale),
            classes,
            LifSettings::from(&self.simulation),
        )
    }

    /// Checks the network for a data set of `classes` classes (the data
    /// kind's, from [`ExperimentConfig::validate`]); the error names the block.
    pub fn validate_network(&self, classes: u32) -> Result<(), ConfigError> {
        self.network(classes)
            .map(|_| ())
            .map_err(|e| ConfigError::Invalid {
                key: e.key(),
                message: e.problem.to_string(),
            })
    }

    /// Checks `[sweep]` when there is one (its size, every value on its own,
    /// every configuration, the pruning rule), and that the experiment plans
    /// at most [`bounds::JOBS`] jobs.
    pub fn validate_sweep(&self) -> Result<(), ConfigError> {
        let configurations = match &self.sweep {
            Some(spec) => {
                spec.check_size()?;
                let base = self.sweep_base()?;
                for (key, value) in spec.probes() {
                    Self::with_sweep_values(&base, &[(key, &value)], key)?;
                }
                let rows = spec.rows(&base)?;
                for row in &rows {
                    Self::with_sweep_values(&base, &row.pairs(), &row.label)?;
                }
                self.pruning()?;
                rows.len()
            }
            None => 1,
        };
        let p = &self.protocol;
        let jobs = [configurations, p.seeds.len(), p.variants.len()]
            .into_iter()
            .fold(u64::from(p.folds), |n, k| n.saturating_mul(k as u64));
        if jobs > bounds::JOBS {
            return Err(ConfigError::TooLarge {
                key: "protocol".to_owned(),
                what: "jobs (configurations x seeds x variants x folds)",
                count: jobs,
                limit: bounds::JOBS,
            });
        }
        Ok(())
    }

    /// This experiment without `[sweep]` as a table, what a sweep's values
    /// are set into.
    pub fn sweep_base(&self) -> Result<toml::Table, ConfigError> {
        let mut base = self.clone();
        base.sweep = None;
        toml::Table::try_from(&base).map_err(|e| sweep_err("", e.to_string()))
    }

    /// The experiment `base` (see [`ExperimentConfig::sweep_base`]) with a
    /// sweep's `values` set at their dotted keys, validated; the error names
    /// `sweep.<key_for_errors>` and the values.
    pub fn with_sweep_values(
        base: &toml::Table,
        values: &[(&str, &toml::Value)],
        key_for_errors: &str,
    ) -> Result<Self, ConfigError> {
        let table = set_values(base, values, key_for_errors)?;
        let shown = show_values(values);
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                sweep_err(key_for_errors, format!("value {shown}: {e}"))
            })?;
        config
            .validate()
            .map_err(|e| sweep_err(key_for_errors, format!("value {shown}: {e}")))?;
        Ok(config)
    }

    /// The rule the experiment prunes its sweep by (its `[sweep]` pruning
    /// settings checked against its protocol and epochs), `None` when it
    /// does not prune.
    pub fn pruning(&self) -> Result<Option<Pruner>, ConfigError> {
        self.sweep
            .as_ref()
            .and_then(SweepSpec::prune)
            .map(|settings| settings.rule(self.protocol.kind, self.training.epochs))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::frames::BinMode;
    use crate::experiment::prune::PruneRule;

    #[test]
    fn defaults_are_the_reference() -> Result<(), ConfigError> {
        let c = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n")?;
        assert_eq!(c.simulation, SimulationConfig::default());
        assert_eq!((c.simulation.steps, c.simulation.dt_ms), (50, 30));
        assert_eq!(
            (c.training.batch, c.training.test_batch, c.training.epochs),
            (8, 32, 400)
        );
        assert_eq!(c.training.bin_mode, BinMode::Or);
        assert_eq!(c.protocol.kind, ProtocolKind::TrainValTest);
        Ok(())
    }

    #[test]
    fn a_name_with_control_characters_is_refused_naming_the_character() {
        let text = "name = \"run\\u001b[2J\"\n[data]\nroot = \"d\"\n";
        let err = ExperimentConfig::from_toml_str(text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("name") && err.contains("U+001B"), "{err}");
    }

    #[test]
    fn patience_defaults_to_off_and_stays_out_of_the_serialised_config() {
        let text = "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-val-test\"\n";
        let c = ExperimentConfig::from_toml_str(text).unwrap();
        assert_eq!(c.training.patience, 0);
        assert!(!c.to_toml_string().contains("patience"));
        let c =
            ExperimentConfig::from_toml_str(&format!("{text}[training]\npatience = 5\n")).unwrap();
        assert_eq!(c.training.patience, 5);
        assert!(c.to_toml_string().contains("patience = 5"));
    }

    #[test]
    fn verify_trains_every_job_deterministic_and_stays_out_when_off() {
        let text = "[data]\nroot = \"d\"\n";
        let off = ExperimentConfig::from_toml_str(text).unwrap();
        assert_eq!(off.protocol.verify, None);
        assert!(!off.to_toml_string().contains("verify"));
        let on =
            ExperimentConfig::from_toml_str(&format!("{text}[protocol]\nverify = 0.25\n")).unwrap();
        assert!(on.training.deterministic);
        assert_eq!(on.protocol.verify.map(|v| v.fraction()), Some(0.25));
        let again = ExperimentConfig::from_toml_str(&on.to_toml_string()).unwrap();
        assert_eq!(again, on);
        let mut undone = on.clone();
        undone.training.deterministic = false;
        let err = undone.validate().unwrap_err().to_string();
        assert!(err.contains("training.deterministic"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[training]\nlr = -0.1", "training.lr"),
            ("[simulation]\nsteps = 0", "simulation.steps"),
            ("[training]\nbin_mode = \"MAX\"", "bin_mode"),
            ("[training]\nlearning_rate = 0.1", "learning_rate"),
            ("[protocol]\nfolds = 1", "protocol.folds"),
            ("[simulation]\nsteps = 10000000", "simulation.steps"),
            ("[simulation]\ndt_ms = 4000000000", "simulation.dt_ms"),
            ("[protocol]\nfolds = 101", "protocol.folds"),
            ("[protocol]\nmax_attempts = 1000", "protocol.max_attempts"),
            (
                "[protocol]\nepoch_timeout_s = 2592001",
                "protocol.epoch_timeout_s",
            ),
            ("[training]\nbatch = 100000", "training.batch"),
            ("[training]\ntest_batch = 100000", "training.test_batch"),
            ("[training]\nepochs = 1000000", "training.epochs"),
            ("[training]\ntest_steps = 10001", "training.test_steps"),
            (
                "[protocol]\nkind = \"train-test\"\n[training]\npatience = 3",
                "training.patience",
            ),
            ("[protocol]\nverify = 1.5", "protocol.verify"),
            ("[protocol]\nverify = 0", "protocol.verify"),
            ("[protocol]\nverify = \"some\"", "protocol.verify"),
        ];
        for (body, key) in cases {
            let text = format!("[data]\nroot = \"d\"\n{body}\n");
            let err = match ExperimentConfig::from_toml_str(&text) {
                Ok(_) => panic!("accepted {body:?}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(key), "{err:?} does not name {key}");
        }
    }

    #[test]
    fn too_many_seeds_and_a_huge_name_are_refused_and_the_limits_themselves_taken() {
        let seeds: Vec<String> = (0..=bounds::SEEDS).map(|i| i.to_string()).collect();
        let text = format!(
            "[data]\nroot = \"d\"\n[protocol]\nseeds = [{}]\n",
            seeds.join(", ")
        );
        let err = ExperimentConfig::from_toml_str(&text)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("protocol.seeds"), "{err}");
        let text = format!(
            "name = \"{}\"\n[data]\nroot = \"d\"\n",
            "n".repeat(bounds::NAME_BYTES + 1)
        );
        let err = ExperimentConfig::from_toml_str(&text)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("name"), "{err}");
        let at_limits = format!(
            "[data]\nroot = \"d\"\n[protocol]\nfolds = {}\n[simulation]\nsteps = {}\n[training]\nbatch = {}\nepochs = {}\ntest_steps = {}\n",
            bounds::FOLDS,
            bounds::STEPS,
            bounds::BATCH,
            bounds::EPOCHS,
            bounds::STEPS
        );
        assert!(ExperimentConfig::from_toml_str(&at_limits).is_ok());
    }

    #[test]
    fn round_trips_through_toml() -> Result<(), ConfigError> {
        let c = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"train-test\"\nseeds = [1, 2]\n[training]\nbin_mode = \"SUM_NORM\"\n",
        )?;
        let back = ExperimentConfig::from_toml_str(&c.to_toml_string())?;
        assert_eq!(back, c);
        Ok(())
    }

    /// TF32 is on by default (PyTorch's default) and then absent from the
    /// written config, so a config's text, and every identity made from it,
    /// is what it was before the switch; off, it is written and read back.
    #[test]
    fn tf32_defaults_to_pytorchs_and_is_written_only_when_off() -> Result<(), ConfigError> {
        let on = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n")?;
        assert!(on.training.tf32);
        assert!(!on.to_toml_string().contains("tf32"));
        let off =
            ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n[training]\ntf32 = false\n")?;
        assert!(!off.training.tf32);
        let text = off.to_toml_string();
        assert!(text.contains("tf32 = false"), "{text}");
        assert_eq!(ExperimentConfig::from_toml_str(&text)?, off);
        Ok(())
    }

    /// float32 is the default and absent from the written config (job ids
    /// stand); bf16 is written, read back, and a sweep may vary it; any other
    /// word is refused naming the key.
    #[test]
    fn precision_defaults_to_f32_and_is_written_only_as_bf16() -> Result<(), ConfigError> {
        use crate::experiment::sections::Precision;
        let plain = ExperimentConfig::from_toml_str("[data]\nroot = \"d\"\n")?;
        assert_eq!(plain.training.precision, Precision::F32);
        assert!(!plain.to_toml_string().contains("precision"));
        let bf16 = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[training]\nprecision = \"bf16\"\n",
        )?;
        assert_eq!(bf16.training.precision, Precision::Bf16);
        let text = bf16.to_toml_string();
        assert!(text.contains("precision = \"bf16\""), "{text}");
        assert_eq!(ExperimentConfig::from_toml_str(&text)?, bf16);
        let wrong = ExperimentConfig::from_toml_str(
            "[data]\nroot = \"d\"\n[training]\nprecision = \"fp8\"\n",
        );
        let err = wrong
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("precision") && err.contains("fp8"), "{err}");
        let swept = config("\"training.precision\" = [\"f32\", \"bf16\"]", "train-test")?;
        let precisions: Vec<Precision> = crate::experiment::configurations::configurations(&swept)?
            .iter()
            .map(|c| c.config.training.precision)
            .collect();
        assert!(precisions.contains(&Precision::Bf16) && precisions.contains(&Precision::F32));
        Ok(())
    }

    fn config(sweep: &str, protocol: &str) -> Result<ExperimentConfig, ConfigError> {
        ExperimentConfig::from_toml_str(&format!(
            "[data]\nroot = \"d\"\n[protocol]\nkind = \"{protocol}\"\n[training]\nepochs = 4\n[sweep]\n\"training.lr\" = [0.1, 0.01]\n{sweep}"
        ))
    }

    #[test]
    fn settings_are_read_and_checked_naming_the_key() {
        let c = config(
            "prune = \"median\"\nwarmup_epochs = 2\nmin_jobs = 3",
            "train-val-test",
        )
        .expect("valid");
        assert_eq!(
            c.pruning().expect("valid").and_then(Pruner::median),
            Some(PruneRule {
                warmup_epochs: 2,
                min_jobs: 3
            })
        );
        let none = config("", "train-val-test").expect("valid");
        assert_eq!(none.pruning().expect("valid"), None);
        for (sweep, protocol, key) in [
            ("prune = \"median\"", "train-test", "sweep.prune"),
            ("prune = \"mean\"", "train-val-test", "sweep.prune"),
            (
                "prune = \"median\"\nwarmup_epochs = 4",
                "train-val-test",
                "sweep.warmup_epochs",
            ),
            (
                "prune = \"median\"\nmin_jobs = 0",
                "train-val-test",
                "sweep.min_jobs",
            ),
            (
                "prune = \"median\"\nmin_jobs = -1",
                "train-val-test",
                "sweep.min_jobs",
            ),
            ("warmup_epochs = 1", "train-val-test", "sweep.warmup_epochs"),
        ] {
            let err = config(sweep, protocol).expect_err(sweep).to_string();
            assert!(err.contains(key), "{sweep}: {err}");
        }
    }
}
