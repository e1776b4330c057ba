// Reference conversions for the 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1).
// Dequantization evaluates exactly the formula of each format's definition, in float, in the
// same order (no fused multiply-add: see CMakeLists.txt), so results are bit-identical to ggml.
// Quantization is ggml's round-to-nearest reference: same scale choice, same rounding rule.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace edgeglm::quant::detail {
namespace {

// Element index e of a 32-element block with a split-nibble layout: e < 16 is the low nibble of
// byte e, e >= 16 the high nibble of byte e - 16.
inline int nibble(const uint8_t* qs, int e) {
  return e < 16 ? (qs[e] & 0xF) : (qs[e - 16] >> 4);
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);  // little-endian hosts only, as GGUF itself
  return v;
}


}  // namespace

void dequantize_row_q4_0(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / kQK4_0; ++i, dst += kQK4_0) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK4_0; ++e) dst[e] = float(nibble(b[i].qs, e) - 8) * d;
  }
}

void dequantize_row_q4_1(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / kQK4_1; ++i, dst += kQK4_1) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    for (int e = 0; e < kQK4_1; ++e) dst[e] = float(nibble(b[i].qs, e)) * d + m;
  }
}

void dequantize_row_q5_0(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < n / kQK5_0; ++i, dst += kQK5_0) {
    const float d = fp16_to_f32(b[i].d);
    const uint32_t qh = load_u32(b[i].qh);
    for (int e = 0; e < kQK5_0; ++e) {
      const int q = nibble(b[i].qs, e) | int(((qh >> e) & 1) << 4);
      dst[e] = float(q - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < n / kQK5_1; ++i, dst += kQK5_1) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    const uint32_t qh = load_u32(b[i].qh);
    for (int e = 0; e < kQK5_1; ++e) {
      const int q = nibble(b[i].qs, e) | int(((qh >> e) & 1) << 4);
      dst[e] = float(q) * d + m;
    }
  }
}

void dequantize_row_q8_0(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK8_0; ++i, dst += kQK8_0) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK8_0; ++e) dst[e] = float(b[i].qs[e]) * d;
  }
}

void dequantize_row_q8_1(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ8_1*>(src);
  for (int64_t i = 0; i < n / kQK8_1; ++i, dst += kQK8_1) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK8_1; ++e) dst[e] = float(b[i].qs[e]) * d;
  }
}

// Q4_0: the largest-magnitude value maps to q = 0 (that is, -8 * d), so d carries its sign.
// q = trunc(x/d + 8.5) clamped to 15: rounds half up.
void quantize_row_q4_0(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK4_0; ++i, src += kQK4_0) {
    const float d = signed_absmax(src, kQK4_0) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK4_0 / 2; ++j) {
      const int q0 = std::min(15, int(int8_t(src[j] * id + 8.5f)));
      const int q1 = std::min(15, int(int8_t(src[j + 16] * id + 8.5f)));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// Q4_1: 16 levels spanning [min, max]; q = trunc((x - min)/d + 0.5) clamped to 15.
void quantize_row_q4_1(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / kQK4_1; ++i, src += kQK4_1) {
    float mn, mx;
    min_max(src, kQK4_1, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    b[i].m = f32_to_fp16(mn);
    for (int j = 0; j < kQK4_1 / 2; ++j) {
      const int q0 = std::min(15, int(int8_t((src[j] - mn) * id + 0.5f)));
      const int q1 = std::min(15, int(int8_t((src[j + 16] - mn) * id + 0.5f)));
      b[i].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// Q5_0: as Q4_0 with 32 levels (largest magnitude -> q = 0, i.e. -16 * d).
void quantize_row_q5_0(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK5_0; ++i, src += kQK5_0) {
    const float d = signed_absmax(src, kQK5_0) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_0 / 2; ++j) {
      const int q0 = std::min(31, int(int8_t(src[j] * id + 16.5f)));
      const int q1 = std::min(31, int(int8_t(src[j + 16] * id + 16.5f)));
      b[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// Q5_1: as Q4_1 with 32 levels. ggml does not clamp here ((x-min)/d + 0.5 < 32 by construction);
// clamping to 31 is the same on every finite input and keeps the bit packing safe.
void quantize_row_q5_1(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / kQK5_1; ++i, src += kQK5_1) {
    float mn, mx;
    min_max(src, kQK5_1, &mn, &mx);
    const float d = (mx - mn) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    b[i].m = f32_to_fp16(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK5_1 / 2; ++j) {
      const int q0 = std::min(31, int(uint8_t((src[j] - mn) * id + 0.5f)));
      const int q1 = std::min(31, int(uint8_t((src[j + 16] - mn) * id + 0.5f)));
      b[i].qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + 16);
    }
    std::memcpy(b[i].qh, &qh, 4);
  }
}

// Q8_0: d = absmax / 127, q = roundf(x / d) (half away from zero).
void quantize_row_q8_0(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK8_0; ++i, src += kQK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_0; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    for (int j = 0; j < kQK8_0; ++j) b[i].qs[j] = int8_t(std::roundf(src[j] * id));
  }
}

// Q8_1: Q8_0's quants plus s = fp16(sum(q) * d) with the unrounded float d.
void quantize_row_q8_1(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_1*>(dst);
  for (int64_t i = 0; i < n / kQK8_1; ++i, src += kQK8_1) {
    float amax = 0.0f;
    for (int j = 0; j < kQK8_1; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < kQK8_1; ++j) {
      b[i].qs[j] = int8_t(std::roundf(src[j] * id));
      sum += b[i].qs[j];
    }
    b[i].s = f32_to_fp16(float(sum) * d);
  }
}

}  // namespace edgeglm::quant::detail
