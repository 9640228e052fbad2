#include "strata/parallel/grad_sync.h"

#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include "strata/core/error.h"
#include "strata/train/grad_norm.h"

namespace strata::parallel {

namespace {

// Gradients flattened into float32 with one has-gradient flag per tensor after them, so a tensor
// that got no gradient anywhere can be told from one whose gradient sums to zero.
// The flags are made on the gradients' device: copying them from the host would make the
// backward hook wait for the GPU to drain, once per bucket.
at::Tensor pack(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> parts, flags;
  for (const auto& p : params) {
    const auto& g = p.grad();
    const auto options = p.options().dtype(at::kFloat);
    parts.push_back(g.defined() ? g.detach().to(at::kFloat).reshape(-1) : at::zeros({p.numel()}, options));
    flags.push_back(at::full({1}, g.defined() ? 1.0 : 0.0, options));
  }
  parts.insert(parts.end(), flags.begin(), flags.end());
  return at::cat(parts);
}

// Hands a reduced bucket back: the buffer is scaled once, and each gradient becomes a view of it
// where the dtypes agree (no copy; the optimizer drops gradients before the next backward, so the
// views never alias a later step's buffer). `has_grad` holds the bucket's flags, on the host.
void unpack(const at::Tensor& buffer, const std::vector<at::Tensor>& params, const at::Tensor& has_grad, double scale) {
  at::NoGradGuard no_grad;
  if (scale != 1.0) buffer.mul_(scale);
  const auto* flags = has_grad.data_ptr<float>();
  int64_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    auto p = params[i];
    const auto numel = p.numel();
    if (flags[i] > 0) {
      auto value = buffer.narrow(0, offset, numel).view(p.sizes());
      p.mutable_grad() = value.scalar_type() == p.scalar_type() ? value : value.to(p.scalar_type());
    }
    offset += numel;
  }
}

// The has-gradient flags of every bucket, copied to the host in one transfer: a copy per bucket
// would make the host wait for the GPU once per bucket, idling it between the unpacks.
std::vector<at::Tensor> flags_on_host(const std::vector<std::pair<at::Tensor, size_t>>& buffers_and_counts) {
  std::vector<at::Tensor> tails;
  std::vector<int64_t> counts;
  for (const auto& [buffer, count] : buffers_and_counts) {
    tails.push_back(buffer.narrow(0, buffer.numel() - static_cast<int64_t>(count), static_cast<int64_t>(count)));
    counts.push_back(static_cast<int64_t>(count));
  }
  if (tails.empty()) return {};
  auto all = at::cat(tails).cpu();
  return all.split_with_sizes(counts);
}

}  // namespace

GradientSync::GradientSync(LanguageModel& model, int64_t bucket_bytes)
    : pg_(model.process_groups()), placements_(parameter_placements(model)) {
  if (bucket_bytes <= 0) fail("gradient bucket size ", bucket_bytes, " bytes: expected a positive size");
  std::map<const c10::TensorImpl*, std::string> canonical_name;
  for (const auto& [name, t] : model.canonical_state_dict()) canonical_name.emplace(t.unsafeGetTensorImpl(), name);
  const auto registered = model.named_parameters(/*recurse=*/true);
  for (auto it = registered.end(); it != registered.begin();) {
    --it;
    const auto& tensor = it->value();
    if (!tensor.requires_grad()) continue;
    const auto& name = canonical_name.at(tensor.unsafeGetTensorImpl());
    params_.push_back(Param{.name = name, .tensor = tensor, .placement = placements_.at(name)});
  }

  // Buckets: consecutive parameters of one kind (dense or expert) up to bucket_bytes each.
  const double dp = static_cast<double>(pg_.dp_size());
  std::optional<size_t> open[2];
  int64_t bytes[2] = {0, 0};
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    const int kind = p.placement.expert() ? 1 : 0;
    const auto& group = kind ? pg_.expert_dp : pg_.dp;
    if (ProcessGroups::size(group) == 1) continue;
    if (!open[kind] || bytes[kind] >= bucket_bytes) {
      open[kind] = buckets_.size();
      bytes[kind] = 0;
      buckets_.push_back(Bucket{.group = group, .scale = 1.0 / dp});
    }
    p.bucket = *open[kind];
    buckets_[p.bucket].members.push_back(i);
    bytes[kind] += p.tensor.numel() * static_cast<int64_t>(sizeof(float));
  }

  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i];
    if (p.bucket == SIZE_MAX) continue;
    p.accumulator = torch::autograd::impl::grad_accumulator(p.tensor);
    p.hook = p.accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          mark_ready(i);
          return outputs;
        }));
  }
}

GradientSync::~GradientSync() {
  for (auto& p : params_)
    if (p.accumulator) p.accumulator->del_post_hook(p.hook);
}

void GradientSync::prepare_backward(bool last_for_its_gradients) {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = last_for_its_gradients;
}

void GradientSync::mark_ready(size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& p = params_[index];
  if (!armed_ || p.ready) return;
  p.ready = true;
  ++buckets_[p.bucket].ready;
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].members.size()) {
    launch(next_launch_++);
    ++started_in_backward_;
  }
}

void GradientSync::launch(size_t b) {
  auto& bucket = buckets_[b];
  std::vector<at::Tensor> tensors;
  for (auto i : bucket.members) tensors.push_back(params_[i].tensor);
  bucket.buffer = pack(tensors);
  bucket.work = all_reduce_sum_async_(bucket.buffer, bucket.group, cat("all-reduce of gradient bucket ", b));
}

void GradientSync::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (next_launch_ < buckets_.size()) launch(next_launch_++);
    std::vector<std::pair<at::Tensor, size_t>> buffers_and_counts;
    for (auto& bucket : buckets_) {
      bucket.work.wait();
      buffers_and_counts.emplace_back(bucket.buffer, bucket.members.size());
    }
    const auto flags = flags_on_host(buffers_and_counts);
    for (size_t b = 0; b < buckets_.size(); ++b) {
      auto& bucket = buckets_[b];
      std::vector<at::Tensor> tensors;
      for (auto i : bucket.members) tensors.push_back(params_[i].tensor);
      unpack(bucket.buffer, tensors, flags[b], bucket.scale);
      bucket.buffer = at::Tensor();
      bucket.ready = 0;
    }
    for (auto& p : params_) p.ready = false;
    next_launch_ = 0;
    armed_ = false;
    started_in_backward_ = 0;
  }
  // Experts that no other rank holds (ep = dp) are reduced by nobody, but their gradients still
  // hold every data-parallel rank's tokens: the division by dp is all that is left to do.
  at::NoGradGuard no_grad;
  for (auto& p : params_)
    if (p.bucket == SIZE_MAX && p.placement.expert() && pg_.dp_size() > 1 && p.tensor.grad().defined())
      p.tensor.mutable_grad().div_(static_cast<double>(pg_.dp_size()));
  sum_partial_gradients_over_tp();
}

void GradientSync::sum_partial_gradients_over_tp() {
  std::vector<at::Tensor> partial;
  for (const auto& p : params_)
    if (p.placement.sum_grad_over_tp) partial.push_back(p.tensor);
  if (partial.empty() || pg_.tp_size() == 1) return;
  auto buffer = pack(partial);
  all_reduce_sum_(buffer, pg_.tp, "all-reduce of gradients that are partial per tensor-parallel rank");
  unpack(buffer, partial, flags_on_host({{buffer, partial.size()}}).front(), 1.0);
}

double GradientSync::clip_grad_norm(double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  std::vector<double> shares;
  for (const auto& p : params_) {
    const auto& g = p.tensor.grad();
    if (!g.defined()) continue;
    // Copies of this gradient across the world: one per tensor-parallel rank unless split over tp,
    // one per rank of its data-parallel group (pipeline stages hold different parameters).
    const double copies = static_cast<double>(p.placement.split_over_tp() ? 1 : pg_.tp_size()) *
                          static_cast<double>(ProcessGroups::size(p.placement.expert() ? pg_.expert_dp : pg_.dp));
    grads.push_back(g);
    shares.push_back(1.0 / copies);
  }
  auto total = at::zeros({1}, at::kDouble);
  if (!grads.empty()) {
    auto share = at::tensor(shares, at::kDouble).to(grads.front().device());
    total = (train::squared_norms(grads) * share).sum().reshape({1});
  }
  auto reduced = total.contiguous();
  all_reduce_sum_(reduced, pg_.world, "all-reduce of the gradient norm");
  const double norm = std::sqrt(reduced.item<double>());
  if (max_norm > 0.0 && norm > max_norm) train::scale_in_place(grads, max_norm / (norm + 1e-6));
  return norm;
}

}  // namespace strata::parallel
