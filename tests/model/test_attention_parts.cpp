// A decode step with fewer (token, kv head) items than two per thread splits each item's keys into
// parts merged by their softmax statistics (Context::attention_in_parts). Its logits must be the
// ones of one thread, which never splits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include "eval/synthetic.h"
#include "model/model.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

// Logits of `steps` single-token decodes after a `prompt`-token prefill (random token ids).
std::vector<std::vector<float>> decode_logits(const model::Model& m, int threads, int64_t prompt, int steps) {
  ThreadPool pool(threads);
  model::ContextOptions co;
  co.n_ctx = prompt + steps;
  co.kv_type = DType::F32;
  auto ctx = model::Context::create(m, co, pool);
  EXPECT_TRUE(ctx.ok()) << ctx.status().message();
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(m.config().n_vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (auto& t : ids) t = tok(rng);
  EXPECT_TRUE((*ctx)->decode(ids.data(), prompt).is_ok());
  std::vector<std::vector<float>> out;
  for (int i = 0; i < steps; ++i) {
    int32_t next = tok(rng);
    EXPECT_TRUE((*ctx)->decode(&next, 1).is_ok());
    out.emplace_back((*ctx)->logits(0), (*ctx)->logits(0) + m.config().n_vocab);
  }
  return out;
}

// The tiny-test shape in F32: 2 kv heads, so 2 threads split a step's keys in 2 parts once an
// item is worth it.
std::unique_ptr<model::Model> tiny_model() {
  ThreadPool pool(2);
  const std::string path = test::temp_path(std::to_string(::getpid()) + "_attention_parts.gguf");
  EXPECT_TRUE(eval::write_synthetic_model(**eval::find_synthetic_shape("tiny-test"), DType::F32, path, pool).is_ok());
  auto m = model::Model::load(path);
  std::filesystem::remove(path);  // the mapping stays valid
  EXPECT_TRUE(m.ok()) << m.status().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

}  // namespace

TEST(AttentionParts, SplitDecodeMatchesOneThread) {
  auto m = tiny_model();
  ASSERT_TRUE(m);
  ASSERT_EQ(m->config().n_head_kv, 2);
  const int64_t prompt = 2100;  // enough keys per item to be worth a second thread
  const auto one = decode_logits(*m, 1, prompt, 3);
  const auto two = decode_logits(*m, 2, prompt, 3);
  ASSERT_EQ(one.size(), two.size());
  for (size_t s = 0; s < one.size(); ++s) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < one[s].size(); ++i) {
      worst = std::max(worst, double(std::fabs(one[s][i] - two[s][i])));
      scale = std::max(scale, double(std::fabs(one[s][i])));
    }
    EXPECT_LT(worst, 1e-4 * (1 + scale)) << "step " << s;
  }
}

// Two sequences decoding together, one deep and one at its first token: with 3 threads the step is
// split (4 items < 6), and the short sequence's single key leaves one of its parts empty, which
// must weigh nothing.
TEST(AttentionParts, EmptyPartOfAShortSequenceWeighsNothing) {
  auto m = tiny_model();
  ASSERT_TRUE(m);
  const int64_t V = m->config().n_vocab, deep = 2100;
  auto step = [&](int threads) {
    ThreadPool pool(threads);
    model::ContextOptions co;
    co.n_ctx = deep + 2;
    co.kv_type = DType::F32;
    co.n_seq = 2;
    co.n_ubatch = 512;
    auto ctx = model::Context::create(*m, co, pool);
    EXPECT_TRUE(ctx.ok()) << ctx.status().message();
    std::vector<model::BatchToken> b;
    for (int64_t i = 0; i < deep; ++i) b.push_back({int32_t((i * 7) % V), 0, false});
    for (size_t i = 0; i < b.size(); i += 512) {
      const int64_t len = std::min<int64_t>(512, int64_t(b.size() - i));
      EXPECT_TRUE((*ctx)->decode_batch(b.data() + i, len).is_ok());
    }
    const model::BatchToken both[2] = {{5, 0, true}, {9, 1, true}};
    EXPECT_TRUE((*ctx)->decode_batch(both, 2).is_ok());
    std::vector<float> out((*ctx)->logits(0), (*ctx)->logits(0) + V);
    out.insert(out.end(), (*ctx)->logits(1), (*ctx)->logits(1) + V);
    return out;
  };
  const std::vector<float> one = step(1), three = step(3);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_TRUE(std::isfinite(three[i])) << i;
    worst = std::max(worst, double(std::fabs(one[i] - three[i])));
    scale = std::max(scale, double(std::fabs(one[i])));
  }
  EXPECT_LT(worst, 1e-4 * (1 + scale));
}
