// The avx2 table explicitly (found by name in available_isas(); skipped on CPUs without AVX2):
// its activation quantizer against the reference, and its integer kernels against the generic
// twin over many tokens (16, 64, 130: prefill tiles and their tails) and row ranges that are not
// multiples of its 4-row tiles and start inside one. Tolerance as in test_matmul.cpp (the integer
// partial sums are exact; only float summation order differs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/isa.h"
#include "kernels/qacts.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

const kernels::KernelTable* avx2_table() {
  for (const kernels::KernelTable* t : kernels::available_isas())
    if (std::string(t->name) == "avx2") return t;
  return nullptr;
}

class MatmulAvx2 : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST(QuantizeActsAvx2, BitIdenticalIncludingTiesNanAndInf) {
  const kernels::KernelTable* isa = avx2_table();
  if (!isa) GTEST_SKIP() << "no avx2 table on this CPU";
  ASSERT_NE(isa->quantize_acts, nullptr);
  std::mt19937 rng(99);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int64_t n = 32 * 40;
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  for (int j = 0; j < 32; ++j) x[size_t(32 + j)] = float(j - 16) * 0.5f;  // halves: ties at amax 8
  x[64 + 31] = 127.0f;  // block of exact integers
  for (int j = 0; j < 31; ++j) x[size_t(64 + j)] = float(j * 4 - 60) + 0.5f;
  x[100] = NAN;
  x[140] = INFINITY;
  for (int j = 0; j < 32; ++j) x[size_t(160 + j)] = 0.0f;
  x[200] = -1e-30f;
  std::vector<int8_t> q0(static_cast<size_t>(n)), q(static_cast<size_t>(n), 5);
  std::vector<float> d0(size_t(n / 32)), d(size_t(n / 32), -1.0f);
  std::vector<int32_t> s0(size_t(n / 32)), s(size_t(n / 32), -7);
  kernels::quantize_acts_ref(x.data(), n, q0.data(), d0.data(), s0.data());
  isa->quantize_acts(x.data(), n, q.data(), d.data(), s.data());
  EXPECT_EQ(q, q0);
  EXPECT_EQ(0, std::memcmp(d.data(), d0.data(), d.size() * sizeof(float)));
  EXPECT_EQ(s, s0);
}

TEST_P(MatmulAvx2, MatchesTheTwinOnManyTokensAndOddRowRanges) {
  const kernels::KernelTable* isa = avx2_table();
  if (!isa) GTEST_SKIP() << "no avx2 table on this CPU";
  const DType dt = GetParam();
  const kernels::FormatKernels k = isa->format(dt);
  ASSERT_NE(k.q, nullptr) << "avx2 lacks an integer kernel for " << dtype_name(dt);
  const kernels::FormatKernels gk = kernels::available_isas().front()->format(dt);
  ASSERT_NE(gk.q, nullptr);
  const int64_t blk = dtype_traits(dt)->block_size;
  struct Case {
    int64_t rows, cols, n_tok, r0, r1;
  };
  const Case cases[] = {
      {23, 3 * 256, 16, 1, 22}, {30, 2 * 256, 64, 3, 30}, {13, 5 * 256, 130, 2, 13},
      {7, 256, 130, 0, 7},     {11, 9 * 256, 1, 1, 10},   {9, 1280, 2, 3, 8},
      {6, 256, 3, 5, 6},       {18, 768, 5, 0, 17},
  };
  std::mt19937 rng(2024);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case& c : cases) {
    const int64_t cols = (c.cols + blk - 1) / blk * blk;
    const size_t rb = dtype_row_bytes(dt, cols);
    std::vector<uint8_t> w(rb * size_t(c.rows));
    std::vector<float> f(static_cast<size_t>(cols));
    for (int64_t r = 0; r < c.rows; ++r) {
      for (auto& v : f) v = nd(rng) + (r % 3 == 2 ? 0.6f : 0.0f);
      quant::quantize_row(dt, f.data(), w.data() + size_t(r) * rb, cols);
    }
    std::vector<float> x(size_t(c.n_tok * cols));
    for (auto& v : x) v = nd(rng);
    std::vector<uint64_t> mem(kernels::qacts_bytes(cols, c.n_tok) / 8 + 16);
    void* base = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    const kernels::QActs a = kernels::qacts_view(base, cols, c.n_tok);
    for (int64_t t = 0; t < c.n_tok; ++t)
      isa->quantize_acts(x.data() + t * cols, cols, a.q + t * cols, a.d + t * a.nb(), a.s + t * a.nb());
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
    std::vector<float> twin(size_t(c.n_tok * c.rows), NAN), y(twin.size(), NAN);
    gk.q(w.data(), rb, a, twin.data(), c.rows, c.r0, c.r1);
    k.q(w.data(), rb, a, y.data(), c.rows, c.r0, c.r1);
    const std::string where = std::string(dtype_name(dt)) + " rows " + std::to_string(c.rows) + " cols " +
                              std::to_string(cols) + " n_tok " + std::to_string(c.n_tok);
    for (int64_t t = 0; t < c.n_tok; ++t) {
      for (int64_t r = 0; r < c.rows; ++r) {
        const size_t i = size_t(t * c.rows + r);
        if (r < c.r0 || r >= c.r1) {
          ASSERT_TRUE(std::isnan(y[i])) << "wrote outside [r0, r1) " << where << " r " << r;
          continue;
        }
        ASSERT_NEAR(y[i], twin[i], 2e-6 * mag[i] + 1e-5) << where << " t " << t << " r " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(IntegerFormats, MatmulAvx2,
                         ::testing::Values(DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                                           DType::Q4_K, DType::Q5_K, DType::Q6_K),
                         [](const ::testing::TestParamInfo<DType>& i) { return std::string(dtype_name(i.param)); });
