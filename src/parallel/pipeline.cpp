#include "strata/parallel/pipeline.h"

#include <torch/csrc/autograd/autograd.h>

#include <deque>

#include "strata/core/error.h"

namespace strata::parallel {

namespace {

// An activation's dtype, rank and sizes travel ahead of it: stages may differ in what they pass
// on (mHC streams, sequence-parallel splits), so the receiver learns the shape from the sender.
constexpr int64_t kHeaderLength = 8;
constexpr int64_t kMaxDims = kHeaderLength - 2;

enum class Message { header = 0, activation = 1, gradient = 2 };
int tag(int64_t micro_batch, Message kind) { return static_cast<int>(micro_batch * 3 + static_cast<int>(kind)); }

class StageLinks {
 public:
  explicit StageLinks(const LanguageModel& model) : pp_(model.process_groups().pp) {
    rank_ = ProcessGroups::rank(pp_);
    size_ = ProcessGroups::size(pp_);
    const auto& role = model.pipeline_role();
    if (role.pre_process != (rank_ == 0) || role.post_process != (rank_ == size_ - 1))
      fail("pipeline stage ", rank_, " of ", size_, ": the model's pipeline role (embedding ",
           role.pre_process ? "here" : "absent", ", output layer ", role.post_process ? "here" : "absent",
           ") does not match its place in the pp group");
  }
  bool first() const { return rank_ == 0; }
  bool last() const { return rank_ == size_ - 1; }

  void send_activation(const at::Tensor& t, int64_t i) {
    if (t.dim() > kMaxDims) fail("pipeline: an activation of ", t.dim(), " dimensions (at most ", kMaxDims, " travel)");
    auto header = at::zeros({kHeaderLength}, at::kLong);
    auto* h = header.data_ptr<int64_t>();
    h[0] = static_cast<int64_t>(t.scalar_type());
    h[1] = t.dim();
    for (int64_t d = 0; d < t.dim(); ++d) h[2 + d] = t.size(d);
    sends_.push_back(send_async(header, rank_ + 1, tag(i, Message::header), pp_, what("activation header", i, rank_ + 1)));
    sends_.push_back(send_async(t.detach(), rank_ + 1, tag(i, Message::activation), pp_, what("activation", i, rank_ + 1)));
  }

  at::Tensor recv_activation(int64_t i, const at::Device& device) {
    auto header = at::empty({kHeaderLength}, at::kLong);
    recv_(header, rank_ - 1, tag(i, Message::header), pp_, what("activation header", i, rank_ - 1));
    const auto* h = header.data_ptr<int64_t>();
    std::vector<int64_t> sizes(h + 2, h + 2 + h[1]);
    auto t = at::empty(sizes, at::TensorOptions(static_cast<at::ScalarType>(h[0])).device(device));
    recv_(t, rank_ - 1, tag(i, Message::activation), pp_, what("activation", i, rank_ - 1));
    return t;
  }

  void send_gradient(const at::Tensor& g, int64_t i) {
    sends_.push_back(send_async(g, rank_ - 1, tag(i, Message::gradient), pp_, what("gradient", i, rank_ - 1)));
  }

  at::Tensor recv_gradient(const at::Tensor& like, int64_t i) {
    auto g = at::empty_like(like, at::MemoryFormat::Contiguous);
    recv_(g, rank_ + 1, tag(i, Message::gradient), pp_, what("gradient", i, rank_ + 1));
    return g;
  }

  void wait_for_sends() {
    for (auto& s : sends_) s.wait();
    sends_.clear();
  }

 private:
  std::string what(const char* item, int64_t i, int peer) const {
    return cat("pipeline ", item, " of micro-batch ", i, " between stages ", rank_, " and ", peer);
  }

  Group pp_;
  int rank_ = 0, size_ = 1;
  std::vector<PendingWork> sends_;
};

// A micro-batch between its forward and its backward on this stage.
struct InFlight {
  at::Tensor input;   // received activation (requires grad), undefined on the first stage
  at::Tensor output;  // the loss on the last stage, else the activation sent on
  at::Tensor aux;     // this stage's scaled auxiliary losses, or undefined
};

at::Tensor scaled_aux(const ForwardContext& ctx, double scale) {
  at::Tensor total;
  for (const auto& aux : ctx.aux_losses) total = total.defined() ? total + aux : aux;
  return total.defined() ? total * scale : total;
}

at::Tensor stage_input(StageLinks& links, const PipelineCallbacks& cb, int64_t i, const at::Device& device,
                       bool needs_grad) {
  if (links.first()) return cb.input_ids(i);
  auto input = links.recv_activation(i, device);
  if (needs_grad && at::isFloatingType(input.scalar_type())) input.requires_grad_(true);
  return input;
}

at::Device model_device(const LanguageModel& model) {
  const auto params = model.parameters();
  return params.empty() ? at::Device(at::kCPU) : params.front().device();
}

}  // namespace

void forward_backward_1f1b(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& cb,
                           GradientSync* sync) {
  if (num_micro_batches < 1) fail("pipeline: ", num_micro_batches, " micro-batches (expected at least 1)");
  StageLinks links(model);
  const auto device = model_device(model);
  const int pp = ProcessGroups::size(model.process_groups().pp), rank = ProcessGroups::rank(model.process_groups().pp);
  const int64_t warmup = std::min<int64_t>(pp - rank - 1, num_micro_batches);
  std::deque<InFlight> in_flight;
  int64_t next_forward = 0, next_backward = 0;

  auto forward_step = [&] {
    const auto i = next_forward++;
    InFlight f;
    f.input = stage_input(links, cb, i, device, /*needs_grad=*/true);
    ForwardContext ctx;
    auto out = cb.forward(f.input, ctx);
    f.aux = scaled_aux(ctx, cb.aux_loss_scale);
    if (links.last()) {
      f.output = cb.loss(i, out);
      if (f.aux.defined()) f.output = f.output + f.aux, f.aux = at::Tensor();
    } else {
      links.send_activation(out, i);
      f.output = out;
    }
    in_flight.push_back(std::move(f));
  };
  auto backward_step = [&] {
    const auto i = next_backward++;
    auto f = std::move(in_flight.front());
    in_flight.pop_front();
    if (sync) sync->prepare_backward(i == num_micro_batches - 1);
    if (links.last()) {
      f.output.backward();
    } else {
      std::vector<at::Tensor> outputs{f.output}, grads{links.recv_gradient(f.output, i)};
      if (f.aux.defined()) outputs.push_back(f.aux), grads.push_back(at::ones_like(f.aux));
      torch::autograd::backward(outputs, grads);
    }
    if (!links.first()) {
      auto g = f.input.grad();
      links.send_gradient(g.defined() ? g : at::zeros_like(f.input), i);
    }
  };

  for (int64_t k = 0; k < warmup; ++k) forward_step();
  for (int64_t k = warmup; k < num_micro_batches; ++k) {
    forward_step();
    backward_step();
  }
  while (next_backward < num_micro_batches) backward_step();
  links.wait_for_sends();
}

void forward_only(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& cb) {
  at::NoGradGuard no_grad;
  StageLinks links(model);
  const auto device = model_device(model);
  for (int64_t i = 0; i < num_micro_batches; ++i) {
    auto input = stage_input(links, cb, i, device, /*needs_grad=*/false);
    ForwardContext ctx;
    auto out = cb.forward(input, ctx);
    if (links.last()) {
      cb.loss(i, out);
    } else {
      links.send_activation(out, i);
    }
  }
  links.wait_for_sends();
}

}  // namespace strata::parallel
