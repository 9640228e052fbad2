#include "strata/train/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/parameter_count.h"

#ifdef STRATA_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace strata::train {

namespace {

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
  e.parameters = static_cast<double>(count_parameters(c, pattern).total());
  e.parameter_bytes = 16.0 * e.parameters / static_cast<double>(std::max<int64_t>(shards, 1));
  // Per token: the logits, and the input of each canonical layer (only the layer inputs under
  // recompute) plus two more hidden-size tensors per layer otherwise; mHC's streams multiply the
  // residual.
  const double tokens = static_cast<double>(micro_batch_size) * static_cast<double>(seq_length);
  const double streams = c.enable_mhc_connections ? static_cast<double>(c.mhc_num_residual_streams) : 1.0;
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
