// Calibration statistics: for every matrix product of a model, the second moment of its input
// over calibration text, H = sum over tokens of x x^T (n_in x n_in). Its diagonal is the
// per-input-channel importance ("importance matrix"); the whole matrix is what error-compensating
// rounding (GPTQ) needs. Collected by running the model's own forward pass on the text.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::compress {

struct InputStats {
  int64_t n_in = 0;
  int64_t n_tokens = 0;
  std::vector<float> xtx;  // (n_in, n_in) row-major, symmetric: sum over tokens of x x^T
};

struct Calibration {
  std::string source;   // file name, for the output's metadata
  int64_t tokens = 0;   // tokens run through the model
  std::map<std::pair<model::MatmulSite, int64_t>, InputStats> stats;  // (site, layer)

  // Stats of the input of a tensor by its GGUF name (attn_q/k/v/qkv -> attention input, ...);
  // nullptr when the tensor is not a matrix product input the model observed (e.g. an untied
  // token embedding, which is only looked up).
  const InputStats* for_tensor(const std::string& name, bool tied_output) const;
};

struct CalibrationOptions {
  int64_t n_ctx = 512;        // tokens per chunk (each chunk starts a fresh context)
  int64_t max_tokens = 8192;  // stop after this many tokens
  int64_t buffer_tokens = 512;  // inputs gathered per site before one X^T X product
};

// Checks that `text` is usable calibration text: not empty, valid UTF-8, no NUL bytes.
Status check_calibration_text(const std::string& text, const std::string& path);

// progress(tokens_done, tokens_total).
Result<Calibration> collect_calibration(const model::Model& model, const tokenizer::Tokenizer& tok,
                                        const std::string& text, const std::string& source,
                                        const CalibrationOptions& opts, ThreadPool& pool,
                                        const std::function<void(int64_t, int64_t)>& progress);

}  // namespace edgeglm::compress
