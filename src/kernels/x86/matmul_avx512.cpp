// The "avx512" kernel table: AVX-512 F/BW/VL/DQ + VNNI (selected only on CPUs that report them;
// see dispatch.cpp). Integer formats: x86/qgemm_avx512*.cpp. Float formats (F32, F16 via
// vcvtph2ps, BF16 by a 16-bit shift) here: a register tile of 4 rows x up to 6 tokens, 16 lanes
// of partial sums along the reduction dimension per pair, one horizontal sum per output at the
// end. Weights are converted once per tile and used for every token of it. gemm_f also serves
// any other format by decoding rows with the quant reference (the float-activation mode of
// dispatch.cpp calls it that way); formats not in format() fall back to the tables below.
#include <algorithm>
#include <vector>

#include "core/dtype.h"
#include "kernels/layout.h"
#include "kernels/x86/qgemm_avx512.h"
#include "quant/quant.h"

namespace edgeglm::kernels::avx2 {
GemmQ gemm_x8_for(DType t);  // x86/qgemm_x8_avx2.cpp (a plain call: no inline code of avx2 here)
}  // namespace edgeglm::kernels::avx2

namespace edgeglm::kernels::avx512 {
namespace {

// From this many tokens on, repacking a tile of rows once and reusing it for every token beats
// streaming each row once per token (measured with bench/micro/qgemm_bench.cpp: with the
// gather-free decode kernels, 3 and 4 tokens are up to 1.9x faster on the decode path, 6 and 8
// on the repacking one). Continuous batching with --parallel 4 runs 4-token steps.
constexpr int64_t kPrefillMinTok = 5;

template <DType T>
void gemm_q(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (a.n_tok < kPrefillMinTok) {
    decode_gemm(T, w, row_bytes, a, y, ldy, r0, r1);
  } else {
    prefill_gemm(T, w, row_bytes, a, y, ldy, r0, r1);
  }
}

// 16 weights of row p from element i on as floats; lanes outside m are 0.
template <DType T>
inline __m512 load_w(const void* p, int64_t i, __mmask16 m) {
  if constexpr (T == DType::F32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(p) + i);
  } else if constexpr (T == DType::F16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
  } else {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(p) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
  }
}

constexpr int kRows = 4;

// Decode (one or two tokens) streams each row once: the loads of one step prefetch the same place
// `pf` bytes on (the next tile of rows, or further along the row; see decode_prefetch_distance).
template <DType T>
inline void prefetch_step(const uint8_t* row, int64_t k, int64_t pf) {
  constexpr int64_t kElem = T == DType::F32 ? 4 : 2;
  if (kElem == 4 || (k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(row + k * kElem + pf), _MM_HINT_T0);
}

// The X8 layouts: decode steps through the AVX2 kernels of those layouts (one streamed pass over
// the interleaved rows; a wider register would only hold more of the same 8 rows), prefill through
// this table's repacking kernel, which reads X8 as it reads the file format.
template <DType T>
void gemm_x8(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (a.n_tok < kPrefillMinTok) {
    static const GemmQ decode = avx2::gemm_x8_for(T);
    decode(w, row_bytes, a, y, ldy, r0, r1);
  } else {
    prefill_gemm(T, w, row_bytes, a, y, ldy, r0, r1);
  }
}

// Rows w, w + row_bytes, ... (R of them, outputs r.. r + R) x tokens [t0, t0 + TT). kRelaid: the
// R rows are a group of F16_R4 (kernels/layout.h) at w, 32 values of each row in turn, read as one
// sequential stream (n % 32 == 0).
template <DType T, int R, int TT, bool kRelaid = false>
void tile_f(const uint8_t* w, size_t row_bytes, const float* x, int64_t n, int64_t t0, float* y,
            int64_t ldy, int64_t r) {
  [[maybe_unused]] const int64_t pf = decode_prefetch_distance(row_bytes, R);
  // Every loop over rows and tokens is unrolled: where one was not, acc lived in memory and GCC
  // stored all accumulators to the stack on every step of the k loop (prefill up to 2x slower).
  __m512 acc[R][TT];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) acc[i][t] = _mm512_setzero_ps();
  const uint8_t* rows[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) rows[i] = w + size_t(i) * row_bytes;
  const float* xs[TT];
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t) xs[t] = x + (t0 + t) * n;
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    __m512 wv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      if constexpr (kRelaid) {
        const uint8_t* unit = w + (k >> 5) * (kF16R4Unit * R) + i * kF16R4Unit;
        if (TT <= 2 && (k & 31) == 0) _mm_prefetch(reinterpret_cast<const char*>(unit + kPrefetchSequential), _MM_HINT_T0);
        wv[i] = load_w<T>(unit, k & 31, 0xFFFF);
      } else {
        if constexpr (TT <= 2) prefetch_step<T>(rows[i], k, pf);
        wv[i] = load_w<T>(rows[i], k, 0xFFFF);
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const __m512 xv = _mm512_loadu_ps(xs[t] + k);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][t] = _mm512_fmadd_ps(wv[i], xv, acc[i][t]);
    }
  }
  if (!kRelaid && k < n) {
    const __mmask16 m = first_lanes(n - k);
    __m512 wv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) wv[i] = load_w<T>(rows[i], k, m);
#pragma GCC unroll 8
    for (int t = 0; t < TT; ++t) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, xs[t] + k);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][t] = _mm512_fmadd_ps(wv[i], xv, acc[i][t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < TT; ++t)
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) y[(t0 + t) * ldy + r + i] = _mm512_reduce_add_ps(acc[i][t]);
}

constexpr int kTokens = 6;
#include "kernels/x86/float_gemm_impl.h"

FormatKernels format(DType t) {
  switch (t) {
    case DType::Q4_0: return {gemm_q<DType::Q4_0>, nullptr};
    case DType::Q4_1: return {gemm_q<DType::Q4_1>, nullptr};
    case DType::Q5_0: return {gemm_q<DType::Q5_0>, nullptr};
    case DType::Q5_1: return {gemm_q<DType::Q5_1>, nullptr};
    case DType::Q8_0: return {gemm_q<DType::Q8_0>, nullptr};
    case DType::Q8_0_R8: return {gemm_q<DType::Q8_0_R8>, nullptr};
    case DType::Q4_0_R8: return {gemm_q<DType::Q4_0_R8>, nullptr};
    case DType::Q4_1_R8: return {gemm_q<DType::Q4_1_R8>, nullptr};
    case DType::Q4_0_X8: return {gemm_x8<DType::Q4_0_X8>, nullptr};
    case DType::Q4_1_X8: return {gemm_x8<DType::Q4_1_X8>, nullptr};
    case DType::Q8_0_X8: return {gemm_x8<DType::Q8_0_X8>, nullptr};
    case DType::Q5_0_X8: return {gemm_x8<DType::Q5_0_X8>, nullptr};
    case DType::Q5_1_X8: return {gemm_x8<DType::Q5_1_X8>, nullptr};
    case DType::Q4_K_X8: return {gemm_x8<DType::Q4_K_X8>, nullptr};
    case DType::Q5_K_X8: return {gemm_x8<DType::Q5_K_X8>, nullptr};
    case DType::Q6_K_X8: return {gemm_x8<DType::Q6_K_X8>, nullptr};
    case DType::Q4_K: return {gemm_q<DType::Q4_K>, nullptr};
    case DType::Q5_K: return {gemm_q<DType::Q5_K>, nullptr};
    case DType::Q6_K: return {gemm_q<DType::Q6_K>, nullptr};
    case DType::I8_ROW: return {gemm_q<DType::I8_ROW>, nullptr};
    case DType::U8_ROW: return {gemm_q<DType::U8_ROW>, nullptr};
    case DType::I4_G64: return {gemm_q<DType::I4_G64>, nullptr};
    case DType::I4_G128: return {gemm_q<DType::I4_G128>, nullptr};
    case DType::U4_G64: return {gemm_q<DType::U4_G64>, nullptr};
    case DType::U4_G128: return {gemm_q<DType::U4_G128>, nullptr};
    case DType::F32:
    case DType::F16:
    case DType::F16_R4:
    case DType::BF16: return {nullptr, gemm_f};
    default: return {};
  }
}

}  // namespace

void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1) {
  gemm_float_any(t, w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i < n; i += 16) {
    const __mmask16 m = first_lanes(n - i);
    acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

const KernelTable& table() {
  static const KernelTable t = {"avx512", format, quantize_acts, dot_f32};
  return t;
}

}  // namespace edgeglm::kernels::avx512
