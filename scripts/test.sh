#!/usr/bin/env bash
# The whole test suite, on the real model: set up if needed, then test in
# release mode (whisper.cpp built for debug is far too slow to run a model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --release --locked
