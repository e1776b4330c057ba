// Several sequences in one context (ContextOptions::n_seq) advanced by one batched forward pass
// must give each sequence the logits it gets alone: the serving scheduler's continuous batching
// rests on this.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/model.h"
#include "model_test_util.h"
#include "runtime/sampler.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

constexpr const char* kModel = "models/stories260K/stories260K.gguf";

// Greedy continuation of `prompt` alone: the logits of the last prompt token and of each
// generated token (n_gen rows).
std::vector<std::vector<float>> alone(const model::Model& m, const std::vector<int32_t>& prompt,
                                      int n_gen, ThreadPool& pool) {
  model::ContextOptions co;
  co.n_ctx = 64;
  co.kv_type = DType::F32;
  auto ctx = model::Context::create(m, co, pool);
  EXPECT_TRUE(ctx.ok());
  EXPECT_TRUE((*ctx)->decode(prompt.data(), int64_t(prompt.size())).is_ok());
  std::vector<std::vector<float>> rows;
  const int64_t V = m.config().n_vocab;
  for (int i = 0; i < n_gen; ++i) {
    rows.emplace_back((*ctx)->logits(0), (*ctx)->logits(0) + V);
    int32_t next = runtime::Sampler::argmax((*ctx)->logits(0), V);
    EXPECT_TRUE((*ctx)->decode(&next, 1).is_ok());
  }
  return rows;
}

double max_abs_diff(const float* a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < b.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

}  // namespace

TEST(BatchDecode, InterleavedSequencesMatchEachAlone) {
  EDGEGLM_REQUIRE_SHARED(kModel);
  auto m = model::Model::load(test::shared_path(kModel));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ThreadPool pool(2);
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 400, 31, 77, 300, 12}, {1, 9, 250, 480}, {1, 66, 67, 68, 69, 70, 71, 72, 73, 74}};
  const int n_gen = 6;
  std::vector<std::vector<std::vector<float>>> want;
  for (const auto& p : prompts) want.push_back(alone(**m, p, n_gen, pool));

  model::ContextOptions co;
  co.n_ctx = 64;
  co.kv_type = DType::F32;
  co.n_seq = 3;
  co.n_ubatch = 8;
  auto ctx = model::Context::create(**m, co, pool);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  model::Context& c = **ctx;
  const int64_t V = c.n_vocab();
  // Step 1: all of prompt 0 and the first two tokens of prompt 2 (chunked prefill beside it).
  std::vector<model::BatchToken> b;
  for (size_t i = 0; i < prompts[0].size(); ++i)
    b.push_back({prompts[0][i], 0, i + 1 == prompts[0].size()});
  b.push_back({prompts[2][0], 2, false});
  b.push_back({prompts[2][1], 2, false});
  ASSERT_TRUE(c.decode_batch(b.data(), int64_t(b.size())).is_ok());
  EXPECT_LT(max_abs_diff(c.logits(0), want[0][0]), 1e-3);
  int32_t next0 = runtime::Sampler::argmax(c.logits(0), V);
  // Step 2: seq 0 decodes one token, seq 1 prefills all of its prompt, seq 2 the rest of its own.
  b = {{next0, 0, true}};
  for (size_t i = 0; i < prompts[1].size(); ++i)
    b.push_back({prompts[1][i], 1, i + 1 == prompts[1].size()});
  ASSERT_EQ(c.decode_batch(b.data(), int64_t(b.size())).is_ok(), true);
  EXPECT_LT(max_abs_diff(c.logits(0), want[0][1]), 1e-3);
  EXPECT_LT(max_abs_diff(c.logits(1), want[1][0]), 1e-3);
  int32_t next[3] = {runtime::Sampler::argmax(c.logits(0), V), runtime::Sampler::argmax(c.logits(1), V), 0};
  b.clear();
  for (size_t i = 2; i < prompts[2].size(); ++i)
    b.push_back({prompts[2][i], 2, i + 1 == prompts[2].size()});
  ASSERT_TRUE(c.decode_batch(b.data(), int64_t(b.size())).is_ok());
  EXPECT_LT(max_abs_diff(c.logits(0), want[2][0]), 1e-3);
  next[2] = runtime::Sampler::argmax(c.logits(0), V);
  // Then all three decode together; seq 0 is one token ahead of the others.
  int done[3] = {2, 1, 1};
  for (int step = 0; step < n_gen - 1; ++step) {
    b.clear();
    std::vector<int> who;
    for (int s = 0; s < 3; ++s)
      if (done[s] < n_gen) b.push_back({next[s], s, true}), who.push_back(s);
    ASSERT_TRUE(c.decode_batch(b.data(), int64_t(b.size())).is_ok());
    for (size_t r = 0; r < who.size(); ++r) {
      const int s = who[r];
      EXPECT_LT(max_abs_diff(c.logits(int64_t(r)), want[size_t(s)][size_t(done[s])]), 1e-3)
          << "seq " << s << " token " << done[s];
      next[s] = runtime::Sampler::argmax(c.logits(int64_t(r)), V);
      ++done[s];
    }
  }
  EXPECT_EQ(c.n_past(0), int64_t(prompts[0].size()) + n_gen - 1);
  EXPECT_EQ(c.kv_bytes_in_use(),
            size_t(c.n_past(0) + c.n_past(1) + c.n_past(2)) * c.kv_bytes_per_position());
  // A released slot starts over and gives the same answer as a fresh context.
  c.release(1);
  EXPECT_EQ(c.n_past(1), 0);
  b.clear();
  for (size_t i = 0; i < prompts[1].size(); ++i)
    b.push_back({prompts[1][i], 1, i + 1 == prompts[1].size()});
  ASSERT_TRUE(c.decode_batch(b.data(), int64_t(b.size())).is_ok());
  EXPECT_LT(max_abs_diff(c.logits(0), want[1][0]), 1e-3);
}

TEST(BatchDecode, BadBatchesFailWithoutChangingState) {
  EDGEGLM_REQUIRE_SHARED(kModel);
  auto m = model::Model::load(test::shared_path(kModel));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ThreadPool pool(1);
  model::ContextOptions co;
  co.n_ctx = 4;
  co.n_seq = 2;
  co.n_ubatch = 4;
  auto ctx = model::Context::create(**m, co, pool);
  ASSERT_TRUE(ctx.ok());
  model::Context& c = **ctx;
  const model::BatchToken ok[2] = {{1, 0, true}, {1, 1, true}};
  ASSERT_TRUE(c.decode_batch(ok, 2).is_ok());
  auto expect_error = [&](std::vector<model::BatchToken> b, const char* needle) {
    Status st = c.decode_batch(b.data(), int64_t(b.size()));
    EXPECT_FALSE(st.is_ok());
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    EXPECT_EQ(c.n_past(0), 1);
    EXPECT_EQ(c.n_past(1), 1);
  };
  expect_error({{1, 2, false}}, "sequence 2 is out of range");
  expect_error({{1, -1, false}}, "out of range");
  expect_error({{1, 0, false}, {int32_t(c.n_vocab()), 1, false}}, "outside the vocabulary");
  expect_error({{1, 0, false}, {1, 0, false}, {1, 0, false}, {1, 0, false}}, "context full");
  expect_error({{1, 0, false}, {1, 0, false}, {1, 1, false}, {1, 1, false}, {1, 1, false}},
               "exceed the ubatch size");
  expect_error({{1, 0, true}, {1, 1, true}, {1, 1, true}}, "ask for logits");
  expect_error({}, "no tokens");
}
