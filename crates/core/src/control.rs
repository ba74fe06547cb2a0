//! The control socket's protocol: the CLI's store and ledger commands go through the running daemon's or gateway's local socket, because sled lets one process open a database.
//!
//! The socket is `control.sock` in the data directory, owner-only (0600 in a
//! 0700 directory): whoever may read the store may ask. One JSON [`Request`]
//! line in, one JSON [`Reply`] line out. Each program answers with its own
//! [`Handler`] (the device's over its store, the gateway's over its books);
//! the same handler answers whether the CLI reaches a running process or,
//! when none runs, opens the store itself, so the output is the same either
//! way.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::money::Money;

/// A request is one short line; anything longer is not ours.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

/// What the CLI asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Outbox {
        json: bool,
    },
    History {
        json: bool,
        verify: bool,
        /// Only the entries of this agent's tasks.
        #[serde(default)]
        agent: Option<String>,
    },
    LimitsShow {
        json: bool,
    },
    /// Each `Some` changes one limit; `Some(None)` removes it.
    LimitsSet {
        auto: Option<Money>,
        daily: Option<Option<Money>>,
        code: Option<Option<Money>>,
    },
    PayeesList {
        json: bool,
    },
    PayeesAdd {
        name: String,
        aliases: Vec<String>,
    },
    PayeesRemove {
        name: String,
    },
    AgentsList {
        json: bool,
    },
    /// Registers an agent, or registers it afresh (lifting a stop).
    AgentsAdd {
        agent: Agent,
    },
    AgentsRemove {
        name: String,
    },
    /// What an agent spent today and in all, with its budgets (`voicepay agents spending`): one JSON line.
    AgentSpending {
        name: String,
    },
    /// `voicepay status`: the daemon's view, or the store's when none runs.
    Status {
        json: bool,
    },
    Ledger,
    Enroll {
        device_id: String,
        public_key: String,
    },
}

/// What the CLI prints, and whether the command succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    pub fn done(stdout: String) -> Reply {
        Reply {
            ok: true,
            stdout,
            stderr: String::new(),
        }
    }

    pub fn failed(error: impl std::fmt::Display) -> Reply {
        Reply {
            ok: false,
            stdout: String::new(),
            stderr: format!("{error}\n"),
        }
    }
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// One JSON line of the CLI's `--json` output.
pub fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Asks the process running on `data_dir`. `Ok(None)`: nothing runs there
/// (no socket, or a stale one left by a process that was killed).
pub fn call(data_dir: &Path, request: &Request) -> std::io::Result<Option<Reply>> {
    use std::io::ErrorKind;
    let path = socket_path(data_dir);
    let stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    (&stream).write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    serde_json::from_str(&answer)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("the running process answered {e}")))
}

/// What a running process answers with.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Listens on `data_dir/control.sock` until `shutdown`, then removes it.
/// A stale socket (a killed process's) is replaced; a live one means
/// another process runs on this data directory, which sled's lock refuses
/// anyway, so that is reported and nothing is served.
pub async fn serve(data_dir: PathBuf, handler: Handler, shutdown: CancellationToken) {
    let path = socket_path(&data_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        tracing::error!(path = %path.display(), "another process answers on this control socket");
        return;
    }
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) => {
            return tracing::warn!(%error, path = %path.display(), "no control socket: commands must wait for the process to stop");
        }
    };
    if let Err(error) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!(%error, "cannot make the control socket owner-only");
    }
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let handler = handler.clone();
                tokio::spawn(answer(stream, handler));
            }
            Err(error) => tracing::warn!(%error, "control socket"),
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: tokio::net::UnixStream, handler: Handler) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut limited =
        tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST_BYTES));
    let reply =
        match tokio::time::timeout(Duration::from_secs(5), limited.read_line(&mut line)).await {
            Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                // sled is quick but blocking: off the async threads.
                Ok(request) => tokio::task::spawn_blocking(move || handler(&request))
                    .await
                    .unwrap_or_else(|e| Reply::failed(format!("the command failed: {e}"))),
                Err(error) => Reply::failed(format!("not a control request: {error}")),
            },
            Ok(Err(error)) => Reply::failed(error),
            Err(_) => Reply::failed("no request within 5 s"),
        };
    let mut out = serde_json::to_vec(&reply).unwrap_or_default();
    out.push(b'\n');
    let _ = write.write_all(&out).await;
    let _ = write.shutdown().await;
}
