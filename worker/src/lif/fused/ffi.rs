//! The fused kernels' C entry points (`worker/cxx/lif_fused.cpp`) and the
//! shape they take, with the error convention of the shim: 0, or 1 and a
//! NUL-terminated message.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_longlong};

/// `SpikecvLifShape` of `lif_fused.inc`, field for field.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Planes per step.
    pub planes: c_longlong,
    /// Time steps.
    pub steps: c_int,
    /// Rows of a plane.
    pub height: c_int,
    /// Columns of a plane.
    pub width: c_int,
    /// 1 when the spikes are average-pooled 2×2.
    pub pool: c_int,
    /// τ as f32.
    pub tau: f32,
    /// V_th as f32.
    pub vth: f32,
    /// `a` as f32.
    pub a: f32,
    /// `a / 2` (computed in f64) as f32.
    pub half_a: f32,
    /// Planes of one sample (a convolution's channels): plane `p`'s bias is
    /// `bias[p % channels]`.
    pub channels: c_int,
}

unsafe extern "C" {
    fn spikecv_lif_window_count(shape: *const Shape) -> c_longlong;
    fn spikecv_lif_forward_host(
        shape: *const Shape,
        u: *mut f32,
        out: *mut f32,
        tally: *mut i64,
        bias: *const f32,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_lif_backward_host(
        shape: *const Shape,
        u: *mut f32,
        grad: *const f32,
        bias_part: *mut f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_lif_nvrtc_check(
        nvrtc_path: *const c_char,
        body: *const c_char,
        arch: c_int,
        cubin_size: *mut usize,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_torch_library(out: *mut c_char, out_len: usize) -> c_int;
}

unsafe extern "C" {
    fn spikecv_lif_cuda_prepare(
        device: c_int,
        nvrtc_path: *const c_char,
        body: *const c_char,
        arch: *mut c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_lif_forward_cuda(
        device: c_int,
        shape: *const Shape,
        u: *mut f32,
        out: *mut f32,
        tally: *mut i64,
        bias: *const f32,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_lif_backward_cuda(
        device: c_int,
        shape: *const Shape,
        u: *mut f32,
        grad: *const f32,
        bias_part: *mut f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// Room for a message from the shim (NVRTC's log can be long; it is cut).
const ERROR_LEN: usize = 4096;

/// Calls `f` with an error buffer; `Err` carries the shim's message.
fn call(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), String> {
    let mut error = vec![0 as c_char; ERROR_LEN];
    if f(error.as_mut_ptr(), ERROR_LEN) == 0 {
        return Ok(());
    }
    // SAFETY: the buffer starts zeroed and the shim NUL-terminates what it
    // writes within its ERROR_LEN bytes.
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(message.to_string_lossy().trim_end().to_owned())
}

/// Threads (windows) of a launch over `shape`.
pub fn window_count(shape: &Shape) -> i64 {
    // SAFETY: reads the struct only.
    unsafe { spikecv_lif_window_count(shape) }
}

/// What a forward launch writes besides the layer: the spike tally's slot
/// and the convolution's bias (each null when not wanted).
#[derive(Debug, Clone, Copy)]
pub struct ForwardExtras {
    /// An `i64` the layer's spikes are added to.
    pub tally: *mut i64,
    /// `shape.channels` floats added to each plane's inputs.
    pub bias: *const f32,
}

/// The C++ form forward over host memory, with `extras`.
///
/// # Safety
/// `u` must point to the layer's `[T, planes, H, W]` floats and `out` to its
/// output's, `extras.tally` be null or point to an `i64`, `extras.bias` null
/// or point to `shape.channels` floats, all valid for the call and not
/// aliased.
pub unsafe fn forward_host(
    shape: &Shape,
    u: *mut f32,
    out: *mut f32,
    extras: ForwardExtras,
) -> Result<(), String> {
    let ForwardExtras { tally, bias } = extras;
    // SAFETY: as the caller guarantees; the shim catches every exception.
    call(|e, n| unsafe { spikecv_lif_forward_host(shape, u, out, tally, bias, e, n) })
}

/// The C++ form backward over host memory; `bias_part` (or null) gets each
/// window's sum of input gradients.
///
/// # Safety
/// As [`forward_host`], with `grad` the output's gradient and `bias_part`
/// null or pointing to a `f64` per window.
pub unsafe fn backward_host(
    shape: &Shape,
    u: *mut f32,
    grad: *const f32,
    bias_part: *mut f64,
) -> Result<(), String> {
    // SAFETY: as the caller guarantees.
    call(|e, n| unsafe { spikecv_lif_backward_host(shape, u, grad, bias_part, e, n) })
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} holds a NUL byte"))
}

/// Compiles `body` for `sm_<arch>` with the NVRTC library at `nvrtc`; the
/// cubin's size.
pub fn nvrtc_check(nvrtc: &str, body: &str, arch: i32) -> Result<usize, String> {
    let (nvrtc, body) = (c_string(nvrtc)?, c_string(body)?);
    let mut size = 0usize;
    // SAFETY: NUL-terminated strings and an out-pointer live for the call.
    call(|e, n| unsafe {
        spikecv_lif_nvrtc_check(nvrtc.as_ptr(), body.as_ptr(), arch, &mut size, e, n)
    })?;
    Ok(size)
}

/// The file libtorch's core library was loaded from, if the loader says.
pub fn torch_library() -> Option<String> {
    let mut out = vec![0 as c_char; 4096];
    // SAFETY: the shim writes at most `out.len()` bytes, NUL-terminated.
    let found = unsafe { spikecv_torch_library(out.as_mut_ptr(), out.len()) } == 0;
    // SAFETY: zeroed buffer, NUL-terminated by the shim.
    found.then(|| {
        unsafe { CStr::from_ptr(out.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    })
}

/// Compiles and loads the CUDA form on `device` once; the architecture.
pub fn cuda_prepare(device: i32, nvrtc: &str, body: &str) -> Result<i32, String> {
    let (nvrtc, body) = (c_string(nvrtc)?, c_string(body)?);
    let mut arch = 0;
    // SAFETY: NUL-terminated strings and an out-pointer live for the call.
    call(|e, n| unsafe {
        spikecv_lif_cuda_prepare(device, nvrtc.as_ptr(), body.as_ptr(), &mut arch, e, n)
    })?;
    Ok(arch)
}

/// The CUDA form forward, on the device's current stream, with `extras`.
///
/// # Safety
/// As [`forward_host`], every pointer a device pointer on `device`, live
/// until the stream has run the kernel.
pub unsafe fn forward_cuda(
    device: i32,
    shape: &Shape,
    u: *mut f32,
    out: *mut f32,
    extras: ForwardExtras,
) -> Result<(), String> {
    let ForwardExtras { tally, bias } = extras;
    // SAFETY: as the caller guarantees.
    call(|e, n| unsafe { spikecv_lif_forward_cuda(device, shape, u, out, tally, bias, e, n) })
}

/// The CUDA form backward, on the device's current stream.
///
/// # Safety
/// As [`backward_host`], every pointer a device pointer on `device`, live
/// until the stream has run the kernel.
pub unsafe fn backward_cuda(
    device: i32,
    shape: &Shape,
    u: *mut f32,
    grad: *const f32,
    bias_part: *mut f64,
) -> Result<(), String> {
    // SAFETY: as the caller guarantees.
    call(|e, n| unsafe { spikecv_lif_backward_cuda(device, shape, u, grad, bias_part, e, n) })
}
