#include "strata/parallel/sharding.h"

#include "strata/core/error.h"
#include "strata/parallel/collectives.h"

namespace strata::parallel {

at::Tensor shard_of(const at::Tensor& whole, const ShardSpec& spec, const std::string& what) {
  if (!spec.splits()) return whole;
  const auto pieces = spec.chunks * spec.size();
  if (spec.dim >= whole.dim() || whole.size(spec.dim) % pieces != 0)
    fail(what, ": dimension ", spec.dim, " of shape ", whole.sizes(), " does not split into ", spec.chunks,
         " block(s) x ", spec.size(), " ranks");
  std::vector<at::Tensor> mine;
  for (const auto& block : whole.chunk(spec.chunks, spec.dim)) mine.push_back(block.chunk(spec.size(), spec.dim)[spec.rank()]);
  return at::cat(mine, spec.dim).contiguous();
}

at::Tensor gather_shards(const at::Tensor& local, const ShardSpec& spec, const std::string& what) {
  if (!spec.splits()) return local;
  // Gathered along a new leading dimension: [rank][...], then each rank's blocks are interleaved
  // back into block order.
  auto stacked = all_gather(local.unsqueeze(0), spec.group, 0, "gather of " + what);
  std::vector<std::vector<at::Tensor>> blocks_of_rank;
  for (int r = 0; r < spec.size(); ++r) {
    auto blocks = stacked[r].chunk(spec.chunks, spec.dim);
    blocks_of_rank.emplace_back(blocks.begin(), blocks.end());
  }
  std::vector<at::Tensor> pieces;
  for (int64_t c = 0; c < spec.chunks; ++c)
    for (int r = 0; r < spec.size(); ++r) pieces.push_back(blocks_of_rank[r][c]);
  return at::cat(pieces, spec.dim);
}

}  // namespace strata::parallel
