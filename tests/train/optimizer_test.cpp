#include "strata/train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "strata/core/error.h"

#include "strata/train/lr_schedule.h"
#include "strata/train/plot.h"

namespace strata::train {
namespace {

TEST(AdamW, OneStepMatchesTheFormulaAndSkipsDecayForVectors) {
  auto w = at::full({2, 2}, 1.0).requires_grad_(true);
  auto b = at::full({2}, 1.0).requires_grad_(true);
  AdamW opt({{"w", w}, {"b", b}}, {.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.5});
  EXPECT_TRUE(opt.decays("w"));
  EXPECT_FALSE(opt.decays("b"));
  w.mutable_grad() = at::full({2, 2}, 2.0);
  b.mutable_grad() = at::full({2}, 2.0);
  opt.step(0.1);
  // Bias-corrected first step: update = g / (|g| + eps) = 1; decay multiplies by 1 - lr * wd.
  const double expected_w = 1.0 * (1.0 - 0.1 * 0.5) - 0.1 * 2.0 / (2.0 + 1e-8);
  const double expected_b = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8);
  EXPECT_NEAR(w[0][0].item<double>(), expected_w, 1e-6);
  EXPECT_NEAR(b[0].item<double>(), expected_b, 1e-6);
}

TEST(AdamW, StateRoundTripsAndChecksNames) {
  auto w = at::randn({3, 3}).requires_grad_(true);
  AdamW a({{"w", w}}, {});
  w.mutable_grad() = at::randn({3, 3});
  a.step(0.01);
  AdamW b({{"w", w}}, {});
  b.load_state(a.state(), "test");
  EXPECT_EQ(b.steps(), 1);
  EXPECT_TRUE(at::equal(b.state().at("exp_avg.w"), a.state().at("exp_avg.w")));
  AdamW other({{"v", w}}, {});
  EXPECT_THROW(other.load_state(a.state(), "test"), Error);
}

TEST(CosineSchedule, WarmsUpThenDecaysToMin) {
  CosineSchedule s{.lr = 1.0, .min_lr = 0.1, .warmup_iters = 4, .decay_iters = 14};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_NEAR(s.at(9), 0.55, 1e-12);  // halfway: min + (lr - min) / 2
  EXPECT_DOUBLE_EQ(s.at(14), 0.1);
  EXPECT_DOUBLE_EQ(s.at(100), 0.1);
}

TEST(PlotMetrics, DrawsLossAndAccuracyCurves) {
  auto path = std::filesystem::temp_directory_path() / ("strata_plot_" + std::to_string(::getpid()) + ".jsonl");
  std::ofstream(path) << "{\"step\":1,\"loss\":4.0,\"accuracy\":0.1}\n{\"step\":2,\"loss\":3.0,\"accuracy\":0.3}\n"
                      << "{\"step\":2,\"eval_loss\":3.2,\"eval_accuracy\":0.25}\n";
  auto svg = plot_metrics_svg(path.string());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t polylines = 0;
  for (auto pos = svg.find("<polyline"); pos != std::string::npos; pos = svg.find("<polyline", pos + 1)) ++polylines;
  EXPECT_EQ(polylines, 4u);  // train + held-out, in each of the two panels
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata::train
