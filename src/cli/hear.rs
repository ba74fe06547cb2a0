//! `voicepay transcribe`, `intent` and `devices`: hearing without paying, one JSON line per input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::json;
use voicepay_device::audio::{self, read_wav};
use voicepay_device::intent;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{self, Recognizer};

pub fn recognizer(profile: &DeviceProfile) -> Result<Recognizer> {
    Recognizer::new(profile).context("cannot start the transcriber")
}

/// Runs `each` over every file, printing its JSON line; a bad file gets a
/// one-line error and the others still run.
fn for_each_file(
    files: &[PathBuf],
    mut each: impl FnMut(&Path) -> Result<serde_json::Value>,
) -> ExitCode {
    let mut failed = false;
    for file in files {
        match each(file) {
            Ok(line) => println!("{line}"),
            Err(error) => {
                failed = true;
                eprintln!("voicepay: {}", super::said(&error));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub fn transcribe(profile: &DeviceProfile, files: &[PathBuf]) -> Result<ExitCode> {
    let mut recognizer = recognizer(profile)?;
    Ok(for_each_file(files, |file| {
        let utterance = read_wav(file)?;
        let (transcript, ms) = recognizer
            .transcribe(&utterance)
            .with_context(|| file.display().to_string())?;
        Ok(recognizer::transcription_line(file, &transcript, ms))
    }))
}

/// Of the texts when there are any, else of the files.
pub fn intent(profile: &DeviceProfile, texts: &[String], files: &[PathBuf]) -> Result<ExitCode> {
    if texts.is_empty() {
        intent_of_files(profile, files)
    } else {
        intent_of_texts(profile, texts)
    }
}

fn intent_of_files(profile: &DeviceProfile, files: &[PathBuf]) -> Result<ExitCode> {
    let mut recognizer = recognizer(profile)?;
    Ok(for_each_file(files, |file| {
        let utterance = read_wav(file)?;
        let understood = recognizer
            .understand(&utterance)
            .with_context(|| file.display().to_string())?;
        let mut line = recognizer::intent_line(
            json!({"file": file}),
            &understood.transcript.text,
            &understood.intent,
        );
        if understood.intent.is_payment() {
            // Why a payment is read back even under the auto-pay limit.
            line["sure"] = json!(understood.doubt.is_sure());
        }
        if let Some(closed) = &understood.closed {
            // Heard as a closed-domain reading: what the free decode wrote, and the belief.
            line["closed_domain"] = json!(closed);
        }
        if profile.wake.mode == voicepay_device::wake::WakeMode::Phrase {
            line["addressed"] = json!(match understood.addressed {
                voicepay_device::wake::Addressed::Command(_) => "command",
                voicepay_device::wake::Addressed::PhraseAlone => "phrase_alone",
                voicepay_device::wake::Addressed::Not => "not",
            });
        }
        Ok(line)
    }))
}

fn intent_of_texts(profile: &DeviceProfile, texts: &[String]) -> Result<ExitCode> {
    let context = profile.parse_context();
    for text in texts {
        let intent = intent::parse(text, &context);
        println!(
            "{}",
            recognizer::intent_line(json!({"text": text}), text, &intent)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn devices(json: bool) -> Result<ExitCode> {
    let devices = audio::mic::devices()?;
    for device in &devices {
        if json {
            println!("{}", serde_json::to_string(device)?);
        } else {
            println!(
                "{}{}  {}  ({})",
                if device.default { "* " } else { "  " },
                device.id,
                device.name,
                device.native.as_deref().unwrap_or("format unknown")
            );
        }
    }
    if devices.is_empty() && !json {
        eprintln!("voicepay: no input devices");
    }
    Ok(ExitCode::SUCCESS)
}
