// The training loop end to end: loss falls, resume is exact, checkpoints survive a crash.
#include "strata/train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "strata/core/error.h"

#include "strata/model/build_model.h"
#include "strata/train/default_run.h"
#include "strata/train/train_checkpoint.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;


std::shared_ptr<LanguageModel> small_model(uint64_t seed, double dropout = 0.0) {
  auto c = default_model_config();
  c.hidden_size = 32;
  c.ffn_hidden_size = 64;
  c.kv_channels = 8;
  c.hidden_dropout = dropout;
  at::manual_seed(seed);
  return build_language_model(std::make_shared<const TransformerConfig>(c));
}

TrainOptions quick_options(int64_t iters) {
  TrainOptions o;
  o.train_iters = iters;
  o.micro_batch_size = 8;
  o.seq_length = 32;
  o.lr_warmup_iters = 3;
  o.progress = false;
  o.eval_iters = 1;
  return o;
}

TEST(Trainer, LossFallsOnAssociativeRecall) {
  auto model = small_model(1);
  MqarData data(64, 4, 7);
  auto result = train(*model, data, quick_options(40));
  ASSERT_EQ(result.steps.size(), 40u);
  double first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += result.steps[i].loss, last += result.steps[35 + i].loss;
  EXPECT_LT(last, first - 0.5) << "mean loss of the first 5 steps " << first / 5 << ", last 5 " << last / 5;
  ASSERT_FALSE(result.evals.empty());
  EXPECT_EQ(result.evals.back().step, 40);
}

TEST(Trainer, GradientAccumulationEqualsOneLargeBatch) {
  // Two micro-batches of 4 accumulate to the gradient of one batch of 8 (mean losses). A large
  // Adam eps makes the update proportional to the gradient, so rounding noise in near-zero
  // gradients is not amplified to a full step.
  auto a = small_model(2), b = small_model(2);
  MqarData data_a(64, 4, 3), data_b(64, 4, 3);
  auto big = quick_options(3);
  big.adam.eps = 1.0;
  auto accumulated = big;
  accumulated.micro_batch_size = 4;
  accumulated.global_batch_size = 8;
  auto ra = train(*a, data_a, big);
  auto rb = train(*b, data_b, accumulated);
  for (const auto& [name, p] : a->canonical_state_dict())
    EXPECT_TRUE(at::allclose(p, b->canonical_state_dict().at(name), 1e-5, 1e-6)) << name;
  EXPECT_NEAR(ra.steps.back().loss, rb.steps.back().loss, 1e-5);
}

TEST(Trainer, ResumeContinuesBitwiseEqual) {
  // Dropout makes the RNG state matter; data position, optimizer state and LR schedule must too.
  auto uninterrupted_model = small_model(5, 0.1);
  MqarData uninterrupted_data(64, 4, 11);
  auto uninterrupted = train(*uninterrupted_model, uninterrupted_data, quick_options(12));

  const auto dir = testing::fresh_temp_dir("train_resume");
  {
    auto model = small_model(5, 0.1);
    MqarData data(64, 4, 11);
    auto first_half = quick_options(12);
    first_half.save = dir.string();
    first_half.save_interval = 6;
    // Stop after 6 of the 12 steps, as a killed run would (same LR schedule).
    first_half.train_iters = 6;
    first_half.lr_decay_iters = 12;
    train(*model, data, first_half);
  }
  auto resumed_model = small_model(99, 0.1);  // different init: everything must come from the checkpoint
  MqarData resumed_data(64, 4, 11);
  auto second_half = quick_options(12);
  second_half.load = dir.string();
  auto resumed = train(*resumed_model, resumed_data, second_half);

  ASSERT_EQ(resumed.steps.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(resumed.steps[i].step, uninterrupted.steps[6 + i].step);
    EXPECT_EQ(resumed.steps[i].loss, uninterrupted.steps[6 + i].loss) << "step " << resumed.steps[i].step;
  }
  for (const auto& [name, p] : uninterrupted_model->canonical_state_dict())
    EXPECT_TRUE(at::equal(p, resumed_model->canonical_state_dict().at(name))) << name;
  fs::remove_all(dir);
}

TEST(Trainer, AKilledSaveLeavesTheLastCheckpointLoadable) {
  const auto dir = testing::fresh_temp_dir("train_killed");
  auto model = small_model(3);
  MqarData data(64, 4, 1);
  auto o = quick_options(4);
  o.save = dir.string();
  train(*model, data, o);
  ASSERT_EQ(latest_iteration(dir), 4);
  // What a kill in the middle of saving iteration 8 leaves: a half-written temporary folder.
  fs::create_directories(dir / "iter_0000008.tmp-12345");
  std::ofstream(dir / "iter_0000008.tmp-12345" / "model.safetensors") << "trunc";
  EXPECT_EQ(latest_iteration(dir), 4);
  auto reloaded = small_model(4);
  AdamW optimizer(reloaded->canonical_state_dict(), {});
  auto state = load_training_checkpoint(dir, *reloaded, optimizer);
  EXPECT_EQ(state.iteration, 4);
  EXPECT_EQ(optimizer.steps(), 4);
  for (const auto& [name, p] : model->canonical_state_dict())
    EXPECT_TRUE(at::equal(p, reloaded->canonical_state_dict().at(name))) << name;
  fs::remove_all(dir);
}

TEST(Trainer, RecomputeGivesTheSameGradients) {
  auto model = small_model(8);
  MqarData data(64, 4, 2);
  auto batch = data.next(4, 32);
  auto grads = [&](bool recompute) {
    model->zero_grad();
    model->decoder().set_recompute(recompute);
    ForwardContext ctx;
    model->forward(batch.input_ids, ctx).square().mean().backward();
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, p] : model->canonical_state_dict()) out.emplace(name, p.grad().clone());
    return out;
  };
  auto plain = grads(false), recomputed = grads(true);
  for (const auto& [name, g] : plain) EXPECT_TRUE(at::equal(g, recomputed.at(name))) << name;
}

TEST(Trainer, BadOptionsNameTheFlag) {
  auto model = small_model(1);
  MqarData data(64, 4, 1);
  auto o = quick_options(2);
  o.global_batch_size = 12;
  try {
    train(*model, data, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--global-batch-size 12: must be a multiple of --micro-batch-size 8"),
              std::string::npos);
  }
}

TEST(Trainer, ANonFiniteLossStopsTheRunBeforeApplyingTheStep) {
  const auto dir = testing::fresh_temp_dir("train_diverged");
  auto model = small_model(6);
  MqarData data(64, 4, 6);
  auto o = quick_options(20);
  o.lr = 1e30;  // diverges within a few steps
  o.min_lr = 0.0;
  o.lr_warmup_iters = 0;
  o.clip_grad = 0.0;
  o.save = dir.string();
  o.save_interval = 1;
  std::string message;
  try {
    train(*model, data, o);
  } catch (const Error& e) {
    message = e.what();
  }
  ASSERT_NE(message.find("the run diverged"), std::string::npos) << message;
  // "step N: the loss is ...": the checkpoint of step N - 1 is the last one, and it is finite.
  const auto step = std::stoll(message.substr(message.find("step ") + 5));
  ASSERT_GE(step, 2);
  EXPECT_EQ(latest_iteration(dir), step - 1);
  auto reloaded = small_model(7);
  AdamW optimizer(reloaded->canonical_state_dict(), {});
  load_training_checkpoint(dir, *reloaded, optimizer);
  for (const auto& [name, p] : reloaded->canonical_state_dict())
    EXPECT_TRUE(at::isfinite(p).all().item<bool>()) << name;
  fs::remove_all(dir);
}

TEST(Trainer, EvalItersZeroMeansNoEvaluation) {
  auto model = small_model(1);
  MqarData data(64, 4, 1);
  auto o = quick_options(2);
  o.eval_iters = 0;
  o.eval_interval = 1;
  auto result = train(*model, data, o);
  EXPECT_EQ(result.steps.size(), 2u);
  EXPECT_TRUE(result.evals.empty());
}

TEST(Trainer, DataTooShortForTheHeldOutSplitIsRefusedBeforeTheFirstStep) {
  const auto dir = testing::fresh_temp_dir("train_short");
  fs::create_directories(dir);
  const std::vector<uint16_t> tokens(1000, 7);  // 50 held-out tokens
  std::ofstream(dir / "tokens.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  auto model = small_model(1);
  TokenFileData data(dir / "tokens.bin", 2, 64);
  auto o = quick_options(2);
  o.seq_length = 64;
  o.metrics = (dir / "metrics.jsonl").string();
  EXPECT_NE(testing::error_of([&] { train(*model, data, o); }).find("held-out split (the last 5% of the file) holds 50 tokens"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "metrics.jsonl"));  // no step ran
  o.eval_iters = 0;  // without evaluation the training split suffices
  EXPECT_EQ(train(*model, data, o).steps.size(), 2u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::train
