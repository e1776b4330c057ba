#include "tokenizer/vocab.h"

#include <algorithm>
#include <iterator>

namespace edgeglm::tokenizer {

namespace meta {
namespace {
const char* type_name(formats::MetaType t) {
  static constexpr const char* kNames[] = {"u8",     "i8",  "u16",   "i16", "u32", "i32", "f32",
                                           "bool",   "string", "array", "u64", "i64", "f64"};
  auto i = size_t(t);
  return i < std::size(kNames) ? kNames[i] : "unknown type";
}
}  // namespace

const formats::MetaValue* find(const formats::Metadata& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? nullptr : &it->second;
}

bool as_int(const formats::MetaValue& v, int64_t* out) {
  using formats::MetaType;
  switch (v.type) {
    case MetaType::U8: case MetaType::U16: case MetaType::U32: case MetaType::U64:
    case MetaType::Bool:
      *out = int64_t(v.u);
      return true;
    case MetaType::I8: case MetaType::I16: case MetaType::I32: case MetaType::I64:
      *out = v.i;
      return true;
    default:
      return false;
  }
}

Result<int64_t> get_int(const formats::Metadata& m, const std::string& key, int64_t fallback) {
  const auto* v = find(m, key);
  if (!v) return fallback;
  int64_t x = 0;
  if (!as_int(*v, &x)) {
    return Status::error(key + ": expected an integer, found " +
                         type_name(v->type));
  }
  return x;
}

Result<bool> get_bool(const formats::Metadata& m, const std::string& key, bool fallback) {
  EG_ASSIGN_OR_RETURN(int64_t x, get_int(m, key, fallback ? 1 : 0));
  return x != 0;
}

Result<std::string> get_string(const formats::Metadata& m, const std::string& key,
                               const std::string& fallback) {
  const auto* v = find(m, key);
  if (!v) return fallback;
  if (v->type != formats::MetaType::String) {
    return Status::error(key + ": expected a string, found " + type_name(v->type));
  }
  return v->s;
}

}  // namespace meta

namespace {

// Chat end markers that stop generation when the vocab has them as special tokens.
constexpr const char* kEogTexts[] = {"<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|eom_id|>",
                                     "<|end|>", "</s>", "<end_of_turn>"};
// GLM's chat turns end when the model starts the next user / tool turn.
constexpr const char* kGlmEogTexts[] = {"<|user|>", "<|observation|>"};

}  // namespace

Status VocabTokenizer::load_common(const formats::Metadata& m, bool spm) {
  using formats::MetaType;
  const auto* toks = meta::find(m, "tokenizer.ggml.tokens");
  if (!toks) return Status::error("tokenizer.ggml.tokens: missing");
  if (toks->type != MetaType::Array || toks->elem_type != MetaType::String) {
    return Status::error("tokenizer.ggml.tokens: expected an array of strings");
  }
  const size_t n = toks->array_size();
  if (n == 0) return Status::error("tokenizer.ggml.tokens: empty vocabulary");
  if (n > size_t(INT32_MAX)) return Status::error("tokenizer.ggml.tokens: too many");
  if (toks->strs.size() != n) {  // built by from_array() with mixed element types
    for (size_t i = 0; i < n; ++i)
      if (toks->element(i).type != MetaType::String)
        return Status::error("tokenizer.ggml.tokens[" + std::to_string(i) + "]: not a string");
    return Status::error("tokenizer.ggml.tokens: expected an array of strings");
  }
  tokens_.resize(n);
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    tokens_[i] = toks->str_at(i);
    // The first id wins when a text repeats (llama.cpp keeps the first as well).
    token_to_id_.emplace(tokens_[i], int32_t(i));
  }

  types_.assign(n, kTokNormal);
  if (const auto* tt = meta::find(m, "tokenizer.ggml.token_type")) {
    if (tt->type != MetaType::Array || tt->array_size() != n) {
      return Status::error("tokenizer.ggml.token_type: expected an array of " + std::to_string(n) +
                           " integers");
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t t = 0;
      if (!meta::as_int(tt->element(i), &t) || t < 0 || t > kTokByte) {
        return Status::error("tokenizer.ggml.token_type[" + std::to_string(i) +
                             "]: expected a token type 0..6");
      }
      types_[i] = t == 0 ? kTokNormal : int32_t(t);
    }
  }

  auto read_id = [&](const char* key, int32_t fallback, int32_t* out) -> Status {
    auto r = meta::get_int(m, key, fallback);
    if (!r.ok()) return r.status();
    int64_t v = *r;
    // Writers store "none" as -1 or as 0xFFFFFFFF in a u32; anything out of range means none.
    *out = (v >= 0 && v < int64_t(n)) ? int32_t(v) : -1;
    return Status::ok();
  };
  EG_TRY(read_id("tokenizer.ggml.bos_token_id", spm ? 1 : -1, &bos_));
  EG_TRY(read_id("tokenizer.ggml.eos_token_id", spm ? 2 : -1, &eos_));
  EG_TRY(read_id("tokenizer.ggml.unknown_token_id", spm ? 0 : -1, &unk_));
  EG_TRY(read_id("tokenizer.ggml.eot_token_id", -1, &eot_));

  EG_ASSIGN_OR_RETURN(add_bos_, meta::get_bool(m, "tokenizer.ggml.add_bos_token", spm));
  EG_ASSIGN_OR_RETURN(add_eos_, meta::get_bool(m, "tokenizer.ggml.add_eos_token", false));
  EG_ASSIGN_OR_RETURN(add_space_prefix_,
                      meta::get_bool(m, "tokenizer.ggml.add_space_prefix", spm));

  // End-of-generation set.
  std::vector<int32_t> eog;
  if (eos_ >= 0) eog.push_back(eos_);
  if (eot_ >= 0) eog.push_back(eot_);
  auto add_if_special = [&](const char* text) {
    int32_t id = lookup(text);
    if (id >= 0 && (types_[size_t(id)] == kTokControl || types_[size_t(id)] == kTokUserDefined))
      eog.push_back(id);
  };
  for (const char* t : kEogTexts) add_if_special(t);
  if (lookup("[gMASK]") >= 0) {
    for (const char* t : kGlmEogTexts) add_if_special(t);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  eog_ids_ = std::move(eog);

  for (auto& v : special_by_byte_) v.clear();
  for (size_t i = 0; i < n; ++i) {
    int32_t t = types_[i];
    if ((t == kTokControl || t == kTokUserDefined || t == kTokUnknown) && !tokens_[i].empty())
      special_by_byte_[uint8_t(tokens_[i][0])].push_back(int32_t(i));
  }
  for (auto& v : special_by_byte_) {
    std::stable_sort(v.begin(), v.end(), [&](int32_t a, int32_t b) {
      return tokens_[size_t(a)].size() > tokens_[size_t(b)].size();
    });
  }
  return Status::ok();
}

bool VocabTokenizer::is_eog(int32_t id) const {
  return std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

bool VocabTokenizer::is_special(int32_t id) const {
  if (!valid(id)) return false;
  int32_t t = types_[size_t(id)];
  return t == kTokControl || t == kTokUserDefined;
}

const std::string& VocabTokenizer::token_text(int32_t id) const {
  static const std::string kEmpty;
  return valid(id) ? tokens_[size_t(id)] : kEmpty;
}

std::optional<int32_t> VocabTokenizer::find_token(std::string_view text) const {
  int32_t id = lookup(text);
  if (id < 0) return std::nullopt;
  return id;
}

std::vector<int32_t> VocabTokenizer::encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);

  // Leftmost-longest match of special tokens (as HF's added-token splitter); user-defined tokens
  // are always matched, control / unknown ones only with parse_special (as llama.cpp).
  bool after_special = true;
  size_t run_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    int32_t match = -1;
    for (int32_t id : special_by_byte_[uint8_t(text[pos])]) {
      const std::string& s = tokens_[size_t(id)];
      if (!parse_special && types_[size_t(id)] != kTokUserDefined) continue;
      if (text.compare(pos, s.size(), s) == 0) {
        match = id;
        break;
      }
    }
    if (match < 0) {
      ++pos;
      continue;
    }
    if (run_begin < pos) encode_fragment(text.substr(run_begin, pos - run_begin), after_special, out);
    out.push_back(match);
    after_special = true;
    pos += tokens_[size_t(match)].size();
    run_begin = pos;
  }
  if (run_begin < text.size()) encode_fragment(text.substr(run_begin), after_special, out);

  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

}  // namespace edgeglm::tokenizer
