// A generation session: one model context, its tokenizer and a sampler. generate() evaluates a
// prompt (reusing the cached prefix it shares with the previous call, so multi-turn chat only
// pays for the new turn) and streams text through a callback.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::runtime {

enum class FinishReason { kEndOfText, kStopString, kMaxTokens, kContextFull, kCancelled };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "context_full", "cancelled"

struct GenerateOptions {
  int32_t max_tokens = 128;        // generated tokens at most (< 0: until the context is full)
  SamplerParams sampling;
  std::vector<std::string> stop;   // stop strings (not included in the text)
  bool ignore_eos = false;
};

struct GenerateResult {
  std::vector<int32_t> tokens;     // generated ids
  std::string text;                // generated text as streamed
  FinishReason finish = FinishReason::kMaxTokens;
  int64_t n_prompt = 0;            // prompt tokens given
  int64_t n_prompt_evaluated = 0;  // of which not already cached
  double prompt_ms = 0, generate_ms = 0;
  double prompt_tok_per_s() const { return prompt_ms > 0 ? 1000.0 * double(n_prompt_evaluated) / prompt_ms : 0; }
  double gen_tok_per_s() const;
};

// Return false from the callback to cancel.
using TextCallback = std::function<bool(std::string_view text)>;

class Session {
 public:
  static Result<std::unique_ptr<Session>> create(const model::Model& model,
                                                 const tokenizer::Tokenizer& tok,
                                                 const model::ContextOptions& opts,
                                                 ThreadPool& pool);

  // Context-full handling is explicit: a prompt that does not fit is an error; generation that
  // reaches the end of the context stops with FinishReason::kContextFull (no silent shifting).
  Result<GenerateResult> generate(const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                                  const TextCallback& on_text = nullptr);

  const tokenizer::Tokenizer& tokenizer() const { return tok_; }
  model::Context& context() { return *ctx_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // what the KV cache holds
  void reset() { tokens_.clear(), ctx_->truncate(0); }

 private:
  Session(const model::Model& m, const tokenizer::Tokenizer& t) : model_(m), tok_(t) {}
  const model::Model& model_;
  const tokenizer::Tokenizer& tok_;
  std::unique_ptr<model::Context> ctx_;
  std::vector<int32_t> tokens_;
};

}  // namespace edgeglm::runtime
