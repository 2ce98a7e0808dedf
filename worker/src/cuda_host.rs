//! CUDA host-side calls tch 0.24 lacks, through the C++ shim
//! `worker/cxx/cuda_host.cpp`: pinned host tensors allocated directly (no
//! deprecated `pin_memory(device)`), events that tell when a non-blocking copy
//! has finished, that copy on a stream of its own, a stream from libtorch's
//! pool made the calling thread's current stream, the card's free memory, the
//! caching allocator's `emptyCache`, and the TF32 switch of cuDNN
//! convolutions.
//!
//! Every call returns libtorch's message as an error where CUDA is missing
//! (a CPU-only libtorch, or no device); none panics.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn spikecv_pinned_empty(
        bytes: i64,
        out: *mut *mut C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_event_new(out: *mut *mut c_void, error: *mut c_char, error_len: usize) -> c_int;
    fn spikecv_event_record(
        event: *mut c_void,
        index: i64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_event_synchronize(event: *mut c_void, error: *mut c_char, error_len: usize)
    -> c_int;
    fn spikecv_event_free(event: *mut c_void);
    fn spikecv_upload_on_copy_stream(
        host: *const C_tensor,
        index: i64,
        event: *mut c_void,
        out: *mut *mut C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_use_pool_stream(
        index: i64,
        id: *mut i64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_current_stream(
        index: i64,
        id: *mut i64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_stream_synchronize(index: i64, error: *mut c_char, error_len: usize) -> c_int;
    fn spikecv_cuda_mem_info(
        index: i64,
        free: *mut u64,
        total: *mut u64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_cuda_empty_cache(error: *mut c_char, error_len: usize) -> c_int;
    fn spikecv_set_tf32_conv(on: bool, error: *mut c_char, error_len: usize) -> c_int;
    fn spikecv_tf32_state() -> c_int;
}

/// Room for libtorch's error message.
const ERROR_LEN: usize = 512;

/// Calls `f` with an error buffer; a non-zero code becomes libtorch's message.
fn checked(f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), TchError> {
    let mut error = [0 as c_char; ERROR_LEN];
    if f(error.as_mut_ptr(), ERROR_LEN) == 0 {
        return Ok(());
    }
    // SAFETY: the buffer starts zeroed and the shim NUL-terminates what it
    // writes within ERROR_LEN bytes.
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(TchError::Torch(message.to_string_lossy().into_owned()))
}

/// A device index as libtorch takes it.
fn index(device: usize) -> i64 {
    i64::try_from(device).unwrap_or(i64::MAX)
}

/// A new uint8 tensor of `bytes` bytes in page-locked host memory (libtorch's
/// caching host allocator), contents undefined.
pub fn pinned_empty(bytes: usize) -> Result<Tensor, TchError> {
    let bytes = i64::try_from(bytes).map_err(|_| TchError::Torch("size too large".into()))?;
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `out` is a valid place for the pointer; the shim writes it only
    // on success, catches every C++ exception and writes at most `len` bytes
    // of message.
    checked(|e, len| unsafe { spikecv_pinned_empty(bytes, &mut out, e, len) })?;
    if out.is_null() {
        return Err(TchError::Torch("pinned allocation returned nothing".into()));
    }
    // SAFETY: on success `out` is a heap-allocated at::Tensor that nothing
    // else owns; tch takes it over and frees it on drop.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// A CUDA event: recorded after queued work, waited on by the host.
#[derive(Debug)]
pub struct DeviceEvent(*mut c_void);

// SAFETY: a c10::Event has no thread affinity (CUDA events may be recorded
// and waited on from any thread); `&mut self` on every use keeps it to one
// thread at a time.
unsafe impl Send for DeviceEvent {}

impl DeviceEvent {
    /// A new event (the CUDA event itself is made by its first record).
    pub fn new() -> Result<DeviceEvent, TchError> {
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: `out` is a valid place for the pointer; exceptions caught.
        checked(|e, len| unsafe { spikecv_event_new(&mut out, e, len) })?;
        if out.is_null() {
            return Err(TchError::Torch("event creation returned nothing".into()));
        }
        Ok(DeviceEvent(out))
    }

    /// Records the event on the calling thread's current stream of CUDA
    /// device `device`, after the work queued there so far.
    pub fn record(&mut self, device: usize) -> Result<(), TchError> {
        let event = self.0;
        // SAFETY: `event` is a live c10::Event from spikecv_event_new, used by
        // this thread only (`&mut self`); exceptions caught.
        checked(|e, len| unsafe { spikecv_event_record(event, index(device), e, len) })
    }

    /// Copies `host` (pinned) to CUDA device `device` on a copy stream of its
    /// own, records the event there after the copy and makes the calling
    /// thread's current stream wait on it: the copy overlaps the compute
    /// queued before it, and what the current stream queues next sees the
    /// copied values. The result keeps `host`'s strides.
    pub fn upload_on_copy_stream(
        &mut self,
        host: &Tensor,
        device: usize,
    ) -> Result<Tensor, TchError> {
        let event = self.0;
        let mut out: *mut C_tensor = std::ptr::null_mut();
        // SAFETY: `host` is a live tensor borrowed for the call; `event` is a
        // live c10::Event used by this thread only (`&mut self`); `out` is a
        // valid place for the pointer, written only on success; exceptions
        // caught.
        checked(|e, len| unsafe {
            spikecv_upload_on_copy_stream(host.as_ptr(), index(device), event, &mut out, e, len)
        })?;
        if out.is_null() {
            return Err(TchError::Torch("the copy returned nothing".into()));
        }
        // SAFETY: on success `out` is a heap-allocated at::Tensor that nothing
        // else owns; tch takes it over and frees it on drop.
        Ok(unsafe { Tensor::from_ptr(out) })
    }

    /// Waits until the work before the last record is done (at once if the
    /// event was never recorded).
    pub fn synchronize(&mut self) -> Result<(), TchError> {
        let event = self.0;
        // SAFETY: as for `record`.
        checked(|e, len| unsafe { spikecv_event_synchronize(event, e, len) })
    }
}

impl Drop for DeviceEvent {
    fn drop(&mut self) {
        // SAFETY: the pointer came from spikecv_event_new and is freed once.
        unsafe { spikecv_event_free(self.0) };
    }
}

/// Makes a stream from libtorch's pool the calling thread's current stream on
/// CUDA device `device` (the current stream is thread-local: other threads
/// keep theirs). Returns the stream's id.
pub fn use_pool_stream(device: usize) -> Result<i64, TchError> {
    let mut id = 0i64;
    // SAFETY: `id` is a valid place for the result; exceptions caught.
    checked(|e, len| unsafe { spikecv_use_pool_stream(index(device), &mut id, e, len) })?;
    Ok(id)
}

/// The id of the calling thread's current stream on CUDA device `device`
/// (0: the default stream).
pub fn current_stream(device: usize) -> Result<i64, TchError> {
    let mut id = 0i64;
    // SAFETY: as for `use_pool_stream`.
    checked(|e, len| unsafe { spikecv_current_stream(index(device), &mut id, e, len) })?;
    Ok(id)
}

/// Waits until the work queued on the calling thread's current stream of
/// CUDA device `device` is done.
pub fn stream_synchronize(device: usize) -> Result<(), TchError> {
    // SAFETY: plain integer argument; exceptions caught.
    checked(|e, len| unsafe { spikecv_stream_synchronize(index(device), e, len) })
}

/// Free and total bytes of CUDA device `device` (`cudaMemGetInfo`).
pub fn mem_info(device: usize) -> Result<(u64, u64), TchError> {
    let (mut free, mut total) = (0u64, 0u64);
    // SAFETY: both are valid places for the results; exceptions caught.
    checked(|e, len| unsafe {
        spikecv_cuda_mem_info(index(device), &mut free, &mut total, e, len)
    })?;
    Ok((free, total))
}

/// Gives the CUDA caching allocator's unused blocks back to the driver, so
/// that memory a failed job held is free for the other jobs of the card.
pub fn empty_cache() -> Result<(), TchError> {
    // SAFETY: no arguments but the error buffer; exceptions caught.
    checked(|e, len| unsafe { spikecv_cuda_empty_cache(e, len) })
}

/// libtorch's process-wide TF32 switches, as read back from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tf32State {
    /// cuDNN convolutions may use TF32 (`torch.backends.cudnn.conv.fp32_precision == "tf32"`).
    pub conv: bool,
    /// CUDA matrix products may use TF32 (`torch.backends.cuda.matmul.fp32_precision == "tf32"`).
    pub matmul: bool,
}

/// Lets cuDNN convolutions use TF32 or not, for the whole process
/// (PyTorch's `torch.backends.cudnn.conv.fp32_precision`). Matrix products
/// are left as they are (IEEE float32, PyTorch's default).
pub fn set_tf32_conv(on: bool) -> Result<(), TchError> {
    // SAFETY: plain bool argument; exceptions caught.
    checked(|e, len| unsafe { spikecv_set_tf32_conv(on, e, len) })
}

/// Reads libtorch's TF32 switches.
pub fn tf32_state() -> Result<Tf32State, TchError> {
    // SAFETY: no arguments; exceptions caught (-1).
    let bits = unsafe { spikecv_tf32_state() };
    if bits < 0 {
        return Err(TchError::Torch(
            "libtorch failed reading its TF32 switches".into(),
        ));
    }
    Ok(Tf32State {
        conv: bits & 1 != 0,
        matmul: bits & 2 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without a CUDA device every call is an error with a message, never a
    /// crash; with one, the pinned tensor is pinned and of the size asked.
    #[test]
    fn calls_without_a_device_fail_with_a_message() {
        if tch::Cuda::is_available() {
            let t = pinned_empty(4096).map_err(|e| e.to_string());
            assert!(matches!(&t, Ok(t) if t.size() == [4096] && t.is_pinned(tch::Device::Cuda(0))));
            return;
        }
        let errors = [
            pinned_empty(64).err(),
            use_pool_stream(0).err(),
            mem_info(0).err(),
            DeviceEvent::new().and_then(|mut e| e.record(0)).err(),
        ];
        for (i, e) in errors.iter().enumerate() {
            match e {
                Some(e) => assert!(!e.to_string().is_empty(), "call {i}: empty message"),
                None => panic!("call {i} succeeded without a CUDA device"),
            }
        }
    }

    #[test]
    fn an_event_never_recorded_is_done_at_once() -> Result<(), TchError> {
        DeviceEvent::new()?.synchronize()
    }

    /// PyTorch's default (cuDNN convolutions in TF32, matrix products in
    /// IEEE float32) is what libtorch starts with, and the switch reaches it.
    #[test]
    fn the_tf32_switch_reaches_libtorch_and_leaves_matmul_alone() -> Result<(), TchError> {
        let before = tf32_state()?;
        assert_eq!(
            before,
            Tf32State {
                conv: true,
                matmul: false
            }
        );
        set_tf32_conv(false)?;
        let off = tf32_state()?;
        set_tf32_conv(true)?;
        assert_eq!(
            off,
            Tf32State {
                conv: false,
                matmul: false
            }
        );
        assert_eq!(tf32_state()?, before);
        Ok(())
    }
}
