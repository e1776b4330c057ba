#include "compress/calibration.h"

#include <algorithm>
#include <cstring>

#include "core/utf8.h"
#include "kernels/kernels.h"
#include "quant/scheme.h"

namespace edgeglm::compress {
namespace {

using model::MatmulSite;

// Gathers each site's inputs and folds them into X^T X in blocks of buffer_tokens tokens, so the
// product runs as one matrix multiplication (through the F32 kernels) rather than per token.
class StatsObserver final : public model::ActivationObserver {
 public:
  StatsObserver(Calibration& calib, int64_t buffer_tokens, ThreadPool& pool)
      : calib_(calib), buffer_tokens_(buffer_tokens), pool_(pool) {}

  void observe(MatmulSite site, int64_t layer, const float* x, int64_t n_tok,
               int64_t n_in) override {
    Pending& p = pending_[{site, layer}];
    InputStats& s = calib_.stats[{site, layer}];
    if (s.n_in == 0) {
      s.n_in = n_in;
      s.xtx.assign(size_t(n_in * n_in), 0.0f);
    }
    p.x.insert(p.x.end(), x, x + n_tok * n_in);
    p.n_tok += n_tok;
    s.n_tokens += n_tok;
    if (p.n_tok >= buffer_tokens_) flush(p, s);
  }

  void flush_all() {
    for (auto& [key, p] : pending_) flush(p, calib_.stats[key]);
  }

 private:
  struct Pending {
    std::vector<float> x;  // (n_tok, n_in)
    int64_t n_tok = 0;
  };

  void flush(Pending& p, InputStats& s) {
    if (p.n_tok == 0) return;
    const int64_t n = s.n_in, t = p.n_tok;
    // Xt (n, t): row i is channel i over the buffered tokens; H += Xt . Xt^T.
    xt_.resize(size_t(n * t));
    for (int64_t r = 0; r < t; ++r)
      for (int64_t i = 0; i < n; ++i) xt_[size_t(i * t + r)] = p.x[size_t(r * n + i)];
    prod_.resize(size_t(n * n));
    const TensorView w = TensorView::make(DType::F32, xt_.data(), t, n);
    kernels::matmul(w, xt_.data(), n, prod_.data(), pool_);
    for (size_t k = 0; k < prod_.size(); ++k) s.xtx[k] += prod_[k];
    p.x.clear();
    p.n_tok = 0;
  }

  Calibration& calib_;
  int64_t buffer_tokens_;
  ThreadPool& pool_;
  std::map<std::pair<MatmulSite, int64_t>, Pending> pending_;
  std::vector<float> xt_, prod_;
};

bool has_part(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

const InputStats* Calibration::for_tensor(const std::string& name, bool tied_output) const {
  if (name == "output.weight" || (tied_output && name == "token_embd.weight")) {
    // The output site is keyed by n_layer (one past the last block), the only kOutput key.
    for (const auto& [key, st] : stats)
      if (key.first == MatmulSite::kOutput) return &st;
    return nullptr;
  }
  const int64_t layer = quant::layer_of(name);
  if (layer < 0) return nullptr;
  MatmulSite site;
  if (has_part(name, ".attn_q.") || has_part(name, ".attn_k.") || has_part(name, ".attn_v.") ||
      has_part(name, ".attn_qkv."))
    site = MatmulSite::kAttnIn;
  else if (has_part(name, ".attn_output."))
    site = MatmulSite::kAttnOut;
  else if (has_part(name, ".ffn_gate.") || has_part(name, ".ffn_up."))
    site = MatmulSite::kFfnIn;
  else if (has_part(name, ".ffn_down."))
    site = MatmulSite::kFfnDown;
  else
    return nullptr;
  auto it = stats.find({site, layer});
  return it == stats.end() ? nullptr : &it->second;
}

Status check_calibration_text(const std::string& text, const std::string& path) {
  if (text.find_first_not_of(" \t\r\n") == std::string::npos)
    return Status::error(path + ": calibration file is empty (it needs plain text)");
  if (text.find('\0') != std::string::npos || !utf8_valid(text))
    return Status::error(path + ": calibration file is not text (NUL bytes or invalid UTF-8)");
  return Status::ok();
}

Result<Calibration> collect_calibration(const model::Model& model, const tokenizer::Tokenizer& tok,
                                        const std::string& text, const std::string& source,
                                        const CalibrationOptions& opts, ThreadPool& pool,
                                        const std::function<void(int64_t, int64_t)>& progress) {
  EG_TRY(check_calibration_text(text, source));
  if (opts.n_ctx < 8 || opts.max_tokens < 1)
    return Status::error("calibration: context must be >= 8 tokens and the token budget >= 1");
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/false);
  if (ids.size() < 2)
    return Status::error(source + ": calibration text has fewer than 2 tokens");
  const bool bos = tok.add_bos();
  const int64_t per_chunk = opts.n_ctx - (bos ? 1 : 0);
  const int64_t total = std::min<int64_t>(opts.max_tokens, int64_t(ids.size()));

  Calibration calib;
  calib.source = source;
  StatsObserver obs(calib, opts.buffer_tokens, pool);
  model::ContextOptions co;
  co.n_ctx = opts.n_ctx;
  co.all_logits = true;  // the output matrix sees every token
  co.kv_type = DType::F32;
  co.observer = &obs;
  EG_ASSIGN_OR_RETURN(auto ctx, model::Context::create(model, co, pool));
  const int64_t ub = co.n_ubatch;
  std::vector<int32_t> chunk;
  for (int64_t pos = 0; pos < total; pos += per_chunk) {
    chunk.clear();
    if (bos) chunk.push_back(tok.bos_id());
    const int64_t take = std::min(per_chunk, total - pos);
    chunk.insert(chunk.end(), ids.begin() + pos, ids.begin() + pos + take);
    ctx->truncate(0);
    for (size_t b = 0; b < chunk.size(); b += size_t(ub)) {
      const int64_t n = std::min<int64_t>(ub, int64_t(chunk.size() - b));
      EG_TRY(ctx->decode(chunk.data() + b, n, /*all_logits=*/true));
    }
    calib.tokens += int64_t(chunk.size());
    if (progress) progress(pos + take, total);
  }
  obs.flush_all();
  return calib;
}

}  // namespace edgeglm::compress
