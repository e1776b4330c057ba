// The benchmark harness and the bandwidth measurement: statistics, counts, roofline arithmetic and
// the JSON / markdown reports, on a tiny synthetic model (and stories260K when ../shared has it).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "eval/bench.h"
#include "eval/membw.h"
#include "eval/synthetic.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

// One tiny model shared by the tests of this file.
const model::Model& tiny_model() {
  static std::unique_ptr<model::Model> m = [] {
    ThreadPool pool(2);
    const std::string path =
        test::temp_path(std::to_string(::getpid()) + "_bench_tiny.gguf");
    Status st = eval::write_synthetic_model(**eval::find_synthetic_shape("tiny-test"), DType::Q8_0,
                                            path, pool);
    EXPECT_TRUE(st.is_ok()) << st.message();
    auto r = model::Model::load(path);
    EXPECT_TRUE(r.ok()) << r.status().message();
    std::filesystem::remove(path);  // the mapping stays valid
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return *m;
}

void expect_sane(const eval::Stat& s, int reps) {
  EXPECT_EQ(s.n, reps);
  EXPECT_GT(s.mean, 0.0);
  EXPECT_GE(s.stddev, 0.0);
}

}  // namespace

TEST(Bench, Statistics) {
  const eval::Stat s = eval::summarize({1, 2, 3, 4});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.stddev, 1.2909944, 1e-6);  // sample (n - 1) standard deviation
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(eval::summarize({5}).stddev, 0.0);
  EXPECT_EQ(eval::summarize({}).n, 0);

  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);  // unsorted on purpose
  EXPECT_EQ(eval::percentile(v, 50), 50);
  EXPECT_EQ(eval::percentile(v, 95), 95);
  EXPECT_EQ(eval::percentile(v, 99), 99);
  EXPECT_EQ(eval::percentile(v, 100), 100);
  EXPECT_EQ(eval::percentile({3, 1, 2}, 50), 2);   // nearest rank: ceil(1.5) = 2nd
  EXPECT_EQ(eval::percentile({3, 1, 2}, 99), 3);
  EXPECT_EQ(eval::percentile({}, 50), 0);
}

TEST(Bench, OptionsOutOfRangeAreErrors) {
  eval::BenchOptions o;
  EXPECT_TRUE(eval::validate_bench_options(o).is_ok());
  o.reps = 0;
  EXPECT_NE(eval::validate_bench_options(o).message().find("repetitions 0"), std::string::npos);
  o = {};
  o.prompt_lengths = {128, 0};
  EXPECT_NE(eval::validate_bench_options(o).message().find("prompt length 0"), std::string::npos);
  o = {};
  o.gen_lengths = {eval::kBenchMaxTokens + 1};
  EXPECT_FALSE(eval::validate_bench_options(o).is_ok());
  o = {};
  o.prompt_lengths.clear();
  o.gen_lengths.clear();
  EXPECT_NE(eval::validate_bench_options(o).message().find("no test"), std::string::npos);
  o = {};
  o.depths = {0, -1};
  EXPECT_NE(eval::validate_bench_options(o).message().find("depth -1"), std::string::npos);
  o = {};
  o.prompt_lengths = {8};
  o.gen_lengths = {};
  o.depths = {eval::kBenchMaxTokens - 8};
  EXPECT_TRUE(eval::validate_bench_options(o).is_ok());
  o.depths = {eval::kBenchMaxTokens - 7};  // one token past the longest context
  EXPECT_NE(eval::validate_bench_options(o).message().find("out of range"), std::string::npos);
  o.depths.clear();
  EXPECT_NE(eval::validate_bench_options(o).message().find("no depth"), std::string::npos);
}

// -d: every test runs again after `depth` tokens in the context, filled once per depth.
TEST(Bench, DepthRunsEveryTestOnAFilledContext) {
  ThreadPool pool(2);
  eval::BenchOptions o;
  o.prompt_lengths = {8};
  o.gen_lengths = {6};
  o.depths = {0, 20};
  o.reps = 2;
  std::vector<std::string> seen;
  auto r = eval::run_bench(tiny_model(), "tiny", o, pool, [&](const std::string& t, int rep, int reps) {
    seen.push_back(t + ":" + std::to_string(rep) + "/" + std::to_string(reps));
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::vector<std::string> want = {"pp8:0/2", "pp8:1/2", "pp8:2/2", "tg6:0/2", "tg6:1/2", "tg6:2/2",
                                         "filling the context to depth 20:0/0", "pp8@d20:0/2", "pp8@d20:1/2",
                                         "pp8@d20:2/2", "tg6@d20:0/2", "tg6@d20:1/2", "tg6@d20:2/2"};
  EXPECT_EQ(seen, want);
  EXPECT_EQ(r->n_ctx, 28);     // the deepest context plus the longest test
  EXPECT_EQ(r->n_ubatch, 20);  // the fill is a prefill too
  ASSERT_EQ(r->prefill.size(), 2u);
  ASSERT_EQ(r->decode.size(), 2u);
  EXPECT_EQ(r->prefill[1].depth, 20);
  EXPECT_EQ(r->decode[0].depth, 0);
  EXPECT_EQ(r->decode[1].depth, 20);
  expect_sane(r->decode[1].tok_per_s, 2);
  EXPECT_DOUBLE_EQ(r->decode[0].mean_kv_positions, 3.5);
  EXPECT_DOUBLE_EQ(r->decode[1].mean_kv_positions, 23.5);
  EXPECT_DOUBLE_EQ(r->decode[1].bytes_per_token,
                   double(tiny_model().bytes_per_token()) + 23.5 * double(tiny_model().kv_cache_bytes(1)));
  const auto j = eval::bench_json(*r);
  ASSERT_EQ(j["tests"].size(), 4u);
  EXPECT_EQ(j["tests"][1]["test"], "pp8@d20");
  EXPECT_EQ(j["tests"][1]["depth"], 20);
  EXPECT_EQ(j["tests"][3]["test"], "tg6@d20");
  const std::string md = eval::bench_markdown(*r);
  EXPECT_NE(md.find("| tg6@d20 |"), std::string::npos) << md;
  EXPECT_NE(eval::bench_table(*r).find("pp8@d20 "), std::string::npos);
}

TEST(Bench, TinyModelGivesSaneNumbers) {
  const model::Model& m = tiny_model();
  ThreadPool pool(2);
  eval::BenchOptions o;
  o.prompt_lengths = {16, 8};
  o.gen_lengths = {12};
  o.reps = 3;
  std::vector<std::string> seen;
  auto r = eval::run_bench(m, "tiny", o, pool, [&](const std::string& t, int rep, int reps) {
    EXPECT_EQ(reps, 3);
    seen.push_back(t + ":" + std::to_string(rep));
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  // One warm-up + 3 timed repetitions per test, in order.
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen[0], "pp16:0");
  EXPECT_EQ(seen[4], "pp8:0");
  EXPECT_EQ(seen[11], "tg12:3");

  EXPECT_EQ(r->threads, 2);
  EXPECT_FALSE(r->isa.empty());
  EXPECT_EQ(r->n_ctx, 16);
  EXPECT_EQ(r->n_ubatch, 16);
  EXPECT_EQ(r->model.size_bytes, m.weight_bytes());
  EXPECT_EQ(r->model.n_params, m.n_params());
  EXPECT_NEAR(r->model.bits_per_weight, 8.0 * double(m.weight_bytes()) / double(m.n_params()), 1e-9);
  EXPECT_EQ(r->model.type, "q8_0");
  EXPECT_GT(r->peak_rss_bytes, r->context_bytes);

  ASSERT_EQ(r->prefill.size(), 2u);
  for (const eval::PrefillRun& p : r->prefill) {
    expect_sane(p.tok_per_s, 3);
    expect_sane(p.ttft_ms, 3);
    // tok/s and the prefill time describe the same runs (p tokens per ttft in each), so the mean
    // of the rates is at least the rate of the mean time (Jensen), equal when the reps agree.
    EXPECT_GE(p.tok_per_s.mean * (1 + 1e-9), double(p.n_tokens) * 1000.0 / p.ttft_ms.mean);
  }
  EXPECT_EQ(r->prefill[0].n_tokens, 16);
  EXPECT_EQ(r->prefill[1].n_tokens, 8);

  ASSERT_EQ(r->decode.size(), 1u);
  const eval::DecodeRun& d = r->decode[0];
  EXPECT_EQ(d.n_tokens, 12);
  expect_sane(d.tok_per_s, 3);
  expect_sane(d.p50_ms, 3);
  EXPECT_LE(d.p50_ms.mean, d.p95_ms.mean);
  EXPECT_LE(d.p95_ms.mean, d.p99_ms.mean);
  EXPECT_GE(d.tok_per_s.mean * (1 + 1e-9), 1000.0 / d.ms_per_token.mean);
  EXPECT_DOUBLE_EQ(d.mean_kv_positions, 6.5);
  EXPECT_DOUBLE_EQ(d.bytes_per_token,
                   double(m.bytes_per_token()) + 6.5 * double(m.kv_cache_bytes(1)));
  EXPECT_EQ(d.roofline_tok_per_s, 0.0);

  // Roofline arithmetic with a made-up bandwidth.
  eval::MemBandwidth bw;
  bw.best_bytes_per_s = 1e9;
  bw.median_bytes_per_s = 0.9e9;
  bw.buffer_bytes = 1 << 20;
  bw.threads = 2;
  bw.passes = 3;
  eval::apply_roofline(*r, bw);
  const eval::DecodeRun& d2 = r->decode[0];
  EXPECT_DOUBLE_EQ(d2.roofline_tok_per_s, 1e9 / d2.bytes_per_token);
  EXPECT_DOUBLE_EQ(d2.roofline_fraction, d2.tok_per_s.mean / d2.roofline_tok_per_s);

  // JSON survives a round trip and carries every number.
  const auto j = nlohmann::json::parse(eval::bench_json(*r).dump());
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["reps"], 3);
  EXPECT_EQ(j["model"]["params"], m.n_params());
  EXPECT_EQ(j["model"]["size_bytes"], m.weight_bytes());
  EXPECT_DOUBLE_EQ(j["memory_bandwidth"]["best_gb_per_s"].get<double>(), 1.0);
  ASSERT_EQ(j["tests"].size(), 3u);
  EXPECT_EQ(j["tests"][0]["test"], "pp16");
  EXPECT_EQ(j["tests"][0]["n_tokens"], 16);
  EXPECT_GT(j["tests"][0]["ttft_ms"]["mean"].get<double>(), 0.0);
  EXPECT_EQ(j["tests"][2]["test"], "tg12");
  EXPECT_DOUBLE_EQ(j["tests"][2]["tok_per_s"]["mean"].get<double>(), d2.tok_per_s.mean);
  EXPECT_GE(j["tests"][2]["latency_ms"]["p99"]["mean"].get<double>(),
            j["tests"][2]["latency_ms"]["p50"]["mean"].get<double>());
  EXPECT_DOUBLE_EQ(j["tests"][2]["roofline"]["fraction"].get<double>(), d2.roofline_fraction);

  const std::string md = eval::bench_markdown(*r);
  EXPECT_EQ(md.rfind("| model | size | params | type |", 0), 0u) << md;
  EXPECT_NE(md.find("| pp16 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| tg12 |"), std::string::npos) << md;
  EXPECT_EQ(std::count(md.begin(), md.end(), '\n'), 5);  // header, rule, 3 tests
  const std::string table = eval::bench_table(*r);
  EXPECT_NE(table.find("roofline"), std::string::npos) << table;
  EXPECT_NE(table.find("time to first token"), std::string::npos) << table;
}

TEST(Bench, OneRepetitionRatesAreTheTimesInverted) {
  ThreadPool pool(1);
  eval::BenchOptions o;
  o.prompt_lengths = {10};
  o.gen_lengths = {5};
  o.reps = 1;
  auto r = eval::run_bench(tiny_model(), "tiny", o, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->threads, 1);
  EXPECT_NEAR(r->prefill[0].tok_per_s.mean, 10 * 1000.0 / r->prefill[0].ttft_ms.mean,
              1e-9 * r->prefill[0].tok_per_s.mean);
  EXPECT_NEAR(r->decode[0].tok_per_s.mean, 1000.0 / r->decode[0].ms_per_token.mean,
              1e-9 * r->decode[0].tok_per_s.mean);
  EXPECT_EQ(r->prefill[0].tok_per_s.stddev, 0.0);
  EXPECT_EQ(r->decode[0].p99_ms.stddev, 0.0);
  // 5 tokens: p95 and p99 are the slowest token, p50 the 3rd fastest.
  EXPECT_EQ(r->decode[0].p95_ms.mean, r->decode[0].p99_ms.mean);
  EXPECT_LE(r->decode[0].p50_ms.mean, r->decode[0].p95_ms.mean);
  EXPECT_EQ(r->n_ctx, 10);
  EXPECT_EQ(r->n_ubatch, 10);
}

TEST(Bench, RunWithoutTestsIsAnError) {
  ThreadPool pool(1);
  eval::BenchOptions o;
  o.prompt_lengths.clear();
  o.gen_lengths.clear();
  auto r = eval::run_bench(tiny_model(), "tiny", o, pool);
  EXPECT_FALSE(r.ok());
}

TEST(Bench, Stories260K) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto m = model::Model::load(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ThreadPool pool(2);
  eval::BenchOptions o;
  o.prompt_lengths = {64};
  o.gen_lengths = {32};
  o.reps = 2;
  auto r = eval::run_bench(**m, "stories260K", o, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->model.arch, "llama");
  EXPECT_EQ(r->model.n_layer, 5);
  expect_sane(r->prefill[0].tok_per_s, 2);
  expect_sane(r->decode[0].tok_per_s, 2);
  EXPECT_LE(r->decode[0].p50_ms.mean, r->decode[0].p99_ms.mean);
}

TEST(MemBandwidth, MeasuresASmallBuffer) {
  ThreadPool pool(2);
  eval::MemBandwidthOptions o;
  o.buffer_bytes = 32 << 20;
  o.passes = 3;
  auto bw = eval::measure_read_bandwidth(pool, o);
  ASSERT_TRUE(bw.ok()) << bw.status().message();
  EXPECT_GT(bw->best_bytes_per_s, 0.1e9);
  EXPECT_LE(bw->median_bytes_per_s, bw->best_bytes_per_s);
  EXPECT_GT(bw->median_bytes_per_s, 0.0);
  EXPECT_EQ(bw->threads, 2);
  EXPECT_EQ(bw->passes, 3);
  ASSERT_EQ(bw->rates.size(), 3u);
  EXPECT_DOUBLE_EQ(bw->rates.back(), bw->best_bytes_per_s);
  EXPECT_DOUBLE_EQ(bw->rates[1], bw->median_bytes_per_s);
  EXPECT_LE(bw->buffer_bytes, size_t(32) << 20);
  EXPECT_GT(bw->buffer_bytes, size_t(31) << 20);
}

TEST(MemBandwidth, CombineTakesTheBestPassAndTheMedianOfAll) {
  eval::MemBandwidth a, b;
  a.rates = {10e9, 30e9, 20e9};  // as measured: not sorted
  a.best_bytes_per_s = 30e9, a.median_bytes_per_s = 20e9, a.passes = 3, a.threads = 2, a.buffer_bytes = 64;
  b.rates = {35e9, 5e9};
  b.best_bytes_per_s = 35e9, b.median_bytes_per_s = 20e9, b.passes = 2, b.threads = 2, b.buffer_bytes = 64;
  const eval::MemBandwidth c = eval::combine(a, b);
  EXPECT_DOUBLE_EQ(c.best_bytes_per_s, 35e9);
  EXPECT_DOUBLE_EQ(c.median_bytes_per_s, 20e9);  // of 5, 10, 20, 30, 35
  EXPECT_EQ(c.passes, 5);
  EXPECT_EQ(c.threads, 2);
  ASSERT_EQ(c.rates.size(), 5u);
  EXPECT_DOUBLE_EQ(c.rates.front(), 5e9);
  b.rates = {35e9, 5e9, 40e9};  // even count: mean of the middle two
  EXPECT_DOUBLE_EQ(eval::combine(a, b).median_bytes_per_s, 25e9);
  EXPECT_DOUBLE_EQ(eval::combine(b, a).best_bytes_per_s, 40e9);
}

TEST(MemBandwidth, CacheAndMemoryFromFiles) {
  const std::string root = test::temp_path(std::to_string(::getpid()) + "_fake_cpu0");
  std::filesystem::remove_all(root);
  auto index = [&](int i, const char* type, const char* size) {
    const std::string d = root + "/cache/index" + std::to_string(i);
    std::filesystem::create_directories(d);
    std::ofstream(d + "/type") << type << "\n";
    std::ofstream(d + "/size") << size << "\n";
  };
  index(0, "Data", "48K");
  index(1, "Instruction", "4096M");  // instruction caches do not count
  index(2, "Unified", "2048K");
  index(3, "Unified", "491520K");
  EXPECT_EQ(eval::last_level_cache_bytes(root.c_str()), size_t(480) << 20);
  EXPECT_EQ(eval::last_level_cache_bytes("/nonexistent"), 0u);

  const std::string meminfo = root + "/meminfo";
  std::ofstream(meminfo) << "MemTotal:       24684000 kB\nMemFree:        23000000 kB\n"
                            "MemAvailable:   23745024 kB\nBuffers:           12 kB\n";
  EXPECT_EQ(eval::mem_available_bytes(meminfo.c_str()), size_t(23745024) * 1024);
  EXPECT_EQ(eval::mem_available_bytes("/nonexistent"), 0u);
  std::filesystem::remove_all(root);

  const size_t def = eval::default_bandwidth_buffer_bytes();
  EXPECT_GE(def, size_t(16) << 20);
  if (const size_t avail = eval::mem_available_bytes(); avail > 0) {
    EXPECT_LE(def, std::max(avail / 4, size_t(16) << 20));
  }
}
