#pragma once
// How a parameter is split over ranks, declared by the module that owns it, so checkpoints can be
// gathered into the canonical (unsplit) layout and split again for any other layout.
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "strata/parallel/world.h"

namespace strata::parallel {

enum class ShardAxis {
  tensor,  // over the tensor-parallel group (column/row-parallel linears)
  expert,  // over the expert-parallel group (each rank holds some experts)
};

// Split along `dim`, which is viewed as `chunks` equal blocks, each block split evenly over the
// group's ranks in rank order. A gated MLP's fc1 rows are [gate; up] (2 chunks): every rank keeps
// its share of both, so its local rows are [gate_r; up_r] and the MLP's own chunk(2) still works.
struct ShardSpec {
  int64_t dim = 0;
  int64_t chunks = 1;
  ShardAxis axis = ShardAxis::tensor;
  Group group;  // null or one rank: not split

  int size() const { return group ? group->getSize() : 1; }
  int rank() const { return group ? group->getRank() : 0; }
  bool splits() const { return size() > 1; }
};

// Implemented by modules whose parameters are split (names relative to the module).
class ShardedModule {
 public:
  virtual ~ShardedModule() = default;
  virtual std::map<std::string, ShardSpec> shard_specs() const = 0;
};

// This rank's part of a whole tensor; `what` names it in errors (sizes that do not divide).
at::Tensor shard_of(const at::Tensor& whole, const ShardSpec& spec, const std::string& what);
// The whole tensor from every rank's part (a collective over spec.group).
at::Tensor gather_shards(const at::Tensor& local, const ShardSpec& spec, const std::string& what);

}  // namespace strata::parallel
