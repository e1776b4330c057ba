#include "runtime/text_stream.h"

#include <algorithm>

namespace edgeglm::runtime {

size_t utf8_complete_prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of the last sequence.
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return back < need ? n - back : n;
  }
  return n;
}

std::string TextStream::push(std::string_view piece) {
  if (stopped_) return "";
  pending_.append(piece);
  // A completed stop string ends the text right before it.
  size_t cut = std::string::npos;
  for (const auto& s : stop_) {
    if (s.empty()) continue;
    size_t at = pending_.find(s);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    pending_.resize(cut);
    stopped_ = true;
    std::string out = pending_;
    pending_.clear();
    shown_ += out;
    return out;
  }
  // Hold back the longest suffix that is a prefix of some stop string, and any partial UTF-8.
  size_t hold = 0;
  for (const auto& s : stop_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  size_t emit = utf8_complete_prefix(std::string_view(pending_).substr(0, pending_.size() - hold));
  std::string out = pending_.substr(0, emit);
  pending_.erase(0, emit);
  shown_ += out;
  return out;
}

std::string TextStream::flush() {
  if (stopped_) return "";
  std::string out = pending_.substr(0, utf8_complete_prefix(pending_));
  pending_.clear();
  shown_ += out;
  return out;
}

}  // namespace edgeglm::runtime
