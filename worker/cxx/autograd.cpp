// The autograd call tch 0.24 does not expose: backward from a non-scalar root
// with a given gradient (torch.autograd.backward(out, grad)). The staged
// training pass (worker/src/model/staged.rs) uses it to run a stage's graph
// from the LIF gradient without forming a scalar first. Built by
// worker/build.rs; no C++ exception crosses into Rust.
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

}  // namespace

extern "C" {

// Runs backward from `root` with `grad` as its gradient, accumulating into the
// leaves' .grad. Returns 0, or 1 with libtorch's message copied (truncated,
// NUL-terminated) into `error` of `error_len` bytes.
int spikecv_backward_with_grad(const at::Tensor *root, const at::Tensor *grad, char *error,
                               size_t error_len) {
  try {
    torch::autograd::backward({*root}, {*grad});
    return 0;
  } catch (const std::exception &e) {
    copy_message(e.what(), error, error_len);
    return 1;
  } catch (...) {
    copy_message("unknown C++ exception", error, error_len);
    return 1;
  }
}

}  // extern "C"
