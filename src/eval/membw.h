// Memory read bandwidth of this machine, the ceiling of decode speed: a model bigger than the
// caches reads every weight once per token, so tokens/s <= bandwidth / bytes read per token.
//
// Method: a buffer much larger than the last-level cache is first written (so every page is
// resident, by the thread that later reads it), then read in full by every thread of the pool,
// each streaming its own contiguous share; several passes, the best and the median reported. The
// reading loop keeps eight independent accumulators so the compiler vectorises it and no
// loop-carried dependency on one register limits the load rate.
#pragma once
#include <cstddef>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"

namespace edgeglm::eval {

// Largest data/unified cache of cpu0 from /sys/devices/system/cpu/cpu0/cache/index*/size; 0 if
// unknown. `sysfs_cpu0` is for tests.
size_t last_level_cache_bytes(const char* sysfs_cpu0 = "/sys/devices/system/cpu/cpu0");
// MemAvailable from /proc/meminfo; 0 if unknown.
size_t mem_available_bytes(const char* meminfo = "/proc/meminfo");
// max(4 x LLC, 512 MiB), capped to a quarter of MemAvailable (when known), at least 16 MiB.
size_t default_bandwidth_buffer_bytes();

struct MemBandwidthOptions {
  size_t buffer_bytes = 0;  // 0: default_bandwidth_buffer_bytes()
  int passes = 5;           // timed passes, after one untimed pass
};

struct MemBandwidth {
  double best_bytes_per_s = 0;    // fastest pass: the roofline uses this
  double median_bytes_per_s = 0;
  size_t buffer_bytes = 0;
  int threads = 0;
  int passes = 0;
  std::vector<double> rates;  // bytes/s of every timed pass, ascending
};

// Two measurements as one (e.g. before and after a benchmark, so a neighbour that was busy during
// one of them does not set the roofline): best of both, median of all their passes.
MemBandwidth combine(const MemBandwidth& a, const MemBandwidth& b);

// Errors when the buffer cannot be allocated.
Result<MemBandwidth> measure_read_bandwidth(ThreadPool& pool, const MemBandwidthOptions& opts = {});

}  // namespace edgeglm::eval
