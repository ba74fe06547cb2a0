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
    Postgres(Database),
}

/// A PostgreSQL database the gateways share: its URL, which carries no
/// password, and the password when the server asks for one (read from a
/// file, like the broker's: never on the command line, where the process
/// list shows it).
#[derive(Clone, PartialEq, Eq)]
pub struct Database {
    url: String,
    password: Option<String>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Database {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The password is the first line of `path`, a file that group and
    /// others cannot read (as a key file).
    pub fn with_password_file(mut self, path: &std::path::Path) -> Result<Database, String> {
        let read = voicepay_core::keys::read_secret_file(path, 4096)
            .map_err(|e| format!("ledger password file {}: {e}", path.display()))?
            .ok_or_else(|| format!("ledger password file {}: no such file", path.display()))?;
        let text = std::str::from_utf8(read.as_bytes())
            .map_err(|_| format!("ledger password file {}: not UTF-8", path.display()))?;
        self.password = Some(text.lines().next().unwrap_or_default().to_owned());
        Ok(self)
    }

    fn config(&self) -> Result<postgres::Config, postgres::Error> {
        let mut config: postgres::Config = self.url.parse()?;
        // A database that does not answer must not hold a decision (or the
        // gateway's stop, which waits for the batch in hand) for ever.
        config
            .connect_timeout(std::time::Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(std::time::Duration::from_secs(30));
        if let Some(password) = &self.password {
            config.password(password);
        }
        Ok(config)
    }
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ledger::Embedded => f.write_str("embedded (sled)"),
            Ledger::Postgres(database) => write!(f, "PostgreSQL at {}", database.url),
        }
    }
}

/// `postgres://USER@HOST:PORT/DB` (or `postgresql://`), checked now so
/// that a typo is said at the command line, not at the first request.
impl std::str::FromStr for Ledger {
    type Err = String;

    fn from_str(text: &str) -> Result<Ledger, String> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(format!(
                "{}: expected a PostgreSQL URL, like postgres://USER@HOST:PORT/DB",
                shown(text)
            ));
        }
        let config = text
            .parse::<postgres::Config>()
            .map_err(|e| format!("{}: {e}", shown(text)))?;
        if config.get_password().is_some() {
            return Err(format!(
                "{}: a password in the URL shows in the process list: put it in a file and give --ledger-password-file",
                shown(text)
            ));
        }
        Ok(Ledger::Postgres(Database {
            url: text.to_owned(),
            password: None,
        }))
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
    Shared(Box<shared::Shared>),
}

impl Books {
    pub fn open(config: &GatewayConfig) -> Result<Books, GatewayError> {
        match &config.ledger {
            Ledger::Embedded => embedded::Embedded::open(config).map(Books::Embedded),
            Ledger::Postgres(database) => {
                shared::Shared::connect(database).map(|books| Books::Shared(Box::new(books)))
            }
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

    /// The deployment's limit per device and day, if set.
    pub fn daily_limit(&self) -> Result<Option<Money>, GatewayError> {
        match self {
            Books::Embedded(books) => books.daily_limit(),
            Books::Shared(books) => books.daily_limit(),
        }
    }

    /// Sets or (`None`) removes it.
    pub fn set_daily_limit(&self, limit: Option<Money>) -> Result<(), GatewayError> {
        match self {
            Books::Embedded(books) => books.set_daily_limit(limit),
            Books::Shared(books) => books.set_daily_limit(limit),
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
    fn only_a_postgresql_url_names_a_ledger_and_a_bad_one_is_refused_at_once() {
        let Ok(Ledger::Postgres(database)) = "postgres://gw@127.0.0.1:5432/voicepay".parse() else {
            panic!("a PostgreSQL URL names a ledger");
        };
        assert_eq!(database.url(), "postgres://gw@127.0.0.1:5432/voicepay");
        assert!("postgresql://gw@db/voicepay".parse::<Ledger>().is_ok());
        let refused = "mysql://gw:pw@db/voicepay".parse::<Ledger>().unwrap_err();
        assert!(refused.contains("expected a PostgreSQL URL"), "{refused}");
        assert!(!refused.contains(":pw@"), "{refused}");
        assert!("postgres://gw@db:notaport/v".parse::<Ledger>().is_err());
    }

    #[test]
    fn a_ledger_password_comes_from_a_private_file_and_is_never_shown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ledger.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let Ok(Ledger::Postgres(database)) = "postgres://gw@db/voicepay".parse() else {
            panic!("a ledger");
        };
        let loose = database.clone().with_password_file(&file).unwrap_err();
        assert!(loose.contains("group or others"), "{loose}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let database = database.with_password_file(&file).unwrap();
        assert_eq!(
            database.config().unwrap().get_password(),
            Some(&b"s3cret"[..])
        );
        assert!(!format!("{database:?}").contains("s3cret"));
        assert!(!Ledger::Postgres(database).to_string().contains("s3cret"));
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let url = "postgres://gw:s3cret@db.example:5432/voicepay";
        assert_eq!(shown(url), "postgres://gw@db.example:5432/voicepay");
        let refused = url.parse::<Ledger>().unwrap_err();
        assert!(refused.contains("--ledger-password-file"), "{refused}");
        assert!(!refused.contains("s3cret"), "{refused}");
        assert_eq!(
            shown("postgres://gw@127.0.0.1:5/v"),
            "postgres://gw@127.0.0.1:5/v"
        );
    }
}
