// Strict UTF-8: the one definition of "well-formed" used by the file parsers (metadata keys,
// tensor names, vocab entries) and the tokenizer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgeglm {

// Length (1-4) of the well-formed UTF-8 sequence at s[pos], with its code point in *cp; 0 when
// the bytes there are not one (truncated, overlong, surrogate, above U+10FFFF, stray
// continuation or invalid lead byte).
size_t utf8_decode(std::string_view s, size_t pos, uint32_t* cp);

bool utf8_valid(std::string_view s);

}  // namespace edgeglm
