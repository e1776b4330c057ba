// Read-only memory map of a whole file. Weights stay in the page cache and are shared between
// processes; nothing is copied at load time.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace edgeglm {

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages wholly inside [p, p + n) from this process (MADV_DONTNEED): they stop counting
  // towards its RSS and read back from the page cache if touched again. For data that was copied
  // elsewhere (run-time weight layouts). False when the range is not inside this map.
  bool release(const void* p, size_t n) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous memory for large read-mostly data (run-time weight layouts): page-aligned, asking for
// transparent huge pages (MADV_HUGEPAGE; fewer TLB misses and hardware prefetch streams that do
// not stop at every 4 KiB page). Freed when the last reference goes.
Result<std::shared_ptr<uint8_t>> allocate_large(size_t bytes);

// Whole-file read for small text/JSON files; errors name the file.
Result<std::string> read_text_file(const std::string& path, size_t max_bytes = size_t(1) << 30);

}  // namespace edgeglm
