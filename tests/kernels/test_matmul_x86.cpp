// Shapes that exercise the tiling of the SIMD integer kernels (x86 avx2/avx512, and any other
// table compiled in): many tokens (register tiles of tokens and their tails), row counts that are
// not multiples of the 16/32-row tiles, row ranges that start inside a tile, and reduction
// lengths that span several repack chunks. Every table against the generic twin, with the
// tolerance of test_matmul.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/isa.h"
#include "kernels/qacts.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

struct Case {
  int64_t rows, cols, n_tok, r0, r1;
};

class MatmulTiles : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST_P(MatmulTiles, EveryIsaMatchesTheTwinOnTiledShapes) {
  const DType dt = GetParam();
  const int64_t blk = dtype_traits(dt)->block_size;  // 32, 64, 128 or 256
  const Case cases[] = {
      {33, 2 * 256, 16, 0, 33},       {50, 3 * 256, 64, 0, 50},    {100, 576 * blk / 32, 7, 3, 97},
      {48, 1536 * blk / 256, 13, 16, 48}, {17, 1024, 70, 0, 17},   {64, 2304, 1, 0, 64},
      {5, 4608, 2, 1, 5},             {37, 256, 130, 0, 37},
      // row ranges that start and end inside 4-row tiles, many tokens (AVX2 4x3 / NEON 4x2 tiles)
      {23, 3 * 256, 16, 1, 22}, {30, 2 * 256, 64, 3, 30}, {13, 5 * 256, 130, 2, 13},
      {11, 9 * 256, 1, 1, 10},  {9, 1280, 2, 3, 8},       {6, 256, 3, 5, 6},
      {18, 768, 5, 0, 17},
  };
  std::mt19937 rng(4321);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case& c : cases) {
    const int64_t cols = (c.cols + blk - 1) / blk * blk;
    const size_t rb = dtype_row_bytes(dt, cols);
    std::vector<uint8_t> w(rb * size_t(c.rows));
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t r = 0; r < c.rows; ++r) {
      for (auto& v : f) v = nd(rng) + (r % 4 == 1 ? -0.5f : 0.0f);
      quant::quantize_row(dt, f.data(), w.data() + size_t(r) * rb, cols);
    }
    std::vector<float> x(size_t(c.n_tok * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<uint64_t> mem(kernels::qacts_bytes(cols, c.n_tok) / 8 + 16);
    void* base = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    const kernels::QActs a = kernels::qacts_view(base, cols, c.n_tok);
    for (int64_t t = 0; t < c.n_tok; ++t)
      kernels::quantize_acts_ref(x.data() + t * cols, cols, a.q + t * cols, a.d + t * a.nb(), a.s + t * a.nb());
    // |w| . |x_q| per output, the scale of the float rounding the tolerance allows.
    std::vector<double> mag(size_t(c.n_tok * c.rows));
    for (int64_t r = 0; r < c.rows; ++r) {
      quant::dequantize_row(dt, w.data() + size_t(r) * rb, f.data(), cols);
      for (int64_t t = 0; t < c.n_tok; ++t) {
        double m = 0;
        for (int64_t i = 0; i < cols; ++i)
          m += std::fabs(double(f[size_t(i)]) * a.d[(t * cols + i) / 32] * a.q[t * cols + i]);
        mag[size_t(t * c.rows + r)] = m;
      }
    }
    const auto all = kernels::available_isas();
    const kernels::FormatKernels gk = all.front()->format(dt);
    ASSERT_NE(gk.q, nullptr);
    std::vector<float> twin(size_t(c.n_tok * c.rows), NAN);
    gk.q(w.data(), rb, a, twin.data(), c.rows, c.r0, c.r1);
    for (const kernels::KernelTable* isa : all) {
      const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, dt);
      ASSERT_NE(rf.k.q, nullptr) << isa->name;
      std::vector<float> y(twin.size(), NAN);
      rf.k.q(w.data(), rb, a, y.data(), c.rows, c.r0, c.r1);
      for (int64_t t = 0; t < c.n_tok; ++t)
        for (int64_t r = 0; r < c.rows; ++r) {
          const size_t i = size_t(t * c.rows + r);
          const std::string where = std::string(rf.isa) + " " + dtype_name(dt) + " rows " +
                                    std::to_string(c.rows) + " cols " + std::to_string(cols) +
                                    " n_tok " + std::to_string(c.n_tok) + " t " + std::to_string(t) +
                                    " r " + std::to_string(r);
          if (r < c.r0 || r >= c.r1) {
            ASSERT_TRUE(std::isnan(y[i])) << "wrote outside its rows: " << where;
          } else {
            ASSERT_NEAR(y[i], twin[i], 2e-6 * mag[i] + 1e-5) << where;
          }
        }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, MatmulTiles,
                         ::testing::Values(DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                                           DType::I8_ROW, DType::U8_ROW, DType::I4_G64,
                                           DType::I4_G128, DType::U4_G64, DType::U4_G128),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Float-activation mode (dispatch.cpp) sends integer formats to the float kernel of F16, with
// their own type: every table's float kernel must decode any format.
TEST(MatmulFloatKernel, ServesAnyFormatByDecodingRows) {
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q2_K}) {
    const int64_t cols = 512, rows = 11, n_tok = 5;
    const size_t rb = dtype_row_bytes(dt, cols);
    std::vector<uint8_t> w(rb * size_t(rows));
    std::vector<float> f(static_cast<size_t>(cols)), x(size_t(n_tok * cols));
    for (int64_t r = 0; r < rows; ++r) {
      for (auto& v : f) v = nd(rng);
      quant::quantize_row(dt, f.data(), w.data() + size_t(r) * rb, cols);
    }
    for (auto& v : x) v = nd(rng);
    std::vector<double> ref(size_t(rows * n_tok)), mag(ref.size());
    for (int64_t r = 0; r < rows; ++r) {
      quant::dequantize_row(dt, w.data() + size_t(r) * rb, f.data(), cols);
      for (int64_t t = 0; t < n_tok; ++t) {
        double s = 0, m = 0;
        for (int64_t i = 0; i < cols; ++i) {
          s += double(f[size_t(i)]) * x[size_t(t * cols + i)];
          m += std::fabs(double(f[size_t(i)]) * x[size_t(t * cols + i)]);
        }
        ref[size_t(t * rows + r)] = s, mag[size_t(t * rows + r)] = m;
      }
    }
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, DType::F16);
      ASSERT_NE(rf.k.f, nullptr) << isa->name;
      std::vector<float> y(ref.size(), NAN);
      rf.k.f(dt, w.data(), rb, x.data(), cols, n_tok, y.data(), rows, 0, rows);
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], ref[i], 2e-6 * mag[i] + 1e-6) << rf.isa << " " << dtype_name(dt) << " i " << i;
    }
  }
}
