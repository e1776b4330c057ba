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

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Whole-file read for small text/JSON files; errors name the file.
Result<std::string> read_text_file(const std::string& path, size_t max_bytes = size_t(1) << 30);

}  // namespace edgeglm
