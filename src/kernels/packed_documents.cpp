#include "strata/kernels/packed_documents.h"

#include "strata/core/error.h"

namespace strata::kernels {

std::vector<int64_t> document_bounds(const char* fn, const at::Tensor& cu_seqlens, int64_t batch, int64_t seq) {
  if (cu_seqlens.dim() != 1 || cu_seqlens.size(0) < 2 ||
      (cu_seqlens.scalar_type() != at::kLong && cu_seqlens.scalar_type() != at::kInt))
    fail(fn, ": cu_seqlens must be int64 or int32 [N + 1] with N >= 1 documents, got ", cu_seqlens.scalar_type(),
         " of shape ", cu_seqlens.sizes());
  if (batch != 1) fail(fn, ": packed documents (cu_seqlens) take a batch of one row, got B = ", batch);
  auto host = cu_seqlens.to(at::kCPU, at::kLong).contiguous();
  std::vector<int64_t> bounds(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + host.numel());
  if (bounds.front() != 0 || bounds.back() != seq)
    fail(fn, ": cu_seqlens must run from 0 to T = ", seq, ", got ", at::IntArrayRef(bounds));
  for (size_t i = 0; i + 1 < bounds.size(); ++i)
    if (bounds[i + 1] <= bounds[i])
      fail(fn, ": document ", i, " is empty (cu_seqlens[", i, "] = ", bounds[i], ", cu_seqlens[", i + 1, "] = ",
           bounds[i + 1], "); expected strictly increasing offsets");
  return bounds;
}

}  // namespace strata::kernels
