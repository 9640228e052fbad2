#!/usr/bin/env bash
# The commands a user runs, end to end: train the embedded default for a few steps, generate from
# the checkpoint it saved, and generate from an HF checkpoint folder. Usage: STRATA WORK_DIR FIXTURES
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work"

"$strata" train --train-iters 3 --save "$work/run" --metrics "$work/metrics.jsonl" > "$work/train.log"
test "$(wc -l < "$work/metrics.jsonl")" -ge 3

out=$("$strata" generate --load "$work/run" --prompt-tokens 3,40,5 --max-new-tokens 4)
echo "$out"
[[ $out =~ ^tokens:\ [0-9]+,[0-9]+,[0-9]+,[0-9]+$ ]]

out=$("$strata" generate --hf "$fixtures/qwen3_dense" --prompt-tokens 1,2,3 --max-new-tokens 3 --temperature 0.8 --top-k 5)
echo "$out"
[[ $out =~ ^tokens:\ [0-9]+,[0-9]+,[0-9]+ ]]

# A bad flag names itself and what it expects.
if "$strata" generate --load "$work/run" --prompt-tokens 3,x --max-new-tokens 1 2> "$work/err.txt"; then exit 1; fi
grep -q "prompt-tokens '3,x': 'x' is not an integer" "$work/err.txt"
echo "train_then_generate: OK"
