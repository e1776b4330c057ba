// Scalar reference kernels. Loops are written so the compiler can vectorise them (independent
// accumulators, no aliasing) without changing what they compute.
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/layout.h"
#include "quant/quant.h"

namespace edgeglm::kernels {

void get_row(const TensorView& t, int64_t r, float* out) {
  thread_local std::vector<uint8_t> file_row;  // a run-time layout's row in its file form
  const void* src = file_form_row(t.dtype, t.data, t.nb[1], r, file_row);
  if (t.dtype == DType::F32) {
    std::memcpy(out, src, size_t(t.ne[0]) * sizeof(float));
  } else {
    quant::dequantize_row(file_dtype(t.dtype), src, out, t.ne[0]);
  }
}

void rmsnorm(float* y, const float* x, const float* w, int64_t n, float eps) {
  double ss = 0;  // double: the mean of squares of a wide row must not lose the small terms
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void softmax(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}


void add_inplace(float* y, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void rope_angles(float pos, const float* inv_freq, int64_t n_rot, float* cos_sin) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float theta = pos * inv_freq[i];
    cos_sin[2 * i] = std::cos(theta);
    cos_sin[2 * i + 1] = std::sin(theta);
  }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cos_sin,
          bool neox) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* xh = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
      float* a = neox ? &xh[i] : &xh[2 * i];
      float* b = neox ? &xh[i + half] : &xh[2 * i + 1];
      const float x0 = *a, x1 = *b;
      *a = x0 * c - x1 * s;
      *b = x0 * s + x1 * c;
    }
  }
}


}  // namespace edgeglm::kernels
