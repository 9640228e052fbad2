// HF checkpoints are mostly stored in bfloat16; strata's parameters are float32. Loading widens
// exactly (bfloat16 -> float32 keeps every value), so a bf16 copy of a fixture loads to the
// bf16-rounded weights of the float32 fixture.
#include <gtest/gtest.h>

#include <filesystem>

#include "strata/hf/architecture.h"
#include "strata/io/safetensors.h"
#include "test_util.h"

namespace strata::hf {
namespace {

namespace fs = std::filesystem;

// <fixture>/model with every floating tensor stored as bfloat16, in a fresh directory.
fs::path bf16_copy_of(const std::string& fixture) {
  const fs::path from = testing::fixture(fixture) + "/model";
  const fs::path to = fs::temp_directory_path() / cat("strata_bf16_", fixture, "_", ::getpid());
  fs::remove_all(to);
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json");
  auto tensors = io::CheckpointReader::open(from).load_all();
  for (auto& [name, tensor] : tensors)
    if (tensor.is_floating_point()) tensor = tensor.to(at::kBFloat16);
  io::save_checkpoint(to, tensors);
  return to;
}

TEST(HfBfloat16Checkpoint, LoadsAsTheRoundedFloat32Weights) {
  for (const std::string fixture : {"qwen3_dense", "qwen3_next", "nemotron_h", "deepseek_v32"}) {
    const auto dir = bf16_copy_of(fixture);
    const auto rounded = load_hf_model(dir).model->canonical_state_dict();
    const auto original = load_hf_model(testing::fixture(fixture) + "/model").model->canonical_state_dict();
    ASSERT_EQ(rounded.size(), original.size()) << fixture;
    int changed = 0;  // the bf16 copy really is rounded
    for (const auto& [name, tensor] : original) {
      changed += !at::equal(rounded.at(name), tensor);
      EXPECT_EQ(rounded.at(name).scalar_type(), tensor.scalar_type()) << fixture << " " << name;
      const auto expected = tensor.is_floating_point() ? tensor.to(at::kBFloat16).to(tensor.scalar_type()) : tensor;
      EXPECT_TRUE(at::equal(rounded.at(name), expected)) << fixture << " " << name;
    }
    EXPECT_GT(changed, 0) << fixture;
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace strata::hf
