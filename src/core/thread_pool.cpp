#include "core/thread_pool.h"

#include <sched.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EG_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define EG_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define EG_CPU_RELAX() ((void)0)
#endif

namespace edgeglm {
namespace {
// ~1000 pause instructions: tens of microseconds (pause is ~40-140 cycles on recent x86),
// enough to bridge back-to-back kernels of one token without holding a core while idle.
constexpr int kSpinIterations = 1 << 10;
}

ThreadPool::ThreadPool(int n_threads)
    : n_threads_(n_threads < 1 ? 1 : n_threads),
      // Spinning only pays when every thread has a core: an oversubscribed spinner burns the
      // time slice of the thread it is waiting for.
      spin_limit_(n_threads_ <= hardware_threads() ? kSpinIterations : 0) {
  workers_.reserve(size_t(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

int ThreadPool::hardware_threads() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

void ThreadPool::dispatch(Fn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  fn(ctx, 0, n_threads_);
  int spin = 0;
  for (int p; (p = pending_.load(std::memory_order_acquire)) != 0;) {
    if (spin++ < spin_limit_) {
      EG_CPU_RELAX();
    } else {
      pending_.wait(p, std::memory_order_acquire);
    }
  }
}

void ThreadPool::worker(int ith) {
  // Generation 0 is the state at construction; starting from it (rather than loading the
  // counter here) means a dispatch that races with thread start-up is never missed.
  uint32_t seen = 0;
  for (;;) {
    uint32_t g;
    int spin = 0;
    while ((g = generation_.load(std::memory_order_acquire)) == seen) {
      if (++spin < spin_limit_) {
        EG_CPU_RELAX();
      } else {
        generation_.wait(seen, std::memory_order_acquire);
      }
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    fn_(ctx_, ith, n_threads_);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

}  // namespace edgeglm
