#include "model/model.h"

#include "kernels/kernels.h"

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

constexpr size_t kNumBuffers = 13;

// Floats of each arena buffer, in the order Context::create hands them out.
std::array<size_t, kNumBuffers> buffer_sizes(const ModelConfig& c, const ContextOptions& opts,
                                             int n_threads) {
  const size_t U = size_t(opts.n_ubatch);
  // Cache rows in floats' worth of bytes (rows of F16 / Q8_0 need fewer).
  const size_t kv = (size_t(c.n_layer) * size_t(opts.n_ctx) * dtype_row_bytes(opts.kv_type, c.kv_dim()) + 3) / 4;
  const size_t n_logit_rows = opts.all_logits ? U : 1;
  return {kv,                                       // k_cache
          kv,                                       // v_cache
          U * size_t(c.n_embd),                     // x
          U * size_t(c.n_embd),                     // h
          U * size_t(c.q_dim()),                    // q
          U * size_t(c.kv_dim()),                   // k
          U * size_t(c.kv_dim()),                   // v
          U * size_t(c.q_dim()),                    // att
          U * size_t(c.n_ff),                       // gate
          U * size_t(c.n_ff),                       // up
          U * size_t(c.rope.n_rot),                 // rope cos/sin
          size_t(n_threads) * size_t(kernels::attention_scratch_floats(  // attention scratch
                                  opts.n_ctx, c.n_head / c.n_head_kv, c.head_dim)),
          n_logit_rows * size_t(c.n_vocab)};        // logits
}

}  // namespace

size_t Context::planned_bytes(const Model& model, const ContextOptions& opts, int n_threads) {
  size_t total = 0;
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
  if (opts.kv_type != DType::F32 && opts.kv_type != DType::F16 && opts.kv_type != DType::Q8_0)
    return Status::error(std::string("KV cache type ") + dtype_name(opts.kv_type) +
                         " is not supported (choices: f16, f32, q8_0)");
  if (opts.kv_type == DType::Q8_0 && c.head_dim % 32 != 0)
    return Status::error("KV cache type q8_0 needs a head size that is a multiple of 32; this model's is " +
                         std::to_string(c.head_dim) + " (use f16)");
  std::unique_ptr<Context> ctx(new Context(model, opts, pool));
  const auto sizes = buffer_sizes(c, opts, pool.size());
  Status st = ctx->arena_.reserve(planned_bytes(model, opts, pool.size()));
  if (!st.is_ok())
    return st.with_context("context of " + std::to_string(opts.n_ctx) + " positions");
  float *k_cache = nullptr, *v_cache = nullptr;
  float** bufs[] = {&k_cache,       &v_cache,       &ctx->x_,     &ctx->h_,
                    &ctx->q_,       &ctx->k_,       &ctx->v_,     &ctx->att_,
                    &ctx->gate_,    &ctx->up_,      &ctx->rope_,  &ctx->scores_,
                    &ctx->logits_};
  static_assert(std::size(bufs) == kNumBuffers);
  for (size_t i = 0; i < kNumBuffers; ++i) *bufs[i] = ctx->arena_.alloc<float>(sizes[i]);
  ctx->k_cache_ = reinterpret_cast<char*>(k_cache);
  ctx->v_cache_ = reinterpret_cast<char*>(v_cache);
  ctx->kv_row_bytes_ = dtype_row_bytes(opts.kv_type, c.kv_dim());
  return ctx;
}

Status Context::decode(const int32_t* tokens, int64_t n, bool all_logits) {
  if (n <= 0) return Status::error("decode: no tokens");
  if (n_past_ + n > opts_.n_ctx)
    return Status::error("context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
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
    forward(tokens + done, m, all_logits, /*need_logits=*/done + m == n);
    done += m;
  }
  return Status::ok();
}

}  // namespace edgeglm::model
