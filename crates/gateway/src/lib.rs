//! The reference payment gateway: verifies signed requests, deduplicates them, re-checks limits, keeps a ledger and answers signed.
//!
//! [`Gateway::decide`] is the whole decision for one MQTT message and knows
//! nothing of MQTT; [`Gateway::commit`] makes a batch of them durable and
//! only then gives their answers to publish; [`run`] subscribes to every
//! device's requests (or, with `share`, to its worker's part of them) and
//! feeds it. Every answer, approval or decline, is stored under its request
//! id before it is sent, so a repeated request gets the first answer again
//! and is never charged twice.
//!
//! # Layout
//!
//! - this file: [`GatewayConfig`], [`Admin`] (the books without the key),
//!   [`Gateway`] and [`run`], the MQTT loop (on a shared ledger, one worker
//!   of many, with a status topic of its own)
//! - [`books`]: enrolled devices, answers, the ledger, per-device seq and
//!   spend, the daily limit: embedded in sled, or in PostgreSQL shared by
//!   many gateways
//! - [`control`]: its answers on the control socket (`voicepay gateway ledger`, `enroll`, `limits`)
//!
//! It links `voicepay-core` and no speech, audio or agent code: what a
//! device and its gateway share is the wire protocol and the money rules.

pub mod books;
pub mod control;

use std::future::Future;
use std::path::PathBuf;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties, Packet, Publish};
use rumqttc::v5::{AsyncClient, Event};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use voicepay_core::clock::{Calendar, now_ms};
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::money::Money;
use voicepay_core::policy;
use voicepay_core::protocol::{
    self, AnswerTo, Envelope, GatewayStatus, PaymentRequest, PaymentResponse, ProtocolError,
    RequestKind, topics,
};
use voicepay_core::transport::{BrokerUrl, LogLimiter, Publisher};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub data_dir: PathBuf,
    pub prefix: String,
    /// Per device and day, whatever the device's own limits say.
    pub daily_limit: Option<Money>,
    /// How far in the future a request's `created_at` may be.
    pub max_clock_skew_ms: u64,
    /// A request whose `seq` is more than this far behind the highest seq
    /// seen from its device is refused as a replay.
    pub seq_window: u64,
    /// How long an answer is kept after its request expired. While kept, a
    /// repeat gets it again (a device retrying late learns the truth); once
    /// pruned, a replay is refused as expired, so it is never charged twice.
    pub answer_retention_ms: u64,
    /// How often the signed "online" is said again: a device that connects
    /// after the retained status was replaced or deleted believes the
    /// gateway online within one heartbeat.
    pub heartbeat: std::time::Duration,
    /// How long opening the books waits for their lock; zero for a
    /// command that asks the running gateway instead.
    pub lock_wait: std::time::Duration,
    /// Where the books are kept: sled in `data_dir` unless told otherwise.
    pub ledger: books::Ledger,
    /// Subscribe as one worker of this MQTT shared-subscription group
    /// (`$share/GROUP/...`): the broker gives each request to one worker.
    /// Workers must share a ledger (PostgreSQL), or a repeat could reach
    /// one that never saw the first.
    pub share: Option<String>,
}

impl GatewayConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            prefix: protocol::DEFAULT_PREFIX.to_owned(),
            daily_limit: None,
            max_clock_skew_ms: 5 * 60 * 1000,
            seq_window: 10_000,
            answer_retention_ms: 7 * 24 * 60 * 60 * 1000,
            heartbeat: std::time::Duration::from_secs(10),
            lock_wait: voicepay_core::durable::LOCK_WAIT,
            ledger: books::Ledger::Embedded,
            share: None,
        }
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("gateway.key")
    }

    fn db_path(&self) -> PathBuf {
        self.data_dir.join("gateway.db")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway database: {0}")]
    Db(#[from] sled::Error),
    #[error("gateway database {path}: cannot make it durable: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway ledger (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    #[error("a gateway task stopped: {0}")]
    Task(String),
    #[error("gateway database holds a corrupt record: {0}")]
    Corrupt(String),
    #[error("device id {0:?} is not 1-64 of A-Z a-z 0-9 _ -")]
    BadDeviceId(String),
    #[error("a daily limit of {0} is below zero")]
    NegativeLimit(Money),
}

/// Why a message got no answer. Each is logged; the gateway keeps running.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("message on {0:?}, which is not a device's requests topic")]
    NotARequestTopic(String),
    #[error("device {0:?} is not enrolled")]
    UnknownDevice(String),
    #[error("device {device}: {source}")]
    Envelope {
        device: String,
        source: ProtocolError,
    },
    #[error("request names device {claimed:?} but came on device {topic:?}'s topic")]
    DeviceMismatch { claimed: String, topic: String },
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// An answer to publish.
#[derive(Debug, Clone)]
pub struct Reply {
    pub topic: String,
    /// The signed envelope of `response`.
    pub message: Vec<u8>,
    pub response: PaymentResponse,
    /// True when this is the stored first answer to a repeated request.
    pub repeated: bool,
}

/// A reply decided and stored but perhaps not yet on disk: it becomes a
/// [`Reply`] to publish only through [`Gateway::commit`], so no answer is
/// ever said that a crash could take back.
#[must_use = "a decision is published only after it is committed"]
#[derive(Debug)]
pub struct Decided(Reply);

/// One approved payment in the gateway's books.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub gateway_txn_id: String,
    pub request_id: Uuid,
    pub device_id: String,
    pub kind: RequestKind,
    pub amount: Money,
    pub payee: String,
    pub offline: bool,
    pub processed_at: u64,
}

/// The gateway's books without its key: what an operator does from any
/// host (`gateway enroll|ledger|limits`), and what a running gateway
/// answers on its control socket.
pub struct Admin {
    books: books::Books,
}

impl Admin {
    /// Opens (or connects to) the books the config names; a PostgreSQL
    /// schema is created or brought up to date first.
    pub fn open(config: &GatewayConfig) -> Result<Admin, GatewayError> {
        Ok(Admin {
            books: books::Books::open(config)?,
        })
    }

    /// Registers (or re-keys) a device. A re-keyed device starts a new store,
    /// so its sequence starts again too.
    pub fn enroll(&self, device_id: &str, key: &PublicKey) -> Result<(), GatewayError> {
        if !protocol::is_valid_device_id(device_id) {
            return Err(GatewayError::BadDeviceId(device_id.to_owned()));
        }
        self.books.enroll(device_id, key)
    }

    /// Approved payments, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, GatewayError> {
        self.books.ledger()
    }

    /// The deployment's limit per device and day, kept in the books.
    pub fn daily_limit(&self) -> Result<Option<Money>, GatewayError> {
        self.books.daily_limit()
    }

    /// Sets it, or removes it (`None`): every gateway on these books judges
    /// its next decision by it, as well as by its own `--daily-limit`.
    pub fn set_daily_limit(&self, limit: Option<Money>) -> Result<(), GatewayError> {
        if let Some(limit) = limit.filter(|l| l.minor < 0) {
            return Err(GatewayError::NegativeLimit(limit));
        }
        self.books.set_daily_limit(limit)
    }
}

pub struct Gateway {
    config: GatewayConfig,
    key: SigningKey,
    admin: Admin,
}

impl Gateway {
    /// Opens (or connects to) the books the config names; a PostgreSQL
    /// schema is created or brought up to date first.
    pub fn open(config: GatewayConfig, key: SigningKey) -> Result<Self, GatewayError> {
        let admin = Admin::open(&config)?;
        Ok(Self { config, key, admin })
    }

    /// Its books, as an operator sees them.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    fn books(&self) -> &books::Books {
        &self.admin.books
    }

    /// Where the books are kept, for people.
    pub fn ledger_kind(&self) -> &books::Ledger {
        &self.config.ledger
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// A new status session, larger than every one before it, durable
    /// before it is used: devices order the gateway's statuses by it, so a
    /// restart with the clock stepped back is still the newest.
    pub fn next_session(&self, now: u64) -> Result<u64, GatewayError> {
        self.books().next_session(now)
    }

    /// `status`, signed by the gateway.
    pub fn seal_status(&self, status: &GatewayStatus) -> Result<Vec<u8>, GatewayError> {
        status
            .seal(&self.key)
            .map_err(|e| GatewayError::Corrupt(format!("cannot sign the status: {e}")))
    }

    /// Registers (or re-keys) a device ([`Admin::enroll`]).
    pub fn enroll(&self, device_id: &str, key: &PublicKey) -> Result<(), GatewayError> {
        self.admin.enroll(device_id, key)
    }

    pub fn device_key(&self, device_id: &str) -> Result<Option<PublicKey>, GatewayError> {
        self.books().device_key(device_id)
    }

    /// Approved payments, oldest first.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>, GatewayError> {
        self.admin.ledger()
    }

    /// Decides one message from `topic` and commits it alone: the answer is
    /// durable before it is returned. The server decides in batches instead
    /// ([`Gateway::decide`], then one [`Gateway::commit`] for the batch).
    pub fn handle(&self, topic: &str, message: &[u8], now: u64) -> Result<Reply, Rejection> {
        let decided = self.decide(topic, message, now)?;
        let mut replies = self.commit(vec![decided])?;
        replies.pop().ok_or_else(|| {
            Rejection::Gateway(GatewayError::Corrupt("a commit lost its reply".into()))
        })
    }

    /// Puts the decisions of a batch on disk with one fsync and gives their
    /// replies back, in order, to publish (group commit).
    pub fn commit(&self, batch: Vec<Decided>) -> Result<Vec<Reply>, GatewayError> {
        if !batch.is_empty() {
            self.books().sync()?;
        }
        Ok(batch.into_iter().map(|Decided(reply)| reply).collect())
    }

    /// Decides one message from `topic`. Signature first, then parsing,
    /// deduplication, expiry, the sequence and limits; the answer is stored
    /// (in one sled transaction with its ledger row and the day's spend) but
    /// said only after [`Gateway::commit`] has put it on disk.
    ///
    /// A stored answer is looked up before expiry: a device retrying after
    /// its request expired gets the truth (it may have been charged), not a
    /// refusal that would make it release a spend the ledger holds. A request
    /// with no stored answer is never charged once expired, and answers are
    /// kept [`GatewayConfig::answer_retention_ms`] past expiry, so a replay
    /// is refused either way.
    pub fn decide(&self, topic: &str, message: &[u8], now: u64) -> Result<Decided, Rejection> {
        self.decide_reply(topic, message, now).map(Decided)
    }

    fn decide_reply(&self, topic: &str, message: &[u8], now: u64) -> Result<Reply, Rejection> {
        let prefix = &self.config.prefix;
        let device = topics::device_id_from_requests_topic(prefix, topic)
            .ok_or_else(|| Rejection::NotARequestTopic(truncate(topic)))?;
        let Some(key) = self.device_key(device)? else {
            return self.refuse_unknown_device(device, message, now);
        };
        let envelope_error = |source| Rejection::Envelope {
            device: device.to_owned(),
            source,
        };
        let opened = protocol::open(message, |kid| (kid == key.key_id()).then_some(key))
            .map_err(envelope_error)?;
        let request: PaymentRequest = opened.parse().map_err(envelope_error)?;
        if request.device_id != device {
            return Err(Rejection::DeviceMismatch {
                claimed: truncate(&request.device_id),
                topic: device.to_owned(),
            });
        }
        let payload_sha256 = hex::encode(Sha256::digest(&opened.payload));
        let to = AnswerTo {
            request_id: request.request_id,
            device_id: device.to_owned(),
            request_sha256: payload_sha256,
        };
        if let Some(reply) = self.earlier_answer(&to, now)? {
            return Ok(reply);
        }
        // Nothing to remember: an expired request stays expired, and a flood
        // of expired replays writes nothing.
        if request.is_expired(now) {
            let message = self.sealed_decline(&to, "the request expired before it arrived", now)?;
            return self.reply(device, message, false);
        }
        let verdict = self.check(&request, now);
        self.answer(&request, &to, verdict, now)
    }

    /// A device the gateway does not know cannot be verified, but it must not
    /// wait for ever either: a request that names the device of its topic gets
    /// a signed refusal bound to its bytes. Nothing is stored or charged, and
    /// the refusal can settle only a request with exactly those bytes.
    fn refuse_unknown_device(
        &self,
        device: &str,
        message: &[u8],
        now: u64,
    ) -> Result<Reply, Rejection> {
        let unknown = || Rejection::UnknownDevice(device.to_owned());
        let payload = Envelope::unverified_payload_of(message).ok_or_else(unknown)?;
        let claimed: PaymentRequest = serde_json::from_slice(&payload).map_err(|_| unknown())?;
        if claimed.device_id != device {
            return Err(unknown());
        }
        let to = AnswerTo {
            request_id: claimed.request_id,
            device_id: device.to_owned(),
            request_sha256: hex::encode(Sha256::digest(&payload)),
        };
        let reason = "this device is not enrolled with the gateway";
        let message = self.sealed_decline(&to, reason, now)?;
        self.reply(device, message, false)
    }

    fn sealed_decline(
        &self,
        to: &AnswerTo,
        reason: &str,
        now: u64,
    ) -> Result<Vec<u8>, GatewayError> {
        let response = PaymentResponse::declined(to, reason.to_owned(), now);
        Envelope::seal_json(&response, &self.key)
            .map(|(e, _)| e.to_bytes())
            .map_err(|e| GatewayError::Corrupt(e.to_string()))
    }

    /// Forgets answers kept past their retention, at most `batch` of them a
    /// call (the loop stays responsive); returns how many went.
    pub fn prune_answers(&self, now: u64, batch: usize) -> Result<usize, GatewayError> {
        self.books().prune_answers(now, batch)
    }

    fn earlier_answer(&self, to: &AnswerTo, now: u64) -> Result<Option<Reply>, Rejection> {
        match self.books().answer(to)? {
            Some(answered) => self.repeat(answered, to, now).map(Some),
            None => Ok(None),
        }
    }

    /// The stored first answer, for the same bytes only. The same id with
    /// other bytes gets a signed refusal bound to those bytes, so the device
    /// that sent them settles instead of waiting for ever; nothing is charged
    /// and the first answer stays as it was.
    fn repeat(
        &self,
        answered: books::Answered,
        to: &AnswerTo,
        now: u64,
    ) -> Result<Reply, Rejection> {
        if answered.payload_sha256 != to.request_sha256 {
            tracing::warn!(request_id = %to.request_id, "conflict: the same request id with other bytes");
            let reason = "conflict: this request id was already used for another request";
            let message = self.sealed_decline(to, reason, now)?;
            return self.reply(&to.device_id, message, false);
        }
        self.reply(&to.device_id, answered.response.into_bytes(), true)
    }

    /// Everything stateless that can decline a well-signed, unexpired
    /// request, before money moves.
    fn check(&self, request: &PaymentRequest, now: u64) -> Result<(), String> {
        request.validate().map_err(|e| e.to_string())?;
        if request.created_at > now + self.config.max_clock_skew_ms {
            return Err("the request is dated in the future: check the device's clock".into());
        }
        Ok(())
    }

    fn answer(
        &self,
        request: &PaymentRequest,
        to: &AnswerTo,
        verdict: Result<(), String>,
        now: u64,
    ) -> Result<Reply, Rejection> {
        let device = to.device_id.as_str();
        let txn_id = Uuid::now_v7().to_string();
        let approved = PaymentResponse::approved(to, txn_id.clone(), now);
        let (approved_message, _) = Envelope::seal_json(&approved, &self.key)
            .map(|(e, p)| (e.to_bytes(), p))
            .map_err(|e| GatewayError::Corrupt(e.to_string()))?;
        let decline = |reason: String| self.sealed_decline(to, &reason, now);
        let entry = LedgerEntry {
            gateway_txn_id: txn_id,
            request_id: request.request_id,
            device_id: device.to_owned(),
            kind: request.kind,
            amount: request.amount,
            payee: request.payee.clone(),
            offline: request.offline,
            processed_at: now,
        };
        let pre_declined = verdict.err().map(decline).transpose()?;
        let record = books::Record {
            to,
            seq: request.seq,
            amount: request.amount,
            day: Calendar::utc().day_of(now),
            keep_until: request
                .expires_at
                .saturating_add(self.config.answer_retention_ms),
            entry: &entry,
            approved: &approved_message,
            declined: pre_declined.as_deref(),
            rules: policy::GatewayRules {
                seq_window: self.config.seq_window,
                daily_limit: self.config.daily_limit,
            },
            decline: &decline,
        };
        match self.books().record(&record)? {
            books::Stored::New(message) => self.reply(device, message, false),
            // A twin of this request won the race: answer as it was answered.
            books::Stored::Earlier(answered) => self.repeat(answered, to, now),
        }
    }

    fn reply(&self, device: &str, message: Vec<u8>, repeated: bool) -> Result<Reply, Rejection> {
        // Our own stored answer; parse it back for the caller's logs and tests.
        let own_key = self.key.public_key();
        let response = protocol::open(&message, |_| Some(own_key))
            .and_then(|o| o.parse::<PaymentResponse>())
            .map_err(|e| GatewayError::Corrupt(format!("stored answer: {e}")))?;
        Ok(Reply {
            topic: topics::responses(&self.config.prefix, device),
            message,
            response,
            repeated,
        })
    }
}

/// Topics and ids from the wire can be long; logs get the start.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// How many answers may wait for MQTT before new ones are dropped (each is
/// durable, and a device that sends its request again gets it again).
const GATEWAY_SEND_QUEUE: usize = 50_000;

/// Old answers are pruned a batch a minute: a few milliseconds of the loop.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
const PRUNE_BATCH: usize = 10_000;

/// Serves until `shutdown` resolves: subscribes to every device's requests,
/// answers each, logs and skips what it rejects, reconnects on its own.
/// Answers are queued for a publisher task, so polling the connection never
/// waits on sending and a burst cannot freeze the loop or the shutdown.
pub async fn run(
    gateway: Gateway,
    broker: &BrokerUrl,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let gateway = std::sync::Arc::new(gateway);
    // `gateway enroll` and `ledger`, answered while we hold the books.
    let control_stop = tokio_util::sync::CancellationToken::new();
    // Whichever way this returns, the control socket and the pruner stop.
    let _stop_helpers = control_stop.clone().drop_guard();
    let books = gateway.clone();
    let control = tokio::spawn(voicepay_core::control::serve(
        gateway.config.data_dir.clone(),
        std::sync::Arc::new(move |request| control::answer(books.admin(), request)),
        control_stop.clone(),
    ));
    // Unique per process: a second gateway (or a stale one) on the broker
    // must not take over this one's connection, and then lose its own.
    let random = Uuid::now_v7().simple().to_string();
    let name = &random[24..];
    let mut options = broker.options_v5(&format!("voicepay-gateway-{name}"));
    // On a shared ledger this process is one worker of many: it says its
    // status, and leaves its will, on a topic of its own, so one that dies
    // takes no other offline (devices believe the gateway online while any
    // worker is). Its last "offline" is tidied away by the broker.
    let worker = matches!(gateway.config.ledger, books::Ledger::Postgres(_)).then_some(name);
    let status = match worker {
        Some(worker) => topics::worker_status(&gateway.config.prefix, worker),
        None => topics::gateway_status(&gateway.config.prefix),
    };
    let offline_kept = worker.map(|_| WORKER_OFFLINE_KEPT_S);
    let offline = |session: u64| {
        gateway.seal_status(&GatewayStatus::new(false, now_ms(), session).by(worker))
    };
    // The will is signed now: the broker says it for us when we vanish.
    // Each connection is a new session, with its own will.
    let mut session = new_session(&gateway).await?;
    let will = |session| -> Result<LastWill, GatewayError> {
        let kept = offline_kept.map(|expiry| LastWillProperties {
            message_expiry_interval: Some(expiry),
            delay_interval: None,
            payload_format_indicator: None,
            content_type: None,
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        });
        Ok(LastWill::new(
            &status,
            offline(session)?,
            QoS::AtLeastOnce,
            true,
            kept,
        ))
    };
    options.set_last_will(will(session)?);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let (outgoing, publisher_task) = Publisher::start(client, GATEWAY_SEND_QUEUE);
    let filter = match &gateway.config.share {
        Some(group) => topics::shared_requests_filter(group, &gateway.config.prefix),
        None => topics::all_requests_filter(&gateway.config.prefix),
    };
    // Its own task: a timer in the loop below would cancel a poll that is
    // connecting, and the broker would see (and say the will of) a
    // connection dropped half-way.
    let pruner = tokio::spawn(prune_answers(gateway.clone(), control_stop.clone()));
    // The session subscribed (None: not connected); the heartbeat says it.
    let (beat, beating) = tokio::sync::watch::channel(None::<u64>);
    let heartbeat = tokio::spawn(heartbeat(
        gateway.clone(),
        (status.clone(), worker.map(str::to_owned)),
        outgoing.clone(),
        beating,
    ));
    // Requests are decided and put on disk in batches off this loop, each
    // answer published after its batch: one fsync for all that arrived
    // while the last batch ran.
    let (arrivals, arrived) = tokio::sync::mpsc::channel(MAX_BATCH);
    let decider = tokio::spawn(decide_in_batches(
        gateway.clone(),
        arrived,
        outgoing.clone(),
    ));
    // The first failure to connect is worth a line too.
    let mut connected = true;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                connected = true;
                tracing::info!(%filter, "gateway connected; subscribing");
                outgoing.subscribe(&filter);
            }
            // Only once subscribed can requests be answered: then say so,
            // and again every heartbeat.
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                beat.send_replace(Some(session));
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if arrivals.send(publish).await.is_err() {
                    // The decider ended: it said why.
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                // Said once when the broker goes, not twice a second after.
                if std::mem::take(&mut connected) {
                    tracing::warn!(%error, "gateway lost the broker; retrying");
                } else {
                    tracing::debug!(%error, "gateway still cannot reach the broker");
                }
                if voicepay_core::transport::is_oversize(&error) {
                    tracing::error!(%error, max = voicepay_core::transport::MAX_PACKET, "the broker sent a message over our limit: set its message_size_limit (README, deployment)");
                }
                // The broker may have said this session's will: the next
                // connection is another session.
                beat.send_replace(None);
                match new_session(&gateway).await {
                    Ok(next) => {
                        session = next;
                        eventloop.options.set_last_will(will(session)?);
                    }
                    // The books are away too (a PostgreSQL restarting):
                    // serve on under the last session rather than stop.
                    Err(error) => {
                        tracing::error!(%error, session, "no new status session; keeping the last")
                    }
                }
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
            }
        }
    }
    // The batch in hand reaches the disk and its devices before the last word.
    drop(arrivals);
    let _ = decider.await;
    // No "online" may follow the last word.
    heartbeat.abort();
    let _ = heartbeat.await;
    drain(
        &outgoing,
        &mut eventloop,
        (&status, offline(session)?),
        offline_kept,
    )
    .await;
    publisher_task.abort();
    control_stop.cancel();
    let _ = control.await;
    let _ = pruner.await;
    Ok(())
}

/// How long the broker keeps a worker's last "offline" (seconds). Devices
/// online then hear it at once; one that connects later finds the topic
/// empty, which says the same: nobody serves there.
const WORKER_OFFLINE_KEPT_S: u32 = 3_600;

/// The most decisions one fsync covers: a burst is answered in a few
/// batches, and none waits long behind the others.
const MAX_BATCH: usize = 256;

/// Takes every request waiting, decides each and commits them together
/// (one fsync), then publishes their answers, until the sender is gone. The
/// books are blocking (sled's fsync, PostgreSQL's client): the batch runs on
/// a blocking thread.
async fn decide_in_batches(
    gateway: std::sync::Arc<Gateway>,
    mut arrived: tokio::sync::mpsc::Receiver<Publish>,
    outgoing: Publisher,
) {
    let mut rejections = LogLimiter::new(10);
    while let Some(first) = arrived.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match arrived.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let books = gateway.clone();
        let (replies, rejected) =
            match tokio::task::spawn_blocking(move || decide_and_commit(&books, batch)).await {
                Ok(decided) => decided,
                Err(error) => {
                    tracing::error!(%error, "a batch of decisions stopped");
                    continue;
                }
            };
        for reply in replies {
            tracing::debug!(
                request_id = %reply.response.request_id,
                status = ?reply.response.status,
                repeated = reply.repeated,
                "answered"
            );
            outgoing.publish(&reply.topic, false, reply.message);
        }
        for rejection in rejected {
            if let Some(held_back) = rejections.allow() {
                tracing::warn!(%rejection, held_back, "rejected a message");
            }
        }
    }
}

/// One batch: every request decided, then all committed at once. A batch
/// that cannot reach the disk is not answered: its devices ask again and get
/// the stored answer.
fn decide_and_commit(gateway: &Gateway, batch: Vec<Publish>) -> (Vec<Reply>, Vec<Rejection>) {
    let mut decided = Vec::with_capacity(batch.len());
    let mut rejected = Vec::new();
    for publish in batch {
        // A topic that is not UTF-8 is no device's.
        let topic = String::from_utf8_lossy(&publish.topic);
        match gateway.decide(&topic, &publish.payload, now_ms()) {
            Ok(decision) => decided.push(decision),
            Err(rejection) => rejected.push(rejection),
        }
    }
    let size = decided.len();
    match gateway.commit(decided) {
        Ok(replies) => (replies, rejected),
        Err(error) => {
            tracing::error!(%error, size, "decisions not on disk: not answered (their devices ask again)");
            (Vec::new(), rejected)
        }
    }
}

/// A new status session from the books, off the async threads.
async fn new_session(gateway: &std::sync::Arc<Gateway>) -> Result<u64, GatewayError> {
    let books = gateway.clone();
    tokio::task::spawn_blocking(move || books.next_session(now_ms()))
        .await
        .map_err(|error| GatewayError::Task(error.to_string()))?
}

/// Says the subscribed session's signed "online" (retained) at once and every
/// [`GatewayConfig::heartbeat`] after, each with the next `seq`, until the
/// sender is gone. A timer of its own: one in the connection's loop would
/// cancel a poll half-way.
async fn heartbeat(
    gateway: std::sync::Arc<Gateway>,
    (topic, worker): (String, Option<String>),
    outgoing: Publisher,
    mut sessions: tokio::sync::watch::Receiver<Option<u64>>,
) {
    let every = gateway.config.heartbeat;
    let (mut current, mut seq) = (None, 0u64);
    loop {
        let session = *sessions.borrow_and_update();
        if session != current {
            (current, seq) = (session, 0);
        }
        if let Some(session) = current {
            seq += 1;
            let online = GatewayStatus::heartbeat(now_ms(), session, seq).by(worker.as_deref());
            match gateway.seal_status(&online) {
                Ok(online) => {
                    outgoing.publish(&topic, true, online);
                }
                Err(error) => tracing::error!(%error, "cannot say the gateway is online"),
            }
        }
        tokio::select! {
            changed = sessions.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Forgets answers past their retention, a batch a minute, until `stop`.
async fn prune_answers(
    gateway: std::sync::Arc<Gateway>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let books = gateway.clone();
        let pruned =
            tokio::task::spawn_blocking(move || books.prune_answers(now_ms(), PRUNE_BATCH)).await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(pruned)) => tracing::info!(pruned, "forgot answers past their retention"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot prune old answers"),
            Err(error) => tracing::warn!(%error, "the pruning task failed"),
        }
    }
}

/// Says `offline` and disconnects, giving the broker at most two seconds to
/// take both (after whatever answers are still queued).
async fn drain(
    outgoing: &Publisher,
    eventloop: &mut rumqttc::v5::EventLoop,
    (status, offline): (&str, Vec<u8>),
    kept_s: Option<u32>,
) {
    match kept_s {
        Some(kept_s) => outgoing.publish_expiring(status, offline, kept_s),
        None => outgoing.publish(status, true, offline),
    };
    outgoing.disconnect();
    let deadline = tokio::time::sleep(std::time::Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            event = eventloop.poll() => if event.is_err() { break },
        }
    }
}

/// Loads the gateway key from `data_dir`, for the CLI.
pub fn load_key(config: &GatewayConfig) -> Result<SigningKey, voicepay_core::keys::KeyError> {
    SigningKey::load_file(&config.key_path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicepay_core::money::Currency;
    use voicepay_core::protocol::{ApprovalMethod, Evidence, RequestBuilder, ResponseStatus};

    const NOW: u64 = 1_790_000_000_000;

    struct Setup {
        _dir: tempfile::TempDir,
        gateway: Gateway,
        device: SigningKey,
        topic: String,
    }

    impl Setup {
        /// `request`, signed by the device, handled now on its topic.
        fn send(&self, request: &PaymentRequest) -> Reply {
            self.gateway
                .handle(&self.topic, &sealed(request, &self.device), NOW)
                .unwrap()
        }
    }

    fn setup(daily_limit: Option<Money>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GatewayConfig::new(dir.path().to_owned());
        config.daily_limit = daily_limit;
        let gateway = Gateway::open(config, SigningKey::generate().unwrap()).unwrap();
        let device = SigningKey::generate().unwrap();
        gateway.enroll("glasses-1", &device.public_key()).unwrap();
        Setup {
            _dir: dir,
            gateway,
            device,
            topic: topics::requests(protocol::DEFAULT_PREFIX, "glasses-1"),
        }
    }

    fn request(minor: i64) -> PaymentRequest {
        numbered(minor, 1)
    }

    fn numbered(minor: i64, seq: u64) -> PaymentRequest {
        RequestBuilder::new(
            "glasses-1",
            seq,
            Money::new(minor, Currency::CNY),
            "Heytea",
            NOW - 1_000,
        )
        .evidence(Evidence::new("pay 36 yuan to Heytea", b"pcm", 0.9, "en"))
        .approved(ApprovalMethod::VoiceConfirm, Some("confirm".into()))
        .build()
    }

    fn sealed(request: &PaymentRequest, key: &SigningKey) -> Vec<u8> {
        Envelope::seal_json(request, key).unwrap().0.to_bytes()
    }

    #[test]
    fn a_signed_request_is_approved_once_and_its_repeat_gets_the_same_answer() {
        let s = setup(None);
        let message = sealed(&request(3600), &s.device);
        let first = s.gateway.handle(&s.topic, &message, NOW).unwrap();
        assert_eq!(first.response.status, ResponseStatus::Approved);
        assert_eq!(first.topic, "voicepay/v1/devices/glasses-1/responses");
        assert!(!first.repeated);
        // The answer is signed by the gateway over its exact bytes.
        let gateway_key = s.gateway.public_key();
        protocol::open(&first.message, |_| Some(gateway_key)).unwrap();

        let again = s.gateway.handle(&s.topic, &message, NOW + 5_000).unwrap();
        assert!(again.repeated);
        assert_eq!(again.message, first.message);
        assert_eq!(s.gateway.ledger().unwrap().len(), 1);
    }

    #[test]
    fn a_batch_is_answered_in_order_and_a_twin_within_it_gets_the_first_answer() {
        let s = setup(Some(Money::new(10_000, Currency::CNY)));
        let first = sealed(&numbered(6_000, 1), &s.device);
        let over = sealed(&numbered(6_000, 2), &s.device);
        let batch = [&first, &over, &first]
            .iter()
            .map(|message| s.gateway.decide(&s.topic, message, NOW).unwrap())
            .collect();
        let replies = s.gateway.commit(batch).unwrap();
        let statuses: Vec<_> = replies.iter().map(|r| r.response.status).collect();
        use ResponseStatus::{Approved, Declined};
        assert_eq!(statuses, [Approved, Declined, Approved]);
        assert_eq!(replies[2].message, replies[0].message);
        assert!(replies[2].repeated);
        assert_eq!(s.gateway.ledger().unwrap().len(), 1);
    }

    #[test]
    fn a_committed_batch_survives_a_restart_with_its_answers() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("gateway.key");
        let key = SigningKey::create_file(&key_path).unwrap();
        let device = SigningKey::generate().unwrap();
        let topic = topics::requests(protocol::DEFAULT_PREFIX, "glasses-1");
        let messages: Vec<_> = (1..=5)
            .map(|seq| sealed(&numbered(100, seq), &device))
            .collect();
        let answered = {
            let config = GatewayConfig::new(dir.path().to_owned());
            let gateway = Gateway::open(config, key).unwrap();
            gateway.enroll("glasses-1", &device.public_key()).unwrap();
            let batch = messages
                .iter()
                .map(|m| gateway.decide(&topic, m, NOW).unwrap())
                .collect();
            gateway.commit(batch).unwrap()
        };
        let key = SigningKey::load_file(&key_path).unwrap();
        let gateway = Gateway::open(GatewayConfig::new(dir.path().to_owned()), key).unwrap();
        assert_eq!(gateway.ledger().unwrap().len(), 5);
        for (message, before) in messages.iter().zip(&answered) {
            let again = gateway.handle(&topic, message, NOW + 1_000).unwrap();
            assert!(again.repeated);
            assert_eq!(again.message, before.message);
        }
    }

    #[test]
    fn the_same_id_with_other_bytes_is_a_conflict() {
        let s = setup(None);
        let mut req = request(3600);
        s.gateway
            .handle(&s.topic, &sealed(&req, &s.device), NOW)
            .unwrap();
        req.amount.minor = 360_000;
        let other = sealed(&req, &s.device);
        let refusal = s.gateway.handle(&s.topic, &other, NOW).unwrap();
        // Refused, signed, and bound to the other bytes: their sender settles.
        assert_eq!(refusal.response.status, ResponseStatus::Declined);
        assert!(refusal.response.reason.unwrap().contains("conflict"));
        assert_eq!(
            Some(refusal.response.request_sha256),
            Envelope::payload_sha256_of(&other)
        );
        assert_eq!(refusal.response.device_id, "glasses-1");
        assert_eq!(s.gateway.ledger().unwrap().len(), 1);
    }

    #[test]
    fn bad_messages_are_rejected_and_leave_no_trace() {
        let s = setup(None);
        let req = request(3600);
        let good = sealed(&req, &s.device);

        // A tampered payload: same envelope, other bytes.
        let mut envelope: Envelope = serde_json::from_slice(&good).unwrap();
        let other = sealed(&request(1), &s.device);
        envelope.payload = serde_json::from_slice::<Envelope>(&other).unwrap().payload;
        let tampered = serde_json::to_vec(&envelope).unwrap();
        let stranger = SigningKey::generate().unwrap();
        let other_topic = topics::requests(protocol::DEFAULT_PREFIX, "glasses-2");
        let cases: Vec<(&str, &str, Vec<u8>)> = vec![
            ("tampered", &s.topic, tampered),
            ("garbage", &s.topic, b"\xff\xfe not json".to_vec()),
            (
                "oversized",
                &s.topic,
                vec![b'{'; protocol::MAX_MESSAGE_BYTES + 1],
            ),
            ("signed by a stranger", &s.topic, sealed(&req, &stranger)),
            ("unknown device", &other_topic, good.clone()),
            (
                "not a requests topic",
                "voicepay/v1/devices/glasses-1/tasks",
                good.clone(),
            ),
        ];
        for (name, topic, message) in cases {
            let result = s.gateway.handle(topic, &message, NOW);
            assert!(result.is_err(), "{name} was accepted");
        }
        assert!(s.gateway.ledger().unwrap().is_empty());
        // The genuine request still goes through afterwards.
        let ok = s.gateway.handle(&s.topic, &good, NOW).unwrap();
        assert_eq!(ok.response.status, ResponseStatus::Approved);
    }

    #[test]
    fn an_unknown_device_gets_a_signed_refusal_bound_to_what_it_sent() {
        let s = setup(None);
        let stranger = SigningKey::generate().unwrap();
        let mut req = request(100);
        req.device_id = "glasses-9".into();
        let message = sealed(&req, &stranger);
        let topic = topics::requests(protocol::DEFAULT_PREFIX, "glasses-9");
        let reply = s.gateway.handle(&topic, &message, NOW).unwrap();
        assert_eq!(reply.response.status, ResponseStatus::Declined);
        assert!(
            reply
                .response
                .reason
                .as_deref()
                .unwrap()
                .contains("not enrolled")
        );
        let to = AnswerTo {
            request_id: req.request_id,
            device_id: "glasses-9".into(),
            request_sha256: Envelope::payload_sha256_of(&message).unwrap(),
        };
        assert!(reply.response.answers(&to));
        let gateway_key = s.gateway.public_key();
        protocol::open(&reply.message, |_| Some(gateway_key)).unwrap();
        assert!(s.gateway.ledger().unwrap().is_empty());
        // Garbage on an unknown device's topic gets nothing at all.
        assert!(s.gateway.handle(&topic, b"{}", NOW).is_err());
    }

    #[test]
    fn a_request_far_behind_its_devices_last_seq_is_refused_as_a_replay() {
        let s = setup(None);
        let window = s.gateway.config.seq_window;
        let ahead = numbered(100, window + 50);
        let reply = s.send(&ahead);
        assert_eq!(reply.response.status, ResponseStatus::Approved);
        // Within the window: late, but an outbox drains out of order.
        let late = numbered(100, 50);
        let reply = s.send(&late);
        assert_eq!(reply.response.status, ResponseStatus::Approved);
        let behind = numbered(100, 49);
        let reply = s.send(&behind);
        assert_eq!(reply.response.status, ResponseStatus::Declined);
        assert!(reply.response.reason.unwrap().contains("far behind"));
        assert_eq!(s.gateway.ledger().unwrap().len(), 2);

        // A re-keyed device has a new store: its sequence starts again.
        let rekeyed = SigningKey::generate().unwrap();
        s.gateway
            .enroll("glasses-1", &rekeyed.public_key())
            .unwrap();
        let first = numbered(100, 1);
        let reply = s
            .gateway
            .handle(&s.topic, &sealed(&first, &rekeyed), NOW)
            .unwrap();
        assert_eq!(reply.response.status, ResponseStatus::Approved);
    }

    #[test]
    fn a_late_retry_of_a_charged_request_gets_its_approval_not_a_refusal() {
        let s = setup(None);
        let req = request(100);
        let message = sealed(&req, &s.device);
        let first = s.gateway.handle(&s.topic, &message, NOW).unwrap();
        assert_eq!(first.response.status, ResponseStatus::Approved);
        // The answer was lost; the device retries after the request expired.
        let late = s
            .gateway
            .handle(&s.topic, &message, req.expires_at + 1)
            .unwrap();
        assert!(late.repeated);
        assert_eq!(late.response.status, ResponseStatus::Approved);
    }

    #[test]
    fn a_replay_after_its_answer_was_pruned_is_refused_as_expired_and_never_charged_twice() {
        let s = setup(None);
        let req = request(100);
        let message = sealed(&req, &s.device);
        s.gateway.handle(&s.topic, &message, NOW).unwrap();
        let retention = s.gateway.config.answer_retention_ms;
        let kept_until = req.expires_at + retention;
        assert_eq!(s.gateway.prune_answers(kept_until, 100).unwrap(), 0);
        assert_eq!(s.gateway.prune_answers(kept_until + 1, 100).unwrap(), 1);
        let replay = s
            .gateway
            .handle(&s.topic, &message, kept_until + 2)
            .unwrap();
        assert_eq!(replay.response.status, ResponseStatus::Declined);
        assert!(replay.response.reason.unwrap().contains("expired"));
        assert_eq!(s.gateway.ledger().unwrap().len(), 1);
        // The expired refusal is not stored: nothing grows under a replay
        // flood (every answer kept would be past its time now).
        assert_eq!(s.gateway.prune_answers(u64::MAX, 100).unwrap(), 0);
    }

    #[test]
    fn a_request_for_another_device_is_refused_on_this_topic() {
        let s = setup(None);
        let mut req = request(100);
        req.device_id = "glasses-2".into();
        let err = s
            .gateway
            .handle(&s.topic, &sealed(&req, &s.device), NOW)
            .unwrap_err();
        assert!(matches!(err, Rejection::DeviceMismatch { .. }), "{err}");
    }

    #[test]
    fn expired_and_future_requests_are_declined_with_a_reason() {
        let s = setup(None);
        let expired = request(100);
        let reply = s
            .gateway
            .handle(&s.topic, &sealed(&expired, &s.device), expired.expires_at)
            .unwrap();
        assert_eq!(reply.response.status, ResponseStatus::Declined);
        assert!(reply.response.reason.unwrap().contains("expired"));

        let mut future = request(100);
        future.created_at = NOW + 10 * 60 * 1000;
        future.expires_at = future.created_at + 60_000;
        let reply = s
            .gateway
            .handle(&s.topic, &sealed(&future, &s.device), NOW)
            .unwrap();
        assert!(reply.response.reason.unwrap().contains("future"));
        assert!(s.gateway.ledger().unwrap().is_empty());
    }

    #[test]
    fn the_daily_limit_in_the_embedded_books_binds_the_next_decision() {
        let s = setup(None);
        let pay = |minor| {
            let message = sealed(&request(minor), &s.device);
            let reply = s.gateway.handle(&s.topic, &message, NOW).unwrap();
            reply.response.status
        };
        assert_eq!(pay(3_000), ResponseStatus::Approved);
        let admin = s.gateway.admin();
        admin
            .set_daily_limit(Some(Money::new(5_000, Currency::CNY)))
            .unwrap();
        assert_eq!(pay(3_000), ResponseStatus::Declined);
        assert_eq!(pay(2_000), ResponseStatus::Approved);
        admin.set_daily_limit(None).unwrap();
        assert_eq!(admin.daily_limit().unwrap(), None);
        assert_eq!(pay(3_000), ResponseStatus::Approved);
    }

    #[test]
    fn the_gateways_own_daily_limit_is_rechecked() {
        let s = setup(Some(Money::new(10_000, Currency::CNY)));
        let statuses: Vec<ResponseStatus> = [6_000, 4_000, 1]
            .into_iter()
            .map(|minor| {
                let message = sealed(&request(minor), &s.device);
                s.gateway
                    .handle(&s.topic, &message, NOW)
                    .unwrap()
                    .response
                    .status
            })
            .collect();
        assert_eq!(
            statuses,
            [
                ResponseStatus::Approved,
                ResponseStatus::Approved,
                ResponseStatus::Declined
            ]
        );
        assert_eq!(s.gateway.ledger().unwrap().len(), 2);
    }

    #[test]
    fn enrolled_devices_and_the_ledger_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let pkcs8_path = dir.path().join("gateway.key");
        let key = SigningKey::create_file(&pkcs8_path).unwrap();
        let device = SigningKey::generate().unwrap();
        let topic = topics::requests(protocol::DEFAULT_PREFIX, "car-7");
        let mut req = request(500);
        req.device_id = "car-7".into();
        let message = sealed(&req, &device);
        {
            let gateway = Gateway::open(GatewayConfig::new(dir.path().to_owned()), key).unwrap();
            gateway.enroll("car-7", &device.public_key()).unwrap();
            gateway.handle(&topic, &message, NOW).unwrap();
        }
        let key = SigningKey::load_file(&pkcs8_path).unwrap();
        let gateway = Gateway::open(GatewayConfig::new(dir.path().to_owned()), key).unwrap();
        let again = gateway.handle(&topic, &message, NOW).unwrap();
        assert!(again.repeated, "the first answer is remembered");
        assert_eq!(gateway.ledger().unwrap().len(), 1);
    }
}
