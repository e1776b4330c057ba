#include "tokenizer/unicode.h"

#include "core/utf8.h"

#include <algorithm>
#include <array>

namespace edgeglm::tokenizer::unicode {
namespace {

bool in_ranges(const CodepointRange* r, size_t n, uint32_t cp) {
  const CodepointRange* end = r + n;
  const CodepointRange* it =
      std::upper_bound(r, end, cp, [](uint32_t v, const CodepointRange& x) { return v < x.first; });
  if (it == r) return false;
  --it;
  return cp <= it->last;
}

struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> from_cp{};  // every mapped code point is < 324
  ByteMap() {
    from_cp.fill(-1);
    // GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the rest to 256+n.
    uint32_t n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      uint32_t cp = printable ? uint32_t(b) : 256 + n++;
      to_cp[b] = cp;
      from_cp[cp] = int16_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

uint8_t classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kWhitespace;
    return 0;
  }
  uint8_t c = 0;
  if (in_ranges(kLetterRanges, kLetterRanges_count, cp)) c |= kLetter;
  if (in_ranges(kNumberRanges, kNumberRanges_count, cp)) c |= kNumber;
  if (in_ranges(kWhitespaceRanges, kWhitespaceRanges_count, cp)) c |= kWhitespace;
  return c;
}

size_t utf8_seq_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

uint32_t decode_utf8(std::string_view text, size_t pos, size_t* len) {
  uint32_t cp;
  *len = utf8_decode(text, pos, &cp);
  if (*len == 0) {
    *len = 1;
    return kReplacementChar;
  }
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

void Codepoints::assign(std::string_view text) {
  cps.clear();
  cls.clear();
  offsets.clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    uint32_t cp = decode_utf8(text, pos, &len);
    cps.push_back(cp);
    cls.push_back(classify(cp));
    offsets.push_back(uint32_t(pos));
    pos += len;
  }
  offsets.push_back(uint32_t(text.size()));
}

uint32_t byte_to_codepoint(uint8_t b) { return byte_map().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) {
  const auto& m = byte_map();
  return cp < m.from_cp.size() ? m.from_cp[cp] : -1;
}

void bytes_to_byte_level(std::string_view bytes, std::string& out) {
  for (char c : bytes) append_utf8(out, byte_to_codepoint(uint8_t(c)));
}

bool byte_level_to_bytes(std::string_view text, std::string& out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    uint32_t cp = decode_utf8(text, pos, &len);
    int b = codepoint_to_byte(cp);
    if (b < 0) return false;
    out.push_back(char(b));
    pos += len;
  }
  return true;
}

}  // namespace edgeglm::tokenizer::unicode
