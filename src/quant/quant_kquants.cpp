// Reference dequantization of the 256-element k-quant formats, and Q8_K both ways.
// Each value is the format's formula evaluated in float in the definition's order (sub-block
// scale first: (d * sc) * q - (dmin * mn)), so results are bit-identical to ggml.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace edgeglm::quant::detail {

void dequantize_row_q2_k(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ2_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    const float dmin = fp16_to_f32(b[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, g = (e / 32) % 4, l = e % 32;
      const int q = (b[i].qs[32 * h + l] >> (2 * g)) & 3;
      const uint8_t sm = b[i].scales[e / 16];
      const float dl = d * float(sm & 0xF);
      const float ml = dmin * float(sm >> 4);
      dst[e] = dl * float(q) - ml;
    }
  }
}

void dequantize_row_q3_k(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ3_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    float dl[16];
    for (int k = 0; k < 16; ++k) dl[k] = d * float(unpack_scale_q3_k(k, b[i].scales) - 32);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, g = (e / 32) % 4, l = e % 32;
      const int low = (b[i].qs[32 * h + l] >> (2 * g)) & 3;
      const bool high = (b[i].hmask[l] >> (e / 32)) & 1;
      dst[e] = dl[e / 16] * float(low - (high ? 0 : 4));
    }
  }
}

// Q4_K and Q5_K share their layout: 8 sub-blocks of 32 with 6-bit scales and mins, low 4 bits
// in qs; Q5_K adds a fifth bit per element from qh (bit j of qh[l] for sub-block j).
template <class Block>
void dequantize_row_k4_k5(const void* src, float* dst, int64_t n) {
  constexpr bool kHighBit = std::is_same_v<Block, BlockQ5_K>;
  const auto* b = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    const float dmin = fp16_to_f32(b[i].dmin);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, mn;
      unpack_scale_min_k4(j, b[i].scales, &sc, &mn);
      const float dl = d * float(sc);
      const float ml = dmin * float(mn);
      const uint8_t* qs = b[i].qs + 32 * (j / 2);
      const int shift = 4 * (j % 2);
      for (int l = 0; l < 32; ++l) {
        int q = (qs[l] >> shift) & 0xF;
        if constexpr (kHighBit) q |= ((b[i].qh[l] >> j) & 1) << 4;
        dst[32 * j + l] = dl * float(q) - ml;
      }
    }
  }
}

void dequantize_row_q4_k(const void* src, float* dst, int64_t n) {
  dequantize_row_k4_k5<BlockQ4_K>(src, dst, n);
}

void dequantize_row_q5_k(const void* src, float* dst, int64_t n) {
  dequantize_row_k4_k5<BlockQ5_K>(src, dst, n);
}

void dequantize_row_q6_k(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ6_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K) {
    const float d = fp16_to_f32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, g = (e / 32) % 4, l = e % 32;
      const uint8_t lo_byte = b[i].ql[64 * h + 32 * (g % 2) + l];
      const int low = g < 2 ? (lo_byte & 0xF) : (lo_byte >> 4);
      const int high = (b[i].qh[32 * h + l] >> (2 * g)) & 3;
      dst[e] = d * float(b[i].scales[e / 16]) * float((low | (high << 4)) - 32);
    }
  }
}

void dequantize_row_q8_k(const void* src, float* dst, int64_t n) {
  const auto* b = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / kQK_K; ++i, dst += kQK_K)
    for (int e = 0; e < kQK_K; ++e) dst[e] = b[i].d * float(b[i].qs[e]);
}

// Q8_K: the largest-magnitude value maps to -127 (scale 1/iscale carries its sign), quants
// rounded half-to-even and clamped to 127; bsums are the int sums of each 16 quants. An all-zero
// block is zeroed whole (ggml leaves its bsums unwritten).
void quantize_row_q8_k(const float* src, void* dst, int64_t n) {
  auto* b = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(src[j]) > amax) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(&b[i], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQK_K; ++j) b[i].qs[j] = int8_t(std::min(127, round_even(iscale * src[j])));
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * g + l];
      b[i].bsums[g] = int16_t(sum);
    }
    b[i].d = 1.0f / iscale;
  }
}

}  // namespace edgeglm::quant::detail
