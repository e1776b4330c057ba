// AVX2 integer kernels (no VNNI): activation quantizer and int8 GEMM of the integer formats that
// have no X8 layout (I8_ROW, U8_ROW, I4_G64/128, U4_G64/128). The others (Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q4_K, Q5_K, Q6_K) are computed by the X8 kernels (x86/qgemm_x8_avx2.cpp), 8 rows in the
// lanes of one register, in their X8 layout or relaid from the file layout.
//
// Every format here is unpacked one 32-value block at a time into 32 unsigned bytes (4-bit values)
// and multiplied with the signed int8 activations by vpmaddubsw (u8 x s8 -> pairs summed to int16)
// then vpmaddwd with ones (-> 8 int32 lanes). The signed 8-bit I8_ROW, where a pair could saturate:
// |w| (unsigned, <= 128) times the activations with w's sign applied (vpsignb), 2 * 128 * 127 <
// 32767. Offsets enter exactly in int32: I4_G's -8 times the activation block sum, added as -1
// times it in each of the 8 lanes. Mins (U4_G, U8_ROW) enter in float: m * da * activation block
// sum. U8_ROW (unsigned 8-bit) is flipped to q - 128 and handled as I8_ROW, +128 * block sum in
// int32. So every block's integer sum equals the scalar twin's; only float summation order differs.
//
// One register tile is R rows x T tokens of float accumulators (8 lanes each, reduced at the end);
// each row's block is unpacked once per tile and used for T tokens, each activation block loaded
// once and used for R rows. Decode (1-2 tokens): 4 rows x n_tok; prefill: kPR rows x kPT tokens,
// 4 blocks at a time (tile4).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/x86/decode_prefetch.h"
#include "kernels/x86/qgemm_avx2.h"
#include "quant/blocks.h"

namespace edgeglm::kernels::avx2 {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  // quantize_acts_ref's operations in its order (qacts.h): max |x| ignoring NaN, 127 / amax,
  // x * id clamped to [-127, 127] (NaN -> -127), round half to even (cvtps under default MXCSR).
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < n / kQActBlock; ++b) {
    __m256 xv[4], m = zero;
    for (int i = 0; i < 4; ++i) {
      xv[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
      // max(|x|, m): the second operand wins for NaN |x|, so NaN never enters the maximum.
      m = _mm256_max_ps(_mm256_and_ps(xv[i], abs_mask), m);
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    __m256i iv[4];
    for (int i = 0; i < 4; ++i)  // max(v, -127): NaN v gives -127 (second operand), as the reference
      iv[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(xv[i], vid), lo), hi));
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(iv[0], iv[1]), _mm256_packs_epi32(iv[2], iv[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
    const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(iv[0], iv[1]), _mm256_add_epi32(iv[2], iv[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    d[b] = amax / 127.0f;
    s[b] = _mm_cvtsi128_si32(s4);
  }
}

namespace {

using namespace edgeglm::quant;

inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i lo_nib(__m256i x) { return _mm256_and_si256(x, _mm256_set1_epi8(0x0F)); }
inline __m256i hi_nib(__m256i x) { return _mm256_and_si256(_mm256_srli_epi16(x, 4), _mm256_set1_epi8(0x0F)); }
// 16 packed bytes -> [low nibbles | high nibbles] (elements 0..15, 16..31 of a legacy block).
inline __m256i nibbles_32(const uint8_t* qs) {
  const __m128i x = loadu128(qs), m = _mm_set1_epi8(0x0F);
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(x, m)),
                                 _mm_and_si128(_mm_srli_epi16(x, 4), m), 1);
}
enum class Kind { kSign, kOffset, kMin, kSignMin };

// One 32-value block of a row, unpacked.
struct Blk {
  __m256i v;   // unsigned values (kSign: |w|)
  __m256i x;   // kSign: w (for the sign)
  float dw;    // weight scale of the block
  float mw;    // kMin: the min term's factor (Q4_1/Q5_1: m; K: -dmin * mn)
};

// Split-nibble formats (I4_G / U4_G); kSub sub-blocks of 32 per block share its scale (G/32).
template <class Block, bool kHasMin, int kSub>
struct ULegacy {
  static constexpr Kind kKind = kHasMin ? Kind::kMin : Kind::kOffset;
  static constexpr int kOff = 8;
  static inline void run(const uint8_t* row, int64_t b, Blk* o) {
    const Block* k = reinterpret_cast<const Block*>(row) + b / kSub;
    o->v = nibbles_32(k->qs + 16 * (b % kSub));
    o->dw = h2f(k->d);
    if constexpr (kHasMin) o->mw = h2f(k->m);
  }
};
using UI4_G64 = ULegacy<BlockI4_G64, false, 2>;
using UI4_G128 = ULegacy<BlockI4_G128, false, 4>;
using UU4_G64 = ULegacy<BlockU4_G64, true, 2>;
using UU4_G128 = ULegacy<BlockU4_G128, true, 4>;

// Per-row 8-bit formats: the row's float scale (and min) from the header, block b at 32b after it.
// I8_ROW is signed (kSign). U8_ROW (0..255) would saturate vpmaddubsw's pairs, so it is
// flipped to signed q - 128 (kSign's |w| trick) and 128 times the activation block sum is added
// back in int32 (kSignMin; 16 per lane of the 8); its min enters in float as Q4_1's.
template <bool kUnsigned>
struct URow8 {
  static constexpr Kind kKind = kUnsigned ? Kind::kSignMin : Kind::kSign;
  static constexpr int kOff = 0;
  static constexpr int kHeader = kUnsigned ? sizeof(RowU8Header) : sizeof(RowI8Header);
  static inline void run(const uint8_t* row, int64_t b, Blk* o) {
    __m256i x = loadu256(row + kHeader + 32 * b);
    if constexpr (kUnsigned) x = _mm256_xor_si256(x, _mm256_set1_epi8(char(0x80)));
    o->x = x;
    o->v = _mm256_abs_epi8(x);
    std::memcpy(&o->dw, row, 4);
    if constexpr (kUnsigned) std::memcpy(&o->mw, row + 4, 4);
  }
};

// Decode prefetch at block b (pf > 0): a run-time layout's group is one stream, prefetched pf bytes
// ahead once per unit; a file layout's rows each pf bytes ahead of their position b * block_bytes
// (exact for the 32-blocks, within a few bytes for the K-quant super-blocks), once per cache line
// (line: the last one).
template <class U, int R>
inline void prefetch_step(const uint8_t* const* rows, int64_t b, int64_t block_bytes, int64_t pf, int64_t& line) {
  if (pf <= 0) return;
  const int64_t off = b * block_bytes;
  if ((off >> 6) != line) {
    line = off >> 6;
    for (int i = 0; i < R; ++i) _mm_prefetch(reinterpret_cast<const char*>(rows[i] + off + pf), _MM_HINT_T0);
  }
}

// Block b of R rows (unpacked in k) x T tokens, accumulated per block: 8 lanes of partial sums,
// one conversion and scale per (row, token, block).
template <class U, int R, int T>
inline void block_step(const Blk* k, const int8_t* const* aq, const float* const* ad,
                       const int32_t* const* as, int64_t b, __m256 (&acc)[R][T], float (&macc)[R][T]) {
  constexpr Kind K = U::kKind;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int t = 0; t < T; ++t) {
    const __m256i av = loadu256(aq[t] + 32 * b);
    const float da = ad[t][b];
    __m256i corr;
    float das = 0.0f;
    if constexpr (K == Kind::kOffset) corr = _mm256_set1_epi32(-(U::kOff / 8) * as[t][b]);
    if constexpr (K == Kind::kMin || K == Kind::kSignMin) das = da * float(as[t][b]);
    if constexpr (K == Kind::kSignMin) corr = _mm256_set1_epi32(16 * as[t][b]);
    for (int i = 0; i < R; ++i) {
      __m256i p;
      if constexpr (K == Kind::kSign || K == Kind::kSignMin) {
        p = _mm256_maddubs_epi16(k[i].v, _mm256_sign_epi8(av, k[i].x));
      } else {
        p = _mm256_maddubs_epi16(k[i].v, av);
      }
      __m256i s = _mm256_madd_epi16(p, ones);
      if constexpr (K == Kind::kOffset || K == Kind::kSignMin) s = _mm256_add_epi32(s, corr);
      acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(k[i].dw * da), acc[i][t]);
      if constexpr (K == Kind::kMin || K == Kind::kSignMin) macc[i][t] += k[i].mw * das;
    }
  }
}

// Rows rows[0..R) (outputs r..r+R) x tokens [t0, t0 + T). pf > 0 (decode): prefetch_step.
template <class U, int R, int T>
void tile(const uint8_t* const* rows, const QActs& a, int64_t t0, float* y, int64_t ldy, int64_t r,
          size_t row_bytes = 0, int64_t pf = 0) {
  const int64_t nb = a.nb();
  __m256 acc[R][T];
  float macc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps(), macc[i][t] = 0.0f;
  const int8_t* aq[T];
  const float* ad[T];
  const int32_t* as[T];
  for (int t = 0; t < T; ++t) aq[t] = a.row_q(t0 + t), ad[t] = a.row_d(t0 + t), as[t] = a.row_s(t0 + t);
  const int64_t block_bytes = int64_t(row_bytes) / nb;
  int64_t line = -1;
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_step<U, R>(rows, b, block_bytes, pf, line);
    Blk k[R];
    for (int i = 0; i < R; ++i) U::run(rows[i], b, &k[i]);
    block_step<U, R, T>(k, aq, ad, as, b, acc, macc);
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) y[(t0 + t) * ldy + r + i] = hsum(acc[i][t]) + macc[i][t];
}

// Prefill tile, 4 blocks at a time: each
// (row, token) pair's 4 int32 block vectors are folded into one whose lanes j and j + 4 hold the
// two halves of block j's sum (two unpack/add rounds, no horizontal add), converted once and
// scaled by [dw_j * da_j] in lanes j and j + 4: one conversion, multiply and fma per 4 blocks
// instead of per block (with the tile shapes of kPR, 10-15% more GMAC/s than the per-block tile on
// Zen 3). Offsets enter in int32 in lanes 0..3, mins in float, 4 blocks per 128-bit fma. The last
// nb % 4 blocks take block_step.
template <class U, int R, int T>
void tile4(const uint8_t* const* rows, const QActs& a, int64_t t0, float* y, int64_t ldy, int64_t r) {
  constexpr Kind K = U::kKind;
  constexpr bool kSigned = K == Kind::kSign || K == Kind::kSignMin;
  constexpr bool kCorr = K == Kind::kOffset || K == Kind::kSignMin;
  constexpr bool kMins = K == Kind::kMin || K == Kind::kSignMin;
  // int32 correction per block: -offset * activation sum (kOffset), +128 * it (U8_ROW's flip)
  constexpr int32_t kCorrFactor = K == Kind::kSignMin ? 128 : -U::kOff;
  const int64_t nb = a.nb(), n4 = nb / 4 * 4;
  __m256 acc[R][T];
  __m128 macc4[R][T];
  float macc[R][T];
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) acc[i][t] = _mm256_setzero_ps(), macc4[i][t] = _mm_setzero_ps(), macc[i][t] = 0.0f;
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* aq[T];
  const float* ad[T];
  const int32_t* as[T];
  for (int t = 0; t < T; ++t) aq[t] = a.row_q(t0 + t), ad[t] = a.row_d(t0 + t), as[t] = a.row_s(t0 + t);
  for (int64_t b = 0; b < n4; b += 4) {
    __m256 da[T];
    __m256i corr[T];
    __m128 das[T];
    for (int t = 0; t < T; ++t) {
      const __m128 d4 = _mm_loadu_ps(ad[t] + b);
      da[t] = _mm256_set_m128(d4, d4);
      const __m128i s4 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(as[t] + b));
      if constexpr (kCorr)
        corr[t] = _mm256_inserti128_si256(_mm256_setzero_si256(), _mm_mullo_epi32(s4, _mm_set1_epi32(kCorrFactor)), 0);
      if constexpr (kMins) das[t] = _mm_mul_ps(d4, _mm_cvtepi32_ps(s4));
    }
    for (int i = 0; i < R; ++i) {
      Blk k[4];
      for (int j = 0; j < 4; ++j) U::run(rows[i], b + j, &k[j]);
      const __m128 dw4 = _mm_setr_ps(k[0].dw, k[1].dw, k[2].dw, k[3].dw);
      const __m256 dw = _mm256_set_m128(dw4, dw4);
      [[maybe_unused]] __m128 mw4;
      if constexpr (kMins) mw4 = _mm_setr_ps(k[0].mw, k[1].mw, k[2].mw, k[3].mw);
      for (int t = 0; t < T; ++t) {
        __m256i sb[4];
        for (int j = 0; j < 4; ++j) {
          const __m256i av = loadu256(aq[t] + 32 * (b + j));
          const __m256i p = kSigned ? _mm256_maddubs_epi16(k[j].v, _mm256_sign_epi8(av, k[j].x))
                                    : _mm256_maddubs_epi16(k[j].v, av);
          sb[j] = _mm256_madd_epi16(p, ones);
        }
        const __m256i u01 = _mm256_add_epi32(_mm256_unpacklo_epi32(sb[0], sb[1]), _mm256_unpackhi_epi32(sb[0], sb[1]));
        const __m256i u23 = _mm256_add_epi32(_mm256_unpacklo_epi32(sb[2], sb[3]), _mm256_unpackhi_epi32(sb[2], sb[3]));
        __m256i v = _mm256_add_epi32(_mm256_unpacklo_epi64(u01, u23), _mm256_unpackhi_epi64(u01, u23));
        if constexpr (kCorr) v = _mm256_add_epi32(v, corr[t]);
        acc[i][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(dw, da[t]), acc[i][t]);
        if constexpr (kMins) macc4[i][t] = _mm_fmadd_ps(mw4, das[t], macc4[i][t]);
      }
    }
  }
  for (int64_t b = n4; b < nb; ++b) {
    Blk k[R];
    for (int i = 0; i < R; ++i) U::run(rows[i], b, &k[i]);
    block_step<U, R, T>(k, aq, ad, as, b, acc, macc);
  }
  for (int i = 0; i < R; ++i)
    for (int t = 0; t < T; ++t) {
      __m128 m = macc4[i][t];
      m = _mm_add_ps(m, _mm_movehl_ps(m, m));
      m = _mm_add_ss(m, _mm_movehdup_ps(m));
      y[(t0 + t) * ldy + r + i] = hsum(acc[i][t]) + (_mm_cvtss_f32(m) + macc[i][t]);
    }
}

constexpr int kDR = 4;  // decode: rows in flight
// Prefill tile: rows x tokens. Measured on Zen 3 (bench/micro/qgemm_bench.cpp, 5632x2048, 128
// tokens, one thread): 8-bit (Q8_0 blocks, before X8) 36-37 GMAC/s with 2 rows against 33-34
// with 4; Q4_0 and Q4_K (tile4) 34-35 and 23 with 4 rows against 32 and 20 with 2; 4 x 3, 4 x 2,
// 2 x 6 and 8 x 1 were slower.
template <class U>
constexpr int kPR = (U::kKind == Kind::kSign || U::kKind == Kind::kSignMin) ? 2 : 4;
constexpr int kPT = 4;

// Rows (R of them) x all tokens, in tiles of TT tokens with a tail.
template <class U, int R, int TT>
void rows_all_tokens(const uint8_t* const* rows, const QActs& a, float* y, int64_t ldy, int64_t r,
                     size_t row_bytes) {
  int64_t t0 = 0;
  if constexpr (TT <= 2) {  // decode: each row streamed once
    const int64_t pf = decode_prefetch_distance(row_bytes, R);
    if (a.n_tok == 1) return tile<U, R, 1>(rows, a, 0, y, ldy, r, row_bytes, pf);
    if (a.n_tok == TT) return tile<U, R, TT>(rows, a, 0, y, ldy, r, row_bytes, pf);
  }
  for (; t0 + TT <= a.n_tok; t0 += TT) tile4<U, R, TT>(rows, a, t0, y, ldy, r);
  const int64_t rest = a.n_tok - t0;
  if constexpr (TT > 1) {
    if (rest == 1) tile4<U, R, 1>(rows, a, t0, y, ldy, r);
  }
  if constexpr (TT > 2) {
    if (rest == 2) tile4<U, R, 2>(rows, a, t0, y, ldy, r);
  }
  if constexpr (TT > 3) {
    if (rest == 3) tile4<U, R, 3>(rows, a, t0, y, ldy, r);
  }
  static_assert(TT <= 4);
}

template <class U, int R, int TT>
void gemm_tiled(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const uint8_t* base = static_cast<const uint8_t*>(w);
  int64_t r = r0;
  for (; r + R <= r1; r += R) {
    const uint8_t* rows[R];
    for (int i = 0; i < R; ++i) rows[i] = base + size_t(r + i) * row_bytes;
    rows_all_tokens<U, R, TT>(rows, a, y, ldy, r, row_bytes);
  }
  for (; r < r1; ++r) {
    const uint8_t* row = base + size_t(r) * row_bytes;
    rows_all_tokens<U, 1, TT>(&row, a, y, ldy, r, row_bytes);
  }
}

template <class U>
void gemm(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  if (a.n_tok <= 2) {
    gemm_tiled<U, kDR, 2>(w, row_bytes, a, y, ldy, r0, r1);
  } else {
    gemm_tiled<U, kPR<U>, kPT>(w, row_bytes, a, y, ldy, r0, r1);
  }
}

}  // namespace

GemmQ gemm_q_for(DType t) {
  switch (t) {
    case DType::Q8_0:  // Q8_0 / Q4_0 / Q4_1 in any layout but R8 (generic's here): the X8 kernels
    case DType::Q4_0:
    case DType::Q4_1:
    case DType::Q4_0_X8:
    case DType::Q4_1_X8:
    case DType::Q8_0_X8:
    case DType::Q6_K:
    case DType::Q6_K_X8:
    case DType::Q4_K:
    case DType::Q4_K_X8:
    case DType::Q5_K:
    case DType::Q5_K_X8:
    case DType::Q5_0:
    case DType::Q5_0_X8:
    case DType::Q5_1:
    case DType::Q5_1_X8: return gemm_x8_for(t);
    case DType::I8_ROW: return gemm<URow8<false>>;
    case DType::U8_ROW: return gemm<URow8<true>>;
    case DType::I4_G64: return gemm<UI4_G64>;
    case DType::I4_G128: return gemm<UI4_G128>;
    case DType::U4_G64: return gemm<UU4_G64>;
    case DType::U4_G128: return gemm<UU4_G128>;
    default: return nullptr;
  }
}

}  // namespace edgeglm::kernels::avx2
