//! The `voicepay` command line: parses arguments, sets up the logs and hands each command to its file in `cli/`.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use voicepay_device::profile::DeviceProfile;

use cli::args::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    // Keys, payments, the ledger and the broker password are the owner's
    // alone: whatever voicepay creates is 0600 (directories 0700).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VOICEPAY_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,whisper_rs=off,rumqttd=off")
            }),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only, not for journald or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("voicepay: {}", cli::said(&error));
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let profile = DeviceProfile::load(cli.device.as_deref())?;
    match cli.command {
        Command::Model { command } => cli::model::run(command, &profile),
        Command::Transcribe { files } => cli::hear::transcribe(&profile, &files),
        Command::Intent { text, files } => cli::hear::intent(&profile, &text, &files),
        Command::Devices { json } => cli::hear::devices(json),
        Command::Run(args) => cli::run::run(args, profile, cli.device),
        Command::History {
            data_dir,
            json,
            verify,
            agent,
        } => cli::store::history(data_dir, &profile, json, verify, agent),
        Command::Status { data_dir, json } => cli::store::status(data_dir, &profile, json),
        Command::Outbox { data_dir, json } => cli::store::outbox(data_dir, &profile, json),
        Command::Limits { command } => cli::limits::run(command, &profile),
        Command::Payees { command } => cli::payees::run(command, &profile),
        Command::Agents { command } => cli::agents::run(command, &profile),
        Command::Mcp(args) => cli::mcp::run(args),
        Command::Keys { command } => cli::keys::run(command, &profile),
        Command::TrustGateway {
            public_key,
            data_dir,
        } => cli::keys::trust_gateway(&public_key, data_dir),
        Command::Gateway { command } => cli::gateway::run(command),
        Command::Demo {
            broker,
            json,
            fixtures,
        } => cli::tools::demo(profile, broker, json, fixtures),
        Command::Eval(args) => cli::tools::eval(args, &profile),
        Command::Bench { fixtures, json } => cli::tools::bench(&profile, &fixtures, json),
    }
}
