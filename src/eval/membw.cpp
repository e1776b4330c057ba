#include "eval/membw.h"

#include "core/mapped_file.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace edgeglm::eval {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

// "48K", "2048K", "32M", "1G" or plain bytes; 0 when unparsable.
size_t parse_cache_size(const std::string& text) {
  size_t i = 0, v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') v = v * 10 + size_t(text[i++] - '0');
  if (i == 0) return 0;
  switch (i < text.size() ? text[i] : ' ') {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
  }
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

// Sum of a range of words with eight independent lanes (vectorisable, no single dependency chain).
uint64_t sum_words(const uint64_t* p, size_t n) {
  uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += p[i + size_t(j)];
  for (; i < n; ++i) acc[0] += p[i];
  return acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7];
}

}  // namespace

size_t last_level_cache_bytes(const char* sysfs_cpu0) {
  size_t best = 0;
  for (int idx = 0; idx < 16; ++idx) {
    const std::string dir = std::string(sysfs_cpu0) + "/cache/index" + std::to_string(idx);
    const std::string size = read_line(dir + "/size");
    if (size.empty()) continue;
    if (read_line(dir + "/type") == "Instruction") continue;
    best = std::max(best, parse_cache_size(size));
  }
  return best;
}

size_t mem_available_bytes(const char* meminfo) {
  std::ifstream f(meminfo);
  std::string key;
  size_t value = 0;
  std::string unit;
  while (f >> key >> value) {
    std::getline(f, unit);
    if (key == "MemAvailable:") return value * 1024;  // the unit is always kB
  }
  return 0;
}

size_t default_bandwidth_buffer_bytes() {
  size_t bytes = std::max(4 * last_level_cache_bytes(), 512 * kMiB);
  if (const size_t avail = mem_available_bytes(); avail > 0) bytes = std::min(bytes, avail / 4);
  return std::max(bytes, 16 * kMiB);
}

namespace {
void set_rates(MemBandwidth& r, std::vector<double> rates) {
  std::sort(rates.begin(), rates.end());
  const size_t n = rates.size();
  r.best_bytes_per_s = n ? rates.back() : 0.0;
  r.median_bytes_per_s = n == 0 ? 0.0 : n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
  r.passes = int(n);
  r.rates = std::move(rates);
}
}  // namespace

Result<MemBandwidth> measure_read_bandwidth(ThreadPool& pool, const MemBandwidthOptions& opts) {
  const size_t bytes_req = opts.buffer_bytes > 0 ? opts.buffer_bytes : default_bandwidth_buffer_bytes();
  const int nth = pool.size();
  // Whole cache lines per thread, so no two threads share a line.
  const size_t words_per_thread = std::max<size_t>(bytes_req / sizeof(uint64_t) / size_t(nth) / 8 * 8, 8);
  const size_t words = words_per_thread * size_t(nth);
  const size_t bytes = words * sizeof(uint64_t);
  // The same kind of memory as the weights in a run-time layout (huge pages where the kernel
  // gives them), so the roofline is what the machine reads at best, not a 4 KiB-page figure.
  auto buf = allocate_large(bytes);
  if (!buf.ok())
    return Status::error("memory bandwidth: cannot allocate a " + std::to_string(bytes / kMiB) +
                         " MiB buffer (use a smaller --bw-mib)");
  uint64_t* data = reinterpret_cast<uint64_t*>(buf->get());

  // First touch by the thread that reads the share later (its pages land on its NUMA node).
  pool.run([&](int ith, int) {
    uint64_t* p = data + size_t(ith) * words_per_thread;
    for (size_t i = 0; i < words_per_thread; ++i) p[i] = i * 0x9E3779B97F4A7C15ull + uint64_t(ith);
  });

  std::atomic<uint64_t> sink{0};  // the sums go somewhere observable, so the reads stay
  auto pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int ith, int) {
      sink.fetch_add(sum_words(data + size_t(ith) * words_per_thread, words_per_thread),
                     std::memory_order_relaxed);
    });
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  pass();  // warm-up: wakes the workers, settles the clocks
  const int passes = std::max(1, opts.passes);
  std::vector<double> rates;
  for (int i = 0; i < passes; ++i) {
    const double s = pass();
    rates.push_back(s > 0 ? double(bytes) / s : 0.0);
  }
  MemBandwidth r;
  r.buffer_bytes = bytes;
  r.threads = nth;
  set_rates(r, std::move(rates));
  return r;
}

MemBandwidth combine(const MemBandwidth& a, const MemBandwidth& b) {
  MemBandwidth r = a;
  std::vector<double> rates = a.rates;
  rates.insert(rates.end(), b.rates.begin(), b.rates.end());
  r.buffer_bytes = std::max(a.buffer_bytes, b.buffer_bytes);
  r.threads = std::max(a.threads, b.threads);
  set_rates(r, std::move(rates));
  return r;
}

}  // namespace edgeglm::eval
