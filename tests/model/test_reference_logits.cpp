// Our forward pass against Hugging Face transformers' float32 forward on tiny random models of
// each architecture (fixtures made by scripts/make_reference_models.py, see
// docs/reference_fixtures.md): logits within tolerance and the same argmax at every position,
// the same greedy continuation, from the HF directory and from our GGUF conversion of it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "model/convert.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"
#include "model_test_util.h"
#include "test_util.h"

using namespace edgeglm;

namespace {

struct Reference {
  std::vector<int32_t> input_ids;
  std::vector<int32_t> argmax;
  std::vector<int32_t> generated;
  std::string prompt_text;
  int64_t n_tok = 0, n_vocab = 0;
  std::vector<float> logits;  // (n_tok, n_vocab)
};

Reference load_reference(const std::string& dir) {
  Reference r;
  auto j = nlohmann::json::parse(*read_text_file(dir + "/reference.json"));
  r.input_ids = j["input_ids"].get<std::vector<int32_t>>();
  r.argmax = j["argmax"].get<std::vector<int32_t>>();
  r.generated = j["generated_ids"].get<std::vector<int32_t>>();
  r.prompt_text = j.value("prompt_text", "");
  r.n_tok = j["logits_shape"][0];
  r.n_vocab = j["logits_shape"][1];
  auto bin = *read_text_file(dir + "/" + j["logits_file"].get<std::string>());
  r.logits.resize(size_t(r.n_tok * r.n_vocab));
  EXPECT_EQ(bin.size(), r.logits.size() * 4);
  std::memcpy(r.logits.data(), bin.data(), std::min(bin.size(), r.logits.size() * 4));
  return r;
}

// Runs the prompt, compares logits, then continues greedily for the reference's length.
void check_model(const model::Model& m, const Reference& ref, const std::string& label) {
  ASSERT_EQ(m.config().n_vocab, ref.n_vocab);
  ThreadPool pool(2);
  auto ctx = test::decode_prompt(m, ref.input_ids, pool);
  ASSERT_TRUE(ctx);
  float max_err = 0;
  for (int64_t t = 0; t < ref.n_tok; ++t) {
    const float* ours = ctx->logits(t);
    const float* theirs = ref.logits.data() + t * ref.n_vocab;
    for (int64_t v = 0; v < ref.n_vocab; ++v) max_err = std::max(max_err, std::fabs(ours[v] - theirs[v]));
    EXPECT_EQ(runtime::Sampler::argmax(ours, ref.n_vocab), ref.argmax[size_t(t)])
        << label << " position " << t;
  }
  EXPECT_LT(max_err, 1e-3f) << label;
  // Greedy continuation, token by token through the KV cache.
  EXPECT_EQ(test::greedy_continuation(*ctx, ref.n_tok, ref.generated.size()), ref.generated)
      << label;

  // The default f16 and the int8 KV caches round what attention reads, nothing else.
  for (DType kv : {DType::F16, DType::Q8_0}) {
    if (kv == DType::Q8_0 && m.config().head_dim % 32 != 0) continue;
    auto c2 = test::decode_prompt(m, ref.input_ids, pool, kv);
    ASSERT_TRUE(c2);
    float err = 0;
    for (int64_t t = 0; t < ref.n_tok; ++t)
      for (int64_t v = 0; v < ref.n_vocab; ++v)
        err = std::max(err, std::fabs(c2->logits(t)[v] - ref.logits[size_t(t * ref.n_vocab + v)]));
    EXPECT_LT(err, kv == DType::F16 ? 2e-2f : 0.2f) << label << " kv " << dtype_name(kv);
    EXPECT_GT(err, 0.0f) << label << " kv " << dtype_name(kv) << ": the cache type had no effect";
  }
}

class ReferenceLogits : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(ReferenceLogits, HfDirectoryAndConvertedGgufMatchTransformers) {
  const std::string dir = test::data_path("ref/" + GetParam());
  if (!std::filesystem::exists(dir + "/reference.json")) GTEST_SKIP() << "no fixture at " << dir;
  Reference ref = load_reference(dir);
  auto m = model::Model::load(dir);
  ASSERT_TRUE(m.ok()) << m.status().message();
  check_model(**m, ref, GetParam() + " (safetensors)");

  // The tokenizer imported from tokenizer.json gives the reference's ids for its prompt text.
  auto tok = tokenizer::Tokenizer::from_metadata((*m)->file().meta);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  if (!ref.prompt_text.empty()) {
    EXPECT_EQ((*tok)->encode(ref.prompt_text, false, true), ref.input_ids);
  }

  const std::string out = test::temp_path("ref_" + GetParam() + ".gguf");
  ASSERT_TRUE(model::convert_to_gguf((*m)->file(), out, {}).is_ok());
  auto g = model::Model::load(out);
  ASSERT_TRUE(g.ok()) << g.status().message();
  if (GetParam() == "glm" || GetParam() == "chatglm") {
    EXPECT_EQ((*g)->file().architecture(), "chatglm");  // llama.cpp's name for the family
  }
  if (GetParam() == "llama_scaled") {
    // llama3 scaling travels as llama.cpp's per-pair divisors, not as a scaling type: 1 for the
    // shortest wavelength, `factor` (8) for the longest.
    const formats::TensorInfo* f = (*g)->file().find("rope_freqs.weight");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->nelements(), 8);
    const float* v = reinterpret_cast<const float*>(f->data);
    EXPECT_FLOAT_EQ(v[0], 1.0f);
    EXPECT_FLOAT_EQ(v[7], 8.0f);
    EXPECT_FALSE((*g)->file().get("llama.rope.scaling.type"));
  }
  check_model(**g, ref, GetParam() + " (converted gguf)");
}

INSTANTIATE_TEST_SUITE_P(Arch, ReferenceLogits,
                         ::testing::Values("llama", "llama_scaled", "llama_linear", "qwen2", "glm", "glm4",
                                           "chatglm"),
                         [](const auto& info) { return info.param; });
