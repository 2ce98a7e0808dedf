//! The manifest's protobuf form ([`crate::experiment::manifest::Manifest`]):
//! every field maps one to one.

use crate::experiment::manifest::{Manifest, Switches};

use super::Manifest as PbManifest;

impl Manifest {
    /// The protobuf form.
    pub fn to_proto(&self) -> PbManifest {
        PbManifest {
            spikecv_version: self.spikecv_version.clone(),
            commit: self.commit.clone(),
            binary_sha256: self.binary_sha256.clone(),
            libtorch: self.libtorch.clone(),
            cuda: self.cuda.clone(),
            cudnn: self.cudnn.clone(),
            driver: self.driver.clone(),
            device: self.device.clone(),
            device_model: self.device_model.clone(),
            instruction_set: self.instruction_set.clone(),
            threads: self.threads,
            data_fingerprint: self.data_fingerprint.clone(),
            precision: self.precision.clone(),
            tf32: self.switches.tf32,
            deterministic: self.switches.deterministic,
            cudnn_deterministic: self.switches.cudnn_deterministic,
            cudnn_benchmark: self.switches.cudnn_benchmark,
            trainer: self.trainer.clone(),
            trainer_sha256: self.trainer_sha256.clone(),
        }
    }

    /// From the protobuf form.
    pub fn from_proto(p: &PbManifest) -> Self {
        Self {
            spikecv_version: p.spikecv_version.clone(),
            commit: p.commit.clone(),
            binary_sha256: p.binary_sha256.clone(),
            libtorch: p.libtorch.clone(),
            cuda: p.cuda.clone(),
            cudnn: p.cudnn.clone(),
            driver: p.driver.clone(),
            device: p.device.clone(),
            device_model: p.device_model.clone(),
            instruction_set: p.instruction_set.clone(),
            threads: p.threads,
            data_fingerprint: p.data_fingerprint.clone(),
            precision: p.precision.clone(),
            switches: Switches {
                tf32: p.tf32,
                deterministic: p.deterministic,
                cudnn_deterministic: p.cudnn_deterministic,
                cudnn_benchmark: p.cudnn_benchmark,
            },
            trainer: p.trainer.clone(),
            trainer_sha256: p.trainer_sha256.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = Manifest {
            spikecv_version: "0.1.0".into(),
            commit: Some("abc".into()),
            binary_sha256: "00".into(),
            libtorch: "2.11.0".into(),
            cuda: Some("13.0".into()),
            cudnn: Some("91002".into()),
            driver: None,
            device: "cuda:0".into(),
            device_model: "NVIDIA H100".into(),
            instruction_set: "sm_90".into(),
            threads: 16,
            data_fingerprint: "ff".into(),
            precision: "float32".into(),
            switches: Switches {
                tf32: true,
                deterministic: false,
                cudnn_deterministic: true,
                cudnn_benchmark: false,
            },
            trainer: None,
            trainer_sha256: None,
        };
        assert_eq!(Manifest::from_proto(&m.to_proto()), m);
    }
}
