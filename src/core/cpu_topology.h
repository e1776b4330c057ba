// Which CPUs this process may use and which of them are the fast ones. On big.LITTLE boards
// (RK3588: 4 x A76 + 4 x A55) a matmul split evenly over all cores runs at the pace of the slowest,
// so the default thread count is the number of performance cores. Read from Linux sysfs; every
// file is optional (x86 has no cpu_capacity, containers often hide cpufreq), and what is missing
// only makes the classification coarser.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgeglm {

constexpr int kMaxCpuId = 1023;  // CPU_SETSIZE - 1: the largest id sched_setaffinity can take here

// A set of CPU ids, ascending, without duplicates.
struct CpuSet {
  std::vector<int> ids;
  bool contains(int cpu) const;
  static CpuSet of_this_thread();  // sched_getaffinity; empty if the call fails
};

struct CpuInfo {
  int id = 0;
  int capacity = 0;          // cpu_capacity, 1024 = the fastest core of the system; 0 = unknown
  int64_t max_freq_khz = 0;  // cpufreq/cpuinfo_max_freq; 0 = unknown
  bool performance = false;
};

// What ranked the cores: cpu_capacity when the usable cores differ in it, else the maximum
// frequency when that differs, else nothing (all cores count as performance cores).
enum class CpuRanking { kCapacity, kMaxFreq, kUniform };

struct CpuTopology {
  std::vector<CpuInfo> cpus;  // usable CPUs (online and in the affinity mask), ascending id
  std::vector<int> online;    // every online CPU, ascending, including ones outside the mask
  CpuRanking ranking = CpuRanking::kUniform;

  std::vector<int> performance_cpus() const;
  bool usable(int cpu) const;
  // One line for `edgeglm info --cpu`, e.g.
  // "4 performance cores (cpu4-7, capacity 1024) + 4 efficiency cores (cpu0-3, capacity 414)".
  std::string describe() const;
};

// A core counts as a performance core when its capacity (or max frequency) is within this
// fraction of the best usable core. Not exact equality: the kernel scales cpu_capacity by each
// cluster's max frequency, and RK3588 bins its two A76 clusters to different top frequencies
// (e.g. 2352 vs 2256 MHz), which must not halve the thread count. A55 vs A76 (0.4) and Intel
// E vs P cores by frequency (~0.8) stay apart.
constexpr double kPerformanceFraction = 0.9;

// Reads <sysfs_root>/online, cpuN/cpu_capacity and cpuN/cpufreq/cpuinfo_max_freq. `affinity`
// replaces the process's own mask (for tests). Never fails: without `online` it falls back to
// the cpuN directories, then to the affinity mask.
CpuTopology read_cpu_topology(const std::string& sysfs_root = "/sys/devices/system/cpu",
                              const CpuSet* affinity = nullptr);

// Number of usable performance cores (>= 1): the default thread count.
int auto_thread_count(const CpuTopology& topo);
// CPUs `--threads auto` pins to: the performance cores when they are a strict subset of the usable
// CPUs (big.LITTLE: otherwise the scheduler may move a thread to a slow core, and every step then
// waits for it), else none (no pinning).
std::vector<int> auto_pin_cpus(const CpuTopology& topo);

// Parses the kernel's list syntax ("0-3,6"): ids in the order written, ranges expanded.
// Rejects empty input, garbage, reversed ranges, duplicates and ids above kMaxCpuId.
Result<std::vector<int>> parse_cpu_list(std::string_view text);
// The inverse, compressing runs: {0,1,2,3,6} -> "0-3,6".
std::string format_cpu_list(const std::vector<int>& ids);

// Thread count flag: "auto" (or empty) gives 0, meaning auto_thread_count; otherwise a whole
// number from 1 to 1024.
Result<int> parse_thread_count(std::string_view text);
// parse_cpu_list, then every id must be online and in the affinity mask of `topo`: pinning to
// any other CPU fails.
Result<std::vector<int>> parse_usable_cpus(std::string_view text, const CpuTopology& topo);
// The thread count a command runs with: `threads` if positive, else one thread per pinned CPU,
// else auto_thread_count.
int resolve_thread_count(int threads, const std::vector<int>& cpus, const CpuTopology& topo);

}  // namespace edgeglm
