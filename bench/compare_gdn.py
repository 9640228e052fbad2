"""Gated DeltaNet fwd+bwd at seq 4096, bf16: strata beside HF transformers' PyTorch path
(Qwen3NextGatedDeltaNet with torch_chunk_gated_delta_rule) and, where it imports,
flash-linear-attention's Triton chunk_gated_delta_rule (PYTHONPATH=.peers/flash-linear-attention).
Same shapes as Qwen3-Next-80B's linear-attention layers. Prints a markdown table.

HF's layer switches to fla's kernels whenever fla imports, so HF is measured in this process
without fla on the path, and fla in a child process (--fla-only) with --fla-path on sys.path.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch


def median_ms(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return sorted(times)[len(times) // 2]


def gdn_inputs(T, H, Dk, Dv):
    """Random delta-rule inputs, [1, T, H, ...], bf16 (g in float32), requiring gradients."""
    q = torch.nn.functional.normalize(torch.randn(1, T, H, Dk, device="cuda", dtype=torch.bfloat16), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(1, T, H, Dk, device="cuda", dtype=torch.bfloat16), dim=-1)
    v = torch.randn(1, T, H, Dv, device="cuda", dtype=torch.bfloat16)
    g = torch.nn.functional.logsigmoid(torch.randn(1, T, H, device="cuda"))
    beta = torch.rand(1, T, H, device="cuda", dtype=torch.bfloat16)
    return [t.requires_grad_() for t in (q, k, v, g, beta)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata-bench", required=True)
    p.add_argument("--seq-length", type=int, default=4096)
    p.add_argument("--fla-path", default="", help="folder holding flash-linear-attention's fla package")
    args = p.parse_args()
    T, H, Hk, Dk, Dv, hidden = args.seq_length, 32, 16, 128, 128, 2048

    def run_strata(kernels_on):
        env = {**os.environ, "STRATA_FUSED_KERNELS": "1" if kernels_on else "0"}
        out = subprocess.run([args.strata_bench, "--seq-length", str(T)], check=True, capture_output=True, text=True,
                             env=env)
        return {r["what"]: r["ms"] for r in map(json.loads, out.stdout.strip().splitlines())}

    strata, twins = run_strata(True), run_strata(False)

    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next import modeling_qwen3_next as hf

    config = Qwen3NextConfig(hidden_size=hidden, linear_num_key_heads=Hk, linear_num_value_heads=H,
                             linear_key_head_dim=Dk, linear_value_head_dim=Dv, linear_conv_kernel_dim=4)
    layer = hf.Qwen3NextGatedDeltaNet(config, layer_idx=0).cuda()
    layer.chunk_gated_delta_rule = hf.torch_chunk_gated_delta_rule  # the PyTorch path, not fla's
    x = torch.randn(1, T, hidden, device="cuda", requires_grad=True)

    def hf_layer():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = layer(x)
        y.float().square().mean().backward()

    rows = [("layer fwd+bwd", "strata", strata["layer"]), ("layer fwd+bwd", "strata, kernels off", twins["layer"]),
            ("layer fwd+bwd", "HF PyTorch path", median_ms(hf_layer))]

    q, k, v, g, beta = gdn_inputs(T, H, Dk, Dv)

    def hf_rule():
        o, _ = hf.torch_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=64)
        o.float().square().mean().backward()

    rows += [("delta rule fwd+bwd", "strata", strata["delta_rule"]),
             ("delta rule fwd+bwd", "strata, kernels off", twins["delta_rule"]),
             ("delta rule fwd+bwd", "HF PyTorch path", median_ms(hf_rule)),
             ("delta rule fwd", "strata", strata["delta_rule_fwd"]),
             ("state scan fwd+bwd", "strata", strata["state_scan"]),
             ("state scan fwd+bwd", "strata, kernels off", twins["state_scan"])]
    if args.fla_path:
        child = subprocess.run([sys.executable, __file__, "--fla-only", "--seq-length", str(T)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": args.fla_path})
        for line in child.stdout.strip().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                rows.append((r["what"], "flash-linear-attention (Triton)", r["ms"]))
            else:
                print(line)
        if child.returncode != 0:
            print("flash-linear-attention not measured:", child.stderr.strip().splitlines()[-1:])

    print(f"Gated DeltaNet, seq {T}, batch 1, {H} value heads / {Hk} key heads, dk=dv={Dk}, hidden {hidden}, bf16")
    print("| what | implementation | ms | strata speed-up |")
    print("| --- | --- | --- | --- |")
    for what, impl, ms in rows:
        mine = strata["layer" if what.startswith("layer") else "state_scan" if what.startswith("state")
                      else "delta_rule" if "bwd" in what else "delta_rule_fwd"]
        print(f"| {what} | {impl} | {ms:.2f} | {ms / mine:.2f}x |")


def fla_only(T):
    """fla's chunk_gated_delta_rule, forward and backward; prints one JSON line per measurement."""
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule
    H, Dk, Dv = 32, 128, 128
    q, k, v, g, beta = gdn_inputs(T, H, Dk, Dv)
    print(json.dumps({"what": "delta rule fwd", "ms": median_ms(lambda: chunk_gated_delta_rule(q, k, v, g, beta, scale=Dk ** -0.5))}))

    def fwd_bwd():
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta, scale=Dk ** -0.5)
        o.float().square().mean().backward()

    try:
        print(json.dumps({"what": "delta rule fwd+bwd", "ms": median_ms(fwd_bwd)}))
    except RuntimeError as e:  # fla refuses its backward on some Triton versions: say so
        print(f"flash-linear-attention backward not measured: {e}")


if __name__ == "__main__":
    if "--fla-only" in sys.argv:
        fla_only(int(sys.argv[sys.argv.index("--seq-length") + 1]))
    else:
        main()
