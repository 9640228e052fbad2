#!/usr/bin/env bash
# Builds and runs one libFuzzer target for a bounded time; exits non-zero on any crash.
#   scripts/fuzz.sh <target> <seconds> <build_dir>
# <target> names tests/fuzz/<target>_fuzz.cpp; the library sources it needs are listed in the case
# statement below, and an optional seed_<target> function writes starting inputs and a dictionary.
# The corpus lives in <build_dir>/<target>_corpus and grows across runs.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 <target> <seconds> <build_dir>" >&2
  exit 2
fi
target=$1
seconds=$2
build_dir=$(realpath -m "$3")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

case $target in
  safetensors_header) sources=(src/io/safetensors_header.cpp) ;;
  layer_pattern) sources=(src/model/layer_pattern.cpp) ;;
  model_config)
    sources=(src/core/config_json.cpp src/core/config.cpp src/core/rotary_scaling.cpp src/core/layer_frequency.cpp
      src/core/parse_number.cpp src/model/layer_pattern.cpp src/model/layer_allocation.cpp)
    ;;
  cli_number) sources=(src/core/parse_number.cpp) ;;
  tokenizer)
    sources=(src/text/{utf8,unicode,regex,byte_level,piece,normalizer,pre_tokenizer,bpe,added_tokens}.cpp
             src/text/{decoder,post_processor,hf_tokenizer,text_stream}.cpp)
    libs=(-lpcre2-8 -lutf8proc)
    defines=(-DSTRATA_FUZZ_TOKENIZER="\"$repo/tests/fixtures/text/bytelevel_bpe/tokenizer.json\"")
    ;;
  layer_frequency) sources=(src/core/layer_frequency.cpp src/core/parse_number.cpp) ;;
  *)
    echo "fuzz.sh: unknown target '$target' (known: safetensors_header, layer_pattern, model_config, cli_number," \
      "tokenizer, layer_frequency)" >&2
    exit 2
    ;;
esac

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; libFuzzer targets need clang (e.g. apt install clang libclang-rt-14-dev)" >&2
  exit 1
fi
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude)

mkdir -p "$build_dir"
# A one-line probe tells a missing fuzzer runtime apart from a compile error in the target.
probe=$build_dir/fuzzer_probe
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe.cpp" -o "$probe" 2>"$probe.log"; then
  echo "fuzz.sh: clang++ cannot link -fsanitize=fuzzer (is the libFuzzer runtime, e.g. libclang-rt-14-dev, installed?):" >&2
  cat "$probe.log" >&2
  exit 1
fi

binary=$build_dir/${target}_fuzz
echo "fuzz.sh: building $binary"
clang++ "${flags[@]}" ${defines[@]+"${defines[@]}"} "tests/fuzz/${target}_fuzz.cpp" "${sources[@]}" \
  ${libs[@]+"${libs[@]}"} -o "$binary"

corpus=$build_dir/${target}_corpus
mkdir -p "$corpus"

dict=$build_dir/${target}.dict

# Writes <8-byte little-endian JSON length><JSON><zero data bytes> to the corpus.
seed_header() {
  local name=$1 json=$2 data_bytes=$3 length=${#2} i
  {
    for ((i = 0; i < 8; i++)); do
      printf "\\$(printf %03o $(((length >> (8 * i)) & 255)))"
    done
    printf '%s' "$json"
    head -c "$data_bytes" /dev/zero
  } >"$corpus/seed_$name"
}

# Per target: a few valid and invalid inputs to start from, and the tokens worth splicing in.
seed_safetensors_header() {
  seed_header valid '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}' 8
  seed_header two_dims '{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"i":{"dtype":"I64","shape":[],"data_offsets":[12,20]}}    ' 20
  seed_header empty '{}' 0
  seed_header overlap '{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}' 8
  seed_header duplicate '{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"I8","shape":[1],"data_offsets":[1,2]}}' 2
  seed_header bad_json '{"a":' 0
  printf 'abc' >"$corpus/seed_truncated"
  printf '\x10\x27\x00\x00\x00\x00\x00\x00{}' >"$corpus/seed_length_past_end"
  printf '%s\n' '"\"dtype\""' '"\"shape\""' '"\"data_offsets\""' '"\"__metadata__\""' \
    '"\"F32\""' '"\"BF16\""' '"\"F8_E4M3\""' '"\"BOOL\""' '"18446744073709551615"' >"$dict"
}
seed_layer_pattern() {
  local i=0 p
  for p in 'M*-M*-|E*[G-]/*-' '[*-][*-]' '*-*-' '[GE][*-]' 'MMM|*-/*-/*-' '[*--]' '[*|-]' '*-||' '||M+' \
    'M*M*/' '/MM/MM' 'D+-/D+-' 'MDM*-' 'M*M*/MM/Ma' 'A-[AE]'; do
    printf '%s' "$p" >"$corpus/seed_$((i++))"
  done
  printf '%s\n' '"["' '"]"' '"|"' '"/"' '"[*-]"' '"[GE]"' '"+"' '"D"' '"A"' >"$dict"
}
seed_model_config() {
  local i=0 config
  for config in \
    '{"num_layers":2,"hidden_size":32,"ffn_hidden_size":64,"num_attention_heads":4,"num_query_groups":2,"kv_channels":8,"vocab_size":64,"max_position_embeddings":64}' \
    '{"num_layers":6,"hybrid_layer_pattern":"[G-][*-]M-","hidden_size":32,"ffn_hidden_size":64,"num_attention_heads":4,"num_query_groups":4,"kv_channels":8,"vocab_size":64,"mamba_head_dim":16,"mamba_num_groups":2}' \
    '{"num_layers":3,"moe_layer_freq":[1,0,1],"linear_attention_freq":2,"hidden_size":16,"ffn_hidden_size":16,"num_attention_heads":2,"num_query_groups":1,"kv_channels":8,"vocab_size":32,"num_moe_experts":4}' \
    '{"num_layers":2,"hybrid_layer_pattern":"D-","hidden_size":32,"ffn_hidden_size":64,"num_attention_heads":4,"num_query_groups":4,"kv_channels":8,"vocab_size":64,"q_lora_rank":16,"kv_lora_rank":16,"qk_head_dim":8,"qk_pos_emb_head_dim":4,"v_head_dim":8,"dsa_indexer_n_heads":2,"dsa_indexer_head_dim":8,"dsa_indexer_topk":4}' \
    '{"num_layers":1,"hidden_size":8,"ffn_hidden_size":8,"num_attention_heads":1,"num_query_groups":1,"kv_channels":8,"vocab_size":8,"rotary_scaling":{"type":"yarn","factor":4.0,"original_max_position_embeddings":4096,"attention_factor":null}}' \
    '{"num_layers":1,"hidden_size":8,"ffn_hidden_size":8,"num_attention_heads":1,"num_query_groups":1,"kv_channels":8,"vocab_size":8,"enable_mhc_connections":true,"mamba_time_step_limit_max":null}' \
    '{"num_layers":1,"hidden_size":8,"num_attention_heads":1,"kv_channels":null,"vocab_size":8,"position_embedding_type":"rope","enable_mhc_connections":true,"recompute_granularity":"selective","recompute_modules":["mhc"]}' \
    '{"num_layers":6,"experimental_attention_variant":"gdn","linear_attention_freq":"([1]*2+[0])*2","moe_layer_freq":null,"hidden_size":16,"ffn_hidden_size":16,"num_attention_heads":2,"num_query_groups":1,"kv_channels":8,"vocab_size":32,"num_moe_experts":4,"moe_ffn_hidden_size":8,"linear_key_head_dim":8,"linear_value_head_dim":8,"linear_num_key_heads":1,"linear_num_value_heads":2}' \
    '{"num_layers":10,"hybrid_attention_ratio":0.3,"hybrid_mlp_ratio":0.3,"hidden_size":32,"ffn_hidden_size":64,"num_attention_heads":4,"num_query_groups":4,"kv_channels":8,"vocab_size":64,"mamba_head_dim":16,"mamba_num_groups":2}' \
    '{"num_layers":"2"}' '[]' '{"num_layers":2,' '{"bogus":1}'; do
    printf '%s' "$config" >"$corpus/seed_$((i++))"
  done
  printf '%s\n' '"\"num_layers\""' '"\"hybrid_layer_pattern\""' '"\"rotary_scaling\""' '"\"type\""' '"\"yarn\""' \
    '"\"llama3\""' '"\"factor\""' '"null"' '"true"' '"1e308"' '"-9223372036854775808"' '"18446744073709551615"' \
    '"\"[*-]\""' '"\"M\""' '"\"gdn\""' '"\"dsa\""' '"\"experimental_attention_variant\""' \
    '"\"moe_layer_freq\""' '"\"linear_attention_freq\""' '"\"([0]*3+[1]*5)\""' '"\"hybrid_attention_ratio\""' >"$dict"
}
seed_cli_number() {
  local i=0 text
  for text in 0 7 -1 9223372036854775807 -9223372036854775808 9223372036854775808 18446744073709551615 \
    18446744073709551616 010 -0 +1 0x10 1x ' 1' 1.5 -2.5e-3 1e308 1e309 1e-400 4.9e-324 2.2250738585072014e-308 \
    .5 5. nan inf -inf 1e400 ''; do
    printf '%s' "$text" >"$corpus/seed_$((i++))"
  done
  printf '%s\n' '"-"' '"+"' '"."' '"e"' '"e-"' '"E+"' '"0"' '"9223372036854775807"' '"18446744073709551615"' \
    '"e308"' '"e-324"' '"nan"' '"inf"' '"infinity"' '"0x"' '"p"' '" "' >"$dict"
}

seed_tokenizer() {
  local reference=tests/fixtures/text/bytelevel_bpe/reference.json i
  for ((i = 0; i < $(jq '.cases | length' "$reference"); i++)); do
    jq -j ".cases[$i].text" "$reference" >"$corpus/seed_$i"
  done
  printf '%s\n' '"<|endoftext|>"' '"<|im_start|>"' '"<|im_end|>"' '"\xcc\x81"' '"\xe2\x80\x8d"' '"\x0d\x0a"' \
    '"\xc2\x85"' "\"'s\"" '"   "' >"$dict"
}

seed_layer_frequency() {
  local i=0 text
  for text in 4 '([0]*3+[1]*5)' '[1,0]*4' '([1]*3+[0]*2)*2' '[1]*2**3' '(1,0)' '[[1]]' '[1]+1' '[01]' '[]' \
    '[1]*10001' '2**99' ''; do
    printf '%s' "$text" >"$corpus/seed_$((i++))"
  done
  printf '%s\n' '"["' '"]"' '"("' '")"' '"*"' '"**"' '"+"' '","' '"0"' '"1"' '"10000"' >"$dict"
}
"seed_$target"
options=(-max_total_time="$seconds" -artifact_prefix="$build_dir/${target}_")
if [[ -f $dict ]]; then options+=(-dict="$dict"); fi

echo "fuzz.sh: fuzzing $target for $seconds s"
# libFuzzer exits non-zero on a crash, a leak or a sanitizer report; set -e passes that on.
"$binary" "${options[@]}" "$corpus"
echo "fuzz.sh: $target: no crash in $seconds s"
