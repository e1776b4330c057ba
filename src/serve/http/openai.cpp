#include "serve/http/openai.h"

#include <cmath>
#include <exception>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace edgeglm::serve::http {
namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;

// Requests need four levels (body, messages, a message, its content parts); the cap keeps a hostile
// body from building a deep tree whose teardown and checks cost far more than its size suggests.
constexpr int kMaxJsonDepth = 32;
// How much of an offending string value an error message quotes.
constexpr size_t kQuoteBytes = 48;

// Every serialisation goes through here: model text may hold a partial UTF-8 sequence, which the
// default handler would turn into an exception.
template <class J>
std::string dump(const J& j) {
  return j.dump(-1, ' ', false, J::error_handler_t::replace);
}

bool depth_exceeds(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// "got ..." part of a message: scalars are quoted (strings truncated), containers only named, so
// an error never echoes a large or deep value back.
std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return dump(v) + " (a boolean)";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return dump(v) + " (an integer)";
    case json::value_t::number_float:
      return dump(v) + " (a number)";
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      std::string quoted = dump(json(s.size() > kQuoteBytes ? s.substr(0, kQuoteBytes) : s));
      return quoted + (s.size() > kQuoteBytes ? "... (a string)" : " (a string)");
    }
    case json::value_t::array:
      return "an array of " + std::to_string(v.size()) + " elements";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

ApiError bad(const std::string& param, const std::string& expected, const json& got) {
  return make_api_error(400, param + ": expected " + expected + ", got " + describe(got), param);
}

// The field's value, or nullptr when it is absent or null (null counts as absent, as in OpenAI).
const json* field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// The value of a JSON integer that fits int64. A number written with a fraction or exponent
// (3.0, 1e3) is not an integer here, as in JSON Schema draft 4 (which OpenAPI 3.0 follows), so the
// spec's `type: integer` and this parser agree on every input; JavaScript clients never write them.
std::optional<int64_t> json_int64(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

std::string range_text(int64_t lo, int64_t hi) {
  // Appended piecewise: GCC 12 misreports `"[" + std::to_string(..)` under -Wrestrict.
  std::string s = "[";
  s += std::to_string(lo);
  s += ", ";
  s += std::to_string(hi);
  s += ']';
  return s;
}

// Range bounds read as people write them: "2", not nlohmann's "2.0".
std::string num_text(double d) {
  if (d == std::trunc(d) && std::fabs(d) < 1e15) return std::to_string(int64_t(d));
  return dump(json(d));
}

// Each get_* leaves `out` untouched when the field is absent and returns the error when it is bad.
std::optional<ApiError> get_int(const json& obj, const char* name, int64_t lo, int64_t hi,
                                int64_t& out) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  auto i = json_int64(*v);
  if (!i || *i < lo || *i > hi) return bad(name, "an integer in " + range_text(lo, hi), *v);
  out = *i;
  return std::nullopt;
}

// A number in [lo, hi], or (lo, hi] when lo_open.
std::optional<ApiError> get_number(const json& obj, const char* name, double lo, double hi,
                                   bool lo_open, double& out) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  const double d = v->is_number() ? v->get<double>() : std::nan("");
  const bool ok = std::isfinite(d) && (lo_open ? d > lo : d >= lo) && d <= hi;
  if (!ok)
    return bad(name,
               std::string("a number in ") + (lo_open ? "(" : "[") + num_text(lo) + ", " +
                   num_text(hi) + "]",
               *v);
  out = d;
  return std::nullopt;
}

std::optional<ApiError> get_float(const json& obj, const char* name, double lo, double hi,
                                  bool lo_open, float& out) {
  double d = out;
  auto err = get_number(obj, name, lo, hi, lo_open, d);
  if (err) return err;
  out = float(d);
  // A positive double below float's range (top_p 1e-46) must stay positive: it means "the most
  // likely token only", not the excluded bound 0.
  if (lo_open && d > lo && out <= float(lo)) out = std::nextafter(float(lo), 1.0f);
  return std::nullopt;
}

std::optional<ApiError> get_bool(const json& obj, const char* name, bool& out) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return bad(name, "a boolean", *v);
  out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> get_string(const json& obj, const char* name, std::string& out) {
  const json* v = field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) return bad(name, "a string", *v);
  out = v->get<std::string>();
  return std::nullopt;
}

// Fields of the OpenAI API this server does not implement. They are accepted only with a value
// that asks for nothing (so SDKs that always send e.g. "logit_bias": {} keep working) and rejected
// by name otherwise, so a client never silently loses a feature it asked for.
struct NoOpField {
  const char* name;
  bool chat;
  bool completions;
  const char* accepted_json;  // JSON array of the values that ask for nothing
  const char* accepted_text;  // the same, for the error message
};
constexpr NoOpField kNoOpFields[] = {
    {"logprobs", true, false, "[false]", "false"},
    {"logprobs", false, true, "[]", "null"},
    {"top_logprobs", true, false, "[0]", "0"},
    {"tools", true, false, "[[]]", "[]"},
    {"tool_choice", true, false, R"(["none","auto"])", R"("none" or "auto")"},
    {"functions", true, false, "[[]]", "[]"},
    {"function_call", true, false, R"(["none","auto"])", R"("none" or "auto")"},
    {"response_format", true, false, R"([{"type":"text"}])", R"({"type":"text"})"},
    {"modalities", true, false, R"([["text"]])", R"(["text"])"},
    {"audio", true, false, "[]", "null"},
    {"prediction", true, false, "[]", "null"},
    {"web_search_options", true, false, "[]", "null"},
    {"reasoning_effort", true, false, "[]", "null"},
    {"logit_bias", true, true, "[{}]", "{}"},
    {"echo", false, true, "[false]", "false"},
    {"best_of", false, true, "[1]", "1"},
    {"suffix", false, true, R"([""])", R"("")"},
};

// Chat fields that do not change generation and are accepted with any value of the right type.
struct IgnoredField {
  const char* name;
  json::value_t type;
  const char* type_text;
};
constexpr IgnoredField kIgnoredChatFields[] = {
    {"store", json::value_t::boolean, "a boolean"},
    {"metadata", json::value_t::object, "an object"},
    {"service_tier", json::value_t::string, "a string"},
    {"parallel_tool_calls", json::value_t::boolean, "a boolean"},
};

constexpr const char* kCommonFields[] = {"model",
                                         "max_tokens",
                                         "max_completion_tokens",
                                         "temperature",
                                         "top_p",
                                         "top_k",
                                         "min_p",
                                         "seed",
                                         "stop",
                                         "presence_penalty",
                                         "frequency_penalty",
                                         "n",
                                         "user",
                                         "stream",
                                         "stream_options",
                                         "priority",
                                         "timeout",
                                         "ignore_eos"};

bool applies(const NoOpField& f, bool chat) { return chat ? f.chat : f.completions; }

bool is_known_field(const std::string& key, bool chat) {
  for (const char* f : kCommonFields)
    if (key == f) return true;
  if (key == (chat ? "messages" : "prompt")) return true;
  for (const auto& f : kNoOpFields)
    if (applies(f, chat) && key == f.name) return true;
  if (chat)
    for (const auto& f : kIgnoredChatFields)
      if (key == f.name) return true;
  return false;
}

std::optional<ApiError> check_unimplemented(const json& root, bool chat) {
  for (const auto& f : kNoOpFields) {
    if (!applies(f, chat)) continue;
    const json* v = field(root, f.name);
    if (!v) continue;
    bool no_op = false;
    for (const auto& a : json::parse(f.accepted_json, nullptr, false))
      // 1.0 is not the integer 1 (see json_int64), though nlohmann compares them equal.
      if (*v == a && v->is_number_float() == a.is_number_float()) no_op = true;
    if (!no_op)
      return make_api_error(400,
                            std::string(f.name) + ": not supported by this server (only " +
                                f.accepted_text + " is accepted), got " + describe(*v),
                            f.name);
  }
  if (chat)
    for (const auto& f : kIgnoredChatFields) {
      const json* v = field(root, f.name);
      if (v && v->type() != f.type) return bad(f.name, f.type_text, *v);
    }
  return std::nullopt;
}

// One message's content: a string, or an array of {"type":"text","text":...} parts joined with
// newlines (how multi-part text reads to a model that was trained on plain turns).
std::optional<ApiError> parse_content(const json& c, const std::string& where, std::string& out) {
  if (c.is_string()) {
    out = c.get<std::string>();
    return std::nullopt;
  }
  if (!c.is_array()) return bad(where, "a string or an array of text parts", c);
  out.clear();
  for (size_t j = 0; j < c.size(); ++j) {
    const std::string part = where + "[" + std::to_string(j) + "]";
    const json& p = c[j];
    if (!p.is_object()) return bad(part, R"(an object {"type":"text","text":...})", p);
    const json* type = field(p, "type");
    if (!type || !type->is_string() || *type != "text")
      return make_api_error(400,
                            part +
                                ".type: expected \"text\" (only text content is supported), got " +
                                (type ? describe(*type) : std::string("nothing")),
                            part + ".type");
    const json* text = field(p, "text");
    if (!text || !text->is_string()) return bad(part + ".text", "a string", text ? *text : json());
    if (j > 0) out += '\n';
    out += text->get_ref<const std::string&>();
  }
  return std::nullopt;
}

std::optional<ApiError> parse_messages(const json& root, const Limits& limits,
                                       std::vector<tokenizer::ChatMessage>& out) {
  const json* m = field(root, "messages");
  if (!m)
    return make_api_error(400, "messages: required, expected an array of messages", "messages");
  if (!m->is_array() || m->empty() || m->size() > limits.max_messages)
    return bad("messages", "an array of 1 to " + std::to_string(limits.max_messages) + " messages",
               *m);
  size_t total_bytes = 0;
  for (size_t i = 0; i < m->size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const json& msg = (*m)[i];
    if (!msg.is_object()) return bad(where, "an object with role and content", msg);
    for (const auto& [key, value] : msg.items()) {
      // Fields an SDK sends back when a previous assistant turn is replayed: harmless when they
      // carry nothing. Anything that would make a turn mean more than its text is refused.
      if (key == "role" || key == "content" || key == "name" || key == "refusal" ||
          key == "annotations" || (key == "tool_calls" && value.is_array() && value.empty()) ||
          ((key == "tool_calls" || key == "function_call" || key == "tool_call_id" ||
            key == "audio") &&
           value.is_null()))
        continue;
      const std::string param = where + "." + key;
      return make_api_error(400, param + ": not supported by this server, got " + describe(value),
                            param);
    }
    const json* role = field(msg, "role");
    if (!role || !role->is_string() ||
        (*role != "system" && *role != "user" && *role != "assistant"))
      return bad(where + ".role", R"(one of "system", "user", "assistant")", role ? *role : json());
    const json* name = field(msg, "name");
    if (name && !name->is_string()) return bad(where + ".name", "a string", *name);
    const json* content = field(msg, "content");
    if (!content) return bad(where + ".content", "a string or an array of text parts", json());
    tokenizer::ChatMessage cm;
    cm.role = role->get<std::string>();
    if (auto err = parse_content(*content, where + ".content", cm.content)) return err;
    total_bytes += cm.content.size();
    if (total_bytes > limits.max_prompt_bytes)
      return make_api_error(400,
                            "messages: the contents total more than " +
                                std::to_string(limits.max_prompt_bytes) + " bytes",
                            "messages", "prompt_too_large");
    out.push_back(std::move(cm));
  }
  return std::nullopt;
}

std::optional<ApiError> parse_prompt(const json& root, const Limits& limits, std::string& out) {
  const json* p = field(root, "prompt");
  constexpr const char* kExpected = "a string or an array of one string";
  if (!p)
    return make_api_error(400, std::string("prompt: required, expected ") + kExpected, "prompt");
  if (p->is_array() && !p->empty() && (*p)[0].is_number())
    return make_api_error(
        400, "prompt: token-id prompts are not supported; send the prompt as a string", "prompt");
  if (p->is_array() && p->size() > 1)
    return bad("prompt", std::string(kExpected) + " (batched prompts are not supported)", *p);
  const json& s = p->is_array() && p->size() == 1 ? (*p)[0] : *p;
  if (!s.is_string()) return bad("prompt", kExpected, *p);
  out = s.get<std::string>();
  if (out.size() > limits.max_prompt_bytes)
    return make_api_error(
        400, "prompt: longer than " + std::to_string(limits.max_prompt_bytes) + " bytes", "prompt",
        "prompt_too_large");
  return std::nullopt;
}

std::optional<ApiError> parse_stop(const json& root, const Limits& limits,
                                   std::vector<std::string>& out) {
  const json* s = field(root, "stop");
  if (!s) return std::nullopt;
  const std::string expected =
      "a non-empty string of at most " + std::to_string(limits.max_stop_len) +
      " bytes, or an array of at most " + std::to_string(limits.max_stop_strings) + " such strings";
  auto valid = [&](const json& v) {
    return v.is_string() && !v.get_ref<const std::string&>().empty() &&
           v.get_ref<const std::string&>().size() <= limits.max_stop_len;
  };
  if (s->is_string()) {
    if (!valid(*s)) return bad("stop", expected, *s);
    out.push_back(s->get<std::string>());
    return std::nullopt;
  }
  if (!s->is_array() || s->size() > limits.max_stop_strings) return bad("stop", expected, *s);
  for (size_t i = 0; i < s->size(); ++i) {
    if (!valid((*s)[i])) return bad("stop[" + std::to_string(i) + "]", expected, (*s)[i]);
    out.push_back((*s)[i].get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> parse_fields(const json& root, bool chat, const Limits& limits,
                                     CompletionRequest& r) {
  for (const auto& item : root.items())
    if (!is_known_field(item.key(), chat))
      return make_api_error(400, item.key() + ": unrecognized request argument", item.key());

  const json* model = field(root, "model");
  if (!model) return make_api_error(400, "model: required, expected a string", "model");
  if (!model->is_string() || model->get_ref<const std::string&>().empty())
    return bad("model", "a non-empty string", *model);
  r.model = model->get<std::string>();

  if (auto e =
          chat ? parse_messages(root, limits, r.messages) : parse_prompt(root, limits, r.prompt))
    return e;
  if (auto e = check_unimplemented(root, chat)) return e;

  // max_completion_tokens is the newer name of max_tokens and wins when a client sends both.
  int64_t max_tokens = chat ? kMaxTokensUnbounded : kCompletionsDefaultMaxTokens;
  if (auto e = get_int(root, "max_tokens", 1, limits.max_tokens_limit, max_tokens)) return e;
  if (auto e = get_int(root, "max_completion_tokens", 1, limits.max_tokens_limit, max_tokens))
    return e;
  r.max_tokens = int32_t(max_tokens);

  // The OpenAI API's defaults, not the CLI's: sampling at temperature 1 with every filter off.
  runtime::SamplerParams& s = r.sampling;
  s.temperature = 1.0f;
  s.top_p = 1.0f;
  s.top_k = 0;
  s.min_p = 0.0f;
  s.repeat_penalty = 1.0f;
  s.presence_penalty = 0.0f;
  s.frequency_penalty = 0.0f;
  if (auto e = get_float(root, "temperature", 0, 2, false, s.temperature)) return e;
  if (auto e = get_float(root, "top_p", 0, 1, true, s.top_p)) return e;
  int64_t top_k = 0;
  if (auto e = get_int(root, "top_k", 0, std::numeric_limits<int32_t>::max(), top_k)) return e;
  s.top_k = int32_t(top_k);
  if (auto e = get_float(root, "min_p", 0, 1, false, s.min_p)) return e;
  if (auto e = get_float(root, "presence_penalty", -2, 2, false, s.presence_penalty)) return e;
  if (auto e = get_float(root, "frequency_penalty", -2, 2, false, s.frequency_penalty)) return e;
  if (const json* seed = field(root, "seed")) {
    // Any 64-bit integer: negative seeds are reinterpreted, unsigned ones up to 2^64-1 kept.
    if (seed->is_number_unsigned()) {
      s.seed = seed->get<uint64_t>();
    } else if (auto i = json_int64(*seed)) {
      s.seed = uint64_t(*i);
    } else {
      return bad("seed", "an integer in [-2^63, 2^64-1]", *seed);
    }
    r.has_seed = true;
  }
  if (auto e = parse_stop(root, limits, r.stop)) return e;

  int64_t n = 1;
  if (auto e = get_int(root, "n", 1, 1, n)) {
    e->message += " (this server returns one choice per request)";
    return e;
  }
  if (auto e = get_string(root, "user", r.user)) return e;
  if (auto e = get_bool(root, "stream", r.stream)) return e;
  if (const json* so = field(root, "stream_options")) {
    // Only meaningful with stream: true; accepted and ignored otherwise rather than failing a
    // client that always sends it.
    if (!so->is_object()) return bad("stream_options", "an object", *so);
    const json* iu = field(*so, "include_usage");
    if (iu && !iu->is_boolean()) return bad("stream_options.include_usage", "a boolean", *iu);
    r.include_usage = r.stream && iu && iu->get<bool>();
  }
  if (const json* p = field(root, "priority")) {
    if (!p->is_string() || !is_valid_priority(p->get_ref<const std::string&>()))
      return bad("priority", R"(one of "interactive", "normal", "batch")", *p);
    r.priority = p->get<std::string>();
  }
  if (auto e = get_number(root, "timeout", 0, kMaxTimeoutSeconds, true, r.timeout_s)) return e;
  if (auto e = get_bool(root, "ignore_eos", r.ignore_eos)) return e;

  // The ranges above are within the sampler's; this only guards against the two drifting apart.
  if (Status st = s.validate(); !st) return make_api_error(400, st.message());
  return std::nullopt;
}

ordered_json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  ordered_json u;
  u["prompt_tokens"] = prompt_tokens;
  u["completion_tokens"] = completion_tokens;
  u["total_tokens"] = prompt_tokens + completion_tokens;
  return u;
}

ordered_json finish_json(std::string_view finish_reason) {
  return finish_reason.empty() ? ordered_json(nullptr) : ordered_json(std::string(finish_reason));
}

ordered_json envelope(std::string_view id, const char* object, int64_t created,
                      std::string_view model) {
  ordered_json j;
  j["id"] = std::string(id);
  j["object"] = object;
  j["created"] = created;
  j["model"] = std::string(model);
  return j;
}

// Builders only allocate, so the one failure left is running out of memory; the HTTP layer then
// gets a 500-shaped body instead of an exception crossing into it.
template <class F>
std::string guarded(F&& build) {
  try {
    return build();
  } catch (const std::exception&) {
    return R"({"error":{"message":"out of memory while building the response",)"
           R"("type":"server_error","param":null,"code":null}})";
  }
}

}  // namespace

const char* error_type_for_status(int status) {
  switch (status) {
    case 400:
    case 413:
      return kErrInvalidRequest;
    case 401:
      return kErrAuthentication;
    case 404:
      return kErrNotFound;
    case 503:
      return kErrOverloaded;
    default:
      return status >= 400 && status < 500 ? kErrInvalidRequest : kErrServer;
  }
}

ApiError make_api_error(int status, std::string message, std::string param, std::string code) {
  return ApiError{status, error_type_for_status(status), std::move(message), std::move(param),
                  std::move(code)};
}

std::string error_json(const ApiError& e) {
  return guarded([&] {
    ordered_json err;
    err["message"] = e.message;
    err["type"] = e.type.empty() ? std::string(error_type_for_status(e.status)) : e.type;
    err["param"] = e.param.empty() ? ordered_json(nullptr) : ordered_json(e.param);
    err["code"] = e.code.empty() ? ordered_json(nullptr) : ordered_json(e.code);
    ordered_json j;
    j["error"] = std::move(err);
    return dump(j);
  });
}

bool is_valid_priority(std::string_view p) {
  return p == "interactive" || p == "normal" || p == "batch";
}

ParsedRequest parse_completion_request(std::string_view body, bool chat, const Limits& limits) {
  try {
    if (depth_exceeds(body, kMaxJsonDepth))
      return make_api_error(400, "request body: JSON nested deeper than " +
                                     std::to_string(kMaxJsonDepth) + " levels");
    const json root = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded())
      return make_api_error(400,
                            "request body: expected a JSON object, got invalid JSON "
                            "(or a string that is not valid UTF-8)");
    if (!root.is_object())
      return make_api_error(400, "request body: expected a JSON object, got " + describe(root));
    CompletionRequest r;
    r.chat = chat;
    if (auto err = parse_fields(root, chat, limits, r)) return std::move(*err);
    return r;
  } catch (const std::exception& e) {
    // Only allocation failure can get here; the request is refused, not the process.
    return make_api_error(500, std::string("request body: ") + e.what());
  }
}

namespace {
// One response or chunk: the envelope with a single choice {index, <key>: value, logprobs: null,
// finish_reason}, and usage when usage_tokens are given (whole responses).
std::string one_choice(std::string_view id, const char* object, int64_t created,
                       std::string_view model, const char* key, ordered_json value,
                       std::string_view finish_reason, const int64_t* usage_tokens) {
  ordered_json choice;
  choice["index"] = 0;
  choice[key] = std::move(value);
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_json(finish_reason);
  ordered_json j = envelope(id, object, created, model);
  j["choices"] = ordered_json::array({std::move(choice)});
  if (usage_tokens) j["usage"] = usage_json(usage_tokens[0], usage_tokens[1]);
  return dump(j);
}
}  // namespace

std::string completion_response(std::string_view id, std::string_view model, int64_t created,
                                std::string_view text, std::string_view finish_reason,
                                int64_t prompt_tokens, int64_t completion_tokens) {
  return guarded([&] {
    const int64_t usage[2] = {prompt_tokens, completion_tokens};
    return one_choice(id, "text_completion", created, model, "text", std::string(text),
                      finish_reason, usage);
  });
}

std::string chat_completion_response(std::string_view id, std::string_view model, int64_t created,
                                     std::string_view text, std::string_view finish_reason,
                                     int64_t prompt_tokens, int64_t completion_tokens) {
  return guarded([&] {
    ordered_json message;
    message["role"] = "assistant";
    message["content"] = std::string(text);
    const int64_t usage[2] = {prompt_tokens, completion_tokens};
    return one_choice(id, "chat.completion", created, model, "message", std::move(message),
                      finish_reason, usage);
  });
}

std::string completion_chunk(std::string_view id, std::string_view model, int64_t created,
                             std::string_view text, std::string_view finish_reason) {
  return guarded([&] {
    return one_choice(id, "text_completion", created, model, "text", std::string(text),
                      finish_reason, nullptr);
  });
}

std::string chat_chunk(std::string_view id, std::string_view model, int64_t created,
                       bool delta_role, std::string_view text, std::string_view finish_reason) {
  return guarded([&] {
    ordered_json delta = ordered_json::object();
    if (delta_role) delta["role"] = "assistant";
    if (delta_role || !text.empty()) delta["content"] = std::string(text);
    return one_choice(id, "chat.completion.chunk", created, model, "delta", std::move(delta),
                      finish_reason, nullptr);
  });
}

std::string usage_chunk(std::string_view id, std::string_view model, int64_t created, bool chat,
                        int64_t prompt_tokens, int64_t completion_tokens) {
  return guarded([&] {
    ordered_json j =
        envelope(id, chat ? "chat.completion.chunk" : "text_completion", created, model);
    j["choices"] = ordered_json::array();
    j["usage"] = usage_json(prompt_tokens, completion_tokens);
    return dump(j);
  });
}

std::string sse_event(std::string_view json_text) {
  std::string out;
  out.reserve(json_text.size() + 8);
  out += "data: ";
  out += json_text;
  out += "\n\n";
  return out;
}

std::string sse_done() { return "data: [DONE]\n\n"; }

std::string models_response(std::string_view model_id, int64_t created, std::string_view owned_by) {
  return guarded([&] {
    ordered_json m;
    m["id"] = std::string(model_id);
    m["object"] = "model";
    m["created"] = created;
    m["owned_by"] = std::string(owned_by);
    ordered_json j;
    j["object"] = "list";
    j["data"] = ordered_json::array({std::move(m)});
    return dump(j);
  });
}

}  // namespace edgeglm::serve::http
