//! The outbox stage: signs an approved order into a request that is durable in the outbox (its spend reserved) before anyone may send it, and settles it with the gateway's verified answer.
//!
//! Nothing here talks to the network: the daemon publishes what [`Outbox::commit`]
//! returns and hands every incoming answer to [`Outbox::settle`]. A request
//! leaves the outbox only in `settle`, in the same transaction that writes its
//! history entry.

use uuid::Uuid;

use crate::order::{Approval, PaymentOrder, Purchase};
use crate::reason::AgentRefusal;
use crate::store::{HistoryEntry, PendingPayment, Settlement, SpendChecks, Store, StoreError};
use voicepay_core::clock::{Calendar, now_ms};
use voicepay_core::keys::{PublicKey, SigningKey};
use voicepay_core::policy::{OfflineFloor, Refusal};
use voicepay_core::protocol::{
    self, AnswerTo, ApprovalMethod, Envelope, PaymentRequest, PaymentResponse, RequestBuilder,
    ResponseStatus,
};

/// A request signed and durable in the outbox.
#[derive(Debug, Clone)]
pub struct Committed {
    pub request: PaymentRequest,
    pub envelope: Envelope,
    /// The exact bytes to publish (and to republish until answered).
    pub message: Vec<u8>,
}

/// Why an order was not committed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A money rule refused it inside the commit: a decision.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The agent's mandate refused it inside the commit (the agent was
    /// stopped, or its budget spent, since the task was put to the user).
    #[error("refused: {0}")]
    AgentRefused(AgentRefusal),
    /// It could not be signed or recorded: nothing was paid.
    #[error("{0}")]
    Failed(String),
    /// It is in the outbox, but the disk did not take it: it must not be
    /// sent until the store is durable again (it may not survive a restart).
    #[error("committed but not durable: {error}")]
    NotDurable {
        committed: Box<Committed>,
        error: String,
    },
}

/// A verified answer that settled a waiting payment.
#[derive(Debug, Clone)]
pub struct Settled {
    pub response: PaymentResponse,
    pub entry: HistoryEntry,
}

/// Why an incoming answer settled nothing.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Not a valid gateway answer (garbage, forged, malformed): logged and dropped.
    #[error("rejected an answer: {0}")]
    Rejected(protocol::ProtocolError),
    /// Verified, but for no waiting payment (a repeat, or not ours).
    #[error("answer for request {0}, which is not waiting")]
    NotWaiting(Uuid),
    /// Signed by the gateway but for another device, or for other bytes
    /// than the request waiting under that id: settles nothing.
    #[error("answer for request {0} is bound to another device or other bytes")]
    Unbound(Uuid),
    #[error("cannot read the outbox: {0}")]
    Store(#[from] StoreError),
    /// A verified answer to a waiting payment that could not be written: the
    /// payment stays in the outbox (on disk) and is settled again later.
    #[error("cannot record the answer to request {}: {error}", .response.request_id)]
    NotRecorded {
        response: Box<PaymentResponse>,
        payment: Box<PendingPayment>,
        error: StoreError,
    },
}

pub struct Outbox {
    store: Store,
    key: SigningKey,
    device_id: String,
    gateway: PublicKey,
    request_ttl_ms: u64,
    /// Which day a payment's spend counts against.
    calendar: Calendar,
    /// Requests carry the words heard (else only their hashes).
    transcripts: bool,
}

impl Outbox {
    pub fn new(
        store: Store,
        key: SigningKey,
        device_id: String,
        gateway: PublicKey,
        request_ttl_ms: u64,
        calendar: Calendar,
    ) -> Outbox {
        Outbox {
            store,
            key,
            device_id,
            gateway,
            request_ttl_ms,
            calendar,
            transcripts: false,
        }
    }

    /// Whether requests carry the transcripts' words (the profile's
    /// `mqtt.transcripts`) or, by default, only their hashes: a request
    /// crosses the broker, and what was said stays on the device.
    pub fn with_transcripts(mut self, transcripts: bool) -> Outbox {
        self.transcripts = transcripts;
        self
    }

    /// Signs `order` and commits it durably, re-checking the daily limit (and
    /// the offline floor when `offline` is given) in the same transaction.
    pub fn commit(
        &self,
        order: &PaymentOrder,
        approval: &Approval,
        offline: Option<&OfflineFloor>,
    ) -> Result<Committed, CommitError> {
        let failed = |what: &str, error: &dyn std::fmt::Display| {
            CommitError::Failed(format!("{what}: {error}"))
        };
        let limits = self
            .store
            .limits()
            .map_err(|e| failed("cannot read the limits", &e))?;
        let seq = self
            .store
            .next_seq()
            .map_err(|e| failed("cannot number the request", &e))?;
        let request = self.request(order, approval, seq, offline.is_some());
        let (envelope, _) = Envelope::seal_json(&request, &self.key)
            .map_err(|e| failed("cannot sign the payment", &e))?;
        let message = envelope.to_bytes();
        let pending = PendingPayment::of(&request, message.clone());
        let checks = SpendChecks {
            daily_limit: limits.daily,
            offline: offline.cloned(),
        };
        match self
            .store
            .commit_payment(&pending, self.calendar.day_of(request.created_at), &checks)
        {
            Ok(()) => Ok(Committed {
                request,
                envelope,
                message,
            }),
            Err(StoreError::Refused(refusal)) => Err(CommitError::Refused(refusal)),
            Err(StoreError::AgentRefused(refusal)) => Err(CommitError::AgentRefused(refusal)),
            Err(StoreError::NotDurable(error)) => Err(CommitError::NotDurable {
                committed: Box::new(Committed {
                    request,
                    envelope,
                    message,
                }),
                error: error.to_string(),
            }),
            Err(error) => Err(CommitError::Failed(error.to_string())),
        }
    }

    fn request(
        &self,
        order: &PaymentOrder,
        approval: &Approval,
        seq: u64,
        offline: bool,
    ) -> PaymentRequest {
        let (method, confirming) = match approval {
            Approval::AutoLimit => (ApprovalMethod::AutoLimit, None),
            Approval::VoiceConfirm { transcript } => {
                (ApprovalMethod::VoiceConfirm, Some(transcript.clone()))
            }
            // The code never leaves the device, not even hashed (three
            // digits are found from a hash at once): the method says it.
            Approval::PaymentCode { .. } => (ApprovalMethod::PaymentCode, None),
        };
        let builder = RequestBuilder::new(
            &self.device_id,
            seq,
            order.amount,
            order.purchase.payee(),
            now_ms(),
        )
        .expires_in(self.request_ttl_ms)
        .evidence(order.evidence.clone())
        .approved(method, confirming);
        let builder = match &order.purchase {
            Purchase::Pay { .. } => builder,
            Purchase::TopUp { tokens, .. } => builder.token_top_up(*tokens),
        };
        let builder = match &order.agent {
            None => builder,
            Some(agent) => builder
                .for_agent(agent.task.clone())
                .memo(&agent.description),
        };
        let builder = if self.transcripts {
            builder
        } else {
            builder.withhold_transcripts()
        };
        // Offline, the device itself approves under its floor limits.
        if offline { builder.offline() } else { builder }.build()
    }

    /// Signs a message of the device's other than a request (a task's
    /// status for its agent) with the device key the outbox holds.
    pub fn seal<T: serde::Serialize>(&self, value: &T) -> Result<Vec<u8>, protocol::ProtocolError> {
        Envelope::seal_json(value, &self.key).map(|(envelope, _)| envelope.to_bytes())
    }

    /// Verifies one incoming answer and, if it answers a waiting payment,
    /// moves that payment from the outbox to the history.
    pub fn settle(&self, message: &[u8]) -> Result<Settled, SettleError> {
        let gateway = self.gateway;
        let response = protocol::open(message, |kid| (kid == gateway.key_id()).then_some(gateway))
            .and_then(|o| o.parse::<PaymentResponse>())
            .map_err(SettleError::Rejected)?;
        if response.device_id != self.device_id {
            return Err(SettleError::Unbound(response.request_id));
        }
        let Some(waiting) = self.store.outbox_get(response.request_id)? else {
            return Err(SettleError::NotWaiting(response.request_id));
        };
        let sent = AnswerTo {
            request_id: waiting.request_id,
            device_id: self.device_id.clone(),
            request_sha256: Envelope::payload_sha256_of(&waiting.envelope).unwrap_or_default(),
        };
        if !response.answers(&sent) {
            return Err(SettleError::Unbound(response.request_id));
        }
        let settlement = match response.status {
            ResponseStatus::Approved => Settlement::Approved {
                gateway_txn_id: response.gateway_txn_id.clone().unwrap_or_default(),
                processed_at: response.processed_at,
                response: message.to_vec(),
            },
            ResponseStatus::Declined => Settlement::Declined {
                reason: response.reason.clone().unwrap_or_default(),
                processed_at: response.processed_at,
                response: message.to_vec(),
            },
        };
        match self.store.settle(response.request_id, &settlement) {
            Ok(Some(entry)) => Ok(Settled { response, entry }),
            Ok(None) => Err(SettleError::NotWaiting(response.request_id)),
            Err(error) => Err(SettleError::NotRecorded {
                response: Box::new(response),
                payment: Box::new(waiting),
                error,
            }),
        }
    }

    /// The signed requests still waiting, in order.
    pub fn waiting(&self) -> Result<Vec<PendingPayment>, StoreError> {
        self.store.outbox()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicepay_core::money::{Currency, Money};
    use voicepay_core::protocol::Evidence;

    struct Setup {
        _dir: tempfile::TempDir,
        outbox: Outbox,
        gateway: SigningKey,
        committed: Committed,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::store::StoreConfig::new(dir.path().join("store"))).unwrap();
        let gateway = SigningKey::generate().unwrap();
        let outbox = Outbox::new(
            store,
            SigningKey::generate().unwrap(),
            "dev-1".into(),
            gateway.public_key(),
            60_000,
            Calendar::utc(),
        );
        let order = PaymentOrder::spoken(
            Money::new(3600, Currency::CNY),
            Purchase::Pay {
                payee: "Heytea".into(),
            },
            Evidence::new("Pay 36 yuan to Heytea.", b"pcm", 0.9, "en"),
        );
        let committed = outbox.commit(&order, &Approval::AutoLimit, None).unwrap();
        Setup {
            _dir: dir,
            outbox,
            gateway,
            committed,
        }
    }

    fn answer(s: &Setup, to: &AnswerTo) -> Vec<u8> {
        let response = PaymentResponse::approved(to, "txn-1".into(), 1);
        Envelope::seal_json(&response, &s.gateway)
            .unwrap()
            .0
            .to_bytes()
    }

    fn bound(s: &Setup) -> AnswerTo {
        AnswerTo {
            request_id: s.committed.request.request_id,
            device_id: "dev-1".into(),
            request_sha256: Envelope::payload_sha256_of(&s.committed.message).unwrap(),
        }
    }

    #[test]
    fn an_answer_settles_only_the_request_it_names_by_device_and_bytes() {
        let s = setup();
        let other_device = AnswerTo {
            device_id: "dev-2".into(),
            ..bound(&s)
        };
        let other_bytes = AnswerTo {
            request_sha256: "00".repeat(32),
            ..bound(&s)
        };
        for to in [other_device, other_bytes] {
            assert!(matches!(
                s.outbox.settle(&answer(&s, &to)),
                Err(SettleError::Unbound(_))
            ));
        }
        assert_eq!(s.outbox.waiting().unwrap().len(), 1, "still waiting");
        let settled = s.outbox.settle(&answer(&s, &bound(&s))).unwrap();
        assert_eq!(settled.response.request_id, s.committed.request.request_id);
        assert!(s.outbox.waiting().unwrap().is_empty());
        assert!(matches!(
            s.outbox.settle(&answer(&s, &bound(&s))),
            Err(SettleError::NotWaiting(_))
        ));
    }
}
