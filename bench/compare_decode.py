"""Decode tokens/s of a small hybrid model (Qwen3-Next layout: Gated DeltaNet and gated softmax
attention, 3:1) in strata beside HF transformers' generate on the same GPU, fp32, greedy, batch 1.
The model is random (HF initialisation), saved once and loaded by both.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

import torch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strata-bench", required=True)
    p.add_argument("--prompt-length", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=256)
    args = p.parse_args()

    from transformers import Qwen3NextConfig, Qwen3NextForCausalLM

    layers = 8
    config = Qwen3NextConfig(
        hidden_size=1024, intermediate_size=2816, num_hidden_layers=layers, num_attention_heads=8,
        num_key_value_heads=2, head_dim=128, linear_num_key_heads=8, linear_num_value_heads=16,
        linear_key_head_dim=64, linear_value_head_dim=64, vocab_size=32768,
        layer_types=["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(layers)],
        mlp_only_layers=list(range(layers)), tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen3NextForCausalLM(config).cuda().eval()
    folder = tempfile.mkdtemp()
    model.save_pretrained(folder)

    def strata_run(env=None):
        out = subprocess.run([args.strata_bench, "--hf", folder, "--prompt-length", str(args.prompt_length),
                              "--new-tokens", str(args.new_tokens)], check=True, capture_output=True, text=True,
                             env=None if env is None else {**os.environ, **env})
        return json.loads(out.stdout.strip().splitlines()[-1])

    strata = strata_run()
    strata_eager = strata_run({"STRATA_CUDA_GRAPHS": "0"})

    prompt = torch.randint(config.vocab_size, (1, args.prompt_length), device="cuda")

    def seconds(n):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    seconds(args.new_tokens)
    hf_rate = (args.new_tokens - 1) / (seconds(args.new_tokens) - seconds(1))
    print(f"decode: Qwen3-Next layout, {layers} layers (6 Gated DeltaNet, 2 gated attention), hidden 1024, "
          f"dense MLP, fp32, batch 1, prompt {args.prompt_length}, {args.new_tokens} new tokens, greedy")
    print("| implementation | decode tokens/s | strata speed-up |")
    print("| --- | --- | --- |")
    graph = "CUDA graph" if strata["cuda_graph"] else "no CUDA graph"
    print(f"| strata ({graph}) | {strata['decode_tokens_per_s']:.1f} | 1.00x |")
    print(f"| strata, eager steps (STRATA_CUDA_GRAPHS=0) | {strata_eager['decode_tokens_per_s']:.1f} | "
          f"{strata['decode_tokens_per_s'] / strata_eager['decode_tokens_per_s']:.2f}x |")
    print(f"| HF generate (PyTorch path) | {hf_rate:.1f} | {strata['decode_tokens_per_s'] / hf_rate:.2f}x |")


if __name__ == "__main__":
    main()
