// ThreadPool::parallel_for_stealing: every index in exactly one aligned piece, each thread's own
// range taken from its front, and a delayed thread's work taken from the back by the others.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

using namespace edgeglm;

TEST(ThreadPoolStealing, EveryIndexOnceInAlignedPieces) {
  for (int nth : {1, 2, 3, 4}) {
    ThreadPool pool(nth);
    for (int64_t n : {1, 2, 15, 16, 17, 100, 1000, 4099}) {
      for (int64_t grain : {1, 16}) {
        for (int64_t step : {1, 16, 64, 100000}) {
          std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
          std::atomic<int> misaligned{0}, empty{0};
          pool.parallel_for_stealing(n, step, grain, [&](int64_t b, int64_t e) {
            if (b >= e) empty.fetch_add(1);
            if (b % grain != 0 || (e != n && e % grain != 0)) misaligned.fetch_add(1);
            for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
          });
          int wrong = 0;
          for (auto& h : hits) wrong += h.load() != 1;
          EXPECT_EQ(wrong, 0) << "nth " << nth << " n " << n << " grain " << grain << " step " << step;
          EXPECT_EQ(misaligned.load(), 0) << "nth " << nth << " n " << n << " grain " << grain;
          EXPECT_EQ(empty.load(), 0) << "nth " << nth << " n " << n;
        }
      }
    }
  }
}

TEST(ThreadPoolStealing, DelayedThreadIsRelievedFromTheBack) {
  ThreadPool pool(2);
  constexpr int64_t n = 64;  // thread 0 (the caller) owns [0, 32), thread 1 [32, 64)
  std::vector<std::thread::id> who(static_cast<size_t>(n));
  std::mutex mu;
  const std::thread::id caller = std::this_thread::get_id();
  pool.parallel_for_stealing(n, /*step=*/1, /*grain=*/1, [&](int64_t b, int64_t e) {
    if (b < n / 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // the slow half
    std::lock_guard<std::mutex> lock(mu);
    for (int64_t i = b; i < e; ++i) who[static_cast<size_t>(i)] = std::this_thread::get_id();
  });
  // The caller took a prefix of its range in order, the other thread the rest of it from the back.
  int64_t prefix = 0;
  while (prefix < n / 2 && who[static_cast<size_t>(prefix)] == caller) ++prefix;
  EXPECT_GE(prefix, 1);
  EXPECT_LT(prefix, n / 2) << "nothing of the delayed thread's range was taken over";
  for (int64_t i = prefix; i < n / 2; ++i) EXPECT_NE(who[static_cast<size_t>(i)], caller) << i;
  for (int64_t i = n / 2; i < n; ++i) EXPECT_NE(who[static_cast<size_t>(i)], caller) << i;
}

// fn(begin, end, ith): the index is the calling thread's, stable over its pieces, so per-thread
// scratch (the attention's score rows) is never shared.
TEST(ThreadPoolStealing, PiecesCarryTheThreadIndex) {
  for (int nth : {1, 2, 3}) {
    ThreadPool pool(nth);
    constexpr int64_t n = 500;
    std::vector<int> owner(static_cast<size_t>(n), -1);
    std::vector<std::thread::id> tid_of(static_cast<size_t>(nth));
    std::mutex mu;
    int bad = 0;
    pool.parallel_for_stealing(n, /*step=*/1, /*grain=*/1, [&](int64_t b, int64_t e, int ith) {
      std::lock_guard<std::mutex> lock(mu);
      if (ith < 0 || ith >= nth) {
        ++bad;
        return;
      }
      auto& id = tid_of[static_cast<size_t>(ith)];
      if (id == std::thread::id()) id = std::this_thread::get_id();
      if (id != std::this_thread::get_id()) ++bad;  // two threads under one index
      for (int64_t i = b; i < e; ++i) owner[static_cast<size_t>(i)] = ith;
    });
    EXPECT_EQ(bad, 0) << "nth " << nth;
    for (int64_t i = 0; i < n; ++i) EXPECT_GE(owner[static_cast<size_t>(i)], 0) << i;
  }
}
