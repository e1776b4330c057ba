// Calibration-aware quantization (quant/calibrated.h) on synthetic layers whose activations look
// like an LLM's: correlated channels and a few outlier channels 10-100x larger than the rest.
// Suite names contain "quant" so that `ctest -R quant` selects them.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "quant/calibrated.h"
#include "quant/quant.h"

namespace edgeglm::quant {
namespace {

struct Layer {
  int64_t rows = 0, cols = 0, tokens = 0;
  std::vector<float> w;  // (rows, cols)
  std::vector<float> x;  // (tokens, cols)
  std::vector<float> h;  // (cols, cols) = x^T x
};

// X = Z M + noise: Z (tokens, rank) gaussian, M (rank, cols) gaussian, so channels are correlated;
// then a few channels are scaled by 10..100 (outliers) and `dead` channels are zero. W is gaussian
// with per-row scales and a heavy tail (a few large weights), as trained weights have.
Layer make_layer(int64_t rows, int64_t cols, int64_t tokens, uint32_t seed, int64_t dead = 0,
                 float outlier_lo = 10.0f, float outlier_hi = 100.0f, float noise = 0.3f) {
  Layer L;
  L.rows = rows;
  L.cols = cols;
  L.tokens = tokens;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  const int64_t rank = std::max<int64_t>(8, cols / 8);
  std::vector<float> m(size_t(rank * cols));
  for (auto& v : m) v = nd(rng) / std::sqrt(float(rank));
  std::vector<float> scale(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) scale[size_t(c)] = 0.5f + ud(rng);
  for (int k = 0; k < 6; ++k)
    scale[size_t(rng() % cols)] = outlier_lo + (outlier_hi - outlier_lo) * ud(rng);
  for (int64_t k = 0; k < dead; ++k) scale[size_t((k * 7919 + 13) % cols)] = 0.0f;
  L.x.assign(size_t(tokens * cols), 0.0f);
  std::vector<float> z(static_cast<size_t>(rank));
  for (int64_t t = 0; t < tokens; ++t) {
    for (auto& v : z) v = nd(rng);
    float* xt = L.x.data() + t * cols;
    for (int64_t k = 0; k < rank; ++k)
      for (int64_t c = 0; c < cols; ++c) xt[c] += z[size_t(k)] * m[size_t(k * cols + c)];
    for (int64_t c = 0; c < cols; ++c) xt[c] = (xt[c] + noise * nd(rng)) * scale[size_t(c)];
  }
  L.h.assign(size_t(cols * cols), 0.0f);
  std::vector<double> hd(size_t(cols * cols), 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* xt = L.x.data() + t * cols;
    for (int64_t i = 0; i < cols; ++i) {
      const double xi = xt[i];
      if (xi == 0) continue;
      double* hi = hd.data() + i * cols;
      for (int64_t j = 0; j < cols; ++j) hi[j] += xi * xt[j];
    }
  }
  for (size_t i = 0; i < hd.size(); ++i) L.h[i] = float(hd[i]);
  L.w.resize(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    const float rs = 0.02f * (0.5f + ud(rng));
    for (int64_t c = 0; c < cols; ++c) {
      float v = nd(rng);
      if (ud(rng) < 0.01f) v *= 4.0f;
      L.w[size_t(r * cols + c)] = rs * v;
    }
  }
  return L;
}

std::vector<uint8_t> plain(DType t, const Layer& L) {
  std::vector<uint8_t> q(size_t(L.rows) * dtype_row_bytes(t, L.cols));
  for (int64_t r = 0; r < L.rows; ++r)
    quantize_row(t, L.w.data() + r * L.cols, q.data() + size_t(r) * dtype_row_bytes(t, L.cols), L.cols);
  return q;
}

std::vector<uint8_t> calibrated(DType t, const Layer& L, ThreadPool* pool, CalibOptions o = {}) {
  std::vector<uint8_t> q(size_t(L.rows) * dtype_row_bytes(t, L.cols), 0xCD);
  const Status s = quantize_matrix(t, L.w.data(), L.rows, L.cols, L.h.data(), q.data(), pool, o);
  EXPECT_TRUE(s.is_ok()) << dtype_name(t) << ": " << s.message();
  return q;
}

// Decodes with the reference dequantizer; checks every value is finite and the plain weight error
// is sane (a calibrated quantizer may trade weight error for output error, but not wildly).
void expect_decodes(DType t, const Layer& L, const std::vector<uint8_t>& q, double max_rel) {
  std::vector<float> row(static_cast<size_t>(L.cols));
  double se = 0, sw = 0;
  const size_t rb = dtype_row_bytes(t, L.cols);
  for (int64_t r = 0; r < L.rows; ++r) {
    dequantize_row(t, q.data() + size_t(r) * rb, row.data(), L.cols);
    for (int64_t c = 0; c < L.cols; ++c) {
      ASSERT_TRUE(std::isfinite(row[size_t(c)])) << dtype_name(t) << " row " << r << " col " << c;
      const double d = double(row[size_t(c)]) - L.w[size_t(r * L.cols + c)];
      se += d * d;
      sw += double(L.w[size_t(r * L.cols + c)]) * L.w[size_t(r * L.cols + c)];
    }
  }
  EXPECT_LT(se / sw, max_rel) << dtype_name(t) << ": weight error of the calibrated bytes";
}

// Largest accepted calibrated / plain output-error ratio per format, measured on this file's
// synthetic layers (see the table printed by AllFormatsBeatPlainRounding) with margin.
struct FormatCase {
  DType t;
  double max_ratio;
  double max_weight_err;  // relative plain weight error of the calibrated result
  double max_ratio_mild;
};
// Measured GPTQ/plain ratios (strong / mild layer): q4_0 .013/.464, q4_1 .004/.406,
// q5_0 .018/.457, q5_1 .005/.416, q8_0 .013/.474, q4_k .007/.493, q5_k .008/.479,
// q6_k .014/.479, i8_row .033/.511, u8_row .015/.504, i4_g64 .013/.444, i4_g128 .015/.411,
// u4_g64 .005/.417, u4_g128 .004/.421.
const FormatCase kCases[] = {
    {DType::Q4_0, 0.05, 0.05, 0.6},    {DType::Q4_1, 0.05, 0.05, 0.6},
    {DType::Q5_0, 0.05, 0.02, 0.6},    {DType::Q5_1, 0.05, 0.02, 0.6},
    {DType::Q8_0, 0.05, 1e-3, 0.6},    {DType::Q4_K, 0.05, 0.05, 0.6},
    {DType::Q5_K, 0.05, 0.02, 0.6},    {DType::Q6_K, 0.05, 5e-3, 0.6},
    {DType::I8_ROW, 0.08, 2e-3, 0.6},  {DType::U8_ROW, 0.08, 2e-3, 0.6},
    {DType::I4_G64, 0.05, 0.06, 0.6},  {DType::I4_G128, 0.05, 0.08, 0.6},
    {DType::U4_G64, 0.05, 0.06, 0.6},  {DType::U4_G128, 0.05, 0.08, 0.6},
};

// Two layers: strong outlier channels (10-100x, as LLM activations have) and mild ones (2-4x,
// with weaker channel correlation).
// The second is the harder case for calibration: less of the error is concentrated in a few
// channels that plain rounding ignores.
TEST(CalibratedQuant, AllFormatsBeatPlainRounding) {
  ThreadPool pool(2);
  for (int variant = 0; variant < 2; ++variant) {
    const Layer L = variant == 0 ? make_layer(192, 512, 2048, 1)
                                 : make_layer(192, 512, 2048, 11, 0, 2.0f, 4.0f, 1.0f);
    std::printf("%s outliers\n%-8s %10s %10s %10s %8s %8s\n", variant == 0 ? "strong" : "mild",
                "format", "plain", "wrtn", "gptq", "wrtn/pl", "gptq/pl");
    for (const FormatCase& fc : kCases) {
      ASSERT_TRUE(calib_supported(fc.t)) << dtype_name(fc.t);
      const auto qp = plain(fc.t, L);
      CalibOptions rtn;
      rtn.method = CalibMethod::kWeightedRtn;
      const auto qr = calibrated(fc.t, L, &pool, rtn);
      const auto qg = calibrated(fc.t, L, &pool);
      expect_decodes(fc.t, L, qg, fc.max_weight_err);
      const double ep = weighted_error(fc.t, L.w.data(), qp.data(), L.rows, L.cols, L.h.data(), &pool);
      const double er = weighted_error(fc.t, L.w.data(), qr.data(), L.rows, L.cols, L.h.data(), &pool);
      const double eg = weighted_error(fc.t, L.w.data(), qg.data(), L.rows, L.cols, L.h.data(), &pool);
      std::printf("%-8s %10.3e %10.3e %10.3e %8.3f %8.3f\n", dtype_name(fc.t), ep, er, eg,
                  er / ep, eg / ep);
      EXPECT_GT(ep, 0.0);
      EXPECT_LT(er, ep) << dtype_name(fc.t) << ": weighted rounding must beat plain rounding";
      EXPECT_LE(eg / ep, variant == 0 ? fc.max_ratio : fc.max_ratio_mild) << dtype_name(fc.t);
      EXPECT_LT(eg, er) << dtype_name(fc.t) << ": GPTQ must beat weighted rounding";
    }
  }
}

// weighted_error against a direct evaluation of ||(W - Wq) X||^2 / ||W X||^2.
TEST(CalibratedQuant, WeightedErrorMatchesActivations) {
  const Layer L = make_layer(24, 256, 300, 2);
  const auto q = plain(DType::Q4_0, L);
  std::vector<float> row(static_cast<size_t>(L.cols));
  double num = 0, den = 0;
  for (int64_t r = 0; r < L.rows; ++r) {
    dequantize_row(DType::Q4_0, q.data() + size_t(r) * dtype_row_bytes(DType::Q4_0, L.cols),
                   row.data(), L.cols);
    for (int64_t t = 0; t < L.tokens; ++t) {
      double yq = 0, y = 0;
      for (int64_t c = 0; c < L.cols; ++c) {
        const double xv = L.x[size_t(t * L.cols + c)];
        y += double(L.w[size_t(r * L.cols + c)]) * xv;
        yq += double(row[size_t(c)]) * xv;
      }
      num += (y - yq) * (y - yq);
      den += y * y;
    }
  }
  const double got = weighted_error(DType::Q4_0, L.w.data(), q.data(), L.rows, L.cols, L.h.data());
  EXPECT_NEAR(got, num / den, 1e-3 * num / den);
}

TEST(CalibratedQuant, NullHessianIsPlainRoundingBytes) {
  ThreadPool pool(2);
  const Layer L = make_layer(40, 256, 64, 3);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q4_K,
                  DType::Q5_K, DType::Q6_K, DType::Q2_K, DType::I8_ROW, DType::U8_ROW,
                  DType::I4_G64, DType::I4_G128, DType::U4_G64, DType::U4_G128}) {
    const auto want = plain(t, L);
    std::vector<uint8_t> got(want.size(), 0xEE);
    ASSERT_TRUE(quantize_matrix(t, L.w.data(), L.rows, L.cols, nullptr, got.data(), &pool).is_ok());
    EXPECT_EQ(got, want) << dtype_name(t);
    std::vector<uint8_t> got1(want.size(), 0x11);
    ASSERT_TRUE(quantize_matrix(t, L.w.data(), L.rows, L.cols, nullptr, got1.data(), nullptr).is_ok());
    EXPECT_EQ(got1, want) << dtype_name(t) << " without a pool";
  }
}

// Fewer tokens than columns (H has rank < cols) and dead channels (zero rows/cols of H): the
// damping keeps the factorization possible and the result still beats plain rounding.
TEST(CalibratedQuant, RankDeficientHessianWithDeadChannels) {
  ThreadPool pool(2);
  Layer L = make_layer(64, 512, 100, 4, /*dead=*/40);
  std::fill(L.w.begin(), L.w.begin() + 512, 0.0f);         // an all-zero row
  std::fill(L.w.begin() + 512, L.w.begin() + 1024, 0.01f);  // a constant row
  for (DType t : {DType::Q4_0, DType::Q4_K, DType::I4_G128, DType::U8_ROW, DType::Q6_K}) {
    const auto qg = calibrated(t, L, &pool);
    expect_decodes(t, L, qg, 0.5);
    const auto qp = plain(t, L);
    const double ep = weighted_error(t, L.w.data(), qp.data(), L.rows, L.cols, L.h.data());
    const double eg = weighted_error(t, L.w.data(), qg.data(), L.rows, L.cols, L.h.data());
    EXPECT_LT(eg, 0.8 * ep) << dtype_name(t);
  }
  // Zero damping on a singular H: the retries with more damping must rescue it.
  CalibOptions o;
  o.damp = 0;
  auto hs = prepare_hessian(L.h.data(), L.cols, &pool, o);
  ASSERT_TRUE(hs.ok()) << hs.status().message();
  EXPECT_GT((*hs)->damp_used, 0.0);
}

TEST(CalibratedQuant, PreparedHessianIsReusableAndDeterministic) {
  ThreadPool pool(2);
  const Layer L = make_layer(50, 256, 400, 5);
  auto hs = prepare_hessian(L.h.data(), L.cols, &pool);
  ASSERT_TRUE(hs.ok());
  for (DType t : {DType::Q4_0, DType::Q5_K}) {
    const auto one_shot = calibrated(t, L, &pool);
    std::vector<uint8_t> a(one_shot.size()), b(one_shot.size());
    ASSERT_TRUE(quantize_matrix(t, L.w.data(), L.rows, L.cols, **hs, a.data(), &pool).is_ok());
    ASSERT_TRUE(quantize_matrix(t, L.w.data(), L.rows, L.cols, **hs, b.data(), nullptr).is_ok());
    EXPECT_EQ(a, one_shot) << dtype_name(t);
    EXPECT_EQ(b, one_shot) << dtype_name(t) << ": thread count must not change the bytes";
  }
}

TEST(CalibratedQuant, ActOrderStaticGroupsDecode) {
  ThreadPool pool(2);
  for (int variant = 0; variant < 2; ++variant) {
    const Layer L = variant == 0 ? make_layer(64, 512, 1024, 6)
                                 : make_layer(64, 512, 1024, 16, 0, 2.0f, 4.0f, 1.0f);
    CalibOptions natural;
    natural.act_order = false;
    for (const FormatCase& fc : kCases) {
      const DType t = fc.t;
      const auto qa = calibrated(t, L, &pool);
      const auto qg = calibrated(t, L, &pool, natural);
      const auto qp = plain(t, L);
      expect_decodes(t, L, qa, 2 * fc.max_weight_err);
      const double ep = weighted_error(t, L.w.data(), qp.data(), L.rows, L.cols, L.h.data());
      const double ea = weighted_error(t, L.w.data(), qa.data(), L.rows, L.cols, L.h.data());
      const double eg = weighted_error(t, L.w.data(), qg.data(), L.rows, L.cols, L.h.data());
      std::printf("%s %-8s act_order/plain %.3f  natural/plain %.3f\n", variant ? "mild" : "strong",
                  dtype_name(t), ea / ep, eg / ep);
      EXPECT_LT(ea, ep) << dtype_name(t);
    }
  }
}

// Calibration on n_cal tokens, evaluation on 2048 other tokens of the same distribution: the
// error that matters for a model. Guards against overfitting the calibration set (a damping that
// is too small makes GPTQ worse than plain rounding on held-out data when tokens are scarce).
TEST(CalibratedQuant, HeldOutActivations) {
  ThreadPool pool(2);
  for (int variant = 0; variant < 2; ++variant) {
    for (int64_t n_cal : {512, 2048}) {
      const Layer all = variant == 0 ? make_layer(64, 512, n_cal + 2048, 21)
                                     : make_layer(64, 512, n_cal + 2048, 22, 0, 2.0f, 4.0f, 1.0f);
      const int64_t cols = all.cols;
      Layer L = all;
      std::vector<double> hc(static_cast<size_t>(cols * cols), 0.0), ht(hc);
      for (int64_t t = 0; t < all.tokens; ++t) {
        const float* xt = all.x.data() + t * cols;
        std::vector<double>& hh = t < n_cal ? hc : ht;
        for (int64_t i = 0; i < cols; ++i)
          for (int64_t j = 0; j < cols; ++j) hh[size_t(i * cols + j)] += double(xt[i]) * xt[j];
      }
      std::vector<float> h_test(hc.size());
      for (size_t i = 0; i < hc.size(); ++i) {
        L.h[i] = float(hc[i]);
        h_test[i] = float(ht[i]);
      }
      for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::I4_G128, DType::Q8_0}) {
        const auto q = calibrated(t, L, &pool);
        const auto qp = plain(t, L);
        const double e = weighted_error(t, L.w.data(), q.data(), L.rows, cols, h_test.data());
        const double ep = weighted_error(t, L.w.data(), qp.data(), L.rows, cols, h_test.data());
        std::printf("%s, %4lld calibration tokens, %-8s held-out gptq/plain %.3f\n",
                    variant ? "mild  " : "strong", (long long)n_cal, dtype_name(t), e / ep);
        EXPECT_LT(e / ep, variant == 0 ? 0.1 : (n_cal == 512 ? 0.85 : 0.7)) << dtype_name(t);
      }
    }
  }
}

// With H = I the output error is the plain weight error: the weighted searches include the plain
// rounding's grid as a candidate (k-quants: their own search), so they must not lose to it.
// Measured weighted/plain 0.80 (q4_1) .. 0.99 (i8_row).
TEST(CalibratedQuant, IdentityHessianNoWorseThanPlain) {
  ThreadPool pool(2);
  Layer L = make_layer(32, 512, 16, 9);
  std::fill(L.h.begin(), L.h.end(), 0.0f);
  for (int64_t i = 0; i < L.cols; ++i) L.h[size_t(i * L.cols + i)] = 1.0f;
  for (const FormatCase& fc : kCases) {
    const auto qp = plain(fc.t, L);
    CalibOptions rtn;
    rtn.method = CalibMethod::kWeightedRtn;
    const auto qr = calibrated(fc.t, L, &pool, rtn);
    const auto qg = calibrated(fc.t, L, &pool);
    const double ep = weighted_error(fc.t, L.w.data(), qp.data(), L.rows, L.cols, L.h.data());
    const double er = weighted_error(fc.t, L.w.data(), qr.data(), L.rows, L.cols, L.h.data());
    const double eg = weighted_error(fc.t, L.w.data(), qg.data(), L.rows, L.cols, L.h.data());
    std::printf("%-8s H=I: weighted/plain %.3f  gptq/plain %.3f\n", dtype_name(fc.t), er / ep, eg / ep);
    EXPECT_LE(er, ep) << dtype_name(fc.t);
    EXPECT_LE(eg, ep) << dtype_name(fc.t);
  }
}

// Polishing (coordinate descent on codes, least-squares rescaling) only keeps changes that lower
// the loss.
TEST(CalibratedQuant, PolishNeverHurts) {
  ThreadPool pool(2);
  const Layer L = make_layer(48, 512, 1024, 10, 0, 2.0f, 4.0f, 1.0f);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q4_K, DType::Q6_K, DType::U8_ROW}) {
    CalibOptions o0, o2;
    o0.polish_passes = 0;
    o2.polish_passes = 1;
    const auto q0 = calibrated(t, L, &pool, o0);
    const auto q1 = calibrated(t, L, &pool);
    const auto q2 = calibrated(t, L, &pool, o2);
    const double e0 = weighted_error(t, L.w.data(), q0.data(), L.rows, L.cols, L.h.data());
    const double e1 = weighted_error(t, L.w.data(), q1.data(), L.rows, L.cols, L.h.data());
    const double e2 = weighted_error(t, L.w.data(), q2.data(), L.rows, L.cols, L.h.data());
    std::printf("%-8s polish passes 0/1/2: %.4e %.4e %.4e\n", dtype_name(t), e0, e2, e1);
    EXPECT_LT(e2, e0) << dtype_name(t);
    EXPECT_LE(e1, e2 * 1.001) << dtype_name(t);
  }
}

TEST(CalibratedQuant, BadArgumentsAreErrors) {
  const Layer L = make_layer(4, 64, 32, 7);
  std::vector<uint8_t> out(4 * 1024);
  auto q = [&](DType t, const float* w, int64_t rows, int64_t cols, const float* h, uint8_t* o) {
    return quantize_matrix(t, w, rows, cols, h, o, nullptr);
  };
  EXPECT_FALSE(q(DType::F32, L.w.data(), 4, 64, L.h.data(), out.data()).is_ok());
  EXPECT_FALSE(q(DType::Q3_K, L.w.data(), 4, 64, L.h.data(), out.data()).is_ok());
  EXPECT_FALSE(q(DType::Q2_K, L.w.data(), 4, 64, L.h.data(), out.data()).is_ok());  // no GPTQ
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 4, 48, L.h.data(), out.data()).is_ok());  // 48 % 32
  EXPECT_FALSE(q(DType::Q4_K, L.w.data(), 4, 64, L.h.data(), out.data()).is_ok());  // 64 % 256
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 0, 64, L.h.data(), out.data()).is_ok());
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), -1, 64, L.h.data(), out.data()).is_ok());
  EXPECT_FALSE(q(DType::Q4_0, nullptr, 4, 64, L.h.data(), out.data()).is_ok());
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 4, 64, L.h.data(), nullptr).is_ok());
  EXPECT_FALSE(q(DType(777), L.w.data(), 4, 64, nullptr, out.data()).is_ok());
  std::vector<float> w = L.w;
  w[5] = NAN;
  EXPECT_FALSE(q(DType::Q4_0, w.data(), 4, 64, L.h.data(), out.data()).is_ok());
  std::vector<float> h = L.h;
  h[3 * 64 + 9] = INFINITY;
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 4, 64, h.data(), out.data()).is_ok());
  h = L.h;
  h[10 * 64 + 10] = -1.0f;
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 4, 64, h.data(), out.data()).is_ok());
  std::vector<float> zero(64 * 64, 0.0f);
  EXPECT_FALSE(q(DType::Q4_0, L.w.data(), 4, 64, zero.data(), out.data()).is_ok());
  // Strongly indefinite H: no damping within the retries makes it positive definite.
  std::vector<float> indef(64 * 64, 0.0f);
  for (int i = 0; i < 64; ++i) indef[i * 64 + i] = 1.0f;
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j)
      if (i != j) indef[i * 64 + j] = 1e6f;
  const Status s = q(DType::Q4_0, L.w.data(), 4, 64, indef.data(), out.data());
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("positive definite"), std::string::npos) << s.message();
  CalibOptions bad;
  bad.damp = -1;
  EXPECT_FALSE(quantize_matrix(DType::Q4_0, L.w.data(), 4, 64, L.h.data(), out.data(), nullptr, bad).is_ok());
  auto hs = prepare_hessian(L.h.data(), 64, nullptr);
  ASSERT_TRUE(hs.ok());
  EXPECT_FALSE(quantize_matrix(DType::Q4_0, L.w.data(), 2, 128, **hs, out.data(), nullptr).is_ok());
  EXPECT_TRUE(std::isnan(weighted_error(DType::Q4_0, L.w.data(), out.data(), 4, 48, L.h.data())));
  EXPECT_TRUE(std::isnan(weighted_error(DType::Q4_0, nullptr, out.data(), 4, 64, L.h.data())));
}

// Timing of SmolLM2-135M-sized matrices (the MLP's up and down projections), 2 threads.
TEST(CalibratedQuant, TimingPrint) {
  ThreadPool pool(2);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1536, 576}, {576, 1536}}) {
    const Layer L = make_layer(rows, cols, 256, 8);  // rank-deficient H: fine for timing
    auto t0 = std::chrono::steady_clock::now();
    auto hs = prepare_hessian(L.h.data(), cols, &pool);
    ASSERT_TRUE(hs.ok());
    auto t1 = std::chrono::steady_clock::now();
    const double t_fac = std::chrono::duration<double>(t1 - t0).count();
    for (DType t : {DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::I8_ROW, DType::I4_G64}) {
      if (!dtype_row_ok(t, cols)) continue;  // k-quants need cols % 256 == 0
      std::vector<uint8_t> q(size_t(rows) * dtype_row_bytes(t, cols));
      t0 = std::chrono::steady_clock::now();
      ASSERT_TRUE(quantize_matrix(t, L.w.data(), rows, cols, **hs, q.data(), &pool).is_ok());
      t1 = std::chrono::steady_clock::now();
      std::printf("%5lldx%-5lld %-7s factor %.3f s  gptq %.3f s\n", (long long)rows,
                  (long long)cols, dtype_name(t), t_fac,
                  std::chrono::duration<double>(t1 - t0).count());
    }
  }
}

}  // namespace
}  // namespace edgeglm::quant

namespace edgeglm::quant {
namespace {

// Whole-model cost on SmolLM2-135M's shapes (30 layers: q 576x576, k/v 192x576, o 576x576,
// gate/up 1536x576, down 576x1536; lm_head 49152x576), 2 threads, one Hessian factorization per
// distinct input as a model quantizer would do. Slow (about a minute): run with
//   test_quant --gtest_also_run_disabled_tests --gtest_filter='*SmolLM2Shapes*'
TEST(CalibratedQuant, DISABLED_SmolLM2ShapesTiming) {
  ThreadPool pool(2);
  const DType t = DType::Q4_0;
  auto make_h = [](int64_t cols, uint32_t seed) {
    const Layer L = make_layer(1, cols, 128, seed);
    return L.h;
  };
  const std::vector<float> h576 = make_h(576, 1), h1536 = make_h(1536, 2);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(size_t(49152) * 576);
  for (auto& v : w) v = nd(rng);
  std::vector<uint8_t> out(size_t(49152) * dtype_row_bytes(t, 576));
  double t_factor = 0, t_quant = 0;
  auto run = [&](int64_t rows, int64_t cols, const CalibHessian& hs) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(quantize_matrix(t, w.data(), rows, cols, hs, out.data(), &pool).is_ok());
    t_quant += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto prep = [&](const std::vector<float>& h, int64_t cols) {
    const auto t0 = std::chrono::steady_clock::now();
    auto hs = prepare_hessian(h.data(), cols, &pool);
    t_factor += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::move(hs).value();
  };
  for (int layer = 0; layer < 30; ++layer) {
    const auto h_qkv = prep(h576, 576), h_o = prep(h576, 576), h_up = prep(h576, 576);
    const auto h_down = prep(h1536, 1536);
    run(576, 576, *h_qkv);
    run(192, 576, *h_qkv);
    run(192, 576, *h_qkv);
    run(576, 576, *h_o);
    run(1536, 576, *h_up);
    run(1536, 576, *h_up);
    run(576, 1536, *h_down);
  }
  const double t_layers = t_factor + t_quant;
  run(49152, 576, *prep(h576, 576));
  std::printf("q4_0, 2 threads: 30 layers %.1f s (factorizations %.1f s), with lm_head %.1f s\n",
              t_layers, t_factor, t_factor + t_quant);
}

}  // namespace
}  // namespace edgeglm::quant
