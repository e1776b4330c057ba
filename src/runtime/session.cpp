#include "runtime/session.h"

#include <chrono>

#include "runtime/text_stream.h"

namespace edgeglm::runtime {
namespace {
double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kEndOfText:
    case FinishReason::kStopString: return "stop";
    case FinishReason::kMaxTokens: return "length";
    case FinishReason::kContextFull: return "context_full";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "?";
}

double GenerateResult::gen_tok_per_s() const {
  // The first generated token comes from the prompt's logits; the rest each cost one decode.
  const double n = double(tokens.size() > 1 ? tokens.size() - 1 : 0);
  return generate_ms > 0 ? 1000.0 * n / generate_ms : 0;
}

Result<std::unique_ptr<Session>> Session::create(const model::Model& model,
                                                 const tokenizer::Tokenizer& tok,
                                                 const model::ContextOptions& opts,
                                                 ThreadPool& pool) {
  if (tok.n_vocab() > model.config().n_vocab)
    return Status::error("tokenizer has " + std::to_string(tok.n_vocab()) +
                         " tokens but the model's vocabulary is " +
                         std::to_string(model.config().n_vocab));
  std::unique_ptr<Session> s(new Session(model, tok));
  EG_ASSIGN_OR_RETURN(s->ctx_, model::Context::create(model, opts, pool));
  return s;
}

Result<GenerateResult> Session::generate(const std::vector<int32_t>& prompt,
                                         const GenerateOptions& opts, const TextCallback& on_text) {
  EG_TRY(opts.sampling.validate());
  if (prompt.empty()) return Status::error("empty prompt: nothing to condition on (add BOS)");
  if (int64_t(prompt.size()) >= ctx_->n_ctx())
    return Status::error("prompt of " + std::to_string(prompt.size()) +
                         " tokens does not fit the context of " + std::to_string(ctx_->n_ctx()) +
                         " (raise --ctx)");
  GenerateResult res;
  res.n_prompt = int64_t(prompt.size());

  // Reuse the longest cached prefix; always re-evaluate at least the last prompt token so its
  // logits are fresh.
  size_t common = 0;
  while (common < tokens_.size() && common < prompt.size() && tokens_[common] == prompt[common])
    ++common;
  if (common == prompt.size()) --common;
  ctx_->truncate(int64_t(common));
  tokens_.resize(common);

  auto t0 = std::chrono::steady_clock::now();
  EG_TRY(ctx_->decode(prompt.data() + common, int64_t(prompt.size() - common)));
  tokens_.insert(tokens_.end(), prompt.begin() + int64_t(common), prompt.end());
  res.prompt_ms = ms_since(t0);
  res.n_prompt_evaluated = int64_t(prompt.size() - common);

  Sampler sampler(ctx_->n_vocab(), opts.sampling);
  TextStream stream(opts.stop);
  int32_t prev = tokens_.back();
  auto t1 = std::chrono::steady_clock::now();
  res.finish = FinishReason::kMaxTokens;
  for (int32_t i = 0; opts.max_tokens < 0 || i < opts.max_tokens; ++i) {
    const int32_t id = sampler.sample(ctx_->logits(), tokens_);
    if (!opts.ignore_eos && tok_.is_eog(id)) {
      res.finish = FinishReason::kEndOfText;
      break;
    }
    res.tokens.push_back(id);
    std::string text = stream.push(tok_.piece_after(prev, id));
    prev = id;
    if (!text.empty() && on_text && !on_text(text)) {
      res.finish = FinishReason::kCancelled;
      break;
    }
    if (stream.stopped()) {
      res.finish = FinishReason::kStopString;
      break;
    }
    const bool last = opts.max_tokens >= 0 && i + 1 >= opts.max_tokens;
    if (last) break;  // the final token needs no forward pass
    if (ctx_->n_past() >= ctx_->n_ctx()) {
      res.finish = FinishReason::kContextFull;
      break;
    }
    EG_TRY(ctx_->decode(&id, 1));
    tokens_.push_back(id);
  }
  std::string tail = stream.flush();
  if (!tail.empty() && on_text) on_text(tail);
  res.text = stream.text();
  res.generate_ms = ms_since(t1);
  return res;
}

}  // namespace edgeglm::runtime
