// Body of the matmul kernels, compiled once per ISA: generic/ (baseline flags) and x86/avx2
// (-mavx2 -mfma -mf16c) include this file with EG_KERNEL_NS set to their namespace, so the same
// source is vectorised for each target and dispatch.cpp picks one at start-up.
//
// Legacy 32-element formats are decoded block by block into registers and dotted directly with
// the activations (no row buffer); other formats decode a row with the quant reference.
// Not a public header: include only from an ISA translation unit.
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/kernels.h"
#include "quant/blocks.h"
#include "quant/quant.h"

#ifndef EG_KERNEL_NS
#error "define EG_KERNEL_NS before including matmul_impl.h"
#endif

namespace edgeglm::kernels::EG_KERNEL_NS {
namespace {

using namespace edgeglm::quant;

inline float dot_f32_impl(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  for (int j = 0; j < 8; ++j) acc[j] += acc[j + 8];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Decoders of one 32-element block into out[32], by the definitions in quant/blocks.h.
inline void decode(const BlockQ4_0& b, float* out) {
  const float d = fp16_to_f32(b.d);
  for (int j = 0; j < 16; ++j) {
    out[j] = float(int(b.qs[j] & 0x0F) - 8) * d;
    out[j + 16] = float(int(b.qs[j] >> 4) - 8) * d;
  }
}
inline void decode(const BlockQ4_1& b, float* out) {
  const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
  for (int j = 0; j < 16; ++j) {
    out[j] = float(b.qs[j] & 0x0F) * d + m;
    out[j + 16] = float(b.qs[j] >> 4) * d + m;
  }
}
inline void decode(const BlockQ5_0& b, float* out) {
  const float d = fp16_to_f32(b.d);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    out[j] = float(int((b.qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) - 16) * d;
    out[j + 16] = float(int((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16) * d;
  }
}
inline void decode(const BlockQ5_1& b, float* out) {
  const float d = fp16_to_f32(b.d), m = fp16_to_f32(b.m);
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    out[j] = float((b.qs[j] & 0x0F) | (((qh >> j) & 1) << 4)) * d + m;
    out[j + 16] = float((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) * d + m;
  }
}
inline void decode(const BlockQ8_0& b, float* out) {
  const float d = fp16_to_f32(b.d);
  for (int j = 0; j < 32; ++j) out[j] = float(b.qs[j]) * d;
}

template <class Block>
float dot_blocks(const void* row, const float* x, int64_t n) {
  const Block* b = static_cast<const Block*>(row);
  float acc[32] = {};
  alignas(64) float w[32];
  for (int64_t i = 0; i < n / 32; ++i) {
    decode(b[i], w);
    for (int j = 0; j < 32; ++j) acc[j] += w[j] * x[i * 32 + j];
  }
  for (int j = 0; j < 16; ++j) acc[j] += acc[j + 16];
  for (int j = 0; j < 8; ++j) acc[j] += acc[j + 8];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class Block>
void decode_row(const void* row, float* out, int64_t n) {
  const Block* b = static_cast<const Block*>(row);
  for (int64_t i = 0; i < n / 32; ++i) decode(b[i], out + i * 32);
}

using RowDot = float (*)(const void*, const float*, int64_t);
using RowDecode = void (*)(const void*, float*, int64_t);

struct FormatKernels {
  RowDot dot;        // fused decode + dot, or nullptr
  RowDecode decode;  // row -> floats
};

void decode_f16(const void* row, float* out, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_f32(h[i]);
}
void decode_bf16(const void* row, float* out, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(h[i]);
}

FormatKernels kernels_for(DType t) {
  switch (t) {
    case DType::Q4_0: return {dot_blocks<BlockQ4_0>, decode_row<BlockQ4_0>};
    case DType::Q4_1: return {dot_blocks<BlockQ4_1>, decode_row<BlockQ4_1>};
    case DType::Q5_0: return {dot_blocks<BlockQ5_0>, decode_row<BlockQ5_0>};
    case DType::Q5_1: return {dot_blocks<BlockQ5_1>, decode_row<BlockQ5_1>};
    case DType::Q8_0: return {dot_blocks<BlockQ8_0>, decode_row<BlockQ8_0>};
    case DType::F16: return {nullptr, decode_f16};
    case DType::BF16: return {nullptr, decode_bf16};
    default: return {nullptr, nullptr};
  }
}

// Below this many multiply-adds a thread's share is not worth waking it for.
constexpr int64_t kMinMacsPerThread = 32 * 1024;

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) { return dot_f32_impl(a, b, n); }

void matmul(const TensorView& w, const float* x, int64_t n_tok, float* y, ThreadPool& pool) {
  const int64_t n_in = w.ne[0];
  const int64_t n_out = w.ne[1];
  const FormatKernels fk = kernels_for(w.dtype);
  const bool is_f32 = w.dtype == DType::F32;
  // Decode: fused block dots, no row buffer. Prefill: decode each row once, reuse for all tokens.
  const bool fused = fk.dot && n_tok == 1;
  pool.parallel_for(n_out, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> row_buf;  // sized on first use, then reused
    if (!is_f32 && !fused && int64_t(row_buf.size()) < n_in) row_buf.resize(size_t(n_in));
    for (int64_t r = r0; r < r1; ++r) {
      const void* src = w.row<const char>(r);
      if (fused) {
        y[r] = fk.dot(src, x, n_in);
        continue;
      }
      const float* row = static_cast<const float*>(src);
      if (!is_f32) {
        if (fk.decode) {
          fk.decode(src, row_buf.data(), n_in);
        } else {
          quant::dequantize_row(w.dtype, src, row_buf.data(), n_in);
        }
        row = row_buf.data();
      }
      for (int64_t t = 0; t < n_tok; ++t) y[t * n_out + r] = dot_f32_impl(row, x + t * n_in, n_in);
    }
  }, /*grain=*/kMinMacsPerThread / (n_in * n_tok) + 1);
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
