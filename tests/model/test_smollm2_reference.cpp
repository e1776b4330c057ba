// The real SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by scripts/fetch_model.sh) against
// transformers' float32 forward over the same weights dequantised by gguf-py
// (tests/data/ref/smollm2, made by scripts/make_reference_models.py).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

// Float activations: our forward pass computes what transformers computes, to float rounding.
// Int8 activations (the default, as llama.cpp's): every matmul carries ~1% relative error
// (measured 0.7-1.2% on this model), so the logits move by up to ~1.2 and only near-ties may
// change their argmax.
struct FloatActs {  // sets the mode for one scope, whatever way the scope is left
  explicit FloatActs(bool on) { kernels::set_float_activations(on); }
  ~FloatActs() { kernels::set_float_activations(false); }
};

void check_against_reference(bool float_acts) {
  FloatActs mode(float_acts);
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
  auto ctx = test::decode_prompt(**m, ids, pool);
  ASSERT_TRUE(ctx);
  float max_err = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    const float* l = ctx->logits(int64_t(t));
    const float margin = topk_logits[t][0] - topk_logits[t][1];
    if (float_acts || margin > 1.0f) {
      EXPECT_EQ(runtime::Sampler::argmax(l, V), argmax[t]) << "position " << t << " margin " << margin;
    }
    for (size_t k = 0; k < topk_ids[t].size(); ++k)
      max_err = std::max(max_err, std::fabs(l[topk_ids[t][k]] - topk_logits[t][k]));
  }
  const float* last = ctx->logits(int64_t(ids.size()) - 1);
  for (int64_t v = 0; v < V; ++v) {
    float ref;
    std::memcpy(&ref, last_bin.data() + v * 4, 4);
    max_err = std::max(max_err, std::fabs(last[v] - ref));
  }
  // Logits reach ~36; float32 accumulation order differs from PyTorch's.
  EXPECT_LT(max_err, float_acts ? 5e-3f : 1.5f);  // int8: measured 0.85
  if (!float_acts) {
    return;  // greedy text may part ways at a near-tie; the chat and golden tests cover generation
  }

  const std::vector<int32_t> gen =
      test::greedy_continuation(*ctx, int64_t(ids.size()), generated.size());
  EXPECT_EQ(gen, generated);
  EXPECT_EQ((*tok)->decode(std::vector<int32_t>(gen.begin(), gen.begin() + 7)),
            "The capital of France is Paris.");
}

}  // namespace

TEST(SmolLM2Reference, LogitsArgmaxAndGreedyMatchTransformersWithFloatActivations) {
  check_against_reference(true);
}

TEST(SmolLM2Reference, Int8ActivationsStayCloseToTransformers) { check_against_reference(false); }
