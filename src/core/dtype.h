// Tensor element types. Ids are GGUF's ggml_type ids wherever GGUF defines the format, so a file
// written with them loads in llama.cpp. Formats of edgeglm's own take ids >= 1024 and names that
// never change (byte layouts in quant/blocks.h); llama.cpp cannot load files that use them.
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
  // edgeglm's own formats (quant/blocks.h). Ids and names are fixed forever.
  I8_ROW = 1024,   // "i8_row":  per-row symmetric int8 (f32 scale header)
  U8_ROW = 1025,   // "u8_row":  per-row asymmetric uint8 (f32 scale + f32 min header)
  I4_G64 = 1026,   // "i4_g64":  symmetric 4-bit, fp16 scale per 64
  I4_G128 = 1027,  // "i4_g128": symmetric 4-bit, fp16 scale per 128
  U4_G64 = 1028,   // "u4_g64":  asymmetric 4-bit, fp16 scale + min per 64
  U4_G128 = 1029,  // "u4_g128": asymmetric 4-bit, fp16 scale + min per 128
  // Run-time layouts (kernels/layout.h): a file format rearranged in memory at load time for the
  // kernels. Never read from or written to a file: dtype_from_id / dtype_from_name refuse them.
  Q8_0_R8 = 4096,  // "q8_0_r8": Q8_0 blocks, rows interleaved in groups of 8
  F16_R4 = 4097,   // "f16_r4":  F16, rows interleaved in groups of 4
  Q4_0_R8 = 4098,  // "q4_0_r8": Q4_0 blocks, rows interleaved in groups of 8
  Q4_1_R8 = 4099,  // "q4_1_r8": Q4_1 blocks, rows interleaved in groups of 8
  Q4_0_X8 = 4100,  // "q4_0_x8": Q4_0, 8 rows' blocks of a column together, quants interleaved by 4 bytes
  Q4_1_X8 = 4101,  // "q4_1_x8": Q4_1, likewise
  Q8_0_X8 = 4102,  // "q8_0_x8": Q8_0, likewise
  Q6_K_X8 = 4103,  // "q6_k_x8": Q6_K, 8 rows' super-blocks of a column together (scales and d first)
  Q4_K_X8 = 4104,  // "q4_k_x8": Q4_K, 8 rows' super-blocks of a column together, 4-byte interleave
  Q5_K_X8 = 4105,  // "q5_k_x8": Q5_K, likewise
  Q5_0_X8 = 4106,  // "q5_0_x8": Q5_0, as Q4_0_X8
  Q5_1_X8 = 4107,  // "q5_1_x8": Q5_1, as Q4_0_X8
};

struct DTypeTraits {
  DType dtype;
  const char* name;     // lower-case name as GGUF tools print it ("q4_k", "f32")
  int64_t block_size;   // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool quantized;
  // Bytes in front of every row (per-row scale fields of I8_ROW / U8_ROW; 0 for block formats):
  // a row of n elements is row_header_bytes + n / block_size * block_bytes bytes.
  int64_t row_header_bytes = 0;
  bool runtime_layout = false;  // an in-memory layout only (see DType::Q8_0_R8)
};

// Traits of a supported type, or nullptr for an id edgeglm does not know.
const DTypeTraits* dtype_traits(DType t);
Result<DType> dtype_from_id(uint32_t id);
Result<DType> dtype_from_name(std::string_view name);  // case-insensitive
const char* dtype_name(DType t);

// Bytes of a row of n elements, per-row header included; n must be a multiple of the block size
// (check with dtype_row_ok first when n comes from input). Never assume n / block_size *
// block_bytes: the per-row formats have a header.
size_t dtype_row_bytes(DType t, int64_t n);
// n is a valid row length: a multiple of the block size (and, for per-row formats, at least one
// block, so there is something to scale).
bool dtype_row_ok(DType t, int64_t n);
// Storage bits per weight of the blocks alone (the limit for long rows of per-row formats).
inline double dtype_bits_per_weight(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? 8.0 * double(tr->block_bytes) / double(tr->block_size) : 0.0;
}
// Exact bits per weight of a row of n elements (per-row header included).
double dtype_bits_per_weight(DType t, int64_t n);

}  // namespace edgeglm
