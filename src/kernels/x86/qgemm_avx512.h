// AVX-512 VNNI integer kernels: shared helpers and the entry points of the decode (one token:
// stream weight rows) and prefill (many tokens: repack a tile of rows once, reuse it for every
// token) paths. Include only from x86/*avx512*.cpp (compiled with the AVX-512 flags).
//
// All kernels compute with vpdpbusd (unsigned 8-bit x signed 8-bit, four products summed into a
// 32-bit lane). Weights are made unsigned (4/5/6-bit values are already; Q8_0 is flipped by
// 0x80, i.e. +128) and the activations stay signed, so the offset of a format (Q4_0's -8, Q5_0's
// -16, Q8_0's -128, Q6_K's -32) is the activation block sum times that offset, which is exact in
// the integer domain (prefill initialises the accumulator with it) or added once per 16 blocks
// in float (decode).
#pragma once
#include <immintrin.h>

// GCC 12's AVX-512 headers build some intrinsics on _mm512_undefined_*(), which -Wall reports as
// uninitialised at every inlined use; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kernels/qacts.h"
#include "kernels/x86/decode_prefetch.h"

namespace edgeglm::kernels::avx512 {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s);

// Decode path: one or a few tokens, rows streamed in groups with several rows in flight.
void decode_gemm(DType t, const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy,
                 int64_t r0, int64_t r1);
// Prefill path: tiles of 16/32 rows repacked to interleaved int8, times tiles of tokens.
void prefill_gemm(DType t, const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy,
                  int64_t r0, int64_t r1);

// Float kernels (x86/matmul_avx512.cpp).
void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1);
float dot_f32(const float* a, const float* b, int64_t n);

// ---- helpers ----

inline __m512i lane_offsets(int stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(stride));
}
inline __mmask16 first_lanes(int64_t m) { return m >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << m) - 1); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1)));
}

// Low / high nibbles of 32 bytes as bytes 0..15.
inline __m256i lo_nib(__m256i x) { return _mm256_and_si256(x, _mm256_set1_epi8(0x0F)); }
inline __m256i hi_nib(__m256i x) { return _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_set1_epi8(0x0F)); }

inline __m256i loadu256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
// Two 16-byte pieces as one 32-byte vector [lo | hi].
inline __m256i load2x128(const void* lo, const void* hi) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(loadu128(lo)), loadu128(hi), 1);
}

}  // namespace edgeglm::kernels::avx512
