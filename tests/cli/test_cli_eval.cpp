// `edgeglm eval` with KL divergence, saved logits, HellaSwag and --compare, as a user runs it:
// JSON fields, reuse of one pass for perplexity and KLD, report files, and one clear error line
// for every flag combination that cannot work.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "cli_test_util.h"
#include "core/mapped_file.h"
#include "formats/gguf/gguf_writer.h"
#include "quant/quant.h"
#include "test_util.h"

using edgeglm::test::CliResult;
using edgeglm::test::shared_path;
using edgeglm::test::temp_path;

namespace {

CliResult eval(const std::string& args) { return edgeglm::test::run_cli("eval " + args); }

std::string stories() { return shared_path("models/stories260K/stories260K.gguf"); }
std::string text() { return shared_path("data/tinystories_valid_1000.txt"); }
std::string pid_path(const std::string& name) { return temp_path(std::to_string(getpid()) + "_" + name); }

// stories260K with its 32-aligned matrices in Q4_0, written once per process.
const std::string& stories_q4() {
  static const std::string path = [] {
    using namespace edgeglm;
    auto f = formats::open_model(stories());
    EXPECT_TRUE(f.ok()) << f.status().message();
    std::vector<formats::TensorInfo> tensors = (*f)->tensors;
    std::vector<std::vector<uint8_t>> owned;
    owned.reserve(tensors.size());
    for (formats::TensorInfo& t : tensors) {
      if (t.dtype != DType::F32 || t.shape.size() != 2 || t.shape[0] % 32 != 0) continue;
      const size_t rb = dtype_row_bytes(DType::Q4_0, t.shape[0]);
      owned.emplace_back(rb * size_t(t.shape[1]));
      for (int64_t r = 0; r < t.shape[1]; ++r)
        quant::quantize_row(DType::Q4_0, reinterpret_cast<const float*>(t.data) + r * t.shape[0],
                            owned.back().data() + size_t(r) * rb, t.shape[0]);
      t.dtype = DType::Q4_0;
      t.nbytes = owned.back().size();
      t.data = owned.back().data();
    }
    const std::string out = pid_path("cli_stories_q4_0.gguf");
    EXPECT_TRUE(formats::write_gguf(out, (*f)->meta, tensors).is_ok());
    return out;
  }();
  static const struct Remove {
    ~Remove() { std::filesystem::remove(path); }
  } remove_at_exit;
  return path;
}

void expect_one_error_line(const CliResult& r, const std::string& needle) {
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("edgeglm: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace

TEST(CliEval, KldJsonReusesThePassForPerplexity) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  const std::string common = " --ppl " + text() + " --ctx 64 --chunks 3 -t 2 --json";
  CliResult plain = eval("-m " + stories_q4() + common);
  CliResult kld = eval("-m " + stories_q4() + " --kld " + stories() + common);
  ASSERT_EQ(plain.code, 0) << plain.err;
  ASSERT_EQ(kld.code, 0) << kld.err;
  const auto p = nlohmann::json::parse(plain.out), k = nlohmann::json::parse(kld.out);
  EXPECT_FALSE(p.contains("kld"));
  EXPECT_EQ(k["ppl"]["tokens"], 93);  // 3 x (32 - 1)
  // The KLD pass scored the same positions: its perplexity is the plain run's, exactly.
  EXPECT_EQ(k["ppl"]["perplexity"], p["ppl"]["perplexity"]);
  EXPECT_EQ(k["kld"]["ppl_test"], p["ppl"]["perplexity"]);
  EXPECT_EQ(k["kld"]["positions"], 93);
  EXPECT_EQ(k["kld"]["base_kind"], "model");
  EXPECT_GT(k["kld"]["kld_mean"].get<double>(), 0.0);
  EXPECT_LT(k["kld"]["top1_percent"].get<double>(), 100.0 + 1e-9);
  EXPECT_GE(k["kld"]["kld_p99"].get<double>(), k["kld"]["kld_median"].get<double>());
}

TEST(CliEval, SavedLogitsThenCompare) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  const std::string logits = pid_path("cli_base.logits");
  const std::string kld_text = " --kld-text " + text() + " --ctx 64 --chunks 4 -t 2 --json";
  CliResult save = eval("-m " + stories() + " --save-logits " + logits + kld_text);
  ASSERT_EQ(save.code, 0) << save.err;
  const auto s = nlohmann::json::parse(save.out);
  EXPECT_EQ(s["save_logits"]["positions"], 4 * 31);
  EXPECT_EQ(s["save_logits"]["bytes"], std::filesystem::file_size(logits));
  EXPECT_FALSE(s.contains("ppl"));  // no --ppl asked

  CliResult direct = eval("-m " + stories_q4() + " --kld " + stories() + kld_text);
  CliResult file = eval("-m " + stories_q4() + " --logits " + logits + kld_text);
  ASSERT_EQ(direct.code, 0) << direct.err;
  ASSERT_EQ(file.code, 0) << file.err;
  const auto d = nlohmann::json::parse(direct.out)["kld"], f = nlohmann::json::parse(file.out)["kld"];
  EXPECT_EQ(f["base_kind"], "logits");
  EXPECT_NEAR(f["kld_mean"].get<double>(), d["kld_mean"].get<double>(), 1e-5);
  EXPECT_EQ(f["top1_percent"], d["top1_percent"]);

  // The text report names every figure.
  CliResult human = eval("-m " + stories_q4() + " --logits " + logits + " --kld-text " + text() +
                         " --ctx 64 --chunks 2");
  ASSERT_EQ(human.code, 0) << human.err;
  for (const char* w : {"KL divergence from", "median", "p99", "top-1 agreement", "RMS delta-p",
                        "perplexity base"})
    EXPECT_NE(human.out.find(w), std::string::npos) << w << "\n" << human.out;

  // Another context size or a truncated file: one error line naming the file.
  expect_one_error_line(eval("-m " + stories_q4() + " --logits " + logits + " --kld-text " + text() +
                             " --ctx 128"),
                        "saved with --ctx 64");
  const std::string cut = pid_path("cli_cut.logits");
  const std::string bytes = edgeglm::read_text_file(logits).value();
  FILE* out = std::fopen(cut.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size() / 2, out);
  std::fclose(out);
  expect_one_error_line(eval("-m " + stories_q4() + " --logits " + cut + kld_text), cut + ": truncated");
  std::filesystem::remove(cut);
  std::filesystem::remove(logits);
}

TEST(CliEval, HellaswagJson) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  EDGEGLM_REQUIRE_SHARED("data/hellaswag_val.txt");
  CliResult r = eval("-m " + stories() + " --hellaswag " + shared_path("data/hellaswag_val.txt") +
                     " --tasks 12 -t 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["hellaswag"]["tasks"], 12);
  EXPECT_GE(j["hellaswag"]["acc"].get<double>(), 0.0);
  EXPECT_LE(j["hellaswag"]["acc_norm"].get<double>(), 1.0);
  EXPECT_FALSE(j.contains("ppl"));
  const std::string bad = pid_path("cli_bad_hs.txt");
  FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("ctx\n7\na\nb\nc\nd\n", f);
  std::fclose(f);
  expect_one_error_line(eval("-m " + stories() + " --hellaswag " + bad), bad + ":2: gold label '7'");
  std::filesystem::remove(bad);
}

TEST(CliEval, CompareWritesTheReport) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  const std::string prefix = pid_path("cli_report");
  CliResult r = eval("--compare " + stories() + " " + stories_q4() + " --ppl " + text() +
                     " --ctx 64 --chunks 2 -t 2 --report " + prefix +
                     " --note \"base = stories260K F32\" --note second");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string md = edgeglm::read_text_file(prefix + ".md").value();
  EXPECT_EQ(md, r.out);
  const size_t base = md.find("| stories260K.gguf (base) |"), q4 = md.find("cli_stories_q4_0.gguf |");
  ASSERT_NE(base, std::string::npos) << md;
  ASSERT_NE(q4, std::string::npos) << md;
  EXPECT_LT(base, q4);
  EXPECT_NE(md.find("- base = stories260K F32\n- second\n"), std::string::npos) << md;
  const auto j = nlohmann::json::parse(edgeglm::read_text_file(prefix + ".json").value());
  ASSERT_EQ(j["models"].size(), 2u);
  EXPECT_GT(j["models"][1]["kld"]["kld_mean"].get<double>(), 0.0);
  EXPECT_GT(j["models"][1]["decode_tok_per_s"].get<double>(), 0.0);
  EXPECT_NE(r.err.find("wrote " + prefix + ".md"), std::string::npos) << r.err;
  std::filesystem::remove(prefix + ".md");
  std::filesystem::remove(prefix + ".json");

  CliResult js = eval("--compare " + stories() + " " + stories_q4() + " --ppl " + text() +
                      " --ctx 64 --chunks 1 -t 1 --json");
  ASSERT_EQ(js.code, 0) << js.err;
  EXPECT_EQ(nlohmann::json::parse(js.out)["models"][0]["base"], true);

  // An unwritable report path fails before any model is evaluated.
  const std::string nowhere = temp_path("no_such_dir/report");
  CliResult w = eval("--compare " + stories() + " " + stories_q4() + " --ppl " + text() +
                     " --report " + nowhere);
  expect_one_error_line(w, nowhere + ".md.tmp");
}

TEST(CliEval, FlagCombinationsThatCannotWork) {
  const std::string m = "-m x.gguf";
  expect_one_error_line(eval(m), "nothing to evaluate");
  expect_one_error_line(eval(m + " --ppl t --kld a --logits b"), "exclude each other");
  expect_one_error_line(eval(m + " --kld a"), "needs a text");
  expect_one_error_line(eval(m + " --kld a --ppl t --protocol full"), "llamacpp protocol");
  expect_one_error_line(eval(m + " --ppl t --kld-text u"), "--kld-text needs");
  expect_one_error_line(eval(m + " --ppl t --tasks 5"), "--tasks needs --hellaswag");
  expect_one_error_line(eval(m + " --ppl t --report r"), "need --compare");
  expect_one_error_line(eval("--ppl t"), "give a model");
  expect_one_error_line(eval("--compare a.gguf --ppl t"), "at least one more model");
  expect_one_error_line(eval("--compare a.gguf b.gguf " + m + " --ppl t"), "drop -m");
  expect_one_error_line(eval("--compare a.gguf b.gguf"), "needs --ppl FILE and/or --hellaswag");
  expect_one_error_line(eval("--compare a.gguf b.gguf --ppl t --kld c"), "drop --kld");
  const std::string missing = temp_path("cli_eval_no_such_model.gguf");
  expect_one_error_line(eval("--compare " + missing + " b.gguf --hellaswag " + missing), missing);
}
