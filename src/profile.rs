//! Device profiles: the TOML file that says what a device class speaks, pays in and runs.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::intent::ParseContext;
use crate::money::{Currency, Money, MoneyError};
use crate::store::OfflineFloor;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub name: String,
    pub language: String,
    pub default_currency: String,
    #[serde(default)]
    pub known_payees: Vec<String>,
    #[serde(default)]
    pub known_providers: Vec<String>,
    pub asr: AsrSettings,
    pub payments: PaymentSettings,
    pub offline: OfflineSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    pub confirm_window_s: u64,
    pub request_ttl_s: u64,
    /// Provider -> decimal price of a million tokens, in the default currency.
    #[serde(default)]
    pub token_prices: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineSettings {
    pub per_payment: String,
    pub cumulative: String,
    pub max_consecutive: u32,
    pub max_age_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsrSettings {
    pub model: String,
    pub models_dir: PathBuf,
    pub threads: u16,
    pub audio_ctx_floor: u16,
    pub max_tokens: u16,
    pub min_confidence: f32,
    pub noise_confidence: f32,
    pub no_speech_threshold: f32,
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
        let mut profile: DeviceProfile =
            toml::from_str(text).map_err(|source| ProfileError::Parse {
                origin: origin.to_owned(),
                source: Box::new(source),
            })?;
        profile.apply_env(|name| std::env::var(name).ok());
        profile.validate(origin)?;
        Ok(profile)
    }

    /// Service managers configure through the environment; these few settings
    /// differ between machines of one device class.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(model) = var("VOICEPAY_MODEL") {
            self.asr.model = model;
        }
        if let Some(dir) = var("VOICEPAY_MODELS_DIR") {
            self.asr.models_dir = PathBuf::from(dir);
        }
        if let Some(threads) = var("VOICEPAY_THREADS").and_then(|t| t.parse().ok()) {
            self.asr.threads = threads;
        }
    }

    fn validate(&self, origin: &str) -> Result<(), ProfileError> {
        let invalid = |detail: String| ProfileError::Invalid {
            origin: origin.to_owned(),
            detail,
        };
        Currency::from_code(&self.default_currency)
            .map_err(|e| invalid(format!("default_currency: {e}")))?;
        crate::asr::ModelName::parse(&self.asr.model)
            .map_err(|e| invalid(format!("asr.model: {e}")))?;
        self.offline_floor()
            .map_err(|e| invalid(format!("offline: {e}")))?;
        for (provider, price) in &self.payments.token_prices {
            Money::parse_decimal(price, self.currency())
                .map_err(|e| invalid(format!("payments.token_prices.{provider}: {e}")))?;
        }
        if self.payments.request_ttl_s == 0 || self.payments.request_ttl_s > 24 * 3600 {
            return Err(invalid(
                "payments.request_ttl_s is between 1 and 86400".into(),
            ));
        }
        if self.asr.threads == 0 {
            return Err(invalid("asr.threads must be at least 1".into()));
        }
        let asr = &self.asr;
        let probabilities = [
            asr.min_confidence,
            asr.noise_confidence,
            asr.no_speech_threshold,
        ];
        if !probabilities.iter().all(|p| (0.0..=1.0).contains(p)) {
            return Err(invalid(
                "asr.min_confidence, asr.noise_confidence and asr.no_speech_threshold \
                 are between 0 and 1"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The default currency (validated when the profile was read).
    pub fn currency(&self) -> Currency {
        Currency::from_code(&self.default_currency).unwrap_or(Currency::CNY)
    }

    pub fn offline_floor(&self) -> Result<OfflineFloor, MoneyError> {
        let money = |s: &str| Money::parse_decimal(s, self.currency());
        Ok(OfflineFloor {
            per_payment: money(&self.offline.per_payment)?,
            cumulative: money(&self.offline.cumulative)?,
            max_consecutive: self.offline.max_consecutive,
            max_age_ms: self.offline.max_age_s.saturating_mul(1000),
        })
    }

    /// The price of `tokens` from `provider`, rounded up to the minor unit.
    pub fn token_price(&self, tokens: u64, provider: &str) -> Option<Money> {
        let per_million = self
            .payments
            .token_prices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(provider))
            .and_then(|(_, price)| Money::parse_decimal(price, self.currency()).ok())?;
        let minor = i128::from(per_million.minor)
            .checked_mul(i128::from(tokens))?
            .checked_add(999_999)?
            / 1_000_000;
        Some(Money::new(i64::try_from(minor).ok()?, self.currency()))
    }

    /// What the intent parser needs to know about this device.
    pub fn parse_context(&self) -> ParseContext {
        ParseContext {
            // Validated in `parse`, so the fallback is never taken.
            default_currency: Currency::from_code(&self.default_currency)
                .unwrap_or_else(|_| ParseContext::default().default_currency),
            known_payees: self.known_payees.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_profile_is_valid() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        assert_eq!(p.default_currency, "CNY");
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
    fn token_prices_round_up_to_the_minor_unit() {
        let p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        // 12.00 per million: 200,000 tokens cost 2.40; one token costs 0.01.
        assert_eq!(p.token_price(200_000, "kimi").unwrap().minor, 240);
        assert_eq!(p.token_price(1, "Kimi").unwrap().minor, 1);
        assert!(p.token_price(1, "Nobody").is_none());
        assert_eq!(p.offline_floor().unwrap().per_payment.minor, 5_000);
    }

    #[test]
    fn environment_overrides_the_model() {
        let mut p = DeviceProfile::parse(DEFAULT_PROFILE, "embedded").unwrap();
        p.apply_env(|name| (name == "VOICEPAY_MODEL").then(|| "base".to_string()));
        assert_eq!(p.model_path(), PathBuf::from("models/ggml-base.bin"));
    }
}
