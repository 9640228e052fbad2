#pragma once
// Which entries a sparse-attention indexer keeps: in each row of scores, the k highest, and among
// entries that tie with the k-th highest score, those of lowest index.
//
// Why a rule of its own rather than at::topk's choice: the indexers' scores tie exactly, often.
// score = sum_h w_h * ReLU(q_h . k), so an entry whose every head ReLU zeroes scores exactly 0
// whatever the weights (with 2 indexer heads about one entry in four), and 0 lies in the middle
// of a row's scores (w_h can be negative). Which tied entries at::topk returns is
// implementation-defined: the CPU kernel's partial sort follows the data, the CUDA kernel its own
// order, and a top-k over fewer entries (decoding) yet another. On the HF fixtures the CPU choice
// follows no index rule (neither lowest nor highest index: docs/layer_patterns.md, "Ties in the
// indexers' top-k"), so strata fixes one: the result is then the same on every device and for
// any number of entries ranked at once, and decoding reads what the full forward reads.
// Cost: one top-k of the values, a comparison, a cumsum; no sort of whole rows.
#include <ATen/ATen.h>

#include <optional>

namespace strata {

// [..., n] bool with min(k, n) entries true per row: those with a score above the row's k-th
// highest, then the lowest-index ones of those equal to it. -inf entries (masked) are ranked like
// any other value: a row with fewer than k finite scores keeps its lowest-index -inf entries.
at::Tensor top_k_mask(const at::Tensor& scores, int64_t k);

// [..., min(k, n)] int64: the positions top_k_mask marks, ascending along each row.
at::Tensor top_k_positions(const at::Tensor& scores, int64_t k);

// While alive, top_k_mask and top_k_positions on this thread choose among ties as at::topk does
// on `reference_device`, whatever device the scores are on (they go there and back): the choice
// an HF reference made with torch.topk (the fixtures: on the CPU). at::topk's CPU kernel only
// compares scores, so the same order relations give it the same choice; strata's scores order as
// HF's (the exact zeros are exact on every device), so hf-check reproduces the reference's
// selection on a GPU too. For comparisons with such references only: the round trip is slow.
class ReferenceTopKTieOrder {
 public:
  explicit ReferenceTopKTieOrder(at::Device reference_device = at::kCPU);
  ~ReferenceTopKTieOrder();
  ReferenceTopKTieOrder(const ReferenceTopKTieOrder&) = delete;
  ReferenceTopKTieOrder& operator=(const ReferenceTopKTieOrder&) = delete;

  // The reference device in force on this thread, if any.
  static std::optional<at::Device> active();

 private:
  std::optional<at::Device> previous_;
};

}  // namespace strata
