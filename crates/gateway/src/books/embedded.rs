//! The embedded books: sled trees in the gateway's data directory, one process at a time, made durable by one fsync per batch of decisions.

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use voicepay_core::durable::flush_and_sync;
use voicepay_core::keys::PublicKey;
use voicepay_core::money::Money;
use voicepay_core::policy::{self, DeviceBooks, Verdict};
use voicepay_core::protocol::{AnswerTo, GatewayStatus};

use super::{Answered, Record, Stored};
use crate::{GatewayConfig, GatewayError, LedgerEntry};

/// In `meta`: the deployment's daily limit, as JSON money.
const DAILY_LIMIT: &str = "daily_limit";

pub(crate) struct Embedded {
    path: std::path::PathBuf,
    db: sled::Db,
    devices: sled::Tree,
    answers: sled::Tree,
    /// `keep_until` big-endian ++ answer key: what to prune when.
    answer_expiry: sled::Tree,
    /// device id -> the highest `seq` seen (u64 big-endian).
    seqs: sled::Tree,
    /// `{device}/{day}/{currency}` -> the day's spend (i64 big-endian minor units).
    daily: sled::Tree,
    ledger: sled::Tree,
    /// The last status session, the daily limit.
    meta: sled::Tree,
}

impl Embedded {
    pub fn open(config: &GatewayConfig) -> Result<Embedded, GatewayError> {
        voicepay_core::durable::private_dir(&config.data_dir).map_err(sled::Error::Io)?;
        let path = config.db_path();
        let db = voicepay_core::durable::open_db(
            &sled::Config::new().path(&path).cache_capacity(8 << 20),
            &path,
            config.lock_wait,
        )?;
        Ok(Embedded {
            devices: db.open_tree("devices")?,
            answers: db.open_tree("answers")?,
            answer_expiry: db.open_tree("answer_expiry")?,
            seqs: db.open_tree("seqs")?,
            daily: db.open_tree("daily")?,
            ledger: db.open_tree("ledger")?,
            meta: db.open_tree("meta")?,
            db,
            path,
        })
    }

    pub fn next_session(&self, now: u64) -> Result<u64, GatewayError> {
        let last = self.meta.get("status_session")?.map_or(0, |v| u64_from(&v));
        let session = GatewayStatus::next_session(last, now);
        self.meta.insert("status_session", &session.to_be_bytes())?;
        self.sync()?;
        Ok(session)
    }

    pub fn enroll(&self, device_id: &str, key: &PublicKey) -> Result<(), GatewayError> {
        let known = self.device_key(device_id)?;
        if known.is_some_and(|k| k.as_bytes() != key.as_bytes()) {
            self.seqs.remove(device_id)?;
        }
        self.devices.insert(device_id, key.as_bytes().as_slice())?;
        self.sync()
    }

    /// The deployment's limit per device and day, if set.
    pub fn daily_limit(&self) -> Result<Option<Money>, GatewayError> {
        self.meta
            .get(DAILY_LIMIT)?
            .map(|raw| {
                serde_json::from_slice(&raw)
                    .map_err(|e| GatewayError::Corrupt(format!("the daily limit: {e}")))
            })
            .transpose()
    }

    pub fn set_daily_limit(&self, limit: Option<Money>) -> Result<(), GatewayError> {
        match limit {
            Some(limit) => {
                let raw =
                    serde_json::to_vec(&limit).map_err(|e| GatewayError::Corrupt(e.to_string()))?;
                self.meta.insert(DAILY_LIMIT, raw)?;
            }
            None => {
                self.meta.remove(DAILY_LIMIT)?;
            }
        }
        self.sync()
    }

    pub fn device_key(&self, device_id: &str) -> Result<Option<PublicKey>, GatewayError> {
        let Some(raw) = self.devices.get(device_id)? else {
            return Ok(None);
        };
        let bytes: [u8; 32] = raw
            .as_ref()
            .try_into()
            .map_err(|_| GatewayError::Corrupt(format!("key of device {device_id}")))?;
        Ok(Some(PublicKey::from_bytes(bytes)))
    }

    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, GatewayError> {
        self.ledger
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v).map_err(|e| GatewayError::Corrupt(e.to_string()))
            })
            .collect()
    }

    pub fn answer(&self, to: &AnswerTo) -> Result<Option<Answered>, GatewayError> {
        self.answers
            .get(answer_key(to))?
            .map(|raw| answered(&raw))
            .transpose()
    }

    pub fn record(&self, record: &Record) -> Result<Stored, GatewayError> {
        let to = record.to;
        let device = to.device_id.as_str();
        let id_key = answer_key(to);
        let mut expiry_key = record.keep_until.to_be_bytes().to_vec();
        expiry_key.extend_from_slice(&id_key);
        let day_key = format!("{device}/{}/{}", record.day, record.amount.currency);
        let ledger_value =
            serde_json::to_vec(record.entry).map_err(|e| GatewayError::Corrupt(e.to_string()))?;
        let abort = ConflictableTransactionError::Abort;
        // Set by `gateway limits` through this process: no decision races it.
        let daily_limit = self.daily_limit()?;

        // One transaction: a concurrent twin of this request, or a second
        // payment racing for the same limit, sees the other's effect.
        let trees = (
            &self.answers,
            &self.answer_expiry,
            &self.seqs,
            &self.daily,
            &self.ledger,
        );
        let outcome = trees.transaction(|(answers, answer_expiry, seqs, daily, ledger)| {
            if let Some(raw) = answers.get(&id_key)? {
                return Ok(Stored::Earlier(answered(&raw).map_err(abort)?));
            }
            let message = match record.declined {
                Some(message) => message.to_vec(),
                None => {
                    let books = DeviceBooks {
                        last_seq: seqs.get(device.as_bytes())?.map(|v| u64_from(&v)),
                        spent_today: Money::new(
                            daily.get(day_key.as_bytes())?.map_or(0, |v| i64_from(&v)),
                            record.amount.currency,
                        ),
                        daily_limit,
                    };
                    let judged = policy::judge(record.seq, record.amount, &books, &record.rules);
                    if let Some(seq) = judged.raise_seq_to {
                        seqs.insert(device.as_bytes(), &seq.to_be_bytes())?;
                    }
                    match judged.verdict {
                        Verdict::Charge { spent_today } => {
                            daily.insert(day_key.as_bytes(), &spent_today.minor.to_be_bytes())?;
                            let id = ledger.generate_id()?;
                            ledger.insert(&id.to_be_bytes(), ledger_value.clone())?;
                            record.approved.to_vec()
                        }
                        Verdict::Decline(reason) => (record.decline)(reason).map_err(abort)?,
                    }
                }
            };
            let kept = Answered {
                payload_sha256: to.request_sha256.clone(),
                response: String::from_utf8_lossy(&message).into_owned(),
            };
            let kept = serde_json::to_vec(&kept)
                .map_err(|e| abort(GatewayError::Corrupt(e.to_string())))?;
            answers.insert(id_key.as_slice(), kept)?;
            answer_expiry.insert(expiry_key.as_slice(), &[])?;
            Ok(Stored::New(message))
        });
        match outcome {
            Ok(stored) => Ok(stored),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(GatewayError::Db(e)),
        }
    }

    pub fn prune_answers(&self, now: u64, batch: usize) -> Result<usize, GatewayError> {
        let mut pruned = 0;
        for item in self.answer_expiry.range(..now.to_be_bytes()).take(batch) {
            let (key, _) = item?;
            self.answers.remove(&key[8..])?;
            self.answer_expiry.remove(&key)?;
            pruned += 1;
        }
        Ok(pruned)
    }

    pub fn sync(&self) -> Result<(), GatewayError> {
        flush_and_sync(&self.db, &self.path).map_err(|source| GatewayError::Sync {
            path: self.path.clone(),
            source,
        })
    }
}

fn answered(raw: &[u8]) -> Result<Answered, GatewayError> {
    serde_json::from_slice(raw).map_err(|e| GatewayError::Corrupt(format!("answer: {e}")))
}

/// Answers are kept per device and request id: one device's id can never
/// collide with another's answer.
fn answer_key(to: &AnswerTo) -> Vec<u8> {
    let mut key = Vec::with_capacity(to.device_id.len() + 17);
    key.extend_from_slice(to.device_id.as_bytes());
    key.push(b'/');
    key.extend_from_slice(to.request_id.as_bytes());
    key
}

fn i64_from(bytes: &[u8]) -> i64 {
    bytes.try_into().map_or(0, i64::from_be_bytes)
}

fn u64_from(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_be_bytes)
}
