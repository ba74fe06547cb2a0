//! Tools beside the product: the demo, the benchmark report, the embedded broker, and the rig and fixtures the tests and both tools run on.
//!
//!
//! # Layout
//!
//! - [`demo`]: `voicepay demo`, the whole story on fixtures, against a real broker and gateway
//! - [`bench`]: `voicepay bench`, speed and memory of hearing and paying
//! - [`corpus`], [`eval`]: the rendered speech corpus and `voicepay eval`'s accuracy tables
//! - [`broker`]: the embedded MQTT broker (rumqttd) the demo and the tests run on
//! - [`postgres`]: a real PostgreSQL server in a temporary directory (Debian's binaries) for the tests, the bench and the demo
//! - [`fleet`]: gateway worker processes on one PostgreSQL behind a stock mosquitto, for the bench
//! - [`rig`], [`fixtures`]: a device and its gateway wired on one broker, and the recorded clips
//!
//! It links the device, the gateway and core; none of them imports from here.

pub mod bench;
pub mod broker;
pub mod corpus;
pub mod demo;
pub mod eval;
pub mod fixtures;
pub mod fleet;
pub mod postgres;
pub mod rig;
