//! The device's answers on the control socket: the CLI's store commands (outbox, history, limits, payees, agents, status), from the store.
//!
//! The daemon serves [`device`] on its socket; when no daemon runs the CLI
//! opens the store and calls the same function, so the output is the same
//! either way ([`voicepay_core::control::ask_or_answer`] chooses).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use voicepay_core::control::{Reply, Request, json};
use voicepay_core::money::Money;

use crate::payees::{self, PayeeBook, SharedPayees};
use crate::phrasebook::Phrasebook;
use crate::store::Store;

/// The payee book as the device's handler sees it: the profile's entries,
/// and the running dialog's book to update (none when no daemon runs); and
/// the profile's calendar, which says what "today" is.
#[derive(Debug, Clone)]
pub struct DeviceBook {
    pub profile: PayeeBook,
    pub live: Option<SharedPayees>,
    pub calendar: voicepay_core::clock::Calendar,
    /// The gateway key the device trusts, which `history --verify` checks
    /// the stored answers with (none if the device trusts none yet).
    pub gateway: Option<voicepay_core::keys::PublicKey>,
    /// The profile's language, which `history` words its lines in.
    pub phrasebook: Phrasebook,
}

/// Answers a device request from the store.
pub fn device(store: &Store, book: &DeviceBook, request: &Request) -> Reply {
    let lines = |items: Vec<String>| items.iter().map(|l| format!("{l}\n")).collect::<String>();
    match request {
        Request::Outbox { json: as_json } => match store.outbox() {
            // Said to people only: a script reading --json gets no lines.
            Ok(waiting) if waiting.is_empty() && !as_json => {
                Reply::done("no payment is waiting for the gateway\n".to_owned())
            }
            Ok(waiting) => Reply::done(lines(
                waiting
                    .iter()
                    .map(|p| if *as_json { json(p) } else { p.summary() })
                    .collect(),
            )),
            Err(error) => Reply::failed(error),
        },
        Request::History {
            json: as_json,
            verify,
            agent,
        } => {
            let mut entries = match store.history() {
                Ok(entries) => entries,
                Err(error) => return Reply::failed(error),
            };
            if let Some(name) = agent {
                entries.retain(|e| e.event.agent().is_some_and(|a| &a.agent_id == name));
            }
            let mut reply = Reply::done(lines(
                entries
                    .iter()
                    .map(|e| {
                        if *as_json {
                            json(e)
                        } else {
                            book.phrasebook.history_line(e)
                        }
                    })
                    .collect(),
            ));
            if *verify {
                match store.verify_history(book.gateway.as_ref()) {
                    Ok(checked) => {
                        reply.stderr = format!(
                            "history chain intact: {} entries sealed with the device secret, {} gateway answers signed by the trusted gateway\n",
                            checked.entries, checked.gateway_answers
                        );
                    }
                    Err(error) => {
                        reply.ok = false;
                        reply.stderr = format!("{error}\n");
                    }
                }
            }
            reply
        }
        Request::LimitsShow { json: as_json } => match store.limits() {
            Ok(limits) if *as_json => Reply::done(format!("{}\n", json(&limits))),
            Ok(limits) => Reply::done(format!("{limits}\n")),
            Err(error) => Reply::failed(error),
        },
        Request::LimitsSet { auto, daily, code } => {
            let changed = store.limits().and_then(|mut limits| {
                if let Some(amount) = auto {
                    limits.auto_pay = *amount;
                }
                if let Some(amount) = daily {
                    limits.daily = *amount;
                }
                if let Some(amount) = code {
                    limits.payment_code_above = *amount;
                }
                store.set_limits(&limits).map(|()| limits)
            });
            match changed {
                // What the limits are now, as `limits show` says them.
                Ok(limits) => Reply::done(format!("{limits}\n")),
                Err(error) => Reply::failed(error),
            }
        }
        Request::PayeesList { json: as_json } => match payees::book_with_added(&book.profile, store) {
            Ok(whole) => Reply::done(lines(
                whole
                    .entries()
                    .map(|(payee, origin)| {
                        if *as_json {
                            serde_json::json!({"name": payee.name, "aliases": payee.aliases, "origin": origin})
                                .to_string()
                        } else {
                            payees::list_line(payee, origin)
                        }
                    })
                    .collect(),
            )),
            Err(error) => Reply::failed(error),
        },
        Request::PayeesAdd { name, aliases } => {
            match payees::add(&book.profile, store, name, aliases) {
                Ok((line, whole)) => {
                    if let Some(live) = &book.live {
                        live.replace(whole);
                    }
                    Reply::done(format!("{line}\n"))
                }
                Err(error) => Reply::failed(error),
            }
        }
        Request::PayeesRemove { name } => match payees::remove(&book.profile, store, name) {
            Ok(whole) => {
                if let Some(live) = &book.live {
                    live.replace(whole);
                }
                Reply::done(format!("removed {name}\n"))
            }
            Err(error) => Reply::failed(error),
        },
        Request::AgentsList { json: as_json } => match store.agents() {
            Ok(agents) if agents.is_empty() && !as_json => Reply::done(
                "no agent is registered (voicepay agents add NAME --public-key KEY)\n".to_owned(),
            ),
            Ok(agents) => Reply::done(lines(
                agents
                    .iter()
                    .map(|a| if *as_json { json(a) } else { a.line() })
                    .collect(),
            )),
            Err(error) => Reply::failed(error),
        },
        Request::AgentsAdd { agent } => match crate::agents::add(store, agent.clone()) {
            Ok(line) => Reply::done(format!("{line}\n")),
            Err(error) => Reply::failed(error),
        },
        Request::AgentsRemove { name } => match store.remove_agent(name) {
            Ok(true) => Reply::done(format!("removed {name}\n")),
            Ok(false) => Reply::failed(crate::agents::AgentError::Unknown(name.clone())),
            Err(error) => Reply::failed(error),
        },
        Request::AgentSpending { name } => {
            match agent_spending(store, name, book.calendar.day_of(voicepay_core::clock::now_ms())) {
                Ok(summary) => Reply::done(format!("{}\n", json(&summary))),
                Err(error) => Reply::failed(error),
            }
        }
        Request::Status { json } => status(store, None, None, *json),
        Request::Ledger | Request::Enroll { .. } | Request::GatewayLimits { .. } => {
            Reply::failed("that is a gateway command: this is a device")
        }
    }
}

/// What the agent has spent and may still spend, from the device's store
/// (`voicepay agents spending NAME`).
#[derive(Debug, Serialize, Deserialize)]
pub struct SpendingSummary {
    pub agent: String,
    pub currency: String,
    pub spent_today: String,
    pub spent_total: String,
    pub per_task: Option<String>,
    pub daily_budget: Option<String>,
    pub total_budget: Option<String>,
    pub paid_unasked_up_to: Option<String>,
    pub stopped: bool,
}

fn agent_spending(
    store: &Store,
    name: &str,
    today: u32,
) -> Result<SpendingSummary, crate::agents::AgentError> {
    let agent = store
        .agent(name)?
        .ok_or_else(|| crate::agents::AgentError::Unknown(name.to_owned()))?;
    let (spent_today, spent_total) = store.agent_spent(name, today)?;
    let mandate = &agent.mandate;
    let text = |m: Option<Money>| m.map(|m| m.to_decimal_string());
    Ok(SpendingSummary {
        agent: agent.name.clone(),
        currency: mandate.currency.to_string(),
        spent_today: Money::new(spent_today, mandate.currency).to_decimal_string(),
        spent_total: Money::new(spent_total, mandate.currency).to_decimal_string(),
        per_task: text(mandate.per_task),
        daily_budget: text(mandate.daily),
        total_budget: text(mandate.total),
        paid_unasked_up_to: text(mandate.auto_under),
        stopped: agent.revoked_at.is_some(),
    })
}

/// What a running daemon answers on its socket: the live view for
/// `voicepay status`, the rest from the store it holds and its payee book.
#[derive(Clone)]
pub struct Serving {
    pub store: Store,
    pub device_id: String,
    pub started: tokio::time::Instant,
    pub live: tokio::sync::watch::Receiver<crate::service::Live>,
    /// The profile's part of the payee book, as the last reload left it.
    pub profile_book: SharedPayees,
    pub book: DeviceBook,
}

impl Serving {
    /// Answers one request.
    pub fn answer(&self, request: &Request) -> Reply {
        if let Request::Status { json } = request {
            let running = Running {
                live: *self.live.borrow(),
                uptime: self.started.elapsed(),
            };
            return status(&self.store, Some(&self.device_id), Some(&running), *json);
        }
        let book = DeviceBook {
            profile: self.profile_book.read().clone(),
            ..self.book.clone()
        };
        device(&self.store, &book, request)
    }
}

/// What only a running daemon knows, for `voicepay status`.
#[derive(Debug, Clone, Copy)]
pub struct Running {
    pub live: crate::service::Live,
    pub uptime: Duration,
}

/// `voicepay status`: the connection, the outbox, the limits, the last
/// utterance, the device and the uptime. Without `running` (no daemon),
/// what the store says, and plainly that nothing runs.
pub fn status(
    store: &Store,
    device_id: Option<&str>,
    running: Option<&Running>,
    as_json: bool,
) -> Reply {
    let limits = match store.limits() {
        Ok(limits) => limits,
        Err(error) => return Reply::failed(error),
    };
    let outbox = match store.outbox_len() {
        Ok(n) => n,
        Err(error) => return Reply::failed(error),
    };
    let connection = running.map(|r| crate::service::connection(r.live.status.link));
    let last_heard_ms = running.and_then(|r| r.live.last_heard_ms);
    if as_json {
        let report = serde_json::json!({
            "daemon": if running.is_some() { "running" } else { "not running" },
            "device_id": device_id,
            "connection": connection,
            "outbox": outbox,
            "limits": limits,
            "last_utterance_ms": last_heard_ms,
            "heard": running.map(|r| r.live.status.heard),
            "uptime_s": running.map(|r| r.uptime.as_secs()),
        });
        return Reply::done(format!("{report}\n"));
    }
    let unknown = "unknown (the daemon is not running)";
    let mut lines = vec![match running {
        Some(r) => format!("daemon:         running, up {}", uptime(r.uptime)),
        None => "daemon:         not running".to_owned(),
    }];
    lines.push(format!(
        "device:         {}",
        device_id.unwrap_or("no key yet (voicepay keys init)")
    ));
    lines.push(format!("connection:     {}", connection.unwrap_or(unknown)));
    lines.push(format!("outbox:         {outbox} waiting for the gateway"));
    for (i, line) in limits.to_string().lines().enumerate() {
        let label = if i == 0 { "limits:" } else { "" };
        lines.push(format!("{label:<16}{line}"));
    }
    lines.push(format!(
        "last utterance: {}",
        match (running, last_heard_ms) {
            (None, _) => unknown.to_owned(),
            (Some(_), None) => "none yet".to_owned(),
            (Some(_), Some(ms)) => wall_clock(ms),
        }
    ));
    Reply::done(lines.iter().map(|l| format!("{l}\n")).collect())
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// RFC 3339 in UTC, with the Unix milliseconds behind it.
fn wall_clock(ms: u64) -> String {
    match i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
    {
        Some(at) => format!("{at:.3} ({ms} ms)"),
        None => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;
    use voicepay_core::control::{Handler, call, serve, socket_path};
    use voicepay_core::money::Currency;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_running_process_answers_on_its_socket_and_a_stale_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        // A socket file nobody listens on: what a SIGKILL leaves behind.
        drop(std::os::unix::net::UnixListener::bind(socket_path(dir.path())).unwrap());
        let probe = call(dir.path(), &Request::LimitsShow { json: true }).unwrap();
        assert_eq!(probe, None, "a stale socket is not a running process");

        let store = Store::open(&StoreConfig::new(dir.path().join("store"))).unwrap();
        let served = store.clone();
        let book = DeviceBook {
            profile: PayeeBook::default(),
            live: None,
            calendar: voicepay_core::clock::Calendar::utc(),
            gateway: None,
            phrasebook: Phrasebook::new(crate::language::Language::English),
        };
        let handler: Handler = Arc::new(move |request| device(&served, &book, request));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn({
            let dir = dir.path().to_owned();
            let shutdown = shutdown.clone();
            async move { serve(dir, handler, shutdown).await }
        });
        let path = socket_path(dir.path());
        while std::os::unix::net::UnixStream::connect(&path).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let daily = Some(Money::new(9_000, Currency::CNY));
        store
            .set_limits(&voicepay_core::policy::Limits {
                daily,
                ..Default::default()
            })
            .unwrap();
        let set = Request::LimitsSet {
            auto: Some(Money::new(500, Currency::CNY)),
            daily: Some(None),
            code: None,
        };
        let dir_path = dir.path().to_owned();
        let reply = tokio::task::spawn_blocking(move || call(&dir_path, &set))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(reply.ok, "{reply:?}");
        assert_eq!(store.limits().unwrap().auto_pay.minor, 500);
        assert_eq!(
            store.limits().unwrap().daily,
            None,
            "removed, through the socket"
        );

        let dir_path = dir.path().to_owned();
        let wrong = tokio::task::spawn_blocking(move || call(&dir_path, &Request::Ledger))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!wrong.ok && wrong.stderr.contains("gateway command"));

        shutdown.cancel();
        server.await.unwrap();
        assert!(!path.exists(), "the socket goes with the process");
    }
}
