// Persistent thread pool for the forward pass. A small model runs hundreds of matmuls per token,
// so dispatch must be cheap: workers spin briefly on a generation counter before sleeping on it
// (C++20 atomic wait = futex), and the caller takes part as thread 0. Threads can be pinned to
// CPUs (big.LITTLE boards: keep the pool on the performance cores), and a callback can split its
// work into phases with barrier() instead of paying one dispatch per phase.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace edgeglm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads, including the calling one (>= 1)
  // Thread i runs on cpus[i % cpus.size()]; empty `cpus` = not pinned. The calling thread is
  // thread 0 and stays pinned after the pool is gone (threads it creates later inherit its mask).
  // A CPU that cannot be pinned (offline, outside the affinity mask) costs a warning, not an error.
  ThreadPool(int n_threads, std::vector<int> cpus);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  const std::vector<int>& cpus() const { return cpus_; }

  // Calls fn(ith, nth) once on each of the nth threads; returns when all have finished.
  template <class F>
  void run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int ith, int nth) { (*static_cast<Fn*>(ctx))(ith, nth); };
    dispatch(tramp, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Waits until all nth threads of the current run() callback have reached it; everything a
  // thread wrote before its barrier() is visible to every thread after it. For kernels with
  // phases in one dispatch:
  //   pool.run([&](int ith, int nth) {
  //     quantize_rows(x, my_share(ith, nth), xq);  // phase 1: each thread its part of xq
  //     pool.barrier();
  //     matmul_rows(w, xq, my_rows(ith, nth), y);  // phase 2: reads all of xq
  //   });
  // Rules: call it only from a run() callback (not parallel_for: that may run on the caller
  // alone), and on every thread the same number of times, or the pool deadlocks. Returns at once
  // when size() == 1. Cost: one atomic increment per thread, the waiters spin on one cache line
  // (with a pause instruction), and no system call unless a thread waited long enough to sleep.
  void barrier();

  // Splits [0, n) into contiguous ranges, one per thread: fn(begin, end), or
  // fn(begin, end, ith) for callers that keep per-thread scratch. `grain` is the least number of
  // items worth a thread: work smaller than two grains runs on the caller alone, since waking a
  // thread costs more than it saves.
  template <class F>
  void parallel_for(int64_t n, F&& fn, int64_t grain = 1) {
    auto call = [&](int64_t b, int64_t e, int ith) {
      if constexpr (std::is_invocable_v<F&, int64_t, int64_t, int>) {
        fn(b, e, ith);
      } else {
        fn(b, e);
      }
    };
    if (n <= 0) return;
    if (n_threads_ == 1 || n < 2 * grain) {
      call(int64_t(0), n, 0);
      return;
    }
    run([&](int ith, int nth) {
      const int64_t per = (n + nth - 1) / nth;
      const int64_t b = per * ith;
      const int64_t e = b + per < n ? b + per : n;
      if (b < e) call(b, e, ith);
    });
  }

  // Splits [0, n) into one contiguous range per thread, in pieces aligned to `grain` items. A
  // thread takes its own range from the front, `step` items at a time (rounded up to grains), and
  // when it is done takes pieces of one grain from the back of the others' ranges: fn(begin, end)
  // once per piece, every index in exactly one piece. So each thread reads one sequential stream
  // for most of the work (a decode matmul streams its weights from DRAM, and a new stream starts
  // the prefetchers over), and a thread the OS delays is relieved at the end. Measured against
  // pieces handed out from one counter (decode of tinyllama Q4_0, 2 threads): docs/BENCHMARKS.md.
  // As with parallel_for, fn may take the thread's index: fn(begin, end, ith). Items of unequal
  // cost (causal attention: later tokens see more keys) balance too, as a thread done with its own
  // range relieves the others from their ends.
  template <class F>
  void parallel_for_stealing(int64_t n, int64_t step, int64_t grain, F&& fn) {
    auto call = [&](int64_t b, int64_t e, int ith) {
      if constexpr (std::is_invocable_v<F&, int64_t, int64_t, int>) {
        fn(b, e, ith);
      } else {
        fn(b, e);
      }
    };
    if (n <= 0) return;
    grain = grain < 1 ? 1 : grain;
    const int64_t grains = (n + grain - 1) / grain;
    if (n_threads_ == 1 || grains < 2 || grains >= (int64_t(1) << 32)) {
      call(int64_t(0), n, 0);
      return;
    }
    const uint64_t own_step = uint64_t(step < grain ? 1 : (step + grain - 1) / grain);
    const int nth = n_threads_;
    for (int i = 0; i < nth; ++i)  // before run(): its dispatch publishes them to the workers
      spans_[size_t(i)].v.store(pack_span(uint64_t(grains * i / nth), uint64_t(grains * (i + 1) / nth)),
                                std::memory_order_relaxed);
    auto piece = [&](uint64_t lo, uint64_t hi, int ith) {
      const int64_t e = int64_t(hi) * grain;
      call(int64_t(lo) * grain, e < n ? e : n, ith);
    };
    run([&](int ith, int) {
      uint64_t lo, hi;
      while (claim_span(spans_[size_t(ith)].v, own_step, /*front=*/true, lo, hi)) piece(lo, hi, ith);
      for (int j = 1; j < nth; ++j)
        while (claim_span(spans_[size_t((ith + j) % nth)].v, 1, /*front=*/false, lo, hi)) piece(lo, hi, ith);
    });
  }
  // Number of hardware threads usable by this process (affinity mask aware).
  static int hardware_threads();

 private:
  using Fn = void (*)(void*, int, int);
  void dispatch(Fn fn, void* ctx);
  // parallel_for_stealing's ranges, in grains: front in the low 32 bits, back in the high ones.
  struct alignas(64) Span {
    std::atomic<uint64_t> v{0};
  };
  static uint64_t pack_span(uint64_t front, uint64_t back) { return front | (back << 32); }
  // Takes up to `count` grains from the front or the back of *s: [lo, hi), false when it is empty.
  static bool claim_span(std::atomic<uint64_t>& s, uint64_t count, bool front, uint64_t& lo, uint64_t& hi) {
    uint64_t v = s.load(std::memory_order_relaxed);
    for (;;) {
      const uint64_t f = v & 0xFFFFFFFFu, b = v >> 32;
      if (f >= b) return false;
      const uint64_t take = b - f < count ? b - f : count;
      lo = front ? f : b - take;
      hi = lo + take;
      if (s.compare_exchange_weak(v, front ? pack_span(hi, b) : pack_span(f, lo), std::memory_order_relaxed))
        return true;
    }
  }
  void worker(int ith);
  void pin_threads();

  int n_threads_;
  std::vector<int> cpus_;
  int spin_limit_;  // busy-wait iterations before sleeping; 0 when threads outnumber cores
  std::vector<std::thread> workers_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;

  // Barrier state, on its own cache line so that arrivals do not disturb the dispatch counters.
  // Arrival number k (counted over the pool's life) belongs to round k / n_threads_; the last
  // arrival of a round sets `passed` to round + 1. Nothing is reset between rounds, so a thread
  // that leaves one barrier and arrives at the next while others still wake up cannot mix them.
  struct alignas(64) BarrierState {
    std::atomic<uint64_t> arrived{0};  // 64 bits: never wraps, so k / n_threads_ stays exact
    std::atomic<uint32_t> passed{0};   // rounds completed (mod 2^32); 32 bits for the futex
    std::atomic<int> sleepers{0};      // threads in passed.wait(); notify only when > 0
  };
  BarrierState barrier_;
  std::unique_ptr<Span[]> spans_;
};

}  // namespace edgeglm
