// The JSON half of the OpenAI-compatible HTTP adapter: request parsing with the API's defaults and
// ranges, and the response / stream-chunk builders. Pure functions over strings, so they are tested
// without a socket; the HTTP server (which owns httplib) calls them. docs/openapi.yaml states the
// same contract for clients; a change here changes the spec too.
//
// Nothing here throws: parsing goes through nlohmann's non-throwing entry points, every dump uses
// the replace handler (model text may end mid-way through a UTF-8 sequence), and typed access is
// guarded by a type check first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "runtime/sampler.h"
#include "tokenizer/chat_template.h"

namespace edgeglm::serve::http {

// Error "type" strings of the OpenAI error object, one per HTTP status we send. 503 uses
// "overloaded_error": it names the condition (queue full, loading, draining) that a client should
// retry after Retry-After, where OpenAI's own "server_error" would suggest a bug.
inline constexpr const char* kErrInvalidRequest = "invalid_request_error";  // 400, 413
inline constexpr const char* kErrAuthentication = "authentication_error";   // 401
inline constexpr const char* kErrNotFound = "not_found_error";              // 404
inline constexpr const char* kErrOverloaded = "overloaded_error";           // 503
inline constexpr const char* kErrServer = "server_error";                   // 500

struct ApiError {
  int status = 400;
  std::string type;     // one of the kErr* strings
  std::string message;  // names the field, what was expected and what was received
  std::string param;    // the request field at fault ("" -> null)
  std::string code;     // machine-readable reason ("" -> null)
};

// The type string that goes with an HTTP status (400/413 -> invalid_request_error, ...).
const char* error_type_for_status(int status);
// An ApiError whose type follows from the status.
ApiError make_api_error(int status, std::string message, std::string param = {},
                        std::string code = {});
// {"error":{"message":..., "type":..., "param":..., "code":...}}; empty param/code become null.
std::string error_json(const ApiError& e);

// Per-request ceilings, so one request cannot occupy the engine or memory without bound. The
// defaults suit the small models a gateway runs; `edgeglm serve` may override them from its config.
struct Limits {
  int32_t max_tokens_limit = 4096;       // largest max_tokens accepted
  size_t max_stop_strings = 4;           // OpenAI's own limit
  size_t max_stop_len = 256;             // bytes per stop string
  size_t max_messages = 256;             // chat turns
  size_t max_prompt_bytes = 256 * 1024;  // prompt, or the sum of all message contents
};

inline constexpr int32_t kCompletionsDefaultMaxTokens = 16;  // OpenAI's default for /v1/completions
inline constexpr int32_t kMaxTokensUnbounded = -1;           // chat: until the context or the limit
inline constexpr double kMaxTimeoutSeconds = 86400.0;        // a request may ask for at most a day

struct CompletionRequest {
  bool chat = false;
  std::string model;
  std::vector<tokenizer::ChatMessage> messages;  // chat only; content parts joined with "\n"
  std::string prompt;                            // completions only
  int32_t max_tokens = kMaxTokensUnbounded;      // >= 1, or kMaxTokensUnbounded (chat default)
  runtime::SamplerParams sampling;               // OpenAI API defaults, see openai.cpp
  bool has_seed = false;          // false: the client gave no seed, so the server should draw one
  std::vector<std::string> stop;  // non-empty strings
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: send a usage chunk before [DONE]
  std::string priority;        // "" (unset) or "interactive" | "normal" | "batch"
  double timeout_s = 0;        // 0: none
  std::string user;
  bool ignore_eos = false;  // extension: keep generating past end-of-sequence (benchmarks)
};

// True for the priority names the API accepts (body field "priority" and the X-Priority header).
bool is_valid_priority(std::string_view p);

// Parses the body of POST /v1/chat/completions (chat = true) or /v1/completions (chat = false).
// Holds the request, or the 400 ApiError for the first field at fault (fields are checked in a
// fixed order, so the same body always yields the same error). Null fields count as absent; fields
// of the OpenAI API that ask for what this server does not do (logprobs, tools, n > 1 ...) are
// rejected by name rather than ignored; unrecognised fields are rejected, as OpenAI does.
using ParsedRequest = std::variant<CompletionRequest, ApiError>;
ParsedRequest parse_completion_request(std::string_view body, bool chat, const Limits& limits);

// Response bodies (single-line JSON). finish_reason: "stop", "length", or our extensions "timeout",
// "cancelled", "shutdown"; an empty finish_reason becomes null (stream chunks before the last).
std::string completion_response(std::string_view id, std::string_view model, int64_t created,
                                std::string_view text, std::string_view finish_reason,
                                int64_t prompt_tokens, int64_t completion_tokens);
std::string chat_completion_response(std::string_view id, std::string_view model, int64_t created,
                                     std::string_view text, std::string_view finish_reason,
                                     int64_t prompt_tokens, int64_t completion_tokens);

// Stream chunks ("text_completion" / "chat.completion.chunk"). chat_chunk's delta carries
// role "assistant" when delta_role is set (the first chunk, which then also carries content, "" if
// there is no text yet) and content when text is non-empty, so the final chunk is {"delta":{}}.
std::string completion_chunk(std::string_view id, std::string_view model, int64_t created,
                             std::string_view text, std::string_view finish_reason);
std::string chat_chunk(std::string_view id, std::string_view model, int64_t created,
                       bool delta_role, std::string_view text, std::string_view finish_reason);
// The extra chunk stream_options.include_usage asks for: "choices": [] plus "usage".
std::string usage_chunk(std::string_view id, std::string_view model, int64_t created, bool chat,
                        int64_t prompt_tokens, int64_t completion_tokens);

// Server-sent events framing: "data: <json>\n\n", and the terminator "data: [DONE]\n\n".
std::string sse_event(std::string_view json);
std::string sse_done();

// GET /v1/models: {"object":"list","data":[{"id","object":"model","created","owned_by"}]}.
std::string models_response(std::string_view model_id, int64_t created, std::string_view owned_by);

}  // namespace edgeglm::serve::http
