//! The host heap: where libtorch's large CPU tensors live in a worker.
//!
//! libtorch allocates CPU tensors with `malloc`. glibc serves a block above its
//! mmap threshold (at most 32 MiB) with a fresh `mmap` and unmaps it on `free`,
//! so every training step faults in and zeroes its activations anew: about
//! 40 % of a CPU step at batch 8, T = 16 went to the kernel's page-fault and
//! page-clearing code (`perf record` of `benches/train_step.rs`). Keeping freed
//! blocks in glibc's heap instead (no mmap, no trimming) removes the faults but
//! fragments the heap: the peak at batch 8, T = 50 grew from 2256 to 2632 MiB.
//!
//! The host heap (`cxx/bounded_heap.cpp`, installed as libtorch's CPU
//! allocator) does both. Requests of at least [`MIN_BLOCK`] bytes are whole
//! pages; freed ranges stay mapped and are merged with free neighbours; a
//! request takes the smallest free range that holds it. When no single free
//! range holds it, free ranges are *moved* (`mremap`: page tables only, no
//! copy, no fault) side by side into one new range, and only the shortfall is
//! new memory. So a step touches no new pages once the first has run, and the
//! process holds no more than the most its tensors ever held at once.
//!
//! Linux only (`mremap`); elsewhere [`install_host_heap`] reports
//! [`HostHeapError::Unsupported`] and libtorch keeps its own allocator.
//!
//! Against jemalloc (issue 21; `benches/train_step.rs` with BENCH_ALLOCATOR,
//! batch 8, 2 threads, two interleaved runs of 4 timed steps each, on a
//! 2-core machine other builds kept at load 2-12, so step times vary up to 2x
//! between runs; peaks and faults do not): with its default settings
//! jemalloc makes a step fault its activations in as glibc does (376,405
//! faults per step at T = 16, 1,064,171 at T = 50, against the heap's 14-39;
//! glibc: 362,510 and 1,064,160) and was slower in every
//! pair of runs (T = 16: 5.26 / 3.83 s against 1.69 / 3.00 s; T = 50:
//! 15.0 / 7.35 s against 7.60 / 3.97 s) at the same peak RSS (1045 / 2163
//! MiB against 1041 / 2162). With its dedicated arena for large blocks
//! (default above 8 MiB) moved out of reach
//! (`_RJEM_MALLOC_CONF=oversize_threshold:17179869184`) jemalloc faults no
//! more than the heap and its step times are within the noise of the heap's
//! (T = 50: 7.41 / 4.01 s against 7.60 / 3.97 s), but its peak RSS is 29 %
//! and 41 % higher (1341 / 3045 MiB against 1041 / 2162). The heap beats
//! either by more than 10 % on one of the two, so it stays.

use thiserror::Error;

mod jemalloc;

/// Requests below this many bytes go to libtorch's default allocator.
pub const MIN_BLOCK: usize = 1 << 20;

/// Why the host heap was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HostHeapError {
    /// It is already libtorch's CPU allocator in this process.
    #[error("the host heap is already installed")]
    AlreadyInstalled,
    /// libtorch refused the allocator.
    #[error("libtorch refused the host heap as its CPU allocator")]
    Refused,
    /// Not Linux: no `mremap`.
    #[error("the host heap needs Linux")]
    Unsupported,
}

/// The host heap's counters since it was installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostHeapStats {
    /// Requests served from one free range.
    pub reused: u64,
    /// Requests served by a new range (free ranges moved in, the rest new).
    pub assembled: u64,
    /// Bytes of free ranges moved into new ranges.
    pub moved_bytes: u64,
    /// Bytes that tensors hold now.
    pub live_bytes: u64,
    /// Bytes freed and kept mapped for reuse.
    pub free_bytes: u64,
    /// The most live plus free bytes so far: the heap's peak footprint.
    pub high_water_bytes: u64,
    /// Times the free ranges were given back to keep the kernel's count of
    /// mappings low (after every 1024 page moves).
    pub resets: u64,
}

/// Makes the host heap libtorch's CPU allocator for the rest of the process
/// (see the module docs). Call it early, before training allocates; tensors
/// allocated before keep their own allocator.
pub fn install_host_heap() -> Result<(), HostHeapError> {
    shim::install(MIN_BLOCK)
}

/// Makes jemalloc libtorch's CPU allocator instead (tikv-jemalloc-sys, its
/// settings from `_RJEM_MALLOC_CONF`), for the comparison in
/// `benches/train_step.rs` (see the module docs). Call it early, as
/// [`install_host_heap`], and not beside it.
pub fn install_jemalloc() -> Result<(), HostHeapError> {
    jemalloc::install()
}

/// The host heap's counters, or `None` when it is not installed.
pub fn host_heap_stats() -> Option<HostHeapStats> {
    shim::stats()
}

/// Gives the host heap's free pages back to the system (when a job ends, so
/// that an idle worker does not hold its last job's peak); returns the bytes
/// given back, or `None` when the heap is not installed.
pub fn release_free_pages() -> Option<u64> {
    shim::release_free()
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod shim {
    use std::ffi::c_int;

    use super::{HostHeapError, HostHeapStats};

    unsafe extern "C" {
        fn spikecv_install_bounded_heap(min_block: usize) -> c_int;
        fn spikecv_bounded_heap_stats(out: *mut u64) -> c_int;
        fn spikecv_bounded_heap_release_free(bytes: *mut u64) -> c_int;
    }

    pub(super) fn install(min_block: usize) -> Result<(), HostHeapError> {
        // SAFETY: an integer in, an integer out; the shim catches exceptions.
        match unsafe { spikecv_install_bounded_heap(min_block) } {
            0 => Ok(()),
            2 => Err(HostHeapError::AlreadyInstalled),
            _ => Err(HostHeapError::Refused),
        }
    }

    pub(super) fn release_free() -> Option<u64> {
        let mut bytes = 0u64;
        // SAFETY: the shim writes one u64 through the pointer.
        (unsafe { spikecv_bounded_heap_release_free(&mut bytes) } == 0).then_some(bytes)
    }

    pub(super) fn stats() -> Option<HostHeapStats> {
        let mut out = [0u64; 7];
        // SAFETY: the shim writes exactly seven u64 into `out`.
        if unsafe { spikecv_bounded_heap_stats(out.as_mut_ptr()) } != 0 {
            return None;
        }
        Some(HostHeapStats {
            reused: out[0],
            assembled: out[1],
            moved_bytes: out[2],
            live_bytes: out[3],
            free_bytes: out[4],
            high_water_bytes: out[5],
            resets: out[6],
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod shim {
    use super::{HostHeapError, HostHeapStats};

    pub(super) fn install(_min_block: usize) -> Result<(), HostHeapError> {
        Err(HostHeapError::Unsupported)
    }

    pub(super) fn stats() -> Option<HostHeapStats> {
        None
    }

    pub(super) fn release_free() -> Option<u64> {
        None
    }
}
