// Canonical checkpoints do not depend on the parallel layout: a single process's checkpoint loads
// into tensor-parallel 2 x pipeline-parallel 2, and what that layout saves loads back into a
// single process unchanged.
#include <gtest/gtest.h>

#include <filesystem>

#include "parallel/rank_harness.h"
#include "parallel/training_comparison.h"
#include "strata/model/checkpoint.h"

namespace strata {
namespace {

std::shared_ptr<const TransformerConfig> two_stage_gpt() {
  auto c = testing::tiny_gpt("[*-]|[*-]");
  c->add_bias_linear = true;
  return c;
}

TEST(ParallelCheckpoint, LoadsAndSavesAcrossLayouts) {
  testing::run_ranks(4, [](parallel::World& world) {
    const auto config = two_stage_gpt();
    const auto dir = std::filesystem::temp_directory_path() / ("strata_layout_" + std::string(std::getenv("MASTER_PORT")));
    const auto ids = at::randint(0, config->vocab_size, {2, 8}, at::make_generator<at::CPUGeneratorImpl>(4), at::kLong);
    auto pg = parallel::make_process_groups(world, {.tensor_parallel = 2, .pipeline_parallel = 2});

    at::manual_seed(1);
    auto single = build_language_model(config);
    const auto reference = single->forward(ids);
    if (world.rank() == 0) save_model_weights(*single, dir / "single");
    parallel::barrier(pg.world, "test barrier");

    // One process -> tp 2 x pp 2: every tensor arrives whole, the logits agree.
    at::manual_seed(2);
    auto part = parallel::build_parallel_language_model(config, pg);
    parallel::load_parallel_model_weights(*part, dir / "single");
    const auto whole = parallel::gather_canonical_state_dict(*part);
    const auto expected = single->canonical_state_dict();
    ASSERT_EQ(whole.size(), expected.size());
    for (const auto& [name, t] : expected) EXPECT_TRUE(at::equal(whole.at(name), t)) << name;
    const auto logits = testing::pipeline_logits(*part, ids);
    if (pg.pp_rank() == 1) {
      EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-5);
    } else {
      EXPECT_FALSE(logits.defined());
    }

    // tp 2 x pp 2 -> one process: the same tensors, so the very same logits.
    parallel::save_parallel_model_weights(*part, dir / "parallel");
    at::manual_seed(3);
    auto reloaded = build_language_model(config);
    load_model_weights(*reloaded, dir / "parallel");
    EXPECT_TRUE(at::equal(reloaded->forward(ids), reference));

    parallel::barrier(pg.world, "test barrier");
    if (world.rank() == 0) std::filesystem::remove_all(dir);
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
