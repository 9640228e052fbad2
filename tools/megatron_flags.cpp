#include "megatron_flags.h"

#include "strata/core/error.h"

namespace strata::tools {

namespace {

using H = Handling;
using F = MegatronFlag;

constexpr const char* kFusion = "a kernel fusion choice: strata's kernels compute the same model";
constexpr const char* kNotLogged =
    "not logged: strata logs loss, accuracy, lr, grad_norm and tokens/s per step and the evaluations (--metrics)";
constexpr const char* kNoVocabFiles =
    "GPT-2 / BERT vocabulary and merge files are not read: give the tokenizer as HuggingFaceTokenizer (a "
    "tokenizer.json) or SentencePieceTokenizer with --tokenizer-model";
constexpr const char* kOneDataPath =
    "separate train / valid / test paths are not implemented: give --data-path, and --split its parts";
constexpr const char* kTokenDropping = "token dropping is not implemented: every token reaches its top-k experts";
constexpr const char* kCheckpointState =
    "strata's checkpoints always hold the optimizer and RNG state and a resumed run restores them (--finetune takes "
    "the weights alone)";

}  // namespace

const std::vector<MegatronFlag>& megatron_flags() {
  static const std::vector<MegatronFlag> table = {
      // Model construction and numerics.
      F{"--use-mcore-models", H::Same, F::Switch, "Megatron-Core models are the only ones (Megatron ignores it too)"},
      F{"--spec",
        H::Same,
        F::Values,
        "strata's hybrid stack spec builds the layers of Megatron's hybrid_stack_spec (mamba_stack_spec), and its GPT "
        "spec those of the local and Transformer Engine specs",
        {"megatron.core.models.hybrid.hybrid_layer_specs", "hybrid_stack_spec",
         "megatron.core.models.mamba.mamba_layer_specs", "mamba_stack_spec", "local"}},
      F{"--transformer-impl",
        H::Same,
        F::Value,
        "strata's own layers (its fused kernels where built) compute the same model as local or Transformer Engine",
        {"local", "transformer_engine"}},
      F{"--attention-backend",
        H::Same,
        F::Value,
        "the attention kernel: strata runs LibTorch's scaled_dot_product_attention (flash / memory-efficient on CUDA)",
        {"auto", "flash", "fused", "unfused", "local"}},
      F{"--use-flash-attn", H::Same, F::Switch, "LibTorch's attention uses flash kernels on CUDA where they apply"},
      F{"--softmax-type", H::Same, F::Value, "strata's attention is the vanilla softmax", {"vanilla"}},
      F{"--no-create-attention-mask-in-dataloader", H::Same, F::Switch,
        "strata builds no attention masks: the kernels apply the causal mask"},
      F{"--no-masked-softmax-fusion", H::Same, F::Switch, kFusion},
      F{"--no-bias-gelu-fusion", H::Same, F::Switch, kFusion},
      F{"--no-bias-swiglu-fusion", H::Same, F::Switch, kFusion},
      F{"--no-bias-dropout-fusion", H::Same, F::Switch, kFusion},
      F{"--no-rope-fusion", H::Same, F::Switch, kFusion},
      F{"--no-persist-layer-norm", H::Same, F::Switch, kFusion},
      F{"--no-gradient-accumulation-fusion", H::Same, F::Switch, kFusion},
      F{"--cross-entropy-loss-fusion", H::Same, F::Switch, kFusion},
      F{"--disable-mamba-mem-eff-path", H::Same, F::Switch, kFusion},
      F{"--mla-down-proj-fusion", H::Same, F::Switch, kFusion},
      F{"--moe-grouped-gemm", H::Same, F::Switch, "strata's experts always run as one grouped weight per layer"},
      F{"--moe-permute-fusion", H::Same, F::Switch, kFusion},
      F{"--moe-router-fusion", H::Same, F::Switch, kFusion},
      F{"--moe-shared-expert-overlap", H::Same, F::Switch,
        "a scheduling choice: the shared expert's output is the same"},
      F{"--moe-token-dispatcher-type",
        H::Same,
        F::Value,
        "how tokens reach their experts: strata's all-to-all (expert_dispatch.h) gives the same outputs",
        {"allgather", "alltoall", "flex"}},
      F{"--moe-router-dtype", H::Same, F::Value, "strata's router computes in float32", {"fp32"}},
      F{"--attention-softmax-in-fp32", H::Noted, F::Switch,
        "no switch: LibTorch's attention kernels choose the softmax's precision (float32 in its flash and "
        "memory-efficient CUDA kernels)"},
      F{"--cache-mla-latents", H::Noted, F::Switch, "an inference option: strata's MLA decode cache is its own"},
      F{"--openai-gelu", H::Refused, F::Switch,
        "strata's GELU is the exact (erf) one; the tanh approximation is not implemented"},
      F{"--quick-geglu", H::Refused, F::Switch, "quick GEGLU is not implemented"},
      F{"--rotary-interleaved", H::Refused, F::Switch,
        "strata rotates the two halves of each head (Megatron's default), not interleaved pairs"},
      F{"--no-rope-freq", H::Refused, F::Value, "layers without RoPE (NoPE) are not implemented"},
      F{"--window-size", H::Refused, F::Value, "sliding-window attention is not implemented"},
      F{"--window-attn-skip-freq", H::Refused, F::Value, "sliding-window attention is not implemented"},
      F{"--qk-clip", H::Refused, F::Switch, "QK-clip is not implemented"},
      F{"--apply-residual-connection-post-layernorm", H::Refused, F::Switch, "post-norm residuals are not implemented"},
      F{"--init-method-xavier-uniform", H::Refused, F::Switch,
        "Xavier initialisation is not implemented (normal, --init-method-std)"},
      F{"--heterogeneous-layers-config-path", H::Refused, F::Value, "heterogeneous layer configs are not implemented"},
      F{"--yarn-original-max-position-embeddings", H::Refused, F::Value,
        "--position-embedding-type yarn is not implemented as flags; set rotary_scaling in --model-config"},
      F{"--moe-z-loss-coeff", H::Refused, F::Value, "the router z-loss is not implemented"},
      F{"--moe-input-jitter-eps", H::Refused, F::Value, "router input jitter is not implemented"},
      F{"--moe-expert-capacity-factor", H::Refused, F::Value, kTokenDropping},
      F{"--moe-pad-expert-input-to-capacity", H::Refused, F::Switch, kTokenDropping},
      F{"--moe-token-drop-policy", H::Refused, F::Value, kTokenDropping},
      F{"--moe-router-num-groups", H::Refused, F::Value, "group-limited routing is not implemented"},
      F{"--moe-router-group-topk", H::Refused, F::Value, "group-limited routing is not implemented"},
      F{"--moe-router-enable-expert-bias", H::Refused, F::Switch,
        "strata does not update the expert bias while training (aux-loss-free balancing); a bias a config or "
        "checkpoint gives stays as loaded"},
      F{"--moe-router-bias-update-rate", H::Refused, F::Value, "strata does not update the expert bias while training"},
      F{"--moe-use-upcycling", H::Refused, F::Switch, "upcycling a dense checkpoint is not implemented"},
      F{"--moe-layer-recompute", H::Refused, F::Switch,
        "selective MoE recompute is not implemented (--recompute-granularity full recomputes whole layers)"},
      F{"--moe-latent-size", H::Refused, F::Value, "latent MoE is not implemented"},
      F{"--dsa-indexer-loss-coeff", H::Refused, F::Value,
        "the DSA indexer's KL loss is not implemented (as without the flag in Megatron, the indexer is not trained)"},
      F{"--distribute-saved-activations", H::Refused, F::Switch, "distributing saved activations is not implemented"},
      F{"--cpu-offloading", H::Refused, F::Switch, "offloading activations or weights is not implemented"},
      F{"--fine-grained-activation-offloading", H::Refused, F::Switch, "activation offloading is not implemented"},
      F{"--cuda-graph-impl", H::Same, F::Value, "strata trains without CUDA graphs (none)", {"none"}},
      F{"--enable-cuda-graph", H::Refused, F::Switch, "CUDA graphs for training are not implemented"},
      F{"--external-cuda-graph", H::Refused, F::Switch, "CUDA graphs for training are not implemented"},
      // Precision.
      F{"--fp16", H::Refused, F::Switch, "float16 training needs loss scaling, which strata does not have; use --bf16"},
      F{"--loss-scale", H::Refused, F::Value, "loss scaling (float16) is not implemented"},
      F{"--initial-loss-scale", H::Refused, F::Value, "loss scaling (float16) is not implemented"},
      F{"--fp8-format", H::Refused, F::Value, "FP8 training is not implemented"},
      F{"--fp8-recipe", H::Refused, F::Value, "FP8 training is not implemented"},
      F{"--fp4-format", H::Refused, F::Value, "FP4 training is not implemented"},
      F{"--grad-reduce-in-bf16", H::Refused, F::Switch, "strata reduces gradients in float32"},
      F{"--accumulate-allreduce-grads-in-fp32", H::Same, F::Switch,
        "strata's gradients are float32 (parameters stay float32 under --bf16) and are reduced so"},
      // Optimizer and schedule.
      F{"--optimizer",
        H::Same,
        F::Value,
        "Megatron's adam is AdamW (decoupled weight decay), strata's optimizer",
        {"adam"}},
      F{"--weight-decay-incr-style", H::Same, F::Value, "strata keeps the weight decay constant", {"constant"}},
      F{"--start-weight-decay", H::Refused, F::Value,
        "weight-decay increments are not implemented; use --weight-decay"},
      F{"--end-weight-decay", H::Refused, F::Value, "weight-decay increments are not implemented; use --weight-decay"},
      F{"--decoupled-lr", H::Refused, F::Value, "a separate rate for the input and output layers is not implemented"},
      F{"--decoupled-min-lr", H::Refused, F::Value,
        "a separate rate for the input and output layers is not implemented"},
      F{"--rampup-batch-size", H::Refused, F::Values, "batch-size ramp-up is not implemented"},
      // Parallelism.
      F{"--context-parallel-size", H::Same, F::Value, "context parallelism is not implemented; 1 is accepted", {"1"}},
      F{"--expert-tensor-parallel-size",
        H::Same,
        F::Value,
        "strata keeps each expert whole on its tensor-parallel ranks (1 is accepted)",
        {"1"}},
      F{"--overlap-grad-reduce", H::Same, F::Switch, "strata all-reduces gradients in buckets while backward runs"},
      F{"--ddp-average-in-collective", H::Same, F::Switch, "strata averages data-parallel gradients"},
      F{"--use-distributed-optimizer", H::Noted, F::Switch,
        "the optimizer state is not sharded: every data-parallel rank keeps it whole (the same updates, more memory)"},
      F{"--overlap-param-gather", H::Noted, F::Switch,
        "no parameter all-gather to overlap: the optimizer state is not sharded"},
      F{"--tp-comm-overlap", H::Noted, F::Switch, "tensor-parallel communication is not overlapped with compute"},
      F{"--deterministic-mode", H::Noted, F::Switch,
        "strata selects no deterministic kernels (CPU runs are deterministic; CUDA runs use LibTorch's defaults)"},
      F{"--use-torch-fsdp2", H::Refused, F::Switch, "FSDP is not implemented (strata shards over tp, pp and ep)"},
      F{"--use-megatron-fsdp", H::Refused, F::Switch, "FSDP is not implemented (strata shards over tp, pp and ep)"},
      F{"--pipeline-model-parallel-layout", H::Refused, F::Value,
        "explicit pipeline layouts are not implemented; mark the stages with '|' in --hybrid-layer-pattern"},
      F{"--account-for-embedding-in-pipeline-split", H::Refused, F::Switch,
        "explicit pipeline layouts are not implemented; mark the stages with '|' in --hybrid-layer-pattern"},
      F{"--account-for-loss-in-pipeline-split", H::Refused, F::Switch,
        "explicit pipeline layouts are not implemented; mark the stages with '|' in --hybrid-layer-pattern"},
      // Data and tokenizer.
      F{"--data-cache-path", H::Same, F::Value,
        "strata builds the indexed datasets' document, sample and shuffle indices in memory at the start of each "
        "run (the same indices Megatron caches there), so there is nothing to cache"},
      F{"--num-workers", H::Same, F::Value, "strata reads batches in the training process"},
      F{"--vocab-file", H::Refused, F::Value, kNoVocabFiles},
      F{"--merge-file", H::Refused, F::Value, kNoVocabFiles},
      F{"--train-data-path", H::Refused, F::Values, kOneDataPath},
      F{"--valid-data-path", H::Refused, F::Values, kOneDataPath},
      F{"--test-data-path", H::Refused, F::Values, kOneDataPath},
      // Checkpoints.
      F{"--ckpt-format",
        H::Noted,
        F::Value,
        "strata writes its own layout-free checkpoints (safetensors; docs/training.md), not Megatron's",
        {"torch", "torch_dist", "torch_dcp", "fsdp_dtensor"}},
      F{"--async-save", H::Noted, F::Switch, "checkpoints are saved synchronously (and atomically)"},
      F{"--async-strategy", H::Noted, F::Value, "checkpoints are saved synchronously (and atomically)"},
      F{"--use-persistent-ckpt-worker", H::Noted, F::Switch, "checkpoints are saved synchronously (and atomically)"},
      F{"--ckpt-fully-parallel-load", H::Noted, F::Switch, "every rank reads the layout-free checkpoint itself"},
      F{"--no-ckpt-fully-parallel-save", H::Noted, F::Switch, "rank 0 writes the layout-free checkpoint"},
      F{"--dist-ckpt-strictness", H::Noted, F::Value, "strata's loading is strict: every tensor must match"},
      F{"--dist-ckpt-optim-fully-reshardable", H::Noted, F::Switch, "strata's checkpoints load under any layout"},
      F{"--auto-detect-ckpt-format", H::Noted, F::Switch, "strata reads its own checkpoint format only"},
      F{"--no-save-optim", H::Refused, F::Switch, kCheckpointState},
      F{"--no-save-rng", H::Refused, F::Switch, kCheckpointState},
      F{"--no-load-optim", H::Refused, F::Switch, kCheckpointState},
      F{"--no-load-rng", H::Refused, F::Switch, kCheckpointState},
      // Logging.
      F{"--log-throughput", H::Same, F::Switch, "strata logs tokens/s at every logged step"},
      F{"--tensorboard-dir", H::Noted, F::Value,
        "strata writes no TensorBoard events; --metrics writes the logged values as JSON lines"},
      F{"--tensorboard-log-interval", H::Noted, F::Value, "strata writes no TensorBoard events"},
      F{"--log-params-norm", H::Noted, F::Switch, kNotLogged},
      F{"--log-num-zeros-in-grad", H::Noted, F::Switch, kNotLogged},
      F{"--log-validation-ppl-to-tensorboard", H::Noted, F::Switch, kNotLogged},
      F{"--log-timers-to-tensorboard", H::Noted, F::Switch, kNotLogged},
      F{"--log-memory-to-tensorboard", H::Noted, F::Switch, kNotLogged},
      F{"--log-world-size-to-tensorboard", H::Noted, F::Switch, kNotLogged},
      F{"--timing-log-level", H::Noted, F::Value, "strata has no timers to log", {"0", "1", "2"}},
      F{"--wandb-project", H::Noted, F::Value, "strata does not log to Weights & Biases"},
      F{"--wandb-exp-name", H::Noted, F::Value, "strata does not log to Weights & Biases"},
      F{"--wandb-save-dir", H::Noted, F::Value, "strata does not log to Weights & Biases"},
      F{"--check-weight-hash-across-dp-replicas-interval", H::Noted, F::Value,
        "the data-parallel replicas' weights are not hashed"},
  };
  return table;
}

void add_megatron_flags(CLI::App& cmd) {
  for (const auto& flag : megatron_flags()) {
    const char* label = flag.handling == Handling::Same    ? "accepted, the same in strata: "
                        : flag.handling == Handling::Noted ? "accepted, not applied: "
                                                           : "refused: ";
    const auto group = flag.handling == Handling::Refused ? "Megatron flags strata refuses"
                                                          : "Megatron flags strata accepts without applying them";
    const std::string help = label + flag.reason;
    if (flag.arity == MegatronFlag::Switch) {
      cmd.add_flag(flag.name, help)->group(group);
      continue;
    }
    auto* option = cmd.add_option(flag.name, help)->group(group);
    if (flag.arity == MegatronFlag::Values) option->expected(1, 16);
    if (!flag.choices.empty()) option->check(CLI::IsMember(flag.choices));
  }
}

std::vector<std::string> megatron_flag_notes(const CLI::App& cmd) {
  std::vector<std::string> notes;
  for (const auto& flag : megatron_flags()) {
    if (cmd.count(flag.name) == 0) continue;
    if (flag.handling == Handling::Refused) fail(flag.name, ": refused: ", flag.reason);
    if (flag.handling == Handling::Noted) notes.push_back(flag.name + ": not applied: " + flag.reason);
  }
  return notes;
}

}  // namespace strata::tools
