#include "core/arena.h"

#include <cassert>
#include <cstring>
#include <string>

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

}  // namespace edgeglm
