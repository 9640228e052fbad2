#!/usr/bin/env bash
# Multi-GPU scaling over NCCL (run on a machine with 2+ GPUs, after bench/gpu.sh built build-gpu/):
# the dense benchmark model trained by `strata train` on one GPU, data parallel over N GPUs and
# tensor parallel (with sequence parallelism) over 2, on random uint16 tokens. Prints tokens/s
# (median of the steps after warm-up) and the scaling efficiency.
#   bench/nccl_scaling.sh [NGPUS]
set -euo pipefail
cd "$(dirname "$0")/.."
gpus=${1:-2}
strata=build-gpu/strata
work=${OUT:-/tmp/strata-gpu}/nccl
mkdir -p "$work"

# The dense model of bench/compare_train_step.py: hidden 1024, 12 attention+MLP layers, 16 heads.
python3 - "$work" <<'EOF'
import json, sys, torch
work = sys.argv[1]
json.dump({"hybrid_layer_pattern": "*-" * 12, "num_layers": 24, "hidden_size": 1024, "ffn_hidden_size": 2816,
           "num_attention_heads": 16, "num_query_groups": 16, "kv_channels": 64, "vocab_size": 32768,
           "layernorm_epsilon": 1e-6, "qk_layernorm": False}, open(f"{work}/dense.json", "w"))
torch.randint(0, 32768, (8_000_000,), dtype=torch.int32).to(torch.uint16).numpy().tofile(f"{work}/tokens.u16")
EOF

common=(--model-config "$work/dense.json" --data-path "$work/tokens.u16" --data-format uint16 --vocab-size 32768
        --seq-length 2048 --micro-batch-size 8 --train-iters 25 --lr-warmup-iters 1 --bf16 --device cuda
        --log-interval 1 --eval-interval 100000 --eval-iters 1)

# Median tokens/s of steps 6.. in a metrics file.
rate() {
  python3 -c "import json,sys,statistics as s; r=[json.loads(l) for l in open(sys.argv[1])]; \
print(s.median([x['tokens_per_second'] for x in r if 'tokens_per_second' in x and x['step'] > 5]))" "$1"
}

run() {  # run NAME FLAGS...
  local name=$1
  shift
  rm -f "$work/$name.jsonl"
  "$strata" train "${common[@]}" --metrics "$work/$name.jsonl" "$@" > "$work/$name.log" 2>&1 ||
    { tail -20 "$work/$name.log"; return 1; }
  rate "$work/$name.jsonl"
}

one=$(run one-gpu --global-batch-size 8)
dp=$(run dp$gpus --nproc "$gpus" --distributed-backend nccl --global-batch-size $((8 * gpus)))
tp=$(run tp2 --nproc 2 --distributed-backend nccl --tensor-model-parallel-size 2 --sequence-parallel \
  --global-batch-size 8)
nvidia-smi --query-gpu=name --format=csv,noheader | head -1
python3 - "$one" "$dp" "$tp" "$gpus" <<'EOF'
import sys
one, dp, tp, n = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print("| layout | GPUs | tokens/s | scaling efficiency |")
print("| --- | --- | --- | --- |")
print(f"| one GPU | 1 | {one:,.0f} | - |")
print(f"| data parallel | {n} | {dp:,.0f} | {100 * dp / (n * one):.1f}% |")
print(f"| tensor parallel + sequence parallel | 2 | {tp:,.0f} | {100 * tp / (2 * one):.1f}% (same batch as one GPU) |")
EOF
