//! The fused LIF kernels: each layer (with its 2×2 pooling) one launch per
//! direction, a thread per window walking its neurons through every step.
//!
//! One source text, `worker/cxx/lif_fused.inc`, has two forms: the CUDA form,
//! compiled at run time by NVRTC for the device's architecture (no nvcc),
//! cached per device and launched on libtorch's current stream; and the C++
//! form, compiled into the worker, which runs the same arithmetic over host
//! memory, so the tests check on any machine what a GPU would compute
//! (`tests/lif_fused.rs`), and `scripts/count-ops.sh` counts the device path's
//! operations without a GPU.
//!
//! Only `f32` layers of the STBP Heaviside neuron are fused; callers take the
//! tensor path ([`through_time`](super::through_time)) for the others.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tch::{Device, Kind, Tensor};

use crate::lif::LifParams;
use crate::lif::cpu::Layout;

mod ffi;
mod select;

pub use select::{GRADIENT_TOLERANCE, LifKernels, cuda_ready, self_check};

/// The kernels' source text, as NVRTC compiles it (behind a prelude).
pub const KERNEL_SOURCE: &str = include_str!("../../cxx/lif_fused.inc");

/// The NVRTC library's file name (CUDA 13, as PyTorch 2.11's cu130 wheels).
pub const NVRTC_LIBRARY: &str = "libnvrtc.so.13";

/// A fused kernel could not run.
#[derive(Debug, thiserror::Error)]
pub enum FusedError {
    /// NVRTC, the driver or a launch failed.
    #[error("fused LIF kernels on {device}: {message}")]
    Kernel {
        /// The device, as libtorch names it.
        device: String,
        /// What failed, with the library's message.
        message: String,
    },
    /// The layer does not fit the kernels' `int` sizes.
    #[error("fused LIF kernels: layer {0:?} is too large")]
    TooLarge(Layout),
    /// A spike tally the kernel cannot add to (not a contiguous int64 tensor
    /// on the layer's device with room for the layer).
    #[error("fused LIF kernels: spike tally {0} does not fit the layer")]
    Tally(String),
    /// A pooled layer stored channels last: the kernels pool planes of one
    /// channel.
    #[error("fused LIF kernels: layer {0:?} is pooled and stored channels last")]
    ChannelsLast(Layout),
}

/// Where the NVRTC library is: `$SPIKECV_NVRTC`, else the copy the PyTorch
/// wheel's `nvidia` package installs beside `torch/` (found from where
/// libtorch was loaded), else the bare name for the loader's search path.
/// Looked up once per process.
pub fn nvrtc_library() -> PathBuf {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    FOUND.get_or_init(find_nvrtc).clone()
}

fn find_nvrtc() -> PathBuf {
    if let Some(path) = std::env::var_os("SPIKECV_NVRTC") {
        return PathBuf::from(path);
    }
    ffi::torch_library()
        .and_then(|lib| {
            // site-packages/torch/lib/libc10.so → site-packages/nvidia/cu13/lib.
            let site = Path::new(&lib).parent()?.parent()?.parent()?;
            Some(site.join("nvidia/cu13/lib").join(NVRTC_LIBRARY))
        })
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(NVRTC_LIBRARY))
}

/// Compiles the CUDA form for `sm_<arch>` (no GPU needed) and returns the
/// cubin's size in bytes.
pub fn nvrtc_compile(arch: i32) -> Result<usize, FusedError> {
    let nvrtc = nvrtc_library();
    ffi::nvrtc_check(&nvrtc.to_string_lossy(), KERNEL_SOURCE, arch).map_err(|message| {
        FusedError::Kernel {
            device: format!("sm_{arch}"),
            message,
        }
    })
}

/// Whether the fused kernels take a layer held in `u`: contiguous `f32` of
/// `len` values on the CPU or a CUDA device, of the Heaviside neuron.
pub fn applies_to(params: &LifParams, u: &Tensor, len: usize) -> bool {
    params.is_heaviside()
        && u.kind() == Kind::Float
        && u.is_contiguous()
        && u.numel() == len
        && matches!(u.device(), Device::Cpu | Device::Cuda(_))
}

fn shape_of(params: &LifParams, layout: &Layout) -> Result<ffi::Shape, FusedError> {
    let int = |v: usize| i32::try_from(v).map_err(|_| FusedError::TooLarge(*layout));
    #[allow(clippy::cast_possible_truncation)]
    let real = |v: f64| v as f32;
    if layout.pool && layout.channels != 1 {
        return Err(FusedError::ChannelsLast(*layout));
    }
    // Without pooling every value is on its own: channels are more planes.
    let planes = layout.planes.checked_mul(layout.channels);
    Ok(ffi::Shape {
        planes: planes
            .and_then(|p| i64::try_from(p).ok())
            .ok_or(FusedError::TooLarge(*layout))?,
        steps: int(layout.steps)?,
        height: int(layout.height)?,
        width: int(layout.width)?,
        pool: i32::from(layout.pool),
        tau: real(params.tau),
        vth: real(params.vth),
        a: real(params.a),
        half_a: real(params.a / 2.0),
    })
}

/// Threads one launch over `layout` runs (a window each).
pub fn windows(params: &LifParams, layout: &Layout) -> Result<i64, FusedError> {
    Ok(ffi::window_count(&shape_of(params, layout)?))
}

fn kernel_error(device: Device, message: String) -> FusedError {
    FusedError::Kernel {
        device: format!("{device:?}"),
        message,
    }
}

/// Runs the layer forward: `u` (see [`applies_to`]) holds the inputs and is
/// left holding the potentials; returns the output, flat, `layout.out_len()`
/// values (the pooled spikes when `layout.pool`). `Ok(None)`: the kernels do
/// not apply, nothing was done. On CUDA the kernel is queued on the current
/// stream.
pub fn forward(
    params: &LifParams,
    layout: &Layout,
    u: &Tensor,
) -> Result<Option<Tensor>, FusedError> {
    forward_counted(params, layout, u, None)
}

/// [`forward`], adding the layer's spikes (every neuron's, through all steps,
/// a partial window's too) to element `index` of `tally` (a contiguous
/// int64 tensor on `u`'s device) inside the kernel: no other operation. A
/// tally that does not fit (kind, device, length) is refused before anything
/// runs.
pub fn forward_counted(
    params: &LifParams,
    layout: &Layout,
    u: &Tensor,
    tally: Option<(&Tensor, usize)>,
) -> Result<Option<Tensor>, FusedError> {
    if !applies_to(params, u, layout.len()) {
        return Ok(None);
    }
    let shape = shape_of(params, layout)?;
    let tally_ptr = match tally {
        None => std::ptr::null_mut(),
        Some((t, index)) => {
            let fits = t.kind() == Kind::Int64
                && t.device() == u.device()
                && t.is_contiguous()
                && index < t.numel();
            if !fits {
                return Err(FusedError::Tally(format!(
                    "{:?} on {:?}",
                    t.size(),
                    t.device()
                )));
            }
            // In bounds: index < numel of a contiguous int64 tensor.
            t.data_ptr().cast::<i64>().wrapping_add(index)
        }
    };
    let out_len = i64::try_from(layout.out_len()).map_err(|_| FusedError::TooLarge(*layout))?;
    let out = Tensor::empty([out_len], (Kind::Float, u.device()));
    let (u_ptr, out_ptr) = (u.data_ptr().cast::<f32>(), out.data_ptr().cast::<f32>());
    let result = match u.device() {
        // SAFETY: `u` and `out` are contiguous f32 tensors of the layer's and
        // the output's sizes (checked above, `out` just made), distinct
        // storages, alive for the call; `tally_ptr` is null or an element of
        // a live int64 tensor on the same device (checked above).
        Device::Cpu => unsafe_call::forward_host(&shape, u_ptr, out_ptr, tally_ptr),
        Device::Cuda(index) => {
            ensure_prepared(index, u.device())?;
            // SAFETY: as above, on the device; the tensors outlive the
            // kernel, which runs on the stream libtorch frees them on.
            unsafe_call::forward_cuda(device_index(index), &shape, u_ptr, out_ptr, tally_ptr)
        }
        _ => return Ok(None),
    };
    result.map_err(|message| kernel_error(u.device(), message))?;
    Ok(Some(out))
}

/// The STBP backward through the layer: `u` holds the potentials left by
/// [`forward`] and is left holding the gradient with respect to the inputs;
/// `grad` is the gradient with respect to [`forward`]'s output (made
/// contiguous here). `Ok(false)`: the kernels do not apply, nothing was done.
pub fn backward(
    params: &LifParams,
    layout: &Layout,
    u: &Tensor,
    grad: &Tensor,
) -> Result<bool, FusedError> {
    if !applies_to(params, u, layout.len()) || grad.device() != u.device() {
        return Ok(false);
    }
    let grad = grad.to_kind(Kind::Float).contiguous();
    if grad.numel() != layout.out_len() {
        return Ok(false);
    }
    let shape = shape_of(params, layout)?;
    let (u_ptr, g_ptr) = (u.data_ptr().cast::<f32>(), grad.data_ptr().cast::<f32>());
    let result = match u.device() {
        // SAFETY: contiguous f32 tensors of the layer's and the output's sizes
        // (checked above), alive for the call; `grad` is only read.
        Device::Cpu => unsafe_call::backward_host(&shape, u_ptr, g_ptr),
        Device::Cuda(index) => {
            ensure_prepared(index, u.device())?;
            // SAFETY: as above, on the device; `grad` is a local tensor whose
            // storage libtorch frees in stream order, after the kernel.
            unsafe_call::backward_cuda(device_index(index), &shape, u_ptr, g_ptr)
        }
        _ => return Ok(false),
    };
    result.map_err(|message| kernel_error(u.device(), message))?;
    Ok(true)
}

fn device_index(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

/// Devices (below 64) whose kernels are loaded, so that a launch does not
/// hand the source to the shim again.
static PREPARED: AtomicU64 = AtomicU64::new(0);

fn ensure_prepared(index: usize, device: Device) -> Result<(), FusedError> {
    let bit = u32::try_from(index).ok().and_then(|i| 1u64.checked_shl(i));
    if bit.is_some_and(|bit| PREPARED.load(Ordering::Acquire) & bit != 0) {
        return Ok(());
    }
    cuda_ready_or_err(index, device)?;
    if let Some(bit) = bit {
        PREPARED.fetch_or(bit, Ordering::AcqRel);
    }
    Ok(())
}

/// Compiles and loads the CUDA form on device `index` (once per process).
fn cuda_ready_or_err(index: usize, device: Device) -> Result<i32, FusedError> {
    let nvrtc = nvrtc_library();
    ffi::cuda_prepare(device_index(index), &nvrtc.to_string_lossy(), KERNEL_SOURCE)
        .map_err(|message| kernel_error(device, message))
}

/// Compiles and loads the CUDA form on device `index` (once per process; a
/// libtorch without CUDA or a machine without a driver says so here); the
/// architecture it was compiled for.
pub fn cuda_prepare(index: usize) -> Result<i32, FusedError> {
    cuda_ready_or_err(index, Device::Cuda(index))
}

/// The raw calls, their safety argued at each call site above.
#[allow(unsafe_code)]
mod unsafe_call {
    use super::ffi::{self, Shape};

    pub(super) fn forward_host(
        shape: &Shape,
        u: *mut f32,
        out: *mut f32,
        tally: *mut i64,
    ) -> Result<(), String> {
        // SAFETY: see `fused::forward_counted`.
        unsafe { ffi::forward_host(shape, u, out, tally) }
    }

    pub(super) fn backward_host(
        shape: &Shape,
        u: *mut f32,
        grad: *const f32,
    ) -> Result<(), String> {
        // SAFETY: see `fused::backward`.
        unsafe { ffi::backward_host(shape, u, grad) }
    }

    pub(super) fn forward_cuda(
        device: i32,
        shape: &Shape,
        u: *mut f32,
        out: *mut f32,
        tally: *mut i64,
    ) -> Result<(), String> {
        // SAFETY: see `fused::forward_counted`.
        unsafe { ffi::forward_cuda(device, shape, u, out, tally) }
    }

    pub(super) fn backward_cuda(
        device: i32,
        shape: &Shape,
        u: *mut f32,
        grad: *const f32,
    ) -> Result<(), String> {
        // SAFETY: see `fused::backward`.
        unsafe { ffi::backward_cuda(device, shape, u, grad) }
    }
}
