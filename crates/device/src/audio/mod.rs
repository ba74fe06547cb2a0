//! Audio sources and their conversion to what the transcriber eats: 16 kHz mono f32.
//!
//! The sources are the microphone ([`mic::listen`], cpal) and WAV files
//! ([`source::files`]); both are cut into utterances by the voice-activity
//! [`segmenter`] and hand out the same [`Utterance`]. The microphone hears
//! only while its [`gate`] is open.

pub mod gate;
pub mod mic;
pub mod segmenter;
pub mod source;
pub mod wav;

pub use wav::{WavError, read_wav};

/// The sample rate every later stage works at (Whisper's).
pub const SAMPLE_RATE: u32 = 16_000;

/// One utterance of 16 kHz mono audio, samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub samples: Vec<f32>,
}

impl Utterance {
    pub fn duration_ms(&self) -> u64 {
        self.samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }

    /// Root-mean-square level; the cheapest evidence that there is anything to hear.
    pub fn rms(&self) -> f32 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .samples
            .iter()
            .map(|s| f64::from(*s) * f64::from(*s))
            .sum();
        (sum / self.samples.len() as f64).sqrt() as f32
    }
}
