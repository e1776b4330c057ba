// Chat templates of the common model families, rendered by hand-written formatters (no Jinja
// engine): the family is detected from the model's tokenizer.chat_template text, or named by the
// user with --chat-template.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace edgeglm::tokenizer {

// kSmolLm is ChatML plus SmolLM2's default system prompt when the conversation has none.
enum class ChatTemplate { kChatML, kLlama2, kLlama3, kGlm4, kChatGlm3, kZephyr, kSmolLm };

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// Names accepted by --chat-template: chatml, llama2, llama3, glm4, chatglm3, zephyr, smollm.
Result<ChatTemplate> chat_template_from_name(std::string_view name);
const char* chat_template_name(ChatTemplate t);
std::vector<std::string> chat_template_names();

// Picks the family from a model's Jinja template source (tokenizer.chat_template); an empty or
// unrecognised template is an error that says which names --chat-template accepts.
Result<ChatTemplate> detect_chat_template(std::string_view jinja_source);

// The system prompt a ChatML template inserts when the conversation has none, read from the
// template's own text: the first literal "<|im_start|>system\n...<|im_end|>" with no Jinja inside
// (Qwen2: "You are a helpful assistant.", Qwen2.5: "You are Qwen, created by Alibaba Cloud. ...",
// SmolLM2: "You are a helpful AI assistant named SmolLM, ..."). "" when there is none.
std::string default_system_prompt(std::string_view jinja_source);

// Renders the conversation; add_assistant_prompt appends the header that makes the model answer.
// bos_text / eos_text are the vocab's BOS / EOS token texts (used by templates that spell them).
// default_system (ChatML family): inserted when the conversation has no system message; when
// empty, kSmolLm uses SmolLM2's and kChatML inserts none.
std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prompt, const std::string& bos_text,
                                const std::string& eos_text,
                                const std::string& default_system = "");

}  // namespace edgeglm::tokenizer
