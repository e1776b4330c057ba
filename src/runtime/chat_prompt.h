// A conversation as model input: rendered with a chat template and tokenized, trimmed to fit a
// token budget by dropping the oldest turns (a leading system message and the latest message are
// always kept), so a long chat keeps going instead of failing when the context fills.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace edgeglm::runtime {

struct ChatPrompt {
  std::vector<int32_t> tokens;
  size_t dropped_messages = 0;  // removed from the front of `messages`
};

// Renders `messages` (with the assistant header appended) and tokenizes; while the result has
// more than max_tokens tokens, removes the oldest message after an optional system message.
// `messages` is trimmed in place to what was rendered. Fails, leaving `messages` unchanged, when
// even the system message plus the latest message do not fit.
// default_system: see tokenizer::apply_chat_template.
Result<ChatPrompt> build_chat_prompt(const tokenizer::Tokenizer& tok, tokenizer::ChatTemplate tmpl,
                                     std::vector<tokenizer::ChatMessage>& messages,
                                     int64_t max_tokens, const std::string& default_system = "");

}  // namespace edgeglm::runtime
