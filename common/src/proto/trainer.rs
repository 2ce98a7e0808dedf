//! A worker's registered trainers in protobuf form
//! ([`crate::experiment::trainer::TrainerInfo`]), checked on the way in.

use crate::experiment::trainer::{NATIVE, TrainerInfo, check_name};

use super::TrainerInfo as PbTrainerInfo;

/// The most trainers one worker registers.
pub const MAX_TRAINERS: usize = 64;

impl TrainerInfo {
    /// The protobuf form.
    pub fn to_proto(&self) -> PbTrainerInfo {
        PbTrainerInfo {
            name: self.name.clone(),
            script_sha256: self.script_sha256.clone(),
            deterministic: self.deterministic,
        }
    }

    /// From the protobuf form: a valid name other than `native`, a SHA-256
    /// of 64 hex digits; the error says which and why.
    pub fn from_proto(p: &PbTrainerInfo) -> Result<Self, String> {
        check_name(&p.name)?;
        if p.name == NATIVE {
            return Err(format!("{NATIVE:?} is the built-in engine, not a script"));
        }
        let hex = &p.script_sha256;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "trainer {:?}: script_sha256 is not 64 hex digits",
                p.name
            ));
        }
        Ok(Self {
            name: p.name.clone(),
            script_sha256: hex.to_ascii_lowercase(),
            deterministic: p.deterministic,
        })
    }
}

/// Every trainer of a registration, checked: at most [`MAX_TRAINERS`], each
/// valid, no name twice.
pub fn trainers_from_proto(list: &[PbTrainerInfo]) -> Result<Vec<TrainerInfo>, String> {
    if list.len() > MAX_TRAINERS {
        return Err(format!(
            "{} trainers; the limit is {MAX_TRAINERS}",
            list.len()
        ));
    }
    let mut out: Vec<TrainerInfo> = Vec::with_capacity(list.len());
    for p in list {
        let t = TrainerInfo::from_proto(p)?;
        if out.iter().any(|o| o.name == t.name) {
            return Err(format!("trainer {:?} is registered twice", t.name));
        }
        out.push(t);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(name: &str, sha: &str) -> PbTrainerInfo {
        PbTrainerInfo {
            name: name.into(),
            script_sha256: sha.into(),
            deterministic: false,
        }
    }

    #[test]
    fn registrations_are_checked() {
        let sha = "AB".repeat(32);
        let ok = trainers_from_proto(&[pb("py", &sha)]).unwrap();
        assert_eq!(ok[0].script_sha256, "ab".repeat(32));
        for (list, needle) in [
            (vec![pb("native", &sha)], "built-in"),
            (vec![pb("Py", &sha)], "trainer name"),
            (vec![pb("py", "xyz")], "64 hex"),
            (vec![pb("py", &sha), pb("py", &sha)], "twice"),
        ] {
            let e = trainers_from_proto(&list).unwrap_err();
            assert!(e.contains(needle), "{e}");
        }
    }
}
