// fast_expf against std::exp over the range the kernels use it on, and silu_mul of every ISA
// against the definition.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/vec_math.h"

using namespace edgeglm;

TEST(VecMath, FastExpWithinTwoUlpOverTheFloatRange) {
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.001f) {
    const double want = std::exp(double(x));
    const double got = kernels::fast_expf(x);
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(kernels::fast_expf(0.0f), 1.0f);
  // Clamped, finite ends: softmax and silu never see inf or NaN from it.
  EXPECT_TRUE(std::isfinite(kernels::fast_expf(1000.0f)));
  EXPECT_GT(kernels::fast_expf(1000.0f), 1e38f);
  EXPECT_LT(kernels::fast_expf(-1000.0f), 2e-38f);
  EXPECT_GE(kernels::fast_expf(-1000.0f), 0.0f);
}

TEST(VecMath, SiluMulOfEveryIsaMatchesTheDefinition) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  const int64_t n = 1001;
  std::vector<float> g(static_cast<size_t>(n)), u(static_cast<size_t>(n));
  for (auto& v : g) v = nd(rng);
  for (auto& v : u) v = nd(rng);
  g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f;
  for (const kernels::KernelTable* isa : kernels::available_isas()) {
    ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
    std::vector<float> y = g;
    kernels::silu_mul(y.data(), u.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double want = double(g[size_t(i)]) / (1.0 + std::exp(-double(g[size_t(i)]))) * u[size_t(i)];
      ASSERT_NEAR(y[size_t(i)], want, 1e-6 * std::fabs(want) + 1e-30) << isa->name << " i " << i;
    }
  }
  ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
}
