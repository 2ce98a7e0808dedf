//! Host tensors' memory as slices: a CPU float tensor filled in place, so
//! that data built on the host goes to libtorch without a second buffer and a
//! copy, and a CPU tensor's bytes read in place, so that a file is written
//! from the tensors themselves.

use tch::{Device, Kind, TchError, Tensor};

/// A zeroed float32 CPU tensor of `len` values, then filled by `fill`.
pub(crate) fn filled_f32(len: usize, fill: impl FnOnce(&mut [f32])) -> Result<Tensor, TchError> {
    let numel = i64::try_from(len)
        .map_err(|_| TchError::Convert(format!("{len} values do not fit a tensor")))?;
    let mut t = Tensor::f_zeros([numel], (Kind::Float, Device::Cpu))?;
    if len > 0 {
        fill(raw::values_mut(&mut t, len));
    }
    Ok(t)
}

/// The bytes of `t`, a contiguous CPU tensor, borrowed from its memory.
///
/// # Panics
/// If `t` is not a contiguous CPU tensor.
pub(crate) fn bytes(t: &Tensor) -> &[u8] {
    raw::bytes(t)
}

#[allow(unsafe_code)]
mod raw {
    use tch::Tensor;

    /// The values of `t`, a tensor that [`super::filled_f32`] has just made.
    pub(super) fn values_mut(t: &mut Tensor, len: usize) -> &mut [f32] {
        let ptr = t.data_ptr().cast::<f32>();
        assert!(!ptr.is_null() && t.numel() == len && t.is_contiguous());
        // SAFETY: `t` is a new contiguous float32 CPU tensor of `len` zeroed
        // values that no other tensor shares; the slice borrows `t` mutably,
        // so the memory lives while the slice does and nothing else uses `t`
        // meanwhile.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// See [`super::bytes`].
    pub(super) fn bytes(t: &Tensor) -> &[u8] {
        assert!(t.device() == tch::Device::Cpu && t.is_contiguous());
        let len = t.numel() * t.kind().elt_size_in_bytes();
        let ptr = t.data_ptr().cast::<u8>().cast_const();
        if len == 0 || ptr.is_null() {
            return &[];
        }
        // SAFETY: a contiguous CPU tensor holds `numel` elements of its kind
        // from its data pointer; the slice borrows `t`, which keeps the memory
        // alive, and `Tensor` is not `Sync`, so no other thread writes through
        // this tensor object while the slice lives.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}
