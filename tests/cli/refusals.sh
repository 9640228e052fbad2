#!/usr/bin/env bash
# `strata` refuses bad input before any work: each command below exits non-zero (an error, not a
# crash) within seconds, with a message that names the flag or config field and the value, and
# writes nothing. Most are refused while the flags are parsed. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work"

# A refusal builds no model and runs no step: only LibTorch's start-up (well under a second on an
# idle machine) before the error. What the limit catches is work (an allocation, a build, a
# step), which takes minutes at these sizes; it leaves room for a machine busy with other tests.
limit_ms=10000

# refused EXPECTED ARGS...: `strata ARGS` exits with an error (not 0, not a signal) within
# $limit_ms, printing EXPECTED.
refused() {
  local expected=$1 shown code=0 start elapsed_ms
  shift
  shown="strata $*"
  shown=${shown:0:100}
  start=$(date +%s%N)
  "$strata" "$@" > "$work/out.log" 2>&1 || code=$?
  elapsed_ms=$((($(date +%s%N) - start) / 1000000))
  if [ "$code" -eq 0 ] || [ "$code" -ge 128 ]; then
    echo "$shown: exit code $code, expected a refusal"; cat "$work/out.log"; exit 1
  fi
  if ! grep -qF -- "$expected" "$work/out.log"; then
    echo "$shown: expected '$expected' in:"; cat "$work/out.log"; exit 1
  fi
  if [ "$elapsed_ms" -ge "$limit_ms" ]; then
    echo "$shown: refused after $elapsed_ms ms, expected under $limit_ms ms"; exit 1
  fi
  echo "refused in $elapsed_ms ms: $expected"
}

# Flags, at parse time: not a number, not finite, out of range, past the integer limits.
refused "--lr: value 'nan': expected a finite number" train --lr nan
refused "--lr: value 'inf': expected a finite number" train --lr inf
refused "--min-lr: value -1: expected a number >= 0" train --min-lr -1
refused "--adam-beta1: value 1: expected a number in [0, 1)" train --adam-beta1 1
refused "--adam-beta2: value -0.1: expected a number in [0, 1)" train --adam-beta2 -0.1
refused "--eval-iters: value -1: expected at least 0" train --eval-iters -1
refused "--log-interval: value 0: expected at least 1" train --log-interval 0
refused "--train-iters: value '99999999999999999999': out of range for an integer" \
  train --train-iters 99999999999999999999
refused "--seq-length: value '1x': expected an integer" train --seq-length 1x
# CLI11 would read "010" as octal 8 after the validator read 10: refused outright.
refused "--global-batch-size: value '010': expected an integer in plain decimal" train --global-batch-size 010
refused "--nproc: value 0: expected at least 1" train --nproc 0
refused "--nproc: value '0x2': expected an integer" train --nproc 0x2

# Memory: the lower bound of what the run needs exceeds any machine (terabytes), so the run is
# refused before the model is built or a batch allocated.
refused "the activations of --micro-batch-size 200000 x --seq-length 4096" \
  train --micro-batch-size 200000 --seq-length 4096
refused "this run needs at least" train --hidden-size 8000000 --seq-length 1024

# The model: the layer limit (without a pattern: a pattern's count wins over --num-layers), config
# fields out of range, a pattern past the length limit, a pattern or layer settings Megatron refuses.
refused "TransformerConfig.num_layers = 1000000000: more than strata's limit of 10000 layers" \
  train --hybrid-layer-pattern "" --num-layers 1000000000
refused "every MTP depth must repeat one pattern" train --hybrid-layer-pattern "[G-][*-]/*-/G-"
refused "softmax attention '*' and MLA-based attention ('+' or 'D') in one model" train --hybrid-layer-pattern "*-+-"
refused "--moe-layer-freq: value \"[1, 0]\": ' ' is not allowed" train --moe-layer-freq "[1, 0]"
refused "--experimental-attention-variant: gdn3 not in {" train --experimental-attention-variant gdn3
refused "'gdn2' without a hybrid_layer_pattern needs linear_attention_freq" \
  train --hybrid-layer-pattern "" --num-layers 2 --experimental-attention-variant gdn2
refused "--hybrid-attention-ratio: value 1.5: expected a number in [0, 1]" train --hybrid-attention-ratio 1.5
# A model config's unset fields take Megatron's defaults: these give the required ones.
model='"num_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "position_embedding_type": "rope"'
echo "{$model, \"rotary_base\": 0}" > "$work/rotary_base.json"
refused "TransformerConfig.rotary_base = 0: expected a finite value > 0" train --model-config "$work/rotary_base.json"
echo "{$model, \"init_method_std\": -1}" > "$work/init_method_std.json"
refused "TransformerConfig.init_method_std = -1: expected a finite value >= 0" \
  train --model-config "$work/init_method_std.json"
echo "{$model, \"hidden_dropout\": 1.5}" > "$work/hidden_dropout.json"
refused "TransformerConfig.hidden_dropout = 1.5: expected a probability in [0, 1)" \
  train --model-config "$work/hidden_dropout.json"
echo "{\"num_layers\": 2, \"hidden_size\": 32, \"num_attention_heads\": 4}" > "$work/no_table_size.json"
refused "TransformerConfig.max_position_embeddings (the rows of learned_absolute's table) = 0: expected a positive" \
  train --model-config "$work/no_table_size.json"
pattern=$(printf '[*-]%.0s' $(seq 25000))
refused "layer pattern of 100000 characters: longer than strata's limit of 80000" \
  train --hybrid-layer-pattern "$pattern"

# Megatron's flags: what strata does not implement is refused with the reason, and Megatron's own
# rules between flags hold (docs/megatron.md).
megatron_model=(--num-layers 2 --hidden-size 32 --num-attention-heads 4)
refused "--fp16: refused: float16 training needs loss scaling, which strata does not have; use --bf16" train --fp16
refused "--moe-expert-capacity-factor: refused: token dropping is not implemented" \
  train --moe-expert-capacity-factor 1.0
refused "--tokenizer-type 'GPT2BPETokenizer' is not supported" \
  train --tokenizer-type GPT2BPETokenizer --tokenizer-model tokenizer.json
refused "--tokenizer-type NullTokenizer: give the vocabulary with --vocab-size" train --tokenizer-type NullTokenizer
refused "--vocab-file: refused:" train --vocab-file vocab.json
refused "--num-query-groups 2: applies with --group-query-attention" \
  train "${megatron_model[@]}" --num-query-groups 2
refused "--hybrid-override-pattern and --hybrid-layer-pattern cannot both be given" \
  train --hybrid-override-pattern "*-" --hybrid-layer-pattern "*-"
refused "--swiglu and --squared-relu: give one activation" train --swiglu --squared-relu
refused "--position-embedding-type yarn: not implemented as flags" train --position-embedding-type yarn
refused "--no-position-embedding is deprecated and works with --position-embedding-type rope only" \
  train "${megatron_model[@]}" --no-position-embedding
refused "TransformerConfig.recompute_modules holds 'core_attn'" train --recompute-activations
refused "--train-iters and --train-samples: give one" train --train-iters 5 --train-samples 64
refused "--lr-warmup-samples 10: this run is iteration-based (no --train-samples); give the schedule's lengths in" \
  train --lr-warmup-samples 10
refused "--lr-decay-style WSD: give the length of its final decay with --lr-wsd-decay-iters" train --lr-decay-style WSD
refused "--expert-tensor-parallel-size: 2 not in {1}" train --expert-tensor-parallel-size 2
refused "--split: applies to --data-path" train --split 99,1,0
# A Megatron command line defines its model: Megatron's defaults fill the rest (learned absolute
# positions need their table's size).
refused "--seq-length 64: longer than the learned position table, --max-position-embeddings 32" \
  train "${megatron_model[@]}" --max-position-embeddings 32 --seq-length 64

# Data too short for one sequence: refused before step 1, so no metrics line is written.
printf 'forty bytes of text, not enough for 64.\n' > "$work/short.txt"
refused "$work/short.txt: the training split holds" \
  train --data-path "$work/short.txt" --seq-length 64 --metrics "$work/short.jsonl"
grep -q "fewer than one sequence of --seq-length 64" "$work/out.log"
if [ -e "$work/short.jsonl" ]; then echo "a refused run wrote $work/short.jsonl"; exit 1; fi

# Outputs over inputs: the input is left as it was.
cp "$work/short.txt" "$work/short.copy"
refused "--metrics $work/short.txt: is the input --data-path $work/short.txt" \
  train --data-path "$work/short.txt" --metrics "$work/short.txt"
cmp "$work/short.txt" "$work/short.copy"

# A tiny run to generate from and plot: its sampling flags and its metrics are checked as well.
"$strata" train --hybrid-layer-pattern '[*-]' --hidden-size 32 --ffn-hidden-size 64 --kv-channels 8 --seq-length 32 \
  --micro-batch-size 2 --mqar-kv-pairs 4 --train-iters 2 --eval-iters 1 --lr-warmup-iters 1 --save "$work/tiny" \
  --metrics "$work/tiny.jsonl" > "$work/tiny.log" 2>&1
"$strata" generate --load "$work/tiny" --prompt-tokens 1 --max-new-tokens 2 > "$work/generated.log"
grep -qE '^tokens: [0-9]+,[0-9]+$' "$work/generated.log"  # the two new tokens
refused "--temperature: value 'nan': expected a finite number" \
  generate --load "$work/tiny" --prompt-tokens 1 --temperature nan
cp "$work/tiny.jsonl" "$work/tiny.copy"
refused "--output $work/tiny.jsonl: is the input METRICS $work/tiny.jsonl" plot "$work/tiny.jsonl" -o "$work/tiny.jsonl"
cmp "$work/tiny.jsonl" "$work/tiny.copy"

echo "refusals: OK"
