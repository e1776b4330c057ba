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
};

}  // namespace

const DTypeTraits* dtype_traits(DType t) {
  for (const auto& tr : kTraits)
    if (tr.dtype == t) return &tr;
  return nullptr;
}

Result<DType> dtype_from_id(uint32_t id) {
  const DTypeTraits* tr = dtype_traits(static_cast<DType>(id));
  if (!tr) return Status::error("unknown tensor type id " + std::to_string(id));
  return tr->dtype;
}

Result<DType> dtype_from_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& tr : kTraits)
    if (lower == tr.name) return tr.dtype;
  return Status::error("unknown tensor type '" + std::string(name) + "'");
}

const char* dtype_name(DType t) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? tr->name : "unknown";
}

bool dtype_row_ok(DType t, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr && n >= 0 && n % tr->block_size == 0;
}

size_t dtype_row_bytes(DType t, int64_t n) {
  const DTypeTraits* tr = dtype_traits(t);
  return tr ? size_t(n / tr->block_size) * size_t(tr->block_bytes) : 0;
}

}  // namespace edgeglm
