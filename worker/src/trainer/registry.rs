//! The training scripts a worker was started with (`worker join --trainer
//! NAME=SCRIPT`, `--trainers FILE`), checked before anything starts: names
//! valid and not `native`, no name twice, every script present (and hashed),
//! every workdir a folder. docs/trainers.md, "On the worker".

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use spikecv_common::experiment::trainer::TrainerInfo;
use spikecv_common::proto::trainer::MAX_TRAINERS;

use super::declared::{Entry, read_file};
pub use super::declared::{MAX_GRACE_SECONDS, RegistryError, Trainer};

/// The variable naming the interpreter of `.py` scripts without one.
pub const PYTHON_VAR: &str = "SPIKECV_PYTHON";
/// The interpreter of `.py` scripts when [`PYTHON_VAR`] is not set.
pub const DEFAULT_PYTHON: &str = "python3";

/// A worker's trainers by name (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    trainers: Arc<BTreeMap<String, Trainer>>,
}

impl Registry {
    /// The trainer registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Trainer> {
        self.trainers.get(name)
    }

    /// Whether no trainer is registered.
    pub fn is_empty(&self) -> bool {
        self.trainers.is_empty()
    }

    /// What the worker registers: every trainer, by name.
    pub fn infos(&self) -> Vec<TrainerInfo> {
        self.trainers.values().map(Trainer::info).collect()
    }

    /// The trainers of `--trainer NAME=SCRIPT` values (relative scripts from
    /// the current folder) and of a trainers file (relative paths from its
    /// folder); `.py` scripts without an interpreter run with `python`.
    pub fn build(
        flags: &[String],
        file: Option<&Path>,
        python: &OsString,
    ) -> Result<Registry, RegistryError> {
        let mut found: BTreeMap<String, (String, Trainer)> = BTreeMap::new();
        let mut add = |origin: String, trainer: Trainer| match found.get(&trainer.name) {
            Some((first, _)) => Err(RegistryError::Twice {
                name: trainer.name.clone(),
                first: first.clone(),
                second: origin,
            }),
            None => {
                found.insert(trainer.name.clone(), (origin, trainer));
                Ok(())
            }
        };
        for value in flags {
            let origin = format!("--trainer {value}");
            let (name, script) = value
                .split_once('=')
                .ok_or_else(|| RegistryError::BadFlag {
                    value: value.clone(),
                })?;
            let entry = Entry::script_only(PathBuf::from(script));
            add(origin.clone(), entry.resolve(&origin, name, None, python)?)?;
        }
        if let Some(path) = file {
            for (name, entry) in read_file(path)? {
                let origin = format!("trainers file {}", path.display());
                add(
                    origin.clone(),
                    entry.resolve(&origin, &name, path.parent(), python)?,
                )?;
            }
        }
        if found.len() > MAX_TRAINERS {
            return Err(RegistryError::TooMany { count: found.len() });
        }
        let trainers = found.into_iter().map(|(n, (_, t))| (n, t)).collect();
        Ok(Registry {
            trainers: Arc::new(trainers),
        })
    }
}

/// Flags naming the training scripts a worker runs (docs/trainers.md),
/// checked by [`TrainerSettings::from_args`] (flattened into `worker join`
/// and `worker reproduce`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrainerArgs {
    /// Register a training script as `NAME=SCRIPT` (repeatable): a `.py`
    /// file runs as `python3 SCRIPT` (`$SPIKECV_PYTHON` names another
    /// interpreter), anything else runs as it is.
    #[arg(long = "trainer", value_name = "NAME=SCRIPT")]
    pub trainer: Vec<String>,
    /// A TOML file of trainers: `[trainers.NAME]` with `script` and optionally
    /// `interpreter`, `args`, `workdir`, `env`, `deterministic`.
    #[arg(long, value_name = "FILE")]
    pub trainers: Option<std::path::PathBuf>,
    /// Seconds a script gets to write its checkpoint and exit after SIGTERM
    /// before it is killed.
    #[arg(long, default_value_t = 30.0)]
    pub trainer_grace_seconds: f64,
}

/// The trainers and the grace period of `worker join`, from its flags.
#[derive(Debug, Clone, Default)]
pub struct TrainerSettings {
    /// The trainers.
    pub registry: Registry,
    /// Time a script gets after SIGTERM before SIGKILL.
    pub grace: Duration,
}

impl TrainerSettings {
    /// Checks the flags: every trainer ([`Registry::build`], `.py` scripts
    /// with `$SPIKECV_PYTHON` or `python3`) and the grace period.
    pub fn from_args(args: &TrainerArgs) -> Result<TrainerSettings, RegistryError> {
        let value = args.trainer_grace_seconds;
        if !(0.0..=MAX_GRACE_SECONDS).contains(&value) {
            return Err(RegistryError::Grace { value });
        }
        let python = std::env::var_os(PYTHON_VAR)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from(DEFAULT_PYTHON));
        Ok(TrainerSettings {
            registry: Registry::build(&args.trainer, args.trainers.as_deref(), &python)?,
            grace: Duration::from_secs_f64(value),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn python() -> OsString {
        OsString::from("python3")
    }

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn flag(name: &str, path: &Path) -> String {
        format!("{name}={}", path.display())
    }

    #[test]
    fn a_flag_registers_a_python_script_with_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = script(dir.path(), "train.py", "print('hi')\n");
        let r = Registry::build(&[flag("py", &s)], None, &python()).unwrap();
        let t = r.get("py").unwrap();
        assert_eq!(t.interpreter, Some(python()));
        assert!(t.script.is_absolute());
        // sha256("print('hi')\n")
        assert_eq!(t.sha256, crate::manifest::file_sha256(&s).unwrap());
        assert_eq!(t.sha256.len(), 64);
        assert!(!t.deterministic && t.workdir.is_none());
        let infos = r.infos();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].name, "py");
        assert!(infos[0].to_proto().script_sha256 == t.sha256);
    }

    #[test]
    fn a_file_says_more_and_its_paths_start_at_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "train.py", "x\n");
        std::fs::create_dir(dir.path().join("lab")).unwrap();
        let file = script(
            dir.path(),
            "trainers.toml",
            "[trainers.stbp]\nscript = \"train.py\"\ninterpreter = \"venv/bin/python\"\n\
             args = [\"--quiet\"]\nworkdir = \"lab\"\nenv = { OMP_NUM_THREADS = \"4\" }\n\
             deterministic = true\n",
        );
        let r = Registry::build(&[], Some(&file), &python()).unwrap();
        let t = r.get("stbp").unwrap();
        assert_eq!(
            t.interpreter,
            Some(dir.path().join("venv/bin/python").into_os_string())
        );
        assert_eq!(t.args, vec!["--quiet"]);
        assert_eq!(t.workdir, Some(dir.path().join("lab")));
        assert_eq!(t.env.get("OMP_NUM_THREADS").map(String::as_str), Some("4"));
        assert!(t.deterministic && r.infos()[0].deterministic);
    }

    #[test]
    fn bad_registrations_are_refused_naming_what() {
        let dir = tempfile::tempdir().unwrap();
        let s = script(dir.path(), "train.py", "x\n");
        let plain = script(dir.path(), "run.sh", "x\n");
        let refused = |flags: &[String], file: Option<&Path>| {
            Registry::build(flags, file, &python())
                .unwrap_err()
                .to_string()
        };
        let e = refused(&["py".into()], None);
        assert!(e.contains("NAME=SCRIPT"), "{e}");
        let e = refused(&[flag("Py", &s)], None);
        assert!(e.contains("trainer name"), "{e}");
        let e = refused(&[flag("native", &s)], None);
        assert!(e.contains("built-in"), "{e}");
        let e = refused(&[flag("a", &s), flag("a", &s)], None);
        assert!(e.contains("twice"), "{e}");
        let gone = dir.path().join("gone.py");
        let e = refused(&[flag("a", &gone)], None);
        assert!(e.contains(&gone.display().to_string()), "{e}");
        let e = refused(&[flag("a", &plain)], None);
        assert!(e.contains("not executable"), "{e}");
        let e = refused(&[flag("a", dir.path())], None);
        assert!(e.contains("not a file"), "{e}");
        let unknown = script(
            dir.path(),
            "u.toml",
            "[trainers.a]\nscript = \"train.py\"\nscirpt = 1\n",
        );
        let e = refused(&[], Some(&unknown));
        assert!(e.contains("scirpt"), "{e}");
        let top = script(dir.path(), "t.toml", "[trainer.a]\nscript = \"train.py\"\n");
        let e = refused(&[], Some(&top));
        assert!(e.contains("trainer"), "{e}");
        let nodir = script(
            dir.path(),
            "w.toml",
            "[trainers.a]\nscript = \"train.py\"\nworkdir = \"nowhere\"\n",
        );
        let e = refused(&[], Some(&nodir));
        assert!(e.contains("workdir"), "{e}");
        let env = script(
            dir.path(),
            "e.toml",
            "[trainers.a]\nscript = \"train.py\"\nenv = { \"A=B\" = \"1\" }\n",
        );
        let e = refused(&[], Some(&env));
        assert!(e.contains("env \"A=B\""), "{e}");
        let e = refused(&[], Some(&dir.path().join("none.toml")));
        assert!(e.contains("none.toml"), "{e}");
    }

    #[test]
    fn the_grace_period_is_checked() {
        let mut args = TrainerArgs {
            trainer_grace_seconds: 30.0,
            ..TrainerArgs::default()
        };
        let s = TrainerSettings::from_args(&args).unwrap();
        assert_eq!(s.grace, Duration::from_secs(30));
        assert!(s.registry.is_empty());
        for bad in [-1.0, f64::NAN, 1e9] {
            args.trainer_grace_seconds = bad;
            assert!(TrainerSettings::from_args(&args).is_err(), "{bad}");
        }
    }
}
