#include <gtest/gtest.h>

#include "formats/model_file.h"
#include "runtime/chat_prompt.h"
#include "test_util.h"

using namespace edgeglm;
using tokenizer::ChatMessage;

namespace {
std::unique_ptr<tokenizer::Tokenizer> stories_tokenizer() {
  auto f = formats::open_model(test::shared_path("models/stories260K/stories260K.gguf"));
  EXPECT_TRUE(f.ok());
  auto t = tokenizer::Tokenizer::from_metadata((*f)->meta);
  EXPECT_TRUE(t.ok());
  return std::move(t).value();
}
}  // namespace

TEST(ChatPrompt, FitsUntouchedWhenSmall) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto tok = stories_tokenizer();
  std::vector<ChatMessage> m = {{"system", "Be kind."}, {"user", "Hello there"}};
  auto p = runtime::build_chat_prompt(*tok, tokenizer::ChatTemplate::kChatML, m, 1000);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->dropped_messages, 0u);
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(p->tokens[0], tok->bos_id());  // this vocab adds BOS; ChatML does not spell it
}

TEST(ChatPrompt, DropsOldestTurnsKeepsSystemAndLatest) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto tok = stories_tokenizer();
  std::vector<ChatMessage> m = {{"system", "Be kind."}};
  for (int i = 0; i < 10; ++i) {
    m.push_back({"user", "Tell me a story about a dog number " + std::to_string(i)});
    m.push_back({"assistant", "Once upon a time there was a happy dog who liked to play."});
  }
  m.push_back({"user", "And the last one?"});
  const size_t before = m.size();
  auto full = runtime::build_chat_prompt(*tok, tokenizer::ChatTemplate::kChatML, m, 1 << 20);
  ASSERT_TRUE(full.ok());
  const int64_t budget = int64_t(full->tokens.size()) / 3;
  auto p = runtime::build_chat_prompt(*tok, tokenizer::ChatTemplate::kChatML, m, budget);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_LE(int64_t(p->tokens.size()), budget);
  EXPECT_GT(p->dropped_messages, 0u);
  EXPECT_EQ(m.size(), before - p->dropped_messages);
  EXPECT_EQ(m.front().role, "system");
  EXPECT_EQ(m.back().content, "And the last one?");
}

TEST(ChatPrompt, TooLongMessageIsAnErrorAndChangesNothing) {
  EDGEGLM_REQUIRE_SHARED("models/stories260K/stories260K.gguf");
  auto tok = stories_tokenizer();
  std::vector<ChatMessage> m = {{"user", "hi"}, {"assistant", "hello"},
                                {"user", std::string(2000, 'a')}};
  auto p = runtime::build_chat_prompt(*tok, tokenizer::ChatTemplate::kChatML, m, 50);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("50"), std::string::npos);
  EXPECT_EQ(m.size(), 3u);
}
