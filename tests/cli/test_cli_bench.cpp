// `edgeglm bench` as a user runs it: output formats, synthetic models in a cache directory, and
// one clear error line for every bad flag.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "cli_test_util.h"
#include "test_util.h"

using edgeglm::test::bin_path;
using edgeglm::test::shared_path;

namespace {

using BenchCli = edgeglm::test::CliResult;
BenchCli bench(const std::string& args) { return edgeglm::test::run_cli("bench " + args); }

// A cache directory of this process, so parallel test processes never share files.
std::string cache_dir() {
  return edgeglm::test::temp_path("bench_cache_" + std::to_string(getpid()));
}

}  // namespace

TEST(CliBench, ListShapes) {
  BenchCli r = bench("--list-shapes");
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* s : {"smollm2-135m", "qwen2.5-0.5b", "tinyllama-1.1b", "llama-3.2-1b",
                        "glm-edge-1.5b", "tiny-test"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s;
  EXPECT_NE(r.out.find("134.5 M"), std::string::npos) << r.out;  // smollm2-135m's parameters
  EXPECT_NE(r.out.find("1.10 B"), std::string::npos) << r.out;   // tinyllama
  EXPECT_NE(r.out.find("q4_k"), std::string::npos) << r.out;
}

TEST(CliBench, SyntheticJson) {
  const std::string dir = cache_dir();
  BenchCli r = bench("--synthetic tiny-test --type q4_0 --cache-dir " + dir +
                     " -p 8,16 -n 4 -r 2 -t 2 --bw-mib 16 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir + "/tiny-test-q4_0.gguf"));
  EXPECT_NE(r.err.find("wrote " + dir + "/tiny-test-q4_0.gguf"), std::string::npos) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["reps"], 2);
  EXPECT_EQ(j["model"]["arch"], "llama");
  EXPECT_EQ(j["model"]["name"], "tiny-test q4_0 (synthetic)");
  ASSERT_EQ(j["tests"].size(), 3u);
  EXPECT_EQ(j["tests"][0]["test"], "pp8");
  EXPECT_EQ(j["tests"][1]["test"], "pp16");
  EXPECT_EQ(j["tests"][2]["test"], "tg4");
  EXPECT_GT(j["tests"][2]["tok_per_s"]["mean"].get<double>(), 0.0);
  EXPECT_GT(j["memory_bandwidth"]["best_gb_per_s"].get<double>(), 0.1);
  EXPECT_GT(j["tests"][2]["roofline"]["tok_per_s"].get<double>(), 0.0);

  // The second run reuses the cached file.
  BenchCli again = bench("--synthetic tiny-test --type q4_0 --cache-dir " + dir +
                         " -p 8 -n 4 -r 1 --no-bw --md");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("using cached"), std::string::npos) << again.err;
  EXPECT_EQ(again.out.rfind("| model |", 0), 0u) << again.out;
  EXPECT_NE(again.out.find("| pp8 |"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("| tg4 |"), std::string::npos) << again.out;
  std::filesystem::remove_all(dir);
}

// The bandwidth is measured before and after the tests (10 passes); the first measurement's buffer
// (256 MiB here, written by the threads) must not show in the peak RSS of a model of a few MiB.
TEST(CliBench, BandwidthBufferIsNotInThePeakRss) {
  const std::string dir = cache_dir();
  BenchCli r = bench("--synthetic tiny-test --type q4_0 --cache-dir " + dir +
                     " -p 8 -n 4 -r 1 -t 2 --bw-mib 256 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["memory_bandwidth"]["passes"], 10);
  EXPECT_LT(j["peak_rss_bytes"].get<double>(), 128.0 * 1024 * 1024);
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 1.0 * 1024 * 1024);
  std::filesystem::remove_all(dir);
}

TEST(CliBench, KTypeFallbackIsReported) {
  const std::string dir = cache_dir();
  BenchCli r = bench("--synthetic tiny-test --type q4_k --cache-dir " + dir + " -p 8 -n 4 -r 1 --no-bw");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("q4_k -> q5_0"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("pp8"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("q5_0+q4_k"), std::string::npos) << r.out;
  std::filesystem::remove_all(dir);
}

TEST(CliBench, ModelFile) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  BenchCli r = bench("-m " + shared_path("models/stories260K/stories260K.gguf") +
                     " -p 32 -n 16 -r 2 -t 1 --bw-mib 16");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("pp32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tg16"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("peak RSS"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("read bandwidth"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("of roofline"), std::string::npos) << r.out;
}

TEST(CliBench, BadFlagsGiveOneErrorLine) {
  const std::string dir = cache_dir();
  const std::string not_dir = edgeglm::test::temp_path("bench_not_a_dir_" + std::to_string(getpid()));
  std::ofstream(not_dir) << "x";
  const std::string syn = "--synthetic tiny-test --no-bw --cache-dir " + dir + " ";
  struct Case {
    std::string args;
    std::string expect;  // part of the message
  } cases[] = {
      {syn + "-p -5", "prompt length -5 is out of range"},
      {syn + "-p 128,40000", "prompt length 40000 is out of range"},
      {syn + "-n 0 -p 0", "no test to run"},
      {syn + "-n 99999", "generation length 99999"},
      {syn + "-r 0", "repetitions 0 is out of range"},
      {syn + "-r 1001", "repetitions 1001"},
      {syn + "--json --md", "--json and --md"},
      {syn + "--bw-mib -3", "--bw-mib -3"},
      {"--synthetic llama-70b --no-bw", "unknown synthetic shape 'llama-70b' (choices: smollm2-135m"},
      {"--synthetic tiny-test --type q3_k --no-bw", "unknown type 'q3_k' (choices: f32"},
      {"--synthetic tiny-test -m x.gguf", "exactly one"},
      {"-p 8", "exactly one"},
      {"--synthetic tiny-test -p 8 -n 4 -r 1 --no-bw --cache-dir " + not_dir + "/sub",
       "cache directory " + not_dir + "/sub"},
      {"-m " + dir + "/missing.gguf -p 8 -n 4 -r 1 --no-bw", dir + "/missing.gguf"},
  };
  for (const Case& c : cases) {
    BenchCli r = bench(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.err;
    EXPECT_EQ(r.out, "") << c.args;
    EXPECT_EQ(r.err.rfind("edgeglm: error: ", 0), 0u) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
  }
  std::filesystem::remove(not_dir);
  EXPECT_FALSE(std::filesystem::exists(dir + "/tiny-test-q8_0.gguf"));  // nothing ran
  std::filesystem::remove_all(dir);
}

TEST(CliBench, ThreadsOutOfRangeIsRejected) {
  BenchCli r = bench("--synthetic tiny-test --no-bw -t 5000");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("threads"), std::string::npos) << r.err;
}
