// Reference quant formats against fixtures written by gguf-py (scripts/gen_quant_vectors.py), plus
// round-trip error bounds and properties that need no fixture. Every suite name contains
// "quant" or "Dequant" so that `ctest -R quant` (case-sensitive) selects all of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "test_util.h"

namespace edgeglm::quant {
namespace {

// One EGQF fixture (format in scripts/gen_quant_vectors.py).
struct Fixture {
  uint32_t kind = 0;  // 0 dequantize, 1 quantize
  DType dtype = DType::F32;
  int64_t n = 0;
  std::vector<uint8_t> raw;
  std::vector<float> values;
};

::testing::AssertionResult load_fixture(const std::string& name, Fixture* fx) {
  const std::string path = test::data_path("quant/" + name);
  std::ifstream f(path, std::ios::binary);
  if (!f) return ::testing::AssertionFailure() << "missing fixture " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint32_t h[5];
  if (bytes.size() < 24 || std::memcmp(bytes.data(), "EGQF", 4) != 0)
    return ::testing::AssertionFailure() << path << ": not an EGQF fixture";
  std::memcpy(h, bytes.data() + 4, sizeof(h));
  const auto dt = dtype_from_id(h[2]);
  if (h[0] != 1 || !dt.ok()) return ::testing::AssertionFailure() << path << ": bad header";
  fx->kind = h[1];
  fx->dtype = *dt;
  fx->n = h[3];
  const size_t n_raw = h[4], n_val = size_t(h[3]) * 4;
  if (bytes.size() != 24 + n_raw + n_val || !dtype_row_ok(fx->dtype, fx->n) ||
      dtype_row_bytes(fx->dtype, fx->n) != n_raw)
    return ::testing::AssertionFailure() << path << ": sizes do not match the header";
  const char* p = bytes.data() + 24;
  const char* raw = fx->kind == 0 ? p : p + n_val;
  const char* val = fx->kind == 0 ? p + n_raw : p;
  fx->raw.assign(raw, raw + n_raw);
  fx->values.resize(fx->n);
  std::memcpy(fx->values.data(), val, n_val);
  return ::testing::AssertionSuccess();
}

bool same_float(float a, float b) {
  return f32_to_bits(a) == f32_to_bits(b) || (std::isnan(a) && std::isnan(b));
}

bool is_nan_half(uint16_t h, bool bf16) {
  return bf16 ? (h & 0x7fff) > 0x7f80 : (h & 0x7fff) > 0x7c00;
}

std::string type_param_name(const ::testing::TestParamInfo<const char*>& info) { return info.param; }

// ---- dequantize == gguf-py, bit for bit ------------------------------------------------------

class DequantFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantFixture, MatchesGgufPyBitExact) {
  Fixture fx;
  ASSERT_TRUE(load_fixture(std::string("dequant_") + GetParam() + ".bin", &fx));
  ASSERT_EQ(fx.kind, 0u);
  ASSERT_NE(quant_ops(fx.dtype), nullptr);
  std::vector<float> out(fx.n);
  dequantize_row(fx.dtype, fx.raw.data(), out.data(), fx.n);
  int bad = 0;
  for (int64_t i = 0; i < fx.n && bad < 10; ++i) {
    if (!same_float(out[i], fx.values[i])) {
      ++bad;
      ADD_FAILURE() << GetParam() << " element " << i << ": got " << out[i] << " (0x" << std::hex
                    << f32_to_bits(out[i]) << "), gguf-py " << fx.values[i] << " (0x"
                    << f32_to_bits(fx.values[i]) << ")" << std::dec;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(quant, DequantFixture,
                         ::testing::Values("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                                           "q8_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k"),
                         type_param_name);

// ---- quantize == gguf-py (or the numpy port for Q8_1/Q8_K), byte for byte --------------------

class QuantFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(QuantFixture, MatchesGgufPyBytes) {
  Fixture fx;
  ASSERT_TRUE(load_fixture(std::string("quant_") + GetParam() + ".bin", &fx));
  ASSERT_EQ(fx.kind, 1u);
  const QuantOps* ops = quant_ops(fx.dtype);
  ASSERT_TRUE(ops && ops->quantize_row);
  std::vector<uint8_t> out(fx.raw.size(), 0xAB);
  quantize_row(fx.dtype, fx.values.data(), out.data(), fx.n);
  const DTypeTraits* tr = dtype_traits(fx.dtype);
  const bool half = fx.dtype == DType::F16 || fx.dtype == DType::BF16;
  int bad = 0;
  for (size_t b = 0; b < out.size() / size_t(tr->block_bytes) && bad < 10; ++b) {
    const uint8_t* got = out.data() + b * tr->block_bytes;
    const uint8_t* want = fx.raw.data() + b * tr->block_bytes;
    if (std::memcmp(got, want, size_t(tr->block_bytes)) == 0) continue;
    if (half) {  // any NaN is acceptable for a NaN input
      uint16_t g, w;
      std::memcpy(&g, got, 2);
      std::memcpy(&w, want, 2);
      const bool bf = fx.dtype == DType::BF16;
      if (is_nan_half(g, bf) && is_nan_half(w, bf)) continue;
    }
    ++bad;
    std::string msg;
    for (int k = 0; k < tr->block_bytes; ++k) {
      if (got[k] == want[k]) continue;
      char buf[32];
      std::snprintf(buf, sizeof(buf), " byte %d:%02x/%02x", k, got[k], want[k]);
      msg += buf;
    }
    ADD_FAILURE() << GetParam() << " block " << b << " differs (ours/gguf-py):" << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(quant, QuantFixture,
                         ::testing::Values("f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0",
                                           "q8_1", "q8_k"),
                         type_param_name);

// ---- fp16 / bf16 conversions -----------------------------------------------------------------

TEST(F16Dequant, AllHalvesMatchNumpy) {
  std::ifstream f(test::data_path("quant/fp16_table.txt"));
  ASSERT_TRUE(f) << "missing fixture fp16_table.txt";
  std::string line, hex;
  while (std::getline(f, line))
    if (!line.empty() && line[0] != '#') hex = line;
  const uint64_t want = std::stoull(hex, nullptr, 16);
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint32_t bits = f32_to_bits(fp16_to_f32(uint16_t(i)));
    for (int k = 0; k < 4; ++k) h = (h ^ ((bits >> (8 * k)) & 0xff)) * 0x100000001B3ull;
  }
  EXPECT_EQ(h, want) << "fp16_to_f32 differs from numpy somewhere; see F16Dequant.AllHalvesExact";
}

// Independent of numpy: every finite half is sign * mant * 2^(exp-25) exactly.
TEST(F16Dequant, AllHalvesExact) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t hbits = uint16_t(i);
    const int e = (i >> 10) & 31, m = i & 1023;
    const float v = fp16_to_f32(hbits);
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(v) : std::isinf(v)) << i;
      if (m) {
        EXPECT_EQ(f32_to_bits(v) & 0x7fffff, uint32_t(m) << 13) << "payload kept " << i;
      }
      continue;
    }
    float want = e == 0 ? std::ldexp(float(m), -24) : std::ldexp(float(1024 + m), e - 25);
    if (i & 0x8000) want = -want;
    ASSERT_EQ(f32_to_bits(v), f32_to_bits(want)) << "half 0x" << std::hex << i;
    ASSERT_EQ(f32_to_fp16(v), hbits) << "round trip of half 0x" << std::hex << i;
  }
}

TEST(Bf16QuantDequant, AllValuesRoundTrip) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const float v = bf16_to_f32(uint16_t(i));
    ASSERT_EQ(f32_to_bits(v), i << 16);
    if (!std::isnan(v)) {
      ASSERT_EQ(f32_to_bf16(v), uint16_t(i));
    } else {
      ASSERT_TRUE(is_nan_half(f32_to_bf16(v), true));
    }
  }
}

// ---- the table -------------------------------------------------------------------------------

TEST(DequantOpsTable, CoversFormats) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                  DType::Q5_1, DType::Q8_0, DType::Q8_1, DType::Q2_K, DType::Q3_K, DType::Q4_K,
                  DType::Q5_K, DType::Q6_K, DType::Q8_K, DType::I8_ROW, DType::U8_ROW,
                  DType::I4_G64, DType::I4_G128, DType::U4_G64, DType::U4_G128}) {
    const QuantOps* op = quant_ops(t);
    ASSERT_NE(op, nullptr) << dtype_name(t);
    EXPECT_EQ(op->dtype, t);
    EXPECT_NE(op->dequantize_row, nullptr) << dtype_name(t);
    EXPECT_EQ(op->quantize_row == nullptr, t == DType::Q3_K) << dtype_name(t);
  }
  EXPECT_EQ(quant_ops(DType::I32), nullptr);
  EXPECT_EQ(quant_ops(DType::F64), nullptr);
  // Block structs agree with the dtype table.
  EXPECT_EQ(dtype_traits(DType::Q4_0)->block_bytes, int64_t(sizeof(BlockQ4_0)));
  EXPECT_EQ(dtype_traits(DType::Q4_1)->block_bytes, int64_t(sizeof(BlockQ4_1)));
  EXPECT_EQ(dtype_traits(DType::Q5_0)->block_bytes, int64_t(sizeof(BlockQ5_0)));
  EXPECT_EQ(dtype_traits(DType::Q5_1)->block_bytes, int64_t(sizeof(BlockQ5_1)));
  EXPECT_EQ(dtype_traits(DType::Q8_0)->block_bytes, int64_t(sizeof(BlockQ8_0)));
  EXPECT_EQ(dtype_traits(DType::Q8_1)->block_bytes, int64_t(sizeof(BlockQ8_1)));
  EXPECT_EQ(dtype_traits(DType::Q2_K)->block_bytes, int64_t(sizeof(BlockQ2_K)));
  EXPECT_EQ(dtype_traits(DType::Q3_K)->block_bytes, int64_t(sizeof(BlockQ3_K)));
  EXPECT_EQ(dtype_traits(DType::Q4_K)->block_bytes, int64_t(sizeof(BlockQ4_K)));
  EXPECT_EQ(dtype_traits(DType::Q5_K)->block_bytes, int64_t(sizeof(BlockQ5_K)));
  EXPECT_EQ(dtype_traits(DType::Q6_K)->block_bytes, int64_t(sizeof(BlockQ6_K)));
  EXPECT_EQ(dtype_traits(DType::Q8_K)->block_bytes, int64_t(sizeof(BlockQ8_K)));
  EXPECT_EQ(dtype_traits(DType::I4_G64)->block_bytes, int64_t(sizeof(BlockI4_G64)));
  EXPECT_EQ(dtype_traits(DType::I4_G128)->block_bytes, int64_t(sizeof(BlockI4_G128)));
  EXPECT_EQ(dtype_traits(DType::U4_G64)->block_bytes, int64_t(sizeof(BlockU4_G64)));
  EXPECT_EQ(dtype_traits(DType::U4_G128)->block_bytes, int64_t(sizeof(BlockU4_G128)));
  EXPECT_EQ(dtype_traits(DType::I8_ROW)->row_header_bytes, int64_t(sizeof(RowI8Header)));
  EXPECT_EQ(dtype_traits(DType::U8_ROW)->row_header_bytes, int64_t(sizeof(RowU8Header)));
}

TEST(PlainQuantDequant, F32CopiesAndF16Rounds) {
  const std::vector<float> x = {1.0f, -2.5f, 3.14159265f, 1e-8f, 70000.0f, -0.0f};
  std::vector<float> y(x.size());
  dequantize_row(DType::F32, x.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(f32_to_bits(x[i]), f32_to_bits(y[i]));
  std::vector<uint16_t> h(x.size());
  quantize_row(DType::F16, x.data(), h.data(), int64_t(x.size()));
  dequantize_row(DType::F16, h.data(), y.data(), int64_t(x.size()));
  EXPECT_EQ(y[2], 3.140625f);
  EXPECT_TRUE(std::isinf(y[4]));
  EXPECT_EQ(f32_to_bits(y[5]), 0x80000000u);
}

// ---- round trips -----------------------------------------------------------------------------

// Rows of Gaussian blocks at scales 1e-3..1e2, some with an offset, so asymmetric formats see
// their min in use. n is a multiple of 256.
std::vector<float> test_row(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(-3.0f, 2.0f);
  std::vector<float> x(n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float scale = std::pow(10.0f, ud(gen));
    const float offset = (b % 3 == 0) ? scale * ud(gen) : 0.0f;
    for (int j = 0; j < 32; ++j) x[32 * b + j] = offset + scale * nd(gen);
  }
  return x;
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(dtype_row_bytes(t, int64_t(x.size())));
  std::vector<float> y(x.size());
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

constexpr float kHalfEps = 1.0f / 2048;       // relative error of rounding a scale to fp16...
constexpr float kHalfSubUlp = 1.0f / 33554432;  // ...and its absolute error below 2^-14 (2^-25)

// Symmetric formats: |d| = amax / levels; rounding costs d/2, plus fp16 rounding of d (relative,
// or absolute when d is an fp16 subnormal) times the largest |q|. Q4_0/Q5_0 clamp the top code, so a value of the opposite sign to the extreme with
// |x/d| above levels - 0.5 may be off by up to one step.
void check_symmetric(DType t, int bs, float levels, float qmax, bool top_clamped) {
  const auto x = test_row(4096, 7);
  const auto y = round_trip(t, x);
  for (size_t b = 0; b < x.size() / bs; ++b) {
    float amax = 0;
    for (int j = 0; j < bs; ++j) amax = std::max(amax, std::fabs(x[b * bs + j]));
    const float d = amax / levels;
    for (int j = 0; j < bs; ++j) {
      const size_t i = b * bs + j;
      const bool clipped = top_clamped && std::fabs(x[i]) / d > levels - 0.5f;
      const float bound =
          (d * ((clipped ? 1.0f : 0.5f) + qmax * kHalfEps) + qmax * kHalfSubUlp) * 1.0001f;
      ASSERT_LE(std::fabs(x[i] - y[i]), bound) << dtype_name(t) << " element " << i;
    }
  }
}

TEST(QuantDequant, Q8_0) { check_symmetric(DType::Q8_0, 32, 127, 127, false); }
TEST(QuantDequant, Q8_1) { check_symmetric(DType::Q8_1, 32, 127, 127, false); }
TEST(QuantDequant, Q4_0) { check_symmetric(DType::Q4_0, 32, 8, 8, true); }
TEST(QuantDequant, Q5_0) { check_symmetric(DType::Q5_0, 32, 16, 16, true); }
TEST(QuantDequant, Q8_K) { check_symmetric(DType::Q8_K, 256, 127, 0, false); }  // d stays float32

// Asymmetric formats: d = (max - min) / levels; error d/2 plus fp16 rounding of d (times levels)
// and of the stored min.
void check_asymmetric(DType t, float levels) {
  const auto x = test_row(4096, 11);
  const auto y = round_trip(t, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const float* xb = x.data() + 32 * b;
    const float mn = *std::min_element(xb, xb + 32), mx = *std::max_element(xb, xb + 32);
    const float d = (mx - mn) / levels;
    const float bound = (d * (0.5f + levels * kHalfEps) + std::fabs(mn) * kHalfEps +
                         (levels + 1) * kHalfSubUlp) * 1.0001f;
    for (int j = 0; j < 32; ++j)
      ASSERT_LE(std::fabs(xb[j] - y[32 * b + j]), bound) << dtype_name(t) << " block " << b;
  }
}

TEST(QuantDequant, Q4_1) { check_asymmetric(DType::Q4_1, 15); }
TEST(QuantDequant, Q5_1) { check_asymmetric(DType::Q5_1, 31); }

TEST(QuantDequant, F16AndBF16) {
  const auto x = test_row(1024, 3);
  const auto h = round_trip(DType::F16, x);
  const auto b = round_trip(DType::BF16, x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) >= 6.2e-5f) {  // normal fp16 range: relative error <= 2^-11
      EXPECT_LE(std::fabs(x[i] - h[i]), std::fabs(x[i]) * kHalfEps) << i;
    }
    EXPECT_LE(std::fabs(x[i] - b[i]), std::fabs(x[i]) * (1.0f / 256)) << i;
  }
}

TEST(QuantDequant, Q8_1SumField) {
  const auto x = test_row(1024, 5);
  std::vector<BlockQ8_1> q(x.size() / 32);
  quantize_row(DType::Q8_1, x.data(), q.data(), int64_t(x.size()));
  for (const auto& b : q) {
    int sum = 0;
    for (int8_t v : b.qs) sum += v;
    const float d = fp16_to_f32(b.d);
    EXPECT_NEAR(fp16_to_f32(b.s), float(sum) * d, std::fabs(float(sum) * d) * 2e-3f + 1e-6f);
  }
}

TEST(QuantDequant, Q8_KBsums) {
  const auto x = test_row(1024, 9);
  std::vector<BlockQ8_K> q(x.size() / 256);
  quantize_row(DType::Q8_K, x.data(), q.data(), int64_t(x.size()));
  for (const auto& b : q)
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += b.qs[16 * g + l];
      EXPECT_EQ(b.bsums[g], sum);
    }
}

// K-quants: after the scale search, every element must sit on the nearest level that the stored
// (sub-block scale, min) pair can represent; and the overall error must stay in the range the
// format is known for (relative RMSE on this data; guards against a broken search).
struct KLevels {
  float dl, ml;  // value = dl * q - ml
  int qmin, qmax;
};

std::vector<KLevels> k_levels(DType t, const uint8_t* blk) {
  std::vector<KLevels> out(256);
  if (t == DType::Q4_K || t == DType::Q5_K) {
    const auto* b = reinterpret_cast<const BlockQ4_K*>(blk);  // same prefix in Q5_K
    for (int e = 0; e < 256; ++e) {
      uint8_t sc, mn;
      unpack_scale_min_k4(e / 32, b->scales, &sc, &mn);
      out[e] = {fp16_to_f32(b->d) * float(sc), fp16_to_f32(b->dmin) * float(mn), 0,
                t == DType::Q4_K ? 15 : 31};
    }
  } else if (t == DType::Q2_K) {
    const auto* b = reinterpret_cast<const BlockQ2_K*>(blk);
    for (int e = 0; e < 256; ++e) {
      const uint8_t sm = b->scales[e / 16];
      out[e] = {fp16_to_f32(b->d) * float(sm & 0xF), fp16_to_f32(b->dmin) * float(sm >> 4), 0, 3};
    }
  } else {  // Q6_K
    const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
    for (int e = 0; e < 256; ++e) out[e] = {fp16_to_f32(b->d) * float(b->scales[e / 16]), 0.0f, -32, 31};
  }
  return out;
}

void check_kquant(DType t, float max_rel_rmse) {
  const auto x = test_row(256 * 16, 13);
  std::vector<uint8_t> q(dtype_row_bytes(t, int64_t(x.size())));
  std::vector<float> y(x.size());
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  const size_t bb = size_t(dtype_traits(t)->block_bytes);
  double err2 = 0, sig2 = 0;
  for (size_t b = 0; b < x.size() / 256; ++b) {
    const auto lv = k_levels(t, q.data() + b * bb);
    for (int e = 0; e < 256; ++e) {
      const size_t i = b * 256 + e;
      const KLevels& k = lv[e];
      float best = INFINITY;
      for (int v = k.qmin; v <= k.qmax; ++v) best = std::min(best, std::fabs(x[i] - (k.dl * float(v) - k.ml)));
      ASSERT_LE(std::fabs(x[i] - y[i]), best + std::fabs(k.dl) * 1e-4f)
          << dtype_name(t) << " element " << i << " is not on its nearest level";
      err2 += double(x[i] - y[i]) * (x[i] - y[i]);
      sig2 += double(x[i]) * x[i];
    }
  }
  const double rel = std::sqrt(err2 / sig2);
  EXPECT_LE(rel, max_rel_rmse) << dtype_name(t);
  ::testing::Test::RecordProperty(std::string("rel_rmse_") + dtype_name(t), std::to_string(rel));
}

// Limits are about 1.2x the values measured on this data (Q2_K 0.197, Q4_K 0.0459, Q5_K 0.0243,
// Q6_K 0.0149); each format roughly halves the previous one's error, as one more bit should.
TEST(QuantDequant, Q2_K) { check_kquant(DType::Q2_K, 0.24); }
TEST(QuantDequant, Q4_K) { check_kquant(DType::Q4_K, 0.055); }
TEST(QuantDequant, Q5_K) { check_kquant(DType::Q5_K, 0.029); }
TEST(QuantDequant, Q6_K) { check_kquant(DType::Q6_K, 0.018); }

TEST(QuantDequant, ZeroRowsStayZero) {
  const std::vector<float> x(256, 0.0f);
  for (DType t : {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0, DType::Q8_1,
                  DType::Q2_K, DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q8_K}) {
    const auto y = round_trip(t, x);
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
}

// ---- edgeglm's own formats (ids >= 1024) -------------------------------------------------------

TEST(EdgeglmQuantTraits, IdsNamesAndRowSizesAreFixed) {
  struct Want {
    DType t;
    uint32_t id;
    const char* name;
    int64_t n;
    size_t bytes;  // of a row of n
  };
  for (const Want& w : {Want{DType::I8_ROW, 1024, "i8_row", 96, 4 + 96},
                        Want{DType::U8_ROW, 1025, "u8_row", 96, 8 + 96},
                        Want{DType::I4_G64, 1026, "i4_g64", 192, 3 * 34},
                        Want{DType::I4_G128, 1027, "i4_g128", 640, 5 * 66},
                        Want{DType::U4_G64, 1028, "u4_g64", 192, 3 * 36},
                        Want{DType::U4_G128, 1029, "u4_g128", 640, 5 * 68}}) {
    EXPECT_EQ(uint32_t(w.t), w.id);
    EXPECT_STREQ(dtype_name(w.t), w.name);
    auto byid = dtype_from_id(w.id);
    ASSERT_TRUE(byid.ok());
    EXPECT_EQ(*byid, w.t);
    auto byname = dtype_from_name(std::string(w.name));
    ASSERT_TRUE(byname.ok());
    EXPECT_EQ(*byname, w.t);
    EXPECT_TRUE(dtype_traits(w.t)->quantized);
    EXPECT_TRUE(dtype_row_ok(w.t, w.n)) << w.name;
    EXPECT_EQ(dtype_row_bytes(w.t, w.n), w.bytes) << w.name;
    EXPECT_NEAR(dtype_bits_per_weight(w.t, w.n), 8.0 * double(w.bytes) / double(w.n), 1e-12) << w.name;
  }
  EXPECT_DOUBLE_EQ(dtype_bits_per_weight(DType::I4_G128), 8.0 * 66 / 128);
  EXPECT_DOUBLE_EQ(dtype_bits_per_weight(DType::I8_ROW), 8.0);  // header amortised away
  EXPECT_DOUBLE_EQ(dtype_bits_per_weight(DType::I8_ROW, 32), 9.0);
  // Rows that are not a whole number of groups (or sub-blocks), and empty per-row rows.
  EXPECT_FALSE(dtype_row_ok(DType::I4_G64, 96));
  EXPECT_FALSE(dtype_row_ok(DType::U4_G64, 32));
  EXPECT_FALSE(dtype_row_ok(DType::I4_G128, 192));
  EXPECT_FALSE(dtype_row_ok(DType::U4_G128, 64));
  EXPECT_FALSE(dtype_row_ok(DType::I8_ROW, 48));
  EXPECT_FALSE(dtype_row_ok(DType::U8_ROW, 100));
  EXPECT_FALSE(dtype_row_ok(DType::I8_ROW, 0));
  EXPECT_FALSE(dtype_row_ok(DType::U8_ROW, 0));
  EXPECT_TRUE(dtype_row_ok(DType::I4_G128, 128));
}

// Hand-built rows decode to the values of the layouts in blocks.h.
TEST(EdgeglmQuantLayout, HandBuiltRowsDecodeToKnownValues) {
  {  // I8_ROW: [f32 d][int8 q[n]]
    std::vector<uint8_t> row(4 + 32, 0);
    const float d = 0.5f;
    std::memcpy(row.data(), &d, 4);
    row[4 + 0] = uint8_t(int8_t(-127));
    row[4 + 1] = 1;
    row[4 + 31] = 127;
    std::vector<float> y(32);
    dequantize_row(DType::I8_ROW, row.data(), y.data(), 32);
    EXPECT_EQ(y[0], -63.5f);
    EXPECT_EQ(y[1], 0.5f);
    EXPECT_EQ(y[2], 0.0f);
    EXPECT_EQ(y[31], 63.5f);
  }
  {  // U8_ROW: [f32 d][f32 m][uint8 q[n]]
    std::vector<uint8_t> row(8 + 64, 0);
    const float d = 0.25f, m = -1.0f;
    std::memcpy(row.data(), &d, 4);
    std::memcpy(row.data() + 4, &m, 4);
    row[8 + 5] = 255;
    row[8 + 63] = 4;
    std::vector<float> y(64);
    dequantize_row(DType::U8_ROW, row.data(), y.data(), 64);
    EXPECT_EQ(y[0], -1.0f);
    EXPECT_EQ(y[5], 62.75f);
    EXPECT_EQ(y[63], 0.0f);
  }
  {  // I4_G64: {fp16 d; qs[32]}, sub-block s at qs[16s..16s+16)
    BlockI4_G64 b;
    b.d = f32_to_fp16(2.0f);
    std::memset(b.qs, 0x88, sizeof b.qs);
    b.qs[16 + 3] = 0xA5;  // element 32+3 = low nibble 5, element 32+3+16 = high nibble 10
    b.qs[0] = 0x0F;       // element 0 = 15, element 16 = 0
    std::vector<float> y(64);
    dequantize_row(DType::I4_G64, &b, y.data(), 64);
    EXPECT_EQ(y[35], -6.0f);
    EXPECT_EQ(y[51], 4.0f);
    EXPECT_EQ(y[0], 14.0f);
    EXPECT_EQ(y[16], -16.0f);
    EXPECT_EQ(y[1], 0.0f);
    EXPECT_EQ(y[63], 0.0f);
  }
  {  // U4_G128: {fp16 d; fp16 m; qs[64]}
    BlockU4_G128 b;
    b.d = f32_to_fp16(1.0f);
    b.m = f32_to_fp16(-8.0f);
    std::memset(b.qs, 0, sizeof b.qs);
    b.qs[16 * 3 + 15] = 0xF0;  // element 96+15 = 0, element 96+31 = 15
    b.qs[16 * 2] = 0x31;       // element 64 = 1, element 80 = 3
    std::vector<float> y(128);
    dequantize_row(DType::U4_G128, &b, y.data(), 128);
    EXPECT_EQ(y[111], -8.0f);
    EXPECT_EQ(y[127], 7.0f);
    EXPECT_EQ(y[64], -7.0f);
    EXPECT_EQ(y[80], -5.0f);
    EXPECT_EQ(y[0], -8.0f);
  }
}

// The reference quantizers' scale choice and rounding rules on rows whose results are exact.
TEST(EdgeglmQuantLayout, QuantizersPickTheSpecifiedScalesAndRounding) {
  {  // I8_ROW: d = amax / 127 = 1; q = nearbyint(x / d), ties to even
    std::vector<float> x(32, 0.0f);
    x[0] = 127.0f, x[1] = -3.0f, x[2] = 2.5f, x[3] = 3.5f, x[4] = -0.5f, x[5] = -126.6f;
    std::vector<uint8_t> q(dtype_row_bytes(DType::I8_ROW, 32));
    quantize_row(DType::I8_ROW, x.data(), q.data(), 32);
    float d;
    std::memcpy(&d, q.data(), 4);
    EXPECT_EQ(d, 1.0f);
    const auto* v = reinterpret_cast<const int8_t*>(q.data() + 4);
    EXPECT_EQ(v[0], 127);
    EXPECT_EQ(v[1], -3);
    EXPECT_EQ(v[2], 2);
    EXPECT_EQ(v[3], 4);
    EXPECT_EQ(v[4], 0);
    EXPECT_EQ(v[5], -127);
  }
  {  // U8_ROW: m = min, d = (max - min) / 255; q = nearbyint((x - m) / d)
    std::vector<float> x(32, 10.0f);
    x[0] = 10.0f, x[1] = 265.0f, x[2] = 12.5f, x[3] = 13.5f, x[4] = 11.0f;
    std::vector<uint8_t> q(dtype_row_bytes(DType::U8_ROW, 32));
    quantize_row(DType::U8_ROW, x.data(), q.data(), 32);
    float d, m;
    std::memcpy(&d, q.data(), 4);
    std::memcpy(&m, q.data() + 4, 4);
    EXPECT_EQ(d, 1.0f);
    EXPECT_EQ(m, 10.0f);
    EXPECT_EQ(q[8 + 0], 0);
    EXPECT_EQ(q[8 + 1], 255);
    EXPECT_EQ(q[8 + 2], 2);
    EXPECT_EQ(q[8 + 3], 4);
    EXPECT_EQ(q[8 + 4], 1);
  }
  {  // I4_G64: the first value of largest magnitude (-4) gives d = -4 / -8 = 0.5, q = x/d + 8
    std::vector<float> x(64);
    for (int e = 0; e < 64; ++e) x[size_t(e)] = float(e % 16 - 8) * 0.5f;
    BlockI4_G64 b;
    quantize_row(DType::I4_G64, x.data(), &b, 64);
    EXPECT_EQ(fp16_to_f32(b.d), 0.5f);
    for (int s = 0; s < 2; ++s)
      for (int j = 0; j < 16; ++j) EXPECT_EQ(b.qs[16 * s + j], uint8_t(j | (j << 4))) << s << " " << j;
  }
  {  // U4_G128: m = 0, d = 15 / 15 = 1, q = trunc(x + 0.5): halves round up
    std::vector<float> x(128, 0.0f);
    x[127] = 15.0f;
    x[1] = 2.5f;
    x[17] = 3.49f;
    x[64] = 14.6f;
    BlockU4_G128 b;
    quantize_row(DType::U4_G128, x.data(), &b, 128);
    EXPECT_EQ(fp16_to_f32(b.d), 1.0f);
    EXPECT_EQ(fp16_to_f32(b.m), 0.0f);
    EXPECT_EQ(b.qs[1], uint8_t(3 | (3 << 4)));
    EXPECT_EQ(b.qs[16 * 3 + 15] >> 4, 15);
    EXPECT_EQ(b.qs[16 * 2] & 0xF, 15);
  }
}

// Per-row formats: one scale for the whole row (the test rows mix blocks of scales 1e-3..1e2, so
// small blocks lose everything, as they should: the bound is the row's d / 2).
TEST(EdgeglmQuantDequant, I8RowErrorIsAtMostHalfAStep) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const auto x = test_row(1024, seed);
    const auto y = round_trip(DType::I8_ROW, x);
    float amax = 0;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    const float d = amax / 127.0f;
    for (size_t i = 0; i < x.size(); ++i)
      ASSERT_LE(std::fabs(x[i] - y[i]), d * 0.5f * 1.0001f) << "element " << i;
  }
}

TEST(EdgeglmQuantDequant, U8RowErrorIsAtMostHalfAStep) {
  for (uint32_t seed : {4u, 5u}) {
    auto x = test_row(1024, seed);
    for (auto& v : x) v += 3.0f;  // an offset: the min term matters
    const auto y = round_trip(DType::U8_ROW, x);
    const float mn = *std::min_element(x.begin(), x.end()), mx = *std::max_element(x.begin(), x.end());
    const float d = (mx - mn) / 255.0f;
    const float bound = d * 0.5f * 1.0001f + (std::fabs(mn) + std::fabs(mx)) * 2e-7f;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_LE(std::fabs(x[i] - y[i]), bound) << "element " << i;
  }
}

TEST(EdgeglmQuantDequant, I4Groups) {
  check_symmetric(DType::I4_G64, 64, 8, 8, true);
  check_symmetric(DType::I4_G128, 128, 8, 8, true);
}

// As check_asymmetric, over groups of g.
void check_asymmetric_groups(DType t, int g) {
  const auto x = test_row(4096, 17);
  const auto y = round_trip(t, x);
  for (size_t b = 0; b < x.size() / size_t(g); ++b) {
    const float* xb = x.data() + g * b;
    const float mn = *std::min_element(xb, xb + g), mx = *std::max_element(xb, xb + g);
    const float d = (mx - mn) / 15.0f;
    const float bound = (d * (0.5f + 15 * kHalfEps) + std::fabs(mn) * kHalfEps + 16 * kHalfSubUlp) * 1.0001f;
    for (int j = 0; j < g; ++j)
      ASSERT_LE(std::fabs(xb[j] - y[size_t(g) * b + j]), bound) << dtype_name(t) << " group " << b;
  }
}

TEST(EdgeglmQuantDequant, U4Groups) {
  check_asymmetric_groups(DType::U4_G64, 64);
  check_asymmetric_groups(DType::U4_G128, 128);
}

// Bigger groups cost accuracy: on rows whose scale changes every 32 elements, the RMS error grows
// from groups of 32 (Q4_0 / Q4_1) to 64 to 128.
TEST(EdgeglmQuantDequant, ErrorGrowsWithTheGroup) {
  const auto x = test_row(4096, 23);
  auto rmse = [&](DType t) {
    const auto y = round_trip(t, x);
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i) e += double(x[i] - y[i]) * (x[i] - y[i]);
    return std::sqrt(e / double(x.size()));
  };
  EXPECT_LT(rmse(DType::Q4_0), rmse(DType::I4_G64));
  EXPECT_LT(rmse(DType::I4_G64), rmse(DType::I4_G128));
  EXPECT_LT(rmse(DType::Q4_1), rmse(DType::U4_G64));
  EXPECT_LT(rmse(DType::U4_G64), rmse(DType::U4_G128));
}

TEST(EdgeglmQuantDequant, ZeroAndConstantRows) {
  const DType all[] = {DType::I8_ROW, DType::U8_ROW, DType::I4_G64, DType::I4_G128, DType::U4_G64, DType::U4_G128};
  for (DType t : all) {
    const auto y = round_trip(t, std::vector<float>(256, 0.0f));
    for (float v : y) ASSERT_EQ(v, 0.0f) << dtype_name(t);
  }
  for (float c : {0.3f, -2.75f, 1e-3f}) {
    const std::vector<float> x(256, c);
    // U8_ROW: d = 0, every value is the min itself, exactly.
    for (float v : round_trip(DType::U8_ROW, x)) ASSERT_EQ(v, c);
    // I8_ROW: q = +-127 and d = |c| / 127: c to a float rounding or two.
    for (float v : round_trip(DType::I8_ROW, x)) ASSERT_NEAR(v, c, std::fabs(c) * 3e-7f);
    // 4-bit: q = 0 (-8 * d with d = c / -8) or d = 0 with the min c: c to fp16 rounding.
    for (DType t : {DType::I4_G64, DType::I4_G128, DType::U4_G64, DType::U4_G128})
      for (float v : round_trip(t, x)) ASSERT_NEAR(v, c, std::fabs(c) * kHalfEps) << dtype_name(t);
  }
}

}  // namespace
}  // namespace edgeglm::quant
