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
use crate::payees::SharedPayees;
use crate::profile::{DeviceProfile, PromptStyle};
use crate::protocol::Evidence;
use crate::wake::{Addressed, Wake};

/// What one utterance amounted to.
#[derive(Debug, Clone, PartialEq)]
pub struct Understood {
    pub transcript: Transcript,
    /// Whether it was said to the device; the intent is the command's.
    pub addressed: Addressed,
    pub intent: Intent,
    /// Nothing in it looks invented (see [`Recognizer::sure`]).
    pub sure: bool,
    pub transcribe_ms: u64,
}

pub struct Recognizer {
    transcriber: Transcriber,
    context: ParseContext,
    min_confidence: f32,
    amount_certainty: f32,
    /// The payee and provider names the prompt holds: Whisper may copy them
    /// where another name was said.
    prompt_names: Vec<String>,
    wake: Wake,
    /// The daemon's payee book: names added while it runs are read as
    /// payees at once (masked from the amount, found without "to").
    payees: Option<SharedPayees>,
}

impl Recognizer {
    /// Loads the profile's model (see [`DeviceProfile::model_path`]).
    pub fn new(profile: &DeviceProfile) -> Result<Self, AsrError> {
        Self::with_model(profile, &profile.model_path())
    }

    pub fn with_model(profile: &DeviceProfile, model: &Path) -> Result<Self, AsrError> {
        let (initial_prompt, prompt_names) = prompt(profile);
        let settings = TranscriberSettings {
            language: profile.language.code().to_owned(),
            threads: profile.asr.threads,
            audio_ctx_floor: profile.asr.audio_ctx_floor,
            max_tokens: profile.asr.max_tokens,
            beam_size: profile.asr.beam_size,
            no_speech_threshold: profile.asr.no_speech_threshold,
            noise_confidence: profile.asr.noise_confidence,
            initial_prompt,
        };
        Ok(Self {
            transcriber: Transcriber::new(model, settings)?,
            context: profile.parse_context(),
            min_confidence: profile.asr.min_confidence,
            amount_certainty: profile.asr.amount_certainty,
            prompt_names,
            wake: Wake::new(&profile.wake),
            payees: None,
        })
    }

    /// Reads payee names from `payees` as it is at each utterance, instead
    /// of from the profile alone.
    pub fn with_payees(mut self, payees: SharedPayees) -> Self {
        self.payees = Some(payees);
        self
    }

    /// The parse context with the book's spoken forms as they are now (a
    /// few dozen short strings: nothing beside a transcription).
    fn context_now(&self) -> std::borrow::Cow<'_, ParseContext> {
        match &self.payees {
            None => std::borrow::Cow::Borrowed(&self.context),
            Some(book) => std::borrow::Cow::Owned(ParseContext {
                known_payees: book.read().spoken_forms(),
                ..self.context.clone()
            }),
        }
    }

    pub fn transcribe(&mut self, utterance: &Utterance) -> Result<(Transcript, u64), AsrError> {
        let started = crate::clock::Stopwatch::start();
        let transcript = self.transcriber.transcribe(utterance)?;
        Ok((transcript, started.elapsed_ms()))
    }

    pub fn understand(&mut self, utterance: &Utterance) -> Result<Understood, AsrError> {
        let (transcript, transcribe_ms) = self.transcribe(utterance)?;
        let addressed = self.wake.address(&transcript.text);
        let intent = match &addressed {
            Addressed::Command(command) => self.intent_of_text(command, transcript.confidence),
            Addressed::PhraseAlone => Intent::None,
            // Not for the device unless it answers a question: read as it came.
            Addressed::Not => self.intent_of_text(&transcript.text, transcript.confidence),
        };
        let sure = self.sure(&transcript, &intent);
        Ok(Understood {
            transcript,
            addressed,
            intent,
            sure,
            transcribe_ms,
        })
    }

    /// A transcript Whisper is unsure of may still be a harmless command, but
    /// it never moves money: a payment heard with low confidence is dropped.
    pub fn intent_of(&self, transcript: &Transcript) -> Intent {
        self.intent_of_text(&transcript.text, transcript.confidence)
    }

    /// [`Self::intent_of`] for the command part of a transcript.
    fn intent_of_text(&self, text: &str, confidence: f32) -> Intent {
        let intent = intent::parse(text, &self.context_now());
        if intent.is_payment() && confidence < self.min_confidence {
            tracing::info!(confidence, "payment heard with low confidence: ignored");
            return Intent::None;
        }
        intent
    }

    /// Whether a payment holds nothing Whisper may have made up (see [`sure`]).
    pub fn sure(&self, transcript: &Transcript, intent: &Intent) -> bool {
        sure(
            transcript,
            intent,
            &self.context_now(),
            &self.prompt_names,
            self.amount_certainty,
        )
    }

    /// The payee and provider names Whisper's prompt holds: names it may
    /// copy where another was said.
    pub fn prompt_names(&self) -> &[String] {
        &self.prompt_names
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
                        addressed: understood.addressed,
                        intent: understood.intent,
                        sure: understood.sure,
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

/// The profile's prompt, and the names in it: its payees by name (aliases
/// are for matching, not for Whisper), as many as its `asr.prompt` says.
fn prompt(profile: &DeviceProfile) -> (String, Vec<String>) {
    let mut context = ParseContext {
        known_payees: profile.known_payees.clone(),
        ..profile.parse_context()
    };
    match profile.asr.prompt {
        PromptStyle::Names => {}
        PromptStyle::Examples => {
            // The examples' slots take the first names; nothing is listed after them.
            context.known_payees.truncate(intent::PROMPT_PAYEE_SLOTS);
            context
                .known_providers
                .truncate(intent::PROMPT_PROVIDER_SLOTS);
        }
        PromptStyle::StandIns => context = intent::with_stand_in_names(&context),
        PromptStyle::None => return (String::new(), Vec::new()),
    }
    let names = context
        .known_payees
        .iter()
        .chain(&context.known_providers)
        .cloned()
        .collect();
    let mut prompt = intent::whisper_prompt(&context);
    if profile.wake.mode == crate::wake::WakeMode::Phrase {
        // Whisper writes what its prompt leads it to expect: without the
        // phrase there, "hey wallet" comes out as "Hate wallet" or "Hang while it".
        prompt = format!(
            "{} {prompt}",
            crate::wake::as_sentence(&profile.wake.phrase)
        );
    }
    (prompt, names)
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
    /// All of it, the wake phrase too (the evidence is what was heard).
    pub transcript: String,
    /// Said to the device, or not: the daemon ignores what was not (unless
    /// it answers a pending question), and never logs it in full.
    pub addressed: Addressed,
    pub intent: Intent,
    /// Whisper was sure of the amount's words; when not, the payment is read back.
    pub sure: bool,
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
                addressed: Addressed::Command(text.to_owned()),
                intent: intent::parse(text, context),
                sure: true,
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

/// Whether a payment holds nothing Whisper may have made up, so that it may
/// pay under the auto-pay limit without a read-back. "fifteen" and "fifty"
/// differ by a token Whisper may barely believe: an amount token under
/// `amount_certainty` is unsure. An amount spoken as two numbers ("twelve
/// fifty") has another reading. And a payee or provider the prompt names may
/// have been copied from it. Any of these: unsure.
pub fn sure(
    transcript: &Transcript,
    intent: &Intent,
    ctx: &ParseContext,
    prompt_names: &[String],
    amount_certainty: f32,
) -> bool {
    let name = match intent {
        Intent::Pay { payee, .. } => payee,
        Intent::TopUp { provider, .. } => provider,
        _ => return true,
    };
    let squash = crate::payees::squash;
    let from_prompt = prompt_names.iter().any(|p| squash(p) == squash(name));
    let amount_sure = transcript
        .amount_probability(|w| intent::is_number_word(w, ctx))
        .is_none_or(|p| p >= amount_certainty);
    let one_reading = !intent::amount_spoken_as_pair(&transcript.text, ctx);
    amount_sure && one_reading && !from_prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asr::HeardToken;
    use crate::money::{Currency, Money};

    fn pay(minor: i64, currency: Currency, payee: &str) -> Intent {
        Intent::Pay {
            amount: Money::new(minor, currency),
            payee: payee.into(),
        }
    }

    fn heard(text: &str, amount_probability: f32) -> Transcript {
        let mut transcript = Transcript::plain(text, 0.9);
        transcript.tokens = text
            .split_whitespace()
            .map(|word| HeardToken {
                text: format!(" {word}"),
                probability: if word.starts_with(|c: char| c.is_ascii_digit()) {
                    amount_probability
                } else {
                    0.99
                },
            })
            .collect();
        transcript
    }

    fn is_sure(transcript: &Transcript, intent: &Intent) -> bool {
        sure(
            transcript,
            intent,
            &ParseContext::default(),
            &["Heytea".to_owned()],
            0.80,
        )
    }

    #[test]
    fn a_payment_is_sure_only_when_nothing_in_it_may_be_made_up() {
        let bob = pay(1550, Currency::CNY, "Bob");
        assert!(is_sure(&heard("Pay 15.50 yuan to Bob.", 0.95), &bob));
        // An amount Whisper barely believed.
        assert!(!is_sure(&heard("Pay 15.50 yuan to Bob.", 0.60), &bob));
        // A name from the prompt.
        let heytea = pay(1550, Currency::CNY, "Heytea");
        assert!(!is_sure(&heard("Pay 15.50 yuan to Heytea.", 0.95), &heytea));
    }

    #[test]
    fn an_amount_spoken_as_two_numbers_is_never_sure() {
        let usd = pay(1250, Currency::USD, "Bob");
        assert!(!is_sure(&heard("Pay 12 50 dollars to Bob.", 0.95), &usd));
        assert!(is_sure(&heard("Pay 12 dollars 50 to Bob.", 0.95), &usd));
    }
}
