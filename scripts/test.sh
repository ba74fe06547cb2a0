#!/usr/bin/env bash
# The whole test suite, on the real model: set up if needed, then test in
# release mode (whisper.cpp built for debug is far too slow to run a model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# One Whisper thread per process: the tests of a binary run two at a time on
# this 2-core machine, and two models on two threads each put four spinning
# ggml threads on two cores. Measured on 12 Mandarin clips: alone 19 s on two
# threads, 26 s on one; two runs side by side 231 s each on two threads, 25 s
# each on one. Thread count changes speed, not what is heard.
export VOICEPAY_THREADS=1
cargo test --workspace --release --locked
