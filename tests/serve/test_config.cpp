#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "serve/config.h"
#include "test_util.h"

namespace edgeglm::serve {
namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  std::string path = test::temp_path(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The error message of parsing `json` over the defaults ("" when it parsed).
std::string parse_error(const std::string& json) {
  auto r = parse_config_json(json, ServeConfig{}, "cfg.json", "");
  return r.ok() ? std::string() : r.status().message();
}

std::string keys_error(const std::string& text) {
  auto r = load_api_keys(write_temp("keys_bad.txt", text));
  return r.ok() ? std::string() : r.status().message();
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "in: " << (haystack)

const std::string kKeyA = "sk-edge-0123456789abcdef";
const std::string kKeyB = "sk-edge-fedcba9876543210";

TEST(ServeConfig, DefaultsAreValid) {
  ServeConfig c;
  EXPECT_TRUE(c.validate().is_ok()) << c.validate().message();
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 8080);
  EXPECT_EQ(c.parallel, 4);
  EXPECT_EQ(c.queue_batch, 256);
  EXPECT_EQ(c.body_limit_bytes, 1 << 20);
  EXPECT_FALSE(c.chat_template.has_value());
}

TEST(ServeConfig, ExampleDeployConfigRoundTrips) {
  const std::string path = std::string(EDGEGLM_TEST_DATA) + "/../../deploy/edgeglm.json";
  auto r = load_config_json(path, ServeConfig{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  const ServeConfig& c = *r;
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.model, "/opt/edgeglm/models/qwen2.5-0.5b-instruct-q4_0.gguf");
  EXPECT_EQ(c.effective_model_alias(), "qwen2.5-0.5b-instruct");
  EXPECT_EQ(c.max_tokens_limit, 1024);
  EXPECT_EQ(c.default_timeout_s, 120);
  EXPECT_EQ(c.api_key_file, "/run/credentials/edgeglm.service/api_keys");
  EXPECT_FALSE(c.chat_template.has_value());

  // The example names every key the loader knows, so it documents all of them.
  std::ifstream in(path);
  auto example = nlohmann::json::parse(in, nullptr, false);
  auto all = nlohmann::json::parse(config_to_json(ServeConfig{}, false));
  std::set<std::string> example_keys, known_keys;
  for (const auto& [k, v] : example.items()) example_keys.insert(k);
  for (const auto& [k, v] : all.items()) known_keys.insert(k);
  EXPECT_EQ(example_keys, known_keys);

  // Serialize and parse back: the same config.
  ServeConfig with_keys = c;
  with_keys.api_keys = {{kKeyA, "batch"}};
  with_keys.chat_template = "chatml";
  auto back = parse_config_json(config_to_json(with_keys, false), ServeConfig{}, "dump", "");
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(*back == with_keys);
  std::string redacted = config_to_json(with_keys);
  EXPECT_EQ(redacted.find(kKeyA), std::string::npos) << redacted;
}

TEST(ServeConfig, KeysOverrideOnlyWhatTheyName) {
  ServeConfig base;
  base.port = 9000;
  base.model = "/m/x.gguf";
  auto r = parse_config_json(R"({"parallel": 8, "chat_template": "glm4"})", base, "cfg", "");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->parallel, 8);
  EXPECT_EQ(r->port, 9000);
  EXPECT_EQ(r->model, "/m/x.gguf");
  EXPECT_EQ(r->chat_template, std::optional<std::string>("glm4"));
  EXPECT_EQ(r->effective_model_alias(), "x");
}

TEST(ServeConfig, RelativePathsResolveAgainstConfigDir) {
  auto path = write_temp("relative.json", R"({"model": "models/m.gguf", "api_key_file": "keys"})");
  auto r = load_config_json(path, ServeConfig{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto dir = std::filesystem::path(path).parent_path();
  EXPECT_EQ(r->model, (dir / "models/m.gguf").string());
  EXPECT_EQ(r->api_key_file, (dir / "keys").string());
}

TEST(ServeConfig, RejectsUnknownKeysWithSuggestions) {
  std::string e = parse_error(R"({"paralel": 2})");
  EXPECT_CONTAINS(e, "cfg.json: unknown key 'paralel'");
  EXPECT_CONTAINS(e, "did you mean 'parallel'");
  EXPECT_CONTAINS(parse_error(R"({"kv-budget-mb": 2})"), "'kv_budget_mb'");
  EXPECT_CONTAINS(parse_error(R"({"queue": 2})"), "'queue_interactive'");
  e = parse_error(R"({"zzzzzzzz": 1})");
  EXPECT_CONTAINS(e, "known keys:");
  EXPECT_CONTAINS(e, "drain_s");
}

TEST(ServeConfig, RejectsWrongTypes) {
  EXPECT_CONTAINS(parse_error(R"({"port": "8080"})"), "key 'port': expected an integer, got a string");
  EXPECT_CONTAINS(parse_error(R"({"ctx": 2048.5})"), "key 'ctx': expected an integer, got a fractional number");
  EXPECT_CONTAINS(parse_error(R"({"host": 5})"), "key 'host': expected a string, got an integer");
  EXPECT_CONTAINS(parse_error(R"({"allow_debug_hooks": 1})"), "key 'allow_debug_hooks': expected a boolean");
  EXPECT_CONTAINS(parse_error(R"({"chat_template": 3})"), "key 'chat_template': expected a string or null");
  EXPECT_CONTAINS(parse_error(R"({"api_keys": []})"), "key 'api_keys': expected an object");
  std::string e = parse_error(R"({"api_keys": {")" + kKeyA + R"(": 1}})");
  EXPECT_CONTAINS(e, "a priority class is an integer");
  EXPECT_EQ(e.find(kKeyA), std::string::npos) << "a key leaked into: " << e;
  EXPECT_CONTAINS(parse_error("[1, 2]"), "expected a JSON object at the top level, got an array");
}

TEST(ServeConfig, RejectsOutOfRange) {
  EXPECT_CONTAINS(parse_error(R"({"parallel": 0})"), "parallel: must be an integer in [1, 64], got 0");
  EXPECT_CONTAINS(parse_error(R"({"parallel": 65})"), "parallel: must be an integer in [1, 64], got 65");
  EXPECT_CONTAINS(parse_error(R"({"port": 70000})"), "port: must be an integer in [0, 65535]");
  EXPECT_CONTAINS(parse_error(R"({"drain_s": -1})"), "drain_s: must be an integer in [0, 3600], got -1");
  EXPECT_CONTAINS(parse_error(R"({"body_limit_bytes": 18446744073709551615})"),
                  "body_limit_bytes: must be an integer in [1024, 67108864], got 18446744073709551615");
  EXPECT_CONTAINS(parse_error(R"({"queue_batch": 0})"), "queue_batch:");
  EXPECT_CONTAINS(parse_error(R"({"kv_type": "q4"})"), "kv_type: unknown KV cache type 'q4'");
  EXPECT_CONTAINS(parse_error(R"({"chat_template": ""})"), "chat_template:");
  EXPECT_CONTAINS(parse_error(R"({"host": ""})"), "host: must not be empty");
  EXPECT_CONTAINS(parse_error(R"({"api_keys": {"short": "batch"}})"), "api_keys: an api key is shorter than 16");
  EXPECT_CONTAINS(parse_error(R"({"api_keys": {")" + kKeyA + R"(": "urgent"}})"),
                  "api_keys: priority class 'urgent' is not one of interactive, normal or batch");
}

TEST(ServeConfig, ValidateNamesTheField) {
  ServeConfig c;
  c.stall_limit_s = 0;
  EXPECT_CONTAINS(c.validate().message(), "stall_limit_s: must be an integer in [1, 3600], got 0");
  c = ServeConfig{};
  c.max_stop_len = 5000;
  EXPECT_CONTAINS(c.validate().message(), "max_stop_len:");
  c = ServeConfig{};
  c.kv_budget_mb = -1;
  EXPECT_CONTAINS(c.validate().message(), "kv_budget_mb:");
}

TEST(ServeConfig, RejectsInvalidJsonAndDuplicates) {
  std::string e = parse_error("{\n  \"port\": 80,\n}");
  EXPECT_CONTAINS(e, "cfg.json: invalid JSON");
  EXPECT_CONTAINS(e, "line 3");
  EXPECT_CONTAINS(parse_error(R"({"port": 1, "port": 2})"), "duplicate key 'port'");
  e = parse_error(R"({"api_keys": {")" + kKeyA + R"(": "batch", ")" + kKeyA + R"(": "normal"}})");
  EXPECT_CONTAINS(e, "duplicate key inside a nested object");
  EXPECT_EQ(e.find(kKeyA), std::string::npos);
  auto r = load_config_json(test::temp_path("does_not_exist.json"), ServeConfig{});
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "cannot open config file");
}

TEST(ApiKeys, ParsesClassesCommentsAndCrlf) {
  auto path = write_temp("keys_ok.txt", "# gateway keys\n\n  " + kKeyA + "\r\n" + kKeyB +
                                            "\tbatch   # the nightly job\n");
  auto r = load_api_keys(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 2u);
  EXPECT_EQ(r->at(kKeyA), "interactive");
  EXPECT_EQ(r->at(kKeyB), "batch");
}

TEST(ApiKeys, RejectsBadLines) {
  std::string e = keys_error("# c\nshortkey\n");
  EXPECT_CONTAINS(e, "keys_bad.txt:2: an api key is shorter than 16 characters");
  e = keys_error(kKeyA + " urgent\n");
  EXPECT_CONTAINS(e, ":1: priority class 'urgent' is not one of");
  e = keys_error(kKeyA + " batch extra\n");
  EXPECT_CONTAINS(e, ":1: expected '<key> [priority class]', found 3 fields");
  e = keys_error(std::string("sk-edge-0123456789\x01zz\n"));
  EXPECT_CONTAINS(e, "not printable ASCII");
  e = keys_error(kKeyA + "\n" + kKeyB + " normal\n\n" + kKeyA + " batch\n");
  EXPECT_CONTAINS(e, ":4: duplicate api key (first on line 1)");
  EXPECT_EQ(e.find(kKeyA), std::string::npos) << "a key leaked into: " << e;
  EXPECT_CONTAINS(keys_error("# only comments\n\n   \n"), "no api key in the file");
  EXPECT_CONTAINS(keys_error(""), "no api key in the file");
  auto r = load_api_keys(test::temp_path("no_such_keys"));
  ASSERT_FALSE(r.ok());
  EXPECT_CONTAINS(r.status().message(), "cannot open api key file");
}

TEST(ApiKeys, MergeIntoConfig) {
  ServeConfig c;
  c.api_key_file = write_temp("keys_merge.txt", kKeyA + " normal\n");
  c.api_keys = {{kKeyB, "batch"}};
  ASSERT_TRUE(merge_api_key_file(c).is_ok());
  EXPECT_EQ(c.api_keys.size(), 2u);
  EXPECT_EQ(c.api_keys.at(kKeyA), "normal");
  c.api_keys[kKeyA] = "batch";
  Status s = merge_api_key_file(c);
  EXPECT_FALSE(s.is_ok());
  EXPECT_CONTAINS(s.message(), "different priority class");
}

}  // namespace
}  // namespace edgeglm::serve
