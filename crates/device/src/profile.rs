//! Device profiles: the TOML file that says what a device class speaks, pays in and runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::intent::ParseContext;
use crate::language::Language;
use crate::order::Purchase;
use crate::payees::{Origin, Payee, PayeeBook};
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::{Limits, Motion, OfflineFloor};

/// The profile compiled into the binary; `--device FILE` replaces it.
pub const DEFAULT_PROFILE: &str = include_str!("../../../devices/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{path}: cannot read device profile: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: invalid device profile: {source}")]
    Parse {
        origin: String,
        source: Box<toml::de::Error>,
    },
    #[error("{origin}: {detail}")]
    Invalid { origin: String, detail: String },
}

/// A device profile, parsed and checked once at load: every amount is
/// [`Money`], every code a type.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    pub name: String,
    /// What the device hears and speaks (intent tables, phrasebook, Whisper).
    pub language: Language,
    /// Taken when a spoken amount names no currency; limits are in it.
    pub default_currency: Currency,
    pub known_payees: Vec<String>,
    /// Other spoken forms of known payees: name -> aliases.
    pub payee_aliases: BTreeMap<String, Vec<String>>,
    pub known_providers: Vec<String>,
    /// Payee -> category ("tolls", "fuel"): what `[driving]` allows.
    pub payee_categories: BTreeMap<String, String>,
    pub asr: AsrSettings,
    /// The microphone: which device and channel.
    pub audio: crate::audio::mic::MicSettings,
    /// How the audio stream is cut into utterances.
    pub vad: crate::audio::segmenter::SegmenterSettings,
    /// How the device knows it is spoken to.
    pub wake: crate::wake::WakeSettings,
    /// How it answers: the speech command, the MQTT events.
    pub feedback: crate::feedback::speech::FeedbackSettings,
    pub payments: PaymentSettings,
    /// Paying while the gateway is unreachable.
    pub offline: OfflineFloor,
    /// The limits a new store starts with, in the default currency; `voicepay
    /// limits set` and spoken limit changes replace them.
    pub limits: Limits,
    pub mqtt: MqttSettings,
    /// The car's driving mode.
    pub driving: DrivingSettings,
}

/// The `[driving]` table (a money rule: the policy keeps it).
pub use voicepay_core::policy::DrivingRule as DrivingSettings;

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub confirm_window: Duration,
    /// How long payments that need a code stay locked after three wrong codes.
    pub code_lockout: Duration,
    pub request_ttl_ms: u64,
    /// Daily limits reset at midnight in this zone.
    pub calendar: voicepay_core::clock::Calendar,
    /// Provider -> price of a million tokens, in the default currency.
    pub token_prices: BTreeMap<String, Money>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// Topic prefix, `voicepay/v1` unless a deployment shares a broker.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    // The access keys are listed here rather than a flattened
    // `BrokerAccess`: serde ignores `deny_unknown_fields` under `flatten`,
    // and a misspelled `pasword_file` must be an error, not a silent login.
    /// For an `mqtts://` broker: PEM CA certificates (else the system's).
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain and key, for brokers that ask.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub username: Option<String>,
    /// A file holding the broker password (0600; never in the profile).
    pub password_file: Option<PathBuf>,
    /// What the user said goes over the broker (in the events and as the
    /// words of a request's evidence) only when this is on; off, only the
    /// transcripts' hashes leave the device. The payment code never does.
    #[serde(default)]
    pub transcripts: bool,
}

impl MqttSettings {
    pub fn access(&self) -> voicepay_core::transport::BrokerAccess {
        voicepay_core::transport::BrokerAccess {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
        }
    }
}

fn default_code_lockout_s() -> u64 {
    300
}

fn default_time_zone() -> String {
    "system".to_owned()
}

fn default_prefix() -> String {
    voicepay_core::protocol::DEFAULT_PREFIX.to_owned()
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            prefix: default_prefix(),
            ca_file: None,
            client_cert: None,
            client_key: None,
            username: None,
            password_file: None,
            transcripts: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrSettings {
    pub model: String,
    /// How the model's weights are stored: f16 (`ggml-MODEL.bin`), or q8_0 or
    /// q5_1 (`ggml-MODEL-QUANT.bin`, `voicepay model install --quant`).
    #[serde(default)]
    pub quant: crate::asr::Quant,
    /// whisper.cpp's flash attention: attention in blocks, so the encoder's
    /// attention matrix (tens of MB) is never allocated.
    #[serde(default)]
    pub flash_attn: bool,
    pub models_dir: PathBuf,
    pub threads: u16,
    pub audio_ctx_floor: u16,
    pub max_tokens: u16,
    /// 1 decodes greedily; more keeps that many hypotheses (beam search).
    #[serde(default = "greedy")]
    pub beam_size: u8,
    pub min_confidence: f32,
    /// Below this probability of an amount's tokens, the payment is read back.
    pub amount_certainty: f32,
    /// What Whisper's initial prompt holds.
    #[serde(default)]
    pub prompt: PromptStyle,
    pub noise_confidence: f32,
    pub no_speech_threshold: f32,
    /// Read an utterance the free decode could not make into a command
    /// again, held to what can be said now (see `intent::language`).
    #[serde(default = "yes")]
    pub closed_domain: bool,
    /// A constrained reading is taken only when the model, unconstrained,
    /// believed it: the geometric mean of its tokens' probabilities times
    /// the probability of speech at least this.
    #[serde(default = "reread_belief")]
    pub reread_belief: f32,
    /// ... and its mean log probability per token at most this many nats
    /// below the free decode's.
    #[serde(default = "reread_margin")]
    pub reread_margin: f32,
    /// An answer read held to the question's language is taken only when it
    /// is at least this many nats likelier than the other answer's likeliest
    /// phrasing, both scored whole on the same audio; nearer, it is asked again.
    #[serde(default = "answer_lead")]
    pub answer_lead: f32,
    /// An answer read held to the question's language is taken at this
    /// belief (its reading's, as `reread_belief`); `min_confidence` when
    /// absent, the floor of an answer the free decode read.
    #[serde(default)]
    pub answer_belief: Option<f32>,
    /// A payment heard with a confidence under `min_confidence` but at
    /// least this is read back, never paid unasked; under this it is not
    /// heard at all.
    #[serde(default = "payment_floor")]
    pub payment_floor: f32,
}

fn greedy() -> u8 {
    1
}

fn yes() -> bool {
    true
}

fn reread_belief() -> f32 {
    0.20
}

fn reread_margin() -> f32 {
    1.0
}

fn answer_lead() -> f32 {
    1.0
}

fn payment_floor() -> f32 {
    0.20
}

/// Whisper's initial prompt: example commands prime the spelling of "yuan"
/// and "top up", the payee names prime their spelling, and every name in it
/// is a name Whisper may put where another was said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The example commands and every payee and provider name.
    #[default]
    Names,
    /// Only the example commands (naming two payees and one provider).
    Examples,
    /// The example commands with stand-in names that no book holds: a name
    /// Whisper copies from the prompt is then one the device cannot pay.
    StandIns,
    /// No prompt.
    None,
}

/// The file as written: text where the typed profile has types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    name: String,
    language: String,
    default_currency: String,
    #[serde(default)]
    known_payees: Vec<String>,
    #[serde(default)]
    payee_aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    known_providers: Vec<String>,
    #[serde(default)]
    payee_categories: BTreeMap<String, String>,
    asr: AsrSettings,
    #[serde(default)]
    audio: crate::audio::mic::MicSettings,
    #[serde(default)]
    vad: crate::audio::segmenter::SegmenterSettings,
    #[serde(default)]
    wake: crate::wake::WakeSettings,
    #[serde(default)]
    feedback: crate::feedback::speech::FeedbackSettings,
    payments: PaymentFile,
    offline: OfflineFile,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    mqtt: MqttSettings,
    #[serde(default)]
    driving: DrivingSettings,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentFile {
    confirm_window_s: u64,
    #[serde(default = "default_code_lockout_s")]
    code_lockout_s: u64,
    request_ttl_s: u64,
    #[serde(default = "default_time_zone")]
    time_zone: String,
    #[serde(default)]
    token_prices: BTreeMap<String, String>,
}

/// The `[limits]` table: amounts as decimal text; an absent one is no limit
/// (an absent `auto_pay` is zero: always ask).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsFile {
    auto_pay: Option<String>,
    daily: Option<String>,
    code_above: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OfflineFile {
    per_payment: String,
    cumulative: String,
    max_consecutive: u32,
    max_age_s: u64,
}

impl DeviceProfile {
    /// The embedded default, with environment overrides applied.
    pub fn embedded() -> Result<Self, ProfileError> {
        Self::parse(DEFAULT_PROFILE, "embedded default profile")
    }

    /// `path` if given, else the embedded default; environment overrides on top.
    pub fn load(path: Option<&Path>) -> Result<Self, ProfileError> {
        match path {
            None => Self::embedded(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text, &path.display().to_string())
            }
        }
    }

    fn parse(text: &str, origin: &str) -> Result<Self, ProfileError> {
        Self::parse_with_env(text, origin, std::env::vars())
    }

    /// The profile in `text` with the overrides among `vars` (name, value)
    /// applied: `VOICEPAY__TABLE__KEY` (see [`ENV_PREFIX`]), and the older
    /// `VOICEPAY_MODEL`, `VOICEPAY_MODELS_DIR` and `VOICEPAY_THREADS`.
    pub fn parse_with_env(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ProfileError> {
        let parse_error = |source| ProfileError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        };
        let invalid = |detail| ProfileError::Invalid {
            origin: origin.to_owned(),
            detail,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        fill_defaults(&mut table);
        let file: ProfileFile = match toml::Value::Table(table.clone()).try_into() {
            Ok(file) => file,
            // A bad value: the file's own reading points at its line.
            Err(filled) => {
                return Err(match toml::from_str::<ProfileFile>(text) {
                    Err(own) if !own.message().starts_with("missing field") => parse_error(own),
                    _ => parse_error(filled),
                });
            }
        };
        // A value the checks refuse is named by the override that brought
        // it: the first after which a file that passed them fails.
        let mut checked = Self::from_file(file);
        let file_passes = checked.is_ok();
        for (name, value) in &env_overrides(vars) {
            let file = apply_override(&mut table, name, value).map_err(invalid)?;
            checked = Self::from_file(file);
            if let Err(detail) = &checked
                && file_passes
            {
                return Err(invalid(format!("{name}={value}: {detail}")));
            }
        }
        checked.map_err(invalid)
    }

    /// Checks every value and gives it its type; the error names the key.
    fn from_file(file: ProfileFile) -> Result<Self, String> {
        let language = Language::from_code(&file.language).map_err(|e| format!("language: {e}"))?;
        let currency = Currency::from_code(&file.default_currency)
            .map_err(|e| format!("default_currency: {e}"))?;
        let money = |key: &str, text: &str| {
            Money::parse_decimal(text, currency).map_err(|e| format!("{key}: {e}"))
        };
        let offline = OfflineFloor {
            per_payment: money("offline.per_payment", &file.offline.per_payment)?,
            cumulative: money("offline.cumulative", &file.offline.cumulative)?,
            max_consecutive: file.offline.max_consecutive,
            max_age_ms: file.offline.max_age_s.saturating_mul(1000),
        };
        let limit = |key: &str, text: &Option<String>| -> Result<Option<Money>, String> {
            let Some(text) = text else { return Ok(None) };
            let amount = money(key, text)?;
            if amount.minor < 0 {
                return Err(format!("{key}: a limit cannot be negative"));
            }
            Ok(Some(amount))
        };
        let limits = Limits {
            auto_pay: limit("limits.auto_pay", &file.limits.auto_pay)?
                .unwrap_or(Money::zero(currency)),
            daily: limit("limits.daily", &file.limits.daily)?,
            payment_code_above: limit("limits.code_above", &file.limits.code_above)?,
        };
        let token_prices = file
            .payments
            .token_prices
            .iter()
            .map(|(provider, price)| {
                let key = format!("payments.token_prices.{provider}");
                Ok((provider.clone(), money(&key, price)?))
            })
            .collect::<Result<BTreeMap<_, _>, String>>()?;
        let ttl_s = file.payments.request_ttl_s;
        if ttl_s == 0 || ttl_s > 24 * 3600 {
            return Err("payments.request_ttl_s is between 1 and 86400".into());
        }
        // A payment made offline must still be valid when the spell ends.
        if ttl_s <= file.offline.max_age_s {
            return Err(format!(
                "payments.request_ttl_s ({ttl_s}) must be longer than offline.max_age_s ({})",
                file.offline.max_age_s
            ));
        }
        let calendar = voicepay_core::clock::Calendar::named(&file.payments.time_zone)
            .map_err(|e| format!("payments.time_zone: {e}"))?;
        if file.asr.threads == 0 {
            return Err("asr.threads must be at least 1".into());
        }
        file.vad.validate()?;
        file.audio.validate()?;
        file.wake.validate()?;
        if language != Language::English && file.wake.mode == crate::wake::WakeMode::Phrase {
            // The wake phrase is matched by English spelling and sound.
            return Err(format!(
                "wake.mode \"phrase\" is heard in English only; a {language:?} profile takes \"push_to_talk\" or \"always\""
            ));
        }
        let model =
            crate::asr::ModelName::parse(&file.asr.model).map_err(|e| format!("asr.model: {e}"))?;
        if language != Language::English && !model.is_multilingual() {
            return Err(format!(
                "asr.model: {} hears English only; language {:?} needs a multilingual model such as base",
                file.asr.model, file.language
            ));
        }
        file.feedback.validate()?;
        if !(1..=8).contains(&file.asr.beam_size) {
            return Err("asr.beam_size is between 1 (greedy) and 8".into());
        }
        let asr = &file.asr;
        let probabilities = [
            asr.min_confidence,
            asr.amount_certainty,
            asr.noise_confidence,
            asr.no_speech_threshold,
            asr.reread_belief,
            asr.payment_floor,
            asr.answer_belief.unwrap_or(0.0),
        ];
        if !(asr.reread_margin >= 0.0 && asr.reread_margin.is_finite()) {
            return Err("asr.reread_margin is a number of nats, 0 or more".into());
        }
        if !(asr.answer_lead >= 0.0 && asr.answer_lead.is_finite()) {
            return Err("asr.answer_lead is a number of nats, 0 or more".into());
        }
        if asr.payment_floor > asr.min_confidence {
            return Err("asr.payment_floor is at most asr.min_confidence".into());
        }
        if !probabilities.iter().all(|p| (0.0..=1.0).contains(p)) {
            return Err(
                "asr.min_confidence, asr.amount_certainty, asr.noise_confidence, asr.no_speech_threshold, \
                 asr.reread_belief, asr.answer_belief and asr.payment_floor are between 0 and 1"
                    .into(),
            );
        }
        if let Some(name) = file
            .payee_aliases
            .keys()
            .find(|name| !file.known_payees.contains(name))
        {
            return Err(format!("payee_aliases.{name:?}: not one of known_payees"));
        }
        if let Some(provider) = file
            .payments
            .token_prices
            .keys()
            // Prices are looked up regardless of case (`token_price`).
            .find(|provider| {
                !file
                    .known_providers
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(provider))
            })
        {
            return Err(format!(
                "payments.token_prices.{provider}: not one of known_providers"
            ));
        }
        check_driving(&file)?;
        voicepay_core::protocol::topics::validate_prefix(&file.mqtt.prefix)
            .map_err(|e| format!("mqtt.prefix: {e}"))?;
        Ok(DeviceProfile {
            name: file.name,
            language,
            default_currency: currency,
            known_payees: file.known_payees,
            payee_aliases: file.payee_aliases,
            known_providers: file.known_providers,
            payee_categories: file.payee_categories,
            asr: file.asr,
            audio: file.audio,
            wake: file.wake,
            feedback: file.feedback,
            vad: file.vad,
            payments: PaymentSettings {
                confirm_window: Duration::from_secs(file.payments.confirm_window_s),
                code_lockout: Duration::from_secs(file.payments.code_lockout_s),
                request_ttl_ms: ttl_s * 1000,
                calendar,
                token_prices,
            },
            offline,
            limits,
            mqtt: file.mqtt,
            driving: file.driving,
        })
    }

    /// Whether `purchase` may be paid now, given what the vehicle last said
    /// (`None`: nothing yet, or the broker is away).
    pub fn motion(&self, driving: Option<bool>, purchase: &Purchase) -> Motion {
        // A top-up, or a payee added at run time, has no category.
        let category = match purchase {
            Purchase::Pay { payee } => self.payee_categories.get(payee),
            Purchase::TopUp { .. } => None,
        };
        voicepay_core::policy::motion(&self.driving, driving, category.map(String::as_str))
    }

    /// The price of `tokens` from `provider`, rounded up to the minor unit.
    pub fn token_price(&self, tokens: u64, provider: &str) -> Option<Money> {
        voicepay_core::policy::token_price(&self.payments.token_prices, provider, tokens)
    }

    /// The profile's part of the payee book: its known payees and their aliases.
    pub fn payee_book(&self) -> PayeeBook {
        PayeeBook::new(self.known_payees.iter().map(|name| {
            let payee = Payee {
                name: name.clone(),
                aliases: self.payee_aliases.get(name).cloned().unwrap_or_default(),
            };
            (payee, Origin::Profile)
        }))
    }

    /// What the intent parser needs to know about this device.
    pub fn parse_context(&self) -> ParseContext {
        ParseContext {
            language: self.language,
            default_currency: self.default_currency,
            known_payees: self.payee_book().spoken_forms(),
            known_providers: self.known_providers.clone(),
            token_prices: self.payments.token_prices.clone(),
        }
    }

    /// Where this profile's model lives.
    pub fn model_path(&self) -> PathBuf {
        self.asr
            .models_dir
            .join(crate::asr::model_file_name(&self.asr.model, self.asr.quant))
    }
}

/// Environment variables that override one key of a profile each:
/// `VOICEPAY__ASR__THREADS=2` sets `threads` in `[asr]`,
/// `VOICEPAY__DEFAULT_CURRENCY=USD` a top-level key. Service managers
/// configure through the environment, and machines of one device class differ
/// in a few settings.
pub const ENV_PREFIX: &str = "VOICEPAY__";

/// The older single-key variables, as the paths they set.
const LEGACY_VARS: [(&str, &str); 3] = [
    ("VOICEPAY_MODEL", "VOICEPAY__ASR__MODEL"),
    ("VOICEPAY_MODELS_DIR", "VOICEPAY__ASR__MODELS_DIR"),
    ("VOICEPAY_THREADS", "VOICEPAY__ASR__THREADS"),
];

/// The overrides among `vars`, by name (so their order never depends on
/// the environment's); a legacy name comes as the variable it is.
fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(name, _)| {
            name.starts_with(ENV_PREFIX) || LEGACY_VARS.iter().any(|(legacy, _)| legacy == name)
        })
        .collect()
}

/// Sets the key `name` names in `table` to `value`, and reads the profile
/// again: an unknown key or a value of the wrong type is an error naming
/// the variable. `value` is a TOML value when it parses as one (`2`,
/// `true`, `["a", "b"]`, `"quoted"`), else a string; when the key wants a
/// string, unparsed text is taken as one (`50.00` for an amount).
fn apply_override(table: &mut toml::Table, name: &str, value: &str) -> Result<ProfileFile, String> {
    let path = LEGACY_VARS
        .iter()
        .find(|(legacy, _)| *legacy == name)
        .map_or(name, |(_, path)| path);
    let keys: Vec<&str> = path
        .strip_prefix(ENV_PREFIX)
        .unwrap_or_default()
        .split("__")
        .collect();
    if keys.iter().any(|key| key.is_empty()) {
        return Err(format!(
            "{name}: expected VOICEPAY__KEY or VOICEPAY__TABLE__KEY"
        ));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let as_text = toml::Value::String(value.to_owned());
    let mut first_error = None;
    for candidate in parsed.into_iter().chain([as_text]) {
        let mut changed = table.clone();
        set(&mut changed, &keys, candidate).map_err(|detail| format!("{name}: {detail}"))?;
        match toml::Value::Table(changed.clone()).try_into::<ProfileFile>() {
            Ok(file) => {
                *table = changed;
                return Ok(file);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    let error = first_error.map_or_else(String::new, |e| e.message().to_owned());
    Err(format!("{name}={value}: {error}"))
}

/// The tables of settings a profile of an earlier release may lack some of.
const FILLED_TABLES: [&str; 3] = ["asr", "payments", "offline"];
/// Keys in them that are the user's own list, not a setting: never filled.
const NOT_FILLED: [&str; 1] = ["token_prices"];

/// Gives every setting of [`FILLED_TABLES`] the file leaves out the embedded
/// default's value, so a profile written before a setting existed still
/// loads with the setting's default; a value it has is checked as ever.
/// (The other tables default field by field in their types.)
fn fill_defaults(table: &mut toml::Table) {
    let Ok(defaults) = toml::from_str::<toml::Table>(DEFAULT_PROFILE) else {
        return;
    };
    for name in FILLED_TABLES {
        let Some(toml::Value::Table(default)) = defaults.get(name) else {
            continue;
        };
        let own = table
            .entry(name)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // Anything but a table is left for the reading to name.
        let toml::Value::Table(own) = own else {
            continue;
        };
        for (key, value) in default {
            if !NOT_FILLED.contains(&key.as_str()) && !own.contains_key(key) {
                own.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Puts `value` at the key path `keys`, making the tables on the way.
fn set(table: &mut toml::Table, keys: &[&str], value: toml::Value) -> Result<(), String> {
    let Some((last, tables)) = keys.split_last() else {
        return Err("names no key".into());
    };
    let mut at = table;
    let mut walked = Vec::new();
    for key in tables {
        let key = key_in(at, key);
        walked.push(key.clone());
        let entry = at
            .entry(key)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("{} is not a table", walked.join("."))),
        };
    }
    let last = key_in(at, last);
    at.insert(last, value);
    Ok(())
}

/// A variable's name is upper case; the key is the one in `table` that
/// matches it without regard to case (`KIMI` is `Kimi` of the token prices),
/// else its lower case.
fn key_in(table: &toml::Table, key: &str) -> String {
    table
        .keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_ascii_lowercase())
}

/// Categories name known payees, and each allowed category is some payee's
/// (a misspelt "toll" would refuse every toll while driving).
fn check_driving(file: &ProfileFile) -> Result<(), String> {
    for (payee, category) in &file.payee_categories {
        if !file.known_payees.contains(payee) {
            return Err(format!(
                "payee_categories.{payee:?}: not one of known_payees"
            ));
        }
        if category.trim().is_empty() {
            return Err(format!("payee_categories.{payee:?}: an empty category"));
        }
    }
    for category in &file.driving.allowed {
        if !file.payee_categories.values().any(|c| c == category) {
            return Err(format!(
                "driving.allowed: {category:?} is no payee's category in payee_categories"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_profile_is_valid() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        assert_eq!(p.default_currency, Currency::CNY);
        assert_eq!(p.language, Language::English);
        assert_eq!(p.mqtt.prefix, "voicepay/v1");
        assert_eq!(p.asr.model, "tiny.en");
        assert_eq!(p.parse_context().default_currency.code(), "CNY");
    }

    #[test]
    fn a_bad_currency_or_model_is_named_in_the_error() {
        let bad = DEFAULT_PROFILE.replace("\"CNY\"", "\"XYZ\"");
        let err = DeviceProfile::parse(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml: default_currency"), "{err}");
        let bad = DEFAULT_PROFILE.replace("\"tiny.en\"", "\"huge\"");
        let err = DeviceProfile::parse(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml: asr.model"), "{err}");
        let err = DeviceProfile::parse("name = 3", "y.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("y.toml: invalid device profile"), "{err}");
    }

    #[test]
    fn the_mqtt_table_takes_the_broker_access_keys_and_refuses_others() {
        let with = |lines: &str| format!("{DEFAULT_PROFILE}\n{lines}\n");
        let p = DeviceProfile::parse(
            &with("ca_file = \"/etc/ca.pem\"\nusername = \"glasses\""),
            "x.toml",
        )
        .unwrap();
        assert_eq!(p.mqtt.prefix, "voicepay/v1");
        assert_eq!(p.mqtt.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(p.mqtt.username.as_deref(), Some("glasses"));
        let err = DeviceProfile::parse(&with("pasword_file = \"/p\""), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pasword_file"), "{err}");
    }

    #[test]
    fn the_vad_table_is_optional_checked_and_refuses_unknown_keys() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        assert_eq!(p.vad.end_silence_ms, 600);
        // No [vad] table at all: the defaults.
        let start = DEFAULT_PROFILE.find("[vad]").unwrap();
        let end = DEFAULT_PROFILE.find("[payments]").unwrap();
        let without = format!("{}{}", &DEFAULT_PROFILE[..start], &DEFAULT_PROFILE[end..]);
        let p = DeviceProfile::parse(&without, "x.toml").unwrap();
        assert_eq!(p.vad, crate::audio::segmenter::SegmenterSettings::default());
        let short = DEFAULT_PROFILE.replace("end_silence_ms = 600", "end_silence_ms = 20");
        let err = DeviceProfile::parse(&short, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("vad.end_silence_ms"), "{err}");
        let typo = DEFAULT_PROFILE.replace("end_silence_ms = 600", "end_silence = 600");
        let err = DeviceProfile::parse(&typo, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("end_silence"), "{err}");
    }

    #[test]
    fn a_profile_from_an_earlier_release_still_loads_with_new_settings_at_their_defaults() {
        let old = include_str!("../../../tests/fixtures/profiles/default-c3a02fc.toml");
        let parse = |text: &str| DeviceProfile::parse_with_env(text, "old.toml", []);
        let p = parse(old).expect("a profile of an earlier release loads");
        let now = parse(DEFAULT_PROFILE).expect("default");
        assert_eq!(p.asr.amount_certainty, now.asr.amount_certainty);
        assert_eq!(p.asr.prompt, now.asr.prompt);
        assert_eq!(p.payments.code_lockout, now.payments.code_lockout);
        // What it says itself stands.
        assert_eq!(p.known_payees.len(), 8);
        assert_eq!(p.payments.token_prices["Claude"].minor, 9_000);
        // Only an invalid value is an error, and it names the key.
        let bad = old.replace("min_confidence = 0.40", "min_confidence = \"high\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("min_confidence"), "{err}");
        let bad = old.replace("max_consecutive = 5", "max_consecutive = -5");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("max_consecutive"), "{err}");
    }

    #[test]
    fn every_setting_a_profile_leaves_out_takes_the_defaults_value() {
        let defaults: toml::Table = toml::from_str(DEFAULT_PROFILE).unwrap();
        let full = DeviceProfile::parse_with_env(DEFAULT_PROFILE, "default", []).unwrap();
        for table in FILLED_TABLES {
            let toml::Value::Table(settings) = &defaults[table] else {
                panic!("[{table}] is a table");
            };
            for key in settings
                .keys()
                .filter(|k| !NOT_FILLED.contains(&k.as_str()))
            {
                let mut without = defaults.clone();
                if let Some(toml::Value::Table(t)) = without.get_mut(table) {
                    t.remove(key);
                }
                let text = toml::to_string(&without).unwrap();
                let p = DeviceProfile::parse_with_env(&text, "x.toml", [])
                    .unwrap_or_else(|e| panic!("without {table}.{key}: {e}"));
                assert_eq!(
                    format!("{:?} {:?} {:?}", p.asr, p.payments, p.offline),
                    format!("{:?} {:?} {:?}", full.asr, full.payments, full.offline),
                    "{table}.{key}"
                );
            }
        }
    }

    #[test]
    fn token_prices_round_up_to_the_minor_unit() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        // 12.00 per million: 200,000 tokens cost 2.40; one token costs 0.01.
        assert_eq!(p.token_price(200_000, "kimi").unwrap().minor, 240);
        assert_eq!(p.token_price(1, "Kimi").unwrap().minor, 1);
        assert!(p.token_price(1, "Nobody").is_none());
        assert_eq!(p.offline.per_payment.minor, 5_000);
        assert_eq!(p.limits, Limits::default(), "the default always asks");
    }

    #[test]
    fn the_limits_table_gives_a_new_stores_limits_in_the_default_currency() {
        let p = with_env(&[
            ("VOICEPAY__LIMITS__AUTO_PAY", "20.00"),
            ("VOICEPAY__LIMITS__DAILY", "300"),
        ])
        .unwrap();
        assert_eq!(p.limits.auto_pay, Money::new(2_000, Currency::CNY));
        assert_eq!(p.limits.daily, Some(Money::new(30_000, Currency::CNY)));
        assert_eq!(p.limits.payment_code_above, None);
        let err = with_env(&[("VOICEPAY__LIMITS__CODE_ABOVE", "-5.00")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "x.toml: VOICEPAY__LIMITS__CODE_ABOVE=-5.00: limits.code_above: a limit cannot be negative"
            ),
            "{err}"
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn with_env(pairs: &[(&str, &str)]) -> Result<DeviceProfile, ProfileError> {
        DeviceProfile::parse_with_env(DEFAULT_PROFILE, "x.toml", vars(pairs))
    }

    #[test]
    fn environment_variables_override_single_keys_of_any_table_with_typed_values() {
        let p = with_env(&[
            ("VOICEPAY__ASR__THREADS", "3"),
            ("VOICEPAY__DEFAULT_CURRENCY", "USD"),
            ("VOICEPAY__OFFLINE__PER_PAYMENT", "20.00"),
            ("VOICEPAY__OFFLINE__CUMULATIVE", "60.00"),
            ("VOICEPAY__VAD__END_SILENCE_MS", "400"),
            ("VOICEPAY__MQTT__USERNAME", "car-7"),
            (
                "VOICEPAY__KNOWN_PROVIDERS",
                r#"["Kimi", "Qwen", "Claude", "DeepSeek", "OpenAI", "Mistral"]"#,
            ),
            ("VOICEPAY__PAYMENTS__TOKEN_PRICES__KIMI", "11.50"),
            ("VOICEPAY__PAYMENTS__TOKEN_PRICES__MISTRAL", "5.00"),
            ("VOICEPAY__DRIVING__ENABLED", "false"),
            ("VOICEPAY_DATA_DIR", "/elsewhere"),
        ])
        .unwrap();
        assert_eq!(p.asr.threads, 3);
        assert_eq!(p.default_currency, Currency::USD);
        assert_eq!(p.offline.per_payment, Money::new(2_000, Currency::USD));
        assert_eq!(p.vad.end_silence_ms, 400);
        assert_eq!(p.mqtt.username.as_deref(), Some("car-7"));
        // The upper-case name finds the provider's own spelling.
        assert_eq!(p.payments.token_prices["Kimi"].minor, 1_150);
        assert_eq!(p.payments.token_prices["mistral"].minor, 500);
        assert!(!p.payments.token_prices.contains_key("kimi"));
    }

    #[test]
    fn an_override_naming_an_unknown_key_or_giving_a_bad_value_is_an_error_naming_the_variable() {
        let cases = [
            (
                "VOICEPAY__ASR__THREDS",
                "2",
                "VOICEPAY__ASR__THREDS=2: unknown field `threds`",
            ),
            (
                "VOICEPAY__COLOUR",
                "red",
                "VOICEPAY__COLOUR=red: unknown field `colour`",
            ),
            (
                "VOICEPAY__WHATEVER__KEY",
                "1",
                "VOICEPAY__WHATEVER__KEY=1: unknown field `whatever`",
            ),
            (
                "VOICEPAY__ASR__THREADS",
                "many",
                "VOICEPAY__ASR__THREADS=many: invalid type",
            ),
            (
                "VOICEPAY__NAME__X",
                "1",
                "VOICEPAY__NAME__X: name is not a table",
            ),
            (
                "VOICEPAY__ASR__",
                "1",
                "VOICEPAY__ASR__: expected VOICEPAY__KEY",
            ),
            ("VOICEPAY__", "1", "VOICEPAY__: expected VOICEPAY__KEY"),
        ];
        for (name, value, start) in cases {
            let err = with_env(&[(name, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("x.toml: {start}")),
                "{name}: {err}"
            );
        }
        // Parsed but checked like the file: zero threads are refused.
        let err = with_env(&[("VOICEPAY__ASR__THREADS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("asr.threads must be at least 1"), "{err}");
    }

    #[test]
    fn a_shipped_profiles_language_comment_names_only_languages_the_code_accepts() {
        let devices = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../devices");
        for entry in std::fs::read_dir(&devices).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with("language ="))
                .unwrap();
            let comment = lines[..at]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            // Every quoted code the comment offers must load.
            for code in comment.split('"').skip(1).step_by(2) {
                assert!(
                    Language::from_code(code).is_ok(),
                    "{}: the comment offers {code:?}: {comment}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn an_override_the_profiles_checks_refuse_is_an_error_naming_the_variable() {
        let cases = [
            (
                "VOICEPAY__ASR__THREADS",
                "0",
                "VOICEPAY__ASR__THREADS=0: asr.threads must be at least 1",
            ),
            (
                "VOICEPAY__LANGUAGE",
                "fr",
                "VOICEPAY__LANGUAGE=fr: language: language \"fr\" is not supported",
            ),
            (
                "VOICEPAY__LANGUAGE",
                "zh",
                "VOICEPAY__LANGUAGE=zh: asr.model: tiny.en hears English only; language \"zh\" needs a multilingual model such as base",
            ),
            (
                "VOICEPAY_THREADS",
                "0",
                "VOICEPAY_THREADS=0: asr.threads must be at least 1",
            ),
        ];
        for (name, value, start) in cases {
            let err = with_env(&[(name, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("x.toml: {start}")),
                "{name}: {err}"
            );
        }
        // Overrides that pass leave the file's own refusal the file's.
        let bad_file = DEFAULT_PROFILE.replace("threads = 2", "threads = 0");
        let err = DeviceProfile::parse_with_env(
            &bad_file,
            "x.toml",
            vars(&[("VOICEPAY__VAD__END_SILENCE_MS", "400")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "x.toml: asr.threads must be at least 1");
    }

    #[test]
    fn the_older_model_and_threads_variables_still_override_and_the_new_names_win() {
        let p = with_env(&[("VOICEPAY_MODEL", "base"), ("VOICEPAY_THREADS", "4")]).unwrap();
        assert_eq!(p.model_path(), PathBuf::from("models/ggml-base-q8_0.bin"));
        assert_eq!(p.asr.threads, 4);
        let p = with_env(&[
            ("VOICEPAY__ASR__MODEL", "tiny.en"),
            ("VOICEPAY_MODEL", "base"),
        ])
        .unwrap();
        assert_eq!(p.asr.model, "tiny.en");
    }

    #[test]
    fn a_profile_names_its_quantised_model_file_beside_the_f16_one() {
        let p = with_env(&[]).unwrap();
        assert_eq!(p.asr.quant, crate::asr::Quant::Q8_0);
        assert_eq!(
            p.model_path(),
            PathBuf::from("models/ggml-tiny.en-q8_0.bin")
        );
        let p = with_env(&[("VOICEPAY__ASR__QUANT", "f16")]).unwrap();
        assert_eq!(p.model_path(), PathBuf::from("models/ggml-tiny.en.bin"));
        let p = with_env(&[("VOICEPAY__ASR__QUANT", "q5_1"), ("VOICEPAY_MODEL", "base")]).unwrap();
        assert_eq!(p.model_path(), PathBuf::from("models/ggml-base-q5_1.bin"));
    }

    #[test]
    fn an_unknown_quantisation_in_a_profile_is_refused_with_the_choices() {
        let file = DEFAULT_PROFILE.replace("quant = \"q8_0\"", "quant = \"q4_0\"");
        let err = DeviceProfile::parse_with_env(&file, "x.toml", vars(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown quantisation \"q4_0\": choose f16, q8_0 or q5_1"),
            "{err}"
        );
        let err = with_env(&[("VOICEPAY__ASR__QUANT", "int8")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("VOICEPAY__ASR__QUANT"), "{err}");
        assert!(err.contains("unknown quantisation \"int8\""), "{err}");
    }

    #[test]
    fn an_unknown_key_is_an_error_in_every_table_of_the_profile() {
        let file: toml::Table = toml::from_str(DEFAULT_PROFILE).unwrap();
        // These tables map names to values: a new key is a new entry, checked
        // against the payee book or the providers instead.
        let maps = ["payee_aliases", "payee_categories"];
        let mut tables = vec![None];
        tables.extend(
            file.iter()
                .filter(|(key, value)| value.is_table() && !maps.contains(&key.as_str()))
                .map(|(key, _)| Some(key.clone())),
        );
        // Tables the default profile leaves out are refused too.
        for absent in ["driving"] {
            if !file.contains_key(absent) {
                tables.push(Some(absent.to_owned()));
            }
        }
        assert!(tables.len() >= 7, "{tables:?}");
        for table in tables {
            let mut bad = file.clone();
            let at = match &table {
                None => &mut bad,
                Some(name) => bad
                    .entry(name.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .unwrap(),
            };
            at.insert("bogus_key".into(), toml::Value::Integer(1));
            let text = toml::to_string(&bad).unwrap();
            let err = DeviceProfile::parse_with_env(&text, "x.toml", Vec::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("unknown field `bogus_key`"),
                "{table:?}: {err}"
            );
        }
        let entries = [
            (
                "[payee_aliases]\n",
                "[payee_aliases]\nNobody = [\"N\"]\n",
                "payee_aliases.\"Nobody\"",
            ),
            (
                "[payee_categories]\n",
                "[payee_categories]\nNobody = \"fuel\"\n",
                "payee_categories.\"Nobody\"",
            ),
            (
                "Kimi = \"12.00\"",
                "Kimmi = \"12.00\"",
                "payments.token_prices.Kimmi",
            ),
        ];
        for (at, entry, named) in entries {
            let text = DEFAULT_PROFILE.replace(at, entry);
            assert_ne!(text, DEFAULT_PROFILE, "{at}");
            let err = DeviceProfile::parse_with_env(&text, "x.toml", Vec::new())
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("x.toml: {named}: not one of")),
                "{err}"
            );
        }
    }

    #[test]
    fn every_device_profile_in_devices_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../devices");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let origin = path.display().to_string();
                let p = DeviceProfile::parse_with_env(&text, &origin, Vec::new())
                    .unwrap_or_else(|e| panic!("{e}"));
                names.push(p.name);
            }
        }
        names.sort();
        assert_eq!(
            names,
            [
                "car-cockpit",
                "car-cockpit-zh",
                "default",
                "desktop",
                "glasses",
                "headphones"
            ]
        );
    }

    #[test]
    fn the_car_allows_tolls_parking_fuel_and_charging_while_driving_and_only_when_driving() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../devices/car-cockpit.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let car = DeviceProfile::parse_with_env(&text, "car", Vec::new()).unwrap();
        assert!(car.driving.enabled);
        // The driver's microphone, on the steering-wheel button.
        assert_eq!(car.audio.channel, Some(0));
        assert_eq!(car.wake.mode, crate::wake::WakeMode::PushToTalk);
        assert_eq!(
            car.driving.allowed,
            ["tolls", "parking", "fuel", "charging"]
        );
        let pay = |payee: &str| Purchase::Pay {
            payee: payee.into(),
        };
        let categories = car.driving.allowed.clone();
        for (payee, allowed) in [
            ("Shell", true),
            ("Expressway Toll", true),
            ("Luckin Coffee", false),
        ] {
            assert_eq!(
                car.motion(Some(true), &pay(payee)),
                Motion::Driving {
                    allowed,
                    categories: categories.clone()
                },
                "{payee}"
            );
            assert_eq!(car.motion(Some(false), &pay(payee)), Motion::Still);
        }
        // Not told yet: driving, the safe side.
        assert!(matches!(
            car.motion(None, &pay("Luckin Coffee")),
            Motion::Driving { allowed: false, .. }
        ));
        let top_up = Purchase::TopUp {
            tokens: 1,
            provider: "Kimi".into(),
        };
        assert!(matches!(
            car.motion(Some(true), &top_up),
            Motion::Driving { allowed: false, .. }
        ));
        // Devices without the mode never restrict.
        let glasses = DeviceProfile::parse_with_env(DEFAULT_PROFILE, "x", Vec::new()).unwrap();
        assert_eq!(glasses.motion(Some(true), &pay("Heytea")), Motion::Still);
    }

    #[test]
    fn a_misspelt_allowed_category_is_an_error() {
        let text = DEFAULT_PROFILE.replace("allowed = [\"fuel\"]", "allowed = [\"fuels\"]");
        assert_ne!(text, DEFAULT_PROFILE);
        let err = DeviceProfile::parse_with_env(&text, "x.toml", Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml: driving.allowed: \"fuels\""),
            "{err}"
        );
    }

    #[test]
    fn a_bad_language_prefix_or_price_is_named_in_the_error() {
        let cases = [
            ("language = \"en\"", "language = \"xx\"", "x.toml: language"),
            (
                "Kimi = \"12.00\"",
                "Kimi = \"12.001\"",
                "x.toml: payments.token_prices.Kimi",
            ),
            (
                "per_payment = \"50.00\"",
                "per_payment = \"lots\"",
                "x.toml: offline.per_payment",
            ),
        ];
        for (from, to, start) in cases {
            let bad = DEFAULT_PROFILE.replace(from, to);
            assert_ne!(bad, DEFAULT_PROFILE, "{from}");
            let err = DeviceProfile::parse(&bad, "x.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(start), "{err}");
        }
        let prefixed = DEFAULT_PROFILE.replace("prefix = \"voicepay/v1\"", "prefix = \"acme/#\"");
        let err = DeviceProfile::parse(&prefixed, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.toml: mqtt.prefix"), "{err}");
        let prefixed = DEFAULT_PROFILE.replace("prefix = \"voicepay/v1\"", "prefix = \"acme/pay\"");
        assert_eq!(
            DeviceProfile::parse(&prefixed, "x.toml")
                .unwrap()
                .mqtt
                .prefix,
            "acme/pay"
        );
    }

    #[test]
    fn a_request_must_outlive_the_offline_spell_it_was_made_in() {
        let bad = DEFAULT_PROFILE.replace("max_age_s = 21600", "max_age_s = 43200");
        assert_ne!(bad, DEFAULT_PROFILE);
        let err = DeviceProfile::parse(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml: payments.request_ttl_s (43200) must be longer"),
            "{err}"
        );
    }

    #[test]
    fn a_closed_answers_belief_is_the_free_decodes_floor_unless_set_and_a_probability() {
        assert_eq!(with_env(&[]).unwrap().asr.answer_belief, None);
        let set = with_env(&[("VOICEPAY__ASR__ANSWER_BELIEF", "0.1")]).unwrap();
        assert_eq!(set.asr.answer_belief, Some(0.1));
        let err = with_env(&[("VOICEPAY__ASR__ANSWER_BELIEF", "1.5")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("asr.answer_belief"), "{err}");
    }
}
