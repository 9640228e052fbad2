// hf-check's float64 judgement: a gradient that misses the tolerance against HF passes when HF's
// float32 reference itself misses strata's float64 truth by more, by no more than float32 rounding
// does, and strata is as close to that truth. qwen3_next's Gated DeltaNet A_log and dt_bias
// gradients are such sums with heavy cancellation (their norm ~1e-6).
#include <gtest/gtest.h>

#include "strata/hf/hf_check.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

namespace fs = std::filesystem;

const Float64Judgement* judged(const HfCheckResult& result, const std::string& name) {
  for (const auto& j : result.float64_judged)
    if (j.name == name) return &j;
  return nullptr;
}

// On the CPU, at a tolerance of 1e-5 (there strata follows HF's float32 formulation to 1.7e-5),
// the Gated DeltaNet decay gradients miss it; HF's own values are 8.7e-3 (layer 0's A_log) off the
// float64 truth, strata's float32 CPU as much: excused, every other gradient still against HF.
// (On CUDA, at hf-check's 1e-3, HfQwen3Next.MatchesLogitsLossAndEveryGradient is the same case.)
TEST(HfCheckFloat64, GradientsTheReferenceCannotResolveAreJudgedAgainstFloat64) {
  auto result = hf_check(testing::fixture("qwen3_next"), at::kCPU, {.grad_rel = 1e-5});
  const auto* a_log = judged(result, "model.layers.0.linear_attn.A_log");
  ASSERT_NE(a_log, nullptr);
  EXPECT_GT(a_log->reference_error, 5e-3);
  EXPECT_LT(a_log->reference_error, 2e-2);
  EXPECT_LT(a_log->strata_error, 2 * a_log->reference_error);
  EXPECT_TRUE(a_log->pass);
  ASSERT_NE(judged(result, "model.layers.0.linear_attn.dt_bias"), nullptr);
  for (const auto& j : result.float64_judged) {
    EXPECT_TRUE(j.pass) << j.name << " reference " << j.reference_error << " strata " << j.strata_error;
    EXPECT_NE(j.name.find("linear_attn."), std::string::npos) << j.name;
  }
  EXPECT_LE(result.grad_rel_max, 1e-5);
  EXPECT_TRUE(result.pass);
  EXPECT_NE(summary_line(result).find("within the reference's float32 error) PASS"), std::string::npos)
      << summary_line(result);
}

// A reference off by more than float32 rounding explains (A_log's gradient 5% larger) is not excused.
TEST(HfCheckFloat64, AReferenceOffByMoreThanRoundingStillFails) {
  const auto dir = testing::fresh_temp_dir("hf_check_float64");
  fs::create_directories(dir);
  fs::create_directory_symlink(fs::absolute(testing::fixture("qwen3_next") + "/model"), dir / "model");
  auto reference = io::SafetensorsFile::open(testing::fixture("qwen3_next") + "/reference.safetensors");
  std::map<std::string, at::Tensor> tensors;
  for (const auto& name : reference.names()) tensors.emplace(name, reference.load(name));
  tensors["grad.model.layers.0.linear_attn.A_log"] = tensors["grad.model.layers.0.linear_attn.A_log"] * 1.05;
  io::save_safetensors(dir / "reference.safetensors", tensors);

  auto result = hf_check(dir, testing::test_device());
  const auto* a_log = judged(result, "model.layers.0.linear_attn.A_log");
  ASSERT_NE(a_log, nullptr);
  EXPECT_GT(a_log->reference_error, 2 * a_log->float32_error);
  EXPECT_FALSE(a_log->pass);
  EXPECT_GT(result.grad_rel_max, 1e-2);
  EXPECT_FALSE(result.pass);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace strata::hf
