#!/usr/bin/env bash
# A Qwen3-Next-like hybrid: three Gated DeltaNet layers to one gated softmax attention layer
# (output gate, q/k norms, partial RoPE), every layer's MLP a mixture of 8 experts with a gated
# shared expert, zero-centred RMSNorm.
# Small enough to train on a CPU in under half a minute. Usage, from anywhere:
#   examples/qwen3_next_like/train.sh [more strata train flags, e.g. --save DIR --metrics FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../run_example.sh"
run_example "$here" --train-iters 30 --lr 3e-3 --lr-warmup-iters 3 --min-lr 3e-4 "$@"
