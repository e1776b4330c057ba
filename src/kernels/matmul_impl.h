// Float-activation kernels of the generic table (generic/matmul_generic.cpp includes this file with
// EG_KERNEL_NS set; the x86 and arm tables have register-tiled float kernels of their own). It serves F32 (direct), F16 and BF16 (each weight row decoded once
// and used for every token), and any format without an integer kernel (decoded with the quant
// reference). Integer formats have hand-written kernels per ISA instead (qacts.h).
// Not a public header: include only from an ISA translation unit.
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "kernels/isa.h"
#include "kernels/layout.h"
#include "quant/quant.h"

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#ifndef EG_KERNEL_NS
#error "define EG_KERNEL_NS before including matmul_impl.h"
#endif

namespace edgeglm::kernels::EG_KERNEL_NS {
namespace {

#include "kernels/f16_row_impl.h"

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

void decode_row(DType t, const void* src, float* out, int64_t n) {
  if (t == DType::F16) {
    f16_to_f32_row(static_cast<const uint16_t*>(src), out, n);
  } else if (t == DType::BF16) {
    const uint16_t* h = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(h[i]);
  } else {
    quant::dequantize_row(t, src, out, n);
  }
}

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) { return dot_f32_impl(a, b, n); }

void gemm_f(DType t, const void* w, size_t row_bytes, const float* x, int64_t n_in, int64_t n_tok,
            float* y, int64_t ldy, int64_t r0, int64_t r1) {
  thread_local std::vector<float> row_buf;  // sized on first use, then reused
  thread_local std::vector<uint8_t> file_row;  // a run-time layout's row in its file form
  if (t != DType::F32 && int64_t(row_buf.size()) < n_in) row_buf.resize(size_t(n_in));
  for (int64_t r = r0; r < r1; ++r) {
    const void* src = file_form_row(t, w, row_bytes, r, file_row);
    const float* row = static_cast<const float*>(src);
    if (t != DType::F32) {
      decode_row(file_dtype(t), src, row_buf.data(), n_in);
      row = row_buf.data();
    }
    for (int64_t tk = 0; tk < n_tok; ++tk) y[tk * ldy + r] = dot_f32_impl(row, x + tk * n_in, n_in);
  }
}

}  // namespace edgeglm::kernels::EG_KERNEL_NS
