// End-to-end goldens on the real stories260K model (../shared): exact greedy text and llama.cpp's
// perplexity, through the llama2.c checkpoint, the GGUF, and our own conversion of the checkpoint.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "model/convert.h"
#include "model/model.h"
#include "runtime/session.h"
#include "test_util.h"

using namespace edgeglm;
using edgeglm::test::shared_path;

namespace {

const char* kBin = "models/stories260K/stories260K.bin";
const char* kTok = "models/stories260K/tok512.bin";
const char* kGguf = "models/stories260K/stories260K.gguf";
const char* kGolden = "golden/stories260K_greedy_200.txt";

struct Loaded {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};

Loaded load(const std::string& path, const std::string& tok_path = "") {
  Loaded l;
  auto m = model::Model::load(path, tok_path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return l;
  l.model = std::move(m).value();
  auto t = tokenizer::Tokenizer::from_metadata(l.model->file().meta);
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (t.ok()) l.tok = std::move(t).value();
  return l;
}

std::unique_ptr<runtime::Session> session(const Loaded& l, ThreadPool& pool, int64_t n_ctx) {
  model::ContextOptions co;
  co.n_ctx = n_ctx;
  auto s = runtime::Session::create(*l.model, *l.tok, co, pool);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::string greedy_text(const Loaded& l, int n, int threads = 2) {
  ThreadPool pool(threads);
  auto s = session(l, pool, 512);
  if (!s) return "";
  runtime::GenerateOptions go;
  go.max_tokens = n;
  go.sampling.temperature = 0;
  auto r = s->generate({l.tok->bos_id()}, go);
  EXPECT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->tokens.size(), size_t(n));
  return r->text;
}

std::string golden() { return *read_text_file(shared_path(kGolden)); }

}  // namespace

TEST(Stories260K, GreedyFromLlama2cCheckpoint) {
  EDGEGLM_REQUIRE_SHARED(kBin);
  EDGEGLM_REQUIRE_SHARED(kGolden);
  Loaded l = load(shared_path(kBin), shared_path(kTok));
  ASSERT_TRUE(l.tok);
  EXPECT_EQ(greedy_text(l, 200), golden());
}

TEST(Stories260K, GreedyFromGguf) {
  EDGEGLM_REQUIRE_SHARED(kGguf);
  EDGEGLM_REQUIRE_SHARED(kGolden);
  Loaded l = load(shared_path(kGguf));
  ASSERT_TRUE(l.tok);
  EXPECT_EQ(greedy_text(l, 200), golden());
  // The thread count must not change the result.
  EXPECT_EQ(greedy_text(l, 200, 1), golden());
  EXPECT_EQ(greedy_text(l, 200, 3), golden());
}

TEST(Stories260K, ConvertedCheckpointRunsWithoutSideFiles) {
  EDGEGLM_REQUIRE_SHARED(kBin);
  auto src = formats::open_model(shared_path(kBin), shared_path(kTok));
  ASSERT_TRUE(src.ok()) << src.status().message();
  const std::string out = test::temp_path("stories260K_converted.gguf");
  ASSERT_TRUE(model::convert_to_gguf(**src, out, {}).is_ok());
  Loaded l = load(out);
  ASSERT_TRUE(l.tok);
  EXPECT_EQ(greedy_text(l, 200), golden());
  // f16 weights: a different file, still a working model that starts the same story.
  const std::string out16 = test::temp_path("stories260K_f16.gguf");
  model::ConvertOptions o16;
  o16.matrix_type = DType::F16;
  ASSERT_TRUE(model::convert_to_gguf(**src, out16, o16).is_ok());
  EXPECT_LT(std::filesystem::file_size(out16), std::filesystem::file_size(out));
  Loaded l16 = load(out16);
  ASSERT_TRUE(l16.tok);
  EXPECT_EQ(greedy_text(l16, 20), golden().substr(0, greedy_text(l, 20).size()));
}

TEST(Stories260K, KvCacheReuseGivesSameText) {
  EDGEGLM_REQUIRE_SHARED(kGguf);
  Loaded l = load(shared_path(kGguf));
  ASSERT_TRUE(l.tok);
  ThreadPool pool(2);
  auto s = session(l, pool, 256);
  ASSERT_TRUE(s);
  std::vector<int32_t> prompt = l.tok->encode("Once upon a time, there was a dog", true, false);
  runtime::GenerateOptions go;
  go.max_tokens = 30;
  go.sampling.temperature = 0;
  auto a = s->generate(prompt, go);
  // Second call: the whole prompt but its last token is already cached.
  auto b = s->generate(prompt, go);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(b->n_prompt_evaluated, 1);
  EXPECT_EQ(a->text, b->text);
  // Seeded sampling: same seed, same text.
  go.sampling.temperature = 1.0f;
  go.sampling.seed = 42;
  auto c = s->generate(prompt, go);
  auto d = s->generate(prompt, go);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_EQ(c->text, d->text);
}

TEST(Stories260K, ContextFullIsExplicit) {
  EDGEGLM_REQUIRE_SHARED(kGguf);
  Loaded l = load(shared_path(kGguf));
  ASSERT_TRUE(l.tok);
  ThreadPool pool(1);
  auto s = session(l, pool, 32);
  ASSERT_TRUE(s);
  runtime::GenerateOptions go;
  go.max_tokens = 100;
  go.sampling.temperature = 0;
  go.ignore_eos = true;
  auto r = s->generate({l.tok->bos_id()}, go);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish, runtime::FinishReason::kContextFull);
  EXPECT_EQ(r->tokens.size(), 32u);  // positions 1..31 decoded, the last sampled from position 31
  std::vector<int32_t> too_long(40, l.tok->bos_id());
  auto e = s->generate(too_long, go);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("does not fit"), std::string::npos);
}

TEST(Stories260K, PerplexityMatchesLlamaCppProtocol) {
  EDGEGLM_REQUIRE_SHARED(kGguf);
  EDGEGLM_REQUIRE_SHARED("data/tinystories_valid_1000.txt");
  Loaded l = load(shared_path(kGguf));
  ASSERT_TRUE(l.tok);
  auto text = read_text_file(shared_path("data/tinystories_valid_1000.txt"));
  ASSERT_TRUE(text.ok());
  ThreadPool pool(2);
  eval::PerplexityOptions po;
  po.n_ctx = 256;
  auto r = eval::perplexity(*l.model, *l.tok, *text, po, pool);
  ASSERT_TRUE(r.ok()) << r.status().message();
  // llama.cpp's perplexity tool reports 7.7951 for this file and model at -c 256.
  EXPECT_NEAR(r->perplexity, 7.7951, 0.02);
  EXPECT_EQ(r->tokens, r->chunks * (256 / 2 - 1));
}

TEST(Stories260K, FullProtocolScoresEveryToken) {
  EDGEGLM_REQUIRE_SHARED(kGguf);
  Loaded l = load(shared_path(kGguf));
  ASSERT_TRUE(l.tok);
  auto text = read_text_file(shared_path("data/tinystories_valid_1000.txt"));
  ASSERT_TRUE(text.ok());
  ThreadPool pool(2);
  eval::PerplexityOptions po;
  po.n_ctx = 128;
  po.max_chunks = 20;
  po.protocol = eval::PplProtocol::kFull;
  auto full = eval::perplexity(*l.model, *l.tok, *text, po, pool);
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(full->chunks, 20);
  EXPECT_EQ(full->tokens, 20 * 127);  // BOS + 127 text tokens per chunk, every one predicted
  // Scoring from the start of each chunk includes short-context predictions, so the llama.cpp
  // protocol (second halves only) must come out lower on the same text.
  po.protocol = eval::PplProtocol::kLlamaCpp;
  auto half = eval::perplexity(*l.model, *l.tok, *text, po, pool);
  ASSERT_TRUE(half.ok());
  EXPECT_LT(half->perplexity, full->perplexity);
  EXPECT_GT(full->perplexity, 2.0);
  EXPECT_LT(full->perplexity, 20.0);
}
