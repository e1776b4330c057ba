// HellaSwag: parsing (every malformed input names its line), the split of context and ending
// tokens for both tokenizer kinds, and scores with KV-cache reuse equal to scoring every ending
// from scratch.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/mapped_file.h"
#include "eval/hellaswag.h"
#include "model/model_test_util.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

const char* kTwoTasks =
    "A man is sitting on a roof. he\n"
    "3\n"
    "is using wrap to wrap a pair of skis.\n"
    "is ripping level tiles off.\n"
    "is holding a rubik's cube.\n"
    "starts pulling up roofing on a roof.\n"
    "The girl found a ball. She\r\n"
    "0\r\n"
    "threw it to her dog.\r\n"
    "ate the ball.\r\n"
    "sang to the moon.\r\n"
    "flew away.";  // no final newline

std::string parse_error(const std::string& text) {
  auto r = eval::parse_hellaswag(text, "hs.txt");
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.status().message();
}

using test::Loaded;
using test::load;

// Every ending from an empty cache in one decode; -log softmax in double, written out again.
std::array<double, 4> brute_force(const Loaded& l, const eval::HellaswagTask& task, ThreadPool& pool,
                                  std::array<int64_t, 4>& counts) {
  const bool bos = l.tok->add_bos() && l.tok->bos_id() >= 0;
  const std::vector<int32_t> ctx_tokens = l.tok->encode(task.context, bos, false);
  std::array<double, 4> sums{};
  for (size_t i = 0; i < 4; ++i) {
    const std::vector<int32_t> full = l.tok->encode(task.context + " " + task.endings[i], bos, false);
    size_t first = 0;
    while (first < ctx_tokens.size() && first < full.size() && full[first] == ctx_tokens[first]) ++first;
    model::ContextOptions co;
    co.n_ctx = int64_t(full.size());
    co.n_ubatch = int64_t(full.size());
    co.all_logits = true;
    auto ctx = model::Context::create(*l.model, co, pool).value();
    EXPECT_TRUE(ctx->decode(full.data(), int64_t(full.size()), true).is_ok());
    const int64_t V = ctx->n_vocab();
    for (size_t k = first; k < full.size(); ++k) {
      const float* x = ctx->logits(int64_t(k) - 1);
      double mx = x[0], s = 0;
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(x[v]));
      for (int64_t v = 0; v < V; ++v) s += std::exp(double(x[v]) - mx);
      sums[i] += double(x[full[k]]) - mx - std::log(s);
    }
    counts[i] = int64_t(full.size() - first);
  }
  return sums;
}

void expect_matches_brute_force(const Loaded& l, const std::vector<eval::HellaswagTask>& tasks,
                                int64_t n) {
  ThreadPool pool(2);
  eval::HellaswagOptions o;
  o.max_tasks = n;
  auto r = eval::hellaswag(*l.model, *l.tok, tasks, o, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->scores.size(), size_t(n));
  for (int64_t t = 0; t < n; ++t) {
    std::array<int64_t, 4> counts{};
    const std::array<double, 4> want = brute_force(l, tasks[size_t(t)], pool, counts);
    const eval::HellaswagTaskScore& s = r->scores[size_t(t)];
    EXPECT_EQ(s.label, tasks[size_t(t)].label);
    for (size_t i = 0; i < 4; ++i) {
      EXPECT_EQ(s.n_tokens[i], counts[i]) << "task " << t << " ending " << i;
      EXPECT_NEAR(s.logprob[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << "task " << t << " ending " << i;
    }
  }
}

}  // namespace

TEST(Hellaswag, ParsesTasks) {
  auto r = eval::parse_hellaswag(kTwoTasks, "hs.txt");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].context, "A man is sitting on a roof. he");
  EXPECT_EQ((*r)[0].label, 3);
  EXPECT_EQ((*r)[0].endings[3], "starts pulling up roofing on a roof.");
  EXPECT_EQ((*r)[1].line, 7);
  EXPECT_EQ((*r)[1].context, "The girl found a ball. She");  // "\r" dropped
  EXPECT_EQ((*r)[1].label, 0);
  EXPECT_EQ((*r)[1].endings[3], "flew away.");
}

TEST(Hellaswag, MalformedFilesNameTheLine) {
  const std::string ok = kTwoTasks;
  const std::string extra = parse_error(ok + "\nstray line\n");
  EXPECT_NE(extra.find("13 lines, not a multiple of 6"), std::string::npos) << extra;
  EXPECT_NE(extra.find("line 13"), std::string::npos) << extra;
  const std::string cut = parse_error(ok.substr(0, ok.rfind('\n')));  // 11 lines
  EXPECT_NE(cut.find("starting at line 7 is incomplete"), std::string::npos) << cut;

  std::string bad_label = ok;
  bad_label.replace(bad_label.find("\n3\n"), 3, "\n4\n");
  const std::string e1 = parse_error(bad_label);
  EXPECT_NE(e1.find("hs.txt:2: gold label '4'"), std::string::npos) << e1;
  std::string word_label = ok;
  word_label.replace(word_label.find("0\r\n"), 3, "zero\r\n");
  EXPECT_NE(parse_error(word_label).find("hs.txt:8: gold label 'zero'"), std::string::npos);

  std::string empty_ending = ok;
  empty_ending.replace(empty_ending.find("is holding a rubik's cube."), 26, "  ");
  const std::string e2 = parse_error(empty_ending);
  EXPECT_NE(e2.find("hs.txt:5: ending 2 is empty"), std::string::npos) << e2;
  EXPECT_NE(parse_error("").find("empty file"), std::string::npos);
  EXPECT_NE(parse_error("\n3\na\nb\nc\nd\n").find("hs.txt:1: empty context"), std::string::npos);
}

TEST(Hellaswag, EndingTokensFollowTheContextForBothTokenizerKinds) {
  std::vector<std::string> models;
  if (std::filesystem::exists(test::shared_path("models/stories260K/stories260K.gguf")))
    models.push_back(test::shared_path("models/stories260K/stories260K.gguf"));  // SentencePiece
  const std::string smol = test::model_path("smollm2-135m-instruct-q4_1.gguf");
  if (std::filesystem::exists(smol)) models.push_back(smol);  // byte-level BPE
  if (models.empty()) GTEST_SKIP() << "no model in ../shared or models/";
  for (const std::string& path : models) {
    Loaded l = load(path);
    const bool bos = l.tok->add_bos() && l.tok->bos_id() >= 0;
    const std::string context = "The girl found a ball. She";
    const std::vector<int32_t> ct = l.tok->encode(context, bos, false);
    const eval::EndingTokens e = eval::ending_tokens(*l.tok, ct, context, "threw it to her dog.");
    // The whole context is a prefix, and the remaining tokens spell " threw it to her dog.".
    ASSERT_EQ(e.first, int64_t(ct.size())) << path;
    EXPECT_TRUE(std::equal(ct.begin(), ct.end(), e.tokens.begin())) << path;
    const std::vector<int32_t> tail(e.tokens.begin() + e.first, e.tokens.end());
    std::string text;
    for (int32_t id : tail) text += l.tok->token_to_piece(id);
    EXPECT_EQ(text, " threw it to her dog.") << path;
    EXPECT_EQ(l.tok->kind(), path == smol ? tokenizer::VocabKind::kBpe : tokenizer::VocabKind::kSpm);
  }
}

TEST(Hellaswag, Stories260KMatchesScoringWithoutCacheReuse) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  EDGEGLM_REQUIRE_SHARED("data/hellaswag_val.txt");
  const std::string file = test::shared_path("data/hellaswag_val.txt");
  auto tasks = eval::parse_hellaswag(read_text_file(file).value(), file);
  ASSERT_TRUE(tasks.ok()) << tasks.status().message();
  EXPECT_EQ(tasks->size(), 10042u);
  Loaded l = load(test::shared_path("models/stories260K/stories260K.gguf"));
  expect_matches_brute_force(l, *tasks, 6);

  ThreadPool pool(2);
  eval::HellaswagOptions o;
  o.max_tasks = 40;
  auto a = eval::hellaswag(*l.model, *l.tok, *tasks, o, pool);
  ThreadPool one(1);
  auto b = eval::hellaswag(*l.model, *l.tok, *tasks, o, one);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tasks, 40);
  EXPECT_GE(a->acc, 0.0);
  EXPECT_LE(a->acc, 1.0);
  EXPECT_GE(a->acc_norm, 0.0);
  EXPECT_LE(a->acc_norm, 1.0);
  EXPECT_GT(a->acc_stderr, 0.0);
  // Deterministic whatever the thread count, and the accuracies are what the scores say.
  EXPECT_EQ(a->acc, b->acc);
  EXPECT_EQ(a->acc_norm, b->acc_norm);
  int hits = 0, hits_norm = 0;
  for (const auto& s : a->scores) {
    int best = 0, best_norm = 0;
    for (int i = 1; i < 4; ++i) {
      if (s.logprob[size_t(i)] > s.logprob[size_t(best)]) best = i;
      if (s.logprob[size_t(i)] / double(s.n_tokens[size_t(i)]) >
          s.logprob[size_t(best_norm)] / double(s.n_tokens[size_t(best_norm)]))
        best_norm = i;
    }
    hits += best == s.label;
    hits_norm += best_norm == s.label;
  }
  EXPECT_DOUBLE_EQ(a->acc, hits / 40.0);
  EXPECT_DOUBLE_EQ(a->acc_norm, hits_norm / 40.0);
}

TEST(Hellaswag, SmolLM2MatchesScoringWithoutCacheReuse) {
  EDGEGLM_REQUIRE_SHARED("data/hellaswag_val.txt");
  const std::string smol = test::model_path("smollm2-135m-instruct-q4_1.gguf");
  if (!std::filesystem::exists(smol)) GTEST_SKIP() << "model not fetched: " << smol;
  const std::string file = test::shared_path("data/hellaswag_val.txt");
  auto tasks = eval::parse_hellaswag(read_text_file(file).value(), file);
  ASSERT_TRUE(tasks.ok());
  expect_matches_brute_force(load(smol), *tasks, 3);
}

TEST(Hellaswag, TaskLongerThanTheContextIsAnError) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  Loaded l = load(test::shared_path("models/stories260K/stories260K.gguf"));
  auto tasks = eval::parse_hellaswag(kTwoTasks, "hs.txt").value();
  ThreadPool pool(1);
  eval::HellaswagOptions o;
  o.n_ctx = 16;
  auto r = eval::hellaswag(*l.model, *l.tok, tasks, o, pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("task 1 (line 1)"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("more than --ctx 16"), std::string::npos) << r.status().message();
}
