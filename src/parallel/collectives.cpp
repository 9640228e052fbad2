#include "strata/parallel/collectives.h"

#include <numeric>

#include "error_text.h"
#include "process_group_factory.h"
#include "strata/core/error.h"

namespace strata::parallel {

namespace {

// Runs `start` (which returns the c10d work) and waits for it, turning any failure into the error
// fail_collective describes.
template <class Start>
void run(const Group& group, const std::string& what, Start&& start) {
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = start();
    work->wait();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail_collective(e, group, what);
  }
}

// Without Gloo (a GPU build on PyTorch's wheel) a run has NCCL alone, so CPU tensors travel
// through the current CUDA device.
bool staged(const at::Tensor& t) { return t.device().is_cpu() && !gloo_available(); }
at::Tensor on_comm_device(const at::Tensor& t) { return staged(t) ? t.to(at::kCUDA) : t; }

// Runs an in-place operation on `tensor`, through a CUDA copy when it must be staged.
template <class Op>
void in_place(at::Tensor& tensor, Op&& op) {
  if (!staged(tensor)) return op(tensor);
  auto copy = tensor.to(at::kCUDA);
  op(copy);
  tensor.copy_(copy);
}

}  // namespace

void fail_collective(const std::exception& cause, const Group& group, const std::string& what) {
  World* world = World::current();
  const auto where = world ? world->describe(group.get()) : std::string("a process group");
  auto message = cat("rank ", world ? world->rank() : 0, ": ", what, " over ", where, " failed: ", first_line(cause));
  if (!world) throw Error(message);
  world->report_failure(message);
  throw Error(cat(message, "\nthe other ranks:\n", world->diagnose()));
}

PendingWork::PendingWork(c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors, Group group,
                         std::string what)
    : work_(std::move(work)), tensors_(std::move(tensors)), group_(std::move(group)), what_(std::move(what)) {}

void PendingWork::wait() {
  if (!work_) return;
  auto work = std::move(work_);
  try {
    work->wait();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    fail_collective(e, group_, what_);
  }
  tensors_.clear();
}

namespace {

PendingWork all_reduce_async_(at::Tensor& tensor, c10d::ReduceOp op, const Group& group, const std::string& what) {
  if (!group || group->getSize() == 1) return {};
  if (!tensor.is_contiguous()) fail("all-reduce (", what, "): the tensor must be contiguous (it is reduced in place)");
  if (staged(tensor)) {
    in_place(tensor, [&](at::Tensor& t) { all_reduce_async_(t, op, group, what).wait(); });
    return {};
  }
  std::vector<at::Tensor> tensors{tensor};
  c10d::AllreduceOptions options;
  options.reduceOp = op;
  try {
    auto work = group->allreduce(tensors, options);
    return {work, tensors, group, what};
  } catch (const std::exception& e) {
    fail_collective(e, group, what);
  }
}

}  // namespace

void all_reduce_sum_(at::Tensor& tensor, const Group& group, const std::string& what) {
  all_reduce_sum_async_(tensor, group, what).wait();
}

PendingWork all_reduce_sum_async_(at::Tensor& tensor, const Group& group, const std::string& what) {
  return all_reduce_async_(tensor, c10d::ReduceOp::SUM, group, what);
}

void all_reduce_max_(at::Tensor& tensor, const Group& group, const std::string& what) {
  all_reduce_async_(tensor, c10d::ReduceOp::MAX, group, what).wait();
}

at::Tensor all_gather(const at::Tensor& tensor, const Group& group, int64_t dim, const std::string& what) {
  if (!group || group->getSize() == 1) return tensor;
  std::vector<at::Tensor> inputs{on_comm_device(tensor.contiguous())};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < group->getSize(); ++r) outputs[0].push_back(at::empty_like(inputs[0]));
  run(group, what, [&] { return group->allgather(outputs, inputs); });
  return at::cat(outputs[0], dim).to(tensor.device());
}

at::Tensor reduce_scatter_sum(const at::Tensor& tensor, const Group& group, int64_t dim, const std::string& what) {
  if (!group || group->getSize() == 1) return tensor;
  const auto size = group->getSize();
  if (tensor.size(dim) % size != 0)
    fail("reduce-scatter (", what, "): dimension ", dim, " has size ", tensor.size(dim), ", not a multiple of the ",
         size, " ranks of the group");
  if (tensor.is_cuda()) {
    std::vector<at::Tensor> output{at::empty_like(tensor.chunk(size, dim)[0], at::MemoryFormat::Contiguous)};
    std::vector<std::vector<at::Tensor>> inputs(1);
    for (const auto& chunk : tensor.chunk(size, dim)) inputs[0].push_back(chunk.contiguous());
    run(group, what, [&] { return group->reduce_scatter(output, inputs); });
    return output[0];
  }
  // Gloo has no reduce-scatter: reduce everything, keep this rank's chunk.
  auto reduced = tensor.contiguous().clone();
  all_reduce_sum_(reduced, group, what);
  return reduced.chunk(size, dim)[group->getRank()].contiguous();
}

at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send_counts,
                      const std::vector<int64_t>& recv_counts, const Group& group, const std::string& what) {
  const auto size = group ? group->getSize() : 1;
  if (static_cast<int>(send_counts.size()) != size || static_cast<int>(recv_counts.size()) != size)
    fail("all-to-all (", what, "): ", send_counts.size(), " send and ", recv_counts.size(), " receive counts for ",
         size, " ranks");
  const auto sent = std::accumulate(send_counts.begin(), send_counts.end(), int64_t{0});
  if (sent != input.size(0))
    fail("all-to-all (", what, "): the send counts add up to ", sent, " rows but the input has ", input.size(0));
  if (size == 1) return input;
  auto in = on_comm_device(input.contiguous());
  auto sizes = in.sizes().vec();
  sizes[0] = std::accumulate(recv_counts.begin(), recv_counts.end(), int64_t{0});
  auto out = at::empty(sizes, in.options());
  auto send = send_counts, recv = recv_counts;
  run(group, what, [&] { return group->alltoall_base(out, in, recv, send); });
  return out.to(input.device());
}

void broadcast_(at::Tensor& tensor, int root, const Group& group, const std::string& what) {
  if (!group || group->getSize() == 1) return;
  if (!tensor.is_contiguous()) fail("broadcast (", what, "): the tensor must be contiguous (it is written in place)");
  in_place(tensor, [&](at::Tensor& t) {
    std::vector<at::Tensor> tensors{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    run(group, what, [&] { return group->broadcast(tensors, options); });
  });
}

PendingWork send_async(const at::Tensor& tensor, int to, int tag, const Group& group, const std::string& what) {
  std::vector<at::Tensor> tensors{on_comm_device(tensor.contiguous())};
  try {
    auto work = group->send(tensors, to, tag);
    return {work, tensors, group, what};
  } catch (const std::exception& e) {
    fail_collective(e, group, what);
  }
}

void recv_(at::Tensor& tensor, int from, int tag, const Group& group, const std::string& what) {
  if (!tensor.is_contiguous()) fail("receive (", what, "): the tensor must be contiguous (it is written in place)");
  in_place(tensor, [&](at::Tensor& t) {
    std::vector<at::Tensor> tensors{t};
    run(group, what, [&] { return group->recv(tensors, from, tag); });
  });
}

std::vector<std::string> all_gather_strings(const std::string& text, const Group& group, const std::string& what) {
  if (!group || group->getSize() == 1) return {text};
  auto lengths = all_gather(at::full({1}, static_cast<int64_t>(text.size()), at::kLong), group, 0, what + " (lengths)");
  const auto longest = lengths.max().item<int64_t>();
  auto bytes = at::zeros({1, longest}, at::kByte);
  std::copy(text.begin(), text.end(), bytes.data_ptr<uint8_t>());
  auto all = all_gather(bytes, group, 0, what);
  std::vector<std::string> out;
  for (int r = 0; r < group->getSize(); ++r) {
    const auto* row = all[r].data_ptr<uint8_t>();
    out.emplace_back(row, row + lengths[r].item<int64_t>());
  }
  return out;
}

void barrier(const Group& group, const std::string& what) {
  if (!group || group->getSize() == 1) return;
  run(group, what, [&] { return group->barrier(); });
}

}  // namespace strata::parallel
