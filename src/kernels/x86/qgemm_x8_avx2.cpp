// AVX2 kernels of the X8 layouts (kernels/layout.h: Q4_0_X8, Q4_1_X8, Q5_0_X8, Q5_1_X8, Q8_0_X8,
// Q4_K_X8, Q5_K_X8, Q6_K_X8): row k of a group of 8 in lane k. A Q4_0 block column's quants are four
// 32-byte registers, each 4 bytes of every row; their low nibbles are values 4c..4c+3 of each row's
// block and their high nibbles values 16+4c..16+4c+3, so vpmaddubsw against those 4 activation bytes
// broadcast to all lanes leaves each row's products in its own lane. The 8 int16 results of a block
// add without saturating (8 * 2 * 15 * 127 = 30480), one vpmaddwd with ones gives each row's exact
// block sum in its int32 lane, and the conversion, scale and addition are done once per block and
// token for all 8 rows. The other formats follow the same scheme (nibble5_sums, signed_sums,
// x8_q6k_tile, x8_k45_tile). The file layout of these formats comes here too, relaid 8 rows at a
// time (gemm_x8); the remaining formats' kernels (qgemm_avx2.cpp) convert and scale per row and
// block.
//
// The float arithmetic is the scalar twin's (generic/qgemm_generic.cpp: row_nibbles, row_q8_0,
// row_q45_k, row_q6_k) operation for operation, in its order, without fused multiply-adds (this file is compiled with
// -ffp-contract=off): per block, Q4_0 acc + (d * da) * float(isum - 8 * asum); Q4_1
// acc + ((d * da) * float(isum) + (m * da) * float(asum)). So the result is bit-identical to the
// scalar twin's, whatever rows a call covers or how many threads share a matrix.
//
// Measured on Zen 3 (bench/micro/qgemm_bench.cpp, one thread, 128 tokens, 1536x576 and 5632x2048):
// prefill Q4_0 70-72 GMAC/s, Q4_1 64-65, Q8_0 47-53, against 34-40 for the kernels these replaced;
// decode from DRAM Q4_0 19-20 GB/s against 12 (docs/BENCHMARKS.md, "Q4_0 / Q4_1 in the X8 layout").
// Q6_K (5632x2048): prefill 52-60 GMAC/s against 13, decode 16.6 GB/s against 9; Q4_K / Q5_K / Q5_0
// decode 2.7-5 GB/s before, 10-14 now on a busy machine ("Q5_0, Q5_1, Q4_K, Q5_K and Q6_K in the X8
// layout").
#include <immintrin.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/layout.h"
#include "kernels/x86/decode_prefetch.h"
#include "kernels/x86/qgemm_avx2.h"
#include "quant/blocks.h"

namespace edgeglm::kernels::avx2 {
namespace {

constexpr bool is_x8_layout(DType t) {
  return t == DType::Q4_0_X8 || t == DType::Q4_1_X8 || t == DType::Q8_0_X8 || t == DType::Q6_K_X8 ||
         t == DType::Q4_K_X8 || t == DType::Q5_K_X8 || t == DType::Q5_0_X8 || t == DType::Q5_1_X8;
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// The X8 formats of 32-value blocks: block bytes, fp16 fields per row (d; Q4_1, Q5_1: d, m), 4-byte
// chunks of quants (Q5_0 / Q5_1: qh, then qs) and the offset of the values (Q4_0: -8, Q5_0: -16).
template <class Block, int Off>
struct X8Legacy {
  static constexpr int64_t kBB = sizeof(Block);
  static constexpr bool kMin = requires(const Block& b) { b.m; };
  static constexpr bool kFive = requires(const Block& b) { b.qh; };
  static constexpr bool kNibbles = !std::is_same_v<Block, quant::BlockQ8_0>;
  static constexpr int kFields = kMin ? 2 : 1, kChunks = int((kBB - 2 * kFields) / 4), kOff = Off;
};
using X8Q4_0 = X8Legacy<quant::BlockQ4_0, 8>;
using X8Q4_1 = X8Legacy<quant::BlockQ4_1, 0>;
using X8Q5_0 = X8Legacy<quant::BlockQ5_0, 16>;
using X8Q5_1 = X8Legacy<quant::BlockQ5_1, 0>;
using X8Q8_0 = X8Legacy<quant::BlockQ8_0, 0>;
static_assert(X8Q4_0::kChunks == 4 && X8Q4_1::kChunks == 4 && X8Q5_0::kChunks == 5 && X8Q5_1::kChunks == 5 &&
              X8Q8_0::kChunks == 8);
// K-quants: a block column is a super-block column (8 activation blocks).
// Q6_K: fields are the 8 scale pairs and d, which end the file block; the 48 chunks are ql (0..31)
// and qh (32..47).
struct X8Q6_K {
  static constexpr int64_t kBB = sizeof(quant::BlockQ6_K);
  static constexpr int kFields = 9, kChunks = 48, kSuper = 6;
  static constexpr bool kFieldsLast = true;
};
// Q4_K / Q5_K: fields d and dmin; chunks 0..2 the 12 packed scale bytes, then (Q5_K) qh's 8, then qs's 32.
template <bool kFive>
struct X8K45 {
  static constexpr int64_t kBB = kFive ? sizeof(quant::BlockQ5_K) : sizeof(quant::BlockQ4_K);
  static constexpr int kFields = 2, kChunks = kFive ? 43 : 35, kSuper = kFive ? 5 : 4;
};
template <class F>
constexpr bool kFieldsLast = requires { F::kFieldsLast; };
template <class F>
constexpr int kSuper = [] {
  if constexpr (requires { F::kSuper; }) {
    return F::kSuper;
  } else {
    return 0;
  }
}();
template <class F>
constexpr int64_t kActBlocks = kSuper<F> ? 8 : 1;  // activation blocks per block column

// Decode (pf > 0): prefetch block column p's kCol bytes pf ahead, one line in every kStep bytes.
// The 32-value blocks prefetch every other line (every line lost them 3-5%); the super-block
// columns every line (every other one left Q6_K decode from DRAM at 6.5 GB/s against 16.6; one
// thread, 5632x2048).
// always_inline: as a call, GCC 12's IPA pure-const pass finds no side effect in a function that
// only prefetches, marks it const and deletes every call (fef6ba4 lost all the prefetches of this
// file that way: Q4_0 decode from DRAM 17 GB/s against 22). tests/kernels/check_prefetch.sh counts them.
template <int64_t kCol, int64_t kStep>
[[gnu::always_inline]] inline void prefetch_column(const uint8_t* p, int64_t pf) {
  if (pf <= 0) return;
  for (int64_t l = 0; l < kCol; l += kStep) _mm_prefetch(reinterpret_cast<const char*>(p + pf + l), _MM_HINT_T0);
}

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

// Q5_0 / Q5_1: the qh chunk (each row's 32 fifth bits in its lane), then nibble_sums' 4 chunks. Bit
// e of a lane goes to 0x10 of value e: a vpshufb spreads qh byte e / 8 over the 4 bytes of a chunk,
// vpcmpeqb against the bits 1 << e % 8 picks each one. Values 0..31 add in int16 over 4 chunks (4 * 2
// * 31 * 127 = 31496), then vpmaddwd for each half.
template <int T, class Done>
inline void nibble5_sums(const uint8_t* q, const int8_t* const* x, Done done) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
  const __m256i lane = _mm256_setr_epi8(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12,  //
                                        0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
  const __m256i bits[2] = {_mm256_set1_epi32(0x08040201), _mm256_set1_epi32(int32_t(0x80402010u))};
  const __m256i qh = loadu256(q);
  __m256i s32[T];
  for (int h = 0; h < 2; ++h) {  // h = 0: values 0..15 (low nibbles), 1: 16..31 (high nibbles)
    __m256i w[4];
    for (int c = 0; c < 4; ++c) {
      const __m256i x4 = loadu256(q + 32 + 32 * c);
      const __m256i nib = h == 0 ? _mm256_and_si256(x4, m4) : _mm256_and_si256(_mm256_srli_epi16(x4, 4), m4);
      // values 16h + 4c + i: qh byte 2h + c / 2, bit 4 * (c % 2) + i
      const __m256i hb = _mm256_shuffle_epi8(qh, _mm256_add_epi8(lane, _mm256_set1_epi8(char(2 * h + c / 2))));
      const __m256i bit = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bits[c % 2]), bits[c % 2]);
      w[c] = _mm256_or_si256(nib, _mm256_and_si256(bit, b4));
    }
    for (int t = 0; t < T; ++t) {
      __m256i s = _mm256_maddubs_epi16(w[0], bcast4(x[t] + 16 * h));
      for (int c = 1; c < 4; ++c) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[c], bcast4(x[t] + 16 * h + 4 * c)));
      const __m256i s2 = _mm256_madd_epi16(s, ones);
      s32[t] = h == 0 ? s2 : _mm256_add_epi32(s32[t], s2);
    }
  }
  for (int t = 0; t < T; ++t) done(t, s32[t]);
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
    prefetch_column<kCol, 128>(p, pf);
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
        if constexpr (F::kOff != 0) isum = _mm256_add_epi32(isum, _mm256_set1_epi32(-F::kOff * as[t][b]));
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(_mm256_mul_ps(dw, da), _mm256_cvtepi32_ps(isum)));
      }
    };
    if constexpr (F::kFive) {
      nibble5_sums<T>(q, x, done);
    } else if constexpr (F::kNibbles) {
      nibble_sums<T>(q, x, done);
    } else {
      signed_sums<T>(q, x, done);
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Q6_K, super-block column s of group g (X8Q6_K) x tokens [t0, t0 + T): y[t * ldy + k] = row k
// against token t0 + t. s16[t][j] packs the two 16-value sums of activation block j of token t0 + t
// (low half: values 0..15), for the -32 offset.
//
// The file's ql bytes 64h + 4c.. (L0) and 64h + 32 + 4c.. (L1) and qh bytes 32h + 4c.. (H) hold values
// 4c..4c+3 of the four activation blocks j = 4h + g: g = 0 low nibbles of L0 with bits 0-1 of H,
// g = 1 L1 with bits 2-3, g = 2 high nibbles of L0 with bits 4-5, g = 3 L1's with bits 6-7 (blocks.h).
// Values 0..63 times activations add in pairs of chunks without saturating (4 * 63 * 127 = 32004),
// one vpmaddwd with the sub-block's scale in both halves of each lane makes them int32, and the
// offset -32 * (sc_lo * sum_lo + sc_hi * sum_hi) is one vpmaddwd of the scale pairs against s16. The
// integer sum of each row and block is the scalar twin's; so is the float arithmetic
// (generic row_q6_k: sum += da * float(isum) over the 8 blocks, acc += d * sum).
template <int T>
void x8_q6k_tile(const uint8_t* g, const QActs& a, const int32_t* s16, int64_t t0, float* y, int64_t ldy,
                 int64_t pf) {
  constexpr int64_t kCol = kX8Rows * X8Q6_K::kBB;
  const int64_t nb = a.nb(), ns = nb / 8;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m128i dup_lo = _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14);
  const __m128i dup_hi = _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15);
  __m256 acc[T];
  const int8_t* aq[T];
  const float* ad[T];
  for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps(), aq[t] = a.row_q(t0 + t), ad[t] = a.row_d(t0 + t);
  for (int64_t sb = 0; sb < ns; ++sb) {
    const uint8_t* p = g + sb * kCol;
    prefetch_column<kCol, 64>(p, pf);
    const uint8_t* q = p + 16 * X8Q6_K::kFields;
    __m256 sum[T];
    for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_ps();
    // Activation block j = 4h + G (G a constant, so each unpacking is straight-line code).
    auto block = [&]<int G>(int h) {
      const int j = 4 * h + G;
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * j));
      const __m256i pair = _mm256_cvtepi8_epi16(sc);
      const __m256i sc_lo = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, dup_lo));
      const __m256i sc_hi = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, dup_hi));
      const uint8_t* lq = q + 32 * (16 * h + 8 * (G & 1));
      const uint8_t* hq = q + 32 * (32 + 8 * h);
      auto value = [&](int c) {  // values 4c..4c+3 of block j, 0..63, row k in lane k
        const __m256i l = loadu256(lq + 32 * c), hb = loadu256(hq + 32 * c);
        const __m256i lo = G < 2 ? _mm256_and_si256(l, m4) : _mm256_and_si256(_mm256_srli_epi16(l, 4), m4);
        const __m256i hi = G == 0 ? _mm256_slli_epi16(hb, 4)
                         : G == 1 ? _mm256_slli_epi16(hb, 2)
                         : G == 2 ? hb
                                  : _mm256_srli_epi16(hb, 2);
        return _mm256_or_si256(lo, _mm256_and_si256(hi, m30));
      };
      __m256i isum[T];
      for (int t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      for (int c = 0; c < 8; c += 2) {
        const __m256i v0 = value(c), v1 = value(c + 1), scale = c < 4 ? sc_lo : sc_hi;
        for (int t = 0; t < T; ++t) {
          const int8_t* x = aq[t] + 32 * (8 * sb + j) + 4 * c;
          const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(v0, bcast4(x)), _mm256_maddubs_epi16(v1, bcast4(x + 4)));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s, scale));
        }
      }
      for (int t = 0; t < T; ++t) {
        const __m256i off = _mm256_madd_epi16(pair, _mm256_set1_epi32(s16[(t0 + t) * nb + 8 * sb + j]));
        isum[t] = _mm256_sub_epi32(isum[t], _mm256_slli_epi32(off, 5));
        const __m256 da = _mm256_set1_ps(ad[t][8 * sb + j]);
        sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(da, _mm256_cvtepi32_ps(isum[t])));
      }
    };
    for (int h = 0; h < 2; ++h) {
      block.template operator()<0>(h);
      block.template operator()<1>(h);
      block.template operator()<2>(h);
      block.template operator()<3>(h);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * 8)));
    for (int t = 0; t < T; ++t) acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(dw, sum[t]));
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// Q4_K / Q5_K, super-block column s of group g (X8K45) x tokens [t0, t0 + T): y[t * ldy + k] = row
// k against token t0 + t.
//
// The three scale chunks A, B, C (bytes 0..3, 4..7, 8..11 of each row's 12) unpack for all 8 rows at
// once: scales 0..3 = A & 63, mins 0..3 = B & 63, scales 4..7 = (C & 15) | (A >> 6) << 4, mins 4..7
// = (C >> 4) | (B >> 6) << 4 (blocks.h, unpack_scale_min_k4); a vpshufb then puts sub-block j's scale
// in both int16 halves of each lane (for vpmaddwd) and its min in the low half. Sub-block j (=
// activation block j) is the low (j even) or high nibbles of qs bytes 32 * (j / 2).., Q5_K's fifth
// bit bit j of qh. Values 0..15 add in int16 over 8 chunks (8 * 2 * 15 * 127 = 30480), Q5_K's 0..31
// over 4. The float arithmetic is the scalar twin's (generic row_q45_k): sum_d += da * float(sc *
// isum), sum_m += da * float(mn * asum) over the 8 blocks, acc += d * sum_d - dmin * sum_m.
template <bool kFive, int T>
void x8_k45_tile(const uint8_t* g, const QActs& a, int64_t t0, float* y, int64_t ldy, int64_t pf) {
  using F = X8K45<kFive>;
  constexpr int64_t kCol = kX8Rows * F::kBB;
  const int64_t ns = a.nb() / 8;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m6 = _mm256_set1_epi8(0x3F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[T];
  const int8_t* aq[T];
  const float* ad[T];
  const int32_t* as[T];
  for (int t = 0; t < T; ++t)
    acc[t] = _mm256_setzero_ps(), aq[t] = a.row_q(t0 + t), ad[t] = a.row_d(t0 + t), as[t] = a.row_s(t0 + t);
  for (int64_t sb = 0; sb < ns; ++sb) {
    const uint8_t* p = g + sb * kCol;
    prefetch_column<kCol, 64>(p, pf);
    const uint8_t* q = p + 32;
    const __m256i A = loadu256(q), B = loadu256(q + 32), C = loadu256(q + 64);
    const __m256i sc[2] = {_mm256_and_si256(A, m6),
                           _mm256_or_si256(_mm256_and_si256(C, m4), _mm256_and_si256(_mm256_srli_epi16(A, 2), m30))};
    const __m256i mn[2] = {_mm256_and_si256(B, m6),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(C, 4), m4),
                                           _mm256_and_si256(_mm256_srli_epi16(B, 2), m30))};
    const uint8_t* qh = q + 96;
    const uint8_t* qs = qh + (kFive ? 256 : 0);
    __m256 sum_d[T], sum_m[T];
    for (int t = 0; t < T; ++t) sum_d[t] = _mm256_setzero_ps(), sum_m[t] = _mm256_setzero_ps();
    auto block = [&]<int J>() {
      // Byte J % 4 of each 4-byte lane to both int16 halves (mins: to the low one).
      constexpr char i = J % 4, z = char(0x80);
      const __m256i dup = _mm256_setr_epi8(i, z, i, z, 4 + i, z, 4 + i, z, 8 + i, z, 8 + i, z, 12 + i, z, 12 + i, z,
                                           i, z, i, z, 4 + i, z, 4 + i, z, 8 + i, z, 8 + i, z, 12 + i, z, 12 + i, z);
      const __m256i scj = _mm256_shuffle_epi8(sc[J / 4], dup);
      __m256i v[8];
      for (int c = 0; c < 8; ++c) {
        const __m256i x = loadu256(qs + 32 * (8 * (J / 2) + c));
        v[c] = J % 2 == 0 ? _mm256_and_si256(x, m4) : _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        if constexpr (kFive) {  // bit J of qh to 0x10
          const __m256i h = loadu256(qh + 32 * c);
          const __m256i b = J < 4 ? _mm256_slli_epi16(h, 4 - J) : J == 4 ? h : _mm256_srli_epi16(h, J - 4);
          v[c] = _mm256_or_si256(v[c], _mm256_and_si256(b, _mm256_set1_epi8(0x10)));
        }
      }
      for (int t = 0; t < T; ++t) {
        const int8_t* x = aq[t] + 32 * (8 * sb + J);
        __m256i is;
        if constexpr (kFive) {
          is = _mm256_setzero_si256();
          for (int h = 0; h < 2; ++h) {
            __m256i s = _mm256_maddubs_epi16(v[4 * h], bcast4(x + 16 * h));
            for (int c = 1; c < 4; ++c) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(v[4 * h + c], bcast4(x + 16 * h + 4 * c)));
            is = _mm256_add_epi32(is, _mm256_madd_epi16(s, scj));
          }
        } else {
          __m256i s = _mm256_maddubs_epi16(v[0], bcast4(x));
          for (int c = 1; c < 8; ++c) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(v[c], bcast4(x + 4 * c)));
          is = _mm256_madd_epi16(s, scj);
        }
        sum_d[t] = _mm256_add_ps(sum_d[t], _mm256_mul_ps(_mm256_set1_ps(ad[t][8 * sb + J]), _mm256_cvtepi32_ps(is)));
      }
    };
    // The mins' sums, blocks in order as the twin's sum_m (a pass of their own, before the quants, so
    // the mins' registers are free during them).
    auto mins = [&]<int J>() {
      constexpr char i = J % 4, z = char(0x80);
      const __m256i low = _mm256_setr_epi8(i, z, z, z, 4 + i, z, z, z, 8 + i, z, z, z, 12 + i, z, z, z,
                                           i, z, z, z, 4 + i, z, z, z, 8 + i, z, z, z, 12 + i, z, z, z);
      const __m256i mnj = _mm256_shuffle_epi8(mn[J / 4], low);
      for (int t = 0; t < T; ++t) {
        const __m256i ms = _mm256_madd_epi16(mnj, _mm256_set1_epi32(as[t][8 * sb + J]));
        sum_m[t] = _mm256_add_ps(sum_m[t], _mm256_mul_ps(_mm256_set1_ps(ad[t][8 * sb + J]), _mm256_cvtepi32_ps(ms)));
      }
    };
    mins.template operator()<0>();
    mins.template operator()<1>();
    mins.template operator()<2>();
    mins.template operator()<3>();
    mins.template operator()<4>();
    mins.template operator()<5>();
    mins.template operator()<6>();
    mins.template operator()<7>();
    block.template operator()<0>();
    block.template operator()<1>();
    block.template operator()<2>();
    block.template operator()<3>();
    block.template operator()<4>();
    block.template operator()<5>();
    block.template operator()<6>();
    block.template operator()<7>();
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)));
    for (int t = 0; t < T; ++t)
      acc[t] = _mm256_add_ps(acc[t], _mm256_sub_ps(_mm256_mul_ps(dw, sum_d[t]), _mm256_mul_ps(mw, sum_m[t])));
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(y + t * ldy, acc[t]);
}

// The tile of format F.
template <class F, int T>
inline void tile_of(const uint8_t* g, const QActs& a, const int32_t* s16, int64_t t0, float* y, int64_t ldy,
                    int64_t pf) {
  if constexpr (kSuper<F> == 6) {
    x8_q6k_tile<T>(g, a, s16, t0, y, ldy, pf);
  } else if constexpr (kSuper<F> != 0) {
    x8_k45_tile<kSuper<F> == 5, T>(g, a, t0, y, ldy, pf);
  } else {
    x8_tile<F, T>(g, a, t0, y, ldy, pf);
  }
}

// Prefill: tiles of kXT tokens (Q4_0 experiment: 6 tokens 48-54 GMAC/s, 4: 48-50, 8: 51), then the rest.
// Q4_K / Q5_K keep 8 unpacked chunks and two sums per token: 4 tokens (Q4_K 5632x2048, in one run on
// a busy machine: 6 tokens 65-71 ms, 4: 43-50, 3: 38-53, 8: 64-72; Q4_0_X8 42-45).
constexpr int kXT = 6;
template <class F>
constexpr int kTileT = kSuper<F> == 4 || kSuper<F> == 5 ? 4 : kXT;

template <class F>
void x8_group(const uint8_t* g, const QActs& a, const int32_t* s16, float* y, int64_t ldy) {
  if (a.n_tok == 1) return tile_of<F, 1>(g, a, s16, 0, y, ldy, kPrefetchSequential);
  if (a.n_tok == 2) return tile_of<F, 2>(g, a, s16, 0, y, ldy, kPrefetchSequential);
  int64_t t0 = 0;
  for (; t0 + kTileT<F> <= a.n_tok; t0 += kTileT<F>) tile_of<F, kTileT<F>>(g, a, s16, t0, y + t0 * ldy, ldy, 0);
  float* yt = y + t0 * ldy;
  switch (a.n_tok - t0) {
    case 5: return tile_of<F, 5>(g, a, s16, t0, yt, ldy, 0);
    case 4: return tile_of<F, 4>(g, a, s16, t0, yt, ldy, 0);
    case 3: return tile_of<F, 3>(g, a, s16, t0, yt, ldy, 0);
    case 2: return tile_of<F, 2>(g, a, s16, t0, yt, ldy, 0);
    case 1: return tile_of<F, 1>(g, a, s16, t0, yt, ldy, 0);
    default: return;
  }
}

// The block columns of 8 rows in file form (block b of row k at rows[k] + b * BB) written in the X8
// layout to out: the fp16 fields gathered, the quants transposed 4 bytes at a time (16 bytes of two
// rows per 256-bit register, a 4 x 4 transpose of int32 in each half).
template <class F>
void relay8(const uint8_t* const* rows, int64_t nb, uint8_t* out) {
  constexpr int64_t kField0 = kFieldsLast<F> ? F::kBB - 2 * F::kFields : 0;
  constexpr int64_t kQuant0 = kFieldsLast<F> ? 0 : 2 * F::kFields;
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* col = out + b * kX8Rows * F::kBB;
    const int64_t off = b * F::kBB;
    for (int f = 0; f < F::kFields; ++f)
      for (int k = 0; k < kX8Rows; ++k) std::memcpy(col + 16 * f + 2 * k, rows[k] + off + kField0 + 2 * f, 2);
    for (int h = 0; h < F::kChunks / 4; ++h) {
      const int64_t src = off + kQuant0 + 16 * h;
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
    for (int c = F::kChunks / 4 * 4; c < F::kChunks; ++c)  // Q4_K / Q5_K: 3 chunks past the last 4
      for (int k = 0; k < kX8Rows; ++k) std::memcpy(col + 16 * F::kFields + 32 * c + 4 * k, rows[k] + off + kQuant0 + 4 * c, 4);
  }
}

// Rows [r0, r1) of a Q4_0 / Q4_1 / Q8_0 matrix of type L (format F): the X8 layout, or the file
// layout, whose groups of 8 rows are relaid into the calling thread's scratch first (one pass, then
// every token tile reads it). Rows outside whole groups go alone through the same arithmetic: the
// row's file form as row 0 of a group whose other 7 rows are zero. So the file and X8 layouts give
// the same bits.
template <DType L, class F>
void gemm_x8(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  constexpr bool kRelaid = is_x8_layout(L);
  const uint8_t* base = static_cast<const uint8_t*>(w);
  const int64_t nb = a.nb() / kActBlocks<F>;  // block columns
  thread_local std::vector<uint8_t> group, row, zero;  // scratch of the relaid paths only
  thread_local std::vector<int32_t> s16v;
  const int32_t* s16 = nullptr;
  if constexpr (kSuper<F> == 6) {  // Q6_K: each activation block's two 16-value sums, packed
    s16v.resize(size_t(a.n_tok * a.nb()));
    for (int64_t t = 0; t < a.n_tok; ++t)
      for (int64_t j = 0; j < a.nb(); ++j) {
        const int8_t* x = a.row_q(t) + 32 * j;
        int32_t lo = 0, hi = 0;
        for (int i = 0; i < 16; ++i) lo += x[i], hi += x[16 + i];
        s16v[size_t(t * a.nb() + j)] = int32_t(uint32_t(uint16_t(lo)) | (uint32_t(uint16_t(hi)) << 16));
      }
    s16 = s16v.data();
  }
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
      x8_group<F>(group.data(), a, s16, y8.data(), kX8Rows);
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
    x8_group<F>(g, a, s16, y + r, ldy);
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
    case DType::Q5_0_X8: return gemm_x8<DType::Q5_0_X8, X8Q5_0>;
    case DType::Q5_0: return gemm_x8<DType::Q5_0, X8Q5_0>;
    case DType::Q5_1_X8: return gemm_x8<DType::Q5_1_X8, X8Q5_1>;
    case DType::Q5_1: return gemm_x8<DType::Q5_1, X8Q5_1>;
    case DType::Q4_1: return gemm_x8<DType::Q4_1, X8Q4_1>;
    case DType::Q8_0: return gemm_x8<DType::Q8_0, X8Q8_0>;
    case DType::Q6_K_X8: return gemm_x8<DType::Q6_K_X8, X8Q6_K>;
    case DType::Q6_K: return gemm_x8<DType::Q6_K, X8Q6_K>;
    case DType::Q4_K_X8: return gemm_x8<DType::Q4_K_X8, X8K45<false>>;
    case DType::Q4_K: return gemm_x8<DType::Q4_K, X8K45<false>>;
    case DType::Q5_K_X8: return gemm_x8<DType::Q5_K_X8, X8K45<true>>;
    case DType::Q5_K: return gemm_x8<DType::Q5_K, X8K45<true>>;
    default: return nullptr;
  }
}

}  // namespace edgeglm::kernels::avx2
