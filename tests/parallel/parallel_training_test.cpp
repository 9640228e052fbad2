// Acceptance of each kind of parallelism: a few AdamW steps (gradient accumulation, clipping,
// warmup) on 2-4 ranks over Gloo give the losses, gradients and weights of the same training in
// one process, within 1e-5.
#include <gtest/gtest.h>

#include "parallel/rank_harness.h"
#include "parallel/training_comparison.h"
#include "strata/parallel/grad_sync.h"

namespace strata {
namespace {

using testing::compare_training;
using testing::expect_same_training;
using testing::run_ranks;

std::shared_ptr<TransformerConfig> gpt(const std::string& pattern) {
  auto c = testing::tiny_gpt(pattern);
  c->add_bias_linear = true;  // biases of both linear kinds are split (column) or whole (row)
  return c;
}

std::shared_ptr<TransformerConfig> moe(const std::string& pattern) {
  auto c = gpt(pattern);
  c->add_bias_linear = false;  // grouped experts carry no bias
  c->num_moe_experts = 4;
  c->moe_router_topk = 2;
  c->moe_ffn_hidden_size = 16;
  c->moe_shared_expert_intermediate_size = 16;
  return c;
}

TEST(DataParallel, TrainingMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {}, gpt("[*-][*-]"));
    expect_same_training(c);
  });
}

// Multi-token prediction's losses are averaged over data-parallel ranks like the main loss.
TEST(DataParallel, MultiTokenPredictionMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {}, gpt("[*-][*-]/[*-]/[*-]"));
    ASSERT_EQ(c.single.steps.back().mtp_losses.size(), 2u);
    expect_same_training(c);
  });
}

// The buckets' all-reduces start from the gradient hooks while backward still runs.
TEST(DataParallel, BucketsStartDuringBackward) {
  run_ranks(2, [](parallel::World& world) {
    auto config = std::shared_ptr<const TransformerConfig>(gpt("[*-][*-]"));
    at::manual_seed(3);
    auto pg = parallel::make_process_groups(world, {});
    auto model = parallel::build_parallel_language_model(config, pg);
    parallel::GradientSync sync(*model, /*bucket_bytes=*/1024);
    ASSERT_GT(sync.num_buckets(), 3u);
    sync.prepare_backward(true);
    auto ids = at::randint(0, config->vocab_size, {2, 8});
    model->forward(ids).pow(2).mean().backward();
    EXPECT_GT(sync.buckets_started_in_backward(), 0u);
    sync.finish();
  });
}

TEST(TensorParallel, TrainingMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {.tensor_parallel = 2}, gpt("[*-][*-]"));
    expect_same_training(c);
  });
}

TEST(TensorParallel, SequenceParallelTrainingMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {.tensor_parallel = 2, .sequence_parallel = true}, gpt("[*-][*-]"));
    expect_same_training(c);
  });
}

TEST(PipelineParallel, OneFOneBTrainingMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    // Three stages' worth of layers on two stages as the pattern's '|' says, four micro-batches.
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("*-*|-*-"), /*micro_batch_size=*/1,
                              /*accumulation=*/4);
    expect_same_training(c);
  });
}

TEST(ExpertParallel, TrainingMatchesOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {.expert_parallel = 2}, moe("[*E][*-]"));
    expect_same_training(c);
  });
}

}  // namespace
}  // namespace strata
