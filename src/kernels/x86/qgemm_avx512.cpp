// AVX-512 VNNI integer kernels, decode path (few tokens): every weight row is streamed once per
// token with several rows in flight; per-block dot products in 32-bit lanes (vpdpbusd), scaled
// and summed in float lanes, reduced once per row. Also the activation quantizer.
//
// Q8_0, Q4_0 and Q4_1 take each block's fp16 scale (and min) from the loads of its quants and
// enter the offset (-128, -8) exactly in the int32 accumulator (vpgatherdd is microcoded on AMD
// Zen). The other formats, per group of 16 blocks: the 16 block scales are gathered at once and
// multiplied by the activation scales; the format's offset (-16) or min term is added once per
// group in float (scale * offset * activation block sum). Nibble formats use an activation copy laid out
// per pair of blocks [a0[0:16] a1[0:16] | a0[16:32] a1[16:32]], so 16 bytes of a block's packed
// nibbles, low and high, meet their activations without any byte shuffle.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/layout.h"
#include "kernels/x86/qgemm_avx512.h"
#include "quant/blocks.h"

namespace edgeglm::kernels::avx512 {

void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  // Same operations as quantize_acts_ref, in the same order per element (see qacts.h): max of |x|
  // ignoring NaN, 127 / amax, x * id clamped (NaN -> -127), round half to even.
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  const __m512 zero = _mm512_setzero_ps();
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (int64_t b = 0; b < n / kQActBlock; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
    // max(a, 0) returns the second operand for NaN a, so NaN never wins.
    const __m512 m0 = _mm512_max_ps(_mm512_and_ps(x0, abs_mask), zero);
    const __m512 m1 = _mm512_max_ps(_mm512_and_ps(x1, abs_mask), zero);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m512 vid = _mm512_set1_ps(id);
    // max(v, -127): NaN v gives -127 (second operand), as std::max(-127, v) in the reference.
    const __m512 v0 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x0, vid), lo), hi);
    const __m512 v1 = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(x1, vid), lo), hi);
    const __m512i i0 = _mm512_cvtps_epi32(v0), i1 = _mm512_cvtps_epi32(v1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b), _mm512_cvtepi32_epi8(i0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + 32 * b + 16), _mm512_cvtepi32_epi8(i1));
    d[b] = amax / 127.0f;
    s[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
  }
}

namespace {

using namespace edgeglm::quant;

// Activation data of one token prepared once per call (shared by all rows of the call).
struct Prep {
  const int8_t* q = nullptr;   // (nb*32) the quantized row
  const float* d = nullptr;    // (nb) block scales
  const float* c = nullptr;    // (nb) per-block factor of the offset/min term, see each format
  const int8_t* pair = nullptr;  // (ceil(nb/2)*64) nibble layout, see the file comment
  const float* d16 = nullptr;  // Q6_K: (2*nb) scale of each 16-element half block
  float csum = 0.0f;           // I8_ROW / U8_ROW: sum over the row of the offset / min factor
  int64_t nb = 0;
  int64_t pf = 0;              // software prefetch distance in bytes (decode_prefetch_distance)
  // Per-lane layouts of Q4_0 / Q4_1 (L = 4 int32 lanes per block) and Q8_0 (L = 8):
  const float* dl = nullptr;   // (nb*L) each block's activation scale in each of its lanes
  const int32_t* ol = nullptr; // (nb*L) -offset * its activation sum in its first lane, 0 elsewhere
  const float* cl = nullptr;   // Q4_1: (nb*4) activation scale * block sum in the first lane
};

struct alignas(64) Vec64 {
  int8_t b[64];
};

// Scratch per thread, grown on first use (never on later calls of the same shape).
struct Scratch {
  std::vector<float> f;
  std::vector<Vec64> pair;
  std::vector<uint8_t> row;  // a run-time layout's row in its file form
};
Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// Expands 16 per-block scales into 4x16 lanes, four lanes per block (the int32 lanes of a pair of
// nibble blocks / of a Q6_K block hold 4 lanes per block or half block).
inline void expand4(__m512 s, float* out) {
  const __m512i base = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
  for (int q = 0; q < 4; ++q)
    _mm512_store_ps(out + 16 * q, _mm512_permutexvar_ps(_mm512_add_epi32(base, _mm512_set1_epi32(4 * q)), s));
}

// Prefetches the `Bytes` bytes that start `dist` after p (one super-block of a K-quant row).
template <int Bytes>
inline void prefetch_ahead(const void* p, int64_t dist) {
  const char* c = static_cast<const char*>(p) + dist;
  for (int o = 0; o < Bytes; o += 64) _mm_prefetch(c + o, _MM_HINT_T0);
}

// ---------------- Q8_0 ----------------
// Weights flipped to unsigned by +128; the -128 * activation block sum enters exactly as the
// initial int32 value (Prep::o8). Two blocks per 512-bit vpdpbusd, lanes 0..7 block k and 8..15
// block k+1. Two 64-byte loads at the pair's start and 4 bytes on hold both blocks' quants (one
// word permute joins them) and both fp16 scales (a second permute spreads them to their lanes),
// so no scale gather is needed (vpgatherdd is microcoded on AMD Zen and was the kernel's cost).
// kRelaid: the R rows are a group of the Q8_0_R8 layout (kernels/layout.h) starting at w[0], so
// pair k/2 of row r is at w[0] + (k/2 * R + r) * 68 and the step reads one sequential stream.
template <int R, bool kRelaid = false>
void rows_q8_0(const uint8_t* const* w, const Prep& p, float* out) {
  constexpr int BS = sizeof(BlockQ8_0);
  static_assert(BS == 34);
  alignas(64) int16_t qx[32], sx[32];
  // words 1..16 of A (block k's quants), then block k+1's (bytes 36..67: words 16..31 of B = A + 4)
  for (int i = 0; i < 32; ++i) qx[i] = int16_t(i < 16 ? 1 + i : 32 + i);
  for (int i = 0; i < 32; ++i) sx[i] = int16_t(i < 16 ? (i < 8 ? 0 : 17) : 0);
  const __m512i qidx = _mm512_load_si512(qx), sidx = _mm512_load_si512(sx);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t n2 = p.nb / 2 * 2;
  for (int64_t k = 0; k < n2; k += 2) {
    const __m512i a = _mm512_loadu_si512(p.q + k * 32);
    const __m512i o = _mm512_loadu_si512(p.ol + 8 * k);
    const __m512 da = _mm512_loadu_ps(p.dl + 8 * k);
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = kRelaid ? w[0] + (k * R + 2 * r) * BS : w[r] + k * BS;
      _mm_prefetch(reinterpret_cast<const char*>(blk + p.pf), _MM_HINT_T0);
      const __m512i lo = _mm512_loadu_si512(blk), hi = _mm512_loadu_si512(blk + 4);
      const __m512i x = _mm512_xor_si512(_mm512_permutex2var_epi16(lo, qidx, hi), flip);
      const __m512 sw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(sidx, lo)));
      const __m512i d = _mm512_dpbusd_epi32(o, x, a);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw, da), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
  if (!kRelaid && n2 < p.nb) {  // last, odd block of the row (Q8_0_R8 rows have an even count)
    const int64_t k = n2;
    const __m256i a = loadu256(p.q + 32 * k);
    for (int r = 0; r < R; ++r) {
      const BlockQ8_0* blk = reinterpret_cast<const BlockQ8_0*>(w[r]) + k;
      const __m256i x = _mm256_xor_si256(loadu256(blk->qs), _mm256_set1_epi8(char(0x80)));
      const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, a);
      out[r] += float(hsum_epi32(d) + p.ol[8 * k]) * _cvtsh_ss(blk->d) * p.d[k];
    }
  }
}

// ---------------- Q5_0 / Q5_1 (and Q4_0 / Q4_1 below) ----------------
// g: 16 gathered 32-bit words, each a block's fp16 scale (low half) and, with kMin, its fp16
// min (high half). Writes the 16 scales times the activation scales da, spread 4 lanes per block,
// to sc, and adds the offset (scale * cf) or min (min * cf) term to acc.
template <bool kMin>
inline void group_scales(__m512i g, __m512 da, __m512 cf, float* sc, __m512& acc) {
  const __m512 s = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(g)), da);
  expand4(s, sc);
  if constexpr (kMin) {
    const __m512 mn = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g, 16)));
    acc = _mm512_fmadd_ps(mn, cf, acc);
  } else {
    acc = _mm512_fmadd_ps(s, cf, acc);
  }
}
// kMin: c[b] = d[b] * s[b] (times the block's m); otherwise c[b] = -offset * s[b] (times scale).
template <int BS, int QS, int QH, bool kMin>
struct Nibble {
  // The 32 unsigned values of blocks i (bytes 0..15 low nibbles, 16..31 of block i+1) and
  // high nibbles, plus the fifth bits when QH >= 0; `two` false: block i only.
  static inline void load(const uint8_t* blk, bool two, __m256i* lo, __m256i* hi) {
    const __m256i x = two ? load2x128(blk + QS, blk + BS + QS) : _mm256_castsi128_si256(loadu128(blk + QS));
    *lo = lo_nib(x);
    *hi = hi_nib(x);
    if constexpr (QH >= 0) {
      uint32_t ha, hb = 0;
      std::memcpy(&ha, blk + QH, 4);
      if (two) std::memcpy(&hb, blk + BS + QH, 4);
      const __mmask32 kl = (ha & 0xFFFFu) | (hb << 16), kh = (ha >> 16) | (hb & 0xFFFF0000u);
      const __m256i b4 = _mm256_set1_epi8(0x10);
      *lo = _mm256_mask_add_epi8(*lo, kl, *lo, b4);
      *hi = _mm256_mask_add_epi8(*hi, kh, *hi, b4);
    }
  }
  template <int R>
  static void rows(const uint8_t* const* w, const Prep& p, float* out) {
    const __m512i idx = lane_offsets(BS);
    __m256 acc[R];
    __m512 acc4[R];  // the offset/min terms
    alignas(64) float sc[R][64];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), acc4[r] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < p.nb; b0 += 16) {
      const int m = int(std::min<int64_t>(16, p.nb - b0));
      const __mmask16 mk = first_lanes(m);
      const __m512 da = _mm512_maskz_loadu_ps(mk, p.d + b0), cf = _mm512_maskz_loadu_ps(mk, p.c + b0);
      for (int r = 0; r < R; ++r) {
        group_scales<kMin>(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, idx, w[r] + b0 * BS, 1),
                           da, cf, sc[r], acc4[r]);
      }
      const int8_t* ap = p.pair + b0 * 32;  // 64 bytes per pair of blocks
      int k = 0;
      for (; k + 2 <= m; k += 2) {
        const __m256i alo = loadu256((ap + k * 32));
        const __m256i ahi = loadu256((ap + k * 32 + 32));
        for (int r = 0; r < R; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(w[r] + (b0 + k) * BS + p.pf), _MM_HINT_T0);
          __m256i lo, hi;
          load(w[r] + (b0 + k) * BS, true, &lo, &hi);
          const __m256i d = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, alo), hi, ahi);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(sc[r] + 4 * k), acc[r]);
        }
      }
      if (k < m) {  // last, odd block of the row
        const __m256i alo = loadu256((ap + k * 32));
        const __m256i ahi = loadu256((ap + k * 32 + 32));
        for (int r = 0; r < R; ++r) {
          __m256i lo, hi;
          load(w[r] + (b0 + k) * BS, false, &lo, &hi);
          const __m256i d = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, alo), hi, ahi);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(sc[r] + 4 * k), acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) + _mm512_reduce_add_ps(acc4[r]);
  }
};
using NibQ5_0 = Nibble<sizeof(BlockQ5_0), 6, 2, false>;
using NibQ5_1 = Nibble<sizeof(BlockQ5_1), 8, 4, true>;

// Q4_0 and Q4_1 without the per-16-block scale gather (microcoded on AMD Zen, and the kernel's
// main cost there): a four-block step's two 64-byte loads already hold the four fp16 scales (and
// Q4_1's mins), which word permutes spread to the lanes of their blocks. Q4_0's -8 offset enters
// exactly as the initial value of the int32 accumulator (Prep::o4); Q4_1's min term is
// min * activation scale * activation block sum (Prep::c4, in the first lane of each block).
// Blocks after the last multiple of four (1..3) are done one at a time against the plain row.
// The packed nibbles of 4 blocks (16 bytes each, QS bytes into a block of BS) gathered into one
// vector by one word permute of two loads: A = bytes 0..63, B = bytes 4*BS-64..4*BS-1.
template <int BS, int QS>
inline __m512i four_block_idx() {
  alignas(64) int16_t ix[32];
  for (int i = 0; i < 32; ++i) {
    const int j = i / 8, off = j * BS + QS + 2 * (i % 8);
    ix[i] = int16_t(j < 3 ? off / 2 : 32 + (off - (4 * BS - 64)) / 2);
  }
  return _mm512_load_si512(ix);
}

// kRelaid: the R rows are a group of Q4_0_R8 / Q4_1_R8 (kernels/layout.h) at w[0], 4 blocks of
// each row in turn, read as one sequential stream.
template <bool kMin, int R, bool kRelaid = false>
void rows_q4_lanes(const uint8_t* const* w, const Prep& p, float* out) {
  using Block = std::conditional_t<kMin, BlockQ4_1, BlockQ4_0>;
  constexpr int BS = sizeof(Block);
  constexpr int kWords = BS / 2;  // a block's length in 16-bit words
  const __m512i fidx = four_block_idx<BS, offsetof(Block, qs)>();
  alignas(64) int16_t sx[32];
  for (int i = 0; i < 32; ++i) sx[i] = int16_t(i < 16 ? kWords * (i / 4) : kWords * ((i - 16) / 4) + 1);
  const __m512i sidx = _mm512_load_si512(sx);  // words 0..15: scales, 16..31: mins (Q4_1)
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  const int64_t n4 = p.nb / 4 * 4;
  for (int64_t k = 0; k < n4; k += 4) {
    const __m512i p0 = _mm512_loadu_si512(p.pair + k * 32), p1 = _mm512_loadu_si512(p.pair + k * 32 + 64);
    const __m512i alo = _mm512_shuffle_i64x2(p0, p1, 0x44), ahi = _mm512_shuffle_i64x2(p0, p1, 0xEE);
    const __m512i o = _mm512_loadu_si512(p.ol + 4 * k);
    const __m512 da = _mm512_loadu_ps(p.dl + 4 * k);
    [[maybe_unused]] __m512 ca;
    if constexpr (kMin) ca = _mm512_loadu_ps(p.cl + 4 * k);
    for (int r = 0; r < R; ++r) {
      const uint8_t* blk = kRelaid ? w[0] + (k * R + 4 * r) * BS : w[r] + k * BS;
      _mm_prefetch(reinterpret_cast<const char*>(blk + p.pf), _MM_HINT_T0);
      if constexpr (BS > 18) _mm_prefetch(reinterpret_cast<const char*>(blk + p.pf + 64), _MM_HINT_T0);
      const __m512i a = _mm512_loadu_si512(blk), b = _mm512_loadu_si512(blk + 4 * BS - 64);
      const __m512i x = _mm512_permutex2var_epi16(a, fidx, b);
      const __m512i sm = _mm512_permutexvar_epi16(sidx, a);
      const __m512 sw = _mm512_cvtph_ps(_mm512_castsi512_si256(sm));
      const __m512i lo = _mm512_and_si512(x, m4), hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
      const __m512i d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(o, lo, alo), hi, ahi);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_mul_ps(sw, da), acc[r]);
      if constexpr (kMin) acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm512_extracti64x4_epi64(sm, 1)), ca, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
  for (int64_t k = n4; !kRelaid && k < p.nb; ++k) {  // (relaid rows have whole units of 4 blocks)
    const __m256i a = loadu256(p.q + 32 * k);
    for (int r = 0; r < R; ++r) {
      const Block* blk = reinterpret_cast<const Block*>(w[r]) + k;
      const __m128i x = loadu128(blk->qs);
      const __m128i m = _mm_set1_epi8(0x0F);
      const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(x, m)),
                                                _mm_and_si128(_mm_srli_epi16(x, 4), m), 1);
      const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), v, a);
      out[r] += float(hsum_epi32(d) + p.ol[4 * k]) * _cvtsh_ss(blk->d) * p.d[k];
      if constexpr (kMin) out[r] += _cvtsh_ss(blk->m) * p.cl[4 * k];
    }
  }
}

// ---------------- I4_G64/128, U4_G64/128 ----------------
// Groups of kSub sub-blocks of 32 sharing one fp16 scale (and min); c[b] as for Q4_0 / Q4_1. The
// sub-blocks of a group are contiguous 16-byte runs of packed nibbles, so two of them (the pair
// layout of the activations) are one 32-byte load and four (G64: two groups, G128: one) one
// 64-byte load, with no word permute. Scales are gathered once per 16 sub-blocks, each group's
// for each of its sub-blocks (they meet different activation scales).
template <class Block, bool kMin, int kSub>
struct NibbleGroup {
  static constexpr int BS = sizeof(Block);
  static constexpr int QS = kMin ? 4 : 2;
  static constexpr int kShift = kSub == 2 ? 1 : 2;
  static_assert(kSub == 2 || kSub == 4);
  static inline const uint8_t* qs(const uint8_t* row, int64_t k) {
    return row + (k / kSub) * BS + QS + 16 * (k % kSub);
  }
  static inline __m512i four(const uint8_t* row, int64_t k) {  // sub-blocks k..k+3, k % 4 == 0
    if constexpr (kSub == 4) {
      return _mm512_loadu_si512(qs(row, k));
    } else {
      return _mm512_inserti64x4(_mm512_castsi256_si512(loadu256(qs(row, k))), loadu256(qs(row, k + 2)), 1);
    }
  }
  template <int R>
  static void rows(const uint8_t* const* w, const Prep& p, float* out) {
    const __m512i idx = _mm512_mullo_epi32(
        _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), kShift),
        _mm512_set1_epi32(BS));
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m256i m4h = _mm256_set1_epi8(0x0F);
    __m512 acc4[R];  // dot products and the offset/min terms
    alignas(64) float sc[R][64];
    for (int r = 0; r < R; ++r) acc4[r] = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < p.nb; b0 += 16) {
      const int m = int(std::min<int64_t>(16, p.nb - b0));  // even: nb is a multiple of kSub
      const __mmask16 mk = first_lanes(m);
      const __m512 da = _mm512_maskz_loadu_ps(mk, p.d + b0), cf = _mm512_maskz_loadu_ps(mk, p.c + b0);
      for (int r = 0; r < R; ++r) {
        group_scales<kMin>(
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mk, idx, w[r] + (b0 / kSub) * BS, 1), da, cf,
            sc[r], acc4[r]);
      }
      const int8_t* ap = p.pair + b0 * 32;  // 64 bytes per pair of sub-blocks
      int k = 0;
      for (; k + 4 <= m; k += 4) {
        const __m512i p0 = _mm512_loadu_si512(ap + k * 32), p1 = _mm512_loadu_si512(ap + k * 32 + 64);
        const __m512i alo = _mm512_shuffle_i64x2(p0, p1, 0x44), ahi = _mm512_shuffle_i64x2(p0, p1, 0xEE);
        for (int r = 0; r < R; ++r) {
          _mm_prefetch(reinterpret_cast<const char*>(qs(w[r], b0 + k) + p.pf), _MM_HINT_T0);
          const __m512i x = four(w[r], b0 + k);
          const __m512i lo = _mm512_and_si512(x, m4), hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
          const __m512i d = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, alo), hi, ahi);
          acc4[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_load_ps(sc[r] + 4 * k), acc4[r]);
        }
      }
      if (k < m) {  // two sub-blocks left (G64: one group)
        const __m256i alo = loadu256(ap + k * 32), ahi = loadu256(ap + k * 32 + 32);
        for (int r = 0; r < R; ++r) {
          const __m256i x = loadu256(qs(w[r], b0 + k));
          const __m256i lo = _mm256_and_si256(x, m4h), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4h);
          const __m256i d = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, alo), hi, ahi);
          const __m512 dv = _mm512_zextps256_ps512(_mm256_cvtepi32_ps(d));
          acc4[r] = _mm512_fmadd_ps(dv, _mm512_zextps256_ps512(_mm256_load_ps(sc[r] + 4 * k)), acc4[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) out[r] = _mm512_reduce_add_ps(acc4[r]);
  }
};
using NibI4_G64 = NibbleGroup<BlockI4_G64, false, 2>;
using NibI4_G128 = NibbleGroup<BlockI4_G128, false, 4>;
using NibU4_G64 = NibbleGroup<BlockU4_G64, true, 2>;
using NibU4_G128 = NibbleGroup<BlockU4_G128, true, 4>;

// ---------------- I8_ROW / U8_ROW ----------------
// One float scale (and min) per row, applied once at the end. Two blocks per 512-bit vpdpbusd
// straight from the row (64 contiguous bytes, I8 flipped to unsigned by +128, U8 as stored),
// times the pair's activation scales, which all rows share. The offset (I8: -128 * da * s) and
// min (U8: da * s) terms do not depend on the row: their sum over the row is Prep::csum.
template <bool kUnsigned, int R>
void rows_8bit_row(const uint8_t* const* w, const Prep& p, float* out) {
  constexpr int H = kUnsigned ? sizeof(RowU8Header) : sizeof(RowI8Header);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  const __m512i pair0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const __m512i two = _mm512_set1_epi32(2);
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b0 = 0; b0 < p.nb; b0 += 16) {
    const int m = int(std::min<int64_t>(16, p.nb - b0));
    const __m512 da = _mm512_maskz_loadu_ps(first_lanes(m), p.d + b0);
    __m512i sel = pair0;
    int k = 0;
    for (; k + 2 <= m; k += 2, sel = _mm512_add_epi32(sel, two)) {
      const __m512i a = _mm512_loadu_si512(p.q + (b0 + k) * 32);
      const __m512 dav = _mm512_permutexvar_ps(sel, da);
      for (int r = 0; r < R; ++r) {
        const uint8_t* blk = w[r] + H + (b0 + k) * 32;
        _mm_prefetch(reinterpret_cast<const char*>(blk + p.pf), _MM_HINT_T0);
        __m512i x = _mm512_loadu_si512(blk);
        if constexpr (!kUnsigned) x = _mm512_xor_si512(x, flip);
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x, a);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), dav, acc[r]);
      }
    }
    if (k < m) {  // last, odd block of the row: upper lanes stay zero
      const __m512i a = _mm512_zextsi256_si512(loadu256(p.q + (b0 + k) * 32));
      const __m512 dav = _mm512_permutexvar_ps(sel, da);
      for (int r = 0; r < R; ++r) {
        __m256i x = loadu256(w[r] + H + (b0 + k) * 32);
        if constexpr (!kUnsigned) x = _mm256_xor_si256(x, _mm512_castsi512_si256(flip));
        const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(x), a);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), dav, acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float dw, mw = 0.0f;
    std::memcpy(&dw, w[r], 4);
    if constexpr (kUnsigned) std::memcpy(&mw, w[r] + 4, 4);
    const float sum = _mm512_reduce_add_ps(acc[r]);
    out[r] = kUnsigned ? dw * sum + mw * p.csum : dw * (sum + p.csum);
  }
}

// ---------------- Q4_K / Q5_K ----------------
// c[b] = d[b] * s[b]; the mins are subtracted as dmin * mn * c.
inline void scales_k4(const uint8_t* sb, __m256* sc, __m256* mn) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, sb, 4);
  std::memcpy(&u1, sb + 4, 4);
  std::memcpy(&u2, sb + 8, 4);
  const uint32_t sc_lo = u0 & 0x3F3F3F3Fu, mn_lo = u1 & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (u2 & 0x0F0F0F0Fu) | ((u0 >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((u2 >> 4) & 0x0F0F0F0Fu) | ((u1 >> 2) & 0x30303030u);
  *sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(sc_lo | uint64_t(sc_hi) << 32))));
  *mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(mn_lo | uint64_t(mn_hi) << 32))));
}

template <bool kFive>
struct KQuant45 {
  using Block = std::conditional_t<kFive, BlockQ5_K, BlockQ4_K>;
  template <int R>
  static void rows(const uint8_t* const* w, const Prep& p, float* out) {
    __m256 acc[R], cacc[R];
    alignas(32) float sc[R][8];
    for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), cacc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < p.nb / 8; ++i) {
      const __m256 da = _mm256_loadu_ps(p.d + 8 * i), cf = _mm256_loadu_ps(p.c + 8 * i);
      for (int r = 0; r < R; ++r) {
        const Block* b = reinterpret_cast<const Block*>(w[r]) + i;
        prefetch_ahead<sizeof(Block)>(b, p.pf);
        __m256 s, mn;
        scales_k4(b->scales, &s, &mn);
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(b->d)), dmin = _mm256_set1_ps(_cvtsh_ss(b->dmin));
        _mm256_store_ps(sc[r], _mm256_mul_ps(_mm256_mul_ps(s, d), da));
        cacc[r] = _mm256_fmadd_ps(_mm256_mul_ps(mn, dmin), cf, cacc[r]);
      }
      const int8_t* aq = p.q + 256 * i;
      for (int c = 0; c < 4; ++c) {
        const __m256i a0 = loadu256((aq + 64 * c));
        const __m256i a1 = loadu256((aq + 64 * c + 32));
        for (int r = 0; r < R; ++r) {
          const Block* b = reinterpret_cast<const Block*>(w[r]) + i;
          const __m256i x = loadu256(b->qs + 32 * c);
          __m256i lo = lo_nib(x), hi = hi_nib(x);
          if constexpr (kFive) {
            const __m256i qh = loadu256(b->qh);
            const __m256i b4 = _mm256_set1_epi8(0x10);
            lo = _mm256_mask_add_epi8(lo, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(1 << (2 * c)))), lo, b4);
            hi = _mm256_mask_add_epi8(hi, _mm256_test_epi8_mask(qh, _mm256_set1_epi8(char(2 << (2 * c)))), hi, b4);
          }
          const __m256i d0 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, a0);
          const __m256i d1 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, a1);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d0), _mm256_set1_ps(sc[r][2 * c]), acc[r]);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d1), _mm256_set1_ps(sc[r][2 * c + 1]), acc[r]);
        }
      }
    }
    for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) - hsum(cacc[r]);
  }
};

// ---------------- Q6_K ----------------
// c[h] = -32 * (sum of the 16 activations of half block h); d16[h] = d[h / 2].
template <int R>
void rows_q6_k(const uint8_t* const* w, const Prep& p, float* out) {
  __m256 acc[R];
  __m512 cacc[R];
  alignas(64) float sc[R][64];
  for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps(), cacc[r] = _mm512_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x30);
  for (int64_t i = 0; i < p.nb / 8; ++i) {
    const __m512 da = _mm512_loadu_ps(p.d16 + 16 * i), cf = _mm512_loadu_ps(p.c + 16 * i);
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w[r]) + i;
      prefetch_ahead<sizeof(BlockQ6_K)>(b, p.pf);
      const __m512 s8 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(loadu128(b->scales)));
      const __m512 s = _mm512_mul_ps(_mm512_mul_ps(s8, _mm512_set1_ps(_cvtsh_ss(b->d))), da);
      expand4(s, sc[r]);
      cacc[r] = _mm512_fmadd_ps(s, cf, cacc[r]);
    }
    const int8_t* aq = p.q + 256 * i;
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < R; ++r) {
        const BlockQ6_K* b = reinterpret_cast<const BlockQ6_K*>(w[r]) + i;
        const __m256i l0 = loadu256(b->ql + 64 * h), l1 = loadu256(b->ql + 64 * h + 32);
        const __m256i qh = loadu256(b->qh + 32 * h);
        __m256i v[4];
        v[0] = _mm256_or_si256(lo_nib(l0), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m4));
        v[1] = _mm256_or_si256(lo_nib(l1), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m4));
        v[2] = _mm256_or_si256(hi_nib(l0), _mm256_and_si256(qh, m4));
        v[3] = _mm256_or_si256(hi_nib(l1), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m4));
        for (int g = 0; g < 4; ++g) {
          const int j = 4 * h + g;
          const __m256i a = loadu256((aq + 32 * j));
          const __m256i d = _mm256_dpbusd_epi32(_mm256_setzero_si256(), v[g], a);
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_load_ps(sc[r] + 8 * j), acc[r]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]) + _mm512_reduce_add_ps(cacc[r]);
}

// ---------------- driver ----------------
using RowsFn = void (*)(const uint8_t* const*, const Prep&, float*);

// Rows in flight per call of a kernel (more rows: more independent streams for the memory system,
// measured per format family).
#ifndef EG_ROWS_Q8
#define EG_ROWS_Q8 6
#endif
#ifndef EG_ROWS_NIB
#define EG_ROWS_NIB 6
#endif
constexpr int kRowsInFlight = 4;
constexpr int kRowsQ8 = EG_ROWS_Q8;
constexpr int kRowsNib = EG_ROWS_NIB;
constexpr int kMaxRows = 16;
static_assert(kRowsQ8 <= kMaxRows && kRowsNib <= kMaxRows);

struct Kernel {
  RowsFn many;  // `rows` rows
  RowsFn one;
  enum Kind { kOffset, kMin, kMinK, kQ6K, kRowOffset, kRowMin, kNone } kind;
  float offset;  // kOffset: the weight offset
  bool pairs;    // needs the nibble pair layout
  int rows = kRowsInFlight;
  int lanes = 0;  // int32 lanes per block of the per-lane Prep layouts (Q4_x: 4, Q8_0: 8), 0: none
};

Kernel kernel_for(DType t) {
  switch (t) {
    case DType::Q8_0: return {rows_q8_0<kRowsQ8>, rows_q8_0<1>, Kernel::kOffset, 128.0f, false, kRowsQ8, 8};
    case DType::Q8_0_R8:  // `one` serves rows outside whole groups, copied back to their file form
      return {rows_q8_0<kQ8R8Rows, true>, rows_q8_0<1>, Kernel::kOffset, 128.0f, false, kQ8R8Rows, 8};
    case DType::Q4_0: return {rows_q4_lanes<false, kRowsNib>, rows_q4_lanes<false, 1>, Kernel::kOffset, 8.0f, true, kRowsNib, 4};
    case DType::Q5_0: return {NibQ5_0::rows<kRowsNib>, NibQ5_0::rows<1>, Kernel::kOffset, 16.0f, true, kRowsNib};
    case DType::Q4_1: return {rows_q4_lanes<true, kRowsNib>, rows_q4_lanes<true, 1>, Kernel::kMin, 0.0f, true, kRowsNib, 4};
    case DType::Q4_0_R8:
      return {rows_q4_lanes<false, kQ4R8Rows, true>, rows_q4_lanes<false, 1>, Kernel::kOffset, 8.0f, true, kQ4R8Rows, 4};
    case DType::Q4_1_R8:
      return {rows_q4_lanes<true, kQ4R8Rows, true>, rows_q4_lanes<true, 1>, Kernel::kMin, 0.0f, true, kQ4R8Rows, 4};
    case DType::Q5_1: return {NibQ5_1::rows<kRowsNib>, NibQ5_1::rows<1>, Kernel::kMin, 0.0f, true, kRowsNib};
    case DType::Q4_K:
      return {KQuant45<false>::rows<kRowsInFlight>, KQuant45<false>::rows<1>, Kernel::kMinK, 0.0f, false};
    case DType::Q5_K:
      return {KQuant45<true>::rows<kRowsInFlight>, KQuant45<true>::rows<1>, Kernel::kMinK, 0.0f, false};
    case DType::Q6_K: return {rows_q6_k<kRowsInFlight>, rows_q6_k<1>, Kernel::kQ6K, 0.0f, false};
    case DType::I8_ROW:
      return {rows_8bit_row<false, kRowsQ8>, rows_8bit_row<false, 1>, Kernel::kRowOffset, 128.0f, false, kRowsQ8};
    case DType::U8_ROW:
      return {rows_8bit_row<true, kRowsQ8>, rows_8bit_row<true, 1>, Kernel::kRowMin, 0.0f, false, kRowsQ8};
    case DType::I4_G64: return {NibI4_G64::rows<kRowsNib>, NibI4_G64::rows<1>, Kernel::kOffset, 8.0f, true, kRowsNib};
    case DType::I4_G128:
      return {NibI4_G128::rows<kRowsNib>, NibI4_G128::rows<1>, Kernel::kOffset, 8.0f, true, kRowsNib};
    case DType::U4_G64: return {NibU4_G64::rows<kRowsNib>, NibU4_G64::rows<1>, Kernel::kMin, 0.0f, true, kRowsNib};
    case DType::U4_G128:
      return {NibU4_G128::rows<kRowsNib>, NibU4_G128::rows<1>, Kernel::kMin, 0.0f, true, kRowsNib};
    default: return {nullptr, nullptr, Kernel::kNone, 0.0f, false};
  }
}

// Activation data of token t into the thread's scratch.
Prep prepare(const Kernel& k, const QActs& a, int64_t t, float* f, Vec64* pair) {
  const int64_t nb = a.nb();
  Prep p;
  p.q = a.row_q(t);
  p.d = a.row_d(t);
  p.nb = nb;
  const int32_t* s = a.row_s(t);
  if (k.kind == Kernel::kOffset) {
    for (int64_t b = 0; b < nb; ++b) f[b] = -k.offset * float(s[b]);
  } else if (k.kind == Kernel::kMin || k.kind == Kernel::kMinK) {
    for (int64_t b = 0; b < nb; ++b) f[b] = p.d[b] * float(s[b]);
  } else if (k.kind == Kernel::kRowOffset || k.kind == Kernel::kRowMin) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; ++b) sum += p.d[b] * float(s[b]);
    p.csum = k.kind == Kernel::kRowOffset ? -k.offset * sum : sum;
  } else if (k.kind == Kernel::kQ6K) {
    float* d16 = f + 2 * nb;
    for (int64_t h = 0; h < 2 * nb; ++h) {
      int32_t sum = 0;
      for (int j = 0; j < 16; ++j) sum += p.q[16 * h + j];
      f[h] = -32.0f * float(sum);
      d16[h] = p.d[h / 2];
    }
    p.d16 = d16;
  }
  p.c = f;
  if (k.lanes > 0) {
    float* dl = f + 4 * nb;
    int32_t* ol = reinterpret_cast<int32_t*>(f + 12 * nb);
    for (int64_t b = 0; b < nb; ++b)
      for (int j = 0; j < k.lanes; ++j) {
        dl[k.lanes * b + j] = p.d[b];
        ol[k.lanes * b + j] = j == 0 ? int32_t(-k.offset) * s[b] : 0;
      }
    p.dl = dl;
    p.ol = ol;
    if (k.kind == Kernel::kMin) {  // Q4_1: the min factor d * s in the first lane of each block
      float* cl = f + 20 * nb;
      for (int64_t b = 0; b < nb; ++b)
        for (int j = 0; j < 4; ++j) cl[4 * b + j] = j == 0 ? p.d[b] * float(s[b]) : 0.0f;
      p.cl = cl;
    }
  }
  if (k.pairs) {
    for (int64_t b = 0; b < nb; b += 2) {
      const __m256i a0 = loadu256(p.q + 32 * b);
      const __m256i a1 = b + 1 < nb ? loadu256(p.q + 32 * b + 32) : _mm256_setzero_si256();
      const __m256i lo = _mm256_permute2x128_si256(a0, a1, 0x20), hi = _mm256_permute2x128_si256(a0, a1, 0x31);
      _mm512_store_si512(pair[b / 2].b, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
    }
    p.pair = reinterpret_cast<const int8_t*>(pair);
  }
  return p;
}

}  // namespace

void decode_gemm(DType t, const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy,
                 int64_t r0, int64_t r1) {
  const Kernel k = kernel_for(t);
  const int64_t nb = a.nb();
  Scratch& s = scratch();
  const size_t nf = size_t(24 * nb + 16), np = size_t((nb + 1) / 2);  // f: c, d16, dl, ol, cl
  if (s.f.size() < nf * size_t(a.n_tok)) s.f.resize(nf * size_t(a.n_tok));
  if (k.pairs && s.pair.size() < np * size_t(a.n_tok)) s.pair.resize(np * size_t(a.n_tok));
  const bool relaid = is_runtime_layout(t);
  Prep preps[8];
  const int64_t n_tok = a.n_tok;
  for (int64_t t0 = 0; t0 < n_tok; t0 += 8) {
    const int64_t nt = std::min<int64_t>(8, n_tok - t0);
    for (int64_t t = 0; t < nt; ++t) {
      preps[t] = prepare(k, a, t0 + t, s.f.data() + size_t(t) * nf, s.pair.data() + size_t(t) * np);
      preps[t].pf = relaid ? kPrefetchSequential : decode_prefetch_distance(row_bytes, k.rows);
    }
    const uint8_t* base = static_cast<const uint8_t*>(w);
    const int nr = k.rows;
    // Rows of a run-time layout outside its whole groups of nr, one by one in their file form.
    auto singles = [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r) {
        const uint8_t* row = file_form_row(t, w, row_bytes, r, s.row);
        for (int64_t tt = 0; tt < nt; ++tt) k.one(&row, preps[tt], &y[(t0 + tt) * ldy + r]);
      }
    };
    int64_t r = r0, end = r1;
    if (relaid) {
      const GroupSpan g = whole_groups(r0, r1, nr);
      r = g.begin;
      end = g.end;
      singles(r0, r);
    }
    for (; r + nr <= end; r += nr) {
      const uint8_t* rows[kMaxRows];
      for (int i = 0; i < nr; ++i) rows[i] = base + size_t(r + i) * row_bytes;
      for (int64_t tt = 0; tt < nt; ++tt) {
        float out[kMaxRows];
        k.many(rows, preps[tt], out);
        for (int i = 0; i < nr; ++i) y[(t0 + tt) * ldy + r + i] = out[i];
      }
    }
    if (relaid) {
      singles(r, r1);
      continue;
    }
    for (; r < r1; ++r) {
      const uint8_t* row = base + size_t(r) * row_bytes;
      for (int64_t tt = 0; tt < nt; ++tt) k.one(&row, preps[tt], &y[(t0 + tt) * ldy + r]);
    }
  }
}

}  // namespace edgeglm::kernels::avx512
