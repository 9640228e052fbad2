// Strict loading: dtypes must match or convert exactly, and every problem is listed at once.
#include "strata/model/state_dict.h"

#include <gtest/gtest.h>

#include "strata/core/error.h"
#include "test_util.h"

namespace strata {
namespace {

using TensorMap = std::map<std::string, at::Tensor>;

TEST(LoadNamedTensors, Bfloat16AndFloat16LoadIntoFloat32Exactly) {
  const TensorMap targets{{"w", at::zeros({3})}, {"v", at::zeros({2})}, {"step", at::zeros({}, at::kLong)}};
  load_named_tensors(targets,
                     {{"w", at::tensor({1.5f, -2.25f, 3.0e-3f}).to(at::kBFloat16)},
                      {"v", at::tensor({0.5f, 65504.0f}).to(at::kHalf)},
                      {"step", at::full({}, 7, at::kInt)}},
                     "bf16.safetensors");
  EXPECT_TRUE(at::equal(targets.at("w"), at::tensor({1.5f, -2.25f, 3.0e-3f}).to(at::kBFloat16).to(at::kFloat)));
  EXPECT_TRUE(at::equal(targets.at("v"), at::tensor({0.5f, 65504.0f})));
  EXPECT_EQ(targets.at("step").item<int64_t>(), 7);
}

TEST(LoadNamedTensors, InexactDtypesAreRefusedWithTheOtherProblemsAndNothingLoads) {
  const TensorMap targets{{"a.weight", at::zeros({2, 2})},
                          {"b.bias", at::zeros({2})},
                          {"c.index", at::zeros({3}, at::kLong)},
                          {"d.weight", at::zeros({4})}};
  const TensorMap tensors{{"a.weight", at::ones({2, 2}, at::kDouble)},
                          {"b.bias", at::ones({2}, at::kInt)},
                          {"c.index", at::ones({3}, at::kFloat)},
                          {"d.weight", at::ones({5})}};
  const std::string message = testing::error_of([&] { load_named_tensors(targets, tensors, "f64.safetensors"); });
  EXPECT_NE(message.find("cannot load f64.safetensors into the model:"), std::string::npos) << message;
  EXPECT_NE(message.find("wrongly shaped tensors (1):\n    d.weight (checkpoint [5], model [4])"), std::string::npos)
      << message;
  EXPECT_NE(message.find("wrongly typed tensors (a dtype that does not convert exactly) (3):\n"
                         "    a.weight (checkpoint Double, model Float)\n"
                         "    b.bias (checkpoint Int, model Float)\n"
                         "    c.index (checkpoint Float, model Long)"),
            std::string::npos)
      << message;
  for (const auto& [name, target] : targets) EXPECT_EQ(target.abs().sum().item<double>(), 0.0) << name;
}

}  // namespace
}  // namespace strata
