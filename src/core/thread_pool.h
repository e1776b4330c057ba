// Persistent thread pool for the forward pass. A small model runs hundreds of matmuls per token,
// so dispatch must be cheap: workers spin briefly on a generation counter before sleeping on it
// (C++20 atomic wait = futex), and the caller takes part as thread 0.
#pragma once
#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace edgeglm {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // total threads, including the calling one (>= 1)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, nth) once on each of the nth threads; returns when all have finished.
  template <class F>
  void run(F&& fn) {
    using Fn = std::remove_reference_t<F>;
    auto tramp = [](void* ctx, int ith, int nth) { (*static_cast<Fn*>(ctx))(ith, nth); };
    dispatch(tramp, const_cast<void*>(static_cast<const void*>(&fn)));
  }

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

  // Number of hardware threads usable by this process (affinity mask aware).
  static int hardware_threads();

 private:
  using Fn = void (*)(void*, int, int);
  void dispatch(Fn fn, void* ctx);
  void worker(int ith);

  int n_threads_;
  int spin_limit_;  // busy-wait iterations before sleeping; 0 when threads outnumber cores
  std::vector<std::thread> workers_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  Fn fn_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace edgeglm
