//! The microphone: cpal capture in whatever rate, channels and sample format the device offers, out of the audio callback through a lock-free ring, then made 16 kHz mono and cut into utterances.
//!
//! The audio callback only converts each frame to one f32 (the profile's
//! channel, or all channels mixed) and pushes it into an `rtrb` ring: no
//! lock, no allocation, no waiting. A thread of our own drains the ring,
//! resamples, asks the [`Gate`] whether to listen, and feeds the
//! [`Segmenter`]. A device that is missing or goes away is an error in the
//! log and a retry, never a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use audioadapter_buffers::direct::InterleavedSlice;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample};
use rubato::{Fft, FixedSync, Resampler};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::gate::{Gate, Listen};
use super::segmenter::{Segment, Segmenter, SegmenterSettings};
use super::source::Input;
use super::{SAMPLE_RATE, Utterance};

/// The `[audio]` table of a device profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MicSettings {
    /// "default", or an input device as `voicepay devices` lists it (its
    /// id, its name, or a part of its name).
    pub input: String,
    /// Hear this channel alone (0 is the first), e.g. the driver's
    /// microphone of a cockpit array; absent, all channels are mixed.
    pub channel: Option<u16>,
    /// How much audio the ring between the callback and us holds: what may
    /// pile up while the machine is busy before audio is dropped.
    pub ring_ms: u32,
    /// How long to wait before trying a missing device again.
    pub retry_ms: u32,
}

impl Default for MicSettings {
    fn default() -> Self {
        MicSettings {
            input: "default".to_owned(),
            channel: None,
            ring_ms: 2_000,
            retry_ms: 2_000,
        }
    }
}

impl MicSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(100..=120_000).contains(&self.ring_ms) {
            return Err("audio.ring_ms is between 100 and 120000".into());
        }
        if !(100..=60_000).contains(&self.retry_ms) {
            return Err("audio.retry_ms is between 100 and 60000".into());
        }
        if self.input.trim().is_empty() {
            return Err("audio.input names a device, or \"default\"".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MicError {
    #[error("no input device matches {0:?} (see `voicepay devices`)")]
    NoDevice(String),
    #[error("no default input device")]
    NoDefault,
    #[error("the audio system: {0}")]
    Host(String),
    #[error("{device}: {detail}")]
    Device { device: String, detail: String },
}

/// One input device, as `voicepay devices` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub name: String,
    pub default: bool,
    /// Its own format: rate, channels and sample format, when it says.
    pub native: Option<String>,
}

/// The input devices the audio system offers.
pub fn devices() -> Result<Vec<DeviceInfo>, MicError> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let devices = host
        .input_devices()
        .map_err(|e| MicError::Host(e.to_string()))?;
    Ok(devices
        .map(|device| {
            let id = device.id().ok();
            DeviceInfo {
                name: device
                    .description()
                    .map(|d| d.name().to_owned())
                    .unwrap_or_default(),
                default: id.is_some() && id == default_id,
                id: id.map(|id| id.to_string()).unwrap_or_default(),
                native: device.default_input_config().ok().map(|c| {
                    format!(
                        "{} Hz, {} ch, {}",
                        c.sample_rate(),
                        c.channels(),
                        c.sample_format()
                    )
                }),
            }
        })
        .collect())
}

/// Starts listening on its own thread until `shutdown`: utterances come out
/// of the returned channel, named "mic". A missing device is retried every
/// `retry_ms`; so is one that goes away.
pub fn listen(
    settings: MicSettings,
    vad: SegmenterSettings,
    gate: Arc<Gate>,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Input> {
    // A few utterances may wait for the transcriber; the ring holds the rest.
    let (tx, rx) = mpsc::channel(4);
    let spawned = std::thread::Builder::new()
        .name("microphone".into())
        .spawn(move || capture_loop(&settings, vad, &gate, &shutdown, &tx));
    if let Err(error) = spawned {
        // The channel closes at once: the daemon says its input ended.
        tracing::error!(%error, "cannot start the microphone thread");
    }
    rx
}

fn capture_loop(
    settings: &MicSettings,
    vad: SegmenterSettings,
    gate: &Gate,
    shutdown: &CancellationToken,
    tx: &mpsc::Sender<Input>,
) {
    let mut last_error = String::new();
    while !shutdown.is_cancelled() {
        match Capture::open(settings) {
            Err(error) => {
                let error = error.to_string();
                // Said once, not every retry; said again when it changes.
                if error != last_error {
                    tracing::error!(%error, retry_ms = settings.retry_ms, "cannot open the microphone; retrying");
                    last_error = error;
                }
            }
            Ok(mut capture) => {
                last_error.clear();
                tracing::info!(device = %capture.device, format = %capture.format, "listening");
                match capture.run(vad, gate, shutdown, tx) {
                    Ended::Shutdown | Ended::DaemonGone => return,
                    Ended::DeviceLost(error) => {
                        tracing::error!(device = %capture.device, %error, "the microphone went away; retrying");
                    }
                }
            }
        }
        sleep_unless_cancelled(Duration::from_millis(settings.retry_ms.into()), shutdown);
    }
}

fn sleep_unless_cancelled(total: Duration, shutdown: &CancellationToken) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !shutdown.is_cancelled() {
        std::thread::sleep(step);
        slept += step;
    }
}

enum Ended {
    Shutdown,
    DaemonGone,
    DeviceLost(String),
}

/// An open input stream and the far end of its ring.
struct Capture {
    device: String,
    format: String,
    rate: u32,
    /// Dropping it stops the device.
    _stream: cpal::Stream,
    ring: rtrb::Consumer<f32>,
    /// Set by cpal's error callback: the device failed or vanished.
    lost: Arc<std::sync::Mutex<Option<String>>>,
    lost_flag: Arc<AtomicBool>,
    /// Samples the callback could not push (the ring was full).
    dropped: Arc<AtomicU64>,
}

impl Capture {
    fn open(settings: &MicSettings) -> Result<Capture, MicError> {
        let host = cpal::default_host();
        let device = find_device(&host, &settings.input)?;
        let device_name = device
            .id()
            .map(|id| id.to_string())
            .unwrap_or_else(|_| settings.input.clone());
        let failed = |detail: String| MicError::Device {
            device: device_name.clone(),
            detail,
        };
        let config = device
            .default_input_config()
            .map_err(|e| failed(e.to_string()))?;
        let channels = config.channels();
        if let Some(channel) = settings.channel
            && channel >= channels
        {
            return Err(failed(format!(
                "audio.channel is {channel}, but the device has {channels} channel(s) (0 is the first)"
            )));
        }
        let rate = config.sample_rate();
        let format = format!("{rate} Hz, {channels} ch, {}", config.sample_format());
        let capacity = (u64::from(rate) * u64::from(settings.ring_ms) / 1000).max(1024) as usize;
        let (producer, ring) = rtrb::RingBuffer::new(capacity);
        let lost = Arc::new(std::sync::Mutex::new(None));
        let lost_flag = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let on_error = {
            let (lost, lost_flag) = (lost.clone(), lost_flag.clone());
            move |error: cpal::Error| {
                if error.kind() == cpal::ErrorKind::Xrun {
                    return tracing::debug!(%error, "capture overrun");
                }
                if let Ok(mut lost) = lost.lock() {
                    *lost = Some(error.to_string());
                }
                lost_flag.store(true, Ordering::SeqCst);
            }
        };
        let mono = Mono {
            channels: usize::from(channels),
            pick: settings.channel.map(usize::from),
            ring: producer,
            dropped: dropped.clone(),
        };
        let stream_config = config.config();
        let stream = match config.sample_format() {
            SampleFormat::I8 => build::<i8>(&device, stream_config, mono, on_error),
            SampleFormat::I16 => build::<i16>(&device, stream_config, mono, on_error),
            SampleFormat::I32 => build::<i32>(&device, stream_config, mono, on_error),
            SampleFormat::U8 => build::<u8>(&device, stream_config, mono, on_error),
            SampleFormat::U16 => build::<u16>(&device, stream_config, mono, on_error),
            SampleFormat::U32 => build::<u32>(&device, stream_config, mono, on_error),
            SampleFormat::F32 => build::<f32>(&device, stream_config, mono, on_error),
            SampleFormat::F64 => build::<f64>(&device, stream_config, mono, on_error),
            other => return Err(failed(format!("sample format {other} is not supported"))),
        }
        .map_err(|e| failed(e.to_string()))?;
        stream.play().map_err(|e| failed(e.to_string()))?;
        Ok(Capture {
            device: device_name,
            format,
            rate,
            _stream: stream,
            ring,
            lost,
            lost_flag,
            dropped,
        })
    }

    /// Drains the ring into the segmenter until shutdown, the daemon going,
    /// or the device failing.
    fn run(
        &mut self,
        vad: SegmenterSettings,
        gate: &Gate,
        shutdown: &CancellationToken,
        tx: &mpsc::Sender<Input>,
    ) -> Ended {
        let mut resampler = match StreamResampler::new(self.rate) {
            Ok(resampler) => resampler,
            Err(error) => return Ended::DeviceLost(error),
        };
        let mut listener = Listener::new(vad);
        let (mut resampled, mut segments) = (Vec::new(), Vec::new());
        let mut dropped_said = 0;
        let mut drop_log = voicepay_core::transport::LogLimiter::new(1);
        loop {
            if shutdown.is_cancelled() {
                return Ended::Shutdown;
            }
            if self.lost_flag.load(Ordering::SeqCst) {
                let error = self.lost.lock().ok().and_then(|mut e| e.take());
                return Ended::DeviceLost(error.unwrap_or_else(|| "stream error".into()));
            }
            let available = self.ring.slots();
            if available == 0 {
                // Nothing yet: a short nap costs no CPU worth counting.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            resampled.clear();
            if let Ok(chunk) = self.ring.read_chunk(available) {
                let (first, second) = chunk.as_slices();
                for part in [first, second] {
                    if let Err(error) = resampler.push(part, &mut resampled) {
                        return Ended::DeviceLost(error);
                    }
                }
                chunk.commit_all();
            }
            listener.hear(&resampled, gate.listen(), &mut segments);
            for segment in segments.drain(..) {
                let input = Input::Utterance {
                    name: "mic".to_owned(),
                    utterance: segment.utterance,
                    arrived: Instant::now(),
                };
                if tx.blocking_send(input).is_err() {
                    return Ended::DaemonGone;
                }
            }
            let dropped = self.dropped.load(Ordering::Relaxed);
            // Once a second at most: a machine that stays behind says so
            // without filling the log.
            if dropped > dropped_said
                && let Some(_) = drop_log.allow()
            {
                tracing::warn!(
                    samples = dropped - dropped_said,
                    "audio dropped: the machine fell behind the microphone"
                );
                dropped_said = dropped;
            }
        }
    }
}

/// The segmenter behind the gate: hears only while it is open.
struct Listener {
    segmenter: Segmenter,
    vad: SegmenterSettings,
    was: Listen,
}

impl Listener {
    fn new(vad: SegmenterSettings) -> Listener {
        Listener {
            segmenter: Segmenter::new(vad),
            vad,
            was: Listen::Open,
        }
    }

    /// 16 kHz audio as the gate stands now; finished utterances go to `out`.
    fn hear(&mut self, samples: &[f32], listen: Listen, out: &mut Vec<Segment>) {
        match (self.was, listen) {
            (_, Listen::Open) => self.segmenter.push(samples, out),
            // The user let go of the button: what they said is complete.
            (Listen::Open, Listen::Released) => out.extend(self.segmenter.finish()),
            // The device's own voice must not be heard.
            (Listen::Open, Listen::Muted) => self.segmenter = Segmenter::new(self.vad),
            _ => {}
        }
        self.was = listen;
    }
}

fn find_device(host: &cpal::Host, wanted: &str) -> Result<cpal::Device, MicError> {
    if wanted == "default" {
        return host.default_input_device().ok_or(MicError::NoDefault);
    }
    let wanted_lower = wanted.to_lowercase();
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(|e| MicError::Host(e.to_string()))?
        .collect();
    let id = |d: &cpal::Device| d.id().map(|id| id.to_string()).unwrap_or_default();
    let name = |d: &cpal::Device| {
        d.description()
            .map(|d| d.name().to_lowercase())
            .unwrap_or_default()
    };
    // An exact id or name first; a part of a name only when it is unique.
    if let Some(device) = devices
        .iter()
        .find(|d| id(d) == wanted || id(d).split_once(':').is_some_and(|(_, i)| i == wanted))
    {
        return Ok(device.clone());
    }
    if let Some(device) = devices.iter().find(|d| name(d) == wanted_lower) {
        return Ok(device.clone());
    }
    let mut partial = devices.iter().filter(|d| name(d).contains(&wanted_lower));
    match (partial.next(), partial.next()) {
        (Some(device), None) => Ok(device.clone()),
        _ => Err(MicError::NoDevice(wanted.to_owned())),
    }
}

/// What the audio callback owns: it makes each frame one sample and pushes it.
struct Mono {
    channels: usize,
    pick: Option<usize>,
    ring: rtrb::Producer<f32>,
    dropped: Arc<AtomicU64>,
}

impl Mono {
    fn take<T>(&mut self, data: &[T])
    where
        T: Sample,
        f32: FromSample<T>,
    {
        let frames = data.len() / self.channels.max(1);
        let room = self.ring.slots().min(frames);
        if room < frames {
            self.dropped
                .fetch_add((frames - room) as u64, Ordering::Relaxed);
        }
        let Ok(chunk) = self.ring.write_chunk_uninit(room) else {
            return;
        };
        let (channels, pick) = (self.channels.max(1), self.pick);
        let samples = data.chunks_exact(channels).map(|frame| match pick {
            Some(channel) => frame.get(channel).map_or(0.0, |s| s.to_sample::<f32>()),
            None => frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() / channels as f32,
        });
        chunk.fill_from_iter(samples);
    }
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut mono: Mono,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| mono.take(data),
        on_error,
        None,
    )
}

/// Resamples a mono stream to 16 kHz in fixed chunks as it arrives.
pub struct StreamResampler {
    resampler: Option<Fft<f32>>,
    pending: Vec<f32>,
}

impl StreamResampler {
    pub fn new(rate: u32) -> Result<StreamResampler, String> {
        let resampler = if rate == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    SAMPLE_RATE as usize,
                    1024,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| format!("cannot resample {rate} Hz: {e}"))?,
            )
        };
        Ok(StreamResampler {
            resampler,
            pending: Vec::new(),
        })
    }

    /// Appends to `out` the 16 kHz samples that `input` completes.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), String> {
        let Some(resampler) = self.resampler.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        self.pending.extend_from_slice(input);
        let mut used = 0;
        loop {
            let need = resampler.input_frames_next();
            if self.pending.len() - used < need {
                break;
            }
            let chunk = &self.pending[used..used + need];
            let adapter = InterleavedSlice::new(chunk, 1, need).map_err(|e| e.to_string())?;
            let output = resampler
                .process(&adapter, None)
                .map_err(|e| e.to_string())?;
            out.extend_from_slice(&output.take_data());
            used += need;
        }
        self.pending.drain(..used);
        Ok(())
    }
}

/// What listening to silence costs: the microphone thread's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct ListeningCost {
    pub cpu: Duration,
    pub wall: Duration,
    /// The process's resident set at the end, in KiB.
    pub rss_kb: Option<u64>,
}

/// For the bench: a stand-in device thread pushes silence at `rate` into
/// the ring in real time, 10 ms at a time, as an audio callback would; this
/// thread drains it exactly as [`Capture::run`] does (the nap, the
/// resampler, the gate, the segmenter) for `duration`.
pub fn listening_cost(duration: Duration, rate: u32) -> Result<ListeningCost, String> {
    let (mut producer, mut ring) = rtrb::RingBuffer::new(rate as usize * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let device = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let period = vec![0.0f32; rate as usize / 100];
            let started = voicepay_core::clock::Stopwatch::start();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(chunk) = producer.write_chunk_uninit(period.len()) {
                    chunk.fill_from_iter(period.iter().copied());
                }
                sent += 1;
                // Paced by the wall clock, as a sound card is.
                let due = Duration::from_millis(10) * sent;
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        })
    };
    let mut resampler = StreamResampler::new(rate)?;
    let mut listener = Listener::new(SegmenterSettings::default());
    let (mut resampled, mut segments) = (Vec::new(), Vec::new());
    let cpu_before = thread_cpu_time();
    let started = voicepay_core::clock::Stopwatch::start();
    while started.elapsed() < duration {
        let available = ring.slots();
        if available == 0 {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        resampled.clear();
        if let Ok(chunk) = ring.read_chunk(available) {
            let (first, second) = chunk.as_slices();
            resampler.push(first, &mut resampled)?;
            resampler.push(second, &mut resampled)?;
            chunk.commit_all();
        }
        listener.hear(&resampled, Listen::Open, &mut segments);
        segments.clear();
    }
    let wall = started.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before))
        .ok_or("this system does not say a thread's CPU time (/proc/thread-self/schedstat)")?;
    stop.store(true, Ordering::Relaxed);
    let _ = device.join();
    Ok(ListeningCost {
        cpu,
        wall,
        rss_kb: resident_kb(),
    })
}

/// The calling thread's time on a CPU so far (Linux).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn resident_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// An utterance's worth of 16 kHz audio from a stream at `rate`, for tests
/// and the bench: the same resampling the microphone does.
pub fn resample_stream(samples: &[f32], rate: u32, chunk: usize) -> Result<Utterance, String> {
    let mut resampler = StreamResampler::new(rate)?;
    let mut out = Vec::new();
    for part in samples.chunks(chunk.max(1)) {
        resampler.push(part, &mut out)?;
    }
    Ok(Utterance { samples: out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_at_48_khz_comes_out_at_16_khz_whatever_the_chunk_size() {
        let tone: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin() * 0.5)
            .collect();
        let lengths: Vec<usize> = [1, 480, 1024, 4096]
            .iter()
            .map(|&chunk| resample_stream(&tone, 48_000, chunk).unwrap().samples.len())
            .collect();
        // Whole resampler chunks only, so the same count however it arrives,
        // and a third of what went in, less the resampler's delay and one
        // unfinished chunk.
        assert!(lengths.iter().all(|&n| n == lengths[0]), "{lengths:?}");
        assert!(
            (16_000 - 2 * 1024 / 3..=16_000).contains(&lengths[0]),
            "{lengths:?}"
        );
        let same = resample_stream(&tone[..1600], 16_000, 100).unwrap();
        assert_eq!(same.samples, tone[..1600]);
    }

    #[test]
    fn the_audio_callback_mixes_or_picks_a_channel_and_counts_what_it_drops() {
        let (producer, mut consumer) = rtrb::RingBuffer::new(3);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut mono = Mono {
            channels: 2,
            pick: Some(1),
            ring: producer,
            dropped: dropped.clone(),
        };
        // Four stereo frames; the ring holds three samples.
        mono.take(&[0.1f32, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6]);
        let got: Vec<f32> = std::iter::from_fn(|| consumer.pop().ok()).collect();
        assert_eq!(got, [0.9, 0.8, 0.7]);
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        mono.pick = None;
        mono.take(&[i16::MAX, 0]);
        let mixed = consumer.pop().unwrap();
        assert!((mixed - 0.5).abs() < 0.01, "{mixed}");
    }

    fn spoken(name: &str) -> Vec<f32> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        crate::audio::wav::read_wav(&path).unwrap().samples
    }

    /// What `listen` makes of the fixture said in chunks of 20 ms, the gate
    /// as `gate` says for each chunk's index, then a second of silence.
    fn heard(gate: impl Fn(usize, usize) -> Listen) -> Vec<Segment> {
        let speech = spoken("pay_alice_20.wav");
        let silence = vec![0.0; 16_000];
        let chunks: Vec<&[f32]> = speech.chunks(320).chain(silence.chunks(320)).collect();
        let mut listener = Listener::new(SegmenterSettings::default());
        let mut out = Vec::new();
        let speech_chunks = speech.len().div_ceil(320);
        for (i, chunk) in chunks.iter().enumerate() {
            listener.hear(chunk, gate(i, speech_chunks), &mut out);
        }
        out
    }

    #[test]
    fn push_to_talk_hears_only_while_held_and_letting_go_ends_the_utterance() {
        assert_eq!(heard(|_, _| Listen::Open).len(), 1, "always listening");
        assert!(heard(|_, _| Listen::Released).is_empty(), "never pressed");
        // Let go two thirds into the command, before any end-of-speech silence.
        let cut = heard(|i, n| {
            if i < n * 2 / 3 {
                Listen::Open
            } else {
                Listen::Released
            }
        });
        assert_eq!(cut.len(), 1);
        let full = heard(|_, _| Listen::Open);
        assert!(
            cut[0].utterance.samples.len() < full[0].utterance.samples.len(),
            "the utterance ends where the button came up"
        );
    }

    #[test]
    fn what_is_heard_while_the_device_speaks_is_dropped_not_finished() {
        // The device starts to speak halfway through: neither half is heard
        // (the second is the device's own voice).
        let muted = heard(|i, n| {
            if i < n / 2 {
                Listen::Open
            } else {
                Listen::Muted
            }
        });
        assert!(muted.is_empty(), "{} utterances", muted.len());
    }

    #[test]
    fn a_profile_naming_no_device_or_a_silly_ring_is_refused() {
        let mut settings = MicSettings::default();
        assert!(settings.validate().is_ok());
        settings.ring_ms = 10;
        assert!(settings.validate().unwrap_err().contains("audio.ring_ms"));
        let settings = MicSettings {
            input: " ".into(),
            ..MicSettings::default()
        };
        assert!(settings.validate().unwrap_err().contains("audio.input"));
    }
}
