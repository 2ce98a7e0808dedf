//! A trainer as declared: a `--trainer NAME=SCRIPT` value or a
//! `[trainers.NAME]` table of a trainers file (unknown keys refused), and
//! its check (name, script present and runnable, workdir, env) into a
//! [`Trainer`] with its script's hash; the errors name where it was given.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikecv_common::experiment::trainer::{NATIVE, TrainerInfo, check_name};
use spikecv_common::proto::trainer::MAX_TRAINERS;

/// The longest grace period `--trainer-grace-seconds` takes.
pub const MAX_GRACE_SECONDS: f64 = 86_400.0;

/// One registered training script, as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trainer {
    /// Its name (what `[trainer] name` says).
    pub name: String,
    /// The script, absolute: the file hashed and run.
    pub script: PathBuf,
    /// What runs the script (`python3 SCRIPT`); `None`: the script itself.
    pub interpreter: Option<OsString>,
    /// Arguments after the script.
    pub args: Vec<String>,
    /// The folder it runs in; `None`: the job's folder.
    pub workdir: Option<PathBuf>,
    /// Variables added to the worker's environment.
    pub env: BTreeMap<String, String>,
    /// Its worker declares it deterministic (replays and reproductions apply).
    pub deterministic: bool,
    /// SHA-256 (hex) of the script, read at start.
    pub sha256: String,
}

impl Trainer {
    /// What the worker registers for it.
    pub fn info(&self) -> TrainerInfo {
        TrainerInfo {
            name: self.name.clone(),
            script_sha256: self.sha256.clone(),
            deterministic: self.deterministic,
        }
    }
}

/// Why the trainers given to a worker cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A `--trainer` value without `=`.
    #[error("--trainer {value:?}: expected NAME=SCRIPT")]
    BadFlag {
        /// The value.
        value: String,
    },
    /// A name that is not a trainer name.
    #[error("{origin}: {message}")]
    Name {
        /// Where it was given.
        origin: String,
        /// Why.
        message: String,
    },
    /// `native` given as a script's name.
    #[error("{origin}: \"{NATIVE}\" is the built-in engine; a script cannot take its name")]
    Native {
        /// Where it was given.
        origin: String,
    },
    /// One name given twice.
    #[error("trainer {name:?} is registered twice ({first}; {second})")]
    Twice {
        /// The name.
        name: String,
        /// Where first.
        first: String,
        /// Where again.
        second: String,
    },
    /// More trainers than a registration carries.
    #[error("{count} trainers; a worker registers at most {MAX_TRAINERS}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// A script that cannot be read (missing, unreadable).
    #[error("{origin}: trainer {name:?}: script {}: {source}", path.display())]
    Script {
        /// Where it was given.
        origin: String,
        /// The trainer.
        name: String,
        /// The script as given (resolved).
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A script that is no file, or would run as it is without being executable.
    #[error("{origin}: trainer {name:?}: script {}: {what}", path.display())]
    NotRunnable {
        /// Where it was given.
        origin: String,
        /// The trainer.
        name: String,
        /// The script.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
    /// A workdir that is not a folder.
    #[error("{origin}: trainer {name:?}: workdir {} is not a folder", path.display())]
    Workdir {
        /// Where it was given.
        origin: String,
        /// The trainer.
        name: String,
        /// The folder.
        path: PathBuf,
    },
    /// An `env` entry a process cannot carry.
    #[error("{origin}: trainer {name:?}: env {key:?}: {what}")]
    Env {
        /// Where it was given.
        origin: String,
        /// The trainer.
        name: String,
        /// The variable.
        key: String,
        /// What is wrong.
        what: &'static str,
    },
    /// The trainers file cannot be read.
    #[error("trainers file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The trainers file is not TOML of the expected shape (unknown keys refused).
    #[error("trainers file {}: {message}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the key).
        message: String,
    },
    /// A grace period that is negative, not a number or too long.
    #[error("--trainer-grace-seconds {value}: expected 0 to {MAX_GRACE_SECONDS} seconds")]
    Grace {
        /// The value.
        value: f64,
    },
}

/// The trainers file: `[trainers.NAME]` tables and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrainersFile {
    #[serde(default)]
    trainers: BTreeMap<String, Entry>,
}

/// One trainer as written (paths as given).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry {
    script: PathBuf,
    #[serde(default)]
    interpreter: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    workdir: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    deterministic: bool,
}

pub(super) fn read_file(path: &Path) -> Result<BTreeMap<String, Entry>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file: TrainersFile = toml::from_str(&text).map_err(|e| RegistryError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(file.trainers)
}

/// `path` taken from `base` when relative (the current folder without one).
fn from_base(path: &Path, base: Option<&Path>) -> PathBuf {
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path.to_owned(),
    }
}

impl Entry {
    /// A `--trainer NAME=SCRIPT` value: the script alone.
    pub(super) fn script_only(script: PathBuf) -> Entry {
        Entry {
            script,
            ..Entry::default()
        }
    }

    /// The trainer this entry registers as `name`, its script read and hashed.
    pub(super) fn resolve(
        self,
        origin: &str,
        name: &str,
        base: Option<&Path>,
        python: &OsString,
    ) -> Result<Trainer, RegistryError> {
        check_name(name).map_err(|message| RegistryError::Name {
            origin: origin.to_owned(),
            message,
        })?;
        if name == NATIVE {
            return Err(RegistryError::Native {
                origin: origin.to_owned(),
            });
        }
        let given = from_base(&self.script, base);
        let script_err = |source| RegistryError::Script {
            origin: origin.to_owned(),
            name: name.to_owned(),
            path: given.clone(),
            source,
        };
        let script = std::fs::canonicalize(&given).map_err(script_err)?;
        let not_runnable = |what| RegistryError::NotRunnable {
            origin: origin.to_owned(),
            name: name.to_owned(),
            path: script.clone(),
            what,
        };
        let meta = std::fs::metadata(&script).map_err(script_err)?;
        if !meta.is_file() {
            return Err(not_runnable("not a file"));
        }
        // An interpreter with a folder in it is a path (from the file's
        // folder); a bare name is looked up on PATH when the script starts.
        let interpreter = match self.interpreter {
            Some(i) if i.components().count() > 1 => Some(from_base(&i, base).into_os_string()),
            Some(i) => Some(i.into_os_string()),
            None if script.extension().is_some_and(|e| e == "py") => Some(python.clone()),
            None => None,
        };
        if interpreter.is_none() && !is_executable(&meta) {
            return Err(not_runnable(
                "runs as it is (no interpreter, not .py) but is not executable",
            ));
        }
        let workdir = self.workdir.map(|w| from_base(&w, base));
        if let Some(w) = workdir.as_ref().filter(|w| !w.is_dir()) {
            return Err(RegistryError::Workdir {
                origin: origin.to_owned(),
                name: name.to_owned(),
                path: w.clone(),
            });
        }
        check_env(origin, name, &self.env)?;
        let sha256 = crate::manifest::file_sha256(&script).map_err(script_err)?;
        Ok(Trainer {
            name: name.to_owned(),
            script,
            interpreter,
            args: self.args,
            workdir,
            env: self.env,
            deterministic: self.deterministic,
            sha256,
        })
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    true
}

/// Variables a process can carry: a non-empty name without `=` or NUL, a
/// value without NUL.
fn check_env(
    origin: &str,
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), RegistryError> {
    for (key, value) in env {
        let what = if key.is_empty() {
            Some("an empty variable name")
        } else if key.contains(['=', '\0']) {
            Some("a variable name cannot hold '=' or NUL")
        } else if value.contains('\0') {
            Some("a value cannot hold NUL")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(RegistryError::Env {
                origin: origin.to_owned(),
                name: name.to_owned(),
                key: key.clone(),
                what,
            });
        }
    }
    Ok(())
}
