#pragma once
// The c10d process groups a module may communicate over. A null group means "this dimension is
// not parallel" (size 1), which is what single-process runs use.
//
// Megatron's layout: the world is a grid tp x dp x pp with tp varying fastest (ranks 0..tp-1 form
// the first tensor-parallel group), then dp, then pp. Expert parallelism splits each dp group into
// ep-sized blocks of consecutive dp ranks: `ep` holds the ranks that split the experts between
// them, `expert_dp` the ranks that hold the same experts (dp / ep of them).
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace strata {

struct ProcessGroups {
  c10::intrusive_ptr<c10d::ProcessGroup> tp;         // tensor parallel
  c10::intrusive_ptr<c10d::ProcessGroup> pp;         // pipeline parallel
  c10::intrusive_ptr<c10d::ProcessGroup> dp;         // data parallel
  c10::intrusive_ptr<c10d::ProcessGroup> ep;         // expert parallel (inside dp)
  c10::intrusive_ptr<c10d::ProcessGroup> expert_dp;  // data parallel among ranks holding the same experts
  c10::intrusive_ptr<c10d::ProcessGroup> world;      // every rank
  // Megatron's sequence parallelism: between tensor-parallel regions the activations are split
  // along the sequence over `tp` (norms, dropout and residuals run on 1/tp of the tokens).
  bool sequence_parallel = false;

  static int size(const c10::intrusive_ptr<c10d::ProcessGroup>& g) { return g ? g->getSize() : 1; }
  static int rank(const c10::intrusive_ptr<c10d::ProcessGroup>& g) { return g ? g->getRank() : 0; }
  int tp_size() const { return size(tp); }
  int tp_rank() const { return rank(tp); }
  int pp_size() const { return size(pp); }
  int pp_rank() const { return rank(pp); }
  int dp_size() const { return size(dp); }
  int dp_rank() const { return rank(dp); }
  int ep_size() const { return size(ep); }
  int ep_rank() const { return rank(ep); }
  // Sequence parallelism only changes anything with more than one tensor-parallel rank.
  bool splits_sequence() const { return sequence_parallel && tp_size() > 1; }
};

}  // namespace strata
