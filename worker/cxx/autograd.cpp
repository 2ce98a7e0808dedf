// The autograd calls tch 0.24 does not expose: backward from a non-scalar root
// with a given gradient (torch.autograd.backward(out, grad)), and a gradient
// accumulated into a parameter's .grad by hand. The staged training pass
// (worker/src/model/staged.rs) runs a stage's graph from the LIF gradient
// without forming a scalar first, and gives a convolution's bias the
// gradient the fused LIF kernels summed. Built by worker/build.rs; no C++
// exception crosses into Rust.
#include <torch/csrc/autograd/autograd.h>

#include <cstring>
#include <exception>

namespace {

void copy_message(const char *message, char *error, size_t error_len) {
  if (error_len > 0) {
    std::strncpy(error, message, error_len - 1);
    error[error_len - 1] = '\0';
  }
}

// Runs `body`, turning any C++ exception into 1 and its message.
template <typename F>
int guarded(char *error, size_t error_len, F body) {
  try {
    body();
    return 0;
  } catch (const std::exception &e) {
    copy_message(e.what(), error, error_len);
    return 1;
  } catch (...) {
    copy_message("unknown C++ exception", error, error_len);
    return 1;
  }
}

}  // namespace

extern "C" {

// Runs backward from `root` with `grad` as its gradient, accumulating into the
// leaves' .grad. Returns 0, or 1 with libtorch's message copied (truncated,
// NUL-terminated) into `error` of `error_len` bytes.
int spikecv_backward_with_grad(const at::Tensor *root, const at::Tensor *grad, char *error,
                               size_t error_len) {
  return guarded(error, error_len, [&] { torch::autograd::backward({*root}, {*grad}); });
}

// Accumulates `grad` into the leaf `param`'s .grad as autograd's
// AccumulateGrad does: when .grad is undefined (gradients set to none), taken
// as it is if nothing else holds it or its storage (the caller hands over its
// only handle), else a copy; when defined, added in place.
int spikecv_accumulate_grad(const at::Tensor *param, const at::Tensor *grad, char *error,
                            size_t error_len) {
  return guarded(error, error_len, [&] {
    at::Tensor &slot = const_cast<at::Tensor &>(*param).mutable_grad();
    if (slot.defined()) {
      slot.add_(*grad);
    } else if (grad->use_count() == 1 && grad->storage().use_count() == 1) {
      slot = grad->detach();
    } else {
      slot = grad->clone();
    }
  });
}

}  // extern "C"
