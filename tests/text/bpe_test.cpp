#include "strata/text/bpe.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "strata/text/byte_level.h"
#include "strata/text/utf8.h"
#include "test_util.h"

namespace strata::text {
namespace {

std::vector<int64_t> ids_of(const BpeModel& model, const std::string& word, bool byte_level = false) {
  std::vector<int64_t> ids;
  model.tokenize({word, std::nullopt, false, byte_level}, ids);
  return ids;
}

using Ids = std::vector<int64_t>;

TEST(Bpe, MergesLowestRankFirstAndLeftmostAmongEqualRanks) {
  // a=0 b=1 c=2 ab=3 bc=4 abc=5
  const Vocabulary vocab{{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "b c" outranks "a b": abc becomes a + bc, and "a bc" is no merge, so it stays two tokens.
  const BpeModel bc_first(vocab, {{"b", "c"}, {"a", "b"}, {"ab", "c"}}, {}, "test");
  EXPECT_EQ(ids_of(bc_first, "abc"), (Ids{0, 4}));
  // "a b" first: ab + c, then "ab c" -> abc.
  const BpeModel ab_first(vocab, {{"a", "b"}, {"b", "c"}, {"ab", "c"}}, {}, "test");
  EXPECT_EQ(ids_of(ab_first, "abc"), (Ids{5}));
  // One rank, three places: the leftmost pair merges first, so "aaa" is aa + a, "aaaa" aa + aa.
  const BpeModel aa({{"a", 0}, {"aa", 1}}, {{"a", "a"}}, {}, "test");
  EXPECT_EQ(ids_of(aa, "aaa"), (Ids{1, 0}));
  EXPECT_EQ(ids_of(aa, "aaaa"), (Ids{1, 1}));
}

TEST(Bpe, UnknownCharactersBecomeUnkFusedOrNotOrAreDropped) {
  const Vocabulary vocab{{"<unk>", 0}, {"a", 1}};
  BpeOptions fused;
  fused.unk_token = "<unk>";
  fused.fuse_unk = true;
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, fused, "test"), "xya"), (Ids{0, 1}));
  BpeOptions each;
  each.unk_token = "<unk>";
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, each, "test"), "xya"), (Ids{0, 0, 1}));
  // Without an unk_token HF drops an unknown character.
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, {}, "test"), "xya"), (Ids{1}));
}

TEST(Bpe, ByteFallbackSpellsUnknownCharactersAsByteTokens) {
  Vocabulary vocab{{"<unk>", 0}, {"a", 1}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab.emplace(name, 2 + b);
  }
  BpeOptions options;
  options.unk_token = "<unk>";
  options.byte_fallback = true;
  // é is 0xC3 0xA9: ids 2 + 0xC3 = 197 and 2 + 0xA9 = 171.
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, options, "test"), "a\xC3\xA9"), (Ids{1, 197, 171}));
}

TEST(Bpe, ContinuingSubwordPrefixAndEndOfWordSuffix) {
  BpeOptions prefix;
  prefix.continuing_subword_prefix = "##";
  // h ##i ##s: "##i ##s" merges into "##is" (the right part's ## dropped), then "h ##is" -> "his".
  const BpeModel with_prefix({{"h", 0}, {"##i", 1}, {"##s", 2}, {"##is", 3}, {"his", 4}},
                             {{"##i", "##s"}, {"h", "##is"}}, prefix, "test");
  EXPECT_EQ(ids_of(with_prefix, "his"), (Ids{4}));
  EXPECT_EQ(ids_of(with_prefix, "hs"), (Ids{0, 2}));
  BpeOptions suffix;
  suffix.end_of_word_suffix = "</w>";
  const BpeModel with_suffix({{"a", 0}, {"a</w>", 1}, {"aa</w>", 2}}, {{"a", "a</w>"}}, suffix, "test");
  EXPECT_EQ(ids_of(with_suffix, "a"), (Ids{1}));
  EXPECT_EQ(ids_of(with_suffix, "aa"), (Ids{2}));
  EXPECT_EQ(ids_of(with_suffix, "aaa"), (Ids{0, 2}));
}

TEST(Bpe, IgnoreMergesTakesAWholeWordFromTheVocabulary) {
  // "abc" is in the vocabulary, but no merge path reaches it.
  const Vocabulary vocab{{"a", 0}, {"b", 1}, {"c", 2}, {"abc", 3}};
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, {}, "test"), "abc"), (Ids{0, 1, 2}));
  BpeOptions ignore;
  ignore.ignore_merges = true;
  EXPECT_EQ(ids_of(BpeModel(vocab, {}, ignore, "test"), "abc"), (Ids{3}));
}

Vocabulary byte_level_vocabulary() {
  Vocabulary vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace(bytes_to_byte_level(std::string(1, static_cast<char>(b))), b);
  vocab.emplace("\xC4\xA0h", 256);   // "Ġh"
  vocab.emplace("\xC4\xA0hi", 257);  // "Ġhi"
  return vocab;
}

TEST(Bpe, ByteLevelWordsGiveTheSameIdsAsTheirSpeltOutCharacters) {
  BpeOptions ignore;
  ignore.ignore_merges = true;
  for (const auto& options : {BpeOptions{}, ignore}) {
    const BpeModel model(byte_level_vocabulary(), {{"\xC4\xA0", "h"}, {"\xC4\xA0h", "i"}}, options, "test");
    for (const std::string word : {" hi", " hit", "\xC3\xA9 hi"}) {
      EXPECT_EQ(ids_of(model, word, true), ids_of(model, bytes_to_byte_level(word)));
    }
    EXPECT_EQ(ids_of(model, " hit", true), (Ids{257, 't'}));
    EXPECT_EQ(ids_of(model, "\xC3\xA9", true), (Ids{0xC3, 0xA9}));
  }
}

TEST(Bpe, ManyThreadsShareTheCache) {
  const BpeModel model(byte_level_vocabulary(), {{"\xC4\xA0", "h"}, {"\xC4\xA0h", "i"}}, {}, "test");
  std::vector<std::thread> threads;
  std::vector<int> wrong(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        const std::string word = " hi" + std::to_string(i % 300);
        auto ids = ids_of(model, word, true);
        Ids expected{257};
        for (char c : std::to_string(i % 300)) expected.push_back(c);
        wrong[t] += ids != expected;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong, (std::vector<int>{0, 0, 0, 0}));
}

TEST(Bpe, RefusesMergesOutsideTheVocabulary) {
  EXPECT_EQ(testing::error_of([] { BpeModel({{"a", 0}, {"b", 1}}, {{"a", "b"}}, {}, "tokenizer.json model (BPE)"); }),
            "tokenizer.json model (BPE): merge 0 ('a' 'b') uses 'ab', which is not in the vocabulary");
  BpeOptions unk;
  unk.unk_token = "<unk>";
  EXPECT_EQ(testing::error_of([&] { BpeModel({{"a", 0}}, {}, unk, "m"); }), "m: unk_token '<unk>' is not in the vocabulary");
}

}  // namespace
}  // namespace strata::text
