#include "serve/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <variant>
#include <vector>

#include "model/model.h"

namespace edgeglm::serve {
namespace {

using Json = nlohmann::json;

// Config and key files are small; a cap keeps a wrong path (a model file) from being slurped.
constexpr size_t kMaxFileBytes = size_t(1) << 20;
constexpr size_t kMinApiKeyLen = 16;
constexpr size_t kMaxApiKeyLen = 1024;

struct IntField {
  int ServeConfig::*member;
  int64_t lo, hi;
};
struct Int64Field {
  int64_t ServeConfig::*member;
  int64_t lo, hi;
};
struct StringField {
  std::string ServeConfig::*member;
  bool is_path;  // relative values resolve against the config file's directory
};
struct BoolField {
  bool ServeConfig::*member;
};
struct OptionalStringField {
  std::optional<std::string> ServeConfig::*member;
};
struct ApiKeysField {};

struct Field {
  const char* key;
  std::variant<IntField, Int64Field, StringField, BoolField, OptionalStringField, ApiKeysField> kind;
};

// The single table behind parsing, validation and serialization, in the order config_to_json
// writes the keys. Keep in sync with the flag table in config.h.
const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      {"host", StringField{&ServeConfig::host, false}},
      {"port", IntField{&ServeConfig::port, 0, 65535}},
      {"model", StringField{&ServeConfig::model, true}},
      {"model_alias", StringField{&ServeConfig::model_alias, false}},
      {"threads", IntField{&ServeConfig::threads, 0, 1024}},
      {"ctx", IntField{&ServeConfig::ctx, 16, 1 << 20}},
      {"parallel", IntField{&ServeConfig::parallel, 1, 64}},
      {"kv_budget_mb", Int64Field{&ServeConfig::kv_budget_mb, 0, int64_t(1) << 20}},
      {"kv_type", StringField{&ServeConfig::kv_type, false}},
      {"ubatch", IntField{&ServeConfig::ubatch, 1, 4096}},
      {"preempt", BoolField{&ServeConfig::preempt}},
      {"queue_interactive", IntField{&ServeConfig::queue_interactive, 1, 65536}},
      {"queue_normal", IntField{&ServeConfig::queue_normal, 1, 65536}},
      {"queue_batch", IntField{&ServeConfig::queue_batch, 1, 65536}},
      {"max_tokens_limit", IntField{&ServeConfig::max_tokens_limit, 1, 1 << 20}},
      {"default_timeout_s", IntField{&ServeConfig::default_timeout_s, 0, 86400}},
      {"stall_limit_s", IntField{&ServeConfig::stall_limit_s, 1, 3600}},
      {"drain_s", IntField{&ServeConfig::drain_s, 0, 3600}},
      {"body_limit_bytes", Int64Field{&ServeConfig::body_limit_bytes, 1024, int64_t(64) << 20}},
      {"max_stop_strings", IntField{&ServeConfig::max_stop_strings, 0, 64}},
      {"max_stop_len", IntField{&ServeConfig::max_stop_len, 1, 1024}},
      {"api_key_file", StringField{&ServeConfig::api_key_file, true}},
      {"api_keys", ApiKeysField{}},
      {"allow_debug_hooks", BoolField{&ServeConfig::allow_debug_hooks}},
      {"chat_template", OptionalStringField{&ServeConfig::chat_template}},
  };
  return table;
}

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string range_error(const char* key, int64_t lo, int64_t hi, const std::string& got) {
  return std::string(key) + ": must be an integer in [" + std::to_string(lo) + ", " +
         std::to_string(hi) + "], got " + got;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string unknown_key_message(const std::string& key) {
  // Flag spelling ("kv-budget-mb") is the most likely mistake; compare with '-' as '_'.
  std::string norm = key;
  std::replace(norm.begin(), norm.end(), '-', '_');
  std::vector<std::pair<size_t, std::string>> close;
  for (const auto& f : fields()) {
    std::string_view k = f.key;
    size_t d = edit_distance(norm, k);
    bool related = norm.size() >= 4 && k.find(norm) != std::string_view::npos;
    if (d <= std::max<size_t>(2, k.size() / 4) || related) close.emplace_back(related ? 0 : d, f.key);
  }
  std::sort(close.begin(), close.end());
  std::string msg = "unknown key '" + key + "'";
  if (close.empty()) {
    msg += " (known keys:";
    for (const auto& f : fields()) msg += std::string(" ") + f.key;
    return msg + ")";
  }
  msg += " (did you mean";
  for (size_t i = 0; i < close.size() && i < 3; ++i) msg += (i ? ", '" : " '") + close[i].second + "'";
  return msg + "?)";
}

std::string json_type(const Json& j) {
  if (j.is_number_float()) return "a fractional number";
  if (j.is_number()) return "an integer";
  if (j.is_string()) return "a string";
  if (j.is_boolean()) return "a boolean";
  if (j.is_null()) return "null";
  if (j.is_array()) return "an array";
  return "an object";
}

Status type_error(const char* key, const char* expected, const Json& j) {
  return Status::error(std::string("key '") + key + "': expected " + expected + ", got " +
                       json_type(j));
}

Result<int64_t> json_integer(const char* key, int64_t lo, int64_t hi, const Json& j) {
  if (!j.is_number_integer()) return type_error(key, "an integer", j);
  if (j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
    return Status::error(range_error(key, lo, hi, std::to_string(j.get<uint64_t>())));
  int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) return Status::error(range_error(key, lo, hi, std::to_string(v)));
  return v;
}

std::string resolve_path(const std::string& p, const std::string& base_dir) {
  if (p.empty() || base_dir.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base_dir) / p).lexically_normal().string();
}

Status valid_api_key(std::string_view key) {
  if (key.size() < kMinApiKeyLen)
    return Status::error("an api key is shorter than " + std::to_string(kMinApiKeyLen) +
                         " characters");
  if (key.size() > kMaxApiKeyLen)
    return Status::error("an api key is longer than " + std::to_string(kMaxApiKeyLen) +
                         " characters");
  for (char c : key)
    if (c < 0x21 || c > 0x7e)
      return Status::error("an api key has a character that is not printable ASCII or is a space");
  return Status::ok();
}

std::string class_choices() { return "interactive, normal or batch"; }

Status apply_field(const Field& f, const Json& j, ServeConfig& c, const std::string& base_dir) {
  return std::visit(
      Overloaded{
          [&](const IntField& k) -> Status {
            EG_ASSIGN_OR_RETURN(int64_t v, json_integer(f.key, k.lo, k.hi, j));
            c.*k.member = int(v);
            return Status::ok();
          },
          [&](const Int64Field& k) -> Status {
            EG_ASSIGN_OR_RETURN(int64_t v, json_integer(f.key, k.lo, k.hi, j));
            c.*k.member = v;
            return Status::ok();
          },
          [&](const StringField& k) -> Status {
            if (!j.is_string()) return type_error(f.key, "a string", j);
            c.*k.member = k.is_path ? resolve_path(j.get<std::string>(), base_dir)
                                    : j.get<std::string>();
            return Status::ok();
          },
          [&](const BoolField& k) -> Status {
            if (!j.is_boolean()) return type_error(f.key, "a boolean (true or false)", j);
            c.*k.member = j.get<bool>();
            return Status::ok();
          },
          [&](const OptionalStringField& k) -> Status {
            if (j.is_null()) {
              c.*k.member = std::nullopt;
              return Status::ok();
            }
            if (!j.is_string()) return type_error(f.key, "a string or null", j);
            c.*k.member = j.get<std::string>();
            return Status::ok();
          },
          [&](const ApiKeysField&) -> Status {
            if (!j.is_object())
              return type_error(f.key, "an object {\"<key>\": \"<priority class>\"}", j);
            std::map<std::string, std::string> keys;
            for (const auto& [key, cls] : j.items()) {
              // The message leaves the key out: config errors end up in logs.
              if (!cls.is_string())
                return Status::error(std::string("key 'api_keys': a priority class is ") +
                                     json_type(cls) + ", expected a string (" + class_choices() +
                                     ")");
              keys[key] = cls.get<std::string>();
            }
            c.api_keys = std::move(keys);
            return Status::ok();
          },
      },
      f.kind);
}

// Strict parse: nlohmann keeps the last of duplicate object keys silently; the parser callback
// sees every key first, so a duplicate can be reported instead of half-applied.
struct DuplicateKeyCheck {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;  // first duplicate found (top-level name, or a note for nested ones)

  bool operator()(int /*depth*/, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == Json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == Json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.is_string() ? parsed.get<std::string>() : std::string();
      if (!open_objects.back().insert(key).second && duplicate.empty())
        duplicate = open_objects.size() == 1 ? "'" + key + "'" : "inside a nested object";
    }
    return true;
  }
};

// nlohmann's exception-free parse only says "discarded"; a SAX pass over the same text recovers
// the line/column message without throwing (parse_error returns false instead).
struct ErrorSax : nlohmann::json_sax<Json> {
  std::string message;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    message = ex.what();
    return false;
  }
};

Result<std::string> read_small_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(std::string("cannot open ") + what + " '" + path + "': " +
                                std::strerror(errno));
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    text.append(buf, size_t(in.gcount()));
    if (text.size() > kMaxFileBytes)
      return Status::error(std::string(what) + " '" + path + "' is larger than " +
                           std::to_string(kMaxFileBytes) + " bytes");
  }
  if (in.bad()) return Status::error(std::string("cannot read ") + what + " '" + path + "'");
  return text;
}

}  // namespace

bool is_priority_class(std::string_view name) {
  for (const char* c : kPriorityClasses)
    if (name == c) return true;
  return false;
}

Status ServeConfig::validate() const {
  for (const Field& f : fields()) {
    Status s = std::visit(
        Overloaded{
            [&](const IntField& k) -> Status {
              int64_t v = this->*k.member;
              if (v < k.lo || v > k.hi) return Status::error(range_error(f.key, k.lo, k.hi, std::to_string(v)));
              return Status::ok();
            },
            [&](const Int64Field& k) -> Status {
              int64_t v = this->*k.member;
              if (v < k.lo || v > k.hi) return Status::error(range_error(f.key, k.lo, k.hi, std::to_string(v)));
              return Status::ok();
            },
            [](const auto&) { return Status::ok(); },
        },
        f.kind);
    EG_TRY(s);
  }
  if (host.empty()) return Status::error("host: must not be empty (use 0.0.0.0 for every interface)");
  if (auto t = model::parse_kv_type(kv_type); !t.ok()) return t.status().with_context("kv_type");
  if (chat_template && chat_template->empty())
    return Status::error("chat_template: must be a template name or null, not \"\"");
  for (const auto& [key, cls] : api_keys) {
    EG_TRY(valid_api_key(key).with_context("api_keys"));
    if (!is_priority_class(cls))
      return Status::error("api_keys: priority class '" + cls + "' is not one of " +
                           class_choices());
  }
  return Status::ok();
}

std::string ServeConfig::effective_model_alias() const {
  if (!model_alias.empty()) return model_alias;
  // A Hugging Face directory given with a trailing slash still names itself.
  std::filesystem::path p(model);
  if (!p.has_filename()) p = p.parent_path();
  return p.stem().string();
}

Result<ServeConfig> parse_config_json(std::string_view text, ServeConfig base,
                                      const std::string& source, const std::string& base_dir) {
  DuplicateKeyCheck dup;
  Json root = Json::parse(text, std::ref(dup), /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    ErrorSax sax;
    Json::sax_parse(text, &sax, nlohmann::detail::input_format_t::json, /*strict=*/true);
    return Status::error(source + ": invalid JSON: " +
                         (sax.message.empty() ? std::string("parse error") : sax.message));
  }
  if (!dup.duplicate.empty())
    return Status::error(source + ": duplicate key " + dup.duplicate);
  if (!root.is_object())
    return Status::error(source + ": expected a JSON object at the top level, got " + json_type(root));
  for (const auto& [key, value] : root.items()) {
    auto it = std::find_if(fields().begin(), fields().end(),
                           [&k = key](const Field& f) { return k == f.key; });  // clang 14
    if (it == fields().end()) return Status::error(source + ": " + unknown_key_message(key));
    EG_TRY(apply_field(*it, value, base, base_dir).with_context(source));
  }
  EG_TRY(base.validate().with_context(source));
  return base;
}

Result<ServeConfig> load_config_json(const std::string& path, ServeConfig base) {
  EG_ASSIGN_OR_RETURN(std::string text, read_small_file(path, "config file"));
  return parse_config_json(text, std::move(base), path,
                           std::filesystem::path(path).parent_path().string());
}

std::string config_to_json(const ServeConfig& c, bool redact_keys) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const Field& f : fields()) {
    std::visit(Overloaded{
                   [&](const IntField& k) { out[f.key] = c.*k.member; },
                   [&](const Int64Field& k) { out[f.key] = c.*k.member; },
                   [&](const StringField& k) { out[f.key] = c.*k.member; },
                   [&](const BoolField& k) { out[f.key] = c.*k.member; },
                   [&](const OptionalStringField& k) {
                     const auto& v = c.*k.member;
                     out[f.key] = v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
                   },
                   [&](const ApiKeysField&) {
                     auto keys = nlohmann::ordered_json::object();
                     size_t n = 0;
                     for (const auto& [key, cls] : c.api_keys)
                       keys[redact_keys ? "<redacted " + std::to_string(++n) + ">" : key] = cls;
                     out[f.key] = std::move(keys);
                   },
               },
               f.kind);
  }
  // Invalid UTF-8 in a string (a path) is replaced instead of throwing.
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

Result<std::map<std::string, std::string>> load_api_keys(const std::string& path) {
  EG_ASSIGN_OR_RETURN(std::string text, read_small_file(path, "api key file"));
  std::map<std::string, std::string> keys;
  std::map<std::string, int> first_line;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no) + ": ";
    std::vector<std::string> tokens;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
      if (i >= line.size()) break;
      size_t j = i;
      while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
      tokens.push_back(line.substr(i, j - i));
      i = j;
    }
    auto comment = std::find_if(tokens.begin(), tokens.end(),
                                [](const std::string& t) { return t[0] == '#'; });
    tokens.erase(comment, tokens.end());
    if (tokens.empty()) continue;
    if (tokens.size() > 2)
      return Status::error(where + "expected '<key> [priority class]', found " +
                           std::to_string(tokens.size()) + " fields");
    EG_TRY(valid_api_key(tokens[0]).with_context(where.substr(0, where.size() - 2)));
    std::string cls = tokens.size() == 2 ? tokens[1] : "interactive";
    if (!is_priority_class(cls))
      return Status::error(where + "priority class '" + cls + "' is not one of " + class_choices());
    auto [it, inserted] = first_line.emplace(tokens[0], line_no);
    if (!inserted)
      return Status::error(where + "duplicate api key (first on line " +
                           std::to_string(it->second) + ")");
    keys[tokens[0]] = cls;
  }
  if (keys.empty()) return Status::error(path + ": no api key in the file");
  return keys;
}

Status merge_api_key_file(ServeConfig& config) {
  if (config.api_key_file.empty()) return Status::ok();
  EG_ASSIGN_OR_RETURN(auto keys, load_api_keys(config.api_key_file));
  for (const auto& [key, cls] : keys) {
    auto [it, inserted] = config.api_keys.emplace(key, cls);
    if (!inserted && it->second != cls)
      return Status::error(config.api_key_file +
                           ": a key is also in api_keys with a different priority class ('" +
                           cls + "' here, '" + it->second + "' there)");
  }
  return Status::ok();
}

}  // namespace edgeglm::serve
