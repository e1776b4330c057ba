// AVX2 integer kernels (x86/qgemm_avx2.cpp): the activation quantizer and the int8 GEMM of every
// integer weight format. Include only from x86/*avx2*.cpp (compiled with -mavx2 -mfma -mf16c).
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kernels/qacts.h"

namespace edgeglm::kernels::avx2 {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);

// GemmQ of format t (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, I8_ROW, U8_ROW, I4_G64/128,
// U4_G64/128); nullptr for other types.
GemmQ gemm_q_for(DType t);
// GemmQ of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K and their X8 layouts (x86/qgemm_x8_avx2.cpp);
// nullptr for other types.
GemmQ gemm_x8_for(DType t);

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Sum of the 8 lanes (namespace avx2: used only by files compiled with the avx2 flags).
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace edgeglm::kernels::avx2
