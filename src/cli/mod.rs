//! The commands, one file per group, and what they share: printing a control reply, the shutdown signal, the default data directory.
//!
//! `args` holds the clap types; every other file takes its parsed arguments
//! and the device profile and calls the library crates.

pub mod agents;
pub mod args;
pub mod gateway;
pub mod hear;
pub mod keys;
pub mod limits;
pub mod mcp;
pub mod model;
pub mod payees;
pub mod run;
pub mod store;
pub mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;
use voicepay_core::control;
use voicepay_core::identity;

/// The data directory given, else the user's default one.
fn data_dir_or_default(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir.unwrap_or_else(identity::default_data_dir)
}

/// Prints what a control handler answered; its `ok` is the exit status.
fn print_reply(reply: control::Reply) -> ExitCode {
    print!("{}", reply.stdout);
    eprint!("{}", reply.stderr);
    if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn show_key(role: &str, key: &voicepay_core::keys::PublicKey, json: bool) {
    println!("{}", identity::key_report(role, key, json));
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
