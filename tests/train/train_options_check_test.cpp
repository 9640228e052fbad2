// check_train_options, the library's own check of every option before any work (a program that
// fills TrainOptions itself gets no flag validators): each bad value is refused with the flag's
// name and the value, and the defaults pass.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>

#include "strata/train/trainer.h"
#include "test_util.h"

namespace strata::train {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct BadOption {
  std::string starts;  // the flag and the value, as the error begins
  std::function<void(TrainOptions&)> set;
};

TEST(CheckTrainOptions, DefaultsPass) { EXPECT_NO_THROW(check_train_options(TrainOptions{})); }

TEST(CheckTrainOptions, EveryBadValueIsRefusedNamingTheFlagAndTheValue) {
  const std::vector<BadOption> cases = {
      {"--train-iters 0:", [](auto& o) { o.train_iters = 0; }},
      {"--train-iters -5:", [](auto& o) { o.train_iters = -5; }},
      {"--micro-batch-size 0:", [](auto& o) { o.micro_batch_size = 0; }},
      {"--global-batch-size -1:", [](auto& o) { o.global_batch_size = -1; }},
      {"--global-batch-size 24: must be a multiple of --micro-batch-size 16",
       [](auto& o) { o.global_batch_size = 24; }},
      {"--seq-length 1:", [](auto& o) { o.seq_length = 1; }},
      {"--lr nan:", [](auto& o) { o.lr = kNaN; }},
      {"--lr inf:", [](auto& o) { o.lr = kInf; }},
      {"--lr 0:", [](auto& o) { o.lr = 0.0; }},
      {"--lr -0.001:", [](auto& o) { o.lr = -1e-3; }},
      {"--min-lr nan:", [](auto& o) { o.min_lr = kNaN; }},
      {"--min-lr -inf:", [](auto& o) { o.min_lr = -kInf; }},
      {"--min-lr -1:", [](auto& o) { o.min_lr = -1.0; }},
      {"--min-lr 0.01: expected at most --lr 0.003", [](auto& o) { o.min_lr = 0.01; }},
      {"--lr-warmup-iters -1:", [](auto& o) { o.lr_warmup_iters = -1; }},
      {"--lr-decay-iters -1:", [](auto& o) { o.lr_decay_iters = -1; }},
      {"--weight-decay nan:", [](auto& o) { o.adam.weight_decay = kNaN; }},
      {"--weight-decay inf:", [](auto& o) { o.adam.weight_decay = kInf; }},
      {"--weight-decay -0.1:", [](auto& o) { o.adam.weight_decay = -0.1; }},
      {"--adam-beta1 1:", [](auto& o) { o.adam.beta1 = 1.0; }},
      {"--adam-beta1 -0.1:", [](auto& o) { o.adam.beta1 = -0.1; }},
      {"--adam-beta1 nan:", [](auto& o) { o.adam.beta1 = kNaN; }},
      {"--adam-beta2 1:", [](auto& o) { o.adam.beta2 = 1.0; }},
      {"--adam-beta2 -0.1:", [](auto& o) { o.adam.beta2 = -0.1; }},
      {"--adam-beta2 nan:", [](auto& o) { o.adam.beta2 = kNaN; }},
      {"--adam-eps 0:", [](auto& o) { o.adam.eps = 0.0; }},
      {"--adam-eps -1e-08:", [](auto& o) { o.adam.eps = -1e-8; }},
      {"--adam-eps nan:", [](auto& o) { o.adam.eps = kNaN; }},
      {"--adam-eps inf:", [](auto& o) { o.adam.eps = kInf; }},
      {"--clip-grad -1:", [](auto& o) { o.clip_grad = -1.0; }},
      {"--clip-grad nan:", [](auto& o) { o.clip_grad = kNaN; }},
      {"--clip-grad inf:", [](auto& o) { o.clip_grad = kInf; }},
      {"--save-interval -1:", [](auto& o) { o.save_interval = -1; }},
      {"--log-interval 0:", [](auto& o) { o.log_interval = 0; }},
      {"--eval-interval -1:", [](auto& o) { o.eval_interval = -1; }},
      {"--eval-iters -1:", [](auto& o) { o.eval_iters = -1; }},
      {"--exit-duration-in-mins -1:", [](auto& o) { o.exit_duration_in_mins = -1.0; }},
      {"--exit-duration-in-mins nan:", [](auto& o) { o.exit_duration_in_mins = kNaN; }},
      {"--exit-duration-in-mins inf:", [](auto& o) { o.exit_duration_in_mins = kInf; }},
      {"--exit-interval -1:", [](auto& o) { o.exit_interval = -1; }},
      {"grad_bucket_bytes 0:", [](auto& o) { o.grad_bucket_bytes = 0; }},
      {"--bf16: bfloat16 autocast runs on CUDA; this run is on cpu", [](auto& o) { o.bf16 = true; }},
      {"--finetune: give the checkpoint to start from with --load", [](auto& o) { o.finetune = true; }},
      {"--override-opt_param-scheduler: applies to a resumed run",
       [](auto& o) { o.override_opt_param_scheduler = true; }},
  };
  for (const auto& bad : cases) {
    TrainOptions o;
    bad.set(o);
    const auto message = testing::error_of([&] { check_train_options(o); });
    EXPECT_EQ(message.rfind(bad.starts, 0), 0u) << "expected the error to start with '" << bad.starts << "', got '"
                                                << message << "'";
  }
}

// The boundaries themselves are allowed: every count at 0 where 0 means "off", beta 0, clip 0.
TEST(CheckTrainOptions, TheBoundaryValuesPass) {
  TrainOptions o;
  o.global_batch_size = 32;
  o.seq_length = 2;
  o.min_lr = o.lr;
  o.lr_warmup_iters = o.lr_decay_iters = o.save_interval = o.eval_interval = o.eval_iters = o.exit_interval = 0;
  o.adam.weight_decay = o.adam.beta1 = o.adam.beta2 = o.clip_grad = o.exit_duration_in_mins = 0.0;
  EXPECT_NO_THROW(check_train_options(o));
}

}  // namespace
}  // namespace strata::train
