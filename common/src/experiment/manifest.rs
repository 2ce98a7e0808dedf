//! What a job ran on and with: the build, the libraries, the device, the
//! thread count, the data and libtorch's switches. The worker registers one
//! per slot, a finished job carries the one it ran with, and reports, MLflow
//! tags and `worker reproduce` read it back; two runs can be expected to agree
//! bit for bit only where their manifests [`agree`](Manifest::bitwise_with).

use serde::{Deserialize, Serialize};

/// The precision of a float32 job (every slot's, and a job's without
/// `[training] precision = "bf16"`).
pub const FLOAT32: &str = "float32";

/// libtorch's process-wide switches as it reports them (what a job actually
/// ran with, not what it asked for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Switches {
    /// cuDNN convolutions may use TF32.
    pub tf32: bool,
    /// Deterministic algorithms are on.
    pub deterministic: bool,
    /// cuDNN is deterministic.
    pub cudnn_deterministic: bool,
    /// cuDNN's autotuner is on.
    pub cudnn_benchmark: bool,
}

/// The fields on which bitwise agreement depends (besides both runs being
/// deterministic): the driver, the binary, the commit and the device's index
/// do not, since the kernels are named by the versions.
const DECISIVE: [&str; 12] = [
    "spikecv_version",
    "libtorch",
    "cuda",
    "cudnn",
    "device_model",
    "instruction_set",
    "threads",
    "data_fingerprint",
    "precision",
    "tf32",
    "trainer",
    "trainer_sha256",
];

/// The environment of one job (or of one slot, when a worker registers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// spikecv's version (the crates').
    pub spikecv_version: String,
    /// The git commit the binary was built from, when the build said
    /// (`SPIKECV_COMMIT` at build time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// SHA-256 of the running binary (hex); empty when it could not be read.
    pub binary_sha256: String,
    /// libtorch's version, e.g. `2.11.0`.
    pub libtorch: String,
    /// The CUDA runtime libtorch was built with (`13.0`); `None` without CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
    /// cuDNN's version (`91002`); `None` without CUDA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cudnn: Option<String>,
    /// The NVIDIA driver's version; `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The device's model: the CPU's model name or the GPU's name.
    pub device_model: String,
    /// The instruction set the kernels ran: libtorch's CPU capability
    /// (`AVX2`, `AVX512`, `DEFAULT`) on the CPU, the compute capability
    /// (`sm_90`) on a GPU.
    pub instruction_set: String,
    /// libtorch's intra-op threads.
    pub threads: u32,
    /// Fingerprint of the data set the job read (hex); empty when unknown.
    pub data_fingerprint: String,
    /// The precision the job's convolutions and linear layers computed in
    /// ([`FLOAT32`], or `bfloat16`).
    pub precision: String,
    /// libtorch's switches.
    pub switches: Switches,
    /// The training script that ran the job (docs/trainers.md); `None` for
    /// the native engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<String>,
    /// SHA-256 (hex) of that script; `None` for the native engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer_sha256: Option<String>,
}

/// A finished run's manifest and the SHA-256 of its final weights: what a
/// replay of the job compares besides the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// What the run ran on and with.
    pub manifest: Manifest,
    /// SHA-256 (hex) of the final weights file; empty when unknown.
    pub weights_sha256: String,
}

/// A field in which two manifests differ, with both values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The field's name, as in the JSON form.
    pub field: String,
    /// This manifest's value.
    pub ours: String,
    /// The other's value.
    pub theirs: String,
}

/// How two runs of one job can be compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Agreement {
    /// Both deterministic on the same device model, instruction set,
    /// thread count, data and versions: the results must agree bit for bit.
    Bitwise,
    /// Otherwise: within the tolerance of docs/semantics.md, and why.
    Tolerance {
        /// What kept the comparison from being bitwise.
        reasons: Vec<Difference>,
    },
}

impl Manifest {
    /// Every field that decides bitwise agreement, as text, by its JSON name.
    fn decisive(&self) -> Vec<(&'static str, String)> {
        self.fields()
            .into_iter()
            .filter(|(name, _)| DECISIVE.contains(name))
            .collect()
    }

    /// How a run with this manifest compares with a run with `other`:
    /// bitwise where both ran deterministic and every deciding field
    /// agrees (the driver, the binary and the commit do not decide: the
    /// kernels are libtorch's and ours, named by the versions).
    pub fn agreement_with(&self, other: &Manifest) -> Agreement {
        let mut reasons: Vec<Difference> = self
            .decisive()
            .into_iter()
            .zip(other.decisive())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((field, ours), (_, theirs))| Difference {
                field: field.to_owned(),
                ours,
                theirs,
            })
            .collect();
        if !(self.switches.deterministic && other.switches.deterministic) {
            reasons.push(Difference {
                field: "deterministic".to_owned(),
                ours: self.switches.deterministic.to_string(),
                theirs: other.switches.deterministic.to_string(),
            });
        }
        if reasons.is_empty() {
            Agreement::Bitwise
        } else {
            Agreement::Tolerance { reasons }
        }
    }

    /// True when a run here and one with `other` must agree bit for bit.
    pub fn bitwise_with(&self, other: &Manifest) -> bool {
        self.agreement_with(other) == Agreement::Bitwise
    }

    /// The manifest of a job run with `switches` on a slot registered with
    /// this one (the slot's environment, the job's switches and data).
    pub fn for_job(&self, switches: Switches, data_fingerprint: &str) -> Manifest {
        Manifest {
            switches,
            data_fingerprint: data_fingerprint.to_owned(),
            ..self.clone()
        }
    }

    /// The fields as `(name, value)` pairs in a fixed order, for tables and
    /// tags (absent values as `none`).
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
        vec![
            ("spikecv_version", self.spikecv_version.clone()),
            ("commit", opt(&self.commit)),
            ("binary_sha256", self.binary_sha256.clone()),
            ("libtorch", self.libtorch.clone()),
            ("cuda", opt(&self.cuda)),
            ("cudnn", opt(&self.cudnn)),
            ("driver", opt(&self.driver)),
            ("device", self.device.clone()),
            ("device_model", self.device_model.clone()),
            ("instruction_set", self.instruction_set.clone()),
            ("threads", self.threads.to_string()),
            ("data_fingerprint", self.data_fingerprint.clone()),
            ("precision", self.precision.clone()),
            ("deterministic", self.switches.deterministic.to_string()),
            (
                "cudnn_deterministic",
                self.switches.cudnn_deterministic.to_string(),
            ),
            ("cudnn_benchmark", self.switches.cudnn_benchmark.to_string()),
            ("tf32", self.switches.tf32.to_string()),
            (
                "trainer",
                self.trainer
                    .clone()
                    .unwrap_or_else(|| crate::experiment::trainer::NATIVE.to_owned()),
            ),
            ("trainer_sha256", opt(&self.trainer_sha256)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu() -> Manifest {
        Manifest {
            spikecv_version: "0.1.0".into(),
            commit: None,
            binary_sha256: "ab".into(),
            libtorch: "2.11.0".into(),
            cuda: None,
            cudnn: None,
            driver: None,
            device: "cpu".into(),
            device_model: "Some CPU".into(),
            instruction_set: "AVX2".into(),
            threads: 2,
            data_fingerprint: "f".into(),
            precision: FLOAT32.into(),
            switches: Switches {
                deterministic: true,
                ..Switches::default()
            },
            trainer: None,
            trainer_sha256: None,
        }
    }

    #[test]
    fn same_deterministic_environment_is_bitwise() {
        let mut other = cpu();
        other.binary_sha256 = "cd".into();
        other.driver = Some("580.1".into());
        other.device = "cuda:1".into();
        assert_eq!(cpu().agreement_with(&other), Agreement::Bitwise);
    }

    #[test]
    fn threads_or_nondeterminism_make_a_tolerance() {
        let mut other = cpu();
        other.threads = 4;
        other.switches.deterministic = false;
        let Agreement::Tolerance { reasons } = cpu().agreement_with(&other) else {
            panic!("bitwise across thread counts");
        };
        let fields: Vec<_> = reasons.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["threads", "deterministic"]);
        assert_eq!(reasons[0].ours, "2");
        assert_eq!(reasons[0].theirs, "4");
    }

    #[test]
    fn json_round_trips() {
        let m = cpu();
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            !text.contains("cuda"),
            "absent versions are left out: {text}"
        );
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
    }
}
