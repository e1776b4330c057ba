// Tensor element types. Ids are GGUF's ggml_type ids wherever GGUF defines the format, so a file
// written with them loads in llama.cpp. Formats of edgeglm's own will take ids >= 1024 and names
// that never change.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace edgeglm {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct DTypeTraits {
  DType dtype;
  const char* name;     // lower-case name as GGUF tools print it ("q4_k", "f32")
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool quantized;
};

// Traits of a supported type, or nullptr for an id edgeglm does not know.
const DTypeTraits* dtype_traits(DType t);
Result<DType> dtype_from_id(uint32_t id);
Result<DType> dtype_from_name(std::string_view name);  // case-insensitive
const char* dtype_name(DType t);

// Bytes of a row of n elements; n must be a multiple of the block size (check with
// dtype_row_ok first when n comes from input).
size_t dtype_row_bytes(DType t, int64_t n);
bool dtype_row_ok(DType t, int64_t n);
inline double dtype_bits_per_weight(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? 8.0 * double(tr->block_bytes) / double(tr->block_size) : 0.0;
}

}  // namespace edgeglm
