#pragma once
// How a run's ranks split the work (Megatron's --tensor-model-parallel-size and friends), and the
// process groups each rank belongs to. The world is a grid tp x dp x pp, tp varying fastest:
//   rank = tp_rank + tp * (dp_rank + dp * pp_rank)
// so tensor-parallel peers are neighbours (the fastest links) and a pipeline stage is a block of
// tp * dp consecutive ranks. Expert parallelism groups ep consecutive dp ranks.
#include <vector>

#include "strata/parallel/process_groups.h"
#include "strata/parallel/world.h"

namespace strata::parallel {

struct ParallelLayout {
  int tensor_parallel = 1;
  int pipeline_parallel = 1;
  int expert_parallel = 1;
  bool sequence_parallel = false;
};

struct RankCoordinates {
  int tp = 0, dp = 0, pp = 0;
};

// dp = world_size / (tp * pp); errors name the sizes that do not divide.
int data_parallel_size(const ParallelLayout& layout, int world_size);
RankCoordinates coordinates(int rank, const ParallelLayout& layout, int world_size);
int global_rank(const RankCoordinates& at, const ParallelLayout& layout, int world_size);

// The global ranks of each group `rank` belongs to (ascending).
struct GroupRanks {
  std::vector<int> tp, dp, pp, ep, expert_dp;
};
GroupRanks group_ranks(int rank, const ParallelLayout& layout, int world_size);

// Creates this rank's groups (all ranks call it with the same layout). Groups of one rank stay
// null, so a layout of ones gives the single-process ProcessGroups plus the world group.
ProcessGroups make_process_groups(World& world, const ParallelLayout& layout);

}  // namespace strata::parallel
