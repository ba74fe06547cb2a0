//! The device daemon: utterances in; dialog, policy and store in the middle; signed requests out over MQTT; answers back in.
//!
//! One utterance at a time, in order. A payment is committed to the outbox
//! (durably, with its spend reserved) before it is published, and leaves the
//! outbox only when the gateway's signed answer for its request id arrives.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::audio::{Utterance, read_wav};
use crate::clock::{day_of, now_ms};
use crate::dialog::{Action, Assess, Dialog};
use crate::identity::DeviceIdentity;
use crate::intent::{Intent, LimitScope, Period};
use crate::money::Money;
use crate::order::{Approval, PaymentOrder, Purchase};
use crate::phrasebook::{Phrasebook, Speech};
use crate::policy::{self, Link};
use crate::policy::{Decision, OfflineFloor, Refusal};
use crate::profile::DeviceProfile;
use crate::protocol::{
    self, ApprovalMethod, Envelope, Evidence, PaymentRequest, PaymentResponse, RequestBuilder,
    ResponseStatus,
};
use crate::recognizer::Recognizer;
use crate::store::{
    HistoryEvent, PendingPayment, Settlement, SpendChecks, Store, StoreConfig, StoreError,
};
use crate::transport::{BrokerUrl, DeviceLink, LinkState};

/// What the daemon tells the world: the console, `--json` lines, speech.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Event {
    Heard {
        file: String,
        transcript: String,
        intent: Intent,
    },
    Say {
        text: String,
    },
    /// A signed request left for the gateway (or was queued offline).
    Sent {
        request_id: Uuid,
        offline: bool,
        envelope: serde_json::Value,
    },
    /// The gateway's signed answer, verified.
    Answer {
        request_id: Uuid,
        status: ResponseStatus,
        reason: Option<String>,
        envelope: serde_json::Value,
    },
    Error {
        message: String,
    },
}

pub trait Feedback: Send {
    fn event(&mut self, event: &Event);
}

/// Plain lines for people, or one JSON object per line.
pub struct Console {
    pub json: bool,
}

impl Feedback for Console {
    fn event(&mut self, event: &Event) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        match event {
            Event::Heard {
                file,
                transcript,
                intent,
            } => println!(
                "heard   {file}: {transcript:?} -> {}",
                serde_json::to_string(intent).unwrap_or_default()
            ),
            Event::Say { text } => println!("say     {text}"),
            Event::Sent {
                request_id,
                offline,
                ..
            } => println!(
                "sent    request {request_id}{}",
                if *offline { " (offline: queued)" } else { "" }
            ),
            Event::Answer {
                request_id,
                status,
                reason,
                ..
            } => println!(
                "answer  request {request_id}: {status:?}{}",
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            Event::Error { message } => println!("error   {message}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub profile: DeviceProfile,
    pub data_dir: PathBuf,
    pub broker: BrokerUrl,
    pub prefix: String,
    /// In `--input` mode, how long to wait for an answer before the next file.
    pub answer_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Asr(#[from] crate::asr::AsrError),
    #[error("device profile: {0}")]
    Profile(String),
}

/// The parts that outlive one utterance.
pub struct Device {
    config: DaemonConfig,
    identity: DeviceIdentity,
    store: Store,
    floor: OfflineFloor,
    dialog: Dialog,
    phrasebook: Phrasebook,
    link: DeviceLink,
    feedback: Box<dyn Feedback>,
}

impl Device {
    /// Opens the store and identity and starts connecting.
    pub fn start(config: DaemonConfig, feedback: Box<dyn Feedback>) -> Result<Self, DaemonError> {
        let identity = DeviceIdentity::load(&config.data_dir)?;
        let store = Store::open(&StoreConfig::new(config.data_dir.join("store")))?;
        let floor = config.profile.offline.clone();
        let window = config.profile.payments.confirm_window;
        let phrasebook = Phrasebook::new(config.profile.language);
        let dialog = Dialog::new(
            window,
            config.profile.parse_context(),
            Box::new(payment_code),
        );
        let outbox_store = store.clone();
        let link = DeviceLink::start(
            &config.broker,
            &config.prefix,
            &identity.device_id,
            move || {
                outbox_store
                    .outbox()
                    .map(|o| o.into_iter().map(|p| p.envelope).collect())
                    .unwrap_or_else(|error| {
                        tracing::error!(%error, "cannot read the outbox");
                        Vec::new()
                    })
            },
        );
        Ok(Self {
            config,
            identity,
            store,
            floor,
            dialog,
            phrasebook,
            link,
            feedback,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn link_state(&self) -> LinkState {
        *self.link.state.borrow()
    }

    /// Waits until the gateway is reachable, at most `limit`.
    pub async fn wait_online(&mut self, limit: Duration) -> bool {
        let mut state = self.link.state.clone();
        tokio::time::timeout(limit, state.wait_for(LinkState::online))
            .await
            .is_ok()
    }

    /// One utterance: understood, answered, acted on.
    pub async fn hear(&mut self, recognizer: &mut Recognizer, name: &str, utterance: &Utterance) {
        // The user answered when the utterance arrived: our transcription
        // time is not their silence.
        let arrived = Instant::now();
        let understood = match tokio::task::block_in_place(|| recognizer.understand(utterance)) {
            Ok(understood) => understood,
            Err(error) => {
                return self.emit(Event::Error {
                    message: format!("{name}: {error}"),
                });
            }
        };
        self.emit(Event::Heard {
            file: name.to_owned(),
            transcript: understood.transcript.text.clone(),
            intent: understood.intent.clone(),
        });
        let evidence = Evidence::new(
            &understood.transcript.text,
            &pcm_bytes(utterance),
            understood.transcript.confidence.clamp(0.0, 1.0),
            self.config.profile.language.code(),
        );
        let actions = {
            let assessor = Assessor {
                store: &self.store,
                link: self.link_state(),
                floor: &self.floor,
                profile: &self.config.profile,
            };
            self.dialog
                .hear(&understood.intent, &evidence, arrived, &assessor)
        };
        self.act(actions).await;
        self.dialog.question_spoken(Instant::now());
    }

    /// The input ended: a pending question is dropped, then answers are awaited.
    pub async fn finish(&mut self) {
        let actions = self.dialog.end_of_input();
        self.act(actions).await;
        self.settle_answers(self.config.answer_wait).await;
    }

    /// Says `offline` and disconnects.
    pub async fn close(self) {
        self.link
            .close(&self.config.prefix, &self.identity.device_id)
            .await;
    }

    async fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Say(speech) => self.say(&speech),
                Action::Pay { order, approval } => self.pay(order, approval).await,
                Action::Declined { order, reason } => self.remember(HistoryEvent::Refused {
                    amount: order.amount,
                    payee: order.purchase.payee().to_owned(),
                    at: now_ms(),
                    reason: self.phrasebook.refusal(&reason),
                }),
                Action::Dropped { order, reason } => self.remember(HistoryEvent::Cancelled {
                    amount: order.amount,
                    payee: order.purchase.payee().to_owned(),
                    at: now_ms(),
                    reason: self.phrasebook.drop_reason(reason),
                }),
                Action::SetLimit { scope, amount } => self.set_limit(scope, amount),
                Action::ReportSpending { period } => self.report_spending(period),
            }
        }
    }

    /// Signs, commits durably, publishes and awaits the answer (or queues offline).
    pub async fn pay(&mut self, order: PaymentOrder, approval: Approval) {
        let offline = !self.link_state().online();
        let request = match self.request(&order, &approval, offline) {
            Ok(request) => request,
            Err(error) => return self.fail(format!("cannot prepare the payment: {error}")),
        };
        let (envelope, _) = match Envelope::seal_json(&request, &self.identity.key) {
            Ok(sealed) => sealed,
            Err(error) => return self.fail(format!("cannot sign the payment: {error}")),
        };
        let message = envelope.to_bytes();
        let pending = PendingPayment::of(&request, message.clone());
        let checks = SpendChecks {
            daily_limit: self.store.limits().ok().and_then(|l| l.daily),
            offline: offline.then(|| self.floor.clone()),
        };
        // Durable first: from here on the payment cannot be lost.
        if let Err(error) = self
            .store
            .commit_payment(&pending, day_of(request.created_at), &checks)
        {
            match error {
                StoreError::Refused(refusal) => {
                    let reason = self.phrasebook.refusal(&refusal);
                    self.emit(Event::Say {
                        text: reason.clone(),
                    });
                    self.remember(HistoryEvent::Refused {
                        amount: order.amount,
                        payee: request.payee,
                        at: now_ms(),
                        reason,
                    });
                }
                error => self.say(&Speech::NotRecorded {
                    error: error.to_string(),
                }),
            }
            return;
        }
        self.emit(Event::Sent {
            request_id: request.request_id,
            offline,
            envelope: serde_json::to_value(&envelope).unwrap_or_default(),
        });
        if offline {
            self.say(&Speech::PaidOffline {
                purchase: order.purchase.clone(),
                amount: order.amount,
            });
            return;
        }
        if let Err(error) = self.link.publish(message).await {
            // Still in the outbox: the next (re)connection sends it.
            tracing::warn!(%error, "publish failed; the outbox keeps the payment");
        }
        self.await_answer(request.request_id).await;
    }

    fn request(
        &self,
        order: &PaymentOrder,
        approval: &Approval,
        offline: bool,
    ) -> Result<PaymentRequest, crate::store::StoreError> {
        let now = now_ms();
        let (method, confirming) = match approval {
            Approval::AutoLimit => (ApprovalMethod::AutoLimit, None),
            Approval::VoiceConfirm { transcript } => {
                (ApprovalMethod::VoiceConfirm, Some(transcript.clone()))
            }
            Approval::PaymentCode { transcript } => {
                (ApprovalMethod::PaymentCode, Some(transcript.clone()))
            }
        };
        // Offline, the device itself approves under its floor limits
        // (`RequestBuilder::offline` records that).
        let ttl_ms = self.config.profile.payments.request_ttl_ms;
        let builder = RequestBuilder::new(
            &self.identity.device_id,
            self.store.next_seq()?,
            order.amount,
            order.purchase.payee(),
            now,
        )
        .expires_in(ttl_ms)
        .evidence(order.evidence.clone())
        .approved(method, confirming);
        let builder = match &order.purchase {
            Purchase::Pay { .. } => builder,
            Purchase::TopUp { tokens, .. } => builder.token_top_up(*tokens),
        };
        Ok(if offline { builder.offline() } else { builder }.build())
    }

    /// Waits for `request_id`'s answer (settling any others that arrive).
    async fn await_answer(&mut self, request_id: Uuid) {
        let deadline = Instant::now() + self.config.answer_wait;
        loop {
            let Ok(Some(message)) =
                tokio::time::timeout_at(deadline, self.link.answers.recv()).await
            else {
                self.say(&Speech::NoAnswerYet);
                return;
            };
            if self.settle(&message) == Some(request_id) {
                return;
            }
        }
    }

    /// Settles every answer that arrives within `wait` while the outbox is not empty.
    pub async fn settle_answers(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.store.outbox().is_ok_and(|o| !o.is_empty()) {
            match tokio::time::timeout_at(deadline, self.link.answers.recv()).await {
                Ok(Some(message)) => {
                    self.settle(&message);
                }
                _ => break,
            }
        }
        if self.link_state().online() && self.store.outbox().is_ok_and(|o| o.is_empty()) {
            // Back online with nothing queued: a new offline spell starts fresh.
            let _ = self.store.reset_offline_counters();
        }
    }

    /// Verifies and applies one answer; returns its request id if it settled one.
    fn settle(&mut self, message: &[u8]) -> Option<Uuid> {
        let gateway = self.identity.gateway;
        let opened = protocol::open(message, |kid| (kid == gateway.key_id()).then_some(gateway))
            .and_then(|o| o.parse::<PaymentResponse>());
        let response = match opened {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, "rejected an answer");
                return None;
            }
        };
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
            Ok(Some(entry)) => {
                self.emit(Event::Answer {
                    request_id: response.request_id,
                    status: response.status,
                    reason: response.reason.clone(),
                    envelope: serde_json::from_slice(message).unwrap_or_default(),
                });
                let speech = match &entry.event {
                    HistoryEvent::Paid { amount, payee, .. } => Some(Speech::Paid {
                        amount: *amount,
                        payee: payee.clone(),
                    }),
                    HistoryEvent::Declined {
                        amount,
                        payee,
                        reason,
                        ..
                    } => Some(Speech::DeclinedByBank {
                        amount: *amount,
                        payee: payee.clone(),
                        reason: reason.clone(),
                    }),
                    _ => None,
                };
                if let Some(speech) = speech {
                    self.say(&speech);
                }
                Some(response.request_id)
            }
            // Already settled (a repeated answer) or never ours.
            Ok(None) => {
                tracing::debug!(request_id = %response.request_id, "answer for no waiting payment");
                None
            }
            Err(error) => {
                self.fail(format!("cannot record the answer: {error}"));
                None
            }
        }
    }

    fn set_limit(&mut self, scope: LimitScope, amount: Money) {
        let result = self.store.limits().and_then(|mut limits| {
            match scope {
                LimitScope::Auto => limits.auto_pay = amount,
                LimitScope::Daily => limits.daily = Some(amount),
            }
            self.store.set_limits(&limits)
        });
        if let Err(error) = result {
            self.fail(format!("cannot change the limit: {error}"));
        }
    }

    fn report_spending(&mut self, period: Period) {
        let today = day_of(now_ms());
        let days = match period {
            Period::Today => 0,
            Period::Week => 6,
            Period::Month => 29,
        };
        let speech = match self.store.spending(today.saturating_sub(days), today) {
            Ok(totals) => Speech::Spent { period, totals },
            Err(error) => Speech::HistoryUnreadable {
                error: error.to_string(),
            },
        };
        self.say(&speech);
    }

    fn remember(&mut self, event: HistoryEvent) {
        if let Err(error) = self.store.record(event) {
            self.fail(format!("cannot write the history: {error}"));
        }
    }

    fn fail(&mut self, message: String) {
        tracing::error!(%message);
        self.emit(Event::Error { message });
    }

    fn say(&mut self, speech: &Speech) {
        let text = self.phrasebook.say(speech);
        self.emit(Event::Say { text });
    }

    fn emit(&mut self, event: Event) {
        self.feedback.event(&event);
    }
}

/// The daemon's answers to the dialog's questions about money.
struct Assessor<'a> {
    store: &'a Store,
    link: LinkState,
    floor: &'a OfflineFloor,
    profile: &'a DeviceProfile,
}

impl Assess for Assessor<'_> {
    fn decide(&self, amount: Money) -> Decision {
        let now = now_ms();
        let state = self.store.limits().and_then(|limits| {
            let spent = self.store.spent_on_day(day_of(now), amount.currency)?;
            let counters = self.store.offline_counters()?;
            Ok((limits, spent, counters))
        });
        let Ok((limits, spent, counters)) = state else {
            return Decision::Decline(Refusal::RecordsUnreadable);
        };
        let link = if self.link.online() {
            Link::Online
        } else {
            Link::Offline {
                floor: self.floor,
                counters: &counters,
                now_ms: now,
            }
        };
        policy::decide(amount, &limits, spent, link)
    }

    fn limit(&self, scope: LimitScope) -> Money {
        let zero = Money::zero(self.profile.default_currency);
        match (self.store.limits(), scope) {
            (Ok(l), LimitScope::Auto) => l.auto_pay,
            (Ok(l), LimitScope::Daily) => l.daily.unwrap_or(zero),
            // Unknown current limit: treat every change as a raise, so it is confirmed.
            (Err(_), _) => zero,
        }
    }

    fn price(&self, tokens: u64, provider: &str) -> Option<Money> {
        self.profile.token_price(tokens, provider)
    }
}

/// A fresh three-digit challenge from the system's secure random source.
fn payment_code() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    // A failing system RNG leaves zeros: the code is then "000", still a code
    // the user must say, never a skipped check.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    format!("{:03}", u16::from_le_bytes(bytes) % 1000)
}

/// The utterance's samples as bytes, for the evidence hash (never sent).
fn pcm_bytes(utterance: &Utterance) -> Vec<u8> {
    utterance
        .samples
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// `voicepay run --input FILE...`: every file in order as the next
/// utterance, then the answers still due.
pub async fn run_files(
    config: DaemonConfig,
    files: &[PathBuf],
    feedback: Box<dyn Feedback>,
) -> Result<(), DaemonError> {
    let mut recognizer = Recognizer::new(&config.profile)?;
    let mut device = Device::start(config, feedback)?;
    // Long enough for a loaded machine to connect; offline payments start after it.
    device.wait_online(Duration::from_secs(5)).await;
    for file in files {
        let name = file.display().to_string();
        match read_wav(file) {
            Ok(utterance) => device.hear(&mut recognizer, &name, &utterance).await,
            Err(error) => device.fail(error.to_string()),
        }
    }
    device.finish().await;
    device.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_codes_are_three_digits() {
        for _ in 0..50 {
            let code = payment_code();
            assert_eq!(code.len(), 3);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }
}
