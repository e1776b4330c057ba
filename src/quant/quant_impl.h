// Internal to the quant layer: the per-format reference row functions behind the QuantOps table,
// and the rounding helpers they share. n is always a multiple of the format's block size.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace edgeglm::quant::detail {

// Round to nearest, ties to even (the default FP rounding mode), as ggml's k-quant code does.
// Valid for |v| < 2^22, which every caller guarantees by construction.
inline int round_even(float v) { return int(std::lrintf(v)); }

// The value of largest magnitude (its sign kept); the first one wins ties.
inline float signed_absmax(const float* x, int64_t n) {
  float amax = 0.0f, max = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, int64_t n, float* mn, float* mx) {
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int64_t j = 0; j < n; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
  *mn = lo;
  *mx = hi;
}

// quant_legacy.cpp
void dequantize_row_q4_0(const void* src, float* dst, int64_t n);
void dequantize_row_q4_1(const void* src, float* dst, int64_t n);
void dequantize_row_q5_0(const void* src, float* dst, int64_t n);
void dequantize_row_q5_1(const void* src, float* dst, int64_t n);
void dequantize_row_q8_0(const void* src, float* dst, int64_t n);
void dequantize_row_q8_1(const void* src, float* dst, int64_t n);
void quantize_row_q4_0(const float* src, void* dst, int64_t n);
void quantize_row_q4_1(const float* src, void* dst, int64_t n);
void quantize_row_q5_0(const float* src, void* dst, int64_t n);
void quantize_row_q5_1(const float* src, void* dst, int64_t n);
void quantize_row_q8_0(const float* src, void* dst, int64_t n);
void quantize_row_q8_1(const float* src, void* dst, int64_t n);

// quant_kquants.cpp
void dequantize_row_q2_k(const void* src, float* dst, int64_t n);
void dequantize_row_q3_k(const void* src, float* dst, int64_t n);
void dequantize_row_q4_k(const void* src, float* dst, int64_t n);
void dequantize_row_q5_k(const void* src, float* dst, int64_t n);
void dequantize_row_q6_k(const void* src, float* dst, int64_t n);
void dequantize_row_q8_k(const void* src, float* dst, int64_t n);
void quantize_row_q8_k(const float* src, void* dst, int64_t n);

// quant_kquants_ref.cpp (the search-based reference quantizers)
void quantize_row_q2_k(const float* src, void* dst, int64_t n);
void quantize_row_q4_k(const float* src, void* dst, int64_t n);
void quantize_row_q5_k(const float* src, void* dst, int64_t n);
void quantize_row_q6_k(const float* src, void* dst, int64_t n);

// quant_edgeglm.cpp (edgeglm's own formats, ids >= 1024)
void dequantize_row_i8_row(const void* src, float* dst, int64_t n);
void dequantize_row_u8_row(const void* src, float* dst, int64_t n);
void dequantize_row_i4_g64(const void* src, float* dst, int64_t n);
void dequantize_row_i4_g128(const void* src, float* dst, int64_t n);
void dequantize_row_u4_g64(const void* src, float* dst, int64_t n);
void dequantize_row_u4_g128(const void* src, float* dst, int64_t n);
void quantize_row_i8_row(const float* src, void* dst, int64_t n);
void quantize_row_u8_row(const float* src, void* dst, int64_t n);
void quantize_row_i4_g64(const float* src, void* dst, int64_t n);
void quantize_row_i4_g128(const float* src, void* dst, int64_t n);
void quantize_row_u4_g64(const float* src, void* dst, int64_t n);
void quantize_row_u4_g128(const float* src, void* dst, int64_t n);

}  // namespace edgeglm::quant::detail
