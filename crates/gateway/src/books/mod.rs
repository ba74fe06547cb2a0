//! The gateway's books: enrolled devices, every answer given, each device's sequence and day, the ledger, and the status sessions; embedded in sled (the default) or in PostgreSQL, which many gateway processes share.
//!
//! The two keep the same things under the same rule: a decision is judged
//! by `voicepay_core::policy::judge` and kept, with its answer, in one
//! transaction that a second delivery of the request (or a second worker)
//! sees.

mod embedded;
mod shared;

use serde::{Deserialize, Serialize};

use voicepay_core::keys::PublicKey;
use voicepay_core::money::Money;
use voicepay_core::policy::GatewayRules;
use voicepay_core::protocol::AnswerTo;

use crate::{GatewayConfig, GatewayError, LedgerEntry};

/// Where a gateway keeps its books.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Ledger {
    /// sled, in the gateway's data directory (`gateway.db`): one process.
    #[default]
    Embedded,
    /// A PostgreSQL database (`postgres://USER@HOST:PORT/DB`), which any
    /// number of gateway processes share.
    Postgres(String),
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ledger::Embedded => f.write_str("embedded (sled)"),
            Ledger::Postgres(url) => write!(f, "PostgreSQL at {}", shown(url)),
        }
    }
}

/// A database URL as logs may show it: without a password.
fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// What is kept per request id: the hash of the bytes answered, and the answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Answered {
    pub payload_sha256: String,
    pub response: String,
}

pub(crate) enum Stored {
    /// Decided now: this answer.
    New(Vec<u8>),
    /// Answered before (a second delivery, or a twin that won the race).
    Earlier(Answered),
}

/// One request to decide and keep, with all its transaction needs.
pub(crate) struct Record<'a> {
    pub to: &'a AnswerTo,
    pub seq: u64,
    pub amount: Money,
    /// The gateway's day (UTC) the spend counts on.
    pub day: u32,
    /// When the answer may be forgotten (unix ms): its expiry plus the retention.
    pub keep_until: u64,
    pub entry: &'a LedgerEntry,
    /// The signed approval, given if the rules charge it.
    pub approved: &'a [u8],
    /// A decline decided before money moves (a stateless check failed).
    pub declined: Option<&'a [u8]>,
    pub rules: GatewayRules,
    /// Signs a decline for this reason.
    pub decline: &'a dyn Fn(String) -> Result<Vec<u8>, GatewayError>,
}

pub(crate) enum Books {
    Embedded(embedded::Embedded),
    Shared(shared::Shared),
}

impl Books {
    pub fn open(config: &GatewayConfig) -> Result<Books, GatewayError> {
        match &config.ledger {
            Ledger::Embedded => embedded::Embedded::open(config).map(Books::Embedded),
            Ledger::Postgres(url) => shared::Shared::connect(url).map(Books::Shared),
        }
    }

    /// A new status session, larger than every one before it, durable
    /// before it is used.
    pub fn next_session(&self, now: u64) -> Result<u64, GatewayError> {
        match self {
            Books::Embedded(books) => books.next_session(now),
            Books::Shared(books) => books.next_session(now),
        }
    }

    /// Registers (or re-keys) a device; a new key starts its sequence again.
    pub fn enroll(&self, device_id: &str, key: &PublicKey) -> Result<(), GatewayError> {
        match self {
            Books::Embedded(books) => books.enroll(device_id, key),
            Books::Shared(books) => books.enroll(device_id, key),
        }
    }

    pub fn device_key(&self, device_id: &str) -> Result<Option<PublicKey>, GatewayError> {
        match self {
            Books::Embedded(books) => books.device_key(device_id),
            Books::Shared(books) => books.device_key(device_id),
        }
    }

    /// Approved payments, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, GatewayError> {
        match self {
            Books::Embedded(books) => books.ledger(),
            Books::Shared(books) => books.ledger(),
        }
    }

    /// The answer kept for a request, if any.
    pub fn answer(&self, to: &AnswerTo) -> Result<Option<Answered>, GatewayError> {
        match self {
            Books::Embedded(books) => books.answer(to),
            Books::Shared(books) => books.answer(to),
        }
    }

    /// Judges and keeps one request, or gives back the answer already kept.
    pub fn record(&self, record: &Record) -> Result<Stored, GatewayError> {
        match self {
            Books::Embedded(books) => books.record(record),
            Books::Shared(books) => books.record(record),
        }
    }

    /// Forgets at most `batch` answers kept past their time; how many went.
    pub fn prune_answers(&self, now: u64, batch: usize) -> Result<usize, GatewayError> {
        match self {
            Books::Embedded(books) => books.prune_answers(now, batch),
            Books::Shared(books) => books.prune_answers(now, batch),
        }
    }

    /// Makes every record so far durable: one fsync for the embedded books;
    /// nothing for PostgreSQL, whose transactions are durable when they commit.
    pub fn sync(&self) -> Result<(), GatewayError> {
        match self {
            Books::Embedded(books) => books.sync(),
            Books::Shared(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let url = "postgres://gw:s3cret@db.example:5432/voicepay";
        assert_eq!(shown(url), "postgres://gw@db.example:5432/voicepay");
        let ledger = Ledger::Postgres(url.into());
        assert!(!ledger.to_string().contains("s3cret"));
        assert_eq!(
            shown("postgres://gw@127.0.0.1:5/v"),
            "postgres://gw@127.0.0.1:5/v"
        );
    }
}
