// libtorch switches that tch 0.24 does not expose: deterministic algorithms and
// deterministic cuDNN (the reference's `torch.use_deterministic_algorithms` and
// `torch.backends.cudnn.deterministic`). Built by worker/build.rs against the
// headers of the venv's libtorch; no C++ exception crosses into Rust.
#include <ATen/Context.h>

extern "C" {

// Turns deterministic algorithms and deterministic cuDNN on or off, and the
// cuDNN autotuner the other way: off while they are on (it picks algorithms by
// timing them), on for a job that need not repeat itself (it picks the fastest
// convolution algorithm for each shape once). Returns 0, or 1 if libtorch threw.
int spikecv_set_deterministic(bool on) {
  try {
    auto &ctx = at::globalContext();
    ctx.setDeterministicAlgorithms(on, /*warn_only=*/false);
    ctx.setDeterministicCuDNN(on);
    ctx.setBenchmarkCuDNN(!on);
    return 0;
  } catch (...) {
    return 1;
  }
}

// Bit 0: deterministic algorithms; bit 1: deterministic cuDNN; bit 2: cuDNN
// autotuner; bit 3: cuDNN enabled.
int spikecv_determinism_state() {
  try {
    const auto &ctx = at::globalContext();
    return (ctx.deterministicAlgorithms() ? 1 : 0) | (ctx.deterministicCuDNN() ? 2 : 0) |
           (ctx.benchmarkCuDNN() ? 4 : 0) | (ctx.userEnabledCuDNN() ? 8 : 0);
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
