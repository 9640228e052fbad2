#pragma once
// The c10d collectives strata uses, with one failure path: an operation that fails or times out
// throws strata::Error naming this rank, the operation, the group, c10d's reason and what the
// other ranks are doing (World::diagnose), and leaves a failure note for the others. Inputs may
// be non-contiguous; results are new tensors unless the name ends in '_'.
//
// Gloo (LibTorch 1.13) has no reduce-scatter and no single-tensor all-gather; those are composed
// from all-reduce and the list form of all-gather. A null group is a group of one rank.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "strata/parallel/world.h"

namespace strata::parallel {

// An operation under way; wait() blocks and fails like the blocking calls.
class PendingWork {
 public:
  PendingWork() = default;
  // `tensors` stay alive until wait() returns (the operation reads or writes them).
  PendingWork(c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors, Group group, std::string what);
  void wait();
  bool valid() const { return static_cast<bool>(work_); }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;
  Group group_;
  std::string what_;
};

// Sum over the group, in place.
void all_reduce_sum_(at::Tensor& tensor, const Group& group, const std::string& what);
PendingWork all_reduce_sum_async_(at::Tensor& tensor, const Group& group, const std::string& what);
// Maximum over the group, in place.
void all_reduce_max_(at::Tensor& tensor, const Group& group, const std::string& what);

// Every rank's tensor (same shape on every rank), concatenated along `dim` in rank order.
at::Tensor all_gather(const at::Tensor& tensor, const Group& group, int64_t dim, const std::string& what);

// The sum over the group, split into group-size equal chunks along `dim`; this rank's chunk.
at::Tensor reduce_scatter_sum(const at::Tensor& tensor, const Group& group, int64_t dim, const std::string& what);

// Rows (dim 0) of `input`: the first send_counts[0] go to rank 0, the next to rank 1, ...; returns
// the rows received, recv_counts[r] from rank r, in rank order.
at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                      const std::vector<int64_t>& recv_counts, const Group& group, const std::string& what);

// Root's tensor into every rank's `tensor` (same shape and dtype everywhere).
void broadcast_(at::Tensor& tensor, int root, const Group& group, const std::string& what);

// Point to point within the group; `tag` pairs a send with its receive.
PendingWork send_async(const at::Tensor& tensor, int to, int tag, const Group& group, const std::string& what);
void recv_(at::Tensor& tensor, int from, int tag, const Group& group, const std::string& what);

// Every rank's string, in rank order (names and shapes that ranks tell each other).
std::vector<std::string> all_gather_strings(const std::string& text, const Group& group, const std::string& what);

// Blocks until every rank of the group arrives.
void barrier(const Group& group, const std::string& what);

// Throws the strata::Error for a failed operation (used by the functions above).
[[noreturn]] void fail_collective(const std::exception& cause, const Group& group, const std::string& what);

}  // namespace strata::parallel
