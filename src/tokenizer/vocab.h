// Shared vocabulary state of the tokenizer implementations: token texts / types / scores from
// tokenizer.ggml.*, special-token ids and flags, and the special-token splitting that comes
// before either BPE algorithm.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace edgeglm::tokenizer {

// tokenizer.ggml.token_type values.
enum TokenType : int32_t {
  kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5,
  kTokByte = 6,
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Typed reads of GGUF-style metadata. They only touch MetaValue's fields, so they work with any
// loader that fills them.
namespace meta {
const formats::MetaValue* find(const formats::Metadata& m, const std::string& key);
// Integer value of an integer or bool MetaValue.
bool as_int(const formats::MetaValue& v, int64_t* out);
// Missing -> fallback; present with a wrong type -> error naming the key.
Result<int64_t> get_int(const formats::Metadata& m, const std::string& key, int64_t fallback);
Result<bool> get_bool(const formats::Metadata& m, const std::string& key, bool fallback);
Result<std::string> get_string(const formats::Metadata& m, const std::string& key,
                               const std::string& fallback);
}  // namespace meta

class VocabTokenizer : public Tokenizer {
 public:
  int32_t n_vocab() const override { return int32_t(tokens_.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  bool add_bos() const override { return add_bos_; }
  bool add_eos() const override { return add_eos_; }
  bool add_space_prefix() const override { return add_space_prefix_; }
  bool is_eog(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::vector<int32_t> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  const std::string& token_text(int32_t id) const override;
  std::optional<int32_t> find_token(std::string_view text) const override;

  int32_t token_type(int32_t id) const { return valid(id) ? types_[size_t(id)] : kTokUnknown; }

 protected:
  // Reads tokens, token_type, special ids and flags; `spm` selects the per-kind defaults.
  Status load_common(const formats::Metadata& m, bool spm);
  // Encodes one run of plain text (no special tokens in it). after_special: the run is the
  // first of the text or follows a special token (SentencePiece adds its space prefix there).
  virtual void encode_fragment(std::string_view text, bool after_special,
                               std::vector<int32_t>& out) const = 0;
  bool valid(int32_t id) const { return id >= 0 && size_t(id) < tokens_.size(); }
  int32_t lookup(std::string_view text) const {
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
  }

  std::vector<std::string> tokens_;
  std::vector<int32_t> types_;
  TokenMap token_to_id_;
  int32_t bos_ = -1, eos_ = -1, unk_ = -1, eot_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  std::vector<int32_t> eog_ids_;  // sorted
  // Special tokens (control / user-defined / unknown) by first byte, longest first.
  std::array<std::vector<int32_t>, 256> special_by_byte_;
};

}  // namespace edgeglm::tokenizer
