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

/// An error and its causes, each once. Many error types put their source
/// in their own message and also return it as the source, so anyhow's
/// `{:#}` said it twice ("No such file or directory (os error 2): No such
/// file or directory (os error 2)"); a cause already said is left out.
pub fn said(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

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

/// Cancels `shutdown` on Ctrl-C or SIGTERM (caught from the call on).
fn cancel_on_signal(shutdown: CancellationToken) -> impl Future<Output = ()> {
    let signal = shutdown_signal();
    async move {
        signal.await;
        shutdown.cancel();
    }
}

/// Ctrl-C or SIGTERM (what service managers send). The handlers are in
/// place when this returns (inside a runtime), not when it is first
/// awaited: a process that says it runs must not die of a SIGTERM then.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            _ = caught(interrupt.as_mut()) => {}
            _ = caught(term.as_mut()) => {}
        }
    }
}

/// The next `signal`; never, if it could not be listened for.
async fn caught(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
