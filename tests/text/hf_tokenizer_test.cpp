#include "strata/text/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <thread>

#include "strata/text/byte_level.h"
#include "test_util.h"

namespace strata::text {
namespace {

using Ids = std::vector<int64_t>;

// A byte-level BPE small enough to follow by hand: ids 0-255 are the bytes themselves, then
//   rank 0 "Ġ t" -> "Ġt" 256, rank 1 "h e" -> "he" 257, rank 2 "Ġt he" -> "Ġthe" 258,
//   rank 3 "l l" -> "ll" 259, rank 4 "he ll" -> "hell" 260, rank 5 "hell o" -> "hello" 261,
// and the special token <|end|> 262; Qwen2's Split regex, NFC, a ByteLevel decoder.
nlohmann::json byte_level_bpe() {
  nlohmann::json vocab;
  for (int b = 0; b < 256; ++b) vocab[bytes_to_byte_level(std::string(1, static_cast<char>(b)))] = b;
  vocab["Ġt"] = 256;
  vocab["he"] = 257;
  vocab["Ġthe"] = 258;
  vocab["ll"] = 259;
  vocab["hell"] = 260;
  vocab["hello"] = 261;
  return {
      {"added_tokens", {{{"id", 262}, {"content", "<|end|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", {"Ġ t", "h e", "Ġt he", "l l", "he ll", "hell o"}}}}};
}

TEST(HfTokenizer, EncodesByHandCheckableMerges) {
  const HfTokenizer t(byte_level_bpe(), {{"eos_token", "<|end|>"}}, "test");
  // "hello": h e l l o -> he (rank 1) -> ll (rank 3) -> hell (4) -> hello (5).
  // " the": Ġ t h e -> Ġt (0) -> he (1) -> Ġthe (2). Then the special token, whole.
  EXPECT_EQ(t.encode("hello the<|end|>"), (Ids{261, 258, 262}));
  // A newline is its own word (Qwen2's \s*[\r\n]+) and byte 10.
  EXPECT_EQ(t.encode("hello\n"), (Ids{261, 10}));
  // NFC first: e + U+0301 is é, bytes C3 A9.
  EXPECT_EQ(t.encode("he\xCC\x81"), (Ids{'h', 0xC3, 0xA9}));
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.vocab_size(), 263);
  EXPECT_EQ(t.eos_id(), 262);
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.special_ids(), Ids{262});
  EXPECT_EQ(t.token_to_id("Ġthe"), 258);
  EXPECT_FALSE(t.token_to_id("nope").has_value());
}

TEST(HfTokenizer, ManyThreadsEncodeAtOnce) {
  // The regex's JIT stack and the word cache are per thread and shared: each thread must get its
  // own stack (a shared one corrupted matches) and the same ids.
  const HfTokenizer t(byte_level_bpe(), nullptr, "test");
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (int i = 0; i < 300; ++i) {
        // "hello", " the", n spaces as n Ġ (32) (the last one starting " hello"), "hello", "\n";
        // with no space " thehello" is Ġthe + hello, the same ids.
        const int n = i % 50;
        Ids expected{261, 258};
        expected.insert(expected.end(), n, 32);
        expected.insert(expected.end(), {261, 10});
        wrong[k] += t.encode("hello the" + std::string(n, ' ') + "hello\n") != expected;
      }
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong, (std::vector<int>{0, 0, 0, 0}));
}

TEST(HfTokenizer, DecodesThroughTheDecoder) {
  const HfTokenizer t(byte_level_bpe(), nullptr, "test");
  EXPECT_EQ(t.decode(Ids{261, 258, 262}), "hello the<|end|>");
  EXPECT_EQ(t.decode(Ids{0xE4, 0xB8}), "\xEF\xBF\xBD");  // 中 cut short
  EXPECT_EQ(testing::error_of([&] { t.decode(Ids{263}); }),
            "token id 263 is not in the tokenizer's vocabulary (ids run from 0 to 262)");
}

TEST(HfTokenizer, TemplatePostProcessorAddsItsTokensUnlessAskedNotTo) {
  auto spec = byte_level_bpe();
  spec["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<|end|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", {{"<|end|>", {{"id", "<|end|>"}, {"ids", {262}}, {"tokens", {"<|end|>"}}}}}}};
  const HfTokenizer t(spec, nullptr, "test");
  EXPECT_EQ(t.encode("hello"), (Ids{262, 261}));
  EXPECT_EQ(t.encode("hello", AddSpecialTokens::no), (Ids{261}));
}

TEST(HfTokenizer, MetaspaceWithByteFallback) {
  // Llama's shape: ids 0 <unk>, 1-256 <0x00>-<0xFF>, then ▁ 257, a 258, b 259, ▁a 260, ab 261, ▁ab 262.
  nlohmann::json vocab{{"<unk>", 0}, {"▁", 257}, {"a", 258}, {"b", 259}, {"▁a", 260}, {"ab", 261}, {"▁ab", 262}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 1 + b;
  }
  const nlohmann::json spec{
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}}},
      {"decoder", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}}},
      {"model",
       {{"type", "BPE"}, {"unk_token", "<unk>"}, {"byte_fallback", true}, {"vocab", vocab},
        // Pairs, as newer files write merges (an initializer list of pairs would read as an object).
        {"merges", nlohmann::json::array({nlohmann::json::array({"▁", "a"}), nlohmann::json::array({"▁a", "b"}),
                                          nlohmann::json::array({"a", "b"})})}}}};
  const HfTokenizer t(spec, nullptr, "test");
  // "ab ab" -> "▁ab▁ab", one word: ▁ a (rank 0) at both places, then ▁a b (rank 1) at both.
  EXPECT_EQ(t.encode("ab ab"), (Ids{262, 262}));
  // é is not in the vocabulary: its bytes C3 A9 are ids 1 + 0xC3 = 196 and 1 + 0xA9 = 170.
  EXPECT_EQ(t.encode("a\xC3\xA9"), (Ids{260, 196, 170}));
  EXPECT_EQ(t.decode(Ids{262, 262}), "ab ab");
}

TEST(HfTokenizer, RefusesComponentsItCannotHonourByName) {
  auto wordpiece = byte_level_bpe();
  wordpiece["model"]["type"] = "WordPiece";
  EXPECT_EQ(testing::error_of([&] { HfTokenizer(wordpiece, nullptr, "x/tokenizer.json"); }),
            "x/tokenizer.json model: model type 'WordPiece' is not supported (strata implements BPE; WordPiece, Unigram "
            "and WordLevel tokenizers are not read)");
  auto dropout = byte_level_bpe();
  dropout["model"]["dropout"] = 0.1;
  EXPECT_EQ(testing::error_of([&] { HfTokenizer(dropout, nullptr, "x/tokenizer.json"); }),
            "x/tokenizer.json model (BPE): dropout 0.1 is not supported (it makes encoding random; strata encodes as HF "
            "does with dropout off)");
  auto unicode_scripts = byte_level_bpe();
  unicode_scripts["pre_tokenizer"]["pretokenizers"][1] = {{"type", "UnicodeScripts"}};
  EXPECT_NE(testing::error_of([&] { HfTokenizer(unicode_scripts, nullptr, "x/tokenizer.json"); })
                .find("x/tokenizer.json pre_tokenizer.pretokenizers[1]: pre_tokenizer type 'UnicodeScripts' is not "
                      "supported"),
            std::string::npos);
  EXPECT_EQ(testing::error_of([&] { HfTokenizer(byte_level_bpe(), {{"eos_token", "</s>"}}, "x/tokenizer.json"); }),
            "x/tokenizer.json: tokenizer_config.json's eos_token '</s>' is not a token of the tokenizer");
  EXPECT_EQ(testing::error_of([] { HfTokenizer(byte_level_bpe(), nullptr, "t").encode("a\xFF"); }),
            "the text to encode: not valid UTF-8 at byte 1 (byte 0xff)");
}

TEST(Tokenizer, OpenRefusesUnknownTypesAndMissingFiles) {
  EXPECT_EQ(testing::error_of([] { open_tokenizer("GPT2BPETokenizer", "vocab.json"); }),
            "--tokenizer-type 'GPT2BPETokenizer' is not supported (strata reads HuggingFaceTokenizer and "
            "SentencePieceTokenizer, alias GPTSentencePieceTokenizer or Llama2Tokenizer)");
  EXPECT_EQ(testing::error_of([] { open_tokenizer("HuggingFaceTokenizer", "/nonexistent/tokenizer.json"); }),
            "--tokenizer-model /nonexistent/tokenizer.json: no such file (HuggingFaceTokenizer reads an HF tokenizer.json)");
}

TEST(Tokenizer, ByteTokenizerIsUtf8Bytes) {
  const auto bytes = byte_tokenizer();
  EXPECT_EQ(bytes->encode("h\xC3\xA9"), (Ids{'h', 0xC3, 0xA9}));
  EXPECT_EQ(bytes->decode(Ids{'h', 0xC3}), "h\xEF\xBF\xBD");
  EXPECT_EQ(bytes->vocab_size(), 256);
  EXPECT_FALSE(bytes->eos_id().has_value());
}

TEST(Tokenizer, SentencePieceModelThroughTheLibrary) {
  const auto sp = open_tokenizer("SentencePieceTokenizer", STRATA_TEXT_FIXTURES_DIR "/sentencepiece_bpe");
  // gen_text_fixtures.py trains it with vocabulary 512, unk 0, bos 1, eos 2.
  EXPECT_EQ(sp->vocab_size(), 512);
  EXPECT_EQ(sp->bos_id(), 1);
  EXPECT_EQ(sp->eos_id(), 2);
  EXPECT_EQ(sp->token_to_id("</s>"), 2);
  // With byte_fallback the byte pieces follow the three control and unknown pieces: <0x41> is 3 + 0x41.
  EXPECT_EQ(sp->token_to_id("<0x41>"), 3 + 0x41);
  EXPECT_FALSE(sp->token_to_id("no such piece").has_value());
  EXPECT_EQ(sp->special_ids(), (Ids{1, 2}));
  EXPECT_EQ(sp->decode(sp->encode("Hello, world!")), "Hello, world!");
}

}  // namespace
}  // namespace strata::text
