#include "eval/perplexity.h"

#include <chrono>
#include <cmath>
#include <vector>

namespace edgeglm::eval {
namespace {

// -log softmax(logits)[target], in double.
double token_nll(const float* logits, int64_t n_vocab, int32_t target) {
  float mx = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - double(mx));
  return std::log(sum) - (double(logits[target]) - double(mx));
}

}  // namespace

Result<PerplexityResult> perplexity(const model::Model& model, const tokenizer::Tokenizer& tok,
                                    const std::string& text, const PerplexityOptions& opts,
                                    ThreadPool& pool, const PplProgress& progress) {
  const int64_t n_ctx = opts.n_ctx;
  if (n_ctx < 8) return Status::error("perplexity: --ctx must be at least 8");
  // Chunks start with BOS only where the vocabulary adds one (as llama.cpp's tool does).
  const bool use_bos = tok.add_bos() && tok.bos_id() >= 0;
  const int32_t bos = tok.bos_id();
  auto t0 = std::chrono::steady_clock::now();
  const bool full = opts.protocol == PplProtocol::kFull;
  std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/!full && use_bos,
                                           /*parse_special=*/false);
  // kLlamaCpp: consecutive chunks of n_ctx tokens. kFull: chunks advance by n_ctx - 1 so that
  // each text token is predicted once: after a BOS, or after the previous chunk's last token.
  const int64_t stride = full ? n_ctx - 1 : n_ctx;
  const int64_t span = full && use_bos ? n_ctx - 1 : n_ctx;  // text tokens a chunk reads
  const int64_t n_tokens = int64_t(tokens.size());
  int64_t n_chunks = n_tokens >= span ? (n_tokens - span) / stride + 1 : 0;
  if (opts.max_chunks >= 0 && opts.max_chunks < n_chunks) n_chunks = opts.max_chunks;
  if (n_chunks < 1)
    return Status::error("perplexity: the text has " + std::to_string(tokens.size()) +
                         " tokens, fewer than one chunk of " + std::to_string(span) +
                         " (use a smaller --ctx)");

  model::ContextOptions co;
  co.n_ctx = n_ctx;
  co.n_ubatch = std::min<int64_t>(opts.n_ubatch, n_ctx);
  co.all_logits = true;
  co.kv_type = opts.kv_type;
  EG_ASSIGN_OR_RETURN(auto ctx, model::Context::create(model, co, pool));

  PerplexityResult r;
  r.text_tokens = int64_t(tokens.size());
  double sum = 0, sum_sq = 0;
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (int64_t c = 0; c < n_chunks; ++c) {
    // chunk[j] predicts chunk[j+1]; scored for j in [first, n_ctx - 2].
    int64_t first;
    if (full && use_bos) {
      chunk[0] = bos;
      std::copy_n(tokens.begin() + c * stride, n_ctx - 1, chunk.begin() + 1);
      first = 0;
    } else {
      std::copy_n(tokens.begin() + c * stride, n_ctx, chunk.begin());
      if (!full && use_bos) chunk[0] = bos;
      first = full ? 0 : n_ctx / 2;
    }
    ctx->truncate(0);
    for (int64_t b = 0; b < n_ctx; b += co.n_ubatch) {
      const int64_t m = std::min(co.n_ubatch, n_ctx - b);
      EG_TRY(ctx->decode(chunk.data() + b, m, /*all_logits=*/true));
      for (int64_t j = std::max(first, b); j < b + m && j < n_ctx - 1; ++j) {
        const double nll = token_nll(ctx->logits(j - b), ctx->n_vocab(), chunk[size_t(j + 1)]);
        sum += nll;
        sum_sq += nll * nll;
        ++r.tokens;
      }
    }
    ++r.chunks;
    if (progress) progress(r.chunks, n_chunks, std::exp(sum / double(r.tokens)));
  }
  r.nll = sum / double(r.tokens);
  r.perplexity = std::exp(r.nll);
  const double var = sum_sq / double(r.tokens) - r.nll * r.nll;
  r.nll_stderr = r.tokens > 1 && var > 0 ? std::sqrt(var / double(r.tokens - 1)) : 0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace edgeglm::eval
