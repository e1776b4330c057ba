#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <vector>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

using namespace edgeglm;

TEST(ThreadPool, ParallelForCoversEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (int rep = 0; rep < 20; ++rep)
        pool.parallel_for(n, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
        });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 20) << threads << " " << n;
    }
  }
}

TEST(ThreadPool, RunGivesEachThreadItsIndex) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> seen(4);
  for (int rep = 0; rep < 1000; ++rep)
    pool.run([&](int ith, int nth) {
      ASSERT_EQ(nth, 4);
      seen[size_t(ith)]++;
    });
  for (auto& s : seen) EXPECT_EQ(s.load(), 1000);
}

TEST(Status, ResultCarriesValueOrError) {
  Result<int> ok = 5;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  Result<int> bad = Status::error("boom");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "boom");
  EXPECT_EQ(bad.status().with_context("f.gguf").message(), "f.gguf: boom");
}

TEST(DType, TableMatchesGgufSizes) {
  EXPECT_EQ(dtype_row_bytes(DType::Q4_0, 64), 36u);
  EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 512), 288u);
  EXPECT_EQ(dtype_row_bytes(DType::Q6_K, 256), 210u);
  EXPECT_EQ(dtype_row_bytes(DType::BF16, 3), 6u);
  EXPECT_FALSE(dtype_row_ok(DType::Q8_0, 33));
  EXPECT_TRUE(dtype_row_ok(DType::F32, 33));
  EXPECT_FALSE(dtype_from_id(5).ok());  // Q4_2: removed from GGUF, unknown here
  EXPECT_EQ(*dtype_from_name("Q4_K"), DType::Q4_K);
  EXPECT_NEAR(dtype_bits_per_weight(DType::Q4_0), 4.5, 1e-9);
}

TEST(TensorView, RowSliceIsZeroCopy) {
  std::vector<float> d(12);
  std::iota(d.begin(), d.end(), 0.0f);
  TensorView t = TensorView::make(DType::F32, d.data(), 3, 4);
  TensorView s = t.row_slice(1, 2);
  EXPECT_EQ(s.rows(), 2);
  EXPECT_EQ(s.row<float>(0)[0], 3.0f);
  EXPECT_EQ(s.row<float>(1)[2], 8.0f);
  EXPECT_EQ(t.shape_string(), "[3, 4]");
}

TEST(Arena, AlignsAndCounts) {
  Arena a;
  ASSERT_TRUE(a.reserve(1000).is_ok());
  float* p = a.alloc<float>(3);
  float* q = a.alloc<float>(5);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % Arena::kAlign, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % Arena::kAlign, 0u);
  EXPECT_EQ(a.used(), 128u);
}

#include "core/utf8.h"

TEST(Utf8, StrictDecoding) {
  uint32_t cp = 0;
  EXPECT_EQ(utf8_decode("\xF0\x9F\x98\x80", 0, &cp), 4u);
  EXPECT_EQ(cp, 0x1F600u);
  EXPECT_EQ(utf8_decode("a\xC3\xA9", 1, &cp), 2u);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(utf8_decode("\xC0\xAF", 0, &cp), 0u);          // overlong '/'
  EXPECT_EQ(utf8_decode("\xED\xA0\x80", 0, &cp), 0u);      // surrogate U+D800
  EXPECT_EQ(utf8_decode("\xF4\x90\x80\x80", 0, &cp), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_decode("\xE2\x82", 0, &cp), 0u);          // truncated
  EXPECT_EQ(utf8_decode("\x80", 0, &cp), 0u);              // stray continuation
  EXPECT_TRUE(utf8_valid("caf\xC3\xA9 \xE2\x82\xAC"));
  EXPECT_TRUE(utf8_valid(""));
  EXPECT_FALSE(utf8_valid("ok\xFF"));
}

TEST(ThreadPool, ParallelForPassesThreadIndexAndHonoursGrain) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> by_thread(3);
  std::vector<std::atomic<int>> hits(100);
  pool.parallel_for(100, [&](int64_t b, int64_t e, int ith) {
    ASSERT_GE(ith, 0);
    ASSERT_LT(ith, 3);
    by_thread[size_t(ith)] += int(e - b);
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_EQ(by_thread[0].load() + by_thread[1].load() + by_thread[2].load(), 100);
  EXPECT_GT(by_thread[2].load(), 0);  // large enough work is spread to every thread
  // Work under two grains stays on the calling thread (index 0).
  std::atomic<int> calls{0};
  pool.parallel_for(10, [&](int64_t b, int64_t e, int ith) {
    EXPECT_EQ(ith, 0);
    EXPECT_EQ(e - b, 10);
    calls++;
  }, /*grain=*/8);
  EXPECT_EQ(calls.load(), 1);
}
