#!/usr/bin/env bash
# The device build, checked and not just built (CI runs this): builds both
# packages and the aarch64 binary (scripts/cross.sh), then runs tests/cross.rs
# with the aarch64 binary under qemu-user: its key and an intent read by it
# (checked with this machine's build), the packages opened, and the amd64 one
# installed with dpkg, its unit verified, and purged (as root only: that test
# changes the machine's users and /var/lib).
#
#   scripts/cross_check.sh         what CI runs (about 15 minutes from nothing)
#   scripts/cross_check.sh --all   also a fixture heard and an agent's payment
#                                  made by the aarch64 build against this
#                                  machine's gateway and mosquitto: under
#                                  Debian 12's qemu-user (7.2) whisper's f16
#                                  arithmetic and sled's start run thousands of
#                                  times slower than natively, over half an
#                                  hour each (README, "On the devices' own CPUs")
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/cross.sh amd64
scripts/cross.sh aarch64

export VOICEPAY_DEVICE_BIN=$PWD/target/aarch64-unknown-linux-gnu/release/voicepay
export VOICEPAY_DEVICE_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
skip=()
if [[ ${1:-} != --all ]]; then
  skip+=(--skip the_device_build_hears --skip an_agents_payment_made_by_the_device_build)
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "cross_check: not root, so the amd64 package is not installed here"
  skip+=(--skip the_amd64_package_installs)
fi
# One at a time: emulated inference takes both cores.
cargo test --release --locked --test cross -- --ignored --test-threads=1 "${skip[@]}"
