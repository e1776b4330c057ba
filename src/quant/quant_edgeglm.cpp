// Reference conversions for edgeglm's own formats (I8_ROW, U8_ROW, I4_G64/128, U4_G64/128; layouts
// in quant/blocks.h). Like quant_legacy.cpp: dequantization evaluates each format's formula in
// float, in the written order, with no fused multiply-add; quantization is round-to-nearest with
// the scale choice stated per format. Every kernel and the GPTQ packer rely on these layouts.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace edgeglm::quant::detail {
namespace {

// Split-nibble element e of a group of G: sub-block e/32 is laid out as a Q4_0 block's qs.
inline int group_nibble(const uint8_t* qs, int e) {
  const uint8_t* sub = qs + 16 * (e / 32);
  const int j = e % 32;
  return j < 16 ? (sub[j] & 0xF) : (sub[j - 16] >> 4);
}
inline void set_nibbles(uint8_t* qs, int s, int j, int lo, int hi) {
  qs[16 * s + j] = uint8_t(lo | (hi << 4));
}


template <int G>
void dequantize_i4g(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockI4G<G>*>(src);
  for (int64_t i = 0; i < n / G; ++i, dst += G) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < G; ++e) dst[e] = float(group_nibble(b[i].qs, e) - 8) * d;
  }
}

template <int G>
void dequantize_u4g(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockU4G<G>*>(src);
  for (int64_t i = 0; i < n / G; ++i, dst += G) {
    const float d = fp16_to_f32(b[i].d);
    const float m = fp16_to_f32(b[i].m);
    for (int e = 0; e < G; ++e) dst[e] = float(group_nibble(b[i].qs, e)) * d + m;
  }
}

// Q4_0's rule over the group: the value of largest magnitude (sign kept, first wins ties) maps to
// q = 0, d = max / -8; q = trunc(x/d + 8.5) clamped to 15 (rounds half up).
template <int G>
void quantize_i4g(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockI4G<G>*>(dst);
  for (int64_t i = 0; i < n / G; ++i, src += G) {
    const float d = signed_absmax(src, G) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    for (int s = 0; s < G / 32; ++s) {
      const float* x = src + 32 * s;
      for (int j = 0; j < 16; ++j) {
        const int q0 = std::min(15, int(int8_t(x[j] * id + 8.5f)));
        const int q1 = std::min(15, int(int8_t(x[j + 16] * id + 8.5f)));
        set_nibbles(b[i].qs, s, j, q0, q1);
      }
    }
  }
}

// Q4_1's rule over the group: m = min, d = (max - min) / 15, q = trunc((x - m)/d + 0.5) clamped
// to 15.
template <int G>
void quantize_u4g(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockU4G<G>*>(dst);
  for (int64_t i = 0; i < n / G; ++i, src += G) {
    float mn, mx;
    min_max(src, G, &mn, &mx);
    const float d = (mx - mn) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = f32_to_fp16(d);
    b[i].m = f32_to_fp16(mn);
    for (int s = 0; s < G / 32; ++s) {
      const float* x = src + 32 * s;
      for (int j = 0; j < 16; ++j) {
        const int q0 = std::min(15, int(int8_t((x[j] - mn) * id + 0.5f)));
        const int q1 = std::min(15, int(int8_t((x[j + 16] - mn) * id + 0.5f)));
        set_nibbles(b[i].qs, s, j, q0, q1);
      }
    }
  }
}

}  // namespace

void dequantize_row_i8_row(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  RowI8Header h;
  std::memcpy(&h, p, sizeof h);
  const auto* q = reinterpret_cast<const int8_t*>(p + sizeof h);
  for (int64_t e = 0; e < n; ++e) dst[e] = h.d * float(q[e]);
}

// d = amax / 127, q = nearbyint(x / d) (round half to even); a zero row is d = 0, q = 0.
void quantize_row_i8_row(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  float amax = 0.0f;
  for (int64_t e = 0; e < n; ++e) amax = std::max(amax, std::fabs(src[e]));
  const RowI8Header h{amax / 127.0f};
  std::memcpy(p, &h, sizeof h);
  auto* q = reinterpret_cast<int8_t*>(p + sizeof h);
  for (int64_t e = 0; e < n; ++e) {
    const float v = h.d != 0.0f ? std::nearbyint(src[e] / h.d) : 0.0f;
    q[e] = int8_t(std::min(127.0f, std::max(-127.0f, v)));
  }
}

void dequantize_row_u8_row(const void* src, float* dst, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(src);
  RowU8Header h;
  std::memcpy(&h, p, sizeof h);
  const uint8_t* q = p + sizeof h;
  for (int64_t e = 0; e < n; ++e) dst[e] = h.d * float(q[e]) + h.m;
}

// m = min, d = (max - min) / 255, q = nearbyint((x - m) / d) clamped to [0, 255]; a constant row
// is d = 0, q = 0 (every value m).
void quantize_row_u8_row(const float* src, void* dst, int64_t n) {
  auto* p = static_cast<uint8_t*>(dst);
  float mn, mx;
  min_max(src, n, &mn, &mx);
  const RowU8Header h{(mx - mn) / 255.0f, mn};
  std::memcpy(p, &h, sizeof h);
  uint8_t* q = p + sizeof h;
  for (int64_t e = 0; e < n; ++e) {
    const float v = h.d != 0.0f ? std::nearbyint((src[e] - h.m) / h.d) : 0.0f;
    q[e] = uint8_t(std::min(255.0f, std::max(0.0f, v)));
  }
}

void dequantize_row_i4_g64(const void* src, float* dst, int64_t n) { dequantize_i4g<64>(src, dst, n); }
void dequantize_row_i4_g128(const void* src, float* dst, int64_t n) { dequantize_i4g<128>(src, dst, n); }
void dequantize_row_u4_g64(const void* src, float* dst, int64_t n) { dequantize_u4g<64>(src, dst, n); }
void dequantize_row_u4_g128(const void* src, float* dst, int64_t n) { dequantize_u4g<128>(src, dst, n); }
void quantize_row_i4_g64(const float* src, void* dst, int64_t n) { quantize_i4g<64>(src, dst, n); }
void quantize_row_i4_g128(const float* src, void* dst, int64_t n) { quantize_i4g<128>(src, dst, n); }
void quantize_row_u4_g64(const float* src, void* dst, int64_t n) { quantize_u4g<64>(src, dst, n); }
void quantize_row_u4_g128(const float* src, void* dst, int64_t n) { quantize_u4g<128>(src, dst, n); }

}  // namespace edgeglm::quant::detail
