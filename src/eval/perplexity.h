// Perplexity of a model on a text.
//  kLlamaCpp (default): the protocol of llama.cpp's perplexity tool, so numbers compare with the
//    most used engine: the text is tokenized once (with BOS if the vocab adds one), cut into
//    consecutive chunks of n_ctx tokens whose first token is replaced by BOS (again only if the
//    vocab adds one), and only the second half of each chunk is scored (positions
//    n_ctx/2 .. n_ctx-2 predict the next token).
//  kFull: every text token is predicted exactly once, with every prediction of a chunk scored:
//    chunks are [BOS] + the next n_ctx-1 tokens, or, for vocabs without BOS, n_ctx tokens
//    overlapping the previous chunk by one.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::eval {

enum class PplProtocol { kLlamaCpp, kFull };

struct PerplexityOptions {
  int64_t n_ctx = 512;
  PplProtocol protocol = PplProtocol::kLlamaCpp;
  int64_t max_chunks = -1;  // < 0: all
  int64_t n_ubatch = 64;
  DType kv_type = DType::F16;  // KV cache type (model::ContextOptions::kv_type)
};

struct PerplexityResult {
  double perplexity = 0;
  double nll = 0;           // mean negative log-likelihood per scored token (nats)
  double nll_stderr = 0;    // standard error of that mean
  int64_t tokens = 0;       // scored tokens
  int64_t chunks = 0;
  int64_t text_tokens = 0;  // tokens of the whole text
  double seconds = 0;
};

// progress(chunk_done, n_chunks, running_ppl) after each chunk; may be null.
using PplProgress = std::function<void(int64_t, int64_t, double)>;

Result<PerplexityResult> perplexity(const model::Model& model, const tokenizer::Tokenizer& tok,
                                    const std::string& text, const PerplexityOptions& opts,
                                    ThreadPool& pool, const PplProgress& progress = nullptr);

}  // namespace edgeglm::eval
