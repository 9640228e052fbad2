#pragma once
// Trains one model twice from the same weights on the same data: whole in this process, and as
// this rank's part of a parallel layout; then reports the differences. Every rank computes the
// single-process reference itself (the models are tiny), so it can check its own results.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "strata/model/build_model.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/pipeline_split.h"
#include "strata/parallel/collectives.h"
#include "strata/parallel/layout.h"
#include "strata/parallel/model_state.h"
#include "strata/parallel/parallel_model.h"
#include "strata/parallel/pipeline.h"
#include "strata/train/trainer.h"
#include "test_util.h"

namespace strata::testing {

// A GPT small enough to train in milliseconds, its heads in 2 query groups (so tp 2 splits them).
inline std::shared_ptr<TransformerConfig> tiny_gpt(const std::string& pattern) {
  auto c = small_config();
  c->hybrid_layer_pattern = pattern;
  c->num_layers = parse_layer_pattern(pattern).num_canonical_layers();
  return c;
}

inline double max_abs_diff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b,
                           std::string* worst = nullptr) {
  EXPECT_EQ(a.size(), b.size());
  double out = 0.0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ADD_FAILURE() << "missing " << name;
      continue;
    }
    if (t.sizes() != it->second.sizes()) {
      ADD_FAILURE() << name << ": shape " << t.sizes() << " vs " << it->second.sizes();
      continue;
    }
    const double d = (t.to(at::kDouble) - it->second.to(at::kDouble)).abs().max().item<double>();
    if (d > out && worst) *worst = name;
    out = std::max(out, d);
  }
  return out;
}

// Gradients of the parameters under canonical names (tensors without one are left out).
inline std::map<std::string, at::Tensor> gradients(const LanguageModel& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : model.canonical_state_dict())
    if (t.grad().defined()) out.emplace(name, t.grad().detach().clone());
  return out;
}

// The whole model's gradients, gathered like its weights.
inline std::map<std::string, at::Tensor> gathered_gradients(const LanguageModel& model) {
  auto local = gradients(model);
  return parallel::exchange_over_pipeline(parallel::gather_named_shards(local, parallel::parameter_placements(model)),
                                          model.process_groups().pp);
}

struct TrainingComparison {
  train::TrainResult single, parallel;
  int model_chunks = 1;       // virtual pipeline stages on this rank
  size_t layers_here = 0;     // TransformerLayers on this rank, over all its chunks
  double weight_diff = 0.0, grad_diff = 0.0;
  std::string worst_weight, worst_grad;
};

inline train::TrainOptions small_training(int64_t micro_batch_size, int64_t global_batch_size) {
  train::TrainOptions o;
  o.train_iters = 3;
  o.micro_batch_size = micro_batch_size;
  o.global_batch_size = global_batch_size;
  o.seq_length = 8;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.lr_warmup_iters = 1;
  o.clip_grad = 0.5;  // small enough that it clips: the parallel norm is exercised
  // Adam divides by sqrt(v) + eps: with the default eps a gradient entry near zero turns rounding
  // noise (tensor parallel sums matmuls in another order) into a step of up to lr. A larger eps
  // keeps the weights comparable at 1e-5 while the gradients are compared exactly as they are.
  o.adam.eps = 1e-4;
  o.eval_iters = 1;
  o.progress = false;
  return o;
}

// micro_batch_size is per data-parallel rank; the single process reads dp times as many rows.
// `pipeline` holds Megatron's virtual-stage and uneven-stage flags for the parallel model.
inline TrainingComparison compare_training(parallel::World& world, const parallel::ParallelLayout& layout,
                                           std::shared_ptr<TransformerConfig> config, int64_t micro_batch_size = 2,
                                           int64_t accumulation = 2, int64_t bucket_bytes = 1024,
                                           const PipelineSplitFlags& pipeline = {}) {
  const int dp = parallel::data_parallel_size(layout, world.size());
  auto frozen = std::shared_ptr<const TransformerConfig>(config);
  at::manual_seed(5);
  auto single = build_language_model(frozen);
  std::map<std::string, at::Tensor> initial;
  for (const auto& [name, t] : single->canonical_state_dict()) initial.emplace(name, t.detach().clone());
  auto pg = parallel::make_process_groups(world, layout);
  const auto split = resolve_pipeline_split(resolve_layer_pattern(*frozen), layout.pipeline_parallel, pipeline);
  auto part = parallel::build_parallel_language_model(frozen, pg, split);
  parallel::load_canonical_state_dict(*part, initial, "the single-process model's initial weights");

  TrainingComparison out;
  out.model_chunks = part->num_model_chunks();
  out.layers_here = part->decoder().num_layers();
  train::RandomTokenData single_data(config->vocab_size), parallel_data(config->vocab_size);
  out.single = train::train(*single, single_data,
                            small_training(micro_batch_size * dp, micro_batch_size * dp * accumulation));
  auto options = small_training(micro_batch_size, micro_batch_size * dp * accumulation);
  options.grad_bucket_bytes = bucket_bytes;
  out.parallel = train::train(*part, parallel_data, options);
  out.weight_diff = max_abs_diff(single->canonical_state_dict(), parallel::gather_canonical_state_dict(*part),
                                 &out.worst_weight);
  out.grad_diff = max_abs_diff(gradients(*single), gathered_gradients(*part), &out.worst_grad);
  return out;
}

// The logits of the last stage (undefined elsewhere), through the pipeline's stages and chunks.
inline at::Tensor pipeline_logits(LanguageModel& model, const at::Tensor& ids) {
  at::Tensor logits;
  parallel::forward_only(model, 1,
                         {.input_ids = [&](int64_t) { return ids; },
                          .forward = [&](int chunk, const at::Tensor& input,
                                         ForwardContext& ctx) { return model.forward_chunk(chunk, input, ctx); },
                          .loss = [&](int64_t, const at::Tensor& out) { return logits = out; }});
  return logits;
}

// Losses, gradient norms and held-out results step by step, then weights and gradients.
inline void expect_same_training(const TrainingComparison& c, double tolerance = 1e-5) {
  ASSERT_EQ(c.single.steps.size(), c.parallel.steps.size());
  for (size_t i = 0; i < c.single.steps.size(); ++i) {
    EXPECT_NEAR(c.single.steps[i].loss, c.parallel.steps[i].loss, tolerance) << "step " << i + 1;
    EXPECT_NEAR(c.single.steps[i].accuracy, c.parallel.steps[i].accuracy, tolerance) << "step " << i + 1;
    EXPECT_NEAR(c.single.steps[i].grad_norm, c.parallel.steps[i].grad_norm, tolerance) << "step " << i + 1;
    ASSERT_EQ(c.single.steps[i].mtp_losses.size(), c.parallel.steps[i].mtp_losses.size());
    for (size_t d = 0; d < c.single.steps[i].mtp_losses.size(); ++d)
      EXPECT_NEAR(c.single.steps[i].mtp_losses[d], c.parallel.steps[i].mtp_losses[d], tolerance)
          << "step " << i + 1 << ", MTP depth " << d + 1;
  }
  ASSERT_EQ(c.single.evals.size(), c.parallel.evals.size());
  for (size_t i = 0; i < c.single.evals.size(); ++i) EXPECT_NEAR(c.single.evals[i].loss, c.parallel.evals[i].loss, tolerance);
  EXPECT_LT(c.weight_diff, tolerance) << "worst weight: " << c.worst_weight;
  EXPECT_LT(c.grad_diff, tolerance) << "worst gradient: " << c.worst_grad;
  // The run must have learnt something, or equal results would prove little.
  EXPECT_NE(c.single.steps.front().loss, c.single.steps.back().loss);
}

}  // namespace strata::testing
