// The OpenAI JSON layer: every request field's accepted forms and rejections, the API's defaults,
// and the exact shape of each response builder (parsed back, not string-compared).
#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "serve/http/openai.h"

using namespace edgeglm::serve::http;
using json = nlohmann::json;

namespace {

const Limits kLimits{};

json chat_body() {
  return {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
}
json completion_body() { return {{"model", "m"}, {"prompt", "Once"}}; }

ParsedRequest parse(const json& body, bool chat, const Limits& limits = kLimits) {
  return parse_completion_request(body.dump(), chat, limits);
}

CompletionRequest expect_ok(const ParsedRequest& p) {
  if (const auto* e = std::get_if<ApiError>(&p)) {
    ADD_FAILURE() << "rejected: " << e->message;
    return {};
  }
  return std::get<CompletionRequest>(p);
}

// Checks the common shape of a rejection: 400, invalid_request_error, the field as `param`, and a
// message that names the field.
ApiError expect_rejected(const ParsedRequest& p, const std::string& param) {
  const auto* e = std::get_if<ApiError>(&p);
  if (!e) {
    ADD_FAILURE() << "accepted, expected a rejection naming " << param;
    return {};
  }
  EXPECT_EQ(e->status, 400);
  EXPECT_EQ(e->type, "invalid_request_error");
  EXPECT_EQ(e->param, param);
  if (!param.empty()) {
    EXPECT_NE(e->message.find(param), std::string::npos) << e->message;
  }
  return *e;
}

bool contains(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

}  // namespace

TEST(OpenAiParse, ChatDefaultsAreTheApiDefaults) {
  CompletionRequest r = expect_ok(parse(chat_body(), true));
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hi");
  EXPECT_EQ(r.max_tokens, kMaxTokensUnbounded);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_EQ(r.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.0f);
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, 0.0f);
  EXPECT_FALSE(r.has_seed);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_EQ(r.priority, "");
  EXPECT_EQ(r.timeout_s, 0.0);
  EXPECT_EQ(r.user, "");
  EXPECT_FALSE(r.ignore_eos);
}

TEST(OpenAiParse, CompletionDefaults) {
  CompletionRequest r = expect_ok(parse(completion_body(), false));
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_TRUE(r.messages.empty());
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
}

TEST(OpenAiParse, NullCountsAsAbsent) {
  json b = chat_body();
  for (const char* f : {"max_tokens",
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
                        "ignore_eos",
                        "logprobs",
                        "tools",
                        "tool_choice",
                        "response_format",
                        "logit_bias",
                        "audio",
                        "store",
                        "metadata"})
    b[f] = nullptr;
  CompletionRequest r = expect_ok(parse(b, true));
  EXPECT_EQ(r.max_tokens, kMaxTokensUnbounded);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_FALSE(r.has_seed);

  json c = completion_body();
  for (const char* f : {"max_tokens", "echo", "best_of", "suffix", "logprobs"}) c[f] = nullptr;
  EXPECT_EQ(expect_ok(parse(c, false)).max_tokens, 16);
}

TEST(OpenAiParse, AcceptedForms) {
  json b = chat_body();
  b["max_tokens"] = 10;
  b["temperature"] = 0;
  b["top_p"] = 0.5;
  b["top_k"] = 40;
  b["min_p"] = 0.05;
  b["seed"] = 42;
  b["stop"] = "\n\n";
  b["presence_penalty"] = -2;
  b["frequency_penalty"] = 2;
  b["n"] = 1;
  b["user"] = "u-1";
  b["stream"] = true;
  b["stream_options"] = {{"include_usage", true}};
  b["priority"] = "batch";
  b["timeout"] = 2.5;
  b["ignore_eos"] = true;
  CompletionRequest r = expect_ok(parse(b, true));
  EXPECT_EQ(r.max_tokens, 10);
  EXPECT_FLOAT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.05f);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_TRUE(r.has_seed);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n\n"});
  EXPECT_FLOAT_EQ(r.sampling.presence_penalty, -2.0f);
  EXPECT_FLOAT_EQ(r.sampling.frequency_penalty, 2.0f);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.priority, "batch");
  EXPECT_DOUBLE_EQ(r.timeout_s, 2.5);
  EXPECT_TRUE(r.ignore_eos);
}

TEST(OpenAiParse, RangeEdgesAreInclusive) {
  json b = chat_body();
  b["top_k"] = 0;
  b["temperature"] = 2;
  b["top_p"] = 1;
  b["min_p"] = 1;
  b["timeout"] = 86400;
  b["max_tokens"] = kLimits.max_tokens_limit;
  EXPECT_EQ(expect_ok(parse(b, true)).max_tokens, kLimits.max_tokens_limit);
}

// As in JSON Schema draft 4 (OpenAPI 3.0), an integer field takes only numbers written as
// integers, so the spec and the parser agree on 12.0 and 1e3.
TEST(OpenAiParse, IntegerFieldsRejectNumbersWrittenWithFractionOrExponent) {
  for (const char* f : {"max_tokens", "max_completion_tokens", "top_k", "seed", "n"}) {
    for (const char* v : {"12.0", "1e3", "1.0"}) {
      SCOPED_TRACE(std::string(f) + " = " + v);
      std::string body = std::string(R"({"model":"m","prompt":"p",")") + f + "\":" + v + "}";
      expect_rejected(parse_completion_request(body, false, kLimits), f);
    }
  }
  expect_rejected(parse_completion_request(R"({"model":"m","prompt":"p","best_of":1.0})", false,
                                           kLimits),
                  "best_of");
  expect_ok(parse_completion_request(R"({"model":"m","prompt":"p","best_of":1})", false, kLimits));
  // Numbers are fine where a number is expected, whichever way they are written.
  EXPECT_FLOAT_EQ(expect_ok(parse_completion_request(
                                R"({"model":"m","prompt":"p","temperature":1})", false, kLimits))
                      .sampling.temperature,
                  1.0f);
}

TEST(OpenAiParse, SeedCoversTheWhole64BitRange) {
  json b = chat_body();
  b["seed"] = -1;
  EXPECT_EQ(expect_ok(parse(b, true)).sampling.seed, std::numeric_limits<uint64_t>::max());
  b["seed"] = std::numeric_limits<uint64_t>::max();
  EXPECT_EQ(expect_ok(parse(b, true)).sampling.seed, std::numeric_limits<uint64_t>::max());
  b["seed"] = 0;
  CompletionRequest r = expect_ok(parse(b, true));
  EXPECT_EQ(r.sampling.seed, 0u);
  EXPECT_TRUE(r.has_seed);
}

TEST(OpenAiParse, MaxCompletionTokensIsAnAliasAndWins) {
  json b = chat_body();
  b["max_completion_tokens"] = 7;
  EXPECT_EQ(expect_ok(parse(b, true)).max_tokens, 7);
  b["max_tokens"] = 100;
  EXPECT_EQ(expect_ok(parse(b, true)).max_tokens, 7);
  json c = completion_body();
  c["max_completion_tokens"] = 3;
  EXPECT_EQ(expect_ok(parse(c, false)).max_tokens, 3);
  b["max_completion_tokens"] = 0;
  expect_rejected(parse(b, true), "max_completion_tokens");
}

TEST(OpenAiParse, StopForms) {
  json b = chat_body();
  b["stop"] = json::array({"a", "bc", "d", "e"});
  EXPECT_EQ(expect_ok(parse(b, true)).stop, (std::vector<std::string>{"a", "bc", "d", "e"}));
  b["stop"] = json::array();
  EXPECT_TRUE(expect_ok(parse(b, true)).stop.empty());
  b["stop"] = std::string(kLimits.max_stop_len, 'x');
  EXPECT_EQ(expect_ok(parse(b, true)).stop.size(), 1u);
}

TEST(OpenAiParse, IncludeUsageOnlyWhenStreaming) {
  json b = chat_body();
  b["stream_options"] = {{"include_usage", true}};
  EXPECT_FALSE(expect_ok(parse(b, true)).include_usage);
  b["stream"] = false;
  EXPECT_FALSE(expect_ok(parse(b, true)).include_usage);
  b["stream"] = true;
  EXPECT_TRUE(expect_ok(parse(b, true)).include_usage);
  b["stream_options"] = json::object();
  EXPECT_FALSE(expect_ok(parse(b, true)).include_usage);
}

TEST(OpenAiParse, PriorityNames) {
  for (const char* p : {"interactive", "normal", "batch"}) {
    json b = chat_body();
    b["priority"] = p;
    EXPECT_EQ(expect_ok(parse(b, true)).priority, p);
    EXPECT_TRUE(is_valid_priority(p));
  }
  EXPECT_FALSE(is_valid_priority(""));
  EXPECT_FALSE(is_valid_priority("Interactive"));
}

TEST(OpenAiParse, NoOpValuesOfUnimplementedFieldsAreAccepted) {
  json b = chat_body();
  b["logprobs"] = false;
  b["top_logprobs"] = 0;
  b["tools"] = json::array();
  b["tool_choice"] = "none";
  b["functions"] = json::array();
  b["function_call"] = "auto";
  b["response_format"] = {{"type", "text"}};
  b["logit_bias"] = json::object();
  b["modalities"] = json::array({"text"});
  b["store"] = false;
  b["metadata"] = {{"k", "v"}};
  b["service_tier"] = "auto";
  b["parallel_tool_calls"] = true;
  expect_ok(parse(b, true));

  json c = completion_body();
  c["echo"] = false;
  c["best_of"] = 1;
  c["suffix"] = "";
  c["logit_bias"] = json::object();
  expect_ok(parse(c, false));
}

struct Rejection {
  const char* field;
  json value;
  std::string param;        // "" -> same as field
  std::string expect_text;  // must appear in the message
};

TEST(OpenAiParse, FieldRejectionsNameFieldExpectationAndValue) {
  const std::vector<Rejection> cases = {
      {"max_tokens", "10", "", R"(got "10" (a string))"},
      {"max_tokens", 0, "", "an integer in [1, 4096]"},
      {"max_tokens", -5, "", "got -5"},
      {"max_tokens", 10.5, "", "got 10.5"},
      {"max_tokens", 1e300, "", "an integer"},
      {"max_tokens", 4097, "", "[1, 4096]"},
      {"max_tokens", true, "", "(a boolean)"},
      {"max_tokens", json::array(), "", "an array"},
      {"temperature", true, "", "got true (a boolean)"},
      {"temperature", "1", "", "a number in [0, 2]"},
      {"temperature", -0.1, "", "a number in [0, 2]"},
      {"temperature", 2.5, "", "got 2.5"},
      {"temperature", 1e300, "", "got 1e+300"},
      {"top_p", 0, "", "(0, 1]"},
      {"top_p", 1.1, "", "(0, 1]"},
      {"top_k", -1, "", "an integer in [0, 2147483647]"},
      {"top_k", 1.5, "", "an integer"},
      {"top_k", 3e9, "", "an integer"},
      {"min_p", -0.1, "", "[0, 1]"},
      {"min_p", 1.5, "", "[0, 1]"},
      {"seed", 1.5, "", "an integer"},
      {"seed", 18446744073709551616.0, "", "an integer"},
      {"seed", "7", "", "an integer"},
      {"seed", 1e300, "", "an integer"},
      {"presence_penalty", 3, "", "[-2, 2]"},
      {"frequency_penalty", -2.5, "", "[-2, 2]"},
      {"n", 2, "", "one choice"},
      {"n", 0, "", "[1, 1]"},
      {"n", "1", "", "an integer"},
      {"user", 5, "", "a string"},
      {"stream", "true", "", "a boolean"},
      {"stream_options", "yes", "", "an object"},
      {"stream_options", {{"include_usage", 1}}, "stream_options.include_usage", "a boolean"},
      {"priority", "urgent", "", "\"interactive\""},
      {"priority", 1, "", "\"batch\""},
      {"timeout", 0, "", "(0, 86400]"},
      {"timeout", -1, "", "(0, 86400]"},
      {"timeout", 1e300, "", "(0, 86400]"},
      {"timeout", "5", "", "a number"},
      {"ignore_eos", 1, "", "a boolean"},
      {"stop", "", "", "a non-empty string"},
      {"stop", 5, "", "at most 4 such strings"},
      {"stop", json::array({"a", "b", "c", "d", "e"}), "", "at most 4"},
      {"stop", std::string(257, 'x'), "", "at most 256 bytes"},
      {"stop", json::array({"ok", 1}), "stop[1]", "got 1"},
      {"stop", json::array({""}), "stop[0]", "non-empty"},
      {"logprobs", true, "", "not supported"},
      {"top_logprobs", 2, "", "not supported"},
      {"tools", json::array({{{"type", "function"}}}), "", "only [] is accepted"},
      {"tool_choice", "required", "", "not supported"},
      {"response_format", {{"type", "json_object"}}, "", R"(only {"type":"text"})"},
      {"logit_bias", {{"50256", -100}}, "", "not supported"},
      {"modalities", json::array({"text", "audio"}), "", "not supported"},
      {"audio", json::object(), "", "only null"},
      {"store", "yes", "", "a boolean"},
      {"metadata", 1, "", "an object"},
      {"frobnicate", 1, "", "unrecognized request argument"},
      {"prompt", "x", "", "unrecognized"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    json b = chat_body();
    b[c.field] = c.value;
    ApiError e = expect_rejected(parse(b, true), c.param.empty() ? c.field : c.param);
    EXPECT_TRUE(contains(e.message, c.expect_text)) << e.message;
    EXPECT_TRUE(e.code.empty());
  }
}

TEST(OpenAiParse, CompletionOnlyRejections) {
  const std::vector<Rejection> cases = {
      {"prompt", json::array({1, 2, 3}), "", "token-id prompts are not supported"},
      {"prompt", json::array({json::array({1})}), "", "a string or an array of one string"},
      {"prompt", json::array({"a", "b"}), "", "batched prompts are not supported"},
      {"prompt", json::array(), "", "an array of 0 elements"},
      {"prompt", 5, "", "got 5"},
      {"echo", true, "", "only false"},
      {"best_of", 2, "", "only 1"},
      {"suffix", "end", "", "not supported"},
      {"logprobs", 1, "", "only null"},
      {"messages", json::array(), "", "unrecognized"},
      {"tools", json::array(), "", "unrecognized"},
      {"store", false, "", "unrecognized"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    json b = completion_body();
    b[c.field] = c.value;
    ApiError e = expect_rejected(parse(b, false), c.param.empty() ? c.field : c.param);
    EXPECT_TRUE(contains(e.message, c.expect_text)) << e.message;
  }
  json b = completion_body();
  b.erase("prompt");
  EXPECT_TRUE(contains(expect_rejected(parse(b, false), "prompt").message, "required"));
}

TEST(OpenAiParse, PromptArrayOfOneString) {
  json b = completion_body();
  b["prompt"] = json::array({"Hello"});
  EXPECT_EQ(expect_ok(parse(b, false)).prompt, "Hello");
  b["prompt"] = "";
  EXPECT_EQ(expect_ok(parse(b, false)).prompt, "");
}

TEST(OpenAiParse, ModelIsRequired) {
  json b = chat_body();
  b.erase("model");
  EXPECT_TRUE(contains(expect_rejected(parse(b, true), "model").message, "required"));
  b["model"] = 5;
  expect_rejected(parse(b, true), "model");
  b["model"] = "";
  EXPECT_TRUE(contains(expect_rejected(parse(b, true), "model").message, "non-empty"));
}

TEST(OpenAiParse, ContentPartsAreJoined) {
  json b = chat_body();
  b["messages"] = json::array({{{"role", "system"}, {"content", "Be brief."}},
                               {{"role", "user"},
                                {"content", json::array({{{"type", "text"}, {"text", "first"}},
                                                         {{"type", "text"}, {"text", "second"}}})}},
                               {{"role", "assistant"},
                                {"content", json::array()},
                                {"name", "bot"},
                                {"refusal", nullptr},
                                {"tool_calls", json::array()}}});
  CompletionRequest r = expect_ok(parse(b, true));
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "first\nsecond");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_EQ(r.messages[2].content, "");
}

TEST(OpenAiParse, MessageRejections) {
  auto with_messages = [](json messages) {
    json b = chat_body();
    b["messages"] = std::move(messages);
    return parse(b, true);
  };
  json b = chat_body();
  b.erase("messages");
  expect_rejected(parse(b, true), "messages");
  expect_rejected(with_messages(json::array()), "messages");
  expect_rejected(with_messages("hi"), "messages");
  expect_rejected(with_messages(json::array({1})), "messages[0]");
  ApiError e = expect_rejected(with_messages(json::array({{{"role", "user"}, {"content", "a"}},
                                                          {{"role", "tool"}, {"content", "b"}}})),
                               "messages[1].role");
  EXPECT_TRUE(contains(e.message, R"(got "tool")")) << e.message;
  expect_rejected(with_messages(json::array({{{"content", "a"}}})), "messages[0].role");
  expect_rejected(with_messages(json::array({{{"role", "user"}}})), "messages[0].content");
  expect_rejected(with_messages(json::array({{{"role", "user"}, {"content", nullptr}}})),
                  "messages[0].content");
  expect_rejected(with_messages(json::array({{{"role", "user"}, {"content", 5}}})),
                  "messages[0].content");
  e = expect_rejected(
      with_messages(json::array(
          {{{"role", "user"},
            {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", "x"}}}}})}}})),
      "messages[0].content[0].type");
  EXPECT_TRUE(contains(e.message, "only text content")) << e.message;
  expect_rejected(
      with_messages(json::array(
          {{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", 3}}})}}})),
      "messages[0].content[0].text");
  expect_rejected(with_messages(json::array({{{"role", "user"}, {"content", json::array({"x"})}}})),
                  "messages[0].content[0]");
  expect_rejected(with_messages(json::array({{{"role", "assistant"},
                                              {"content", "x"},
                                              {"tool_calls", json::array({{{"id", "1"}}})}}})),
                  "messages[0].tool_calls");
  expect_rejected(with_messages(json::array({{{"role", "user"}, {"content", "x"}, {"name", 1}}})),
                  "messages[0].name");
  json many = json::array();
  for (size_t i = 0; i <= kLimits.max_messages; ++i)
    many.push_back({{"role", "user"}, {"content", "x"}});
  expect_rejected(with_messages(many), "messages");
}

TEST(OpenAiParse, PromptByteLimit) {
  Limits small;
  small.max_prompt_bytes = 8;
  json c = completion_body();
  c["prompt"] = "123456789";
  ApiError e = expect_rejected(parse(c, false, small), "prompt");
  EXPECT_EQ(e.code, "prompt_too_large");
  c["prompt"] = "12345678";
  expect_ok(parse(c, false, small));

  json b = chat_body();
  b["messages"] = json::array(
      {{{"role", "user"}, {"content", "12345"}}, {{"role", "user"}, {"content", "6789"}}});
  EXPECT_EQ(expect_rejected(parse(b, true, small), "messages").code, "prompt_too_large");
}

TEST(OpenAiParse, BodiesThatAreNotARequestObject) {
  for (std::string body :
       {std::string(""), std::string("{"), std::string("[]"), std::string("\"x\""),
        std::string("null"), std::string("42"), std::string("{\"model\":\"m\",}"),
        std::string("{\"model\":\"\xff\xfe\",\"prompt\":\"a\"}"), std::string(100000, '['),
        std::string("{\"a\":") + std::string(50, '[')}) {
    SCOPED_TRACE(body.substr(0, 40));
    ParsedRequest p = parse_completion_request(body, false, kLimits);
    ApiError e = expect_rejected(p, "");
    EXPECT_TRUE(contains(e.message, "request body")) << e.message;
  }
  EXPECT_TRUE(contains(std::get<ApiError>(parse_completion_request("[1]", true, kLimits)).message,
                       "an array"));
}

TEST(OpenAiParse, HugeExponentsNeverReachAConversion) {
  for (const char* body : {R"({"model":"m","prompt":"a","max_tokens":1e400})",
                           R"({"model":"m","prompt":"a","seed":-1e400})",
                           R"({"model":"m","prompt":"a","temperature":1e400})",
                           R"({"model":"m","prompt":"a","seed":99999999999999999999999})",
                           R"({"model":"m","prompt":"a","max_tokens":-9223372036854775809})"}) {
    SCOPED_TRACE(body);
    EXPECT_TRUE(std::holds_alternative<ApiError>(parse_completion_request(body, false, kLimits)));
  }
}

TEST(OpenAiErrors, ErrorObjectShape) {
  json j = json::parse(error_json(make_api_error(400, "n: bad", "n")));
  ASSERT_TRUE(j.contains("error"));
  EXPECT_EQ(j["error"]["message"], "n: bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(j["error"].size(), 4u);

  j = json::parse(error_json(make_api_error(503, "queue full", "", "queue_full")));
  EXPECT_EQ(j["error"]["type"], "overloaded_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["code"], "queue_full");

  // Messages may quote client bytes: the error body must still be valid JSON.
  j = json::parse(error_json(make_api_error(400, "bad \xff\xfe value")));
  EXPECT_TRUE(j["error"]["message"].is_string());
}

TEST(OpenAiErrors, TypeFollowsStatus) {
  EXPECT_STREQ(error_type_for_status(400), "invalid_request_error");
  EXPECT_STREQ(error_type_for_status(413), "invalid_request_error");
  EXPECT_STREQ(error_type_for_status(401), "authentication_error");
  EXPECT_STREQ(error_type_for_status(404), "not_found_error");
  EXPECT_STREQ(error_type_for_status(503), "overloaded_error");
  EXPECT_STREQ(error_type_for_status(500), "server_error");
  EXPECT_EQ(make_api_error(401, "x").type, "authentication_error");
}

TEST(OpenAiResponses, CompletionShape) {
  json j = json::parse(completion_response("cmpl-1", "m", 1700000000, "hello", "length", 3, 5));
  EXPECT_EQ(j["id"], "cmpl-1");
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["created"], 1700000000);
  EXPECT_EQ(j["model"], "m");
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& c = j["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["text"], "hello");
  EXPECT_TRUE(c.contains("logprobs") && c["logprobs"].is_null());
  EXPECT_EQ(c["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 8);
}

TEST(OpenAiResponses, ChatCompletionShape) {
  json j = json::parse(chat_completion_response("chatcmpl-1", "m", 7, "hi there", "stop", 10, 2));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["created"], 7);
  const json& c = j["choices"][0];
  EXPECT_EQ(c["index"], 0);
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], "hi there");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["total_tokens"], 12);
  for (const char* reason : {"timeout", "cancelled", "shutdown"})
    EXPECT_EQ(json::parse(chat_completion_response("i", "m", 0, "", reason, 0,
                                                   0))["choices"][0]["finish_reason"],
              reason);
}

TEST(OpenAiResponses, CompletionChunkShape) {
  json j = json::parse(completion_chunk("cmpl-2", "m", 5, "tok", ""));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "tok");
  EXPECT_TRUE(j["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(j.contains("usage"));
  j = json::parse(completion_chunk("cmpl-2", "m", 5, "", "stop"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

TEST(OpenAiResponses, ChatChunkDeltas) {
  json first = json::parse(chat_chunk("c", "m", 1, true, "", ""));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());

  json mid = json::parse(chat_chunk("c", "m", 1, false, "lo", ""));
  EXPECT_EQ(mid["choices"][0]["delta"], json({{"content", "lo"}}));
  EXPECT_EQ(mid["choices"][0]["index"], 0);

  json last = json::parse(chat_chunk("c", "m", 1, false, "", "length"));
  EXPECT_TRUE(last["choices"][0]["delta"].is_object());
  EXPECT_TRUE(last["choices"][0]["delta"].empty());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
}

TEST(OpenAiResponses, UsageChunk) {
  json j = json::parse(usage_chunk("c", "m", 1, true, 4, 6));
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_TRUE(j["choices"].is_array() && j["choices"].empty());
  EXPECT_EQ(j["usage"]["total_tokens"], 10);
  EXPECT_EQ(json::parse(usage_chunk("c", "m", 1, false, 0, 0))["object"], "text_completion");
}

TEST(OpenAiResponses, ModelsList) {
  json j = json::parse(models_response("smollm2-135m", 123, "edgeglm"));
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0], json({{"id", "smollm2-135m"},
                                {"object", "model"},
                                {"created", 123},
                                {"owned_by", "edgeglm"}}));
}

TEST(OpenAiResponses, InvalidUtf8InModelTextStillYieldsValidJson) {
  // A lone continuation byte, a truncated 3-byte sequence (a token boundary inside a character),
  // and an overlong encoding.
  const std::string bad = std::string("ok \x80 ") + "\xe4\xb8" + " \xc0\xaf end";
  for (const std::string& out :
       {completion_response("i", "m", 0, bad, "stop", 1, 1),
        chat_completion_response("i", "m", 0, bad, "stop", 1, 1),
        completion_chunk("i", "m", 0, bad, ""), chat_chunk("i", "m", 0, true, bad, ""),
        models_response(bad, 0, bad)}) {
    json j = json::parse(out, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_TRUE(contains(j.dump(), "ok ")) << out;
    EXPECT_TRUE(contains(out, "\xef\xbf\xbd")) << "expected U+FFFD replacements: " << out;
  }
}

TEST(OpenAiResponses, SseFraming) {
  EXPECT_EQ(sse_event("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_done(), "data: [DONE]\n\n");
  // A chunk whose text holds newlines must stay on one line, or it would end the event early.
  std::string chunk = chat_chunk("c", "m", 1, false, "line1\nline2\r\n", "");
  EXPECT_EQ(chunk.find('\n'), std::string::npos);
  std::string ev = sse_event(chunk);
  EXPECT_EQ(ev.rfind("data: ", 0), 0u);
  EXPECT_EQ(ev.find("\n\n"), ev.size() - 2);
  EXPECT_EQ(json::parse(ev.substr(6))["choices"][0]["delta"]["content"], "line1\nline2\r\n");
}
