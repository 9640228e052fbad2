#!/usr/bin/env bash
# One call on the GPU machine: build strata with CUDA (sm_90) against the LibTorch inside the
# machine's PyTorch wheel, then (phase "test") run the test suite on CUDA tensors and hf-check on
# the GPU, and (phase "bench") benchmark against PyTorch on the same GPU; prints a short table.
#   bench/gpu.sh [all|test|bench|gdn|revisions|profile|nccl|export|mhc]  (default all; the build is
#     incremental in build-gpu/; gdn: only the Gated DeltaNet tests (generate's decode included),
#     benchmark, the decode benchmark and the profile (about 7 of a call's 10 minutes);
#     revisions: only bench/gdn_revisions.sh run, the fused GDN kernels of the trees packed in
#     .peers/revisions checked and timed beside this tree's, standalone (no LibTorch build; about a
#     minute and a half a tree); profile: the training step's kernels by GPU time, strata
#     beside PyTorch eager and torch.compile, and strata with mHC;
#     nccl: bench/nccl_scaling.sh over every GPU, twice, then the Gated DeltaNet layer's profile;
#     export: each HF fixture trained 3 steps by strata, exported with strata export, loaded in HF
#     transformers and compared with strata (scripts/check_hf_export.py), fp32 on the CPU and the GPU;
#     mhc: the mHC tests on CUDA (only they are built), the mHC op benchmark, and mHC n = 4's
#     training-step overhead over the plain residual beside its bandwidth bound (dense 221M with
#     float32 and bfloat16 streams, fused and unfused boundaries; hidden 4096 x 8 layers; a GDN +
#     attention + MoE hybrid))
# Needs .gpu-deps/ (bench/prepare_gpu_deps.sh) carried along, and .peers/ for the GDN peer.
set -uo pipefail
cd "$(dirname "$0")/.."
phase=${1:-all}
out=${OUT:-/tmp/strata-gpu}
mkdir -p "$out"

torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/device.txt"

step() {  # step NAME COMMAND...: runs, logs to $out/NAME.log, records PASS/FAIL and seconds
  local name=$1
  shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then status=PASS; else status=FAIL; fi
  printf '%-28s %-5s %5ds\n' "$name" "$status" $((SECONDS - start)) | tee -a "$out/summary.txt"
  [ "$status" = PASS ] || tail -40 "$out/$name.log"
}

if [ "$phase" = revisions ]; then
  step gdn-revisions bash bench/gdn_revisions.sh run
  grep -E "^==|^time|^  backward passes|PASS|FAIL|not build" "$out/gdn-revisions.log"
  exit 0
fi

# mhc builds only the mHC tests (half the build time of the whole suite; device calls are short).
test_subset=
[ "$phase" = mhc ] && test_subset="kernels/hc_*.cpp;kernels/hyper_connection*.cpp;layers/hyper_connection*.cpp;\
layers/bias_dropout_add_test.cpp;model/hyper_connection_model_test.cpp;model/residual_dtype_test.cpp;hf/deepseek_v4_test.cpp"
step configure cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$torch_prefix;$PWD/.gpu-deps/usr" -DSTRATA_TEST_SUBSET="$test_subset"
if [ "$phase" = nccl ]; then
  step build cmake --build build-gpu -j"$(nproc)" --target strata strata_bench_gdn
  gpus=$(nvidia-smi --list-gpus | wc -l)
  step nccl-scaling-1 bash bench/nccl_scaling.sh "$gpus"
  step nccl-scaling-2 bash bench/nccl_scaling.sh "$gpus"
  cat "$out/nccl-scaling-1.log" "$out/nccl-scaling-2.log" "$out/summary.txt"
  echo "ranks' logs naming destroy_process_group (NCCL's leaked-group warning):"
  grep -l destroy_process_group "$out"/nccl/*.log || echo none
  rm -f "$out"/nccl/tokens.u16
  step profile-gdn build-gpu/strata_bench_gdn --profile
  cat "$out/profile-gdn.log"
  exit 0
fi
if [ "$phase" = mhc ]; then
  step build cmake --build build-gpu -j"$(nproc)" --target strata_tests strata_bench_train strata_bench_mhc
  step tests-mhc env STRATA_TEST_DEVICE=cuda build-gpu/tests/strata_tests \
    --gtest_filter='HcMaps*:HcBoundary*:HcKernels*:HcCombine*:HcCollapse*:HcProject*:Sinkhorn*:HyperConnection*:DeepseekV4*:HfDeepseekV4*:ResidualDtype*'
  grep -hE "PASSED|FAILED|Failure|error" "$out/tests-mhc.log" | head -40
  step bench-mhc-ops sh -c 'build-gpu/strata_bench_mhc && build-gpu/strata_bench_mhc --bf16-streams'
  dense="build-gpu/strata_bench_train --hyper-connections 4 --compare-plain"
  wide="--hidden-size 4096 --num-layers 8 --num-attention-heads 32 --kv-channels 128 --ffn-hidden-size 11008 --micro-batch-size 2"
  step mhc-dense-fp32 $dense
  step mhc-dense-bf16 $dense --fp32-residual-connection false
  step mhc-dense-fp32-unfused $dense --unfused-hyper-connections
  step mhc-dense-bf16-unfused $dense --fp32-residual-connection false --unfused-hyper-connections
  step mhc-wide-bf16 $dense $wide --fp32-residual-connection false
  step mhc-hybrid-bf16 $dense --hybrid-layer-pattern "G[*E]G[*E]G[*E]G[*E]G[*E]G[*E]" --num-moe-experts 8 \
    --moe-ffn-hidden-size 1408 --fp32-residual-connection false
  cat "$out/bench-mhc-ops.log"
  grep -h "^# mHC" "$out"/mhc-*.log
  cat "$out/summary.txt"
  exit 0
fi
if [ "$phase" = export ]; then
  step build cmake --build build-gpu -j"$(nproc)" --target strata_cli
  dir=$out/export
  rm -rf "$dir" && mkdir -p "$dir"
  python3 -c 'import json, sys; [print(json.loads(l)["text"]) for l in sys.stdin]' \
    < tests/fixtures/text/megatron_indexed/documents.jsonl > "$dir/text.txt"
  archs="qwen3_dense qwen3_next nemotron_h deepseek_v32"
  for arch in $archs; do
    step export-train-$arch build-gpu/strata train --load-hf tests/fixtures/hf/$arch --data-path "$dir/text.txt" \
      --seq-length 32 --micro-batch-size 2 --train-iters 3 --eval-iters 0 --save "$dir/runs/$arch"
    step export-$arch build-gpu/strata export --load "$dir/runs/$arch" --hf "$dir/$arch/model"
  done
  for device in cpu cuda; do
    step export-check-$device python3 scripts/check_hf_export.py --strata build-gpu/strata --device $device \
      --json "$dir/check-$device.json" $(for arch in $archs; do echo "$dir/$arch"; done)
    cat "$out/export-check-$device.log"
  done
  cat "$out/summary.txt"
  exit 0
fi
if [ "$phase" = gdn ] && [ -d .peers/flash-linear-attention ]; then
  # flash-linear-attention's Triton compile and autotune take ~130 s: they run (into Triton's
  # cache) while strata builds, so that compare_gdn.py's timings do not wait for them.
  (for T in 4096 16384; do
    PYTHONPATH="$PWD/.peers/flash-linear-attention" python3 bench/compare_gdn.py --fla-only --seq-lengths $T
  done
  PYTHONPATH="$PWD/.peers/flash-linear-attention" python3 bench/compare_gdn.py --fla-only --seq-lengths 65536 \
    --fwd-only) >"$out/fla-warm.log" 2>&1 &
fi
step build cmake --build build-gpu -j"$(nproc)" -- -k 0
if [ "$phase" = gdn ]; then
  # The autotune gets the GPU to itself: beside other work it may pick slower configurations,
  # which Triton's cache keeps for the timings below.
  wait  # the background compile of flash-linear-attention's kernels
  step tests-gdn env STRATA_TEST_DEVICE=cuda OMP_NUM_THREADS=2 ctest --test-dir build-gpu \
    -R "L2Normalize|DeltaRule|ChunkState|GatedDelta|GatedRmsNorm|RmsNorm|CausalConv1d|UnitLowerInverse|Tf32Matmul|Qwen3Next|qwen3_next|gdn2|Generate" \
    --output-on-failure -j8
  grep -hE "tests passed|tests failed|Failed|\*\*\*" "$out/tests-gdn.log" | tail -12
  # The device tool returns eight files of $OUT: a passing build's logs make room for the tests'.
  grep -qE "^build +PASS" "$out/summary.txt" && rm -f "$out/configure.log" "$out/build.log"
  # Each step's output printed as it ends: a call cut off at its time limit keeps what ran.
  step bench-gdn python3 bench/compare_gdn.py --strata-bench build-gpu/strata_bench_gdn \
    --fla-path "$PWD/.peers/flash-linear-attention"
  grep -vE "falling back" "$out/bench-gdn.log"
  step bench-decode python3 bench/compare_decode.py --strata-bench build-gpu/strata_bench_decode
  grep -vE "falling back|Writing model shards" "$out/bench-decode.log"
  step profile-gdn build-gpu/strata_bench_gdn --profile
  cat "$out/profile-gdn.log"
  cat "$out/summary.txt"
  exit 0
fi
if [ "$phase" = profile ]; then
  step profile-train python3 bench/compare_train_step.py --strata-bench build-gpu/strata_bench_train --profile \
    --skip-variants --steps 16 --warmup 6
  step profile-train-mhc build-gpu/strata_bench_train --hyper-connections 4 --steps 12 --warmup 4 --profile
  cat "$out/profile-train.log" "$out/profile-train-mhc.log" "$out/summary.txt"
  exit 0
fi
if [ "$phase" != bench ]; then
  # Fuzzing needs clang's libFuzzer and the compile-fail tests only exercise the compiler: both
  # run on the CPU machines. The multi-rank tests start CPU ranks over Gloo, and PyTorch's wheel
  # ships no Gloo headers: the CPU machines run them, bench/nccl_scaling.sh runs NCCL on 2+ GPUs.
  # cli.docs_commands (docs/parallelism.md's --nproc commands) and cli.mtp (its refusal of MTP
  # with tensor parallelism, checked on two Gloo ranks) need Gloo too. Two OpenMP threads a test:
  # with the default (one per core) eight tests at once made the CPU-side tests ~50x slower.
  multi_rank="cli.train_nproc|Parallel|Collectives|FailureHandling|VirtualPipeline|UnevenPipeline|StopConditionsTest.Rank"
  multi_rank="$multi_rank|cli.docs_commands|cli.mtp"
  step tests-cuda env STRATA_TEST_DEVICE=cuda OMP_NUM_THREADS=2 ctest --test-dir build-gpu \
    -E "fuzz|compile_fail|$multi_rank" --output-on-failure -j8
  for fixture in tests/fixtures/hf/*/ tests/fixtures/hf_scaled_rope/*/ tests/fixtures/hf_deepseek_v4/*/; do
    step hf-check-cuda-$(basename "$fixture") build-gpu/strata hf-check "$fixture" --device cuda
  done
  grep -h "^hf-check" "$out"/hf-check-cuda-*.log
  grep -hE "tests passed|tests failed" "$out/tests-cuda.log" | tail -1
fi
if [ "$phase" != test ]; then
  # Benchmarks beside PyTorch on the same GPU. flash-linear-attention (and einops, which it
  # imports) come from .peers/ when carried: public code run as a peer, never committed.
  step bench-train-step python3 bench/compare_train_step.py --strata-bench build-gpu/strata_bench_train ${BENCH_TRAIN_FLAGS:-}
  step bench-gdn python3 bench/compare_gdn.py --strata-bench build-gpu/strata_bench_gdn \
    --fla-path "$PWD/.peers/flash-linear-attention"
  step bench-decode python3 bench/compare_decode.py --strata-bench build-gpu/strata_bench_decode
  step bench-mhc sh -c 'build-gpu/strata_bench_mhc && STRATA_FUSED_KERNELS=0 build-gpu/strata_bench_mhc'
  for b in bench-train-step bench-gdn bench-decode bench-mhc; do cat "$out/$b.log"; done
fi
echo "== summary"
cat "$out/summary.txt"
