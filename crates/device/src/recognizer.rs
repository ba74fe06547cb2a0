//! From an utterance to what the user meant: transcription, then intent parsing, with the safety gate between; and the transcriber stage that feeds the daemon.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::time::Instant;

use std::collections::HashMap;
use std::ops::Range;

use crate::asr::automaton::{Language, Slot, TokenId};
use crate::asr::decoder::Reading;
use crate::asr::{AsrError, Transcriber, TranscriberSettings, Transcript};
use crate::audio::Utterance;
use crate::audio::source::Input;
use crate::intent::language::{self, Listening};
use crate::intent::{self, AnswerKind, AnswerReading, Doubt, Intent, ParseContext, Reply};
use crate::payees::{HeardName, SharedPayees};
use crate::profile::{DeviceProfile, PromptStyle};
use crate::wake::{Addressed, Wake, WakeMode};
use voicepay_core::protocol::Evidence;

/// What one utterance amounted to.
#[derive(Debug, Clone, PartialEq)]
pub struct Understood {
    /// What the free decode wrote; when a closed-domain reading was taken,
    /// its text replaces this one's (see [`Understood::closed`]).
    pub transcript: Transcript,
    /// The closed-domain reading the words come from, when the free decode
    /// made no command (or no answer) of them and the model believed it.
    pub closed: Option<ClosedReading>,
    /// Whether it was said to the device; the intent is the command's.
    pub addressed: Addressed,
    pub intent: Intent,
    /// A payment's payee, matched once in the daemon's book (none without
    /// a book: the dialog then matches it itself).
    pub payee: Option<HeardName>,
    /// What in it may be invented (see [`doubt`]); nothing: it may pay
    /// under the auto-pay limit without a read-back.
    pub doubt: Doubt,
    /// The reply to the question it was heard under, read once here; none
    /// while nothing was asked.
    pub reply: Option<Reply>,
    pub transcribe_ms: u64,
}

/// A reading held to what could be said, and how much the model believed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClosedReading {
    /// What the free decode had written instead.
    pub free_text: String,
    /// Geometric mean of the reading's unconstrained token probabilities
    /// times the probability of speech.
    pub belief: f32,
    /// Nats per token the reading is less likely than the free decode.
    pub margin: f32,
    /// The least unconstrained probability of the payee's tokens.
    pub payee_probability: Option<f32>,
}

/// Names scored in full against a reading's own: the likeliest first tokens.
const NAME_SHORTLIST: usize = 6;
/// Under this lead (nats, whole sentence) over the next name, the name is in doubt.
const NAME_LEAD: f32 = 1.0;
/// Phrasings of the other answer scored in full.
const ANSWER_SHORTLIST: usize = 6;

/// The answer a reply reading gives, if it gives one.
fn answer_kind(reading: &AnswerReading) -> Option<AnswerKind> {
    match reading {
        AnswerReading::Confirm { .. } => Some(AnswerKind::Confirm),
        AnswerReading::Cancel => Some(AnswerKind::Cancel),
        AnswerReading::Approve => Some(AnswerKind::Approve),
        AnswerReading::Reject => Some(AnswerKind::Reject),
        AnswerReading::Unclear => None,
    }
}

/// A part of a reading (its name, its amount) against the others it could be.
struct ScoredSpan {
    /// Where the part is among the reading's tokens.
    span: Range<usize>,
    /// The likelier part's tokens, when another scored higher.
    better: Option<Vec<TokenId>>,
    /// Nats the likeliest leads the next.
    lead: f32,
}

/// Under this lead (nats, whole sentence) over its likeliest twin, the amount is in doubt.
const AMOUNT_LEAD: f32 = 1.0;

/// The first run of tokens whose slot is `is`.
fn slot_run(slots: &[Slot], is: impl Fn(&Slot) -> bool) -> Option<Range<usize>> {
    let start = slots.iter().position(&is)?;
    let len = slots[start..].iter().take_while(|slot| is(slot)).count();
    Some(start..start + len)
}

/// What a number written as `said` is most often misheard as: its teen or
/// ty twin (the last two digits "15" for "50", "50" for "15", 13-19 and
/// 30-90) and the first number the free decode wrote, when it differs.
fn amount_alternatives(said: &str, free_text: &str) -> Vec<String> {
    let mut alternatives = Vec::new();
    if said.len() >= 2 && said.bytes().all(|b| b.is_ascii_digit()) {
        let (head, tail) = said.split_at(said.len() - 2);
        let tail = tail.as_bytes();
        let twin = match (tail[0], tail[1]) {
            (b'1', d @ b'3'..=b'9') => Some(format!("{head}{}0", d as char)),
            (d @ b'3'..=b'9', b'0') => Some(format!("{head}1{}", d as char)),
            _ => None,
        };
        alternatives.extend(twin);
    }
    let free_number: String = free_text
        .split(|c: char| !c.is_ascii_digit())
        .find(|run| !run.is_empty())
        .unwrap_or_default()
        .to_owned();
    if !free_number.is_empty() && free_number != said && !alternatives.contains(&free_number) {
        alternatives.push(free_number);
    }
    alternatives
}

pub struct Recognizer {
    transcriber: Transcriber,
    /// The closed-domain languages compiled so far, with the book they hold.
    languages: HashMap<Listening, (Vec<String>, Language)>,
    closed_domain: bool,
    reread_belief: f32,
    reread_margin: f32,
    answer_lead: f32,
    /// The belief at which a closed-domain reading's answer is read.
    answer_belief: f32,
    /// What the dialog waits for, as the daemon last said.
    listening: SharedListening,
    context: ParseContext,
    min_confidence: f32,
    payment_floor: f32,
    amount_certainty: f32,
    /// The payee and provider names the prompt holds: Whisper may copy them
    /// where another name was said.
    prompt_names: Vec<String>,
    wake: Wake,
    wake_phrase: String,
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
            threads: threads_for(
                profile.asr.threads,
                std::thread::available_parallelism().ok(),
            ),
            audio_ctx_floor: profile.asr.audio_ctx_floor,
            max_tokens: profile.asr.max_tokens,
            beam_size: profile.asr.beam_size,
            no_speech_threshold: profile.asr.no_speech_threshold,
            noise_confidence: profile.asr.noise_confidence,
            initial_prompt,
            flash_attn: profile.asr.flash_attn,
        };
        Ok(Self {
            transcriber: Transcriber::new(model, settings)?,
            languages: HashMap::new(),
            closed_domain: profile.asr.closed_domain,
            reread_belief: profile.asr.reread_belief,
            reread_margin: profile.asr.reread_margin,
            answer_lead: profile.asr.answer_lead,
            answer_belief: (profile.asr.answer_belief).unwrap_or(profile.asr.min_confidence),
            listening: SharedListening::default(),
            context: profile.parse_context(),
            min_confidence: profile.asr.min_confidence,
            payment_floor: profile.asr.payment_floor,
            amount_certainty: profile.asr.amount_certainty,
            prompt_names,
            wake: Wake::new(&profile.wake),
            wake_phrase: profile.wake.phrase.clone(),
            payees: None,
        })
    }

    /// Compiles the free command's language now (about 2 s on 2 cores: the
    /// numbers' words are tokenized), so that the first utterance is not the
    /// one that waits for it. The transcriber stage does this on its own
    /// thread before it hears anything, so the daemon starts (and stops) at once.
    pub fn prepare_now(&mut self) {
        if self.closed_domain {
            let ctx = self.context_now().into_owned();
            self.prepare(Listening::Command, &ctx);
        }
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

    /// The model's log-likelihood of each candidate text for the utterance
    /// transcribed last, teacher-forced on its encoder output.
    pub fn score(&mut self, candidates: &[String]) -> Result<Vec<Reading>, AsrError> {
        self.transcriber.score(candidates)
    }

    /// Candidate endings after shared tokens, scored on the utterance
    /// transcribed last (see [`Transcriber::score_endings`]).
    pub fn score_endings(
        &mut self,
        shared: &[TokenId],
        endings: &[Vec<TokenId>],
        shortlist: usize,
    ) -> Result<Vec<(usize, f32)>, AsrError> {
        self.transcriber
            .score_endings(shared, endings, shortlist, true)
    }

    /// The tokens Whisper writes `text` with.
    pub fn tokens_of(&self, text: &str) -> Result<Vec<TokenId>, AsrError> {
        self.transcriber.tokens_of(text)
    }

    pub fn transcribe(&mut self, utterance: &Utterance) -> Result<(Transcript, u64), AsrError> {
        let started = voicepay_core::clock::Stopwatch::start();
        let transcript = self.transcriber.transcribe(utterance)?;
        Ok((transcript, started.elapsed_ms()))
    }

    /// Hears with the daemon's dialog: what it waits for decides the
    /// closed-domain language (see [`Recognizer::with_listening`]).
    pub fn with_listening(mut self, listening: SharedListening) -> Self {
        self.listening = listening;
        self
    }

    pub fn understand(&mut self, utterance: &Utterance) -> Result<Understood, AsrError> {
        let listening = self.listening.get();
        self.understand_while(utterance, listening)
    }

    /// One utterance, heard while the dialog waits for `listening`: the free
    /// decode first; when it makes no command (or no answer) of the words,
    /// the same encoder output is read again held to what can be said now,
    /// and that reading is taken only when the model believed it.
    pub fn understand_while(
        &mut self,
        utterance: &Utterance,
        listening: Listening,
    ) -> Result<Understood, AsrError> {
        let started = voicepay_core::clock::Stopwatch::start();
        let transcript = self.transcriber.transcribe(utterance)?;
        let mut understood = self.understand_transcript(transcript, listening);
        let for_us = match understood.addressed {
            Addressed::Command(_) => true,
            Addressed::PhraseAlone => false,
            // A question's answer needs no wake phrase; a command does.
            Addressed::Not => listening != Listening::Command,
        };
        if self.closed_domain && for_us && self.needs_rereading(&understood, listening) {
            self.reread(&mut understood, listening)?;
        }
        understood.transcribe_ms = started.elapsed_ms();
        Ok(understood)
    }

    /// What a transcript amounts to while the dialog waits for `listening`,
    /// read once: addressed, parsed, its payee matched, its doubt weighed,
    /// and read as the reply to the question asked. No audio: text typed or
    /// a free decode (see [`Self::understand_while`], which may read again).
    pub fn understand_transcript(
        &self,
        transcript: Transcript,
        listening: Listening,
    ) -> Understood {
        let addressed = self.wake.address(&transcript.text);
        let command = match &addressed {
            Addressed::Command(command) => Some(command.as_str()),
            Addressed::PhraseAlone => None,
            // Not for the device unless it answers a question: read as it came.
            Addressed::Not => Some(transcript.text.as_str()),
        };
        let intent = command.map_or(Intent::None, |text| {
            self.intent_of_text(text, transcript.confidence)
        });
        let doubt = self.doubt(&transcript, &intent, listening);
        let payee = self.payee_of(&intent, command.unwrap_or_default());
        let reply = command.and_then(|words| {
            self.reply_of(words, transcript.confidence, self.min_confidence, listening)
        });
        Understood {
            transcript,
            closed: None,
            addressed,
            intent,
            payee,
            doubt,
            reply,
            transcribe_ms: 0,
        }
    }

    /// The words read as the reply to the question asked while `listening`.
    /// `floor`: under this confidence the words are no answer.
    fn reply_of(
        &self,
        words: &str,
        confidence: f32,
        floor: f32,
        listening: Listening,
    ) -> Option<Reply> {
        (listening != Listening::Command).then(|| Reply {
            listening,
            reading: intent::read_reply(listening, words, confidence, &self.context_now(), floor),
        })
    }

    /// Whether the free decode's words fall short of what the dialog waits
    /// for: no command, a payee outside the book, a provider we do not know,
    /// no answer to the question asked.
    fn needs_rereading(&self, understood: &Understood, listening: Listening) -> bool {
        let text = match &understood.addressed {
            Addressed::Command(command) => command.as_str(),
            _ => understood.transcript.text.as_str(),
        };
        if text.is_empty() {
            // Nothing written while a yes or no was asked: read again, and
            // only a no is taken (see [`Self::reread`]). A command never is.
            return matches!(listening, Listening::Confirmation | Listening::TaskDecision);
        }
        let ctx = self.context_now();
        match listening {
            Listening::Command => match &understood.intent {
                // Refused for what the commands cannot say (别, 吗): never forced into one.
                Intent::None => !intent::refuses(text, &ctx),
                Intent::Pay { payee, .. } => match &understood.payee {
                    Some(heard) => heard.known().is_none(),
                    None => !self.in_book(payee),
                },
                Intent::TopUp { provider, .. } => {
                    crate::payees::resolve_provider(provider, &ctx.known_providers).is_none()
                }
                _ => false,
            },
            // No clear answer (for the code: none, or a confirm without its
            // digits). Two answers heard clearly (不，批准) are no answer,
            // and never read again: held to the answers, the reading keeps
            // one side (measured: 不、批准 read as 批准 and approved).
            Listening::Confirmation | Listening::TaskDecision | Listening::Code => {
                if intent::answers_contradict(text, &ctx) {
                    return false;
                }
                match understood.reply.as_ref().map(|reply| &reply.reading) {
                    Some(AnswerReading::Unclear) | None => true,
                    Some(AnswerReading::Confirm { digits: Some(d) }) => d.is_empty(),
                    Some(_) => false,
                }
            }
            Listening::Amount | Listening::Payee => true,
        }
    }

    /// Without the daemon's book: whether the payee is one of the profile's names.
    fn in_book(&self, payee: &str) -> bool {
        crate::names::same_name(payee, self.context.known_payees.iter().map(String::as_str))
    }

    /// A payment's payee matched in the daemon's book, once per reading
    /// (`said`: the command's words).
    fn payee_of(&self, intent: &Intent, said: &str) -> Option<HeardName> {
        match (intent, &self.payees) {
            (Intent::Pay { payee, .. }, Some(book)) => Some(book.read().hear(payee, said)),
            _ => None,
        }
    }

    /// Whether a reading's payee or provider is a name of the prompt that
    /// the free decode's words do not hold.
    fn names_unheard_prompt_name(&self, reading: &Reading, free_text: &str) -> bool {
        let squash = crate::payees::squash;
        let heard = squash(free_text);
        let name_tokens: Vec<_> = reading
            .tokens
            .iter()
            .zip(&reading.slots)
            .filter(|(_, slot)| matches!(slot, Slot::Payee | Slot::Provider))
            .map(|(token, _)| *token)
            .collect();
        let named = squash(&self.transcriber.text_of(&name_tokens));
        !named.is_empty()
            && self.prompt_names.iter().any(|p| squash(p) == named)
            && !heard.contains(&named)
    }

    /// Compiles `listening`'s language unless it is compiled with the book
    /// as it is now (the numbers' words are tokenized once, the first time).
    fn prepare(&mut self, listening: Listening, ctx: &ParseContext) {
        let stale = self
            .languages
            .get(&listening)
            .is_none_or(|(held, _)| *held != ctx.known_payees);
        if stale {
            let started = voicepay_core::clock::Stopwatch::start();
            // A device that listens for its phrase hears it first.
            let wake_phrase =
                (self.wake.mode() == WakeMode::Phrase).then_some(self.wake_phrase.as_str());
            let grammar = language::grammar(listening, ctx, wake_phrase);
            let compiled = self.transcriber.language(&grammar);
            tracing::debug!(
                ?listening,
                ms = started.elapsed_ms(),
                "closed-domain language compiled"
            );
            self.languages
                .insert(listening, (ctx.known_payees.clone(), compiled));
        }
    }

    /// Reads the last utterance again in `listening`'s language, and takes
    /// that reading in place of the free one when the model believed it.
    fn reread(
        &mut self,
        understood: &mut Understood,
        listening: Listening,
    ) -> Result<(), AsrError> {
        let ctx = self.context_now().into_owned();
        self.prepare(listening, &ctx);
        let Some((_, language)) = self.languages.get(&listening) else {
            return Ok(());
        };
        let started = voicepay_core::clock::Stopwatch::start();
        let reading = self.transcriber.reread(language)?;
        tracing::debug!(ms = started.elapsed_ms(), "closed-domain reread");
        let Some(mut reading) = reading else {
            return Ok(());
        };
        let mut prompted = true;
        if self.names_unheard_prompt_name(&reading, &understood.transcript.text) {
            // The prompt's own name, which the free decode did not write:
            // read again without the prompt, and take only that reading.
            let Some((_, language)) = self.languages.get(&listening) else {
                return Ok(());
            };
            match self.transcriber.reread_unprompted(language)? {
                Some(unprompted) => reading = unprompted,
                None => return Ok(()),
            }
            prompted = false;
        }
        let transcript = &understood.transcript;
        let belief = reading.mean_log_prob().exp();
        // Against nothing written (an empty free decode, -inf) there is no
        // margin to hold, and only the belief gates the reading.
        let margin = transcript.mean_log_prob() - reading.mean_log_prob();
        let taken = belief >= self.reread_belief && margin <= self.reread_margin;
        tracing::debug!(
            ?listening,
            belief,
            margin,
            taken,
            tokens = reading.tokens.len(),
            text = %reading.text,
            "closed-domain reading"
        );
        if !taken {
            return Ok(());
        }
        // The reading's name and amount, each against what it could be.
        let (mut name_lead, mut amount_lead, mut amount_changed) = (None, None, false);
        if listening == Listening::Command {
            let mut replaced: Vec<(Range<usize>, Vec<TokenId>)> = Vec::new();
            if let Some(scored) = self.score_names(&reading, prompted, &ctx)? {
                name_lead = Some(scored.lead);
                if let Some(better) = scored.better {
                    tracing::debug!("closed-domain reading: a nearer name scored higher");
                    replaced.push((scored.span, better));
                }
            }
            let free_text = understood.transcript.text.clone();
            if let Some(scored) = self.score_amount(&reading, &free_text, prompted, &ctx)? {
                amount_lead = Some(scored.lead);
                if let Some(better) = scored.better {
                    tracing::debug!("closed-domain reading: another amount scored higher");
                    amount_changed = true;
                    replaced.push((scored.span, better));
                }
            }
            if !replaced.is_empty() {
                // The later part first, so the earlier one's place holds.
                replaced.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
                reading.text = match replaced.as_slice() {
                    // Mandarin's amount is weighed with the words after it
                    // (付三十元给瑞幸): the nearer name goes into its ending.
                    [(name, better_name), (amount, better_amount)] if amount.end >= name.end => {
                        let text_of = |tokens: &[TokenId]| self.transcriber.text_of(tokens);
                        let heard_name = text_of(&reading.tokens[name.clone()]);
                        let ending =
                            text_of(better_amount).replacen(&heard_name, &text_of(better_name), 1);
                        text_of(&reading.tokens[..amount.start]) + &ending
                    }
                    _ => {
                        let mut tokens = reading.tokens.clone();
                        for (span, better) in replaced {
                            tokens.splice(span, better);
                        }
                        self.transcriber.text_of(&tokens)
                    }
                };
            }
        }
        // The command's words: the wake phrase the language opened with, taken off.
        let words = match self.wake.address(&reading.text) {
            Addressed::Command(command) => command,
            Addressed::PhraseAlone | Addressed::Not => reading.text.clone(),
        };
        let reply = self.reply_of(&words, belief, self.answer_belief, listening);
        if matches!(listening, Listening::Confirmation | Listening::TaskDecision) {
            let Some(said) = reply.as_ref().and_then(|reply| answer_kind(&reply.reading)) else {
                return Ok(());
            };
            // Where the free decode wrote nothing (a 拒绝 in the car's noise),
            // the reading may be the road: a no costs the user a repeat, a
            // yes from nothing could pay, so only a no is taken.
            let refusal = matches!(said, AnswerKind::Cancel | AnswerKind::Reject);
            if understood.transcript.text.is_empty() && !refusal {
                return Ok(());
            }
            let lead = self.answer_lead(&reading, said, listening, &ctx)?;
            tracing::debug!(lead, "closed-domain answer scored against the other side");
            if lead < self.answer_lead {
                // Nearly as likely the other answer: asked again, never taken.
                return Ok(());
            }
        }
        let intent = match listening {
            Listening::Command => {
                let intent = intent::parse(&words, &ctx);
                if intent == Intent::None {
                    return Ok(());
                }
                intent
            }
            _ => Intent::None,
        };
        understood.closed = Some(ClosedReading {
            free_text: std::mem::replace(&mut understood.transcript.text, reading.text.clone()),
            belief,
            margin,
            payee_probability: reading.least_probability(Slot::Payee),
        });
        understood.transcript.confidence = belief;
        // The words acted on are the reading's, for a command and a reply alike.
        if listening == Listening::Command || matches!(understood.addressed, Addressed::Command(_))
        {
            understood.addressed = Addressed::Command(words.clone());
        }
        if listening == Listening::Command {
            understood.payee = self.payee_of(&intent, &words);
            understood.intent = intent;
        }
        understood.reply = reply;
        // A reading held to the book may name its nearest entry where
        // someone else was said: never paid without a read-back, which says
        // what the model believed least (the payee, unless the amount).
        let certainty = self.amount_certainty;
        let amount = reading
            .least_probability(Slot::Number)
            .is_some_and(|p| p < certainty)
            || amount_changed
            || amount_lead.is_some_and(|lead| lead < AMOUNT_LEAD);
        let payee = reading
            .least_probability(Slot::Payee)
            .or(reading.least_probability(Slot::Provider))
            .is_some_and(|p| p < certainty)
            || name_lead.is_some_and(|lead| lead < NAME_LEAD);
        understood.doubt = Doubt {
            amount,
            payee: payee || !amount,
        };
        Ok(())
    }

    /// Scores the reading's payee (or provider) against the other names it
    /// could be: each name of the book (or the table) in its place, the
    /// rest of the reading kept, teacher-forced on the same encoder output.
    /// The beam keeps three hypotheses; a name it pruned early may still be
    /// the likelier sentence. `None` when the reading names nobody.
    fn score_names(
        &mut self,
        reading: &Reading,
        prompted: bool,
        ctx: &ParseContext,
    ) -> Result<Option<ScoredSpan>, AsrError> {
        let is_name = |slot: &Slot| matches!(slot, Slot::Payee | Slot::Provider);
        let Some(span) = slot_run(&reading.slots, is_name) else {
            return Ok(None);
        };
        let forms = match reading.slots[span.start] {
            Slot::Provider => &ctx.known_providers,
            _ => &ctx.known_payees,
        };
        // " Heytea" in a language written in words; 喜茶 inside a Mandarin
        // sentence, spaced only where the reading's name was.
        let said = self.transcriber.text_of(&reading.tokens[span.clone()]);
        let spaced = intent::written_in_words(ctx) || said.starts_with(' ');
        let space = if spaced { " " } else { "" };
        let mut names = Vec::with_capacity(forms.len());
        for form in forms {
            names.push(self.transcriber.tokens_of(&format!("{space}{form}"))?);
        }
        self.score_span(reading, span, &names, NAME_SHORTLIST, prompted)
    }

    /// Scores the reading's amount against the amounts it is most often
    /// misheard as: its teen-or-ty twin ("15" and "50") and the number the
    /// free decode wrote, each in its place, teacher-forced as names are.
    /// `None` when the reading has no amount or nothing to weigh it against.
    /// In Mandarin the whole amount is weighed, its unit too (1美元 against
    /// the free decode's 1万人, which is 一万元), and the words after it.
    fn score_amount(
        &mut self,
        reading: &Reading,
        free_text: &str,
        prompted: bool,
        ctx: &ParseContext,
    ) -> Result<Option<ScoredSpan>, AsrError> {
        let Some(span) = slot_run(&reading.slots, |slot| *slot == Slot::Number) else {
            return Ok(None);
        };
        if !intent::written_in_words(ctx) {
            let onward = self.transcriber.text_of(&reading.tokens[span.start..]);
            let rivals = intent::amount_rivals(&onward, free_text, ctx);
            if rivals.is_empty() {
                return Ok(None);
            }
            let mut endings = vec![reading.tokens[span.start..].to_vec()];
            for rival in rivals {
                endings.push(self.transcriber.tokens_of(&rival)?);
            }
            let onward = span.start..reading.tokens.len();
            return self.score_span(reading, onward, &endings, endings.len(), prompted);
        }
        let said = self.transcriber.text_of(&reading.tokens[span.clone()]);
        let spaced = said.starts_with(' ');
        let alternatives = amount_alternatives(said.trim(), free_text);
        if alternatives.is_empty() {
            return Ok(None);
        }
        let mut amounts = vec![reading.tokens[span.clone()].to_vec()];
        for number in alternatives {
            let written = if spaced { format!(" {number}") } else { number };
            amounts.push(self.transcriber.tokens_of(&written)?);
        }
        self.score_span(reading, span, &amounts, amounts.len(), prompted)
    }

    /// Scores `candidates` in place of the reading's tokens in `span`, the
    /// rest kept: which is likeliest, and by how much it leads the next.
    fn score_span(
        &mut self,
        reading: &Reading,
        span: Range<usize>,
        candidates: &[Vec<TokenId>],
        shortlist: usize,
        prompted: bool,
    ) -> Result<Option<ScoredSpan>, AsrError> {
        let (shared, rest) = (&reading.tokens[..span.start], &reading.tokens[span.end..]);
        let endings: Vec<Vec<TokenId>> = candidates
            .iter()
            .map(|candidate| [candidate.as_slice(), rest].concat())
            .collect();
        let scored = self
            .transcriber
            .score_endings(shared, &endings, shortlist, prompted)?;
        let (Some(&(best, best_sum)), runner_up) = (scored.first(), scored.get(1)) else {
            return Ok(None);
        };
        let lead = runner_up.map_or(f32::INFINITY, |&(_, sum)| best_sum - sum);
        let better =
            (candidates[best] != reading.tokens[span.clone()]).then(|| candidates[best].clone());
        Ok(Some(ScoredSpan { span, better, lead }))
    }

    /// How many nats the reading's answer leads the likeliest phrasing of
    /// the other answer ("Cancel." against "Confirm."), both scored whole.
    fn answer_lead(
        &mut self,
        reading: &Reading,
        said: AnswerKind,
        listening: Listening,
        ctx: &ParseContext,
    ) -> Result<f32, AsrError> {
        let kinds = match listening {
            Listening::TaskDecision => [AnswerKind::Approve, AnswerKind::Reject],
            _ => [AnswerKind::Confirm, AnswerKind::Cancel],
        };
        let other = if said == kinds[0] { kinds[1] } else { kinds[0] };
        let mut phrasings = intent::answer_phrasings(other, ctx);
        // A task is approved or rejected by a plain yes or no as well.
        match other {
            AnswerKind::Approve => {
                phrasings.extend(intent::answer_phrasings(AnswerKind::Confirm, ctx))
            }
            AnswerKind::Reject => {
                phrasings.extend(intent::answer_phrasings(AnswerKind::Cancel, ctx))
            }
            AnswerKind::Confirm | AnswerKind::Cancel => {}
        }
        // A language written in words is scored " Cancel."; Mandarin as the
        // reading opened (with a space or without).
        let spaced = intent::written_in_words(ctx) || reading.text.starts_with(' ');
        let space = if spaced { " " } else { "" };
        let mut endings = Vec::new();
        for phrase in phrasings {
            endings.push(self.transcriber.tokens_of(&format!("{space}{phrase}"))?);
        }
        let scored = self
            .transcriber
            .score_endings(&[], &endings, ANSWER_SHORTLIST, true)?;
        let reading_sum: f32 = reading.log_probs.iter().sum();
        Ok(scored
            .first()
            .map_or(f32::INFINITY, |&(_, other_sum)| reading_sum - other_sum))
    }

    /// A transcript Whisper is unsure of may still be a harmless command;
    /// a payment heard under `asr.payment_floor` is not heard at all, and
    /// one under `asr.min_confidence` is read back (see [`Recognizer::doubt`]).
    pub fn intent_of(&self, transcript: &Transcript) -> Intent {
        self.intent_of_text(&transcript.text, transcript.confidence)
    }

    /// [`Self::intent_of`] for the command part of a transcript.
    fn intent_of_text(&self, text: &str, confidence: f32) -> Intent {
        let intent = intent::parse(text, &self.context_now());
        if intent.is_payment() && confidence < self.payment_floor {
            tracing::info!(
                confidence,
                "payment heard with too little confidence: ignored"
            );
            return Intent::None;
        }
        intent
    }

    /// Whether a payment holds nothing Whisper may have made up (see [`doubt`]).
    pub fn sure(&self, transcript: &Transcript, intent: &Intent) -> bool {
        self.doubt(transcript, intent, Listening::Command).is_sure()
    }

    /// What in a payment (or, replying to "How much?", in an amount alone)
    /// Whisper may have made up (see [`doubt`]).
    pub fn doubt(&self, transcript: &Transcript, intent: &Intent, listening: Listening) -> Doubt {
        if listening == Listening::Amount && !intent.is_payment() {
            let ctx = self.context_now();
            let amount = transcript
                .amount_probability(|w| intent::is_number_word(w, &ctx))
                .is_some_and(|p| p < self.amount_certainty)
                || intent::amount_spoken_as_pair(&transcript.text, &ctx);
            return Doubt {
                amount,
                payee: false,
            };
        }
        if intent.is_payment() && transcript.confidence < self.min_confidence {
            // Heard, but not surely: all of it is read back.
            return Doubt {
                amount: true,
                payee: true,
            };
        }
        doubt(
            transcript,
            intent,
            &self.context_now(),
            &self.prompt_names,
            self.amount_certainty,
        )
    }

    /// The Whisper threads it hears with: the profile's, at most the machine's cores.
    pub fn threads(&self) -> u16 {
        self.transcriber.threads()
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
                        payee: understood.payee,
                        sure: understood.doubt.is_sure(),
                        doubt: understood.doubt,
                        reply: understood.reply,
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
    /// The payment's payee as matched in the book (see [`Understood::payee`]).
    pub payee: Option<HeardName>,
    /// Whisper was sure of the amount's words; when not, the payment is read back.
    pub sure: bool,
    /// Which part it was unsure of, to say so in the read-back.
    pub doubt: Doubt,
    /// The reply, read once for the question it was heard under.
    pub reply: Option<Reply>,
    pub evidence: Evidence,
}

impl Understanding {
    /// What the dialog takes of it: the command without the wake phrase.
    pub fn said(&self) -> crate::dialog::Said<'_> {
        let command = match &self.addressed {
            Addressed::Command(command) => command.as_str(),
            _ => self.transcript.as_str(),
        };
        crate::dialog::Said {
            intent: &self.intent,
            command,
            evidence: &self.evidence,
            doubt: self.doubt,
            payee: self.payee.as_ref(),
            reply: self.reply.as_ref(),
        }
    }
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
                payee: None,
                sure: true,
                doubt: Doubt::NONE,
                reply: None,
                evidence: Evidence::new(text, b"", 1.0, context.language.code()),
            }),
        }
    }
}

/// What the dialog waits for, shared by the daemon (which sets it as
/// questions are asked and answered) and the transcriber stage (which hears
/// the next utterance in that language).
#[derive(Debug, Clone, Default)]
pub struct SharedListening(Arc<std::sync::Mutex<Option<Listening>>>);

impl SharedListening {
    pub fn get(&self) -> Listening {
        // A poisoned lock only means a panic elsewhere; the value is still a value.
        let held = match self.0.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        };
        held.unwrap_or(Listening::Command)
    }

    pub fn set(&self, listening: Listening) {
        match self.0.lock() {
            Ok(mut guard) => *guard = Some(listening),
            Err(poisoned) => *poisoned.into_inner() = Some(listening),
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
            recognizer.prepare_now();
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

/// What in a payment Whisper may have made up; with nothing, it may pay
/// under the auto-pay limit without a read-back. "fifteen" and "fifty"
/// differ by a token Whisper may barely believe: an amount token under
/// `amount_certainty` is in doubt. An amount spoken as two numbers ("twelve
/// fifty") has another reading. And a payee or provider the prompt names may
/// have been copied from it.
pub fn doubt(
    transcript: &Transcript,
    intent: &Intent,
    ctx: &ParseContext,
    prompt_names: &[String],
    amount_certainty: f32,
) -> Doubt {
    let name = match intent {
        Intent::Pay { payee, .. } => payee,
        Intent::TopUp { provider, .. } => provider,
        _ => return Doubt::NONE,
    };
    let squash = crate::payees::squash;
    let from_prompt = prompt_names.iter().any(|p| squash(p) == squash(name));
    let amount_sure = transcript
        .amount_probability(|w| intent::is_number_word(w, ctx))
        .is_none_or(|p| p >= amount_certainty);
    let one_reading = !intent::amount_spoken_as_pair(&transcript.text, ctx);
    Doubt {
        amount: !(amount_sure && one_reading),
        payee: from_prompt,
    }
}

/// [`doubt`] with nothing in doubt.
pub fn sure(
    transcript: &Transcript,
    intent: &Intent,
    ctx: &ParseContext,
    prompt_names: &[String],
    amount_certainty: f32,
) -> bool {
    doubt(transcript, intent, ctx, prompt_names, amount_certainty).is_sure()
}

/// The profile's Whisper threads, at most the machine's cores: more only
/// contend (the car profile's 4 threads on 2 cores took 66 s for a clip
/// that 2 heard in 5.6 s). Fewer are used with a warning, so a profile
/// made for a bigger machine still suits this one and says so.
fn threads_for(asked: u16, cores: Option<std::num::NonZeroUsize>) -> u16 {
    let Some(cores) = cores.map(|c| u16::try_from(c.get()).unwrap_or(u16::MAX)) else {
        return asked;
    };
    if asked <= cores {
        return asked;
    }
    tracing::warn!(
        asked,
        cores,
        "the profile's asr.threads is more than this machine's cores: using {cores}"
    );
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_asking_more_threads_than_the_machine_has_cores_gets_as_many_as_it_has() {
        let cores = |n| std::num::NonZeroUsize::new(n);
        assert_eq!(threads_for(4, cores(2)), 2);
        assert_eq!(threads_for(2, cores(2)), 2);
        assert_eq!(threads_for(2, cores(8)), 2);
        assert_eq!(threads_for(4, None), 4, "unknown cores: as asked");
    }
    use crate::asr::HeardToken;
    use voicepay_core::money::{Currency, Money};

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
    fn an_amount_is_weighed_against_its_teen_or_ty_twin_and_the_free_decodes_number() {
        assert_eq!(amount_alternatives("15", "Pay fifteen."), ["50"]);
        assert_eq!(amount_alternatives("50", ""), ["15"]);
        assert_eq!(amount_alternatives("115", ""), ["150"]);
        assert_eq!(amount_alternatives("36", "Pay 38 yuan to Hey Tea."), ["38"]);
        assert_eq!(amount_alternatives("17", "They 70 yuan."), ["70"]);
        assert!(amount_alternatives("36", "Pay 36 yuan to Hey Tea.").is_empty());
        assert!(amount_alternatives("7", "no number").is_empty());
        assert!(amount_alternatives("20", "").is_empty());
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
