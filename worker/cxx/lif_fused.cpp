// The fused LIF kernels (lif_fused.inc) in their two forms, and what it takes
// to run the CUDA one without nvcc: NVRTC to compile it (libnvrtc, opened at
// run time), the CUDA driver to load and launch it (libcuda, opened at run
// time) on libtorch's current stream of the device, found through c10's
// device-generic interface (so no CUDA header is needed to build this, and a
// libtorch without CUDA simply says so at run time). Built by worker/build.rs.
// No C++ exception crosses into Rust: every entry point returns 0, or 1 with a
// message.
#include <ATen/record_function.h>
#include <c10/core/CPUAllocator.h>
#include <dirent.h>
#include <dlfcn.h>

#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#define SPIKECV_FN static inline
#define SPIKECV_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define SPIKECV_ABS(x) __builtin_fabsf(x)
#define SPIKECV_UNROLL
#include "lif_fused.inc"

#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace {

void copy_message(const std::string &message, char *error, size_t error_len) {
  if (error_len > 0) {
    std::strncpy(error, message.c_str(), error_len - 1);
    error[error_len - 1] = '\0';
  }
}

// Runs `f`, turning any C++ exception into 1 and its message.
template <typename F>
int guarded(char *error, size_t error_len, F f) {
  try {
    return f();
  } catch (const std::exception &e) {
    copy_message(e.what(), error, error_len);
    return 1;
  } catch (...) {
    copy_message("unknown C++ exception", error, error_len);
    return 1;
  }
}

// What NVRTC compiles: the prelude, the shared bodies, the kernels.
const char *const kCudaPrelude = R"(
#define SPIKECV_FN __device__ __forceinline__
#define SPIKECV_FMA(a, b, c) fmaf((a), (b), (c))
#define SPIKECV_ABS(x) fabsf(x)
#define SPIKECV_UNROLL _Pragma("unroll")
)";

const char *const kCudaKernels = R"(
// `tally` (none: 0) gets the layer's spikes added: each warp's sum (every
// lane takes part, the block size being a multiple of 32), one atomic add per
// warp; integers, so the total does not depend on the order.
extern "C" __global__ void spikecv_lif_forward(SpikecvLifShape s, float *__restrict__ u,
                                               float *__restrict__ out,
                                               unsigned long long *tally,
                                               const float *__restrict__ bias) {
  long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  unsigned long long spikes = 0;
  if (index < spikecv_lif_windows(&s)) {
    spikes = (unsigned long long)spikecv_lif_forward_window(&s, index, u, out, bias);
  }
  if (tally != 0) {
    for (int offset = 16; offset > 0; offset /= 2) {
      spikes += __shfl_down_sync(0xffffffffu, spikes, offset);
    }
    if ((threadIdx.x & 31) == 0 && spikes != 0) {
      atomicAdd(tally, spikes);
    }
  }
}
extern "C" __global__ void spikecv_lif_backward(SpikecvLifShape s, float *__restrict__ u,
                                                const float *__restrict__ grad,
                                                double *__restrict__ bias_part) {
  long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (index < spikecv_lif_windows(&s)) {
    spikecv_lif_backward_window(&s, index, u, grad, bias_part);
  }
}
)";

// NVRTC's entry points, resolved from the library by name.
struct Nvrtc {
  using Program = void *;
  int (*create)(Program *, const char *, const char *, int, const char *const *,
                const char *const *) = nullptr;
  int (*compile)(Program, int, const char *const *) = nullptr;
  int (*log_size)(Program, size_t *) = nullptr;
  int (*log)(Program, char *) = nullptr;
  int (*cubin_size)(Program, size_t *) = nullptr;
  int (*cubin)(Program, char *) = nullptr;
  int (*destroy)(Program *) = nullptr;
  const char *(*error_string)(int) = nullptr;
};

template <typename T>
bool resolve(void *library, const char *name, T *out) {
  *out = reinterpret_cast<T>(dlsym(library, name));
  return *out != nullptr;
}

// Loads the builtins library that sits beside libnvrtc at `path`, of the
// same major version, whatever its minor one (`libnvrtc.so.13` beside
// `libnvrtc-builtins.so.13.2`): NVRTC then finds it by its soname. None
// there (or an unversioned `path`): NVRTC looks for it itself.
void preload_builtins(const std::string &path) {
  size_t slash = path.find_last_of('/');
  std::string folder = slash == std::string::npos ? "./" : path.substr(0, slash + 1);
  std::string name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const std::string stem = "libnvrtc.so";
  std::string version = name.compare(0, stem.size(), stem) == 0 ? name.substr(stem.size()) : "";
  size_t minor = version.find('.', 1);
  std::string major = minor == std::string::npos ? version : version.substr(0, minor);
  std::string wanted = "libnvrtc-builtins.so" + major;
  DIR *dir = opendir(folder.c_str());
  if (dir == nullptr) {
    return;
  }
  while (struct dirent *entry = readdir(dir)) {
    std::string file = entry->d_name;
    bool same_major = file.compare(0, wanted.size(), wanted) == 0 &&
                      (file.size() == wanted.size() || file[wanted.size()] == '.');
    if (same_major) {
      dlopen((folder + file).c_str(), RTLD_NOW | RTLD_GLOBAL);
    }
  }
  closedir(dir);
}

// Opens libnvrtc at `path` (its builtins library, beside it, first) once per
// process; later calls return the first result.
const Nvrtc *open_nvrtc(const std::string &path, std::string *why) {
  static std::mutex lock;
  static Nvrtc loaded;
  static bool done = false;
  static std::string failure;
  std::lock_guard<std::mutex> guard(lock);
  if (!done) {
    done = true;
    // NVRTC opens its builtins by soname; loaded first from the same folder,
    // they are found whatever the loader's search path.
    preload_builtins(path);
    void *library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char *message = dlerror();
      failure = std::string("cannot open ") + path + ": " + (message ? message : "unknown");
    } else if (!(resolve(library, "nvrtcCreateProgram", &loaded.create) &&
                 resolve(library, "nvrtcCompileProgram", &loaded.compile) &&
                 resolve(library, "nvrtcGetProgramLogSize", &loaded.log_size) &&
                 resolve(library, "nvrtcGetProgramLog", &loaded.log) &&
                 resolve(library, "nvrtcGetCUBINSize", &loaded.cubin_size) &&
                 resolve(library, "nvrtcGetCUBIN", &loaded.cubin) &&
                 resolve(library, "nvrtcDestroyProgram", &loaded.destroy) &&
                 resolve(library, "nvrtcGetErrorString", &loaded.error_string))) {
      failure = path + " lacks an NVRTC entry point";
    }
  }
  if (!failure.empty()) {
    *why = failure;
    return nullptr;
  }
  return &loaded;
}

// Compiles the CUDA form for sm_<arch> into a cubin, or says why not.
bool compile_cubin(const std::string &nvrtc_path, const std::string &body, int arch,
                   std::vector<char> *cubin, std::string *why) {
  const Nvrtc *nvrtc = open_nvrtc(nvrtc_path, why);
  if (nvrtc == nullptr) {
    return false;
  }
  std::string source = std::string(kCudaPrelude) + body + kCudaKernels;
  Nvrtc::Program program = nullptr;
  int code = nvrtc->create(&program, source.c_str(), "lif_fused.cu", 0, nullptr, nullptr);
  if (code != 0) {
    *why = std::string("nvrtcCreateProgram: ") + nvrtc->error_string(code);
    return false;
  }
  std::string gpu = "--gpu-architecture=sm_" + std::to_string(arch);
  // No contraction: the kernels fuse exactly the one product they name.
  const char *options[] = {gpu.c_str(), "--fmad=false", "--std=c++17"};
  code = nvrtc->compile(program, 3, options);
  bool ok = code == 0;
  if (!ok) {
    size_t size = 0;
    nvrtc->log_size(program, &size);
    std::string log(size, '\0');
    if (size > 0) {
      nvrtc->log(program, &log[0]);
    }
    *why = std::string("nvrtc (sm_") + std::to_string(arch) + "): " + nvrtc->error_string(code) +
           ": " + log;
  } else {
    size_t size = 0;
    nvrtc->cubin_size(program, &size);
    cubin->assign(size, '\0');
    nvrtc->cubin(program, cubin->data());
  }
  nvrtc->destroy(&program);
  return ok;
}

}  // namespace

extern "C" {

// The file libtorch's core library (libc10) was loaded from, for finding the
// NVRTC library that the wheel installs beside torch. 0, or 1 if unknown.
int spikecv_torch_library(char *out, size_t out_len) {
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&c10::GetCPUAllocator), &info) == 0 ||
      info.dli_fname == nullptr) {
    return 1;
  }
  copy_message(info.dli_fname, out, out_len);
  return 0;
}

// Windows (CUDA threads) of a layer.
long long spikecv_lif_window_count(const SpikecvLifShape *shape) {
  return spikecv_lif_windows(shape);
}

// The C++ form of the forward kernel over every window, on host memory;
// `tally` (none: null) gets the layer's spikes added, `bias` (or null) is the
// convolution's bias, added to each input.
int spikecv_lif_forward_host(const SpikecvLifShape *shape, float *u, float *out,
                             long long *tally, const float *bias, char *error,
                             size_t error_len) {
  return guarded(error, error_len, [&] {
    RECORD_FUNCTION("spikecv::lif_forward", std::vector<c10::IValue>());
    long long windows = spikecv_lif_windows(shape);
    long long spikes = 0;
    for (long long i = 0; i < windows; ++i) {
      spikes += spikecv_lif_forward_window(shape, i, u, out, bias);
    }
    if (tally != nullptr) {
      *tally += spikes;
    }
    return 0;
  });
}

// The C++ form of the backward kernel over every window, on host memory;
// `bias_part` (or null) gets each window's sum of input gradients.
int spikecv_lif_backward_host(const SpikecvLifShape *shape, float *u, const float *grad,
                              double *bias_part, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    RECORD_FUNCTION("spikecv::lif_backward", std::vector<c10::IValue>());
    long long windows = spikecv_lif_windows(shape);
    for (long long i = 0; i < windows; ++i) {
      spikecv_lif_backward_window(shape, i, u, grad, bias_part);
    }
    return 0;
  });
}

// Compiles the CUDA form of `body` (lif_fused.inc's text) for sm_<arch> with
// the NVRTC library at `nvrtc_path`; writes the cubin's size. Needs no GPU.
int spikecv_lif_nvrtc_check(const char *nvrtc_path, const char *body, int arch,
                            size_t *cubin_size, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    std::vector<char> cubin;
    std::string why;
    if (!compile_cubin(nvrtc_path, body, arch, &cubin, &why)) {
      copy_message(why, error, error_len);
      return 1;
    }
    *cubin_size = cubin.size();
    return 0;
  });
}

}  // extern "C"

namespace {

// The CUDA driver's entry points, resolved from libcuda at run time so that
// the worker starts on machines without a GPU driver.
struct Driver {
  int (*init)(unsigned) = nullptr;
  int (*device_get)(int *, int) = nullptr;
  int (*attribute)(int *, int, int) = nullptr;
  int (*primary_retain)(void **, int) = nullptr;
  int (*set_current)(void *) = nullptr;
  int (*module_load)(void **, const void *) = nullptr;
  int (*get_function)(void **, void *, const char *) = nullptr;
  int (*launch)(void *, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                void *, void **, void **) = nullptr;
  int (*error_string)(int, const char **) = nullptr;
};

// cuDeviceGetAttribute's compute capability (CU_DEVICE_ATTRIBUTE_*).
constexpr int kComputeMajor = 75;
constexpr int kComputeMinor = 76;

const Driver *open_driver(std::string *why) {
  static std::mutex lock;
  static Driver loaded;
  static bool done = false;
  static std::string failure;
  std::lock_guard<std::mutex> guard(lock);
  if (!done) {
    done = true;
    void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char *message = dlerror();
      failure = std::string("cannot open libcuda.so.1: ") + (message ? message : "unknown");
    } else if (!(resolve(library, "cuInit", &loaded.init) &&
                 resolve(library, "cuDeviceGet", &loaded.device_get) &&
                 resolve(library, "cuDeviceGetAttribute", &loaded.attribute) &&
                 resolve(library, "cuDevicePrimaryCtxRetain", &loaded.primary_retain) &&
                 resolve(library, "cuCtxSetCurrent", &loaded.set_current) &&
                 resolve(library, "cuModuleLoadData", &loaded.module_load) &&
                 resolve(library, "cuModuleGetFunction", &loaded.get_function) &&
                 resolve(library, "cuLaunchKernel", &loaded.launch) &&
                 resolve(library, "cuGetErrorString", &loaded.error_string))) {
      failure = "libcuda.so.1 lacks a driver entry point";
    }
  }
  if (!failure.empty()) {
    *why = failure;
    return nullptr;
  }
  return &loaded;
}

std::string driver_error(const Driver *driver, const char *call, int code) {
  const char *text = nullptr;
  driver->error_string(code, &text);
  return std::string(call) + ": " + (text ? text : "CUDA error " + std::to_string(code));
}

// The kernels loaded on one device, in its primary context (libtorch's).
struct Loaded {
  void *context = nullptr;
  void *forward = nullptr;
  void *backward = nullptr;
  int arch = 0;
};

std::mutex devices_lock;
std::unordered_map<int, Loaded> devices;
std::unordered_map<int, std::string> device_failures;

// Compiles (once per device) and loads the kernels, or says why not.
bool prepare(int device, const std::string &nvrtc_path, const std::string &body, Loaded *out,
             std::string *why) {
  std::lock_guard<std::mutex> guard(devices_lock);
  auto found = devices.find(device);
  if (found != devices.end()) {
    *out = found->second;
    return true;
  }
  auto failed = device_failures.find(device);
  if (failed != device_failures.end()) {
    *why = failed->second;
    return false;
  }
  auto fail = [&](const std::string &message) {
    device_failures[device] = message;
    *why = message;
    return false;
  };
  const Driver *driver = open_driver(why);
  if (driver == nullptr) {
    return fail(*why);
  }
  int code = driver->init(0);
  if (code != 0) return fail(driver_error(driver, "cuInit", code));
  int handle = 0;
  code = driver->device_get(&handle, device);
  if (code != 0) return fail(driver_error(driver, "cuDeviceGet", code));
  int major = 0, minor = 0;
  driver->attribute(&major, kComputeMajor, handle);
  driver->attribute(&minor, kComputeMinor, handle);
  Loaded loaded;
  loaded.arch = major * 10 + minor;
  std::vector<char> cubin;
  if (!compile_cubin(nvrtc_path, body, loaded.arch, &cubin, why)) {
    return fail(*why);
  }
  code = driver->primary_retain(&loaded.context, handle);
  if (code != 0) return fail(driver_error(driver, "cuDevicePrimaryCtxRetain", code));
  code = driver->set_current(loaded.context);
  if (code != 0) return fail(driver_error(driver, "cuCtxSetCurrent", code));
  void *module = nullptr;
  code = driver->module_load(&module, cubin.data());
  if (code != 0) return fail(driver_error(driver, "cuModuleLoadData", code));
  code = driver->get_function(&loaded.forward, module, "spikecv_lif_forward");
  if (code != 0) return fail(driver_error(driver, "cuModuleGetFunction", code));
  code = driver->get_function(&loaded.backward, module, "spikecv_lif_backward");
  if (code != 0) return fail(driver_error(driver, "cuModuleGetFunction", code));
  devices[device] = loaded;
  *out = loaded;
  return true;
}

// Threads per block of a launch.
constexpr unsigned kBlock = 256;

// Launches `kernel` over the layer's windows on the current stream of `device`
// with the kernel's pointer arguments after the shape (forward: u, out, tally,
// bias; backward: u, grad, bias_part; the missing ones null).
int launch(int device, bool forward, const SpikecvLifShape *shape, std::vector<void *> pointers,
           char *error, size_t error_len) {
  Loaded loaded;
  {
    std::lock_guard<std::mutex> guard(devices_lock);
    auto found = devices.find(device);
    if (found == devices.end()) {
      copy_message("the fused LIF kernels are not prepared on this device", error, error_len);
      return 1;
    }
    loaded = found->second;
  }
  std::string why;
  const Driver *driver = open_driver(&why);
  if (driver == nullptr) {
    copy_message(why, error, error_len);
    return 1;
  }
  long long windows = spikecv_lif_windows(shape);
  if (windows == 0) {
    return 0;
  }
  long long blocks = (windows + kBlock - 1) / kBlock;
  if (blocks > 0x7fffffffLL) {
    copy_message("a layer too large for one launch", error, error_len);
    return 1;
  }
  // libtorch's current stream of the device on this thread (a slot's own).
  c10::Device where(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device));
  void *stream = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(where)
                     .native_handle();
  int code = driver->set_current(loaded.context);
  if (code == 0) {
    SpikecvLifShape by_value = *shape;
    std::vector<void *> params = {&by_value};
    for (void *&pointer : pointers) {
      params.push_back(&pointer);
    }
    code = driver->launch(forward ? loaded.forward : loaded.backward,
                          static_cast<unsigned>(blocks), 1, 1, kBlock, 1, 1, 0, stream,
                          params.data(), nullptr);
  }
  if (code != 0) {
    copy_message(driver_error(driver, "cuLaunchKernel", code), error, error_len);
    return 1;
  }
  return 0;
}

}  // namespace

extern "C" {

// Compiles and loads the CUDA form on `device` (once; later calls return the
// first outcome) and writes the architecture it was compiled for.
int spikecv_lif_cuda_prepare(int device, const char *nvrtc_path, const char *body, int *arch,
                             char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    Loaded loaded;
    std::string why;
    if (!prepare(device, nvrtc_path, body, &loaded, &why)) {
      copy_message(why, error, error_len);
      return 1;
    }
    *arch = loaded.arch;
    return 0;
  });
}

// The forward kernel on device memory, on the device's current stream;
// `tally` (device memory, or null) gets the layer's spikes added, `bias` (or
// null) is the convolution's bias.
int spikecv_lif_forward_cuda(int device, const SpikecvLifShape *shape, float *u, float *out,
                             long long *tally, const float *bias, char *error,
                             size_t error_len) {
  return guarded(error, error_len, [&] {
    RECORD_FUNCTION("spikecv::lif_forward", std::vector<c10::IValue>());
    return launch(device, true, shape, {u, out, tally, const_cast<float *>(bias)}, error,
                  error_len);
  });
}

// The backward kernel on device memory, on the device's current stream;
// `bias_part` (device memory, or null) gets each window's sum of input
// gradients.
int spikecv_lif_backward_cuda(int device, const SpikecvLifShape *shape, float *u,
                              const float *grad, double *bias_part, char *error,
                              size_t error_len) {
  return guarded(error, error_len, [&] {
    RECORD_FUNCTION("spikecv::lif_backward", std::vector<c10::IValue>());
    return launch(device, false, shape, {u, const_cast<float *>(grad), bias_part}, error,
                  error_len);
  });
}

}  // extern "C"
