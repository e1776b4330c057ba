// Tokenizer importers: llama2.c tokenizer.bin and Hugging Face tokenizer.json -> GGUF tokenizer
// metadata (the keys and conventions llama.cpp's converters write).
#include "formats/vocab_import.h"

#include "core/utf8.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "core/mapped_file.h"

namespace edgeglm::formats {
namespace {

using nlohmann::json;

// tokenizer.ggml.token_type values.
constexpr int32_t kTypeNormal = 1, kTypeUnknown = 2, kTypeControl = 3, kTypeUserDefined = 4,
                  kTypeUnused = 5, kTypeByte = 6;
constexpr const char* kSpmSpace = "\xE2\x96\x81";  // U+2581

bool is_byte_token(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}


// ---- llama2.c ------------------------------------------------------------------------------

Status import_llama2c(const std::string& path, int64_t n_vocab, Metadata& meta) {
  auto data = read_text_file(path, size_t(1) << 28);
  if (!data.ok()) return data.status();
  const std::string& b = *data;
  size_t pos = 0;
  auto read = [&](void* dst, size_t n) {
    if (b.size() - pos < n) return false;
    std::memcpy(dst, b.data() + pos, n);
    pos += n;
    return true;
  };
  int32_t max_len = 0;
  if (!read(&max_len, 4)) return Status::error(path + ": too short for a llama2.c tokenizer header");
  if (max_len <= 0 || max_len > (1 << 20)) {
    return Status::error(path + ": max_token_length " + std::to_string(max_len) +
                         " is not plausible (not a llama2.c tokenizer.bin?)");
  }
  if (n_vocab < 0 || n_vocab > (int64_t(1) << 24)) {
    return Status::error(path + ": vocab size " + std::to_string(n_vocab) + " out of range");
  }
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  // n_vocab == 0: the model did not say; read entries until the end of the file.
  for (int64_t i = 0; n_vocab > 0 ? i < n_vocab : pos < b.size(); ++i) {
    float score = 0;
    int32_t len = 0;
    if (!read(&score, 4) || !read(&len, 4)) {
      return Status::error(path + ": truncated at token " + std::to_string(i) + " of " +
                           std::to_string(n_vocab) + " (file ends at byte " +
                           std::to_string(b.size()) + ")");
    }
    if (len < 0 || len > max_len || size_t(len) > b.size() - pos) {
      return Status::error(path + ": token " + std::to_string(i) + " has length " +
                           std::to_string(len) + " (max_token_length " + std::to_string(max_len) +
                           ", " + std::to_string(b.size() - pos) + " bytes left)");
    }
    std::string text = b.substr(pos, size_t(len));
    pos += size_t(len);
    int32_t type = kTypeNormal;
    if (i == 0) {
      text = "<unk>";
      type = kTypeUnknown;
    } else if (i == 1 || i == 2) {
      // llama2.c spells them "\n<s>\n" / "\n</s>\n".
      text = i == 1 ? "<s>" : "</s>";
      type = kTypeControl;
    } else if (is_byte_token(text)) {
      type = kTypeByte;
    } else {
      if (!utf8_valid(text)) {
        return Status::error(path + ": token " + std::to_string(i) + " is not valid UTF-8");
      }
      std::string esc;
      for (char c : text) {
        if (c == ' ') {
          esc += kSpmSpace;
        } else {
          esc.push_back(c);
        }
      }
      text = std::move(esc);
    }
    tokens.push_back(std::move(text));
    scores.push_back(score);
    types.push_back(type);
  }
  if (tokens.size() < 3) return Status::error(path + ": only " + std::to_string(tokens.size()) + " tokens");
  meta["tokenizer.ggml.model"] = MetaValue::from_string("llama");
  meta["tokenizer.ggml.pre"] = MetaValue::from_string("default");
  meta["tokenizer.ggml.tokens"] = MetaValue::from_strings(std::move(tokens));
  meta["tokenizer.ggml.scores"] = MetaValue::from_f32s(scores);
  meta["tokenizer.ggml.token_type"] = MetaValue::from_i32s(types);
  meta["tokenizer.ggml.unknown_token_id"] = MetaValue::from_u32(0);
  meta["tokenizer.ggml.bos_token_id"] = MetaValue::from_u32(1);
  meta["tokenizer.ggml.eos_token_id"] = MetaValue::from_u32(2);
  meta["tokenizer.ggml.add_bos_token"] = MetaValue::from_bool(true);
  meta["tokenizer.ggml.add_eos_token"] = MetaValue::from_bool(false);
  return Status::ok();
}

// ---- Hugging Face ----------------------------------------------------------------------------

Result<json> read_json(const std::string& path) {
  auto text = read_text_file(path, size_t(1) << 30);
  if (!text.ok()) return text.status();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::error(path + ": not valid JSON");
  return j;
}

// A token given as "text" or {"content": "text", ...} (tokenizer_config.json uses both).
std::string token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string())
    return j["content"].get<std::string>();
  return {};
}

// Calls f on `node` and, for Sequence nodes, on each element (recursively).
template <class F>
void for_each_component(const json& node, const char* list_key, F&& f) {
  if (!node.is_object()) return;
  f(node);
  if (node.contains(list_key) && node[list_key].is_array()) {
    for (const auto& c : node[list_key]) for_each_component(c, list_key, f);
  }
}

std::string json_type(const json& j) {
  if (j.is_object()) return j.value("type", std::string());
  return {};
}

// tokenizer.ggml.pre for a byte-level BPE pre_tokenizer config; "" when not recognised.
std::string pre_name_for(const json& pre, const std::string& chat_template, std::string* why) {
  bool byte_level = false, byte_level_regex = false, digits_individual = false;
  std::string split_regex;
  for_each_component(pre, "pretokenizers", [&](const json& c) {
    std::string t = json_type(c);
    if (t == "ByteLevel") {
      byte_level = true;
      byte_level_regex = c.value("use_regex", true);
    } else if (t == "Digits") {
      digits_individual = c.value("individual_digits", false);
    } else if (t == "Split" && c.contains("pattern") && c["pattern"].is_object()) {
      const auto& p = c["pattern"];
      if (p.contains("Regex") && p["Regex"].is_string()) split_regex = p["Regex"].get<std::string>();
    }
  });
  if (!split_regex.empty()) {
    const bool llama3_like = split_regex.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") != std::string::npos &&
                             split_regex.find("\\s*[\\r\\n]+") != std::string::npos;
    if (llama3_like && split_regex.find("\\p{N}{1,3}") != std::string::npos) {
      return chat_template.find("[gMASK]") != std::string::npos ? "glm4" : "llama-bpe";
    }
    if (llama3_like && split_regex.find("\\p{N}|") != std::string::npos) return "qwen2";
    *why = "unsupported Split regex " + split_regex;
    return "";
  }
  if (byte_level && byte_level_regex) return digits_individual ? "smollm" : "gpt2";
  *why = "no ByteLevel regex or Split pre-tokenizer found";
  return "";
}

Status import_hf(const std::string& dir, Metadata& meta) {
  namespace fs = std::filesystem;
  const std::string tok_path = (fs::path(dir) / "tokenizer.json").string();
  EG_ASSIGN_OR_RETURN(json tj, read_json(tok_path));
  json cfg = json::object();
  const std::string cfg_path = (fs::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (fs::exists(cfg_path, ec)) {
    EG_ASSIGN_OR_RETURN(cfg, read_json(cfg_path));
    if (!cfg.is_object()) return Status::error(cfg_path + ": expected a JSON object");
  }
  json stm = json::object();
  const std::string stm_path = (fs::path(dir) / "special_tokens_map.json").string();
  if (fs::exists(stm_path, ec)) {
    EG_ASSIGN_OR_RETURN(stm, read_json(stm_path));
    if (!stm.is_object()) stm = json::object();
  }

  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    return Status::error(tok_path + ": no \"model\" object");
  const json& model = tj["model"];
  const std::string model_type = model.value("type", std::string("BPE"));
  if (model_type != "BPE") {
    return Status::error(tok_path + ": model.type \"" + model_type +
                         "\" is not supported (only BPE tokenizers)");
  }
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return Status::error(tok_path + ": model.vocab is not an object of token -> id");

  // Tokens by id; ids that neither vocab nor added_tokens names are kept as unused filler entries.
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<bool> have;
  auto place = [&](int64_t id, const std::string& text, int32_t type) -> Status {
    if (id < 0 || id >= (int64_t(1) << 24))
      return Status::error(tok_path + ": token \"" + text + "\" has id " + std::to_string(id) + " out of range");
    if (size_t(id) >= tokens.size()) {
      tokens.resize(size_t(id) + 1);
      types.resize(size_t(id) + 1, kTypeUnused);
      have.resize(size_t(id) + 1, false);
    }
    tokens[size_t(id)] = text;
    types[size_t(id)] = type;
    have[size_t(id)] = true;
    return Status::ok();
  };
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer())
      return Status::error(tok_path + ": model.vocab[\"" + it.key() + "\"] is not an integer id");
    EG_TRY(place(it.value().get<int64_t>(), it.key(), kTypeNormal));
  }
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const auto& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string())
        return Status::error(tok_path + ": added_tokens entry without integer id and string content");
      EG_TRY(place(a["id"].get<int64_t>(), a["content"].get<std::string>(),
                   a.value("special", false) ? kTypeControl : kTypeUserDefined));
    }
  }
  if (tokens.empty()) return Status::error(tok_path + ": empty vocabulary");
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!have[i]) tokens[i] = "[PAD" + std::to_string(i) + "]";
  }

  // Merges: "a b" strings (older files) or [a, b] pairs (tokenizers >= 0.20).
  std::vector<std::string> merges;
  if (model.contains("merges") && model["merges"].is_array()) {
    merges.reserve(model["merges"].size());
    size_t r = 0;
    for (const auto& m : model["merges"]) {
      if (m.is_string()) {
        merges.push_back(m.get<std::string>());
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      } else {
        return Status::error(tok_path + ": model.merges[" + std::to_string(r) +
                             "] is neither \"a b\" nor [\"a\", \"b\"]");
      }
      ++r;
    }
  }

  // Chat template: tokenizer_config.json (a string, or a list of named templates), else
  // chat_template.jinja beside it.
  std::string chat_template;
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const auto& e : ct) {
        if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") &&
            e["template"].is_string())
          chat_template = e["template"].get<std::string>();
      }
    }
  }
  const std::string jinja_path = (fs::path(dir) / "chat_template.jinja").string();
  if (chat_template.empty() && fs::exists(jinja_path, ec)) {
    EG_ASSIGN_OR_RETURN(chat_template, read_text_file(jinja_path, size_t(1) << 24));
  }

  // Which algorithm: byte fallback / Metaspace means SentencePiece-style ("llama").
  const json pre = tj.contains("pre_tokenizer") ? tj["pre_tokenizer"] : json();
  const json norm = tj.contains("normalizer") ? tj["normalizer"] : json();
  const json dec = tj.contains("decoder") ? tj["decoder"] : json();
  bool metaspace = false, prepend_space = false, byte_level = false;
  for_each_component(pre, "pretokenizers", [&](const json& c) {
    std::string t = json_type(c);
    if (t == "Metaspace") {
      metaspace = true;
      std::string scheme = c.value("prepend_scheme", std::string());
      prepend_space = scheme == "always" || scheme == "first" || c.value("add_prefix_space", false);
    }
    if (t == "ByteLevel") byte_level = true;
  });
  for_each_component(norm, "normalizers", [&](const json& c) {
    std::string t = json_type(c);
    if (t == "Replace" && c.contains("content") && c["content"] == kSpmSpace) metaspace = true;
    if (t == "Prepend" && c.contains("prepend") && c["prepend"] == kSpmSpace) prepend_space = true;
  });
  for_each_component(dec, "decoders", [&](const json& c) {
    if (json_type(c) == "ByteLevel") byte_level = true;
  });
  const bool byte_fallback = model.value("byte_fallback", false);
  const bool spm = !byte_level && (byte_fallback || metaspace);
  if (!spm && !byte_level) {
    return Status::error(tok_path + ": neither a byte-level BPE (ByteLevel pre-tokenizer) nor a "
                         "SentencePiece-style BPE (byte_fallback / Metaspace)");
  }

  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == kTypeNormal && spm && is_byte_token(tokens[i])) types[i] = kTypeByte;
    if (!utf8_valid(tokens[i]))
      return Status::error(tok_path + ": token " + std::to_string(i) + " is not valid UTF-8");
  }

  auto token_id = [&](const std::string& text) -> int64_t {
    if (text.empty()) return -1;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == text) return int64_t(i);
    }
    return -1;
  };
  auto special_from = [&](const char* key) -> std::string {
    if (cfg.contains(key)) {
      std::string s = token_content(cfg[key]);
      if (!s.empty()) return s;
    }
    if (stm.contains(key)) return token_content(stm[key]);
    return {};
  };
  int64_t bos = token_id(special_from("bos_token"));
  int64_t eos = token_id(special_from("eos_token"));
  int64_t pad = token_id(special_from("pad_token"));
  int64_t unk = token_id(special_from("unk_token"));
  if (unk < 0 && model.contains("unk_token")) unk = token_id(token_content(model["unk_token"]));
  if (unk >= 0) types[size_t(unk)] = kTypeUnknown;

  // add_bos: tokenizer_config says, else a post-processor that puts a special token first.
  std::optional<bool> add_bos, add_eos;
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) add_bos = cfg["add_bos_token"].get<bool>();
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) add_eos = cfg["add_eos_token"].get<bool>();
  if (!add_bos && tj.contains("post_processor")) {
    for_each_component(tj["post_processor"], "processors", [&](const json& c) {
      if (json_type(c) != "TemplateProcessing" || !c.contains("single") || !c["single"].is_array() ||
          c["single"].empty())
        return;
      const json& first = c["single"][0];
      if (first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object()) {
        int64_t id = token_id(first["SpecialToken"].value("id", std::string()));
        if (id >= 0) {
          add_bos = true;
          if (bos < 0) bos = id;
        }
      }
    });
  }

  if (spm) {
    // Scores that make the score-driven merge order equal the merge-rank order: a token made by
    // merge r scores -r; tokens no merge makes (single characters, bytes, specials) score lowest.
    std::unordered_map<std::string, size_t> rank;
    rank.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      size_t sp = merges[r].find(' ', 1);
      if (sp == std::string::npos) continue;
      rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), r);
    }
    std::vector<float> scores(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      auto it = rank.find(tokens[i]);
      scores[i] = it != rank.end() ? -float(it->second) : -float(merges.size() + 1);
    }
    meta["tokenizer.ggml.model"] = MetaValue::from_string("llama");
    meta["tokenizer.ggml.pre"] = MetaValue::from_string("default");
    meta["tokenizer.ggml.scores"] = MetaValue::from_f32s(scores);
    meta["tokenizer.ggml.add_space_prefix"] = MetaValue::from_bool(prepend_space);
  } else {
    std::string why;
    std::string pre_name = pre_name_for(pre, chat_template, &why);
    if (pre_name.empty()) return Status::error(tok_path + ": pre_tokenizer: " + why);
    meta["tokenizer.ggml.model"] = MetaValue::from_string("gpt2");
    meta["tokenizer.ggml.pre"] = MetaValue::from_string(pre_name);
    meta["tokenizer.ggml.merges"] = MetaValue::from_strings(std::move(merges));
    meta["tokenizer.ggml.ignore_merges"] = MetaValue::from_bool(model.value("ignore_merges", false));
    meta["tokenizer.ggml.add_space_prefix"] = MetaValue::from_bool(false);
  }
  meta["tokenizer.ggml.tokens"] = MetaValue::from_strings(std::move(tokens));
  meta["tokenizer.ggml.token_type"] = MetaValue::from_i32s(types);
  auto set_id = [&](const char* key, int64_t id) {
    if (id >= 0) meta[key] = MetaValue::from_u32(uint32_t(id));
  };
  set_id("tokenizer.ggml.bos_token_id", bos);
  set_id("tokenizer.ggml.eos_token_id", eos);
  set_id("tokenizer.ggml.padding_token_id", pad);
  set_id("tokenizer.ggml.unknown_token_id", unk);
  meta["tokenizer.ggml.add_bos_token"] = MetaValue::from_bool(add_bos.value_or(spm));
  meta["tokenizer.ggml.add_eos_token"] = MetaValue::from_bool(add_eos.value_or(false));
  if (!chat_template.empty()) meta["tokenizer.chat_template"] = MetaValue::from_string(chat_template);
  return Status::ok();
}

}  // namespace

Status import_llama2c_tokenizer(const std::string& path, int64_t n_vocab, Metadata& meta) {
  try {
    return import_llama2c(path, n_vocab, meta);
  } catch (const std::exception& e) {  // allocation failure and the like
    return Status::error(path + ": " + e.what());
  }
}

Status import_hf_tokenizer(const std::string& dir, Metadata& meta) {
  try {
    return import_hf(dir, meta);
  } catch (const std::exception& e) {  // a JSON value of an unexpected type
    return Status::error(dir + "/tokenizer.json: " + e.what());
  }
}

}  // namespace edgeglm::formats
