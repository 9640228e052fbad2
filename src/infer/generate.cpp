#include "strata/infer/generate.h"

#ifdef STRATA_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include "strata/core/error.h"
#include "strata/kernels/dispatch.h"
#include "strata/model/layer_allocation.h"

namespace strata::infer {

int64_t sample_token(const at::Tensor& logits, const SamplingOptions& o, at::Generator& generator) {
  auto l = logits.to(at::kCPU, at::kFloat);
  // Argmax of NaN logits is token 0 forever: a diverged model must say so instead.
  if (!at::isfinite(l).all().item<bool>())
    fail("the model's logits hold NaN or infinity: its weights are not finite (a checkpoint of a diverged run?)");
  if (o.temperature <= 0.0) return l.argmax().item<int64_t>();
  l = l / o.temperature;
  if (o.top_k > 0 && o.top_k < l.size(0)) {
    auto kth = std::get<0>(l.topk(o.top_k)).min();
    l = l.masked_fill(l < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p < 1.0) {
    auto [sorted, order] = l.sort(/*dim=*/0, /*descending=*/true);
    auto cumulative = at::softmax(sorted, 0).cumsum(0);
    // Keep the smallest prefix whose mass reaches top_p (the first token always stays).
    auto drop_sorted = (cumulative - at::softmax(sorted, 0)) >= o.top_p;
    auto drop = at::zeros_like(drop_sorted).scatter(0, order, drop_sorted);
    l = l.masked_fill(drop, -std::numeric_limits<float>::infinity());
  }
  return at::multinomial(at::softmax(l, 0), 1, /*replacement=*/false, generator).item<int64_t>();
}

bool decodes_with_cuda_graph(const LanguageModel& model, at::Device device) {
  if (!kernels::cuda_kernels_built() || !device.is_cuda()) return false;
  const char* env = std::getenv("STRATA_CUDA_GRAPHS");
  if (env != nullptr && std::string(env) == "0") return false;
  const auto& config = model.config();
  if (config.enable_mhc_connections) return false;
  // The mixers whose decode step neither synchronises with the host nor replaces its state.
  const auto pattern = resolve_layer_pattern(config);
  if (!pattern.mtp.empty()) return false;
  for (const auto& layer : pattern.layers) {
    if (layer.sequence && *layer.sequence != SequenceMixerKind::Attention &&
        *layer.sequence != SequenceMixerKind::GatedDeltaNet)
      return false;
    if (layer.channel && *layer.channel != ChannelMixerKind::Mlp) return false;
  }
  return true;
}

namespace {

// One decode step's forward. With a graph, the first call runs eagerly (capture needs kernels and
// libraries initialised), the second captures the step and every call from then on replays it:
// the token and position tensors it reads are updated in place between replays, and the logits it
// returns live in the graph's memory pool.
class DecodeStep {
 public:
  DecodeStep(LanguageModel& model, ForwardContext& ctx, const at::Tensor& token, bool use_graph)
      : model_(model), ctx_(ctx), token_(token), use_graph_(use_graph) {}

  at::Tensor run() {
    if (!use_graph_ || runs_++ == 0) return model_.forward(token_, ctx_);
#ifdef STRATA_CUDA
    if (!graph_) {
      // Capture runs on a side stream (CUDA refuses the default one) after the work queued so
      // far; capturing records the kernels without running them, so replay once now.
      c10::cuda::device_synchronize();
      graph_ = std::make_unique<at::cuda::CUDAGraph>();
      auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, token_.device().index());
      c10::cuda::CUDAStreamGuard on_side_stream(stream);
      graph_->capture_begin();
      logits_ = model_.forward(token_, ctx_);
      graph_->capture_end();
    }
    graph_->replay();
    return logits_;
#else
    fail("generate: CUDA graphs need a build with -DSTRATA_CUDA=ON");
#endif
  }

 private:
  LanguageModel& model_;
  ForwardContext& ctx_;
  at::Tensor token_;
  bool use_graph_;
  int64_t runs_ = 0;
#ifdef STRATA_CUDA
  std::unique_ptr<at::cuda::CUDAGraph> graph_;
#endif
  at::Tensor logits_;
};

}  // namespace

std::vector<int64_t> generate(LanguageModel& model, const std::vector<int64_t>& prompt, const SamplingOptions& o) {
  if (prompt.empty()) fail("generate: the prompt is empty (give at least one token)");
  if (o.top_p <= 0.0 || o.top_p > 1.0) fail("--top-p ", o.top_p, ": expected a value in (0, 1]");
  std::vector<int64_t> out;
  if (o.max_new_tokens <= 0) return out;
  at::NoGradGuard no_grad;
  model.eval();
  const auto device = model.parameters().front().device();
  auto generator = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(device);
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());

  const bool use_graph = o.decode == DecodeMode::automatic && decodes_with_cuda_graph(model, device);
  const bool fixed = use_graph || o.decode == DecodeMode::fixed_capacity;
  InferenceCache cache = fixed ? InferenceCache(prompt_length + o.max_new_tokens) : InferenceCache();
  ForwardContext ctx;
  ctx.cache = &cache;
  if (fixed) cache.set_positions(at::arange(prompt_length, long_options));
  auto logits = model.forward(at::tensor(prompt, at::kLong).unsqueeze(0).to(device), ctx);

  // Every decode step reads its token (and position) from these tensors, updated in place.
  auto token = at::empty({1, 1}, long_options);
  auto position = at::empty({1}, long_options);
  if (fixed) cache.set_positions(position);
  DecodeStep step(model, ctx, token, use_graph);
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    const auto next = sample_token(logits[0][-1], o, generator);
    out.push_back(next);
    const bool go_on = !o.on_token || o.on_token(next);
    const bool stop_token = std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end();
    if (!go_on || stop_token || i + 1 == o.max_new_tokens) break;
    token.fill_(next);
    position.fill_(prompt_length + i);
    logits = step.run();
  }
  return out;
}

}  // namespace strata::infer
