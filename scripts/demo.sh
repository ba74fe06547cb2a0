#!/usr/bin/env bash
# The main job: set up if needed, then understand every bundled fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/voicepay intent tests/fixtures/*.wav
