"""More DeepSeek-V4 reference fixtures from HF transformers, for `strata hf-check`: other seeds,
lengths and configs than tests/fixtures/hf/deepseek_v4 (sequences many sliding windows long,
lengths that are not a multiple of either compression rate, other compression rates, window,
output groups, stream count and top-k, and hash-routed MoE layers where HF has them).

Run where python3 has torch and transformers (the GPU machine has both; the models run on its CPU
in float32, as the fixture in tests/fixtures/hf/ was made):
  python3 scripts/gen_deepseek_v4_fixtures.py OUT_DIR
Each OUT_DIR/<name>/ gets model/ (config.json, model.safetensors), reference.safetensors
(input_ids, logits, loss, hidden_states.N, grad.<parameter>) and modules.txt, the layout of
tests/fixtures/hf/ (its README.md).
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file

# The fixture of tests/fixtures/hf/deepseek_v4: 3 layers, one of each attention kind.
BASE = dict(vocab_size=256, hidden_size=64, moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=1, head_dim=32, q_lora_rank=32, partial_rotary_factor=0.25, n_routed_experts=4,
            num_experts_per_tok=2, n_shared_experts=1,
            layer_types=["sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"],
            compress_rates={"compressed_sparse_attention": 4, "heavily_compressed_attention": 16},
            mlp_layer_types=["moe", "moe", "moe"], hc_mult=4, hc_sinkhorn_iters=20, sliding_window=16, o_groups=2,
            o_lora_rank=16, index_n_heads=2, index_head_dim=16, index_topk=8, num_nextn_predict_layers=0)

# name: (seed, sequence length, changes to BASE)
VARIANTS = {
    # 300 tokens: ~19 sliding windows, 75 compressed blocks for the indexer to choose 8 from, 18 HCA blocks.
    "deepseek_v4_seed1_seq300": (1, 300, {}),
    # 37 tokens, a multiple of neither rate; another window, rates, groups, stream count and top-k.
    "deepseek_v4_seed2_seq37": (2, 37, dict(sliding_window=8, compress_rates={"compressed_sparse_attention": 8,
                                                                               "heavily_compressed_attention": 32},
                                            o_groups=4, hc_mult=2, index_topk=3)),
    # Four layers, the attention kinds in another order.
    "deepseek_v4_seed3_layers4": (3, 80, dict(num_hidden_layers=4, layer_types=[
        "compressed_sparse_attention", "heavily_compressed_attention", "sliding_attention",
        "compressed_sparse_attention"], mlp_layer_types=["moe"] * 4)),
    # The first layer's experts chosen by token id (DeepSeek-V4's hash routing).
    "deepseek_v4_seed4_hash_moe": (4, 64, dict(mlp_layer_types=["hash_moe", "moe", "moe"])),
}


def make_fixture(directory, seed, seq, changes):
    config = transformers.DeepseekV4Config(**{**BASE, **changes})
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():  # norms start at 1 and biases at 0 in HF: move them so that they are tested
        g = torch.Generator().manual_seed(seed + 7)
        for name, p in model.named_parameters():
            if p.dtype.is_floating_point and ("norm" in name or name.endswith("bias")):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        for module in model.modules():  # hash routing's token -> experts table: distinct experts per token
            table = getattr(module, "tid2eid", None)
            if torch.is_tensor(table):
                picks = [torch.randperm(config.n_routed_experts, generator=g)[:table.shape[1]] for _ in range(table.shape[0])]
                table.copy_(torch.stack(picks).to(table.dtype))
    model.eval()
    model.save_pretrained(os.path.join(directory, "model"), safe_serialization=True)
    ids = torch.randint(0, config.vocab_size, (2, seq), generator=torch.Generator().manual_seed(seed + 1))
    out = model(input_ids=ids, labels=ids, output_hidden_states=True, use_cache=False)
    tensors = {"input_ids": ids, "logits": out.logits.detach(), "loss": out.loss.detach().reshape(1)}
    tensors.update({f"hidden_states.{i}": h.detach() for i, h in enumerate(out.hidden_states)})
    out.loss.backward()
    tensors.update({f"grad.{n}": p.grad for n, p in model.named_parameters() if p.grad is not None})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, "reference.safetensors"))
    with open(os.path.join(directory, "modules.txt"), "w") as f:
        f.write(str(model))
    return dict(loss=float(out.loss), params=sum(p.numel() for p in model.parameters()))


def main():
    out_dir = sys.argv[1]
    torch.set_num_threads(min(16, os.cpu_count()))
    report = dict(transformers=transformers.__version__, torch=torch.__version__, fixtures={})
    for name, (seed, seq, changes) in VARIANTS.items():
        try:
            report["fixtures"][name] = dict(seed=seed, seq=seq, changes=changes,
                                            **make_fixture(os.path.join(out_dir, name), seed, seq, changes))
            print("OK", name, report["fixtures"][name], flush=True)
        except Exception as e:  # a config HF refuses: say so and go on with the others
            report["fixtures"][name] = dict(error=repr(e)[:1000])
            print("FAILED", name, repr(e)[:1000], flush=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
