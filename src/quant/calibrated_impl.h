// Internal to the calibrated quantizer (calibrated.h): the per-format descriptors that keep the
// GPTQ driver generic, and the shared fitting helpers.
//
// Every supported format is, element by element, an affine grid: value = a * q + b with an
// integer level q in [lo, hi]. The grid is constant over a "unit" of columns (32 for Q4_0 ..
// Q8_0, a 32/16-element sub-block of a k-quant, a whole group of I4_G*/U4_G*, a whole row of
// I8_ROW/U8_ROW), and the parameters stored in the bytes are fitted per "group" (a block, a
// k-quant super-block, a row), which holds one or more units.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/thread_pool.h"

namespace edgeglm::quant::calib {

// value = a * float(q) + b, q in [lo, hi]. a and b are the exact float factors the reference
// dequantizer multiplies/adds, so a*q + b reproduces its output bit for bit. ia = 1/a (0 if a == 0).
struct Grid {
  Grid() = default;
  Grid(float a_, float b_, int lo_, int hi_)
      : a(a_), b(b_), ia(a_ != 0.0f ? 1.0f / a_ : 0.0f), lo(int16_t(lo_)), hi(int16_t(hi_)) {}
  float a = 0, b = 0, ia = 0;
  int16_t lo = 0, hi = 0;
};

// Nearest level of v on grid g (a == 0: every level decodes to b; take the one nearest 0).
// Rounds half to even by the 1.5 * 2^23 trick: exact for |u| < 2^22, which the clamp ensures, and
// unlike nearbyintf it needs no SSE4.1 and no libm call.
inline int16_t grid_round(const Grid& g, float v) {
  float u = (v - g.b) * g.ia;
  const float lo = float(g.lo), hi = float(g.hi);
  u = u < lo ? lo : (u > hi ? hi : u);
  if (!(u == u)) u = 0;  // inf * 0 when a == 0
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  u = (u + kMagic) - kMagic;
  if (g.a == 0.0f) u = lo > 0 ? lo : (hi < 0 ? hi : 0.0f);
  return int16_t(u);
}
inline float grid_value(const Grid& g, int16_t q) { return g.a * float(q) + g.b; }

// What the packer writes for one parameter group.
struct GroupParams {
  float d = 0, m = 0;        // I8_ROW / U8_ROW f32 header
  uint16_t dh = 0, mh = 0;   // fp16 d and m (legacy, I4/U4); d and dmin (k-quants)
  int8_t sc[16] = {};        // k-quant sub-block scales (Q4_K/Q5_K: 0..63, Q6_K: -127..127)
  uint8_t mn[16] = {};       // Q4_K/Q5_K sub-block mins (0..63)
};

// Inputs for fitting one parameter group (or one unit, for refit_unit) of n columns.
struct FitContext {
  const float* x = nullptr;   // (n) current, error-updated values to be quantized
  const float* w = nullptr;   // (n) importance of each column's squared rounding error
  int64_t n = 0;
  // Exact GPTQ group loss (optional; all null/0 when unused): the group's own error propagation
  // is simulated for every candidate grid. w0 (n) original weights, v points at V[i0][i0] of the
  // normalized factor with row stride ld (calibrated.h, CalibHessian::v).
  const float* w0 = nullptr;
  const float* v = nullptr;
  int64_t ld = 0;
};

struct FormatOps {
  DType dtype;
  int64_t group;  // columns per parameter group; 0 = the whole row
  int64_t unit;   // columns per grid; 0 = the whole row
  // Fits a group's parameters; fills one Grid per unit of the group.
  void (*fit)(const FitContext& ctx, GroupParams* p, Grid* grids);
  // Optional: re-fits unit u of a fitted group from the current values of its columns, keeping
  // the group-wide fields (k-quants: the sub-block scale/min under fixed d and dmin).
  void (*refit_unit)(const FitContext& ctx, int u, GroupParams* p, Grid* grid);
  // Writes a row: levels (cols, in each column's [lo, hi]), params (one per group).
  void (*pack)(const int16_t* levels, const GroupParams* params, int64_t cols, uint8_t* out);
  // Optional, for the least-squares rescaling after GPTQ (gptq_refine.cpp): with its integer
  // codes fixed, a group's values are linear in one or two stored floats, value_j = alpha * c_j
  // + beta * m_j (alpha = the scale d, beta = the min / dmin). linear_basis fills c and m (n each;
  // m all zero without a beta) and the current alpha, beta; returns the number of free floats.
  int (*linear_basis)(const int16_t* levels, const GroupParams& p, int64_t n, float* c, float* m,
                      double* alpha, double* beta) = nullptr;
  // Stores alpha, beta rounded to their storage precision.
  void (*set_linear)(GroupParams* p, double alpha, double beta) = nullptr;
  // The grids (one per unit) that a group's stored params decode to.
  void (*grids_of)(const GroupParams& p, Grid* grids) = nullptr;
};

// weighted_grids.cpp: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 I8_ROW U8_ROW I4_G64 I4_G128 U4_G64 U4_G128.
const FormatOps* legacy_format_ops(DType t);
// weighted_kquants.cpp: Q4_K Q5_K Q6_K.
const FormatOps* kquant_format_ops(DType t);

inline const FormatOps* format_ops(DType t) {
  const FormatOps* f = legacy_format_ops(t);
  return f ? f : kquant_format_ops(t);
}

// ---- shared fitting helpers (weighted_grids.cpp) ----

// v rounded to the nearest fp16 value (what the block stores), as a float.
inline float round_fp16(float v) { return fp16_to_f32(f32_to_fp16(v)); }

// Weighted squared rounding error of x on grid g (levels to q when non-null).
float grid_loss(const float* x, const float* w, int64_t n, const Grid& g, int16_t* q = nullptr);

// Exact GPTQ loss of one group on grid g: columns are rounded in order and each error
// (w0 - value) is propagated to the later columns of the group through v; the loss is
// sum w_i (target_i - value_i)^2. Final targets to t (n) when non-null.
float grid_loss_exact(const FitContext& c, const Grid& g, int16_t* q = nullptr, float* t = nullptr);

// Affine fit with levels 0..nmax (value = a*q + b), weighted, optionally b <= 0 (k-quant mins).
// The float result before any storage rounding; returns the weighted loss.
float fit_affine(const float* x, const float* w, int64_t n, int nmax, bool min_nonpositive,
                 float* a, float* b);
// Symmetric fit value = a*q, q in [lo, hi]; a may be negative. Returns the weighted loss.
float fit_symmetric(const float* x, const float* w, int64_t n, int lo, int hi, float* a);

}  // namespace edgeglm::quant::calib

namespace edgeglm::quant {
struct CalibHessian;
}

namespace edgeglm::quant::calib {

// What CalibOptions::damp is a fraction of (gptq_factor.cpp): median or mean of diag(H) (n x n).
double damping_reference(const float* h, int64_t n, bool median);

// The column sweep shared by GPTQ and weighted rounding (gptq.cpp).
struct SweepArgs {
  const FormatOps* f = nullptr;
  const float* w = nullptr;  // (rows, cols)
  int64_t rows = 0, cols = 0;
  const float* fit_w = nullptr;       // (cols) group-search weights, original column order
  const CalibHessian* hs = nullptr;   // nullptr: no error propagation (weighted rounding)
  int64_t block_cols = 128;
  bool exact = false;                 // exact group loss in the legacy searches (needs hs)
  int polish = 0;                     // polish passes after the sweep (needs hs->h)
  uint8_t* out = nullptr;             // rows * row_bytes
  size_t row_bytes = 0;
};
void sweep(const SweepArgs& a, ThreadPool* pool);

// Least-squares rescaling of nr quantized rows (gptq_refine.cpp): with the integer codes fixed,
// solves for each row's group scales (and mins) minimizing (w - wq)^T H (w - wq) jointly over the
// row, rounds them to storage precision and keeps them where the loss drops. h: (cols, cols)
// damped H; w, levels: (nr, cols); params: (nr, groups per row). True if any params changed.
bool refine_tile_scales(const FormatOps& f, const float* h, const float* w, const int16_t* levels,
                        GroupParams* params, int64_t nr, int64_t cols);

// Coordinate descent on the integer codes of nr rows (gptq_refine.cpp): moves single codes by one
// level while that lowers (w - wq)^T H (w - wq), up to max_passes passes over the columns.
// Returns the number of moves.
int64_t descend_tile_codes(const FormatOps& f, const float* h, const float* w, int16_t* levels,
                           const GroupParams* params, int64_t nr, int64_t cols, int max_passes);

}  // namespace edgeglm::quant::calib
