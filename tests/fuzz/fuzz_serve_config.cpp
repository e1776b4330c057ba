// libFuzzer target: the strict JSON config of `edgeglm serve`. What it accepts must be valid and
// must survive config_to_json -> parse_config_json unchanged.
//
// The round trip uses redact_keys = false: the redacted form (the default, for logs) replaces
// every api key by "<redacted N>", which is not a valid key, so by design it does not parse back.
// For that form the checks are instead: valid JSON, the same classes in the same (key) order, no
// real key among its names, and every other field as in the unredacted form.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "serve/config.h"

namespace {

using edgeglm::serve::ServeConfig;
using edgeglm::serve::config_to_json;
using edgeglm::serve::parse_config_json;

// A base unlike the defaults, so a key that config_to_json left out would show up as a difference.
ServeConfig odd_base() {
  ServeConfig b;
  b.host = "base.invalid";
  b.port = 1;
  b.model = "base-model.gguf";
  b.model_alias = "base-alias";
  b.threads = 3;
  b.ctx = 17;
  b.parallel = 63;
  b.kv_budget_mb = 5;
  b.kv_type = "q8_0";
  b.ubatch = 7;
  b.preempt = false;
  b.queue_interactive = b.queue_normal = b.queue_batch = 9;
  b.max_tokens_limit = 11;
  b.default_timeout_s = 13;
  b.stall_limit_s = 19;
  b.drain_s = 23;
  b.body_limit_bytes = 4099;
  b.max_stop_strings = 29;
  b.max_stop_len = 31;
  b.api_key_file = "base-keys";
  b.api_keys = {{"base-key-0123456789", "batch"}};
  b.allow_debug_hooks = true;
  b.chat_template = "base-template";
  return b;
}

void check_round_trip(const ServeConfig& c, const std::string& base_dir) {
  if (!c.validate().is_ok()) __builtin_trap();
  const std::string out = config_to_json(c, /*redact_keys=*/false);
  auto again = parse_config_json(out, odd_base(), "round-trip", base_dir);
  if (!again.ok() || !(*again == c)) __builtin_trap();
  if (config_to_json(*again, false) != out) __builtin_trap();

  const auto plain = nlohmann::ordered_json::parse(out, nullptr, false);
  auto redacted = nlohmann::ordered_json::parse(config_to_json(c), nullptr, false);
  if (plain.is_discarded() || redacted.is_discarded()) __builtin_trap();
  const auto& keys = redacted["api_keys"];
  if (!keys.is_object() || keys.size() != c.api_keys.size()) __builtin_trap();
  auto want = c.api_keys.begin();
  for (const auto& [name, cls] : keys.items()) {
    if (c.api_keys.count(name) || cls != want->second) __builtin_trap();
    ++want;
  }
  redacted["api_keys"] = plain["api_keys"];
  if (redacted != plain) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = parse_config_json(text, ServeConfig{}, "fuzz", "");
  if (!r.ok()) {
    if (r.status().message().rfind("fuzz: ", 0) != 0) __builtin_trap();
    return 0;
  }
  check_round_trip(*r, "");
  // Relative paths resolved against a directory come out absolute, so resolving again is a no-op.
  auto resolved = parse_config_json(text, ServeConfig{}, "fuzz", "/srv/edgeglm");
  if (!resolved.ok()) __builtin_trap();
  check_round_trip(*resolved, "/srv/edgeglm");
  return 0;
}
