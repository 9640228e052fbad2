"""Gated DeltaNet on the GPU, bf16: strata beside flash-linear-attention's Triton
chunk_gated_delta_rule (the strongest peer a user can install; PYTHONPATH=--fla-path) and HF
transformers' PyTorch path (Qwen3NextGatedDeltaNet with torch_chunk_gated_delta_rule). Shapes of
Qwen3-Next-80B's linear-attention layers: batch 1, 32 value heads, 16 key heads, dk = dv = 128. The
rule alone takes q and k with the 16 key heads (each read by two value heads: fla's grouped value
heads, strata's key_heads) and, once more for its forward, repeated to the 32 value heads (the
rule's inputs until 2026-12-07's fourteenth session).
Prints one markdown table of times, achieved TFLOP/s and share of the H100's dense bf16 peak, then
a table of gradient errors against strata's float64 reference.

HF's layer switches to fla's kernels whenever fla imports, so HF is measured in this process
without fla on the path, and fla in a child process (--fla-only) with --fla-path on sys.path.

flash-linear-attention refuses its backward on Hopper with Triton >= 3.4.0 and < 3.7.1 (its
chunk_bwd_dqkwg guard, "incorrect results ... see #640"). For timing only, the child process
turns that guard off, and the gradient table says whether the gradients it then computes agree
with the float64 reference (strata_bench_gdn_grad_reference: the chunked rule's LibTorch twin in
float64 on the same inputs and output gradient).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

H, HK, DK, DV, HIDDEN, CHUNK = 32, 16, 128, 128, 2048, 64
PEAK_TFLOPS = 989.0  # H100 SXM dense bf16
FLA = "flash-linear-attention (Triton)"
# fwd+bwd is timed two ways (strata_bench_gdn says why): as a training step sees it (gradients set to
# none, the output's gradient given), and with a float32 loss and gradients summed into the last ones.
WITH_LOSS = ", loss + grad accumulation"
# The forward is also timed as 20 calls back to back (median_ms says why), and with q and k repeated
# to every value head.
BACK_TO_BACK = "delta rule fwd, back to back"
REPEATED = "delta rule fwd, key heads repeated"


def median_ms(fn, warmup=3, iters=10, calls=1):
    """Median milliseconds a call of fn takes, over iters rounds of `calls` calls between two
    synchronisations. One call a round also counts a launch latency and a synchronisation; several
    back to back (none between them, as a model's layers follow one another) give the GPU's time
    once the host runs ahead of it."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start) / calls)
    return sorted(times)[len(times) // 2]


def rule_flop(T, backward):
    """The chunked algorithm's matrix products, batch 1: per chunk and head 2 C^2 D each for k k^T,
    W, U, q k^T and the in-chunk output, 2 C D^2 each for W S, the state update and q S; fwd+bwd
    counts the backward as two products per forward product (3x the forward)."""
    chunks = math.ceil(T / CHUNK)
    forward = 2 * H * chunks * (5 * CHUNK * CHUNK * DK + 3 * CHUNK * DK * DV)
    return 3 * forward if backward else forward


def gdn_inputs(T, seed=0):
    """Random delta-rule inputs, bf16 (g in float32), requiring gradients: q and k [1, T, HK, DK], v [1,
    T, H, DV], g and beta [1, T, H]; and an output gradient d_out; the same for every process given the
    same seed."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    rand = lambda *shape, dtype=torch.bfloat16: torch.randn(*shape, device="cuda", generator=gen).to(dtype)
    q = torch.nn.functional.normalize(rand(1, T, HK, DK), dim=-1)
    k = torch.nn.functional.normalize(rand(1, T, HK, DK), dim=-1)
    v = rand(1, T, H, DV)
    g = torch.nn.functional.logsigmoid(rand(1, T, H, dtype=torch.float32))
    beta = torch.sigmoid(rand(1, T, H))
    d_out = rand(1, T, H, DV) / math.sqrt(T * H * DV)
    return [t.requires_grad_() for t in (q, k, v, g, beta)], d_out


def relative_errors(tensors, reference, prefix):
    """||x - ref|| / ||ref|| in float64 for out and each input gradient."""
    errors = {}
    for name in ("out", "q", "k", "v", "g", "beta"):
        ref = reference[f"float64/{name}"].double()
        errors[name] = ((tensors[f"{prefix}{name}"].double().cpu() - ref).norm() / ref.norm()).item()
    return errors


def run_strata(bench, T, kernels_on):
    env = {**os.environ, "STRATA_FUSED_KERNELS": "1" if kernels_on else "0"}
    out = subprocess.run([bench, "--seq-length", str(T)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{bench} --seq-length {T} failed (exit {out.returncode}):\n{out.stderr.strip()}")
    return {r["what"]: r["ms"] for r in map(json.loads, out.stdout.strip().splitlines())}


def hf_times(T, with_layer, with_backward):
    """HF's PyTorch path: the layer fwd+bwd (with_layer) and the rule fwd+bwd."""
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next import modeling_qwen3_next as hf

    times = {}
    if with_layer:
        config = Qwen3NextConfig(hidden_size=HIDDEN, linear_num_key_heads=HK, linear_num_value_heads=H,
                                 linear_key_head_dim=DK, linear_value_head_dim=DV, linear_conv_kernel_dim=4)
        layer = hf.Qwen3NextGatedDeltaNet(config, layer_idx=0).cuda()
        layer.chunk_gated_delta_rule = hf.torch_chunk_gated_delta_rule  # the PyTorch path, not fla's
        x = torch.randn(1, T, HIDDEN, device="cuda", requires_grad=True)

        def hf_layer():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = layer(x)
            y.float().square().mean().backward()

        times[f"layer fwd+bwd{WITH_LOSS}"] = median_ms(hf_layer)
        del layer, x
    if with_backward:
        (q, k, v, g, beta), _ = gdn_inputs(T)
        # HF's rule takes one key head per value head (its layer repeats them first).
        q, k = (t.detach().repeat_interleave(H // HK, dim=2).requires_grad_() for t in (q, k))

        def hf_rule():
            o, _ = hf.torch_chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=CHUNK)
            o.float().square().mean().backward()

        times[f"delta rule fwd+bwd{WITH_LOSS}"] = median_ms(hf_rule)
    torch.cuda.empty_cache()
    return times


def fla_child(args, T, fwd_only, check_files):
    """Runs this script with --fla-only in a child process; returns its JSON lines."""
    command = [sys.executable, __file__, "--fla-only", "--seq-lengths", str(T)]
    if fwd_only:
        command.append("--fwd-only")
    if check_files:
        command += ["--check", *check_files]
    child = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": args.fla_path})
    results = []
    for line in child.stdout.strip().splitlines():
        if line.startswith("{"):
            results.append(json.loads(line))
        else:
            print(line)
    if child.returncode != 0:
        print(f"flash-linear-attention at T = {T} not measured:", child.stderr.strip().splitlines()[-3:])
    return results


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata-bench", required=True, help="strata_bench_gdn")
    p.add_argument("--grad-reference", default="",
                   help="strata_bench_gdn_grad_reference (default: beside --strata-bench)")
    p.add_argument("--seq-lengths", default="4096,16384,65536")
    p.add_argument("--fwd-only-from", type=int, default=65536, help="from this T on, time forwards only")
    p.add_argument("--check-up-to", type=int, default=16384, help="gradient check at T up to this")
    p.add_argument("--fla-path", default="", help="folder holding flash-linear-attention's fla package")
    p.add_argument("--no-kernels-off", action="store_true", help="leave out strata's LibTorch twins (a shorter run)")
    p.add_argument("--no-hf", action="store_true", help="leave out HF's PyTorch path (a shorter run)")
    args = p.parse_args()
    grad_reference = args.grad_reference or os.path.join(os.path.dirname(args.strata_bench),
                                                         "strata_bench_gdn_grad_reference")
    from safetensors.torch import load_file, save_file

    rows, checks = [], []  # rows: (T, what, implementation, ms)
    workdir = tempfile.mkdtemp(prefix="compare_gdn_")
    for index, T in enumerate(int(t) for t in args.seq_lengths.split(",")):
        backward = T < args.fwd_only_from
        strata = run_strata(args.strata_bench, T, True)
        twins = {} if args.no_kernels_off else run_strata(args.strata_bench, T, False)
        hf = {} if args.no_hf else hf_times(T, with_layer=index == 0, with_backward=backward and T <= 16384)
        measured = [("layer fwd+bwd", "layer_step", index == 0), (f"layer fwd+bwd{WITH_LOSS}", "layer", index == 0),
                    ("delta rule fwd", "delta_rule_fwd", True),
                    (BACK_TO_BACK, "delta_rule_fwd_back_to_back", True),
                    (REPEATED, "delta_rule_fwd_repeated_key_heads", True),
                    ("delta rule fwd+bwd", "delta_rule_step", backward),
                    (f"delta rule fwd+bwd{WITH_LOSS}", "delta_rule", backward)]
        for what, key, wanted in measured:
            if wanted:
                rows.append((T, what, "strata", strata[key]))
                if twins:
                    rows.append((T, what, "strata, kernels off", twins[key]))
                if what in hf:
                    rows.append((T, what, "HF PyTorch path", hf[what]))
        check_files = []
        if backward and T <= args.check_up_to:
            inputs, reference = os.path.join(workdir, f"inputs_{T}.safetensors"), os.path.join(workdir, f"ref_{T}.safetensors")
            (q, k, v, g, beta), d_out = gdn_inputs(T)
            save_file({"q": q, "k": k, "v": v, "g": g, "beta": beta, "d_out": d_out}, inputs)
            subprocess.run([grad_reference, inputs, reference], check=True)
            computed = load_file(reference)  # holds strata's bf16 results beside the float64 ones
            checks.append((T, "strata (bf16 inputs)", relative_errors(computed, computed, "strata/")))
            check_files = [inputs, reference]
        if args.fla_path:
            for r in fla_child(args, T, not backward, check_files):
                if "errors" in r:
                    checks.append((T, f"{FLA}, guard off", r["errors"]))
                else:
                    what = r["what"] + (", guard off" if "bwd" in r["what"] else "")
                    rows.append((T, what, FLA, r["ms"]))

    print(f"Gated DeltaNet, batch 1, {H} value heads / {HK} key heads, dk = dv = {DK}, hidden {HIDDEN}, bf16, "
          f"chunk {CHUNK}")
    print(f"TFLOP/s counts the chunked algorithm's matrix products: forward 2 H N (5 C^2 D + 3 C D^2) for N = T / C "
          f"chunks, fwd+bwd 3x that; % of {PEAK_TFLOPS:.0f} TFLOP/s (H100 dense bf16). 'guard off': fla's backward "
          f"with its Triton-version guard turned off, timing only (see the gradient table). fwd+bwd as a training "
          f"step sees it: gradients set to none, the output's gradient given; '{WITH_LOSS[2:]}': a float32 loss (cast, "
          f"square, mean) and the gradients summed into the last iteration's, as timed before 2026-12-06's seventh "
          f"session. Each call is timed between two synchronisations; 'back to back': 20 forwards with none between "
          f"them, per call (the GPU's time, as a model runs its layers).")
    print("| T | what | implementation | ms | TFLOP/s | % of peak | strata speed-up |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    mine = {(T, what): ms for T, what, impl, ms in rows if impl == "strata"}
    for T, what, impl, ms in rows:
        base = what.removesuffix(", guard off")
        if base.startswith("delta rule"):
            tflops = rule_flop(T, "bwd" in base) / (ms * 1e-3) / 1e12
            rate = f"{tflops:.1f} | {100 * tflops / PEAK_TFLOPS:.1f}%"
        else:
            rate = "— | —"
        print(f"| {T} | {what} | {impl} | {ms:.3f} | {rate} | {ms / mine[(T, base)]:.2f}x |")

    print("\nGradients against strata's float64 reference (||x - x64|| / ||x64||, same inputs and output gradient)")
    print("| T | implementation | out | dq | dk | dv | dg | dbeta |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for T, impl, e in checks:
        print(f"| {T} | {impl} | " + " | ".join(f"{e[n]:.1e}" for n in ("out", "q", "k", "v", "g", "beta")) + " |")


def fla_only(T, fwd_only, check):
    """fla's chunk_gated_delta_rule, forward and backward; prints one JSON line per measurement, and
    (check) its output and gradients' errors against the float64 reference."""
    import fla.ops.common.chunk_o as chunk_o
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    if not hasattr(chunk_o, "TRITON_ABOVE_3_4_0"):
        print("flash-linear-attention's backward guard (chunk_o.TRITON_ABOVE_3_4_0) not found: left as it is")
    chunk_o.TRITON_ABOVE_3_4_0 = False  # timing only: the guard's gradients are checked below
    (q, k, v, g, beta), d_out = gdn_inputs(T)
    rule = lambda: chunk_gated_delta_rule(q, k, v, g, beta, scale=1.0)[0]
    print(json.dumps({"what": "delta rule fwd", "ms": median_ms(rule)}))
    print(json.dumps({"what": BACK_TO_BACK, "ms": median_ms(rule, calls=20)}))
    q_repeated, k_repeated = (t.detach().repeat_interleave(H // HK, dim=2) for t in (q, k))
    with torch.no_grad():
        print(json.dumps({"what": REPEATED, "ms": median_ms(
            lambda: chunk_gated_delta_rule(q_repeated, k_repeated, v, g, beta, scale=1.0))}))
    if fwd_only:
        return
    def step():  # as strata_bench_gdn's: gradients set to none, the output's gradient given
        for t in (q, k, v, g, beta):
            t.grad = None
        rule().backward(d_out)

    print(json.dumps({"what": "delta rule fwd+bwd", "ms": median_ms(step)}))
    print(json.dumps({"what": f"delta rule fwd+bwd{WITH_LOSS}",
                      "ms": median_ms(lambda: rule().float().square().mean().backward())}))
    if check:
        from safetensors.torch import load_file

        x = {name: t.cuda().requires_grad_() for name, t in load_file(check[0]).items() if name != "d_out"}
        out = chunk_gated_delta_rule(x["q"], x["k"], x["v"], x["g"], x["beta"], scale=1.0)[0]
        out.backward(load_file(check[0])["d_out"].cuda())
        computed = {"fla/out": out.detach(), **{f"fla/{n}": t.grad for n, t in x.items()}}
        print(json.dumps({"errors": relative_errors(computed, load_file(check[1]), "fla/")}))


if __name__ == "__main__":
    if "--fla-only" in sys.argv:
        argv = sys.argv
        check = argv[argv.index("--check") + 1:argv.index("--check") + 3] if "--check" in argv else []
        fla_only(int(argv[argv.index("--seq-lengths") + 1]), "--fwd-only" in argv, check)
    else:
        main()
