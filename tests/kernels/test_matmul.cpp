// Every ISA table compiled into this binary and usable on this CPU, per weight format, against
// its scalar twin (generic) and against float references, over shapes that are not multiples of
// vector widths or tile sizes.
//   - the activation quantizer of every ISA is bit-identical to the reference;
//   - integer kernels equal the generic twin up to float summation order (the integer partial
//     sums are exact), and the twin equals the float product of the dequantized weights with the
//     *dequantized activations* up to float rounding, and the product with the original
//     activations within the bound the activation rounding allows (sum |w| * d / 2);
//   - float kernels equal a double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/qacts.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

std::vector<uint8_t> random_weights(DType t, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(cols));
  std::vector<uint8_t> out(dtype_row_bytes(t, cols) * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : f) v = nd(rng) + (r % 3 == 0 ? 0.7f : 0.0f);  // some rows not centred
    quant::quantize_row(t, f.data(), out.data() + size_t(r) * dtype_row_bytes(t, cols), cols);
  }
  return out;
}

std::vector<float> random_acts(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  // An all-zero block and one with an outlier: the quantizer's edge cases.
  for (int64_t i = 0; i < std::min<int64_t>(n, 32); ++i) x[size_t(i)] = 0.0f;
  if (n > 40) x[40] = 50.0f;
  return x;
}

std::vector<float> random_act_rows(int64_t cols, int64_t n_tok, std::mt19937& rng) {
  std::vector<float> x;
  for (int64_t t = 0; t < n_tok; ++t) {
    auto xt = random_acts(cols, rng);
    x.insert(x.end(), xt.begin(), xt.end());
  }
  return x;
}

struct QBuffer {
  std::vector<uint64_t> mem;
  kernels::QActs a;
  QBuffer(int64_t n, int64_t n_tok) : mem(kernels::qacts_bytes(n, n_tok) / 8 + 16) {
    void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
    a = kernels::qacts_view(p, n, n_tok);
  }
};

// Rows of x (n_tok x cols) into qb by the reference quantizer.
void quantize_all(const std::vector<float>& x, int64_t cols, int64_t n_tok, QBuffer& qb) {
  for (int64_t t = 0; t < n_tok; ++t)
    kernels::quantize_acts_ref(x.data() + t * cols, cols, qb.a.q + t * cols, qb.a.d + t * qb.a.nb(),
                               qb.a.s + t * qb.a.nb());
}

bool is_integer_format(DType t) { return kernels::available_isas().front()->format(t).q != nullptr; }

class MatmulIsa : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST(QuantizeActs, EveryIsaIsBitIdenticalToTheReference) {
  std::mt19937 rng(7);
  for (int64_t n : {32, 96, 576, 2080}) {
    std::vector<float> x = random_acts(n, rng);
    if (n > 32) x[size_t(n - 1)] = 127.0f * 0.5f / 63.5f;  // ties and exact values
    const int64_t nb = n / 32;
    std::vector<int8_t> q0(size_t(n), 0);
    std::vector<float> d0(static_cast<size_t>(nb));
    std::vector<int32_t> s0(static_cast<size_t>(nb));
    kernels::quantize_acts_ref(x.data(), n, q0.data(), d0.data(), s0.data());
    // The definition, checked on its own: block 0 is all zero, sums are the sums, |q| <= 127.
    EXPECT_EQ(d0[0], 0.0f);
    for (int64_t b = 0; b < nb; ++b) {
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) {
        const int8_t v = q0[size_t(b * 32 + j)];
        EXPECT_LE(std::abs(int(v)), 127);
        EXPECT_LE(std::fabs(x[size_t(b * 32 + j)] - d0[size_t(b)] * v), d0[size_t(b)] * 0.5f * 1.0001f + 1e-30f);
        sum += v;
      }
      EXPECT_EQ(sum, s0[size_t(b)]);
    }
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      std::vector<int8_t> q(size_t(n), 99);
      std::vector<float> d(size_t(nb), -1.0f);
      std::vector<int32_t> s(size_t(nb), -1);
      kernels::resolve_quantize_acts(*isa)(x.data(), n, q.data(), d.data(), s.data());
      EXPECT_EQ(q, q0) << isa->name << " n " << n;
      EXPECT_EQ(d, d0) << isa->name << " n " << n;
      EXPECT_EQ(s, s0) << isa->name << " n " << n;
    }
  }
}

TEST_P(MatmulIsa, EveryIsaMatchesItsScalarTwinAndTheReference) {
  const DType dt = GetParam();
  const int64_t block = dtype_traits(dt)->block_size;
  const bool integer = is_integer_format(dt);
  std::mt19937 rng(1234);
  const std::vector<int64_t> col_choices =
      // 1, 3, 9 blocks (odd: tails) and 4, 10 (even: the two-block steps of the avx2 Q4_0 / Q4_1
      // decode; 10 = two whole 4-block prefill groups and a 2-block tail)
      block == 1 ? std::vector<int64_t>{37, 64, 1000}
                 : std::vector<int64_t>{block, 3 * block, 4 * block, 9 * block, 10 * block};
  for (int64_t cols : col_choices) {
    for (int64_t rows : {1, 5, 17, 67}) {
      for (int64_t n_tok : {1, 2, 3, 7}) {
        auto w = random_weights(dt, rows, cols, rng);
        const size_t rb = dtype_row_bytes(dt, cols);
        const std::vector<float> x = random_act_rows(cols, n_tok, rng);
        QBuffer qb(cols, integer ? n_tok : 0);
        std::vector<float> xq(x.size());  // dequantized activations
        if (integer) {
          quantize_all(x, cols, n_tok, qb);
          for (int64_t i = 0; i < n_tok * cols; ++i)
            xq[size_t(i)] = qb.a.d[i / 32] * qb.a.q[i];
        }
        // References in double: with the original and (integer formats) the dequantized acts.
        std::vector<double> ref(size_t(n_tok * rows)), refq(ref.size()), mag(ref.size()), bound(ref.size());
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          quant::dequantize_row(dt, w.data() + size_t(r) * rb, row.data(), cols);
          for (int64_t t = 0; t < n_tok; ++t) {
            double s = 0, sq = 0, m = 0, bd = 0;
            for (int64_t i = 0; i < cols; ++i) {
              const double wi = row[size_t(i)];
              s += wi * x[size_t(t * cols + i)];
              sq += wi * xq[size_t(t * cols + i)];
              m += std::fabs(wi * x[size_t(t * cols + i)]);
              if (integer) bd += std::fabs(wi) * qb.a.d[(t * cols + i) / 32] * 0.5;
            }
            const size_t k = size_t(t * rows + r);
            ref[k] = s, refq[k] = sq, mag[k] = m, bound[k] = bd;
          }
        }
        const std::string where = std::string(dtype_name(dt)) + " rows " + std::to_string(rows) +
                                  " cols " + std::to_string(cols) + " n_tok " + std::to_string(n_tok);
        std::vector<float> twin(ref.size(), NAN);
        const kernels::KernelTable& generic = *kernels::available_isas().front();
        const kernels::FormatKernels gk = generic.format(dt);
        if (integer) {
          ASSERT_NE(gk.q, nullptr);
          gk.q(w.data(), rb, qb.a, twin.data(), rows, 0, rows);
          for (size_t i = 0; i < twin.size(); ++i) {
            ASSERT_NEAR(twin[i], refq[i], 2e-6 * mag[i] + 1e-5) << "twin vs dequantized acts " << where;
            ASSERT_NEAR(twin[i], ref[i], bound[i] * 1.001 + 2e-6 * mag[i] + 1e-5) << "twin vs float " << where;
          }
        }
        for (const kernels::KernelTable* isa : kernels::available_isas()) {
          const kernels::ResolvedFormat rf = kernels::resolve_format(*isa, dt);
          ASSERT_TRUE(rf.k.q || rf.k.f) << isa->name << " " << where;
          ASSERT_EQ(bool(rf.k.q), integer) << isa->name << " " << where;
          std::vector<float> y(ref.size(), NAN);
          // In two row ranges, as the pool splits them: the boundary must not matter.
          const int64_t mid = rows / 2;
          for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, mid}, {mid, rows}}) {
            if (integer) {
              rf.k.q(w.data(), rb, qb.a, y.data(), rows, r0, r1);
            } else {
              rf.k.f(dt, w.data(), rb, x.data(), cols, n_tok, y.data(), rows, r0, r1);
            }
          }
          for (size_t i = 0; i < y.size(); ++i) {
            if (integer) {
              ASSERT_NEAR(y[i], twin[i], 2e-6 * mag[i] + 1e-5) << rf.isa << " vs twin " << where << " i " << i;
            } else {
              ASSERT_NEAR(y[i], ref[i], 2e-6 * mag[i] + 1e-6) << rf.isa << " " << where << " i " << i;
            }
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, MatmulIsa,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16, DType::Q4_0,
                                           DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                                           DType::Q2_K, DType::Q4_K, DType::Q5_K,
                                           DType::Q6_K, DType::I8_ROW, DType::U8_ROW,
                                           DType::I4_G64, DType::I4_G128, DType::U4_G64,
                                           DType::U4_G128),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// Large prefill shapes: activation tiles that cross the kernels' internal token and column chunks
// (the ARM kernels chunk at ~128 KB of activations, x86 prefill at 512 columns), row ranges
// starting inside a tile. Every table against the generic twin.
TEST(MatmulIsaLarge, ChunkBoundariesDoNotMatter) {
  std::mt19937 rng(4242);
  const int64_t cols = 2304, rows = 9, n_tok = 67;  // 154 K activations
  for (DType dt : {DType::Q4_0, DType::Q8_0, DType::Q6_K, DType::F16}) {
    auto w = random_weights(dt, rows, cols, rng);
    const size_t rb = dtype_row_bytes(dt, cols);
    const std::vector<float> x = random_act_rows(cols, n_tok, rng);
    QBuffer qb(cols, n_tok);
    quantize_all(x, cols, n_tok, qb);
    const auto gk = kernels::available_isas().front()->format(dt);
    std::vector<float> twin(size_t(rows * n_tok), NAN);
    if (gk.q) gk.q(w.data(), rb, qb.a, twin.data(), rows, 0, rows);
    else gk.f(dt, w.data(), rb, x.data(), cols, n_tok, twin.data(), rows, 0, rows);
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      const auto rf = kernels::resolve_format(*isa, dt);
      std::vector<float> y(twin.size(), NAN);
      for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, 3}, {3, 9}}) {
        if (rf.k.q) rf.k.q(w.data(), rb, qb.a, y.data(), rows, r0, r1);
        else rf.k.f(dt, w.data(), rb, x.data(), cols, n_tok, y.data(), rows, r0, r1);
      }
      for (size_t i = 0; i < y.size(); ++i)
        ASSERT_NEAR(y[i], twin[i], 1e-4 * (1.0 + std::fabs(twin[i]))) << rf.isa << " " << dtype_name(dt) << " i " << i;
    }
  }
}

// The pool entry points: a group of matrices of different formats and one input, against each
// matrix computed alone by the generic twin, with 1, 2 and 3 threads and odd shapes.
TEST(MatmulGroup, EqualsEachMatrixAloneForAnyThreadCount) {
  std::mt19937 rng(99);
  const int64_t cols = 512;
  const DType types[3] = {DType::Q4_K, DType::Q8_0, DType::F16};
  const int64_t rows[3] = {131, 40, 77};
  std::vector<std::vector<uint8_t>> w;
  std::vector<TensorView> views;
  for (int i = 0; i < 3; ++i) w.push_back(random_weights(types[i], rows[i], cols, rng));
  for (int i = 0; i < 3; ++i) views.push_back(TensorView::make(types[i], w[size_t(i)].data(), cols, rows[i]));
  for (int64_t n_tok : {1, 5, 70}) {
    const std::vector<float> x = random_act_rows(cols, n_tok, rng);
    // Expected: the generic twin, whole matrices, on this thread.
    std::vector<std::vector<float>> want(3);
    QBuffer qb(cols, n_tok);
    quantize_all(x, cols, n_tok, qb);
    const kernels::KernelTable& generic = *kernels::available_isas().front();
    for (int i = 0; i < 3; ++i) {
      want[size_t(i)].assign(size_t(rows[i] * n_tok), NAN);
      const auto k = generic.format(types[i]);
      const size_t rb = dtype_row_bytes(types[i], cols);
      if (k.q) k.q(w[size_t(i)].data(), rb, qb.a, want[size_t(i)].data(), rows[i], 0, rows[i]);
      else k.f(types[i], w[size_t(i)].data(), rb, x.data(), cols, n_tok, want[size_t(i)].data(), rows[i], 0, rows[i]);
    }
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      std::vector<std::vector<float>> got(3);
      for (int i = 0; i < 3; ++i) got[size_t(i)].assign(size_t(rows[i] * n_tok), NAN);
      const TensorView* ws[3] = {&views[0], &views[1], &views[2]};
      float* ys[3] = {got[0].data(), got[1].data(), got[2].data()};
      kernels::matmul_group(ws, ys, 3, x.data(), n_tok, pool);
      for (int i = 0; i < 3; ++i)
        for (size_t j = 0; j < got[size_t(i)].size(); ++j)
          ASSERT_NEAR(got[size_t(i)][j], want[size_t(i)][j], 1e-3 * (1.0 + std::fabs(want[size_t(i)][j])))
              << "matrix " << i << " n_tok " << n_tok << " threads " << threads << " j " << j;
      // matmul() of one matrix is the group of one.
      std::vector<float> one(size_t(rows[0] * n_tok), NAN);
      kernels::matmul(views[0], x.data(), n_tok, one.data(), pool);
      for (size_t j = 0; j < one.size(); ++j) ASSERT_NEAR(one[j], want[0][j], 1e-3 * (1.0 + std::fabs(want[0][j])));
    }
  }
}

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
  float out[4], scratch[8];
  const kernels::KvView kv{DType::F32, k, 2 * sizeof(float)}, vv{DType::F32, v, 2 * sizeof(float)};
  kernels::attention_group(q, kv, vv, 2, 0, 2, 2, 1.0f, out, scratch);
  // Head 0 attends almost only to position 0, head 1 to position 1.
  EXPECT_NEAR(out[0], 1.0f, 1e-3);
  EXPECT_NEAR(out[1], 2.0f, 1e-3);
  EXPECT_NEAR(out[2], 3.0f, 1e-3);
  EXPECT_NEAR(out[3], 4.0f, 1e-3);
  // With one visible position the output is that position's value exactly.
  kernels::attention_group(q, kv, vv, 1, 0, 2, 2, 1.0f, out, scratch);
  EXPECT_FLOAT_EQ(out[2], 1.0f);
  EXPECT_FLOAT_EQ(out[3], 2.0f);
}

// Every ISA's attention, on F32 / F16 / Q8_0 caches, against a double-precision reference over
// the same (rounded) cache values. Shapes: GQA with 3 kv heads of 64 dims; more than 8 query heads
// per kv head (avx2 scores 8 at a time) with 128 dims and more keys than one block of 64; 40 dims
// (5 vectors); 36 dims (not whole vectors: the portable path); keys not a multiple of 8; groups of
// 1 to 4 (one token's rows scored with the dimensions in the lanes: 4 rows as 2 + 2, 4 keys at a
// time and a tail).
struct AttnShape {
  int64_t n_head_kv, group, hd, n_kv;
};
class AttentionShapes : public ::testing::TestWithParam<AttnShape> {};
INSTANTIATE_TEST_SUITE_P(Kernels, AttentionShapes,
                         ::testing::Values(AttnShape{3, 3, 64, 37}, AttnShape{2, 9, 128, 150},
                                           AttnShape{1, 14, 40, 70}, AttnShape{2, 4, 36, 9},
                                           AttnShape{1, 8, 64, 1}, AttnShape{2, 4, 64, 70},
                                           AttnShape{4, 1, 32, 5}, AttnShape{1, 2, 64, 130}));
// The cache of one shape and type: its bytes and the values it holds, as floats.
struct TypedCache {
  size_t rb = 0;
  std::vector<uint8_t> kc, vc;
  std::vector<float> kr, vr;
};
static TypedCache make_cache(DType t, const std::vector<float>& k, const std::vector<float>& v, int64_t n_kv,
                             int64_t kv_dim) {
  TypedCache c;
  c.rb = dtype_row_bytes(t, kv_dim);
  c.kc.resize(c.rb * size_t(n_kv));
  c.vc.resize(c.rb * size_t(n_kv));
  c.kr.resize(k.size());
  c.vr.resize(v.size());
  for (int64_t j = 0; j < n_kv; ++j) {
    if (t == DType::F32) {
      std::memcpy(c.kc.data() + j * c.rb, k.data() + j * kv_dim, c.rb);
      std::memcpy(c.vc.data() + j * c.rb, v.data() + j * kv_dim, c.rb);
    } else {
      quant::quantize_row(t, k.data() + j * kv_dim, c.kc.data() + j * c.rb, kv_dim);
      quant::quantize_row(t, v.data() + j * kv_dim, c.vc.data() + j * c.rb, kv_dim);
    }
    quant::dequantize_row(t, c.kc.data() + j * c.rb, c.kr.data() + j * kv_dim, kv_dim);
    quant::dequantize_row(t, c.vc.data() + j * c.rb, c.vr.data() + j * kv_dim, kv_dim);
  }
  return c;
}

// Double-precision attention of one token's heads q (n_head, hd) over the first n cache rows.
static std::vector<double> reference_attention(const float* q, const TypedCache& c, int64_t n, int64_t n_head,
                                               int64_t group, int64_t hd, int64_t kv_dim, double scale) {
  std::vector<double> want(size_t(n_head * hd));
  for (int64_t h = 0; h < n_head; ++h) {
    const int64_t g = h / group;
    std::vector<double> s(static_cast<size_t>(n));
    double mx = -1e300, sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      double d = 0;
      for (int64_t i = 0; i < hd; ++i) d += double(q[h * hd + i]) * c.kr[size_t(j * kv_dim + g * hd + i)];
      s[size_t(j)] = d * scale;
      mx = std::max(mx, s[size_t(j)]);
    }
    for (auto& x : s) sum += x = std::exp(x - mx);
    for (int64_t i = 0; i < hd; ++i) {
      double o = 0;
      for (int64_t j = 0; j < n; ++j) o += s[size_t(j)] / sum * c.vr[size_t(j * kv_dim + g * hd + i)];
      want[size_t(h * hd + i)] = o;
    }
  }
  return want;
}

TEST_P(AttentionShapes, OnTypedCachesMatchesReference) {
  const auto [n_head_kv, group, hd, n_kv] = GetParam();
  const int64_t kv_dim = n_head_kv * hd;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(size_t(n_head_kv * group * hd)), k(size_t(n_kv * kv_dim)), v(k.size());
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    if (t == DType::Q8_0 && hd % 32 != 0) continue;  // a q8_0 cache needs whole blocks per head
    const TypedCache c = make_cache(t, k, v, n_kv, kv_dim);
    const float scale = 0.125f;
    const std::vector<double> want = reference_attention(q.data(), c, n_kv, n_head_kv * group, group, hd, kv_dim, scale);
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
      std::vector<float> out(q.size(), NAN);
      std::vector<float> scratch(size_t(kernels::attention_scratch_floats(n_kv, group, hd)));
      const kernels::KvView kv{t, c.kc.data(), c.rb}, vv{t, c.vc.data(), c.rb};
      for (int64_t g = 0; g < n_head_kv; ++g)
        kernels::attention_group(q.data(), kv, vv, n_kv, g, group, hd, scale, out.data(), scratch.data());
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], want[i], 2e-5) << isa->name << " " << dtype_name(t) << " i " << i;
    }
    ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
  }
}

// The engine's head-major cache (each kv head's positions contiguous, head_bytes apart) gives the
// same results, bit for bit, as the heads side by side in each row: the kernels read a head's
// slices through head_bytes. The heads are padded apart (not n_kv slices) so that a kernel taking
// the stride from anything but head_bytes reads the wrong rows.
TEST_P(AttentionShapes, HeadMajorCacheMatchesSideBySide) {
  const auto [n_head_kv, group, hd, n_kv] = GetParam();
  const int64_t kv_dim = n_head_kv * hd, qd = n_head_kv * group * hd;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(qd)), k(static_cast<size_t>(n_kv * kv_dim)), v(k.size());
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  for (DType t : {DType::F32, DType::F16, DType::Q8_0}) {
    if (t == DType::Q8_0 && hd % 32 != 0) continue;
    const TypedCache c = make_cache(t, k, v, n_kv, kv_dim);
    const size_t sb = dtype_row_bytes(t, hd), head_bytes = sb * size_t(n_kv + 3);
    std::vector<uint8_t> kh(head_bytes * size_t(n_head_kv), 0xff), vh(kh.size(), 0xff);  // NaN padding
    for (int64_t g = 0; g < n_head_kv; ++g)
      for (int64_t j = 0; j < n_kv; ++j) {
        std::memcpy(kh.data() + g * head_bytes + j * sb, c.kc.data() + j * c.rb + g * sb, sb);
        std::memcpy(vh.data() + g * head_bytes + j * sb, c.vc.data() + j * c.rb + g * sb, sb);
      }
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
      std::vector<float> rows(q.size(), NAN), heads(q.size(), NAN);
      std::vector<float> scratch(size_t(kernels::attention_scratch_floats(n_kv, group, hd)));
      const kernels::KvView kr{t, c.kc.data(), c.rb}, vr{t, c.vc.data(), c.rb};
      const kernels::KvView kv{t, kh.data(), sb, head_bytes}, vv{t, vh.data(), sb, head_bytes};
      for (int64_t g = 0; g < n_head_kv; ++g) {
        kernels::attention_group(q.data(), kr, vr, n_kv, g, group, hd, 0.125f, rows.data(), scratch.data());
        kernels::attention_group(q.data(), kv, vv, n_kv, g, group, hd, 0.125f, heads.data(), scratch.data());
      }
      for (size_t i = 0; i < q.size(); ++i)
        ASSERT_EQ(heads[i], rows[i]) << isa->name << " " << dtype_name(t) << " i " << i;
    }
  }
  ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
}

// Attention over the whole cache = the merge of attention over parts of it (views that start at a
// later row) by their rows' softmax statistics: decode split over the keys across threads.
TEST_P(AttentionShapes, PartsMergeToTheWhole) {
  const auto [n_head_kv, group, hd, n_kv] = GetParam();
  const int64_t kv_dim = n_head_kv * hd, qd = n_head_kv * group * hd;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 2.0f);  // wide scores: the parts' maxima differ
  std::vector<float> q(static_cast<size_t>(qd)), k(static_cast<size_t>(n_kv * kv_dim)), v(k.size());
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  const TypedCache c = make_cache(DType::F16, k, v, n_kv, kv_dim);
  const float scale = 0.125f;
  const std::vector<double> want = reference_attention(q.data(), c, n_kv, n_head_kv * group, group, hd, kv_dim, scale);
  const int np = int(std::min<int64_t>(3, n_kv));  // parts of at least one key
  int64_t cut[4];
  for (int p = 0; p <= np; ++p) cut[p] = n_kv * p / np;
  for (const kernels::KernelTable* isa : kernels::available_isas()) {
    ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
    std::vector<float> parts(size_t(3 * qd), NAN), stats(size_t(3 * 2 * group), NAN), out(size_t(qd), NAN);
    std::vector<float> scratch(size_t(kernels::attention_scratch_floats(n_kv, group, hd)));
    for (int64_t g = 0; g < n_head_kv; ++g) {
      for (int p = 0; p < np; ++p) {
        const int64_t len = cut[p + 1] - cut[p];
        const kernels::KvView kv{DType::F16, c.kc.data() + cut[p] * c.rb, c.rb};
        const kernels::KvView vv{DType::F16, c.vc.data() + cut[p] * c.rb, c.rb};
        kernels::attention_tokens(q.data(), qd, kv, vv, &len, 1, g, group, hd, scale, parts.data() + p * qd,
                                  scratch.data(), stats.data() + p * 2 * group);
      }
      kernels::merge_attention_parts(parts.data() + g * group * hd, qd, stats.data(), 2 * group, np, group, hd,
                                     out.data() + g * group * hd);
    }
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want[i], 2e-5) << isa->name << " i " << i;
  }
  ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
}

// A run of tokens in one call (a prompt's): each token sees its own number of cache rows, and the
// run's query rows (tokens x group) fill vectors of 8 across tokens. Lengths: a causal prompt
// ending at n_kv, then an unordered set (1, the longest, one in between) to check that every row
// keeps to its own keys.
TEST_P(AttentionShapes, TokenRunsMatchReference) {
  const auto [n_head_kv, group, hd, n_kv] = GetParam();
  const int64_t kv_dim = n_head_kv * hd, qd = n_head_kv * group * hd;
  const int64_t nt = std::min<int64_t>(n_kv, kernels::attention_token_block(group) + 1);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(size_t(nt * qd)), k(size_t(n_kv * kv_dim)), v(k.size());
  for (auto& x : q) x = nd(rng);
  for (auto& x : k) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  std::vector<std::vector<int64_t>> lengths(2);
  for (int64_t i = 0; i < nt; ++i) lengths[0].push_back(n_kv - nt + 1 + i);
  for (int64_t i = 0; i < nt; ++i) lengths[1].push_back(i % 3 == 0 ? n_kv : i % 3 == 1 ? 1 : 1 + n_kv / 2);
  for (DType t : {DType::F32, DType::F16}) {
    const TypedCache c = make_cache(t, k, v, n_kv, kv_dim);
    const float scale = 0.125f;
    for (const auto& len : lengths) {
      std::vector<double> want;
      for (int64_t i = 0; i < nt; ++i) {
        const auto w = reference_attention(q.data() + i * qd, c, len[size_t(i)], n_head_kv * group, group, hd,
                                           kv_dim, scale);
        want.insert(want.end(), w.begin(), w.end());
      }
      for (const kernels::KernelTable* isa : kernels::available_isas()) {
        ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
        std::vector<float> out(q.size(), NAN);
        std::vector<float> scratch(size_t(kernels::attention_scratch_floats(n_kv, nt * group, hd)), NAN);
        const kernels::KvView kv{t, c.kc.data(), c.rb}, vv{t, c.vc.data(), c.rb};
        for (int64_t g = 0; g < n_head_kv; ++g)
          kernels::attention_tokens(q.data(), qd, kv, vv, len.data(), nt, g, group, hd, scale, out.data(),
                                    scratch.data());
        for (size_t i = 0; i < out.size(); ++i)
          ASSERT_NEAR(out[i], want[i], 2e-5) << isa->name << " " << dtype_name(t) << " token " << i / size_t(qd)
                                             << " i " << i % size_t(qd) << " n " << len[i / size_t(qd)];
      }
      ASSERT_TRUE(kernels::force_isa(kernels::available_isas().back()->name).is_ok());
    }
  }
}
