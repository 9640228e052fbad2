#!/usr/bin/env bash
# Installs the Debian packages strata builds with, if they are missing. Idempotent: a second
# run installs nothing. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git
  libtorch-dev            # LibTorch 1.13 (CPU): tensors, autograd, c10d
  libgloo-dev             # Gloo's headers, which c10d's ProcessGroupGloo.hpp includes
  nlohmann-json3-dev      # safetensors headers, config.json
  libcli11-dev            # command-line parsing
  libgtest-dev            # unit tests
  jq                      # the CLI tests read JSON
  libpcre2-dev            # tokenizer.json regexes (Unicode properties, JIT)
  libutf8proc-dev         # Unicode normalisation (NFC, NFKC, ...) and character categories
  libsentencepiece-dev    # SentencePiece tokenizer.model files
  clang libclang-rt-14-dev  # libFuzzer targets
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
