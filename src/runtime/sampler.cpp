#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace edgeglm::runtime {

Status SamplerParams::validate() const {
  auto bad = [](const char* field, const std::string& why) {
    return Status::error(std::string("sampling parameter ") + field + " " + why);
  };
  if (!(temperature >= 0 && temperature <= 100)) return bad("temperature", "must be in [0, 100]");
  if (!(top_p > 0 && top_p <= 1)) return bad("top_p", "must be in (0, 1]");
  if (!(min_p >= 0 && min_p <= 1)) return bad("min_p", "must be in [0, 1]");
  if (top_k < 0) return bad("top_k", "must be >= 0");
  if (!(repeat_penalty > 0 && repeat_penalty <= 10)) return bad("repeat_penalty", "must be in (0, 10]");
  if (!(presence_penalty >= -2 && presence_penalty <= 2)) return bad("presence_penalty", "must be in [-2, 2]");
  if (!(frequency_penalty >= -2 && frequency_penalty <= 2))
    return bad("frequency_penalty", "must be in [-2, 2]");
  if (repeat_last_n < 0) return bad("repeat_last_n", "must be >= 0");
  return Status::ok();
}

Sampler::Sampler(int64_t n_vocab, const SamplerParams& params)
    : n_vocab_(n_vocab), p_(params), rng_(params.seed), cand_(size_t(n_vocab)),
      counts_(size_t(n_vocab), 0) {}

int32_t Sampler::argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return int32_t(best);
}

int32_t Sampler::sample(const float* logits, const std::vector<int32_t>& history) {
  const bool penalize = p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f ||
                        p_.frequency_penalty != 0.0f;
  const size_t window_begin =
      history.size() > size_t(p_.repeat_last_n) ? history.size() - size_t(p_.repeat_last_n) : 0;
  if (penalize)
    for (size_t i = window_begin; i < history.size(); ++i)
      if (history[i] >= 0 && history[i] < n_vocab_) ++counts_[size_t(history[i])];

  auto penalized = [&](int32_t id) {
    float l = logits[id];
    const int32_t cnt = penalize ? counts_[size_t(id)] : 0;
    if (cnt > 0) {
      // Repetition penalty as in CTRL / llama.cpp: shrink positive logits, grow negative ones.
      l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
      l -= float(cnt) * p_.frequency_penalty + p_.presence_penalty;
    }
    return l;
  };

  int32_t result;
  if (p_.temperature <= 0.0f) {
    result = 0;
    float best = penalized(0);
    for (int32_t i = 1; i < n_vocab_; ++i) {
      float l = penalized(i);
      if (l > best) best = l, result = i;
    }
  } else {
    for (int32_t i = 0; i < n_vocab_; ++i) cand_[size_t(i)] = {penalized(i) / p_.temperature, i};
    size_t n = cand_.size();
    auto by_logit = [](const Candidate& a, const Candidate& b) {
      return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
    };
    if (p_.top_k > 0 && size_t(p_.top_k) < n) {
      std::partial_sort(cand_.begin(), cand_.begin() + p_.top_k, cand_.end(), by_logit);
      n = size_t(p_.top_k);
    } else {
      std::sort(cand_.begin(), cand_.end(), by_logit);
    }
    // Probabilities of the kept candidates (sorted, highest first), stored back into logit.
    const float mx = cand_[0].logit;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      cand_[i].logit = std::exp(cand_[i].logit - mx);
      sum += cand_[i].logit;
    }
    // top-p: smallest prefix whose mass reaches top_p. min-p: drop p < min_p * p_max.
    double cum = 0;
    size_t keep = n;
    for (size_t i = 0; i < n; ++i) {
      cum += cand_[i].logit / sum;
      if (p_.top_p < 1.0f && cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
    if (p_.min_p > 0.0f) {
      const float threshold = p_.min_p * cand_[0].logit;
      size_t k = 1;
      while (k < keep && cand_[k].logit >= threshold) ++k;
      keep = k;
    }
    double kept_sum = 0;
    for (size_t i = 0; i < keep; ++i) kept_sum += cand_[i].logit;
    std::uniform_real_distribution<double> uni(0.0, kept_sum);
    const double r = uni(rng_);
    double acc = 0;
    result = cand_[keep - 1].id;
    for (size_t i = 0; i < keep; ++i) {
      acc += cand_[i].logit;
      if (r < acc) {
        result = cand_[i].id;
        break;
      }
    }
  }
  if (penalize)
    for (size_t i = window_begin; i < history.size(); ++i)
      if (history[i] >= 0 && history[i] < n_vocab_) counts_[size_t(history[i])] = 0;
  return result;
}

}  // namespace edgeglm::runtime
