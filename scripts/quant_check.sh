#!/usr/bin/env bash
# Checks the quantised model files (tiny.en, and base when installed) byte for byte against ggml's own
# quantiser (ggml_quantize_chunk, what whisper.cpp's `quantize` calls), linked
# from the whisper.cpp that cargo built; voicepay writes the blocks in safe
# Rust (the workspace forbids unsafe code, so it cannot call ggml's). Needs
# `cargo build --release` and the models (scripts/setup.sh); installs gcc if
# it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

if ! command -v gcc >/dev/null; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends gcc libgomp1 >/dev/null
fi
lib=$(ls -d "$target"/release/build/whisper-rs-sys-*/out/lib/libggml-base.a 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "no ggml library under $target/release/build: run cargo build --release" >&2; exit 1; }
out=$(dirname "$(dirname "$lib")")
bin="$target/quant_check"
gcc -O1 scripts/quant_check/check.c -I"$out/whisper.cpp/ggml/include" -L"$out/lib" \
  -lggml -lggml-cpu -lggml-base -lstdc++ -lm -lpthread -fopenmp -o "$bin"
checked=0
for m in tiny.en base; do
  for q in q8_0 q5_1; do
    [ -f "models/ggml-$m.bin" ] && [ -f "models/ggml-$m-$q.bin" ] || continue
    echo "$m $q:"
    "$bin" "models/ggml-$m.bin" "models/ggml-$m-$q.bin"
    checked=$((checked + 1))
  done
done
[ "$checked" -gt 0 ] || { echo "no quantised model to check: voicepay model install --quant q8_0" >&2; exit 1; }
