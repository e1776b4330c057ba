#include "core/arena.h"

#include <cassert>
#include <cstring>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

namespace edgeglm {

Status Arena::reserve(size_t bytes) {
  bytes = aligned(bytes);
  void* p = bytes ? std::aligned_alloc(kAlign, bytes) : nullptr;
  if (bytes && !p)
    return Status::error("out of memory reserving " + std::to_string(bytes >> 20) + " MiB");
  if (p) std::memset(p, 0, bytes);
  base_.reset(p);
  capacity_ = bytes;
  used_ = 0;
  return Status::ok();
}

void* Arena::alloc_bytes(size_t bytes) {
  bytes = aligned(bytes);
  assert(used_ + bytes <= capacity_ && "arena plan too small");
  void* p = static_cast<char*>(base_.get()) + used_;
  used_ += bytes;
  return p;
}

LazyPages::~LazyPages() {
  if (base_) munmap(base_, size_);
}

Status LazyPages::reserve(size_t bytes) {
  if (base_) munmap(base_, size_), base_ = nullptr, size_ = 0;
  if (bytes == 0) return Status::ok();
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED)
    return Status::error("out of address space reserving " + std::to_string(bytes >> 20) + " MiB");
  base_ = static_cast<char*>(p);
  size_ = bytes;
  return Status::ok();
}

void LazyPages::release(size_t offset, size_t bytes) {
  if (!base_ || offset >= size_) return;
  if (bytes > size_ - offset) bytes = size_ - offset;
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const size_t b = (offset + page - 1) / page * page;
  const size_t e = (offset + bytes) / page * page;
  if (e > b) madvise(base_ + b, e - b, MADV_DONTNEED);
}

}  // namespace edgeglm
