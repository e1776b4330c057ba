// The comparison report: rows in order with the base first, the figures each row should have,
// the markdown and JSON renderings, files written atomically, and a clear error for a bad path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <numeric>

#include "core/mapped_file.h"
#include "core/sys_info.h"
#include "eval/report.h"
#include "test_util.h"

using namespace edgeglm;

namespace edgeglm::test {
std::string stories_as(DType type);  // test_kld.cpp
}

namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> v;
  size_t p = 0;
  while (p < s.size()) {
    size_t e = s.find('\n', p);
    if (e == std::string::npos) e = s.size();
    v.push_back(s.substr(p, e - p));
    p = e + 1;
  }
  return v;
}

// A report made by hand: the rendering alone, no models needed.
eval::CompareReport hand_made() {
  eval::CompareReport r;
  r.options.ppl_file = "/data/wiki.raw";
  r.options.bench = false;
  r.options.notes = {"base = test weights"};
  r.threads = 2;
  r.isa = "avx2";
  for (int i = 0; i < 2; ++i) {
    eval::ModelReport m;
    m.name = i == 0 ? "base.gguf" : "q4.gguf";
    m.path = "/m/" + m.name;
    m.file_bytes = i == 0 ? (8u << 20) : (2u << 20);
    m.bits_per_weight = i == 0 ? 32 : 8;
    m.matrix_bits_per_weight = i == 0 ? 32 : 4.5;
    eval::PerplexityResult p;
    p.perplexity = i == 0 ? 10.0 : 11.0;
    p.chunks = 2;
    p.tokens = 62;
    m.ppl = p;
    if (i == 1) {
      eval::KldResult k;
      k.kld_mean = 0.0123;
      k.top1_percent = 91.5;
      m.kld = k;
    }
    m.peak_rss_bytes = 100u << 20;
    m.peak_rss_per_model = true;
    r.models.push_back(m);
  }
  return r;
}

}  // namespace

TEST(Report, MarkdownOfAHandMadeReport) {
  const eval::CompareReport r = hand_made();
  EXPECT_NEAR(*eval::ppl_delta_percent(r, 1), 10.0, 1e-12);
  const std::vector<std::string> md = lines_of(eval::report_markdown(r));
  ASSERT_GE(md.size(), 4u);
  EXPECT_NE(md[0].find("| PPL | ΔPPL | mean KLD | top-1 |"), std::string::npos) << md[0];
  EXPECT_EQ(md[0].find("HellaSwag"), std::string::npos);  // not measured: no column
  EXPECT_EQ(md[0].find("t/s"), std::string::npos);
  EXPECT_EQ(md[2], "| base.gguf (base) | 8.00 | 32.00 | 32.00 | 10.0000 ± 0.0000 | - | - | - | 100.0 |");
  EXPECT_EQ(md[3], "| q4.gguf | 2.00 | 8.00 | 4.50 | 11.0000 ± 0.0000 | +10.00% | 0.01230 ± 0.00000 | 91.50% | 100.0 |");
  const std::string all = eval::report_markdown(r);
  EXPECT_NE(all.find("`wiki.raw`, ctx 512, 2 chunks, 62 scored positions"), std::string::npos) << all;
  EXPECT_NE(all.find("\n- base = test weights\n"), std::string::npos) << all;
  EXPECT_NE(all.find("high-water mark reset between models"), std::string::npos);

  eval::CompareReport shared_peak = r;
  shared_peak.models[1].peak_rss_per_model = false;
  EXPECT_NE(eval::report_markdown(shared_peak).find("| 100.0* |"), std::string::npos);

  const nlohmann::json j = eval::report_json(r);
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_EQ(j["models"][0]["base"], true);
  EXPECT_TRUE(j["models"][0]["kld"].is_null());
  EXPECT_TRUE(j["models"][0]["ppl_delta_percent"].is_null());
  EXPECT_NEAR(j["models"][1]["ppl_delta_percent"].get<double>(), 10.0, 1e-12);
  EXPECT_EQ(j["models"][1]["kld"]["kld_mean"], 0.0123);
  EXPECT_TRUE(j["models"][1]["hellaswag"].is_null());
  EXPECT_TRUE(j["setup"]["bench"].is_null());
  EXPECT_EQ(j["notes"][0], "base = test weights");
}

TEST(Report, ComparesStories260KVariants) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  EDGEGLM_REQUIRE_SHARED("data/hellaswag_val.txt");
  const std::vector<std::string> paths = {test::shared_path("models/stories260K/stories260K.gguf"),
                                          test::stories_as(DType::Q8_0),
                                          test::stories_as(DType::Q4_0)};
  eval::CompareOptions o;
  o.ppl_file = test::shared_path("data/tinystories_valid_1000.txt");
  o.n_ctx = 64;
  o.max_chunks = 3;
  o.hellaswag_file = test::shared_path("data/hellaswag_val.txt");
  o.hellaswag_tasks = 8;
  o.bench_options.prompt_lengths = {16};
  o.bench_options.gen_lengths = {8};
  o.bench_options.reps = 1;
  o.notes = {"quantized in the test"};
  o.work_dir = test::temp_path("");
  ThreadPool pool(2);
  std::vector<std::string> seen;
  auto r = eval::compare_models(paths, o, pool, [&](size_t i, size_t n, const std::string& what) {
    EXPECT_EQ(n, 3u);
    seen.push_back(std::to_string(i) + " " + what);
  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->models.size(), 3u);
  EXPECT_EQ(seen.front(), "0 loading");
  // The base's logits file is gone.
  for (const auto& e : std::filesystem::directory_iterator(o.work_dir))
    EXPECT_EQ(e.path().filename().string().find("edgeglm_compare_" + std::to_string(::getpid())),
              std::string::npos);

  const eval::ModelReport& base = r->models[0];
  EXPECT_EQ(base.name, "stories260K.gguf");
  EXPECT_EQ(base.file_bytes, std::filesystem::file_size(paths[0]));
  EXPECT_DOUBLE_EQ(base.matrix_bits_per_weight, 32.0);  // all F32
  EXPECT_GT(base.bits_per_weight, 32.0);                // header and vocab count too
  EXPECT_FALSE(base.kld);
  ASSERT_TRUE(base.ppl);
  EXPECT_EQ(base.ppl->tokens, 3 * 31);
  const eval::ModelReport& q8 = r->models[1];
  const eval::ModelReport& q4 = r->models[2];
  // ffn_down (172-wide rows) stays F32, so the 2-D average lies between the types' 8.5 / 4.5 and 32.
  EXPECT_GT(q8.matrix_bits_per_weight, 8.5);
  EXPECT_LT(q8.matrix_bits_per_weight, 20.0);
  EXPECT_LT(q4.matrix_bits_per_weight, q8.matrix_bits_per_weight);
  EXPECT_LT(q4.file_bytes, q8.file_bytes);
  ASSERT_TRUE(q8.kld && q4.kld);
  EXPECT_GT(q8.kld->kld_mean, 0.0);
  EXPECT_GT(q4.kld->kld_mean, q8.kld->kld_mean);
  EXPECT_NEAR(q4.kld->base.perplexity, base.ppl->perplexity, 1e-6 * base.ppl->perplexity);  // float in the file
  EXPECT_EQ(q4.ppl->perplexity, q4.kld->test.perplexity);
  for (const eval::ModelReport& m : r->models) {
    ASSERT_TRUE(m.hellaswag);
    EXPECT_EQ(m.hellaswag->tasks, 8);
    EXPECT_TRUE(m.hellaswag->scores.empty());
    EXPECT_GE(m.hellaswag->acc, 0.0);
    EXPECT_LE(m.hellaswag->acc, 1.0);
    ASSERT_TRUE(m.prefill_tok_per_s && m.decode_tok_per_s);
    EXPECT_GT(*m.prefill_tok_per_s, 0.0);
    EXPECT_GT(*m.decode_tok_per_s, 0.0);
    EXPECT_GT(m.peak_rss_bytes, 0u);
  }

  const std::string md = eval::report_markdown(*r);
  const std::vector<std::string> rows = lines_of(md);
  ASSERT_GE(rows.size(), 5u);
  EXPECT_NE(rows[0].find("| pp16 t/s | tg8 t/s |"), std::string::npos) << rows[0];
  EXPECT_EQ(rows[2].rfind("| stories260K.gguf (base) |", 0), 0u) << rows[2];
  EXPECT_NE(rows[3].find("q8_0"), std::string::npos) << rows[3];
  EXPECT_NE(rows[4].find("q4_0"), std::string::npos) << rows[4];
  EXPECT_NE(md.find("- quantized in the test"), std::string::npos);

  const std::string prefix = test::temp_path(std::to_string(::getpid()) + "_report");
  ASSERT_TRUE(eval::check_report_prefix(prefix).is_ok());
  Status st = eval::write_report(prefix, *r);
  ASSERT_TRUE(st.is_ok()) << st.message();
  EXPECT_EQ(read_text_file(prefix + ".md").value(), md);
  const nlohmann::json j = nlohmann::json::parse(read_text_file(prefix + ".json").value());
  EXPECT_EQ(j, eval::report_json(*r));
  EXPECT_EQ(j["models"][0]["name"], "stories260K.gguf");
  EXPECT_EQ(j["setup"]["ctx"], 64);
  EXPECT_FALSE(std::filesystem::exists(prefix + ".md.tmp"));
  std::filesystem::remove(prefix + ".md");
  std::filesystem::remove(prefix + ".json");
}

TEST(Report, BadInputsAreErrorsBeforeAnyWork) {
  ThreadPool pool(1);
  eval::CompareOptions o;
  o.bench = false;
  const std::string missing = test::temp_path("report_no_such_model.gguf");
  auto r = eval::compare_models({missing}, o, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(missing + ": no such file"), std::string::npos);
  EXPECT_FALSE(eval::compare_models({}, o, pool).ok());

  const std::string bad_prefix = test::temp_path("no_such_dir/report");
  const Status st = eval::check_report_prefix(bad_prefix);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find(bad_prefix + ".md.tmp"), std::string::npos) << st.message();
  const Status w = eval::write_report(bad_prefix, hand_made());
  ASSERT_FALSE(w.is_ok());
  EXPECT_NE(w.message().find("no_such_dir/report.md.tmp"), std::string::npos) << w.message();
}

TEST(Report, PeakRssResetLowersTheHighWaterMark) {
  // Touch 64 MiB, free it, reset: the mark must fall back below the old peak.
  {
    std::vector<char> big(64u << 20);
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = char(i);
    EXPECT_GT(std::accumulate(big.begin(), big.begin() + 8192, 0), -1);
  }
  const size_t before = peak_rss_bytes();
  if (!eval::reset_peak_rss()) GTEST_SKIP() << "/proc/self/clear_refs is not writable here";
  EXPECT_LT(peak_rss_bytes() + (32u << 20), before);
}
