// Integer-activation kernels for AArch64 (int8 activations of qacts.h against every integer weight
// format), compiled once per ARM ISA: arm/qgemm_neon.cpp (ARMv8.0, widening multiplies) and
// arm/qgemm_dotprod.cpp (ARMv8.2 SDOT) include this file with EG_KERNEL_NS set to their namespace,
// after defining the three integer dot products it is built on:
//   int32x4_t dot32(w0, w1, a0, a1)        32 int8 products, any int8 weights
//   int32x4_t dot32_small(w0, w1, a0, a1)  the same for |w| <= 32 (a NEON int16 lane can add four)
//   int32x4_t dot16(w, a)                  16 int8 products
// Each returns four int32 lanes whose sum is the exact dot product, so every kernel here computes
// the same integer partial sums as its scalar twin (generic/qgemm_generic.cpp) and differs from it
// only in the order floats are added.
//
// Tiling: rows are taken four at a time (the last group repeats the last row, unstored), tokens two
// at a time. Each weight sub-block (32 values) is unpacked to int8 once per tile and used for every
// token of the tile; the per-row mins (Q4_1, Q5_1, Q4_K, Q5_K, U4_G) are kept in one vector per
// token with the four rows as lanes. Per-row formats (I8_ROW, U8_ROW) skip a header and apply the
// row's scale once at the end. Tokens are walked in chunks whose int8 activations stay in cache
// while the rows of the range go past. Decode (one token) streams the rows four at a time.
// Not a public header: include only from an ARM ISA translation unit.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/isa.h"
#include "kernels/qacts.h"
#include "quant/blocks.h"

#ifndef EG_KERNEL_NS
#error "define EG_KERNEL_NS before including arm/qgemm_arm_impl.h"
#endif

namespace edgeglm::kernels::EG_KERNEL_NS {
namespace {

using namespace edgeglm::quant;

// Half-precision scale fields; the AArch64 conversion is exact (as fp16_to_f32 is).
inline float half(uint16_t h) {
  __fp16 v;
  std::memcpy(&v, &h, 2);
  return float(v);
}

inline int8x16_t s8(uint8x16_t v) { return vreinterpretq_s8_u8(v); }

// Bit 4 of the 32 elements of a Q5_0/Q5_1 block (bit e of qh is element e), as 0 or 16.
inline void high_bits_32(const uint8_t* qh_bytes, uint8x16_t& h0, uint8x16_t& h1) {
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bit = vld1q_u8(kBit);
  const uint8x16_t b01 = vcombine_u8(vdup_n_u8(qh_bytes[0]), vdup_n_u8(qh_bytes[1]));
  const uint8x16_t b23 = vcombine_u8(vdup_n_u8(qh_bytes[2]), vdup_n_u8(qh_bytes[3]));
  h0 = vandq_u8(vtstq_u8(b01, bit), vdupq_n_u8(0x10));
  h1 = vandq_u8(vtstq_u8(b23, bit), vdupq_n_u8(0x10));
}

// Format policies. For block b and its sub-block j (32 weights, activation block kSub*i + j):
//   scales(b, dsc, mn): float factor of sub-block j's integer dot (times the activation scale),
//                       and of its activation sum (times activation scale) -- the min term
//   unpack(b, j, w0, w1): the 32 integer weight values
//   idot(b, j, w0, w1, a0, a1): their integer dot with the activations, as four lanes
// Nibble formats: kSub sub-blocks of 32 per block, each laid out as a Q4_0 block's qs at qs + 16j
// and sharing the block's scale (and min): Q4_0 / Q4_1 (kSub 1), I4_G64/128 and U4_G64/128.
template <class B, int kSubBlocks, bool kHasMin>
struct Nibble4 {
  using Block = B;
  static constexpr int kSub = kSubBlocks;
  static constexpr bool kMin = kHasMin;
  static void scales(const Block& b, float* dsc, float* mn) {
    const float d = half(b.d);
    for (int j = 0; j < kSub; ++j) dsc[j] = d;
    if constexpr (kHasMin) {
      const float m = half(b.m);
      for (int j = 0; j < kSub; ++j) mn[j] = m;
    }
  }
  static void unpack(const Block& b, int j, int8x16_t& w0, int8x16_t& w1) {
    const uint8x16_t q = vld1q_u8(b.qs + 16 * j);
    w0 = s8(vandq_u8(q, vdupq_n_u8(0x0F)));
    w1 = s8(vshrq_n_u8(q, 4));
    if constexpr (!kHasMin) {  // symmetric: value = d * (q - 8)
      w0 = vsubq_s8(w0, vdupq_n_s8(8));
      w1 = vsubq_s8(w1, vdupq_n_s8(8));
    }
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32_small(w0, w1, a0, a1);
  }
};
using Q4_0 = Nibble4<BlockQ4_0, 1, false>;
using Q4_1 = Nibble4<BlockQ4_1, 1, true>;
template <int G, bool kHasMin>
using Group4 = Nibble4<std::conditional_t<kHasMin, BlockU4G<G>, BlockI4G<G>>, G / 32, kHasMin>;

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr int kSub = 1;
  static constexpr bool kMin = false;
  static void scales(const Block& b, float* dsc, float*) { dsc[0] = half(b.d); }
  static void unpack(const Block& b, int, int8x16_t& w0, int8x16_t& w1) {
    const uint8x16_t q = vld1q_u8(b.qs);
    uint8x16_t h0, h1;
    high_bits_32(b.qh, h0, h1);
    w0 = vsubq_s8(s8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), h0)), vdupq_n_s8(16));
    w1 = vsubq_s8(s8(vorrq_u8(vshrq_n_u8(q, 4), h1)), vdupq_n_s8(16));
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32_small(w0, w1, a0, a1);
  }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr int kSub = 1;
  static constexpr bool kMin = true;
  static void scales(const Block& b, float* dsc, float* mn) {
    dsc[0] = half(b.d);
    mn[0] = half(b.m);
  }
  static void unpack(const Block& b, int, int8x16_t& w0, int8x16_t& w1) {
    const uint8x16_t q = vld1q_u8(b.qs);
    uint8x16_t h0, h1;
    high_bits_32(b.qh, h0, h1);
    w0 = s8(vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), h0));
    w1 = s8(vorrq_u8(vshrq_n_u8(q, 4), h1));
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32_small(w0, w1, a0, a1);
  }
};

struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr int kSub = 1;
  static constexpr bool kMin = false;
  static void scales(const Block& b, float* dsc, float*) { dsc[0] = half(b.d); }
  static void unpack(const Block& b, int, int8x16_t& w0, int8x16_t& w1) {
    w0 = vld1q_s8(b.qs);
    w1 = vld1q_s8(b.qs + 16);
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32(w0, w1, a0, a1);
  }
};

// Q4_K / Q5_K: sub-block j has 6-bit scale sc_j and min mn_j; value = d*sc_j*q - dmin*mn_j.
template <bool kFiveBit>
struct Q45K {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  static constexpr int kSub = 8;
  static constexpr bool kMin = true;
  static void scales(const Block& b, float* dsc, float* mn) {
    const float d = half(b.d), dmin = half(b.dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      unpack_scale_min_k4(j, b.scales, &sc, &m);
      dsc[j] = d * float(sc);
      mn[j] = -dmin * float(m);
    }
  }
  static void unpack(const Block& b, int j, int8x16_t& w0, int8x16_t& w1) {
    const uint8_t* qs = b.qs + 32 * (j / 2);
    uint8x16_t v0 = vld1q_u8(qs), v1 = vld1q_u8(qs + 16);
    if (j % 2 == 0) {
      v0 = vandq_u8(v0, vdupq_n_u8(0x0F));
      v1 = vandq_u8(v1, vdupq_n_u8(0x0F));
    } else {
      v0 = vshrq_n_u8(v0, 4);
      v1 = vshrq_n_u8(v1, 4);
    }
    if constexpr (kFiveBit) {
      const uint8x16_t bit = vdupq_n_u8(uint8_t(1u << j)), sixteen = vdupq_n_u8(0x10);
      v0 = vorrq_u8(v0, vandq_u8(vtstq_u8(vld1q_u8(b.qh), bit), sixteen));
      v1 = vorrq_u8(v1, vandq_u8(vtstq_u8(vld1q_u8(b.qh + 16), bit), sixteen));
    }
    w0 = s8(v0);
    w1 = s8(v1);
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32_small(w0, w1, a0, a1);
  }
};

// Q6_K: sub-block j = 4h + g of half h; its two 16-value halves have int8 scales 2j and 2j+1,
// multiplied in as integers (exact) before the float scale d.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kSub = 8;
  static constexpr bool kMin = false;
  static void scales(const Block& b, float* dsc, float*) {
    const float d = half(b.d);
    for (int j = 0; j < 8; ++j) dsc[j] = d;
  }
  static void unpack(const Block& b, int j, int8x16_t& w0, int8x16_t& w1) {
    const int h = j / 4, g = j % 4;
    const uint8_t* ql = b.ql + 64 * h + 32 * (g % 2);
    const uint8_t* qh = b.qh + 32 * h;
    const int8x16_t low_shift = vdupq_n_s8(g < 2 ? 0 : -4);   // low or high nibble
    const int8x16_t high_shift = vdupq_n_s8(int8_t(4 - 2 * g));  // bits 2g..2g+1 to bits 4..5
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const uint8x16_t l0 = vandq_u8(vshlq_u8(vld1q_u8(ql), low_shift), m4);
    const uint8x16_t l1 = vandq_u8(vshlq_u8(vld1q_u8(ql + 16), low_shift), m4);
    const uint8x16_t h0 = vandq_u8(vshlq_u8(vld1q_u8(qh), high_shift), m30);
    const uint8x16_t h1 = vandq_u8(vshlq_u8(vld1q_u8(qh + 16), high_shift), m30);
    w0 = vsubq_s8(s8(vorrq_u8(l0, h0)), vdupq_n_s8(32));
    w1 = vsubq_s8(s8(vorrq_u8(l1, h1)), vdupq_n_s8(32));
  }
  static int32x4_t idot(const Block& b, int j, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return vmlaq_n_s32(vmulq_n_s32(dot16(w0, a0), b.scales[2 * j]), dot16(w1, a1), b.scales[2 * j + 1]);
  }
};

// I8_ROW / U8_ROW: a header (the row's float scale, and min) then bare 32-value blocks. Block
// scales are 1 and finish() applies the row's once. U8 is made signed (q - 128, for the int8
// multiplies); value = d*(q - 128) + (m + 128*d), so the min term's factor is m + 128*d.
struct Row8Block {
  uint8_t q[32];
};
template <bool kUnsigned>
struct Row8 {
  using Block = Row8Block;
  static constexpr int kSub = 1;
  static constexpr bool kMin = kUnsigned;
  static constexpr int kHeader = kUnsigned ? sizeof(RowU8Header) : sizeof(RowI8Header);
  static void scales(const Block&, float* dsc, float* mn) {
    dsc[0] = 1.0f;
    mn[0] = 1.0f;
  }
  static void unpack(const Block& b, int, int8x16_t& w0, int8x16_t& w1) {
    uint8x16_t v0 = vld1q_u8(b.q), v1 = vld1q_u8(b.q + 16);
    if constexpr (kUnsigned) {
      v0 = veorq_u8(v0, vdupq_n_u8(0x80));
      v1 = veorq_u8(v1, vdupq_n_u8(0x80));
    }
    w0 = s8(v0);
    w1 = s8(v1);
  }
  static int32x4_t idot(const Block&, int, int8x16_t w0, int8x16_t w1, int8x16_t a0, int8x16_t a1) {
    return dot32(w0, w1, a0, a1);
  }
  static float finish(const char* row, float dot, float msum) {
    float d, m = 0.0f;
    std::memcpy(&d, row, 4);
    if constexpr (kUnsigned) std::memcpy(&m, row + 4, 4);
    return kUnsigned ? d * dot + (m + 128.0f * d) * msum : d * dot;
  }
};

// Bytes in front of each row's blocks (per-row formats only).
template <class F>
constexpr int row_header() {
  if constexpr (requires { F::kHeader; }) {
    return F::kHeader;
  } else {
    return 0;
  }
}

constexpr int kRows = 4;  // rows per tile (lanes of the min vectors)

// Rows rows[0..3] against tokens t0 .. t0+T-1: out[r][t] = dot(row r, token t0 + t).
template <class F, int T>
void tile(const char* const* rows, const QActs& a, int64_t t0, float (*out)[T]) {
  using Block = typename F::Block;
  constexpr int kHeader = row_header<F>();
  const int64_t nblocks = a.n / (kQActBlock * F::kSub);
  float32x4_t acc[kRows][T];
  float32x4_t macc[T];
  for (int t = 0; t < T; ++t) {
    macc[t] = vdupq_n_f32(0.0f);
    for (int r = 0; r < kRows; ++r) acc[r][t] = vdupq_n_f32(0.0f);
  }
  const int8_t* aq[T];
  const float* ad[T];
  const int32_t* as[T];
  for (int t = 0; t < T; ++t) {
    aq[t] = a.row_q(t0 + t);
    ad[t] = a.row_d(t0 + t);
    as[t] = a.row_s(t0 + t);
  }
  for (int64_t i = 0; i < nblocks; ++i) {
    const Block* blk[kRows];
    float dsc[kRows][F::kSub];
    float mn[kRows][F::kSub];
    for (int r = 0; r < kRows; ++r) {
      blk[r] = reinterpret_cast<const Block*>(rows[r] + kHeader) + i;
      F::scales(*blk[r], dsc[r], mn[r]);
    }
    if constexpr (F::kMin) {
      for (int j = 0; j < F::kSub; ++j) {
        const float32x4_t mv = {mn[0][j], mn[1][j], mn[2][j], mn[3][j]};
        const int64_t k = i * F::kSub + j;
        for (int t = 0; t < T; ++t) macc[t] = vfmaq_n_f32(macc[t], mv, ad[t][k] * float(as[t][k]));
      }
    }
    for (int j = 0; j < F::kSub; ++j) {
      int8x16_t w[kRows][2];
      for (int r = 0; r < kRows; ++r) F::unpack(*blk[r], j, w[r][0], w[r][1]);
      const int64_t k = i * F::kSub + j;
      for (int t = 0; t < T; ++t) {
        const int8x16_t a0 = vld1q_s8(aq[t] + kQActBlock * k);
        const int8x16_t a1 = vld1q_s8(aq[t] + kQActBlock * k + 16);
        const float da = ad[t][k];
        for (int r = 0; r < kRows; ++r) {
          const int32x4_t isum = F::idot(*blk[r], j, w[r][0], w[r][1], a0, a1);
          acc[r][t] = vfmaq_n_f32(acc[r][t], vcvtq_f32_s32(isum), dsc[r][j] * da);
        }
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    float m[kRows];
    vst1q_f32(m, macc[t]);
    for (int r = 0; r < kRows; ++r) {
      if constexpr (kHeader > 0) {
        out[r][t] = F::finish(rows[r], vaddvq_f32(acc[r][t]), m[r]);
      } else {
        out[r][t] = vaddvq_f32(acc[r][t]) + m[r];
      }
    }
  }
}

// Bytes of int8 activations walked per pass over the rows: small enough to stay in L2 with the
// rows of the range (a Cortex-A72 has 1 MiB shared by four cores).
constexpr int64_t kActChunkBytes = 128 * 1024;

template <class F>
void gemm_q(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0,
            int64_t r1) {
  const char* base = static_cast<const char*>(w);
  const int64_t chunk = a.n >= kActChunkBytes ? 2 : (kActChunkBytes / (a.n > 0 ? a.n : 1) + 1) / 2 * 2;
  for (int64_t c0 = 0; c0 < a.n_tok; c0 += chunk) {
    const int64_t c1 = c0 + chunk < a.n_tok ? c0 + chunk : a.n_tok;
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = r1 - r < kRows ? int(r1 - r) : kRows;
      const char* rows[kRows];
      for (int i = 0; i < kRows; ++i) rows[i] = base + size_t(r + (i < nr ? i : nr - 1)) * row_bytes;
      int64_t t = c0;
      for (; t + 2 <= c1; t += 2) {
        float out[kRows][2];
        tile<F, 2>(rows, a, t, out);
        for (int i = 0; i < nr; ++i) {
          y[t * ldy + r + i] = out[i][0];
          y[(t + 1) * ldy + r + i] = out[i][1];
        }
      }
      if (t < c1) {
        float out[kRows][1];
        tile<F, 1>(rows, a, t, out);
        for (int i = 0; i < nr; ++i) y[t * ldy + r + i] = out[i][0];
      }
    }
  }
}

}  // namespace

// The activation quantizer, bit-identical to quantize_acts_ref (qacts.h): the same IEEE
// multiplications and divisions, maxnm/minnm so NaN is ignored by amax and clamps to -127 as
// std::max/std::min do there, and round-to-nearest-even conversion (as nearbyint).
void quantize_acts(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / kQActBlock; ++b) {
    const float* xb = x + b * kQActBlock;
    float32x4_t v[8];
    float32x4_t mx = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; ++i) {
      v[i] = vld1q_f32(xb + 4 * i);
      mx = vmaxnmq_f32(mx, vabsq_f32(v[i]));
    }
    const float amax = vmaxnmvq_f32(mx);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32x4_t qi[8];
    for (int i = 0; i < 8; ++i) {
      float32x4_t t = vmulq_n_f32(v[i], id);
      t = vminnmq_f32(vmaxnmq_f32(t, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
      qi[i] = vcvtnq_s32_f32(t);
    }
    const int16x8_t h0 = vcombine_s16(vmovn_s32(qi[0]), vmovn_s32(qi[1]));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(qi[2]), vmovn_s32(qi[3]));
    const int16x8_t h2 = vcombine_s16(vmovn_s32(qi[4]), vmovn_s32(qi[5]));
    const int16x8_t h3 = vcombine_s16(vmovn_s32(qi[6]), vmovn_s32(qi[7]));
    const int8x16_t q0 = vcombine_s8(vmovn_s16(h0), vmovn_s16(h1));
    const int8x16_t q1 = vcombine_s8(vmovn_s16(h2), vmovn_s16(h3));
    vst1q_s8(q + b * kQActBlock, q0);
    vst1q_s8(q + b * kQActBlock + 16, q1);
    d[b] = amax / 127.0f;
    s[b] = int32_t(vaddlvq_s8(q0)) + int32_t(vaddlvq_s8(q1));
  }
}

// The integer formats this ISA computes itself (others: the next lower table).
FormatKernels qformat(DType t) {
  switch (t) {
    case DType::Q4_0: return {gemm_q<Q4_0>, nullptr};
    case DType::Q4_1: return {gemm_q<Q4_1>, nullptr};
    case DType::Q5_0: return {gemm_q<Q5_0>, nullptr};
    case DType::Q5_1: return {gemm_q<Q5_1>, nullptr};
    case DType::Q8_0: return {gemm_q<Q8_0>, nullptr};
    case DType::Q4_K: return {gemm_q<Q45K<false>>, nullptr};
    case DType::Q5_K: return {gemm_q<Q45K<true>>, nullptr};
    case DType::Q6_K: return {gemm_q<Q6K>, nullptr};
    case DType::I8_ROW: return {gemm_q<Row8<false>>, nullptr};
    case DType::U8_ROW: return {gemm_q<Row8<true>>, nullptr};
    case DType::I4_G64: return {gemm_q<Group4<64, false>>, nullptr};
    case DType::I4_G128: return {gemm_q<Group4<128, false>>, nullptr};
    case DType::U4_G64: return {gemm_q<Group4<64, true>>, nullptr};
    case DType::U4_G128: return {gemm_q<Group4<128, true>>, nullptr};
    default: return {};
  }
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
