// Token sampling: repetition / presence / frequency penalties, temperature, top-k, top-p, min-p,
// then a draw from a seeded generator. Temperature <= 0 is greedy (argmax), as in the OpenAI API.
// Order of the filters (temperature first, then top-k, top-p, min-p on the tempered distribution)
// follows the Hugging Face / OpenAI convention. All buffers are sized once at construction.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "core/status.h"

namespace edgeglm::runtime {

struct SamplerParams {
  float temperature = 0.8f;
  int32_t top_k = 40;           // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.05f;          // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; > 1 discourages tokens seen in the last repeat_last_n
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  int32_t repeat_last_n = 64;
  uint64_t seed = 0xed6e61;     // same seed, same text

  Status validate() const;      // ranges, with the field named in the message
};

class Sampler {
 public:
  Sampler(int64_t n_vocab, const SamplerParams& params);
  void reset(uint64_t seed) { rng_.seed(seed); }
  // `history`: tokens of the sequence so far (prompt + generated), for the penalties.
  int32_t sample(const float* logits, const std::vector<int32_t>& history);
  static int32_t argmax(const float* logits, int64_t n);

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  int64_t n_vocab_;
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<Candidate> cand_;  // (n_vocab)
  std::vector<int32_t> counts_;  // (n_vocab) occurrences within the penalty window
};

}  // namespace edgeglm::runtime
