// The "avx2" kernel table: AVX2 + FMA + F16C (selected at run time only on CPUs that report them;
// see dispatch.cpp). Integer formats: x86/qgemm_avx2.cpp. Float formats here: a register tile of
// 4 rows x up to 3 tokens, 8 lanes of partial sums along the reduction dimension per pair, one
// horizontal sum per output at the end; each weight vector is converted once (vcvtph2ps for F16,
// a 16-bit shift for BF16) and used for every token of the tile. Decode (1-2 tokens) prefetches
// ahead of each row (decode_prefetch_distance), as the integer kernels do. Before these tiles the
// table used the portable row decoder (matmul_impl.h), which decoded each row into a buffer with
// no prefetch (qwen2.5-0.5b Q8_0 with its F16 tied output decoded 33 tok/s, now 53-55 with the
// layouts; docs/BENCHMARKS.md, "AVX2 kernels on AMD Zen 3"). The token tiling, row loop, F16_R4
// groups and the dequantizing path of other formats are x86/float_gemm_impl.h.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "kernels/layout.h"
#include "kernels/x86/decode_prefetch.h"
#include "kernels/x86/qgemm_avx2.h"
#include "quant/quant.h"

namespace edgeglm::kernels::avx2 {
namespace {

constexpr int kRows = 4;    // rows per tile (= F16_R4's group)
constexpr int kTokens = 3;  // tokens per tile: 12 accumulators + 3 activation vectors + 1 weight

// 8 weights of row p from element i on, as floats.
template <DType T>
inline __m256 load_w(const void* p, int64_t i) {
  if constexpr (T == DType::F32) {
    return _mm256_loadu_ps(static_cast<const float*>(p) + i);
  } else if constexpr (T == DType::F16) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
  } else {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
  }
}

template <DType T>
inline float scalar_w(const void* p, int64_t i) {
  if constexpr (T == DType::F32) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (T == DType::F16) {
    return fp16_to_f32(static_cast<const uint16_t*>(p)[i]);
  } else {
    return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
  }
}

// Rows w, w + row_bytes, ... (R of them, outputs r.. r + R) x tokens [t0, t0 + TT). kRelaid: the
// R rows are a group of F16_R4 (kernels/layout.h) at w, 32 values of each row in turn, read as one
// sequential stream (n % 32 == 0).
template <DType T, int R, int TT, bool kRelaid = false>
void tile_f(const uint8_t* w, size_t row_bytes, const float* x, int64_t n, int64_t t0, float* y,
            int64_t ldy, int64_t r) {
  constexpr int64_t kElem = T == DType::F32 ? 4 : 2;
  [[maybe_unused]] const int64_t pf = decode_prefetch_distance(row_bytes, R);
  // Every loop over rows and tokens is unrolled: where one was not, acc lived in memory and GCC
  // stored all accumulators to the stack on every step of the k loop (prefill up to 2x slower).
  __m256 acc[R][TT];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) acc[i][t] = _mm256_setzero_ps();
  const uint8_t* rows[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) rows[i] = w + size_t(i) * row_bytes;
  const float* xs[TT];
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t) xs[t] = x + (t0 + t) * n;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    __m256 xv[TT];
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) xv[t] = _mm256_loadu_ps(xs[t] + k);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      __m256 wv;
      if constexpr (kRelaid) {
        const uint8_t* unit = w + (k >> 5) * (kF16R4Unit * R) + i * kF16R4Unit;
        if (TT <= 2 && (k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(unit + kPrefetchSequential), _MM_HINT_T0);
        wv = load_w<T>(unit, k & 31);
      } else {
        if (TT <= 2 && ((k * kElem) & 63) == 0)
          _mm_prefetch(reinterpret_cast<const char*>(rows[i] + k * kElem + pf), _MM_HINT_T0);
        wv = load_w<T>(rows[i], k);
      }
#pragma GCC unroll 8
      for (int t = 0; t < TT; ++t) acc[i][t] = _mm256_fmadd_ps(wv, xv[t], acc[i][t]);
    }
  }
  float tail[R][TT] = {};
  if (!kRelaid)
    for (; k < n; ++k)
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
        for (int t = 0; t < TT; ++t) tail[i][t] += scalar_w<T>(rows[i], k) * xs[t][k];
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) y[(t0 + t) * ldy + r + i] = hsum(acc[i][t]) + tail[i][t];
}

#include "kernels/x86/float_gemm_impl.h"

float dot_f32(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  float s = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

FormatKernels format(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::F16_R4:
    case DType::BF16: return {nullptr, gemm_float_any};
    default: return {gemm_q_for(t), nullptr};  // integer formats (x86/qgemm_avx2.cpp), else none
  }
}

}  // namespace

const KernelTable& table() {
  static const KernelTable t = {"avx2", format, quantize_acts, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::avx2
