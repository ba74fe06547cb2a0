//! Cuts a stream of 16 kHz mono samples into utterances with a voice-activity detector: pre-roll, minimum speech, end-of-speech silence and a maximum length.
//!
//! The detector is earshot's small neural network, scored on 16 ms frames
//! (256 samples). Only stretches it calls speech for at least
//! `min_speech_ms` become utterances, so silence, steady noise and clicks
//! never reach Whisper. An utterance ends after `end_silence_ms` without
//! speech, or at `max_utterance_ms`, whichever comes first. The same
//! segmenter serves the microphone and a long WAV file.

use std::collections::VecDeque;

use serde::Deserialize;

use super::{SAMPLE_RATE, Utterance};

/// earshot scores frames of exactly this many samples (16 ms at 16 kHz).
pub const FRAME: usize = 256;

/// The `[vad]` table of a device profile.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmenterSettings {
    /// A frame scoring at least this (0..1) is speech.
    pub threshold: f32,
    /// Audio kept from before the speech began: the first consonant is
    /// often under the threshold.
    pub pre_roll_ms: u32,
    /// Speech shorter than this is a click or a cough, not an utterance.
    pub min_speech_ms: u32,
    /// This long without speech ends the utterance.
    pub end_silence_ms: u32,
    /// An utterance is cut here even if the talking goes on.
    pub max_utterance_ms: u32,
}

impl Default for SegmenterSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            pre_roll_ms: 300,
            min_speech_ms: 250,
            end_silence_ms: 600,
            max_utterance_ms: 15_000,
        }
    }
}

impl SegmenterSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err("vad.threshold is between 0 and 1".into());
        }
        if self.end_silence_ms < 100 || self.end_silence_ms > 5_000 {
            return Err("vad.end_silence_ms is between 100 and 5000".into());
        }
        if self.max_utterance_ms < 1_000 || self.max_utterance_ms > 30_000 {
            // Whisper hears at most 30 s at once.
            return Err("vad.max_utterance_ms is between 1000 and 30000".into());
        }
        if self.min_speech_ms >= self.max_utterance_ms {
            return Err("vad.min_speech_ms must be under vad.max_utterance_ms".into());
        }
        if self.pre_roll_ms > 2_000 {
            return Err("vad.pre_roll_ms is at most 2000".into());
        }
        Ok(())
    }
}

/// One utterance cut from the stream, with where its speech lies in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The speech with its pre-roll and up to the end-of-speech silence.
    pub utterance: Utterance,
    /// Where the first speech frame starts, in ms from the stream's start.
    pub speech_start_ms: u64,
    /// Where the last speech frame ends.
    pub speech_end_ms: u64,
    /// Cut at `max_utterance_ms` rather than ended by silence.
    pub cut: bool,
}

enum State {
    Quiet,
    Speaking {
        samples: Vec<f32>,
        /// Stream frame index of the first and the last speech frame.
        first_voiced: u64,
        last_voiced: u64,
        voiced_frames: u32,
    },
}

pub struct Segmenter {
    detector: earshot::Detector,
    settings: SegmenterSettings,
    /// Samples waiting to fill a frame.
    partial: Vec<f32>,
    /// The last `pre_roll_ms` of quiet audio.
    pre_roll: VecDeque<f32>,
    state: State,
    /// Frames seen so far.
    frames: u64,
}

fn frames_in(ms: u32) -> u64 {
    (u64::from(ms) * u64::from(SAMPLE_RATE)).div_ceil(1000 * FRAME as u64)
}

fn frame_ms(frame: u64) -> u64 {
    frame * FRAME as u64 * 1000 / u64::from(SAMPLE_RATE)
}

impl Segmenter {
    pub fn new(settings: SegmenterSettings) -> Self {
        Self {
            detector: earshot::Detector::default(),
            settings,
            partial: Vec::with_capacity(FRAME),
            pre_roll: VecDeque::new(),
            state: State::Quiet,
            frames: 0,
        }
    }

    /// Feeds samples; every utterance they complete is pushed to `out`.
    pub fn push(&mut self, samples: &[f32], out: &mut Vec<Segment>) {
        for &sample in samples {
            self.partial.push(sample);
            if self.partial.len() == FRAME {
                let frame = std::mem::take(&mut self.partial);
                self.frame(&frame, out);
                self.partial = frame;
                self.partial.clear();
            }
        }
    }

    /// The stream ended: the utterance under way, if it is one.
    pub fn finish(&mut self) -> Option<Segment> {
        let state = std::mem::replace(&mut self.state, State::Quiet);
        self.pre_roll.clear();
        self.partial.clear();
        self.detector.reset();
        self.close(state, false)
    }

    fn frame(&mut self, frame: &[f32], out: &mut Vec<Segment>) {
        let index = self.frames;
        self.frames += 1;
        let voiced = self.detector.predict_f32(frame) >= self.settings.threshold;
        match &mut self.state {
            State::Quiet if voiced => {
                let mut samples: Vec<f32> = self.pre_roll.drain(..).collect();
                samples.extend_from_slice(frame);
                self.state = State::Speaking {
                    samples,
                    first_voiced: index,
                    last_voiced: index,
                    voiced_frames: 1,
                };
            }
            State::Quiet => {
                let keep = (self.settings.pre_roll_ms as usize) * SAMPLE_RATE as usize / 1000;
                self.pre_roll.extend(frame);
                while self.pre_roll.len() > keep {
                    self.pre_roll.pop_front();
                }
            }
            State::Speaking {
                samples,
                last_voiced,
                voiced_frames,
                ..
            } => {
                samples.extend_from_slice(frame);
                if voiced {
                    *last_voiced = index;
                    *voiced_frames += 1;
                }
                let silent_for = index - *last_voiced;
                let too_long = samples.len() as u64 * 1000
                    >= u64::from(self.settings.max_utterance_ms) * u64::from(SAMPLE_RATE);
                if silent_for >= frames_in(self.settings.end_silence_ms) || too_long {
                    let state = std::mem::replace(&mut self.state, State::Quiet);
                    if let Some(segment) = self.close(state, too_long) {
                        out.push(segment);
                    }
                }
            }
        }
    }

    /// An utterance from what was heard, or nothing when it was too short
    /// to be speech.
    fn close(&self, state: State, cut: bool) -> Option<Segment> {
        let State::Speaking {
            samples,
            first_voiced,
            last_voiced,
            voiced_frames,
        } = state
        else {
            return None;
        };
        if u64::from(voiced_frames) < frames_in(self.settings.min_speech_ms) {
            return None;
        }
        Some(Segment {
            utterance: Utterance { samples },
            speech_start_ms: frame_ms(first_voiced),
            speech_end_ms: frame_ms(last_voiced + 1),
            cut,
        })
    }
}

/// Every utterance in a recording, in order.
pub fn segments(samples: &[f32], settings: SegmenterSettings) -> Vec<Segment> {
    let mut segmenter = Segmenter::new(settings);
    let mut out = Vec::new();
    segmenter.push(samples, &mut out);
    out.extend(segmenter.finish());
    out
}
