//! Deterministic training on CUDA: deterministic algorithms and deterministic
//! cuDNN through a small C++ shim (`worker/cxx/determinism.cpp`, tch has no
//! switch for them), and the cuBLAS workspace setting the worker puts in its
//! own environment at start-up. cuDNN stays on; only its nondeterministic
//! algorithms and its autotuner are avoided.
#![allow(unsafe_code)]

use std::os::raw::c_int;

unsafe extern "C" {
    fn spikecv_set_deterministic(on: bool) -> c_int;
    fn spikecv_determinism_state() -> c_int;
}

/// The cuBLAS setting deterministic matrix products need (`:4096:8`, as
/// PyTorch's reproducibility notes give).
pub const CUBLAS_WORKSPACE: (&str, &str) = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8");

/// The shim reported a libtorch exception.
#[derive(Debug, thiserror::Error)]
#[error("libtorch refused to change its determinism settings")]
pub struct DeterminismError;

/// libtorch's process-wide determinism switches, as read back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeterminismState {
    /// `torch.use_deterministic_algorithms`.
    pub algorithms: bool,
    /// `torch.backends.cudnn.deterministic`.
    pub cudnn_deterministic: bool,
    /// `torch.backends.cudnn.benchmark` (the autotuner).
    pub cudnn_benchmark: bool,
    /// `torch.backends.cudnn.enabled`.
    pub cudnn_enabled: bool,
}

/// Turns deterministic algorithms (and deterministic cuDNN, autotuner off) on,
/// or off (cuDNN's autotuner on, as `cudnn.benchmark = True`) for the whole
/// process: libtorch keeps these settings globally, so a
/// deterministic job makes every job of its process deterministic.
pub fn set_deterministic(on: bool) -> Result<(), DeterminismError> {
    // SAFETY: the shim takes a plain bool, touches only libtorch's global
    // context and catches every C++ exception.
    match unsafe { spikecv_set_deterministic(on) } {
        0 => Ok(()),
        _ => Err(DeterminismError),
    }
}

/// Reads libtorch's determinism switches.
pub fn state() -> Result<DeterminismState, DeterminismError> {
    // SAFETY: as for `set_deterministic`: no arguments, exceptions caught.
    let bits = unsafe { spikecv_determinism_state() };
    if bits < 0 {
        return Err(DeterminismError);
    }
    Ok(DeterminismState {
        algorithms: bits & 1 != 0,
        cudnn_deterministic: bits & 2 != 0,
        cudnn_benchmark: bits & 4 != 0,
        cudnn_enabled: bits & 8 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reaches_libtorch_and_leaves_cudnn_on() -> Result<(), DeterminismError> {
        let before = state()?;
        assert!(!before.algorithms, "libtorch starts nondeterministic");
        set_deterministic(true)?;
        let on = state()?;
        assert!(on.algorithms && on.cudnn_deterministic && !on.cudnn_benchmark);
        assert!(on.cudnn_enabled, "cuDNN stays on");
        set_deterministic(false)?;
        let off = state()?;
        assert!(!off.algorithms && !off.cudnn_deterministic);
        assert!(
            off.cudnn_benchmark,
            "the autotuner is on for jobs that need not repeat"
        );
        Ok(())
    }
}
