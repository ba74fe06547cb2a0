//! `voicepay bench`: model load, transcription latency, real-time factor, intent parse time and peak memory over the fixtures.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::audio::{SAMPLE_RATE, read_wav};
use crate::intent::{self, Intent};
use crate::profile::DeviceProfile;
use crate::recognizer::Recognizer;

/// One recorded utterance and what it must be understood as.
#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub file: String,
    /// The words that were spoken.
    pub text: String,
    pub intent: Intent,
}

/// Reads `dir/expected.jsonl`: one [`Fixture`] per line.
pub fn load_fixtures(dir: &Path) -> Result<Vec<Fixture>> {
    let path = dir.join("expected.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), n + 1))
        })
        .collect()
}

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
}

pub fn run(profile: &DeviceProfile, fixtures_dir: &Path) -> Result<Report> {
    let fixtures = load_fixtures(fixtures_dir)?;
    let clips = fixtures
        .iter()
        .map(|f| read_wav(&fixtures_dir.join(&f.file)).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;

    let started = Instant::now();
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
        let started = Instant::now();
        let (transcript, _) = recognizer.transcribe(clip)?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        if recognizer.intent_of(&transcript) == fixture.intent {
            exact_intents += 1;
        }
        transcripts.push(transcript.text);
    }

    let rounds = 200;
    let context = recognizer.parse_context().clone();
    let started = Instant::now();
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
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100).clamp(1, sorted.len());
    sorted[rank - 1].round() as u64
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn machine_description() -> String {
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
        writeln!(f, "peak RSS           {:.0} MB", self.peak_rss_mb)
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
