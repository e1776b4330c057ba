// AVX2 kernels of the X8 layouts (Q4_0_X8, Q4_1_X8; kernels/layout.h): row k of a group of 8 in
// lane k. A block column's quants are four 32-byte registers, each 4 bytes of every row; their low
// nibbles are values 4c..4c+3 of each row's block and their high nibbles values 16+4c..16+4c+3, so
// vpmaddubsw against those 4 activation bytes broadcast to all lanes leaves each row's products in its
// own lane. The 8 int16 results of a block add without saturating (8 * 2 * 15 * 127 = 30480), one
// vpmaddwd with ones gives each row's exact block sum in its int32 lane, and the conversion, scale
// and addition are done once per block and token for all 8 rows. The file layout of Q4_0 / Q4_1
// comes here too, relaid 8 rows at a time (gemm_x8); the other formats' kernels (qgemm_avx2.cpp)
// convert and scale per row and block.
//
// The float arithmetic is the scalar twin's (generic/qgemm_generic.cpp, row_nibbles) operation for
// operation, in its order, without fused multiply-adds (this file is compiled with
// -ffp-contract=off): per block, Q4_0 acc + (d * da) * float(isum - 8 * asum); Q4_1
// acc + ((d * da) * float(isum) + (m * da) * float(asum)). So the result is bit-identical to the
// scalar twin's, whatever rows a call covers or how many threads share a matrix.
//
// Measured on Zen 3 (bench/micro/qgemm_bench.cpp, one thread, 128 tokens, 1536x576 and 5632x2048):
// prefill Q4_0 70-72 GMAC/s, Q4_1 64-65, Q8_0 47-53, against 34-40 for the kernels these replaced;
// decode from DRAM Q4_0 19-20 GB/s against 12 (docs/BENCHMARKS.md, "Q4_0 / Q4_1 in the X8 layout").
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/layout.h"
#include "kernels/x86/decode_prefetch.h"
#include "kernels/x86/qgemm_avx2.h"
#include "quant/blocks.h"

namespace edgeglm::kernels::avx2 {
namespace {

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The X8 formats: block bytes, fp16 fields per row (d; Q4_1: d, m) and 4-byte chunks of quants.
struct X8Q4_0 {
  static constexpr int64_t kBB = sizeof(quant::BlockQ4_0);
  static constexpr int kFields = 1, kChunks = 4;
  static constexpr bool kNibbles = true, kMin = false;
};
struct X8Q4_1 {
  static constexpr int64_t kBB = sizeof(quant::BlockQ4_1);
  static constexpr int kFields = 2, kChunks = 4;
  static constexpr bool kNibbles = true, kMin = true;
};
struct X8Q8_0 {
  static constexpr int64_t kBB = sizeof(quant::BlockQ8_0);
  static constexpr int kFields = 1, kChunks = 8;
  static constexpr bool kNibbles = false, kMin = false;
};

// Nibble formats: done(t, the 8 rows' exact block sums against token x[t]) (int32 lane k = row k).
// The 8 vpmaddubsw results add in int16: at most 8 * 2 * 15 * 127 = 30480.
template <int T, class Done>
inline void nibble_sums(const uint8_t* q, const int8_t* const* x, Done done) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256i s16[T];
  __m256i w[4];
  for (int c = 0; c < 4; ++c) w[c] = _mm256_and_si256(loadu256(q + 32 * c), m4);
  for (int t = 0; t < T; ++t) {
    __m256i s = _mm256_maddubs_epi16(w[0], bcast4(x[t]));
    for (int c = 1; c < 4; ++c) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[c], bcast4(x[t] + 4 * c)));
    s16[t] = s;
  }
  for (int c = 0; c < 4; ++c)
    w[c] = _mm256_and_si256(_mm256_srli_epi16(loadu256(q + 32 * c), 4), m4);
  for (int t = 0; t < T; ++t) {
    __m256i s = s16[t];
    for (int c = 0; c < 4; ++c) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[c], bcast4(x[t] + 16 + 4 * c)));
    done(t, _mm256_madd_epi16(s, ones));
  }
}

// Q8_0: signed weights, so |w| against the activations with w's sign (vpsignb; 2 * 128 * 127 fits
// a vpmaddubsw pair) and one vpmaddwd per chunk, as two chunks' int16 sums could saturate.
template <int T, class Done>
inline void signed_sums(const uint8_t* q, const int8_t* const* x, Done done) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i aw[8];
  for (int c = 0; c < 8; ++c) aw[c] = _mm256_abs_epi8(loadu256(q + 32 * c));
  for (int t = 0; t < T; ++t) {
    __m256i s = _mm256_setzero_si256();
    for (int c = 0; c < 8; ++c) {
      const __m256i w = loadu256(q + 32 * c);
      const __m256i p = _mm256_maddubs_epi16(aw[c], _mm256_sign_epi8(bcast4(x[t] + 4 * c), w));
      s = _mm256_add_epi32(s, _mm256_madd_epi16(p, ones));
    }
    done(t, s);
  }
}

// Group g (8 rows, nb block columns of 8 * F::kBB bytes) x tokens [t0, t0 + T) of a: y[t * ldy + k] =
// row k of the group against token t0 + t. pf > 0: prefetch the stream pf bytes ahead.
template <class F, int T>
void x8_tile(const uint8_t* g, const QActs& a, int64_t t0, float* y, int64_t ldy, int64_t pf) {
  constexpr int64_t kCol = kX8Rows * F::kBB;
  const int64_t nb = a.nb();
  __m256 acc[T];
  const int8_t* aq[T];
  const float* ad[T];
  const int32_t* as[T];
  for (int t = 0; t < T; ++t) {
    acc[t] = _mm256_setzero_ps();
    aq[t] = a.row_q(t0 + t), ad[t] = a.row_d(t0 + t), as[t] = a.row_s(t0 + t);
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = g + b * kCol;
    if (pf > 0) {
      for (int64_t l = 0; l < kCol; l += 128) _mm_prefetch(reinterpret_cast<const char*>(p + pf + l), _MM_HINT_T0);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    [[maybe_unused]] __m256 mw;
    if constexpr (F::kMin) mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    const uint8_t* q = p + 16 * F::kFields;
    const int8_t* x[T];
    for (int t = 0; t < T; ++t) x[t] = aq[t] + 32 * b;
    auto done = [&](int t, __m256i isum) {
      const __m256 da = _mm256_set1_ps(ad[t][b]);
      if constexpr (F::kMin) {
        const __m256 t1 = _mm256_mul_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum));
        const __m256 t2 = _mm256_mul_ps(_mm256_mul_ps(mw, da), _mm256_set1_ps(float(as[t][b])));
        acc[t] = _mm256_add_ps(acc[t], _mm256_add_ps(t1, t2));
      } else {
        if constexpr (F::kNibbles) isum = _mm256_add_epi32(isum, _mm256_set1_epi32(-8 * as[t][b]));  // Q4_0
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum)));
      }
    };
    if constexpr (F::kNibbles) {
      nibble_sums<T>(q, x, done);
    } else {
      signed_sums<T>(q, x, done);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Prefill: tiles of kXT tokens (Q4_0 experiment: 6 tokens 48-54 GMAC/s, 4: 48-50, 8: 51), then the rest.
constexpr int kXT = 6;

template <class F>
void x8_group(const uint8_t* g, const QActs& a, float* y, int64_t ldy) {
  if (a.n_tok == 1) return x8_tile<F, 1>(g, a, 0, y, ldy, kPrefetchSequential);
  if (a.n_tok == 2) return x8_tile<F, 2>(g, a, 0, y, ldy, kPrefetchSequential);
  int64_t t0 = 0;
  for (; t0 + kXT <= a.n_tok; t0 += kXT) x8_tile<F, kXT>(g, a, t0, y + t0 * ldy, ldy, 0);
  float* yt = y + t0 * ldy;
  switch (a.n_tok - t0) {
    case 5: return x8_tile<F, 5>(g, a, t0, yt, ldy, 0);
    case 4: return x8_tile<F, 4>(g, a, t0, yt, ldy, 0);
    case 3: return x8_tile<F, 3>(g, a, t0, yt, ldy, 0);
    case 2: return x8_tile<F, 2>(g, a, t0, yt, ldy, 0);
    case 1: return x8_tile<F, 1>(g, a, t0, yt, ldy, 0);
    default: return;
  }
}

// The block columns of 8 rows in file form (block b of row k at rows[k] + b * BB) written in the X8
// layout to out: the fp16 fields gathered, the quants transposed 4 bytes at a time (16 bytes of two
// rows per 256-bit register, a 4 x 4 transpose of int32 in each half).
template <class F>
void relay8(const uint8_t* const* rows, int64_t nb, uint8_t* out) {
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* col = out + b * kX8Rows * F::kBB;
    const int64_t off = b * F::kBB;
    for (int f = 0; f < F::kFields; ++f)
      for (int k = 0; k < kX8Rows; ++k) std::memcpy(col + 16 * f + 2 * k, rows[k] + off + 2 * f, 2);
    for (int h = 0; h < F::kChunks / 4; ++h) {
      const int64_t src = off + 2 * F::kFields + 16 * h;
      __m256i y[4];
      for (int k = 0; k < 4; ++k)
        y[k] = _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(rows[k + 4] + src),
                                   reinterpret_cast<const __m128i*>(rows[k] + src));
      const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpacklo_epi32(y[2], y[3]);
      const __m256i t2 = _mm256_unpackhi_epi32(y[0], y[1]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
      __m256i* q = reinterpret_cast<__m256i*>(col + 16 * F::kFields) + 4 * h;
      _mm256_storeu_si256(q + 0, _mm256_unpacklo_epi64(t0, t1));
      _mm256_storeu_si256(q + 1, _mm256_unpackhi_epi64(t0, t1));
      _mm256_storeu_si256(q + 2, _mm256_unpacklo_epi64(t2, t3));
      _mm256_storeu_si256(q + 3, _mm256_unpackhi_epi64(t2, t3));
    }
  }
}

// Rows [r0, r1) of a Q4_0 / Q4_1 / Q8_0 matrix of type L (format F): the X8 layout, or the file
// layout, whose groups of 8 rows are relaid into the calling thread's scratch first (one pass, then
// every token tile reads it). Rows outside whole groups go alone through the same arithmetic: the
// row's file form as row 0 of a group whose other 7 rows are zero. So the file and X8 layouts give
// the same bits.
template <DType L, class F>
void gemm_x8(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  constexpr bool kRelaid = L == DType::Q4_0_X8 || L == DType::Q4_1_X8 || L == DType::Q8_0_X8;
  const uint8_t* base = static_cast<const uint8_t*>(w);
  const int64_t nb = a.nb();
  thread_local std::vector<uint8_t> group, row, zero;  // scratch of the relaid paths only
  const GroupSpan gs = whole_groups(r0, r1, kX8Rows);
  if ((!kRelaid || gs.begin > r0 || gs.end < r1) && group.size() < kX8Rows * row_bytes)
    group.resize(kX8Rows * row_bytes);
  auto singles = [&](int64_t lo, int64_t hi) {
    if (lo >= hi) return;
    thread_local std::vector<float> y8;
    zero.assign(row_bytes, 0);
    y8.resize(size_t(a.n_tok) * kX8Rows);
    for (int64_t r = lo; r < hi; ++r) {
      const uint8_t* rows[kX8Rows];
      rows[0] = file_form_row(L, w, row_bytes, r, row);
      for (int k = 1; k < kX8Rows; ++k) rows[k] = zero.data();
      relay8<F>(rows, nb, group.data());
      x8_group<F>(group.data(), a, y8.data(), kX8Rows);
      for (int64_t t = 0; t < a.n_tok; ++t) y[t * ldy + r] = y8[size_t(t * kX8Rows)];
    }
  };
  singles(r0, gs.begin);
  for (int64_t r = gs.begin; r < gs.end; r += kX8Rows) {
    const uint8_t* g = base + size_t(r) * row_bytes;
    if constexpr (!kRelaid) {
      const uint8_t* rows[kX8Rows];
      for (int k = 0; k < kX8Rows; ++k) rows[k] = g + size_t(k) * row_bytes;
      relay8<F>(rows, nb, group.data());
      g = group.data();
    }
    x8_group<F>(g, a, y + r, ldy);
  }
  singles(gs.end, r1);
}

}  // namespace

GemmQ gemm_x8_for(DType t) {
  switch (t) {
    case DType::Q4_0_X8: return gemm_x8<DType::Q4_0_X8, X8Q4_0>;
    case DType::Q4_1_X8: return gemm_x8<DType::Q4_1_X8, X8Q4_1>;
    case DType::Q8_0_X8: return gemm_x8<DType::Q8_0_X8, X8Q8_0>;
    case DType::Q4_0: return gemm_x8<DType::Q4_0, X8Q4_0>;
    case DType::Q4_1: return gemm_x8<DType::Q4_1, X8Q4_1>;
    case DType::Q8_0: return gemm_x8<DType::Q8_0, X8Q8_0>;
    default: return nullptr;
  }
}

}  // namespace edgeglm::kernels::avx2
