#include <gtest/gtest.h>

#include "runtime/text_stream.h"

using edgeglm::runtime::TextStream;
using edgeglm::runtime::utf8_complete_prefix;

TEST(TextStream, HoldsBackPartialUtf8) {
  TextStream s;
  // "é" = C3 A9 split across two pieces.
  EXPECT_EQ(s.push("caf\xC3"), "caf");
  EXPECT_EQ(s.push("\xA9!"), "\xC3\xA9!");
  EXPECT_EQ(s.text(), "caf\xC3\xA9!");
}

TEST(TextStream, FourByteSequence) {
  TextStream s;
  EXPECT_EQ(s.push("\xF0\x9F"), "");
  EXPECT_EQ(s.push("\x98"), "");
  EXPECT_EQ(s.push("\x80 ok"), "\xF0\x9F\x98\x80 ok");
}

TEST(TextStream, StopStringAcrossPieces) {
  TextStream s({"\nUser:"});
  EXPECT_EQ(s.push("Hello"), "Hello");
  EXPECT_EQ(s.push("\nUs"), "");  // could be the stop string: held
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.push("er: more"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.text(), "Hello");
  EXPECT_EQ(s.push("after"), "");
}

TEST(TextStream, FalseAlarmIsReleased) {
  TextStream s({"STOP"});
  EXPECT_EQ(s.push("ST"), "");
  EXPECT_EQ(s.push("ay"), "STay");
  EXPECT_EQ(s.push("S"), "");
  EXPECT_EQ(s.flush(), "S");
  EXPECT_EQ(s.text(), "STayS");
}

TEST(TextStream, EarliestOfSeveralStops) {
  TextStream s({"b", "abc"});
  EXPECT_EQ(s.push("xxabcd"), "xx");  // "abc" starts before "b"
  EXPECT_TRUE(s.stopped());
}

TEST(Utf8, CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8_complete_prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80"), 2u);  // stray continuation bytes pass through
}
