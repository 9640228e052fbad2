#include "strata/text/megatron_preprocess.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace strata::text {
namespace {

using testing::error_of;

const auto kTokenizer = std::filesystem::path(STRATA_TEXT_FIXTURES_DIR) / "bytelevel_bpe";

class EncodeJsonLine : public ::testing::Test {
 protected:
  std::unique_ptr<Tokenizer> tokenizer = open_tokenizer("HuggingFaceTokenizer", kTokenizer);
  std::vector<int64_t> ids(const std::string& text) { return tokenizer->encode(text); }
};

TEST_F(EncodeJsonLine, SentencesAreConcatenatedAndTheEodEndsTheLastOne) {
  const auto documents =
      encode_json_line(R"({"text": ["Hello", "", " world"], "id": 3})", {"text"}, *tokenizer, true, "line 1");
  ASSERT_EQ(documents.size(), 1u);
  auto expected = ids("Hello");
  const auto world = ids(" world");
  expected.insert(expected.end(), world.begin(), world.end());
  expected.push_back(1021);  // the tokenizer's EOS, <|endoftext|>
  EXPECT_EQ(documents[0].ids, expected);
  // The empty sentence is dropped; the EOD counts in the last sentence.
  EXPECT_EQ(documents[0].sentence_lengths,
            (std::vector<int32_t>{static_cast<int32_t>(ids("Hello").size()), static_cast<int32_t>(world.size() + 1)}));
}

TEST_F(EncodeJsonLine, AnEmptyDocumentGetsNoEodAndEachKeyItsOwnDocument) {
  const auto documents = encode_json_line(R"({"a": "", "b": "x"})", {"a", "b"}, *tokenizer, true, "line 2");
  ASSERT_EQ(documents.size(), 2u);
  EXPECT_TRUE(documents[0].ids.empty());
  EXPECT_TRUE(documents[0].sentence_lengths.empty());
  auto x = ids("x");
  x.push_back(1021);
  EXPECT_EQ(documents[1].ids, x);
}

TEST_F(EncodeJsonLine, BadLinesAreNamed) {
  EXPECT_NE(error_of([&] { encode_json_line("{", {"text"}, *tokenizer, false, "in.jsonl line 4"); })
                .find("in.jsonl line 4: not a JSON object"),
            std::string::npos);
  EXPECT_NE(error_of([&] { encode_json_line(R"({"body": "x"})", {"text"}, *tokenizer, false, "line 5"); })
                .find("line 5: no key \"text\" (--json-keys)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { encode_json_line(R"({"text": 7})", {"text"}, *tokenizer, false, "line 6"); })
                .find("line 6: \"text\" is 7, expected a string or a list of strings"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::text
