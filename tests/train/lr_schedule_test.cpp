// Megatron's learning-rate schedules (OptimizerParamScheduler), value by value, and a run's
// schedule from its iteration- or sample-based options.
#include "strata/train/lr_schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "strata/train/trainer.h"
#include "test_util.h"

namespace strata::train {
namespace {

LrSchedule schedule(LrDecayStyle style) {
  return {.style = style, .lr = 1.0, .min_lr = 0.1, .warmup_iters = 4, .decay_iters = 14};
}

TEST(LrSchedule, CosineWarmsUpThenDecaysToMin) {
  const auto s = schedule(LrDecayStyle::Cosine);
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);  // the first of 4 warmup iterations
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);  // halfway: min + (lr - min) / 2
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.1);
}

TEST(LrSchedule, LinearDecaysEvenly) {
  const auto s = schedule(LrDecayStyle::Linear);
  EXPECT_DOUBLE_EQ(s.at(1), 0.5);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(6), 1.0 - 0.9 * 0.2, 1e-12);  // 2 of the 10 decay iterations
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  EXPECT_DOUBLE_EQ(s.at(15), 0.1);
}

TEST(LrSchedule, ConstantStaysAtLrAfterWarmup) {
  const auto s = schedule(LrDecayStyle::Constant);
  EXPECT_DOUBLE_EQ(s.at(2), 0.75);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_DOUBLE_EQ(s.at(1000), 1.0);
}

TEST(LrSchedule, InverseSquareRootFallsAsOneOverRootOfTheIteration) {
  auto s = schedule(LrDecayStyle::InverseSquareRoot);
  s.decay_iters = 1000;
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);     // sqrt(4 / 4)
  EXPECT_DOUBLE_EQ(s.at(16), 0.5);    // sqrt(4 / 16)
  EXPECT_DOUBLE_EQ(s.at(100), 0.2);   // sqrt(4 / 100)
  EXPECT_DOUBLE_EQ(s.at(900), 0.1);   // 0.0667, floored at min_lr
  EXPECT_DOUBLE_EQ(s.at(1001), 0.1);  // past the decay: min_lr
}

TEST(LrSchedule, WsdHoldsThenDecaysInItsLastIterations) {
  auto s = schedule(LrDecayStyle::WSD);
  s.decay_iters = 20;
  s.wsd_decay_iters = 8;  // anneals over iterations 12..20
  EXPECT_DOUBLE_EQ(s.at(2), 0.75);
  EXPECT_DOUBLE_EQ(s.at(12), 1.0);
  EXPECT_DOUBLE_EQ(s.at(20), 0.1);
  EXPECT_DOUBLE_EQ(s.at(21), 0.1);
  const double half = 0.9;  // lr - min_lr
  s.wsd_style = WsdDecayStyle::Exponential;
  EXPECT_NEAR(s.at(16), 0.1 + (2.0 * std::pow(0.5, 0.5) - 1.0) * half, 1e-12);
  s.wsd_style = WsdDecayStyle::Linear;
  EXPECT_NEAR(s.at(16), 0.1 + 0.5 * half, 1e-12);
  s.wsd_style = WsdDecayStyle::Cosine;
  EXPECT_NEAR(s.at(14), 0.1 + 0.5 * (std::cos(M_PI * 0.25) + 1.0) * half, 1e-12);
  s.wsd_style = WsdDecayStyle::MinusSqrt;
  EXPECT_NEAR(s.at(14), 0.1 + (1.0 - 0.5) * half, 1e-12);
}

TEST(LrSchedule, WarmupStartsFromTheInitialRate) {
  auto s = schedule(LrDecayStyle::Constant);
  s.warmup_init = 0.2;
  EXPECT_DOUBLE_EQ(s.at(0), 0.4);  // 0.2 + 0.8 / 4
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
}

TEST(LrSchedule, StylesAreSpelledAsMegatronSpellsThem) {
  for (const char* name : {"constant", "linear", "cosine", "inverse-square-root", "WSD"})
    EXPECT_EQ(to_string(parse_lr_decay_style(name, "--lr-decay-style")), name);
  for (const char* name : {"exponential", "linear", "cosine", "minus_sqrt"})
    EXPECT_EQ(to_string(parse_wsd_decay_style(name, "--lr-wsd-decay-style")), name);
  EXPECT_EQ(testing::error_of([] { parse_lr_decay_style("wsd", "--lr-decay-style"); }),
            "--lr-decay-style 'wsd': expected constant, linear, cosine, inverse-square-root or WSD");
}

TEST(LrScheduleOf, SampleLengthsBecomeIterationsOfTheGlobalBatch) {
  TrainOptions o;
  o.train_samples = 1000;
  o.lr_warmup_iters = 0;
  o.lr_warmup_samples = 50;
  o.lr_decay_samples = 900;
  o.lr_decay_style = "linear";
  const auto s = lr_schedule_of(o, 32);
  EXPECT_EQ(train_iterations(o, 32), 31);  // 1000 / 32, rounded down
  EXPECT_DOUBLE_EQ(s.warmup_iters, 50.0 / 32.0);
  EXPECT_DOUBLE_EQ(s.decay_iters, 900.0 / 32.0);
  EXPECT_EQ(s.style, LrDecayStyle::Linear);
  // Megatron's rate at iteration 10: 10 x 32 samples done of the decay after 50 warmup samples.
  EXPECT_NEAR(s.at(10), o.min_lr + (1.0 - (320.0 - 50.0) / (900.0 - 50.0)) * (o.lr - o.min_lr), 1e-15);
  o.train_samples = 16;
  EXPECT_EQ(testing::error_of([&] { train_iterations(o, 32); }),
            "--train-samples 16: fewer than one global batch of 32 sequences");
}

TEST(LrScheduleOf, WarmupFractionIsOfTheDecayLength) {
  TrainOptions o;
  o.train_iters = 200;
  o.lr_warmup_fraction = 0.01;
  const auto s = lr_schedule_of(o, 8);
  EXPECT_DOUBLE_EQ(s.decay_iters, 200.0);
  EXPECT_DOUBLE_EQ(s.warmup_iters, 2.0);
  EXPECT_EQ(train_iterations(o, 8), 200);
}

}  // namespace
}  // namespace strata::train
