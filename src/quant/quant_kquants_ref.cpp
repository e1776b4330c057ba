// Reference quantizers for Q2_K, Q4_K, Q5_K and Q6_K: the algorithms of llama.cpp's
// quantize_row_q*_K_ref (what llama-quantize runs without an importance matrix), re-expressed
// here. They search for a scale (and min) per sub-block, quantize the sub-block scales to 4/6/8
// bits against one fp16 super-scale, then re-round every element against the stored scales.
// Every float operation keeps ggml's order so files written here are meant to be byte-identical
// to llama.cpp's (not yet checked against llama.cpp itself: no build of it is available offline).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant_impl.h"

namespace edgeglm::quant::detail {
namespace {

constexpr float kGroupMaxEps = 1e-15f;  // below this a sub-block counts as all-zero

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// Affine fit x ~ scale * L + min with L in [0, nmax] and min <= 0, minimizing the weighted error
// (squared, or absolute when use_mad). Starts from the plain min/max grid, then tries nstep+1
// slightly different grid densities (nmax + rmin + rdelta*k levels over the range), solving the
// weighted least-squares scale and min for each rounding and keeping the best. Returns scale and
// stores -min in *neg_min; L receives the chosen levels.
float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
                    uint8_t* l_try, float rmin, float rdelta, int nstep, bool use_mad) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::memset(L, 0, size_t(n));
    *neg_min = -lo;
    return 0.0f;
  }
  auto error_of = [&](float s, float m, const uint8_t* levels) {
    float err = 0;
    for (int i = 0; i < n; ++i) {
      float diff = s * float(levels[i]) + m - x[i];
      diff = use_mad ? std::fabs(diff) : diff * diff;
      err += w[i] * diff;
    }
    return err;
  };
  float iscale = float(nmax) / (hi - lo);
  float scale = 1 / iscale;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(clamp_int(round_even(iscale * (x[i] - lo)), 0, nmax));
  float best = error_of(scale, lo, L);
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * float(k) + float(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(round_even(iscale * (x[i] - lo)), 0, nmax);
      l_try[i] = uint8_t(l);
      const float fl = float(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / det;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (m > 0) {
      m = 0;
      s = sum_xl / sum_l2;
    }
    const float err = error_of(s, m, l_try);
    if (err < best) {
      std::memcpy(L, l_try, size_t(n));
      best = err;
      scale = s;
      lo = m;
    }
  }
  *neg_min = -lo;
  return scale;
}

// Symmetric fit x ~ scale * (L - nmax), L - nmax in [-nmax, nmax-1], weights x^2. Starts from the
// grid where the largest-magnitude value lands on -nmax and tries 18 nearby grid densities,
// keeping the one with the best least-squares fit. Returns the scale (sign included).
float fit_scale_symmetric(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, size_t(n));
    return 0.0f;
  }
  auto sums_for = [&](float isc, float* sumlx, float* suml2) {
    *sumlx = *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const float l = float(clamp_int(round_even(isc * x[i]), -nmax, nmax - 1));
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * l;
      *suml2 += w * l * l;
    }
  };
  auto set_levels = [&](float isc) {
    for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clamp_int(round_even(isc * x[i]), -nmax, nmax - 1));
  };
  float iscale = float(-nmax) / max;
  set_levels(iscale);
  float sumlx, suml2;
  sums_for(iscale, &sumlx, &suml2);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(k)) / max;
    sums_for(iscale, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      set_levels(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Packs a 6-bit scale and min for sub-block j into the Q4_K/Q5_K 12-byte layout (blocks.h).
// Sub-blocks must be stored in order 0..7: j >= 4 ORs into bytes written for j - 4.
inline void pack_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* b) {
  if (j < 4) {
    b[j] = ls;
    b[j + 4] = lm;
  } else {
    b[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
    b[j - 4] = uint8_t(b[j - 4] | ((ls >> 4) << 6));
    b[j] = uint8_t(b[j] | ((lm >> 4) << 6));
  }
}

// Shared by Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins. Fills d, dmin, scales
// and the levels L[256] in 0..nmax.
template <class Block>
void quantize_k4_scales(const float* x, Block& y, uint8_t* L, int nmax, float rmin, int nstep) {
  float scales[8], mins[8], weights[32];
  uint8_t l_try[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], l_try, rmin, 0.1f, nstep,
                              false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    // ggml stores the rounded value in a uint8_t before clamping; keep that wrap-around.
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(round_even(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(round_even(inv_min * mins[j])));
    pack_scale_min_k4(j, ls, lm, y.scales);
  }
  y.d = f32_to_fp16(max_scale / 63.f);
  y.dmin = f32_to_fp16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, mn;
    unpack_scale_min_k4(j, y.scales, &sc, &mn);
    const float d = fp16_to_f32(y.d) * float(sc);
    if (d == 0.0f) continue;  // keep the fitted levels
    const float dm = fp16_to_f32(y.dmin) * float(mn);
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = uint8_t(clamp_int(round_even((x[32 * j + l] + dm) / d), 0, nmax));
  }
}

}  // namespace

void quantize_row_q2_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ2_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    uint8_t L[kQK_K], l_try[16];
    float weights[16], scales[16], mins[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(src[16 * j + l]);
      scales[j] = fit_scale_min(16, 3, src + 16 * j, weights, L + 16 * j, &mins[j], l_try, -0.5f,
                                0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(round_even(iscale * scales[j]));
      y[i].d = f32_to_fp16(max_scale / 15.f);
    } else {
      std::memset(y[i].scales, 0, sizeof(y[i].scales));
      y[i].d = f32_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j)
        y[i].scales[j] = uint8_t(y[i].scales[j] | (round_even(iscale * mins[j]) << 4));
      y[i].dmin = f32_to_fp16(max_min / 15.f);
    } else {
      y[i].dmin = f32_to_fp16(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = fp16_to_f32(y[i].d) * float(y[i].scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = fp16_to_f32(y[i].dmin) * float(y[i].scales[j] >> 4);
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = uint8_t(clamp_int(round_even((src[16 * j + l] + dm) / d), 0, 3));
    }
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 32; ++l) {
        const uint8_t* Lh = L + 128 * h + l;
        y[i].qs[32 * h + l] = uint8_t(Lh[0] | (Lh[32] << 2) | (Lh[64] << 4) | (Lh[96] << 6));
      }
  }
}

void quantize_row_q4_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    uint8_t L[kQK_K];
    quantize_k4_scales(src, y[i], L, 15, -1.0f, 20);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_row_q5_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    uint8_t L[kQK_K];
    quantize_k4_scales(src, y[i], L, 31, -0.5f, 15);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int e = 0; e < kQK_K; ++e) {
      const int c = e / 64, l = e % 32, upper = (e / 32) % 2;
      if (upper)
        y[i].qs[32 * c + l] = uint8_t(y[i].qs[32 * c + l] | ((L[e] & 0xF) << 4));
      else
        y[i].qs[32 * c + l] = uint8_t(L[e] & 0xF);
      if (L[e] > 15) y[i].qh[l] = uint8_t(y[i].qh[l] | (1 << (e / 32)));
    }
  }
}

void quantize_row_q6_k(const float* src, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQK_K; ++i, src += kQK_K) {
    int8_t L[kQK_K];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int k = 0; k < 16; ++k) {
      scales[k] = fit_scale_symmetric(16, 32, src + 16 * k, L + 16 * k);
      if (std::fabs(scales[k]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[k]);
        max_scale = scales[k];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[i].d = f32_to_fp16(1 / iscale);
    for (int k = 0; k < 16; ++k) y[i].scales[k] = int8_t(std::min(127, round_even(iscale * scales[k])));
    for (int k = 0; k < 16; ++k) {
      const float d = fp16_to_f32(y[i].d) * float(y[i].scales[k]);
      if (d == 0.0f) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * k + l] = int8_t(clamp_int(round_even(src[16 * k + l] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                        ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace edgeglm::quant::detail
