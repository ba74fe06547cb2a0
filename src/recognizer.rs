//! From an utterance to what the user meant: transcription, then intent parsing, with the safety gate between.

use std::path::Path;

use crate::asr::{AsrError, Transcriber, TranscriberSettings, Transcript};
use crate::audio::Utterance;
use crate::intent::{self, Intent, ParseContext};
use crate::profile::DeviceProfile;

/// What one utterance amounted to.
#[derive(Debug, Clone, PartialEq)]
pub struct Understood {
    pub transcript: Transcript,
    pub intent: Intent,
    pub transcribe_ms: u64,
}

pub struct Recognizer {
    transcriber: Transcriber,
    context: ParseContext,
    min_confidence: f32,
}

impl Recognizer {
    /// Loads the profile's model (see [`DeviceProfile::model_path`]).
    pub fn new(profile: &DeviceProfile) -> Result<Self, AsrError> {
        Self::with_model(profile, &profile.model_path())
    }

    pub fn with_model(profile: &DeviceProfile, model: &Path) -> Result<Self, AsrError> {
        let settings = TranscriberSettings {
            language: profile.language.code().to_owned(),
            threads: profile.asr.threads,
            audio_ctx_floor: profile.asr.audio_ctx_floor,
            max_tokens: profile.asr.max_tokens,
            no_speech_threshold: profile.asr.no_speech_threshold,
            noise_confidence: profile.asr.noise_confidence,
            initial_prompt: intent::whisper_prompt(&profile.parse_context()),
        };
        Ok(Self {
            transcriber: Transcriber::new(model, settings)?,
            context: profile.parse_context(),
            min_confidence: profile.asr.min_confidence,
        })
    }

    pub fn transcribe(&mut self, utterance: &Utterance) -> Result<(Transcript, u64), AsrError> {
        let started = crate::clock::Stopwatch::start();
        let transcript = self.transcriber.transcribe(utterance)?;
        Ok((transcript, started.elapsed_ms()))
    }

    pub fn understand(&mut self, utterance: &Utterance) -> Result<Understood, AsrError> {
        let (transcript, transcribe_ms) = self.transcribe(utterance)?;
        let intent = self.intent_of(&transcript);
        Ok(Understood {
            transcript,
            intent,
            transcribe_ms,
        })
    }

    /// A transcript Whisper is unsure of may still be a harmless command, but
    /// it never moves money: a payment heard with low confidence is dropped.
    pub fn intent_of(&self, transcript: &Transcript) -> Intent {
        let intent = intent::parse(&transcript.text, &self.context);
        if intent.is_payment() && transcript.confidence < self.min_confidence {
            tracing::info!(
                confidence = transcript.confidence,
                "payment heard with low confidence: ignored"
            );
            return Intent::None;
        }
        intent
    }

    pub fn parse_context(&self) -> &ParseContext {
        &self.context
    }
}
