//! The kernels on libtorch tensors: which tensors they apply to, and their
//! memory as slices.

use tch::{Device, Kind, Tensor};

use super::{Layout, backward, forward};
use crate::lif::LifParams;

/// Whether the kernels can run on `tensor` in place: a contiguous CPU tensor
/// of `f32` or `f64` with `len` values.
pub fn applies_to(tensor: &Tensor, len: usize) -> bool {
    tensor.device() == Device::Cpu
        && matches!(tensor.kind(), Kind::Float | Kind::Double)
        && tensor.is_contiguous()
        && tensor.numel() == len
}

/// [`forward`] on tensors: `u` (see [`applies_to`]) holds the inputs and is
/// left holding the potentials; returns the output as a flat tensor of
/// `layout.out_len()` values, or `None` (nothing done) when the kernels do not
/// apply to `u`.
pub fn forward_tensor(params: &LifParams, layout: &Layout, u: &Tensor) -> Option<Tensor> {
    if !applies_to(u, layout.len()) {
        return None;
    }
    let out_len = i64::try_from(layout.out_len()).ok()?;
    let out = Tensor::empty([out_len], (u.kind(), Device::Cpu));
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1);
    match u.kind() {
        Kind::Float => raw::with_two::<f32>(u, &out, |u, out| {
            forward(params, layout, u, out, threads);
        }),
        _ => raw::with_two::<f64>(u, &out, |u, out| {
            forward(params, layout, u, out, threads);
        }),
    }
    Some(out)
}

/// [`backward`] on tensors: `u` holds the potentials and is left holding the
/// gradient with respect to the inputs; `grad` is the output's gradient, a
/// tensor of `layout.out_len()` values of `u`'s kind (made contiguous here).
/// Returns `false` (nothing done) when the kernels do not apply.
pub fn backward_tensor(params: &LifParams, layout: &Layout, u: &Tensor, grad: &Tensor) -> bool {
    if !applies_to(u, layout.len()) || grad.kind() != u.kind() || grad.device() != Device::Cpu {
        return false;
    }
    let grad = grad.contiguous();
    if !applies_to(&grad, layout.out_len()) {
        return false;
    }
    let threads = usize::try_from(tch::get_num_threads()).unwrap_or(1);
    match u.kind() {
        Kind::Float => raw::with_two::<f32>(u, &grad, |u, g| {
            backward(params, layout, u, g, threads);
        }),
        _ => raw::with_two::<f64>(u, &grad, |u, g| {
            backward(params, layout, u, g, threads);
        }),
    }
    true
}

/// The tensors' memory as slices.
#[allow(unsafe_code)]
mod raw {
    use tch::Tensor;

    use super::super::Real;

    /// Calls `f` with `first`'s values (mutable) and `second`'s. Both must be
    /// contiguous CPU tensors of kind `R::KIND` (checked by the callers with
    /// `applies_to`).
    ///
    /// # Panics
    /// If the kinds differ from `R`'s or the two tensors' memory overlaps.
    pub(super) fn with_two<R: Real>(
        first: &Tensor,
        second: &Tensor,
        f: impl FnOnce(&mut [R], &mut [R]),
    ) {
        assert!(first.kind() == R::KIND && second.kind() == R::KIND);
        assert!(first.is_contiguous() && second.is_contiguous());
        let (a, a_len) = (first.data_ptr().cast::<R>(), numel(first));
        let (b, b_len) = (second.data_ptr().cast::<R>(), numel(second));
        let (a_start, b_start) = (a as usize, b as usize);
        let size = std::mem::size_of::<R>();
        let disjoint = a_len == 0
            || b_len == 0
            || a_start + a_len * size <= b_start
            || b_start + b_len * size <= a_start;
        assert!(disjoint, "the two buffers overlap");
        // SAFETY: each tensor is contiguous, of element type R, and holds
        // `numel` values from its data pointer; the two ranges do not overlap;
        // the slices live only for the call, and `Tensor` is not `Sync`, so no
        // other thread works on these tensor objects meanwhile.
        let (a, b) = unsafe { (slice_or_empty(a, a_len), slice_or_empty(b, b_len)) };
        f(a, b);
    }

    fn numel(t: &Tensor) -> usize {
        t.numel()
    }

    /// # Safety
    /// `ptr` must point to `len` initialised values of `R` that nothing else
    /// accesses while the slice lives (or `len` must be 0).
    unsafe fn slice_or_empty<'a, R>(ptr: *mut R, len: usize) -> &'a mut [R] {
        if len == 0 || ptr.is_null() {
            return &mut [];
        }
        // SAFETY: as the function's contract says.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }
}
