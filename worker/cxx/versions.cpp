// What the manifest of a job names and tch 0.24 does not expose: libtorch's
// version, the CPU capability its kernels dispatch to, the CUDA runtime and
// cuDNN versions libtorch was built with, and a GPU's name, compute
// capability and driver version. The GPU calls are looked up at run time
// (dlsym in the CUDA runtime and driver libtorch already loaded), so the
// file needs no CUDA header and builds against a CPU-only libtorch too.
// Used by worker/src/manifest.rs; no C++ exception crosses into Rust.
#include <ATen/Context.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/headeronly/version.h>

#include <dlfcn.h>

#include <cstring>
#include <string>

namespace {

void copy_text(const std::string &text, char *out, size_t out_len) {
  if (out_len > 0) {
    std::strncpy(out, text.c_str(), out_len - 1);
    out[out_len - 1] = '\0';
  }
}

}  // namespace

extern "C" {

// libtorch's version (`2.11.0`) and CPU capability (`AVX2`) into the two
// buffers. Returns 0, or 1 if libtorch threw.
int spikecv_torch_versions(char *version, size_t version_len, char *cpu, size_t cpu_len) {
  try {
    copy_text(TORCH_VERSION, version, version_len);
    copy_text(at::get_cpu_capability(), cpu, cpu_len);
    return 0;
  } catch (...) {
    return 1;
  }
}

// The CUDA runtime and cuDNN versions libtorch was built with (as libtorch
// encodes them: 13000, 91002). Returns 0; 1 when libtorch has no CUDA.
int spikecv_cuda_versions(long *cudart, long *cudnn) {
  try {
    const auto &hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDA()) {
      return 1;
    }
    *cudart = hooks.versionCUDART();
    *cudnn = hooks.versionCuDNN();
    return 0;
  } catch (...) {
    return 1;
  }
}

// GPU `index`'s name, compute capability and the driver's CUDA version
// (cudaDriverGetVersion: 13000 for 13.0). Returns 0, or 1 when the runtime
// or driver functions are not loaded or fail.
int spikecv_gpu_info(int index, char *name, size_t name_len, int *major, int *minor,
                     int *driver) {
  using Attr = int (*)(int *, int, int);
  using Version = int (*)(int *);
  using DeviceGet = int (*)(int *, int);
  using DeviceName = int (*)(char *, int, int);
  auto attr = reinterpret_cast<Attr>(dlsym(RTLD_DEFAULT, "cudaDeviceGetAttribute"));
  auto version = reinterpret_cast<Version>(dlsym(RTLD_DEFAULT, "cudaDriverGetVersion"));
  void *cuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
  if (attr == nullptr || version == nullptr || cuda == nullptr) {
    return 1;
  }
  auto get = reinterpret_cast<DeviceGet>(dlsym(cuda, "cuDeviceGet"));
  auto get_name = reinterpret_cast<DeviceName>(dlsym(cuda, "cuDeviceGetName"));
  int device = 0;
  // 75 and 76: cudaDevAttrComputeCapabilityMajor and Minor.
  int failed = (get == nullptr || get_name == nullptr) ? 1 : 0;
  failed = failed || attr(major, 75, index) != 0 || attr(minor, 76, index) != 0 ||
           version(driver) != 0 || get(&device, index) != 0 ||
           get_name(name, static_cast<int>(name_len), device) != 0;
  dlclose(cuda);
  return failed ? 1 : 0;
}

}  // extern "C"
