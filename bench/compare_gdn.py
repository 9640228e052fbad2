"""Gated DeltaNet fwd+bwd at seq 4096, bf16: strata beside HF transformers' PyTorch path
(Qwen3NextGatedDeltaNet with torch_chunk_gated_delta_rule) and, where it imports,
flash-linear-attention's Triton chunk_gated_delta_rule (PYTHONPATH=.peers/flash-linear-attention).
Same shapes as Qwen3-Next-80B's linear-attention layers. Prints a markdown table.
"""
import argparse
import json
import subprocess
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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata-bench", required=True)
    p.add_argument("--seq-length", type=int, default=4096)
    args = p.parse_args()
    T, H, Hk, Dk, Dv, hidden = args.seq_length, 32, 16, 128, 128, 2048

    out = subprocess.run([args.strata_bench, "--seq-length", str(T)], check=True, capture_output=True, text=True)
    strata = {r["what"]: r["ms"] for r in map(json.loads, out.stdout.strip().splitlines())}

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

    rows = [("layer fwd+bwd", "strata", strata["layer"]), ("layer fwd+bwd", "HF PyTorch path", median_ms(hf_layer))]

    def inputs():
        q = torch.nn.functional.normalize(torch.randn(1, T, H, Dk, device="cuda", dtype=torch.bfloat16), dim=-1)
        k = torch.nn.functional.normalize(torch.randn(1, T, H, Dk, device="cuda", dtype=torch.bfloat16), dim=-1)
        v = torch.randn(1, T, H, Dv, device="cuda", dtype=torch.bfloat16)
        g = torch.nn.functional.logsigmoid(torch.randn(1, T, H, device="cuda"))
        beta = torch.rand(1, T, H, device="cuda", dtype=torch.bfloat16)
        return [t.requires_grad_() for t in (q, k, v, g, beta)]

    q, k, v, g, beta = inputs()

    def hf_rule():
        o, _ = hf.torch_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=64)
        o.float().square().mean().backward()

    rows += [("delta rule fwd+bwd", "strata", strata["delta_rule"]), ("delta rule fwd+bwd", "HF PyTorch path", median_ms(hf_rule))]
    try:
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule

        def fla_rule():
            o, _ = chunk_gated_delta_rule(q, k, v, g, beta, scale=Dk ** -0.5)
            o.float().square().mean().backward()

        rows.append(("delta rule fwd+bwd", "flash-linear-attention (Triton)", median_ms(fla_rule)))
    except Exception as e:  # report why, do not hide it
        print(f"flash-linear-attention not measured: {type(e).__name__}: {e}")

    print(f"Gated DeltaNet, seq {T}, batch 1, {H} value heads / {Hk} key heads, dk=dv={Dk}, hidden {hidden}, bf16")
    print("| what | implementation | ms | strata speed-up |")
    print("| --- | --- | --- | --- |")
    for what, impl, ms in rows:
        mine = strata["layer" if what.startswith("layer") else "delta_rule"]
        print(f"| {what} | {impl} | {ms:.2f} | {ms / mine:.2f}x |")


if __name__ == "__main__":
    main()
