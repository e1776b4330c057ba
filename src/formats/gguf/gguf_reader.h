// GGUF reader (versions 2 and 3, little-endian). The file is mmapped and tensor data points into
// the map (zero copy). Every count, length, shape and offset is checked against the bytes that
// are really there before anything is allocated or read, so a hostile file gives an error whose
// message starts with the file path, never a crash.
//
// Layout (all little-endian):
//   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x { string key | u32 value_type | value }        string = u64 length + bytes
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to general.alignment (default 32) | data section (offsets are relative to it)
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_file.h"

namespace edgeglm::formats {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint64_t kGgufDefaultAlignment = 32;
constexpr size_t kGgufMaxNameBytes = 64;        // GGUF spec: tensor names are at most 64 bytes
constexpr size_t kGgufMaxKeyBytes = 65535;      // GGUF spec: keys are at most 2^16 - 1 bytes
constexpr int kGgufMaxArrayDepth = 8;           // nested arrays deeper than this are rejected
constexpr uint64_t kGgufMaxMetaValues = 1u << 24;  // total metadata values (bounds RAM use)
constexpr uint64_t kGgufMaxAlignment = uint64_t(1) << 30;

// Opens and mmaps `path`, then parses it.
Result<std::unique_ptr<ModelFile>> read_gguf(const std::string& path);

// Parses a GGUF image already in memory. Tensor data points into `data`, which must outlive the
// result. `name` is the path used in messages and stored as ModelFile::path.
Result<std::unique_ptr<ModelFile>> parse_gguf(const uint8_t* data, size_t size,
                                              const std::string& name);

// Shared by all readers: the tensors' [data, data + nbytes) ranges must not overlap.
Status check_tensor_overlaps(const std::vector<TensorInfo>& tensors, const std::string& path);

}  // namespace edgeglm::formats
