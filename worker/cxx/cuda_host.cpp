// The CUDA host-side calls tch 0.24 does not expose: pinned host tensors
// allocated directly (no deprecated `pin_memory(device)`), events to know when
// a non-blocking copy out of one has finished, that copy on a stream of its
// own, a stream from libtorch's pool
// made the calling thread's current stream, the card's free memory
// (cudaMemGetInfo), the caching allocator's emptyCache, and the TF32 switch
// for cuDNN convolutions. Used by worker/src/cuda_host.rs.
//
// Everything goes through libtorch's device-generic interfaces (c10::Event,
// the CUDA DeviceGuardImpl, the CUDA DeviceAllocator), which dispatch to
// c10::cuda::getStreamFromPool, setCurrentCUDAStream, cudaEventRecord and
// cudaMemGetInfo at run time: the file needs no CUDA header and builds against
// a CPU-only libtorch too, where each call fails with libtorch's message.
// No C++ exception crosses into Rust: every function returns 0 or 1 with the
// message copied into `error`.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <unordered_map>

namespace {

void copy_message(const char *message, char *error, size_t error_len) {
  if (error_len > 0) {
    std::strncpy(error, message, error_len - 1);
    error[error_len - 1] = '\0';
  }
}

// Runs `body`, turning any C++ exception into 1 and a message.
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

c10::Device cuda_device(int64_t index) {
  return c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace

extern "C" {

// A new uint8 tensor of `bytes` bytes in page-locked host memory
// (at::empty with pinned_memory(true)), handed over as a heap-allocated
// at::Tensor* in `out` (tch takes ownership).
int spikecv_pinned_empty(int64_t bytes, at::Tensor **out, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto options = at::TensorOptions().dtype(at::kByte).pinned_memory(true);
    *out = new at::Tensor(at::empty({bytes}, options));
  });
}

// A CUDA event (created lazily by its first record), as an opaque pointer.
int spikecv_event_new(void **out, char *error, size_t error_len) {
  return guarded(error, error_len, [&] { *out = new c10::Event(c10::DeviceType::CUDA); });
}

// Records `event` on the calling thread's current stream of device `index`.
int spikecv_event_record(void *event, int64_t index, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    static_cast<c10::Event *>(event)->record(impl->getStream(cuda_device(index)));
  });
}

// Waits on the host until the work recorded by `event` is done (at once if
// it was never recorded).
int spikecv_event_synchronize(void *event, char *error, size_t error_len) {
  return guarded(error, error_len, [&] { static_cast<c10::Event *>(event)->synchronize(); });
}

// Copies the pinned host tensor `host` to device `index` on a copy stream of
// its own (a high-priority stream from libtorch's pool, apart from the
// low-priority ones the training threads compute on; the same one for every
// copy of the calling thread to that device), records `event` there
// after the copy and makes the calling thread's current (compute) stream wait
// on it, so the copy overlaps the compute queued before it. The copy's memory
// is marked as used by the compute stream (recordDataPtrOnStream), so the
// caching allocator does not hand it out again before the compute stream is
// done with it. The result keeps `host`'s strides.
int spikecv_upload_on_copy_stream(const at::Tensor *host, int64_t index, void *event,
                                  at::Tensor **out, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    auto device = cuda_device(index);
    auto compute = impl->getStream(device);
    // One copy stream per thread and device, kept: the caching allocator
    // keeps freed blocks per stream, so a new stream each batch would spread
    // the uploads' memory over the pool's streams.
    thread_local std::unordered_map<int64_t, c10::Stream> copy_streams;
    auto found = copy_streams.find(index);
    if (found == copy_streams.end()) {
      auto stream = impl->getStreamFromGlobalPool(device, /*isHighPriority=*/true);
      found = copy_streams.emplace(index, stream).first;
    }
    c10::Stream copy = found->second;
    impl->exchangeStream(copy);
    at::Tensor result;
    try {
      result = host->to(host->options().device(device).pinned_memory(false),
                        /*non_blocking=*/true, /*copy=*/false);
    } catch (...) {
      impl->exchangeStream(compute);
      throw;
    }
    auto *copied = static_cast<c10::Event *>(event);
    copied->record(copy);
    impl->exchangeStream(compute);
    copied->block(compute);
    impl->recordDataPtrOnStream(result.storage().data_ptr(), compute);
    *out = new at::Tensor(std::move(result));
  });
}

// Frees an event from spikecv_event_new.
void spikecv_event_free(void *event) {
  try {
    delete static_cast<c10::Event *>(event);
  } catch (...) {
  }
}

// Makes a stream from libtorch's pool (c10::cuda::getStreamFromPool) the
// calling thread's current stream on device `index` (setCurrentCUDAStream;
// the current stream is thread-local). Writes the stream's id to `id`.
int spikecv_use_pool_stream(int64_t index, int64_t *id, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    auto stream = impl->getStreamFromGlobalPool(cuda_device(index), /*isHighPriority=*/false);
    impl->exchangeStream(stream);
    *id = static_cast<int64_t>(impl->getStream(cuda_device(index)).id());
  });
}

// The id of the calling thread's current stream on device `index`.
int spikecv_current_stream(int64_t index, int64_t *id, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    *id = static_cast<int64_t>(impl->getStream(cuda_device(index)).id());
  });
}

// Waits until all work queued on the calling thread's current stream of
// device `index` is done.
int spikecv_stream_synchronize(int64_t index, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto impl = c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA);
    impl->getStream(cuda_device(index)).synchronize();
  });
}

// Free and total bytes of device `index` (cudaMemGetInfo, through the CUDA
// caching allocator).
int spikecv_cuda_mem_info(int64_t index, uint64_t *free_bytes, uint64_t *total_bytes,
                          char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    auto info = c10::getDeviceAllocator(c10::DeviceType::CUDA)
                    ->getMemoryInfo(static_cast<c10::DeviceIndex>(index));
    *free_bytes = info.first;
    *total_bytes = info.second;
  });
}

// Gives the CUDA caching allocator's unused blocks back to the driver.
int spikecv_cuda_empty_cache(char *error, size_t error_len) {
  return guarded(error, error_len,
                 [&] { c10::getDeviceAllocator(c10::DeviceType::CUDA)->emptyCache(); });
}

// Whether cuDNN convolutions may use TF32: PyTorch's
// torch.backends.cudnn.conv.fp32_precision = "tf32" (on, PyTorch's default)
// or "ieee" (off), through the new API only (libtorch 2.9+ refuses to read
// flags set through a mix of the legacy allow_tf32 setters and the new ones).
int spikecv_set_tf32_conv(bool on, char *error, size_t error_len) {
  return guarded(error, error_len, [&] {
    at::globalContext().setFloat32Precision(at::Float32Backend::CUDA, at::Float32Op::CONV,
                                            on ? at::Float32Precision::TF32
                                               : at::Float32Precision::IEEE);
  });
}

// Reads the TF32 switches: bit 0 cuDNN convolutions, bit 1 CUDA matrix
// products (torch.backends.cuda.matmul.fp32_precision == "tf32"). -1 if
// libtorch threw.
int spikecv_tf32_state() {
  try {
    const auto &ctx = at::globalContext();
    bool conv = ctx.allowTF32CuDNN(at::Float32Op::CONV);
    bool matmul = ctx.float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) ==
                  at::Float32Precision::TF32;
    return (conv ? 1 : 0) | (matmul ? 2 : 0);
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
