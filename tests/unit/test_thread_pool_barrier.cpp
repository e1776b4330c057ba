// ThreadPool::barrier (phases inside one dispatch) and pinning threads to CPUs.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/cpu_topology.h"
#include "core/thread_pool.h"

using namespace edgeglm;

namespace {

// Phase 1: thread ith writes slot ith of buffer k%2 (plain memory, no atomics: only the barrier
// orders it). Phase 2: every thread sums all slots and checks the total. Alternating buffers
// lets a thread run ahead into the next phase 1 while others still read, so a single barrier per
// step must hold: buffer k%2 is rewritten at step k+2 only after everyone passed barrier k+1,
// i.e. finished reading it at step k. A barrier that lets anyone through early shows up as a
// wrong sum.
int64_t value(int run, int step, int ith) { return int64_t(run) * 1000003 + step * 101 + ith * 7 + 1; }

void check_phases(ThreadPool& pool, int runs, int steps) {
  const int nth = pool.size();
  std::vector<int64_t> buf[2] = {std::vector<int64_t>(size_t(nth), -1),
                                 std::vector<int64_t>(size_t(nth), -1)};
  std::atomic<int64_t> wrong{0}, checked{0}, grand_total{0};
  int64_t expected_total = 0;
  for (int r = 0; r < runs; ++r) {
    for (int k = 0; k < steps; ++k)
      for (int j = 0; j < nth; ++j) expected_total += value(r, k, j) * nth;
    pool.run([&](int ith, int n) {
      EXPECT_EQ(n, nth);
      int64_t local_total = 0;
      for (int k = 0; k < steps; ++k) {
        std::vector<int64_t>& b = buf[k % 2];
        b[size_t(ith)] = value(r, k, ith);
        pool.barrier();
        int64_t sum = 0, want = 0;
        for (int j = 0; j < n; ++j) {
          sum += b[size_t(j)];
          want += value(r, k, j);
        }
        if (sum != want) wrong++;
        checked++;
        local_total += sum;
      }
      grand_total += local_total;
    });
  }
  EXPECT_EQ(wrong.load(), 0) << nth << " threads";
  EXPECT_EQ(checked.load(), int64_t(runs) * steps * nth);
  EXPECT_EQ(grand_total.load(), expected_total);
}

// Restores the calling thread's CPU mask when a test that pins it ends.
class AffinityGuard {
 public:
  AffinityGuard() { CPU_ZERO(&saved_); sched_getaffinity(0, sizeof(saved_), &saved_); }
  ~AffinityGuard() { sched_setaffinity(0, sizeof(saved_), &saved_); }

 private:
  cpu_set_t saved_;
};

}  // namespace

TEST(ThreadPoolBarrier, PhasesSeeEachOthersWrites) {
  for (int threads : {1, 2, 3, 4}) {  // 3 and 4 oversubscribe a 2-core machine: the sleeping path
    ThreadPool pool(threads);
    check_phases(pool, /*runs=*/200, /*steps=*/50);
  }
}

TEST(ThreadPoolBarrier, ManyDispatchesWithOneBarrierEach) {
  ThreadPool pool(2);
  check_phases(pool, /*runs=*/20000, /*steps=*/1);
}

TEST(ThreadPoolBarrier, MixesWithPlainDispatches) {
  // The barrier's counters live across run() calls; dispatches without barriers in between
  // must not disturb them.
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 200; ++rep) {
    check_phases(pool, 1, rep % 4);  // 0 to 3 barriers in this dispatch
    pool.parallel_for(100, [&](int64_t b, int64_t e) { total += e - b; });
    pool.run([&](int, int) { total += 1; });
  }
  EXPECT_EQ(total.load(), 200 * (100 + 3));
}

TEST(ThreadPoolBarrier, SingleThreadReturnsAtOnce) {
  ThreadPool pool(1);
  pool.barrier();  // outside run() too: nothing to wait for
  int steps = 0;
  pool.run([&](int ith, int nth) {
    for (int k = 0; k < 1000; ++k) {
      pool.barrier();
      ++steps;
    }
  });
  EXPECT_EQ(steps, 1000);
}

TEST(ThreadPoolPinning, AllThreadsOnCpu0) {
  if (!CpuSet::of_this_thread().contains(0)) GTEST_SKIP() << "cpu 0 is not in this process's mask";
  AffinityGuard guard;
  ThreadPool pool(3, {0});
  EXPECT_EQ(pool.cpus(), std::vector<int>{0});
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<int> where(3, -1);
    pool.run([&](int ith, int) { where[size_t(ith)] = sched_getcpu(); });
    EXPECT_EQ(where, (std::vector<int>{0, 0, 0}));
  }
  // Three threads on one core: the barrier must sleep rather than spin.
  check_phases(pool, 50, 20);
}

TEST(ThreadPoolPinning, ThreadIRunsOnTheIthCpu) {
  const CpuSet mine = CpuSet::of_this_thread();
  if (mine.ids.size() < 2) GTEST_SKIP() << "needs two usable CPUs";
  AffinityGuard guard;
  const int a = mine.ids[0], b = mine.ids[1];
  ThreadPool pool(4, {b, a});  // thread 0 -> b, 1 -> a, 2 -> b, 3 -> a
  for (int rep = 0; rep < 20; ++rep) {
    std::vector<int> where(4, -1);
    pool.run([&](int ith, int) { where[size_t(ith)] = sched_getcpu(); });
    EXPECT_EQ(where, (std::vector<int>{b, a, b, a}));
  }
}

TEST(ThreadPoolPinning, UnusableCpuWarnsAndStillRuns) {
  AffinityGuard guard;
  testing::internal::CaptureStderr();
  std::atomic<int> calls{0};
  {
    ThreadPool pool(2, {kMaxCpuId + 5, -1});
    pool.run([&](int, int) { calls++; });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_NE(err.find("cannot pin thread 0 to cpu 1028"), std::string::npos) << err;
  EXPECT_NE(err.find("cannot pin thread 1 to cpu -1"), std::string::npos) << err;
}

// Not part of the suite: prints what a dispatch and a barrier cost on this machine.
//   test_unit --gtest_also_run_disabled_tests --gtest_filter='*DispatchAndBarrierCost'
TEST(ThreadPoolBench, DISABLED_DispatchAndBarrierCost) {
  using Clock = std::chrono::steady_clock;
  constexpr int kBatches = 1000, kPerBatch = 100;  // 100k iterations, median of batch means
  auto median_ns = [&](auto&& body) {
    std::vector<double> ns;
    for (int b = 0; b < kBatches; ++b) {
      const auto t0 = Clock::now();
      body();
      ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kPerBatch);
    }
    std::nth_element(ns.begin(), ns.begin() + kBatches / 2, ns.end());
    return ns[kBatches / 2];
  };
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    const double run_ns = median_ns([&] {
      for (int i = 0; i < kPerBatch; ++i) pool.run([](int, int) {});
    });
    // One dispatch running kPerBatch barriers back to back.
    const double barrier_ns = median_ns([&] {
      pool.run([&](int, int) {
        for (int i = 0; i < kPerBatch; ++i) pool.barrier();
      });
    });
    std::printf("%d thread(s): empty run() %.0f ns, barrier %.0f ns (medians of %d x %d)\n", threads,
                run_ns, barrier_ns, kBatches, kPerBatch);
  }
}
