// safetensors files: u64 little-endian header length N | N bytes of JSON | data section.
// The JSON maps each tensor name to {"dtype", "shape" (outermost first), "data_offsets":
// [begin, end) relative to the data section}, plus an optional "__metadata__" object of strings.
// Everything is validated like GGUF (header length sane, offsets inside the file, shape product
// times element size equal to the byte range, no overlaps, no duplicate names); only F32, F16
// and BF16 tensors are accepted. Shapes are returned in ggml order (innermost first) and names
// are left as they are in the file (the HF loader maps them).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_file.h"

namespace edgeglm::formats {

constexpr uint64_t kSafetensorsMaxHeaderBytes = uint64_t(100) << 20;  // as the reference library

struct SafetensorsFile {
  std::vector<TensorInfo> tensors;  // data points into the caller's image, or into `owned`
  std::map<std::string, std::string> metadata;
  // Copies of tensors whose bytes are not aligned to their element size in the file.
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned;
};

// Parses an image in memory; `name` is the path used in messages.
Result<SafetensorsFile> parse_safetensors(const uint8_t* data, size_t size,
                                          const std::string& name);

}  // namespace edgeglm::formats
