#!/usr/bin/env bash
# `strata train --nproc N` as a user runs it: data-, tensor- (with sequence) and pipeline-parallel
# runs, virtual pipeline stages (interleaved 1F1B) and uneven stages print the losses one process
# prints; checkpoints saved by tp 2 x pp 2 and by pp 2 x vp 2 resume in one process exactly where
# an uninterrupted run would be; bad layouts are refused with the reason.
# Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work"

model=(--hybrid-layer-pattern '[*-]|[*-]' --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8
       --seq-length 48 --mqar-kv-pairs 4 --eval-iters 1 --lr-warmup-iters 1 --seed 7)

# The numbers of the lines that start with $3 ("train: step 1 loss L acc A -> step 3 loss L acc A",
# "held-out: loss L accuracy A"), compared with a tolerance for float rounding.
numbers() { grep -E "^($2):" "$1" | grep -oE '[0-9]+\.[0-9]+' | tr '\n' ' '; }
same() {
  local a b lines=${3:-train|held-out}
  a=$(numbers "$1" "$lines") b=$(numbers "$2" "$lines")
  [ -n "$a" ] || { echo "no results in $1"; cat "$1"; exit 1; }
  awk -v a="$a" -v b="$b" 'BEGIN { n = split(a, x); m = split(b, y); if (n != m) exit 1;
                                   for (i = 1; i <= n; i++) if ((x[i] - y[i])^2 > 4e-8) exit 1 }' ||
    { echo "$1: $a"; echo "$2: $b"; exit 1; }
}

"$strata" train "${model[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 > "$work/single.log"
"$strata" train "${model[@]}" --train-iters 3 --micro-batch-size 2 --global-batch-size 8 --nproc 2 > "$work/dp.log"
same "$work/single.log" "$work/dp.log"
"$strata" train "${model[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --nproc 2 \
  --tensor-model-parallel-size 2 --sequence-parallel > "$work/tp.log"
same "$work/single.log" "$work/tp.log"
"$strata" train "${model[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --nproc 2 \
  --pipeline-model-parallel-size 2 > "$work/pp.log"
same "$work/single.log" "$work/pp.log"

# Two steps on tp 2 x pp 2 with the schedule of a 3-step run, saved; the third step in one process.
"$strata" train "${model[@]}" --train-iters 2 --lr-decay-iters 3 --micro-batch-size 4 --global-batch-size 8 --nproc 4 \
  --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --save "$work/ckpt" > "$work/tp_pp.log"
"$strata" train "${model[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --load "$work/ckpt" \
  > "$work/resumed.log"
grep -q "train: step 3 loss" "$work/resumed.log"
same "$work/single.log" "$work/resumed.log" held-out

# Virtual stages on four layers: by the flag (dp 2 x pp 2 x vp 2), by the pattern's four '|'
# segments (pp 2 x vp 2), and uneven stages (one layer on the first, three on the last).
four=(--hybrid-layer-pattern '[*-][*-][*-][*-]' "${model[@]:2}")
"$strata" train "${four[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 > "$work/single4.log"
"$strata" train "${four[@]}" --train-iters 3 --micro-batch-size 2 --global-batch-size 8 --nproc 4 \
  --pipeline-model-parallel-size 2 --num-virtual-stages-per-pipeline-rank 2 > "$work/vp_flag.log"
same "$work/single4.log" "$work/vp_flag.log"
segments=(--hybrid-layer-pattern '[*-]|[*-]|[*-]|[*-]' "${model[@]:2}")
"$strata" train "${segments[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --nproc 2 \
  --pipeline-model-parallel-size 2 > "$work/vp_segments.log"
same "$work/single4.log" "$work/vp_segments.log"
"$strata" train "${four[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --nproc 2 \
  --pipeline-model-parallel-size 2 --decoder-first-pipeline-num-layers 1 > "$work/uneven.log"
same "$work/single4.log" "$work/uneven.log"

# Two steps on pp 2 x vp 2 saved; the third step in one process.
"$strata" train "${segments[@]}" --train-iters 2 --lr-decay-iters 3 --micro-batch-size 4 --global-batch-size 8 \
  --nproc 2 --pipeline-model-parallel-size 2 --save "$work/vp_ckpt" > "$work/vp_saved.log"
"$strata" train "${segments[@]}" --train-iters 3 --micro-batch-size 4 --global-batch-size 8 --load "$work/vp_ckpt" \
  > "$work/vp_resumed.log"
grep -q "train: step 3 loss" "$work/vp_resumed.log"
same "$work/single4.log" "$work/vp_resumed.log" held-out

# Layouts that cannot work say why.
if "$strata" train "${four[@]}" --train-iters 1 --micro-batch-size 4 --global-batch-size 4 --nproc 2 \
  --pipeline-model-parallel-size 2 --num-virtual-stages-per-pipeline-rank 2 2> "$work/err.txt" > /dev/null; then
  exit 1
fi
grep -q "1 micro-batch per step .* needs a multiple of --pipeline-model-parallel-size 2" "$work/err.txt"
if "$strata" train "${segments[@]}" --train-iters 1 --num-virtual-stages-per-pipeline-rank 2 2> "$work/err.txt" \
  > /dev/null; then
  exit 1
fi
grep -q "num-virtual-stages-per-pipeline-rank 2: virtual pipeline stages need --pipeline-model-parallel-size above 1" \
  "$work/err.txt"
if "$strata" train "${model[@]}" --train-iters 1 --nproc 2 --tensor-model-parallel-size 3 2> "$work/err.txt" > /dev/null; then
  exit 1
fi
grep -q "world size 2 is not a multiple of tensor-parallel size 3" "$work/err.txt"
grep -q "2 of 2 ranks failed" "$work/err.txt"
if "$strata" train "${model[@]}" --train-iters 1 --tensor-model-parallel-size 2 2> "$work/err.txt" > /dev/null; then
  exit 1
fi
grep -q "needs several ranks: add --nproc N" "$work/err.txt"
echo "train_nproc: OK"
