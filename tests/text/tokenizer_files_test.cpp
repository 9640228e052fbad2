// The files that carry a tokenizer along with a model, under the names an HF folder gives them.
#include "strata/text/tokenizer_files.h"

#include <gtest/gtest.h>

#include "strata/text/tokenizer.h"

#include "test_util.h"

namespace strata::text {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> names_of(const std::vector<TokenizerFile>& files) {
  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.name);
  return names;
}

const fs::path kText = STRATA_TEXT_FIXTURES_DIR;

TEST(TokenizerFiles, TheTokenizerAndTheConfigBesideIt) {
  const auto folder = tokenizer_files("HuggingFaceTokenizer", kText / "bytelevel_bpe");
  EXPECT_EQ(names_of(folder), (std::vector<std::string>{"tokenizer.json", "tokenizer_config.json"}));
  EXPECT_EQ(folder[1].source, kText / "bytelevel_bpe" / "tokenizer_config.json");
  // A file given by its own path: the same files.
  EXPECT_EQ(names_of(tokenizer_files("HuggingFaceTokenizer", kText / "bytelevel_bpe" / "tokenizer.json")),
            names_of(folder));
  EXPECT_EQ(names_of(tokenizer_files("HuggingFaceTokenizer", kText / "bytes_bpe")),
            std::vector<std::string>{"tokenizer.json"});
  EXPECT_EQ(names_of(tokenizer_files("SentencePieceTokenizer", kText / "sentencepiece_bpe")),
            std::vector<std::string>{"tokenizer.model"});
}

// Megatron-Core builds GPTSentencePieceTokenizer and Llama2Tokenizer as SentencePieceTokenizer:
// the same file travels, and the same tokenizer reads it.
TEST(TokenizerFiles, MegatronsSentencePieceSpellingsAreOneTokenizer) {
  for (const char* type : {"GPTSentencePieceTokenizer", "Llama2Tokenizer"}) {
    EXPECT_EQ(names_of(tokenizer_files(type, kText / "sentencepiece_bpe")), std::vector<std::string>{"tokenizer.model"});
    const auto spelled = open_tokenizer(type, kText / "sentencepiece_bpe");
    const auto plain = open_tokenizer("SentencePieceTokenizer", kText / "sentencepiece_bpe");
    EXPECT_EQ(spelled->vocab_size(), plain->vocab_size());
    EXPECT_EQ(spelled->eod_id(), plain->eod_id());
    const std::string text = "Megatron's tokenizers, 123 of them.";
    EXPECT_EQ(spelled->encode(text, AddSpecialTokens::no), plain->encode(text, AddSpecialTokens::no));
  }
}

TEST(TokenizerFiles, AFileKeepsTheNameHfLooksFor) {
  const auto dir = testing::fresh_temp_dir("tokenizer_files");
  fs::create_directories(dir);
  fs::copy_file(kText / "bytes_bpe" / "tokenizer.json", dir / "my_vocab.json");
  const auto files = tokenizer_files("HuggingFaceTokenizer", dir / "my_vocab.json");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].source, dir / "my_vocab.json");
  EXPECT_EQ(files[0].name, "tokenizer.json");
  EXPECT_EQ(tokenizer_type_in(dir), std::nullopt);  // no tokenizer.json by that name
  fs::remove_all(dir);
}

TEST(TokenizerFiles, TheTypeInAFolderAndRefusals) {
  EXPECT_EQ(tokenizer_type_in(kText / "bytelevel_bpe"), "HuggingFaceTokenizer");
  EXPECT_EQ(tokenizer_type_in(kText / "sentencepiece_bpe"), "SentencePieceTokenizer");
  const auto missing = testing::error_of([] { tokenizer_files("SentencePieceTokenizer", kText / "bytes_bpe"); });
  EXPECT_NE(missing.find("the folder has no tokenizer.model"), std::string::npos) << missing;
  const auto unknown = testing::error_of([] { tokenizer_files("GPT2BPETokenizer", kText / "bytes_bpe"); });
  EXPECT_NE(unknown.find("--tokenizer-type 'GPT2BPETokenizer' is not supported"), std::string::npos) << unknown;
}

}  // namespace
}  // namespace strata::text
