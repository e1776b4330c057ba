// Run-time weight layouts (kernels/layout.h): the rearrangement loses nothing, every ISA table
// computes a layout exactly as it computes the file format it came from (the per-row arithmetic is
// the same, so results are bit-identical), including row ranges that cut groups, and the layout is
// chosen only where a table has a kernel for it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/isa.h"
#include "kernels/kernels.h"
#include "kernels/layout.h"
#include "quant/quant.h"

using namespace edgeglm;

namespace {

std::vector<uint8_t> matrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> f(static_cast<size_t>(cols));
  const size_t rb = dtype_row_bytes(t, cols);
  std::vector<uint8_t> out(rb * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : f) v = nd(rng) * (1.0f + float(r % 5));
    quant::quantize_row(t, f.data(), out.data() + size_t(r) * rb, cols);
  }
  return out;
}
std::vector<uint8_t> q8_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  return matrix(DType::Q8_0, rows, cols, seed);
}

std::vector<float> acts(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = nd(rng);
  return x;
}

std::vector<uint8_t> relaid(const std::vector<uint8_t>& m, int64_t rows, int64_t cols,
                            DType layout = DType::Q8_0_R8) {
  std::vector<uint8_t> out(m.size());
  kernels::to_runtime_layout(layout, m.data(), out.data(), rows, dtype_row_bytes(kernels::file_dtype(layout), cols));
  return out;
}

constexpr DType kLayouts[] = {DType::Q8_0_R8, DType::F16_R4,  DType::Q4_0_R8, DType::Q4_1_R8,
                              DType::Q4_0_X8, DType::Q4_1_X8, DType::Q8_0_X8, DType::Q6_K_X8,
                              DType::Q4_K_X8, DType::Q5_K_X8, DType::Q5_0_X8, DType::Q5_1_X8};
constexpr DType kIntLayouts[] = {DType::Q8_0_R8, DType::Q4_0_R8, DType::Q4_1_R8, DType::Q4_0_X8,
                                 DType::Q4_1_X8, DType::Q8_0_X8, DType::Q6_K_X8, DType::Q4_K_X8,
                                 DType::Q5_K_X8, DType::Q5_0_X8, DType::Q5_1_X8};
constexpr DType kX8Layouts[] = {DType::Q4_0_X8, DType::Q4_1_X8, DType::Q8_0_X8, DType::Q6_K_X8,
                                DType::Q4_K_X8, DType::Q5_K_X8, DType::Q5_0_X8, DType::Q5_1_X8};
bool is_x8(DType t) { return std::find(std::begin(kX8Layouts), std::end(kX8Layouts), t) != std::end(kX8Layouts); }
// Columns for a test that wants `cols` of the 32-blocks: super-blocks of 256 need a multiple of 256.
int64_t cols_for(DType layout, int64_t cols) {
  return dtype_traits(kernels::file_dtype(layout))->block_size == 256 ? (cols + 255) / 256 * 256 : cols;
}

// The table whose file-format result a layout served by `served` must equal bit for bit for n_tok
// tokens: the AVX2 X8 kernels repeat the scalar twin's float arithmetic (generic); avx512 serves X8
// decode (1-4 tokens) with them and prefill with its own repacking kernel, which reads X8 exactly
// as the file format; the other layouts their own table's.
const char* reference_isa(DType layout, const char* served, int64_t n_tok) {
  if (!is_x8(layout)) return served;
  return std::string_view(served) == "avx512" && n_tok >= 5 ? "avx512" : "generic";
}

struct IsaRestore {
  ~IsaRestore() { (void)kernels::force_isa(kernels::available_isas().back()->name); }
};

}  // namespace

TEST(RuntimeLayout, Q8_0_R8InterleavesPairsAndEveryRowComesBack) {
  const int64_t rows = 24, cols = 192;
  const size_t rb = dtype_row_bytes(DType::Q8_0, cols);
  const auto q8 = q8_matrix(rows, cols, 1);
  const auto r8 = relaid(q8, rows, cols);
  ASSERT_NE(q8, r8);
  // Group 1, pair 2 of its row 3 (row 11) sits at (8 * 2 + 3) * 68 bytes into the group.
  EXPECT_EQ(0, std::memcmp(r8.data() + 8 * rb + (8 * 2 + 3) * 68, q8.data() + 11 * rb + 4 * 34, 68));
  std::vector<uint8_t> row(rb);
  for (int64_t r = 0; r < rows; ++r) {
    kernels::runtime_row(DType::Q8_0_R8, r8.data(), rb, r, row.data());
    EXPECT_EQ(0, std::memcmp(row.data(), q8.data() + size_t(r) * rb, rb)) << "row " << r;
  }
}

TEST(RuntimeLayout, F16_R4InterleavesUnitsOf32AndEveryRowComesBack) {
  const int64_t rows = 12, cols = 96;
  const size_t rb = dtype_row_bytes(DType::F16, cols);
  const auto f16 = matrix(DType::F16, rows, cols, 6);
  const auto r4 = relaid(f16, rows, cols, DType::F16_R4);
  ASSERT_NE(f16, r4);
  // Group 2, unit 1 (values 32..63) of its row 1 (row 9) sits at (4 * 1 + 1) * 64 bytes into it.
  EXPECT_EQ(0, std::memcmp(r4.data() + 8 * rb + (4 * 1 + 1) * 64, f16.data() + 9 * rb + 64, 64));
  std::vector<uint8_t> row(rb);
  for (int64_t r = 0; r < rows; ++r) {
    kernels::runtime_row(DType::F16_R4, r4.data(), rb, r, row.data());
    EXPECT_EQ(0, std::memcmp(row.data(), f16.data() + size_t(r) * rb, rb)) << "row " << r;
  }
}

TEST(RuntimeLayout, X8PutsEachBlockColumnsFieldsThenQuantsBy4BytesAndEveryRowComesBack) {
  const int64_t rows = 16;  // 2 groups
  for (DType layout : kX8Layouts) {
    const DType file = kernels::file_dtype(layout);
    const int64_t cols = 3 * dtype_traits(file)->block_size;  // 3 block columns
    const size_t rb = dtype_row_bytes(file, cols), bb = size_t(dtype_traits(file)->block_bytes);
    // d (Q4_1: d, m; Q4_K, Q5_K: d, dmin) at the block's start; Q6_K: 8 scale pairs and d, its last 18 bytes
    const bool two = layout == DType::Q4_1_X8 || layout == DType::Q5_1_X8 || layout == DType::Q4_K_X8 ||
                     layout == DType::Q5_K_X8;
    const size_t fields = two ? 2 : layout == DType::Q6_K_X8 ? 9 : 1;
    const size_t field0 = layout == DType::Q6_K_X8 ? bb - 18 : 0, quant0 = layout == DType::Q6_K_X8 ? 0 : 2 * fields;
    const auto plain = matrix(file, rows, cols, 8);
    const auto x8 = relaid(plain, rows, cols, layout);
    ASSERT_NE(plain, x8);
    // Row 13 = row 5 of group 1, block 2: its fields and its quant bytes 8..11 (c = 2).
    const uint8_t* col = x8.data() + 8 * rb + 2 * 8 * bb;
    const uint8_t* blk = plain.data() + 13 * rb + 2 * bb;
    for (size_t f = 0; f < fields; ++f)
      EXPECT_EQ(0, std::memcmp(col + 16 * f + 2 * 5, blk + field0 + 2 * f, 2)) << dtype_name(layout) << " field " << f;
    EXPECT_EQ(0, std::memcmp(col + 16 * fields + 32 * 2 + 4 * 5, blk + quant0 + 8, 4));
    if (layout == DType::Q8_0_X8) {  // c = 7: quant bytes 28..31
      EXPECT_EQ(0, std::memcmp(col + 16 * fields + 32 * 7 + 4 * 5, blk + quant0 + 28, 4));
    }
    if (dtype_traits(file)->block_size == 256 || (bb - 2 * fields) % 16 != 0) {  // the last chunk, past the 4x4 transposes
      const size_t last = (bb - 2 * fields) / 4 - 1;
      EXPECT_EQ(0, std::memcmp(col + 16 * fields + 32 * last + 4 * 5, blk + quant0 + 4 * last, 4)) << dtype_name(layout);
    }
    std::vector<uint8_t> row(rb);
    for (int64_t r = 0; r < rows; ++r) {
      kernels::runtime_row(layout, x8.data(), rb, r, row.data());
      EXPECT_EQ(0, std::memcmp(row.data(), plain.data() + size_t(r) * rb, rb)) << dtype_name(layout) << " row " << r;
    }
  }
}

TEST(RuntimeLayout, IsNeverAFileType) {
  EXPECT_FALSE(dtype_from_id(uint32_t(DType::Q8_0_R8)).ok());
  EXPECT_FALSE(dtype_from_name("q8_0_r8").ok());
  EXPECT_FALSE(dtype_from_id(uint32_t(DType::F16_R4)).ok());
  EXPECT_FALSE(dtype_from_name("f16_r4").ok());
  EXPECT_EQ(kernels::file_dtype(DType::F16_R4), DType::F16);
  EXPECT_FALSE(dtype_from_name("q4_0_x8").ok());
  EXPECT_FALSE(dtype_from_id(uint32_t(DType::Q4_1_X8)).ok());
  EXPECT_EQ(kernels::file_dtype(DType::Q4_1_X8), DType::Q4_1);
  EXPECT_TRUE(kernels::is_runtime_layout(DType::Q8_0_R8));
  EXPECT_FALSE(kernels::is_runtime_layout(DType::Q8_0));
  EXPECT_EQ(kernels::file_dtype(DType::Q8_0_R8), DType::Q8_0);
  EXPECT_EQ(dtype_row_bytes(DType::Q8_0_R8, 128), dtype_row_bytes(DType::Q8_0, 128));
}

// Every table, decode (1-4 tokens) and prefill (5+) shapes, 1 and 2 threads: y of the layout ==
// y of the file format from the table that serves the layout (itself, or generic's row copy; for
// the X8 layouts, generic: their kernels repeat its arithmetic).
TEST(RuntimeLayout, EveryIsaComputesEachLayoutExactlyAsItsFileFormat) {
  IsaRestore restore;
  const int64_t rows = 56;  // 7 groups of 8 (14 of 4); 6 Q8_0 / 3 Q4_x / 12 F16 units a row, 2 Q6_K
  for (DType layout : kLayouts) {
    const int64_t cols = cols_for(layout, 384);
    const DType file = kernels::file_dtype(layout);
    auto plain = matrix(file, rows, cols, 2);
    auto lay = relaid(plain, rows, cols, layout);
    const TensorView vp = TensorView::make(file, plain.data(), cols, rows);
    const TensorView vl = TensorView::make(layout, lay.data(), cols, rows);
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      const kernels::ResolvedFormat served = kernels::resolve_format(*isa, layout);
      ASSERT_TRUE(served.k.q || served.k.f) << isa->name << " " << dtype_name(layout);
      for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        for (int64_t n_tok : {1, 2, 4, 5, 9, 33}) {
          const auto x = acts(cols * n_tok, uint32_t(10 + n_tok));
          std::vector<float> yp(size_t(rows * n_tok)), yl(yp.size());
          ASSERT_TRUE(kernels::force_isa(reference_isa(layout, served.isa, n_tok)).is_ok());
          kernels::matmul(vp, x.data(), n_tok, yp.data(), pool);
          ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
          kernels::matmul(vl, x.data(), n_tok, yl.data(), pool);
          EXPECT_EQ(yp, yl) << dtype_name(layout) << " on " << isa->name << " (served by " << served.isa
                            << ") n_tok " << n_tok << " threads " << threads;
        }
      }
    }
  }
}

// Q8_0 quants of -128 (no quantizer writes them, a hostile or foreign file can): |w| = 128 must not
// saturate or flip a sign. Every table's result for the file form and for each layout it computes
// equals generic's; the X8 kernels that repeat generic's arithmetic (reference_isa) bit for bit.
TEST(RuntimeLayout, Q8_0WithMinus128QuantsIsExact) {
  IsaRestore restore;
  const int64_t rows = 16, cols = 96;
  auto plain = q8_matrix(rows, cols, 9);
  const size_t rb = dtype_row_bytes(DType::Q8_0, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < cols / 32; ++b)
      for (int j = 0; j < 32; j += 3) plain[size_t(r) * rb + size_t(b) * 34 + 2 + size_t(j)] = (r + j) % 2 ? 0x80 : 0x7F;
  const auto x = acts(cols * 7, 31);
  std::vector<float> ref(size_t(rows * 7));
  ThreadPool pool(2);
  ASSERT_TRUE(kernels::force_isa("generic").is_ok());
  kernels::matmul(TensorView::make(DType::Q8_0, plain.data(), cols, rows), x.data(), 7, ref.data(), pool);
  for (DType layout : {DType::Q8_0, DType::Q8_0_X8}) {  // (R8 needs whole pairs of blocks: 3 here)
    const auto lay = layout == DType::Q8_0 ? plain : relaid(plain, rows, cols, layout);
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      ASSERT_TRUE(kernels::force_isa(isa->name).is_ok());
      for (int64_t n_tok : {1, 7}) {
        std::vector<float> y(size_t(rows * n_tok));
        kernels::matmul(TensorView::make(layout, const_cast<uint8_t*>(lay.data()), cols, rows), x.data(), n_tok,
                        y.data(), pool);
        for (size_t i = 0; i < y.size(); ++i) {
          if (layout == DType::Q8_0_X8 &&
              std::string(reference_isa(layout, kernels::resolve_format(*isa, layout).isa, n_tok)) == "generic") {
            EXPECT_EQ(y[i], ref[i]) << isa->name << " n_tok " << n_tok << " at " << i;
          } else {
            EXPECT_NEAR(y[i], ref[i], 1e-4f * (1.0f + std::fabs(ref[i]))) << isa->name << " n_tok " << n_tok << " at " << i;
          }
        }
      }
    }
  }
}

// Row ranges that start and end inside a group (the kernels' contract allows any r0, r1).
TEST(RuntimeLayout, RowRangesThatCutGroupsAreExact) {
  IsaRestore restore;
  const int64_t rows = 40, cols = 256;
  for (DType layout : kIntLayouts) {
    const DType file = kernels::file_dtype(layout);
    const size_t rb = dtype_row_bytes(file, cols);
    const auto plain = matrix(file, rows, cols, 3);
    const auto lay = relaid(plain, rows, cols, layout);
    for (const kernels::KernelTable* isa : kernels::available_isas()) {
      const kernels::ResolvedFormat served = kernels::resolve_format(*isa, layout);
      for (int64_t n_tok : {1, 3, 7, 13}) {
        const bool generic_ref = std::string(reference_isa(layout, served.isa, n_tok)) == "generic";
        const kernels::GemmQ file_kernel =
            kernels::resolve_format(generic_ref ? *kernels::available_isas().front() : *isa, file).k.q;
        std::vector<uint64_t> mem(kernels::qacts_bytes(cols, n_tok) / 8 + 16);
        void* p = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(mem.data()) + 63) & ~uintptr_t(63));
        const kernels::QActs a = kernels::qacts_view(p, cols, n_tok);
        const auto x = acts(cols * n_tok, 20);
        for (int64_t t = 0; t < n_tok; ++t)
          kernels::quantize_acts_ref(x.data() + t * cols, cols, a.q + t * cols, a.d + t * a.nb(), a.s + t * a.nb());
        for (auto [r0, r1] : {std::pair<int64_t, int64_t>{3, 29}, {8, 16}, {9, 14}, {0, 40}, {33, 40}}) {
          std::vector<float> yq(size_t(rows * n_tok), -1.0f), yr(yq.size(), -1.0f);
          file_kernel(plain.data(), rb, a, yq.data(), rows, r0, r1);
          served.k.q(lay.data(), rb, a, yr.data(), rows, r0, r1);
          EXPECT_EQ(yq, yr) << dtype_name(layout) << " on " << isa->name << " rows " << r0 << ".." << r1
                            << " n_tok " << n_tok;
          for (int64_t r = 0; r < rows; ++r)
            if (r < r0 || r >= r1) {
              EXPECT_EQ(yr[size_t(r)], -1.0f) << "row " << r << " is outside the range";
            }
        }
      }
    }
  }
}

TEST(RuntimeLayout, F16_R4RowRangesThatCutGroupsAreExact) {
  IsaRestore restore;
  const int64_t rows = 20, cols = 96;
  const size_t rb = dtype_row_bytes(DType::F16, cols);
  const auto f16 = matrix(DType::F16, rows, cols, 7);
  const auto r4 = relaid(f16, rows, cols, DType::F16_R4);
  for (const kernels::KernelTable* isa : kernels::available_isas()) {
    const kernels::ResolvedFormat served = kernels::resolve_format(*isa, DType::F16_R4);
    const kernels::GemmF file_kernel = kernels::resolve_format(
        std::string(served.isa) == "generic" ? *kernels::available_isas().front() : *isa, DType::F16).k.f;
    for (int64_t n_tok : {1, 2, 7}) {
      const auto x = acts(cols * n_tok, 21);
      for (auto [r0, r1] : {std::pair<int64_t, int64_t>{1, 18}, {4, 8}, {5, 7}, {0, 20}, {17, 20}}) {
        std::vector<float> yf(size_t(rows * n_tok), -1.0f), yl(yf.size(), -1.0f);
        file_kernel(DType::F16, f16.data(), rb, x.data(), cols, n_tok, yf.data(), rows, r0, r1);
        served.k.f(DType::F16_R4, r4.data(), rb, x.data(), cols, n_tok, yl.data(), rows, r0, r1);
        EXPECT_EQ(yf, yl) << isa->name << " rows " << r0 << ".." << r1 << " n_tok " << n_tok;
        for (int64_t r = 0; r < rows; ++r)
          if (r < r0 || r >= r1) {
            EXPECT_EQ(yl[size_t(r)], -1.0f) << "row " << r << " is outside the range";
          }
      }
    }
  }
  // The embedding lookup of a tied F16 output reads it too.
  const TensorView vf = TensorView::make(DType::F16, const_cast<uint8_t*>(f16.data()), cols, rows);
  const TensorView vl = TensorView::make(DType::F16_R4, const_cast<uint8_t*>(r4.data()), cols, rows);
  std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    kernels::get_row(vf, r, a.data());
    kernels::get_row(vl, r, b.data());
    EXPECT_EQ(a, b) << "row " << r;
  }
}

TEST(RuntimeLayout, GetRowAndFloatActivationsReadTheLayout) {
  const int64_t rows = 16, cols = 64;
  auto q8 = q8_matrix(rows, cols, 4);
  auto r8 = relaid(q8, rows, cols);
  const TensorView vq = TensorView::make(DType::Q8_0, q8.data(), cols, rows);
  const TensorView vr = TensorView::make(DType::Q8_0_R8, r8.data(), cols, rows);
  std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    kernels::get_row(vq, r, a.data());
    kernels::get_row(vr, r, b.data());
    EXPECT_EQ(a, b) << "row " << r;
  }
  ThreadPool pool(2);
  const auto x = acts(cols * 3, 5);
  std::vector<float> yq(size_t(rows * 3)), yr(yq.size());
  kernels::set_float_activations(true);
  kernels::matmul(vq, x.data(), 3, yq.data(), pool);
  kernels::matmul(vr, x.data(), 3, yr.data(), pool);
  kernels::set_float_activations(false);
  EXPECT_EQ(yq, yr);
}

TEST(RuntimeLayout, ChosenOnlyWhereATableHasAKernelForIt) {
  IsaRestore restore;
  auto served_by = [](DType layout) { return std::string(kernels::resolve_format(kernels::active_isa(), layout).isa); };
  auto computed = [&](DType layout) { return served_by(layout) != "generic"; };  // not generic's row copy
  const bool own = computed(DType::Q8_0_R8), own_q4 = computed(DType::Q4_0_R8), own_f16 = computed(DType::F16_R4);
  // Q4_0 / Q4_1 / Q8_0: X8 where a table computes it (avx2), else R8 (whole units of 2 / 4 blocks).
  const bool x8 = computed(DType::Q4_0_X8);
  const bool own_x8 = served_by(DType::Q4_0_X8) == kernels::active_isa().name;
  const bool own_r8 = served_by(DType::Q4_0_R8) == kernels::active_isa().name;
  const bool take_x8 = x8 && (own_x8 || !own_r8);
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), take_x8 ? DType::Q8_0_X8 : own ? DType::Q8_0_R8 : DType::Q8_0);
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 60, 128), DType::Q8_0);  // rows not in groups of 8
  // An odd number of blocks: X8 takes any, R8 whole pairs.
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 96), x8 ? DType::Q8_0_X8 : DType::Q8_0);
  const DType q4_0 = take_x8 ? DType::Q4_0_X8 : own_q4 ? DType::Q4_0_R8 : DType::Q4_0;
  const DType q4_1 = take_x8 ? DType::Q4_1_X8 : own_q4 ? DType::Q4_1_R8 : DType::Q4_1;
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_0, 64, 128), q4_0);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_1, 64, 256), q4_1);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_0, 64, 96), x8 ? DType::Q4_0_X8 : DType::Q4_0);  // X8: any blocks
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_0, 60, 128), DType::Q4_0);  // rows not in groups of 8
  EXPECT_EQ(kernels::preferred_layout(DType::Q5_0, 64, 96), x8 ? DType::Q5_0_X8 : DType::Q5_0);
  EXPECT_EQ(kernels::preferred_layout(DType::Q5_1, 64, 128), x8 ? DType::Q5_1_X8 : DType::Q5_1);
  EXPECT_EQ(kernels::preferred_layout(DType::I8_ROW, 64, 128), DType::I8_ROW);  // no layout
  // K-quants: X8 only (whole super-blocks of 256).
  EXPECT_EQ(kernels::preferred_layout(DType::Q6_K, 64, 512), x8 ? DType::Q6_K_X8 : DType::Q6_K);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_K, 64, 256), x8 ? DType::Q4_K_X8 : DType::Q4_K);
  EXPECT_EQ(kernels::preferred_layout(DType::Q5_K, 64, 768), x8 ? DType::Q5_K_X8 : DType::Q5_K);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_K, 60, 256), DType::Q4_K);  // rows not in groups of 8
  EXPECT_EQ(kernels::preferred_layout(DType::F16, 64, 128), own_f16 ? DType::F16_R4 : DType::F16);
  EXPECT_EQ(kernels::preferred_layout(DType::F16, 66, 128), DType::F16);  // rows not in groups of 4
  EXPECT_EQ(kernels::preferred_layout(DType::F16, 64, 48), DType::F16);   // not whole units of 32
  kernels::set_float_activations(true);
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), DType::Q8_0);
  kernels::set_float_activations(false);
  setenv("EDGEGLM_WEIGHT_LAYOUT", "file", 1);
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), DType::Q8_0);
  // A list names the only layouts to consider.
  setenv("EDGEGLM_WEIGHT_LAYOUT", "q4_1_x8,q8_0_r8", 1);
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), own ? DType::Q8_0_R8 : DType::Q8_0);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_0, 64, 128), DType::Q4_0);
  EXPECT_EQ(kernels::preferred_layout(DType::Q4_1, 64, 256), x8 ? DType::Q4_1_X8 : DType::Q4_1);
  setenv("EDGEGLM_WEIGHT_LAYOUT", "q8_0_r", 1);  // a prefix is no name
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), DType::Q8_0);
  unsetenv("EDGEGLM_WEIGHT_LAYOUT");
  ASSERT_TRUE(kernels::force_isa("generic").is_ok());
  EXPECT_EQ(kernels::preferred_layout(DType::Q8_0, 64, 128), DType::Q8_0);
  EXPECT_EQ(kernels::preferred_layout(DType::F16, 64, 128), DType::F16);
}
