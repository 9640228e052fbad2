#include "strata/text/text_stream.h"

#include <gtest/gtest.h>

#include "strata/text/hf_tokenizer.h"

namespace strata::text {
namespace {

TEST(TextStream, HoldsACharacterBackUntilItsLastByte) {
  const auto bytes = byte_tokenizer();
  TextStream stream(*bytes, {'a'});
  EXPECT_EQ(stream.push('b'), "b");
  EXPECT_EQ(stream.push(0xE4), "");  // 中 is E4 B8 AD
  EXPECT_EQ(stream.push(0xB8), "");
  EXPECT_EQ(stream.push(0xAD), "\xE4\xB8\xAD");
  EXPECT_EQ(stream.push(0xC3), "");
  EXPECT_EQ(stream.finish(), "\xEF\xBF\xBD");  // cut short by the end: U+FFFD
}

TEST(TextStream, ALeadingMetaSpaceShowsAfterThePrompt) {
  // ▁ is 1, a 2, ▁a 3; the decoder drops the meta-space of the first token only.
  const nlohmann::json spec{
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}}},
      {"decoder", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}}},
      {"model", {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"▁", 1}, {"a", 2}, {"▁a", 3}}}, {"merges", {"▁ a"}}}}};
  const HfTokenizer t(spec, nullptr, "test");
  TextStream after_prompt(t, {3});
  EXPECT_EQ(after_prompt.push(3), " a");
  EXPECT_EQ(after_prompt.push(2), "a");
  TextStream from_nothing(t, {});
  EXPECT_EQ(from_nothing.push(3), "a");
  EXPECT_EQ(from_nothing.push(3), " a");
}

TEST(StopStrings, CutsAtTheStopAndHoldsBackWhatMayStartOne) {
  StopStrings stops({"world", "\n\n"});
  EXPECT_EQ(stops.push("Hello wo"), "Hello ");
  EXPECT_EQ(stops.push("rl"), "");
  EXPECT_EQ(stops.push("d!"), "");
  EXPECT_TRUE(stops.stopped());
  StopStrings no_stop({"wx"});
  EXPECT_EQ(no_stop.push("a w"), "a ");
  EXPECT_EQ(no_stop.push("y"), "wy");
  EXPECT_EQ(no_stop.push("w"), "");
  EXPECT_FALSE(no_stop.stopped());
  EXPECT_EQ(no_stop.finish(), "w");
}

}  // namespace
}  // namespace strata::text
