#!/usr/bin/env bash
# `strata describe --json` against Megatron-LM's own pattern tests (HEAD's
# tests/unit_tests/ssm/test_hybrid_layer_allocation.py and test_hybrid_block.py), written again as
# a table of our own: each case gives what Megatron's test checks (the main layers, the MTP
# depths and their pattern, the pipeline segments, the layer count, or a refusal) as strata's
# JSON says it. Cases strata cannot run, and why, are listed at the end. Usage: STRATA WORK_DIR
set -euo pipefail
strata=$1 work=$2
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# A model that every symbol can be built in: no pattern of its own, sizes for every kind.
cat > model.json <<'EOF'
{"hybrid_layer_pattern": "", "num_layers": 4, "position_embedding_type": "rope", "hidden_size": 32, "ffn_hidden_size": 64,
 "num_attention_heads": 4, "num_query_groups": 2, "kv_channels": 8, "vocab_size": 64,
 "mamba_head_dim": 16, "mamba_num_groups": 2, "mamba_state_dim": 16,
 "linear_key_head_dim": 8, "linear_value_head_dim": 8, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
 "q_lora_rank": 16, "kv_lora_rank": 16, "qk_head_dim": 8, "qk_pos_emb_head_dim": 4, "v_head_dim": 8,
 "dsa_indexer_n_heads": 2, "dsa_indexer_head_dim": 8, "dsa_indexer_topk": 4,
 "num_moe_experts": 4, "moe_ffn_hidden_size": 16}
EOF

cases=0

# ["M","*","-"] from M*-: the JSON list of one symbol per canonical layer.
symbols_json() {
  local s=$1 out="" i
  for ((i = 0; i < ${#s}; i++)); do out+="${out:+,}\"${s:i:1}\""; done
  echo "[$out]"
}

# check NAME FIELD...: the JSON in out.json holds each FIELD (layers=SYMBOLS, mtp=DEPTHS:SYMBOLS,
# stages=JSON, num_layers=N) and stderr holds warning=TEXT.
check() {
  local name=$1 field key value
  shift
  for field in "$@"; do
    key=${field%%=*} value=${field#*=}
    case $key in
      layers) expected="\"layers\":$(symbols_json "$value")" ;;
      mtp) expected="\"mtp_depths\":${value%%:*},\"mtp_layers\":$(symbols_json "${value#*:}")" ;;
      stages) expected="\"stages\":$value" ;;
      num_layers) expected="\"num_layers\":$value" ;;
      warning)
        grep -qF -- "$value" err.txt || { echo "$name: expected the warning '$value' in:"; cat err.txt; exit 1; }
        continue ;;
      *) echo "$name: unknown field $key"; exit 1 ;;
    esac
    grep -qF -- "$expected" out.json || { echo "$name: expected $expected in:"; cat out.json; exit 1; }
  done
  cases=$((cases + 1))
}

# accepted ARGS -- FIELD...: `strata describe --json ARGS` exits 0 with "ok":true and the fields.
accepted() {
  local args=() code=0
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  "$strata" describe --model-config model.json --json "${args[@]}" > out.json 2> err.txt || code=$?
  if [ "$code" -ne 0 ] || ! grep -qF '"ok":true' out.json; then
    echo "describe ${args[*]}: exit code $code, expected a valid model:"; cat out.json err.txt; exit 1
  fi
  check "describe ${args[*]}" "$@"
}

# pattern PATTERN [pp] FIELD...: a hybrid pattern, on one pipeline rank unless pp=N comes first.
pattern() {
  local p=$1 pp=1
  shift
  case ${1:-} in pp=*) pp=${1#pp=}; shift ;; esac
  accepted --hybrid-layer-pattern "$p" --pipeline-model-parallel-size "$pp" -- "$@"
}

# refused PATTERN [pp=N] MESSAGE: describe exits 1 with "ok":false and an error holding MESSAGE.
refused() {
  local p=$1 pp=1 code=0
  shift
  case $1 in pp=*) pp=${1#pp=}; shift ;; esac
  "$strata" describe --model-config model.json --json --hybrid-layer-pattern "$p" \
    --pipeline-model-parallel-size "$pp" > out.json 2> err.txt || code=$?
  if [ "$code" -ne 1 ] || ! grep -qF '"ok":false' out.json; then
    echo "describe '$p': exit code $code, expected a refusal:"; cat out.json err.txt; exit 1
  fi
  grep -qF -- "$1" out.json || { echo "describe '$p': expected '$1' in:"; cat out.json; exit 1; }
  cases=$((cases + 1))
}

# refused_args MESSAGE ARGS...: `strata describe --json ARGS` exits 1 with an error holding MESSAGE.
refused_args() {
  local code=0 message=$1
  shift
  "$strata" describe --model-config model.json --json "$@" > out.json 2> err.txt || code=$?
  [ "$code" -eq 1 ] && grep -qF '"ok":false' out.json && grep -qF -- "$message" out.json ||
    { echo "describe $*: expected a refusal holding '$message':"; cat out.json err.txt; exit 1; }
  cases=$((cases + 1))
}

# ratios NUM_LAYERS ATTENTION MLP FIELD...: the deprecated ratios, without a pattern.
ratios() {
  local n=$1 a=$2 m=$3
  shift 3
  accepted --num-layers "$n" --hybrid-attention-ratio "$a" --hybrid-mlp-ratio "$m" -- "$@" \
    warning="are deprecated in Megatron"
}

# --- TestPatternFromRatios (Megatron: counts and spacing; here the layers themselves, which
# Megatron's function gives for these arguments).
ratios 10 0.3 0 layers='MM*MM*M*MM'
ratios 10 0.3 0.3 layers='M-*MM*-*M-'
ratios 10 0.5 0 layers='M*M*M**M*M'
ratios 1 1.0 0 layers='*'
ratios 4 0.5 0 layers='M**M'
ratios 56 0.08 0.5 layers='M-M-M--M-M*-M-M-M-M--M*-M-M-M-M-M*--M-M-M-M-M*-M--M-M-M-'

# --- TestValidateSegmentLayers: valid segments, each a one-stage pattern here.
pattern 'M*-M*-M*-' layers='M*-M*-M*-'
pattern 'MMMMMMMMM' layers='MMMMMMMMM'
pattern 'MM*-MM*-' layers='MM*-MM*-'
pattern 'E' layers='E'
pattern 'GGG*GGG*' layers='GGG*GGG*'
pattern 'GEGEGE*E' layers='GEGEGE*E'
pattern 'MDMD' layers='MDMD'
pattern 'M+M+' layers='M+M+'
pattern 'MEME' layers='MEME'
# Invalid segments. '|' and '/' are not symbols of a segment; in a whole pattern they are
# separators, so "M|M" is two stages and "M/M" one MTP depth.
refused 'M*X' "'X' is not a valid layer symbol"
pattern 'M|M' layers='MM' stages='[[0],[1]]'
pattern 'M/M' layers='M' mtp='1:M'
refused 'MDM*-' "softmax attention '*' and MLA-based attention ('+' or 'D') in one model"
refused 'M+M*-' "softmax attention '*' and MLA-based attention ('+' or 'D') in one model"

# --- TestGetHybridTotalLayerCount.
pattern 'M*M*' num_layers=4
pattern 'MMMM' num_layers=4
pattern 'M' num_layers=1
pattern 'M-M-|M-M*-' num_layers=9
pattern 'M-M-|M-M*-|M-M-|M-M*-' num_layers=18
pattern '||M' num_layers=1
pattern 'M|M' num_layers=2
pattern 'M*M*/MM/MM' num_layers=4
pattern 'M-M-|M-M*-/MM/MM' num_layers=9

# --- TestGetHybridTotalPipelineSegmentCount: one stage per segment on one rank.
pattern 'M*M*' stages='[[0,1,2,3]]'
pattern 'M-M-|M-M*-' stages='[[0,1,2,3],[4,5,6,7,8]]'
pattern 'M|M|M|M' stages='[[0],[1],[2],[3]]'
pattern '||M' stages='[[],[],[0]]'
pattern 'M-M-|M-M*-/MM/MM' stages='[[0,1,2,3],[4,5,6,7,8]]'

# --- TestParseHybridPattern: the main part alone.
for p in 'M*M*' 'MMMM' '*M*M' 'MM-*' 'E' 'GGG*GGG*' 'GEGEGE*E' 'MDMD' 'DM' 'M+M+' '+M'; do
  pattern "$p" layers="$p" mtp='0:'
done
pattern 'M*|M*' layers='M*M*' mtp='0:' stages='[[0,1],[2,3]]'
pattern 'M-M-|M-M*-' layers='M-M-M-M*-' mtp='0:'
pattern 'M|M|M|M' layers='MMMM' mtp='0:'
# One MTP depth, several, and with '|'.
pattern 'M*M*/MM' layers='M*M*' mtp='1:MM'
pattern 'MMMM/*M' layers='MMMM' mtp='1:*M'
pattern 'M/M' layers='M' mtp='1:M'
pattern 'M*M*/MM/MM' layers='M*M*' mtp='2:MM'
pattern 'M*M*/MM/MM/MM' layers='M*M*' mtp='3:MM'
pattern 'MMMM/*M/*M/*M' layers='MMMM' mtp='3:*M'
pattern 'M*/*/*/*' layers='M*' mtp='3:*'
pattern 'M/M/M/M/M' layers='M' mtp='4:M'
pattern 'M-M-|M-M*-/MM/MM' layers='M-M-M-M*-' mtp='2:MM' stages='[[0,1,2,3],[4,5,6,7,8]]'
# MTP depths must be alike, compared as text before their symbols are read.
refused 'M*M*/MM/M*' 'every MTP depth must repeat one pattern: depth 1 is \"MM\", depth 2 is \"M*\"'
refused 'M*M*/MM/MM/M' 'every MTP depth must repeat one pattern'
refused 'MMMM/*M/M*' 'every MTP depth must repeat one pattern'
refused 'M*M*/MM/Ma' 'every MTP depth must repeat one pattern'
# Symbols that are not layers, in the main part and in the MTP part.
refused 'M*X*' "'X' is not a valid layer symbol"
refused 'MaMM' "'a' is not a valid layer symbol"
refused 'M*M*1' "'1' is not a valid layer symbol"
refused 'M*M*/MX' "'X' is not a valid layer symbol"
refused 'M*M*/Ma/Ma' "'a' is not a valid layer symbol"
refused 'M*M*/M|M/M|M' "'|' is not a valid layer symbol in the MTP part"
# A slash with nothing after it is no MTP depth.
pattern 'M*M*/' layers='M*M*' mtp='0:'
# Realistic patterns.
pattern 'M*M*M*M*/MMM/MMM' layers='M*M*M*M*' mtp='2:MMM'
pattern 'MM-MM-/*M/*M' layers='MM-MM-' mtp='2:*M'
pattern '*****/M/M/M/M' layers='*****' mtp='4:M'
pattern 'MEME/MM/MM' layers='MEME' mtp='2:MM'
pattern 'GEGEGE*E/GG/GG' layers='GEGEGE*E' mtp='2:GG'
pattern 'MDMD/MD/MD' layers='MDMD' mtp='2:MD'
pattern 'M+M+/M+/M+' layers='M+M+' mtp='2:M+'
# An empty main part: Megatron's parser reads "/MM/MM" as no main layers and two MTP depths;
# strata builds no model without main-decoder layers.
refused '/MM/MM' "has no layers before the first '/'"

# --- TestGetHybridLayerCounts: the counts follow from the main layers and the MTP depths.
pattern 'MG*-E' layers='MG*-E' mtp='0:'
pattern 'MGD-E' layers='MGD-E' mtp='0:'
pattern 'MG+-E' layers='MG+-E' mtp='0:'
pattern 'M*|M*' layers='M*M*'
pattern 'MMMM/*M/*M/*M' layers='MMMM' mtp='3:*M'
pattern 'GMGM' layers='GMGM'
pattern 'G*GM*' layers='G*GM*'
pattern 'DMDM' layers='DMDM'
pattern '+M+M' layers='+M+M'

# --- TestSelectPipelineSegment (one rank: every segment a virtual stage).
pattern 'MM|M*|M-|ME' stages='[[0,1],[2,3],[4,5],[6,7]]'
pattern '||M*' stages='[[],[],[0,1]]'
pattern 'MMM|M|MMMMM' stages='[[0,1,2],[3],[4,5,6,7,8]]'
refused 'MX|M*' "'X' is not a valid layer symbol"
refused 'M|M|M' pp=2 "has 3 pipeline segments ('|'), which must be a multiple of --pipeline-model-parallel-size 2"

# --- TestSelectPipelineSegmentLegacyFallback: no '|', the layers split evenly over the ranks,
# with Megatron's deprecation warning.
pattern 'M*M-' pp=2 stages='[[0,1],[2,3]]' warning="without '|' over 2 pipeline ranks is deprecated in Megatron"
pattern 'M*M*M*M*' pp=4 stages='[[0,1],[2,3],[4,5],[6,7]]'
pattern 'M*M*M*' pp=3 stages='[[0,1],[2,3],[4,5]]'
refused 'M*M*M*' pp=4 "6 layers do not split evenly over 4 pipeline stages"
# Uneven first and last stages (test_uneven_pp_*), only for patterns without '|'
# (test_mutual_exclusivity_pipes_with_*).
refused_args "cannot be given: the pattern already defines the pipeline layout" --hybrid-layer-pattern 'M*|M*' \
  --pipeline-model-parallel-size 2 --decoder-first-pipeline-num-layers 1
refused_args "cannot be given: the pattern already defines the pipeline layout" --hybrid-layer-pattern 'M*|M*' \
  --pipeline-model-parallel-size 2 --decoder-last-pipeline-num-layers 1
accepted --hybrid-layer-pattern 'M*M*M*' --pipeline-model-parallel-size 4 --decoder-first-pipeline-num-layers 3 \
  -- stages='[[0,1,2],[3],[4],[5]]'
accepted --hybrid-layer-pattern 'M*M*M*' --pipeline-model-parallel-size 4 --decoder-last-pipeline-num-layers 3 \
  -- stages='[[0],[1],[2],[3,4,5]]'
accepted --hybrid-layer-pattern 'M*M*M*M*' --pipeline-model-parallel-size 4 --decoder-first-pipeline-num-layers 1 \
  --decoder-last-pipeline-num-layers 1 -- stages='[[0],[1,2,3],[4,5,6],[7]]'
refused_args "the 7 layers between the uneven first and last stages do not split evenly over 3 pipeline stages" \
  --hybrid-layer-pattern 'M*M*M*M*M' --pipeline-model-parallel-size 4 --decoder-first-pipeline-num-layers 2
# test_vpp_with_no_pipes_raises: Megatron refuses virtual stages for a pattern without '|'; strata
# splits its layers evenly over pp x vp stages, as for GPT models (docs/parallelism.md).
accepted --hybrid-layer-pattern 'M*M*' --pipeline-model-parallel-size 2 --num-virtual-stages-per-pipeline-rank 2 \
  -- stages='[[0],[1],[2],[3]]'

# --- test_hybrid_block.py: layer kinds, and '*' beside MLA or DSA in one block.
pattern 'M*-' layers='M*-'
refused 'M*-X' "'X' is not a valid layer symbol"
pattern 'G*M' layers='G*M'
pattern 'MDM' layers='MDM'
refused 'M*DM' "in one model"
pattern 'M+M' layers='M+M'
refused 'M*+M' "in one model"

# --- Megatron's argument handling: a --num-layers that disagrees with the pattern is ignored with
# a warning, the pattern's count wins; pipeline segments over two ranks give virtual stages.
accepted --hybrid-layer-pattern 'M-M-' --num-layers 7 -- num_layers=4 \
  warning='hybrid_layer_pattern "M-M-" has 4 layers: num_layers = 7 is ignored'
pattern 'M-|M-|M-|M-' pp=2 stages='[[0,1],[2,3],[4,5],[6,7]]'
grep -qF '"pipeline_model_parallel_size":2,' out.json && grep -qF '"virtual_pipeline_model_parallel_size":2,' out.json
# strata's fused layers and its alias A for MLA.
pattern '[*-]*-|[GE]' layers='*-*-GE' stages='[[0,1,2,3],[4,5]]'
pattern 'A-[AE]' layers='+-+E'

# --- Without a pattern: Megatron's GDN functional test (6 layers, linear attention every third
# layer, 32 experts, moe_layer_freq left at 1) and the list expressions.
accepted --num-layers 6 --experimental-attention-variant gated_delta_net --linear-attention-freq 3 -- \
  layers='GEGE*EGEGE*E' warning="experimental_attention_variant 'gated_delta_net' is deprecated"
accepted --num-layers 4 --experimental-attention-variant gdn --linear-attention-freq '([1]*3+[0]*1)' \
  --moe-layer-freq '[0,1]*2' -- layers='G-GEG-*E'
accepted --num-layers 2 --linear-attention-freq 2 -- layers='*E*E' \
  warning='linear_attention_freq 2 is ignored: experimental_attention_variant is not set'
accepted --num-layers 2 --experimental-attention-variant dsa -- layers='DEDE'

# --- GPT-style MTP (--mtp-num-layers: each depth like the last layer), virtual stages from the
# flags, an uneven first stage.
accepted --num-layers 2 --mtp-num-layers 2 -- layers='*E*E' mtp='2:*E'
refused_args "contradicts the layer pattern" --hybrid-layer-pattern 'M*/M*' --mtp-num-layers 2
accepted --hybrid-layer-pattern 'M*M*M*M*' --pipeline-model-parallel-size 2 --num-virtual-stages-per-pipeline-rank 2 \
  -- stages='[[0,1],[2,3],[4,5],[6,7]]'
accepted --hybrid-layer-pattern 'M*M*M*' --pipeline-model-parallel-size 2 --decoder-first-pipeline-num-layers 1 \
  -- stages='[[0],[1,2,3,4,5]]'
refused_args "virtual pipeline stages need --pipeline-model-parallel-size above 1" --hybrid-layer-pattern 'M*M*' \
  --num-virtual-stages-per-pipeline-rank 2
# Megatron flags train refuses are refused here too.
refused_args "--fp16: refused: float16 training needs loss scaling" --fp16

# Not portable, and why:
#  - pattern_from_ratios with both ratios 0 ("MMMMMMMM", "M"): Megatron only calls it when a ratio
#    is set, and so does strata (tests/model/layer_allocation_test.cpp runs the function itself);
#  - the empty pattern "": an empty --hybrid-layer-pattern means no pattern in strata (GPT-style
#    layers), as an unset one does in Megatron; the parser's own test is in layer_pattern_test.cpp;
#  - a vp_stage out of range, and the two logging tests: describe shows every stage, logs nothing;
#  - get_layer_maps_from_layer_type_list (7 tests): per-kind indices of Megatron's inference
#    caches, which strata keys by layer number; parse_hybrid_pattern(None), dataclass equality.
echo "describe: $cases cases"
echo "describe: OK"
