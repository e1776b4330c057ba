// One up-front allocation carved into aligned buffers: activations and KV cache are planned
// once, so nothing is allocated on the decode path.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/status.h"

namespace edgeglm {

class Arena {
 public:
  static constexpr size_t kAlign = 64;

  Arena() = default;
  // Reserves `bytes` (rounded up); zero-filled.
  Status reserve(size_t bytes);

  template <class T>
  T* alloc(size_t count) {
    return static_cast<T*>(alloc_bytes(count * sizeof(T)));
  }
  void* alloc_bytes(size_t bytes);  // aborts via assert if the plan was wrong (an invariant)

  size_t capacity() const { return capacity_; }
  size_t used() const { return used_; }
  static size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> base_;
  size_t capacity_ = 0;
  size_t used_ = 0;
};

// Address space reserved up front whose pages cost memory only once written (anonymous mmap):
// a KV cache planned for the whole context holds RSS only for the positions actually used, and
// release() hands a range's pages back to the kernel (they read as zeros again) when a sequence
// slot is freed.
class LazyPages {
 public:
  LazyPages() = default;
  ~LazyPages();
  LazyPages(const LazyPages&) = delete;
  LazyPages& operator=(const LazyPages&) = delete;

  Status reserve(size_t bytes);
  char* data() const { return base_; }
  size_t size() const { return size_; }
  // Drops the whole pages inside [offset, offset + bytes); partial pages at the ends are kept.
  void release(size_t offset, size_t bytes);

 private:
  char* base_ = nullptr;
  size_t size_ = 0;
};

}  // namespace edgeglm
