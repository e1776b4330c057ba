// Importance-weighted grid fitting and packing for the formats whose parameters are one scale
// (and min) per group: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (groups of 32), I4_G64/128, U4_G64/128 and
// the per-row I8_ROW / U8_ROW. Layouts: quant/blocks.h.
//
// Fitting a group (x = values to quantize, w = importance of each column):
//   1. Candidate grids around the plain choice: symmetric formats try d = smax/lo and d = smax/hi
//      (smax = the value of largest magnitude, sign kept; lo/hi the level range, e.g. -8/7) times
//      factors f in [f0, 1]; asymmetric formats clip the range [min, max] by fractions alpha at the
//      bottom and beta at the top. Every candidate scale/min is rounded to its storage precision
//      (fp16 or f32) before the levels are chosen against it, so the loss we rank by is the loss
//      of the bytes we write.
//   2. Candidates are ranked by the weighted loss sum_j w_j (x_j - value_j)^2.
//   3. The best candidates are polished by alternating least squares: with the levels fixed, the
//      weighted least-squares scale (and min) is solved in closed form, rounded to storage, and
//      the levels re-rounded; kept only if the loss drops.
//   With FitContext::v set (GPTQ, exact_group_search), the top candidates of step 2 are re-ranked
//   by the exact GPTQ loss of the group (its own error propagation simulated), and step 3 fits the
//   scale to the simulated targets.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/calibrated_impl.h"

namespace edgeglm::quant::calib {

float grid_loss(const float* x, const float* w, int64_t n, const Grid& g, int16_t* q) {
  float loss = 0;
  for (int64_t j = 0; j < n; ++j) {
    const int16_t l = grid_round(g, x[j]);
    const float d = x[j] - grid_value(g, l);
    loss += w[j] * d * d;
    if (q) q[j] = l;
  }
  return loss;
}

float grid_loss_exact(const FitContext& c, const Grid& g, int16_t* q, float* t) {
  float buf[256];
  float* tt = t ? t : buf;
  std::memcpy(tt, c.x, size_t(c.n) * sizeof(float));
  float loss = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    const int16_t l = grid_round(g, tt[i]);
    const float val = grid_value(g, l);
    const float d = tt[i] - val;
    loss += c.w[i] * d * d;
    if (q) q[i] = l;
    const float e = c.w0[i] - val;
    if (e == 0.0f) continue;
    const float* vi = c.v + i * c.ld;
    for (int64_t j = i + 1; j < c.n; ++j) tt[j] += e * vi[j];
  }
  return loss;
}

namespace {

enum class Store { kNone, kF16, kF32 };

inline float store_round(Store s, float v) { return s == Store::kF16 ? round_fp16(v) : v; }

// The candidate machinery shared by every scale fit. `make(i)` builds candidate grid i;
// `n_exact` is how many of the best static candidates are re-ranked by the exact loss.
struct Search {
  Search(const FitContext& ctx, bool ex) : c(ctx), exact(ex) {
    if (c.n > 256) {
      q_big.resize(size_t(c.n));
      t_big.resize(size_t(c.n));
      q = q_big.data();
      t = t_big.data();
    }
  }
  const FitContext& c;
  bool exact;
  int16_t q_small[256];
  float t_small[256];
  std::vector<int16_t> q_big;  // whole-row groups (I8_ROW, U8_ROW)
  std::vector<float> t_big;
  int16_t* q = q_small;
  float* t = t_small;

  float loss(const Grid& g, bool keep) {
    if (exact) return grid_loss_exact(c, g, keep ? q : nullptr, keep ? t : nullptr);
    const float r = grid_loss(c.x, c.w, c.n, g, keep ? q : nullptr);
    if (keep) std::memcpy(t, c.x, size_t(c.n) * sizeof(float));
    return r;
  }
};

constexpr int kExactTop = 4;  // static candidates re-ranked by the exact loss

// Keeps the k best (loss, grid) pairs, best first.
struct TopK {
  float loss[kExactTop];
  Grid grid[kExactTop];
  int n = 0;
  void add(float l, const Grid& g) {
    int pos = n < kExactTop ? n : kExactTop;
    while (pos > 0 && loss[pos - 1] > l) --pos;
    if (pos >= kExactTop) return;
    const int last = std::min(n, kExactTop - 1);
    for (int k = last; k > pos; --k) {
      loss[k] = loss[k - 1];
      grid[k] = grid[k - 1];
    }
    loss[pos] = l;
    grid[pos] = g;
    n = std::min(n + 1, kExactTop);
  }
};

// The candidate with the least loss: the static weighted loss, or (exact) the group's own
// error-propagated loss re-evaluated for each of the top candidates.
Grid best_of(const TopK& top, Search& s, bool exact, float* best_loss) {
  Grid best = top.grid[0];
  *best_loss = exact ? s.loss(best, false) : top.loss[0];
  for (int k = 1; exact && k < top.n; ++k) {
    const float l = s.loss(top.grid[k], false);
    if (l < *best_loss) {
      *best_loss = l;
      best = top.grid[k];
    }
  }
  return best;
}

// Symmetric: value = d * q, q in [lo, hi]. Returns the best loss; *out the grid.
float search_symmetric(const FitContext& c, int lo, int hi, Store st, float f0, float fstep,
                       int nf, Grid* out) {
  float amax = 0, smax = 0;
  for (int64_t j = 0; j < c.n; ++j)
    if (std::fabs(c.x[j]) > amax) {
      amax = std::fabs(c.x[j]);
      smax = c.x[j];
    }
  const Grid zero{0, 0, int16_t(lo), int16_t(hi)};
  if (amax == 0.0f) {
    *out = zero;
    return 0;
  }
  auto grid_of = [&](float d) { return Grid{store_round(st, d), 0, int16_t(lo), int16_t(hi)}; };
  const bool exact = c.v != nullptr;
  Search s(c, exact);
  TopK top;
  const int n_base = lo == -hi ? 1 : 2;
  for (int b = 0; b < n_base; ++b) {
    const float base = smax / float(b == 0 ? lo : hi);
    for (int k = 0; k < nf; ++k) {
      const Grid g = grid_of(base * (f0 + fstep * float(k)));
      if (g.a == 0.0f || !std::isfinite(g.a)) continue;
      top.add(grid_loss(c.x, c.w, c.n, g), g);
    }
  }
  if (top.n == 0) {
    *out = zero;
    return grid_loss(c.x, c.w, c.n, zero);
  }
  float best_loss = 0;
  Grid best = best_of(top, s, exact, &best_loss);
  for (int it = 0; it < 2; ++it) {
    s.loss(best, true);
    double sqt = 0, sqq = 0;
    for (int64_t j = 0; j < c.n; ++j) {
      sqt += double(c.w[j]) * s.q[j] * s.t[j];
      sqq += double(c.w[j]) * s.q[j] * s.q[j];
    }
    if (sqq <= 0) break;
    const Grid g = grid_of(float(sqt / sqq));
    if (g.a == 0.0f || !std::isfinite(g.a)) break;
    const float l = s.loss(g, false);
    if (!(l < best_loss)) break;
    best_loss = l;
    best = g;
  }
  *out = best;
  return best_loss;
}

// Affine: value = a * q + b, q in [0, nmax]; with b_nonpos the offset is kept <= 0 (k-quants).
float search_affine(const FitContext& c, int nmax, Store st, bool b_nonpos, const float* clips,
                    int n_clips, Grid* out) {
  float mn = c.x[0], mx = c.x[0];
  for (int64_t j = 1; j < c.n; ++j) {
    mn = std::min(mn, c.x[j]);
    mx = std::max(mx, c.x[j]);
  }
  if (b_nonpos) mn = std::min(mn, 0.0f);
  auto grid_of = [&](float a, float b) {
    if (b_nonpos) b = std::min(b, 0.0f);
    return Grid{store_round(st, a), store_round(st, b), 0, int16_t(nmax)};
  };
  if (mx <= mn) {
    *out = grid_of(0, mn);
    return grid_loss(c.x, c.w, c.n, *out);
  }
  const bool exact = c.v != nullptr;
  Search s(c, exact);
  TopK top;
  const float r = mx - mn;
  for (int i = 0; i < n_clips; ++i)
    for (int k = 0; k < n_clips; ++k) {
      const float lo = mn + clips[i] * r, hi = mx - clips[k] * r;
      if (hi <= lo) continue;
      const Grid g = grid_of((hi - lo) / float(nmax), lo);
      if (!std::isfinite(g.a) || !std::isfinite(g.b)) continue;
      top.add(grid_loss(c.x, c.w, c.n, g), g);
    }
  if (top.n == 0) {
    *out = grid_of(0, mn);
    return grid_loss(c.x, c.w, c.n, *out);
  }
  float best_loss = 0;
  Grid best = best_of(top, s, exact, &best_loss);
  for (int it = 0; it < 3; ++it) {
    s.loss(best, true);
    // Weighted least squares of t ~ a*q + b; then b re-solved for the stored (rounded) a.
    double sw = 0, sq = 0, sqq = 0, st_ = 0, sqt = 0;
    for (int64_t j = 0; j < c.n; ++j) {
      const double wj = c.w[j], qj = s.q[j], tj = s.t[j];
      sw += wj;
      sq += wj * qj;
      sqq += wj * qj * qj;
      st_ += wj * tj;
      sqt += wj * qj * tj;
    }
    const double det = sw * sqq - sq * sq;
    if (!(det > 0)) break;
    double a = (sw * sqt - sq * st_) / det;
    double b = (sqq * st_ - sq * sqt) / det;
    if (b_nonpos && b > 0) {
      b = 0;
      a = sqt / sqq;
    }
    const float a_st = store_round(st, float(a));
    if (!b_nonpos) b = (st_ - double(a_st) * sq) / sw;
    const Grid g = grid_of(a_st, float(b));
    if (!std::isfinite(g.a) || !std::isfinite(g.b) || g.a <= 0.0f) break;
    const float l = s.loss(g, false);
    if (!(l < best_loss)) break;
    best_loss = l;
    best = g;
  }
  *out = best;
  return best_loss;
}

// ---- per-format descriptors ----

struct Spec {
  DType t;
  bool symmetric;
  int lo, hi;  // symmetric: signed level range; affine: lo = 0, hi = nmax
  Store store;
  int64_t group;  // 0 = whole row
};

constexpr Spec kSpecs[] = {
    {DType::Q4_0, true, -8, 7, Store::kF16, 32},      {DType::Q4_1, false, 0, 15, Store::kF16, 32},
    {DType::Q5_0, true, -16, 15, Store::kF16, 32},    {DType::Q5_1, false, 0, 31, Store::kF16, 32},
    {DType::Q8_0, true, -127, 127, Store::kF16, 32},  {DType::I8_ROW, true, -127, 127, Store::kF32, 0},
    {DType::U8_ROW, false, 0, 255, Store::kF32, 0},   {DType::I4_G64, true, -8, 7, Store::kF16, 64},
    {DType::I4_G128, true, -8, 7, Store::kF16, 128},  {DType::U4_G64, false, 0, 15, Store::kF16, 64},
    {DType::U4_G128, false, 0, 15, Store::kF16, 128},
};

const Spec* spec_of(DType t) {
  for (const Spec& s : kSpecs)
    if (s.t == t) return &s;
  return nullptr;
}

// Candidate sets per bit width. Finer grids need only small corrections of the plain choice;
// 4-bit groups gain from clipping up to ~25% of the range when the importance is uneven.
constexpr float kClips4[] = {0.0f, 0.02f, 0.05f, 0.09f, 0.14f, 0.2f};
constexpr float kClips5[] = {0.0f, 0.02f, 0.05f, 0.09f};
constexpr float kClips8[] = {0.0f, 0.01f, 0.03f};

template <DType T>
void fit_generic(const FitContext& c, GroupParams* p, Grid* grids) {
  const Spec& s = *spec_of(T);
  Grid g;
  if (s.symmetric) {
    if (s.hi < 20)
      search_symmetric(c, s.lo, s.hi, s.store, s.hi < 10 ? 0.72f : 0.84f, 0.02f, s.hi < 10 ? 15 : 9,
                       &g);
    else
      search_symmetric(c, s.lo, s.hi, s.store, 0.94f, 0.01f, 7, &g);
  } else if (s.hi < 20) {
    search_affine(c, s.hi, s.store, false, kClips4, 6, &g);
  } else if (s.hi < 40) {
    search_affine(c, s.hi, s.store, false, kClips5, 4, &g);
  } else {
    search_affine(c, s.hi, s.store, false, kClips8, 3, &g);
  }
  grids[0] = g;
  p->d = g.a;
  p->m = g.b;
  p->dh = f32_to_fp16(g.a);  // exact: g.a is already an fp16 value for fp16 formats
  p->mh = f32_to_fp16(g.b);
}

// Linear form of a fitted group (calibrated_impl.h): value = d * q (+ m * 1).
template <DType T>
int basis_generic(const int16_t* l, const GroupParams& p, int64_t n, float* c, float* m,
                  double* alpha, double* beta) {
  const bool sym = spec_of(T)->symmetric;
  for (int64_t j = 0; j < n; ++j) {
    c[j] = float(l[j]);
    m[j] = sym ? 0.0f : 1.0f;
  }
  *alpha = p.d;
  *beta = sym ? 0.0 : p.m;
  return sym ? 1 : 2;
}

template <DType T>
void set_generic(GroupParams* p, double alpha, double beta) {
  const Spec& s = *spec_of(T);
  p->d = store_round(s.store, float(alpha));
  p->m = s.symmetric ? 0.0f : store_round(s.store, float(beta));
  p->dh = f32_to_fp16(p->d);
  p->mh = f32_to_fp16(p->m);
}

template <DType T>
void grids_generic(const GroupParams& p, Grid* grids) {
  const Spec& s = *spec_of(T);
  grids[0] = Grid{p.d, s.symmetric ? 0.0f : p.m, s.lo, s.hi};
}

// ---- packers (layouts in quant/blocks.h) ----

// 32 levels of a split-nibble sub-block: element j (< 16) low nibble of qs[j], j + 16 high.
inline void pack_nibbles32(const int16_t* l, int off, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t((l[j] + off) | ((l[j + 16] + off) << 4));
}

void pack_q4_0(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockQ4_0*>(out);
  for (int64_t i = 0; i < cols / 32; ++i) {
    b[i].d = p[i].dh;
    pack_nibbles32(l + 32 * i, 8, b[i].qs);
  }
}
void pack_q4_1(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockQ4_1*>(out);
  for (int64_t i = 0; i < cols / 32; ++i) {
    b[i].d = p[i].dh;
    b[i].m = p[i].mh;
    pack_nibbles32(l + 32 * i, 0, b[i].qs);
  }
}
// Q5: low 4 bits as Q4_0, bit 4 of element e in bit e of the little-endian qh.
inline void pack_q5(const int16_t* l, int off, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    const int q0 = l[j] + off, q1 = l[j + 16] + off;
    qs[j] = uint8_t((q0 & 0xF) | ((q1 & 0xF) << 4));
    qh |= uint32_t(q0 >> 4) << j;
    qh |= uint32_t(q1 >> 4) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}
void pack_q5_0(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockQ5_0*>(out);
  for (int64_t i = 0; i < cols / 32; ++i) {
    b[i].d = p[i].dh;
    pack_q5(l + 32 * i, 16, b[i].qs, b[i].qh);
  }
}
void pack_q5_1(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockQ5_1*>(out);
  for (int64_t i = 0; i < cols / 32; ++i) {
    b[i].d = p[i].dh;
    b[i].m = p[i].mh;
    pack_q5(l + 32 * i, 0, b[i].qs, b[i].qh);
  }
}
void pack_q8_0(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < cols / 32; ++i) {
    b[i].d = p[i].dh;
    for (int j = 0; j < 32; ++j) b[i].qs[j] = int8_t(l[32 * i + j]);
  }
}
void pack_i8_row(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  const RowI8Header h{p[0].d};
  std::memcpy(out, &h, sizeof h);
  for (int64_t j = 0; j < cols; ++j) out[sizeof h + j] = uint8_t(int8_t(l[j]));
}
void pack_u8_row(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  const RowU8Header h{p[0].d, p[0].m};
  std::memcpy(out, &h, sizeof h);
  for (int64_t j = 0; j < cols; ++j) out[sizeof h + j] = uint8_t(l[j]);
}
template <int G>
void pack_i4g(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockI4G<G>*>(out);
  for (int64_t i = 0; i < cols / G; ++i) {
    b[i].d = p[i].dh;
    for (int s = 0; s < G / 32; ++s) pack_nibbles32(l + G * i + 32 * s, 8, b[i].qs + 16 * s);
  }
}
template <int G>
void pack_u4g(const int16_t* l, const GroupParams* p, int64_t cols, uint8_t* out) {
  auto* b = reinterpret_cast<BlockU4G<G>*>(out);
  for (int64_t i = 0; i < cols / G; ++i) {
    b[i].d = p[i].dh;
    b[i].m = p[i].mh;
    for (int s = 0; s < G / 32; ++s) pack_nibbles32(l + G * i + 32 * s, 0, b[i].qs + 16 * s);
  }
}

constexpr FormatOps kOps[] = {
    {DType::Q4_0, 32, 32, fit_generic<DType::Q4_0>, nullptr, pack_q4_0, basis_generic<DType::Q4_0>,
     set_generic<DType::Q4_0>, grids_generic<DType::Q4_0>},
    {DType::Q4_1, 32, 32, fit_generic<DType::Q4_1>, nullptr, pack_q4_1, basis_generic<DType::Q4_1>,
     set_generic<DType::Q4_1>, grids_generic<DType::Q4_1>},
    {DType::Q5_0, 32, 32, fit_generic<DType::Q5_0>, nullptr, pack_q5_0, basis_generic<DType::Q5_0>,
     set_generic<DType::Q5_0>, grids_generic<DType::Q5_0>},
    {DType::Q5_1, 32, 32, fit_generic<DType::Q5_1>, nullptr, pack_q5_1, basis_generic<DType::Q5_1>,
     set_generic<DType::Q5_1>, grids_generic<DType::Q5_1>},
    {DType::Q8_0, 32, 32, fit_generic<DType::Q8_0>, nullptr, pack_q8_0, basis_generic<DType::Q8_0>,
     set_generic<DType::Q8_0>, grids_generic<DType::Q8_0>},
    {DType::I8_ROW, 0, 0, fit_generic<DType::I8_ROW>, nullptr, pack_i8_row, basis_generic<DType::I8_ROW>,
     set_generic<DType::I8_ROW>, grids_generic<DType::I8_ROW>},
    {DType::U8_ROW, 0, 0, fit_generic<DType::U8_ROW>, nullptr, pack_u8_row, basis_generic<DType::U8_ROW>,
     set_generic<DType::U8_ROW>, grids_generic<DType::U8_ROW>},
    {DType::I4_G64, 64, 64, fit_generic<DType::I4_G64>, nullptr, pack_i4g<64>, basis_generic<DType::I4_G64>,
     set_generic<DType::I4_G64>, grids_generic<DType::I4_G64>},
    {DType::I4_G128, 128, 128, fit_generic<DType::I4_G128>, nullptr, pack_i4g<128>, basis_generic<DType::I4_G128>,
     set_generic<DType::I4_G128>, grids_generic<DType::I4_G128>},
    {DType::U4_G64, 64, 64, fit_generic<DType::U4_G64>, nullptr, pack_u4g<64>, basis_generic<DType::U4_G64>,
     set_generic<DType::U4_G64>, grids_generic<DType::U4_G64>},
    {DType::U4_G128, 128, 128, fit_generic<DType::U4_G128>, nullptr, pack_u4g<128>, basis_generic<DType::U4_G128>,
     set_generic<DType::U4_G128>, grids_generic<DType::U4_G128>},
};

}  // namespace

const FormatOps* legacy_format_ops(DType t) {
  for (const FormatOps& f : kOps)
    if (f.dtype == t) return &f;
  return nullptr;
}

float fit_affine(const float* x, const float* w, int64_t n, int nmax, bool min_nonpositive,
                 float* a, float* b) {
  FitContext c;
  c.x = x;
  c.w = w;
  c.n = n;
  Grid g;
  const float l = nmax < 20 ? search_affine(c, nmax, Store::kNone, min_nonpositive, kClips4, 6, &g)
                            : search_affine(c, nmax, Store::kNone, min_nonpositive, kClips5, 4, &g);
  *a = g.a;
  *b = g.b;
  return l;
}

float fit_symmetric(const float* x, const float* w, int64_t n, int lo, int hi, float* a) {
  FitContext c;
  c.x = x;
  c.w = w;
  c.n = n;
  Grid g;
  const float l = search_symmetric(c, lo, hi, Store::kNone, 0.8f, 0.02f, 12, &g);
  *a = g.a;
  return l;
}

}  // namespace edgeglm::quant::calib
