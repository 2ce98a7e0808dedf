//! The worker's side of the manifest ([`spikecv_common::experiment::manifest`]):
//! what this build, its libtorch and a slot's device are. A slot's manifest
//! goes with the registration; a job's adds the switches its process ran with
//! and the data set's fingerprint.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_long};
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use spikecv_common::experiment::manifest::{FLOAT32, Manifest, Switches};
use spikecv_common::experiment::sections::Precision;

use crate::devices::DeviceSpec;

unsafe extern "C" {
    fn spikecv_torch_versions(
        version: *mut c_char,
        version_len: usize,
        cpu: *mut c_char,
        cpu_len: usize,
    ) -> c_int;
    fn spikecv_cuda_versions(cudart: *mut c_long, cudnn: *mut c_long) -> c_int;
    fn spikecv_gpu_info(
        index: c_int,
        name: *mut c_char,
        name_len: usize,
        major: *mut c_int,
        minor: *mut c_int,
        driver: *mut c_int,
    ) -> c_int;
}

/// The commit this binary was built from, when the build was told
/// (`SPIKECV_COMMIT=$(git rev-parse HEAD) cargo build`).
const COMMIT: Option<&str> = option_env!("SPIKECV_COMMIT");

/// The manifest of a slot on `device`, with libtorch's switches as they are
/// now in this process and no data fingerprint.
pub fn slot_manifest(device: DeviceSpec) -> Manifest {
    let (libtorch, cpu_capability) = torch_versions();
    let (cuda, cudnn) = cuda_versions();
    let (device_model, instruction_set, driver) = match device {
        DeviceSpec::Cpu => (cpu_model(), cpu_capability, None),
        DeviceSpec::Cuda(i) => gpu(i),
    };
    Manifest {
        spikecv_version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: COMMIT.map(str::to_owned),
        binary_sha256: binary_sha256().to_owned(),
        libtorch,
        cuda,
        cudnn,
        driver,
        device: device.to_string(),
        device_model,
        instruction_set,
        threads: u32::try_from(tch::get_num_threads()).unwrap_or(0),
        data_fingerprint: String::new(),
        precision: FLOAT32.to_owned(),
        switches: crate::settings::effective().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "manifest without libtorch's switches");
            Switches::default()
        }),
        trainer: None,
        trainer_sha256: None,
    }
}

/// The manifest of a job that ran on `device` in this process, in
/// `precision`, on the data set with fingerprint `data_fingerprint`.
pub fn job_manifest(device: DeviceSpec, precision: Precision, data_fingerprint: &str) -> Manifest {
    let slot = slot_manifest(device);
    let switches = slot.switches;
    let mut manifest = slot.for_job(switches, data_fingerprint);
    manifest.precision = precision.manifest_name().to_owned();
    manifest
}

/// SHA-256 (hex) of a file's bytes.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 of the running binary, read once (empty when it cannot be read).
fn binary_sha256() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        std::env::current_exe()
            .and_then(|exe| file_sha256(&exe))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "manifest without the binary's hash");
                String::new()
            })
    })
}

fn text(buf: &[c_char]) -> String {
    // SAFETY: the shim always NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// libtorch's version and the CPU capability its kernels dispatch to.
fn torch_versions() -> (String, String) {
    let mut version = [0 as c_char; 64];
    let mut cpu = [0 as c_char; 64];
    // SAFETY: both buffers are writable for their lengths; the shim catches
    // every C++ exception.
    let failed = unsafe {
        spikecv_torch_versions(
            version.as_mut_ptr(),
            version.len(),
            cpu.as_mut_ptr(),
            cpu.len(),
        )
    };
    if failed != 0 {
        return ("unknown".to_owned(), "unknown".to_owned());
    }
    (text(&version), text(&cpu))
}

/// The CUDA runtime and cuDNN versions libtorch was built with, when it has CUDA.
fn cuda_versions() -> (Option<String>, Option<String>) {
    let (mut cudart, mut cudnn): (c_long, c_long) = (0, 0);
    // SAFETY: two writable longs; the shim catches every C++ exception.
    if unsafe { spikecv_cuda_versions(&mut cudart, &mut cudnn) } != 0 {
        return (None, None);
    }
    (Some(cuda_version(cudart)), Some(cudnn_version(cudnn)))
}

/// CUDA's encoding (`1000 * major + 10 * minor`) as `major.minor`.
fn cuda_version(v: c_long) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// cuDNN 9's encoding (`10000 * major + 100 * minor + patch`) as text.
fn cudnn_version(v: c_long) -> String {
    format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
}

/// A GPU's name, compute capability (`sm_90`) and the NVIDIA driver's version.
fn gpu(index: usize) -> (String, String, Option<String>) {
    let mut name = [0 as c_char; 256];
    let (mut major, mut minor, mut driver) = (0, 0, 0);
    let ordinal = c_int::try_from(index).unwrap_or(c_int::MAX);
    // SAFETY: a writable buffer of its length and three writable ints; the
    // shim only calls the CUDA runtime and driver when they are loaded.
    let failed = unsafe {
        spikecv_gpu_info(
            ordinal,
            name.as_mut_ptr(),
            name.len(),
            &mut major,
            &mut minor,
            &mut driver,
        )
    };
    if failed != 0 {
        return (format!("CUDA device {index}"), "unknown".to_owned(), None);
    }
    let driver = std::fs::read_to_string("/sys/module/nvidia/version")
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| format!("CUDA {}", cuda_version(c_long::from(driver))));
    (text(&name), format!("sm_{major}{minor}"), Some(driver))
}

/// The CPU's model name from `/proc/cpuinfo` (the architecture elsewhere).
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_decoded_as_their_libraries_write_them() {
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cuda_version(12080), "12.8");
        assert_eq!(cudnn_version(91002), "9.10.2");
    }

    #[test]
    fn a_cpu_slot_names_libtorch_and_this_binary() {
        let m = slot_manifest(DeviceSpec::Cpu);
        // The venv's torch, as its Python package reports it.
        assert!(m.libtorch.starts_with("2.11.0"), "{}", m.libtorch);
        assert!(!m.instruction_set.is_empty() && m.instruction_set != "unknown");
        assert_eq!(m.device, "cpu");
        assert!(m.threads >= 1);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(m.binary_sha256, file_sha256(&exe).unwrap());
        assert_eq!(m.binary_sha256.len(), 64);
    }
}
