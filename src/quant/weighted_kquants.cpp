// Importance-weighted fitting and packing of the k-quants Q4_K, Q5_K (8 sub-blocks of 32 with
// 6-bit scale and min under fp16 d / dmin) and Q6_K (16 sub-blocks of 16 with int8 scales under an
// fp16 d). Layouts: quant/blocks.h. Our own method (the idea of weighting by an importance matrix
// is llama.cpp's "imatrix"; the search here is not theirs):
//   1. Every sub-block gets a float scale (and min <= 0) by the weighted candidate search of
//      weighted_grids.cpp (fit_affine / fit_symmetric).
//   2. The super-block scale(s) map the largest sub-block scale (min) to the top 6-bit / int8 code;
//      a few slightly smaller super-scales are tried too (keeping more resolution for the typical
//      sub-block at the price of clipping the largest one), rounded to fp16 first.
//   3. For each sub-block the integer scale (and min) codes are chosen from a small neighbourhood
//      of their rounded values by the weighted loss of the sub-block with re-rounded levels, so
//      the rounding of the codes is decided by what it does to the weights, not to the scale.
// Within GPTQ in natural order (act_order = false), refit_unit repeats step 3 for one sub-block
// from the error-updated values when the sweep reaches it (d and dmin stay as fitted at the
// super-block's first column); measured GPTQ/plain on the mild test layer without polish: Q4_K
// 0.531 with it, 0.557 without; Q6_K 0.513 / 0.543. With act order (the default) all super-blocks
// are fitted up front from the original weights.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/calibrated_impl.h"

namespace edgeglm::quant::calib {
namespace {

inline int clampi(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// ---- Q4_K / Q5_K ----

// Grid of a sub-block exactly as the dequantizer evaluates it: (d * sc) * q - (dmin * mn).
inline Grid k4_grid(float d, float dmin, int sc, int mn, int nmax) {
  return Grid{d * float(sc), -(dmin * float(mn)), 0, int16_t(nmax)};
}

// Best (sc, mn) codes for one sub-block under fixed d / dmin, searching radius r around
// (sc0, mn0). Returns the loss.
float best_codes_k4(const float* x, const float* w, int n, float d, float dmin, int sc0, int mn0,
                    int r, int nmax, int* sc_out, int* mn_out) {
  float best = INFINITY;
  for (int sc = std::max(0, sc0 - r); sc <= std::min(63, sc0 + r); ++sc)
    for (int mn = std::max(0, mn0 - r); mn <= std::min(63, mn0 + r); ++mn) {
      const float l = grid_loss(x, w, n, k4_grid(d, dmin, sc, mn, nmax));
      if (l < best) {
        best = l;
        *sc_out = sc;
        *mn_out = mn;
      }
      if (dmin == 0.0f) break;  // every mn code decodes the same
    }
  return best;
}

template <int NMAX>
void fit_k4(const FitContext& c, GroupParams* p, Grid* grids) {
  float s[8], m[8];
  float max_s = 0, max_m = 0;
  for (int j = 0; j < 8; ++j) {
    float a, b;
    fit_affine(c.x + 32 * j, c.w + 32 * j, 32, NMAX, true, &a, &b);
    s[j] = std::max(a, 0.0f);
    m[j] = -b;
    max_s = std::max(max_s, s[j]);
    max_m = std::max(max_m, m[j]);
  }
  const float dmin = round_fp16(max_m / 63.f);
  float best_total = INFINITY;
  constexpr float kShrink[] = {1.0f, 0.96f, 0.92f};
  for (float f : kShrink) {
    const float d = round_fp16(max_s * f / 63.f);
    float total = 0;
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) {
      const int sc0 = d > 0 ? clampi(int(std::lrintf(s[j] / d)), 0, 63) : 0;
      const int mn0 = dmin > 0 ? clampi(int(std::lrintf(m[j] / dmin)), 0, 63) : 0;
      total += best_codes_k4(c.x + 32 * j, c.w + 32 * j, 32, d, dmin, sc0, mn0, 1, NMAX, &sc[j],
                             &mn[j]);
    }
    if (total < best_total) {
      best_total = total;
      p->dh = f32_to_fp16(d);
      p->mh = f32_to_fp16(dmin);
      for (int j = 0; j < 8; ++j) {
        p->sc[j] = int8_t(sc[j]);
        p->mn[j] = uint8_t(mn[j]);
      }
    }
    if (max_s == 0.0f) break;
  }
  const float d = fp16_to_f32(p->dh), dm = fp16_to_f32(p->mh);
  for (int j = 0; j < 8; ++j) grids[j] = k4_grid(d, dm, p->sc[j], p->mn[j], NMAX);
}

template <int NMAX>
void refit_k4(const FitContext& c, int u, GroupParams* p, Grid* grid) {
  const float d = fp16_to_f32(p->dh), dmin = fp16_to_f32(p->mh);
  int sc = p->sc[u], mn = p->mn[u];
  best_codes_k4(c.x, c.w, int(c.n), d, dmin, p->sc[u], p->mn[u], 1, NMAX, &sc, &mn);
  p->sc[u] = int8_t(sc);
  p->mn[u] = uint8_t(mn);
  *grid = k4_grid(d, dmin, sc, mn, NMAX);
}

// The Q4_K/Q5_K 12-byte scale layout (blocks.h): 6-bit sc/mn of sub-block j.
void pack_scales_k4(const GroupParams& p, uint8_t* b) {
  std::memset(b, 0, kKScaleSize);
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls = uint8_t(p.sc[j]), lm = p.mn[j];
    if (j < 4) {
      b[j] = uint8_t(b[j] | ls);
      b[j + 4] = uint8_t(b[j + 4] | lm);
    } else {
      b[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      b[j - 4] = uint8_t(b[j - 4] | ((ls >> 4) << 6));
      b[j] = uint8_t(b[j] | ((lm >> 4) << 6));
    }
  }
}

void pack_q4_k(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* y = reinterpret_cast<BlockQ4_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i, l += kQK_K) {
    y[i].d = p[i].dh;
    y[i].dmin = p[i].mh;
    pack_scales_k4(p[i], y[i].scales);
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 32; ++k)
        y[i].qs[32 * c + k] = uint8_t(l[64 * c + k] | (l[64 * c + 32 + k] << 4));
  }
}

void pack_q5_k(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* y = reinterpret_cast<BlockQ5_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i, l += kQK_K) {
    y[i].d = p[i].dh;
    y[i].dmin = p[i].mh;
    pack_scales_k4(p[i], y[i].scales);
    std::memset(y[i].qh, 0, sizeof(y[i].qh));
    for (int c = 0; c < 4; ++c)
      for (int k = 0; k < 32; ++k) {
        const int lo = l[64 * c + k], hi = l[64 * c + 32 + k];
        y[i].qs[32 * c + k] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
        y[i].qh[k] = uint8_t(y[i].qh[k] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
  }
}

// ---- Q6_K ----

inline Grid k6_grid(float d, int sc) { return Grid{d * float(sc), 0, -32, 31}; }

float best_code_k6(const float* x, const float* w, int n, float d, int sc0, int r, int* sc_out) {
  float best = INFINITY;
  for (int sc = std::max(-127, sc0 - r); sc <= std::min(127, sc0 + r); ++sc) {
    const float l = grid_loss(x, w, n, k6_grid(d, sc));
    if (l < best) {
      best = l;
      *sc_out = sc;
    }
  }
  return best;
}

void fit_q6_k(const FitContext& c, GroupParams* p, Grid* grids) {
  float s[16];
  float amax = 0;
  for (int k = 0; k < 16; ++k) {
    fit_symmetric(c.x + 16 * k, c.w + 16 * k, 16, -32, 31, &s[k]);
    amax = std::max(amax, std::fabs(s[k]));
  }
  const float d = round_fp16(amax / 127.f);
  p->dh = f32_to_fp16(d);
  for (int k = 0; k < 16; ++k) {
    int sc = 0;
    if (d > 0) {
      const int sc0 = clampi(int(std::lrintf(s[k] / d)), -127, 127);
      best_code_k6(c.x + 16 * k, c.w + 16 * k, 16, d, sc0, 2, &sc);
    }
    p->sc[k] = int8_t(sc);
    grids[k] = k6_grid(d, sc);
  }
}

void refit_q6_k(const FitContext& c, int u, GroupParams* p, Grid* grid) {
  const float d = fp16_to_f32(p->dh);
  if (d == 0.0f) return;
  int sc = p->sc[u];
  best_code_k6(c.x, c.w, int(c.n), d, p->sc[u], 2, &sc);
  p->sc[u] = int8_t(sc);
  *grid = k6_grid(d, sc);
}

void pack_q6_k(const int16_t* lv, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* y = reinterpret_cast<BlockQ6_K*>(out);
  for (int64_t i = 0; i < cols / kQK_K; ++i, lv += kQK_K) {
    y[i].d = p[i].dh;
    for (int k = 0; k < 16; ++k) y[i].scales[k] = p[i].sc[k];
    for (int h = 0; h < 2; ++h) {
      uint8_t* ql = y[i].ql + 64 * h;
      uint8_t* qh = y[i].qh + 32 * h;
      const int16_t* L = lv + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int a = L[l] + 32, b = L[l + 32] + 32, c = L[l + 64] + 32, e = L[l + 96] + 32;
        ql[l] = uint8_t((a & 0xF) | ((c & 0xF) << 4));
        ql[l + 32] = uint8_t((b & 0xF) | ((e & 0xF) << 4));
        qh[l] = uint8_t((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
      }
    }
  }
}

// Linear forms (calibrated_impl.h): value = d * (sc * q) + dmin * (-mn), or d * (sc * q).
int basis_k4(const int16_t* l, const GroupParams& p, int64_t n, float* c, float* m, double* alpha,
             double* beta) {
  for (int64_t j = 0; j < n; ++j) {
    c[j] = float(p.sc[j / 32]) * float(l[j]);
    m[j] = -float(p.mn[j / 32]);
  }
  *alpha = fp16_to_f32(p.dh);
  *beta = fp16_to_f32(p.mh);
  return 2;
}
void set_k4(GroupParams* p, double alpha, double beta) {
  p->dh = f32_to_fp16(float(alpha));
  p->mh = f32_to_fp16(float(beta));
}
int basis_q6_k(const int16_t* l, const GroupParams& p, int64_t n, float* c, float* m,
               double* alpha, double* beta) {
  for (int64_t j = 0; j < n; ++j) {
    c[j] = float(p.sc[j / 16]) * float(l[j]);
    m[j] = 0.0f;
  }
  *alpha = fp16_to_f32(p.dh);
  *beta = 0;
  return 1;
}
void set_q6_k(GroupParams* p, double alpha, double) { p->dh = f32_to_fp16(float(alpha)); }

template <int NMAX>
void grids_k4(const GroupParams& p, Grid* grids) {
  const float d = fp16_to_f32(p.dh), dmin = fp16_to_f32(p.mh);
  for (int j = 0; j < 8; ++j) grids[j] = k4_grid(d, dmin, p.sc[j], p.mn[j], NMAX);
}
void grids_q6_k(const GroupParams& p, Grid* grids) {
  const float d = fp16_to_f32(p.dh);
  for (int k = 0; k < 16; ++k) grids[k] = k6_grid(d, p.sc[k]);
}

constexpr FormatOps kOps[] = {
    {DType::Q4_K, 256, 32, fit_k4<15>, refit_k4<15>, pack_q4_k, basis_k4, set_k4, grids_k4<15>},
    {DType::Q5_K, 256, 32, fit_k4<31>, refit_k4<31>, pack_q5_k, basis_k4, set_k4, grids_k4<31>},
    {DType::Q6_K, 256, 16, fit_q6_k, refit_q6_k, pack_q6_k, basis_q6_k, set_q6_k, grids_q6_k},
};

}  // namespace

const FormatOps* kquant_format_ops(DType t) {
  for (const FormatOps& f : kOps)
    if (f.dtype == t) return &f;
  return nullptr;
}

}  // namespace edgeglm::quant::calib
