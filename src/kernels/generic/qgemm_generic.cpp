// Scalar twins of the integer kernels: every weight format computed with int8 activations
// (qacts.h), written for clarity. Faster ISA versions are tested against these; they must produce
// the same integer partial sums and differ only in the order floats are added.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/fp16.h"
#include "kernels/isa.h"
#include "kernels/layout.h"
#include "kernels/qacts.h"
#include "quant/blocks.h"

namespace edgeglm::kernels {

size_t qacts_bytes(int64_t n, int64_t n_tok) {
  auto up64 = [](size_t b) { return (b + 63) & ~size_t(63); };
  const size_t nb = size_t(n / kQActBlock) * size_t(n_tok);
  return up64(size_t(n) * size_t(n_tok)) + up64(nb * sizeof(float)) + up64(nb * sizeof(int32_t));
}

QActs qacts_view(void* buffer64, int64_t n, int64_t n_tok) {
  auto up64 = [](size_t b) { return (b + 63) & ~size_t(63); };
  char* p = static_cast<char*>(buffer64);
  const size_t nb = size_t(n / kQActBlock) * size_t(n_tok);
  QActs a;
  a.q = reinterpret_cast<int8_t*>(p);
  p += up64(size_t(n) * size_t(n_tok));
  a.d = reinterpret_cast<float*>(p);
  p += up64(nb * sizeof(float));
  a.s = reinterpret_cast<int32_t*>(p);
  a.n = n;
  a.n_tok = n_tok;
  return a;
}

void quantize_acts_ref(const float* x, int64_t n, int8_t* q, float* d, int32_t* s) {
  for (int64_t b = 0; b < n / kQActBlock; ++b) {
    const float* xb = x + b * kQActBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQActBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < kQActBlock; ++j) {
      // NaN clamps to -127 (std::max keeps its first argument when the comparison is false).
      const float v = std::min(127.0f, std::max(-127.0f, xb[j] * id));
      const int8_t qi = int8_t(std::nearbyint(v));
      q[b * kQActBlock + j] = qi;
      sum += qi;
    }
    d[b] = amax / 127.0f;
    s[b] = sum;
  }
}

namespace generic {
namespace {

using namespace edgeglm::quant;

// Weight values of one 32-element block as small integers (w = scale * value + offset terms).
inline void unpack_nibbles(const uint8_t* qs, int32_t* v) {
  for (int j = 0; j < 16; ++j) {
    v[j] = qs[j] & 0x0F;
    v[j + 16] = qs[j] >> 4;
  }
}
inline void add_high_bits(uint32_t qh, int32_t* v) {
  for (int j = 0; j < 32; ++j) v[j] |= int32_t((qh >> j) & 1) << 4;
}
inline int32_t idot(const int32_t* v, const int8_t* a, int n) {
  int32_t s = 0;
  for (int j = 0; j < n; ++j) s += v[j] * a[j];
  return s;
}

// One row of a split-nibble format against one activation row. Q4_0/Q5_0/I4_G are
// d * (q - kOffset); Q4_1/Q5_1/U4_G are d * q + m (kOffset 0, a min field); Q5_x add a fifth bit.
// A block holds kSub 32-element sub-blocks (I4_G/U4_G: G/32) sharing d (and m); sub-block s of
// block i is activation block kSub*i + s.
template <class Block, int kOffset, int kSub = 1>
float row_nibbles(const void* row, const int8_t* aq, const float* ad, const int32_t* as, int64_t nb) {
  constexpr bool kHigh = requires(const Block& b) { b.qh; };
  constexpr bool kMin = requires(const Block& b) { b.m; };
  static_assert(!kHigh || kSub == 1);
  const Block* b = static_cast<const Block*>(row);
  float acc = 0.0f;
  int32_t v[32];
  for (int64_t i = 0; i < nb / kSub; ++i) {
    for (int s = 0; s < kSub; ++s) {
      const int64_t k = kSub * i + s;
      unpack_nibbles(b[i].qs + 16 * s, v);
      if constexpr (kHigh) {
        uint32_t qh;
        std::memcpy(&qh, b[i].qh, 4);
        add_high_bits(qh, v);
      }
      const int32_t isum = idot(v, aq + 32 * k, 32);
      if constexpr (kMin) {
        acc += fp16_to_f32(b[i].d) * ad[k] * float(isum) + fp16_to_f32(b[i].m) * ad[k] * float(as[k]);
      } else {
        acc += fp16_to_f32(b[i].d) * ad[k] * float(isum - kOffset * as[k]);
      }
    }
  }
  return acc;
}

// Per-row formats: one scale (and min) for the whole row, applied once at the end:
//   I8_ROW: d * sum_b da_b * isum_b          U8_ROW: the same + m * sum_b da_b * asum_b
// (isum_b: the exact integer dot of block b; U8 weights are unsigned, 0..255).
template <bool kUnsigned>
float row_8bit_row(const void* row, const int8_t* aq, const float* ad, const int32_t* as, int64_t nb) {
  const uint8_t* p = static_cast<const uint8_t*>(row);
  float d, m = 0.0f;
  std::memcpy(&d, p, 4);
  if constexpr (kUnsigned) std::memcpy(&m, p + 4, 4);
  const uint8_t* q = p + (kUnsigned ? sizeof(RowU8Header) : sizeof(RowI8Header));
  float acc = 0.0f, macc = 0.0f;
  int32_t v[32];
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 32; ++j)
      v[j] = kUnsigned ? int32_t(q[32 * i + j]) : int32_t(int8_t(q[32 * i + j]));
    acc += ad[i] * float(idot(v, aq + 32 * i, 32));
    if constexpr (kUnsigned) macc += ad[i] * float(as[i]);
  }
  return kUnsigned ? d * acc + m * macc : d * acc;
}
float row_q8_0(const void* row, const int8_t* aq, const float* ad, const int32_t*, int64_t nb) {
  const BlockQ8_0* b = static_cast<const BlockQ8_0*>(row);
  float acc = 0.0f;
  int32_t v[32];
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 32; ++j) v[j] = b[i].qs[j];
    acc += fp16_to_f32(b[i].d) * ad[i] * float(idot(v, aq + 32 * i, 32));
  }
  return acc;
}

// K-quants: a 256-element super-block spans 8 activation blocks; sub-block j of Q4_K/Q5_K is
// activation block j. value = d*sc_j*q - dmin*mn_j, so
//   dot = d * sum_j sc_j*da_j*isum_j - dmin * sum_j mn_j*da_j*asum_j.
template <bool kFiveBit>
float row_q45_k(const void* row, const int8_t* aq, const float* ad, const int32_t* as,
                int64_t nb) {
  using Block = std::conditional_t<kFiveBit, BlockQ5_K, BlockQ4_K>;
  const Block* b = static_cast<const Block*>(row);
  float acc = 0.0f;
  int32_t v[32];
  for (int64_t i = 0; i < nb / 8; ++i) {
    float sum_d = 0.0f, sum_m = 0.0f;
    for (int j = 0; j < 8; ++j) {
      const uint8_t* qs = b[i].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) {
        v[l] = (j % 2 == 0) ? (qs[l] & 0x0F) : (qs[l] >> 4);
        if constexpr (kFiveBit) v[l] |= ((b[i].qh[l] >> j) & 1) << 4;
      }
      uint8_t sc, mn;
      unpack_scale_min_k4(j, b[i].scales, &sc, &mn);
      const int64_t k = 8 * i + j;
      sum_d += ad[k] * float(int32_t(sc) * idot(v, aq + 32 * k, 32));
      sum_m += ad[k] * float(int32_t(mn) * as[k]);
    }
    acc += fp16_to_f32(b[i].d) * sum_d - fp16_to_f32(b[i].dmin) * sum_m;
  }
  return acc;
}

// Q6_K: sixteen 16-element sub-blocks with int8 scales; activation block j holds sub-blocks
// 2j and 2j+1: dot = d * sum_j da_j * (sc_2j * isum_lo + sc_2j+1 * isum_hi).
float row_q6_k(const void* row, const int8_t* aq, const float* ad, const int32_t*, int64_t nb) {
  const BlockQ6_K* b = static_cast<const BlockQ6_K*>(row);
  float acc = 0.0f;
  int32_t v[256];
  for (int64_t i = 0; i < nb / 8; ++i) {
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b[i].ql + 64 * h;
      const uint8_t* qh = b[i].qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        v[128 * h + l] = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        v[128 * h + 32 + l] = ((ql[32 + l] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        v[128 * h + 64 + l] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        v[128 * h + 96 + l] = ((ql[32 + l] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      }
    }
    float sum = 0.0f;
    for (int j = 0; j < 8; ++j) {
      const int64_t k = 8 * i + j;
      const int32_t isum = int32_t(b[i].scales[2 * j]) * idot(v + 32 * j, aq + 32 * k, 16) +
                           int32_t(b[i].scales[2 * j + 1]) * idot(v + 32 * j + 16, aq + 32 * k + 16, 16);
      sum += ad[k] * float(isum);
    }
    acc += fp16_to_f32(b[i].d) * sum;
  }
  return acc;
}

using RowFn = float (*)(const void*, const int8_t*, const float*, const int32_t*, int64_t);

template <RowFn kRow>
void gemm_rows(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0,
               int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const void* row = static_cast<const char*>(w) + size_t(r) * row_bytes;
    for (int64_t t = 0; t < a.n_tok; ++t)
      y[t * ldy + r] = kRow(row, a.row_q(t), a.row_d(t), a.row_s(t), a.nb());
  }
}

// Run-time layouts (layout.h): each row copied back to its file form first. The definition of
// what a layout's own kernels must compute, and the path of tables without one.
template <DType kLayout, RowFn kRow>
void gemm_relaid(const void* w, size_t row_bytes, const QActs& a, float* y, int64_t ldy, int64_t r0,
                 int64_t r1) {
  thread_local std::vector<uint8_t> buf;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = file_form_row(kLayout, w, row_bytes, r, buf);
    for (int64_t t = 0; t < a.n_tok; ++t) y[t * ldy + r] = kRow(row, a.row_q(t), a.row_d(t), a.row_s(t), a.nb());
  }
}

}  // namespace

// Integer formats of the scalar twin; float formats come from matmul_impl.h (gemm_f).
void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1);

FormatKernels format(DType t) {
  switch (t) {
    case DType::Q4_0: return {gemm_rows<row_nibbles<BlockQ4_0, 8>>, nullptr};
    case DType::Q4_1: return {gemm_rows<row_nibbles<BlockQ4_1, 0>>, nullptr};
    case DType::Q5_0: return {gemm_rows<row_nibbles<BlockQ5_0, 16>>, nullptr};
    case DType::Q5_1: return {gemm_rows<row_nibbles<BlockQ5_1, 0>>, nullptr};
    case DType::Q8_0: return {gemm_rows<row_q8_0>, nullptr};
    case DType::Q8_0_R8: return {gemm_relaid<DType::Q8_0_R8, row_q8_0>, nullptr};
    case DType::Q4_0_R8: return {gemm_relaid<DType::Q4_0_R8, row_nibbles<BlockQ4_0, 8>>, nullptr};
    case DType::Q4_1_R8: return {gemm_relaid<DType::Q4_1_R8, row_nibbles<BlockQ4_1, 0>>, nullptr};
    case DType::Q4_0_X8: return {gemm_relaid<DType::Q4_0_X8, row_nibbles<BlockQ4_0, 8>>, nullptr};
    case DType::Q4_1_X8: return {gemm_relaid<DType::Q4_1_X8, row_nibbles<BlockQ4_1, 0>>, nullptr};
    case DType::Q8_0_X8: return {gemm_relaid<DType::Q8_0_X8, row_q8_0>, nullptr};
    case DType::Q6_K_X8: return {gemm_relaid<DType::Q6_K_X8, row_q6_k>, nullptr};
    case DType::Q5_0_X8: return {gemm_relaid<DType::Q5_0_X8, row_nibbles<BlockQ5_0, 16>>, nullptr};
    case DType::Q5_1_X8: return {gemm_relaid<DType::Q5_1_X8, row_nibbles<BlockQ5_1, 0>>, nullptr};
    case DType::Q4_K_X8: return {gemm_relaid<DType::Q4_K_X8, row_q45_k<false>>, nullptr};
    case DType::Q5_K_X8: return {gemm_relaid<DType::Q5_K_X8, row_q45_k<true>>, nullptr};
    case DType::Q4_K: return {gemm_rows<row_q45_k<false>>, nullptr};
    case DType::Q5_K: return {gemm_rows<row_q45_k<true>>, nullptr};
    case DType::Q6_K: return {gemm_rows<row_q6_k>, nullptr};
    case DType::I8_ROW: return {gemm_rows<row_8bit_row<false>>, nullptr};
    case DType::U8_ROW: return {gemm_rows<row_8bit_row<true>>, nullptr};
    case DType::I4_G64: return {gemm_rows<row_nibbles<BlockI4_G64, 8, 2>>, nullptr};
    case DType::I4_G128: return {gemm_rows<row_nibbles<BlockI4_G128, 8, 4>>, nullptr};
    case DType::U4_G64: return {gemm_rows<row_nibbles<BlockU4_G64, 0, 2>>, nullptr};
    case DType::U4_G128: return {gemm_rows<row_nibbles<BlockU4_G128, 0, 4>>, nullptr};
    default: return {nullptr, gemm_f};  // float formats, and the dequantizing fallback (Q2_K, ...)
  }
}

}  // namespace generic
}  // namespace edgeglm::kernels
