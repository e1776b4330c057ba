// The QuantOps table and the plain float formats (F32, F16, BF16).
#include "quant/quant.h"

#include <cassert>
#include <cstring>

#include "core/fp16.h"
#include "quant/quant_impl.h"

namespace edgeglm::quant {
namespace {

void dequantize_row_f32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, size_t(n) * sizeof(float));
}
void quantize_row_f32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, size_t(n) * sizeof(float));
}

// fp16/bf16 rows are read and written through memcpy so unaligned tensor data is fine.
void dequantize_row_f16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = fp16_to_f32(h);
  }
}
void quantize_row_f16(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_fp16(src[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}
void dequantize_row_bf16(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    dst[i] = bf16_to_f32(h);
  }
}
void quantize_row_bf16(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(src[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

using namespace detail;

constexpr QuantOps kOps[] = {
    {DType::F32, dequantize_row_f32, quantize_row_f32},
    {DType::F16, dequantize_row_f16, quantize_row_f16},
    {DType::BF16, dequantize_row_bf16, quantize_row_bf16},
    {DType::Q4_0, dequantize_row_q4_0, quantize_row_q4_0},
    {DType::Q4_1, dequantize_row_q4_1, quantize_row_q4_1},
    {DType::Q5_0, dequantize_row_q5_0, quantize_row_q5_0},
    {DType::Q5_1, dequantize_row_q5_1, quantize_row_q5_1},
    {DType::Q8_0, dequantize_row_q8_0, quantize_row_q8_0},
    {DType::Q8_1, dequantize_row_q8_1, quantize_row_q8_1},
    {DType::Q2_K, dequantize_row_q2_k, quantize_row_q2_k},
    {DType::Q3_K, dequantize_row_q3_k, nullptr},
    {DType::Q4_K, dequantize_row_q4_k, quantize_row_q4_k},
    {DType::Q5_K, dequantize_row_q5_k, quantize_row_q5_k},
    {DType::Q6_K, dequantize_row_q6_k, quantize_row_q6_k},
    {DType::Q8_K, dequantize_row_q8_k, quantize_row_q8_k},
    {DType::I8_ROW, dequantize_row_i8_row, quantize_row_i8_row},
    {DType::U8_ROW, dequantize_row_u8_row, quantize_row_u8_row},
    {DType::I4_G64, dequantize_row_i4_g64, quantize_row_i4_g64},
    {DType::I4_G128, dequantize_row_i4_g128, quantize_row_i4_g128},
    {DType::U4_G64, dequantize_row_u4_g64, quantize_row_u4_g64},
    {DType::U4_G128, dequantize_row_u4_g128, quantize_row_u4_g128},
};

}  // namespace

const QuantOps* quant_ops(DType t) {
  for (const auto& op : kOps)
    if (op.dtype == t) return &op;
  return nullptr;
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const QuantOps* op = quant_ops(t);
  assert(op && dtype_row_ok(t, n));
  op->dequantize_row(src, dst, n);
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  const QuantOps* op = quant_ops(t);
  assert(op && op->quantize_row && dtype_row_ok(t, n));
  op->quantize_row(src, dst, n);
}

}  // namespace edgeglm::quant
