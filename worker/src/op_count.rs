//! Counts the operations (ATen operations and fused LIF kernel calls) a
//! closure issues, through libtorch's RecordFunction callbacks
//! (`worker/cxx/op_count.cpp`): each operation called from outside ATen (by
//! our code or an autograd node), once, unless it only makes a view or
//! allocates. On a GPU each is one kernel launch or a few. For
//! `scripts/count-ops.sh` and [`step::training_step_ops`]; one count at a time
//! per process (the callbacks are global: run nothing else meanwhile).
#![allow(unsafe_code)]

pub mod step;

use std::ffi::{CStr, c_char, c_int, c_longlong};

unsafe extern "C" {
    fn spikecv_op_count_start() -> c_int;
    fn spikecv_op_count_stop();
    fn spikecv_op_count_len() -> usize;
    fn spikecv_op_count_get(
        i: usize,
        name: *mut c_char,
        name_len: usize,
        count: *mut c_longlong,
    ) -> c_int;
}

/// Another count was running.
#[derive(Debug, thiserror::Error)]
#[error("an operation count is already running in this process")]
pub struct AlreadyCounting;

/// Runs `f` and returns its result with the operations it ran, `(name,
/// count)` sorted by name.
pub fn count_ops<T>(f: impl FnOnce() -> T) -> Result<(T, Vec<(String, u64)>), AlreadyCounting> {
    // SAFETY: plain calls into the shim; it serialises its state itself.
    if unsafe { spikecv_op_count_start() } != 0 {
        return Err(AlreadyCounting);
    }
    let value = f();
    // SAFETY: as above.
    unsafe { spikecv_op_count_stop() };
    // SAFETY: as above.
    let len = unsafe { spikecv_op_count_len() };
    let mut counts = Vec::with_capacity(len);
    for i in 0..len {
        let mut name = [0 as c_char; 256];
        let mut count: c_longlong = 0;
        // SAFETY: the shim writes at most 256 bytes, NUL-terminated, and
        // one integer.
        if unsafe { spikecv_op_count_get(i, name.as_mut_ptr(), name.len(), &mut count) } != 0 {
            break;
        }
        // SAFETY: NUL-terminated by the shim within the buffer.
        let name = unsafe { CStr::from_ptr(name.as_ptr()) };
        counts.push((
            name.to_string_lossy().into_owned(),
            u64::try_from(count).unwrap_or(0),
        ));
    }
    Ok((value, counts))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tch::{Device, Kind, Tensor};

    use super::*;

    #[test]
    fn counts_the_work_and_not_the_views() {
        let a = Tensor::ones([4, 3], (Kind::Float, Device::Cpu));
        let ((), counts) = count_ops(|| {
            let b = &a + 1.0;
            let c = b.view([3, 4]).transpose(0, 1);
            let _ = c.sum(Kind::Float);
        })
        .unwrap();
        let total: u64 = counts.iter().map(|(_, n)| n).sum();
        let names: Vec<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"aten::add"), "{counts:?}");
        assert!(names.contains(&"aten::sum"), "{counts:?}");
        assert!(!names.contains(&"aten::view") && !names.contains(&"aten::transpose"));
        assert_eq!(total, 2, "{counts:?}");
    }
}
