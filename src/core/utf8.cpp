#include "core/utf8.h"

namespace edgeglm {

size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp) {
  const auto b0 = uint8_t(s[pos]);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  const size_t n = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
  if (n == 0 || s.size() - pos < n) return 0;
  uint32_t c = n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto b = uint8_t(s[pos + k]);
    if ((b & 0xC0) != 0x80) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};  // shortest form per length
  if (c < kMin[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
  *cp = c;
  return n;
}

bool utf8_valid(std::string_view s) {
  uint32_t cp;
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = utf8_decode(s, pos, &cp);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

}  // namespace edgeglm
