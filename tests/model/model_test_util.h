// Shared steps of the model tests: decode a prompt keeping every position's logits, and continue
// it greedily through the KV cache.
#pragma once
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::test {

// GGUF metadata of a small llama (no vocabulary: tests feed token ids).
inline formats::Metadata llama_metadata(int64_t n_embd, int64_t n_ff, int64_t n_layer,
                                        int64_t n_head, int64_t n_head_kv) {
  formats::Metadata meta;
  meta["general.architecture"] = formats::MetaValue::from_string("llama");
  meta["llama.embedding_length"] = formats::MetaValue::from_u32(uint32_t(n_embd));
  meta["llama.feed_forward_length"] = formats::MetaValue::from_u32(uint32_t(n_ff));
  meta["llama.block_count"] = formats::MetaValue::from_u32(uint32_t(n_layer));
  meta["llama.attention.head_count"] = formats::MetaValue::from_u32(uint32_t(n_head));
  meta["llama.attention.head_count_kv"] = formats::MetaValue::from_u32(uint32_t(n_head_kv));
  meta["llama.attention.layer_norm_rms_epsilon"] = formats::MetaValue::from_f32(1e-5f);
  return meta;
}

// A model file loaded with the tokenizer from its metadata; failures are recorded as test
// failures and leave the members null.
struct Loaded {
  std::unique_ptr<model::Model> model;
  std::unique_ptr<tokenizer::Tokenizer> tok;
};
inline Loaded load(const std::string& path) {
  Loaded l;
  auto m = model::Model::load(path);
  EXPECT_TRUE(m.ok()) << path << ": " << m.status().message();
  if (!m.ok()) return l;
  auto t = tokenizer::Tokenizer::from_metadata((*m)->file().meta);
  EXPECT_TRUE(t.ok()) << t.status().message();
  l.model = std::move(m).value();
  if (t.ok()) l.tok = std::move(t).value();
  return l;
}

// A context holding the prompt, with the logits of every prompt position (ctx->logits(t)).
// Null (with a test failure recorded) if the context cannot be made or the decode fails.
inline std::unique_ptr<model::Context> decode_prompt(const model::Model& m,
                                                     const std::vector<int32_t>& ids,
                                                     ThreadPool& pool,
                                                     DType kv_type = DType::F32) {
  model::ContextOptions co;
  co.kv_type = kv_type;
  co.n_ctx = 64;
  co.n_ubatch = int64_t(ids.size());
  co.all_logits = true;
  auto ctx = model::Context::create(m, co, pool);
  EXPECT_TRUE(ctx.ok()) << ctx.status().message();
  if (!ctx.ok()) return nullptr;
  Status st = (*ctx)->decode(ids.data(), int64_t(ids.size()), true);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return st.is_ok() ? std::move(ctx).value() : nullptr;
}

// Loads `path` and returns the logits of every position of `ids` (empty, with a failure
// recorded, if the model cannot be loaded or run).
inline std::vector<std::vector<float>> prompt_logits(const std::string& path,
                                                     const std::vector<int32_t>& ids) {
  auto m = model::Model::load(path);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return {};
  ThreadPool pool(2);
  auto ctx = decode_prompt(**m, ids, pool);
  if (!ctx) return {};
  const int64_t v = ctx->n_vocab();
  std::vector<std::vector<float>> out;
  for (size_t t = 0; t < ids.size(); ++t)
    out.emplace_back(ctx->logits(int64_t(t)), ctx->logits(int64_t(t)) + v);
  return out;
}

// n greedy tokens after the prompt decoded by decode_prompt (whose last row gives the first).
inline std::vector<int32_t> greedy_continuation(model::Context& ctx, int64_t prompt_len, size_t n) {
  const int64_t V = ctx.n_vocab();
  std::vector<int32_t> gen;
  int32_t next = runtime::Sampler::argmax(ctx.logits(prompt_len - 1), V);
  for (size_t i = 0; i < n; ++i) {
    gen.push_back(next);
    if (i + 1 == n) break;
    Status st = ctx.decode(&next, 1, true);
    EXPECT_TRUE(st.is_ok()) << st.message();
    if (!st.is_ok()) break;
    next = runtime::Sampler::argmax(ctx.logits(0), V);
  }
  return gen;
}

}  // namespace edgeglm::test
