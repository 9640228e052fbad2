#include "strata/parallel/pipeline.h"

#include <torch/csrc/autograd/autograd.h>

#include <deque>

#include "strata/core/error.h"
#include "strata/parallel/pipeline_schedule.h"

namespace strata::parallel {

namespace {

// An activation's dtype, rank and sizes travel ahead of it: stages may differ in what they pass
// on (mHC streams, sequence-parallel splits), so the receiver learns the shape from the sender.
constexpr int64_t kHeaderLength = 8;
constexpr int64_t kMaxDims = kHeaderLength - 2;

enum class Message { header = 0, activation = 1, gradient = 2 };

// This rank's model chunks and their neighbours. Chunk c is virtual stage c * pp + rank: it
// receives from stage s - 1 (the previous rank, or for rank 0 the last rank's previous chunk) and
// sends to stage s + 1 (the next rank, or for the last rank rank 0's next chunk). With one chunk
// per rank the stages are the ranks.
class StageLinks {
 public:
  explicit StageLinks(const LanguageModel& model) : pp_(model.process_groups().pp), chunks_(model.num_model_chunks()) {
    rank_ = ProcessGroups::rank(pp_);
    size_ = ProcessGroups::size(pp_);
    const auto& role = model.pipeline_role();
    if (role.pre_process != (rank_ == 0) || role.post_process != (rank_ == size_ - 1))
      fail("pipeline stage ", rank_, " of ", size_, ": the model's pipeline role (embedding ",
           role.pre_process ? "here" : "absent", ", output layer ", role.post_process ? "here" : "absent",
           ") does not match its place in the pp group");
  }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int chunks() const { return chunks_; }
  bool first(int chunk) const { return rank_ == 0 && chunk == 0; }
  bool last(int chunk) const { return rank_ == size_ - 1 && chunk == chunks_ - 1; }

  void send_activation(const at::Tensor& t, int chunk, int64_t i) {
    if (t.dim() > kMaxDims) fail("pipeline: an activation of ", t.dim(), " dimensions (at most ", kMaxDims, " travel)");
    auto header = at::zeros({kHeaderLength}, at::kLong);
    auto* h = header.data_ptr<int64_t>();
    h[0] = static_cast<int64_t>(t.scalar_type());
    h[1] = t.dim();
    for (int64_t d = 0; d < t.dim(); ++d) h[2 + d] = t.size(d);
    const int from = stage(chunk);
    sends_.push_back(send_async(header, next_rank(), tag(i, from, Message::header), pp_,
                                what("activation header", i, from, from + 1)));
    sends_.push_back(send_async(t.detach(), next_rank(), tag(i, from, Message::activation), pp_,
                                what("activation", i, from, from + 1)));
  }

  at::Tensor recv_activation(int chunk, int64_t i, const at::Device& device) {
    const int from = stage(chunk) - 1;
    auto header = at::empty({kHeaderLength}, at::kLong);
    recv_(header, previous_rank(), tag(i, from, Message::header), pp_, what("activation header", i, from, from + 1));
    const auto* h = header.data_ptr<int64_t>();
    std::vector<int64_t> sizes(h + 2, h + 2 + h[1]);
    auto t = at::empty(sizes, at::TensorOptions(static_cast<at::ScalarType>(h[0])).device(device));
    recv_(t, previous_rank(), tag(i, from, Message::activation), pp_, what("activation", i, from, from + 1));
    return t;
  }

  void send_gradient(const at::Tensor& g, int chunk, int64_t i) {
    const int to = stage(chunk) - 1;
    sends_.push_back(send_async(g, previous_rank(), tag(i, to, Message::gradient), pp_, what("gradient", i, to + 1, to)));
  }

  at::Tensor recv_gradient(const at::Tensor& like, int chunk, int64_t i) {
    const int to = stage(chunk);
    auto g = at::empty_like(like, at::MemoryFormat::Contiguous);
    recv_(g, next_rank(), tag(i, to, Message::gradient), pp_, what("gradient", i, to + 1, to));
    return g;
  }

  void wait_for_sends() {
    for (auto& s : sends_) s.wait();
    sends_.clear();
  }

 private:
  int stage(int chunk) const { return chunk * size_ + rank_; }
  int next_rank() const { return (rank_ + 1) % size_; }
  int previous_rank() const { return (rank_ + size_ - 1) % size_; }
  // Messages between stages `boundary` and `boundary` + 1 about micro-batch i.
  int tag(int64_t i, int boundary, Message kind) const {
    const int64_t boundaries = static_cast<int64_t>(size_) * chunks_ - 1;
    return static_cast<int>((i * boundaries + boundary) * 3 + static_cast<int>(kind));
  }
  std::string stage_name(int s) const {
    return chunks_ == 1 ? cat("stage ", s) : cat("virtual stage ", s, " (pipeline rank ", s % size_, ")");
  }
  std::string what(const char* item, int64_t i, int from, int to) const {
    return cat("pipeline ", item, " of micro-batch ", i, " from ", stage_name(from), " to ", stage_name(to));
  }

  Group pp_;
  int chunks_ = 1;
  int rank_ = 0, size_ = 1;
  std::vector<PendingWork> sends_;
};

// A micro-batch between its forward and its backward through one chunk.
struct InFlight {
  int64_t micro_batch = 0;
  at::Tensor input;   // received activation (requires grad), undefined on the first stage
  at::Tensor output;  // the loss on the last stage, else the activation sent on
  at::Tensor aux;     // this chunk's scaled auxiliary losses, or undefined
};

at::Tensor scaled_aux(const ForwardContext& ctx, double scale) {
  at::Tensor total;
  for (const auto& aux : ctx.aux_losses) total = total.defined() ? total + aux : aux;
  return total.defined() ? total * scale : total;
}

at::Tensor stage_input(StageLinks& links, const PipelineCallbacks& cb, int chunk, int64_t i, const at::Device& device,
                       bool needs_grad) {
  if (links.first(chunk)) return cb.input_ids(i);
  auto input = links.recv_activation(chunk, i, device);
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
  StageLinks links(model);
  const auto device = model_device(model);
  const auto steps = training_schedule(links.size(), links.rank(), links.chunks(), num_micro_batches);
  // A chunk's parameters have their whole gradient after the chunk's last backward of the step;
  // the data-parallel reduction of its buckets may start then.
  std::vector<size_t> last_backward(links.chunks(), 0);
  for (size_t k = 0; k < steps.size(); ++k)
    if (steps[k].pass == PipelinePass::backward) last_backward[steps[k].model_chunk] = k;
  std::vector<std::deque<InFlight>> in_flight(links.chunks());

  auto forward_step = [&](int chunk, int64_t i) {
    InFlight f{.micro_batch = i};
    f.input = stage_input(links, cb, chunk, i, device, /*needs_grad=*/true);
    ForwardContext ctx{.input_ids = cb.input_ids(i)};  // every stage's hash-routed MoE layers read them
    auto out = cb.forward(chunk, f.input, ctx);
    f.aux = scaled_aux(ctx, cb.aux_loss_scale);
    if (links.last(chunk)) {
      f.output = cb.loss(i, out);
      if (f.aux.defined()) f.output = f.output + f.aux, f.aux = at::Tensor();
    } else {
      links.send_activation(out, chunk, i);
      f.output = out;
    }
    in_flight[chunk].push_back(std::move(f));
  };
  auto backward_step = [&](int chunk, int64_t i, bool last_for_chunk) {
    auto f = std::move(in_flight[chunk].front());
    in_flight[chunk].pop_front();
    if (f.micro_batch != i)
      fail("pipeline schedule: backward of micro-batch ", i, " through chunk ", chunk, " while micro-batch ",
           f.micro_batch, " is the oldest in flight there");
    if (sync) sync->prepare_backward(last_for_chunk);
    if (links.last(chunk)) {
      f.output.backward();
    } else {
      std::vector<at::Tensor> outputs{f.output}, grads{links.recv_gradient(f.output, chunk, i)};
      if (f.aux.defined()) outputs.push_back(f.aux), grads.push_back(at::ones_like(f.aux));
      torch::autograd::backward(outputs, grads);
    }
    if (!links.first(chunk)) {
      auto g = f.input.grad();
      links.send_gradient(g.defined() ? g : at::zeros_like(f.input), chunk, i);
    }
  };

  for (size_t k = 0; k < steps.size(); ++k) {
    const auto& s = steps[k];
    if (s.pass == PipelinePass::forward) {
      forward_step(s.model_chunk, s.micro_batch);
    } else {
      backward_step(s.model_chunk, s.micro_batch, k == last_backward[s.model_chunk]);
    }
  }
  links.wait_for_sends();
}

void forward_only(LanguageModel& model, int64_t num_micro_batches, const PipelineCallbacks& cb) {
  at::NoGradGuard no_grad;
  StageLinks links(model);
  const auto device = model_device(model);
  for (const auto& s : forward_only_schedule(links.size(), links.chunks(), num_micro_batches)) {
    auto input = stage_input(links, cb, s.model_chunk, s.micro_batch, device, /*needs_grad=*/false);
    ForwardContext ctx{.input_ids = cb.input_ids(s.micro_batch)};
    auto out = cb.forward(s.model_chunk, input, ctx);
    if (links.last(s.model_chunk)) {
      cb.loss(s.micro_batch, out);
    } else {
      links.send_activation(out, s.model_chunk, s.micro_batch);
    }
  }
  links.wait_for_sends();
}

}  // namespace strata::parallel
