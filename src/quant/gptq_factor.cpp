// prepare_hessian: damps H and computes the factor GPTQ needs, without ever forming H^-1.
//
// GPTQ (Frantar et al. 2022) quantizes column i and corrects the columns j > i by
// -err_i * [Hinv_F]_ij / [Hinv_F]_ii, where Hinv_F is the inverse Hessian restricted to the columns
// not yet quantized; the paper reads all those rows off the upper Cholesky factor of H^-1. The same
// recursion can be written with a "reverse" Cholesky of H itself, H = U U^T with U upper
// triangular (the factorization of the reversed matrix, read backwards). With e = w - q the
// final error of a row (original weights minus quantized values),
//   e^T H e = || U^T e ||^2 = sum_i ( U_ii e_i + sum_{k<i} U_ki e_k )^2,
// so quantizing column i to the value nearest to
//   t_i = w_i + sum_{k<i} e_k * U_ki / U_ii                          (1)
// makes term i as small as it can be given the columns before it, and its cost is
// U_ii^2 (t_i - q_i)^2. This is exactly GPTQ's sequence of decisions (GPTQ = Babai's nearest plane
// algorithm on the lattice of U^T; noted by Chen et al. 2025, "The Geometry of LLM Quantization"),
// and 1 / U_ii^2 = [Hinv_F]_ii. (1) is a left-looking form of GPTQ's update: the lazy batch update
// becomes one matrix product per column block (gptq.cpp). What we store:
//   v[k][i] = U_ki / U_ii (k < i)     the error propagation coefficients of (1)
//   cond_w[i] = U_ii^2                 the weight of column i's rounding error
// One Cholesky (n^3/3 flops, blocked, parallel over rows) replaces GPTQ's Cholesky + inverse +
// Cholesky of the inverse.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "quant/calibrated.h"
#include "quant/calibrated_impl.h"

namespace edgeglm::quant {
namespace {

// In-place lower Cholesky of a (n x n, row-major; only the lower triangle is read and written).
// Right-looking, in panels of kNb columns: factor the diagonal block, solve the panel rows below
// it, then update the trailing lower triangle with the panel (transposed first, so the innermost
// loop runs along contiguous rows and vectorizes). Returns false when a pivot is not positive.
bool cholesky_lower(double* a, int64_t n, ThreadPool* pool) {
  constexpr int64_t kNb = 64;
  std::vector<double> pt;  // (kNb, n - ke) transposed panel
  for (int64_t kb = 0; kb < n; kb += kNb) {
    const int64_t ke = std::min(kb + kNb, n), nb = ke - kb;
    for (int64_t j = kb; j < ke; ++j) {
      double* rj = a + j * n;
      double s = rj[j];
      for (int64_t k = kb; k < j; ++k) s -= rj[k] * rj[k];
      if (!(s > 0) || !std::isfinite(s)) return false;
      const double djj = std::sqrt(s);
      rj[j] = djj;
      for (int64_t i = j + 1; i < ke; ++i) {
        double* ri = a + i * n;
        double t = ri[j];
        for (int64_t k = kb; k < j; ++k) t -= ri[k] * rj[k];
        ri[j] = t / djj;
      }
    }
    if (ke == n) break;
    const int64_t m = n - ke;
    pt.resize(size_t(nb * m));
    auto solve_rows = [&](int64_t i0, int64_t step) {
      for (int64_t i = ke + i0; i < n; i += step) {
        double* ri = a + i * n;
        for (int64_t j = kb; j < ke; ++j) {
          const double* rj = a + j * n;
          double t = ri[j];
          for (int64_t k = kb; k < j; ++k) t -= ri[k] * rj[k];
          ri[j] = t / rj[j];
          pt[size_t((j - kb) * m + (i - ke))] = ri[j];
        }
      }
    };
    auto update_rows = [&](int64_t i0, int64_t step) {
      for (int64_t i = ke + i0; i < n; i += step) {
        double* ri = a + i * n + ke;
        const double* li = a + i * n + kb;
        const int64_t len = i - ke + 1;
        int64_t k = 0;
        for (; k + 4 <= nb; k += 4) {
          const double a0 = li[k], a1 = li[k + 1], a2 = li[k + 2], a3 = li[k + 3];
          const double* p0 = pt.data() + k * m;
          const double* p1 = p0 + m;
          const double* p2 = p1 + m;
          const double* p3 = p2 + m;
          for (int64_t j = 0; j < len; ++j) ri[j] -= a0 * p0[j] + a1 * p1[j] + a2 * p2[j] + a3 * p3[j];
        }
        for (; k < nb; ++k) {
          const double a0 = li[k];
          const double* p0 = pt.data() + k * m;
          for (int64_t j = 0; j < len; ++j) ri[j] -= a0 * p0[j];
        }
      }
    };
    if (pool && pool->size() > 1 && m >= 128) {
      // Rows are dealt round-robin: the trailing triangle's rows grow in length.
      pool->run([&](int ith, int nth) {
        solve_rows(ith, nth);
        pool->barrier();
        update_rows(ith, nth);
      });
    } else {
      solve_rows(0, 1);
      update_rows(0, 1);
    }
  }
  return true;
}

}  // namespace

namespace calib {
double damping_reference(const float* h, int64_t n, bool median) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += h[i * n + i];
  mean /= double(n);
  if (!median) return mean;
  std::vector<float> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) d[size_t(i)] = h[i * n + i];
  std::nth_element(d.begin(), d.begin() + n / 2, d.end());
  const double med = d[size_t(n / 2)];
  return med > 0 ? med : mean;  // more than half the channels dead: fall back to the mean
}
}  // namespace calib

Result<std::shared_ptr<const CalibHessian>> prepare_hessian(const float* h, int64_t cols,
                                                            ThreadPool* pool,
                                                            const CalibOptions& opts) {
  if (!h) return Status::error("calibration Hessian: null pointer");
  if (cols <= 0) return Status::error("calibration Hessian: cols must be > 0");
  if (!(opts.damp >= 0) || !std::isfinite(opts.damp))
    return Status::error("calibration Hessian: damp must be finite and >= 0, got " +
                         std::to_string(opts.damp));
  const int64_t n = cols;
  double mean_diag = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i; j < n; ++j)
      if (!std::isfinite(h[i * n + j]))
        return Status::error("calibration Hessian: non-finite value at (" + std::to_string(i) +
                             ", " + std::to_string(j) + ")");
    if (h[i * n + i] < 0)
      return Status::error("calibration Hessian: negative diagonal at " + std::to_string(i));
    mean_diag += h[i * n + i];
  }
  mean_diag /= double(n);
  if (!(mean_diag > 0))
    return Status::error("calibration Hessian: diag(H) is all zero (no calibration data?)");
  const double ref_diag = calib::damping_reference(h, n, opts.damp_median);

  auto hs = std::make_shared<CalibHessian>();
  hs->cols = n;
  hs->perm.resize(size_t(n));
  std::iota(hs->perm.begin(), hs->perm.end(), 0);
  if (opts.act_order)
    std::stable_sort(hs->perm.begin(), hs->perm.end(),
                     [&](int32_t x, int32_t y) { return h[x * n + x] > h[y * n + y]; });
  const std::vector<int32_t>& perm = hs->perm;

  // A = the damped H in processing order, reversed: A[i][j] = H[perm[n-1-i]][perm[n-1-j]].
  std::vector<double> a(size_t(n * n));
  double damp = opts.damp, lambda = 0;
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
    if (attempt > 0) damp = std::max(damp, 1e-4) * 10;
    lambda = damp * ref_diag;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pi = perm[size_t(n - 1 - i)];
      for (int64_t j = 0; j <= i; ++j) {
        const int64_t pj = perm[size_t(n - 1 - j)];
        a[size_t(i * n + j)] = h[std::min(pi, pj) * n + std::max(pi, pj)];
      }
      a[size_t(i * n + i)] += lambda;
    }
    ok = cholesky_lower(a.data(), n, pool);
  }
  if (!ok)
    return Status::error("calibration Hessian: not positive definite even with damp " +
                         std::to_string(damp));
  hs->damp_used = damp;
  hs->h.resize(size_t(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      hs->h[size_t(i * n + j)] = h[std::min(i, j) * n + std::max(i, j)] + (i == j ? float(lambda) : 0.0f);
  hs->diag.resize(size_t(n));
  for (int64_t c = 0; c < n; ++c) hs->diag[size_t(c)] = float(double(h[c * n + c]) + lambda);
  // U[p][q] = L[n-1-p][n-1-q] (p <= q).
  hs->v.assign(size_t(n * n), 0.0f);
  hs->cond_w.resize(size_t(n));
  std::vector<double> inv_u(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double uii = a[size_t((n - 1 - i) * n + (n - 1 - i))];
    hs->cond_w[size_t(i)] = float(uii * uii);
    inv_u[size_t(i)] = 1.0 / uii;
  }
  for (int64_t k = 0; k < n; ++k) {
    const double* lr = a.data() + (n - 1 - k) * n;  // row n-1-k of L = row k of U, reversed
    float* vk = hs->v.data() + k * n;
    for (int64_t i = k + 1; i < n; ++i) vk[i] = float(lr[n - 1 - i] * inv_u[size_t(i)]);
  }
  return std::shared_ptr<const CalibHessian>(std::move(hs));
}

}  // namespace edgeglm::quant
