// Every ISA build of the matmul compiled into this binary against the reference: the quant
// layer's dequantize_row followed by a double-precision dot, for every weight format the engine
// computes with, over shapes that are not multiples of vector widths.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

struct Case {
  DType dtype;
  double rel_tol;  // of the sum of |w*x|: float accumulation in a different order
};

std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(cols));
  std::vector<uint8_t> out(dtype_row_bytes(t, cols) * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : f) v = nd(rng);
    quant::quantize_row(t, f.data(), out.data() + size_t(r) * dtype_row_bytes(t, cols), cols);
  }
  return out;
}

class MatmulIsa : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(MatmulIsa, EveryIsaMatchesReference) {
  const Case c = GetParam();
  const int64_t block = dtype_traits(c.dtype)->block_size;
  std::mt19937 rng(1234);
  ThreadPool pool(2);
  for (int64_t cols : {block, 3 * block, block == 1 ? int64_t(37) : 7 * block}) {
    for (int64_t rows : {1, 5, 67}) {
      for (int64_t n_tok : {1, 3}) {
        auto w = random_weights(c.dtype, rows, cols, rng);
        TensorView wv = TensorView::make(c.dtype, w.data(), cols, rows);
        std::vector<float> x(size_t(n_tok * cols));
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (auto& v : x) v = nd(rng);
        // Reference: dequantize, then dot in double.
        std::vector<double> ref(size_t(n_tok * rows)), mag(size_t(n_tok * rows));
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          quant::dequantize_row(c.dtype, wv.row<const char>(r), row.data(), cols);
          for (int64_t t = 0; t < n_tok; ++t) {
            double s = 0, m = 0;
            for (int64_t i = 0; i < cols; ++i) {
              s += double(row[size_t(i)]) * x[size_t(t * cols + i)];
              m += std::fabs(double(row[size_t(i)]) * x[size_t(t * cols + i)]);
            }
            ref[size_t(t * rows + r)] = s;
            mag[size_t(t * rows + r)] = m;
          }
        }
        for (const kernels::KernelTable* isa : kernels::available_isas()) {
          std::vector<float> y(size_t(n_tok * rows), NAN);
          isa->matmul(wv, x.data(), n_tok, y.data(), pool);
          for (size_t i = 0; i < y.size(); ++i)
            ASSERT_NEAR(y[i], ref[i], c.rel_tol * mag[i] + 1e-6)
                << isa->name << " " << dtype_name(c.dtype) << " rows " << rows << " cols " << cols
                << " n_tok " << n_tok << " i " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, MatmulIsa,
                         ::testing::Values(Case{DType::F32, 1e-5}, Case{DType::F16, 1e-5},
                                           Case{DType::BF16, 1e-5}, Case{DType::Q4_0, 1e-5},
                                           Case{DType::Q4_1, 1e-5}, Case{DType::Q5_0, 1e-5},
                                           Case{DType::Q5_1, 1e-5}, Case{DType::Q8_0, 1e-5},
                                           Case{DType::Q2_K, 1e-5}, Case{DType::Q4_K, 1e-5},
                                           Case{DType::Q5_K, 1e-5}, Case{DType::Q6_K, 1e-5}),
                         [](const auto& info) { return std::string(dtype_name(info.param.dtype)); });

TEST(KernelDispatch, ForceIsaNamesTheChoices) {
  auto st = kernels::force_isa("no-such-isa");
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("generic"), std::string::npos);
  ASSERT_TRUE(kernels::force_isa("generic").is_ok());
  EXPECT_STREQ(kernels::active_isa().name, "generic");
  ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
}

TEST(Kernels, RopeInterleavedAndNeoxRotatePairs) {
  // One head of 4 dims, all rotated; inv_freq {1, 0.5}; at pos 1 the angles are 1 and 0.5 rad.
  const float inv[2] = {1.0f, 0.5f};
  float cs[4];
  kernels::rope_angles(1.0f, inv, 4, cs);
  EXPECT_FLOAT_EQ(cs[0], std::cos(1.0f));
  EXPECT_FLOAT_EQ(cs[3], std::sin(0.5f));
  float a[4] = {1, 0, 1, 0};  // interleaved pairs (0,1), (2,3)
  kernels::rope(a, 1, 4, 4, cs, false);
  EXPECT_NEAR(a[0], std::cos(1.0f), 1e-6);
  EXPECT_NEAR(a[1], std::sin(1.0f), 1e-6);
  EXPECT_NEAR(a[2], std::cos(0.5f), 1e-6);
  EXPECT_NEAR(a[3], std::sin(0.5f), 1e-6);
  float b[4] = {1, 1, 0, 0};  // neox pairs (0,2), (1,3)
  kernels::rope(b, 1, 4, 4, cs, true);
  EXPECT_NEAR(b[0], std::cos(1.0f), 1e-6);
  EXPECT_NEAR(b[2], std::sin(1.0f), 1e-6);
  EXPECT_NEAR(b[1], std::cos(0.5f), 1e-6);
  EXPECT_NEAR(b[3], std::sin(0.5f), 1e-6);
  // Partial rotary: dims past n_rot are untouched.
  float c[4] = {1, 0, 7, 9};
  kernels::rope(c, 1, 4, 2, cs, false);
  EXPECT_EQ(c[2], 7.0f);
  EXPECT_EQ(c[3], 9.0f);
}

TEST(Kernels, AttentionIsGroupedAndCausalByLength) {
  // 2 query heads share 1 kv head; 2 cached positions with distinct values.
  const float q[4] = {1, 0, 0, 1};          // (2 heads, dim 2)
  const float k[4] = {10, 0, 0, 10};        // (2 positions, kv_dim 2)
  const float v[4] = {1, 2, 3, 4};
  float out[4], scratch[2];
  kernels::attention_one(q, k, v, 2, 2, 2, 1, 2, 1.0f, out, scratch, 0, 2);
  // Head 0 attends almost only to position 0, head 1 to position 1.
  EXPECT_NEAR(out[0], 1.0f, 1e-3);
  EXPECT_NEAR(out[1], 2.0f, 1e-3);
  EXPECT_NEAR(out[2], 3.0f, 1e-3);
  EXPECT_NEAR(out[3], 4.0f, 1e-3);
  // With one visible position the output is that position's value exactly.
  kernels::attention_one(q, k, v, 1, 2, 2, 1, 2, 1.0f, out, scratch, 0, 2);
  EXPECT_FLOAT_EQ(out[2], 1.0f);
  EXPECT_FLOAT_EQ(out[3], 2.0f);
}
