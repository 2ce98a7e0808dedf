//! The calls tch 0.24 does not expose, through the C++ shim
//! `worker/cxx/foreach_adam.cpp`: Adam's step as libtorch's `_foreach_`
//! operations (PyTorch's `_multi_tensor_adam`), and a gradient set to none.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn spikecv_foreach_adam(
        params: *const *const C_tensor,
        grads: *const *const C_tensor,
        exp_avgs: *const *const C_tensor,
        exp_avg_sqs: *const *const C_tensor,
        n: usize,
        beta1: f64,
        beta2: f64,
        eps: f64,
        step_size: f64,
        bias_correction2_sqrt: f64,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn spikecv_set_grad_to_none(param: *const C_tensor) -> c_int;
}

/// Room for libtorch's error message.
const ERROR_LEN: usize = 512;

/// One Adam step's constants: the moments' decays, epsilon, and the step's
/// bias corrections as PyTorch computes them in Python.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamStep {
    /// `beta1`.
    pub beta1: f64,
    /// `beta2`.
    pub beta2: f64,
    /// `eps`.
    pub eps: f64,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f64,
    /// `sqrt(1 - beta2^t)`.
    pub bias_correction2_sqrt: f64,
}

/// Tensors of one Adam step, each list in parameter order (parameters with
/// a gradient only).
pub(crate) struct AdamTensors<'a> {
    /// The parameters, updated in place.
    pub params: Vec<&'a Tensor>,
    /// Their gradients.
    pub grads: Vec<&'a Tensor>,
    /// `exp_avg`, updated in place.
    pub exp_avgs: Vec<&'a Tensor>,
    /// `exp_avg_sq`, updated in place.
    pub exp_avg_sqs: Vec<&'a Tensor>,
}

/// Runs `_foreach_lerp_`, `_foreach_mul_`, `_foreach_addcmul_`,
/// `_foreach_sqrt`, `_foreach_div_`, `_foreach_add_` and `_foreach_addcdiv_`
/// over the lists, as `_multi_tensor_adam` does (7 operations whatever the
/// number of parameters).
pub(crate) fn adam(tensors: &AdamTensors<'_>, step: AdamStep) -> Result<(), TchError> {
    let n = tensors.params.len();
    let lists = [&tensors.grads, &tensors.exp_avgs, &tensors.exp_avg_sqs];
    if lists.iter().any(|l| l.len() != n) {
        return Err(TchError::Shape(format!(
            "foreach Adam: {n} parameters but {} gradients, {} exp_avg, {} exp_avg_sq",
            tensors.grads.len(),
            tensors.exp_avgs.len(),
            tensors.exp_avg_sqs.len()
        )));
    }
    let pointers =
        |l: &[&Tensor]| -> Vec<*const C_tensor> { l.iter().map(|t| t.as_ptr()).collect() };
    let (p, g, m, v) = (
        pointers(&tensors.params),
        pointers(&tensors.grads),
        pointers(&tensors.exp_avgs),
        pointers(&tensors.exp_avg_sqs),
    );
    let mut error = [0 as c_char; ERROR_LEN];
    // SAFETY: four arrays of `n` live tch tensors (torch::Tensor*), borrowed
    // for the call; the shim writes at most ERROR_LEN bytes, NUL-terminated,
    // and catches every C++ exception.
    let code = unsafe {
        spikecv_foreach_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            n,
            step.beta1,
            step.beta2,
            step.eps,
            step.step_size,
            step.bias_correction2_sqrt,
            error.as_mut_ptr(),
            ERROR_LEN,
        )
    };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: the buffer starts zeroed and the shim NUL-terminates what it
    // writes within it.
    let message = unsafe { CStr::from_ptr(error.as_ptr()) };
    Err(TchError::Torch(message.to_string_lossy().into_owned()))
}

/// Sets `param`'s gradient to none (`param.grad = None`).
pub(crate) fn set_grad_to_none(param: &Tensor) -> Result<(), TchError> {
    // SAFETY: a live tch tensor borrowed for the call; the shim catches
    // every C++ exception.
    if unsafe { spikecv_set_grad_to_none(param.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(TchError::Torch("setting a gradient to none failed".into()))
    }
}
