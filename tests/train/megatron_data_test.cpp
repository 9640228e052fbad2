#include "strata/train/megatron_data.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "strata/io/megatron_indexed_writer.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

const fs::path kFixture = fs::path(STRATA_TEXT_FIXTURES_DIR) / "megatron_indexed";
constexpr int64_t kFixtureVocab = 1024;  // 1021 BPE tokens and three special ones; EOD is 1021

// What Megatron-LM's own dataset code serves on the fixture (scripts/megatron_reference_samples.py).
TEST(MegatronData, ServesMegatronsSamplesInMegatronsOrder) {
  std::ifstream in(kFixture / "megatron_samples.json");
  const auto reference = nlohmann::json::parse(in);
  ASSERT_EQ(reference["configs"].size(), 4u);
  for (const auto& config : reference["configs"]) {
    std::vector<std::string> words;
    for (const auto& w : config["data"]) {
      const std::string word = w;
      words.push_back(std::isdigit(static_cast<unsigned char>(word[0])) ? word : (kFixture / word).string());
    }
    MegatronDataSpec spec;
    spec.blend = parse_blend(words);
    spec.split = config["split"];
    spec.seq_length = config["seq_length"];
    spec.train_samples = config["train_samples"];
    spec.seed = config["seed"];
    spec.vocab_size = kFixtureVocab;
    MegatronData data(spec);
    const std::string name = config["name"];
    EXPECT_EQ(data.train_samples(), config["train_size"].get<int64_t>()) << name;
    for (const auto& [index, tokens] : config["train"].items())
      EXPECT_EQ(data.train_sample(std::stoull(index)), tokens.get<std::vector<int64_t>>()) << name << " sample " << index;
    if (!config.contains("held_out")) continue;
    EXPECT_EQ(data.held_out_samples(), config["held_out_size"].get<int64_t>()) << name;
    for (const auto& [index, tokens] : config["held_out"].items())
      EXPECT_EQ(data.held_out_sample(std::stoull(index)), tokens.get<std::vector<int64_t>>())
          << name << " held-out sample " << index;
  }
}

// Documents C [4 5 6 9], B [3 9], A [1 2 9] in that order (seed 0 shuffles [A, B, C] to
// [C, B, A]); samples of 4 (+ 1) tokens: [4 5 6 9 3] and [3 9 1 2 9], served in that order.
class HandMadeData : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("megatron_data");
    fs::create_directories(dir_);
    prefix_ = (dir_ / "docs").string();
    io::MegatronIndexedWriter writer(prefix_, io::MegatronDType::uint16);
    for (const auto& doc : std::vector<std::vector<int64_t>>{{1, 2, 9}, {3, 9}, {4, 5, 6, 9}})
      writer.add_document(doc, {static_cast<int32_t>(doc.size())});
    writer.finish();
    spec_.blend.prefixes = {prefix_};
    spec_.split = "1";
    spec_.seq_length = 4;
    spec_.train_samples = 2;
    spec_.seed = 0;
    spec_.vocab_size = 10;
    spec_.eod_token_id = 9;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string prefix_;
  MegatronDataSpec spec_;
};

TEST_F(HandMadeData, RowsAreTheSamplesFirstTokens) {
  MegatronData data(spec_);
  EXPECT_EQ(data.train_sample(0), (std::vector<int64_t>{4, 5, 6, 9, 3}));
  EXPECT_EQ(data.train_sample(1), (std::vector<int64_t>{3, 9, 1, 2, 9}));
  const auto batch = data.next(2, 4);
  EXPECT_TRUE(at::equal(batch.input_ids, at::tensor({4, 5, 6, 9, 3, 9, 1, 2}, at::kLong).view({2, 4})));
  EXPECT_TRUE(at::equal(batch.labels, batch.input_ids));
  EXPECT_EQ(data.position(), 2u);
  // Past the samples it was built for, the order starts again.
  EXPECT_TRUE(at::equal(data.next(1, 4).input_ids, batch.input_ids.narrow(0, 0, 1)));
}

TEST_F(HandMadeData, EodMaskLossDropsThePredictionMadeAtEachEod) {
  spec_.eod_mask_loss = true;
  MegatronData data(spec_);
  const auto batch = data.next(2, 4);
  // Row 1 is [3 9 1 2]: the prediction at the EOD (of token 1, labels[2]) carries no loss. Row 0's
  // EOD is its last token, whose prediction is outside the row.
  EXPECT_TRUE(at::equal(batch.labels, at::tensor({4, 5, 6, 9, 3, 9, -100, 2}, at::kLong).view({2, 4})));
}

TEST_F(HandMadeData, SeekReproducesTheStream) {
  MegatronData data(spec_);
  data.next(1, 4);
  const auto second = data.next(1, 4);
  MegatronData resumed(spec_);
  resumed.seek(1);
  EXPECT_TRUE(at::equal(resumed.next(1, 4).input_ids, second.input_ids));
}

TEST_F(HandMadeData, RefusalsNameTheValues) {
  spec_.eod_mask_loss = true;
  spec_.eod_token_id.reset();
  EXPECT_NE(error_of([&] { MegatronData data(spec_); }).find("--eod-mask-loss: give the end-of-document token's id"),
            std::string::npos);
  spec_.eod_token_id = 9;
  spec_.vocab_size = 6;
  EXPECT_NE(error_of([&] { MegatronData data(spec_); }).find("--eod-token-id 9: outside the vocabulary"),
            std::string::npos);
  spec_.eod_mask_loss = false;
  spec_.eod_token_id.reset();
  MegatronData small_vocab(spec_);
  EXPECT_NE(error_of([&] { small_vocab.next(1, 4); }).find("docs.bin: token 6 at position 2 of sequence 2 is outside "
                                                             "the vocabulary (--vocab-size 6)"),
            std::string::npos);
  spec_.vocab_size = 10;
  MegatronData data(spec_);
  EXPECT_NE(error_of([&] { data.next(1, 8); }).find("--seq-length 8: the samples of " + prefix_ +
                                                    " were built for --seq-length 4"),
            std::string::npos);
  // "1" leaves nothing to evaluate on.
  EXPECT_NO_THROW(data.check_fits(4, false));
  EXPECT_NE(error_of([&] { data.check_fits(4, true); })
                .find("--split 1: the held-out (valid) split holds no sample of --seq-length 4 + 1 tokens (" + prefix_ +
                      ": 0 of 3 sequences, 0 tokens)"),
            std::string::npos);
}

TEST_F(HandMadeData, IdentityReopensTheSameDataAndRefusesAChangedFile) {
  MegatronData data(spec_);
  const auto identity = data.identity();
  EXPECT_EQ(identity["kind"], "megatron");
  EXPECT_EQ(identity["datasets"][0]["bin_size"], 18);  // 9 uint16 tokens
  EXPECT_EQ(identity["train_samples"], 2);
  auto reopened = open_data_source(identity, "checkpoint");
  EXPECT_TRUE(at::equal(reopened->next(2, 4).input_ids, data.next(2, 4).input_ids));
  EXPECT_EQ(reopened->identity(), identity);
  std::ofstream(prefix_ + ".bin", std::ios::binary | std::ios::app) << "xx";
  EXPECT_NE(error_of([&] { open_data_source(identity, "checkpoint"); }).find("changed since this run read it"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::train
