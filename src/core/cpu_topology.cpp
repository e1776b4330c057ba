#include "core/cpu_topology.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace edgeglm {
namespace {

std::string_view trim(std::string_view s) {
  const char* kSpace = " \t\r\n";
  const size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

// Whole-string unsigned decimal; false on anything else (sign, spaces, overflow, trailing text).
bool parse_uint(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool read_trimmed(const std::string& path, std::string& out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  out = std::string(trim(ss.str()));
  return !out.empty();
}

int64_t read_number(const std::string& path) {  // 0 when absent or not a number
  std::string text;
  int64_t v = 0;
  return read_trimmed(path, text) && parse_uint(text, v) ? v : 0;
}

std::vector<int> cpu_dirs(const std::string& root) {
  std::vector<int> ids;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    int64_t id = 0;
    if (name.rfind("cpu", 0) == 0 && parse_uint(std::string_view(name).substr(3), id) &&
        id <= kMaxCpuId)
      ids.push_back(int(id));
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// "cpu4-7, capacity 1024" / "cpu0-3, max 1800 MHz" / "cpu0-1": the ids of a group and the
// range of the value that ranked it.
std::string describe_group(const std::vector<const CpuInfo*>& group, CpuRanking ranking) {
  std::vector<int> ids;
  int64_t lo = INT64_MAX, hi = 0;
  for (const CpuInfo* c : group) {
    ids.push_back(c->id);
    const int64_t v = ranking == CpuRanking::kCapacity ? c->capacity : c->max_freq_khz / 1000;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  std::string s = "cpu" + format_cpu_list(ids);
  if (group.empty() || lo == 0) return s;  // not known for every CPU of the group
  std::string range = std::to_string(lo);
  if (hi != lo) {
    range += '-';
    range += std::to_string(hi);
  }
  return s + (ranking == CpuRanking::kCapacity ? ", capacity " + range : ", max " + range + " MHz");
}

std::string count_cores(size_t n, const char* kind) {
  return std::to_string(n) + " " + kind + (n == 1 ? "core" : "cores");
}

}  // namespace

bool CpuSet::contains(int cpu) const { return std::binary_search(ids.begin(), ids.end(), cpu); }

CpuSet CpuSet::of_this_thread() {
  CpuSet s;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return s;
  for (int i = 0; i <= kMaxCpuId; ++i)
    if (CPU_ISSET(i, &set)) s.ids.push_back(i);
  return s;
}

std::vector<int> CpuTopology::performance_cpus() const {
  std::vector<int> ids;
  for (const CpuInfo& c : cpus)
    if (c.performance) ids.push_back(c.id);
  return ids;
}

bool CpuTopology::usable(int cpu) const {
  return std::any_of(cpus.begin(), cpus.end(), [cpu](const CpuInfo& c) { return c.id == cpu; });
}

std::string CpuTopology::describe() const {
  std::vector<const CpuInfo*> perf, eff;
  for (const CpuInfo& c : cpus) (c.performance ? perf : eff).push_back(&c);
  std::string s;
  if (eff.empty()) {
    // Alike cores: their frequency says more than a capacity that is 1024 everywhere.
    const CpuRanking r = ranking == CpuRanking::kCapacity ? ranking : CpuRanking::kMaxFreq;
    s = count_cores(perf.size(), "") + " (" + describe_group(perf, r) + ")";
  } else {
    s = count_cores(perf.size(), "performance ") + " (" + describe_group(perf, ranking) + ") + " +
        count_cores(eff.size(), "efficiency ") + " (" + describe_group(eff, ranking) + ")";
  }
  std::vector<int> excluded;
  for (int id : online)
    if (!usable(id)) excluded.push_back(id);
  if (!excluded.empty()) s += "; outside the affinity mask: cpu" + format_cpu_list(excluded);
  return s;
}

CpuTopology read_cpu_topology(const std::string& sysfs_root, const CpuSet* affinity) {
  CpuTopology t;
  std::string text;
  if (read_trimmed(sysfs_root + "/online", text)) {
    auto ids = parse_cpu_list(text);
    if (ids.ok()) t.online = std::move(ids).value();
  }
  if (t.online.empty()) t.online = cpu_dirs(sysfs_root);
  const CpuSet mask = affinity ? *affinity : CpuSet::of_this_thread();
  if (t.online.empty()) t.online = mask.ids;
  if (t.online.empty()) {
    const int n = std::max(1u, std::thread::hardware_concurrency());
    for (int i = 0; i < n; ++i) t.online.push_back(i);
  }
  std::sort(t.online.begin(), t.online.end());

  for (int id : t.online)
    if (mask.ids.empty() || mask.contains(id)) t.cpus.push_back(CpuInfo{id});
  // A mask that shares nothing with the tree describes another machine (or the call failed):
  // every online CPU is then the best guess.
  if (t.cpus.empty())
    for (int id : t.online) t.cpus.push_back(CpuInfo{id});

  for (CpuInfo& c : t.cpus) {
    const std::string dir = sysfs_root + "/cpu" + std::to_string(c.id);
    c.capacity = int(std::min<int64_t>(read_number(dir + "/cpu_capacity"), INT32_MAX));
    c.max_freq_khz = read_number(dir + "/cpufreq/cpuinfo_max_freq");
  }

  // Rank by the first measure that every usable CPU reports and that is not the same on all.
  auto differs = [&](auto value) {
    int64_t lo = INT64_MAX, hi = 0;
    for (const CpuInfo& c : t.cpus) {
      lo = std::min<int64_t>(lo, value(c));
      hi = std::max<int64_t>(hi, value(c));
    }
    return lo > 0 && lo != hi ? hi : int64_t(0);  // the maximum, or 0 when not usable for ranking
  };
  auto capacity = [](const CpuInfo& c) { return int64_t(c.capacity); };
  auto freq = [](const CpuInfo& c) { return c.max_freq_khz; };
  auto rank_by = [&](CpuRanking r, auto value, int64_t best) {
    t.ranking = r;
    for (CpuInfo& c : t.cpus) c.performance = double(value(c)) >= kPerformanceFraction * double(best);
  };
  if (const int64_t best = differs(capacity)) {
    rank_by(CpuRanking::kCapacity, capacity, best);
  } else if (const int64_t best_freq = differs(freq)) {
    rank_by(CpuRanking::kMaxFreq, freq, best_freq);
  } else {
    t.ranking = CpuRanking::kUniform;
    for (CpuInfo& c : t.cpus) c.performance = true;
  }
  return t;
}

int auto_thread_count(const CpuTopology& topo) {
  const int n = int(topo.performance_cpus().size());
  return n > 0 ? n : std::max(1, int(topo.cpus.size()));
}

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  const std::string_view all = trim(text);
  const std::string quoted = "CPU list \"" + std::string(all) + "\"";
  if (all.empty()) return Status::error("empty CPU list (expected e.g. \"0-3,6\")");
  std::vector<int> ids;
  std::vector<bool> seen(kMaxCpuId + 1, false);
  std::string_view rest = all;
  for (;;) {
    const size_t comma = rest.find(',');
    const std::string_view item = trim(rest.substr(0, comma));
    const size_t dash = item.find('-');
    const std::string_view first = dash == std::string_view::npos ? item : item.substr(0, dash);
    const std::string_view last = dash == std::string_view::npos ? item : item.substr(dash + 1);
    int64_t a = 0, b = 0;
    if (item.empty())
      return Status::error(quoted + ": empty item (expected ids or ranges like \"0-3,6\")");
    if (!parse_uint(first, a) || !parse_uint(last, b))
      return Status::error(quoted + ": \"" + std::string(item) +
                           "\" is not a CPU id or a range like \"0-3\"");
    if (b < a)
      return Status::error(quoted + ": reversed range \"" + std::string(item) + "\"");
    if (b > kMaxCpuId)
      return Status::error(quoted + ": cpu " + std::to_string(b) + " is out of range (0-" +
                           std::to_string(kMaxCpuId) + ")");
    for (int64_t id = a; id <= b; ++id) {
      if (seen[size_t(id)])
        return Status::error(quoted + ": cpu " + std::to_string(id) + " is listed twice");
      seen[size_t(id)] = true;
      ids.push_back(int(id));
    }
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return ids;
}

std::string format_cpu_list(const std::vector<int>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!s.empty()) s += ',';
    s += std::to_string(ids[i]);
    if (j > i) {
      s += '-';
      s += std::to_string(ids[j]);
    }
    i = j + 1;
  }
  return s;
}

Result<int> parse_thread_count(std::string_view text) {
  const std::string_view t = trim(text);
  if (t.empty() || t == "auto") return 0;
  int64_t n = 0;
  if (!parse_uint(t, n) || n < 1 || n > 1024)
    return Status::error("thread count \"" + std::string(t) +
                         "\": expected \"auto\" or a whole number from 1 to 1024");
  return int(n);
}

Result<std::vector<int>> parse_usable_cpus(std::string_view text, const CpuTopology& topo) {
  EG_ASSIGN_OR_RETURN(std::vector<int> ids, parse_cpu_list(text));
  const std::string quoted = "CPU list \"" + std::string(trim(text)) + "\"";
  for (int id : ids) {
    if (!std::binary_search(topo.online.begin(), topo.online.end(), id))
      return Status::error(quoted + ": cpu " + std::to_string(id) + " is not online (online: " +
                           format_cpu_list(topo.online) + ")");
    if (!topo.usable(id)) {
      std::vector<int> usable;
      for (const CpuInfo& c : topo.cpus) usable.push_back(c.id);
      return Status::error(quoted + ": cpu " + std::to_string(id) +
                           " is outside this process's affinity mask (usable: " +
                           format_cpu_list(usable) + ")");
    }
  }
  return ids;
}

std::vector<int> auto_pin_cpus(const CpuTopology& topo) {
  std::vector<int> perf = topo.performance_cpus();
  if (perf.empty() || perf.size() >= topo.cpus.size()) return {};
  return perf;
}

int resolve_thread_count(int threads, const std::vector<int>& cpus, const CpuTopology& topo) {
  if (threads > 0) return threads;
  if (!cpus.empty()) return int(cpus.size());
  return auto_thread_count(topo);
}

}  // namespace edgeglm
