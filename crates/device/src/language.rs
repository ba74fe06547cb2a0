//! The languages voicepay hears and speaks; the profile's `language` picks the parser's word tables and the phrasebook.

use std::fmt;

/// A language with its own intent tables and phrasebook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Language {
    #[default]
    English,
    /// Mandarin, written in Simplified characters; needs a multilingual model.
    Mandarin,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("language {0:?} is not supported (supported: en, zh)")]
pub struct UnknownLanguage(pub String);

impl Language {
    /// From the profile's code ("en", "zh"), the one Whisper is told too.
    pub fn from_code(code: &str) -> Result<Language, UnknownLanguage> {
        match code {
            "en" => Ok(Language::English),
            "zh" => Ok(Language::Mandarin),
            other => Err(UnknownLanguage(other.chars().take(16).collect())),
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::English => "en",
            Language::Mandarin => "zh",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_named() {
        assert_eq!(Language::from_code("en"), Ok(Language::English));
        assert_eq!(Language::English.code(), "en");
        assert_eq!(Language::from_code("zh"), Ok(Language::Mandarin));
        assert_eq!(Language::Mandarin.code(), "zh");
        let err = Language::from_code("klingon").unwrap_err();
        assert_eq!(
            err.to_string(),
            "language \"klingon\" is not supported (supported: en, zh)"
        );
    }
}
