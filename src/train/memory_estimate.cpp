#include "strata/train/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"

#ifdef STRATA_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace strata::train {

namespace {

double sequence_mixer_parameters(SequenceMixerKind kind, const TransformerConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  switch (kind) {
    case SequenceMixerKind::Attention: {
      const double query_rows = (c.attention_output_gate ? 2.0 : 1.0) * static_cast<double>(c.num_attention_heads);
      const double qkv = (query_rows + 2.0 * static_cast<double>(c.num_query_groups)) * static_cast<double>(c.kv_channels);
      return h * qkv + static_cast<double>(c.num_attention_heads * c.kv_channels) * h;
    }
    case SequenceMixerKind::GatedDeltaNet: {
      const double keys = static_cast<double>(c.linear_num_key_heads * c.linear_key_head_dim);
      const double values = static_cast<double>(c.linear_num_value_heads * c.linear_value_head_dim);
      return h * (2.0 * keys + 2.0 * values) + values * h;
    }
    case SequenceMixerKind::Mamba2: {
      const double inner = static_cast<double>(c.mamba_heads() * c.mamba_head_dim);
      return h * (2.0 * inner + 2.0 * static_cast<double>(c.mamba_num_groups * c.mamba_state_dim)) + inner * h;
    }
    case SequenceMixerKind::MultiLatentAttention:
    case SequenceMixerKind::DeepSeekSparseAttention: {
      const double heads = static_cast<double>(c.num_attention_heads);
      const double q_head = static_cast<double>(c.qk_head_dim + c.qk_pos_emb_head_dim);
      const double q = c.q_lora_rank > 0 ? static_cast<double>(c.q_lora_rank) * (h + heads * q_head) : h * heads * q_head;
      const double kv_lora = static_cast<double>(c.kv_lora_rank);
      return q + h * kv_lora + kv_lora * heads * static_cast<double>(c.qk_head_dim + c.v_head_dim) +
             heads * static_cast<double>(c.v_head_dim) * h;
    }
  }
  return 0.0;
}

double mlp_parameters(double hidden, double ffn, bool gated) { return hidden * ffn * (gated ? 3.0 : 2.0); }

double channel_mixer_parameters(ChannelMixerKind kind, const TransformerConfig& c) {
  const double h = static_cast<double>(c.hidden_size);
  if (kind == ChannelMixerKind::Mlp) return mlp_parameters(h, static_cast<double>(c.ffn_hidden_size), c.gated_linear_unit);
  return static_cast<double>(c.num_moe_experts) *
             mlp_parameters(h, static_cast<double>(c.moe_ffn_hidden_size), c.gated_linear_unit) +
         mlp_parameters(h, static_cast<double>(c.moe_shared_expert_intermediate_size), c.gated_linear_unit);
}

double gib(double bytes) { return bytes / static_cast<double>(1ull << 30); }

// /proc/meminfo's MemAvailable, in bytes; 0 when unreadable.
double mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (in >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024.0;
    in.ignore(1 << 10, '\n');
  }
  return 0.0;
}

// What the cgroup (v2) still lets this process allocate; 0 when unlimited or unknown.
double cgroup_headroom() {
  std::ifstream max_in("/sys/fs/cgroup/memory.max"), current_in("/sys/fs/cgroup/memory.current");
  std::string max_text;
  double current = 0;
  if (!(max_in >> max_text) || max_text == "max" || !(current_in >> current)) return 0.0;
  return std::max(0.0, std::stod(max_text) - current);
}

}  // namespace

MemoryEstimate estimate_training_memory(const TransformerConfig& c, int64_t micro_batch_size, int64_t seq_length,
                                        bool recompute, bool bf16, int64_t shards) {
  const auto pattern = resolve_layer_pattern(c);
  const double h = static_cast<double>(c.hidden_size), vocab = static_cast<double>(c.vocab_size);
  MemoryEstimate e;
  e.parameters = vocab * h * (c.share_embeddings_and_output_weights ? 1.0 : 2.0);
  for (const auto& layer : pattern.layers) {
    if (layer.sequence) e.parameters += sequence_mixer_parameters(*layer.sequence, c);
    if (layer.channel) e.parameters += channel_mixer_parameters(*layer.channel, c);
  }
  e.parameter_bytes = 16.0 * e.parameters / static_cast<double>(std::max<int64_t>(shards, 1));
  // Per token: the logits, and the input of each canonical layer (only the layer inputs under
  // recompute) plus two more hidden-size tensors per layer otherwise; mHC's streams multiply the
  // residual.
  const double tokens = static_cast<double>(micro_batch_size) * static_cast<double>(seq_length);
  const double streams = c.enable_hyper_connections ? static_cast<double>(c.num_residual_streams) : 1.0;
  const double element = bf16 ? 2.0 : 4.0;
  const double per_layer = h * (streams + (recompute ? 0.0 : 2.0)) * element;
  e.activation_bytes = tokens * (vocab * element + per_layer * static_cast<double>(pattern.num_canonical_layers()));
  return e;
}

double available_memory_bytes(const at::Device& device) {
  if (device.is_cpu()) {
    const double available = mem_available(), headroom = cgroup_headroom();
    return headroom > 0.0 && (available == 0.0 || headroom < available) ? headroom : available;
  }
#ifdef STRATA_CUDA
  if (device.is_cuda()) {
    const c10::cuda::CUDAGuard guard(device.has_index() ? device.index() : 0);
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) == cudaSuccess) return static_cast<double>(free);
  }
#endif
  return 0.0;
}

void check_memory_fits(const MemoryEstimate& e, int64_t ranks_sharing_memory, const at::Device& device,
                       int64_t micro_batch_size, int64_t seq_length) {
  const double available = available_memory_bytes(device);
  const double need = e.total() * static_cast<double>(ranks_sharing_memory);
  if (available == 0.0 || need <= available) return;
  std::ostringstream text;
  text.precision(3);
  text << "this run needs at least " << gib(need) << " GiB on " << device.str() << ", more than the " << gib(available)
       << " GiB available: " << static_cast<long long>(e.parameters) << " parameters take " << gib(e.parameter_bytes)
       << " GiB with their gradients and AdamW state, the activations of --micro-batch-size " << micro_batch_size
       << " x --seq-length " << seq_length << " at least " << gib(e.activation_bytes) << " GiB";
  if (ranks_sharing_memory > 1) text << ", on each of " << ranks_sharing_memory << " ranks sharing this memory";
  text << ". Make the model or the micro-batch smaller (or use --recompute-granularity full).";
  throw Error(text.str());
}

}  // namespace strata::train
