#!/usr/bin/env bash
# Run here, before a GPU run: the GPU machine reaches no package registry, so the Debian
# packages strata builds with (headers, CMake configs, GoogleTest's static libraries) travel in
# .gpu-deps/ (git-ignored, carried by the device tool). Nothing in it is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps
# The text libraries travel with their run-time halves (the -dev packages hold only the links).
for package in nlohmann-json3-dev libcli11-dev libgtest-dev libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 \
               libsentencepiece-dev libsentencepiece0; do
  dpkg -L "$package" | while read -r path; do
    case $path in /usr/share/doc/* | /usr/src/*) continue ;; esac
    if [ -f "$path" ]; then
      mkdir -p ".gpu-deps$(dirname "$path")"
      cp "$path" ".gpu-deps$path"
    fi
  done
done
du -sh .gpu-deps
