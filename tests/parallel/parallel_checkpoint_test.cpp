// Canonical checkpoints do not depend on the parallel layout: a single process's checkpoint loads
// into tensor-parallel 2 x pipeline-parallel 2, and what that layout saves loads back into a
// single process unchanged.
#include <gtest/gtest.h>

#include "parallel/checkpoint_across_layouts.h"
#include "parallel/rank_harness.h"

namespace strata {
namespace {

std::shared_ptr<const TransformerConfig> two_stage_gpt() {
  auto c = testing::tiny_gpt("[*-]|[*-]");
  c->add_bias_linear = true;
  return c;
}

TEST(ParallelCheckpoint, LoadsAndSavesAcrossLayouts) {
  testing::run_ranks(4, [](parallel::World& world) {
    testing::expect_checkpoints_cross_layout(world, two_stage_gpt(), {.tensor_parallel = 2, .pipeline_parallel = 2});
  });
}

// A checkpoint whose shapes do not fit is refused with every problem listed, on every rank.
TEST(ParallelCheckpoint, WrongCheckpointIsRefusedWithTheTensorsNamed) {
  testing::run_ranks(2, [](parallel::World& world) {
    const auto config = two_stage_gpt();
    auto pg = parallel::make_process_groups(world, {.tensor_parallel = 2});
    auto part = parallel::build_parallel_language_model(config, pg);
    auto whole = parallel::gather_canonical_state_dict(*part);
    whole.erase("decoder.layers.1.mlp.linear_fc1.weight");
    whole["decoder.layers.0.self_attention.linear_qkv.weight"] = at::zeros({7, config->hidden_size});
    whole["decoder.layers.9.mlp.linear_fc1.weight"] = at::zeros({2, 2});
    try {
      parallel::load_canonical_state_dict(*part, whole, "bad.safetensors");
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("cannot load bad.safetensors into the model"), std::string::npos) << message;
      EXPECT_NE(message.find("missing tensors (1):\n    decoder.layers.1.mlp.linear_fc1.weight"), std::string::npos)
          << message;
      EXPECT_NE(message.find("unexpected tensors (1):\n    decoder.layers.9.mlp.linear_fc1.weight"), std::string::npos)
          << message;
    }
  });
}

TEST(ParallelTraining, TensorSequenceAndPipelineTogetherMatchOneProcess) {
  testing::run_ranks(4, [](parallel::World& world) {
    auto config = testing::tiny_gpt("[*-]|[*-]");
    auto c = testing::compare_training(world, {.tensor_parallel = 2, .pipeline_parallel = 2, .sequence_parallel = true},
                                       config, /*micro_batch_size=*/2, /*accumulation=*/3);
    testing::expect_same_training(c);
  });
}

}  // namespace
}  // namespace strata
