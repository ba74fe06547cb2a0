//! voicepay-core: the nouns every voicepay program shares, and nothing that hears, speaks or stores a device's payments.
//!
//! # Layout
//!
//! The device, the gateway and the agent's MCP server each link this crate
//! and no other of ours; it links no speech, audio or agent code. What it
//! holds is what two programs must agree on:
//!
//! - [`money`]: amounts in integer minor units, currencies
//! - [`clock`]: wall-clock milliseconds, the monotonic stopwatch, the calendar that says what "today" is
//! - [`keys`]: Ed25519 signing and public keys, their files
//! - [`durable`]: writes that survive a crash (fsync, whole-file replace), sled opened with a lock wait
//! - [`protocol`]: the wire: the signed envelope, payment request and response, agent task, status, topics
//! - [`policy`]: the money rules: limits, the offline floor, agents' mandates, driving mode, typed refusals
//! - [`agent`]: an agent the user registered (name, key, mandate)
//! - [`identity`]: the data directory and the device's public identity (what an agent's side is given)
//! - [`transport`]: the MQTT link: broker URLs and access, publishing, the gateway's status
//! - [`control`]: the control socket's protocol: one JSON request, one JSON reply, each program's handler

pub mod agent;
pub mod clock;
pub mod control;
pub mod durable;
pub mod identity;
pub mod keys;
pub mod money;
pub mod policy;
pub mod protocol;
pub mod transport;
