//! From an utterance to what the user meant: transcription, then intent parsing, with the safety gate between; and the transcriber stage that feeds the daemon.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::asr::{AsrError, Transcriber, TranscriberSettings, Transcript};
use crate::audio::Utterance;
use crate::audio::source::Input;
use crate::intent::{self, Intent, ParseContext};
use crate::profile::DeviceProfile;
use crate::protocol::Evidence;

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

    /// One input as the dialog receives it: transcribed and parsed, with the
    /// evidence (the transcript and the audio's hash; the audio stays here).
    pub fn hear(&mut self, input: Input) -> Heard {
        match input {
            Input::Unreadable { name, error } => Heard {
                name,
                arrived: Instant::now(),
                outcome: Err(error),
            },
            Input::Utterance {
                name,
                utterance,
                arrived,
            } => {
                let outcome = match self.understand(&utterance) {
                    Ok(understood) => Ok(Understanding {
                        evidence: Evidence::new(
                            &understood.transcript.text,
                            &pcm_bytes(&utterance),
                            understood.transcript.confidence.clamp(0.0, 1.0),
                            self.context.language.code(),
                        ),
                        transcript: understood.transcript.text,
                        intent: understood.intent,
                    }),
                    Err(error) => Err(format!("{name}: {error}")),
                };
                Heard {
                    name,
                    arrived,
                    outcome,
                }
            }
        }
    }
}

/// `voicepay transcribe`'s line: `{"file","text","confidence","ms"}`.
pub fn transcription_line(file: &Path, transcript: &Transcript, ms: u64) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "text": transcript.text,
        "confidence": (f64::from(transcript.confidence) * 1000.0).round() / 1000.0,
        "ms": ms,
    })
}

/// `voicepay intent`'s line: `source` (`{"file"}` or `{"text"}`) with the
/// transcript and the intent JSON.
pub fn intent_line(
    mut source: serde_json::Value,
    transcript: &str,
    intent: &Intent,
) -> serde_json::Value {
    source["transcript"] = serde_json::json!(transcript);
    source["intent"] = serde_json::json!(intent);
    source
}

/// The utterance's samples as bytes, for the evidence hash (never sent).
fn pcm_bytes(utterance: &Utterance) -> Vec<u8> {
    utterance
        .samples
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// One utterance (or typed text) as the dialog receives it.
#[derive(Debug, Clone)]
pub struct Heard {
    pub name: String,
    /// When the user spoke: deadlines are judged by this, not by when
    /// transcription finished.
    pub arrived: Instant,
    pub outcome: Result<Understanding, String>,
}

/// What was said, what it means, and the evidence that travels with a payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Understanding {
    pub transcript: String,
    pub intent: Intent,
    pub evidence: Evidence,
}

impl Heard {
    /// A typed command: no audio, full confidence (development and tests).
    pub fn typed(name: &str, text: &str, context: &ParseContext) -> Heard {
        Heard {
            name: name.to_owned(),
            arrived: Instant::now(),
            outcome: Ok(Understanding {
                transcript: text.to_owned(),
                intent: intent::parse(text, context),
                evidence: Evidence::new(text, b"", 1.0, context.language.code()),
            }),
        }
    }
}

/// The sending end of a [`Source`].
#[derive(Debug, Clone)]
pub struct Intake {
    tx: mpsc::Sender<Heard>,
    arrived: Arc<AtomicU64>,
}

impl Intake {
    /// An utterance has arrived and is being understood: until it is sent,
    /// the daemon lets no question time out (the user already answered).
    pub fn arriving(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
    }

    /// Hands one heard utterance on; `false` once the daemon has gone.
    pub async fn send(&self, heard: Heard) -> bool {
        self.tx.send(heard).await.is_ok()
    }

    pub fn blocking_send(&self, heard: Heard) -> bool {
        self.tx.blocking_send(heard).is_ok()
    }
}

/// What the daemon hears from: utterances understood, in order.
#[derive(Debug)]
pub struct Source {
    rx: mpsc::Receiver<Heard>,
    arrived: Arc<AtomicU64>,
    received: u64,
}

impl Source {
    /// A source and its intake; `bound` utterances may wait in between.
    pub fn channel(bound: usize) -> (Intake, Source) {
        let (tx, rx) = mpsc::channel(bound);
        let arrived = Arc::new(AtomicU64::new(0));
        let intake = Intake {
            tx,
            arrived: arrived.clone(),
        };
        let source = Source {
            rx,
            arrived,
            received: 0,
        };
        (intake, source)
    }

    /// The next utterance; `None` when the input has ended.
    pub async fn next(&mut self) -> Option<Heard> {
        let heard = self.rx.recv().await?;
        self.received += 1;
        Some(heard)
    }

    /// An utterance arrived that is not here yet (it is being transcribed).
    pub fn in_flight(&self) -> bool {
        self.arrived.load(Ordering::SeqCst) > self.received
    }
}

/// The transcriber stage, on a thread of its own (Whisper works for hundreds
/// of milliseconds without yielding): audio in, [`Heard`] out, in order. It
/// ends when the input ends or the daemon goes.
pub fn spawn(mut recognizer: Recognizer, mut inputs: mpsc::Receiver<Input>) -> Source {
    let (intake, source) = Source::channel(1);
    let spawned = std::thread::Builder::new()
        .name("transcriber".into())
        .spawn(move || {
            while let Some(input) = inputs.blocking_recv() {
                intake.arriving();
                if !intake.blocking_send(recognizer.hear(input)) {
                    break;
                }
            }
        });
    if let Err(error) = spawned {
        // The source then ends at once: the daemon says so and stops.
        tracing::error!(%error, "cannot start the transcriber thread");
    }
    source
}
