#!/usr/bin/env bash
# A Nemotron-H-like hybrid: Mamba2 layers with one softmax attention layer among them, dense
# squared-ReLU MLPs (no gate).
# Small enough to train on a CPU in under half a minute. Usage, from anywhere:
#   examples/nemotron_h_like/train.sh [more strata train flags, e.g. --save DIR --metrics FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../run_example.sh"
run_example "$here" --train-iters 30 --lr 3e-3 --lr-warmup-iters 3 --min-lr 3e-4 "$@"
