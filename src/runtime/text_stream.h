// Turns generated token pieces into text safe to show: never emits half of a UTF-8 character,
// and holds back text that could be the start of a stop string until it is known not to be.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace edgeglm::runtime {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop = {}) : stop_(std::move(stop)) {}

  // Adds a piece; returns the text that may now be shown. Sets stopped() when a stop string
  // completed (the stop string and what follows are never shown).
  std::string push(std::string_view piece);
  // End of generation: everything still held back (an incomplete UTF-8 tail is dropped).
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::string& text() const { return shown_; }  // all text shown so far

 private:
  std::vector<std::string> stop_;
  std::string pending_;  // received, not yet shown
  std::string shown_;
  bool stopped_ = false;
};

// Length of the longest prefix of s that ends on a UTF-8 character boundary (an incomplete
// trailing sequence is excluded; invalid bytes count as single characters).
size_t utf8_complete_prefix(std::string_view s);

}  // namespace edgeglm::runtime
