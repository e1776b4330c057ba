// Hand-written renderers that reproduce what each family's Jinja template (as shipped in the
// models' tokenizer_config.json) renders; tests compare against transformers' renders.
#include "tokenizer/chat_template.h"

#include <string_view>

namespace edgeglm::tokenizer {
namespace {

struct NamedTemplate {
  const char* name;
  ChatTemplate t;
};
constexpr NamedTemplate kTemplates[] = {
    {"chatml", ChatTemplate::kChatML}, {"llama2", ChatTemplate::kLlama2},
    {"llama3", ChatTemplate::kLlama3}, {"glm4", ChatTemplate::kGlm4},
    {"chatglm3", ChatTemplate::kChatGlm3}, {"zephyr", ChatTemplate::kZephyr},
    {"smollm", ChatTemplate::kSmolLm},
};

constexpr const char* kSmolLmSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// Python's str.strip() / Jinja's trim, for ASCII whitespace.
std::string_view trim(std::string_view s) {
  constexpr std::string_view kWs = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(kWs);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kWs);
  return s.substr(b, e - b + 1);
}

std::string names_list() {
  std::string out;
  for (const auto& n : kTemplates) {
    if (!out.empty()) out += ", ";
    out += n.name;
  }
  return out;
}

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// {% for m %}<|im_start|>{role}\n{content}<|im_end|>\n{% endfor %} + <|im_start|>assistant\n
std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen, const char* default_system) {
  std::string out;
  if (default_system && (msgs.empty() || msgs[0].role != "system") && !msgs.empty()) {
    out += "<|im_start|>system\n";
    out += default_system;
    out += "<|im_end|>\n";
  }
  for (const auto& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

// Llama-2 chat: a leading system message goes into the first user turn inside <<SYS>>; every
// user turn is "<s>[INST] {content.strip()} [/INST]", every assistant turn " {content.strip()} </s>".
// The template has no generation prompt: the prompt already ends with [/INST].
std::string render_llama2(const std::vector<ChatMessage>& msgs, const std::string& bos,
                          const std::string& eos) {
  std::string out;
  size_t first = 0;
  const std::string* system = nullptr;
  if (!msgs.empty() && msgs[0].role == "system") {
    system = &msgs[0].content;
    first = 1;
  }
  for (size_t i = first; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    std::string content;
    if (i == first && system) {
      content.append("<<SYS>>\n").append(*system).append("\n<</SYS>>\n\n");
    }
    content.append(m.content);
    if (m.role == "user") {
      out.append(bos).append("[INST] ").append(trim(content)).append(" [/INST]");
    } else if (m.role == "assistant") {
      out.append(" ").append(trim(content)).append(" ").append(eos);
    }
  }
  return out;
}

// Llama-3: <|begin_of_text|> then per message
// <|start_header_id|>{role}<|end_header_id|>\n\n{content|trim}<|eot_id|>.
std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen, const std::string& bos) {
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (i == 0) out += bos;
    out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n" +
           std::string(trim(msgs[i].content)) + "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

// GLM-4 (glm-4-9b-chat): [gMASK]<sop> then <|{role}|>\n{content} per message, <|assistant|> to
// prompt. Roles other than system/user/assistant/observation are dropped, as the template does.
std::string render_glm4(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out = "[gMASK]<sop>";
  for (const auto& m : msgs) {
    if (m.role == "user" || m.role == "assistant" || m.role == "system" || m.role == "observation")
      out += "<|" + m.role + "|>\n" + m.content;
  }
  if (gen) out += "<|assistant|>";
  return out;
}

// ChatGLM3: [gMASK]sop before the first message, <|{role}|>\n {content} per message.
std::string render_chatglm3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (size_t i = 0; i < msgs.size(); ++i) {
    if (i == 0) out += "[gMASK]sop";
    out += "<|" + msgs[i].role + "|>\n " + msgs[i].content;
  }
  if (gen) out += "<|assistant|>";
  return out;
}

// Zephyr: <|{role}|>\n{content}</s>\n per message, <|assistant|>\n to prompt.
std::string render_zephyr(const std::vector<ChatMessage>& msgs, bool gen, const std::string& eos) {
  std::string out;
  for (const auto& m : msgs) {
    if (m.role == "user" || m.role == "system" || m.role == "assistant")
      out += "<|" + m.role + "|>\n" + m.content + eos + "\n";
  }
  // The template emits the prompt inside its loop (on the last message): none without messages.
  if (gen && !msgs.empty()) out += "<|assistant|>\n";
  return out;
}

}  // namespace

Result<ChatTemplate> chat_template_from_name(std::string_view name) {
  for (const auto& n : kTemplates) {
    if (name == n.name) return n.t;
  }
  return Status::error("unknown chat template '" + std::string(name) + "' (expected one of: " +
                       names_list() + ")");
}

const char* chat_template_name(ChatTemplate t) {
  for (const auto& n : kTemplates) {
    if (n.t == t) return n.name;
  }
  return "unknown";
}

std::vector<std::string> chat_template_names() {
  std::vector<std::string> out;
  for (const auto& n : kTemplates) out.emplace_back(n.name);
  return out;
}

Result<ChatTemplate> detect_chat_template(std::string_view src) {
  if (src.empty()) {
    return Status::error("the model has no chat template (tokenizer.chat_template); name one with "
                         "--chat-template (" + names_list() + ")");
  }
  if (contains(src, "<|im_start|>")) {
    return contains(src, "named SmolLM") ? ChatTemplate::kSmolLm : ChatTemplate::kChatML;
  }
  if (contains(src, "<|start_header_id|>")) return ChatTemplate::kLlama3;
  if (contains(src, "[gMASK]")) {
    // GLM-4 spells "[gMASK]<sop>"; ChatGLM3 "[gMASK]sop" (plain text, no <sop> token).
    return contains(src, "<sop>") ? ChatTemplate::kGlm4 : ChatTemplate::kChatGlm3;
  }
  if (contains(src, "[INST]")) return ChatTemplate::kLlama2;
  if (contains(src, "<|user|>") && contains(src, "<|assistant|>")) return ChatTemplate::kZephyr;
  return Status::error("unrecognised chat template (no marker of a known family); name one with "
                       "--chat-template (" + names_list() + ")");
}

std::string default_system_prompt(std::string_view src) {
  constexpr std::string_view kOpen = "<|im_start|>system\n", kClose = "<|im_end|>";
  for (size_t at = src.find(kOpen); at != std::string_view::npos; at = src.find(kOpen, at + 1)) {
    const size_t begin = at + kOpen.size();
    const size_t end = src.find(kClose, begin);
    if (end == std::string_view::npos) break;
    const std::string_view text = src.substr(begin, end - begin);
    // A literal prompt: no Jinja expression, statement or string boundary inside.
    if (!text.empty() && text.find_first_of("{}'\"") == std::string_view::npos)
      return std::string(text);
  }
  return "";
}

std::string apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                bool add_assistant_prompt, const std::string& bos_text,
                                const std::string& eos_text, const std::string& default_system) {
  const char* system = default_system.empty() ? nullptr : default_system.c_str();
  switch (t) {
    case ChatTemplate::kChatML:
      return render_chatml(messages, add_assistant_prompt, system);
    case ChatTemplate::kSmolLm:
      return render_chatml(messages, add_assistant_prompt, system ? system : kSmolLmSystem);
    case ChatTemplate::kLlama2:
      return render_llama2(messages, bos_text, eos_text);
    case ChatTemplate::kLlama3:
      return render_llama3(messages, add_assistant_prompt, bos_text);
    case ChatTemplate::kGlm4:
      return render_glm4(messages, add_assistant_prompt);
    case ChatTemplate::kChatGlm3:
      return render_chatglm3(messages, add_assistant_prompt);
    case ChatTemplate::kZephyr:
      return render_zephyr(messages, add_assistant_prompt, eos_text);
  }
  return {};
}

}  // namespace edgeglm::tokenizer
