#include "strata/parallel/expert_dispatch.h"

#include <torch/csrc/autograd/custom_function.h>

#include <numeric>

#include "strata/core/error.h"
#include "strata/parallel/collectives.h"

namespace strata::parallel {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct AllToAllRows : torch::autograd::Function<AllToAllRows> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const std::vector<int64_t>& send,
                            const std::vector<int64_t>& recv, const Group& group) {
    ctx->saved_data["send"] = send;
    ctx->saved_data["recv"] = recv;
    ctx->saved_data["group"] = c10::IValue::make_capsule(group);
    return all_to_all(input, send, recv, group, "all-to-all of expert tokens");
  }
  static variable_list backward(AutogradContext* ctx, variable_list grad) {
    auto group = c10::static_intrusive_pointer_cast<c10d::ProcessGroup>(ctx->saved_data["group"].toCapsule());
    auto g = all_to_all(grad[0], ctx->saved_data["recv"].toIntVector(), ctx->saved_data["send"].toIntVector(), group,
                        "all-to-all of expert token gradients");
    return {g, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

int64_t sum(const int64_t* values, int64_t n) { return std::accumulate(values, values + n, int64_t{0}); }

}  // namespace

at::Tensor all_to_all_rows(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                           const std::vector<int64_t>& recv_counts, const Group& group) {
  return AllToAllRows::apply(input, send_counts, recv_counts, group);
}

at::Tensor expert_parallel_moe(const at::Tensor& x, const at::Tensor& indices, const at::Tensor& weights,
                               int64_t num_experts, const Group& ep,
                               const std::function<at::Tensor(int64_t, const at::Tensor&)>& run_expert) {
  const int ranks = ep->getSize();
  if (num_experts % ranks != 0)
    fail("num_moe_experts = ", num_experts, " does not split over ", ranks, " expert-parallel ranks");
  const int64_t local = num_experts / ranks;
  const auto topk = indices.size(1);

  // Assignments sorted by expert: each destination rank's rows form one run, in rank order.
  auto assigned = indices.reshape({-1});
  auto order = at::argsort(assigned, /*stable=*/true, /*dim=*/0);
  auto token_of = at::div(order, topk, "floor");
  auto dispatched = x.index_select(0, token_of);
  auto per_expert = at::bincount(assigned, {}, num_experts).to(at::kLong).cpu();

  // How many rows each rank sends me for each of my experts: [source][local expert].
  auto incoming = all_to_all(per_expert, std::vector<int64_t>(ranks, local), std::vector<int64_t>(ranks, local), ep,
                             "all-to-all of expert token counts");
  const auto* out_count = per_expert.data_ptr<int64_t>();
  const auto* in_count = incoming.data_ptr<int64_t>();
  std::vector<int64_t> send(ranks), recv(ranks);
  for (int r = 0; r < ranks; ++r) {
    send[r] = sum(out_count + r * local, local);
    recv[r] = sum(in_count + r * local, local);
  }
  auto received = all_to_all_rows(dispatched, send, recv, ep);

  // Received rows come by source, each source's by expert; the experts want theirs together.
  std::vector<int64_t> start(ranks * local);
  for (int64_t i = 1; i < ranks * local; ++i) start[i] = start[i - 1] + in_count[i - 1];
  std::vector<int64_t> by_expert;
  std::vector<int64_t> rows_of_expert(local, 0);
  for (int64_t e = 0; e < local; ++e)
    for (int s = 0; s < ranks; ++s) {
      const auto first = start[s * local + e], n = in_count[s * local + e];
      for (int64_t row = first; row < first + n; ++row) by_expert.push_back(row);
      rows_of_expert[e] += n;
    }
  auto permutation = at::tensor(by_expert, at::TensorOptions(at::kLong)).to(x.device());
  auto grouped = received.index_select(0, permutation);
  std::vector<at::Tensor> outputs;
  int64_t offset = 0;
  for (int64_t e = 0; e < local; ++e) {
    if (rows_of_expert[e] == 0) continue;
    outputs.push_back(run_expert(e, grouped.narrow(0, offset, rows_of_expert[e])));
    offset += rows_of_expert[e];
  }
  auto computed = outputs.empty() ? at::zeros({0, x.size(1)}, x.options()) : at::cat(outputs);
  // Back into the order the rows arrived in, then home.
  auto inverse = at::empty_like(permutation);
  inverse.index_put_({permutation}, at::arange(permutation.numel(), permutation.options()));
  auto returned = all_to_all_rows(computed.index_select(0, inverse), recv, send, ep);

  // As without expert parallelism: weight in float32 (routing weights are), sum per token.
  auto weighted = returned * weights.reshape({-1}).index_select(0, order).unsqueeze(1);
  return at::zeros_like(x).index_add(0, token_of, weighted.to(x.scalar_type()));
}

}  // namespace strata::parallel
