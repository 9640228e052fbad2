#include "strata/text/decoder.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace strata::text {
namespace {

std::string decoded(const std::string& spec, std::vector<std::string> tokens) {
  return parse_decoder(nlohmann::json::parse(spec), "test")->decode(std::move(tokens));
}

TEST(Decoder, ByteLevelJoinsBytesAndReplacesWhatIsCutShort) {
  EXPECT_EQ(decoded(R"({"type": "ByteLevel"})", {"Hello", "\xC4\xA0world", "\xC4\x8A"}), "Hello world\n");
  // 中 is E4 B8 AD, spelt "ä¸Ń"; across two tokens it still joins into one character.
  EXPECT_EQ(decoded(R"({"type": "ByteLevel"})", {"\xC3\xA4\xC2\xB8", "\xC5\x83"}), "\xE4\xB8\xAD");
  EXPECT_EQ(decoded(R"({"type": "ByteLevel"})", {"\xC3\xA4\xC2\xB8"}), "\xEF\xBF\xBD");
  // A token outside the byte alphabet (an added token) comes through as its own text.
  EXPECT_EQ(decoded(R"({"type": "ByteLevel"})", {"a", "<\xEF\xBD\x9C" "end\xEF\xBD\x9C>"}), "a<\xEF\xBD\x9C" "end\xEF\xBD\x9C>");
}

TEST(Decoder, LlamaLegacyChain) {
  const std::string chain = R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})";
  EXPECT_EQ(decoded(chain, {"▁Hello", "▁w", "orld", "<0x21>"}), "Hello world!");
  EXPECT_EQ(decoded(chain, {"▁", "<0xE4>", "<0xB8>", "<0xAD>"}), "\xE4\xB8\xAD");
  // Byte tokens that are not valid UTF-8 together: one U+FFFD each (HF's rule for ByteFallback).
  EXPECT_EQ(decoded(chain, {"<0xE4>", "<0xB8>", "x"}), "\xEF\xBF\xBD\xEF\xBF\xBDx");
}

TEST(Decoder, MetaspaceDropsTheFirstTokensMetaSpaceUnlessNeverPrepended) {
  EXPECT_EQ(decoded(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"})", {"▁Hey", "▁friend"}),
            "Hey friend");
  EXPECT_EQ(decoded(R"({"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"})", {"▁Hey", "▁friend"}),
            " Hey friend");
}

TEST(Decoder, StripFuseBpeSuffixAndNoDecoder) {
  EXPECT_EQ(decoded(R"({"type": "Strip", "content": "x", "start": 2, "stop": 1})", {"xxxaxx"}), "xax");
  EXPECT_EQ(decoded(R"({"type": "BPEDecoder", "suffix": "</w>"})", {"hel", "lo</w>", "there</w>"}), "hello there");
  EXPECT_EQ(no_decoder()->decode({"t", "##a", "b"}), "t ##a b");
}

TEST(Decoder, RefusesWhatItDoesNotImplementByName) {
  EXPECT_EQ(testing::error_of([] { parse_decoder(nlohmann::json::parse(R"({"type": "WordPiece", "prefix": "##"})"),
                                                 "tokenizer.json decoder"); }),
            "tokenizer.json decoder: decoder type 'WordPiece' is not supported (strata implements ByteLevel, Metaspace, "
            "ByteFallback, Fuse, Strip, Replace, BPEDecoder and Sequence)");
}

}  // namespace
}  // namespace strata::text
