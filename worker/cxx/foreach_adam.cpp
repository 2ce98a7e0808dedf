// Adam through libtorch's foreach kernels, as PyTorch's default CUDA Adam
// (torch/optim/adam.py, _multi_tensor_adam, capturable=False, no weight decay,
// no amsgrad) issues them, and gradients set to none (zero_grad's default):
// tch 0.24 generates neither the _foreach_ operations nor a way to drop a
// gradient. On CUDA each _foreach_ operation is one multi-tensor kernel launch
// (or a few for very many tensors); on the CPU libtorch runs each as a loop of
// the single-tensor operation PyTorch's _single_tensor_adam calls. Built by
// worker/build.rs; no C++ exception crosses into Rust.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstring>
#include <exception>
#include <vector>

namespace {

void copy_message(const char *message, char *error, size_t error_len) {
  if (error_len > 0) {
    std::strncpy(error, message, error_len - 1);
    error[error_len - 1] = '\0';
  }
}

std::vector<at::Tensor> list(const at::Tensor *const *tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*tensors[i]);
  }
  return out;
}

}  // namespace

extern "C" {

// One Adam step over `n` parameters with their gradients and state, as
// _multi_tensor_adam does for a step count whose bias corrections give
// `step_size` (lr / (1 - beta1^t)) and `bias_correction2_sqrt`
// (sqrt(1 - beta2^t)), computed by the caller as Python computes them.
// Returns 0, or 1 with libtorch's message copied (truncated, NUL-terminated)
// into `error` of `error_len` bytes.
int spikecv_foreach_adam(const at::Tensor *const *params, const at::Tensor *const *grads,
                         const at::Tensor *const *exp_avgs, const at::Tensor *const *exp_avg_sqs,
                         size_t n, double beta1, double beta2, double eps, double step_size,
                         double bias_correction2_sqrt, char *error, size_t error_len) {
  try {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> p = list(params, n);
    std::vector<at::Tensor> g = list(grads, n);
    std::vector<at::Tensor> m = list(exp_avgs, n);
    std::vector<at::Tensor> v = list(exp_avg_sqs, n);
    at::_foreach_lerp_(m, g, at::Scalar(1.0 - beta1));
    at::_foreach_mul_(v, at::Scalar(beta2));
    at::_foreach_addcmul_(v, g, g, at::Scalar(1.0 - beta2));
    // Python passes per-parameter lists here (the ScalarList overloads).
    std::vector<at::Scalar> bc2_sqrt(n, at::Scalar(bias_correction2_sqrt));
    std::vector<at::Scalar> neg_step(n, at::Scalar(step_size * -1.0));
    std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
    at::_foreach_div_(denom, bc2_sqrt);
    at::_foreach_add_(denom, at::Scalar(eps));
    at::_foreach_addcdiv_(p, m, denom, neg_step);
    return 0;
  } catch (const std::exception &e) {
    copy_message(e.what(), error, error_len);
    return 1;
  } catch (...) {
    copy_message("unknown C++ exception", error, error_len);
    return 1;
  }
}

// Drops the gradient of `param` (param.grad = None): the next backward
// writes a fresh one instead of adding to zeros. Returns 0, or 1 on a
// libtorch failure.
int spikecv_set_grad_to_none(const at::Tensor *param) {
  try {
    const_cast<at::Tensor *>(param)->mutable_grad().reset();
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
