// The real SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by scripts/fetch_model.sh) against
// transformers' float32 forward over the same weights dequantised by gguf-py
// (tests/data/ref/smollm2, made by scripts/make_reference_models.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"
#include "test_util.h"

using namespace edgeglm;

TEST(SmolLM2Reference, LogitsArgmaxAndGreedyMatchTransformers) {
  const std::string path = test::model_path("smollm2-135m-instruct-q4_1.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "model not fetched (scripts/fetch_model.sh): " << path;
  const std::string dir = test::data_path("ref/smollm2");
  auto j = nlohmann::json::parse(*read_text_file(dir + "/reference.json"));
  const auto ids = j["input_ids"].get<std::vector<int32_t>>();
  const auto argmax = j["argmax"].get<std::vector<int32_t>>();
  const auto topk_ids = j["topk_ids"].get<std::vector<std::vector<int32_t>>>();
  const auto topk_logits = j["topk_logits"].get<std::vector<std::vector<float>>>();
  const auto generated = j["generated_ids"].get<std::vector<int32_t>>();
  const std::string last_bin = *read_text_file(dir + "/" + j["last_logits_file"].get<std::string>());

  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().n_vocab;
  ASSERT_EQ(V, 49152);
  ASSERT_EQ(last_bin.size(), size_t(V) * 4);

  auto tok = tokenizer::Tokenizer::from_metadata((*m)->file().meta);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->encode(j["prompt_text"].get<std::string>(), false, true), ids);

  ThreadPool pool(2);
  model::ContextOptions co;
  co.n_ctx = 64;
  co.n_ubatch = 16;
  co.all_logits = true;
  auto ctx = model::Context::create(**m, co, pool);
  ASSERT_TRUE(ctx.ok());
  ASSERT_TRUE((*ctx)->decode(ids.data(), int64_t(ids.size()), true).is_ok());
  float max_err = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* l = (*ctx)->logits(int64_t(t));
    EXPECT_EQ(runtime::Sampler::argmax(l, V), argmax[t]) << "position " << t;
    for (size_t k = 0; k < topk_ids[t].size(); ++k)
      max_err = std::max(max_err, std::fabs(l[topk_ids[t][k]] - topk_logits[t][k]));
  }
  const float* last = (*ctx)->logits(int64_t(ids.size()) - 1);
  for (int64_t v = 0; v < V; ++v) {
    float ref;
    std::memcpy(&ref, last_bin.data() + v * 4, 4);
    max_err = std::max(max_err, std::fabs(last[v] - ref));
  }
  // Logits reach ~36; float32 accumulation order differs from PyTorch's.
  EXPECT_LT(max_err, 5e-3f);

  std::vector<int32_t> gen;
  int32_t next = runtime::Sampler::argmax(last, V);
  for (size_t i = 0; i < generated.size(); ++i) {
    gen.push_back(next);
    if (i + 1 == generated.size()) break;
    ASSERT_TRUE((*ctx)->decode(&next, 1, true).is_ok());
    next = runtime::Sampler::argmax((*ctx)->logits(0), V);
  }
  EXPECT_EQ(gen, generated);
  EXPECT_EQ((*tok)->decode(std::vector<int32_t>(gen.begin(), gen.begin() + 7)),
            "The capital of France is Paris.");
}
