//! Running under a service manager: readiness, status lines and watchdog pings through sd-notify, the live view `voicepay status` reads, and SIGHUP's profile reload.
//!
//! Everything here is a no-op outside systemd: without `NOTIFY_SOCKET` the
//! notifications go nowhere, without `WATCHDOG_USEC` there are no pings, and
//! without a profile file SIGHUP is not taken (it ends the process, as it
//! ends any program whose terminal hangs up).

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::feedback::{Event, Feedback, Status};
use crate::profile::{DeviceProfile, ProfileError};
use voicepay_core::transport::LinkState;

/// Tells the service manager how the daemon is doing.
pub struct Notifier {
    /// Half the manager's watchdog interval, when it asked for pings.
    watchdog: Option<Interval>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, when set, must be us).
    pub fn from_env() -> Notifier {
        let var = |name| std::env::var(name).ok();
        let ours = var("WATCHDOG_PID").is_none_or(|pid| pid == std::process::id().to_string());
        let limit = var("WATCHDOG_USEC")
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        let watchdog = limit.map(|limit| {
            // Half the limit, as sd_watchdog_enabled(3) advises: one late
            // ping is not a restart.
            let period = (limit / 2).max(Duration::from_millis(100));
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Notifier { watchdog }
    }

    /// The store is open and the first wait for the gateway is over.
    pub fn ready(&self) {
        send("READY=1");
    }

    /// A reload begins; [`Notifier::ready`] says it ended.
    pub fn reloading(&self) {
        // Type=notify-reload (systemd 253 and later) needs the time with it.
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = i128::from(now.tv_sec) * 1_000_000 + i128::from(now.tv_nsec) / 1_000;
        send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    pub fn stopping(&self) {
        send("STOPPING=1");
    }

    /// Waits for the next watchdog ping; never, when there is no watchdog.
    /// Awaited in the daemon's own loop, so a loop that is stuck stops the
    /// pings and the manager restarts it.
    pub async fn watchdog_due(&mut self) {
        match self.watchdog.as_mut() {
            Some(interval) => {
                interval.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    pub fn watchdog(&self) {
        send("WATCHDOG=1");
    }
}

/// One datagram to `NOTIFY_SOCKET` (sd_notify(3): a path, or `@name` for
/// an abstract socket); nothing without it. Best effort and never waiting:
/// the socket is non-blocking, so a manager that does not read (a full
/// queue: Linux holds 10 datagrams by default) costs a lost message, never
/// a stalled loop. This is why it is written here rather than taken from
/// the sd-notify crate, whose socket blocks.
fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_to(&path, message) {
        tracing::debug!(%error, message, "cannot notify the service manager");
    }
}

fn send_to(path: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let address = match path.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name)?,
        _ => SocketAddr::from_pathname(path)?,
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}

/// How the link is, in the words `voicepay status` and the service
/// manager's status line use.
pub fn connection(link: LinkState) -> &'static str {
    if link.online() {
        "online"
    } else if link.broker {
        "gateway away"
    } else {
        "offline"
    }
}

/// The service manager's one-line status (`systemctl status`).
pub fn status_line(status: &Status) -> String {
    let link = match connection(status.link) {
        "offline" => "offline (no broker)",
        other => other,
    };
    format!("{link}; {} in the outbox", status.outbox)
}

/// What a running daemon shows `voicepay status`, kept up to date by
/// [`Observed`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    pub status: Status,
    /// Wall clock (Unix ms) of the last utterance the daemon heard.
    pub last_heard_ms: Option<u64>,
}

/// The daemon's feedback with a look-out: each status change also goes to
/// the service manager and into the [`Live`] view, and each utterance heard
/// stamps its time.
pub struct Observed {
    inner: Box<dyn Feedback>,
    live: watch::Sender<Live>,
}

impl Observed {
    pub fn new(inner: Box<dyn Feedback>) -> (Observed, watch::Receiver<Live>) {
        let (live, view) = watch::channel(Live::default());
        (Observed { inner, live }, view)
    }
}

impl Feedback for Observed {
    fn event(&mut self, event: &Event) {
        if matches!(event, Event::Heard { .. }) {
            let now = voicepay_core::clock::now_ms();
            self.live.send_modify(|live| live.last_heard_ms = Some(now));
        }
        self.inner.event(event);
    }

    fn status(&mut self, status: &Status) {
        send(&format!("STATUS={}", status_line(status)));
        self.live.send_modify(|live| live.status = *status);
        self.inner.status(status);
    }
}

/// SIGHUP, when the daemon has a profile file to reread.
pub struct Hangups(Option<tokio::signal::unix::Signal>);

impl Hangups {
    /// Takes SIGHUP only when `listen`: otherwise it keeps its default
    /// (the process ends), and in-process daemons (tests, the rig) leave the
    /// process's signals alone.
    pub fn new(listen: bool) -> Hangups {
        let signal = listen
            .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()))
            .and_then(|signal| match signal {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "cannot take SIGHUP: no profile reloads");
                    None
                }
            });
        Hangups(signal)
    }

    /// The next SIGHUP; never, when it is not taken.
    pub async fn next(&mut self) {
        match self.0.as_mut() {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// SIGHUP's reload: [`reread`], and the payee book the profile read makes
/// (its own part, and the whole with what the store added), logged; none
/// when the file is bad: the running profile stays.
pub fn reload(
    path: &Path,
    running: &DeviceProfile,
    store: &crate::store::Store,
) -> Option<(Reloaded, crate::payees::PayeeBook, crate::payees::PayeeBook)> {
    let reloaded = reread(path, running)
        .map_err(|e| e.to_string())
        .and_then(|reloaded| {
            let profile_book = reloaded.profile.payee_book();
            let whole =
                crate::payees::book_with_added(&profile_book, store).map_err(|e| e.to_string())?;
            Ok((reloaded, profile_book, whole))
        });
    match reloaded {
        Err(error) => {
            tracing::error!(%error, "profile not reloaded: the running one stays");
            None
        }
        Ok(reloaded) => {
            tracing::info!(
                path = %path.display(),
                applied = ?reloaded.0.applied,
                need_restart = ?reloaded.0.need_restart,
                "profile reloaded"
            );
            if !reloaded.0.need_restart.is_empty() {
                tracing::warn!(keys = ?reloaded.0.need_restart, "these profile keys changed and take effect at the next restart");
            }
            Some(reloaded)
        }
    }
}

/// A profile read again: the running one with what can change live taken
/// from the file, and what changed.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub profile: DeviceProfile,
    /// Keys that changed and are applied now.
    pub applied: Vec<&'static str>,
    /// Keys that changed and wait for a restart (the running values stay).
    pub need_restart: Vec<&'static str>,
}

/// Reads and checks `path` again. What a running daemon can take at once:
/// the payee book (`known_payees`, `payee_aliases`), `known_providers`, the
/// confirmation window and code lockout, token prices and the offline floor
/// (and the profile's `name`). The model, the microphone, the segmenter, the
/// wake mode, the voice, the driving rules and the starting limits,
/// MQTT, the request lifetime, the time zone, the language and the currency
/// need a restart: they are built into the transcriber, the link and the
/// outbox when the daemon starts. When the language or the currency changed,
/// the file's amounts and names belong to another kind of device, so
/// nothing is applied.
pub fn reread(path: &Path, running: &DeviceProfile) -> Result<Reloaded, ProfileError> {
    let file = DeviceProfile::load(Some(path))?;
    let payments = (&running.payments, &file.payments);
    let mut need_restart = Vec::new();
    for (key, changed) in [
        ("language", differs(&running.language, &file.language)),
        (
            "default_currency",
            differs(&running.default_currency, &file.default_currency),
        ),
        ("asr", differs(&running.asr, &file.asr)),
        ("vad", differs(&running.vad, &file.vad)),
        ("mqtt", differs(&running.mqtt, &file.mqtt)),
        ("audio", differs(&running.audio, &file.audio)),
        ("wake", differs(&running.wake, &file.wake)),
        ("feedback", differs(&running.feedback, &file.feedback)),
        ("driving", differs(&running.driving, &file.driving)),
        (
            "payee_categories",
            differs(&running.payee_categories, &file.payee_categories),
        ),
        (
            "payments.request_ttl_s",
            differs(&payments.0.request_ttl_ms, &payments.1.request_ttl_ms),
        ),
        (
            "payments.time_zone",
            differs(&payments.0.calendar, &payments.1.calendar),
        ),
    ] {
        if changed {
            need_restart.push(key);
        }
    }
    let mut profile = running.clone();
    let mut applied = Vec::new();
    let other_kind = need_restart
        .iter()
        .any(|key| matches!(*key, "language" | "default_currency"));
    if !other_kind {
        let mut take = |key: &'static str, changed: bool| {
            if changed {
                applied.push(key);
            }
        };
        take("name", differs(&profile.name, &file.name));
        take(
            "known_payees",
            differs(&profile.known_payees, &file.known_payees),
        );
        take(
            "payee_aliases",
            differs(&profile.payee_aliases, &file.payee_aliases),
        );
        take(
            "known_providers",
            differs(&profile.known_providers, &file.known_providers),
        );
        take(
            "payments.confirm_window_s",
            differs(&payments.0.confirm_window, &payments.1.confirm_window),
        );
        take(
            "payments.code_lockout_s",
            differs(&payments.0.code_lockout, &payments.1.code_lockout),
        );
        take(
            "payments.token_prices",
            differs(&payments.0.token_prices, &payments.1.token_prices),
        );
        take("offline", differs(&profile.offline, &file.offline));
        profile.name = file.name;
        profile.known_payees = file.known_payees;
        profile.payee_aliases = file.payee_aliases;
        profile.known_providers = file.known_providers;
        profile.payments.confirm_window = file.payments.confirm_window;
        profile.payments.code_lockout = file.payments.code_lockout;
        profile.payments.token_prices = file.payments.token_prices;
        profile.offline = file.offline;
    }
    Ok(Reloaded {
        profile,
        applied,
        need_restart,
    })
}

/// Profiles are compared as they are printed: every part of one is `Debug`,
/// not every part `PartialEq` (the time zone).
fn differs<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_reload_applies_the_payees_and_the_window_and_names_what_needs_a_restart() {
        let running = DeviceProfile::embedded().unwrap();
        let text = crate::profile::DEFAULT_PROFILE
            .replace("\"Alice\", ", "\"Alice\", \"Zed\", ")
            .replace("confirm_window_s = 8", "confirm_window_s = 3")
            // Not the threads: scripts/test.sh sets them for every profile.
            .replace("max_tokens = 32", "max_tokens = 24")
            .replace("prefix = \"voicepay/v1\"", "prefix = \"other/v1\"");
        let (_dir, path) = written(&text);
        let reloaded = reread(&path, &running).unwrap();
        assert_eq!(
            reloaded.applied,
            ["known_payees", "payments.confirm_window_s"]
        );
        assert_eq!(reloaded.need_restart, ["asr", "mqtt"]);
        assert!(reloaded.profile.known_payees.contains(&"Zed".to_owned()));
        assert_eq!(
            reloaded.profile.payments.confirm_window,
            Duration::from_secs(3)
        );
        // What needs a restart keeps its running value.
        assert_eq!(reloaded.profile.asr.threads, running.asr.threads);
        assert_eq!(reloaded.profile.mqtt.prefix, running.mqtt.prefix);
    }

    #[test]
    fn a_profile_for_another_currency_applies_nothing() {
        let running = DeviceProfile::embedded().unwrap();
        let text = crate::profile::DEFAULT_PROFILE
            .replace("default_currency = \"CNY\"", "default_currency = \"USD\"")
            .replace("\"Alice\", ", "\"Alice\", \"Zed\", ");
        let (_dir, path) = written(&text);
        let reloaded = reread(&path, &running).unwrap();
        assert!(reloaded.applied.is_empty(), "{:?}", reloaded.applied);
        assert_eq!(reloaded.need_restart, ["default_currency"]);
        assert!(!reloaded.profile.known_payees.contains(&"Zed".to_owned()));
    }

    #[test]
    fn a_broken_profile_is_an_error_that_names_it() {
        let running = DeviceProfile::embedded().unwrap();
        let (_dir, path) = written("name = \"half a profile\"\n[asr\n");
        let error = reread(&path, &running).unwrap_err().to_string();
        assert!(error.contains("device.toml"), "{error}");
    }

    #[test]
    fn a_manager_that_does_not_read_costs_messages_never_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let manager = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // Far more than the queue holds: none of them waits.
        let started = voicepay_core::clock::Stopwatch::start();
        for _ in 0..100 {
            let _ = send_to(path.as_os_str(), "WATCHDOG=1");
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }

    #[test]
    fn an_abstract_notify_socket_is_reached_by_its_at_name() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("voicepay-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = std::os::unix::net::UnixDatagram::bind_addr(&address).unwrap();
        send_to(std::ffi::OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn the_link_is_named_as_the_user_sees_it() {
        let link = |broker, gateway| LinkState { broker, gateway };
        assert_eq!(connection(link(true, true)), "online");
        assert_eq!(connection(link(true, false)), "gateway away");
        assert_eq!(connection(link(false, false)), "offline");
        let status = Status {
            link: link(true, false),
            outbox: 2,
            ..Status::default()
        };
        assert_eq!(status_line(&status), "gateway away; 2 in the outbox");
    }
}
