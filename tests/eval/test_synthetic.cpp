// Synthetic models: shapes match the real models, files load in edgeglm with the planned types and
// sizes, weights are random but deterministic, and the cache reuses or rewrites files as it should.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/mapped_file.h"
#include "eval/synthetic.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace edgeglm;
using eval::SyntheticShape;

namespace {

const SyntheticShape& shape(const char* name) {
  auto s = eval::find_synthetic_shape(name);
  EXPECT_TRUE(s.ok()) << s.status().message();
  return **s;
}

std::string unique_path(const std::string& name) {
  return test::temp_path(std::to_string(::getpid()) + "_" + name);
}

std::string write(const char* shape_name, DType type, const std::string& file, int threads = 2,
                  uint64_t seed = 1) {
  ThreadPool pool(threads);
  const std::string path = unique_path(file);
  Status st = eval::write_synthetic_model(shape(shape_name), type, path, pool, nullptr, seed);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return path;
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

DType type_of(const model::Model& m, const std::string& name) {
  const formats::TensorInfo* t = m.file().find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? t->dtype : DType::I8;
}

}  // namespace

TEST(Synthetic, ParameterCountsMatchThePublishedModels) {
  // Parameter counts of the Hugging Face checkpoints (llama-3.2-1b: + 32 rope_freqs factors).
  EXPECT_EQ(eval::synthetic_param_count(shape("smollm2-135m")), 134515008);
  EXPECT_EQ(eval::synthetic_param_count(shape("qwen2.5-0.5b")), 494032768);
  EXPECT_EQ(eval::synthetic_param_count(shape("tinyllama-1.1b")), 1100048384);
  EXPECT_EQ(eval::synthetic_param_count(shape("llama-3.2-1b")), 1235814400 + 32);
  // GLM-Edge-1.5B: its BF16 safetensors file is 3.19 GB, i.e. ~1.59 B parameters.
  EXPECT_NEAR(double(eval::synthetic_param_count(shape("glm-edge-1.5b"))), 1.59e9, 0.01e9);
}

TEST(Synthetic, PlannedSizesMatchThePublishedFiles) {
  // Published GGUF sizes (MiB) of the same shapes and types; our files differ only by the
  // tokenizer metadata (a minimal vocab here, merges and real pieces there).
  struct Case {
    const char* shape;
    const char* type;
    double mib;
  } cases[] = {{"smollm2-135m", "q8_0", 165},   {"smollm2-135m", "q4_0", 114},
               {"qwen2.5-0.5b", "q8_0", 639},   {"tinyllama-1.1b", "q8_0", 1.09 * 1024},
               {"tinyllama-1.1b", "q4_0", 607}};
  for (const Case& c : cases) {
    auto plan = eval::plan_synthetic_model(shape(c.shape), eval::synthetic_type_from_name(c.type).value());
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const double mib = double(plan->tensor_bytes) / (1 << 20);
    EXPECT_NEAR(mib, c.mib, 0.04 * c.mib) << c.shape << " " << c.type;
  }
}

TEST(Synthetic, TypeMixFollowsLlamaCpp) {
  auto q4 = eval::plan_synthetic_model(shape("tinyllama-1.1b"), DType::Q4_0);
  ASSERT_TRUE(q4.ok());
  auto find = [](const eval::SyntheticPlan& p, const std::string& n) {
    for (const auto& t : p.tensors)
      if (t.name == n) return t.dtype;
    ADD_FAILURE() << n;
    return DType::I8;
  };
  EXPECT_EQ(find(*q4, "token_embd.weight"), DType::Q4_0);
  EXPECT_EQ(find(*q4, "output.weight"), DType::Q6_K);
  EXPECT_EQ(find(*q4, "blk.3.ffn_down.weight"), DType::Q4_0);
  EXPECT_EQ(find(*q4, "blk.3.attn_norm.weight"), DType::F32);
  EXPECT_TRUE(q4->fallbacks.empty());
  auto q8 = eval::plan_synthetic_model(shape("tinyllama-1.1b"), DType::Q8_0);
  EXPECT_EQ(find(*q8, "output.weight"), DType::Q8_0);
  // Tied: the embedding (also the output) stays F16.
  auto tied = eval::plan_synthetic_model(shape("smollm2-135m"), DType::Q4_0);
  EXPECT_EQ(find(*tied, "token_embd.weight"), DType::F16);
  // K types: rows of 576 fall back per tensor, ffn_down's rows of 1536 keep the K type.
  auto k = eval::plan_synthetic_model(shape("smollm2-135m"), DType::Q4_K);
  EXPECT_EQ(find(*k, "blk.0.attn_q.weight"), DType::Q5_0);
  EXPECT_EQ(find(*k, "blk.0.ffn_down.weight"), DType::Q4_K);
  EXPECT_EQ(k->fallbacks.size(), size_t(30 * 6));  // q, k, v, o, gate, up per layer
  EXPECT_NE(k->fallbacks[0].find("q4_k -> q5_0"), std::string::npos) << k->fallbacks[0];
  auto q6 = eval::plan_synthetic_model(shape("smollm2-135m"), DType::Q6_K);
  EXPECT_EQ(find(*q6, "blk.0.attn_q.weight"), DType::Q8_0);
  // llama3 rope scaling is written as llama.cpp does: rope_freqs.weight, n_rot / 2 floats.
  auto l3 = eval::plan_synthetic_model(shape("llama-3.2-1b"), DType::Q8_0);
  bool found = false;
  for (const auto& t : l3->tensors)
    if (t.name == "rope_freqs.weight") found = t.nelements() == 32 && t.dtype == DType::F32;
  EXPECT_TRUE(found);
}

// edgeglm's own formats: groups of 128 do not divide SmolLM2's rows of 576, so those fall back
// to the 32-group layout; per-row int8 fits every matrix and is also its own output type.
TEST(Synthetic, OwnFormatsPlanWithTheirFallbacks) {
  auto find = [](const eval::SyntheticPlan& p, const std::string& n) {
    for (const auto& t : p.tensors)
      if (t.name == n) return t.dtype;
    ADD_FAILURE() << n;
    return DType::I8;
  };
  auto g = eval::plan_synthetic_model(shape("smollm2-135m"), *eval::synthetic_type_from_name("u4_g128"));
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(find(*g, "blk.0.attn_q.weight"), DType::Q4_1);
  EXPECT_EQ(find(*g, "blk.0.ffn_down.weight"), DType::U4_G128);
  EXPECT_NE(g->fallbacks[0].find("u4_g128 -> q4_1"), std::string::npos) << g->fallbacks[0];
  auto i8 = eval::plan_synthetic_model(shape("tinyllama-1.1b"), DType::I8_ROW);
  ASSERT_TRUE(i8.ok());
  EXPECT_EQ(find(*i8, "output.weight"), DType::I8_ROW);
  EXPECT_EQ(find(*i8, "blk.0.attn_k.weight"), DType::I8_ROW);
  EXPECT_TRUE(i8->fallbacks.empty());
}

TEST(Synthetic, UnknownNamesListTheChoices) {
  auto s = eval::find_synthetic_shape("llama-70b");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("llama-70b"), std::string::npos);
  EXPECT_NE(s.status().message().find("smollm2-135m, qwen2.5-0.5b"), std::string::npos)
      << s.status().message();
  auto t = eval::synthetic_type_from_name("q3_k");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("q4_0"), std::string::npos) << t.status().message();
  EXPECT_FALSE(eval::synthetic_type_from_name("Q8_0").ok());  // lower case only
  EXPECT_EQ(eval::synthetic_type_from_name("q5_k").value(), DType::Q5_K);
}

TEST(Synthetic, FileLoadsWithTheShapesConfigTypesAndSize) {
  const SyntheticShape& s = shape("tiny-test");
  const std::string path = write("tiny-test", DType::Q4_K, "synth_tiny_q4k.gguf");
  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const model::ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch_name, "llama");
  EXPECT_EQ(c.n_embd, s.n_embd);
  EXPECT_EQ(c.n_layer, s.n_layer);
  EXPECT_EQ(c.n_head, s.n_head);
  EXPECT_EQ(c.n_head_kv, s.n_head_kv);
  EXPECT_EQ(c.head_dim, s.head_dim);
  EXPECT_EQ(c.n_ff, s.n_ff);
  EXPECT_EQ(c.n_vocab, s.n_vocab);
  EXPECT_EQ(c.rope.n_rot, s.n_rot);
  EXPECT_FLOAT_EQ(c.rope.base, s.rope_base);
  EXPECT_FALSE((*m)->weights().tied_output);

  // Rows of 64 cannot hold Q4_K blocks: q5_0 (llama.cpp's fallback); ffn_down's rows of 256 can.
  EXPECT_EQ(type_of(**m, "token_embd.weight"), DType::Q5_0);
  EXPECT_EQ(type_of(**m, "output.weight"), DType::Q8_0);  // Q6_K falls back the same way
  EXPECT_EQ(type_of(**m, "blk.1.attn_q.weight"), DType::Q5_0);
  EXPECT_EQ(type_of(**m, "blk.1.ffn_down.weight"), DType::Q4_K);
  EXPECT_EQ(type_of(**m, "blk.1.ffn_norm.weight"), DType::F32);

  auto plan = eval::plan_synthetic_model(s, DType::Q4_K);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*m)->weight_bytes(), plan->tensor_bytes);
  EXPECT_EQ((*m)->n_params(), eval::synthetic_param_count(s));
  // Header + tensors, each padded to the 32-byte alignment.
  const uint64_t size = std::filesystem::file_size(path);
  EXPECT_GE(size, plan->tensor_bytes);
  EXPECT_LT(size, plan->tensor_bytes + 32 * plan->tensors.size() + 64 * 1024);

  // The vocabulary loads and byte fallback covers any text.
  auto tok = tokenizer::Tokenizer::from_metadata((*m)->file().meta);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ((*tok)->n_vocab(), s.n_vocab);
  EXPECT_EQ((*tok)->bos_id(), 1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  const std::vector<int32_t> ids = (*tok)->encode("hi", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ((*tok)->decode(ids), "hi");
  std::filesystem::remove(path);
}

TEST(Synthetic, WeightsAreRandomWithTheIntendedScale) {
  const std::string path = write("tiny-test", DType::F32, "synth_tiny_f32.gguf");
  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const formats::TensorInfo* t = (*m)->file().find("blk.0.ffn_up.weight");
  ASSERT_NE(t, nullptr);
  const float* w = reinterpret_cast<const float*>(t->data);
  const int64_t n = t->nelements();
  double sum = 0, sq = 0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += w[i];
    sq += double(w[i]) * w[i];
    zeros += w[i] == 0.0f;
  }
  const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(sd, 0.02, 0.002);
  EXPECT_LT(zeros, n / 100);
  // Rows differ from each other (one stream per row, not one repeated row).
  EXPECT_NE(std::memcmp(w, w + t->shape[0], size_t(t->shape[0]) * sizeof(float)), 0);
  const formats::TensorInfo* norm = (*m)->file().find("blk.0.attn_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(reinterpret_cast<const float*>(norm->data)[5], 1.0f);
  std::filesystem::remove(path);
}

TEST(Synthetic, SameSeedSameBytesWhateverTheThreadCount) {
  const std::string a = write("tiny-test", DType::Q8_0, "synth_det_a.gguf", /*threads=*/1, 7);
  const std::string b = write("tiny-test", DType::Q8_0, "synth_det_b.gguf", /*threads=*/2, 7);
  const std::string c = write("tiny-test", DType::Q8_0, "synth_det_c.gguf", /*threads=*/2, 8);
  const std::string ba = file_bytes(a), bb = file_bytes(b), bc = file_bytes(c);
  ASSERT_GT(ba.size(), 100000u);
  EXPECT_TRUE(ba == bb);
  ASSERT_EQ(ba.size(), bc.size());  // only the seed value in the metadata and the weights differ
  size_t differing = 0;
  for (size_t i = 0; i < ba.size(); ++i) differing += ba[i] != bc[i];
  EXPECT_GT(differing, ba.size() / 2);
  for (const auto& p : {a, b, c}) std::filesystem::remove(p);
}

TEST(Synthetic, GlmShapeRunsThroughTheForwardPass) {
  const SyntheticShape& s = shape("tiny-glm-test");
  const std::string path = write("tiny-glm-test", DType::Q8_0, "synth_glm.gguf");
  auto m = model::Model::load(path);
  ASSERT_TRUE(m.ok()) << m.status().message();
  const model::ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.arch, model::Arch::kGlm);
  EXPECT_EQ(c.rope.n_rot, s.head_dim / 2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE((*m)->weights().tied_output);
  EXPECT_EQ((*m)->file().find("blk.0.ffn_up.weight")->shape[1], 2 * s.n_ff);
  EXPECT_EQ(type_of(**m, "token_embd.weight"), DType::F16);
  ThreadPool pool(2);
  model::ContextOptions co;
  co.n_ctx = 16;
  co.n_ubatch = 8;
  auto ctx = model::Context::create(**m, co, pool);
  ASSERT_TRUE(ctx.ok()) << ctx.status().message();
  const int32_t ids[] = {1, 100, 200, 299};
  ASSERT_TRUE((*ctx)->decode(ids, 4).is_ok());
  const float* logits = (*ctx)->logits();
  double norm = 0;
  for (int64_t i = 0; i < c.n_vocab; ++i) {
    ASSERT_TRUE(std::isfinite(logits[i])) << i;
    norm += std::fabs(logits[i]);
  }
  EXPECT_GT(norm, 0.0);
  std::filesystem::remove(path);
}

TEST(Synthetic, CacheReusesValidFilesAndRewritesStaleOnes) {
  const std::string dir = unique_path("synth_cache");
  std::filesystem::remove_all(dir);
  ThreadPool pool(2);
  const SyntheticShape& s = shape("tiny-test");
  bool created = false;
  auto p1 = eval::ensure_synthetic_model(s, DType::Q8_0, dir, pool, nullptr, 1, &created);
  ASSERT_TRUE(p1.ok()) << p1.status().message();
  EXPECT_TRUE(created);
  EXPECT_EQ(*p1, dir + "/tiny-test-q8_0.gguf");
  EXPECT_FALSE(std::filesystem::exists(*p1 + ".tmp"));
  const auto mtime = std::filesystem::last_write_time(*p1);
  auto p2 = eval::ensure_synthetic_model(s, DType::Q8_0, dir, pool, nullptr, 1, &created);
  ASSERT_TRUE(p2.ok());
  EXPECT_FALSE(created);
  EXPECT_EQ(std::filesystem::last_write_time(*p2), mtime);

  // A file of other types under the name (an older generator): rewritten.
  ASSERT_TRUE(eval::write_synthetic_model(s, DType::F16, *p1, pool).is_ok());
  auto p3 = eval::ensure_synthetic_model(s, DType::Q8_0, dir, pool, nullptr, 1, &created);
  ASSERT_TRUE(p3.ok());
  EXPECT_TRUE(created);
  auto m = model::Model::load(*p3);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(type_of(**m, "blk.0.attn_q.weight"), DType::Q8_0);
  std::filesystem::remove_all(dir);
}

TEST(Synthetic, UnwritableCacheDirIsAClearError) {
  const std::string file = unique_path("synth_not_a_dir");
  std::ofstream(file) << "x";
  ThreadPool pool(1);
  auto r = eval::ensure_synthetic_model(shape("tiny-test"), DType::Q8_0, file + "/sub", pool);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cache directory " + file + "/sub"), std::string::npos)
      << r.status().message();
  std::filesystem::remove(file);
}

TEST(Synthetic, CacheDirComesFromTheEnvironment) {
  EXPECT_EQ(eval::synthetic_cache_dir("/x/y").value(), "/x/y");
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string saved = old ? old : "";
  ::setenv("XDG_CACHE_HOME", "/tmp/xdg", 1);
  EXPECT_EQ(eval::synthetic_cache_dir().value(), "/tmp/xdg/edgeglm/synthetic");
  ::unsetenv("XDG_CACHE_HOME");
  if (const char* home = std::getenv("HOME")) {
    EXPECT_EQ(eval::synthetic_cache_dir().value(), std::string(home) + "/.cache/edgeglm/synthetic");
  }
  if (old) ::setenv("XDG_CACHE_HOME", saved.c_str(), 1);
}
