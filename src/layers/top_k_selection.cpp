#include "strata/layers/top_k_selection.h"

#include <algorithm>

namespace strata {

namespace {
thread_local std::optional<at::Device> reference_device;

// at::topk on the reference's device, its indices back on the scores' device.
at::Tensor reference_top_k_indices(const at::Tensor& scores, int64_t k) {
  return std::get<1>(at::topk(scores.to(*reference_device), k, -1)).to(scores.device());
}
}  // namespace

ReferenceTopKTieOrder::ReferenceTopKTieOrder(at::Device device) : previous_(reference_device) {
  reference_device = device;
}
ReferenceTopKTieOrder::~ReferenceTopKTieOrder() { reference_device = previous_; }
std::optional<at::Device> ReferenceTopKTieOrder::active() { return reference_device; }

at::Tensor top_k_mask(const at::Tensor& scores, int64_t k) {
  const auto n = scores.size(-1);
  k = std::min(k, n);
  auto none = at::zeros(scores.sizes(), scores.options().dtype(at::kBool));
  if (k <= 0) return none;
  if (reference_device) return none.scatter(-1, reference_top_k_indices(scores, k), true);
  // The k-th highest score of each row: its value does not depend on how top-k orders ties.
  auto kth = std::get<0>(at::topk(scores, k, -1, /*largest=*/true, /*sorted=*/false)).amin(-1, /*keepdim=*/true);
  auto above = scores > kth;
  auto tied = scores == kth;
  auto room = k - above.sum(-1, /*keepdim=*/true);  // how many tied entries fit
  // int32 counts: half the memory of the default int64 over a [T, S] row block.
  return above.logical_or(tied.logical_and(tied.cumsum(-1, at::kInt) <= room));
}

at::Tensor top_k_positions(const at::Tensor& scores, int64_t k) {
  const auto n = scores.size(-1);
  k = std::min(k, n);
  if (reference_device && k > 0) return reference_top_k_indices(scores, k);
  auto mask = top_k_mask(scores, k);
  // Each kept entry's rank in its row is the count of kept entries up to it; the others go to a
  // spare column k, dropped after. A scatter, not nonzero(): no device synchronisation.
  auto rank = mask.cumsum(-1) - 1;
  auto slot = at::where(mask, rank, at::full({}, k, rank.options()));
  auto positions = at::arange(n, scores.options().dtype(at::kLong)).expand(scores.sizes());
  auto sizes = scores.sizes().vec();
  sizes.back() = k + 1;
  return at::zeros(sizes, positions.options()).scatter(-1, slot, positions).narrow(-1, 0, k);
}

}  // namespace strata
