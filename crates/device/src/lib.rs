//! voicepay-device: the device's daemon: it hears a command, settles it with the user, and pays it through the outbox.
//!
//! # Layout
//!
//! The daemon is a pipeline; the modules below are listed in the order data
//! flows through it. An audio source hands [`audio::Utterance`]s (16 kHz
//! mono) to the transcriber stage, where the [`recognizer::Recognizer`] runs
//! Whisper ([`asr`]) and the intent parser ([`intent`]) and keeps
//! low-confidence speech from ever paying. The daemon ([`daemon::run`]) feeds
//! what was heard to the [`dialog`], which asks the money rules
//! (`voicepay_core::policy`) and answers with actions; an approved [`order`]
//! goes to the [`outbox`], which signs it and makes it durable in the
//! [`store`] before the MQTT link (`voicepay_core::transport`) publishes it;
//! the gateway's signed answer comes back the same way and settles it into
//! the history. The user hears back through the [`phrasebook`] and
//! [`feedback`]. A [`profile::DeviceProfile`] says what a device class
//! speaks, pays in and runs; the shutdown is a `CancellationToken` passed to
//! every stage. The nouns shared with the gateway and the agent's server
//! (money, keys, the wire protocol, the policy) are `voicepay_core`'s.
//!
//! - [`audio`]: the microphone (cpal, a wait-free ring, its gate), WAV files, the voice-activity segmenter, 16 kHz mono
//! - [`names`]: the one name matcher (spelling and sound) for payees, providers, answers and the wake phrase
//! - [`wake`]: whether an utterance was said to the device: the wake phrase, push-to-talk, always
//! - [`asr`]: model install and conversion (CTranslate2 to ggml), the transcriber
//! - [`intent`]: transcript to intent, by the language's word tables
//! - [`recognizer`]: utterance to transcript to intent; the transcriber stage and the daemon's `Source`
//! - [`dialog`]: the conversation: read-backs, confirmations, codes, windows, agents' tasks
//! - [`order`]: what the user asked to pay, how it was approved, why it was dropped
//! - [`reason`]: why a payment never left the device, as the history keeps it (typed; old entries' words read as they were)
//! - [`outbox`]: signs approved orders durably into the outbox; settles answers
//! - [`store`]: sled: outbox, hash-chained history, spend and offline counters, limits, payees, agents
//! - [`payee`]: the noun the store keeps for a payee; [`payees`]: the book, matching, and adding to it (above the store)
//! - [`agents`]: registering agents and letting their signed tasks in (above the store)
//! - [`history_key`]: the device secret the history chain is keyed with
//! - [`identity`]: the device's key files (its signing key, the gateway it trusts)
//! - [`phrasebook`]: everything the device says, by [`language`]
//! - [`feedback`]: events and status, and where they go: the console, the voice (a TTS command), MQTT events
//! - [`outlet`]: what the daemon tells the user and the device's apps: sentences, events (a code masked for the broker), the status when it changes
//! - [`desk`]: the agent desk: agents' verified tasks, status questions and "stop the agents" in, [`effect::Effect`]s out
//! - [`payments`]: commit to the outbox, settle the gateway's answer, the offline spell, the resend schedule; [`effect::Effect`]s out
//! - [`effect`]: what the desk and the payments stage ask the daemon to do, and why a payment was refused
//! - [`daemon`]: the loop that wires the stages and carries out what they decide, with its shutdown
//! - [`control`]: the device's answers on the control socket, and asking the running daemon else opening the store
//! - [`service`]: under systemd: sd-notify readiness, status and watchdog, SIGHUP's profile reload
//! - [`profile`]: device profiles (TOML), the embedded default and the shipped ones

pub mod agents;
pub mod asr;
pub mod audio;
pub mod control;
pub mod daemon;
pub mod desk;
pub mod dialog;
pub mod effect;
pub mod feedback;
pub mod history_key;
pub mod identity;
pub mod intent;
pub mod language;
pub mod names;
pub mod order;
pub mod outbox;
pub mod outlet;
pub mod payee;
pub mod payees;
pub mod payments;
pub mod phrasebook;
pub mod profile;
pub mod reason;
pub mod recognizer;
pub mod service;
pub mod store;
pub mod wake;
