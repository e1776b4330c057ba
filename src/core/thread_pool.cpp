#include "core/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <system_error>

#include "core/log.h"

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

// Spinning only pays when every thread has a core of its own: an oversubscribed spinner burns
// the time slice of the thread it is waiting for.
bool each_thread_has_a_core(int n_threads, const std::vector<int>& cpus) {
  if (n_threads > ThreadPool::hardware_threads()) return false;
  if (cpus.empty()) return true;
  std::vector<int> distinct(cpus);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  return n_threads <= int(distinct.size());
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : ThreadPool(n_threads, {}) {}

ThreadPool::ThreadPool(int n_threads, std::vector<int> cpus)
    : n_threads_(n_threads < 1 ? 1 : n_threads),
      cpus_(std::move(cpus)),
      spin_limit_(each_thread_has_a_core(n_threads_, cpus_) ? kSpinIterations : 0),
      spans_(new Span[size_t(n_threads_)]) {
  workers_.reserve(size_t(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker(i); });
  // Pinned from here rather than by each worker so that warnings come from the constructing
  // thread; the caller only after its workers exist, so they do not inherit its one-CPU mask.
  if (!cpus_.empty()) pin_threads();
}

void ThreadPool::pin_threads() {
  for (int i = n_threads_ - 1; i >= 0; --i) {
    const int cpu = cpus_[size_t(i) % cpus_.size()];
    int err = EINVAL;
    if (cpu >= 0 && cpu < CPU_SETSIZE) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_t t = i == 0 ? pthread_self() : workers_[size_t(i - 1)].native_handle();
      err = pthread_setaffinity_np(t, sizeof(set), &set);
    }
    if (err != 0)
      log_warn("thread pool: cannot pin thread " + std::to_string(i) + " to cpu " +
               std::to_string(cpu) + " (" + std::system_category().message(err) +
               "); it runs unpinned");
  }
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

void ThreadPool::barrier() {
  if (n_threads_ == 1) return;
  // acq_rel: the round's last arrival acquires every earlier arrival's writes through the chain
  // of increments, then releases them all with its store of `passed`.
  const uint64_t ticket = barrier_.arrived.fetch_add(1, std::memory_order_acq_rel);
  const uint64_t n = uint64_t(n_threads_);
  const uint32_t round = uint32_t(ticket / n);
  if (ticket % n == n - 1) {
    // seq_cst store and load: either this sees the sleeper, or the sleeper's futex sees the
    // new value (the store-load order a release store would not give on x86).
    barrier_.passed.store(round + 1, std::memory_order_seq_cst);
    if (barrier_.sleepers.load(std::memory_order_seq_cst) != 0) barrier_.passed.notify_all();
    return;
  }
  int spin = 0;
  while (barrier_.passed.load(std::memory_order_acquire) == round) {
    if (spin++ < spin_limit_) {
      EG_CPU_RELAX();
      continue;
    }
    barrier_.sleepers.fetch_add(1, std::memory_order_seq_cst);
    barrier_.passed.wait(round, std::memory_order_acquire);
    barrier_.sleepers.fetch_sub(1, std::memory_order_relaxed);
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
