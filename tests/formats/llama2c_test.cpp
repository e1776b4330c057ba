#include <gtest/gtest.h>

#include <cstring>

#include "format_test_util.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/llama2c/llama2c_reader.h"

namespace edgeglm::formats {
namespace {

using test::Bytes;

// Tiny config: dim 8, hidden 12, 2 layers, 2 heads, 1 kv head (kv_dim 4), vocab 5, seq 4.
constexpr int kDim = 8, kHidden = 12, kLayers = 2, kHeads = 2, kKvHeads = 1, kVocab = 5, kSeq = 4;
constexpr int kKvDim = kDim / kHeads * kKvHeads;
constexpr int kHeadSize = kDim / kHeads;

// Appends n floats numbered from `next`, so each weight's first value is its float index.
void floats(Bytes& b, int n, int& next) {
  for (int k = 0; k < n; ++k) b.f32(float(next++));
}

struct Expect {
  std::string name;
  int first;  // float index of its first element
  std::vector<int64_t> shape;
};

Bytes legacy_checkpoint(bool shared, std::vector<Expect>& ex) {
  Bytes b;
  b.i32(kDim).i32(kHidden).i32(kLayers).i32(kHeads).i32(kKvHeads).i32(shared ? kVocab : -kVocab)
      .i32(kSeq);
  int next = 0;
  auto block = [&](const std::string& pat, int rows, int cols, bool per_layer) {
    for (int l = 0; l < (per_layer ? kLayers : 1); ++l) {
      std::string name = pat;
      if (per_layer) name = "blk." + std::to_string(l) + "." + pat;
      ex.push_back({name, next, rows == 1 ? std::vector<int64_t>{cols}
                                          : std::vector<int64_t>{cols, rows}});
      floats(b, rows * cols, next);
    }
  };
  block("token_embd.weight", kVocab, kDim, false);
  block("attn_norm.weight", 1, kDim, true);
  block("attn_q.weight", kDim, kDim, true);
  block("attn_k.weight", kKvDim, kDim, true);
  block("attn_v.weight", kKvDim, kDim, true);
  block("attn_output.weight", kDim, kDim, true);
  block("ffn_norm.weight", 1, kDim, true);
  block("ffn_gate.weight", kHidden, kDim, true);
  block("ffn_down.weight", kDim, kHidden, true);
  block("ffn_up.weight", kHidden, kDim, true);
  block("output_norm.weight", 1, kDim, false);
  floats(b, kSeq * kHeadSize, next);  // freq_cis_real + freq_cis_imag
  if (!shared) block("output.weight", kVocab, kDim, false);
  return b;
}

Bytes v1_checkpoint(bool shared, std::vector<Expect>& ex) {
  Bytes b;
  b.u32(kLlama2cMagic).i32(1);
  b.i32(kDim).i32(kHidden).i32(kLayers).i32(kHeads).i32(kKvHeads).i32(kVocab).i32(kSeq);
  b.u8(shared ? 1 : 0).pad_to(256);
  int next = 0;
  auto block = [&](const std::string& pat, int rows, int cols, bool per_layer) {
    for (int l = 0; l < (per_layer ? kLayers : 1); ++l) {
      std::string name = per_layer ? "blk." + std::to_string(l) + "." + pat : pat;
      ex.push_back({name, next, rows == 1 ? std::vector<int64_t>{cols}
                                          : std::vector<int64_t>{cols, rows}});
      floats(b, rows * cols, next);
    }
  };
  block("attn_norm.weight", 1, kDim, true);
  block("ffn_norm.weight", 1, kDim, true);
  block("output_norm.weight", 1, kDim, false);
  block("token_embd.weight", kVocab, kDim, false);
  block("attn_q.weight", kDim, kDim, true);
  block("attn_k.weight", kKvDim, kDim, true);
  block("attn_v.weight", kKvDim, kDim, true);
  block("attn_output.weight", kDim, kDim, true);
  block("ffn_gate.weight", kHidden, kDim, true);
  block("ffn_down.weight", kDim, kHidden, true);
  block("ffn_up.weight", kHidden, kDim, true);
  if (!shared) block("output.weight", kVocab, kDim, false);
  return b;
}

void check(const Bytes& b, const std::vector<Expect>& ex, bool shared) {
  auto r = parse_llama2c(b.data(), b.size(), "ckpt.bin");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ModelFile& mf = **r;
  EXPECT_EQ(mf.kind, FileKind::kLlama2c);
  EXPECT_EQ(mf.architecture(), "llama");
  EXPECT_EQ(*mf.get_int("llama.embedding_length").value(), kDim);
  EXPECT_EQ(*mf.get_int("llama.feed_forward_length").value(), kHidden);
  EXPECT_EQ(*mf.get_int("llama.block_count").value(), kLayers);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count").value(), kHeads);
  EXPECT_EQ(*mf.get_int("llama.attention.head_count_kv").value(), kKvHeads);
  EXPECT_EQ(*mf.get_int("llama.context_length").value(), kSeq);
  EXPECT_EQ(*mf.get_int("llama.rope.dimension_count").value(), kHeadSize);
  EXPECT_EQ(*mf.get_int("llama.vocab_size").value(), kVocab);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.rope.freq_base").value()), 10000.0f);
  EXPECT_FLOAT_EQ(float(*mf.get_float("llama.attention.layer_norm_rms_epsilon").value()), 1e-5f);
  EXPECT_EQ(mf.get_string("general.name"), "ckpt");
  ASSERT_EQ(mf.tensors.size(), ex.size());
  EXPECT_EQ(mf.find("output.weight") != nullptr, !shared);
  for (const Expect& e : ex) {
    const TensorInfo* t = mf.find(e.name);
    ASSERT_NE(t, nullptr) << e.name;
    EXPECT_EQ(t->shape, e.shape) << e.name;
    EXPECT_EQ(t->dtype, DType::F32);
    const float* f = reinterpret_cast<const float*>(t->data);
    EXPECT_EQ(f[0], float(e.first)) << e.name;
    EXPECT_EQ(f[t->nelements() - 1], float(e.first + t->nelements() - 1)) << e.name;
    EXPECT_GE(t->data, b.data());
    EXPECT_LE(t->data + t->nbytes, b.data() + b.size());
  }
  EXPECT_TRUE(check_tensor_overlaps(mf.tensors, "x").is_ok());
}

TEST(Llama2c, LegacySharedAndUntied) {
  for (bool shared : {true, false}) {
    std::vector<Expect> ex;
    Bytes b = legacy_checkpoint(shared, ex);
    check(b, ex, shared);
  }
}

TEST(Llama2c, Version1SharedAndUntied) {
  for (bool shared : {true, false}) {
    std::vector<Expect> ex;
    Bytes b = v1_checkpoint(shared, ex);
    check(b, ex, shared);
  }
}

TEST(Llama2c, RejectsBadCheckpoints) {
  std::vector<Expect> ex;
  Bytes good = legacy_checkpoint(true, ex);
  auto err = [](const Bytes& b) {
    auto r = parse_llama2c(b.data(), b.size(), "m.bin");
    EXPECT_FALSE(r.ok());
    if (r.ok()) return std::string();
    EXPECT_EQ(r.status().message().rfind("m.bin: ", 0), 0u);
    return r.status().message();
  };
  Bytes shorter = good;
  shorter.b.pop_back();
  EXPECT_NE(err(shorter).find("bytes but the file has"), std::string::npos);
  Bytes longer = good;
  longer.b += "xxxx";
  EXPECT_NE(err(longer).find("implies"), std::string::npos);
  Bytes zero_dim = good;
  std::memset(zero_dim.b.data(), 0, 4);
  EXPECT_NE(err(zero_dim).find("positive"), std::string::npos);
  Bytes huge;
  huge.i32(INT32_MAX).i32(INT32_MAX).i32(INT32_MAX).i32(1).i32(1).i32(INT32_MIN).i32(INT32_MAX);
  EXPECT_FALSE(err(huge).empty());
  Bytes odd_heads;
  odd_heads.i32(9).i32(4).i32(1).i32(2).i32(1).i32(4).i32(4);
  EXPECT_NE(err(odd_heads).find("multiple of n_heads"), std::string::npos);
  Bytes kv;
  kv.i32(8).i32(4).i32(1).i32(2).i32(3).i32(4).i32(4);
  EXPECT_NE(err(kv).find("n_kv_heads"), std::string::npos);
  Bytes v2;
  v2.u32(kLlama2cMagic).i32(2).pad_to(256);
  EXPECT_NE(err(v2).find("version 2"), std::string::npos);
  Bytes v7;
  v7.u32(kLlama2cMagic).i32(7).pad_to(256);
  EXPECT_NE(err(v7).find("version 7"), std::string::npos);
  EXPECT_NE(err(Bytes().i32(1)).find("truncated"), std::string::npos);
}

TEST(Llama2c, Stories260KMatchesItsGguf) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto bin = read_llama2c(test::shared_path("models/stories260K/stories260K.bin"));
  ASSERT_TRUE(bin.ok()) << bin.status().message();
  auto gguf = read_gguf(test::shared_path("models/stories260K/stories260K.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  const ModelFile& b = **bin;
  const ModelFile& g = **gguf;
  EXPECT_EQ(*b.get_int("llama.block_count").value(), 5);
  EXPECT_EQ(*b.get_int("llama.embedding_length").value(), 64);
  EXPECT_EQ(*b.get_int("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(*b.get_int("llama.attention.head_count").value(), 8);
  EXPECT_EQ(*b.get_int("llama.attention.head_count_kv").value(), 4);
  EXPECT_EQ(*b.get_int("llama.context_length").value(), 512);
  EXPECT_EQ(*b.get_int("llama.vocab_size").value(), 512);
  EXPECT_EQ(*b.get_int("llama.rope.dimension_count").value(),
            *g.get_int("llama.rope.dimension_count").value());
  // The .bin has a shared classifier; the GGUF stores a copy of the embedding as output.weight.
  ASSERT_EQ(b.tensors.size(), 47u);
  EXPECT_EQ(b.find("output.weight"), nullptr);
  for (const TensorInfo& t : b.tensors) {
    const TensorInfo* o = g.find(t.name);
    ASSERT_NE(o, nullptr) << t.name;
    EXPECT_EQ(t.shape, o->shape) << t.name;
    ASSERT_EQ(t.nbytes, o->nbytes) << t.name;
    EXPECT_EQ(std::memcmp(t.data, o->data, t.nbytes), 0) << t.name << " differs";
  }
  const TensorInfo* emb = b.find("token_embd.weight");
  EXPECT_EQ(std::memcmp(emb->data, g.find("output.weight")->data, emb->nbytes), 0);
}

}  // namespace
}  // namespace edgeglm::formats
