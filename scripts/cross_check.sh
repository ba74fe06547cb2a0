#!/usr/bin/env bash
# The device build, checked and not just built (CI runs this): builds both
# packages and the aarch64 binary (scripts/cross.sh), then runs tests/cross.rs
# with the aarch64 binary under qemu-user: a fixture transcribed as this
# machine's build hears it, its key and an intent, an agent's payment made by
# the aarch64 daemon and approved by this machine's gateway over a real
# mosquitto; the packages opened, and the amd64 one installed with dpkg, its
# unit verified, and purged (as root only: that test changes the machine's
# users and /var/lib). About 20 minutes from nothing, most of it the aarch64
# build and the emulated transcription (README, "On the devices' own CPUs").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/cross.sh amd64
scripts/cross.sh aarch64

export VOICEPAY_DEVICE_BIN=$PWD/target/aarch64-unknown-linux-gnu/release/voicepay
# No -L: the arm64 loader and C library installed through multiarch
# (libc6:arm64) are one build. The cross compiler's copies under
# /usr/aarch64-linux-gnu are another Debian revision, and that loader with
# the multiarch libc hangs in the first pthread_create.
export VOICEPAY_DEVICE_RUNNER="qemu-aarch64"
skip=()
if [[ $(id -u) -ne 0 ]]; then
  echo "cross_check: not root, so the amd64 package is not installed here"
  skip+=(--skip the_amd64_package_installs)
fi
# One at a time: emulated inference takes both cores.
cargo test --release --locked --test cross -- --ignored --test-threads=1 "${skip[@]}"
