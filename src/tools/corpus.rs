//! The evaluation corpus: sentences said the way people talk, rendered by two speech engines in a fixed, seeded panel of voices, rates and noise, and a real person's recordings.
//!
//! Nothing here is picked by what the model gets right. A sentence's half
//! (development or test) comes from a hash of its id; its clips from a hash
//! of the seed, its id and the condition. Every sentence is rendered in every
//! noise condition, each time in two voices drawn from all twelve, at a drawn
//! rate. Clips are cached by what they are made of, so a second run renders
//! nothing.
//!
//! The recorded source is every prompt of Debian's Asterisk core sounds
//! (`asterisk-core-sounds-en-wav`, Allison Smith, CC-BY-SA 3.0, 8 kHz): a
//! real voice saying hundreds of things that are not payments, numbers,
//! "dollars" and "transfer" among them, each heard in every noise condition.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audio::{SAMPLE_RATE, Utterance, wav};

/// Changes whenever rendering changes, so stale clips are never reused.
const RENDER_VERSION: &str = "corpus-render-1";
/// Silence either side of the speech, as a voice-activity segmenter cuts it.
const PAD_SECONDS: f32 = 0.3;
/// Every sentence is heard in each noise condition in this many voices.
pub const VOICES_PER_CONDITION: usize = 2;

/// What the device is waiting for when the sentence is heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// Nothing: a free command, or chatter.
    Free,
    /// A read-back: "confirm" or "cancel".
    Confirm,
    /// A read-back that asked for the code [`CORPUS_CODE`] with "confirm".
    Code,
    /// An agent's task: "approve" or "reject".
    Task,
}

/// The code the `code` sentences were written for.
pub const CORPUS_CODE: &str = "472";

impl Context {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "-" => Context::Free,
            "confirm" => Context::Confirm,
            "code" => Context::Code,
            "task" => Context::Task,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Sentences we may look at and tune on.
    Dev,
    /// Sentences nothing is tuned on: the reported figures.
    Test,
}

impl Split {
    /// By a hash of the id: nobody chooses where a sentence goes.
    pub fn of(id: &str) -> Split {
        if hash(&["split", id])[0] & 1 == 0 {
            Split::Dev
        } else {
            Split::Test
        }
    }
}

/// One line of `corpus/sentences.tsv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sentence {
    pub id: String,
    pub context: Context,
    pub text: String,
    /// What the user meant (intent JSON; a payee or provider outside the
    /// book or table is `null`).
    pub expected: serde_json::Value,
    pub split: Split,
    /// A real recording of the sentence, for the recorded source; `None`
    /// for sentences the speech engines render.
    pub recording: Option<PathBuf>,
}

/// Reads the sentence list: `id<TAB>context<TAB>text<TAB>expected JSON`.
pub fn load(path: &Path) -> Result<Vec<Sentence>> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let mut sentences = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("{}:{}", path.display(), n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [id, context, said, expected] = fields[..] else {
            bail!("{}: expected 4 tab-separated fields", at());
        };
        let context = Context::parse(context)
            .with_context(|| format!("{}: unknown context {context:?}", at()))?;
        let expected: serde_json::Value =
            serde_json::from_str(expected).with_context(|| format!("{}: expected JSON", at()))?;
        if !seen.insert(id.to_owned()) {
            bail!("{}: id {id} appears twice", at());
        }
        sentences.push(Sentence {
            id: id.to_owned(),
            context,
            text: said.to_owned(),
            expected,
            split: Split::of(id),
            recording: None,
        });
    }
    Ok(sentences)
}

/// Where Debian's `asterisk-core-sounds-en-wav` puts the recordings, and
/// `asterisk-core-sounds-en` their transcripts.
pub const ASTERISK_SOUNDS: &str = "/usr/share/asterisk/sounds/en_US_f_Allison";
pub const ASTERISK_TRANSCRIPTS: &str =
    "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz";

/// Longer prompts are announcements, not what a device hears in one breath,
/// and each costs seconds to decode: 529 of the 568 are this short or shorter.
const RECORDED_MAX_SECONDS: f32 = 6.0;

/// Prompts that are answers: "no" cancels. Every other prompt is not a command.
const RECORDED_ANSWERS: &[(&str, &str)] = &[("vm-no", r#"{"kind":"cancel"}"#)];

/// Every Asterisk prompt that has a recording of at most
/// [`RECORDED_MAX_SECONDS`] and words (not "[beep]"), as a free utterance
/// that must not be a command.
pub fn recorded(sounds: &Path, transcripts: &Path) -> Result<Vec<Sentence>> {
    let missing = || {
        format!(
            "{}: the recorded source needs asterisk-core-sounds-en and asterisk-core-sounds-en-wav \
             (scripts/setup.sh installs them)",
            transcripts.display()
        )
    };
    let listing = Command::new("gzip")
        .arg("-dc")
        .arg(transcripts)
        .output()
        .with_context(missing)?;
    if !listing.status.success() {
        bail!("{}", missing());
    }
    let listing = String::from_utf8_lossy(&listing.stdout);
    let mut sentences = Vec::new();
    for line in listing.lines().filter(|l| !l.starts_with(';')) {
        let Some((name, text)) = line.split_once(':') else {
            continue;
        };
        let (name, text) = (name.trim(), text.trim());
        let recording = sounds.join(format!("{name}.wav"));
        if text.is_empty() || text.starts_with('[') || !recording.is_file() {
            continue;
        }
        let seconds = hound::WavReader::open(&recording)
            .map(|r| r.duration() as f32 / r.spec().sample_rate as f32)
            .with_context(|| recording.display().to_string())?;
        if seconds > RECORDED_MAX_SECONDS {
            continue;
        }
        let id = format!("recorded_{}", name.replace('/', "_"));
        let expected = RECORDED_ANSWERS
            .iter()
            .find(|(answer, _)| *answer == name)
            .map_or(r#"{"kind":"none"}"#, |(_, json)| json);
        sentences.push(Sentence {
            split: Split::of(&id),
            id,
            context: Context::Free,
            text: text.to_owned(),
            expected: serde_json::from_str(expected)?,
            recording: Some(recording),
        });
    }
    if sentences.is_empty() {
        bail!("{}: no prompts with recordings", missing());
    }
    Ok(sentences)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    EspeakNg,
    Flite,
    /// A person, recorded.
    Recorded,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::EspeakNg => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Recorded => "recorded",
        }
    }
}

/// A voice of one engine: espeak-ng's accents (with its voice variants), flite's recorded speakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Voice {
    pub engine: Engine,
    pub name: &'static str,
}

/// The panel's twelve voices, all of them used. espeak-ng: American, New
/// York, RP, Scottish, Caribbean, Lancashire, West Midlands and northern
/// English accents over male and female variants; flite: a Scottish and two
/// American speakers, and its diphone voice.
pub const VOICES: [Voice; 12] = [
    Voice {
        engine: Engine::EspeakNg,
        name: "en-us",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-us-nyc+f2",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-gb-x-rp+m3",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-gb-scotland+f3",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-029+m5",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-gb-x-gbclan+f4",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-gb-x-gbcwmd+m2",
    },
    Voice {
        engine: Engine::EspeakNg,
        name: "en-gb+f5",
    },
    Voice {
        engine: Engine::Flite,
        name: "awb",
    },
    Voice {
        engine: Engine::Flite,
        name: "rms",
    },
    Voice {
        engine: Engine::Flite,
        name: "slt",
    },
    Voice {
        engine: Engine::Flite,
        name: "kal16",
    },
];

/// The speaker of the recorded source.
pub const ALLISON: Voice = Voice {
    engine: Engine::Recorded,
    name: "allison",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    Slow,
    Normal,
    Fast,
}

pub const RATES: [Rate; 3] = [Rate::Slow, Rate::Normal, Rate::Fast];

impl Rate {
    /// espeak-ng words per minute.
    fn wpm(self) -> u32 {
        match self {
            Rate::Slow => 135,
            Rate::Normal => 165,
            Rate::Fast => 195,
        }
    }

    /// flite's duration stretch (above 1 is slower).
    fn stretch(self) -> &'static str {
        match self {
            Rate::Slow => "1.2",
            Rate::Normal => "1.0",
            Rate::Fast => "0.85",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    Clean,
    /// Car cabin (engine and road rumble) at 10 dB SNR.
    Car10,
    /// Car cabin at 5 dB SNR.
    Car5,
    /// Café babble (several voices reading at once) at 10 dB SNR.
    Babble10,
}

pub const NOISES: [Noise; 4] = [Noise::Clean, Noise::Car10, Noise::Car5, Noise::Babble10];

impl Noise {
    pub fn name(self) -> &'static str {
        match self {
            Noise::Clean => "clean",
            Noise::Car10 => "car 10 dB",
            Noise::Car5 => "car 5 dB",
            Noise::Babble10 => "babble 10 dB",
        }
    }

    fn snr_db(self) -> Option<f32> {
        match self {
            Noise::Clean => None,
            Noise::Car10 | Noise::Babble10 => Some(10.0),
            Noise::Car5 => Some(5.0),
        }
    }
}

/// One clip of the panel: a sentence in a voice, at a rate, in a noise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Clip {
    /// Index into the sentence list.
    #[serde(skip)]
    pub sentence: usize,
    pub voice: Voice,
    pub rate: Rate,
    pub noise: Noise,
}

/// Every sentence in every noise condition, each in [`VOICES_PER_CONDITION`]
/// different voices drawn with `seed`, each at a drawn rate.
pub fn panel(sentences: &[Sentence], seed: u64) -> Vec<Clip> {
    let seed = seed.to_string();
    let mut clips = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        if sentence.recording.is_some() {
            // One speaker, at the pace she spoke: once in each condition.
            clips.extend(NOISES.map(|noise| Clip {
                sentence: index,
                voice: ALLISON,
                rate: Rate::Normal,
                noise,
            }));
            continue;
        }
        for noise in NOISES {
            let draw = hash(&["voices", &seed, &sentence.id, noise.name()]);
            let first = usize::from(draw[0]) % VOICES.len();
            // A different second voice: a step of 1..len-1 from the first.
            let step = 1 + usize::from(draw[1]) % (VOICES.len() - 1);
            for k in 0..VOICES_PER_CONDITION {
                let voice = VOICES[(first + k * step) % VOICES.len()];
                let rate = RATES[usize::from(draw[2 + k]) % RATES.len()];
                clips.push(Clip {
                    sentence: index,
                    voice,
                    rate,
                    noise,
                });
            }
        }
    }
    clips
}

/// `count` clips drawn from `clips` with `seed`, in a stable order.
pub fn sample(clips: &[Clip], sentences: &[Sentence], count: usize, seed: u64) -> Vec<Clip> {
    let seed = seed.to_string();
    let mut keyed: Vec<([u8; 32], &Clip)> = clips
        .iter()
        .map(|clip| {
            let key = hash(&[
                "sample",
                &seed,
                &sentences[clip.sentence].id,
                clip.voice.name,
                clip.noise.name(),
            ]);
            (key, clip)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed
        .into_iter()
        .take(count)
        .map(|(_, clip)| clip.clone())
        .collect()
}

/// Renders clips into a cache directory and hands them out as utterances.
pub struct Renderer {
    cache: PathBuf,
    babble: Option<Vec<f32>>,
}

impl Renderer {
    /// Makes the cache directory. The engines are looked for when a clip
    /// must be rendered (`--text` renders nothing; recordings need sox).
    pub fn new(cache: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache).with_context(|| cache.display().to_string())?;
        Ok(Self {
            cache: cache.to_owned(),
            babble: None,
        })
    }

    /// The clip's audio: from the cache, or rendered and cached.
    pub fn utterance(&mut self, clip: &Clip, sentence: &Sentence) -> Result<Utterance> {
        let key = hex::encode(
            &hash(&[
                RENDER_VERSION,
                clip.voice.engine.name(),
                clip.voice.name,
                &format!("{:?}", clip.rate),
                clip.noise.name(),
                &sentence.text,
            ])[..12],
        );
        let path = self.cache.join(format!("{}-{key}.wav", sentence.id));
        if path.is_file()
            && let Ok(utterance) = wav::read_wav(&path)
        {
            return Ok(utterance);
        }
        let speech = speak(clip.voice, clip.rate, sentence)
            .with_context(|| format!("rendering {} in {}", sentence.id, clip.voice.name))?;
        let samples = match clip.noise.snr_db() {
            None => speech,
            Some(snr) => {
                let noise = match clip.noise {
                    Noise::Babble10 => self.babble_at(&key, speech.len())?,
                    _ => car_cabin(&key, speech.len()),
                };
                mix(&speech, &noise, snr)
            }
        };
        wav::write_wav(&path, &samples)?;
        Ok(Utterance { samples })
    }

    /// A stretch of café babble as long as the clip, from an offset drawn by its key.
    fn babble_at(&mut self, key: &str, len: usize) -> Result<Vec<f32>> {
        let track = match &self.babble {
            Some(track) => track,
            None => self.babble.insert(babble()?),
        };
        let start = usize::from(u16::from_le_bytes([key.as_bytes()[0], key.as_bytes()[1]])) * 37
            % track.len().saturating_sub(len).max(1);
        Ok((0..len).map(|i| track[(start + i) % track.len()]).collect())
    }
}

/// The words in a voice at a rate, or the sentence's recording resampled:
/// 16 kHz mono, padded, peak at -3 dBFS.
fn speak(voice: Voice, rate: Rate, sentence: &Sentence) -> Result<Vec<f32>> {
    let text = &sentence.text;
    let out = tempfile::Builder::new().suffix(".wav").tempfile()?;
    let mut command = match (voice.engine, &sentence.recording) {
        (_, Some(recording)) => {
            let mut sox = Command::new("sox");
            sox.arg(recording)
                .args(["-r", "16000", "-c", "1", "-b", "16"])
                .arg(out.path());
            sox
        }
        (Engine::Recorded, None) => bail!("{}: no recording", sentence.id),
        (Engine::EspeakNg, None) => {
            let mut espeak = Command::new("espeak-ng");
            espeak
                .args(["-v", voice.name, "-s", &rate.wpm().to_string(), "-w"])
                .arg(out.path())
                .arg(text);
            espeak
        }
        (Engine::Flite, None) => {
            let mut flite = Command::new("flite");
            flite
                .args(["-voice", voice.name, "--setf"])
                .arg(format!("duration_stretch={}", rate.stretch()))
                .arg("-t")
                .arg(text)
                .arg("-o")
                .arg(out.path());
            flite
        }
    };
    let tool = command.get_program().to_string_lossy().into_owned();
    let status = command.status().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("{tool} not found: apt-get install {tool} (scripts/setup.sh does)")
        }
        _ => anyhow::Error::new(error).context(tool.clone()),
    })?;
    if !status.success() {
        bail!("{tool} failed ({status})");
    }
    let spoken = wav::read_wav(out.path())?.samples;
    let pad = vec![0.0; (PAD_SECONDS * SAMPLE_RATE as f32) as usize];
    let mut samples = pad.clone();
    samples.extend(normalised(&spoken, -3.0));
    samples.extend(pad);
    Ok(samples)
}

fn normalised(samples: &[f32], peak_db: f32) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak == 0.0 {
        return samples.to_vec();
    }
    let gain = 10f32.powf(peak_db / 20.0) / peak;
    samples.iter().map(|s| s * gain).collect()
}

/// Speech plus noise scaled so that speech power over noise power is `snr_db`
/// (speech power measured where there is speech, not over the padding).
fn mix(speech: &[f32], noise: &[f32], snr_db: f32) -> Vec<f32> {
    let speech_power = active_power(speech);
    let noise_power = noise.iter().map(|s| s * s).sum::<f32>() / noise.len().max(1) as f32;
    if noise_power == 0.0 {
        return speech.to_vec();
    }
    let gain = (speech_power / noise_power / 10f32.powf(snr_db / 10.0)).sqrt();
    let mixed: Vec<f32> = speech
        .iter()
        .zip(noise)
        .map(|(s, n)| s + gain * n)
        .collect();
    // Never clip: scale down instead.
    let peak = mixed.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if peak > 0.99 {
        mixed.iter().map(|s| s * 0.99 / peak).collect()
    } else {
        mixed
    }
}

/// Mean power of the 20 ms frames louder than -40 dB under the loudest.
fn active_power(samples: &[f32]) -> f32 {
    let frames: Vec<f32> = samples
        .chunks(320)
        .map(|f| f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32)
        .collect();
    let loudest = frames.iter().fold(0.0f32, |m, p| m.max(*p));
    let active: Vec<f32> = frames.into_iter().filter(|p| *p > loudest * 1e-4).collect();
    active.iter().sum::<f32>() / active.len().max(1) as f32
}

/// Deterministic white noise in [-1, 1] (xorshift): the noise of a clip is
/// the same on every render.
struct WhiteNoise(u64);

impl WhiteNoise {
    fn from_key(key: &str) -> Self {
        let h = hash(&["noise", key]);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&h[..8]);
        WhiteNoise(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Car cabin: brown road noise low-passed near 400 Hz, and engine hum at 30
/// Hz and its harmonics, slowly swelling.
fn car_cabin(key: &str, len: usize) -> Vec<f32> {
    let mut white = WhiteNoise::from_key(key);
    let rate = SAMPLE_RATE as f32;
    let lowpass = 1.0 - (-2.0 * std::f32::consts::PI * 400.0 / rate).exp();
    let (mut brown, mut low) = (0.0f32, 0.0f32);
    (0..len)
        .map(|i| {
            brown = 0.995 * brown + 0.05 * white.next();
            low += lowpass * (brown - low);
            let t = i as f32 / rate;
            let swell = 1.0 + 0.3 * (2.0 * std::f32::consts::PI * 0.4 * t).sin();
            let hum: f32 = [30.0f32, 60.0, 90.0, 120.0]
                .iter()
                .enumerate()
                .map(|(h, f)| (2.0 * std::f32::consts::PI * f * t).sin() / (h + 1) as f32)
                .sum();
            low + 0.02 * swell * hum
        })
        .collect()
}

/// What the café's other customers say: ordinary talk, no commands to a payment device.
const CHATTER: [&str; 6] = [
    "We went down to the river on Sunday and the water was higher than I have ever seen it.",
    "My sister says the new library opens next month, with a garden on the roof.",
    "Honestly the train was late again, so I read most of the book on the platform.",
    "They painted the kitchen yellow, and now the whole house feels a bit warmer.",
    "If the weather holds we could walk up the hill and have lunch at the top.",
    "The meeting ran long because nobody could agree about the schedule for spring.",
];

/// A line of café chatter, as a sentence to render.
fn chatter(text: &str) -> Sentence {
    Sentence {
        id: "babble".to_owned(),
        context: Context::Free,
        text: text.to_owned(),
        expected: serde_json::Value::Null,
        split: Split::Dev,
        recording: None,
    }
}

/// Six voices reading at once, each starting at a different moment: babble.
fn babble() -> Result<Vec<f32>> {
    let voices = [
        "en-us+m1",
        "en-gb+f1",
        "en-us+f4",
        "en-gb-x-rp+m6",
        "en-029+f2",
        "en-us-nyc+m4",
    ];
    let mut track = vec![0.0f32; 12 * SAMPLE_RATE as usize];
    for (i, (voice, text)) in voices.iter().zip(CHATTER).enumerate() {
        let talker = Voice {
            engine: Engine::EspeakNg,
            name: voice,
        };
        let talk = speak(talker, Rate::Normal, &chatter(text))?;
        let start = i * track.len() / voices.len();
        // Each talker loops over the track from its own start.
        let len = track.len();
        for (j, s) in talk.iter().cycle().take(len).enumerate() {
            track[(start + j) % len] += s;
        }
    }
    Ok(normalised(&track, -3.0))
}

fn hash(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

/// How many sentences of each kind, per half: the corpus's shape, for the report.
pub fn census(sentences: &[Sentence]) -> BTreeMap<(String, Split), usize> {
    let mut counts = BTreeMap::new();
    for s in sentences {
        let kind = s.expected["kind"].as_str().unwrap_or("?").to_owned();
        *counts.entry((kind, s.split)).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(id: &str) -> Sentence {
        Sentence {
            id: id.to_owned(),
            context: Context::Free,
            text: "Pay ten yuan to Bob.".to_owned(),
            expected: serde_json::json!({"kind": "none"}),
            split: Split::of(id),
            recording: None,
        }
    }

    #[test]
    fn the_panel_hears_every_sentence_in_every_noise_in_different_voices() {
        let sentences: Vec<Sentence> = (0..50).map(|i| sentence(&format!("s{i}"))).collect();
        let clips = panel(&sentences, 7);
        assert_eq!(clips.len(), 50 * NOISES.len() * VOICES_PER_CONDITION);
        for pair in clips.chunks(VOICES_PER_CONDITION) {
            assert_ne!(pair[0].voice, pair[1].voice);
            assert_eq!(pair[0].noise, pair[1].noise);
        }
        // Every voice and every rate is drawn.
        for voice in VOICES {
            assert!(
                clips.iter().any(|c| c.voice == voice),
                "{voice:?} never drawn"
            );
        }
        for rate in RATES {
            assert!(clips.iter().any(|c| c.rate == rate));
        }
        // The same seed draws the same panel; another seed another.
        assert_eq!(panel(&sentences, 7), clips);
        assert_ne!(panel(&sentences, 8), clips);
    }

    #[test]
    fn the_halves_come_from_the_ids_and_are_about_even() {
        let ids: Vec<String> = (0..400).map(|i| format!("sentence_{i}")).collect();
        let dev = ids.iter().filter(|id| Split::of(id) == Split::Dev).count();
        assert!((160..240).contains(&dev), "{dev} of 400 in dev");
        assert_eq!(Split::of("pay_bob"), Split::of("pay_bob"));
    }

    #[test]
    fn noise_is_mixed_at_the_asked_ratio() {
        let speech: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let noise = car_cabin("k", speech.len());
        let mixed = mix(&speech, &noise, 5.0);
        let residual: Vec<f32> = mixed.iter().zip(&speech).map(|(m, s)| m - s).collect();
        let power = |x: &[f32]| x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32;
        let snr = 10.0 * (power(&speech) / power(&residual)).log10();
        assert!((snr - 5.0).abs() < 0.2, "snr {snr}");
        assert_eq!(car_cabin("k", 100), car_cabin("k", 100));
    }
}
