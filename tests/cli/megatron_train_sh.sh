#!/usr/bin/env bash
# NVIDIA's Megatron-LM examples/mamba/train.sh (its 800M model) as `strata train` runs it: the
# script's options unchanged, copied below as data with its variables substituted, as the script
# itself does with its two arguments (`train.sh <data-path> <tokenizer-path>`):
#   - DATA_PATH: an indexed dataset that `strata preprocess` writes from these docs with the
#     script's tokenizer type (GPTSentencePieceTokenizer) and a local SentencePiece model;
#   - TOKENIZER_PATH: that SentencePiece model (tests/fixtures/text/sentencepiece_bpe).
# What differs from a run on 8 GPUs:
#   - sizes: shrunk for a CPU by giving again, after the script's options, options the script
#     itself has (a later flag wins, as with argparse): a 4-layer pattern, --hidden-size 256,
#     64-token sequences, 64 training samples (2 iterations of its global batch of 32);
#   - --bf16: strata's bfloat16 autocast runs on CUDA, so the CPU run leaves it out; with it the
#     command is refused for the device alone, after every other flag was accepted.
# The run must train, say which flags it accepts without applying, build the model Megatron
# builds from those flags (Megatron's defaults and derived sizes, in the printed configuration),
# and resume from its ./checkpoints as the script's --load does. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# The script's two arguments: the docs as 20-line documents, tokenised as the script's tokenizer.
TOKENIZER_PATH=$here/../fixtures/text/sentencepiece_bpe/tokenizer.model
mkdir chunks
cat "$here"/../../docs/*.md | split -l 20 - chunks/
# The last chunk holds what is left of the docs' line count (one line when it is 20 k + 1), and
# it is the held-out split's only document under --split 99,1,0: a whole chunk gives that split
# at least one sample of --seq-length + 1 tokens whatever the docs hold.
last=$(ls chunks | tail -1)
[ "$(wc -l < "chunks/$last")" -eq 20 ] || rm "chunks/$last"
for chunk in chunks/*; do jq -Rsc '{text: .}' "$chunk"; done > docs.jsonl
"$strata" preprocess --input docs.jsonl --json-keys text --tokenizer-type GPTSentencePieceTokenizer \
  --tokenizer-model "$TOKENIZER_PATH" --output-prefix docs --append-eod > preprocess.log 2>&1
DATA_PATH=docs_text_document

# The options of examples/mamba/train.sh, MODEL_SCALE="800M", variables substituted.
megatron=(
  --tensor-model-parallel-size 1
  --sequence-parallel
  --pipeline-model-parallel-size 1
  --use-distributed-optimizer
  --overlap-param-gather
  --overlap-grad-reduce
  --untie-embeddings-and-output-weights
  --init-method-std 0.02
  --position-embedding-type none
  --hybrid-layer-pattern "M-M-M--M-*M-M-M-M--*M-M-M-M-*M--M-M-M-*M-M--M-M-"
  --hidden-size 1024
  --num-attention-heads 16
  --group-query-attention
  --num-query-groups 8
  --seq-length 4096
  --max-position-embeddings 4096
  --train-samples 73242188
  --lr-warmup-samples 50000
  --lr-decay-samples 73192188
  --save ./checkpoints
  --load ./checkpoints
  --data-path "$DATA_PATH"
  --data-cache-path ./data-cache
  --split 99,1,0
  --tokenizer-type GPTSentencePieceTokenizer
  --tokenizer-model "$TOKENIZER_PATH"
  --distributed-backend nccl
  --micro-batch-size 4
  --global-batch-size 32
  --lr 2.5e-4
  --min-lr 2.5e-5
  --lr-decay-style cosine
  --weight-decay 0.1
  --clip-grad 1.0
  --attention-dropout 0.0
  --hidden-dropout 0.0
  --disable-bias-linear
  --normalization RMSNorm
  --adam-beta1 0.9
  --adam-beta2 0.95
  --log-interval 10
  --save-interval 2000
  --eval-interval 2000
  --eval-iters 32
  --bf16
  --use-mcore-models
  --spec megatron.core.models.hybrid.hybrid_layer_specs hybrid_stack_spec
  --no-create-attention-mask-in-dataloader
  --tensorboard-dir ./tensorboard
)
small=(--hybrid-layer-pattern "M-*-" --hidden-size 256 --seq-length 64 --max-position-embeddings 64
       --train-samples 64 --lr-warmup-samples 32 --lr-decay-samples 64 --eval-iters 1)

# --bf16 on a CPU: refused for the device, once the whole command line was read and the model built.
if "$strata" train "${megatron[@]}" "${small[@]}" > bf16.log 2>&1; then
  echo "accepted --bf16 on a CPU"; exit 1
fi
grep -qF -- "--bf16: bfloat16 autocast runs on CUDA; this run is on cpu" bf16.log || { cat bf16.log; exit 1; }

without_bf16=()
for flag in "${megatron[@]}"; do [ "$flag" = --bf16 ] || without_bf16+=("$flag"); done
"$strata" train "${without_bf16[@]}" "${small[@]}" > run.log 2>&1 || { cat run.log; exit 1; }

# It trained its 2 iterations (64 samples / 32) on the indexed data and saved them.
grep -qE '^data: Megatron indexed data docs_text_document \([0-9]+ documents, [0-9]+ uint16 tokens\), --split 99,1,0' run.log ||
  { cat run.log; exit 1; }
grep -qE '^train: step 1 loss [0-9.]+ acc [0-9.]+ -> step 2 loss [0-9.]+' run.log || { cat run.log; exit 1; }
grep -qE '^held-out: loss [0-9.]+' run.log
[ "$(cat checkpoints/latest_checkpointed_iteration.txt)" = 2 ]
grep -q -- "--load ./checkpoints: no checkpoint there yet; starting a new run" run.log
# The samples were built for --train-samples, as Megatron builds them.
grep -qE '"train_samples": ?64' checkpoints/iter_0000002/state.json
# The flags accepted without being applied are named, each once.
for flag in --use-distributed-optimizer --overlap-param-gather --tensorboard-dir; do
  [ "$(grep -c "^note: $flag: not applied: " run.log)" = 1 ] || { echo "no note for $flag"; cat run.log; exit 1; }
done
# The model Megatron builds from these flags: its pattern, Megatron's defaults where the script
# says nothing, the sizes it derives.
expect() { grep -qE "^  $1 \.+ $2\$" run.log || { echo "expected $1 = $2"; grep -E "^  $1 " run.log; exit 1; }; }
grep -q "^model: pattern M-\*-," run.log
expect position_embedding_type none
expect normalization RMSNorm
expect add_bias_linear false
expect share_embeddings_and_output_weights false
expect hidden_dropout 0.0
expect num_query_groups 8
expect kv_channels 16              # 256 / 16 heads
expect ffn_hidden_size 1024        # 4 x 256 (no --swiglu)
expect activation_func gelu
expect gated_linear_unit false
expect mamba_state_dim 128
expect mamba_head_dim 64
expect mamba_num_groups 8
expect layernorm_epsilon 1e-05
expect fp32_residual_connection false
expect vocab_size 512              # the tokenizer's 512 pieces, a multiple of --make-vocab-size-divisible-by 128
expect lr_decay_style cosine
expect lr_warmup_samples 32
expect split 99,1,0
expect tokenizer_type GPTSentencePieceTokenizer
# The script's --save/--load: run again with more samples and it resumes at iteration 2.
more=("${small[@]}" --train-samples 96)
"$strata" train "${without_bf16[@]}" "${more[@]}" > resumed.log 2>&1 || { cat resumed.log; exit 1; }
grep -q "resumes ./checkpoints at iteration 2" resumed.log
grep -qE '^train: step 3 loss [0-9.]+ acc [0-9.]+ -> step 3 loss' resumed.log
[ "$(cat checkpoints/latest_checkpointed_iteration.txt)" = 3 ]
echo "megatron_train_sh: OK"
