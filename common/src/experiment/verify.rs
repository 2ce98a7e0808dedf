//! `[protocol] verify`: the share of succeeded jobs trained again by another
//! worker (docs/semantics.md, "Verified results"), and the keyed rule that
//! picks them.
//!
//! The rule is a keyed hash: SHA-256 over a per-experiment secret that only
//! the coordinator's store holds, then the job id. A worker knows the job id
//! but not the secret, so it cannot tell which of its results will be
//! replayed; every job of such an experiment trains deterministic, so
//! nothing in a lease tells them apart either.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::experiment::error::{ConfigError, invalid};

/// Which share of an experiment's succeeded jobs is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verify {
    /// This fraction (in (0, 1]) of the jobs, drawn by [`sampled`].
    Fraction(f64),
    /// Every job (`"all"`).
    All,
}

impl Verify {
    /// The share replayed, in (0, 1] once validated.
    pub fn fraction(self) -> f64 {
        match self {
            Verify::Fraction(f) => f,
            Verify::All => 1.0,
        }
    }

    /// Checks the fraction's range; the error names `protocol.verify`.
    pub fn validate(self) -> Result<(), ConfigError> {
        match self {
            Verify::All => Ok(()),
            Verify::Fraction(f) if f.is_finite() && f > 0.0 && f <= 1.0 => Ok(()),
            Verify::Fraction(f) => Err(invalid(
                "protocol.verify",
                format!("{f} is not in (0, 1]; give a fraction such as 0.1, or \"all\""),
            )),
        }
    }
}

impl fmt::Display for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verify::Fraction(v) => write!(f, "{v}"),
            Verify::All => f.write_str("all"),
        }
    }
}

impl Serialize for Verify {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verify::Fraction(v) => s.serialize_f64(*v),
            Verify::All => s.serialize_str("all"),
        }
    }
}

/// What the file may hold at `verify`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written {
    Integer(i64),
    Number(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Verify {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = "protocol.verify: expected a fraction in (0, 1] (such as 0.1) or \"all\"";
        match Written::deserialize(d).map_err(|_| serde::de::Error::custom(expected))? {
            Written::Integer(i) => Ok(Verify::Fraction(i as f64)),
            Written::Number(f) => Ok(Verify::Fraction(f)),
            Written::Text(t) if t == "all" => Ok(Verify::All),
            Written::Text(t) => Err(serde::de::Error::custom(format!("{expected}, got {t:?}"))),
        }
    }
}

/// Whether the job `job_id` of an experiment whose verification secret is
/// `secret` is replayed at `fraction`: the first eight bytes of
/// SHA-256(secret, 0x00, job id), read as a big-endian number, fall below
/// `fraction` of 2^64 (every job at 1).
pub fn sampled(secret: &[u8], job_id: &str, fraction: f64) -> bool {
    if fraction >= 1.0 {
        return true;
    }
    if fraction.is_nan() || fraction <= 0.0 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(secret);
    h.update([0u8]);
    h.update(job_id.as_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let draw = u64::from_be_bytes(first) as f64 / 2f64.powi(64);
    draw < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct P {
        verify: Verify,
    }

    #[test]
    fn reads_fractions_and_all_and_refuses_other_text() {
        let p: P = toml::from_str("verify = 0.1").unwrap();
        assert_eq!(p.verify, Verify::Fraction(0.1));
        let p: P = toml::from_str("verify = 1").unwrap();
        assert_eq!(p.verify.fraction(), 1.0);
        let p: P = toml::from_str("verify = \"all\"").unwrap();
        assert_eq!(p.verify, Verify::All);
        assert_eq!(toml::to_string(&p).unwrap().trim(), "verify = \"all\"");
        let e = toml::from_str::<P>("verify = \"some\"").unwrap_err();
        assert!(e.to_string().contains("\"all\""), "{e}");
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let e = Verify::Fraction(bad).validate().unwrap_err();
            assert!(e.to_string().contains("protocol.verify"), "{e}");
        }
    }

    #[test]
    fn the_sample_follows_the_secret_and_its_size_the_fraction() {
        let ids: Vec<String> = (0..2000).map(|i| format!("job{i:04}")).collect();
        let pick = |secret: &[u8]| -> Vec<bool> {
            ids.iter().map(|id| sampled(secret, id, 0.1)).collect()
        };
        let (a, b) = (pick(b"one secret"), pick(b"another secret"));
        assert_ne!(a, b, "another secret draws another sample");
        let n = a.iter().filter(|s| **s).count();
        assert!((140..=260).contains(&n), "about a tenth: {n}");
        assert!(ids.iter().all(|id| sampled(b"s", id, 1.0)));
    }
}
