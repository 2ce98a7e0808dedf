//! GPU slots: which devices a worker runs jobs on, parsed from `--gpus`.

use std::fmt;
use std::str::FromStr;

/// A compute device a job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The host CPU.
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl DeviceSpec {
    /// The tch device.
    pub fn to_tch(self) -> tch::Device {
        match self {
            DeviceSpec::Cpu => tch::Device::Cpu,
            DeviceSpec::Cuda(i) => tch::Device::Cuda(i),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A `--device` or `--gpus` value that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The text is neither `cpu`, `all`, `cuda:N` nor a list of ordinals.
    #[error("invalid device {0:?}: expected cpu, cuda:N, all, or a list like 0,1")]
    Invalid(String),
    /// A GPU was asked for that this machine does not have.
    #[error("GPU {asked} requested but this machine has {available} CUDA device(s)")]
    Missing {
        /// The ordinal asked for.
        asked: usize,
        /// How many CUDA devices libtorch sees.
        available: usize,
    },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("cpu") {
            return Ok(DeviceSpec::Cpu);
        }
        let ordinal = t.strip_prefix("cuda:").unwrap_or(t);
        ordinal
            .parse::<usize>()
            .map(DeviceSpec::Cuda)
            .map_err(|_| DeviceError::Invalid(s.to_owned()))
    }
}

/// Expands a `--gpus` value (`cpu`, `all`, `0,1,...`) into devices, checking each
/// ordinal against the `available` CUDA devices. `all` on a machine without CUDA
/// falls back to the CPU.
pub fn parse_gpus(spec: &str, available: usize) -> Result<Vec<DeviceSpec>, DeviceError> {
    let t = spec.trim();
    if t.eq_ignore_ascii_case("all") {
        return Ok(if available == 0 {
            vec![DeviceSpec::Cpu]
        } else {
            (0..available).map(DeviceSpec::Cuda).collect()
        });
    }
    if t.eq_ignore_ascii_case("cpu") {
        return Ok(vec![DeviceSpec::Cpu]);
    }
    let mut out = Vec::new();
    for part in t.split(',') {
        let dev: DeviceSpec = part.parse()?;
        if let DeviceSpec::Cuda(i) = dev
            && i >= available
        {
            return Err(DeviceError::Missing {
                asked: i,
                available,
            });
        }
        if !out.contains(&dev) {
            out.push(dev);
        }
    }
    if out.is_empty() {
        return Err(DeviceError::Invalid(spec.to_owned()));
    }
    Ok(out)
}

/// How many CUDA devices libtorch can use here.
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gpu_lists() {
        assert_eq!(parse_gpus("cpu", 4), Ok(vec![DeviceSpec::Cpu]));
        assert_eq!(parse_gpus("all", 0), Ok(vec![DeviceSpec::Cpu]));
        assert_eq!(
            parse_gpus("all", 2),
            Ok(vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)])
        );
        assert_eq!(
            parse_gpus("1,0,1", 2),
            Ok(vec![DeviceSpec::Cuda(1), DeviceSpec::Cuda(0)])
        );
        assert_eq!(
            parse_gpus("3", 2),
            Err(DeviceError::Missing {
                asked: 3,
                available: 2
            })
        );
        assert!(matches!(
            parse_gpus("gpu0", 2),
            Err(DeviceError::Invalid(_))
        ));
        assert_eq!("cuda:2".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(2)));
    }
}
