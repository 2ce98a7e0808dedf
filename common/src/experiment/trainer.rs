//! `[trainer]`: which training script runs an experiment's jobs (the native
//! engine when absent), its params handed to the script as they are, and
//! whether the worker exports frames for it; and what a worker says about the
//! trainers it was started with. docs/trainers.md is the contract.

use serde::{Deserialize, Serialize};

use crate::experiment::error::{ConfigError, invalid};

/// The built-in engine's name.
pub const NATIVE: &str = "native";
/// The longest trainer name.
pub const NAME_MAX_CHARS: usize = 64;
/// The largest `[trainer.params]`, as JSON.
pub const PARAMS_MAX_BYTES: usize = 64 << 10;

/// Refuses a trainer name that is not 1 to 64 characters of `a-z 0-9 - _ .`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > NAME_MAX_CHARS {
        return Err(format!(
            "{name:?}: a trainer name has 1 to {NAME_MAX_CHARS} characters"
        ));
    }
    match name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
    {
        Some(c) => Err(format!(
            "{name:?}: {c:?} is not allowed in a trainer name (a-z 0-9 - _ .)"
        )),
        None => Ok(()),
    }
}

fn native() -> String {
    NATIVE.to_owned()
}

/// `[trainer]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainerConfig {
    /// The trainer a worker must have registered (`native`: the engine).
    #[serde(default = "native")]
    pub name: String,
    /// Export each sample's frames as `.npy` for the script.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub frames: bool,
    /// `[trainer.params]`: the script's own settings, handed to it as they are.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub params: toml::Table,
}

impl TrainerConfig {
    /// Whether this is the native engine.
    pub fn is_native(&self) -> bool {
        self.name == NATIVE
    }

    /// Checks the name and the size of the params; the error names the key.
    /// The native engine ignores `frames` and `params` (they concern scripts,
    /// so a sweep over `trainer.name` can share them).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_name(&self.name).map_err(|m| invalid("trainer.name", m))?;
        let bytes = serde_json::to_vec(&self.params).map_or(usize::MAX, |b| b.len());
        if bytes > PARAMS_MAX_BYTES {
            return Err(invalid(
                "trainer.params",
                format!("{bytes} bytes as JSON; the limit is {PARAMS_MAX_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// Whether `[trainer]` says the native engine (what an absent one means).
pub fn is_native(trainer: Option<&TrainerConfig>) -> bool {
    trainer.is_none_or(TrainerConfig::is_native)
}

/// The trainer's name (`native` when absent).
pub fn name_of(trainer: Option<&TrainerConfig>) -> &str {
    trainer.map_or(NATIVE, |t| t.name.as_str())
}

/// A trainer a worker was started with, as it registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainerInfo {
    /// Its name.
    pub name: String,
    /// SHA-256 (hex) of its script.
    pub script_sha256: String,
    /// Its worker declares it deterministic (replays and reproductions apply).
    pub deterministic: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("stbp-pytorch").is_ok());
        assert!(check_name("a.b_c-1").is_ok());
        for bad in ["", "Caps", "with space", "x/y", &"a".repeat(65)] {
            let e = check_name(bad).err().unwrap_or_default();
            assert!(e.contains("trainer name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn params_are_bounded_and_unknown_keys_refused() {
        let t: TrainerConfig = toml::from_str("name = \"py\"\n[params]\nx = 1\n").unwrap();
        assert!(t.validate().is_ok());
        let big = format!("name = \"py\"\n[params]\nx = \"{}\"\n", "a".repeat(70_000));
        let t: TrainerConfig = toml::from_str(&big).unwrap();
        let e = t.validate().unwrap_err().to_string();
        assert!(e.contains("trainer.params"), "{e}");
        assert!(toml::from_str::<TrainerConfig>("nmae = \"py\"\n").is_err());
    }
}
