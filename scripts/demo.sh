#!/usr/bin/env bash
# The main job: set up if needed, then the whole payment flow on the bundled
# fixtures (fresh keys, an embedded broker, the gateway and the daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
target/release/voicepay demo "$@"
