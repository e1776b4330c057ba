// Default system prompts read from a ChatML template's own text.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "tokenizer/chat_template.h"
#include "test_util.h"

using namespace edgeglm::tokenizer;

namespace {

// Qwen2-Instruct's template (its default system prompt is a literal in the first turn).
const char* kQwen2 =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// The shape of Qwen2.5's template: a tools branch whose system header is an expression, then
// the plain branch with the literal default.
const char* kQwen25 =
    "{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}"
    "{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are "
    "a helpful assistant.' }}{%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}{%- else %}"
    "{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n' }}{%- endif %}{%- endif %}";

std::string fixture_template(const std::string& name) {
  auto text = edgeglm::read_text_file(edgeglm::test::data_path("tokenizer/chat_templates.json"));
  return nlohmann::json::parse(*text)[name]["template"].get<std::string>();
}

}  // namespace

TEST(ChatDefaultSystem, ReadFromTemplateText) {
  EXPECT_EQ(default_system_prompt(kQwen2), "You are a helpful assistant.");
  EXPECT_EQ(default_system_prompt(kQwen25),
            "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  EXPECT_EQ(default_system_prompt(fixture_template("smollm")),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  for (const char* none : {"chatml", "llama3", "glm4", "zephyr", "llama2"})
    EXPECT_EQ(default_system_prompt(fixture_template(none)), "") << none;
  EXPECT_EQ(default_system_prompt(""), "");
}

TEST(ChatDefaultSystem, InsertedOnlyWithoutASystemMessage) {
  const std::string sys = default_system_prompt(kQwen2);
  ASSERT_EQ(detect_chat_template(kQwen2).value(), ChatTemplate::kChatML);
  // What Qwen2's Jinja template renders for one user turn with the generation prompt.
  EXPECT_EQ(apply_chat_template(ChatTemplate::kChatML, {{"user", "Hi"}}, true, "", "", sys),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(ChatTemplate::kChatML, {{"system", "Be brief."}, {"user", "Hi"}},
                                true, "", "", sys),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Without one, plain ChatML inserts nothing.
  EXPECT_EQ(apply_chat_template(ChatTemplate::kChatML, {{"user", "Hi"}}, true, "", ""),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}
