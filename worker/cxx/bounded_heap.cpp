// libtorch's CPU allocator for large blocks: freed pages stay mapped for the
// next request, but the process never maps more than the most its tensors ever
// held at once. See worker/src/allocator.rs for why; built by worker/build.rs.
// No C++ exception crosses into Rust.
//
// Requests of at least `min_block` bytes are served in whole pages from mmap.
// Freed ranges stay mapped, merged with free neighbours, and a request takes
// the smallest free range that holds it (splitting off the rest), so the pages
// the next training step touches are already there and cost no page faults.
// When no single free range holds a request, free ranges are moved side by
// side into a new range with mremap (page tables only: no copy, no fault) and
// only the shortfall is new memory. The footprint (live plus free) is thus the
// most the tensors ever held at once. After every kMovesBeforeReset moves the
// heap gives its pages back and starts afresh, which keeps the kernel's count
// of mappings low. Smaller requests go to libtorch's default allocator.
// Linux only (mremap).
#ifdef __linux__
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

constexpr size_t kPage = 4096;

// Page moves (mremap calls) after which the free ranges are given back (see
// BoundedHeap::take); each move adds at most a few kernel mappings, so the
// heap stays far below the kernel's default limit of 65530.
constexpr size_t kMovesBeforeReset = 1024;

size_t round_to_pages(size_t n) { return (n + kPage - 1) / kPage * kPage; }

using Range = std::pair<uintptr_t, size_t>;

// A live block: its size and the heap generation it was handed out in.
struct Block {
  size_t size;
  uint64_t generation;
};

class BoundedHeap final : public c10::Allocator {
 public:
  BoundedHeap(c10::Allocator *fallback, size_t min_block)
      : fallback_(fallback), fallback_delete_(fallback->raw_deleter()), min_block_(min_block) {}

  c10::DataPtr allocate(size_t n) override {
    void *p = n < min_block_ ? fallback_->raw_allocate(n) : take(round_to_pages(n));
    return {p, p, &BoundedHeap::release_any, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &BoundedHeap::release_any; }

  void copy_data(void *dest, const void *src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Reused requests, assembled requests, moved bytes, live, free and
  // high-water bytes, resets.
  void stats(uint64_t *out) {
    std::lock_guard<std::mutex> lock(mutex_);
    out[0] = reused_;
    out[1] = assembled_;
    out[2] = moved_bytes_;
    out[3] = live_bytes_;
    out[4] = free_bytes_;
    out[5] = high_water_;
    out[6] = resets_;
  }

  // Unmaps every free range; returns the bytes given back.
  size_t release_free() {
    std::vector<Range> unmap;
    size_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      unmap.assign(by_addr_.begin(), by_addr_.end());
      by_addr_.clear();
      by_size_.clear();
      bytes = free_bytes_;
      free_bytes_ = 0;
    }
    for (auto [addr, n] : unmap) {
      munmap(reinterpret_cast<void *>(addr), n);
    }
    return bytes;
  }

  static BoundedHeap *instance;

 private:
  static void release_any(void *p) { instance->release(p); }

  void *take(size_t size) {
    std::vector<Range> pieces;
    std::vector<Range> unmap;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto fit = by_size_.lower_bound(size);
      if (fit != by_size_.end()) {
        auto [got, addr] = *fit;
        remove_free(addr, got);
        if (got > size) {
          add_free(addr + size, got - size);
        }
        live_.emplace(addr, Block{size, generation_});
        live_bytes_ += size;
        ++reused_;
        return reinterpret_cast<void *>(addr);
      }
      ++assembled_;
      if (moves_ >= kMovesBeforeReset) {
        // Each move may split kernel mappings (VMAs). Before they pile up
        // towards the kernel's limit (vm.max_map_count), every free range goes
        // back to the system, and so does every live block when it is freed
        // (a new generation): the heap starts again from fresh pages.
        unmap.assign(by_addr_.begin(), by_addr_.end());
        by_addr_.clear();
        by_size_.clear();
        free_bytes_ = 0;
        moves_ = 0;
        ++generation_;
        ++resets_;
      }
      // No free range holds it: gather free ranges, largest first, to be
      // moved side by side into one new range.
      size_t gathered = 0;
      while (gathered < size && !by_size_.empty()) {
        auto [n, addr] = *std::prev(by_size_.end());
        size_t use = std::min(n, size - gathered);
        remove_free(addr, n);
        if (use < n) {
          add_free(addr + use, n - use);
        }
        pieces.emplace_back(addr, use);
        gathered += use;
      }
    }
    for (auto [addr, n] : unmap) {
      munmap(reinterpret_cast<void *>(addr), n);
    }
    void *p = map_pages(size);
    if (p == nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto [addr, n] : pieces) {
        add_free(addr, n);
      }
      TORCH_CHECK_WITH(OutOfMemoryError, false, "spikecv host heap: could not map ", size,
                       " bytes");
    }
    // Move the gathered pages into place. Where a move fails, the new range
    // keeps its own fresh pages and the piece stays free.
    auto base = reinterpret_cast<uintptr_t>(p);
    size_t offset = 0;
    size_t moves = 0;
    std::vector<Range> unmoved;
    for (auto [addr, n] : pieces) {
      moves += move_pages(addr, n, base + offset, unmoved);
      offset += n;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto [addr, n] : pieces) {
      moved_bytes_ += n;
    }
    for (auto [addr, n] : unmoved) {
      add_free(addr, n);
      moved_bytes_ -= n;
    }
    moves_ += moves;
    live_.emplace(base, Block{size, generation_});
    live_bytes_ += size;
    if (live_bytes_ + free_bytes_ > high_water_) {
      high_water_ = live_bytes_ + free_bytes_;
    }
    return p;
  }

  // Moves the mapped pages [from, from + n) to `to` (page tables only, no
  // copy and no fault) and returns how many mremap calls did it. A range may
  // span several kernel mappings, which one mremap may refuse to move (EFAULT):
  // such a range is moved in halves. Pages that cannot be moved at all are
  // added to `unmoved`.
  static size_t move_pages(uintptr_t from, size_t n, uintptr_t to, std::vector<Range> &unmoved) {
    void *moved = mremap(reinterpret_cast<void *>(from), n, n, MREMAP_MAYMOVE | MREMAP_FIXED,
                         reinterpret_cast<void *>(to));
    if (moved != MAP_FAILED) {
      return 1;
    }
    if (errno != EFAULT || n <= kPage) {
      unmoved.emplace_back(from, n);
      return 0;
    }
    size_t half = n / 2 / kPage * kPage;
    return move_pages(from, half, to, unmoved) + move_pages(from + half, n - half, to + half, unmoved);
  }

  void release(void *p) {
    if (p == nullptr) {
      return;
    }
    size_t stale = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(reinterpret_cast<uintptr_t>(p));
      if (it == live_.end()) {
        stale = SIZE_MAX;
      } else {
        auto [addr, block] = *it;
        live_.erase(it);
        live_bytes_ -= block.size;
        if (block.generation == generation_) {
          add_free(addr, block.size);
        } else {
          stale = block.size;
        }
      }
    }
    if (stale == SIZE_MAX) {
      fallback_delete_(p);
    } else if (stale > 0) {
      munmap(p, stale);
    }
  }

  // Adds a free range, merged with the free ranges that touch it (lock held).
  void add_free(uintptr_t addr, size_t size) {
    auto next = by_addr_.lower_bound(addr);
    if (next != by_addr_.end() && addr + size == next->first) {
      size_t n = next->second;
      remove_free(next->first, n);
      size += n;
    }
    auto after = by_addr_.lower_bound(addr);
    if (after != by_addr_.begin()) {
      auto prev = std::prev(after);
      if (prev->first + prev->second == addr) {
        auto [start, n] = *prev;
        remove_free(start, n);
        addr = start;
        size += n;
      }
    }
    by_addr_.emplace(addr, size);
    by_size_.emplace(size, addr);
    free_bytes_ += size;
  }

  // Removes the free range [addr, addr + size) from both indexes (lock held).
  void remove_free(uintptr_t addr, size_t size) {
    by_addr_.erase(addr);
    auto range = by_size_.equal_range(size);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == addr) {
        by_size_.erase(it);
        break;
      }
    }
    free_bytes_ -= size;
  }

  static void *map_pages(size_t size) {
    void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }

  c10::Allocator *fallback_;
  c10::DeleterFnPtr fallback_delete_;
  size_t min_block_;
  std::mutex mutex_;
  std::unordered_map<uintptr_t, Block> live_;
  std::map<uintptr_t, size_t> by_addr_;
  std::multimap<size_t, uintptr_t> by_size_;
  uint64_t reused_ = 0;
  uint64_t assembled_ = 0;
  uint64_t moved_bytes_ = 0;
  uint64_t resets_ = 0;
  uint64_t generation_ = 0;
  size_t moves_ = 0;
  size_t live_bytes_ = 0;
  size_t free_bytes_ = 0;
  size_t high_water_ = 0;
};

BoundedHeap *BoundedHeap::instance = nullptr;

}  // namespace

extern "C" {

// Makes the bounded heap libtorch's CPU allocator for requests of at least
// `min_block` bytes. Call once, before training allocates. Returns 0, 1 if
// libtorch threw, 2 if it was already installed.
int spikecv_install_bounded_heap(size_t min_block) {
  try {
    if (BoundedHeap::instance != nullptr) {
      return 2;
    }
    // Never freed: tensors anywhere in the process may hold its deleter.
    BoundedHeap::instance = new BoundedHeap(c10::GetDefaultCPUAllocator(), min_block);
    c10::SetCPUAllocator(BoundedHeap::instance, /*priority=*/100);
    return 0;
  } catch (...) {
    return 1;
  }
}

// Writes the counters of BoundedHeap::stats to `out[0..7]`. Returns 0, or 1 if
// the heap is not installed.
int spikecv_bounded_heap_stats(uint64_t *out) {
  if (BoundedHeap::instance == nullptr) {
    return 1;
  }
  BoundedHeap::instance->stats(out);
  return 0;
}

// Gives every free range back to the system and writes the bytes given back
// to `bytes`. Returns 0, or 1 if the heap is not installed.
int spikecv_bounded_heap_release_free(uint64_t *bytes) {
  if (BoundedHeap::instance == nullptr) {
    return 1;
  }
  *bytes = BoundedHeap::instance->release_free();
  return 0;
}

}  // extern "C"

#endif  // __linux__
