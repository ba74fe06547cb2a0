//! The Whisper transcriber: one model loaded once, one utterance at a time.

use std::path::{Path, PathBuf};

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::automaton::{Grammar, Language, TokenId, TrieCache};
use super::decoder::{FreeReading, Reading, Session, Suppressed};
use crate::audio::Utterance;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("{path}: model not found; run `{}`", super::install_command(path))]
    ModelMissing { path: PathBuf },
    #[error("{path}: whisper.cpp cannot load this model: {detail}")]
    ModelLoad { path: PathBuf, detail: String },
    #[error("language {0:?} is not one Whisper knows")]
    UnknownLanguage(String),
    #[error("model {model} is English-only; language {language:?} needs the base model")]
    EnglishOnlyModel { model: String, language: String },
    #[error("transcription failed: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
    #[error("transcription failed: the decoder was given no tokens")]
    NothingToDecode,
}

/// How to decode; from the device profile's `[asr]` table.
#[derive(Debug, Clone)]
pub struct TranscriberSettings {
    pub language: String,
    pub threads: u16,
    pub audio_ctx_floor: u16,
    pub max_tokens: u16,
    /// 1: greedy; more: beam search with that many beams.
    pub beam_size: u8,
    pub no_speech_threshold: f32,
    /// Below this confidence the text is Whisper's invention on noise.
    pub noise_confidence: f32,
    /// Text Whisper reads as if it came before the clip: example commands
    /// and the user's payees (see [`crate::intent::whisper_prompt`]).
    pub initial_prompt: String,
    /// Attention computed in blocks (whisper.cpp's flash attention): the
    /// encoder's whole attention matrix is never held in memory.
    pub flash_attn: bool,
}

/// What was heard.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    pub text: String,
    /// 0..1: geometric mean of the text tokens' probabilities.
    pub confidence: f32,
    pub no_speech_probability: f32,
    /// The text's tokens as Whisper chose them, each with its probability:
    /// how sure it was of each word (an amount's digits above all).
    pub tokens: Vec<HeardToken>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeardToken {
    pub text: String,
    pub probability: f32,
}

impl Transcript {
    /// A transcript with no token detail (typed text, tests).
    pub fn plain(text: &str, confidence: f32) -> Self {
        Self {
            text: text.to_owned(),
            confidence,
            no_speech_probability: 0.0,
            tokens: Vec::new(),
        }
    }

    /// The mean natural log probability of the text's tokens (how much the
    /// model believed what it wrote), or minus infinity without tokens.
    pub fn mean_log_prob(&self) -> f32 {
        if self.tokens.is_empty() {
            return f32::NEG_INFINITY;
        }
        let sum: f32 = self
            .tokens
            .iter()
            .map(|t| t.probability.max(1e-6).ln())
            .sum();
        sum / self.tokens.len() as f32
    }

    /// The least probability among tokens that hold a digit or a number word: how sure Whisper was of the amount. `None` when no
    /// such token was heard.
    pub fn amount_probability(&self, is_number_word: impl Fn(&str) -> bool) -> Option<f32> {
        self.tokens
            .iter()
            .filter(|t| {
                let word = crate::names::squash(&t.text);
                word.chars().any(|c| c.is_ascii_digit()) || is_number_word(&word)
            })
            .map(|t| t.probability)
            .reduce(f32::min)
    }
}

impl Transcript {
    fn silence() -> Self {
        Self {
            text: String::new(),
            confidence: 0.0,
            no_speech_probability: 1.0,
            tokens: Vec::new(),
        }
    }
}

/// Hypotheses a closed-domain reading keeps: on the development half a
/// greedy reading named the wrong payee where its first token was shared.
const READING_BEAM: usize = 3;

/// Whisper's `logprob_threshold`: a text written at a mean log probability
/// under this is unsure enough for the no-speech probability to void it.
const NO_SPEECH_LOG_PROB: f32 = -1.0;

/// Below this RMS level (about -50 dBFS) a clip holds nothing to transcribe;
/// Whisper would invent words for it.
const SILENCE_RMS: f32 = 0.003;

/// Whisper's encoder sees 30 s as 1500 frames: one frame per 320 samples.
const SAMPLES_PER_AUDIO_FRAME: usize = 320;
const FULL_AUDIO_CTX: usize = 1500;
/// whisper.cpp refuses clips under one second; we pad short ones with silence.
const MIN_SAMPLES: usize = 16_000 + 1_600;

pub struct Transcriber {
    context: WhisperContext,
    /// Reused across utterances: creating one allocates the decoder's caches.
    state: WhisperState,
    params: FullParams<'static, 'static>,
    settings: TranscriberSettings,
    /// The tokens whisper.cpp puts before the text (see [`decoder_prefix`]):
    /// a second reading of the utterance starts from the same place.
    prefix: Vec<TokenId>,
    /// What the free decode never writes.
    suppressed: Suppressed,
    /// Word sets tokenized for the constrained decoder, kept across utterances.
    tries: TrieCache,
    /// The state holds the encoder output of the last utterance transcribed.
    encoded: bool,
}

impl Transcriber {
    /// Loads the model once; later calls reuse it.
    pub fn new(model: &Path, settings: TranscriberSettings) -> Result<Self, AsrError> {
        let context = load(model, settings.flash_attn)?;
        let language = whisper_rs::get_lang_id(&settings.language)
            .and_then(whisper_rs::get_lang_str)
            .ok_or_else(|| AsrError::UnknownLanguage(settings.language.clone()))?;
        if !context.is_multilingual() && language != "en" {
            return Err(AsrError::EnglishOnlyModel {
                model: model.display().to_string(),
                language: settings.language.clone(),
            });
        }
        let strategy = if settings.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: i32::from(settings.beam_size),
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_language(Some(language));
        params.set_n_threads(i32::from(settings.threads));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_single_segment(true);
        // One greedy pass: temperature fallback re-decodes and multiplies latency.
        params.set_temperature(0.0);
        params.set_temperature_inc(0.0);
        params.set_suppress_blank(true);
        // Non-speech tokens ("[Music]", "(laughs)") are never commands.
        params.set_suppress_nst(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if settings.beam_size > 1 {
            // whisper.cpp's beam search decodes: the prompt goes with it.
            if !settings.initial_prompt.is_empty() {
                params.set_initial_prompt(&settings.initial_prompt);
            }
        } else {
            // full() computes the mel and the encoder output at the clip's
            // audio context; its decode is cut after one token, without
            // the prompt, and ours (Session::free) reads the clip with it.
            params.set_max_tokens(1);
        }
        let state = context.create_state()?;
        let prefix = decoder_prefix(&context, &settings.initial_prompt, language)?;
        let suppressed = Suppressed::new(&context);
        Ok(Self {
            context,
            state,
            params,
            settings,
            prefix,
            suppressed,
            tries: TrieCache::default(),
            encoded: false,
        })
    }

    /// Loads `model` to prove whisper.cpp accepts it, then drops it.
    pub fn check_model(model: &Path) -> Result<(), AsrError> {
        load(model, false).map(drop)
    }

    /// Tokenizes a grammar's word sets (once per set: the numbers the first
    /// time, the payee book when it changes) into a language to decode.
    pub fn language(&mut self, grammar: &Grammar) -> Language {
        let context = &self.context;
        Language::compile(grammar, &mut self.tries, |word| {
            context.tokenize(word, 64).ok()
        })
    }

    /// The last utterance read again, held to `language`: `None` when
    /// nothing was encoded (silence) or the language admits no reading.
    pub fn reread(&mut self, language: &Language) -> Result<Option<Reading>, AsrError> {
        self.read_held_to(language, true)
    }

    /// [`Transcriber::reread`] without the initial prompt: the prompt's
    /// example sentences make their own names likelier than the audio
    /// warrants ("for Q1" read as the prompt's "Kimi", not "Qwen").
    pub fn reread_unprompted(&mut self, language: &Language) -> Result<Option<Reading>, AsrError> {
        self.read_held_to(language, false)
    }

    fn read_held_to(
        &mut self,
        language: &Language,
        prompted: bool,
    ) -> Result<Option<Reading>, AsrError> {
        if !self.encoded {
            return Ok(None);
        }
        let max_tokens = usize::from(self.settings.max_tokens);
        let mut session = if prompted {
            self.session()
        } else {
            self.unprompted_session()
        };
        session.constrained(language, max_tokens, READING_BEAM)
    }

    /// The model's log-likelihood of each candidate text for the last
    /// utterance (teacher-forced; see [`Session::score`]).
    pub fn score(&mut self, candidates: &[String]) -> Result<Vec<Reading>, AsrError> {
        if !self.encoded {
            return Ok(Vec::new());
        }
        let tokenized: Vec<Vec<TokenId>> = candidates
            .iter()
            .map(|c| self.context.tokenize(c, 64))
            .collect::<Result<_, _>>()?;
        let mut session = self.session();
        tokenized.iter().map(|t| session.score(t)).collect()
    }

    /// Candidate endings after `shared`, scored on the last utterance (see
    /// [`Session::score_endings`]); `prompted` as the reading they vary was.
    pub fn score_endings(
        &mut self,
        shared: &[TokenId],
        endings: &[Vec<TokenId>],
        shortlist: usize,
        prompted: bool,
    ) -> Result<Vec<(usize, f32)>, AsrError> {
        if !self.encoded {
            return Ok(Vec::new());
        }
        let mut session = if prompted {
            self.session()
        } else {
            self.unprompted_session()
        };
        session.score_endings(shared, endings, shortlist)
    }

    /// The tokens Whisper writes `text` with (a word after another starts
    /// with its space: " Heytea").
    pub fn tokens_of(&self, text: &str) -> Result<Vec<TokenId>, AsrError> {
        Ok(self.context.tokenize(text, 64)?)
    }

    /// The threads whisper.cpp computes with.
    pub fn threads(&self) -> u16 {
        self.settings.threads
    }

    /// The text of tokens, as Whisper writes them.
    pub fn text_of(&self, tokens: &[TokenId]) -> String {
        super::decoder::text_of(&self.context, tokens)
    }

    /// A session from start-of-transcript: the prompt left out.
    fn unprompted_session(&mut self) -> Session<'_> {
        let sot = self.context.token_sot();
        let start = self.prefix.iter().position(|t| *t == sot).unwrap_or(0);
        let prefix = self.prefix[start..].to_vec();
        let threads = usize::from(self.settings.threads);
        Session::new(&self.context, &mut self.state, prefix, false, threads)
    }

    /// A session from the prefix, which our greedy free decode left in the
    /// cache (whisper.cpp's beam decoders are not known to: they start afresh).
    fn session(&mut self) -> Session<'_> {
        let threads = usize::from(self.settings.threads);
        Session::new(
            &self.context,
            &mut self.state,
            self.prefix.clone(),
            self.settings.beam_size <= 1,
            threads,
        )
    }

    pub fn transcribe(&mut self, utterance: &Utterance) -> Result<Transcript, AsrError> {
        self.encoded = false;
        if utterance.samples.is_empty() || utterance.rms() < SILENCE_RMS {
            return Ok(Transcript::silence());
        }
        // Copied only when it must be padded.
        let samples: std::borrow::Cow<[f32]> = if utterance.samples.len() < MIN_SAMPLES {
            let mut padded = utterance.samples.clone();
            padded.resize(MIN_SAMPLES, 0.0);
            padded.into()
        } else {
            utterance.samples.as_slice().into()
        };
        let cap = token_cap_for(utterance.samples.len(), self.settings.max_tokens);
        let mut params = self.params.clone();
        params.set_audio_ctx(audio_ctx_for(samples.len(), self.settings.audio_ctx_floor) as i32);
        let beam = self.settings.beam_size > 1;
        if beam {
            params.set_max_tokens(cap as i32);
        }
        self.state.full(params, &samples)?;
        self.encoded = true;
        let heard = if beam {
            self.heard_by_beam()?
        } else {
            let threads = usize::from(self.settings.threads);
            Session::new(
                &self.context,
                &mut self.state,
                self.prefix.clone(),
                false,
                threads,
            )
            .free(&self.suppressed, cap)?
        };
        let no_speech = heard.no_speech;
        let mut log_prob_sum = 0.0f64;
        let mut heard_tokens = Vec::with_capacity(heard.tokens.len());
        let mut written = Vec::with_capacity(heard.tokens.len());
        for &(token, probability) in &heard.tokens {
            log_prob_sum += f64::from(probability.max(1e-6)).ln();
            written.push(token);
            heard_tokens.push(HeardToken {
                text: String::from_utf8_lossy(self.context.token_to_bytes(token)?).into_owned(),
                probability,
            });
        }
        let tokens = heard.tokens.len() as u32;
        let text = clean_text(&super::decoder::text_of(&self.context, &written));
        let mean_prob = if tokens == 0 {
            0.0
        } else {
            (log_prob_sum / f64::from(tokens)).exp() as f32
        };
        // Whisper's own rule: no speech when the model says so and also wrote
        // its text unsurely. Alone, the probability would drop the short
        // answers (对, 是的: 0.2 to 0.85 with clear text), and the gates
        // after it were set when whisper.cpp's decode reported a stale ~0.
        let unsure = mean_prob < NO_SPEECH_LOG_PROB.exp();
        if text.is_empty() || (no_speech > self.settings.no_speech_threshold && unsure) {
            return Ok(Transcript {
                no_speech_probability: no_speech,
                ..Transcript::silence()
            });
        }
        let confidence = mean_prob;
        // Whisper's no-speech probability misses steady noise (road rumble
        // comes out as "The last one." with no_speech near 0), but the words
        // it invents there are ones it barely believes.
        if confidence < self.settings.noise_confidence {
            // Its length only: what was not said to the device is never logged.
            tracing::debug!(chars = text.chars().count(), confidence, "dropped as noise");
            return Ok(Transcript {
                no_speech_probability: no_speech,
                ..Transcript::silence()
            });
        }
        Ok(Transcript {
            text,
            confidence,
            no_speech_probability: no_speech,
            tokens: heard_tokens,
        })
    }
}

impl Transcriber {
    /// What whisper.cpp's beam search wrote in `full()`.
    fn heard_by_beam(&self) -> Result<FreeReading, AsrError> {
        let eot = self.context.token_eot();
        let mut heard = FreeReading {
            tokens: Vec::new(),
            no_speech: 0.0,
        };
        for segment in self.state.as_iter() {
            heard.no_speech = heard.no_speech.max(segment.no_speech_probability());
            for i in 0..segment.n_tokens() {
                // Special tokens (timestamps, language, end) say nothing about the words.
                if let Some(token) = segment.get_token(i).filter(|t| t.token_id() < eot) {
                    heard
                        .tokens
                        .push((token.token_id(), token.token_probability()));
                }
            }
        }
        Ok(heard)
    }
}

/// What whisper.cpp's `full()` decodes before the text (greedy, no context
/// carried, no timestamps): the previous-text marker and the prompt's
/// tokens (at most the last 223, as it keeps), then start-of-transcript, the
/// language and task for a multilingual model, and no-timestamps.
fn decoder_prefix(
    context: &WhisperContext,
    prompt: &str,
    language: &str,
) -> Result<Vec<TokenId>, AsrError> {
    let mut prefix = Vec::new();
    if !prompt.is_empty() {
        let tokens = context.tokenize(prompt, 1024)?;
        let max_prompt = (context.n_text_ctx() / 2 - 1).max(1) as usize;
        prefix.push(context.token_prev());
        prefix.extend_from_slice(&tokens[tokens.len().saturating_sub(max_prompt)..]);
    }
    prefix.push(context.token_sot());
    if context.is_multilingual() {
        let id = whisper_rs::get_lang_id(language)
            .ok_or_else(|| AsrError::UnknownLanguage(language.to_owned()))?;
        prefix.push(context.token_lang(id));
        prefix.push(context.token_transcribe());
    }
    prefix.push(context.token_not());
    Ok(prefix)
}

fn load(model: &Path, flash_attn: bool) -> Result<WhisperContext, AsrError> {
    if !model.is_file() {
        return Err(AsrError::ModelMissing {
            path: model.to_owned(),
        });
    }
    whisper_rs::install_logging_hooks();
    let mut params = WhisperContextParameters::default();
    params.flash_attn(flash_attn);
    WhisperContext::new_with_params(model, params).map_err(|e| AsrError::ModelLoad {
        path: model.to_owned(),
        detail: e.to_string(),
    })
}

/// The encoder context sized to the clip: full 30-s context costs most of the
/// latency, but below ~200 frames short clips fall into repetition loops.
fn audio_ctx_for(samples: usize, floor: u16) -> usize {
    (samples.div_ceil(SAMPLES_PER_AUDIO_FRAME) + 64).clamp(usize::from(floor), FULL_AUDIO_CTX)
}

/// Nobody says more than about six tokens a second; a clip's cap stops a
/// repetition loop early instead of letting it run to `max_tokens`.
fn token_cap_for(samples: usize, max_tokens: u16) -> usize {
    let seconds = samples.div_ceil(crate::audio::SAMPLE_RATE as usize);
    (8 + 6 * seconds).min(usize::from(max_tokens))
}

/// Trims whitespace, drops bracketed non-speech markers Whisper emits on
/// noise ("[BLANK_AUDIO]", "(wind blowing)") and collapses repetition loops.
fn clean_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut depth = 0u32;
    for c in raw.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let words: Vec<&str> = out.split_whitespace().collect();
    collapse_repetition(&words).join(" ")
}

/// Greedy decoding of short clips can loop: "Confirm. Confirm. Confirm. Con".
/// When the whole text is one phrase repeated (the last copy possibly cut
/// short by the token cap), keep one copy. Words compare without case or
/// punctuation; a text that is not entirely a repetition is left alone.
fn collapse_repetition<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let keys: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect()
        })
        .collect();
    let n = keys.len();
    for period in 1..=n / 2 {
        let repeats = (period..n).all(|i| {
            let key = &keys[i];
            let model = &keys[i % period];
            key == model || (i == n - 1 && !key.is_empty() && model.starts_with(key.as_str()))
        });
        if repeats {
            return words[..period].to_vec();
        }
    }
    words.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_context_grows_with_the_clip_between_floor_and_full() {
        assert_eq!(audio_ctx_for(16_000, 256), 256);
        assert_eq!(audio_ctx_for(80_000, 256), 250 + 64);
        assert_eq!(audio_ctx_for(30 * 16_000, 256), FULL_AUDIO_CTX);
    }

    #[test]
    fn repetition_loops_collapse_to_one_copy() {
        assert_eq!(clean_text(" confirm confirm confirm confirm"), "confirm");
        assert_eq!(
            clean_text(" Pay 12 yuan to Luckin. Pay 12 yuan to Luckin. Pay 12 yu"),
            "Pay 12 yuan to Luckin."
        );
        assert_eq!(
            clean_text("Never Mind, Never Mind, never mind,"),
            "Never Mind,"
        );
        // Not entirely a repetition: left as heard.
        assert_eq!(clean_text("pay pay 20 yuan"), "pay pay 20 yuan");
        assert_eq!(
            clean_text("Pay 20 yuan. Pay 30 yuan."),
            "Pay 20 yuan. Pay 30 yuan."
        );
    }

    #[test]
    fn the_token_cap_grows_with_the_clip() {
        assert_eq!(token_cap_for(16_000, 32), 14);
        assert_eq!(token_cap_for(40_000, 32), 26);
        assert_eq!(token_cap_for(160_000, 32), 32);
    }

    #[test]
    fn non_speech_markers_are_dropped() {
        assert_eq!(clean_text(" [BLANK_AUDIO] "), "");
        assert_eq!(
            clean_text(" Pay 36 yuan (wind) to Heytea."),
            "Pay 36 yuan to Heytea."
        );
    }
}
