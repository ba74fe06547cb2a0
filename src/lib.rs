//! voicepay: a voice-payment daemon for edge devices.
//!
//! # Layout
//!
//! Audio comes in as an [`audio::Utterance`] (16 kHz mono), the
//! [`asr::Transcriber`] turns it into text with Whisper on the device, and
//! [`intent::parse`] turns the text into an [`intent::Intent`]; the
//! [`recognizer::Recognizer`] chains the two and keeps low-confidence speech
//! from ever paying. A [`profile::DeviceProfile`] says what a device class
//! speaks, pays in and runs. Money is [`money::Money`]: integer minor units.
//!
//! - [`audio`]: WAV input and resampling to 16 kHz mono
//! - [`asr`]: model install and conversion (CTranslate2 to ggml), the transcriber
//! - [`intent`]: transcript to intent (English), numbers and currencies
//! - [`money`]: amounts in minor units with an ISO 4217 currency
//! - [`profile`]: device profiles (TOML) with environment overrides
//! - [`recognizer`]: utterance to transcript to intent
//! - [`bench`]: the `voicepay bench` report

pub mod asr;
pub mod audio;
pub mod clock;
pub mod daemon;
pub mod dialog;
pub mod durable;
pub mod feedback;
pub mod gateway;
pub mod identity;
pub mod intent;
pub mod keys;
pub mod language;
pub mod money;
pub mod order;
pub mod outbox;
pub mod phrasebook;
pub mod policy;
pub mod profile;
pub mod protocol;
pub mod recognizer;
pub mod store;
pub mod tools;
pub mod transport;
