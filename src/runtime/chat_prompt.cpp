#include "runtime/chat_prompt.h"

#include <string>

namespace edgeglm::runtime {
namespace {

std::vector<int32_t> render(const tokenizer::Tokenizer& tok, tokenizer::ChatTemplate tmpl,
                            const std::vector<tokenizer::ChatMessage>& messages,
                            const std::string& default_system) {
  const std::string bos = tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : "";
  const std::string eos = tok.eos_id() >= 0 ? tok.token_text(tok.eos_id()) : "";
  const std::string text =
      tokenizer::apply_chat_template(tmpl, messages, true, bos, eos, default_system);
  // Templates that spell BOS in their text bring it themselves; otherwise add it as the vocab says.
  std::vector<int32_t> ids = tok.encode(text, /*add_special=*/false, /*parse_special=*/true);
  if (tok.add_bos() && tok.bos_id() >= 0 && (ids.empty() || ids[0] != tok.bos_id()))
    ids.insert(ids.begin(), tok.bos_id());
  return ids;
}

}  // namespace

Result<ChatPrompt> build_chat_prompt(const tokenizer::Tokenizer& tok, tokenizer::ChatTemplate tmpl,
                                     std::vector<tokenizer::ChatMessage>& messages,
                                     int64_t max_tokens, const std::string& default_system) {
  if (messages.empty()) return Status::error("chat: no messages");
  const size_t keep_front = messages[0].role == "system" ? 1 : 0;
  std::vector<tokenizer::ChatMessage> trimmed = messages;
  ChatPrompt p;
  for (;;) {
    p.tokens = render(tok, tmpl, trimmed, default_system);
    if (int64_t(p.tokens.size()) <= max_tokens) break;
    if (trimmed.size() <= keep_front + 1)
      return Status::error("chat: the message needs " + std::to_string(p.tokens.size()) +
                           " tokens with the template, more than the " +
                           std::to_string(max_tokens) + " the context leaves for a prompt");
    trimmed.erase(trimmed.begin() + int64_t(keep_front));
    ++p.dropped_messages;
  }
  messages = std::move(trimmed);
  return p;
}

}  // namespace edgeglm::runtime
