//! Store: the device's durable state in one sled database — outbox, hash-chained history, spend counters, limits, sequence numbers and offline counters.
//!
//! Every change is atomic (one sled transaction, or a single-key write) and is
//! flushed *and* fsynced ([`Store::flush_durably`]) before the call returns:
//! sled's own flush uses `sync_file_range` on Linux, which reaches neither the
//! disk's cache nor the file metadata. Stored records are JSON; a record that
//! does not parse is a [`StoreError::Corrupt`], never a panic.
//!
//! Trees and keys (integers are big-endian so iteration order is numeric):
//! - `outbox`: seq (u64) -> `{day, payment}`; payments waiting for the gateway's answer
//! - `requests`: request id (16 bytes) -> seq; every id ever committed, so none is reused
//! - `spend`: day since the epoch (u32) + currency code (3 bytes) -> reserved minor units (i64)
//! - `history`: index (u64) -> [`HistoryEntry`], each sealed with an HMAC under the device secret ([`crate::history_key`])
//! - `state`: `seq`, `limits`, `offline`, `history_head`, `code_lock` ([`CodeLock`])
//! - `payees`: name -> a payee the user added
//! - `agents`: name -> [`voicepay_core::agent::Agent`] (its key and mandate)
//! - `agent_spend`: agent name, 0, then a day (u32) or `total` -> reserved minor units (i64)
//! - `agent_tasks`: agent name, 0, task id -> [`TaskRecord`] (`{expires_at, state, terms, reason, request_id, at}`); every task ever let in, so none is taken twice, and what its agent was last told

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree, abort};
use sled::{Transactional, Tree};
use uuid::Uuid;

use crate::history_key::{HistoryKey, HistoryKeyError};
use crate::reason::{AgentRefusal, Reason};
use voicepay_core::agent::Agent;
use voicepay_core::keys::PublicKey;
use voicepay_core::money::{Currency, Money, MoneyError};
use voicepay_core::policy::{self, Limits, OfflineCounters, OfflineFloor, OutsideMandate, Refusal};
use voicepay_core::protocol::{AgentRef, PaymentResponse, ResponseStatus, TaskState, TaskStatus};

/// A small cache: the store holds kilobytes, and the devices are small.
pub const DEFAULT_CACHE_BYTES: u64 = 4 * 1024 * 1024;
/// `prev_hash` of the first history entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

const SEQ_KEY: &[u8] = b"seq";
const LIMITS_KEY: &[u8] = b"limits";
const OFFLINE_KEY: &[u8] = b"offline";
const HEAD_KEY: &[u8] = b"history_head";
const CODE_LOCK_KEY: &[u8] = b"code_lock";

/// Wrong spoken codes in a row, and until when payments that need a code are
/// locked: kept in the store, so a restart neither lifts a lockout nor
/// forgets the wrong codes that lead to one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeLock {
    pub wrong_codes: u32,
    /// Unix milliseconds.
    pub locked_until: Option<u64>,
}

impl CodeLock {
    /// The dialog's lock: `until` on the monotonic clock, read at `now`,
    /// kept in wall-clock milliseconds from `clock_ms`.
    pub fn at(
        wrong_codes: u32,
        until: Option<tokio::time::Instant>,
        now: tokio::time::Instant,
        clock_ms: u64,
    ) -> CodeLock {
        CodeLock {
            wrong_codes,
            locked_until: until.map(|u| {
                let left = u.saturating_duration_since(now).as_millis();
                clock_ms.saturating_add(u64::try_from(left).unwrap_or(u64::MAX))
            }),
        }
    }

    /// What is left of the lockout at `clock_ms`, if one was kept.
    pub fn left(&self, clock_ms: u64) -> Option<std::time::Duration> {
        self.locked_until
            .map(|until| std::time::Duration::from_millis(until.saturating_sub(clock_ms)))
    }

    /// Whether keeping it changes what matters of `kept`: the count of
    /// wrong codes, or whether a lockout runs.
    pub fn differs(&self, kept: &CodeLock) -> bool {
        (self.wrong_codes, self.locked_until.is_some())
            != (kept.wrong_codes, kept.locked_until.is_some())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store database error: {0}")]
    Db(#[from] sled::Error),
    #[error("store file sync failed: {0}")]
    Io(#[from] io::Error),
    /// The change is in the store's memory, but the disk did not take it:
    /// it may or may not survive a restart.
    #[error("the disk did not take the store's changes: {0}")]
    NotDurable(io::Error),
    #[error("corrupt {what} record in the store: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("could not encode a store record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("request {0} was already committed")]
    DuplicateRequest(Uuid),
    /// A money rule refused the payment: a decision, not a fault.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The agent's mandate refused its task: a decision, not a fault.
    #[error("refused: {0}")]
    AgentRefused(AgentRefusal),
    #[error("history chain broken at entry {index}: {detail}")]
    ChainBroken { index: u64, detail: String },
    /// A `Paid` or `Declined` entry whose stored gateway answer does not
    /// check against the trusted gateway key or does not match the entry.
    #[error("history entry {index}: the gateway's signed answer does not check: {detail}")]
    GatewayAnswer { index: u64, detail: String },
    /// The history is sealed with a secret this device no longer has: it can
    /// be neither checked nor extended (a new secret would not make the old
    /// entries check, so none is made).
    #[error(
        "the history's device secret {} is missing: its sealed entries cannot be checked and no entry can be added (restore that file from the device's backup)",
        path.display()
    )]
    HistorySecretMissing { path: PathBuf },
    #[error(transparent)]
    HistoryKey(#[from] HistoryKeyError),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub path: PathBuf,
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: u64,
    /// The limits until the user sets some (the profile's `[limits]`).
    #[serde(default)]
    pub initial_limits: Limits,
    /// The device secret the history is sealed with; `None`: `history.key`
    /// beside the store (in the data directory, beside `device.key`).
    #[serde(default)]
    pub history_secret: Option<PathBuf>,
    /// How long opening waits while another process holds the store.
    #[serde(skip, default = "default_lock_wait")]
    pub lock_wait: std::time::Duration,
}

fn default_cache_bytes() -> u64 {
    DEFAULT_CACHE_BYTES
}

fn default_lock_wait() -> std::time::Duration {
    voicepay_core::durable::LOCK_WAIT
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            initial_limits: Limits::default(),
            history_secret: None,
            lock_wait: voicepay_core::durable::LOCK_WAIT,
        }
    }

    /// Opening gives up after `wait` while another process holds the store
    /// (zero: at once).
    pub fn with_lock_wait(mut self, wait: std::time::Duration) -> StoreConfig {
        self.lock_wait = wait;
        self
    }

    /// Where the history's device secret is (made at the first open).
    pub fn history_secret_path(&self) -> PathBuf {
        self.history_secret
            .clone()
            .unwrap_or_else(|| self.path.with_file_name(crate::history_key::FILE_NAME))
    }

    /// With the limits a store answers until the user sets its own.
    pub fn with_initial_limits(mut self, limits: Limits) -> StoreConfig {
        self.initial_limits = limits;
        self
    }
}

/// What `commit_payment` enforces; the policy decides which limits apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpendChecks {
    pub daily_limit: Option<Money>,
    pub offline: Option<OfflineFloor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPayment {
    pub request_id: Uuid,
    pub seq: u64,
    pub amount: Money,
    pub payee: String,
    pub created_at: u64,
    pub offline: bool,
    /// The agent and task it pays for, if an agent asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRef>,
    /// The exact signed bytes to (re)publish.
    #[serde(with = "hex_bytes")]
    pub envelope: Vec<u8>,
}

impl PendingPayment {
    /// One line for people: "#3 0192... 36.00 CNY to Heytea (offline)".
    pub fn summary(&self) -> String {
        format!(
            "#{} {} {} to {}{}",
            self.seq,
            self.request_id,
            self.amount,
            self.payee,
            if self.offline { " (offline)" } else { "" }
        )
    }

    /// The outbox entry of a signed request: `envelope` is its exact bytes.
    pub fn of(
        request: &voicepay_core::protocol::PaymentRequest,
        envelope: Vec<u8>,
    ) -> PendingPayment {
        PendingPayment {
            request_id: request.request_id,
            seq: request.seq,
            amount: request.amount,
            payee: request.payee.clone(),
            created_at: request.created_at,
            offline: request.offline,
            agent: request.agent.clone(),
            envelope,
        }
    }
}

/// The gateway's verified answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    Approved {
        gateway_txn_id: String,
        processed_at: u64,
        response: Vec<u8>,
    },
    Declined {
        reason: String,
        processed_at: u64,
        response: Vec<u8>,
    },
}

/// One line of the history. `Paid` and `Declined` come only from the gateway
/// (via `settle`) and keep both signed envelopes as evidence; `Refused` and
/// `Cancelled` never left the device (via `record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEvent {
    Paid {
        request_id: Uuid,
        seq: u64,
        amount: Money,
        payee: String,
        /// The day the amount was reserved on; `spending` counts it there.
        day: u32,
        created_at: u64,
        offline: bool,
        gateway_txn_id: String,
        processed_at: u64,
        #[serde(with = "hex_bytes")]
        request: Vec<u8>,
        #[serde(with = "hex_bytes")]
        response: Vec<u8>,
        /// Left out when none, so older entries keep their hashes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentRef>,
    },
    Declined {
        request_id: Uuid,
        seq: u64,
        amount: Money,
        payee: String,
        day: u32,
        created_at: u64,
        offline: bool,
        reason: String,
        processed_at: u64,
        #[serde(with = "hex_bytes")]
        request: Vec<u8>,
        #[serde(with = "hex_bytes")]
        response: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentRef>,
    },
    /// Declined on the device (policy, limits) before anything was signed.
    Refused {
        amount: Money,
        payee: String,
        at: u64,
        /// Typed; words in entries written before reasons were typed.
        reason: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentRef>,
    },
    Cancelled {
        amount: Money,
        payee: String,
        at: u64,
        reason: Reason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<AgentRef>,
    },
}

impl HistoryEvent {
    /// The agent and task it was for, if an agent asked.
    pub fn agent(&self) -> Option<&AgentRef> {
        match self {
            HistoryEvent::Paid { agent, .. }
            | HistoryEvent::Declined { agent, .. }
            | HistoryEvent::Refused { agent, .. }
            | HistoryEvent::Cancelled { agent, .. } => agent.as_ref(),
        }
    }

    /// When it happened (unix ms): the gateway's time for answers.
    pub fn at(&self) -> u64 {
        match self {
            HistoryEvent::Paid { processed_at, .. }
            | HistoryEvent::Declined { processed_at, .. } => *processed_at,
            HistoryEvent::Refused { at, .. } | HistoryEvent::Cancelled { at, .. } => *at,
        }
    }
}

/// How an entry's `hash` was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seal {
    /// Plain SHA-256: entries written before the chain was keyed. Anyone can
    /// recompute it, so a keyed store accepts none (they are resealed once,
    /// when the secret is made).
    #[default]
    Sha256,
    /// HMAC-SHA256 under the device secret.
    HmacSha256,
}

impl Seal {
    fn is_sha256(&self) -> bool {
        *self == Seal::Sha256
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub index: u64,
    pub prev_hash: String,
    /// Hex of the canonical bytes of (index, prev_hash, event), sealed as `seal` says.
    pub hash: String,
    /// Left out for `sha256`, so entries written before keying read as they were.
    #[serde(default, skip_serializing_if = "Seal::is_sha256")]
    pub seal: Seal,
    pub event: HistoryEvent,
}

impl HistoryEntry {
    pub fn at(&self) -> u64 {
        self.event.at()
    }

    fn seal(
        index: u64,
        prev_hash: String,
        event: HistoryEvent,
        key: &HistoryKey,
    ) -> Result<HistoryEntry, StoreError> {
        let hash = key.seal(&canonical(KEYED, index, &prev_hash, &event)?);
        Ok(HistoryEntry {
            index,
            prev_hash,
            hash,
            seal: Seal::HmacSha256,
            event,
        })
    }

    /// Whether `hash` is this entry's seal (under `key` for a keyed entry).
    fn sealed_by(&self, key: Option<&HistoryKey>) -> Result<bool, StoreError> {
        Ok(match (self.seal, key) {
            (Seal::Sha256, _) => {
                legacy_hash(self.index, &self.prev_hash, &self.event)? == self.hash
            }
            (Seal::HmacSha256, Some(key)) => key.opens(
                &canonical(KEYED, self.index, &self.prev_hash, &self.event)?,
                &self.hash,
            ),
            (Seal::HmacSha256, None) => false,
        })
    }
}

/// The sealed form. serde_json writes struct fields in declaration order, so
/// the bytes are deterministic; `v` lets a later format change keep old seals
/// (1: SHA-256, 2: HMAC-SHA256 under the device secret).
#[derive(Serialize)]
struct Canonical<'a> {
    v: u32,
    index: u64,
    prev_hash: &'a str,
    event: &'a HistoryEvent,
}

const LEGACY: u32 = 1;
const KEYED: u32 = 2;

fn canonical(
    v: u32,
    index: u64,
    prev_hash: &str,
    event: &HistoryEvent,
) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(&Canonical {
        v,
        index,
        prev_hash,
        event,
    })?)
}

/// The unkeyed hash of entries written before the chain was keyed.
fn legacy_hash(index: u64, prev_hash: &str, event: &HistoryEvent) -> Result<String, StoreError> {
    let bytes = canonical(LEGACY, index, prev_hash, event)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The outbox value: the payment plus the day its amount was reserved on, so
/// a decline releases the right counter.
#[derive(Serialize, Deserialize)]
struct OutboxRecord {
    day: u32,
    payment: PendingPayment,
}

/// `agent_tasks`' value: a task let in, the terms it came with, and what
/// its agent was last told (the device's record, which a retry or a status
/// question is answered from). Records of earlier releases hold only
/// `expires_at` and `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub expires_at: u64,
    pub state: TaskState,
    /// [`voicepay_core::protocol::AgentTask::terms_sha256`] of the task let in.
    #[serde(default)]
    pub terms: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub request_id: Option<Uuid>,
    /// When the agent was last told, Unix milliseconds.
    #[serde(default)]
    pub at: Option<u64>,
}

/// Where the chain ends; kept so an append inside a transaction needs no scan.
#[derive(Serialize, Deserialize)]
struct HistoryHead {
    next_index: u64,
    last_hash: String,
    /// HMAC of the head under the device secret: without it, whoever can
    /// rewrite the store could cut entries off the end and move the head back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mac: Option<String>,
}

/// The sealed form of the head.
#[derive(Serialize)]
struct CanonicalHead<'a> {
    v: u32,
    head: bool,
    next_index: u64,
    last_hash: &'a str,
}

impl HistoryHead {
    fn sealed(next_index: u64, last_hash: String, key: &HistoryKey) -> TxResult<HistoryHead> {
        let mac = key.seal(&encode(&CanonicalHead {
            v: KEYED,
            head: true,
            next_index,
            last_hash: &last_hash,
        })?);
        Ok(HistoryHead {
            next_index,
            last_hash,
            mac: Some(mac),
        })
    }

    fn sealed_by(&self, key: &HistoryKey) -> Result<bool, StoreError> {
        let Some(mac) = &self.mac else {
            return Ok(false);
        };
        let bytes = serde_json::to_vec(&CanonicalHead {
            v: KEYED,
            head: true,
            next_index: self.next_index,
            last_hash: &self.last_hash,
        })?;
        Ok(key.opens(&bytes, mac))
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

trait OrAbort<T> {
    fn or_abort(self) -> TxResult<T>;
}

impl<T> OrAbort<T> for Result<T, StoreError> {
    fn or_abort(self) -> TxResult<T> {
        self.map_err(ConflictableTransactionError::Abort)
    }
}

impl<T> OrAbort<T> for Result<T, Refusal> {
    fn or_abort(self) -> TxResult<T> {
        self.map_err(|r| ConflictableTransactionError::Abort(StoreError::Refused(r)))
    }
}

impl<T> OrAbort<T> for Result<T, MoneyError> {
    fn or_abort(self) -> TxResult<T> {
        self.map_err(|e| ConflictableTransactionError::Abort(e.into()))
    }
}

fn from_tx(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

fn fixed<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("expected {N} bytes, found {}", bytes.len()),
    })
}

fn spend_key(day: u32, currency: Currency) -> [u8; 7] {
    let mut key = [0u8; 7];
    key[..4].copy_from_slice(&day.to_be_bytes());
    key[4..].copy_from_slice(currency.code().as_bytes());
    key
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    outbox: Tree,
    requests: Tree,
    spend: Tree,
    history: Tree,
    state: Tree,
    /// Payees the user added (`voicepay payees add`), by name.
    payees: Tree,
    agents: Tree,
    agent_spend: Tree,
    agent_tasks: Tree,
    /// Answered by [`Store::limits`] while none are stored.
    initial_limits: Limits,
    /// The history's device secret: `None` only when the history is sealed
    /// with one whose file is gone (then it is neither checked nor extended).
    history_key: Option<Arc<HistoryKey>>,
    history_secret: PathBuf,
    /// Entries written before the chain was keyed, resealed by this open.
    resealed: usize,
}

/// How [`Store::walk_chain`] checks the chain.
#[derive(Clone, Copy)]
enum Walk<'a> {
    /// Every entry and the head sealed under the device secret.
    Keyed(&'a HistoryKey),
    /// A chain from before keying: plain SHA-256 throughout, no head seal.
    Unkeyed,
    /// The plain-hashed entries at the start, up to the first sealed one
    /// (the head is not checked): where a chain left unsealed breaks.
    UnkeyedPrefix,
}

/// What [`Store::verify_history`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCheck {
    pub entries: usize,
    /// `Paid` and `Declined` entries, whose stored gateway answer was checked.
    pub gateway_answers: usize,
}

impl Store {
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let db = voicepay_core::durable::open_db(
            &sled::Config::new()
                .path(&config.path)
                .cache_capacity(config.cache_bytes),
            &config.path,
            config.lock_wait,
        )?;
        let mut store = Store {
            outbox: db.open_tree("outbox")?,
            requests: db.open_tree("requests")?,
            spend: db.open_tree("spend")?,
            history: db.open_tree("history")?,
            state: db.open_tree("state")?,
            payees: db.open_tree("payees")?,
            agents: db.open_tree("agents")?,
            agent_spend: db.open_tree("agent_spend")?,
            agent_tasks: db.open_tree("agent_tasks")?,
            initial_limits: config.initial_limits.clone(),
            path: config.path.clone(),
            db,
            history_key: None,
            history_secret: config.history_secret_path(),
            resealed: 0,
        };
        store.key_history()?;
        Ok(store)
    }

    /// Loads the history's device secret; on first use makes it and reseals
    /// a history written before the chain was keyed, if that still checks.
    /// The new secret is written as `history.key.new` and renamed only once
    /// the reseal is durable, so a crash in between is finished on the next
    /// open. A store already sealed whose secret is gone gets no new one.
    fn key_history(&mut self) -> Result<(), StoreError> {
        if let Some(key) = HistoryKey::load_file(&self.history_secret)? {
            self.history_key = Some(Arc::new(key));
            return Ok(());
        }
        let pending = pending_secret_path(&self.history_secret);
        let key = match HistoryKey::load_file(&pending)? {
            Some(key) => key,
            None if self.history_is_keyed()? => return Ok(()),
            None => HistoryKey::create_file(&pending)?,
        };
        self.resealed = self.reseal_unkeyed(&key)?;
        std::fs::rename(&pending, &self.history_secret).map_err(|source| HistoryKeyError::Io {
            path: self.history_secret.clone(),
            source,
        })?;
        if let Some(dir) = self.history_secret.parent()
            && let Ok(dir) = std::fs::File::open(dir)
        {
            // Best effort, as in `durable`: the secret's bytes are already synced.
            let _ = dir.sync_all();
        }
        self.history_key = Some(Arc::new(key));
        Ok(())
    }

    /// Whether any entry, or the head, is sealed with a device secret.
    fn history_is_keyed(&self) -> Result<bool, StoreError> {
        for item in self.history.iter() {
            let (_, value) = item?;
            if serde_json::from_slice::<HistoryEntry>(&value)
                .is_ok_and(|e| e.seal == Seal::HmacSha256)
            {
                return Ok(true);
            }
        }
        let head = self.state.get(HEAD_KEY)?;
        Ok(head_of(head.as_deref()).is_ok_and(|h| h.mac.is_some()))
    }

    /// Reseals, in one transaction, a history written before the chain was
    /// keyed: only if none of it is keyed and its unkeyed chain checks (a
    /// broken one is left as it is, for `verify_history` to report).
    fn reseal_unkeyed(&self, key: &HistoryKey) -> Result<usize, StoreError> {
        if self.history.is_empty() || self.history_is_keyed()? {
            return Ok(0);
        }
        let entries = match self.walk_chain(Walk::Unkeyed) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(%error, "the history from before the chain was keyed does not check: left unsealed");
                return Ok(0);
            }
        };
        (&self.history, &self.state)
            .transaction(|(history, state)| {
                let mut prev = GENESIS_HASH.to_string();
                for entry in &entries {
                    let sealed = HistoryEntry::seal(entry.index, prev, entry.event.clone(), key)
                        .or_abort()?;
                    history.insert(&sealed.index.to_be_bytes(), encode(&sealed)?)?;
                    prev = sealed.hash;
                }
                let head = HistoryHead::sealed(entries.len() as u64, prev, key)?;
                state.insert(HEAD_KEY, encode(&head)?)?;
                Ok(())
            })
            .map_err(from_tx)?;
        self.flush_durably()?;
        tracing::info!(
            entries = entries.len(),
            secret = %self.history_secret.display(),
            "the history from before the chain was keyed checked and is now sealed with the device secret"
        );
        Ok(entries.len())
    }

    /// How many entries from before the chain was keyed this open resealed.
    pub fn resealed_at_open(&self) -> usize {
        self.resealed
    }

    /// The device secret, or why the history cannot be extended.
    fn history_key(&self) -> Result<Arc<HistoryKey>, StoreError> {
        self.history_key
            .clone()
            .ok_or_else(|| StoreError::HistorySecretMissing {
                path: self.history_secret.clone(),
            })
    }

    /// Fails if the history is sealed with a secret this device lacks: a
    /// daemon must not start paying into a history it cannot extend.
    pub fn check_history_secret(&self) -> Result<(), StoreError> {
        self.history_key().map(|_| ())
    }

    /// The next per-device sequence number (first is 1). It is durable before
    /// it is returned: a crash after signing can never hand the number out again.
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        loop {
            let old = self.state.get(SEQ_KEY)?;
            let current = match &old {
                Some(bytes) => u64::from_be_bytes(fixed("seq", bytes)?),
                None => 0,
            };
            let next = current
                .checked_add(1)
                .ok_or_else(|| StoreError::Invalid("sequence numbers exhausted".into()))?;
            let swapped =
                self.state
                    .compare_and_swap(SEQ_KEY, old, Some(&next.to_be_bytes()[..]))?;
            if swapped.is_ok() {
                self.flush_durably()?;
                return Ok(next);
            }
        }
    }

    /// The user's limits; the profile's until the user sets any.
    pub fn limits(&self) -> Result<Limits, StoreError> {
        match self.state.get(LIMITS_KEY)? {
            Some(bytes) => decode("limits", &bytes),
            None => Ok(self.initial_limits.clone()),
        }
    }

    pub fn set_limits(&self, limits: &Limits) -> Result<(), StoreError> {
        let amounts = [
            Some(limits.auto_pay),
            limits.daily,
            limits.payment_code_above,
        ];
        if amounts.iter().flatten().any(|m| m.minor < 0) {
            return Err(StoreError::Invalid("a limit cannot be negative".into()));
        }
        self.state.insert(LIMITS_KEY, serde_json::to_vec(limits)?)?;
        self.flush_durably()
    }

    /// The payment-code lock as last kept (none: no wrong code yet).
    pub fn code_lock(&self) -> Result<CodeLock, StoreError> {
        match self.state.get(CODE_LOCK_KEY)? {
            Some(bytes) => decode("code lock", &bytes),
            None => Ok(CodeLock::default()),
        }
    }

    pub fn set_code_lock(&self, lock: &CodeLock) -> Result<(), StoreError> {
        self.state
            .insert(CODE_LOCK_KEY, serde_json::to_vec(lock)?)?;
        self.flush_durably()
    }

    /// The payees the user added, in name order.
    pub fn payees(&self) -> Result<Vec<crate::payee::Payee>, StoreError> {
        self.payees
            .iter()
            .values()
            .map(|v| decode("payee", &v?))
            .collect()
    }

    /// Adds a payee, or replaces the entry of the same name; durable on return.
    pub fn put_payee(&self, payee: &crate::payee::Payee) -> Result<(), StoreError> {
        self.put_named(&self.payees, &payee.name, payee)
    }

    /// Whether there was such a payee; durable on return.
    pub fn remove_payee(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_named(&self.payees, name)
    }

    /// The registered agents, in name order.
    pub fn agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.agents
            .iter()
            .values()
            .map(|v| decode("agent", &v?))
            .collect()
    }

    pub fn agent(&self, name: &str) -> Result<Option<Agent>, StoreError> {
        self.agents
            .get(name.as_bytes())?
            .map(|v| decode("agent", &v))
            .transpose()
    }

    /// Registers an agent, or replaces the one of the same name; durable on return.
    pub fn put_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.put_named(&self.agents, &agent.name, agent)
    }

    /// Whether there was such an agent; durable on return. What it spent
    /// stays counted, should it be added again.
    pub fn remove_agent(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_named(&self.agents, name)
    }

    /// A JSON record under its name in `tree`; durable on return.
    fn put_named<T: Serialize>(
        &self,
        tree: &Tree,
        name: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        tree.insert(name.as_bytes(), serde_json::to_vec(record)?)?;
        self.flush_durably()
    }

    /// Whether `tree` held a record of that name; durable on return.
    fn remove_named(&self, tree: &Tree, name: &str) -> Result<bool, StoreError> {
        let removed = tree.remove(name.as_bytes())?.is_some();
        self.flush_durably()?;
        Ok(removed)
    }

    /// Stops one agent, or every agent when `name` is `None`: none of its
    /// tasks is committed after this returns (the commit reads the mark in
    /// its transaction). The names stopped; durable on return.
    pub fn revoke_agents(&self, name: Option<&str>, at_ms: u64) -> Result<Vec<String>, StoreError> {
        let mut stopped = Vec::new();
        for agent in self.agents()? {
            if name.is_some_and(|n| n != agent.name) || agent.revoked_at.is_some() {
                continue;
            }
            let revoked = Agent {
                revoked_at: Some(at_ms),
                ..agent
            };
            self.agents
                .insert(revoked.name.as_bytes(), serde_json::to_vec(&revoked)?)?;
            stopped.push(revoked.name);
        }
        self.flush_durably()?;
        Ok(stopped)
    }

    /// What `agent` has reserved on `day` and over its life (minor units of
    /// its mandate's currency), payments waiting for an answer included.
    pub fn agent_spent(&self, agent: &str, day: u32) -> Result<(i64, i64), StoreError> {
        let read = |key: Vec<u8>| -> Result<i64, StoreError> {
            match self.agent_spend.get(key)? {
                Some(bytes) => Ok(i64::from_be_bytes(fixed("agent spend", &bytes)?)),
                None => Ok(0),
            }
        };
        Ok((
            read(agent_spend_key(agent, Some(day)))?,
            read(agent_spend_key(agent, None))?,
        ))
    }

    /// Claims a task id for `agent`: `false` if it was ever claimed before
    /// (a replay). Durable on return, so a replay after a restart is caught.
    pub fn claim_task(
        &self,
        agent: &str,
        task_id: &str,
        expires_at: u64,
        terms: &str,
    ) -> Result<bool, StoreError> {
        let record = serde_json::to_vec(&TaskRecord {
            expires_at,
            state: TaskState::Pending,
            terms: Some(terms.to_owned()),
            reason: None,
            request_id: None,
            at: None,
        })?;
        let claimed = self
            .agent_tasks
            .compare_and_swap(agent_task_key(agent, task_id), None::<&[u8]>, Some(record))?
            .is_ok();
        self.flush_durably()?;
        Ok(claimed)
    }

    /// Where a task stands, as just told to its agent: durable before the
    /// agent hears it, so what it is told later agrees.
    pub fn record_task_status(&self, status: &TaskStatus) -> Result<(), StoreError> {
        let key = agent_task_key(&status.agent_id, &status.task_id);
        let mut record = match self.agent_tasks.get(&key)? {
            Some(bytes) => decode::<TaskRecord>("agent task", &bytes)?,
            None => TaskRecord {
                expires_at: 0,
                state: status.status,
                terms: status.terms.clone(),
                reason: None,
                request_id: None,
                at: None,
            },
        };
        record.state = status.status;
        record.reason.clone_from(&status.reason);
        // The request made for it stays named once it was.
        record.request_id = status.request_id.or(record.request_id);
        record.at = Some(status.at);
        self.agent_tasks.insert(key, serde_json::to_vec(&record)?)?;
        self.flush_durably()
    }

    /// The device's record of a task, if it ever let it in.
    pub fn task_record(
        &self,
        agent: &str,
        task_id: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        self.agent_tasks
            .get(agent_task_key(agent, task_id))?
            .map(|bytes| decode::<TaskRecord>("agent task", &bytes))
            .transpose()
    }

    pub fn task_state(&self, agent: &str, task_id: &str) -> Result<Option<TaskState>, StoreError> {
        Ok(self.task_record(agent, task_id)?.map(|r| r.state))
    }

    /// In one transaction: checks the daily limit and the offline floor,
    /// and for an agent's task its mandate (it may have been stopped or
    /// spent meanwhile); reserves the amount on `day` for the user and the
    /// agent, bumps the offline counters and writes the outbox entry; then
    /// makes it durable. Nothing is written on refusal.
    pub fn commit_payment(
        &self,
        pending: &PendingPayment,
        day: u32,
        checks: &SpendChecks,
    ) -> Result<(), StoreError> {
        let amount = pending.amount;
        if !amount.is_positive() {
            return Err(StoreError::Invalid(format!("payment amount {amount}")));
        }
        let record = serde_json::to_vec(&OutboxRecord {
            day,
            payment: pending.clone(),
        })?;
        let seq_key = pending.seq.to_be_bytes();
        let counter_key = spend_key(day, amount.currency);
        (
            &self.outbox,
            &self.requests,
            &self.spend,
            &self.state,
            &self.agents,
            &self.agent_spend,
        )
            .transaction(|(outbox, requests, spend, state, agents, agent_spend)| {
                if requests.get(pending.request_id.as_bytes())?.is_some() {
                    return abort(StoreError::DuplicateRequest(pending.request_id));
                }
                if outbox.get(seq_key)?.is_some() {
                    let msg = format!("seq {} is already in the outbox", pending.seq);
                    return abort(StoreError::Invalid(msg));
                }
                let spent = read_counter(spend, &counter_key, amount.currency)?;
                let after = match checks.daily_limit {
                    Some(limit) => policy::check_daily(limit, spent, amount).or_abort()?,
                    None => spent.checked_add(amount).or_abort()?,
                };
                if pending.offline {
                    let counters = read_offline(state)?;
                    if let Some(floor) = &checks.offline {
                        policy::check_floor(floor, &counters, amount, pending.created_at)
                            .or_abort()?;
                    }
                    let counted =
                        policy::count_offline(counters, amount, pending.created_at).or_abort()?;
                    state.insert(OFFLINE_KEY, encode(&counted)?)?;
                }
                if let Some(agent) = &pending.agent {
                    reserve_for_agent(agents, agent_spend, agent, pending, day)?;
                }
                spend.insert(&counter_key, &after.minor.to_be_bytes())?;
                outbox.insert(&seq_key, record.as_slice())?;
                requests.insert(pending.request_id.as_bytes(), &seq_key)?;
                Ok(())
            })
            .map_err(from_tx)?;
        self.flush_durably()
    }

    /// Waiting payments, in seq order.
    pub fn outbox(&self) -> Result<Vec<PendingPayment>, StoreError> {
        self.outbox
            .iter()
            .map(|item| {
                let (key, value) = item?;
                outbox_record(&key, &value).map(|r| r.payment)
            })
            .collect()
    }

    /// The waiting payments that may be sent: all but those of agents the
    /// user stopped (or removed) since they were approved. Those stay in the
    /// outbox unsent (nothing is lost) until the agent is added again; one
    /// already sent before the stop is answered and settled as any other.
    pub fn sendable_outbox(&self) -> Result<Vec<PendingPayment>, StoreError> {
        let mut sendable = Vec::new();
        for payment in self.outbox()? {
            if let Some(task) = &payment.agent {
                let stopped = self
                    .agent(&task.agent_id)?
                    .is_none_or(|agent| agent.revoked_at.is_some());
                if stopped {
                    tracing::info!(request_id = %payment.request_id, agent = %task.agent_id, "withheld: the agent was stopped");
                    continue;
                }
            }
            sendable.push(payment);
        }
        Ok(sendable)
    }

    /// How many payments wait for an answer (no record is decoded).
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        // Not `Tree::len`: it counts errors as entries, and after an I/O
        // error sled's iterator yields errors for ever.
        let mut waiting = 0;
        for key in self.outbox.iter().keys() {
            key?;
            waiting += 1;
        }
        Ok(waiting)
    }

    pub fn outbox_get(&self, request_id: Uuid) -> Result<Option<PendingPayment>, StoreError> {
        let Some(seq) = self.requests.get(request_id.as_bytes())? else {
            return Ok(None);
        };
        match self.outbox.get(&seq)? {
            Some(value) => Ok(Some(outbox_record(&seq, &value)?.payment)),
            None => Ok(None),
        }
    }

    /// The gateway's verified answer: removes the outbox entry and appends the
    /// history entry in one transaction; a decline releases the reservation.
    /// An answer for a request not in the outbox (a repeat) changes nothing.
    pub fn settle(
        &self,
        request_id: Uuid,
        outcome: &Settlement,
    ) -> Result<Option<HistoryEntry>, StoreError> {
        let key = self.history_key()?;
        let entry = (
            &self.outbox,
            &self.requests,
            &self.spend,
            &self.history,
            &self.state,
            &self.agent_spend,
        )
            .transaction(|(outbox, requests, spend, history, state, agent_spend)| {
                let Some(seq) = requests.get(request_id.as_bytes())? else {
                    return Ok(None);
                };
                let Some(value) = outbox.get(&seq)? else {
                    return Ok(None);
                };
                let OutboxRecord { day, payment: p } = outbox_record(&seq, &value).or_abort()?;
                outbox.remove(&seq)?;
                let event = match outcome.clone() {
                    Settlement::Approved {
                        gateway_txn_id,
                        processed_at,
                        response,
                    } => HistoryEvent::Paid {
                        request_id,
                        seq: p.seq,
                        amount: p.amount,
                        payee: p.payee,
                        day,
                        created_at: p.created_at,
                        offline: p.offline,
                        gateway_txn_id,
                        processed_at,
                        request: p.envelope,
                        response,
                        agent: p.agent,
                    },
                    Settlement::Declined {
                        reason,
                        processed_at,
                        response,
                    } => {
                        let key = spend_key(day, p.amount.currency);
                        let spent = read_counter(spend, &key, p.amount.currency)?;
                        // Never below zero: an inconsistent counter must not
                        // block the settlement and leave the payment queued.
                        let left = spent.minor.saturating_sub(p.amount.minor).max(0);
                        spend.insert(&key, &left.to_be_bytes())?;
                        if let Some(agent) = &p.agent {
                            release_for_agent(agent_spend, &agent.agent_id, day, p.amount.minor)?;
                        }
                        HistoryEvent::Declined {
                            request_id,
                            seq: p.seq,
                            amount: p.amount,
                            payee: p.payee,
                            day,
                            created_at: p.created_at,
                            offline: p.offline,
                            reason,
                            processed_at,
                            request: p.envelope,
                            response,
                            agent: p.agent,
                        }
                    }
                };
                append(history, state, event, &key).map(Some)
            })
            .map_err(from_tx)?;
        if entry.is_some() {
            self.flush_durably()?;
        }
        Ok(entry)
    }

    /// Appends an event that never went to the gateway (`Refused`, `Cancelled`).
    pub fn record(&self, event: HistoryEvent) -> Result<HistoryEntry, StoreError> {
        if matches!(
            event,
            HistoryEvent::Paid { .. } | HistoryEvent::Declined { .. }
        ) {
            return Err(StoreError::Invalid(
                "gateway answers are recorded by settle, not record".into(),
            ));
        }
        let key = self.history_key()?;
        let entry = (&self.history, &self.state)
            .transaction(|(history, state)| append(history, state, event.clone(), &key))
            .map_err(from_tx)?;
        self.flush_durably()?;
        Ok(entry)
    }

    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        self.history
            .iter()
            .map(|item| decode("history", &item?.1))
            .collect()
    }

    /// Checks the whole history: every entry sealed with the device secret
    /// and linked to the one before, the head sealed where the chain ends,
    /// and every gateway answer (`Paid`, `Declined`) signed by `gateway` and
    /// saying what its entry says. `Refused` and `Cancelled` never reached the
    /// gateway and carry no signature. The first failure names its entry.
    pub fn verify_history(&self, gateway: Option<&PublicKey>) -> Result<HistoryCheck, StoreError> {
        let key = self.history_key()?;
        let entries = match self.walk_chain(Walk::Keyed(&key)) {
            Ok(entries) => entries,
            // Entries from before keying, left unsealed because they did not
            // check: say where they break, not just that entry 0 is unsealed.
            Err(error) => match self.walk_chain(Walk::UnkeyedPrefix) {
                Err(StoreError::ChainBroken { index, detail }) => {
                    return Err(StoreError::ChainBroken {
                        index,
                        detail: format!(
                            "{detail} (among entries with plain hashes, never sealed with the device secret)"
                        ),
                    });
                }
                _ => return Err(error),
            },
        };
        let mut gateway_answers = 0;
        for entry in &entries {
            if check_answer(&entry.event, gateway).map_err(|detail| StoreError::GatewayAnswer {
                index: entry.index,
                detail,
            })? {
                gateway_answers += 1;
            }
        }
        Ok(HistoryCheck {
            entries: entries.len(),
            gateway_answers,
        })
    }

    /// Walks the chain from genesis and returns its entries (see [`Walk`]).
    fn walk_chain(&self, walk: Walk) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = match walk {
            Walk::Keyed(key) => Some(key),
            Walk::Unkeyed | Walk::UnkeyedPrefix => None,
        };
        let mut prev = GENESIS_HASH.to_string();
        let mut entries = Vec::new();
        let mut count: u64 = 0;
        for item in self.history.iter() {
            let (stored_key, value) = item?;
            let broken = |detail: String| StoreError::ChainBroken {
                index: count,
                detail,
            };
            if stored_key.as_ref() != count.to_be_bytes() {
                return Err(broken("entry missing or out of place".into()));
            }
            let entry: HistoryEntry =
                serde_json::from_slice(&value).map_err(|e| broken(format!("unreadable: {e}")))?;
            if entry.index != count {
                return Err(broken(format!("stored index is {}", entry.index)));
            }
            if entry.prev_hash != prev {
                return Err(broken("prev_hash does not match the previous entry".into()));
            }
            match (key, entry.seal) {
                (Some(_), Seal::Sha256) => {
                    return Err(broken(
                        "sealed with a plain hash, not the device secret: rewritten by someone without the secret".into(),
                    ));
                }
                (None, Seal::HmacSha256) if matches!(walk, Walk::UnkeyedPrefix) => {
                    return Ok(entries);
                }
                (None, Seal::HmacSha256) => {
                    return Err(broken(
                        "sealed with a device secret in an unkeyed chain".into(),
                    ));
                }
                _ => {}
            }
            if !entry.sealed_by(key)? {
                return Err(broken(match key {
                    Some(_) => "content does not match its seal under the device secret".into(),
                    None => "content does not match its hash".into(),
                }));
            }
            prev = entry.hash.clone();
            entries.push(entry);
            count += 1;
        }
        if matches!(walk, Walk::UnkeyedPrefix) {
            return Ok(entries);
        }
        // The head catches entries cut off the end of the chain; its seal,
        // a head moved back to match.
        let stored_head = self.state.get(HEAD_KEY)?;
        let head = head_of(stored_head.as_deref())?;
        let broken = |detail: String| StoreError::ChainBroken {
            index: count,
            detail,
        };
        if head.next_index != count || head.last_hash != prev {
            return Err(broken(format!(
                "history should have {} entries",
                head.next_index
            )));
        }
        if let Some(key) = key
            && stored_head.is_some()
            && !head.sealed_by(key)?
        {
            return Err(broken(
                "the chain's head is not sealed with the device secret: entries may have been cut off the end".into(),
            ));
        }
        Ok(entries)
    }

    /// Approved spend per currency over the days `from_day..=to_day`, from the history.
    pub fn spending(&self, from_day: u32, to_day: u32) -> Result<Vec<Money>, StoreError> {
        self.paid_totals(from_day, to_day, |_| true)
    }

    /// The part of [`Store::spending`] that agents' tasks paid.
    pub fn agents_spending(&self, from_day: u32, to_day: u32) -> Result<Vec<Money>, StoreError> {
        self.paid_totals(from_day, to_day, |agent| agent.is_some())
    }

    fn paid_totals(
        &self,
        from_day: u32,
        to_day: u32,
        counted: impl Fn(Option<&AgentRef>) -> bool,
    ) -> Result<Vec<Money>, StoreError> {
        let mut totals: Vec<Money> = Vec::new();
        for entry in self.history()? {
            let HistoryEvent::Paid {
                amount,
                day,
                ref agent,
                ..
            } = entry.event
            else {
                continue;
            };
            if !(from_day..=to_day).contains(&day) || !counted(agent.as_ref()) {
                continue;
            }
            match totals.iter_mut().find(|t| t.currency == amount.currency) {
                Some(total) => *total = total.checked_add(amount)?,
                None => totals.push(amount),
            }
        }
        totals.sort_by_key(|m| m.currency);
        Ok(totals)
    }

    /// The day's reserved total, including payments still in the outbox.
    pub fn spent_on_day(&self, day: u32, currency: Currency) -> Result<Money, StoreError> {
        let minor = match self.spend.get(spend_key(day, currency))? {
            Some(bytes) => i64::from_be_bytes(fixed("spend counter", &bytes)?),
            None => 0,
        };
        Ok(Money::new(minor, currency))
    }

    pub fn offline_counters(&self) -> Result<OfflineCounters, StoreError> {
        match self.state.get(OFFLINE_KEY)? {
            Some(bytes) => decode("offline counters", &bytes),
            None => Ok(OfflineCounters::default()),
        }
    }

    /// The link went down at `at_ms`: the offline age counts from here. The
    /// first call after a reset wins, so reconnect attempts do not restart it.
    pub fn mark_link_down(&self, at_ms: u64) -> Result<(), StoreError> {
        self.state
            .transaction(|state| {
                let mut counters = read_offline(state)?;
                if counters.since_ms.is_none() {
                    counters.since_ms = Some(at_ms);
                    state.insert(OFFLINE_KEY, encode(&counters)?)?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        self.flush_durably()
    }

    /// The link is back and the queue drained.
    pub fn reset_offline_counters(&self) -> Result<(), StoreError> {
        self.state.remove(OFFLINE_KEY)?;
        self.flush_durably()
    }

    /// sled flush, then fsync of the database files and directories.
    pub fn flush_durably(&self) -> Result<(), StoreError> {
        voicepay_core::durable::flush_and_sync(&self.db, &self.path).map_err(StoreError::NotDurable)
    }
}

fn encode<T: Serialize>(value: &T) -> TxResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

fn outbox_record(key: &[u8], value: &[u8]) -> Result<OutboxRecord, StoreError> {
    let record: OutboxRecord = decode("outbox", value)?;
    if key != record.payment.seq.to_be_bytes() {
        return Err(StoreError::Corrupt {
            what: "outbox",
            detail: format!(
                "entry for seq {} stored under another key",
                record.payment.seq
            ),
        });
    }
    Ok(record)
}

fn read_counter(spend: &TransactionalTree, key: &[u8], currency: Currency) -> TxResult<Money> {
    let minor = match spend.get(key)? {
        Some(bytes) => i64::from_be_bytes(fixed("spend counter", &bytes).or_abort()?),
        None => 0,
    };
    Ok(Money::new(minor, currency))
}

fn read_offline(state: &TransactionalTree) -> TxResult<OfflineCounters> {
    match state.get(OFFLINE_KEY)? {
        Some(bytes) => decode("offline counters", &bytes).or_abort(),
        None => Ok(OfflineCounters::default()),
    }
}

/// `agent_spend`'s keys: the name, a 0 byte, then the day or `total`.
fn agent_spend_key(agent: &str, day: Option<u32>) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    match day {
        Some(day) => key.extend_from_slice(&day.to_be_bytes()),
        None => key.extend_from_slice(b"total"),
    }
    key
}

fn agent_task_key(agent: &str, task_id: &str) -> Vec<u8> {
    let mut key = agent.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(task_id.as_bytes());
    key
}

fn read_minor(tree: &TransactionalTree, key: &[u8]) -> TxResult<i64> {
    match tree.get(key)? {
        Some(bytes) => Ok(i64::from_be_bytes(fixed("agent spend", &bytes).or_abort()?)),
        None => Ok(0),
    }
}

/// Inside the commit: the agent as it is now (stopped? removed?), its
/// mandate checked against what it has reserved, and the amount reserved.
fn reserve_for_agent(
    agents: &TransactionalTree,
    agent_spend: &TransactionalTree,
    agent: &AgentRef,
    pending: &PendingPayment,
    day: u32,
) -> TxResult<()> {
    let refuse = |r: AgentRefusal| ConflictableTransactionError::Abort(StoreError::AgentRefused(r));
    let Some(bytes) = agents.get(agent.agent_id.as_bytes())? else {
        return Err(refuse(AgentRefusal::Unknown(agent.agent_id.clone())));
    };
    let record: Agent = decode("agent", &bytes).or_abort()?;
    if record.revoked_at.is_some() {
        return Err(refuse(OutsideMandate::Revoked.into()));
    }
    let (day_key, total_key) = (
        agent_spend_key(&agent.agent_id, Some(day)),
        agent_spend_key(&agent.agent_id, None),
    );
    let (today, total) = (
        read_minor(agent_spend, &day_key)?,
        read_minor(agent_spend, &total_key)?,
    );
    record
        .mandate
        .check(
            pending.amount,
            &pending.payee,
            today,
            total,
            pending.created_at,
        )
        .map_err(|outside| refuse(outside.into()))?;
    let add = |spent: i64| {
        spent.checked_add(pending.amount.minor).ok_or_else(|| {
            ConflictableTransactionError::Abort(StoreError::Invalid("agent spend overflows".into()))
        })
    };
    agent_spend.insert(day_key, &add(today)?.to_be_bytes())?;
    agent_spend.insert(total_key, &add(total)?.to_be_bytes())?;
    Ok(())
}

/// A declined agent payment gives its reservation back.
fn release_for_agent(
    agent_spend: &TransactionalTree,
    agent: &str,
    day: u32,
    minor: i64,
) -> TxResult<()> {
    for key in [
        agent_spend_key(agent, Some(day)),
        agent_spend_key(agent, None),
    ] {
        let left = read_minor(agent_spend, &key)?.saturating_sub(minor).max(0);
        agent_spend.insert(key, &left.to_be_bytes())?;
    }
    Ok(())
}

fn head_of(bytes: Option<&[u8]>) -> Result<HistoryHead, StoreError> {
    match bytes {
        Some(bytes) => decode("history head", bytes),
        None => Ok(HistoryHead {
            next_index: 0,
            last_hash: GENESIS_HASH.to_string(),
            mac: None,
        }),
    }
}

/// `history.key.new`: a secret made but not yet in place (its reseal may not be done).
fn pending_secret_path(path: &std::path::Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// Checks a `Paid` or `Declined` entry's stored gateway answer: signed by
/// `gateway`, answering the stored request byte for byte, and saying what
/// the entry says. `Ok(true)` if there was an answer to check.
fn check_answer(event: &HistoryEvent, gateway: Option<&PublicKey>) -> Result<bool, String> {
    let (request_id, request, response, approved, said, processed) = match event {
        HistoryEvent::Paid {
            request_id,
            request,
            response,
            gateway_txn_id,
            processed_at,
            ..
        } => (
            request_id,
            request,
            response,
            true,
            gateway_txn_id,
            processed_at,
        ),
        HistoryEvent::Declined {
            request_id,
            request,
            response,
            reason,
            processed_at,
            ..
        } => (request_id, request, response, false, reason, processed_at),
        HistoryEvent::Refused { .. } | HistoryEvent::Cancelled { .. } => return Ok(false),
    };
    let Some(gateway) = gateway else {
        return Err(
            "no gateway key is trusted on this device to check it (run `voicepay trust-gateway --public-key KEY`)".into(),
        );
    };
    let opened = voicepay_core::protocol::open(response, |kid| {
        (kid == gateway.key_id()).then_some(*gateway)
    })
    .map_err(|error| match error {
        voicepay_core::protocol::ProtocolError::UnknownKey(kid) => format!(
            "it is signed by key {kid}, not by the trusted gateway {}",
            gateway.key_id()
        ),
        other => other.to_string(),
    })?;
    let answer: PaymentResponse = opened.parse().map_err(|e| e.to_string())?;
    if answer.request_id != *request_id {
        return Err(format!(
            "it answers request {}, not this entry's {request_id}",
            answer.request_id
        ));
    }
    let sent = voicepay_core::protocol::Envelope::payload_sha256_of(request)
        .ok_or("the stored request is not a signed envelope")?;
    if answer.request_sha256 != sent {
        return Err("it answers other request bytes than the stored request".into());
    }
    let (status, answered) = match answer.status {
        ResponseStatus::Approved => ("approved", answer.gateway_txn_id.unwrap_or_default()),
        ResponseStatus::Declined => ("declined", answer.reason.unwrap_or_default()),
    };
    if approved != (answer.status == ResponseStatus::Approved) {
        let entry = if approved { "paid" } else { "declined" };
        return Err(format!(
            "the entry says {entry}, the gateway's answer {status}"
        ));
    }
    if answered != *said || answer.processed_at != *processed {
        let what = if approved { "transaction id" } else { "reason" };
        return Err(format!(
            "the entry's {what} or time differs from the gateway's answer ({answered:?} at {})",
            answer.processed_at
        ));
    }
    Ok(true)
}

fn append(
    history: &TransactionalTree,
    state: &TransactionalTree,
    event: HistoryEvent,
    key: &HistoryKey,
) -> TxResult<HistoryEntry> {
    let head = head_of(state.get(HEAD_KEY)?.as_deref()).or_abort()?;
    let entry = HistoryEntry::seal(head.next_index, head.last_hash, event, key).or_abort()?;
    let next = HistoryHead::sealed(entry.index + 1, entry.hash.clone(), key)?;
    history.insert(&entry.index.to_be_bytes(), encode(&entry)?)?;
    state.insert(HEAD_KEY, encode(&next)?)?;
    Ok(entry)
}

/// Byte fields as hex strings in JSON, rather than arrays of numbers.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::Language;
    use crate::phrasebook::Phrasebook;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const DAY: u32 = 20_000;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    /// The store in `dir/store`, its history secret in `dir/history.key`.
    fn open(dir: &Path) -> Store {
        Store::open(&StoreConfig::new(dir.join("store"))).expect("open store")
    }

    fn pending(store: &Store, amount: Money, offline: bool, created_at: u64) -> PendingPayment {
        PendingPayment {
            request_id: Uuid::now_v7(),
            seq: store.next_seq().expect("seq"),
            amount,
            payee: "Heytea".into(),
            created_at,
            offline,
            agent: None,
            envelope: signed_request(),
        }
    }

    /// A real envelope, as the device signs one (its bytes are what a
    /// gateway answer is bound to).
    fn signed_request() -> Vec<u8> {
        let payload = format!("{{\"request_id\":\"{}\"}}", Uuid::now_v7());
        let device = voicepay_core::keys::SigningKey::generate().expect("device key");
        voicepay_core::protocol::Envelope::seal(payload.as_bytes(), &device).to_bytes()
    }

    /// A gateway key and its real signed answers, each bound to one
    /// payment's request bytes.
    struct Gateway(voicepay_core::keys::SigningKey);

    impl Gateway {
        fn new() -> Gateway {
            Gateway(voicepay_core::keys::SigningKey::generate().expect("gateway key"))
        }

        fn public(&self) -> PublicKey {
            self.0.public_key()
        }

        fn signed(&self, p: &PendingPayment, approved: bool, said: &str, at: u64) -> Vec<u8> {
            let to = voicepay_core::protocol::AnswerTo {
                request_id: p.request_id,
                device_id: "dev-1".into(),
                request_sha256: voicepay_core::protocol::Envelope::payload_sha256_of(&p.envelope)
                    .expect("an envelope"),
            };
            let response = if approved {
                PaymentResponse::approved(&to, said.into(), at)
            } else {
                PaymentResponse::declined(&to, said.into(), at)
            };
            let (envelope, _) =
                voicepay_core::protocol::Envelope::seal_json(&response, &self.0).expect("seal");
            envelope.to_bytes()
        }

        fn approves(&self, p: &PendingPayment) -> Settlement {
            Settlement::Approved {
                gateway_txn_id: "gw-1".into(),
                processed_at: 1_000,
                response: self.signed(p, true, "gw-1", 1_000),
            }
        }

        fn declines(&self, p: &PendingPayment, reason: &str) -> Settlement {
            Settlement::Declined {
                reason: reason.into(),
                processed_at: 2_000,
                response: self.signed(p, false, reason, 2_000),
            }
        }
    }

    fn approved() -> Settlement {
        Settlement::Approved {
            gateway_txn_id: "gw-1".into(),
            processed_at: 1_000,
            response: b"signed answer".to_vec(),
        }
    }

    fn daily(limit: Money) -> SpendChecks {
        SpendChecks {
            daily_limit: Some(limit),
            offline: None,
        }
    }

    #[test]
    fn commit_survives_reopen_and_seq_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = {
            let store = open(dir.path());
            let p = pending(&store, cny(3600), false, 1);
            store
                .commit_payment(&p, DAY, &daily(cny(10_000)))
                .expect("commit");
            p
        };
        let store = open(dir.path());
        assert_eq!(store.outbox().expect("outbox"), vec![p.clone()]);
        assert_eq!(
            store.outbox_get(p.request_id).expect("get"),
            Some(p.clone())
        );
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(3600)
        );
        let next = store.next_seq().expect("seq");
        assert!(next > p.seq, "{next} after {}", p.seq);
        assert!(store.next_seq().expect("seq") > next);
        // The same request id is never committed twice.
        let again = store.commit_payment(&p, DAY, &SpendChecks::default());
        assert!(matches!(again, Err(StoreError::DuplicateRequest(_))));
    }

    #[test]
    fn over_the_daily_limit_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let checks = daily(cny(10_000));
        let first = pending(&store, cny(6_000), false, 1);
        store.commit_payment(&first, DAY, &checks).expect("first");
        let second = pending(&store, cny(5_000), false, 2);
        let err = store
            .commit_payment(&second, DAY, &checks)
            .expect_err("second refused");
        assert!(
            matches!(
                err,
                StoreError::Refused(Refusal::OverDailyLimit { left, .. }) if left == cny(4_000)
            ),
            "{err}"
        );
        assert_eq!(store.outbox().expect("outbox"), vec![first]);
        assert_eq!(store.outbox_get(second.request_id).expect("get"), None);
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(6_000)
        );
        // Another currency cannot be checked against a CNY limit.
        let usd = pending(&store, Money::new(100, Currency::USD), false, 3);
        let err = store
            .commit_payment(&usd, DAY, &checks)
            .expect_err("usd refused");
        assert!(
            matches!(
                err,
                StoreError::Refused(Refusal::DailyLimitInOtherCurrency { .. })
            ),
            "{err}"
        );
        store
            .commit_payment(&usd, DAY, &SpendChecks::default())
            .expect("no limit, no check");
    }

    #[test]
    fn concurrent_commits_never_overspend() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut ok = 0;
                    for _ in 0..5 {
                        let p = pending(&store, cny(1_000), false, 1);
                        match store.commit_payment(&p, DAY, &daily(cny(10_000))) {
                            Ok(()) => ok += 1,
                            Err(StoreError::Refused(Refusal::OverDailyLimit { .. })) => {}
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                    ok
                })
            })
            .collect();
        let ok: i32 = handles.into_iter().map(|h| h.join().expect("thread")).sum();
        assert_eq!(ok, 10);
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(10_000)
        );
        assert_eq!(store.outbox().expect("outbox").len(), 10);
    }

    #[test]
    fn settle_moves_outbox_to_history_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let paid = pending(&store, cny(3_600), false, 1);
        let declined = pending(&store, cny(500), false, 2);
        for p in [&paid, &declined] {
            store
                .commit_payment(p, DAY, &SpendChecks::default())
                .expect("commit");
        }
        let outbox: Vec<u64> = store
            .outbox()
            .expect("outbox")
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(outbox, vec![paid.seq, declined.seq]);

        let entry = store.settle(paid.request_id, &approved()).expect("settle");
        let entry = entry.expect("entry");
        assert_eq!((entry.index, entry.prev_hash.as_str()), (0, GENESIS_HASH));
        assert!(
            matches!(&entry.event, HistoryEvent::Paid { amount, .. } if *amount == paid.amount)
        );
        assert_eq!(store.outbox_get(paid.request_id).expect("get"), None);
        assert_eq!(
            store.settle(paid.request_id, &approved()).expect("repeat"),
            None
        );
        assert_eq!(
            store.settle(Uuid::now_v7(), &approved()).expect("unknown"),
            None
        );
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(4_100)
        );

        let no = Settlement::Declined {
            reason: "insufficient funds".into(),
            processed_at: 2_000,
            response: b"signed no".to_vec(),
        };
        let entry = store
            .settle(declined.request_id, &no)
            .expect("settle")
            .expect("entry");
        assert!(matches!(entry.event, HistoryEvent::Declined { .. }));
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(3_600)
        );
        assert!(store.outbox().expect("outbox").is_empty());
        assert_eq!(store.history().expect("history").len(), 2);
    }

    #[test]
    fn offline_floor_rules_each_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let floor = OfflineFloor {
            per_payment: cny(2_000),
            cumulative: cny(5_000),
            max_consecutive: 3,
            max_age_ms: 60_000,
        };
        let checks = SpendChecks {
            daily_limit: None,
            offline: Some(floor),
        };
        let rule = |amount, at| {
            let p = pending(&store, amount, true, at);
            match store.commit_payment(&p, DAY, &checks) {
                Ok(()) => None,
                Err(StoreError::Refused(refusal)) => Some(refusal),
                Err(e) => panic!("unexpected {e}"),
            }
        };
        assert_eq!(
            rule(cny(2_001), 0),
            Some(Refusal::OfflinePerPayment(cny(2_000)))
        );
        assert_eq!(
            rule(Money::new(100, Currency::USD), 0),
            Some(Refusal::OfflineCurrency(Currency::CNY))
        );
        assert_eq!(rule(cny(2_000), 1_000), None);
        assert_eq!(rule(cny(2_000), 2_000), None);
        assert_eq!(
            rule(cny(1_001), 3_000),
            Some(Refusal::OfflineCumulative(cny(5_000)))
        );
        assert_eq!(rule(cny(500), 4_000), None);
        assert_eq!(rule(cny(1), 5_000), Some(Refusal::OfflineConsecutive(3)));
        let counters = store.offline_counters().expect("counters");
        assert_eq!((counters.count, counters.total), (3, Some(cny(4_500))));
        assert_eq!(counters.since_ms, Some(1_000));

        store.reset_offline_counters().expect("reset");
        assert_eq!(
            store.offline_counters().expect("counters"),
            OfflineCounters::default()
        );
        store.mark_link_down(10_000).expect("down");
        store
            .mark_link_down(20_000)
            .expect("down again keeps the first");
        assert_eq!(rule(cny(100), 70_000), None);
        assert_eq!(rule(cny(100), 70_001), Some(Refusal::OfflineTooLong));
    }

    #[test]
    fn history_chain_detects_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        assert_eq!(store.verify_history(None).expect("empty").entries, 0);
        for i in 0..3 {
            let event = HistoryEvent::Cancelled {
                amount: cny(100 + i),
                payee: "Heytea".into(),
                at: 1_000,
                reason: "user said cancel".into(),
                agent: None,
            };
            store.record(event).expect("record");
        }
        let refused = HistoryEvent::Refused {
            amount: cny(1),
            payee: "x".into(),
            at: 1,
            reason: "policy".into(),
            agent: None,
        };
        store.record(refused).expect("record");
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            store
                .verify_history(None)
                .expect("intact after reopen")
                .entries,
            4
        );
        let entries = store.history().expect("history");
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        assert_eq!(entries[2].at(), 1_000);

        let key = 1u64.to_be_bytes();
        let stored = store.history.get(key).expect("get").expect("entry 1");
        let text = String::from_utf8(stored.to_vec()).expect("json");
        let forged = text.replace("\"minor\":101", "\"minor\":1");
        assert_ne!(forged, text);
        store
            .history
            .insert(key, forged.as_bytes())
            .expect("tamper");
        match store.verify_history(None) {
            Err(StoreError::ChainBroken { index, .. }) => assert_eq!(index, 1),
            other => panic!("expected a broken chain, got {other:?}"),
        }
        store.history.insert(key, &b"garbage"[..]).expect("garble");
        assert!(matches!(
            store.verify_history(None),
            Err(StoreError::ChainBroken { index: 1, .. })
        ));
        store.history.insert(key, stored).expect("restore");
        assert_eq!(store.verify_history(None).expect("restored").entries, 4);
        store.history.remove(3u64.to_be_bytes()).expect("truncate");
        assert!(matches!(
            store.verify_history(None),
            Err(StoreError::ChainBroken { index: 3, .. })
        ));
    }

    #[test]
    fn record_refuses_gateway_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let gateway = Gateway::new();
        let p = pending(&store, cny(100), false, 1);
        store
            .commit_payment(&p, DAY, &SpendChecks::default())
            .expect("commit");
        let entry = store
            .settle(p.request_id, &gateway.approves(&p))
            .expect("settle")
            .expect("entry");
        assert!(matches!(
            store.record(entry.event),
            Err(StoreError::Invalid(_))
        ));
        let checked = store
            .verify_history(Some(&gateway.public()))
            .expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (1, 1));
    }

    /// A cancellation, as the dialog records one.
    fn cancelled(minor: i64) -> HistoryEvent {
        HistoryEvent::Cancelled {
            amount: cny(minor),
            payee: "Heytea".into(),
            at: 1_000,
            reason: "user said cancel".into(),
            agent: None,
        }
    }

    /// A store with a paid, a declined and a cancelled entry, every answer
    /// really signed by `gateway`.
    fn three_entries(store: &Store, gateway: &Gateway) {
        let paid = pending(store, cny(3_600), false, 1);
        let declined = pending(store, cny(900), false, 2);
        for p in [&paid, &declined] {
            store
                .commit_payment(p, DAY, &SpendChecks::default())
                .expect("commit");
        }
        store
            .settle(paid.request_id, &gateway.approves(&paid))
            .expect("settle")
            .expect("paid");
        store
            .settle(
                declined.request_id,
                &gateway.declines(&declined, "insufficient funds"),
            )
            .expect("settle")
            .expect("declined");
        store.record(cancelled(500)).expect("record");
    }

    /// What whoever can write the store but cannot read the secret can do:
    /// change entry `at` and relink the chain after it, and the head, with
    /// the hash anyone can compute.
    fn rehash_without_the_secret(store: &Store, at: u64, change: impl Fn(&mut HistoryEvent)) {
        let mut entries = store.history().expect("history");
        change(&mut entries[at as usize].event);
        let mut prev = entries[at as usize].prev_hash.clone();
        for entry in entries.iter_mut().skip(at as usize) {
            entry.prev_hash = prev;
            entry.seal = Seal::Sha256;
            entry.hash = legacy_hash(entry.index, &entry.prev_hash, &entry.event).expect("hash");
            prev = entry.hash.clone();
            store
                .history
                .insert(
                    entry.index.to_be_bytes(),
                    serde_json::to_vec(&entry).expect("json"),
                )
                .expect("rewrite");
        }
        let head = HistoryHead {
            next_index: entries.len() as u64,
            last_hash: prev,
            mac: None,
        };
        store
            .state
            .insert(HEAD_KEY, serde_json::to_vec(&head).expect("json"))
            .expect("rewrite head");
    }

    fn broken_at(result: Result<HistoryCheck, StoreError>) -> (u64, String) {
        match result {
            Err(StoreError::ChainBroken { index, detail }) => (index, detail),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    fn bad_answer_at(result: Result<HistoryCheck, StoreError>) -> (u64, String) {
        match result {
            Err(StoreError::GatewayAnswer { index, detail }) => (index, detail),
            other => panic!("expected a gateway answer that does not check, got {other:?}"),
        }
    }

    #[test]
    fn a_history_entry_rewritten_and_rehashed_without_the_device_secret_fails_at_that_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        let store = open(dir.path());
        three_entries(&store, &gateway);
        let checked = store
            .verify_history(Some(&gateway.public()))
            .expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (3, 2));
        let secret = dir.path().join(crate::history_key::FILE_NAME);
        let mode = std::fs::metadata(&secret)
            .expect("secret")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the secret is the device's alone");

        // The declined payment made to look smaller, the whole chain after
        // it and the head recomputed: all anyone can do without the secret.
        rehash_without_the_secret(&store, 1, |event| {
            if let HistoryEvent::Declined { amount, .. } = event {
                amount.minor = 1;
            }
        });
        let (index, detail) = broken_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 1, "{detail}");
        assert!(detail.contains("not the device secret"), "{detail}");
        // Reopening does not "upgrade" the forgery: the secret is there.
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 0);
        assert_eq!(
            broken_at(store.verify_history(Some(&gateway.public()))).0,
            1
        );
    }

    #[test]
    fn a_history_entry_resealed_with_another_secret_fails_at_that_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        let store = open(dir.path());
        three_entries(&store, &gateway);
        let other = HistoryKey::from_secret(&[7u8; crate::history_key::SECRET_LEN]);
        let mut entry = store.history().expect("history").remove(2);
        if let HistoryEvent::Cancelled { amount, .. } = &mut entry.event {
            amount.minor = 50_000;
        }
        entry.hash = other
            .seal(&canonical(KEYED, entry.index, &entry.prev_hash, &entry.event).expect("bytes"));
        store
            .history
            .insert(
                2u64.to_be_bytes(),
                serde_json::to_vec(&entry).expect("json"),
            )
            .expect("rewrite");
        let (index, detail) = broken_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 2, "{detail}");
        assert!(detail.contains("does not match its seal"), "{detail}");
    }

    #[test]
    fn entries_cut_off_the_end_with_the_head_moved_back_fail_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        let store = open(dir.path());
        three_entries(&store, &gateway);
        let entries = store.history().expect("history");
        store.history.remove(2u64.to_be_bytes()).expect("cut");
        let head = HistoryHead {
            next_index: 2,
            last_hash: entries[1].hash.clone(),
            mac: None,
        };
        store
            .state
            .insert(HEAD_KEY, serde_json::to_vec(&head).expect("json"))
            .expect("move the head back");
        let (index, detail) = broken_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 2, "{detail}");
        assert!(detail.contains("head is not sealed"), "{detail}");
    }

    #[test]
    fn an_entry_whose_stored_gateway_answer_was_altered_or_signed_by_another_key_fails_naming_the_entry()
     {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        let store = open(dir.path());
        store.record(cancelled(100)).expect("record");
        let commit = |store: &Store| {
            let p = pending(store, cny(3_600), false, 1);
            store
                .commit_payment(&p, DAY, &SpendChecks::default())
                .expect("commit");
            p
        };

        // Entry 1: the gateway's real answer with its payload altered after
        // signing (a bigger transaction named): the signature breaks.
        let p = commit(&store);
        let signed = gateway.signed(&p, true, "gw-1", 1_000);
        let mut envelope: voicepay_core::protocol::Envelope =
            serde_json::from_slice(&signed).expect("envelope");
        let payload = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &envelope.payload,
        )
        .expect("payload");
        let altered = String::from_utf8(payload)
            .expect("json")
            .replace("\"gw-1\"", "\"gw-9\"");
        envelope.payload = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            altered.as_bytes(),
        );
        let forged = Settlement::Approved {
            gateway_txn_id: "gw-9".into(),
            processed_at: 1_000,
            response: envelope.to_bytes(),
        };
        store.settle(p.request_id, &forged).expect("settle");
        let (index, detail) = bad_answer_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 1, "{detail}");
        assert!(detail.contains("does not verify"), "{detail}");

        // In a store of its own: an answer signed by a key that is not the
        // trusted gateway's, then a real answer to another payment.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let p = commit(&store);
        let impostor = Gateway::new();
        store
            .settle(p.request_id, &impostor.approves(&p))
            .expect("settle");
        let (index, detail) = bad_answer_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 0, "{detail}");
        assert!(
            detail.contains(&impostor.public().key_id())
                && detail.contains(&gateway.public().key_id()),
            "names both keys: {detail}"
        );
        assert!(
            store.verify_history(Some(&impostor.public())).is_ok(),
            "it is the key that is wrong, not the chain"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let (p, other) = (commit(&store), commit(&store));
        let Settlement::Approved { response, .. } = gateway.approves(&other) else {
            unreachable!("approves approves")
        };
        let borrowed = Settlement::Approved {
            gateway_txn_id: "gw-1".into(),
            processed_at: 1_000,
            response,
        };
        store.settle(p.request_id, &borrowed).expect("settle");
        let (index, detail) = bad_answer_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 0, "{detail}");
        assert!(detail.contains("answers request"), "{detail}");

        // With no gateway key to check against, an answer cannot pass.
        let (index, detail) = bad_answer_at(store.verify_history(None));
        assert_eq!(index, 0, "{detail}");
        assert!(detail.contains("trust-gateway"), "{detail}");
    }

    #[test]
    fn refusals_and_cancellations_carry_no_gateway_signature_and_verify_without_a_gateway_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.record(cancelled(100)).expect("record");
        store
            .record(HistoryEvent::Refused {
                amount: cny(90_000),
                payee: "Heytea".into(),
                at: 2_000,
                reason: "over the daily limit".into(),
                agent: None,
            })
            .expect("record");
        let checked = store.verify_history(None).expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (2, 0));
    }

    /// Two events as voicepay wrote them before reasons were typed: the
    /// reason in words.
    const WORDED_REFUSAL: &str = r#"{"kind":"refused","amount":{"minor":3600,"currency":"CNY"},"payee":"Heytea","at":1000,"reason":"That is over your daily limit of 500 yuan; you have 10 yuan left today.","agent":{"agent_id":"kimi","task_id":"t-1"}}"#;
    const WORDED_DROP: &str = r#"{"kind":"cancelled","amount":{"minor":1200,"currency":"CNY"},"payee":"Luckin","at":2000,"reason":"no answer in time"}"#;

    /// Writes, with sled itself and the secret `secret`, a keyed history of
    /// `events` (raw JSON) as voicepay wrote it: each entry sealed over the
    /// v2 canonical bytes, the head sealed too. Returns the stored entries.
    fn write_keyed_history(dir: &Path, secret: &[u8; 32], events: &[&str]) -> Vec<String> {
        voicepay_core::durable::write_file(
            &dir.join(crate::history_key::FILE_NAME),
            secret,
            0o600,
            voicepay_core::durable::Existing::Keep,
        )
        .expect("secret");
        let key = HistoryKey::from_secret(secret);
        let db = sled::open(dir.join("store")).expect("sled");
        let (history, state) = (
            db.open_tree("history").expect("tree"),
            db.open_tree("state").expect("tree"),
        );
        let mut prev_hash = GENESIS_HASH.to_owned();
        let mut stored = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let canonical =
                format!(r#"{{"v":2,"index":{index},"prev_hash":"{prev_hash}","event":{event}}}"#);
            let hash = key.seal(canonical.as_bytes());
            let entry = format!(
                r#"{{"index":{index},"prev_hash":"{prev_hash}","hash":"{hash}","seal":"hmac_sha256","event":{event}}}"#
            );
            history
                .insert((index as u64).to_be_bytes(), entry.as_bytes())
                .expect("insert");
            stored.push(entry);
            prev_hash = hash;
        }
        let next_index = events.len();
        let mac = key.seal(
            format!(r#"{{"v":2,"head":true,"next_index":{next_index},"last_hash":"{prev_hash}"}}"#)
                .as_bytes(),
        );
        let head =
            format!(r#"{{"next_index":{next_index},"last_hash":"{prev_hash}","mac":"{mac}"}}"#);
        state.insert(HEAD_KEY, head.as_bytes()).expect("head");
        db.flush().expect("flush");
        stored
    }

    #[test]
    fn an_old_history_with_worded_reasons_still_verifies_and_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stored = write_keyed_history(dir.path(), &[7; 32], &[WORDED_REFUSAL, WORDED_DROP]);
        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 0);
        let checked = store.verify_history(None).expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (2, 0));

        let entries = store.history().expect("history");
        let written: Vec<_> = entries
            .iter()
            .map(|e| serde_json::to_string(e).expect("json"))
            .collect();
        assert_eq!(written, stored, "old entries write back byte for byte");
        assert!(matches!(
            &entries[1].event,
            HistoryEvent::Cancelled { reason: Reason::Words(words), .. } if words == "no answer in time"
        ));
        let english = Phrasebook::new(Language::English);
        let lines: Vec<_> = entries.iter().map(|e| english.history_line(e)).collect();
        assert_eq!(
            lines,
            [
                "   0 refused   36.00 CNY to Heytea: That is over your daily limit of 500 yuan; you have 10 yuan left today.  [agent kimi, task t-1]",
                "   1 cancelled 12.00 CNY to Luckin: no answer in time",
            ]
        );

        // A typed reason extends the same chain, which still verifies.
        let typed = Reason::Dropped(crate::order::DropReason::NoAnswerInTime);
        store
            .record(HistoryEvent::Cancelled {
                amount: cny(1_200),
                payee: "Luckin".into(),
                at: 3_000,
                reason: typed.clone(),
                agent: None,
            })
            .expect("record");
        drop(store);
        let store = open(dir.path());
        let checked = store.verify_history(None).expect("intact");
        assert_eq!(checked.entries, 3);
        let entries = store.history().expect("history");
        assert!(matches!(
            &entries[2].event,
            HistoryEvent::Cancelled { reason, .. } if *reason == typed
        ));
        assert_eq!(
            english.history_line(&entries[2]),
            "   2 cancelled 12.00 CNY to Luckin: no answer in time",
            "the typed drop reads as the old words did"
        );
    }

    /// Records `reason` on a refused (or, for a drop, cancelled) 36 yuan
    /// to Heytea for kimi's task t-1, and reads it back from the store
    /// opened afresh: the reason as kept, and `voicepay history`'s line.
    fn kept_and_read(reason: Reason) -> (Reason, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (amount, payee, at, agent) = (
            cny(3_600),
            "Heytea".to_owned(),
            1_000,
            Some(AgentRef {
                agent_id: "kimi".into(),
                task_id: "t-1".into(),
            }),
        );
        let event = match reason {
            Reason::Dropped(_) => HistoryEvent::Cancelled {
                amount,
                payee,
                at,
                reason,
                agent,
            },
            _ => HistoryEvent::Refused {
                amount,
                payee,
                at,
                reason,
                agent,
            },
        };
        open(dir.path()).record(event).expect("record");
        let store = open(dir.path());
        store.verify_history(None).expect("intact");
        let entry = store.history().expect("history").remove(0);
        let line = Phrasebook::new(Language::English).history_line(&entry);
        match entry.event {
            HistoryEvent::Refused { reason, .. } | HistoryEvent::Cancelled { reason, .. } => {
                (reason, line)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_is_kept_typed_and_worded_when_read() {
        let over = Reason::Policy(Refusal::OverDailyLimit {
            limit: cny(50_000),
            left: cny(1_000),
        });
        assert_eq!(
            kept_and_read(over.clone()),
            (
                over,
                "   0 refused   36.00 CNY to Heytea: That is over your daily limit of 500 yuan; you have 10 yuan left today.  [agent kimi, task t-1]".to_owned()
            )
        );
        let top_up = Reason::TopUp(policy::TopUpRefusal::UnknownProvider {
            provider: "Acme".into(),
        });
        assert_eq!(
            kept_and_read(top_up.clone()),
            (
                top_up,
                "   0 refused   36.00 CNY to Heytea: Acme is not a token provider this device knows  [agent kimi, task t-1]".to_owned()
            )
        );
    }

    #[test]
    fn a_drop_is_kept_typed_and_worded_when_read() {
        let rejected = Reason::Dropped(crate::order::DropReason::Rejected);
        assert_eq!(
            kept_and_read(rejected.clone()),
            (
                rejected,
                "   0 cancelled 36.00 CNY to Heytea: the user rejected the agent's task  [agent kimi, task t-1]".to_owned()
            )
        );
    }

    #[test]
    fn a_mandate_breach_is_kept_typed_and_worded_when_read() {
        let outside = Reason::Mandate(OutsideMandate::Daily { left: cny(500) });
        assert_eq!(
            kept_and_read(outside.clone()),
            (
                outside,
                "   0 refused   36.00 CNY to Heytea: over the agent's daily budget (5.00 CNY left today)  [agent kimi, task t-1]".to_owned()
            )
        );
        // Found again in the commit: the agent was stopped meanwhile.
        let stopped = Reason::Agent(AgentRefusal::Outside(OutsideMandate::Revoked));
        assert_eq!(
            kept_and_read(stopped.clone()),
            (
                stopped,
                "   0 refused   36.00 CNY to Heytea: the user stopped this agent  [agent kimi, task t-1]".to_owned()
            )
        );
    }

    /// The bytes voicepay wrote for a cancellation before the chain was
    /// keyed (plain SHA-256 of the v1 canonical form, no `seal` field).
    const UNKEYED_ENTRY_0: &str = r#"{"index":0,"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","hash":"491f22dad0996e369c812cc7a69afab26b37287fffa7c2f8749fab03ab193eab","event":{"kind":"cancelled","amount":{"minor":3600,"currency":"CNY"},"payee":"Heytea","at":1000,"reason":"user said cancel"}}"#;

    /// Writes, with sled itself, a history as voicepay wrote it before the
    /// chain was keyed: the entry above, then `more` chained the same way.
    /// Returns the entries.
    fn write_unkeyed_history(dir: &Path, more: Vec<HistoryEvent>) -> Vec<HistoryEntry> {
        let db = sled::open(dir.join("store")).expect("sled");
        let (history, state) = (
            db.open_tree("history").expect("tree"),
            db.open_tree("state").expect("tree"),
        );
        let first: HistoryEntry = serde_json::from_str(UNKEYED_ENTRY_0).expect("old entry");
        assert_eq!(
            serde_json::to_string(&first).expect("json"),
            UNKEYED_ENTRY_0,
            "an unkeyed entry reads and writes as it was"
        );
        let mut entries = vec![first];
        for event in more {
            let index = entries.len() as u64;
            let prev_hash = entries[entries.len() - 1].hash.clone();
            entries.push(HistoryEntry {
                hash: legacy_hash(index, &prev_hash, &event).expect("hash"),
                index,
                prev_hash,
                seal: Seal::Sha256,
                event,
            });
        }
        for entry in &entries {
            history
                .insert(
                    entry.index.to_be_bytes(),
                    serde_json::to_vec(entry).expect("json"),
                )
                .expect("insert");
        }
        let head = format!(
            r#"{{"next_index":{},"last_hash":"{}"}}"#,
            entries.len(),
            entries[entries.len() - 1].hash
        );
        state.insert(HEAD_KEY, head.as_bytes()).expect("head");
        db.flush().expect("flush");
        entries
    }

    /// A paid entry as `settle` wrote it before keying, its answer really signed.
    fn paid_before_keying(gateway: &Gateway) -> HistoryEvent {
        let p = PendingPayment {
            request_id: Uuid::now_v7(),
            seq: 1,
            amount: cny(1_800),
            payee: "Heytea".into(),
            created_at: 1,
            offline: false,
            agent: None,
            envelope: signed_request(),
        };
        HistoryEvent::Paid {
            request_id: p.request_id,
            seq: 1,
            amount: p.amount,
            payee: p.payee.clone(),
            day: DAY,
            created_at: 1,
            offline: false,
            gateway_txn_id: "gw-1".into(),
            processed_at: 1_000,
            response: gateway.signed(&p, true, "gw-1", 1_000),
            request: p.envelope,
            agent: None,
        }
    }

    #[test]
    fn a_history_written_before_the_chain_was_keyed_is_sealed_at_the_first_open_and_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        let written = write_unkeyed_history(dir.path(), vec![paid_before_keying(&gateway)]);
        let secret = dir.path().join(crate::history_key::FILE_NAME);
        assert!(!secret.exists());

        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 2);
        let checked = store
            .verify_history(Some(&gateway.public()))
            .expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (2, 1));
        let entries = store.history().expect("history");
        let events: Vec<_> = entries.iter().map(|e| e.event.clone()).collect();
        let before: Vec<_> = written.into_iter().map(|e| e.event).collect();
        assert_eq!(
            events, before,
            "what happened is kept; only the seals change"
        );
        assert!(entries.iter().all(|e| e.seal == Seal::HmacSha256));
        assert!(secret.exists());
        assert!(!pending_secret_path(&secret).exists());

        // Once: the next open finds the secret and changes nothing, and new
        // entries extend the sealed chain.
        drop(store);
        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 0);
        store.record(cancelled(200)).expect("record");
        assert_eq!(
            store
                .verify_history(Some(&gateway.public()))
                .expect("intact")
                .entries,
            3
        );
    }

    #[test]
    fn an_unkeyed_history_that_does_not_check_is_left_unsealed_and_reported_where_it_breaks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gateway = Gateway::new();
        write_unkeyed_history(dir.path(), vec![cancelled(1), cancelled(2)]);
        let db = sled::open(dir.path().join("store")).expect("sled");
        let history = db.open_tree("history").expect("tree");
        let stored = history
            .get(1u64.to_be_bytes())
            .expect("get")
            .expect("entry 1");
        let forged = String::from_utf8(stored.to_vec())
            .expect("json")
            .replace("\"minor\":1,", "\"minor\":100,");
        history
            .insert(1u64.to_be_bytes(), forged.as_bytes())
            .expect("tamper");
        db.flush().expect("flush");
        drop((history, db));

        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 0, "a broken chain is not blessed");
        let (index, detail) = broken_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 1, "{detail}");
        assert!(detail.contains("does not match its hash"), "{detail}");
        // The device goes on recording; the break is still named where it is.
        store.record(cancelled(3)).expect("record");
        let (index, detail) = broken_at(store.verify_history(Some(&gateway.public())));
        assert_eq!(index, 1, "{detail}");
        assert!(detail.contains("does not match its hash"), "{detail}");
    }

    #[test]
    fn a_first_use_cut_short_before_the_secret_was_in_place_is_finished_at_the_next_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_unkeyed_history(dir.path(), vec![cancelled(1)]);
        let secret = dir.path().join(crate::history_key::FILE_NAME);
        // The crash: the new secret written, the reseal not yet done.
        HistoryKey::create_file(&pending_secret_path(&secret)).expect("pending secret");
        let store = open(dir.path());
        assert_eq!(store.resealed_at_open(), 2);
        assert_eq!(store.verify_history(None).expect("intact").entries, 2);
        assert!(secret.exists() && !pending_secret_path(&secret).exists());
    }

    #[test]
    fn a_history_whose_secret_is_gone_is_neither_checked_nor_extended_and_gets_no_new_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        store.record(cancelled(100)).expect("record");
        drop(store);
        let secret = dir.path().join(crate::history_key::FILE_NAME);
        std::fs::remove_file(&secret).expect("lose the secret");

        let store = open(dir.path());
        fn missing<T: std::fmt::Debug>(result: Result<T, StoreError>) -> PathBuf {
            match result {
                Err(StoreError::HistorySecretMissing { path }) => path,
                other => panic!("expected the secret missing, got {other:?}"),
            }
        }
        assert_eq!(missing(store.verify_history(None)), secret);
        assert_eq!(missing(store.record(cancelled(1))), secret);
        assert_eq!(missing(store.check_history_secret()), secret);
        assert!(
            !secret.exists(),
            "no new secret that would not check the old entries"
        );
        assert_eq!(store.history().expect("still readable").len(), 1);
    }

    #[test]
    fn spending_counts_approved_payments_in_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let usd = |minor| Money::new(minor, Currency::USD);
        let no = Settlement::Declined {
            reason: "no".into(),
            processed_at: 1,
            response: vec![],
        };
        let cases = [
            (cny(1_000), DAY - 1, true),
            (cny(2_000), DAY, true),
            (usd(300), DAY + 1, true),
            (cny(4_000), DAY + 1, false),
            (cny(8_000), DAY + 7, true),
        ];
        for (amount, day, ok) in cases {
            let p = pending(&store, amount, false, 1);
            store
                .commit_payment(&p, day, &SpendChecks::default())
                .expect("commit");
            let outcome = if ok { approved() } else { no.clone() };
            store.settle(p.request_id, &outcome).expect("settle");
        }
        store
            .record(HistoryEvent::Cancelled {
                amount: cny(50_000),
                payee: "x".into(),
                at: 1,
                reason: "cancel".into(),
                agent: None,
            })
            .expect("record");
        let week = store.spending(DAY, DAY + 6).expect("spending");
        // Sorted by currency code.
        assert_eq!(week, vec![cny(2_000), usd(300)]);
        assert!(store.spending(DAY + 2, DAY + 6).expect("none").is_empty());
    }

    #[test]
    fn limits_default_and_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        assert_eq!(store.limits().expect("limits"), Limits::default());
        assert_eq!(Limits::default().auto_pay, cny(0));
        let limits = Limits {
            auto_pay: cny(5_000),
            daily: Some(cny(50_000)),
            payment_code_above: Some(cny(20_000)),
        };
        store.set_limits(&limits).expect("set");
        drop(store);
        assert_eq!(open(dir.path()).limits().expect("limits"), limits);
        let negative = Limits {
            auto_pay: cny(-1),
            ..Limits::default()
        };
        assert!(matches!(
            open(dir.path()).set_limits(&negative),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn a_new_store_answers_the_profiles_limits_until_the_user_sets_some() {
        let dir = tempfile::tempdir().expect("tempdir");
        let initial = Limits {
            auto_pay: cny(2_000),
            daily: Some(cny(30_000)),
            payment_code_above: None,
        };
        let config =
            StoreConfig::new(dir.path().join("store")).with_initial_limits(initial.clone());
        let store = Store::open(&config).expect("open");
        assert_eq!(store.limits().expect("limits"), initial);
        let mine = Limits {
            auto_pay: cny(0),
            ..initial
        };
        store.set_limits(&mine).expect("set");
        drop(store);
        assert_eq!(
            Store::open(&config)
                .expect("open")
                .limits()
                .expect("limits"),
            mine,
            "the user's choice outlives the profile's"
        );
    }

    #[test]
    fn corrupt_records_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        let p = pending(&store, cny(100), false, 1);
        store
            .commit_payment(&p, DAY, &SpendChecks::default())
            .expect("commit");
        store
            .outbox
            .insert(p.seq.to_be_bytes(), &b"\xff garbage"[..])
            .expect("garble");
        assert!(matches!(
            store.outbox(),
            Err(StoreError::Corrupt { what: "outbox", .. })
        ));
        assert!(matches!(
            store.outbox_get(p.request_id),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(
            store.settle(p.request_id, &approved()),
            Err(StoreError::Corrupt { .. })
        ));
        store
            .spend
            .insert(spend_key(DAY, Currency::CNY), &b"x"[..])
            .expect("garble");
        assert!(store.spent_on_day(DAY, Currency::CNY).is_err());
        store.state.insert(SEQ_KEY, &b"short"[..]).expect("garble");
        assert!(store.next_seq().is_err());
        store.state.insert(LIMITS_KEY, &b"{"[..]).expect("garble");
        assert!(store.limits().is_err());
    }

    /// Registers `name` with a fresh key, a daily and a total budget.
    fn put_agent(store: &Store, name: &str, daily: Option<i64>, total: Option<i64>) {
        let key = voicepay_core::keys::SigningKey::generate().expect("key");
        let agent = Agent {
            name: name.into(),
            public_key: key.public_key().to_base64url(),
            mandate: voicepay_core::policy::Mandate {
                daily: daily.map(cny),
                total: total.map(cny),
                ..voicepay_core::policy::Mandate::new(Currency::CNY)
            },
            added_at: 0,
            revoked_at: None,
        };
        store.put_agent(&agent).expect("put agent");
    }

    fn agent_pending(store: &Store, agent: &str, amount: Money) -> PendingPayment {
        PendingPayment {
            agent: Some(AgentRef {
                agent_id: agent.into(),
                task_id: Uuid::now_v7().to_string(),
            }),
            ..pending(store, amount, false, 1)
        }
    }

    fn agent_refusal(result: Result<(), StoreError>) -> AgentRefusal {
        match result {
            Err(StoreError::AgentRefused(refusal)) => refusal,
            other => panic!("expected the agent's mandate to refuse, got {other:?}"),
        }
    }

    #[test]
    fn an_agent_payment_over_its_budget_is_refused_in_the_commit_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        put_agent(&store, "kimi", Some(5_000), Some(8_000));
        let checks = daily(cny(100_000));
        let first = agent_pending(&store, "kimi", cny(3_000));
        store
            .commit_payment(&first, DAY, &checks)
            .expect("within budget");
        // Reserved on the day and over the agent's life.
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (3_000, 3_000)
        );
        assert_eq!(
            store.agent_spent("kimi", DAY + 1).expect("spent"),
            (0, 3_000)
        );

        let over_day = agent_pending(&store, "kimi", cny(2_001));
        assert_eq!(
            agent_refusal(store.commit_payment(&over_day, DAY, &checks)),
            AgentRefusal::Outside(OutsideMandate::Daily { left: cny(2_000) })
        );
        // The next day has a fresh daily budget, but not a fresh total.
        let second = agent_pending(&store, "kimi", cny(4_000));
        store
            .commit_payment(&second, DAY + 1, &checks)
            .expect("next day");
        assert_eq!(
            store.agent_spent("kimi", DAY + 1).expect("spent"),
            (4_000, 7_000)
        );
        // A third day: its daily budget is whole, the total nearly spent.
        let over_total = agent_pending(&store, "kimi", cny(1_001));
        assert_eq!(
            agent_refusal(store.commit_payment(&over_total, DAY + 2, &checks)),
            AgentRefusal::Outside(OutsideMandate::Total { left: cny(1_000) })
        );

        // Nothing of the refused ones was written anywhere.
        assert_eq!(store.outbox_len().expect("outbox"), 2);
        for refused in [&over_day, &over_total] {
            assert_eq!(store.outbox_get(refused.request_id).expect("get"), None);
        }
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (3_000, 7_000)
        );
        assert_eq!(
            store.agent_spent("kimi", DAY + 1).expect("spent"),
            (4_000, 7_000)
        );
        assert_eq!(
            store.spent_on_day(DAY, Currency::CNY).expect("spent"),
            cny(3_000)
        );
        assert_eq!(
            store.spent_on_day(DAY + 1, Currency::CNY).expect("spent"),
            cny(4_000)
        );
        assert_eq!(
            store.spent_on_day(DAY + 2, Currency::CNY).expect("spent"),
            cny(0)
        );
        assert_eq!(
            store.agent_spent("kimi", DAY + 2).expect("spent"),
            (0, 7_000)
        );
        // A refused request id was never taken: it may still be committed.
        let fits = PendingPayment {
            amount: cny(1_000),
            ..over_total
        };
        store.commit_payment(&fits, DAY + 2, &checks).expect("fits");
        assert_eq!(
            store.agent_spent("kimi", DAY + 2).expect("spent"),
            (1_000, 8_000)
        );
    }

    #[test]
    fn a_declined_agent_payment_gives_its_reservation_back_and_an_approved_one_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        put_agent(&store, "kimi", Some(5_000), Some(8_000));
        let checks = SpendChecks::default();
        let declined = agent_pending(&store, "kimi", cny(1_500));
        let paid = agent_pending(&store, "kimi", cny(2_500));
        for p in [&declined, &paid] {
            store.commit_payment(p, DAY, &checks).expect("commit");
        }
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (4_000, 4_000)
        );

        let gateway = Gateway::new();
        let no = gateway.declines(&declined, "insufficient funds");
        let entry = store
            .settle(declined.request_id, &no)
            .expect("settle")
            .expect("entry");
        assert!(matches!(entry.event, HistoryEvent::Declined { .. }));
        assert_eq!(entry.event.agent(), declined.agent.as_ref());
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (2_500, 2_500)
        );

        let entry = store
            .settle(paid.request_id, &gateway.approves(&paid))
            .expect("settle")
            .expect("entry");
        assert!(matches!(entry.event, HistoryEvent::Paid { .. }));
        assert_eq!(entry.event.agent(), paid.agent.as_ref());
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (2_500, 2_500)
        );
        let line = Phrasebook::new(Language::English).history_line(&entry);
        assert!(line.contains("[agent kimi, task "), "{line}");

        // A repeated decline gives nothing back twice.
        assert_eq!(
            store.settle(declined.request_id, &no).expect("repeat"),
            None
        );
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (2_500, 2_500)
        );

        // A later decline gives back its own amount, not the approved one's.
        let last = agent_pending(&store, "kimi", cny(700));
        store.commit_payment(&last, DAY, &checks).expect("commit");
        store
            .settle(
                last.request_id,
                &gateway.declines(&last, "insufficient funds"),
            )
            .expect("settle");
        assert_eq!(
            store.agent_spent("kimi", DAY).expect("spent"),
            (2_500, 2_500)
        );
        let checked = store
            .verify_history(Some(&gateway.public()))
            .expect("intact");
        assert_eq!((checked.entries, checked.gateway_answers), (3, 3));
        assert_eq!(
            store.spending(DAY, DAY).expect("spending"),
            vec![cny(2_500)]
        );

        // The user's own payment counts in the spending, not the agents' share.
        let own = pending(&store, cny(900), false, 1_000);
        store.commit_payment(&own, DAY, &checks).expect("commit");
        store.settle(own.request_id, &approved()).expect("settle");
        assert_eq!(
            store.spending(DAY, DAY).expect("spending"),
            vec![cny(3_400)]
        );
        assert_eq!(
            store.agents_spending(DAY, DAY).expect("agents"),
            vec![cny(2_500)]
        );
    }

    #[test]
    fn a_declined_agent_payment_brings_its_spend_back_to_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        put_agent(&store, "kimi", Some(5_000), Some(5_000));
        let p = agent_pending(&store, "kimi", cny(5_000));
        store
            .commit_payment(&p, DAY, &SpendChecks::default())
            .expect("commit");
        let no = Settlement::Declined {
            reason: "no".into(),
            processed_at: 1,
            response: vec![],
        };
        let entry = store
            .settle(p.request_id, &no)
            .expect("settle")
            .expect("entry");
        assert_eq!(entry.event.agent(), p.agent.as_ref());
        assert_eq!(store.agent_spent("kimi", DAY).expect("spent"), (0, 0));
        // The whole budget is there again.
        let again = agent_pending(&store, "kimi", cny(5_000));
        store
            .commit_payment(&again, DAY, &SpendChecks::default())
            .expect("the budget was given back");
    }

    #[test]
    fn a_stopped_agent_has_nothing_committed_and_an_unknown_agent_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        put_agent(&store, "kimi", None, None);
        put_agent(&store, "claude-code", None, None);
        let checks = SpendChecks::default();
        let before = agent_pending(&store, "kimi", cny(100));
        store
            .commit_payment(&before, DAY, &checks)
            .expect("before the stop");

        assert_eq!(
            store.revoke_agents(Some("kimi"), 5_000).expect("revoke"),
            vec!["kimi".to_owned()]
        );
        let after = agent_pending(&store, "kimi", cny(100));
        assert_eq!(
            agent_refusal(store.commit_payment(&after, DAY, &checks)),
            AgentRefusal::Outside(OutsideMandate::Revoked)
        );
        // Still stopped after a restart.
        drop(store);
        let store = open(dir.path());
        assert_eq!(
            store
                .agent("kimi")
                .expect("agent")
                .and_then(|a| a.revoked_at),
            Some(5_000)
        );
        assert_eq!(
            agent_refusal(store.commit_payment(&after, DAY, &checks)),
            AgentRefusal::Outside(OutsideMandate::Revoked)
        );
        // Only the one named was stopped.
        let other = agent_pending(&store, "claude-code", cny(100));
        store
            .commit_payment(&other, DAY, &checks)
            .expect("not stopped");

        let stranger = agent_pending(&store, "nobody", cny(100));
        assert_eq!(
            agent_refusal(store.commit_payment(&stranger, DAY, &checks)),
            AgentRefusal::Unknown("nobody".into())
        );
        // What it spent before the stop stays counted; nothing after it.
        assert_eq!(store.agent_spent("kimi", DAY).expect("spent"), (100, 100));
        assert_eq!(store.outbox_len().expect("outbox"), 2);
        // Stopping every agent stops the rest, and names only those newly stopped.
        assert_eq!(
            store.revoke_agents(None, 6_000).expect("revoke all"),
            vec!["claude-code".to_owned()]
        );
        let late = agent_pending(&store, "claude-code", cny(100));
        assert_eq!(
            agent_refusal(store.commit_payment(&late, DAY, &checks)),
            AgentRefusal::Outside(OutsideMandate::Revoked)
        );
    }

    #[test]
    fn a_stopped_agents_unsent_payment_stays_in_the_outbox_unsent_until_the_agent_is_added_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        put_agent(&store, "kimi", None, None);
        let checks = SpendChecks::default();
        let own = pending(&store, cny(300), true, 1_000);
        let asked = agent_pending(&store, "kimi", cny(100));
        for p in [&own, &asked] {
            store.commit_payment(p, DAY, &checks).expect("commit");
        }
        let ids = |payments: Vec<PendingPayment>| -> Vec<Uuid> {
            payments.iter().map(|p| p.request_id).collect()
        };
        assert_eq!(
            ids(store.sendable_outbox().expect("sendable")),
            [own.request_id, asked.request_id]
        );

        store.revoke_agents(None, 5_000).expect("revoke");
        assert_eq!(
            ids(store.sendable_outbox().expect("sendable")),
            [own.request_id]
        );
        assert_eq!(store.outbox_len().expect("kept"), 2);

        // Added again: it goes out with the rest.
        let mut kimi = store.agent("kimi").expect("agent").expect("kimi");
        kimi.revoked_at = None;
        store.put_agent(&kimi).expect("add again");
        assert_eq!(
            ids(store.sendable_outbox().expect("sendable")),
            [own.request_id, asked.request_id]
        );
        // Removed: withheld as well.
        store.remove_agent("kimi").expect("remove");
        assert_eq!(
            ids(store.sendable_outbox().expect("sendable")),
            [own.request_id]
        );
    }

    #[test]
    fn a_task_id_is_claimed_once_even_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = open(dir.path());
            assert!(
                store
                    .claim_task("kimi", "t-1", 9_000, "terms")
                    .expect("claim")
            );
            assert!(
                !store
                    .claim_task("kimi", "t-1", 9_000, "terms")
                    .expect("replay")
            );
            // Another agent's task of the same id is its own.
            assert!(
                store
                    .claim_task("claude-code", "t-1", 9_000, "terms")
                    .expect("claim")
            );
            assert_eq!(
                store.task_state("kimi", "t-1").expect("state"),
                Some(TaskState::Pending)
            );
        }
        let store = open(dir.path());
        assert!(
            !store
                .claim_task("kimi", "t-1", 9_000, "terms")
                .expect("replay")
        );
        assert!(
            !store
                .claim_task("claude-code", "t-1", 9_000, "terms")
                .expect("replay")
        );
        assert!(
            store
                .claim_task("kimi", "t-2", 9_000, "terms")
                .expect("claim")
        );
        assert_eq!(store.task_state("kimi", "t-3").expect("state"), None);
    }

    #[test]
    fn a_tasks_record_keeps_its_terms_and_what_its_agent_was_told_and_reads_records_of_earlier_releases()
     {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path());
        assert!(
            store
                .claim_task("kimi", "t-1", 9_000, "abc")
                .expect("claim")
        );
        let request_id = Uuid::now_v7();
        let told = |status, request_id| TaskStatus {
            task_id: "t-1".into(),
            agent_id: "kimi".into(),
            device_id: "dev-x".into(),
            status,
            reason: None,
            request_id,
            terms: None,
            at: 5,
        };
        store
            .record_task_status(&told(TaskState::Approved, Some(request_id)))
            .expect("record");
        store
            .record_task_status(&told(TaskState::Paid, None))
            .expect("record");
        assert_eq!(
            store.task_record("kimi", "t-1").expect("read"),
            Some(TaskRecord {
                expires_at: 9_000,
                state: TaskState::Paid,
                terms: Some("abc".into()),
                reason: None,
                request_id: Some(request_id),
                at: Some(5),
            })
        );
        // An earlier release kept only the expiry and the state.
        store
            .agent_tasks
            .insert(
                agent_task_key("kimi", "t-old"),
                br#"{"expires_at":7,"state":"paid"}"#.to_vec(),
            )
            .expect("insert");
        let old = store
            .task_record("kimi", "t-old")
            .expect("read")
            .expect("some");
        assert_eq!((old.state, old.terms), (TaskState::Paid, None));
    }

    #[test]
    fn the_code_lock_is_kept_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = CodeLock {
            wrong_codes: 3,
            locked_until: Some(1_760_000_300_000),
        };
        {
            let store = open(dir.path());
            assert_eq!(store.code_lock().expect("read"), CodeLock::default());
            store.set_code_lock(&lock).expect("keep");
        }
        assert_eq!(open(dir.path()).code_lock().expect("read"), lock);
    }

    mod concurrent_agents {
        use super::*;
        use proptest::prelude::*;

        /// One payer's payments: (amount, on the second day?).
        type Payments = Vec<(i64, bool)>;

        fn payments() -> impl Strategy<Value = Payments> {
            proptest::collection::vec((1i64..4_000, any::<bool>()), 1..8)
        }

        /// What was committed: the agent (`None`: the user's own), the day, the amount.
        type Committed = Vec<(Option<String>, u32, i64)>;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            /// Agents paying at once never overspend their budgets or the
            /// user's daily limit, and what they reserved is what was committed.
            #[test]
            fn agents_paying_at_once_never_overspend_their_budgets_or_the_users_limit(
                agents in proptest::collection::vec((1_000i64..12_000, 1_000i64..18_000, payments()), 2..=4),
                own in payments(),
                user_daily in 5_000i64..40_000,
            ) {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = open(dir.path());
                let names: Vec<String> = (0..agents.len()).map(|i| format!("agent-{i}")).collect();
                for (name, (daily, total, _)) in names.iter().zip(&agents) {
                    put_agent(&store, name, Some(*daily), Some(*total));
                }
                let checks = daily(cny(user_daily));
                let mut payers: Vec<(Option<&str>, &Payments)> = names
                    .iter()
                    .zip(&agents)
                    .map(|(name, (_, _, payments))| (Some(name.as_str()), payments))
                    .collect();
                payers.push((None, &own));
                let committed: Committed = std::thread::scope(|scope| {
                    let handles: Vec<_> = payers
                        .iter()
                        .map(|&(name, payments)| {
                            let store = store.clone();
                            let checks = checks.clone();
                            scope.spawn(move || {
                                let mut ok = Vec::new();
                                for &(minor, second_day) in payments {
                                    let day = if second_day { DAY + 1 } else { DAY };
                                    let p = match name {
                                        Some(name) => agent_pending(&store, name, cny(minor)),
                                        None => pending(&store, cny(minor), false, 1),
                                    };
                                    match store.commit_payment(&p, day, &checks) {
                                        Ok(()) => ok.push((name.map(String::from), day, minor)),
                                        Err(StoreError::Refused(Refusal::OverDailyLimit { .. })) => {}
                                        Err(StoreError::AgentRefused(AgentRefusal::Outside(
                                            OutsideMandate::Daily { .. } | OutsideMandate::Total { .. },
                                        ))) if name.is_some() => {}
                                        Err(e) => panic!("unexpected {e}"),
                                    }
                                }
                                ok
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| h.join().expect("thread"))
                        .collect()
                });

                let sum = |payer: Option<&str>, day: Option<u32>| -> i64 {
                    committed
                        .iter()
                        .filter(|(n, d, _)| {
                            (payer.is_none() || n.as_deref() == payer)
                                && day.is_none_or(|day| *d == day)
                        })
                        .map(|(_, _, minor)| minor)
                        .sum()
                };
                for day in [DAY, DAY + 1] {
                    let all = sum(None, Some(day));
                    prop_assert!(all <= user_daily, "{all} on day {day} over the user's {user_daily}");
                    prop_assert_eq!(store.spent_on_day(day, Currency::CNY).expect("spent"), cny(all));
                }
                for (name, (daily_budget, total_budget, _)) in names.iter().zip(&agents) {
                    let total = sum(Some(name), None);
                    prop_assert!(total <= *total_budget, "{name}: {total} over its total {total_budget}");
                    for day in [DAY, DAY + 1] {
                        let today = sum(Some(name), Some(day));
                        prop_assert!(today <= *daily_budget, "{name}: {today} over its daily {daily_budget}");
                        prop_assert_eq!(store.agent_spent(name, day).expect("spent"), (today, total));
                    }
                }
                prop_assert_eq!(store.outbox_len().expect("outbox"), committed.len());
            }
        }
    }
}
