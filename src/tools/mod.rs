//! Tools beside the product: the demo, the benchmark report, the embedded broker, and the rig and fixtures the tests and both tools run on.
//!
//! Nothing in the daemon's modules imports from here.

pub mod bench;
pub mod broker;
pub mod corpus;
pub mod demo;
pub mod eval;
pub mod fixtures;
pub mod rig;
