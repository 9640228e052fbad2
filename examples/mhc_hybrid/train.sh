#!/usr/bin/env bash
# A hybrid with manifold-constrained hyper-connections: four residual streams mixed around every
# Gated DeltaNet, attention and MLP layer (docs/hyper_connections.md).
# Small enough to train on a CPU in under half a minute. Usage, from anywhere:
#   examples/mhc_hybrid/train.sh [more strata train flags, e.g. --save DIR --metrics FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../run_example.sh"
run_example "$here" --train-iters 30 --lr 3e-3 --lr-warmup-iters 3 --min-lr 3e-4 "$@"
