// Interleaved 1F1B over virtual pipeline stages, and uneven first/last stages: a few AdamW steps
// (gradient accumulation, clipping, warmup) on pipeline-parallel ranks over Gloo give the losses,
// gradients and weights of the same training in one process within 1e-5, and weights saved by
// pp 2 x vp 2 load into one process and the other way round.
#include <gtest/gtest.h>

#include "parallel/checkpoint_across_layouts.h"
#include "parallel/rank_harness.h"
#include "parallel/training_comparison.h"

namespace strata {
namespace {

using testing::compare_training;
using testing::expect_same_training;
using testing::run_ranks;

std::shared_ptr<TransformerConfig> gpt(const std::string& pattern) {
  auto c = testing::tiny_gpt(pattern);
  c->add_bias_linear = true;
  return c;
}

TEST(VirtualPipeline, PatternSegmentsTrainAsOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    // Four '|' segments on two pipeline ranks: two model chunks each (rank 0 holds segments 0
    // and 2), four micro-batches.
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("[*-]|*-|[*-]|*-"), /*micro_batch_size=*/1,
                              /*accumulation=*/4);
    EXPECT_EQ(c.model_chunks, 2);
    EXPECT_EQ(c.layers_here, world.rank() == 0 ? 2u : 4u);
    expect_same_training(c);
  });
}

TEST(VirtualPipeline, VirtualStagesFlagSplitsAPatternWithoutMarksEvenly) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("*-*-*-*-"), /*micro_batch_size=*/1,
                              /*accumulation=*/4, /*bucket_bytes=*/1024, {.num_virtual_stages_per_pipeline_rank = 2});
    EXPECT_EQ(c.model_chunks, 2);
    EXPECT_EQ(c.layers_here, 4u);
    expect_same_training(c);
  });
}

// Full recompute's block method counts from the start of each model chunk (each a stage of its
// own, as in Megatron): the first layer of every chunk reruns in backward, and training is unchanged.
TEST(VirtualPipeline, BlockRecomputePerChunkTrainsAsOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto config = gpt("*-*-*-*-");
    config->recompute_granularity = "full";
    config->recompute_method = "block";
    config->recompute_num_layers = 1;
    auto c = compare_training(world, {.pipeline_parallel = 2}, config, /*micro_batch_size=*/1, /*accumulation=*/2,
                              /*bucket_bytes=*/1024, {.num_virtual_stages_per_pipeline_rank = 2});
    EXPECT_EQ(c.model_chunks, 2);
    expect_same_training(c);
  });
}

// mHC streams travel between the chunks; the first chunk of rank 0 expands them, the last chunk
// of the last rank contracts them, and every layer recomputes its maps (selective "mhc" recompute).
TEST(VirtualPipeline, HybridLayersWithHyperConnectionsTrainAsOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto config = testing::tiny_gpt("[M-]|[G-]|[*-]|[G-]");
    testing::use_small_hybrid_mixers(*config);
    config->enable_mhc_connections = true;
    config->mhc_num_residual_streams = 2;
    config->recompute_granularity = "selective";
    config->recompute_modules = {"mhc"};
    auto c = compare_training(world, {.pipeline_parallel = 2}, config, /*micro_batch_size=*/1, /*accumulation=*/2);
    EXPECT_EQ(c.model_chunks, 2);
    expect_same_training(c);
  });
}

TEST(UnevenPipeline, FirstStageOfItsOwnSizeTrainsAsOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("*-*-*-"), /*micro_batch_size=*/1,
                              /*accumulation=*/3, /*bucket_bytes=*/1024, {.decoder_first_pipeline_num_layers = 2});
    EXPECT_EQ(c.model_chunks, 1);
    EXPECT_EQ(c.layers_here, world.rank() == 0 ? 2u : 4u);
    expect_same_training(c);
  });
}

TEST(UnevenPipeline, LastStageOfItsOwnSizeWithVirtualStagesTrainsAsOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    // Each virtual round: rank 0 two layers, rank 1 (the last) 2 / 2 = one.
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("*-*-*-"), /*micro_batch_size=*/1,
                              /*accumulation=*/2, /*bucket_bytes=*/1024,
                              {.num_virtual_stages_per_pipeline_rank = 2, .decoder_last_pipeline_num_layers = 2});
    EXPECT_EQ(c.model_chunks, 2);
    EXPECT_EQ(c.layers_here, world.rank() == 0 ? 4u : 2u);
    expect_same_training(c);
  });
}

// Data-parallel buckets over two chunks' parameters: each chunk's last backward starts its part.
TEST(VirtualPipeline, DataParallelOverVirtualStagesTrainsAsOneProcess) {
  run_ranks(4, [](parallel::World& world) {
    auto c = compare_training(world, {.pipeline_parallel = 2}, gpt("[*-]|[*-]|[*-]|[*-]"), /*micro_batch_size=*/1,
                              /*accumulation=*/2);
    EXPECT_EQ(c.model_chunks, 2);
    expect_same_training(c);
  });
}

// A chunk's gradients are whole after its own last backward, so its buckets start then, not all
// at the step's end: every bucket starts while backward runs.
TEST(VirtualPipeline, EachChunksLastBackwardStartsItsBuckets) {
  run_ranks(4, [](parallel::World& world) {
    auto config = std::shared_ptr<const TransformerConfig>(gpt("[*-]|[*-]|[*-]|[*-]"));
    auto pg = parallel::make_process_groups(world, {.pipeline_parallel = 2});
    auto model = parallel::build_parallel_language_model(config, pg);
    parallel::GradientSync sync(*model, /*bucket_bytes=*/1024);
    ASSERT_GT(sync.num_buckets(), 3u);
    const auto ids = at::randint(0, config->vocab_size, {1, 8}, at::make_generator<at::CPUGeneratorImpl>(4), at::kLong);
    parallel::forward_backward_1f1b(
        *model, 2,
        {.input_ids = [&](int64_t) { return ids; },
         .forward = [&](int chunk, const at::Tensor& input,
                        ForwardContext& ctx) { return model->forward_chunk(chunk, input, ctx); },
         .loss = [&](int64_t, const at::Tensor& logits) { return logits.pow(2).mean(); }},
        &sync);
    EXPECT_EQ(sync.buckets_started_in_backward(), sync.num_buckets());
    sync.finish();
  });
}

// Rank 0's second chunk receives sequence-split hidden states rather than token ids.
TEST(VirtualPipeline, TensorAndSequenceParallelOverVirtualStagesTrainAsOneProcess) {
  run_ranks(4, [](parallel::World& world) {
    auto c = compare_training(world, {.tensor_parallel = 2, .pipeline_parallel = 2, .sequence_parallel = true},
                              testing::tiny_gpt("[*-]|[*-]|[*-]|[*-]"), /*micro_batch_size=*/2, /*accumulation=*/2);
    EXPECT_EQ(c.model_chunks, 2);
    expect_same_training(c);
  });
}

TEST(VirtualPipeline, CheckpointsCrossBetweenVirtualStagesAndOneProcess) {
  run_ranks(2, [](parallel::World& world) {
    testing::expect_checkpoints_cross_layout(world, gpt("[*-]|*-|[*-]|*-"), {.pipeline_parallel = 2},
                                             /*model_chunks=*/2);
  });
}

}  // namespace
}  // namespace strata
