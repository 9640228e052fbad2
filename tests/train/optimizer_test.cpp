#include "strata/train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "strata/core/error.h"

#include "strata/train/lr_schedule.h"
#include "strata/train/plot.h"
#include "test_util.h"

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

TEST(AdamW, StateOfInexactDtypesIsRefusedListingEveryProblem) {
  auto w = at::randn({3, 3}).requires_grad_(true);
  AdamW trained({{"w", w}}, {});
  w.mutable_grad() = at::randn({3, 3});
  trained.step(0.01);
  auto state = trained.state();
  state["exp_avg.w"] = state["exp_avg.w"].to(at::kDouble);
  state["step"] = at::full({}, 1.0, at::kFloat);
  state["exp_avg_sq.v"] = at::zeros({3});
  AdamW fresh({{"w", w}}, {});
  const std::string message = testing::error_of([&] { fresh.load_state(state, "optimizer.safetensors"); });
  EXPECT_NE(message.find("optimizer.safetensors: cannot load the optimizer state"), std::string::npos) << message;
  EXPECT_NE(message.find("unexpected tensors (1):\n    exp_avg_sq.v"), std::string::npos) << message;
  EXPECT_NE(message.find("wrongly typed tensors (a dtype that does not convert exactly) (2):\n"
                         "    exp_avg.w (checkpoint Double, expected Float)\n"
                         "    step (checkpoint Float, expected Long)"),
            std::string::npos)
      << message;
  EXPECT_EQ(fresh.steps(), 0);  // nothing loaded
  EXPECT_EQ(fresh.state().at("exp_avg.w").abs().sum().item<double>(), 0.0);
}

TEST(AdamW, Bfloat16MomentsAndAnInt32StepLoad) {
  auto w = at::randn({2, 2}).requires_grad_(true);
  AdamW fresh({{"w", w}}, {});
  const auto moment = at::tensor({0.5f, -0.25f, 1.0f, 2.0f}).view({2, 2});
  fresh.load_state({{"exp_avg.w", moment.to(at::kBFloat16)}, {"exp_avg_sq.w", moment.abs().to(at::kBFloat16)},
                    {"step", at::full({}, 12, at::kInt)}},
                   "bf16 state");
  EXPECT_EQ(fresh.steps(), 12);
  EXPECT_TRUE(at::equal(fresh.state().at("exp_avg.w"), moment));
  AdamW negative({{"w", w}}, {});
  EXPECT_NE(testing::error_of([&] {
              negative.load_state({{"exp_avg.w", moment}, {"exp_avg_sq.w", moment}, {"step", at::full({}, -1, at::kLong)}},
                                  "bad");
            }).find("bad: optimizer state step is -1"),
            std::string::npos);
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
