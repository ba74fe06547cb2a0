//! Device profiles: the TOML file that says what a device class speaks, pays in and runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::intent::ParseContext;
use crate::language::Language;
use crate::money::{Currency, Money};
use crate::payees::{Origin, Payee, PayeeBook};
use crate::policy::OfflineFloor;

/// The profile compiled into the binary; `--device FILE` replaces it.
pub const DEFAULT_PROFILE: &str = include_str!("../devices/default.toml");

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
    pub mqtt: MqttSettings,
}

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub confirm_window: Duration,
    /// How long payments that need a code stay locked after three wrong codes.
    pub code_lockout: Duration,
    pub request_ttl_ms: u64,
    /// Daily limits reset at midnight in this zone.
    pub calendar: crate::clock::Calendar,
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
}

impl MqttSettings {
    pub fn access(&self) -> crate::transport::BrokerAccess {
        crate::transport::BrokerAccess {
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
    crate::protocol::DEFAULT_PREFIX.to_owned()
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrSettings {
    pub model: String,
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
}

fn greedy() -> u8 {
    1
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
    mqtt: MqttSettings,
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
        let mut file: ProfileFile = toml::from_str(text).map_err(|source| ProfileError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        apply_env(&mut file, |name| std::env::var(name).ok());
        Self::from_file(file).map_err(|detail| ProfileError::Invalid {
            origin: origin.to_owned(),
            detail,
        })
    }

    /// Checks every value and gives it its type; the error names the key.
    fn from_file(file: ProfileFile) -> Result<Self, String> {
        let language = Language::from_code(&file.language).map_err(|e| format!("language: {e}"))?;
        let currency = Currency::from_code(&file.default_currency)
            .map_err(|e| format!("default_currency: {e}"))?;
        crate::asr::ModelName::parse(&file.asr.model).map_err(|e| format!("asr.model: {e}"))?;
        let money = |key: &str, text: &str| {
            Money::parse_decimal(text, currency).map_err(|e| format!("{key}: {e}"))
        };
        let offline = OfflineFloor {
            per_payment: money("offline.per_payment", &file.offline.per_payment)?,
            cumulative: money("offline.cumulative", &file.offline.cumulative)?,
            max_consecutive: file.offline.max_consecutive,
            max_age_ms: file.offline.max_age_s.saturating_mul(1000),
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
        let calendar = crate::clock::Calendar::named(&file.payments.time_zone)
            .map_err(|e| format!("payments.time_zone: {e}"))?;
        if file.asr.threads == 0 {
            return Err("asr.threads must be at least 1".into());
        }
        file.vad.validate()?;
        file.audio.validate()?;
        file.wake.validate()?;
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
        ];
        if !probabilities.iter().all(|p| (0.0..=1.0).contains(p)) {
            return Err(
                "asr.min_confidence, asr.amount_certainty, asr.noise_confidence and asr.no_speech_threshold \
                 are between 0 and 1"
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
        crate::protocol::topics::validate_prefix(&file.mqtt.prefix)
            .map_err(|e| format!("mqtt.prefix: {e}"))?;
        Ok(DeviceProfile {
            name: file.name,
            language,
            default_currency: currency,
            known_payees: file.known_payees,
            payee_aliases: file.payee_aliases,
            known_providers: file.known_providers,
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
            mqtt: file.mqtt,
        })
    }

    /// The price of `tokens` from `provider`, rounded up to the minor unit.
    pub fn token_price(&self, tokens: u64, provider: &str) -> Option<Money> {
        let per_million = self
            .payments
            .token_prices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(provider))
            .map(|(_, price)| *price)?;
        let minor = i128::from(per_million.minor)
            .checked_mul(i128::from(tokens))?
            .checked_add(999_999)?
            / 1_000_000;
        Some(Money::new(i64::try_from(minor).ok()?, per_million.currency))
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
        }
    }

    /// Where this profile's model lives.
    pub fn model_path(&self) -> PathBuf {
        self.asr
            .models_dir
            .join(format!("ggml-{}.bin", self.asr.model))
    }
}

/// Service managers configure through the environment; these few settings
/// differ between machines of one device class.
fn apply_env(file: &mut ProfileFile, var: impl Fn(&str) -> Option<String>) {
    if let Some(model) = var("VOICEPAY_MODEL") {
        file.asr.model = model;
    }
    if let Some(dir) = var("VOICEPAY_MODELS_DIR") {
        file.asr.models_dir = PathBuf::from(dir);
    }
    if let Some(threads) = var("VOICEPAY_THREADS").and_then(|t| t.parse().ok()) {
        file.asr.threads = threads;
    }
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
    fn token_prices_round_up_to_the_minor_unit() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        // 12.00 per million: 200,000 tokens cost 2.40; one token costs 0.01.
        assert_eq!(p.token_price(200_000, "kimi").unwrap().minor, 240);
        assert_eq!(p.token_price(1, "Kimi").unwrap().minor, 1);
        assert!(p.token_price(1, "Nobody").is_none());
        assert_eq!(p.offline.per_payment.minor, 5_000);
    }

    #[test]
    fn environment_overrides_the_model() {
        let mut file: ProfileFile = toml::from_str(DEFAULT_PROFILE).unwrap();
        apply_env(&mut file, |name| {
            (name == "VOICEPAY_MODEL").then(|| "base".to_string())
        });
        let p = DeviceProfile::from_file(file).unwrap();
        assert_eq!(p.model_path(), PathBuf::from("models/ggml-base.bin"));
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
}
