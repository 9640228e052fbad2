#pragma once
// A parallel model's parameters under their canonical names: how each is split (from the modules
// that own them), which gradients are partial per tensor-parallel rank, and the canonical
// (whole, layout-free) state dict gathered from or split onto any parallel layout. A checkpoint
// saved with tp 2 x pp 2 is the same file set one saved on a single process would be.
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "strata/model/language_model.h"
#include "strata/parallel/sharding.h"

namespace strata::parallel {

struct ParameterPlacement {
  std::optional<ShardSpec> shard;  // split over tp or ep; absent: whole on every rank
  // Whole on every tensor-parallel rank, but each rank's gradient covers only its part of the
  // work: parameters applied to sequence-split activations (sequence parallelism) and per-head
  // q/k norms (each rank holds some heads). Their gradients are summed over tp.
  bool sum_grad_over_tp = false;

  bool expert() const { return shard && shard->axis == ShardAxis::expert; }
  bool split_over_tp() const { return shard && shard->axis == ShardAxis::tensor && shard->splits(); }
};

// Canonical name -> placement, for every tensor of model.canonical_state_dict().
std::map<std::string, ParameterPlacement> parameter_placements(const LanguageModel& model);

// The whole canonical state dict of the model this rank's stage belongs to, on every rank: shards
// gathered over tp and ep, stages exchanged over pp. Collective: every rank calls it.
std::map<std::string, at::Tensor> gather_canonical_state_dict(const LanguageModel& model);

// Loads a whole canonical state dict (every stage's tensors) into this rank's part of the model.
// Strict, like LanguageModel::load_canonical_state_dict: tensors missing from `whole`, tensors no
// stage holds, and wrong shapes are one error. Collective over pp (to learn the other stages' names).
void load_canonical_state_dict(LanguageModel& model, const std::map<std::string, at::Tensor>& whole,
                               const std::string& source);

// The tensors of `local` (named like `placements`) split as `placements` say, gathered whole.
// Used for optimizer state, which is split like the parameters it belongs to.
std::map<std::string, at::Tensor> gather_named_shards(const std::map<std::string, at::Tensor>& local,
                                                      const std::map<std::string, ParameterPlacement>& placements);
// This rank's parts of whole tensors.
std::map<std::string, at::Tensor> split_named_tensors(const std::map<std::string, at::Tensor>& whole,
                                                      const std::map<std::string, ParameterPlacement>& placements);

// Every pipeline stage's tensors on every stage (each stage broadcasts its own in turn).
std::map<std::string, at::Tensor> exchange_over_pipeline(std::map<std::string, at::Tensor> mine, const Group& pp);

// Canonical weights on disk (model/checkpoint.h's layout), from and onto any parallel layout.
// Every rank calls them; world rank 0 writes.
void save_parallel_model_weights(const LanguageModel& model, const std::filesystem::path& dir);
void load_parallel_model_weights(LanguageModel& model, const std::filesystem::path& dir);

}  // namespace strata::parallel
