// Pre-tokenizers of the byte-level BPE families: each splits text into the pieces that BPE then
// encodes independently. They are hand-written scanners that reproduce the families' regexes
// (leftmost alternative first, greedy with backtracking) over Unicode classes, since std::regex
// has no \p{L}.
#pragma once
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/unicode.h"

namespace edgeglm::tokenizer {

enum class PreTokenizer {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+   (Llama-3, GLM-4)
  kLlama3,
  // as kLlama3 with \p{N} (single digits)   (Qwen2)
  kQwen2,
  // every \p{N} isolated, then kGpt2 on the rest   (SmolLM: Digits(individual) + ByteLevel)
  kSmolLm,
};

// Maps a tokenizer.ggml.pre value to a pre-tokenizer; false when unknown.
bool pre_tokenizer_from_name(std::string_view name, PreTokenizer* out);

// Splits `text` into pieces, appended to `out` as [begin, end) byte ranges of the text.
// `scratch` is reused between calls to avoid re-allocating.
void pre_tokenize(PreTokenizer kind, std::string_view text, unicode::Codepoints& scratch,
                  std::vector<std::pair<uint32_t, uint32_t>>& out);

}  // namespace edgeglm::tokenizer
