//! How the process's C allocator treats the large blocks training frees.
//!
//! libtorch allocates every CPU tensor with `malloc`. glibc serves a block above
//! its mmap threshold (at most 32 MiB) with a fresh `mmap` and unmaps it on
//! `free`, so every training step faults in and zeroes its activations anew:
//! about 40 % of a CPU step at batch 8, T = 16 went to the kernel's page-fault
//! and page-clearing code (`perf record` of `benches/train_step.rs`). With the
//! settings here, large blocks come from the heap and stay there when freed,
//! so the next step reuses pages that are already mapped; the process keeps its
//! peak heap instead of handing it back between steps.
//!
//! Only glibc on Linux is affected; elsewhere [`keep_freed_memory`] does nothing.

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorSetting {
    /// glibc took every setting.
    Applied,
    /// glibc refused one of them (named by its `mallopt` parameter).
    Refused(&'static str),
    /// Not glibc: nothing to set.
    Unsupported,
}

/// Tells glibc to serve large blocks from one heap and to keep freed memory
/// (see the module docs). Call it first thing in `main`, before other threads
/// exist, so that every thread allocates from the same heap.
pub fn keep_freed_memory() -> AllocatorSetting {
    glibc::apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    use std::ffi::c_int;

    use super::AllocatorSetting;

    /// Free memory at the heap's top above this is returned to the system.
    const M_TRIM_THRESHOLD: c_int = -1;
    /// Most blocks served by `mmap` at once.
    const M_MMAP_MAX: c_int = -4;
    /// Most arenas (heaps) the threads share.
    const M_ARENA_MAX: c_int = -8;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    pub(super) fn apply() -> AllocatorSetting {
        // One arena: a thread's own arena is built from 64 MiB heaps and would
        // still map every larger block separately.
        let settings = [
            ("M_ARENA_MAX", M_ARENA_MAX, 1),
            // No block by mmap: large ones come from the heap and are reused.
            ("M_MMAP_MAX", M_MMAP_MAX, 0),
            // Keep up to 2 GiB free at the heap's top rather than trimming it.
            ("M_TRIM_THRESHOLD", M_TRIM_THRESHOLD, c_int::MAX),
        ];
        for (name, param, value) in settings {
            // SAFETY: mallopt takes two integers and only changes malloc's
            // tunables; it is thread-safe in glibc.
            if unsafe { mallopt(param, value) } != 1 {
                return AllocatorSetting::Refused(name);
            }
        }
        AllocatorSetting::Applied
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod glibc {
    use super::AllocatorSetting;

    pub(super) fn apply() -> AllocatorSetting {
        AllocatorSetting::Unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The effect (no page faults for a step's reused activations) needs the
    // settings made before any thread allocates, which a test thread cannot
    // have; `benches/train_step.rs` reports minor page faults per step.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_settings() {
        assert_eq!(keep_freed_memory(), AllocatorSetting::Applied);
    }
}
