//! The voice-activity segmenter on real recordings: fixtures joined with silence and noise come out one utterance each, at the right places, and noise alone comes out as nothing.

#![allow(clippy::unwrap_used)] // a test that cannot set up should fail loudly

mod util;

use voicepay_device::audio::segmenter::{Segment, SegmenterSettings, segments};
use voicepay_device::audio::{SAMPLE_RATE, read_wav};

const MS: usize = SAMPLE_RATE as usize / 1000;

/// Deterministic brown noise (road rumble) at an RMS level in dBFS.
fn rumble(len: usize, seed: u64, rms_db: f32) -> Vec<f32> {
    let mut state = seed | 1;
    let mut level = 0.0f32;
    let raw: Vec<f32> = (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let white = (state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0;
            level = (level + white * 0.02) * 0.998;
            level
        })
        .collect();
    let rms = (raw.iter().map(|s| s * s).sum::<f32>() / len.max(1) as f32).sqrt();
    let gain = 10f32.powf(rms_db / 20.0) / rms.max(1e-9);
    raw.iter().map(|s| s * gain).collect()
}

/// Where a clean clip's speech is, by its level alone (20 ms windows within
/// 35 dB of its loudest): the truth the segmenter is held to.
fn speech_span_ms(samples: &[f32]) -> (usize, usize) {
    let window = 20 * MS;
    let power: Vec<f32> = samples
        .chunks(window)
        .map(|w| w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32)
        .collect();
    let loudest = power.iter().fold(0.0f32, |m, p| m.max(*p));
    let loud = |p: &&f32| **p > loudest * 10f32.powf(-3.5);
    let first = power.iter().position(|p| loud(&p)).unwrap();
    let last = power.iter().rposition(|p| loud(&p)).unwrap();
    (first * 20, (last + 1) * 20)
}

/// Several fixtures, each after a gap of background rumble, and the truth
/// of where each one's speech lies in the whole.
fn joined(names: &[&str], gap_ms: usize, noise_db: f32) -> (Vec<f32>, Vec<(usize, usize)>) {
    let mut stream = Vec::new();
    let mut truth = Vec::new();
    for (i, name) in names.iter().enumerate() {
        stream.extend(rumble(gap_ms * MS, i as u64 + 7, noise_db));
        let clip = read_wav(&util::fixture(name)).unwrap().samples;
        let (start, end) = speech_span_ms(&clip);
        let offset = stream.len() / MS;
        truth.push((offset + start, offset + end));
        let background = rumble(clip.len(), i as u64 + 101, noise_db);
        stream.extend(clip.iter().zip(background).map(|(s, n)| s + n));
    }
    stream.extend(rumble(gap_ms * MS, 99, noise_db));
    (stream, truth)
}

fn spans(found: &[Segment]) -> Vec<(u64, u64)> {
    found
        .iter()
        .map(|s| (s.speech_start_ms, s.speech_end_ms))
        .collect()
}

#[test]
fn fixtures_joined_with_silence_and_noise_come_out_one_each_within_100_ms() {
    let names = [
        "pay_heytea_36.wav",
        "confirm_plain.wav",
        "cancel_never_mind.wav",
        "approve_task.wav",
    ];
    // Under a quiet room's rumble and under road noise about 10 dB below the speech.
    for level in [-50.0, -30.0] {
        let (stream, truth) = joined(&names, 1_500, level);
        let found = segments(&stream, SegmenterSettings::default());
        assert_eq!(
            found.len(),
            truth.len(),
            "{:?} against {truth:?}",
            spans(&found)
        );
        for (segment, span) in found.iter().zip(&truth) {
            holds_to(segment, *span);
        }
    }
}

/// Speech found within 100 ms of where it is, ended by silence, pre-roll kept.
fn holds_to(segment: &Segment, (start, end): (usize, usize)) {
    let (got_start, got_end) = (segment.speech_start_ms as i64, segment.speech_end_ms as i64);
    assert!(
        (got_start - start as i64).abs() <= 100 && (got_end - end as i64).abs() <= 100,
        "speech at {start}-{end} ms, cut at {got_start}-{got_end} ms"
    );
    assert!(!segment.cut);
    assert!(segment.utterance.duration_ms() > segment.speech_end_ms - segment.speech_start_ms);
}

#[test]
fn every_fixture_is_one_utterance_and_the_cabin_noise_none() {
    // `run --input` segments each file: a fixture must stay one utterance.
    for entry in std::fs::read_dir(util::fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wav") {
            continue;
        }
        let clip = read_wav(&path).unwrap().samples;
        let found = segments(&clip, SegmenterSettings::default());
        let want = usize::from(!path.ends_with("none_cabin_noise.wav"));
        assert_eq!(found.len(), want, "{}: {:?}", path.display(), spans(&found));
    }
}

#[test]
fn noise_alone_gives_no_utterance() {
    let quiet = vec![0.0f32; 5_000 * MS];
    assert!(segments(&quiet, SegmenterSettings::default()).is_empty());
    let cabin = read_wav(&util::fixture("none_cabin_noise.wav"))
        .unwrap()
        .samples;
    let found = segments(&cabin, SegmenterSettings::default());
    assert!(
        found.is_empty(),
        "cabin noise heard as speech at {:?}",
        spans(&found)
    );
    for (seed, level) in [(1, -50.0), (2, -30.0), (3, -20.0)] {
        let noise = rumble(10_000 * MS, seed, level);
        let found = segments(&noise, SegmenterSettings::default());
        assert!(
            found.is_empty(),
            "{level} dBFS of road rumble heard as speech at {:?}",
            spans(&found)
        );
    }
}

#[test]
fn a_click_shorter_than_the_minimum_speech_is_not_an_utterance() {
    let mut stream = vec![0.0f32; 2_000 * MS];
    let clip = read_wav(&util::fixture("confirm_plain.wav"))
        .unwrap()
        .samples;
    let (start, _) = speech_span_ms(&clip);
    // 100 ms of the start of a word, then silence.
    stream.extend(&clip[start * MS..(start + 100) * MS]);
    stream.extend(vec![0.0f32; 2_000 * MS]);
    assert!(segments(&stream, SegmenterSettings::default()).is_empty());
}

#[test]
fn talking_past_the_maximum_length_is_cut_there() {
    // Fixtures back to back, with no gap long enough to end an utterance.
    let mut stream = Vec::new();
    while stream.len() < 20_000 * MS {
        for name in ["pay_heytea_36.wav", "topup_kimi_200k.wav"] {
            let clip = read_wav(&util::fixture(name)).unwrap().samples;
            let (start, end) = speech_span_ms(&clip);
            stream.extend(&clip[start * MS..end * MS]);
            stream.extend(vec![0.0f32; 200 * MS]);
        }
    }
    let settings = SegmenterSettings {
        max_utterance_ms: 8_000,
        ..SegmenterSettings::default()
    };
    let found = segments(&stream, settings);
    assert!(found.len() >= 2, "{:?}", spans(&found));
    assert!(found[0].cut);
    assert!(found[0].utterance.duration_ms() <= 8_000 + 20);
}

#[test]
fn a_recording_with_chatter_and_one_command_gives_the_command_alone_apart() {
    // Silence, a command, a long pause: exactly one utterance, and its audio
    // holds all of the command.
    let clip = read_wav(&util::fixture("pay_heytea_36.wav"))
        .unwrap()
        .samples;
    let mut stream = vec![0.0f32; 3_000 * MS];
    stream.extend(&clip);
    stream.extend(vec![0.0f32; 3_000 * MS]);
    let found = segments(&stream, SegmenterSettings::default());
    assert_eq!(found.len(), 1, "{:?}", spans(&found));
    let (start, end) = speech_span_ms(&clip);
    let heard = &found[0];
    assert!(heard.speech_start_ms as usize <= 3_000 + start + 100);
    assert!(heard.speech_end_ms as usize + 100 >= 3_000 + end);
}
