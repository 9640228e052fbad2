// The training loop's early stops: a checkpoint at the boundary where the run stopped, no final
// evaluation, and a resume that continues from there.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "strata/model/build_model.h"
#include "strata/train/default_run.h"
#include "strata/train/train_checkpoint.h"
#include "strata/train/trainer.h"
#include "test_util.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;


std::shared_ptr<LanguageModel> tiny_model() {
  auto c = default_model_config();
  c.hidden_size = 32;
  c.ffn_hidden_size = 64;
  c.kv_channels = 8;
  at::manual_seed(3);
  return build_language_model(std::make_shared<const TransformerConfig>(c));
}

TrainOptions tiny_options(int64_t iters, const fs::path& save) {
  TrainOptions o;
  o.train_iters = iters;
  o.micro_batch_size = 2;
  o.seq_length = 32;
  o.eval_iters = 1;
  o.progress = false;
  o.save = save.string();
  return o;
}

// Associative recall that receives SIGTERM while the step that reads batch `signal_at` runs.
class SignalledData : public MqarData {
 public:
  explicit SignalledData(int64_t signal_at) : MqarData(64, 4, 5), signal_at_(signal_at) {}
  Batch next(int64_t batch_size, int64_t seq_length) override {
    if (++calls_ == signal_at_) ::raise(SIGTERM);
    return MqarData::next(batch_size, seq_length);
  }

 private:
  int64_t signal_at_, calls_ = 0;
};

TEST(TrainerStop, SigtermSavesTheStepItInterruptedAndResumesAfterIt) {
  const auto dir = testing::fresh_temp_dir("stop_sigterm");
  auto model = tiny_model();
  SignalledData data(3);
  const auto result = train(*model, data, tiny_options(50, dir));
  EXPECT_EQ(result.stop.reason, StopReason::signal);
  EXPECT_EQ(result.stop.exit_code(), 143);
  EXPECT_EQ(result.stop.iteration, 3);
  ASSERT_EQ(result.steps.size(), 3u);  // the step under way when the signal came was finished
  EXPECT_TRUE(result.evals.empty());   // no final evaluation for a run that did not finish
  EXPECT_EQ(latest_iteration(dir), 3);

  auto resumed_model = tiny_model();
  MqarData resumed_data(64, 4, 5);
  auto options = tiny_options(5, dir);
  options.load = dir.string();
  options.lr_decay_iters = 50;  // the interrupted run's schedule: a resumed run must not change it
  const auto resumed = train(*resumed_model, resumed_data, options);
  EXPECT_FALSE(resumed.stop.stopped());
  ASSERT_EQ(resumed.steps.size(), 2u);
  EXPECT_EQ(resumed.steps.front().step, 4);
  EXPECT_EQ(latest_iteration(dir), 5);
  fs::remove_all(dir);
}

TEST(TrainerStop, ExitIntervalStopsWithExitCode0AtAPeriodicSave) {
  const auto dir = testing::fresh_temp_dir("stop_interval");
  auto model = tiny_model();
  MqarData data(64, 4, 5);
  auto options = tiny_options(10, dir);
  options.exit_interval = 4;
  options.save_interval = 2;
  const auto result = train(*model, data, options);
  EXPECT_EQ(result.stop.reason, StopReason::interval);
  EXPECT_EQ(result.stop.exit_code(), 0);
  EXPECT_EQ(result.stop.iteration, 4);
  EXPECT_EQ(result.steps.size(), 4u);
  EXPECT_EQ(latest_iteration(dir), 4);
  fs::remove_all(dir);
}

TEST(TrainerStop, AStopConditionAtTheLastIterationLetsTheRunFinish) {
  const auto dir = testing::fresh_temp_dir("stop_last");
  auto model = tiny_model();
  MqarData data(64, 4, 5);
  auto options = tiny_options(4, dir);
  options.exit_interval = 4;
  const auto result = train(*model, data, options);
  EXPECT_FALSE(result.stop.stopped());
  ASSERT_EQ(result.evals.size(), 1u);  // the final evaluation ran
  EXPECT_EQ(latest_iteration(dir), 4);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::train
