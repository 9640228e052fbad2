#!/usr/bin/env bash
# Gated DeltaNet-2 from the command line: --experimental-attention-variant gdn2 turns a pattern's
# 'G' layers into GDN2; a tiny hybrid trains on CPU and its loss falls, describe names the kind,
# generate decodes from the checkpoint (strata's own: Megatron's GDN2 has no inference), and
# export to HF is refused naming gdn2. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"

small=(--hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32 --micro-batch-size 8
       --mqar-kv-pairs 4 --experimental-attention-variant gdn2 --hybrid-layer-pattern '[G-][*-]')

"$strata" train "${small[@]}" --train-iters 40 --eval-iters 1 --metrics gdn2.jsonl --save run > train.log
loss() { grep '"loss"' gdn2.jsonl | sed -n "$1p" | grep -oE '"loss":[0-9.e+-]+' | cut -d: -f2; }
first=$(loss 1) last=$(loss '$')
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.2) }' || { echo "loss did not fall: $first -> $last"; exit 1; }

"$strata" describe "${small[@]}" > describe.txt
grep -qE '^0 +G +Gated DeltaNet-2 ' describe.txt || { echo "describe:"; cat describe.txt; exit 1; }

out=$("$strata" generate --load run --prompt-tokens 1,2,3 --max-new-tokens 4)
[[ $out =~ ^tokens:\ [0-9]+,[0-9]+,[0-9]+,[0-9]+$ ]] || { echo "generate printed: $out"; exit 1; }

if "$strata" export --load run --hf run_hf > export.log 2>&1; then echo "export accepted gdn2"; exit 1; fi
grep -q "Gated DeltaNet-2 (experimental_attention_variant gdn2), which has no HF model" export.log ||
  { cat export.log; exit 1; }
test ! -e run_hf

echo "gdn2: OK"
