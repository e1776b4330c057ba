#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "runtime/sampler.h"

using edgeglm::runtime::Sampler;
using edgeglm::runtime::SamplerParams;

namespace {
SamplerParams plain(float temp) {
  SamplerParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}
}  // namespace

TEST(Sampler, GreedyPicksArgmax) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  Sampler s(4, plain(0.0f));
  EXPECT_EQ(s.sample(logits.data(), {}), 1);
}

TEST(Sampler, RepeatPenaltyChangesGreedyChoice) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.9f};
  SamplerParams p = plain(0.0f);
  p.repeat_penalty = 1.1f;  // 2.0 / 1.1 = 1.82 < 1.9
  Sampler s(4, p);
  EXPECT_EQ(s.sample(logits.data(), {1}), 3);
  // Outside the window the penalty no longer applies.
  p.repeat_last_n = 1;
  Sampler s2(4, p);
  EXPECT_EQ(s2.sample(logits.data(), {1, 0}), 1);
}

TEST(Sampler, PresenceAndFrequencyPenalties) {
  std::vector<float> logits = {1.0f, 1.5f};
  SamplerParams p = plain(0.0f);
  p.frequency_penalty = 0.3f;  // token 1 seen twice: 1.5 - 0.6 = 0.9 < 1.0
  Sampler s(2, p);
  EXPECT_EQ(s.sample(logits.data(), {1, 1}), 0);
  EXPECT_EQ(s.sample(logits.data(), {1}), 1);  // once: 1.2 > 1.0; counts do not leak between calls
  p.frequency_penalty = 0;
  p.presence_penalty = 0.6f;
  Sampler s2(2, p);
  EXPECT_EQ(s2.sample(logits.data(), {1}), 0);
}

TEST(Sampler, SameSeedSameSequence) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[size_t(i)] = std::sin(float(i));
  auto draw = [&](uint64_t seed) {
    SamplerParams p = plain(1.0f);
    p.seed = seed;
    Sampler s(100, p);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.sample(logits.data(), {}));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(Sampler, TopKRestrictsSupport) {
  std::vector<float> logits = {3.0f, 2.9f, 2.8f, 0.0f, 0.0f, 0.0f};
  SamplerParams p = plain(5.0f);  // a hot temperature would otherwise reach every token
  p.top_k = 2;
  Sampler s(6, p);
  for (int i = 0; i < 500; ++i) {
    int32_t id = s.sample(logits.data(), {});
    ASSERT_TRUE(id == 0 || id == 1) << id;
  }
}

TEST(Sampler, TopPKeepsSmallestNucleus) {
  // probabilities ~ {0.5, 0.3, 0.2}: top_p 0.7 keeps the first two only.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplerParams p = plain(1.0f);
  p.top_p = 0.7f;
  Sampler s(3, p);
  std::map<int32_t, int> seen;
  for (int i = 0; i < 2000; ++i) seen[s.sample(logits.data(), {})]++;
  EXPECT_EQ(seen.count(2), 0u);
  // Renormalised over {0.5, 0.3}: token 0 has 62.5%.
  EXPECT_NEAR(seen[0] / 2000.0, 0.625, 0.04);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplerParams p = plain(1.0f);
  p.min_p = 0.2f;  // threshold 0.12: token 2 (0.1) goes
  Sampler s(3, p);
  for (int i = 0; i < 1000; ++i) ASSERT_NE(s.sample(logits.data(), {}), 2);
}

TEST(Sampler, TemperatureSharpensDistribution) {
  std::vector<float> logits = {1.0f, 0.0f};
  auto freq0 = [&](float temp) {
    Sampler s(2, plain(temp));
    int n = 0;
    for (int i = 0; i < 4000; ++i) n += s.sample(logits.data(), {}) == 0;
    return n / 4000.0;
  };
  EXPECT_NEAR(freq0(1.0f), 1.0 / (1.0 + std::exp(-1.0)), 0.03);  // 0.731
  EXPECT_NEAR(freq0(0.25f), 1.0 / (1.0 + std::exp(-4.0)), 0.02);  // 0.982
}

TEST(Sampler, ValidateNamesTheField) {
  SamplerParams p;
  p.top_p = 0;
  auto st = p.validate();
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("top_p"), std::string::npos);
  p = SamplerParams();
  p.temperature = -1;
  EXPECT_NE(p.validate().message().find("temperature"), std::string::npos);
  EXPECT_TRUE(SamplerParams().validate().is_ok());
}
