// Every option of `edgeglm serve`, its default, and the strict JSON config file that sets them.
//
// A JSON key is the long command-line flag without "--" and with '-' replaced by '_':
//
//   flag                   JSON key            meaning (default)
//   --host                 host                listen address ("127.0.0.1": local only)
//   --port                 port                TCP port, 0 = any free port (8080)
//   -m, --model            model               model file (required to start; not checked here)
//   -t, --threads          threads             compute threads, 0 = auto (0)
//   -c, --ctx              ctx                 context tokens per sequence (2048)
//   --parallel             parallel            concurrent sequences, 1..64 (4)
//   --kv-budget-mb         kv_budget_mb        KV cache cap in MiB, 0 = parallel*ctx needs (0)
//   --kv-type              kv_type             KV cache type: f16 | f32 | q8_0 ("f16")
//   --ubatch               ubatch              tokens per engine step: decodes + prompt chunks (64)
//   --no-preempt           preempt             interactive may preempt batch sequences (true)
//   --queue-interactive    queue_interactive   queued requests per priority class (16)
//   --queue-normal         queue_normal        (64)
//   --queue-batch          queue_batch         (256)
//   --max-tokens-limit     max_tokens_limit    cap on a request's max_tokens (2048)
//   --default-timeout-s    default_timeout_s   request deadline when the request sets none, 0 = none (0)
//   --stall-limit-s        stall_limit_s       engine step stall that fails health/watchdog (30)
//   --drain-s              drain_s             graceful drain deadline on SIGTERM (30)
//   --body-limit-bytes     body_limit_bytes    largest accepted request body (1 MiB)
//   --max-stop-strings     max_stop_strings    stop strings per request (4)
//   --max-stop-len         max_stop_len        bytes per stop string (64)
//   --api-key-file         api_key_file        key file, see load_api_keys ("": none)
//   (no flag)              api_keys            {"<key>": "<class>"}; no flag, so keys never show
//                                              up in `ps` output or shell history
//   --allow-debug-hooks    allow_debug_hooks   test-only request hooks (false)
//   --chat-template        chat_template       template name, null = the model's own (null)
//   --model-alias          model_alias         id reported by /v1/models, "" = model file stem
//
// With no api keys at all, authentication is off. A key maps to the priority class its requests
// get when they do not ask for one: "interactive", "normal" or "batch".
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace edgeglm::serve {

// The priority class names, highest first.
inline constexpr const char* kPriorityClasses[] = {"interactive", "normal", "batch"};
bool is_priority_class(std::string_view name);

struct ServeConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string model;
  int threads = 0;
  int ctx = 2048;
  int parallel = 4;
  int64_t kv_budget_mb = 0;
  std::string kv_type = "f16";
  int ubatch = 64;
  bool preempt = true;
  int queue_interactive = 16;
  int queue_normal = 64;
  int queue_batch = 256;
  int max_tokens_limit = 2048;
  int default_timeout_s = 0;
  int stall_limit_s = 30;
  int drain_s = 30;
  int64_t body_limit_bytes = int64_t(1) << 20;
  int max_stop_strings = 4;
  int max_stop_len = 64;
  std::string api_key_file;
  std::map<std::string, std::string> api_keys;  // key -> default priority class
  bool allow_debug_hooks = false;
  std::optional<std::string> chat_template;
  std::string model_alias;

  // Ranges and choices of every field; the message names the field (its JSON key) and the
  // accepted range. Does not require `model` (it may come from the command line later).
  Status validate() const;
  // model_alias, or the model file's stem ("/m/qwen2-0.5b.gguf" -> "qwen2-0.5b").
  std::string effective_model_alias() const;

  bool operator==(const ServeConfig&) const = default;
};

// Reads a JSON object and overrides the fields of `base` that it names. Strict: unknown keys
// (with close spellings suggested), duplicate keys, wrong JSON types and out-of-range values are
// errors naming the file and the key. Relative `model` and `api_key_file` paths are resolved
// against the config file's directory. The result has passed validate().
Result<ServeConfig> load_config_json(const std::string& path, ServeConfig base);
// The same on text already read; `source` names it in messages, `base_dir` resolves paths
// ("" leaves them as written).
Result<ServeConfig> parse_config_json(std::string_view text, ServeConfig base,
                                      const std::string& source, const std::string& base_dir);
// The config as a JSON object with every key (the inverse of parse_config_json). With
// redact_keys the api key strings are replaced by "<redacted N>", for logs and debug output.
std::string config_to_json(const ServeConfig& config, bool redact_keys = true);

// Key file: one key per line, optionally followed by whitespace and a priority class (default
// "interactive"); blank lines and lines whose first non-blank is '#' are skipped, and a '#'
// token after the key starts a trailing comment. A key is printable ASCII without spaces, at
// least 16 characters. A duplicate key, an unknown class, extra tokens or a file with no key are
// errors with the line number; messages never contain a key.
Result<std::map<std::string, std::string>> load_api_keys(const std::string& path);
// Loads config.api_key_file (if set) into config.api_keys. A key present in both with a
// different class is an error.
Status merge_api_key_file(ServeConfig& config);

}  // namespace edgeglm::serve
