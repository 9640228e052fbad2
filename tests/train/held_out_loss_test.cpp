// strata eval's number: the mean loss over every labelled held-out token. On the qwen3 fixture it
// is the loss HF computed on the same tokens, and the loss the model computes on them directly.
#include "strata/train/held_out_loss.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "strata/hf/architecture.h"
#include "strata/io/safetensors.h"
#include "strata/model/loss.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;

// A uint16 token file whose held-out split (its last 5 %) is exactly `held_out`'s rows.
fs::path token_file_ending_in(const at::Tensor& held_out, const std::string& name) {
  const auto tail = held_out.flatten();
  const int64_t total = tail.numel() * 20;
  std::vector<uint16_t> tokens(static_cast<size_t>(total), 7);
  for (int64_t i = 0; i < tail.numel(); ++i)
    tokens[static_cast<size_t>(total - tail.numel() + i)] = static_cast<uint16_t>(tail[i].item<int64_t>());
  const auto path = testing::fresh_temp_dir(name);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(tokens.data()),
                                               static_cast<std::streamsize>(tokens.size() * sizeof(uint16_t)));
  return path;
}

struct Qwen3Fixture {
  hf::HfModel hf = hf::load_hf_model(testing::fixture("qwen3_dense") + "/model");
  io::SafetensorsFile reference = io::SafetensorsFile::open(testing::fixture("qwen3_dense") + "/reference.safetensors");
  at::Tensor input_ids = reference.load("input_ids");  // [2, 100]
};

TEST(HeldOutLoss, IsHfsLossAndTheModelsOwnOnTheSameTokens) {
  Qwen3Fixture f;
  const auto path = token_file_ending_in(f.input_ids, "held_out_qwen3");
  TokenFileData data(path, 2, 256);
  ASSERT_EQ(data.held_out_sequences(100), 2);

  const auto result = held_out_loss(*f.hf.model, data, {.seq_length = 100, .batch_size = 2});
  EXPECT_EQ(result.sequences, 2);
  EXPECT_EQ(result.tokens, 2 * 99);
  EXPECT_NEAR(result.loss, f.reference.load("loss").item<double>(), 1e-5);  // HF's
  at::NoGradGuard no_grad;
  const double direct = causal_lm_loss(f.hf.model->forward(f.input_ids), f.input_ids).item<double>();
  EXPECT_NEAR(result.loss, direct, 1e-6);
  EXPECT_NEAR(result.perplexity, std::exp(direct), 1e-6 * std::exp(direct));

  // One sequence per batch: the same tokens, the same mean.
  const auto by_one = held_out_loss(*f.hf.model, data, {.seq_length = 100, .batch_size = 1});
  EXPECT_NEAR(by_one.loss, direct, 1e-6);
  fs::remove(path);
}

TEST(HeldOutLoss, EvalItersReadsThatManyBatchesWrappingAroundTheSplit) {
  Qwen3Fixture f;
  const auto path = token_file_ending_in(f.input_ids, "held_out_wrap");
  TokenFileData data(path, 2, 256);
  at::NoGradGuard no_grad;
  auto row_loss = [&](int64_t row) {
    const auto ids = f.input_ids.narrow(0, row, 1);
    return causal_lm_loss(f.hf.model->forward(ids), ids).item<double>();
  };
  // Three batches of one: rows 0, 1, then 0 again.
  const auto result = held_out_loss(*f.hf.model, data, {.seq_length = 100, .batch_size = 1, .batches = 3});
  EXPECT_EQ(result.sequences, 3);
  EXPECT_EQ(result.tokens, 3 * 99);
  EXPECT_NEAR(result.loss, (2 * row_loss(0) + row_loss(1)) / 3, 1e-6);
  fs::remove(path);
}

// Held-out batches with masked labels: each token counts once, whatever batch it is in.
class MaskedData : public RandomTokenData {
 public:
  MaskedData() : RandomTokenData(256) {}
  Batch held_out(int64_t index, int64_t batch_size, int64_t seq_length) const override {
    auto batch = RandomTokenData::held_out(index, batch_size, seq_length);
    if (index == 0) batch.labels.narrow(1, 1, seq_length / 2).fill_(-100);  // half of batch 0 masked
    return batch;
  }
};

TEST(HeldOutLoss, MaskedTokensDoNotCountAndEveryTokenWeighsTheSame) {
  Qwen3Fixture f;
  MaskedData data;
  const auto result = held_out_loss(*f.hf.model, data, {.seq_length = 20, .batch_size = 2, .batches = 2});
  at::NoGradGuard no_grad;
  auto summed = [&](int64_t index, int64_t& tokens) {
    const auto batch = data.held_out(index, 2, 20);
    const auto labelled = batch.labels.narrow(1, 1, 19).ne(-100).sum().item<int64_t>();
    tokens += labelled;
    return causal_lm_loss(f.hf.model->forward(batch.input_ids), batch.labels).item<double>() * double(labelled);
  };
  int64_t tokens = 0;
  const double sum = summed(0, tokens) + summed(1, tokens);
  EXPECT_EQ(tokens, 2 * 9 + 2 * 19);
  EXPECT_EQ(result.tokens, tokens);
  EXPECT_NEAR(result.loss, sum / double(tokens), 1e-6);
}

TEST(HeldOutLoss, RefusesASplitWithoutASequenceAndSyntheticDataWithoutACount) {
  Qwen3Fixture f;
  const auto path = token_file_ending_in(f.input_ids, "held_out_short");
  TokenFileData data(path, 2, 256);
  const auto short_split = testing::error_of([&] { held_out_loss(*f.hf.model, data, {.seq_length = 300, .batch_size = 2}); });
  EXPECT_NE(short_split.find("the held-out split holds no sequence of --seq-length 300"), std::string::npos) << short_split;
  RandomTokenData random(256);
  const auto unbounded = testing::error_of([&] { held_out_loss(*f.hf.model, random, {.seq_length = 8, .batch_size = 2}); });
  EXPECT_NE(unbounded.find("never repeats; give the number of batches (--eval-iters)"), std::string::npos) << unbounded;
  fs::remove(path);
}

}  // namespace
}  // namespace strata::train
