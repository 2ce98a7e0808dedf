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
    /// A spike tally or bias the kernels cannot take (not a contiguous tensor
    /// of its kind on the layer's device, or not of the layer's size).
    #[error("fused LIF kernels: {0} does not fit the layer")]
    Extra(String),
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
        channels: 1,
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
    forward_with(params, layout, u, Extras::default())
}

/// What a forward pass does besides the layer (see [`forward_with`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'a> {
    /// The spike tally's slots (a contiguous int64 tensor on the layer's
    /// device) and this layer's index among them.
    pub tally: Option<(&'a Tensor, usize)>,
    /// The bias of the convolution whose output (without it) `u` holds: a
    /// contiguous f32 tensor of one value per channel, on the layer's device.
    pub bias: Option<&'a Tensor>,
}

/// [`forward`] with `extras`: adding the layer's spikes (every neuron's,
/// through all steps, a partial window's too) to the tally's slot, and the
/// bias of each plane's channel to its inputs (rounded once, as the
/// convolution's own addition), inside the kernel: no other operation. Extras
/// that do not fit the layer are refused before anything runs.
pub fn forward_with(
    params: &LifParams,
    layout: &Layout,
    u: &Tensor,
    extras: Extras<'_>,
) -> Result<Option<Tensor>, FusedError> {
    if !applies_to(params, u, layout.len()) {
        return Ok(None);
    }
    let mut shape = shape_of(params, layout)?;
    let misfit = |what: &str, t: &Tensor| {
        FusedError::Extra(format!("{what} {:?} on {:?}", t.size(), t.device()))
    };
    let tally = match extras.tally {
        None => std::ptr::null_mut(),
        Some((t, index)) => {
            if !fits(t, Kind::Int64, u.device()) || index >= t.numel() {
                return Err(misfit("spike tally", t));
            }
            // In bounds: index < numel of a contiguous int64 tensor.
            t.data_ptr().cast::<i64>().wrapping_add(index)
        }
    };
    let bias = match extras.bias {
        None => std::ptr::null(),
        Some(b) => {
            shape.channels = channels_of(b.numel(), &shape).ok_or_else(|| misfit("bias", b))?;
            if !fits(b, Kind::Float, u.device()) {
                return Err(misfit("bias", b));
            }
            b.data_ptr().cast::<f32>().cast_const()
        }
    };
    let out_len = i64::try_from(layout.out_len()).map_err(|_| FusedError::TooLarge(*layout))?;
    let out = Tensor::empty([out_len], (Kind::Float, u.device()));
    let (u_ptr, out_ptr) = (u.data_ptr().cast::<f32>(), out.data_ptr().cast::<f32>());
    let extras = ffi::ForwardExtras { tally, bias };
    let result = match u.device() {
        // SAFETY: `u` and `out` are contiguous f32 tensors of the layer's and
        // the output's sizes (checked above, `out` just made), distinct
        // storages, alive for the call; the extras are null or point into
        // live tensors of the checked kinds and sizes on the same device.
        Device::Cpu => unsafe_call::forward_host(&shape, u_ptr, out_ptr, extras),
        Device::Cuda(index) => {
            ensure_prepared(index, u.device())?;
            // SAFETY: as above, on the device; the tensors outlive the
            // kernel, which runs on the stream libtorch frees them on.
            unsafe_call::forward_cuda(device_index(index), &shape, u_ptr, out_ptr, extras)
        }
        _ => return Ok(None),
    };
    result.map_err(|message| kernel_error(u.device(), message))?;
    Ok(Some(out))
}

/// Whether `t` is a contiguous tensor of `kind` on `device`.
fn fits(t: &Tensor, kind: Kind, device: Device) -> bool {
    t.kind() == kind && t.device() == device && t.is_contiguous()
}

/// The channels a bias of `count` values gives a layer of `shape`: some,
/// dividing its planes.
fn channels_of(count: usize, shape: &ffi::Shape) -> Option<i32> {
    let channels = i32::try_from(count).ok().filter(|&c| c > 0)?;
    (shape.planes % i64::from(channels) == 0).then_some(channels)
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
    Ok(backward_with(params, layout, u, grad, None)?.is_some())
}

/// [`backward`], and with `bias_channels` (the channels of a bias
/// [`forward_with`] added) the bias's gradient: each window's sum of its
/// input gradients in double inside the kernel, then those sums added per
/// channel, a reduction over a value per window instead of over the layer.
/// `Ok(None)`: the kernels do not apply; `Ok(Some(None))`: done, no bias.
pub fn backward_with(
    params: &LifParams,
    layout: &Layout,
    u: &Tensor,
    grad: &Tensor,
    bias_channels: Option<usize>,
) -> Result<Option<Option<Tensor>>, FusedError> {
    if !applies_to(params, u, layout.len()) || grad.device() != u.device() {
        return Ok(None);
    }
    let grad = grad.to_kind(Kind::Float).contiguous();
    if grad.numel() != layout.out_len() {
        return Ok(None);
    }
    let mut shape = shape_of(params, layout)?;
    let windows = ffi::window_count(&shape);
    let parts = match bias_channels {
        None => None,
        Some(c) => {
            shape.channels = channels_of(c, &shape)
                .ok_or_else(|| FusedError::Extra(format!("a bias of {c} channels")))?;
            Some(Tensor::empty([windows], (Kind::Double, u.device())))
        }
    };
    let part_ptr = parts
        .as_ref()
        .map_or(std::ptr::null_mut(), |p| p.data_ptr().cast::<f64>());
    let (u_ptr, g_ptr) = (u.data_ptr().cast::<f32>(), grad.data_ptr().cast::<f32>());
    let result = match u.device() {
        // SAFETY: contiguous f32 tensors of the layer's and the output's sizes
        // (checked above), alive for the call; `grad` is only read; `parts`
        // is null or a fresh f64 tensor of a value per window.
        Device::Cpu => unsafe_call::backward_host(&shape, u_ptr, g_ptr, part_ptr),
        Device::Cuda(index) => {
            ensure_prepared(index, u.device())?;
            // SAFETY: as above, on the device; `grad` and `parts` are local
            // tensors whose storage libtorch frees in stream order, after the
            // kernel.
            unsafe_call::backward_cuda(device_index(index), &shape, u_ptr, g_ptr, part_ptr)
        }
        _ => return Ok(None),
    };
    result.map_err(|message| kernel_error(u.device(), message))?;
    // Windows run plane by plane, a plane being sample × channel.
    let channels = i64::from(shape.channels);
    let bias_grad = parts.map(|p| {
        p.view([shape.planes / channels, channels, -1])
            .sum_dim_intlist(&[0i64, 2][..], false, Kind::Double)
            .to_kind(Kind::Float)
    });
    Ok(Some(bias_grad))
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
    use super::ffi::{self, ForwardExtras, Shape};

    pub(super) fn forward_host(
        shape: &Shape,
        u: *mut f32,
        out: *mut f32,
        extras: ForwardExtras,
    ) -> Result<(), String> {
        // SAFETY: see `fused::forward_with`.
        unsafe { ffi::forward_host(shape, u, out, extras) }
    }

    pub(super) fn backward_host(
        shape: &Shape,
        u: *mut f32,
        grad: *const f32,
        bias_part: *mut f64,
    ) -> Result<(), String> {
        // SAFETY: see `fused::backward_with`.
        unsafe { ffi::backward_host(shape, u, grad, bias_part) }
    }

    pub(super) fn forward_cuda(
        device: i32,
        shape: &Shape,
        u: *mut f32,
        out: *mut f32,
        extras: ForwardExtras,
    ) -> Result<(), String> {
        // SAFETY: see `fused::forward_with`.
        unsafe { ffi::forward_cuda(device, shape, u, out, extras) }
    }

    pub(super) fn backward_cuda(
        device: i32,
        shape: &Shape,
        u: *mut f32,
        grad: *const f32,
        bias_part: *mut f64,
    ) -> Result<(), String> {
        // SAFETY: see `fused::backward_with`.
        unsafe { ffi::backward_cuda(device, shape, u, grad, bias_part) }
    }
}
