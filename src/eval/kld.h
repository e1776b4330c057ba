// KL divergence of a model ("test", e.g. quantized) from a base model on a text.
//
// Positions are those of perplexity()'s default protocol (kLlamaCpp): the text is tokenized once
// (BOS first if the vocab adds one), cut into consecutive chunks of n_ctx tokens whose first token
// becomes BOS (again only with such a vocab), and positions n_ctx/2 .. n_ctx-2 of every chunk are
// scored. At each scored position, over the full vocabulary, in double:
//   KLD       KL(P_base || P_test) = sum_i p_base,i (log p_base,i - log p_test,i)
//   top-1     whether argmax of the two logit rows is the same token
//   delta-p   p_test(next token) - p_base(next token)
//   nll       -log p(next token) of each model (their perplexities on exactly these positions,
//             equal to perplexity() with the same n_ctx and chunks)
//
// The base is either a second model, run chunk by chunk in lockstep with the test model (two
// Contexts; memory for one ubatch of logits each), or a file of its log-probabilities written
// earlier by save_logits() (eval/logits_file.h: layout and precision).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "eval/perplexity.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::eval {

struct KldOptions {
  int64_t n_ctx = 512;
  int64_t max_chunks = -1;  // < 0: all the text gives (or all the logits file holds)
  int64_t n_ubatch = 64;    // as perplexity(), so the logits and perplexities are the same
  DType kv_type = DType::F16;
};

struct KldResult {
  int64_t chunks = 0;
  int64_t positions = 0;    // scored positions
  double kld_mean = 0;      // nats
  double kld_stderr = 0;    // standard error of the mean
  double kld_median = 0;    // nearest-rank percentiles over positions
  double kld_p99 = 0;
  double kld_max = 0;
  double top1_percent = 0;  // positions whose most likely token is the same, in %
  double top1_stderr = 0;   // in percentage points
  double delta_p_rms = 0;   // RMS of p_test - p_base of the next token (a probability, not %)
  PerplexityResult base;    // perplexities on the scored positions
  PerplexityResult test;
  double seconds = 0;
};

// progress(chunk_done, n_chunks, running mean KLD); may be null.
using KldProgress = std::function<void(int64_t, int64_t, double)>;

// Base and test models side by side; they must share the vocabulary (checked). `tok` is their
// tokenizer.
Result<KldResult> kl_divergence(const model::Model& base, const model::Model& test,
                                const tokenizer::Tokenizer& tok, const std::string& text,
                                const KldOptions& opts, ThreadPool& pool,
                                const KldProgress& progress = nullptr);

// Base from a logits file. The file fixes n_ctx (opts.n_ctx must equal it) and the chunk count
// (opts.max_chunks may lower it); the text must tokenize to the file's tokens, and the model's
// vocabulary must be the one that wrote the file, else an error says which of these differs.
Result<KldResult> kl_divergence(const std::string& logits_path, const model::Model& test,
                                const tokenizer::Tokenizer& tok, const std::string& text,
                                const KldOptions& opts, ThreadPool& pool,
                                const KldProgress& progress = nullptr);

struct SaveLogitsResult {
  PerplexityResult ppl;  // of the base, on the saved positions
  uint64_t file_bytes = 0;
};

// Runs `base` over the text and writes its log-probabilities at every scored position to `path`
// (written as path.tmp, then renamed). progress gets the running perplexity.
Result<SaveLogitsResult> save_logits(const model::Model& base, const tokenizer::Tokenizer& tok,
                                     const std::string& text, const std::string& path,
                                     const KldOptions& opts, ThreadPool& pool,
                                     const KldProgress& progress = nullptr);

nlohmann::json perplexity_json(const PerplexityResult& r);
nlohmann::json kld_json(const KldResult& r);

}  // namespace edgeglm::eval
