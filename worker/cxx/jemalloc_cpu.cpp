// libtorch's CPU allocator through jemalloc (the tikv-jemalloc-sys build,
// whose functions carry the `_rjem_` prefix, so the process's own malloc stays
// glibc's). The Rust side (worker/src/allocator/jemalloc.rs) passes the
// prefixed aligned_alloc and free in, so this file needs no jemalloc header
// and the linker no particular library order. Built by worker/build.rs; no
// C++ exception crosses into Rust.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <cstddef>

namespace {

using AlignedAlloc = void *(*)(size_t alignment, size_t size);
using Free = void (*)(void *);

// c10's alignment for CPU tensors (gAlignment: 64 bytes, AVX-512 loads).
constexpr size_t kAlignment = 64;

class JemallocCpu final : public c10::Allocator {
 public:
  JemallocCpu(AlignedAlloc alloc, Free free) : alloc_(alloc), free_(free) {}

  c10::DataPtr allocate(size_t n) override {
    void *p = nullptr;
    if (n > 0) {
      // aligned_alloc wants a multiple of the alignment.
      p = alloc_(kAlignment, (n + kAlignment - 1) / kAlignment * kAlignment);
      if (p == nullptr) {
        TORCH_CHECK_WITH(OutOfMemoryError, false,
                         "jemalloc: can't allocate memory: you tried to allocate ", n, " bytes.");
      }
    }
    return {p, p, &JemallocCpu::release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &JemallocCpu::release; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  static JemallocCpu *instance;

 private:
  static void release(void *p) {
    if (p != nullptr) {
      instance->free_(p);
    }
  }

  AlignedAlloc alloc_;
  Free free_;
};

JemallocCpu *JemallocCpu::instance = nullptr;

}  // namespace

extern "C" {

// Makes jemalloc libtorch's CPU allocator. Call once, before training
// allocates. Returns 0, 1 if libtorch threw, 2 if it was already installed.
int spikecv_install_jemalloc_cpu(AlignedAlloc alloc, Free free) {
  try {
    if (JemallocCpu::instance != nullptr) {
      return 2;
    }
    // Never freed: tensors anywhere in the process may hold its deleter.
    JemallocCpu::instance = new JemallocCpu(alloc, free);
    c10::SetCPUAllocator(JemallocCpu::instance, /*priority=*/100);
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
