#!/usr/bin/env bash
# A DeepSeek-V3.2-like model: DeepSeek sparse attention (MLA with the lightning indexer and
# top-k) in every layer, a dense first layer then MoE (sigmoid router with expert bias, a shared
# expert), and one multi-token prediction depth (the pattern after '/'), whose loss is logged
# beside the main one.
# Small enough to train on a CPU in under half a minute. Usage, from anywhere:
#   examples/deepseek_v32_like/train.sh [more strata train flags, e.g. --save DIR --metrics FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../run_example.sh"
run_example "$here" --train-iters 30 --lr 3e-3 --lr-warmup-iters 3 --min-lr 3e-4 "$@"
