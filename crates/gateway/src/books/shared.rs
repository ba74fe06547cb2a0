//! The shared books: PostgreSQL, which any number of gateway processes use at once; each decision is one transaction, durable when it commits, and locks its device's row so that two workers deciding for one device take turns.

use std::sync::Mutex;

use postgres::types::Json;
use postgres::{Client, NoTls};

use voicepay_core::keys::PublicKey;
use voicepay_core::money::Money;
use voicepay_core::policy::{self, DeviceBooks, Verdict};
use voicepay_core::protocol::{AnswerTo, GatewayStatus};

use super::{Answered, Record, Stored};
use crate::{GatewayError, LedgerEntry};

/// The schema, in order: each is applied once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../migrations/0001_books.sql")),
    (2, include_str!("../../migrations/0002_limits.sql")),
];

/// Held while migrating, so two gateways starting at once do not both apply
/// a step (any number, the same in every process: "voicepay").
const MIGRATION_LOCK: i64 = 0x766f_6963_6570_6179;

pub(crate) struct Shared {
    database: super::Database,
    /// One connection per process: its decisions are one at a time, as the
    /// embedded books' are; more workers share the load.
    client: Mutex<Connection>,
}

/// The client, closed on a thread of its own: closing blocks on the
/// client's own runtime, which tokio forbids on an async thread (where the
/// gateway's last handle may be dropped).
struct Connection(Option<Client>);

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(client) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

impl Shared {
    /// Connects and brings the schema up to date.
    pub fn connect(database: &super::Database) -> Result<Shared, GatewayError> {
        let mut client = database.config()?.connect(NoTls)?;
        migrate(&mut client)?;
        Ok(Shared {
            database: database.clone(),
            client: Mutex::new(Connection(Some(client))),
        })
    }

    /// Runs `call` on the connection; if the connection turns out closed (the
    /// server restarted, the network dropped), connects again and runs it
    /// once more. Every call here may run twice: a decision whose commit was
    /// lost finds its answer kept, or is decided afresh, never both.
    fn call<T>(
        &self,
        call: impl Fn(&mut Client) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut held = self
            .client
            .lock()
            .map_err(|_| GatewayError::Corrupt("the ledger connection was poisoned".into()))?;
        let first = match held.0.as_mut() {
            Some(client) if !client.is_closed() => call(client),
            _ => Err(GatewayError::Task("the ledger connection is closed".into())),
        };
        match first {
            Err(error) if held.0.as_ref().is_none_or(Client::is_closed) => {
                tracing::warn!(%error, "the ledger's connection is gone; connecting again");
                let client = held.0.insert(self.database.config()?.connect(NoTls)?);
                tracing::info!("the ledger is connected again");
                call(client)
            }
            done => done,
        }
    }

    pub fn next_session(&self, now: u64) -> Result<u64, GatewayError> {
        self.call(|client| {
            let mut tx = client.transaction()?;
            let last: i64 = tx
                .query_one("SELECT last FROM status_session FOR UPDATE", &[])?
                .get(0);
            let session = GatewayStatus::next_session(unsigned(last)?, now);
            tx.execute("UPDATE status_session SET last = $1", &[&signed(session)?])?;
            tx.commit()?;
            Ok(session)
        })
    }

    pub fn enroll(&self, device_id: &str, key: &PublicKey) -> Result<(), GatewayError> {
        self.call(|client| {
            client.execute(
                "INSERT INTO devices (device_id, public_key) VALUES ($1, $2)
                 ON CONFLICT (device_id) DO UPDATE SET
                   public_key = EXCLUDED.public_key,
                   last_seq = CASE WHEN devices.public_key = EXCLUDED.public_key
                                   THEN devices.last_seq END",
                &[&device_id, &key.as_bytes().as_slice()],
            )?;
            Ok(())
        })
    }

    /// The deployment's limit per device and day, if set.
    pub fn daily_limit(&self) -> Result<Option<Money>, GatewayError> {
        let row = self.call(|client| {
            Ok(client.query_one("SELECT daily_minor, daily_currency FROM limits", &[])?)
        })?;
        limit_of(row.get(0), row.get(1))
    }

    /// Sets (or, with `None`, removes) it: every worker's next decision
    /// judges by it.
    pub fn set_daily_limit(&self, limit: Option<Money>) -> Result<(), GatewayError> {
        let minor = limit.map(|l| l.minor);
        let currency = limit.map(|l| l.currency.to_string());
        self.call(|client| {
            client.execute(
                "UPDATE limits SET daily_minor = $1, daily_currency = $2",
                &[&minor, &currency],
            )?;
            Ok(())
        })
    }

    pub fn device_key(&self, device_id: &str) -> Result<Option<PublicKey>, GatewayError> {
        let row = self.call(|client| {
            Ok(client.query_opt(
                "SELECT public_key FROM devices WHERE device_id = $1",
                &[&device_id],
            )?)
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        let raw: &[u8] = row.get(0);
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| GatewayError::Corrupt(format!("key of device {device_id}")))?;
        Ok(Some(PublicKey::from_bytes(bytes)))
    }

    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, GatewayError> {
        let rows =
            self.call(|client| Ok(client.query("SELECT entry FROM ledger ORDER BY id", &[])?))?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, Json<LedgerEntry>>(0).0)
            .collect())
    }

    pub fn answer(&self, to: &AnswerTo) -> Result<Option<Answered>, GatewayError> {
        let row = self.call(|client| {
            Ok(client.query_opt(
                "SELECT payload_sha256, response FROM answers WHERE device_id = $1 AND request_id = $2",
                &[&to.device_id, &to.request_id],
            )?)
        })?;
        Ok(row.as_ref().map(answered))
    }

    pub fn record(&self, record: &Record) -> Result<Stored, GatewayError> {
        self.call(|client| record_in(client, record))
    }

    pub fn prune_answers(&self, now: u64, batch: usize) -> Result<usize, GatewayError> {
        let limit = i64::try_from(batch).unwrap_or(i64::MAX);
        let pruned = self.call(|client| {
            Ok(client.execute(
                "DELETE FROM answers WHERE ctid IN
                   (SELECT ctid FROM answers WHERE keep_until < $1 LIMIT $2)",
                &[&signed(now)?, &limit],
            )?)
        })?;
        Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
    }
}

/// One decision, in one transaction (see [`Shared::record`]).
/// A limit as the `limits` table keeps it.
fn limit_of(minor: Option<i64>, currency: Option<String>) -> Result<Option<Money>, GatewayError> {
    match (minor, currency) {
        (Some(minor), Some(currency)) => {
            let currency = currency.parse().map_err(|_| {
                GatewayError::Corrupt(format!("the daily limit's currency {currency:?}"))
            })?;
            Ok(Some(Money::new(minor, currency)))
        }
        _ => Ok(None),
    }
}

fn record_in(client: &mut Client, record: &Record) -> Result<Stored, GatewayError> {
    let to = record.to;
    let device = to.device_id.as_str();
    let mut tx = client.transaction()?;
    // Every decision for this device, on any worker, waits here for the
    // one before it to commit; what it reads next is what that one kept.
    let Some(row) = tx.query_opt(
        "SELECT last_seq, daily_minor, daily_currency FROM devices CROSS JOIN limits
         WHERE device_id = $1 FOR UPDATE OF devices",
        &[&device],
    )?
    else {
        return Err(GatewayError::Corrupt(format!(
            "device {device} left the books while its request was decided"
        )));
    };
    let last_seq = row.get::<_, Option<i64>>(0).map(unsigned).transpose()?;
    let daily_limit = limit_of(row.get(1), row.get(2))?;
    let earlier = tx.query_opt(
        "SELECT payload_sha256, response FROM answers WHERE device_id = $1 AND request_id = $2",
        &[&device, &to.request_id],
    )?;
    if let Some(row) = earlier {
        return Ok(Stored::Earlier(answered(&row)));
    }
    let message = match record.declined {
        Some(message) => message.to_vec(),
        None => {
            let (day, currency) = (record.day as i32, record.amount.currency.to_string());
            let spent: i64 = tx
                    .query_opt(
                        "SELECT spent FROM daily_spend WHERE device_id = $1 AND day = $2 AND currency = $3",
                        &[&device, &day, &currency],
                    )?
                    .map_or(0, |row| row.get(0));
            let books = DeviceBooks {
                last_seq,
                spent_today: Money::new(spent, record.amount.currency),
                daily_limit,
            };
            let judged = policy::judge(record.seq, record.amount, &books, &record.rules);
            if let Some(seq) = judged.raise_seq_to {
                tx.execute(
                    "UPDATE devices SET last_seq = $2 WHERE device_id = $1",
                    &[&device, &signed(seq)?],
                )?;
            }
            match judged.verdict {
                Verdict::Charge { spent_today } => {
                    tx.execute(
                            "INSERT INTO daily_spend (device_id, day, currency, spent)
                             VALUES ($1, $2, $3, $4)
                             ON CONFLICT (device_id, day, currency) DO UPDATE SET spent = EXCLUDED.spent",
                            &[&device, &day, &currency, &spent_today.minor],
                        )?;
                    tx.execute(
                        "INSERT INTO ledger (device_id, request_id, entry) VALUES ($1, $2, $3)",
                        &[&device, &to.request_id, &Json(record.entry)],
                    )?;
                    record.approved.to_vec()
                }
                Verdict::Decline(reason) => (record.decline)(reason)?,
            }
        }
    };
    tx.execute(
        "INSERT INTO answers (device_id, request_id, payload_sha256, response, keep_until)
             VALUES ($1, $2, $3, $4, $5)",
        &[
            &device,
            &to.request_id,
            &to.request_sha256,
            &String::from_utf8_lossy(&message).as_ref(),
            &signed(record.keep_until)?,
        ],
    )?;
    tx.commit()?;
    Ok(Stored::New(message))
}

/// Applies the steps of [`MIGRATIONS`] the database has not seen, under a
/// lock that other gateways starting at the same time wait for.
fn migrate(client: &mut Client) -> Result<(), GatewayError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS voicepay_migrations (
           version    INTEGER PRIMARY KEY,
           applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let applied: Option<i32> = tx
        .query_one("SELECT max(version) FROM voicepay_migrations", &[])?
        .get(0);
    for (version, sql) in MIGRATIONS {
        if applied.is_some_and(|applied| applied >= *version) {
            continue;
        }
        tracing::info!(version, "applying the ledger's schema step");
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO voicepay_migrations (version) VALUES ($1)",
            &[version],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A row of `SELECT payload_sha256, response FROM answers`.
fn answered(row: &postgres::Row) -> Answered {
    Answered {
        payload_sha256: row.get(0),
        response: row.get(1),
    }
}

/// PostgreSQL keeps BIGINT: what we count in u64 fits below 2^63.
fn signed(value: u64) -> Result<i64, GatewayError> {
    i64::try_from(value).map_err(|_| GatewayError::Corrupt(format!("{value} exceeds a BIGINT")))
}

fn unsigned(value: i64) -> Result<u64, GatewayError> {
    u64::try_from(value).map_err(|_| GatewayError::Corrupt(format!("{value} is negative")))
}
