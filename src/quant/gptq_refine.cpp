// Polish of a quantized tile on the exact loss (w - wq)^T H (w - wq), H the damped Hessian; both
// steps keep a change only if it lowers that loss.
//
// descend_tile_codes: coordinate descent on the integer codes. GPTQ decides each column once, in
// order, knowing only the columns before it; afterwards single codes can often move one level
// and lower the loss. With g = H e (e = w - wq) kept per row, moving code j changes wq_j by delta
// and the loss by delta * (delta * H_jj - 2 g_j); an accepted move updates g with row j of H.
// Cost per row: one product with H, plus cols per accepted move.
//
// refine_tile_scales: least-squares rescaling. GPTQ fixes a group's scale (and min) before it
// rounds the group's columns; once every integer code of the row is known, the row's dequantized
// values are linear in the stored floats (value_j = alpha_g * c_j + beta_g * m_j for the group g
// of column j), so the loss is a quadratic in those floats and its minimum over all groups of the
// row jointly is one small linear system:
//   A theta = r,   A = B^T H B,   r = B^T H w,   B (cols x n_params): the basis vectors c_g, m_g.
// The solution is rounded to the storage precision (fp16 / f32) and kept only when the rounded
// values lower the loss (evaluated exactly from the same quadratic). Cost per row: (1 + number of
// bases) / 2 products with H, using its symmetry.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/calibrated_impl.h"

namespace edgeglm::quant::calib {
namespace {

typedef float V4 __attribute__((vector_size(16)));
inline V4 load4(const float* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, V4 v) { std::memcpy(p, &v, sizeof v); }
inline float hsum(V4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// In-place Cholesky solve of the small SPD system a x = b (n x n, double). False if singular.
bool solve_spd(std::vector<double>& a, std::vector<double>& b, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double s = a[size_t(j * n + j)];
    for (int64_t k = 0; k < j; ++k) s -= a[size_t(j * n + k)] * a[size_t(j * n + k)];
    if (!(s > 0)) return false;
    const double d = std::sqrt(s);
    a[size_t(j * n + j)] = d;
    for (int64_t i = j + 1; i < n; ++i) {
      double t = a[size_t(i * n + j)];
      for (int64_t k = 0; k < j; ++k) t -= a[size_t(i * n + k)] * a[size_t(j * n + k)];
      a[size_t(i * n + j)] = t / d;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    double t = b[size_t(i)];
    for (int64_t k = 0; k < i; ++k) t -= a[size_t(i * n + k)] * b[size_t(k)];
    b[size_t(i)] = t / a[size_t(i * n + i)];
  }
  for (int64_t i = n - 1; i >= 0; --i) {
    double t = b[size_t(i)];
    for (int64_t k = i + 1; k < n; ++k) t -= a[size_t(k * n + i)] * b[size_t(k)];
    b[size_t(i)] = t / a[size_t(i * n + i)];
  }
  return true;
}

}  // namespace

bool refine_tile_scales(const FormatOps& f, const float* h, const float* w, const int16_t* levels,
                        GroupParams* params, int64_t nr, int64_t cols) {
  if (!f.linear_basis || !f.set_linear) return false;
  const int64_t group = f.group ? f.group : cols;
  const int64_t n_groups = cols / group;
  // Basis values per column (c, m) and the current floats of every group, per row.
  std::vector<float> cm(static_cast<size_t>(2 * nr * cols));
  std::vector<double> th0(static_cast<size_t>(nr * 2 * n_groups));
  int nb = 1;
  for (int64_t r = 0; r < nr; ++r) {
    float* c = cm.data() + 2 * r * cols;
    for (int64_t g = 0; g < n_groups; ++g) {
      double al, be;
      nb = f.linear_basis(levels + r * cols + g * group, params[r * n_groups + g], group,
                          c + g * group, c + cols + g * group, &al, &be);
      th0[size_t(r * 2 * n_groups + g * nb)] = al;
      if (nb == 2) th0[size_t(r * 2 * n_groups + g * nb + 1)] = be;
    }
  }
  const int64_t np = n_groups * nb;
  // A = B^T H B and r = B^T H w for every row, accumulated over 32x32 blocks of H so that each
  // block is read once per tile (from L1) instead of once per row: for the block (jb, kb),
  // u = H[jb.., kb..] x[kb..] for x = c, m, w (axpy over the block's rows; H is symmetric), and
  // the dot products of u with the basis and w at jb give the block's and its mirror's terms.
  constexpr int64_t kB = 32;
  std::vector<double> a(static_cast<size_t>(nr * np * np), 0.0), rhs(static_cast<size_t>(nr * np), 0.0);
  for (int64_t jb = 0; jb < cols; jb += kB) {
    const int64_t gj = jb / group;
    for (int64_t kb = jb; kb < cols; kb += kB) {  // H symmetric: upper blocks, both ways
      const int64_t gk = kb / group;
      for (int64_t r = 0; r < nr; ++r) {
        const float* c = cm.data() + 2 * r * cols;
        const float* m = c + cols;
        const float* wr = w + r * cols;
        // Eight output rows at a time in two 4-lane vectors (GCC/Clang vector extensions: SSE2
        // on x86-64, NEON on aarch64), so the accumulators stay in registers.
        float cc = 0, cw = 0, cm_ = 0, mc = 0, mm = 0, mw = 0, wc = 0, wm = 0;
        for (int64_t jc = 0; jc < kB; jc += 8) {
          V4 uc0{}, uc1{}, um0{}, um1{}, uw0{}, uw1{};
          for (int64_t l = 0; l < kB; ++l) {
            const float* hl = h + (kb + l) * cols + jb + jc;
            const V4 h0 = load4(hl), h1 = load4(hl + 4);
            const float xc = c[kb + l], xw = wr[kb + l];
            uc0 += xc * h0;
            uc1 += xc * h1;
            uw0 += xw * h0;
            uw1 += xw * h1;
            if (nb == 2) {
              const float xm = m[kb + l];
              um0 += xm * h0;
              um1 += xm * h1;
            }
          }
          const V4 c0 = load4(c + jb + jc), c1 = load4(c + jb + jc + 4);
          const V4 m0 = load4(m + jb + jc), m1 = load4(m + jb + jc + 4);
          const V4 w0 = load4(wr + jb + jc), w1 = load4(wr + jb + jc + 4);
          cc += hsum(c0 * uc0 + c1 * uc1);
          cw += hsum(c0 * uw0 + c1 * uw1);
          wc += hsum(w0 * uc0 + w1 * uc1);
          if (nb == 2) {
            wm += hsum(w0 * um0 + w1 * um1);
            cm_ += hsum(c0 * um0 + c1 * um1);
            mc += hsum(m0 * uc0 + m1 * uc1);
            mm += hsum(m0 * um0 + m1 * um1);
            mw += hsum(m0 * uw0 + m1 * uw1);
          }
        }
        double* ar = a.data() + r * np * np;
        double* rr = rhs.data() + r * np;
        ar[(gj * nb) * np + gk * nb] += cc;
        if (nb == 2) {
          ar[(gj * nb) * np + gk * nb + 1] += cm_;
          ar[(gj * nb + 1) * np + gk * nb] += mc;
          ar[(gj * nb + 1) * np + gk * nb + 1] += mm;
        }
        rr[gj * nb] += cw;
        if (nb == 2) rr[gj * nb + 1] += mw;
        if (kb == jb) continue;
        // The mirrored block H[kb, jb] = H[jb, kb]^T: the same products, transposed roles.
        ar[(gk * nb) * np + gj * nb] += cc;
        if (nb == 2) {
          ar[(gk * nb + 1) * np + gj * nb] += cm_;
          ar[(gk * nb) * np + gj * nb + 1] += mc;
          ar[(gk * nb + 1) * np + gj * nb + 1] += mm;
        }
        rr[gk * nb] += wc;
        if (nb == 2) rr[gk * nb + 1] += wm;
      }
    }
  }
  bool any = false;
  std::vector<double> sys, th, th_r(static_cast<size_t>(np)), t0(static_cast<size_t>(np));
  std::vector<GroupParams> trial(static_cast<size_t>(n_groups));
  std::vector<float> cbuf(static_cast<size_t>(2 * group));
  for (int64_t r = 0; r < nr; ++r) {
    const double* ar = a.data() + r * np * np;
    const double* rr = rhs.data() + r * np;
    // Loss up to a constant: theta^T A theta - 2 theta^T r.
    auto loss = [&](const std::vector<double>& t) {
      double l = 0;
      for (int64_t i = 0; i < np; ++i) {
        double ai = 0;
        for (int64_t k = 0; k < np; ++k) ai += ar[i * np + k] * t[size_t(k)];
        l += t[size_t(i)] * (ai - 2 * rr[i]);
      }
      return l;
    };
    for (int64_t i = 0; i < np; ++i) t0[size_t(i)] = th0[size_t(r * 2 * n_groups + i)];
    sys.assign(ar, ar + np * np);
    th.assign(rr, rr + np);
    double trace = 0;
    for (int64_t i = 0; i < np; ++i) trace += ar[i * np + i];
    // A tiny ridge keeps all-zero groups (A row of zeros) solvable.
    for (int64_t i = 0; i < np; ++i) sys[size_t(i * np + i)] += 1e-9 * trace / double(np) + 1e-30;
    if (!solve_spd(sys, th, np)) continue;
    bool finite = true;
    const int16_t* lr = levels + r * cols;
    for (int64_t g = 0; g < n_groups && finite; ++g) {
      const double al = th[size_t(g * nb)], be = nb == 2 ? th[size_t(g * nb + 1)] : 0.0;
      finite = std::isfinite(al) && std::isfinite(be);
      trial[size_t(g)] = params[r * n_groups + g];
      f.set_linear(&trial[size_t(g)], al, be);
      double ar_, br_;
      f.linear_basis(lr + g * group, trial[size_t(g)], group, cbuf.data(), cbuf.data() + group,
                     &ar_, &br_);
      th_r[size_t(g * nb)] = ar_;
      if (nb == 2) th_r[size_t(g * nb + 1)] = br_;
    }
    if (!finite || !(loss(th_r) < loss(t0))) continue;
    std::copy(trial.begin(), trial.end(), params + r * n_groups);
    any = true;
  }
  return any;
}

int64_t descend_tile_codes(const FormatOps& f, const float* h, const float* w, int16_t* levels,
                           const GroupParams* params, int64_t nr, int64_t cols, int max_passes) {
  if (!f.grids_of) return 0;
  const int64_t group = f.group ? f.group : cols;
  const int64_t unit = f.unit ? f.unit : cols;
  const int64_t n_groups = cols / group, n_units = cols / unit;
  std::vector<Grid> grids(static_cast<size_t>(nr * n_units));
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t g = 0; g < n_groups; ++g)
      f.grids_of(params[r * n_groups + g], &grids[size_t(r * n_units + g * group / unit)]);
  // e = w - wq and the gradient g = H e of every row; H rows are read once per tile.
  std::vector<float> e(static_cast<size_t>(nr * cols)), gr(static_cast<size_t>(nr * cols), 0.0f);
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t j = 0; j < cols; ++j)
      e[size_t(r * cols + j)] =
          w[r * cols + j] - grid_value(grids[size_t(r * n_units + j / unit)], levels[r * cols + j]);
  // Over 32x32 blocks of H (read from L1 by all rows of the tile), eight outputs at a time in
  // registers: g[jb..] += H[jb.., kb..] e[kb..] (H symmetric: its rows kb.. are the columns).
  constexpr int64_t kB = 32;
  for (int64_t jb = 0; jb < cols; jb += kB)
    for (int64_t kb = 0; kb < cols; kb += kB)
      for (int64_t r = 0; r < nr; ++r) {
        const float* er = e.data() + r * cols + kb;
        float* g = gr.data() + r * cols + jb;
        for (int64_t jc = 0; jc < kB; jc += 8) {
          V4 u0{}, u1{};
          for (int64_t l = 0; l < kB; ++l) {
            const float* hl = h + (kb + l) * cols + jb + jc;
            u0 += er[l] * load4(hl);
            u1 += er[l] * load4(hl + 4);
          }
          store4(g + jc, load4(g + jc) + u0);
          store4(g + jc + 4, load4(g + jc + 4) + u1);
        }
      }
  // Moving code j by one level changes wq_j by delta and the loss e^T H e by
  // -2 delta g_j + delta^2 H_jj; take the better move if it lowers the loss, then g -= delta H[j].
  int64_t moves = 0;
  for (int64_t r = 0; r < nr; ++r) {
    float* g = gr.data() + r * cols;
    int16_t* lr = levels + r * cols;
    const Grid* grow = grids.data() + r * n_units;
    for (int pass = 0; pass < max_passes; ++pass) {
      int64_t pass_moves = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const Grid& gd = grow[j / unit];
        const int16_t q = lr[j];
        const float v0 = grid_value(gd, q), hjj = h[j * cols + j];
        float best = 0, best_delta = 0;
        int16_t best_q = q;
        for (int s = -1; s <= 1; s += 2) {
          const int qn = q + s;
          if (qn < gd.lo || qn > gd.hi) continue;
          const float delta = grid_value(gd, int16_t(qn)) - v0;
          const float change = delta * (delta * hjj - 2.0f * g[j]);
          if (change < best) {
            best = change;
            best_delta = delta;
            best_q = int16_t(qn);
          }
        }
        if (best_q == q) continue;
        lr[j] = best_q;
        const float* hj = h + j * cols;
        for (int64_t k = 0; k < cols; ++k) g[k] -= best_delta * hj[k];
        ++pass_moves;
      }
      moves += pass_moves;
      if (pass_moves == 0) break;
    }
  }
  return moves;
}

}  // namespace edgeglm::quant::calib
