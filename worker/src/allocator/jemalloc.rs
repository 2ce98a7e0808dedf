//! libtorch's CPU tensors through jemalloc (`cxx/jemalloc_cpu.cpp`): the
//! tikv-jemalloc-sys build, prefixed (`_rjem_`), so only what is handed to it
//! goes there.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use super::HostHeapError;

type AlignedAlloc = unsafe extern "C" fn(alignment: usize, size: usize) -> *mut c_void;
type Free = unsafe extern "C" fn(ptr: *mut c_void);

unsafe extern "C" {
    fn spikecv_install_jemalloc_cpu(alloc: AlignedAlloc, free: Free) -> c_int;
}

/// Makes jemalloc libtorch's CPU allocator for the rest of the process. Call
/// it early, before training allocates; tensors allocated before keep their
/// own allocator. Fails if a CPU allocator of this crate is already installed.
pub fn install() -> Result<(), HostHeapError> {
    // SAFETY: both are jemalloc's own C functions, with the signatures the
    // shim calls them with; the shim catches every C++ exception.
    match unsafe {
        spikecv_install_jemalloc_cpu(tikv_jemalloc_sys::aligned_alloc, tikv_jemalloc_sys::free)
    } {
        0 => Ok(()),
        2 => Err(HostHeapError::AlreadyInstalled),
        _ => Err(HostHeapError::Refused),
    }
}
