//! `voicepay bench`: model load, transcription latency, real-time factor, intent parse time and peak memory over the fixtures.

use std::fmt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::fixtures::load_fixtures;
use super::rig::Rig;
use crate::audio::{SAMPLE_RATE, read_wav};
use crate::clock::{self, Stopwatch};
use crate::feedback::{Event, Feedback};
use crate::gateway::{Gateway, GatewayConfig};
use crate::intent;
use crate::keys::SigningKey;
use crate::money::{Currency, Money};
use crate::policy::Limits;
use crate::profile::DeviceProfile;
use crate::protocol::{
    self, ApprovalMethod, Envelope, Evidence, PaymentRequest, RequestBuilder, topics,
};
use crate::recognizer::Recognizer;
use crate::store::{PendingPayment, SpendChecks, Store, StoreConfig};

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub threads: u16,
    pub model: PathBuf,
    pub model_load_ms: u64,
    pub utterances: usize,
    pub audio_seconds: f64,
    pub transcribe_p50_ms: u64,
    pub transcribe_p95_ms: u64,
    pub transcribe_max_ms: u64,
    /// Transcription time over audio time: below 1 is faster than real time.
    pub real_time_factor: f64,
    pub intent_parse_mean_us: f64,
    pub exact_intents: usize,
    pub peak_rss_mb: f64,
    pub payments: PaymentFigures,
}

/// The payment path's figures (issue: pay for real).
#[derive(Debug, Serialize)]
pub struct PaymentFigures {
    /// Envelopes opened, signature verified, parsed and validated, on one thread.
    pub gateway_verify_per_sec: f64,
    /// The whole gateway decision, including its sled transaction and fsync.
    pub gateway_handle_per_sec: f64,
    /// Device: sign a request and commit it durably to the outbox (fsync).
    pub sign_persist_p50_us: u64,
    pub sign_persist_p99_us: u64,
    /// From the end of the "confirm" utterance (its transcription included)
    /// to the gateway's verified answer, over the embedded broker.
    pub confirm_to_answer_p50_ms: Option<u64>,
}

pub fn run(profile: &DeviceProfile, fixtures_dir: &Path) -> Result<Report> {
    let fixtures = load_fixtures(fixtures_dir)?;
    let clips = fixtures
        .iter()
        .map(|f| read_wav(&fixtures_dir.join(&f.file)).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;

    let started = Stopwatch::start();
    let mut recognizer = Recognizer::new(profile)?;
    let model_load_ms = started.elapsed().as_millis() as u64;

    // One warm-up run: the first decode pays for lazy allocations.
    if let Some(first) = clips.first() {
        recognizer.transcribe(first)?;
    }
    let mut latencies = Vec::with_capacity(clips.len());
    let mut transcripts = Vec::with_capacity(clips.len());
    let mut exact_intents = 0;
    for (clip, fixture) in clips.iter().zip(&fixtures) {
        // Timed here at microsecond resolution: the recognizer's whole ms are too coarse.
        let started = Stopwatch::start();
        let (transcript, _) = recognizer.transcribe(clip)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if recognizer.intent_of(&transcript) == fixture.intent {
            exact_intents += 1;
        }
        transcripts.push(transcript.text);
    }

    let rounds = 200;
    let context = recognizer.parse_context().clone();
    let started = Stopwatch::start();
    for _ in 0..rounds {
        for text in &transcripts {
            std::hint::black_box(intent::parse(std::hint::black_box(text), &context));
        }
    }
    let parses = (rounds * transcripts.len().max(1)) as f64;
    let intent_parse_mean_us = started.elapsed().as_secs_f64() * 1e6 / parses;

    let audio_seconds: f64 = clips
        .iter()
        .map(|c| c.samples.len() as f64 / f64::from(SAMPLE_RATE))
        .sum();
    let total_ms: f64 = latencies.iter().sum();
    latencies.sort_by(f64::total_cmp);
    let payments = payment_figures(profile, fixtures_dir, recognizer)?;
    Ok(Report {
        machine: machine_description(),
        threads: profile.asr.threads,
        model: profile.model_path(),
        model_load_ms,
        utterances: clips.len(),
        audio_seconds,
        transcribe_p50_ms: percentile(&latencies, 50),
        transcribe_p95_ms: percentile(&latencies, 95),
        transcribe_max_ms: percentile(&latencies, 100),
        real_time_factor: if audio_seconds > 0.0 {
            total_ms / 1000.0 / audio_seconds
        } else {
            0.0
        },
        intent_parse_mean_us,
        exact_intents,
        peak_rss_mb: peak_rss_kb().unwrap_or(0) as f64 / 1024.0,
        payments,
    })
}

fn payment_figures(
    profile: &DeviceProfile,
    fixtures_dir: &Path,
    recognizer: Recognizer,
) -> Result<PaymentFigures> {
    let work = tempfile::tempdir()?;
    let device = SigningKey::generate()?;
    let gateway = Gateway::open(
        GatewayConfig::new(work.path().join("gateway")),
        SigningKey::generate()?,
    )?;
    gateway.enroll("bench", &device.public_key())?;
    let topic = topics::requests(protocol::DEFAULT_PREFIX, "bench");
    let messages: Vec<Vec<u8>> = (0..2_000)
        .map(|_| Envelope::seal_json(&sample_request(), &device).map(|(e, _)| e.to_bytes()))
        .collect::<Result<_, _>>()?;

    let key = device.public_key();
    let started = Stopwatch::start();
    for message in &messages {
        let opened = protocol::open(message, |kid| (kid == key.key_id()).then_some(key))?;
        let request: PaymentRequest = opened.parse()?;
        request.validate()?;
        std::hint::black_box(request);
    }
    let gateway_verify_per_sec = messages.len() as f64 / started.elapsed().as_secs_f64();

    let handled = &messages[..300];
    let started = Stopwatch::start();
    for message in handled {
        gateway.handle(&topic, message, clock::now_ms())?;
    }
    let gateway_handle_per_sec = handled.len() as f64 / started.elapsed().as_secs_f64();

    let store = Store::open(&StoreConfig::new(work.path().join("device")))?;
    let mut persist: Vec<f64> = Vec::with_capacity(300);
    for _ in 0..300 {
        let started = Stopwatch::start();
        let mut request = sample_request();
        request.seq = store.next_seq()?;
        let (envelope, _) = Envelope::seal_json(&request, &device)?;
        let pending = PendingPayment::of(&request, envelope.to_bytes());
        store.commit_payment(
            &pending,
            clock::Calendar::utc().day_of(request.created_at),
            &SpendChecks::default(),
        )?;
        persist.push(started.elapsed().as_secs_f64() * 1e6);
    }
    persist.sort_by(f64::total_cmp);

    Ok(PaymentFigures {
        gateway_verify_per_sec,
        gateway_handle_per_sec,
        sign_persist_p50_us: percentile(&persist, 50),
        sign_persist_p99_us: percentile(&persist, 99),
        confirm_to_answer_p50_ms: confirm_to_answer(profile, fixtures_dir, recognizer)?,
    })
}

/// Pays 36 yuan and confirms, a few times, over the embedded broker: from
/// handing over the "confirm" utterance (its transcription included) to the
/// verified answer. `None` when the rig cannot be started.
fn confirm_to_answer(
    profile: &DeviceProfile,
    fixtures_dir: &Path,
    recognizer: Recognizer,
) -> Result<Option<u64>> {
    /// Tells the bench when each answer arrives.
    struct Answers(tokio::sync::mpsc::UnboundedSender<()>);
    impl Feedback for Answers {
        fn event(&mut self, event: &Event) {
            if matches!(event, Event::Answer { .. }) {
                let _ = self.0.send(());
            }
        }
    }
    let pay = fixtures_dir.join("pay_heytea_36.wav");
    let confirm = fixtures_dir.join("confirm_plain.wav");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
        let feedback = Box::new(Answers(answered));
        let limits = Limits::default();
        let Ok(mut rig) = Rig::start(profile.clone(), None, &limits, recognizer, feedback) else {
            return Ok(None);
        };
        let wait = Duration::from_secs(10);
        if !rig.until(wait, |s| s.link.online()).await {
            return Ok(None);
        }
        let mut rounds = Vec::new();
        for _ in 0..7 {
            rig.hear(&pay).await?;
            rig.until(wait, |s| s.asking).await;
            let started = Stopwatch::start();
            rig.hear(&confirm).await?;
            if tokio::time::timeout(wait, answers.recv()).await.is_ok() {
                rounds.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            rig.settled(wait).await;
        }
        rig.stop().await?;
        if rounds.is_empty() {
            // No round was answered: not a figure of 0 ms.
            return Ok(None);
        }
        rounds.sort_by(f64::total_cmp);
        Ok(Some(percentile(&rounds, 50)))
    })
}

fn sample_request() -> PaymentRequest {
    let amount = Money::new(3600, Currency::CNY);
    RequestBuilder::new("bench", 1, amount, "Heytea", clock::now_ms())
        .evidence(Evidence::new("Pay 36 yuan to Heytea.", b"pcm", 0.9, "en"))
        .approved(ApprovalMethod::VoiceConfirm, Some("Confirm.".into()))
        .build()
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1].round() as u64
}

/// The process's peak resident set (VmHWM), in KiB.
pub(crate) fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cpu}, {cores} cores")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "machine            {} ({} threads)",
            self.machine, self.threads
        )?;
        writeln!(f, "model              {}", self.model.display())?;
        writeln!(f, "model load         {} ms", self.model_load_ms)?;
        writeln!(
            f,
            "utterances         {} ({:.1} s of audio)",
            self.utterances, self.audio_seconds
        )?;
        writeln!(
            f,
            "transcription      p50 {} ms, p95 {} ms, max {} ms",
            self.transcribe_p50_ms, self.transcribe_p95_ms, self.transcribe_max_ms
        )?;
        writeln!(f, "real-time factor   {:.3}", self.real_time_factor)?;
        writeln!(
            f,
            "intent parse       {:.1} us mean",
            self.intent_parse_mean_us
        )?;
        writeln!(
            f,
            "exact intents      {}/{}",
            self.exact_intents, self.utterances
        )?;
        writeln!(f, "peak RSS           {:.0} MB", self.peak_rss_mb)?;
        let p = &self.payments;
        writeln!(
            f,
            "gateway verify     {:.0} requests/s on one core",
            p.gateway_verify_per_sec
        )?;
        writeln!(
            f,
            "gateway handle     {:.0} requests/s (with its fsynced ledger)",
            p.gateway_handle_per_sec
        )?;
        writeln!(
            f,
            "sign + persist     p50 {} us, p99 {} us (fsynced outbox)",
            p.sign_persist_p50_us, p.sign_persist_p99_us
        )?;
        match p.confirm_to_answer_p50_ms {
            Some(ms) => writeln!(f, "confirm -> answer  p50 {ms} ms (transcription included)"),
            None => writeln!(f, "confirm -> answer  not measured: no broker"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50), 10);
        assert_eq!(percentile(&v, 95), 19);
        assert_eq!(percentile(&v, 100), 20);
        assert_eq!(percentile(&[], 50), 0);
    }
}
