// Float-activation kernels for AArch64 (F32, F16 and BF16 weights; fp32 arithmetic throughout),
// compiled once per ARM ISA: arm/matmul_neon.cpp and arm/matmul_dotprod.cpp include this file with
// EG_KERNEL_NS set. F16 weights are widened with the exact hardware conversion (FCVTL, ARMv8.0),
// BF16 by a 16-bit shift, both as they are loaded, so nothing is decoded into a buffer and no
// memory is allocated. Tiles are four rows by four tokens (prefill: each loaded weight vector is
// used for four tokens, each activation vector for four rows) or four rows by one token (decode:
// rows streamed with two accumulators per row to cover the FMA latency).
// Not a public header: include only from an ARM ISA translation unit.
#include <arm_neon.h>

#include <cstdint>
#include <cstring>

#include "core/dtype.h"
#include "kernels/isa.h"

#ifndef EG_KERNEL_NS
#error "define EG_KERNEL_NS before including arm/matmul_arm_impl.h"
#endif

namespace edgeglm::kernels::generic {
void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1);
}

namespace edgeglm::kernels::EG_KERNEL_NS {
namespace {

template <DType kT>
inline float32x4_t load4(const void* p, int64_t i) {
  if constexpr (kT == DType::F32) {
    return vld1q_f32(static_cast<const float*>(p) + i);
  } else if constexpr (kT == DType::F16) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p) + i)));
  } else {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(static_cast<const uint16_t*>(p) + i), 16));
  }
}

template <DType kT>
inline float load1(const void* p, int64_t i) {
  if constexpr (kT == DType::F32) {
    return static_cast<const float*>(p)[i];
  } else if constexpr (kT == DType::F16) {
    __fp16 h;
    std::memcpy(&h, static_cast<const uint16_t*>(p) + i, 2);
    return float(h);
  } else {
    const uint32_t u = uint32_t(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
}

constexpr int kRows = 4;

// out[r][t] = dot(rows[r], x + t * n_in) for four rows and T tokens.
template <DType kT, int T>
void ftile(const void* const* rows, const float* x, int64_t n_in, float (*out)[T]) {
  constexpr int kU = T == 1 ? 2 : 1;  // accumulators per (row, token)
  float32x4_t acc[kRows][T][kU];
  for (int r = 0; r < kRows; ++r)
    for (int t = 0; t < T; ++t)
      for (int u = 0; u < kU; ++u) acc[r][t][u] = vdupq_n_f32(0.0f);
  int64_t i = 0;
  for (; i + 4 * kU <= n_in; i += 4 * kU) {
    for (int u = 0; u < kU; ++u) {
      float32x4_t w[kRows];
      for (int r = 0; r < kRows; ++r) w[r] = load4<kT>(rows[r], i + 4 * u);
      for (int t = 0; t < T; ++t) {
        const float32x4_t xv = vld1q_f32(x + t * n_in + i + 4 * u);
        for (int r = 0; r < kRows; ++r) acc[r][t][u] = vfmaq_f32(acc[r][t][u], w[r], xv);
      }
    }
  }
  for (; i + 4 <= n_in; i += 4) {
    float32x4_t w[kRows];
    for (int r = 0; r < kRows; ++r) w[r] = load4<kT>(rows[r], i);
    for (int t = 0; t < T; ++t) {
      const float32x4_t xv = vld1q_f32(x + t * n_in + i);
      for (int r = 0; r < kRows; ++r) acc[r][t][0] = vfmaq_f32(acc[r][t][0], w[r], xv);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int t = 0; t < T; ++t) {
      float32x4_t v = acc[r][t][0];
      if constexpr (kU == 2) v = vaddq_f32(v, acc[r][t][1]);
      float s = vaddvq_f32(v);
      for (int64_t j = i; j < n_in; ++j) s += load1<kT>(rows[r], j) * x[t * n_in + j];
      out[r][t] = s;
    }
  }
}

// Bytes of activations walked per pass over the rows (see qgemm_arm_impl.h).
constexpr int64_t kActChunkBytes = 128 * 1024;

template <DType kT>
void gemm_typed(const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
                float* y, int64_t ldy, int64_t r0, int64_t r1) {
  const char* base = static_cast<const char*>(w);
  const int64_t row_x = (n_in > 0 ? n_in : 1) * int64_t(sizeof(float));
  const int64_t chunk = row_x >= kActChunkBytes ? 4 : (kActChunkBytes / row_x + 3) / 4 * 4;
  for (int64_t c0 = 0; c0 < n_tok; c0 += chunk) {
    const int64_t c1 = c0 + chunk < n_tok ? c0 + chunk : n_tok;
    for (int64_t r = r0; r < r1; r += kRows) {
      const int nr = r1 - r < kRows ? int(r1 - r) : kRows;
      const void* rows[kRows];
      for (int i = 0; i < kRows; ++i) rows[i] = base + size_t(r + (i < nr ? i : nr - 1)) * row_bytes;
      int64_t t = c0;
      for (; t + 4 <= c1; t += 4) {
        float out[kRows][4];
        ftile<kT, 4>(rows, x + t * n_in, n_in, out);
        for (int tt = 0; tt < 4; ++tt)
          for (int i = 0; i < nr; ++i) y[(t + tt) * ldy + r + i] = out[i][tt];
      }
      for (; t < c1; ++t) {
        float out[kRows][1];
        ftile<kT, 1>(rows, x + t * n_in, n_in, out);
        for (int i = 0; i < nr; ++i) y[t * ldy + r + i] = out[i][0];
      }
    }
  }
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
  float32x4_t acc[4] = {vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f), vdupq_n_f32(0.0f)};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int u = 0; u < 4; ++u) acc[u] = vfmaq_f32(acc[u], vld1q_f32(a + i + 4 * u), vld1q_f32(b + i + 4 * u));
  for (; i + 4 <= n; i += 4) acc[0] = vfmaq_f32(acc[0], vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Float weight formats of this ISA; format() resolves the others to the integer kernels or, for
// formats without one, to the generic dequantizing kernel.
void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1) {
  switch (t) {
    case DType::F32: gemm_typed<DType::F32>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1); break;
    case DType::F16: gemm_typed<DType::F16>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1); break;
    case DType::BF16: gemm_typed<DType::BF16>(w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1); break;
    // Integer formats come here only in float-activation mode (isa.h): rows decoded by the
    // generic kernel, which serves every format.
    default: generic::gemm_f(t, w, row_bytes, x, n_in, n_tok, y, ldy, r0, r1); break;
  }
}

FormatKernels qformat(DType t);  // arm/qgemm_<isa>.cpp

FormatKernels format(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: return {nullptr, gemm_f};
    default: return qformat(t);
  }
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
