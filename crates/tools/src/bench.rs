//! `voicepay bench`: model load, transcription latency, real-time factor, intent parse time and peak memory over the fixtures; end-of-speech to read-back latency; the cost of listening to silence.

use std::fmt;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use super::fixtures::load_fixtures;
use super::rig::Rig;
use voicepay_core::clock::{self, Stopwatch};
use voicepay_core::keys::SigningKey;
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::Limits;
use voicepay_core::protocol::{
    self, ApprovalMethod, Envelope, Evidence, PaymentRequest, RequestBuilder, topics,
};
use voicepay_device::audio::{SAMPLE_RATE, read_wav};
use voicepay_device::feedback::{Event, Feedback};
use voicepay_device::intent;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::Recognizer;
use voicepay_device::store::{PendingPayment, SpendChecks, Store, StoreConfig};
use voicepay_gateway::{Gateway, GatewayConfig};

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
    /// The peak of the whole bench, payment rig included.
    pub peak_rss_mb: f64,
    /// The peak when hearing alone (the fixtures through the recognizer) is
    /// done, before the payment rig starts: which part the peak is from.
    pub hearing_peak_rss_mb: f64,
    pub payments: PaymentFigures,
    pub listening: ListeningFigures,
}

/// Living on the device (issue: live on the device).
#[derive(Debug, Serialize)]
pub struct ListeningFigures {
    /// From the segmenter's end-of-speech decision (the utterance handed
    /// over) to the first sentence said back, over the payment fixtures.
    pub speech_to_read_back_p50_ms: Option<u64>,
    pub speech_to_read_back_p95_ms: Option<u64>,
    pub read_backs: usize,
    /// The microphone's thread (ring, resampling 48 kHz to 16, the
    /// voice-activity detector) fed silence in real time: its CPU time over
    /// the wall time, in percent of one core.
    pub silence_cpu_percent_of_a_core: f64,
    /// The bench's resident set while it listens, the model loaded and warm
    /// (the daemon's, less its MQTT link and store).
    pub listening_rss_mb: f64,
}

/// The payment path's figures (issue: pay for real).
#[derive(Debug, Serialize)]
pub struct PaymentFigures {
    /// Envelopes opened, signature verified, parsed and validated, on one thread.
    pub gateway_verify_per_sec: f64,
    /// The whole gateway decision, including its sled transaction and fsync.
    pub gateway_handle_per_sec: f64,
    /// The same, with group commit as the server does in a burst: batches of
    /// [`GROUP_COMMIT_BATCH`] decisions to one fsync.
    pub gateway_group_commit_per_sec: f64,
    /// The whole decision on a PostgreSQL ledger (one transaction each, the
    /// server's default fsync) for 1, 2 and 3 workers at once, each its own
    /// connection deciding for its own devices; `None` without PostgreSQL.
    pub gateway_postgres_per_sec: Option<Vec<f64>>,
    /// End to end: requests answered a second by 1, 2 and 3 `gateway run
    /// --share` processes on one PostgreSQL behind a stock mosquitto, all on
    /// this machine (`crate::fleet`); `None` without PostgreSQL or mosquitto.
    pub gateway_workers_per_sec: Option<Vec<f64>>,
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
    let threads = recognizer.threads();

    // One warm-up run: the first decode pays for lazy allocations.
    if let Some(first) = clips.first() {
        recognizer.transcribe(first)?;
    }
    recognizer.prepare_now();
    let mut latencies = Vec::with_capacity(clips.len());
    let mut transcripts = Vec::with_capacity(clips.len());
    let mut exact_intents = 0;
    for (clip, fixture) in clips.iter().zip(&fixtures) {
        // Timed here at microsecond resolution: the recognizer's whole ms are too coarse.
        // The whole speech stage as the daemon runs it: the free decode,
        // and the closed-domain reading where that one falls short.
        let started = Stopwatch::start();
        let understood = recognizer.understand(clip)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if understood.intent == fixture.intent {
            exact_intents += 1;
        }
        transcripts.push(understood.transcript.text);
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
    let hearing_peak_rss_kb = peak_rss_kb();
    // While the model is loaded, as in the daemon between utterances.
    let listening_cpu =
        voicepay_device::audio::mic::listening_cost(Duration::from_secs(10), 48_000)
            .map_err(anyhow::Error::msg)?;
    let (payments, read_back) = payment_figures(profile, fixtures_dir, &fixtures, recognizer)?;
    let listening = ListeningFigures {
        speech_to_read_back_p50_ms: read_back.as_ref().map(|r| percentile(r, 50)),
        speech_to_read_back_p95_ms: read_back.as_ref().map(|r| percentile(r, 95)),
        read_backs: read_back.as_ref().map_or(0, Vec::len),
        silence_cpu_percent_of_a_core: listening_cpu.cpu.as_secs_f64() * 100.0
            / listening_cpu.wall.as_secs_f64().max(1e-9),
        listening_rss_mb: listening_cpu.rss_kb.unwrap_or(0) as f64 / 1024.0,
    };
    Ok(Report {
        machine: machine_description(),
        threads,
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
        hearing_peak_rss_mb: hearing_peak_rss_kb.unwrap_or(0) as f64 / 1024.0,
        payments,
        listening,
    })
}

/// The speech stage of a profile that hears another language than the
/// English fixtures speak: its corpus's clean clips, rendered into the clip
/// cache, through the recognizer as the daemon runs it.
#[derive(Debug, Serialize)]
pub struct LanguageReport {
    pub machine: String,
    pub threads: u16,
    pub model: PathBuf,
    pub language: String,
    pub model_load_ms: u64,
    pub utterances: usize,
    pub audio_p50_s: f64,
    /// The free decode, and the closed-domain reading where it falls short.
    pub speech_stage_p50_ms: u64,
    pub speech_stage_p95_ms: u64,
    /// The same over the utterances of 2.5 to 3.5 seconds.
    pub speech_stage_3s_p50_ms: Option<u64>,
    pub utterances_3s: usize,
    pub real_time_factor: f64,
    pub peak_rss_mb: f64,
}

/// Benches `profile`'s speech stage on the clean clips of its language's
/// corpus (both halves: nothing is scored), rendered into `cache` when missing.
pub fn run_language(profile: &DeviceProfile, cache: &Path) -> Result<LanguageReport> {
    use super::corpus::{self, Engines, Language, Noise, Renderer};
    let language = Language::from_code(profile.language.code())
        .ok_or_else(|| anyhow::anyhow!("no corpus in {}", profile.language.code()))?;
    let sentences = corpus::load(Path::new(language.corpus()))?;
    let clips: Vec<_> = corpus::panel_in(&sentences, 0, Engines::Natural, language)?
        .into_iter()
        .filter(|clip| clip.noise == Noise::Clean)
        .collect();
    let mut renderer = Renderer::new(cache)?;
    renderer.prepare(&clips, &sentences, |_, _| {})?;
    let utterances = clips
        .iter()
        .map(|clip| renderer.utterance(clip, &sentences[clip.sentence]))
        .collect::<Result<Vec<_>>>()?;

    let started = Stopwatch::start();
    let mut recognizer = Recognizer::new(profile)?;
    let model_load_ms = started.elapsed().as_millis() as u64;
    if let Some(first) = utterances.first() {
        recognizer.transcribe(first)?;
    }
    recognizer.prepare_now();
    let mut timed = Vec::with_capacity(utterances.len());
    for utterance in &utterances {
        let started = Stopwatch::start();
        recognizer.understand(utterance)?;
        let seconds = utterance.samples.len() as f64 / f64::from(SAMPLE_RATE);
        timed.push((seconds, started.elapsed().as_secs_f64() * 1000.0));
    }
    let sorted = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values
    };
    let all = sorted(timed.iter().map(|(_, ms)| *ms).collect());
    let around_3s = sorted(
        (timed.iter())
            .filter(|(seconds, _)| (2.5..=3.5).contains(seconds))
            .map(|(_, ms)| *ms)
            .collect(),
    );
    let durations = sorted(timed.iter().map(|(seconds, _)| *seconds).collect());
    let audio_seconds: f64 = durations.iter().sum();
    Ok(LanguageReport {
        machine: machine_description(),
        threads: recognizer.threads(),
        model: profile.model_path(),
        language: profile.language.code().to_owned(),
        model_load_ms,
        utterances: utterances.len(),
        audio_p50_s: durations.get(durations.len() / 2).copied().unwrap_or(0.0),
        speech_stage_p50_ms: percentile(&all, 50),
        speech_stage_p95_ms: percentile(&all, 95),
        speech_stage_3s_p50_ms: (!around_3s.is_empty()).then(|| percentile(&around_3s, 50)),
        utterances_3s: around_3s.len(),
        real_time_factor: if audio_seconds > 0.0 {
            all.iter().sum::<f64>() / 1000.0 / audio_seconds
        } else {
            0.0
        },
        peak_rss_mb: peak_rss_kb().unwrap_or(0) as f64 / 1024.0,
    })
}

impl fmt::Display for LanguageReport {
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
            "utterances         {} clean clips of the {} corpus (p50 {:.1} s of audio)",
            self.utterances, self.language, self.audio_p50_s
        )?;
        writeln!(
            f,
            "speech stage       p50 {} ms, p95 {} ms (free decode, closed-domain reading where it falls short)",
            self.speech_stage_p50_ms, self.speech_stage_p95_ms
        )?;
        match self.speech_stage_3s_p50_ms {
            Some(ms) => writeln!(
                f,
                "speech stage, 3 s  p50 {ms} ms over {} utterances of 2.5-3.5 s",
                self.utterances_3s
            )?,
            None => writeln!(f, "speech stage, 3 s  no utterance of 2.5-3.5 s")?,
        }
        writeln!(f, "real-time factor   {:.3}", self.real_time_factor)?;
        writeln!(f, "peak RSS           {:.0} MB", self.peak_rss_mb)
    }
}

/// Requests each PostgreSQL worker decides in the bench, over 10 devices.
const POSTGRES_REQUESTS_PER_WORKER: usize = 300;

/// Decisions a second on a PostgreSQL ledger (a server started for the
/// bench) with 1, 2 and 3 workers deciding at once.
fn postgres_figures() -> Result<Vec<f64>> {
    let db = super::postgres::TempPostgres::start()?;
    let keys = tempfile::tempdir()?;
    let key_file = keys.path().join("gateway.key");
    SigningKey::create_file(&key_file)?;
    let mut figures = Vec::new();
    for workers in 1..=3 {
        let mut jobs = Vec::new();
        for worker in 0..workers {
            let dir = tempfile::tempdir()?;
            let mut config = GatewayConfig::new(dir.path().to_owned());
            config.ledger = db.url().parse().map_err(anyhow::Error::msg)?;
            let gateway = Gateway::open(config, SigningKey::load_file(&key_file)?)?;
            let mut messages = Vec::new();
            for d in 0..10 {
                let id = format!("bench-{workers}-{worker}-{d}");
                let device = SigningKey::generate()?;
                gateway.enroll(&id, &device.public_key())?;
                let topic = topics::requests(protocol::DEFAULT_PREFIX, &id);
                for seq in 1..=(POSTGRES_REQUESTS_PER_WORKER / 10) as u64 {
                    let mut request = sample_request();
                    (request.device_id, request.seq) = (id.clone(), seq);
                    let (envelope, _) = Envelope::seal_json(&request, &device)?;
                    messages.push((topic.clone(), envelope.to_bytes()));
                }
            }
            jobs.push((dir, gateway, messages));
        }
        let started = Stopwatch::start();
        std::thread::scope(|scope| -> Result<()> {
            let running: Vec<_> = jobs
                .iter()
                .map(|(_, gateway, messages)| {
                    scope.spawn(move || -> Result<()> {
                        for (topic, message) in messages {
                            gateway.handle(topic, message, clock::now_ms())?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for worker in running {
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a bench worker panicked"))??;
            }
            Ok(())
        })?;
        let decided = workers * POSTGRES_REQUESTS_PER_WORKER;
        figures.push(decided as f64 / started.elapsed().as_secs_f64());
    }
    Ok(figures)
}

/// A burst's batch in the group-commit figure.
pub const GROUP_COMMIT_BATCH: usize = 64;

fn payment_figures(
    profile: &DeviceProfile,
    fixtures_dir: &Path,
    fixtures: &[super::fixtures::Fixture],
    recognizer: Recognizer,
) -> Result<(PaymentFigures, Option<Vec<f64>>)> {
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

    let grouped = &messages[300..1_580];
    let started = Stopwatch::start();
    for batch in grouped.chunks(GROUP_COMMIT_BATCH) {
        let decided = batch
            .iter()
            .map(|message| gateway.decide(&topic, message, clock::now_ms()))
            .collect::<Result<Vec<_>, _>>()?;
        std::hint::black_box(gateway.commit(decided)?);
    }
    let gateway_group_commit_per_sec = grouped.len() as f64 / started.elapsed().as_secs_f64();
    let gateway_postgres_per_sec = match postgres_figures() {
        Ok(figures) => Some(figures),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "no PostgreSQL figures");
            None
        }
    };

    let gateway_workers_per_sec = match std::env::current_exe()
        .map_err(anyhow::Error::from)
        .and_then(|voicepay| super::fleet::answered_per_second(&voicepay))
    {
        Ok(figures) => Some(figures),
        Err(error) => {
            tracing::warn!(error = %format!("{error:#}"), "no figures for gateway worker processes");
            None
        }
    };

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

    let dialog = dialog_figures(profile, fixtures_dir, fixtures, recognizer)?;
    let figures = PaymentFigures {
        gateway_verify_per_sec,
        gateway_handle_per_sec,
        gateway_group_commit_per_sec,
        gateway_postgres_per_sec,
        gateway_workers_per_sec,
        sign_persist_p50_us: percentile(&persist, 50),
        sign_persist_p99_us: percentile(&persist, 99),
        confirm_to_answer_p50_ms: dialog.as_ref().and_then(|d| d.confirm_to_answer_p50_ms),
    };
    Ok((figures, dialog.map(|d| d.read_back_ms)))
}

/// What the dialog rounds over the embedded broker measured.
struct DialogFigures {
    confirm_to_answer_p50_ms: Option<u64>,
    /// Sorted.
    read_back_ms: Vec<f64>,
}

/// Over the embedded broker, with nothing paid by itself: every payment
/// fixture handed over as the segmenter hands an utterance on, timed to the
/// first sentence said back (then cancelled); then 36 yuan paid and
/// confirmed a few times, from handing over "confirm" (its transcription
/// included) to the verified answer. `None` when the rig cannot start.
fn dialog_figures(
    profile: &DeviceProfile,
    fixtures_dir: &Path,
    fixtures: &[super::fixtures::Fixture],
    recognizer: Recognizer,
) -> Result<Option<DialogFigures>> {
    /// Tells the bench when the device speaks and when answers arrive.
    struct Heard(tokio::sync::mpsc::UnboundedSender<bool>);
    impl Feedback for Heard {
        fn event(&mut self, event: &Event) {
            match event {
                Event::Say { .. } => drop(self.0.send(false)),
                Event::Answer { .. } => drop(self.0.send(true)),
                _ => {}
            }
        }
    }
    let pay = fixtures_dir.join("pay_heytea_36.wav");
    let confirm = fixtures_dir.join("confirm_plain.wav");
    let cancel = fixtures_dir.join("cancel_plain.wav");
    let payments: Vec<PathBuf> = fixtures
        .iter()
        .filter(|f| f.intent.is_payment())
        .map(|f| fixtures_dir.join(&f.file))
        .collect();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let (heard, mut events) = tokio::sync::mpsc::unbounded_channel();
        let limits = Limits::default();
        let Ok(mut rig) = Rig::start(
            profile.clone(),
            None,
            &limits,
            &[],
            recognizer,
            Box::new(Heard(heard)),
        ) else {
            return Ok(None);
        };
        let wait = Duration::from_secs(10);
        if !rig.until(wait, |s| s.link.online()).await {
            return Ok(None);
        }
        let mut read_back = Vec::new();
        for file in &payments {
            while events.try_recv().is_ok() {}
            let utterance = read_wav(file)?;
            let started = Stopwatch::start();
            rig.hear_utterance(file, utterance).await?;
            let said = tokio::time::timeout(wait, async {
                while let Some(answer) = events.recv().await {
                    if !answer {
                        return true;
                    }
                }
                false
            });
            if said.await.unwrap_or(false) {
                read_back.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            rig.heard_all(wait).await;
            rig.hear(&cancel).await?;
            rig.settled(wait).await;
        }
        let mut rounds = Vec::new();
        for _ in 0..7 {
            rig.hear(&pay).await?;
            rig.until(wait, |s| s.asking).await;
            while events.try_recv().is_ok() {}
            let started = Stopwatch::start();
            rig.hear(&confirm).await?;
            let answered = tokio::time::timeout(wait, async {
                while let Some(answer) = events.recv().await {
                    if answer {
                        return true;
                    }
                }
                false
            });
            if answered.await.unwrap_or(false) {
                rounds.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            rig.settled(wait).await;
        }
        rig.stop().await?;
        rounds.sort_by(f64::total_cmp);
        read_back.sort_by(f64::total_cmp);
        Ok(Some(DialogFigures {
            // No round answered: not a figure of 0 ms.
            confirm_to_answer_p50_ms: (!rounds.is_empty()).then(|| percentile(&rounds, 50)),
            read_back_ms: read_back,
        }))
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
        writeln!(
            f,
            "peak RSS           {:.0} MB ({:.0} MB when hearing alone was done)",
            self.peak_rss_mb, self.hearing_peak_rss_mb
        )?;
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
            "gateway grouped    {:.0} requests/s ({GROUP_COMMIT_BATCH} decisions to an fsync)",
            p.gateway_group_commit_per_sec
        )?;
        if let Some(rates) = &p.gateway_postgres_per_sec {
            writeln!(
                f,
                "gateway PostgreSQL {} (workers: requests/s, a transaction each)",
                per_worker_count(rates)
            )?;
        }
        if let Some(rates) = &p.gateway_workers_per_sec {
            writeln!(
                f,
                "gateway fleet      {} (--share processes: requests answered/s through mosquitto)",
                per_worker_count(rates)
            )?;
        }
        writeln!(
            f,
            "sign + persist     p50 {} us, p99 {} us (fsynced outbox)",
            p.sign_persist_p50_us, p.sign_persist_p99_us
        )?;
        match p.confirm_to_answer_p50_ms {
            Some(ms) => writeln!(f, "confirm -> answer  p50 {ms} ms (transcription included)")?,
            None => writeln!(f, "confirm -> answer  not measured: no broker")?,
        }
        let l = &self.listening;
        match (l.speech_to_read_back_p50_ms, l.speech_to_read_back_p95_ms) {
            (Some(p50), Some(p95)) if l.read_backs > 0 => writeln!(
                f,
                "speech -> read-back p50 {p50} ms, p95 {p95} ms ({} payments, from the end-of-speech decision)",
                l.read_backs
            )?,
            _ => writeln!(f, "speech -> read-back not measured: no broker")?,
        }
        writeln!(
            f,
            "listening, silence {:.2}% of a core (ring, resampling, VAD), RSS {:.0} MB",
            l.silence_cpu_percent_of_a_core, l.listening_rss_mb
        )
    }
}

/// "1 409/s, 2 690/s, 3 848/s": a rate for 1, 2, 3 ... workers.
fn per_worker_count(rates: &[f64]) -> String {
    let said: Vec<String> = (rates.iter().enumerate())
        .map(|(i, rate)| format!("{} {rate:.0}/s", i + 1))
        .collect();
    said.join(", ")
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
