// HellaSwag: pick the most likely of four endings of a context.
//
// Input format (llama.cpp's hellaswag_val.txt): 6 lines per task, context, gold label 0..3, then
// the four endings. Each ending is scored by the log-probabilities of its tokens given the
// context: the context and context + " " + ending are tokenized (with BOS where the vocab adds
// one), and the ending's tokens are those after the longest common prefix of the two token
// sequences. The prefix is compared as tokens, so it works for SentencePiece (the space becomes
// part of the ending's first piece) and byte-level BPE (" word" pre-tokens) alike, and also when
// a merge across the boundary changes the context's last token (then that token is scored too).
//   acc       argmax over endings of the sum of those log-probabilities
//   acc_norm  argmax of their mean (per ending token), as llama.cpp's tool reports
// Ties go to the lowest ending index. Standard errors are sqrt(p (1 - p) / (n - 1)).
//
// Cost: the context is decoded once per task; for each ending the KV cache is truncated back to
// the shared prefix and only the ending's tokens are decoded, with logits for those tokens only.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::eval {

struct HellaswagTask {
  std::string context;
  int label = 0;
  std::array<std::string, 4> endings;
  int64_t line = 0;  // 1-based line of the context in the file
};

// Parses the 6-lines-per-task text; `name` (the file) prefixes errors, which name the line.
// A final newline is optional; "\r\n" line ends are accepted.
Result<std::vector<HellaswagTask>> parse_hellaswag(const std::string& text, const std::string& name);

// The tokens of context + " " + ending and where the ending's tokens start.
struct EndingTokens {
  std::vector<int32_t> tokens;
  int64_t first = 0;  // tokens[first ..] are scored (first >= 1: each needs a token before it)
};
EndingTokens ending_tokens(const tokenizer::Tokenizer& tok, const std::vector<int32_t>& context_tokens,
                           const std::string& context, const std::string& ending);

struct HellaswagOptions {
  int64_t max_tasks = -1;  // < 0: all
  // KV cache positions, the longest task (context + ending) allowed; 0: sized to the longest task
  // met so far (the cache is re-created, doubled, when a task does not fit).
  int64_t n_ctx = 0;
  int64_t n_ubatch = 64;
  DType kv_type = DType::F16;
};

struct HellaswagTaskScore {
  int label = 0;
  std::array<double, 4> logprob = {};  // sum over the ending's tokens
  std::array<int64_t, 4> n_tokens = {};
  int pred = 0;       // argmax of logprob
  int pred_norm = 0;  // argmax of logprob / n_tokens
};

struct HellaswagResult {
  int64_t tasks = 0;
  double acc = 0, acc_stderr = 0;  // fractions in [0, 1]
  double acc_norm = 0, acc_norm_stderr = 0;
  double seconds = 0;
  std::vector<HellaswagTaskScore> scores;  // per task, in file order
};

// progress(tasks_done, n_tasks, running acc_norm); may be null.
using HellaswagProgress = std::function<void(int64_t, int64_t, double)>;

Result<HellaswagResult> hellaswag(const model::Model& model, const tokenizer::Tokenizer& tok,
                                  const std::vector<HellaswagTask>& tasks,
                                  const HellaswagOptions& opts, ThreadPool& pool,
                                  const HellaswagProgress& progress = nullptr);

nlohmann::json hellaswag_json(const HellaswagResult& r);  // without the per-task scores

}  // namespace edgeglm::eval
