#!/usr/bin/env bash
# The commands a user runs, end to end: train the embedded default for a few steps, generate from
# the checkpoint it saved, and generate from an HF checkpoint folder. Usage: STRATA WORK_DIR FIXTURES
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work"

# As the README runs it: the metrics file inside the checkpoint folder, which does not exist yet.
"$strata" train --train-iters 60 --save "$work/run" --metrics "$work/run/metrics.jsonl" > "$work/train.log"
test "$(grep -c '"step"' "$work/run/metrics.jsonl")" -ge 60
# The embedded default learns: the mean loss of the last 10 steps is below that of the first 10.
losses=$(grep -o '"loss":[0-9.e+-]*' "$work/run/metrics.jsonl" | cut -d: -f2)
echo "$losses" | awk 'NR <= 10 { a += $1 } NR > 50 && NR <= 60 { b += $1 }
  END { printf "first 10 steps %.3f, last 10 %.3f\n", a / 10, b / 10; exit !(b < a - 0.3) }'
"$strata" plot "$work/run/metrics.jsonl" -o "$work/curve.svg"
grep -q "<svg" "$work/curve.svg"

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
