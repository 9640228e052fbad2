#!/usr/bin/env bash
# Multi-token prediction from the command line (issue 19): a hybrid pattern's MTP part after '/'
# and a model without a pattern with --mtp-num-layers both train on CPU, the main loss and every
# depth's loss fall and are logged; tensor parallelism with MTP is refused. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"

small=(--hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32 --micro-batch-size 8
       --mqar-kv-pairs 4 --train-iters 40 --eval-iters 1)

# "first" and "last" values of field $2 (a number, or the list mtp_losses) in metrics file $1.
field() { grep '"loss"' "$1" | sed -n "$3p" | grep -oE "\"$2\":(\[[^]]*\]|[0-9.e+-]+)" | cut -d: -f2 | tr -d '[]'; }
falls() {  # every entry of the last line's field $2 is below the first line's by at least 0.2
  local first last
  first=$(field "$1" "$2" 1) last=$(field "$1" "$2" '$')
  awk -v a="$first" -v b="$last" 'BEGIN { n = split(a, x, ","); m = split(b, y, ","); if (n != m || n == 0) exit 1;
                                          for (i = 1; i <= n; i++) if (y[i] > x[i] - 0.2) exit 1 }' ||
    { echo "$1: $2 did not fall: $first -> $last"; exit 1; }
}

"$strata" train "${small[@]}" --hybrid-layer-pattern '[G-][*-]/[*-]/[*-]' --metrics hybrid.jsonl > hybrid.log
grep -qE '^mtp: step 1 losses [0-9.]+,[0-9.]+ -> step 40 losses [0-9.]+,[0-9.]+$' hybrid.log
falls hybrid.jsonl loss
falls hybrid.jsonl mtp_losses

cat > gpt.json <<'JSON'
{"hybrid_layer_pattern": "", "num_layers": 2, "num_attention_heads": 4, "num_query_groups": 2,
 "qk_layernorm": true, "layernorm_epsilon": 1e-6, "position_embedding_type": "rope",
 "hidden_dropout": 0.0, "attention_dropout": 0.0}
JSON
"$strata" train "${small[@]}" --model-config gpt.json --mtp-num-layers 2 --mtp-loss-scaling-factor 0.3 --log-interval 1 \
  --metrics gpt.jsonl --save gpt > gpt.log
grep -qE '^model: pattern \[\*-\]\[\*-\]' gpt.log
falls gpt.jsonl loss
falls gpt.jsonl mtp_losses
# The checkpoint holds the depths under Megatron's names and resumes with them.
"$strata" train --load gpt --save gpt --train-iters 42 > resumed.log
grep -q "^mtp: step 41 losses" resumed.log

if "$strata" train "${small[@]}" --hybrid-layer-pattern '[*-][*-]/[*-]' --nproc 2 --tensor-model-parallel-size 2 \
  > /dev/null 2> tp.err; then exit 1; fi
grep -q "multi-token prediction (1 depths) with tensor or pipeline parallelism is not supported yet" tp.err

echo "mtp: OK"
