#!/usr/bin/env bash
# strata export end to end (issue 21 item 5): for every architecture, a run started from the HF
# fixture and trained by strata exports to an HF folder whose config.json holds the fixture's
# fields, whose model evaluates to exactly the checkpoint's loss, and from which train --load-hf
# (and --finetune after it) start; a strata-native model exports with its tokenizer; what export
# refuses. Usage: STRATA WORK_DIR FIXTURES (tests/fixtures)
set -euo pipefail
strata=$1 work=$2 fixtures=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
bytes_bpe=(--tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/text/bytes_bpe")
corpus=$fixtures/text/megatron_indexed/corpus_uint16
shapes=(--seq-length 32 --micro-batch-size 2)

source "$(dirname "$0")/expect_refusal.sh"
loss_of() { "$strata" eval "$@" --json | jq -r .loss; }

jq -r .text "$fixtures/text/megatron_indexed/documents.jsonl" > text.txt

# 1. Each architecture: HF fixture -> strata train (the weights are strata's now) -> export.
for arch in qwen3_dense:qwen3 qwen3_next:qwen3_next nemotron_h:nemotron_h deepseek_v32:deepseek_v32; do
  fixture=${arch%%:*} type=${arch##*:}
  "$strata" train --load-hf "$fixtures/hf/$fixture" "${bytes_bpe[@]}" --data-path text.txt "${shapes[@]}" \
    --train-iters 2 --eval-iters 1 --save "run_$fixture" > train.log 2>&1
  "$strata" export --load "run_$fixture" --hf "hf_$fixture" > export.log
  grep -q "as $type to hf_$fixture: config.json, model.safetensors, tokenizer.json" export.log \
    || { cat export.log; exit 1; }
  # config.json holds every field of the fixture's, with its value (transformers_version is HF's stamp).
  jq -S 'del(.transformers_version)' "$fixtures/hf/$fixture/model/config.json" > want.json
  jq -S --slurpfile want want.json '. as $got | $want[0] | with_entries(.value = $got[.key])' \
    "hf_$fixture/config.json" > got.json
  diff want.json got.json
  # The exported model is the checkpoint's: the same held-out loss, to the last digit.
  from_run=$(loss_of --load "run_$fixture" --data-path text.txt)
  from_hf=$(loss_of --hf "hf_$fixture" --data-path text.txt "${shapes[@]}")
  [ "$from_run" = "$from_hf" ] || { echo "$fixture: loss $from_run from the run, $from_hf exported"; exit 1; }
  # A new run starts from the exported folder, and its tokenizer comes along; --finetune goes on from that.
  "$strata" train --load-hf "hf_$fixture" --data-path text.txt "${shapes[@]}" --train-iters 1 --eval-iters 0 \
    --save "again_$fixture" > again.log 2>&1
  grep -q "a new run from the HF model in hf_$fixture" again.log
  test -f "again_$fixture/iter_0000001/tokenizer/tokenizer.json"
  "$strata" train --load "again_$fixture" --finetune --data-path text.txt "${shapes[@]}" --train-iters 1 \
    --eval-iters 0 --save "finetuned_$fixture" > finetune.log 2>&1
  grep -q "a new run from the weights in again_$fixture (--finetune)" finetune.log
  echo "$fixture: exported as $type, held-out loss $from_hf"
done

# 2. A model strata defined itself (Qwen3's shape: attention with q/k norms, SwiGLU MLPs) trained on
#    an indexed dataset with a BPE tokenizer: exported as qwen3 with the tokenizer and its EOS.
"$strata" train --hybrid-layer-pattern "*-*-" --qk-layernorm --hidden-size 32 --ffn-hidden-size 64 \
  --kv-channels 8 --seq-length 32 --micro-batch-size 8 --data-path "$corpus" \
  --tokenizer-type HuggingFaceTokenizer --tokenizer-model "$fixtures/text/bytelevel_bpe" --train-iters 4 --save native \
  > native.log 2>&1
"$strata" export --load native --hf native_hf > export.log
grep -q "as qwen3 to native_hf: config.json, model.safetensors, tokenizer.json, tokenizer_config.json" export.log
[ "$(jq -c '[.model_type, .vocab_size, .eos_token_id, .num_hidden_layers]' native_hf/config.json)" = '["qwen3",1024,1021,2]' ]
[ "$(loss_of --load native --data-path "$corpus")" = "$(loss_of --hf native_hf --data-path "$corpus" --seq-length 32)" ]
"$strata" generate --hf native_hf --prompt "The" --max-new-tokens 4 > generated.txt 2> /dev/null
grep -q "^The" generated.txt

# 3. Refusals, each naming what does not fit.
"$strata" train --train-iters 1 --save default > default.log 2>&1  # the embedded default hybrid
refused "is no HF architecture strata exports" export --load default --hf default_hf
grep -qF "qwen3_next: attention_output_gate is false in this model, true in qwen3_next" err.txt
refused "qwen3: layer 0 is Gated DeltaNet + MLP; every Qwen3 layer is attention + a dense MLP" \
  export --load default --hf default_hf
test ! -e default_hf
refused "native_hf: exists and is not an empty folder; export into a new folder" export --load native --hf native_hf
refused "an HF model (config.json and safetensors)" export --load native_hf --hf elsewhere
refused "the tokenizer in $fixtures/text/bytelevel_bpe has 1024 tokens, more than the model's vocab_size 256" \
  export --load run_qwen3_dense --hf too_small --tokenizer-type HuggingFaceTokenizer \
  --tokenizer-model "$fixtures/text/bytelevel_bpe"
echo "export: OK"
