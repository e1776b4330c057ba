// Synthetic models: random-weight GGUF files with the exact shape, architecture metadata and
// tensor-type mix of real published models, so `bench` can measure speed and memory for a model
// without downloading it. The weights are noise (approximately normal, std 0.02), so the text a
// synthetic model generates means nothing; its size, bytes per token and kernels are the real
// model's.
//
// Tensor types follow llama.cpp's default `llama-quantize` mix for a plain type:
//  * 2-D weight matrices get the requested type;
//  * tied models (output = token_embd) keep token_embd in F16, as the published files do;
//  * untied models: token_embd gets the type, output.weight gets Q6_K when the type is a 4/5-bit
//    one, else the type itself (q8_0, q6_k, f16, bf16, f32);
//  * a K type (q4_k, q5_k, q6_k) needs rows of a multiple of 256: a matrix whose row (ne[0]) is
//    not falls back per tensor as llama.cpp does (q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0);
//    edgeglm's 64/128-groups fall back to the 32-group layouts (i4_g* -> q4_0, u4_g* -> q4_1);
//  * norms, biases and rope_freqs stay F32.
// The vocabulary is a minimal SentencePiece-style one ("<unk>", "<s>", "</s>", the 256 byte tokens
// "<0x00>".."<0xFF>", the word-start piece U+2581, then "tok%d") that edgeglm and llama.cpp both
// load; any text encodes through byte fallback.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "formats/model_file.h"

namespace edgeglm::eval {

struct SyntheticShape {
  const char* name;     // "smollm2-135m"
  const char* source;   // the model whose config.json the numbers come from
  const char* arch;     // general.architecture as written: llama, qwen2, chatglm
  int64_t n_embd;
  int64_t n_layer;
  int64_t n_head;
  int64_t n_head_kv;
  int64_t head_dim;
  int64_t n_ff;
  int64_t n_vocab;
  int64_t n_rot;        // rotated dims per head (GLM: partial rotary, head_dim / 2)
  int64_t n_ctx_train;
  float rope_base;
  float norm_eps;
  bool tied;            // no output.weight: the output projection is token_embd
  bool qkv_bias;        // attn_q/k/v.bias
  bool fused_gate_up;   // GLM: ffn_up holds gate|up (2 * n_ff rows), no ffn_gate
  bool llama3_rope;     // llama3 rope scaling (factor 32, low 1, high 4, original ctx 8192),
                        // written as rope_freqs.weight as llama.cpp's converter does
  bool test_only;       // tiny shapes for the test suite

  int64_t q_dim() const { return n_head * head_dim; }
  int64_t kv_dim() const { return n_head_kv * head_dim; }
};

// Every shape, real ones first, then the test-only ones.
const std::vector<SyntheticShape>& synthetic_shapes();
// Unknown names are an error listing the choices.
Result<const SyntheticShape*> find_synthetic_shape(std::string_view name);
// Elements of all tensors the shape's file holds (what `info` reports as parameters).
int64_t synthetic_param_count(const SyntheticShape& shape);

// The accepted --type names, in the order help texts list them.
const std::vector<std::string>& synthetic_type_names();
// Lower-case names only; anything else is an error listing the choices.
Result<DType> synthetic_type_from_name(std::string_view name);

// What the file will hold: tensors (name, type, shape, nbytes; no data) in file order, plus one
// line per tensor whose type fell back ("blk.0.attn_q.weight: q4_k -> q5_0 (row of 576 is not a
// multiple of 256)").
struct SyntheticPlan {
  formats::Metadata meta;
  std::vector<formats::TensorInfo> tensors;
  std::vector<std::string> fallbacks;
  uint64_t tensor_bytes = 0;  // sum of nbytes (without alignment padding)
};
Result<SyntheticPlan> plan_synthetic_model(const SyntheticShape& shape, DType type,
                                           uint64_t seed = 1);

// progress(tensors_done, tensors_total) after each tensor; may be null.
using SyntheticProgress = std::function<void(size_t, size_t)>;

// Writes the model to `path` (through path.tmp + rename, so an interrupted run never leaves a
// partial file under the final name). Weights are quantized with the reference quantizers in
// parallel on `pool`; the bytes depend only on (shape, type, seed), not on the thread count.
Status write_synthetic_model(const SyntheticShape& shape, DType type, const std::string& path,
                             ThreadPool& pool, const SyntheticProgress& progress = nullptr,
                             uint64_t seed = 1);

// $XDG_CACHE_HOME/edgeglm/synthetic, else $HOME/.cache/edgeglm/synthetic; `override` wins when
// not empty. Errors when neither variable is set.
Result<std::string> synthetic_cache_dir(const std::string& override_dir = "");
// "<shape>-<type>[-s<seed>].gguf"
std::string synthetic_file_name(const SyntheticShape& shape, DType type, uint64_t seed = 1);

// The cached file for (shape, type, seed) in `dir`, written first if missing or if the file there
// does not hold the planned tensors (an older generator). `created` tells which happened.
// Errors name the directory when it cannot be created or written.
Result<std::string> ensure_synthetic_model(const SyntheticShape& shape, DType type,
                                           const std::string& dir, ThreadPool& pool,
                                           const SyntheticProgress& progress = nullptr,
                                           uint64_t seed = 1, bool* created = nullptr);

}  // namespace edgeglm::eval
