#include "tokenizer/pre_tokenizer.h"

namespace edgeglm::tokenizer {
namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhitespace;

// A view of code points [0, n) of a Codepoints run, scanned by the regex emulations below. Each
// match function returns the end of the match that starts at i (i < n); every code point is
// matched by some alternative, so a match is never empty.
struct Scan {
  const uint32_t* cp;
  const uint8_t* cls;
  size_t n;

  bool letter(size_t i) const { return i < n && (cls[i] & kLetter); }
  bool number(size_t i) const { return i < n && (cls[i] & kNumber); }
  bool space(size_t i) const { return i < n && (cls[i] & kWhitespace); }
  // [^\s\p{L}\p{N}]
  bool other(size_t i) const { return i < n && cls[i] == 0; }
  bool crlf(size_t i) const { return i < n && (cp[i] == '\r' || cp[i] == '\n'); }
  size_t skip_letters(size_t i) const {
    while (letter(i)) ++i;
    return i;
  }
  size_t skip_numbers(size_t i) const {
    while (number(i)) ++i;
    return i;
  }
  size_t skip_other(size_t i) const {
    while (other(i)) ++i;
    return i;
  }
  size_t skip_space(size_t i) const {
    while (space(i)) ++i;
    return i;
  }

  // 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive; 0 when no match.
  size_t contraction(size_t i, bool icase) const {
    if (cp[i] != '\'' || i + 1 >= n) return 0;
    auto lower = [&](size_t k) -> uint32_t {
      uint32_t c = cp[k];
      return (icase && c >= 'A' && c <= 'Z') ? c + 32 : c;
    };
    uint32_t c1 = lower(i + 1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
    if (i + 2 < n) {
      uint32_t c2 = lower(i + 2);
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return i + 3;
    }
    return 0;
  }

  // \s+(?!\S) then \s+ : a whitespace run leaves its last space to the word that follows.
  size_t trailing_space(size_t i) const {
    size_t j = skip_space(i);
    if (j == n) return j;
    return j - 1 > i ? j - 1 : j;
  }

  size_t match_gpt2(size_t i) const {
    if (size_t e = contraction(i, false)) return e;
    size_t s = cp[i] == ' ' ? i + 1 : i;  // " ?"
    if (letter(s)) return skip_letters(s);
    if (number(s)) return skip_numbers(s);
    if (other(s)) return skip_other(s);
    return trailing_space(i);
  }

  size_t match_llama3(size_t i, size_t max_digits) const {
    if (size_t e = contraction(i, true)) return e;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (letter(i)) return skip_letters(i);
    if (!crlf(i) && !number(i) && letter(i + 1)) return skip_letters(i + 1);
    // \p{N}{1,3}
    if (number(i)) {
      size_t j = i;
      while (j - i < max_digits && number(j)) ++j;
      return j;
    }
    //  ?[^\s\p{L}\p{N}]+[\r\n]*
    size_t s = cp[i] == ' ' ? i + 1 : i;
    if (other(s)) {
      size_t j = skip_other(s);
      while (crlf(j)) ++j;
      return j;
    }
    // \s*[\r\n]+ : up to and including the last \r or \n of the whitespace run
    size_t j = skip_space(i);
    for (size_t k = j; k > i; --k) {
      if (crlf(k - 1)) return k;
    }
    return trailing_space(i);
  }
};

void split_run(PreTokenizer kind, const unicode::Codepoints& c, size_t begin, size_t end,
               std::vector<std::pair<uint32_t, uint32_t>>& out) {
  Scan s{c.cps.data() + begin, c.cls.data() + begin, end - begin};
  size_t i = 0;
  while (i < s.n) {
    size_t e = 0;
    switch (kind) {
      case PreTokenizer::kGpt2:
      case PreTokenizer::kSmolLm:
        e = s.match_gpt2(i);
        break;
      case PreTokenizer::kLlama3:
        e = s.match_llama3(i, 3);
        break;
      case PreTokenizer::kQwen2:
        e = s.match_llama3(i, 1);
        break;
    }
    if (e <= i) e = i + 1;  // defensive: never loop forever
    out.emplace_back(c.offsets[begin + i], c.offsets[begin + e]);
    i = e;
  }
}

}  // namespace

bool pre_tokenizer_from_name(std::string_view name, PreTokenizer* out) {
  struct Entry {
    const char* name;
    PreTokenizer kind;
  };
  // tokenizer.ggml.pre values as llama.cpp's converter writes them.
  static constexpr Entry kEntries[] = {
      {"default", PreTokenizer::kGpt2},      {"gpt2", PreTokenizer::kGpt2},
      {"gpt-2", PreTokenizer::kGpt2},        {"llama-bpe", PreTokenizer::kLlama3},
      {"llama3", PreTokenizer::kLlama3},     {"llama-v3", PreTokenizer::kLlama3},
      {"glm4", PreTokenizer::kLlama3},       {"chatglm-bpe", PreTokenizer::kLlama3},
      {"qwen2", PreTokenizer::kQwen2},       {"smollm", PreTokenizer::kSmolLm},
  };
  for (const auto& e : kEntries) {
    if (name == e.name) {
      *out = e.kind;
      return true;
    }
  }
  return false;
}

void pre_tokenize(PreTokenizer kind, std::string_view text, unicode::Codepoints& scratch,
                  std::vector<std::pair<uint32_t, uint32_t>>& out) {
  if (text.empty()) return;
  scratch.assign(text);
  const size_t n = scratch.size();
  if (kind != PreTokenizer::kSmolLm) {
    split_run(kind, scratch, 0, n, out);
    return;
  }
  // Digits(individual_digits): each \p{N} is its own piece; the runs between are split by the
  // GPT-2 regex as separate strings (so a run's end counts as end of text for (?!\S)).
  size_t run = 0;
  for (size_t i = 0; i < n; ++i) {
    if (scratch.cls[i] & kNumber) {
      if (run < i) split_run(kind, scratch, run, i, out);
      out.emplace_back(scratch.offsets[i], scratch.offsets[i + 1]);
      run = i + 1;
    }
  }
  if (run < n) split_run(kind, scratch, run, n, out);
}

}  // namespace edgeglm::tokenizer
