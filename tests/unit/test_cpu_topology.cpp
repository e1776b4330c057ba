// CPU topology from fake sysfs trees: the boards edgeglm targets, and the files they lack.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/cpu_topology.h"
#include "core/thread_pool.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

// A throwaway /sys/devices/system/cpu. ctest runs test cases as parallel processes: the
// directory name carries the test name and the pid.
class FakeSysfs {
 public:
  FakeSysfs() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = test::temp_path(std::string("sysfs_") + info->test_suite_name() + "_" + info->name() +
                            "_" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FakeSysfs() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  void write(const std::string& rel, const std::string& text) const {
    const std::filesystem::path p = std::filesystem::path(root_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  // One cpuN directory; a 0 leaves that file out.
  void cpu(int id, int capacity, int64_t max_freq_khz) const {
    const std::string dir = "cpu" + std::to_string(id);
    std::filesystem::create_directories(std::filesystem::path(root_) / dir);
    if (capacity > 0) write(dir + "/cpu_capacity", std::to_string(capacity) + "\n");
    if (max_freq_khz > 0) write(dir + "/cpufreq/cpuinfo_max_freq", std::to_string(max_freq_khz) + "\n");
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

CpuSet mask(std::vector<int> ids) { return CpuSet{std::move(ids)}; }

std::vector<int> ids_of(const CpuTopology& t) {
  std::vector<int> ids;
  for (const CpuInfo& c : t.cpus) ids.push_back(c.id);
  return ids;
}

// RK3588: cpu0-3 Cortex-A55 (capacity 414, 1.8 GHz), cpu4-7 Cortex-A76 (1024, 2.4 GHz).
void make_rk3588(const FakeSysfs& fs) {
  fs.write("online", "0-7\n");
  for (int i = 0; i < 4; ++i) fs.cpu(i, 414, 1800000);
  for (int i = 4; i < 8; ++i) fs.cpu(i, 1024, 2400000);
}

const CpuSet kAll8 = mask({0, 1, 2, 3, 4, 5, 6, 7});

}  // namespace

TEST(CpuTopology, Rk3588PicksTheBigCores) {
  FakeSysfs fs;
  make_rk3588(fs);
  const CpuTopology t = read_cpu_topology(fs.root(), &kAll8);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(t.ranking, CpuRanking::kCapacity);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(auto_thread_count(t), 4);
  EXPECT_EQ(t.cpus[0].capacity, 414);
  EXPECT_EQ(t.cpus[7].max_freq_khz, 2400000);
  EXPECT_EQ(t.describe(),
            "4 performance cores (cpu4-7, capacity 1024) + 4 efficiency cores (cpu0-3, capacity 414)");
  // --threads auto pins to the big cores, so the scheduler cannot move a thread to an A55.
  EXPECT_EQ(auto_pin_cpus(t), (std::vector<int>{4, 5, 6, 7}));
}

TEST(CpuTopology, BinnedBigClustersStayTogether) {
  // The kernel scales cpu_capacity by each cluster's max frequency; RK3588 bins its two A76
  // clusters separately, so one may read 1024 and the other a little less.
  FakeSysfs fs;
  fs.write("online", "0-7");
  for (int i = 0; i < 4; ++i) fs.cpu(i, 414, 1800000);
  for (int i = 4; i < 6; ++i) fs.cpu(i, 1024, 2352000);
  for (int i = 6; i < 8; ++i) fs.cpu(i, 982, 2256000);
  const CpuTopology t = read_cpu_topology(fs.root(), &kAll8);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(auto_thread_count(t), 4);
  EXPECT_EQ(t.describe(),
            "4 performance cores (cpu4-7, capacity 982-1024) + 4 efficiency cores (cpu0-3, capacity 414)");
}

TEST(CpuTopology, RaspberryPi4UsesAllFourCores) {
  for (bool with_capacity : {false, true}) {
    FakeSysfs fs;
    fs.write("online", "0-3\n");
    for (int i = 0; i < 4; ++i) fs.cpu(i, with_capacity ? 1024 : 0, 1800000);
    const CpuSet m = mask({0, 1, 2, 3});
    const CpuTopology t = read_cpu_topology(fs.root(), &m);
    EXPECT_EQ(t.ranking, CpuRanking::kUniform) << with_capacity;
    EXPECT_EQ(t.performance_cpus(), (std::vector<int>{0, 1, 2, 3})) << with_capacity;
    EXPECT_EQ(auto_thread_count(t), 4);
    EXPECT_EQ(t.cpus[2].capacity, with_capacity ? 1024 : 0);
    EXPECT_EQ(t.describe(), "4 cores (cpu0-3, max 1800 MHz)");
    EXPECT_TRUE(auto_pin_cpus(t).empty()) << "uniform cores are not pinned";
  }
}

TEST(CpuTopology, X86WithoutCapacityAndEqualFrequencyUsesEveryCore) {
  FakeSysfs fs;
  fs.write("online", "0-7\n");
  for (int i = 0; i < 8; ++i) fs.cpu(i, 0, 3500000);
  const CpuTopology t = read_cpu_topology(fs.root(), &kAll8);
  EXPECT_EQ(t.ranking, CpuRanking::kUniform);
  EXPECT_EQ(auto_thread_count(t), 8);
  EXPECT_EQ(t.describe(), "8 cores (cpu0-7, max 3500 MHz)");
}

TEST(CpuTopology, DifferentMaxFrequenciesRankWithoutCapacity) {
  // An Intel hybrid part: P cores cpu0-3 at 4.7 GHz, E cores cpu4-11 at 3.6 GHz.
  FakeSysfs fs;
  fs.write("online", "0-11\n");
  for (int i = 0; i < 4; ++i) fs.cpu(i, 0, 4700000);
  for (int i = 4; i < 12; ++i) fs.cpu(i, 0, 3600000);
  const CpuSet m = mask({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(t.ranking, CpuRanking::kMaxFreq);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(auto_thread_count(t), 4);
  EXPECT_EQ(t.describe(),
            "4 performance cores (cpu0-3, max 4700 MHz) + 8 efficiency cores (cpu4-11, max 3600 MHz)");
}

TEST(CpuTopology, CapacityEqualButFrequencyDiffersFallsBackToFrequency) {
  FakeSysfs fs;
  fs.write("online", "0-3");
  fs.cpu(0, 1024, 2000000);
  fs.cpu(1, 1024, 2000000);
  fs.cpu(2, 1024, 3000000);
  fs.cpu(3, 1024, 3000000);
  const CpuSet m = mask({0, 1, 2, 3});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(t.ranking, CpuRanking::kMaxFreq);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{2, 3}));
}

TEST(CpuTopology, PartialCapacityIsIgnored) {
  // cpu_capacity on some CPUs only says nothing about the others: rank by frequency instead.
  FakeSysfs fs;
  fs.write("online", "0-3");
  fs.cpu(0, 300, 1000000);
  fs.cpu(1, 0, 1000000);
  fs.cpu(2, 0, 2000000);
  fs.cpu(3, 1024, 2000000);
  const CpuSet m = mask({0, 1, 2, 3});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(t.ranking, CpuRanking::kMaxFreq);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{2, 3}));
}

TEST(CpuTopology, OnlyTheOnlineFile) {
  FakeSysfs fs;
  fs.write("online", "0-5\n");
  const CpuSet m = mask({0, 1, 2, 3, 4, 5});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(t.ranking, CpuRanking::kUniform);
  EXPECT_EQ(auto_thread_count(t), 6);
  EXPECT_EQ(t.cpus[3].capacity, 0);
  EXPECT_EQ(t.cpus[3].max_freq_khz, 0);
  EXPECT_EQ(t.describe(), "6 cores (cpu0-5)");
}

TEST(CpuTopology, WithoutOnlineFileFallsBackToDirectoriesThenMask) {
  FakeSysfs fs;
  fs.cpu(0, 0, 0);
  fs.cpu(1, 0, 0);
  fs.cpu(2, 0, 0);
  fs.write("cpufreq/policy0/scaling_governor", "schedutil");  // not a cpuN directory
  fs.write("cpuidle/current_driver", "none");
  const CpuSet m = mask({0, 1, 2, 3});
  EXPECT_EQ(ids_of(read_cpu_topology(fs.root(), &m)), (std::vector<int>{0, 1, 2}));

  const CpuSet two = mask({0, 1});
  const CpuTopology t = read_cpu_topology(fs.root() + "/does_not_exist", &two);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1}));
  EXPECT_EQ(auto_thread_count(t), 2);
}

TEST(CpuTopology, GarbageFilesAreIgnored) {
  FakeSysfs fs;
  fs.write("online", "what\n");
  fs.cpu(0, 0, 0);
  fs.cpu(1, 0, 0);
  fs.write("cpu0/cpu_capacity", "big");
  fs.write("cpu1/cpu_capacity", "-5");
  const CpuSet m = mask({0, 1});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1}));
  EXPECT_EQ(t.cpus[0].capacity, 0);
  EXPECT_EQ(t.ranking, CpuRanking::kUniform);
}

TEST(CpuTopology, OfflineCpusAreSkipped) {
  FakeSysfs fs;
  make_rk3588(fs);
  fs.write("online", "0-2,4-7\n");  // cpu3 offline: its directory stays
  const CpuTopology t = read_cpu_topology(fs.root(), &kAll8);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1, 2, 4, 5, 6, 7}));
  EXPECT_EQ(t.online, (std::vector<int>{0, 1, 2, 4, 5, 6, 7}));
  EXPECT_EQ(auto_thread_count(t), 4);
}

TEST(CpuTopology, AffinityMaskExcludingSomeBigCores) {
  FakeSysfs fs;
  make_rk3588(fs);
  const CpuSet m = mask({0, 1, 2, 3, 4, 5});  // taskset -c 0-5
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(ids_of(t), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(t.online.size(), 8u);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{4, 5}));
  EXPECT_EQ(auto_thread_count(t), 2);
  EXPECT_EQ(t.describe(),
            "2 performance cores (cpu4-5, capacity 1024) + 4 efficiency cores (cpu0-3, capacity 414); "
            "outside the affinity mask: cpu6-7");
}

TEST(CpuTopology, AffinityMaskWithOnlyLittleCoresUsesThemAll) {
  FakeSysfs fs;
  make_rk3588(fs);
  const CpuSet m = mask({0, 1, 2});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(t.ranking, CpuRanking::kUniform);
  EXPECT_EQ(t.performance_cpus(), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(auto_thread_count(t), 3);
}

TEST(CpuTopology, MaskThatMatchesNothingFallsBackToOnline) {
  FakeSysfs fs;
  fs.write("online", "0-1");
  const CpuSet m = mask({40, 41});
  EXPECT_EQ(ids_of(read_cpu_topology(fs.root(), &m)), (std::vector<int>{0, 1}));
}

TEST(CpuTopology, ThisMachine) {
  const CpuTopology t = read_cpu_topology();
  ASSERT_FALSE(t.cpus.empty());
  EXPECT_GE(auto_thread_count(t), 1);
  EXPECT_LE(int(t.cpus.size()), ThreadPool::hardware_threads());
  for (const CpuInfo& c : t.cpus) EXPECT_TRUE(CpuSet::of_this_thread().contains(c.id)) << c.id;
  EXPECT_FALSE(t.describe().empty());
}

TEST(CpuList, ParsesKernelSyntax) {
  EXPECT_EQ(parse_cpu_list("0-3,6").value(), (std::vector<int>{0, 1, 2, 3, 6}));
  EXPECT_EQ(parse_cpu_list("5").value(), (std::vector<int>{5}));
  EXPECT_EQ(parse_cpu_list(" 0-1\n").value(), (std::vector<int>{0, 1}));
  EXPECT_EQ(parse_cpu_list("4,0").value(), (std::vector<int>{4, 0}));  // order kept: thread i -> i-th
  EXPECT_EQ(parse_cpu_list("2-2").value(), (std::vector<int>{2}));
  EXPECT_EQ(parse_cpu_list("1023").value(), (std::vector<int>{1023}));
  EXPECT_EQ(parse_cpu_list("0-1, 3").value(), (std::vector<int>{0, 1, 3}));
}

TEST(CpuList, RejectsBadLists) {
  struct Case {
    const char* text;
    const char* message_part;
  };
  for (const Case& c : {Case{"", "empty CPU list"}, Case{"  \n", "empty CPU list"},
                        Case{"a", "\"a\" is not a CPU id"}, Case{"0-", "\"0-\" is not a CPU id"},
                        Case{"-1", "is not a CPU id"}, Case{"0x1", "is not a CPU id"},
                        Case{"1.5", "is not a CPU id"}, Case{"0-3:2", "is not a CPU id"},
                        Case{"1-2-3", "is not a CPU id"}, Case{"3-1", "reversed range \"3-1\""},
                        Case{"0,,1", "empty item"}, Case{"0,", "empty item"},
                        Case{"1024", "cpu 1024 is out of range (0-1023)"},
                        Case{"0-4096", "cpu 4096 is out of range"},
                        Case{"99999999999999999999999", "is not a CPU id"},
                        Case{"1,1", "cpu 1 is listed twice"}, Case{"0-2,2", "cpu 2 is listed twice"}}) {
    auto r = parse_cpu_list(c.text);
    ASSERT_FALSE(r.ok()) << '"' << c.text << '"';
    EXPECT_NE(r.status().message().find(c.message_part), std::string::npos)
        << '"' << c.text << "\": " << r.status().message();
  }
  EXPECT_EQ(parse_cpu_list("3-1").status().message(), "CPU list \"3-1\": reversed range \"3-1\"");
}

TEST(CpuList, FormatsRuns) {
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 6}), "0-3,6");
  EXPECT_EQ(format_cpu_list({}), "");
  EXPECT_EQ(format_cpu_list({7}), "7");
  EXPECT_EQ(format_cpu_list({4, 0}), "4,0");
  EXPECT_EQ(format_cpu_list({0, 2, 3, 5, 6, 7}), "0,2-3,5-7");
  EXPECT_EQ(parse_cpu_list(format_cpu_list({0, 2, 3, 5, 6, 7})).value(),
            (std::vector<int>{0, 2, 3, 5, 6, 7}));
}

TEST(ThreadFlags, ThreadCount) {
  EXPECT_EQ(parse_thread_count("auto").value(), 0);
  EXPECT_EQ(parse_thread_count("").value(), 0);
  EXPECT_EQ(parse_thread_count("1").value(), 1);
  EXPECT_EQ(parse_thread_count("1024").value(), 1024);
  for (const char* bad : {"0", "1025", "-1", "two", "4x", "AUTO ", "1e3", "+4"}) {
    auto r = parse_thread_count(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("expected \"auto\" or a whole number from 1 to 1024"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(ThreadFlags, PinnedCpusMustBeOnlineAndInTheMask) {
  FakeSysfs fs;
  make_rk3588(fs);
  fs.write("online", "0-6");  // cpu7 offline
  const CpuSet m = mask({0, 1, 2, 3, 4, 5});
  const CpuTopology t = read_cpu_topology(fs.root(), &m);
  EXPECT_EQ(parse_usable_cpus("4-5", t).value(), (std::vector<int>{4, 5}));
  EXPECT_EQ(parse_usable_cpus("5,0", t).value(), (std::vector<int>{5, 0}));
  auto outside = parse_usable_cpus("4-6", t);
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.status().message(),
            "CPU list \"4-6\": cpu 6 is outside this process's affinity mask (usable: 0-5)");
  auto offline = parse_usable_cpus("7", t);
  ASSERT_FALSE(offline.ok());
  EXPECT_EQ(offline.status().message(), "CPU list \"7\": cpu 7 is not online (online: 0-6)");
  EXPECT_FALSE(parse_usable_cpus("5-4", t).ok());
}

TEST(ThreadFlags, ResolveThreadCount) {
  FakeSysfs fs;
  make_rk3588(fs);
  const CpuTopology t = read_cpu_topology(fs.root(), &kAll8);
  EXPECT_EQ(resolve_thread_count(0, {}, t), 4);       // auto: the A76 cores
  EXPECT_EQ(resolve_thread_count(0, {0, 1, 2}, t), 3);  // one per pinned CPU
  EXPECT_EQ(resolve_thread_count(6, {4, 5}, t), 6);   // explicit wins
  EXPECT_EQ(resolve_thread_count(2, {}, t), 2);
}
