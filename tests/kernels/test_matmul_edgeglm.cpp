// edgeglm's own weight formats (I8_ROW, U8_ROW, I4_G64/128, U4_G64/128) in every kernel table
// compiled into this binary and usable on this CPU, against the generic twin, over column counts
// that are multiples of the group (several groups, odd numbers of groups), row counts and row
// ranges that are not multiples of any tile (4/6/8/16/32 rows), and token counts on both sides of
// every decode/prefill switch and register-tile width (1, 2, 3, 5, 7, 13, 33).
//   - the twin equals the double-precision product of the dequantized weights and dequantized
//     activations up to float rounding (so it computes the format's definition);
//   - every table equals the twin up to float summation order: 2e-6 * sum |w * x_q| + 1e-5,
//     the tolerance of test_matmul.cpp (integer partial sums are exact in every ISA).
// Weights come from the reference quantizer of rows with an offset, an outlier and (U8/U4) rows
// that are all positive, so the min terms are large next to the result.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/qacts.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

struct Shape {
  int64_t rows, cols, n_tok, r0, r1;
};

std::vector<int64_t> cols_for(DType t) {
  switch (t) {
    case DType::I4_G64:
    case DType::U4_G64: return {64, 192, 576, 1536};
    case DType::I4_G128:
    case DType::U4_G128: return {128, 640, 1152};
    default: return {32, 96, 576, 1536};  // the per-row formats: any multiple of 32
  }
}

std::vector<uint8_t> make_weights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const size_t rb = dtype_row_bytes(t, cols);
  std::vector<uint8_t> w(rb * size_t(rows));
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : f) v = nd(rng);
    if (r % 3 == 1)
      for (auto& v : f) v = std::fabs(v) + 2.0f;  // all positive: min far from zero
    if (r % 5 == 2) f[size_t((r * 7) % cols)] = 20.0f;  // an outlier sets the scale
    if (r % 7 == 6) std::fill(f.begin(), f.end(), 0.0f);  // zero row
    quant::quantize_row(t, f.data(), w.data() + size_t(r) * rb, cols);
  }
  return w;
}

struct QBuf {
  std::vector<uint64_t> mem;
  kernels::QActs a;
  QBuf(const std::vector<float>& x, int64_t cols, int64_t n_tok)
      : mem(kernels::qacts_bytes(cols, n_tok) / 8 + 16) {
    void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    a = kernels::qacts_view(p, cols, n_tok);
    for (int64_t t = 0; t < n_tok; ++t)
      kernels::quantize_acts_ref(x.data() + t * cols, cols, a.q + t * cols, a.d + t * a.nb(), a.s + t * a.nb());
  }
};

class EdgeglmFormats : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST_P(EdgeglmFormats, EveryIsaMatchesTheTwinAndTheTwinTheDefinition) {
  const DType dt = GetParam();
  std::mt19937 rng(2024 + uint32_t(dt));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const auto all = kernels::available_isas();
  const kernels::FormatKernels gk = all.front()->format(dt);
  ASSERT_NE(gk.q, nullptr) << "the generic table must compute " << dtype_name(dt) << " with int8 acts";
  for (int64_t cols : cols_for(dt)) {
    for (const Shape& sh : {Shape{1, 0, 1, 0, 1}, Shape{5, 0, 2, 0, 5}, Shape{17, 0, 3, 1, 17},
                            Shape{67, 0, 7, 3, 66}, Shape{35, 0, 13, 0, 35}, Shape{9, 0, 33, 2, 9},
                            Shape{40, 0, 5, 7, 40}, Shape{33, 0, 1, 0, 33}}) {
      const int64_t rows = sh.rows, n_tok = sh.n_tok;
      const auto w = make_weights(dt, rows, cols, rng);
      const size_t rb = dtype_row_bytes(dt, cols);
      std::vector<float> x(size_t(n_tok * cols));
      for (auto& v : x) v = nd(rng);
      for (int64_t i = 0; i < std::min<int64_t>(cols, 32); ++i) x[size_t(i)] = 0.0f;  // a zero block
      QBuf qb(x, cols, n_tok);
      // Double-precision reference on the dequantized activations, and the magnitude per output.
      std::vector<double> refq(size_t(rows * n_tok)), mag(refq.size());
      std::vector<float> row(static_cast<size_t>(cols));
      for (int64_t r = 0; r < rows; ++r) {
        quant::dequantize_row(dt, w.data() + size_t(r) * rb, row.data(), cols);
        for (int64_t t = 0; t < n_tok; ++t) {
          double s = 0, m = 0;
          for (int64_t i = 0; i < cols; ++i) {
            const double xq = double(qb.a.d[(t * cols + i) / 32]) * qb.a.q[t * cols + i];
            s += double(row[size_t(i)]) * xq;
            m += std::fabs(double(row[size_t(i)]) * xq);
          }
          refq[size_t(t * rows + r)] = s, mag[size_t(t * rows + r)] = m;
        }
      }
      const std::string shape = std::string(dtype_name(dt)) + " rows " + std::to_string(rows) + " cols " +
                                std::to_string(cols) + " n_tok " + std::to_string(n_tok);
      std::vector<float> twin(refq.size(), NAN);
      gk.q(w.data(), rb, qb.a, twin.data(), rows, 0, rows);
      for (size_t i = 0; i < twin.size(); ++i)
        ASSERT_NEAR(twin[i], refq[i], 2e-6 * mag[i] + 1e-5) << "twin vs definition " << shape << " i " << i;
      for (const kernels::KernelTable* isa : all) {
        const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, dt);
        ASSERT_NE(rf.k.q, nullptr) << isa->name << " " << shape;
        std::vector<float> y(twin.size(), NAN);
        // Two row ranges, as the pool splits them, the first one not starting at row 0.
        const int64_t mid = (sh.r0 + sh.r1) / 2;
        rf.k.q(w.data(), rb, qb.a, y.data(), rows, sh.r0, mid);
        rf.k.q(w.data(), rb, qb.a, y.data(), rows, mid, sh.r1);
        for (int64_t t = 0; t < n_tok; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            const size_t i = size_t(t * rows + r);
            if (r < sh.r0 || r >= sh.r1) {
              ASSERT_TRUE(std::isnan(y[i])) << rf.isa << " wrote outside its rows: " << shape << " r " << r;
            } else {
              ASSERT_NEAR(y[i], twin[i], 2e-6 * mag[i] + 1e-5)
                  << rf.isa << " (asked " << isa->name << ") vs twin " << shape << " t " << t << " r " << r;
            }
          }
      }
    }
  }
}

// Every table names itself as the server of these formats (no silent fallback to a lower table),
// with int8 activations: what `edgeglm info --cpu` prints.
TEST_P(EdgeglmFormats, EveryTableHasItsOwnIntegerKernel) {
  const DType dt = GetParam();
  for (const kernels::KernelTable* isa : kernels::available_isas()) {
    const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, dt);
    ASSERT_NE(rf.k.q, nullptr) << isa->name;
    EXPECT_STREQ(rf.isa, isa->name) << dtype_name(dt);
  }
}

// The float-activation mode decodes these formats with the quant reference in every table.
TEST_P(EdgeglmFormats, FloatKernelDecodesThem) {
  const DType dt = GetParam();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t cols = cols_for(dt)[1], rows = 7, n_tok = 3;
  const auto w = make_weights(dt, rows, cols, rng);
  const size_t rb = dtype_row_bytes(dt, cols);
  std::vector<float> x(size_t(n_tok * cols)), row(static_cast<size_t>(cols));
  for (auto& v : x) v = nd(rng);
  for (const kernels::KernelTable* isa : kernels::available_isas()) {
    const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, DType::F16);
    ASSERT_NE(rf.k.f, nullptr);
    std::vector<float> y(size_t(rows * n_tok), NAN);
    rf.k.f(dt, w.data(), rb, x.data(), cols, n_tok, y.data(), rows, 0, rows);
    for (int64_t r = 0; r < rows; ++r) {
      quant::dequantize_row(dt, w.data() + size_t(r) * rb, row.data(), cols);
      for (int64_t t = 0; t < n_tok; ++t) {
        double s = 0, m = 0;
        for (int64_t i = 0; i < cols; ++i) {
          s += double(row[size_t(i)]) * x[size_t(t * cols + i)];
          m += std::fabs(double(row[size_t(i)]) * x[size_t(t * cols + i)]);
        }
        ASSERT_NEAR(y[size_t(t * rows + r)], s, 2e-6 * m + 1e-6) << rf.isa << " " << dtype_name(dt);
      }
    }
  }
}

// The pool entry point with these formats mixed in one group (their ids are >= 1024: the
// dispatcher's per-thread cache must key them apart), 1 and 2 threads, decode and prefill.
TEST(EdgeglmFormatsGroup, MatmulGroupOfAllSixEqualsTheTwin) {
  const DType types[6] = {DType::I8_ROW, DType::U8_ROW, DType::I4_G64,
                          DType::I4_G128, DType::U4_G64, DType::U4_G128};
  const int64_t cols = 640, rows[6] = {37, 20, 45, 16, 51, 9};
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<std::vector<uint8_t>> w;
  std::vector<TensorView> views;
  for (int i = 0; i < 6; ++i) w.push_back(make_weights(types[i], rows[i], cols, rng));
  for (int i = 0; i < 6; ++i) views.push_back(TensorView::make(types[i], w[size_t(i)].data(), cols, rows[i]));
  for (int64_t n_tok : {1, 9}) {
    std::vector<float> x(size_t(n_tok * cols));
    for (auto& v : x) v = nd(rng);
    QBuf qb(x, cols, n_tok);
    std::vector<std::vector<float>> want(6);
    for (int i = 0; i < 6; ++i) {
      want[size_t(i)].assign(size_t(rows[i] * n_tok), NAN);
      kernels::available_isas().front()->format(types[i]).q(w[size_t(i)].data(), dtype_row_bytes(types[i], cols),
                                                            qb.a, want[size_t(i)].data(), rows[i], 0, rows[i]);
    }
    for (int threads : {1, 2}) {
      ThreadPool pool(threads);
      std::vector<std::vector<float>> got(6);
      const TensorView* ws[6];
      float* ys[6];
      for (int i = 0; i < 6; ++i) {
        got[size_t(i)].assign(size_t(rows[i] * n_tok), NAN);
        ws[i] = &views[size_t(i)];
        ys[i] = got[size_t(i)].data();
      }
      kernels::matmul_group(ws, ys, 6, x.data(), n_tok, pool);
      for (int i = 0; i < 6; ++i)
        for (size_t j = 0; j < got[size_t(i)].size(); ++j)
          ASSERT_NEAR(got[size_t(i)][j], want[size_t(i)][j], 1e-3 * (1.0 + std::fabs(want[size_t(i)][j])))
              << dtype_name(types[i]) << " n_tok " << n_tok << " threads " << threads << " j " << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, EdgeglmFormats,
                         ::testing::Values(DType::I8_ROW, DType::U8_ROW, DType::I4_G64, DType::I4_G128,
                                           DType::U4_G64, DType::U4_G128),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });
