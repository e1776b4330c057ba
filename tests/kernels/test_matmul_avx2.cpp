// The avx2 table's activation quantizer on the edge cases of the definition (found by name in
// available_isas(); skipped on CPUs without AVX2). Its integer kernels are checked with every
// other table in test_matmul.cpp and test_matmul_x86.cpp (tiles, tails, row ranges inside tiles).
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
