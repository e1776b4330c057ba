// The column sweep of GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, arXiv:2210.17323) and of
// plain importance-weighted rounding, for every format described by a calib::FormatOps.
//
// Rows are independent given the factor of H (gptq_factor.cpp), so threads take tiles of kTile
// rows, and each tile walks the columns in blocks of B:
//   1. lazy batch update (left-looking): T = W[:, block] + E[:, :b0] V[:b0, block], one
//      matrix product per block, where E holds the finished errors w - q of the columns before
//      the block (equation (1) in gptq_factor.cpp);
//   2. inside the block, row by row: at a group's first column its parameters are fitted from
//      the current T (already corrected by every earlier column, as GPTQ does), then each column
//      is rounded to its grid and its error pushed into the rest of the block (right-looking).
// A tile's working set (W, E: kTile x cols; T: kTile x B) stays in cache, and V is streamed once
// per tile and block. Total work: rows * cols^2 / 2 multiply-adds.
//
// Static groups: with act_order (columns processed by decreasing diag(H)) a group's columns are
// not consecutive in processing order, so every group is fitted up front from the original
// weights, as are whole-row groups (I8_ROW, U8_ROW), whose first column is the row's first.
//
// Polish (gptq_refine.cpp), per pass: coordinate descent on the codes of the tile's rows on the
// exact loss (GPTQ's greedy column order leaves single codes that are better one level up or
// down once the later columns are known), then a least-squares re-solve of every row's group
// scales for its codes.
#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/calibrated.h"
#include "quant/calibrated_impl.h"

namespace edgeglm::quant::calib {
namespace {

constexpr int64_t kTile = 16;  // rows per tile
// Coordinate-descent sweeps per polish pass: on the test layers the gain saturates after ~4
// (mild layer, Q4_0: 0, 1, 4, 16 sweeps -> 0.478, 0.465, 0.455, 0.453 of plain rounding).
constexpr int kDescentSweeps = 4;

// t[r][0:bw] += sum_{k < b0} e[r][k] * v[k][b0 + 0:bw] for the nr rows of a tile. Four k at a
// time so each pass over t[r] does four multiply-adds per load/store; the four v rows (4 x bw
// floats) stay in L1 across the tile's rows.
void panel_update(const float* e, int64_t lde, const float* v, int64_t ldv, float* t, int64_t ldt,
                  int64_t nr, int64_t b0, int64_t bw) {
  int64_t k = 0;
  for (; k + 4 <= b0; k += 4) {
    const float* v0 = v + k * ldv + b0;
    const float* v1 = v0 + ldv;
    const float* v2 = v1 + ldv;
    const float* v3 = v2 + ldv;
    for (int64_t r = 0; r < nr; ++r) {
      const float* er = e + r * lde + k;
      const float e0 = er[0], e1 = er[1], e2 = er[2], e3 = er[3];
      if (e0 == 0.0f && e1 == 0.0f && e2 == 0.0f && e3 == 0.0f) continue;
      float* tr = t + r * ldt;
      for (int64_t j = 0; j < bw; ++j) tr[j] += e0 * v0[j] + e1 * v1[j] + e2 * v2[j] + e3 * v3[j];
    }
  }
  for (; k < b0; ++k) {
    const float* v0 = v + k * ldv + b0;
    for (int64_t r = 0; r < nr; ++r) {
      const float e0 = e[r * lde + k];
      if (e0 == 0.0f) continue;
      float* tr = t + r * ldt;
      for (int64_t j = 0; j < bw; ++j) tr[j] += e0 * v0[j];
    }
  }
}

}  // namespace

void sweep(const SweepArgs& a, ThreadPool* pool) {
  const FormatOps& f = *a.f;
  const int64_t cols = a.cols;
  const int64_t group = f.group ? f.group : cols;
  const int64_t unit = f.unit ? f.unit : cols;
  const int64_t n_groups = cols / group, n_units = cols / unit;
  const CalibHessian* hs = a.hs;
  const int32_t* perm = nullptr;
  if (hs) {
    for (int64_t p = 0; p < cols; ++p)
      if (hs->perm[size_t(p)] != p) {
        perm = hs->perm.data();
        break;
      }
  }
  const bool whole_row = group == cols && f.group == 0;
  const bool dynamic = !perm && !whole_row;
  // Block width: a multiple of the group so every group starts and ends inside one block.
  int64_t bw_max = std::max<int64_t>(a.block_cols, 32);
  if (!whole_row) bw_max = (bw_max + group - 1) / group * group;
  bw_max = std::min(bw_max, cols);
  const bool exact = a.exact && hs && dynamic && group <= 256 && !f.refit_unit;
  const float* v = hs ? hs->v.data() : nullptr;
  const int64_t n_tiles = (a.rows + kTile - 1) / kTile;

  auto run_tiles = [&](int64_t tile_begin, int64_t tile_end) {
    std::vector<float> wp(size_t(kTile * cols)), e(size_t(kTile * cols)), t(size_t(kTile * bw_max));
    std::vector<int16_t> lev(size_t(kTile * cols));
    std::vector<GroupParams> params(size_t(kTile * n_groups));
    std::vector<Grid> grids(size_t(kTile * n_units));
    // One sweep over the columns of the tile's nr rows (header comment, steps 1 and 2).
    auto sweep_blocks = [&](int64_t nr) {
      for (int64_t b0 = 0; b0 < cols; b0 += bw_max) {
        const int64_t bw = std::min(bw_max, cols - b0);
        for (int64_t r = 0; r < nr; ++r)
          std::memcpy(t.data() + r * bw_max, wp.data() + r * cols + b0, size_t(bw) * sizeof(float));
        if (hs && b0 > 0) panel_update(e.data(), cols, v, cols, t.data(), bw_max, nr, b0, bw);
        for (int64_t r = 0; r < nr; ++r) {
          float* tb = t.data() + r * bw_max;  // tb[p - b0] for p in [b0, b0 + bw)
          const float* wr = wp.data() + r * cols;
          float* er = e.data() + r * cols;
          int16_t* lr = lev.data() + r * cols;
          GroupParams* pr = params.data() + r * n_groups;
          Grid* gr = grids.data() + r * n_units;
          for (int64_t p = b0; p < b0 + bw; ++p) {
            const int64_t c = perm ? perm[p] : p;
            if (dynamic && c % unit == 0) {
              FitContext ctx;
              ctx.x = tb + (p - b0);
              ctx.w = a.fit_w + p;
              if (c % group == 0) {
                ctx.n = group;
                if (exact) {
                  ctx.w0 = wr + p;
                  ctx.v = v + p * cols + p;
                  ctx.ld = cols;
                }
                f.fit(ctx, &pr[c / group], &gr[c / unit]);
              } else if (f.refit_unit) {
                ctx.n = unit;
                f.refit_unit(ctx, int((c % group) / unit), &pr[c / group], &gr[c / unit]);
              }
            }
            const Grid& g = gr[c / unit];
            const int16_t q = grid_round(g, tb[p - b0]);
            lr[c] = q;
            const float err = wr[p] - grid_value(g, q);
            er[p] = err;
            if (!hs || err == 0.0f) continue;
            const float* vp = v + p * cols + b0;
            for (int64_t j = p + 1 - b0; j < bw; ++j) tb[j] += err * vp[j];
          }
        }
      }
    };
    for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
      const int64_t r0 = tile * kTile, nr = std::min(kTile, a.rows - r0);
      for (int64_t r = 0; r < nr; ++r) {
        const float* src = a.w + (r0 + r) * cols;
        float* dst = wp.data() + r * cols;
        if (perm) {
          for (int64_t p = 0; p < cols; ++p) dst[p] = src[perm[p]];
        } else {
          std::memcpy(dst, src, size_t(cols) * sizeof(float));
        }
      }
      if (!dynamic) {
        for (int64_t r = 0; r < nr; ++r) {
          const float* src = a.w + (r0 + r) * cols;
          for (int64_t g = 0; g < n_groups; ++g) {
            FitContext ctx;
            ctx.x = src + g * group;
            ctx.w = a.fit_w + g * group;
            ctx.n = group;
            f.fit(ctx, &params[size_t(r * n_groups + g)],
                  &grids[size_t(r * n_units + g * group / unit)]);
          }
        }
      }
      sweep_blocks(nr);
      for (int it = 0; hs && it < a.polish; ++it) {
        const int64_t moves =
            descend_tile_codes(f, hs->h.data(), a.w + r0 * cols, lev.data(), params.data(), nr,
                               cols, kDescentSweeps);
        const bool rescaled = refine_tile_scales(f, hs->h.data(), a.w + r0 * cols, lev.data(),
                                                 params.data(), nr, cols);
        if (moves == 0 && !rescaled) break;
      }
      for (int64_t r = 0; r < nr; ++r)
        f.pack(lev.data() + r * cols, params.data() + r * n_groups, cols,
               a.out + size_t(r0 + r) * a.row_bytes);
    }
  };
  if (pool && pool->size() > 1)
    pool->parallel_for(n_tiles, [&](int64_t b, int64_t e) { run_tiles(b, e); });
  else
    run_tiles(0, n_tiles);
}

}  // namespace edgeglm::quant::calib
