// Chat templates: renders compared with transformers' apply_chat_template over the real Jinja
// templates (tests/data/tokenizer/chat_templates.json, from scripts/gen_tokenizer_vectors.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"
#include "tokenizer_test_util.h"

namespace edgeglm::test {
namespace {

using namespace edgeglm::tokenizer;

TEST(ChatTemplate, MatchesTransformersRenders) {
  auto j = nlohmann::json::parse(read_file(data_path("tokenizer/chat_templates.json")));
  ASSERT_GE(j.size(), 7u);
  size_t n_cases = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string family = it.key();
    const auto& f = it.value();
    auto detected = detect_chat_template(f["template"].get<std::string>());
    ASSERT_TRUE(detected.ok()) << family << ": " << detected.status().message();
    EXPECT_STREQ(chat_template_name(*detected), family.c_str());
    auto named = chat_template_from_name(family);
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(*named, *detected);
    for (const auto& c : f["cases"]) {
      std::vector<ChatMessage> msgs;
      for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
      std::string got = apply_chat_template(*detected, msgs, c["add_generation_prompt"].get<bool>(),
                                            f["bos"].get<std::string>(), f["eos"].get<std::string>());
      EXPECT_EQ(got, c["expected"].get<std::string>()) << family;
      ++n_cases;
    }
  }
  EXPECT_GE(n_cases, 40u);
}

TEST(ChatTemplate, SmolLm2GgufTemplateIsDetected) {
  // The template text of SmolLM2-135M-Instruct's GGUF (tokenizer.chat_template).
  const char* src =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
      "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\n' }}{% endif %}";
  auto t = detect_chat_template(src);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, ChatTemplate::kSmolLm);
}

TEST(ChatTemplate, ErrorsListTheNames) {
  auto r = detect_chat_template("");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--chat-template"), std::string::npos);
  r = detect_chat_template("{{ messages }}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chatml"), std::string::npos);
  auto n = chat_template_from_name("vicuna");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("zephyr"), std::string::npos);
  EXPECT_EQ(chat_template_names().size(), 7u);
}

}  // namespace
}  // namespace edgeglm::test
