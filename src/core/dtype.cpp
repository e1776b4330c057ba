#include "core/dtype.h"

#include <cctype>
#include <string>

namespace edgeglm {
namespace {

// Block sizes and byte counts follow ggml's type table (QK_K = 256 super-blocks).
constexpr DTypeTraits kTraits[] = {
    {DType::F32, "f32", 1, 4, false},       {DType::F16, "f16", 1, 2, false},
    {DType::Q4_0, "q4_0", 32, 18, true},    {DType::Q4_1, "q4_1", 32, 20, true},
    {DType::Q5_0, "q5_0", 32, 22, true},    {DType::Q5_1, "q5_1", 32, 24, true},
    {DType::Q8_0, "q8_0", 32, 34, true},    {DType::Q8_1, "q8_1", 32, 36, true},
    {DType::Q2_K, "q2_k", 256, 84, true},   {DType::Q3_K, "q3_k", 256, 110, true},
    {DType::Q4_K, "q4_k", 256, 144, true},  {DType::Q5_K, "q5_k", 256, 176, true},
    {DType::Q6_K, "q6_k", 256, 210, true},  {DType::Q8_K, "q8_k", 256, 292, true},
    {DType::I8, "i8", 1, 1, false},         {DType::I16, "i16", 1, 2, false},
    {DType::I32, "i32", 1, 4, false},       {DType::I64, "i64", 1, 8, false},
    {DType::F64, "f64", 1, 8, false},       {DType::BF16, "bf16", 1, 2, false},
    // edgeglm's own (quant/blocks.h): the per-row formats count 32-element "blocks" of bare
    // quants after a per-row header.
    {DType::I8_ROW, "i8_row", 32, 32, true, 4},
    {DType::U8_ROW, "u8_row", 32, 32, true, 8},
    {DType::I4_G64, "i4_g64", 64, 34, true},
    {DType::I4_G128, "i4_g128", 128, 66, true},
    {DType::U4_G64, "u4_g64", 64, 36, true},
    {DType::U4_G128, "u4_g128", 128, 68, true},
    // Run-time layouts: the bytes of their file format, rearranged (kernels/layout.h).
    {DType::Q8_0_R8, "q8_0_r8", 32, 34, true, 0, true},
    {DType::F16_R4, "f16_r4", 1, 2, false, 0, true},
    {DType::Q4_0_R8, "q4_0_r8", 32, 18, true, 0, true},
    {DType::Q4_1_R8, "q4_1_r8", 32, 20, true, 0, true},
    {DType::Q4_0_X8, "q4_0_x8", 32, 18, true, 0, true},
    {DType::Q4_1_X8, "q4_1_x8", 32, 20, true, 0, true},
    {DType::Q8_0_X8, "q8_0_x8", 32, 34, true, 0, true},
    {DType::Q6_K_X8, "q6_k_x8", 256, 210, true, 0, true},
    {DType::Q4_K_X8, "q4_k_x8", 256, 144, true, 0, true},
    {DType::Q5_K_X8, "q5_k_x8", 256, 176, true, 0, true},
    {DType::Q5_0_X8, "q5_0_x8", 32, 22, true, 0, true},
    {DType::Q5_1_X8, "q5_1_x8", 32, 24, true, 0, true},
};

}  // namespace

const DTypeTraits* dtype_traits(DType t) {
  for (const auto& tr : kTraits)
    if (tr.dtype == t) return &tr;
  return nullptr;
}

Result<DType> dtype_from_id(uint32_t id) {
  const DTypeTraits* tr = dtype_traits(static_cast<DType>(id));
  if (!tr || tr->runtime_layout) return Status::error("unknown tensor type id " + std::to_string(id));
  return tr->dtype;
}

Result<DType> dtype_from_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& tr : kTraits)
    if (lower == tr.name && !tr.runtime_layout) return tr.dtype;
  return Status::error("unknown tensor type '" + std::string(name) + "'");
}

const char* dtype_name(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? tr->name : "unknown";
}

bool dtype_row_ok(DType t, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  if (!tr || n < 0 || n % tr->block_size != 0) return false;
  return tr->row_header_bytes == 0 || n > 0;
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? size_t(tr->row_header_bytes) + size_t(n / tr->block_size) * size_t(tr->block_bytes) : 0;
}

double dtype_bits_per_weight(DType t, int64_t n) {
  return n > 0 ? 8.0 * double(dtype_row_bytes(t, n)) / double(n) : dtype_bits_per_weight(t);
}

}  // namespace edgeglm
