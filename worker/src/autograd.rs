//! Backward from a non-scalar tensor with a given gradient
//! (`torch.autograd.backward(root, grad)`), through the C++ shim
//! `worker/cxx/autograd.cpp`: tch 0.24 only runs backward from a scalar.
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
}

/// Room for libtorch's error message.
const ERROR_LEN: usize = 512;

/// Runs backward from `root` with `grad` (same shape) as the gradient of the
/// loss with respect to it, accumulating into the leaves' `.grad` as
/// `loss.backward()` would; the graph is freed.
pub fn backward_with_grad(root: &Tensor, grad: &Tensor) -> Result<(), TchError> {
    let mut error = [0 as c_char; ERROR_LEN];
    // SAFETY: both pointers are live tch tensors (torch::Tensor*) borrowed for
    // the call; the shim writes at most ERROR_LEN bytes, NUL-terminated, and
    // catches every C++ exception.
    let code = unsafe {
        spikecv_backward_with_grad(root.as_ptr(), grad.as_ptr(), error.as_mut_ptr(), ERROR_LEN)
    };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: the buffer starts zeroed and the shim NUL-terminates what it
    // writes within it.
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(TchError::Torch(message.to_string_lossy().into_owned()))
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

    #[test]
    fn a_shape_mismatch_is_an_error_with_libtorch_message() {
        let w = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let root = &w * 2.0;
        let err =
            backward_with_grad(&root, &Tensor::ones([4], (Kind::Float, Device::Cpu))).unwrap_err();
        assert!(err.to_string().contains("shape"), "{err}");
    }
}
