// libFuzzer target: the request parser of `edgeglm serve` (POST /v1/chat/completions and
// /v1/completions), then every response builder fed with what it accepted, each output re-parsed.
// First input byte: bit 0 picks chat, bit 1 tight limits (so the limit checks are reached with
// small inputs), bits 2-7 vary the builders' arguments. The rest is the request body.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "core/utf8.h"
#include "serve/http/openai.h"

namespace {

using nlohmann::json;
using namespace edgeglm::serve::http;

json parse_or_trap(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) __builtin_trap();
  return j;
}

// Builders must emit one valid JSON object for any model text, including a partial UTF-8
// sequence; text that is valid UTF-8 must come back unchanged.
void check_builders(std::string_view model, std::string_view text, uint8_t knobs, bool chat) {
  static constexpr std::string_view kFinish[] = {"", "stop", "length", "timeout"};
  const std::string_view finish = kFinish[knobs & 3];
  const int64_t created = 1700000000 + (knobs >> 2);
  const int64_t n_prompt = int64_t(text.size()), n_gen = int64_t(knobs);
  const bool exact = edgeglm::utf8_valid(text) && edgeglm::utf8_valid(model);
  const std::string text_s(text), model_s(model);

  json j = parse_or_trap(completion_response("cmpl-fuzz", model, created, text, finish, n_prompt, n_gen));
  if (exact && j["choices"][0]["text"] != text_s) __builtin_trap();
  if (j["usage"]["total_tokens"] != n_prompt + n_gen) __builtin_trap();
  j = parse_or_trap(chat_completion_response("chatcmpl-fuzz", model, created, text, finish,
                                             n_prompt, n_gen));
  if (exact && (j["choices"][0]["message"]["content"] != text_s || j["model"] != model_s))
    __builtin_trap();
  if (finish.empty() != j["choices"][0]["finish_reason"].is_null()) __builtin_trap();
  j = parse_or_trap(completion_chunk("cmpl-fuzz", model, created, text, finish));
  if (exact && j["choices"][0]["text"] != text_s) __builtin_trap();
  for (bool role : {false, true}) {
    j = parse_or_trap(chat_chunk("chatcmpl-fuzz", model, created, role, text, finish));
    const json& delta = j["choices"][0]["delta"];
    if (role != delta.contains("role")) __builtin_trap();
    if ((role || !text.empty()) != delta.contains("content")) __builtin_trap();
    if (exact && delta.contains("content") && delta["content"] != text_s) __builtin_trap();
  }
  const std::string usage = usage_chunk("id", model, created, chat, n_prompt, n_gen);
  j = parse_or_trap(usage);
  if (!j["choices"].is_array() || !j["choices"].empty()) __builtin_trap();
  const std::string event = sse_event(usage);
  if (event.rfind("data: ", 0) != 0 || event.size() != usage.size() + 8 ||
      event.compare(event.size() - 2, 2, "\n\n") != 0)
    __builtin_trap();
  j = parse_or_trap(models_response(model, created, text));
  if (exact && j["data"][0]["id"] != model_s) __builtin_trap();
}

void check_request(const CompletionRequest& r, bool chat, const Limits& limits) {
  if (r.chat != chat || r.model.empty()) __builtin_trap();
  if (chat) {
    if (r.messages.empty() || r.messages.size() > limits.max_messages || !r.prompt.empty())
      __builtin_trap();
    size_t total = 0;
    for (const auto& m : r.messages) {
      if (m.role != "system" && m.role != "user" && m.role != "assistant") __builtin_trap();
      total += m.content.size();
    }
    if (total > limits.max_prompt_bytes) __builtin_trap();
  } else if (!r.messages.empty() || r.prompt.size() > limits.max_prompt_bytes) {
    __builtin_trap();
  }
  const bool unbounded_ok = chat && r.max_tokens == kMaxTokensUnbounded;
  if (!unbounded_ok && (r.max_tokens < 1 || r.max_tokens > limits.max_tokens_limit))
    __builtin_trap();
  if (r.stop.size() > limits.max_stop_strings) __builtin_trap();
  for (const auto& s : r.stop)
    if (s.empty() || s.size() > limits.max_stop_len) __builtin_trap();
  if (!r.sampling.validate().is_ok()) __builtin_trap();
  if (!(r.timeout_s >= 0 && r.timeout_s <= kMaxTimeoutSeconds)) __builtin_trap();
  if (!r.priority.empty() && !is_valid_priority(r.priority)) __builtin_trap();
  if (r.include_usage && !r.stream) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const bool chat = mode & 1;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  Limits limits;
  if (mode & 2) {
    limits.max_tokens_limit = 2048;  // `edgeglm serve`'s default
    limits.max_stop_strings = 2;
    limits.max_stop_len = 4;
    limits.max_messages = 3;
    limits.max_prompt_bytes = 64;
  }

  ParsedRequest parsed = parse_completion_request(body, chat, limits);
  if (const auto* err = std::get_if<ApiError>(&parsed)) {
    if ((err->status != 400 && err->status != 413) || err->message.empty() ||
        err->type != kErrInvalidRequest)
      __builtin_trap();
    // The error body reaches the client intact: messages quote request text only through the
    // UTF-8-safe dump, so it must survive the round trip byte for byte.
    json j = parse_or_trap(error_json(*err));
    const json& e = j["error"];
    if (e["message"] != err->message || e["type"] != err->type) __builtin_trap();
    if (err->param.empty() ? !e["param"].is_null() : e["param"] != err->param) __builtin_trap();
    // Whatever the body, the builders also see it raw, as model text that may be cut mid-sequence.
    check_builders("m", body.substr(0, 256), mode >> 2, chat);
    return 0;
  }
  const auto& r = std::get<CompletionRequest>(parsed);
  check_request(r, chat, limits);
  std::string text = r.prompt;
  for (const auto& m : r.messages) text += m.content;
  check_builders(r.model, text, mode >> 2, chat);
  for (const auto& s : r.stop) check_builders(r.model, s, mode >> 2, chat);
  return 0;
}
