#include "strata/parallel/layout.h"

#include "strata/core/error.h"

namespace strata::parallel {

int data_parallel_size(const ParallelLayout& l, int world_size) {
  if (l.tensor_parallel < 1 || l.pipeline_parallel < 1 || l.expert_parallel < 1)
    fail("parallel layout tp ", l.tensor_parallel, " pp ", l.pipeline_parallel, " ep ", l.expert_parallel,
         ": every size must be at least 1");
  const int model_parallel = l.tensor_parallel * l.pipeline_parallel;
  if (world_size % model_parallel != 0)
    fail("world size ", world_size, " is not a multiple of tensor-parallel size ", l.tensor_parallel,
         " x pipeline-parallel size ", l.pipeline_parallel, " = ", model_parallel);
  const int dp = world_size / model_parallel;
  if (dp % l.expert_parallel != 0)
    fail("expert-parallel size ", l.expert_parallel, " must divide the data-parallel size ", dp, " (world size ",
         world_size, " / (tp ", l.tensor_parallel, " x pp ", l.pipeline_parallel, "))");
  return dp;
}

RankCoordinates coordinates(int rank, const ParallelLayout& l, int world_size) {
  const int dp = data_parallel_size(l, world_size);
  if (rank < 0 || rank >= world_size) fail("rank ", rank, ": expected 0 <= rank < world size ", world_size);
  return {rank % l.tensor_parallel, (rank / l.tensor_parallel) % dp, rank / (l.tensor_parallel * dp)};
}

int global_rank(const RankCoordinates& at, const ParallelLayout& l, int world_size) {
  const int dp = data_parallel_size(l, world_size);
  return at.tp + l.tensor_parallel * (at.dp + dp * at.pp);
}

GroupRanks group_ranks(int rank, const ParallelLayout& l, int world_size) {
  const int dp = data_parallel_size(l, world_size);
  const auto me = coordinates(rank, l, world_size);
  GroupRanks g;
  for (int t = 0; t < l.tensor_parallel; ++t) g.tp.push_back(global_rank({t, me.dp, me.pp}, l, world_size));
  for (int d = 0; d < dp; ++d) g.dp.push_back(global_rank({me.tp, d, me.pp}, l, world_size));
  for (int p = 0; p < l.pipeline_parallel; ++p) g.pp.push_back(global_rank({me.tp, me.dp, p}, l, world_size));
  const int ep = l.expert_parallel;
  const int block = me.dp / ep * ep;
  for (int d = block; d < block + ep; ++d) g.ep.push_back(global_rank({me.tp, d, me.pp}, l, world_size));
  for (int d = me.dp % ep; d < dp; d += ep) g.expert_dp.push_back(global_rank({me.tp, d, me.pp}, l, world_size));
  return g;
}

ProcessGroups make_process_groups(World& world, const ParallelLayout& layout) {
  const auto ranks = group_ranks(world.rank(), layout, world.size());
  // Every rank creates its groups in this same order, so no two ranks wait on each other in
  // opposite orders while Gloo connects the members of each group.
  auto make = [&](const char* name, const std::vector<int>& members) {
    return members.size() > 1 ? world.new_group(name, members) : Group();
  };
  ProcessGroups pg;
  pg.tp = make("tp", ranks.tp);
  pg.dp = make("dp", ranks.dp);
  pg.pp = make("pp", ranks.pp);
  pg.ep = make("ep", ranks.ep);
  pg.expert_dp = make("expert_dp", ranks.expert_dp);
  pg.world = world.world_group();
  pg.sequence_parallel = layout.sequence_parallel;
  return pg;
}

}  // namespace strata::parallel
