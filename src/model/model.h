// A loaded model (file + config + bound weights) and a Context: one sequence's KV cache and
// activation buffers, all planned up front in one arena so decoding allocates nothing.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "formats/model_file.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/weights.h"

namespace edgeglm::model {

class Model {
 public:
  // Opens a .gguf, a llama2.c .bin (+ tokenizer.bin) or a Hugging Face directory.
  static Result<std::unique_ptr<Model>> load(const std::string& path,
                                             const std::string& tokenizer_path = "");
  static Result<std::unique_ptr<Model>> from_file(std::unique_ptr<formats::ModelFile> file);

  const ModelConfig& config() const { return config_; }
  const Weights& weights() const { return weights_; }
  const formats::ModelFile& file() const { return *file_; }

  size_t weight_bytes() const;                          // bytes of all tensors
  int64_t n_params() const;                             // elements of all tensors
  // K and V of every layer for n_ctx positions, stored as kv_type (F32, F16 or Q8_0).
  size_t kv_cache_bytes(int64_t n_ctx, DType kv_type = DType::F16) const;
  // Bytes read from weights per decoded token (every matrix once; the embedding row only).
  size_t bytes_per_token() const;

 private:
  std::unique_ptr<formats::ModelFile> file_;
  ModelConfig config_;
  Weights weights_;
};

// Which matrix product an activation feeds; products that share an input share a site.
enum class MatmulSite {
  kAttnIn,   // attn_q / attn_k / attn_v (the attention norm's output)
  kAttnOut,  // attn_output (the attention heads' output)
  kFfnIn,    // ffn_gate / ffn_up (the FFN norm's output)
  kFfnDown,  // ffn_down (silu(gate) * up)
  kOutput,   // output / tied token_embd (the final norm's output; only tokens with logits)
};

// Sees the input of every matrix product before it runs: how calibration collects activation
// statistics through the real forward pass. x is (n_tok, n_in), row-major.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void observe(MatmulSite site, int64_t layer, const float* x, int64_t n_tok,
                       int64_t n_in) = 0;
};

struct ContextOptions {
  int64_t n_ctx = 2048;      // positions the KV cache holds (not the model's maximum)
  int64_t n_ubatch = 64;     // tokens per forward pass during prefill
  bool all_logits = false;   // keep logits of every token of a ubatch (perplexity), not just the last
  // KV cache element type: F16 (default: half the memory of F32, and what attention reads per
  // token), F32, or Q8_0 (int8 blocks of 32 with an f16 scale; head_dim must be a multiple of 32).
  DType kv_type = DType::F16;
  // Independent sequences the context holds, each with its own KV cache of n_ctx positions;
  // decode_batch advances several of them in one forward pass (the weights are read once).
  int32_t n_seq = 1;
  ActivationObserver* observer = nullptr;  // not owned; must outlive the Context
};

// One token of a multi-sequence batch: it goes to sequence `seq` at that sequence's next position.
struct BatchToken {
  int32_t token = 0;
  int32_t seq = 0;
  bool logits = false;  // keep this token's logits (one row each, in batch order)
};

// "f32" | "f16" | "q8_0" -> the cache type; anything else is an error naming the choices.
Result<DType> parse_kv_type(std::string_view name);

class Context {
 public:
  static Result<std::unique_ptr<Context>> create(const Model& model, const ContextOptions& opts,
                                                 ThreadPool& pool);
  // Bytes create() reserves (KV cache + activations + scratch) for these options and threads.
  static size_t planned_bytes(const Model& model, const ContextOptions& opts, int n_threads);

  // Runs tokens at positions n_past() .. n_past()+n-1 and appends them to the KV cache.
  // all_logits: logits for every token (then n <= n_ubatch); else only for the last one.
  // Fails without changing state if the tokens do not fit in the context or an id is out of range.
  Status decode(const int32_t* tokens, int64_t n, bool all_logits = false);

  // Runs one batch of at most n_ubatch tokens from any of the n_seq sequences; the tokens of one
  // sequence must appear in order. Logits are kept for the tokens flagged (at most
  // max(n_seq, n_ubatch if all_logits)), row r being the r-th flagged token. Fails without changing
  // state when a sequence id, token id or position is out of range.
  Status decode_batch(const BatchToken* batch, int64_t n);

  // Logits of the last decode: row i is token i (all_logits) or row 0 is the last token.
  const float* logits(int64_t row = 0) const { return logits_ + row * config_.n_vocab; }
  int64_t n_vocab() const { return config_.n_vocab; }
  int64_t n_past(int32_t seq = 0) const { return n_past_[size_t(seq)]; }
  int64_t n_ctx() const { return opts_.n_ctx; }
  int32_t n_seq() const { return opts_.n_seq; }
  // Forgets positions >= n (keeps a shared prompt prefix cached between turns).
  void truncate(int64_t n) { truncate(0, n); }
  void truncate(int32_t seq, int64_t n) {
    int64_t& p = n_past_[size_t(seq)];
    p = n < p ? n : p;
  }
  // Empties a sequence and returns its KV pages to the system (a freed serving slot costs no RSS).
  void release(int32_t seq);
  // Bytes of KV cache the sequences' positions occupy now (what a memory budget counts).
  size_t kv_bytes_in_use() const;
  size_t kv_bytes_per_position() const {
    return 2 * size_t(config_.n_layer) * size_t(config_.n_head_kv) * kv_head_bytes_;
  }
  // Activations + scratch (arena) + the KV cache's reserved address space.
  size_t memory_bytes() const { return arena_.capacity() + kv_.size(); }

 private:
  Context(const Model& m, const ContextOptions& o, ThreadPool& p)
      : model_(m), config_(m.config()), opts_(o), pool_(p) {}
  // Runs the n tokens staged in tok_/seq_/pos_ (at most n_ubatch); logits for the n_out staged
  // in out_rows_.
  void forward(int64_t n, int64_t n_out);
  // The attention runs of the n staged tokens (att_runs_, att_n_, att_max_pos_), once per pass.
  void plan_attention(int64_t n);
  void attention(int64_t il, int64_t n);
  // attention() of n tokens, one per sequence, with each (token, kv head) item's keys in `parts`.
  void attention_in_parts(int64_t il, int64_t n, int64_t parts, float scale, int64_t group, int64_t scratch_floats);
  // Kv head h's slice of position pos in layer il of sequence seq.
  char* kv_slice(char* cache, int32_t seq, int64_t il, int64_t h, int64_t pos) const {
    return cache + (((size_t(seq) * size_t(config_.n_layer) + size_t(il)) * size_t(config_.n_head_kv) + size_t(h)) *
                        size_t(opts_.n_ctx) + size_t(pos)) * kv_head_bytes_;
  }
  // The attention kernels' view of layer il of sequence seq from position pos on.
  kernels::KvView kv_view(char* cache, int32_t seq, int64_t il, int64_t pos) const {
    return {opts_.kv_type, kv_slice(cache, seq, il, 0, pos), kv_head_bytes_, size_t(opts_.n_ctx) * kv_head_bytes_};
  }
  // One position's kv_dim values (all heads) into the cache, as opts_.kv_type.
  void store_kv(const float* x, char* cache, int32_t seq, int64_t il, int64_t pos) const;

  const Model& model_;
  const ModelConfig& config_;
  ContextOptions opts_;
  ThreadPool& pool_;
  Arena arena_;
  std::vector<int64_t> n_past_;  // (n_seq) positions each sequence holds

  // KV cache, head-major: per sequence, layer and kv head, n_ctx slices of head_dim elements of
  // opts_.kv_type, kv_head_bytes_ each, so that one head's attention reads one contiguous run of
  // memory (with the heads side by side in each position's row, a head read a strided third of
  // every row: SmolLM2's decode at 4096 positions spent 63% of its time in attention).
  // Lazily committed: only written positions cost memory.
  LazyPages kv_;
  char* k_cache_ = nullptr;  // (n_seq, n_layer, n_head_kv, n_ctx, head_dim)
  char* v_cache_ = nullptr;  // (n_seq, n_layer, n_head_kv, n_ctx, head_dim)
  size_t kv_head_bytes_ = 0;  // one head's slice of one position
  // The staged ubatch: token, sequence and position of each of its U tokens; which rows keep logits.
  std::vector<int32_t> tok_;       // (U)
  std::vector<int32_t> seq_;       // (U)
  std::vector<int64_t> pos_;       // (U)
  std::vector<int64_t> out_rows_;  // (logit rows) ubatch index of each kept row
  int64_t n_logit_rows_ = 1;
  std::vector<int64_t> scratch_pos_;  // (n_seq) positions while a batch is checked
  std::vector<int64_t> att_n_;        // (U) positions each staged token sees: pos + 1
  std::vector<int64_t> att_runs_;     // first token of each attention run, then U's end
  int64_t att_max_pos_ = 0;           // the latest position among the staged tokens
  std::vector<float> att_parts_;      // decode attention split over the keys: each part's output
  std::vector<float> att_stats_;      // and its rows' softmax maximum and sum (sized in create)
  // Activations for one ubatch of U = n_ubatch tokens.
  float* x_ = nullptr;        // (U, n_embd) residual stream
  float* h_ = nullptr;        // (U, n_embd) normed input / block output
  float* q_ = nullptr;        // (U, q_dim)
  float* k_ = nullptr;        // (U, kv_dim)
  float* v_ = nullptr;        // (U, kv_dim)
  float* att_ = nullptr;      // (U, q_dim) attention output
  float* gate_ = nullptr;     // (U, n_ff)
  float* up_ = nullptr;       // (U, n_ff)
  float* rope_ = nullptr;     // (U, n_rot) cos/sin per token of the ubatch
  float* scores_ = nullptr;   // (n_threads, attention_scratch_floats) attention scratch
  float* logits_ = nullptr;   // (U or 1, n_vocab)
};

}  // namespace edgeglm::model
