//! `voicepay gateway init|show-key|enroll|ledger|limits|run`: the reference payment gateway.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use voicepay_core::identity;
use voicepay_core::keys::{KeyError, SigningKey};
use voicepay_core::protocol::topics;
use voicepay_core::{control, durable};
use voicepay_gateway::books::Ledger;
use voicepay_gateway::{Admin, Gateway, GatewayConfig, GatewayError};

use super::args::{GatewayCommand, GatewayRunArgs, LedgerArgs};
use super::{print_reply, show_key};

pub fn run(command: GatewayCommand) -> Result<ExitCode> {
    match command {
        GatewayCommand::Init { data_dir } => {
            let config = gateway_config(data_dir);
            voicepay_core::durable::private_dir(&config.data_dir)
                .with_context(|| config.data_dir.display().to_string())?;
            let key = SigningKey::create_file(&config.key_path())?;
            show_key("gateway", &key.public_key(), false);
        }
        GatewayCommand::ShowKey { data_dir, json } => {
            let key = load_gateway_key(&gateway_config(data_dir))?;
            show_key("gateway", &key.public_key(), json);
        }
        GatewayCommand::Enroll {
            device_id,
            public_key,
            ledger,
            data_dir,
        } => {
            let request = control::Request::Enroll {
                device_id,
                public_key,
            };
            return gateway_command(data_dir, ledger_of(ledger)?, request);
        }
        GatewayCommand::Ledger { ledger, data_dir } => {
            return gateway_command(data_dir, ledger_of(ledger)?, control::Request::Ledger);
        }
        GatewayCommand::Limits {
            daily,
            no_daily,
            ledger,
            data_dir,
        } => {
            let daily = if no_daily {
                Some(None)
            } else {
                daily.map(Some)
            };
            let request = control::Request::GatewayLimits { daily };
            return gateway_command(data_dir, ledger_of(ledger)?, request);
        }
        GatewayCommand::Run(args) => serve(args)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: GatewayRunArgs) -> Result<()> {
    let GatewayRunArgs {
        broker,
        daily_limit,
        prefix,
        heartbeat_s,
        ledger,
        share,
        access,
        data_dir,
    } = args;
    if let Some(group) = &share
        && !topics::is_valid_share_group(group)
    {
        anyhow::bail!("--share {group:?}: a group is 1-64 of A-Z a-z 0-9 _ -");
    }
    topics::validate_prefix(&prefix)?;
    let broker = broker.with_access(&access.into())?;
    let mut config = gateway_config(data_dir);
    config.daily_limit = daily_limit;
    config.prefix = prefix;
    config.heartbeat = std::time::Duration::from_secs(heartbeat_s);
    config.ledger = ledger_of(ledger)?.unwrap_or_default();
    config.share = share;
    let key = load_gateway_key(&config)?;
    let books = match &config.ledger {
        Ledger::Embedded => format!("books in {}", config.data_dir.display()),
        shared => format!("books in {shared}"),
    };
    // Said on standard output: standard error is the log stream (JSON lines
    // with --log-format json).
    let started = format!(
        "gateway {} answering the enrolled devices on {broker} under {}{}; {books}, commands on {}; Ctrl-C or SIGTERM stops it",
        key.public_key().key_id(),
        config.prefix,
        config
            .share
            .as_ref()
            .map(|group| format!(" as a worker of {group}"))
            .unwrap_or_default(),
        control::socket_path(&config.data_dir).display(),
    );
    let gateway = Gateway::open(config, key)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stop = super::shutdown_signal();
        println!("{started}");
        voicepay_gateway::run(gateway, &broker, stop).await
    })?;
    Ok(())
}

/// The ledger the flags name, if any. Parsed here, not by clap, whose
/// error would repeat the URL as given (with a password, had one been typed).
fn ledger_of(args: LedgerArgs) -> Result<Option<Ledger>> {
    let Some(url) = args.ledger else {
        return Ok(None);
    };
    let ledger = match url.parse::<Ledger>().map_err(anyhow::Error::msg)? {
        Ledger::Postgres(database) => match args.ledger_password_file {
            Some(file) => Ledger::Postgres(
                database
                    .with_password_file(&file)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => Ledger::Postgres(database),
        },
        embedded => embedded,
    };
    Ok(Some(ledger))
}

fn gateway_config(data_dir: Option<PathBuf>) -> GatewayConfig {
    GatewayConfig::new(data_dir.unwrap_or_else(|| identity::default_data_dir().join("gateway")))
}

fn load_gateway_key(config: &GatewayConfig) -> Result<SigningKey> {
    match voicepay_gateway::load_key(config) {
        Err(KeyError::Missing { path }) => Err(anyhow::anyhow!(
            "no gateway key at {}: run `voicepay gateway init`",
            path.display()
        )),
        other => Ok(other?),
    }
}

/// Through the running gateway if there is one, else on its books
/// ([`control::ask_or_answer`]); on a PostgreSQL ledger, on the database
/// itself, which every gateway shares while it runs.
fn gateway_command(
    data_dir: Option<PathBuf>,
    ledger: Option<Ledger>,
    request: control::Request,
) -> Result<ExitCode> {
    let mut config = gateway_config(data_dir);
    config.lock_wait = Duration::ZERO;
    // The books alone: an operator's host needs no gateway key for these.
    if let Some(ledger) = ledger {
        config.ledger = ledger;
        let books = Admin::open(&config)?;
        return Ok(print_reply(voicepay_gateway::control::answer(
            &books, &request,
        )));
    }
    let open_now = || -> Result<Option<Admin>> {
        // Only where `gateway init` ran: a mistyped directory gets no books.
        if !config.key_path().exists() {
            anyhow::bail!(
                "no gateway key at {}: run `voicepay gateway init`",
                config.key_path().display()
            );
        }
        match Admin::open(&config) {
            Err(GatewayError::Db(error)) if durable::is_lock_held(&error) => Ok(None),
            opened => Ok(Some(opened?)),
        }
    };
    let reply = control::ask_or_answer(
        &config.data_dir,
        &request,
        durable::LOCK_WAIT,
        open_now,
        |books| voicepay_gateway::control::answer(&books, &request),
    )?;
    Ok(print_reply(reply))
}
