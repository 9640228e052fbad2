#pragma once
// A canonical checkpoint does not depend on the parallel layout: one process's checkpoint loads
// into `layout` with every tensor whole and the same logits (on the last pipeline stage), and
// what that layout saves loads back into one process giving the very same logits. Each rank holds
// `model_chunks` model chunks (virtual pipeline stages).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "parallel/training_comparison.h"
#include "strata/model/checkpoint.h"

namespace strata::testing {

inline void expect_checkpoints_cross_layout(parallel::World& world, std::shared_ptr<const TransformerConfig> config,
                                            const parallel::ParallelLayout& layout, int model_chunks = 1) {
  const auto dir = std::filesystem::temp_directory_path() / ("strata_layout_" + std::string(std::getenv("MASTER_PORT")));
  const auto ids = at::randint(0, config->vocab_size, {2, 8}, at::make_generator<at::CPUGeneratorImpl>(4), at::kLong);
  auto pg = parallel::make_process_groups(world, layout);

  at::manual_seed(1);
  auto single = build_language_model(config);
  const auto reference = single->forward(ids);
  if (world.rank() == 0) save_model_weights(*single, dir / "single");
  parallel::barrier(pg.world, "test barrier");

  at::manual_seed(2);
  auto part = parallel::build_parallel_language_model(config, pg);
  ASSERT_EQ(part->num_model_chunks(), model_chunks);
  parallel::load_parallel_model_weights(*part, dir / "single");
  const auto whole = parallel::gather_canonical_state_dict(*part);
  const auto expected = single->canonical_state_dict();
  ASSERT_EQ(whole.size(), expected.size());
  for (const auto& [name, t] : expected) EXPECT_TRUE(at::equal(whole.at(name), t)) << name;
  const auto logits = pipeline_logits(*part, ids);
  if (pg.pp_rank() == pg.pp_size() - 1) {
    EXPECT_LT((logits - reference).abs().max().item<double>(), 1e-5);
  } else {
    EXPECT_FALSE(logits.defined());
  }

  parallel::save_parallel_model_weights(*part, dir / "parallel");
  at::manual_seed(3);
  auto reloaded = build_language_model(config);
  load_model_weights(*reloaded, dir / "parallel");
  EXPECT_TRUE(at::equal(reloaded->forward(ids), reference));

  parallel::barrier(pg.world, "test barrier");
  if (world.rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace strata::testing
