//! Backward from a non-scalar tensor with a given gradient
//! (`torch.autograd.backward(root, grad)`) and a gradient accumulated by hand,
//! through the C++ shim `worker/cxx/autograd.cpp`: tch 0.24 only runs
//! backward from a scalar.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn spikecv_backward_with_grad(
        root: *const C_tensor,
        grad: *const C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_accumulate_grad(
        param: *const C_tensor,
        grad: *const C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
}

/// Room for libtorch's error message.
const ERROR_LEN: usize = 512;

/// Calls a shim function of two tensors; a non-zero code becomes libtorch's
/// message.
fn checked(
    f: unsafe extern "C" fn(*const C_tensor, *const C_tensor, *mut c_char, usize) -> c_int,
    a: &Tensor,
    b: &Tensor,
) -> Result<(), TchError> {
    let mut error = [0 as c_char; ERROR_LEN];
    // SAFETY: both pointers are live tch tensors (torch::Tensor*) borrowed for
    // the call; the shim writes at most ERROR_LEN bytes, NUL-terminated, and
    // catches every C++ exception.
    let code = unsafe { f(a.as_ptr(), b.as_ptr(), error.as_mut_ptr(), ERROR_LEN) };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: the buffer starts zeroed and the shim NUL-terminates what it
    // writes within it.
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(TchError::Torch(message.to_string_lossy().into_owned()))
}

/// Runs backward from `root` with `grad` (same shape) as the gradient of the
/// loss with respect to it, accumulating into the leaves' `.grad` as
/// `loss.backward()` would; the graph is freed.
pub fn backward_with_grad(root: &Tensor, grad: &Tensor) -> Result<(), TchError> {
    checked(spikecv_backward_with_grad, root, grad)
}

/// Accumulates `grad` (the shape of `param`, a leaf) into `param`'s `.grad`
/// as autograd does: when there is none (gradients set to none), taken as it
/// is, no operation, if nothing else holds it or its values (else copied);
/// else added in place.
pub fn accumulate_grad(param: &Tensor, grad: Tensor) -> Result<(), TchError> {
    if param.size() != grad.size() {
        return Err(TchError::Shape(format!(
            "a gradient of shape {:?} for a parameter of shape {:?}",
            grad.size(),
            param.size()
        )));
    }
    checked(spikecv_accumulate_grad, param, &grad)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tch::{Device, Kind, Tensor};

    use super::*;

    #[test]
    fn accumulates_the_gradient_of_a_non_scalar_root() {
        let w = Tensor::from_slice(&[1.0f64, 2.0, 3.0]).set_requires_grad(true);
        let root = &w * &w;
        let grad = Tensor::from_slice(&[1.0f64, 10.0, 100.0]);
        backward_with_grad(&root, &grad).unwrap();
        // d(w²)/dw · grad = 2w · grad.
        let expected = Tensor::from_slice(&[2.0f64, 40.0, 600.0]);
        assert!(w.grad().equal(&expected));
    }

    /// The same gradients as the scalar root `(root · grad).sum()` that the
    /// staged pass used before, through a convolution.
    #[test]
    fn equals_backward_from_the_dot_product() {
        let opts = (Kind::Double, Device::Cpu);
        let (input, weight) = crate::model::with_seed(5, || {
            (
                Tensor::rand([3, 4, 9, 8], opts),
                Tensor::randn([5, 4, 3, 3], opts),
            )
        });
        let weight = weight.set_requires_grad(true);
        let out = input.conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
        let grad = Tensor::randn(out.size(), opts);
        backward_with_grad(&out, &grad).unwrap();
        let ours = weight.grad().copy();
        let _ = weight.grad().zero_();
        let out = input.conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
        out.reshape([-1]).dot(&grad.reshape([-1])).backward();
        assert!(ours.equal(&weight.grad()));
    }

    /// A gradient by hand is taken when there is none and added after.
    #[test]
    fn accumulates_a_gradient_by_hand() {
        let b = Tensor::from_slice(&[0.5f64, 1.0]).set_requires_grad(true);
        let given = Tensor::from_slice(&[7.0f64, -1.0]);
        let handed = given.copy();
        let at = handed.data_ptr();
        accumulate_grad(&b, handed).unwrap();
        assert!(b.grad().equal(&given));
        assert_eq!(b.grad().data_ptr(), at, "the only handle taken as it is");
        // `given` is still held here: copied, and left alone by the addition.
        accumulate_grad(&b, given.shallow_clone()).unwrap();
        assert!(b.grad().equal(&(&given * 2.0)));
        let b2 = Tensor::from_slice(&[0.0f64, 0.0]).set_requires_grad(true);
        accumulate_grad(&b2, given.shallow_clone()).unwrap();
        assert_ne!(
            b2.grad().data_ptr(),
            given.data_ptr(),
            "a held gradient is copied"
        );
        let _ = b2.grad().g_add_(&given);
        assert!(
            given.equal(&Tensor::from_slice(&[7.0f64, -1.0])),
            "given left alone"
        );
        let root = &b * 3.0;
        backward_with_grad(&root, &Tensor::from_slice(&[1.0f64, 1.0])).unwrap();
        assert!(b.grad().equal(&Tensor::from_slice(&[17.0f64, 1.0])));
        let wrong = Tensor::zeros([3], (Kind::Double, Device::Cpu));
        assert!(accumulate_grad(&b, wrong).is_err());
    }

    #[test]
    fn a_shape_mismatch_is_an_error_with_libtorch_message() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let root = &w * 2.0;
        let err =
            backward_with_grad(&root, &Tensor::ones([4], (Kind::Float, Device::Cpu))).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
    }
}
