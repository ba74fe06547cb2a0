//! voicepay: a voice-payment daemon for edge devices.
//!
//! # Layout
//!
//! The daemon is a pipeline; the modules below are listed in the order data
//! flows through it. An audio source hands [`audio::Utterance`]s (16 kHz
//! mono) to the transcriber stage, where the [`recognizer::Recognizer`] runs
//! Whisper ([`asr`]) and the intent parser ([`intent`]) and keeps
//! low-confidence speech from ever paying. The daemon ([`daemon::run`]) feeds
//! what was heard to the [`dialog`], which asks the [`policy`] and answers with
//! actions; an approved [`order`] goes to the [`outbox`], which signs it
//! ([`keys`], [`protocol`]) and makes it durable in the [`store`] before the
//! [`transport`] publishes it; the gateway's signed answer comes back the same
//! way and settles it into the history. The user hears back through the
//! [`phrasebook`] and [`feedback`]. Money is [`money::Money`]: integer minor
//! units. A [`profile::DeviceProfile`] says what a device class speaks, pays
//! in and runs; the shutdown is a `CancellationToken` passed to every stage.
//!
//! - [`audio`]: the microphone (cpal, a wait-free ring, its gate), WAV files, the voice-activity segmenter, 16 kHz mono
//! - [`names`]: the one name matcher (spelling and sound) for payees, providers, answers and the wake phrase
//! - [`wake`]: whether an utterance was said to the device: the wake phrase, push-to-talk, always
//! - [`asr`]: model install and conversion (CTranslate2 to ggml), the transcriber
//! - [`intent`]: transcript to intent, by the language's word tables
//! - [`recognizer`]: utterance to transcript to intent; the transcriber stage and the daemon's `Source`
//! - [`agents`]: AI agents: their keys and mandates, and their signed tasks let in
//! - [`dialog`]: the conversation: read-backs, confirmations, codes, windows, agents' tasks
//! - [`policy`]: the money rules: limits, offline floor, the decision and typed refusals
//! - [`order`]: what the user asked to pay, how it was approved, why it was dropped
//! - [`outbox`]: signs approved orders durably into the outbox; settles answers
//! - [`store`]: sled: outbox, hash-chained history, spend and offline counters, limits
//! - [`history_key`]: the device secret the history chain is keyed with
//! - [`protocol`]: the wire: signed envelope, request, response, agent task, topics
//! - [`keys`], [`identity`]: Ed25519 keys and the device's identity on disk
//! - [`transport`]: the MQTT link: broker URLs, publishing, answers, the gateway's status
//! - [`phrasebook`]: everything the device says, by [`language`]
//! - [`feedback`]: events and status, and where they go: the console, the voice (a TTS command), MQTT events
//! - [`daemon`]: the loop that wires the stages, with its shutdown
//! - [`control`]: the CLI's store and ledger commands, through a running process's socket
//! - [`mcp`]: `voicepay mcp`, the MCP server through which an agent asks the device to pay
//! - [`service`]: under systemd: sd-notify readiness, status and watchdog, SIGHUP's profile reload
//! - [`gateway`]: the reference gateway (verify, deduplicate, re-check, answer)
//! - [`money`], [`profile`], [`clock`], [`durable`]: amounts, device profiles, time, fsync
//! - [`tools`]: the demo, the bench, the embedded broker, the test rig and fixtures

pub mod agents;
pub mod asr;
pub mod audio;
pub mod clock;
pub mod control;
pub mod daemon;
pub mod dialog;
pub mod durable;
pub mod feedback;
pub mod gateway;
pub mod history_key;
pub mod identity;
pub mod intent;
pub mod keys;
pub mod language;
pub mod mcp;
pub mod money;
pub mod names;
pub mod order;
pub mod outbox;
pub mod payees;
pub mod phrasebook;
pub mod policy;
pub mod profile;
pub mod protocol;
pub mod recognizer;
pub mod service;
pub mod store;
pub mod tools;
pub mod transport;
pub mod wake;
