"""Do models that `strata export` wrote load in HF transformers and compute what strata computes?

Each CHECK_DIR holds an exported HF folder in CHECK_DIR/model (bench/gpu.sh's `export` phase makes
them: a run started from each tests/fixtures/hf fixture, trained by strata, exported). For each,
HF transformers loads the folder (AutoModelForCausalLM, float32, eager attention), runs seeded
random tokens forward and backward, and writes what it computed as CHECK_DIR/reference.safetensors
(the layout tests/fixtures/hf uses: input_ids, logits, loss, grad.<parameter>). Then
`strata hf-check CHECK_DIR --save-logits ...` runs strata on the same folder and tokens and
compares logits, loss and every gradient; this script adds the largest absolute logit difference.
A row passes when hf-check passes and max |logits_HF - logits_strata| <= --tolerance (1e-4).

    python3 scripts/check_hf_export.py --strata build-gpu/strata CHECK_DIR...

Nothing but HF transformers itself runs the model: the architectures are transformers' own
(qwen3, qwen3_next, nemotron_h, deepseek_v32 in transformers 5), so no trust_remote_code. On
--device cuda, TF32 is off and Nemotron-H runs HF's PyTorch Mamba path (use_mamba_kernels=False):
its CUDA kernels clamp dt differently (hf/nemotron_h.cpp says how).
"""
import argparse
import json
import os
import re
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file


def hf_reference(model_dir, device, seq, seed):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    overrides = {}
    if config.model_type == "nemotron_h":
        overrides["use_mamba_kernels"] = False
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager",
                                                 **overrides).to(device)
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, config.vocab_size, (2, seq), generator=generator)
    out = model(input_ids=input_ids.to(device), labels=input_ids.to(device), use_cache=False)
    out.loss.backward()
    tensors = {"input_ids": input_ids, "logits": out.logits.detach().float().cpu(),
               "loss": out.loss.detach().float().cpu().reshape(1)}
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            tensors[f"grad.{name}"] = parameter.grad.detach().float().cpu()
    return config.model_type, {k: v.contiguous() for k, v in tensors.items()}


def strata_check(strata, check_dir, device):
    logits_file = os.path.join(check_dir, "strata_logits.safetensors")
    run = subprocess.run([strata, "hf-check", check_dir, "--device", device, "--reference-device", device,
                          "--save-logits", logits_file],
                         capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.startswith("hf-check ")]
    if not lines:
        return None, f"hf-check failed (exit {run.returncode}): {run.stderr.strip()[-400:]}"
    return load_file(logits_file)["logits"], lines[-1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strata", required=True, help="the strata binary")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where HF and strata run")
    p.add_argument("--seq", type=int, default=64, help="tokens per sequence (2 sequences)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest |logits_HF - logits_strata| that passes")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("check_dirs", nargs="+", help="folders each holding an exported model in model/")
    args = p.parse_args()
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, device {args.device}, "
          f"2 x {args.seq} tokens, seed {args.seed}")
    rows = []
    for check_dir in args.check_dirs:
        name = os.path.basename(os.path.normpath(check_dir))
        row = {"name": name}
        try:
            row["model_type"], reference = hf_reference(os.path.join(check_dir, "model"), args.device, args.seq,
                                                        args.seed)
            save_file(reference, os.path.join(check_dir, "reference.safetensors"))
            strata_logits, summary = strata_check(args.strata, check_dir, args.device)
            row["hf_check"] = summary
            if strata_logits is not None:
                row["logits_max_abs"] = (strata_logits.double() - reference["logits"].double()).abs().max().item()
                rel = re.search(r"logits_rel=(\S+)", summary)
                row["logits_rel"] = float(rel.group(1)) if rel else None
            row["pass"] = (strata_logits is not None and summary.endswith("PASS")
                           and row["logits_max_abs"] <= args.tolerance)
        except Exception as e:  # one architecture failing must not hide the others' rows
            row["hf_check"] = f"{type(e).__name__}: {e}"[:400]
            row["pass"] = False
        rows.append(row)

    print(f"{'export':<16} {'model_type':<14} {'max|dlogits|':>13} {'logits_rel':>11}  result  hf-check")
    for r in rows:
        max_abs = f"{r['logits_max_abs']:.3e}" if "logits_max_abs" in r else "-"
        rel = f"{r['logits_rel']:.3e}" if r.get("logits_rel") is not None else "-"
        print(f"{r['name']:<16} {r.get('model_type', '-'):<14} {max_abs:>13} {rel:>11}  "
              f"{'PASS' if r['pass'] else 'FAIL':<6}  {r['hf_check']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    sys.exit(0 if all(r["pass"] for r in rows) else 1)


if __name__ == "__main__":
    main()
