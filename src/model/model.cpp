#include "model/model.h"

#include "kernels/kernels.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace edgeglm::model {

Result<std::unique_ptr<Model>> Model::load(const std::string& path,
                                           const std::string& tokenizer_path) {
  EG_ASSIGN_OR_RETURN(auto file, formats::open_model(path, tokenizer_path));
  return from_file(std::move(file));
}

Result<std::unique_ptr<Model>> Model::from_file(std::unique_ptr<formats::ModelFile> file) {
  std::unique_ptr<Model> m(new Model());
  EG_ASSIGN_OR_RETURN(m->config_, read_config(*file));
  m->file_ = std::move(file);
  EG_ASSIGN_OR_RETURN(m->weights_, bind_weights(*m->file_, m->config_));
  EG_TRY(apply_runtime_layouts(m->weights_, *m->file_));
  return m;
}

size_t Model::weight_bytes() const {
  size_t n = 0;
  for (const auto& t : file_->tensors) n += t.nbytes;
  return n;
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& t : file_->tensors) n += t.nelements();
  return n;
}

size_t Model::kv_cache_bytes(int64_t n_ctx, DType kv_type) const {
  return 2 * size_t(config_.n_layer) * size_t(n_ctx) * dtype_row_bytes(kv_type, config_.kv_dim());
}

Result<DType> parse_kv_type(std::string_view name) {
  if (name == "f16") return DType::F16;
  if (name == "f32") return DType::F32;
  if (name == "q8_0") return DType::Q8_0;
  return Status::error("unknown KV cache type '" + std::string(name) + "' (choices: f16, f32, q8_0)");
}

size_t Model::bytes_per_token() const {
  size_t n = 0;
  for (const auto& t : file_->tensors)
    if (t.name != "token_embd.weight" || weights_.tied_output) n += t.nbytes;
  return n + weights_.token_embd.row_bytes();
}

namespace {

constexpr size_t kNumBuffers = 11;

int64_t logit_rows(const ContextOptions& opts) {
  return std::max<int64_t>(opts.all_logits ? opts.n_ubatch : 1, opts.n_seq);
}

size_t kv_bytes(const ModelConfig& c, const ContextOptions& opts) {  // K or V, all sequences
  return size_t(opts.n_seq) * size_t(c.n_layer) * size_t(opts.n_ctx) *
         dtype_row_bytes(opts.kv_type, c.kv_dim());
}

// Query rows of one attention call: a run of up to attention_token_block tokens x the group.
int64_t attention_rows(const ModelConfig& c, const ContextOptions& opts) {
  const int64_t group = c.n_head / c.n_head_kv;
  return std::min(kernels::attention_token_block(group), opts.n_ubatch) * group;
}

// Floats of each arena buffer, in the order Context::create hands them out.
std::array<size_t, kNumBuffers> buffer_sizes(const ModelConfig& c, const ContextOptions& opts,
                                             int n_threads) {
  const size_t U = size_t(opts.n_ubatch);
  return {U * size_t(c.n_embd),                     // x
          U * size_t(c.n_embd),                     // h
          U * size_t(c.q_dim()),                    // q
          U * size_t(c.kv_dim()),                   // k
          U * size_t(c.kv_dim()),                   // v
          U * size_t(c.q_dim()),                    // att
          U * size_t(c.n_ff),                       // gate
          U * size_t(c.n_ff),                       // up
          U * size_t(c.rope.n_rot),                 // rope cos/sin
          size_t(n_threads) * size_t(kernels::attention_scratch_floats(  // attention scratch
                                  opts.n_ctx, attention_rows(c, opts), c.head_dim)),
          size_t(logit_rows(opts)) * size_t(c.n_vocab)};  // logits
}

}  // namespace

size_t Context::planned_bytes(const Model& model, const ContextOptions& opts, int n_threads) {
  size_t total = 2 * Arena::aligned(kv_bytes(model.config(), opts));
  for (size_t n : buffer_sizes(model.config(), opts, n_threads))
    total += Arena::aligned(n * sizeof(float));
  return total;
}

Result<std::unique_ptr<Context>> Context::create(const Model& model, const ContextOptions& opts,
                                                 ThreadPool& pool) {
  const ModelConfig& c = model.config();
  if (opts.n_ctx < 1 || opts.n_ctx > (int64_t(1) << 24))
    return Status::error("context size " + std::to_string(opts.n_ctx) + " is out of range");
  if (opts.n_ubatch < 1 || opts.n_ubatch > 4096)
    return Status::error("ubatch size " + std::to_string(opts.n_ubatch) + " is out of range");
  if (opts.n_seq < 1 || opts.n_seq > 256)
    return Status::error("sequence count " + std::to_string(opts.n_seq) + " is out of range (1..256)");
  if (opts.kv_type != DType::F32 && opts.kv_type != DType::F16 && opts.kv_type != DType::Q8_0)
    return Status::error(std::string("KV cache type ") + dtype_name(opts.kv_type) +
                         " is not supported (choices: f16, f32, q8_0)");
  if (opts.kv_type == DType::Q8_0 && c.head_dim % 32 != 0)
    return Status::error("KV cache type q8_0 needs a head size that is a multiple of 32; this model's is " +
                         std::to_string(c.head_dim) + " (use f16)");
  std::unique_ptr<Context> ctx(new Context(model, opts, pool));
  const auto sizes = buffer_sizes(c, opts, pool.size());
  size_t arena_bytes = 0;
  for (size_t n : sizes) arena_bytes += Arena::aligned(n * sizeof(float));
  const std::string what = "context of " + std::to_string(opts.n_ctx) + " positions";
  Status st = ctx->arena_.reserve(arena_bytes);
  if (!st.is_ok()) return st.with_context(what);
  const size_t kv = Arena::aligned(kv_bytes(c, opts));
  st = ctx->kv_.reserve(2 * kv);
  if (!st.is_ok()) return st.with_context(what);
  float** bufs[] = {&ctx->x_,     &ctx->h_,    &ctx->q_,     &ctx->k_,
                    &ctx->v_,     &ctx->att_,  &ctx->gate_,  &ctx->up_,
                    &ctx->rope_,  &ctx->scores_, &ctx->logits_};
  static_assert(std::size(bufs) == kNumBuffers);
  for (size_t i = 0; i < kNumBuffers; ++i) *bufs[i] = ctx->arena_.alloc<float>(sizes[i]);
  ctx->k_cache_ = ctx->kv_.data();
  ctx->v_cache_ = ctx->kv_.data() + kv;
  ctx->kv_head_bytes_ = dtype_row_bytes(opts.kv_type, c.head_dim);
  ctx->n_past_.assign(size_t(opts.n_seq), 0);
  ctx->scratch_pos_.assign(size_t(opts.n_seq), 0);
  ctx->tok_.resize(size_t(opts.n_ubatch));
  ctx->seq_.resize(size_t(opts.n_ubatch));
  ctx->pos_.resize(size_t(opts.n_ubatch));
  ctx->att_n_.resize(size_t(opts.n_ubatch));
  ctx->att_runs_.reserve(size_t(opts.n_ubatch) + 1);
  // Decode attention split over the keys (Context::attention_in_parts): fewer than 2T items, each
  // in at most ceil(2T / items) parts, so at most 4T tasks for T threads.
  const size_t split_tasks = 4 * size_t(pool.size());
  ctx->att_parts_.assign(split_tasks * size_t(c.q_dim()), 0.0f);
  ctx->att_stats_.assign(split_tasks * 2 * size_t(c.n_head / c.n_head_kv), 0.0f);
  ctx->n_logit_rows_ = logit_rows(opts);
  ctx->out_rows_.resize(size_t(ctx->n_logit_rows_));
  return ctx;
}

void Context::release(int32_t seq) {
  n_past_[size_t(seq)] = 0;
  const size_t slot = kv_bytes_per_position() / 2 * size_t(opts_.n_ctx);  // one sequence's K (or V)
  kv_.release(size_t(k_cache_ - kv_.data()) + size_t(seq) * slot, slot);
  kv_.release(size_t(v_cache_ - kv_.data()) + size_t(seq) * slot, slot);
}

size_t Context::kv_bytes_in_use() const {
  size_t n = 0;
  for (int64_t p : n_past_) n += size_t(p);
  return n * kv_bytes_per_position();
}

Status Context::decode(const int32_t* tokens, int64_t n, bool all_logits) {
  if (n <= 0) return Status::error("decode: no tokens");
  if (n_past_[0] + n > opts_.n_ctx)
    return Status::error("context full: " + std::to_string(n_past_[0]) + " + " + std::to_string(n) +
                         " tokens exceed the context size " + std::to_string(opts_.n_ctx));
  if (all_logits && (!opts_.all_logits || n > opts_.n_ubatch))
    return Status::error("decode: all-logits needs a context created with all_logits and at most " +
                         std::to_string(opts_.n_ubatch) + " tokens per call");
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.n_vocab)
      return Status::error("token id " + std::to_string(tokens[i]) + " is outside the vocabulary (" +
                           std::to_string(config_.n_vocab) + ")");
  for (int64_t done = 0; done < n;) {
    const int64_t m = std::min(opts_.n_ubatch, n - done);
    for (int64_t t = 0; t < m; ++t) {
      tok_[size_t(t)] = tokens[done + t];
      seq_[size_t(t)] = 0;
      pos_[size_t(t)] = n_past_[0] + t;
    }
    int64_t n_out = 0;
    if (all_logits) {
      for (int64_t t = 0; t < m; ++t) out_rows_[size_t(n_out++)] = t;
    } else if (done + m == n) {
      out_rows_[size_t(n_out++)] = m - 1;
    }
    forward(m, n_out);
    n_past_[0] += m;
    done += m;
  }
  return Status::ok();
}

Status Context::decode_batch(const BatchToken* batch, int64_t n) {
  if (n <= 0) return Status::error("decode_batch: no tokens");
  if (n > opts_.n_ubatch)
    return Status::error("decode_batch: " + std::to_string(n) + " tokens exceed the ubatch size " +
                         std::to_string(opts_.n_ubatch));
  std::vector<int64_t>& next = scratch_pos_;
  next = n_past_;  // capacity n_seq from create(): no allocation
  int64_t n_out = 0;
  for (int64_t t = 0; t < n; ++t) {
    const BatchToken& b = batch[t];
    if (b.seq < 0 || b.seq >= opts_.n_seq)
      return Status::error("decode_batch: sequence " + std::to_string(b.seq) + " is out of range (" +
                           std::to_string(opts_.n_seq) + " sequences)");
    if (b.token < 0 || b.token >= config_.n_vocab)
      return Status::error("token id " + std::to_string(b.token) + " is outside the vocabulary (" +
                           std::to_string(config_.n_vocab) + ")");
    if (next[size_t(b.seq)] >= opts_.n_ctx)
      return Status::error("context full: sequence " + std::to_string(b.seq) + " holds " +
                           std::to_string(opts_.n_ctx) + " positions");
    if (b.logits && n_out == n_logit_rows_)
      return Status::error("decode_batch: more than " + std::to_string(n_logit_rows_) +
                           " tokens ask for logits");
    tok_[size_t(t)] = b.token;
    seq_[size_t(t)] = b.seq;
    pos_[size_t(t)] = next[size_t(b.seq)]++;
    if (b.logits) out_rows_[size_t(n_out++)] = t;
  }
  forward(n, n_out);
  n_past_ = next;
  return Status::ok();
}

}  // namespace edgeglm::model
