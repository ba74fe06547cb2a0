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
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        daily: Option<Option<Money>>,
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
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
    /// The gateway's limit per device and day, kept in its books: `Some`
    /// sets it (`Some(None)` removes it); either way, one JSON line says it.
    GatewayLimits {
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        daily: Option<Option<Money>>,
    },
}

/// A field that is there, even as `null`: "remove it" (`Some(None)`) must
/// not cross the socket as "leave it" (`None`, the field left out).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
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

/// Why [`ask_or_answer`] has no reply.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The socket is there and something listens, but the exchange failed.
    #[error("cannot ask the process running on {}: {error}", dir.display())]
    Socket { dir: PathBuf, error: std::io::Error },
    /// The store stayed locked by a process that never answered on its
    /// socket (one that is stuck, or not a voicepay of this version).
    #[error(
        "the store in {} is held by another process that does not answer on {} (waited {:.1} s)",
        dir.display(),
        socket_path(dir).display(),
        waited.as_secs_f64()
    )]
    Held { dir: PathBuf, waited: Duration },
    /// Opening the store here failed for another reason than its lock.
    #[error(transparent)]
    Open(Box<dyn std::error::Error + Send + Sync>),
}

/// How often [`ask_or_answer`] asks again while the store is held.
const ASK_AGAIN: Duration = Duration::from_millis(200);

/// Asks the process running on `data_dir`, else answers here: every CLI
/// command on a store goes this way, because sled lets one process open it.
///
/// `open_now` opens the store without waiting for its lock: `Ok(None)` when
/// another process holds it. A process that is starting holds its store a
/// moment before its socket answers, so while the store is held the
/// process is asked again (waiting on the lock would be in vain: a daemon
/// keeps it as long as it runs), up to `patience` ([`crate::durable::LOCK_WAIT`]
/// as a rule: on a loaded device 2 s were seen to be too short). `answer`
/// makes the reply from the store opened here.
pub fn ask_or_answer<S, E: Into<Box<dyn std::error::Error + Send + Sync>>>(
    data_dir: &Path,
    request: &Request,
    patience: Duration,
    mut open_now: impl FnMut() -> Result<Option<S>, E>,
    answer: impl FnOnce(S) -> Reply,
) -> Result<Reply, AskError> {
    let started = crate::clock::Stopwatch::start();
    loop {
        let asked = call(data_dir, request).map_err(|error| AskError::Socket {
            dir: data_dir.to_owned(),
            error,
        })?;
        if let Some(reply) = asked {
            return Ok(reply);
        }
        if let Some(store) = open_now().map_err(|e| AskError::Open(e.into()))? {
            return Ok(answer(store));
        }
        let waited = started.elapsed();
        if waited >= patience {
            return Err(AskError::Held {
                dir: data_dir.to_owned(),
                waited,
            });
        }
        std::thread::sleep(ASK_AGAIN.min(patience - waited));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::{self, LOCK_WAIT};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn db_path(dir: &Path) -> PathBuf {
        dir.join("store")
    }

    /// The store opened without waiting, `None` while another handle holds it.
    fn open_now(dir: &Path) -> Result<Option<sled::Db>, sled::Error> {
        let path = db_path(dir);
        match durable::open_db(&sled::Config::new().path(&path), &path, Duration::ZERO) {
            Err(error) if durable::is_lock_held(&error) => Ok(None),
            other => other.map(Some),
        }
    }

    fn hold_store(dir: &Path) -> sled::Db {
        let path = db_path(dir);
        durable::open_db(&sled::Config::new().path(&path), &path, LOCK_WAIT).unwrap()
    }

    /// Serves `reply` on `dir`'s socket until the token is cancelled.
    fn serving(
        dir: &Path,
        reply: &'static str,
    ) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let handler: Handler = Arc::new(move |_| Reply::done(reply.to_owned()));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(dir.to_owned(), handler, shutdown.clone()));
        (shutdown, server)
    }

    fn ask(
        dir: &Path,
        patience: Duration,
        opened: Arc<AtomicUsize>,
    ) -> tokio::task::JoinHandle<Result<Reply, AskError>> {
        let dir = dir.to_owned();
        tokio::task::spawn_blocking(move || {
            ask_or_answer(
                &dir,
                &Request::LimitsShow { json: false },
                patience,
                || {
                    opened.fetch_add(1, Ordering::SeqCst);
                    open_now(&dir)
                },
                |_db| Reply::done("here".to_owned()),
            )
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_process_is_asked_and_its_store_is_never_opened_here() {
        let dir = tempfile::tempdir().unwrap();
        let _held = hold_store(dir.path());
        let (shutdown, server) = serving(dir.path(), "from the process");
        while std::os::unix::net::UnixStream::connect(socket_path(dir.path())).is_err() {
            tokio::task::yield_now().await;
        }
        let opened = Arc::new(AtomicUsize::new(0));
        let reply = ask(dir.path(), LOCK_WAIT, opened.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply.stdout, "from the process");
        assert_eq!(opened.load(Ordering::SeqCst), 0);
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_nothing_running_not_even_behind_a_stale_socket_the_store_answers_here() {
        let dir = tempfile::tempdir().unwrap();
        // What a SIGKILL leaves behind: a socket file nobody listens on.
        drop(std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap());
        let opened = Arc::new(AtomicUsize::new(0));
        let reply = ask(dir.path(), LOCK_WAIT, opened.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply.stdout, "here");
        assert_eq!(opened.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_still_starting_holds_the_store_and_is_asked_again_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let held = hold_store(dir.path());
        let opened = Arc::new(AtomicUsize::new(0));
        let asking = ask(dir.path(), LOCK_WAIT, opened.clone());
        // The command has found the store held and no one answering...
        while opened.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // ...then the starting process opens its socket.
        let (shutdown, server) = serving(dir.path(), "from the process");
        let reply = asking.await.unwrap().unwrap();
        assert_eq!(reply.stdout, "from the process");
        drop(held);
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_held_by_a_process_that_never_answers_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let _held = hold_store(dir.path());
        let opened = Arc::new(AtomicUsize::new(0));
        let error = ask(dir.path(), Duration::from_millis(500), opened.clone())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(error, AskError::Held { .. }), "{error:?}");
        let said = error.to_string();
        assert!(
            said.contains(&dir.path().display().to_string()) && said.contains("control.sock"),
            "{said}"
        );
        assert!(
            opened.load(Ordering::SeqCst) > 1,
            "asked again while waiting"
        );
    }

    /// Regression: `voicepay limits set --daily none` through a running
    /// daemon (and `gateway limits --no-daily` through a running gateway)
    /// crossed the socket as "leave it" and removed nothing.
    #[test]
    fn removing_a_limit_crosses_the_socket_as_removing_it() {
        use crate::money::Currency;
        let cny = Money::new(500, Currency::CNY);
        for request in [
            Request::LimitsSet {
                auto: None,
                daily: Some(None),
                code: None,
            },
            Request::LimitsSet {
                auto: Some(cny),
                daily: None,
                code: Some(Some(cny)),
            },
            Request::GatewayLimits { daily: Some(None) },
            Request::GatewayLimits { daily: None },
            Request::GatewayLimits {
                daily: Some(Some(cny)),
            },
        ] {
            let line = serde_json::to_string(&request).unwrap();
            let back: Request = serde_json::from_str(&line).unwrap();
            assert_eq!(back, request, "{line}");
        }
    }

    #[test]
    fn a_store_that_cannot_be_opened_is_an_error_at_once_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = 0;
        let error = ask_or_answer(
            dir.path(),
            &Request::Ledger,
            LOCK_WAIT,
            || -> Result<Option<()>, std::io::Error> {
                opened += 1;
                Err(std::io::Error::other("corrupt"))
            },
            |()| Reply::done(String::new()),
        )
        .unwrap_err();
        assert!(matches!(error, AskError::Open(_)) && error.to_string() == "corrupt");
        assert_eq!(opened, 1);
    }
}
