#!/usr/bin/env bash
# The device build, checked and not just built (CI runs this): builds both
# packages and the aarch64 binary (scripts/cross.sh), then runs tests/cross.rs
# with the aarch64 binary under qemu-user: a fixture transcribed as this
# machine's build hears it, a key and an intent, a payment heard by the
# device build and approved by this machine's gateway over a real mosquitto;
# the packages opened, and the amd64 one installed with dpkg and purged (as
# root only: that test changes the machine's users and /var/lib).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/cross.sh amd64
scripts/cross.sh aarch64

export VOICEPAY_DEVICE_BIN=$PWD/target/aarch64-unknown-linux-gnu/release/voicepay
export VOICEPAY_DEVICE_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
skip=()
if [[ $(id -u) -ne 0 ]]; then
  echo "cross_check: not root, so the amd64 package is not installed here"
  skip=(--skip the_amd64_package_installs)
fi
# One at a time: emulated inference takes both cores.
cargo test --release --locked --test cross -- --ignored --test-threads=1 "${skip[@]}"
