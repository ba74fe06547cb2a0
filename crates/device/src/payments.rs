//! The payments stage: an approved order committed to the outbox, the gateway's signed answer settled, refusals and drops remembered, the offline spell and the resend schedule; [`Effect`]s out for the daemon to carry.
//!
//! A payment is durable in the outbox before it is sent and leaves it only
//! when the gateway's signed answer arrives ([`crate::outbox`]). This stage
//! keeps what goes with that in a run: payments held while the disk failed,
//! those published and not answered yet, how many wait, and when the outbox
//! is sent again for want of answers. The money rules it applies are the
//! policy's ([`voicepay_core::policy`]); [`Assessor`] hands them to the dialog.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

use crate::desk::told;
use crate::effect::{Effect, Refused};
use crate::feedback::Event;
use crate::intent::{LimitScope, Period};
use crate::order::{Approval, DropReason, PaymentOrder, Purchase};
use crate::outbox::{CommitError, Outbox, SettleError};
use crate::phrasebook::{Phrasebook, Speech};
use crate::profile::DeviceProfile;
use crate::reason::Reason;
use crate::store::{HistoryEvent, Store};
use voicepay_core::clock::{Calendar, now_ms};
use voicepay_core::money::Money;
use voicepay_core::policy::{self, Decision, Link, OfflineFloor, Refusal};
use voicepay_core::protocol::{AgentRef, ResponseStatus, TaskState};
use voicepay_core::transport::{DeviceLink, LogLimiter};

pub struct Payments {
    store: Store,
    outbox: Outbox,
    device_id: String,
    phrasebook: Phrasebook,
    /// Committed while the disk failed: not sent until the store is durable.
    held: Vec<(Uuid, Vec<u8>)>,
    /// Published online in this run and not answered yet.
    unanswered: HashSet<Uuid>,
    /// Payments in the outbox: read from the store where they change (a
    /// commit, a settlement), not on every turn of the loop.
    waiting: usize,
    /// The gateway was reachable at the last look.
    was_online: bool,
    resend: Resend,
    /// Hostile answers are logged a few a second.
    rejections: LogLimiter,
}

impl Payments {
    pub fn new(
        store: Store,
        outbox: Outbox,
        device_id: String,
        phrasebook: Phrasebook,
    ) -> Payments {
        let mut payments = Payments {
            store,
            outbox,
            device_id,
            phrasebook,
            held: Vec::new(),
            unanswered: HashSet::new(),
            waiting: 0,
            was_online: false,
            resend: Resend::default(),
            rejections: LogLimiter::new(10),
        };
        payments.count_waiting();
        payments
    }

    /// Payments in the outbox, waiting for the gateway's answer.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Payments published in this run that the gateway has not answered.
    pub fn unanswered(&self) -> usize {
        self.unanswered.len()
    }

    /// Signs a message of the device's other than a request (a task's status).
    pub fn seal<T: serde::Serialize>(
        &self,
        value: &T,
    ) -> Result<Vec<u8>, voicepay_core::protocol::ProtocolError> {
        self.outbox.seal(value)
    }

    /// Signs and commits durably, then sends (or leaves it queued offline,
    /// under `floor`).
    pub fn pay(
        &mut self,
        order: PaymentOrder,
        approval: Approval,
        online: bool,
        floor: &OfflineFloor,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        // A payment held unsaved goes first, or nothing new is taken: the
        // user may repeat it, and both must not go out.
        if !self.held.is_empty() {
            if let Err(error) = self.store.flush_durably() {
                let error = error.to_string();
                tracing::error!(%error, "storage still failing; payment not taken");
                return vec![Effect::Say(Speech::StorageFailing { error })];
            }
            effects.extend(self.send_held(online));
        }
        let committed = match self
            .outbox
            .commit(&order, &approval, (!online).then_some(floor))
        {
            Ok(committed) => committed,
            Err(CommitError::Refused(refusal)) => {
                let text = self.phrasebook.refusal(&refusal);
                effects.push(Effect::Emit(Event::Say { text }));
                effects.extend(self.refused(&order, Refused::Policy(refusal)));
                return effects;
            }
            // Stopped or spent since it was put to the user: the user hears
            // it was not paid, the agent why.
            Err(CommitError::AgentRefused(refusal)) => {
                if let Some(agent) = &order.agent {
                    effects.push(Effect::Say(Speech::AgentTaskDropped {
                        agent: agent.spoken_name.clone(),
                        reason: DropReason::Revoked,
                    }));
                }
                effects.extend(self.refused(&order, Refused::Agent(refusal)));
                return effects;
            }
            Err(CommitError::Failed(error)) => {
                tracing::error!(%error, "payment not recorded");
                effects.push(Effect::Say(Speech::NotRecorded { error }));
                return effects;
            }
            Err(CommitError::NotDurable { committed, error }) => {
                tracing::error!(%error, request_id = %committed.request.request_id, "payment held: the disk did not take it");
                self.count_waiting();
                self.held
                    .push((committed.request.request_id, committed.message));
                effects.push(Effect::Say(Speech::HeldUnsaved {
                    purchase: order.purchase,
                    amount: order.amount,
                    error,
                }));
                return effects;
            }
        };
        let request_id = committed.request.request_id;
        self.count_waiting();
        if let Some(task) = order.agent_ref() {
            effects.push(self.tell(&task, TaskState::Approved, None, Some(request_id)));
        }
        effects.push(Effect::Emit(Event::Sent {
            request_id,
            offline: !online,
            envelope: serde_json::to_value(&committed.envelope).unwrap_or_default(),
        }));
        if !online {
            effects.push(Effect::Say(Speech::PaidOffline {
                purchase: order.purchase,
                amount: order.amount,
            }));
            return effects;
        }
        self.unanswered.insert(request_id);
        effects.push(Effect::Send(committed.message));
        effects
    }

    /// The store is durable again: what was held goes out (offline, the
    /// gateway's next appearance sends it with the rest of the outbox).
    fn send_held(&mut self, online: bool) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (request_id, message) in std::mem::take(&mut self.held) {
            tracing::info!(%request_id, "storage works again; sending the held payment");
            if online {
                self.unanswered.insert(request_id);
                effects.push(Effect::Send(message));
            }
        }
        effects
    }

    /// Refused on the device: remembered, and an agent told.
    pub fn refused(&mut self, order: &PaymentOrder, reason: Refused) -> Vec<Effect> {
        // Kept typed; the agent is told in words.
        let reason = Reason::from(reason);
        let mut effects = Vec::new();
        if let Some(task) = order.agent_ref() {
            let said = self.phrasebook.reason(&reason);
            effects.push(self.tell(&task, TaskState::Refused, Some(said), None));
        }
        effects.extend(self.remember(HistoryEvent::Refused {
            amount: order.amount,
            payee: order.purchase.payee().to_owned(),
            at: now_ms(),
            reason,
            agent: order.agent_ref(),
        }));
        effects
    }

    /// Cancelled, not answered, or the agent stopped: remembered, and an
    /// agent told.
    pub fn dropped(&mut self, order: &PaymentOrder, reason: DropReason) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(task) = order.agent_ref() {
            let state = match reason {
                DropReason::Revoked => TaskState::Revoked,
                _ => TaskState::Rejected,
            };
            let said = self.phrasebook.drop_reason(reason);
            effects.push(self.tell(&task, state, Some(said), None));
        }
        effects.extend(self.remember(HistoryEvent::Cancelled {
            amount: order.amount,
            payee: order.purchase.payee().to_owned(),
            at: now_ms(),
            reason: Reason::Dropped(reason),
            agent: order.agent_ref(),
        }));
        effects
    }

    /// Verifies and applies one answer from the gateway (`online`: the link
    /// as it stands, for the offline spell).
    pub fn settle(&mut self, message: &[u8], online: bool) -> Vec<Effect> {
        let settled = match self.outbox.settle(message) {
            Ok(settled) => settled,
            Err(error @ SettleError::Unbound(_)) => {
                if let Some(held_back) = self.rejections.allow() {
                    tracing::warn!(%error, held_back, "rejected an answer");
                }
                return Vec::new();
            }
            // The protocol's error alone: the message says the rest once.
            Err(SettleError::Rejected(error)) => {
                if let Some(held_back) = self.rejections.allow() {
                    tracing::warn!(%error, held_back, "rejected an answer");
                }
                return Vec::new();
            }
            // A repeated answer, or one for a payment that is not ours.
            Err(SettleError::NotWaiting(request_id)) => {
                tracing::debug!(%request_id, "answer for no waiting payment");
                return Vec::new();
            }
            Err(error @ SettleError::Store(_)) => return vec![Effect::Fail(error.to_string())],
            Err(SettleError::NotRecorded {
                response,
                payment,
                error,
            }) => {
                let error = error.to_string();
                tracing::error!(%error, request_id = %response.request_id, "answer not recorded");
                return vec![Effect::Say(Speech::AnswerNotRecorded {
                    approved: response.status == ResponseStatus::Approved,
                    amount: payment.amount,
                    payee: payment.payee,
                    error,
                })];
            }
        };
        let response = settled.response;
        self.resend.answered();
        self.count_waiting();
        let mut effects = Vec::new();
        if let Some(task) = settled.entry.event.agent().cloned() {
            let (state, reason) = match response.status {
                ResponseStatus::Approved => (TaskState::Paid, None),
                ResponseStatus::Declined => (TaskState::Declined, response.reason.clone()),
            };
            effects.push(self.tell(&task, state, reason, Some(response.request_id)));
        }
        self.unanswered.remove(&response.request_id);
        effects.push(Effect::Emit(Event::Answer {
            request_id: response.request_id,
            status: response.status,
            reason: response.reason.clone(),
            envelope: serde_json::from_slice(message).unwrap_or_default(),
        }));
        match settled.entry.event {
            HistoryEvent::Paid { amount, payee, .. } => {
                effects.push(Effect::Say(Speech::Paid { amount, payee }));
            }
            HistoryEvent::Declined {
                amount,
                payee,
                reason,
                ..
            } => effects.push(Effect::Say(Speech::DeclinedByBank {
                amount,
                payee,
                reason,
            })),
            _ => {}
        }
        self.end_offline_spell(online);
        effects
    }

    /// The link went up or down: the offline age counts from the last
    /// contact with the gateway.
    pub fn link_changed(&mut self, online: bool) {
        if self.was_online
            && !online
            && let Err(error) = self.store.mark_link_down(now_ms())
        {
            tracing::warn!(%error, "cannot record when the link went down");
        }
        self.was_online = online;
        self.end_offline_spell(online);
    }

    /// Back online with nothing queued: a new offline spell starts fresh.
    fn end_offline_spell(&mut self, online: bool) {
        if online
            && self.waiting == 0
            && let Err(error) = self.store.reset_offline_counters()
        {
            tracing::warn!(%error, "cannot reset the offline counters");
        }
    }

    /// When the outbox is sent again, if payments wait and the gateway is online.
    pub fn resend_due(&mut self, online: bool, now: Instant) -> Option<Instant> {
        self.resend.arm(self.waiting > 0 && online, now);
        self.resend.due
    }

    /// No answer for a while with payments waiting: the broker may have
    /// dropped them, so they all go again (only what the disk holds, less
    /// what a stopped agent asked for, as when the gateway appears).
    pub fn resend(&mut self, online: bool) -> Vec<Effect> {
        self.resend.fired();
        if !online {
            return Vec::new();
        }
        let waiting = sendable(&self.store);
        tracing::info!(
            waiting = waiting.len(),
            attempt = self.resend.attempt,
            "no answer for a while: sending the outbox again"
        );
        vec![Effect::Resend(waiting)]
    }

    fn count_waiting(&mut self) {
        match self.store.outbox_len() {
            Ok(n) => self.waiting = n,
            Err(error) => tracing::warn!(%error, "cannot count the outbox"),
        }
    }

    /// A spoken limit change, kept in the store.
    pub fn set_limit(&self, scope: LimitScope, amount: Money) -> Vec<Effect> {
        let result = self
            .store
            .limits()
            .and_then(|limits| self.store.set_limits(&limits.with(scope, amount)));
        match result {
            Ok(()) => Vec::new(),
            Err(error) => vec![Effect::Fail(format!("cannot change the limit: {error}"))],
        }
    }

    /// "How much did I spend this week?": the approved totals, and the
    /// agents' part of them.
    pub fn spending(&self, period: Period, calendar: &Calendar) -> Speech {
        let today = calendar.day_of(now_ms());
        let days = match period {
            Period::Today => 0,
            Period::Week => 6,
            Period::Month => 29,
        };
        let from = today.saturating_sub(days);
        let spent = self
            .store
            .spending(from, today)
            .and_then(|totals| Ok((totals, self.store.agents_spending(from, today)?)));
        match spent {
            Ok((totals, by_agents)) => Speech::Spent {
                period,
                totals,
                by_agents,
            },
            Err(error) => Speech::HistoryUnreadable {
                error: error.to_string(),
            },
        }
    }

    fn tell(
        &self,
        task: &AgentRef,
        state: TaskState,
        reason: Option<String>,
        request_id: Option<Uuid>,
    ) -> Effect {
        told(
            &self.store,
            &self.device_id,
            task,
            state,
            reason,
            request_id,
            now_ms(),
        )
    }

    fn remember(&mut self, event: HistoryEvent) -> Vec<Effect> {
        match self.store.record(event) {
            Ok(_) => Vec::new(),
            Err(error) => vec![Effect::Fail(format!("cannot write the history: {error}"))],
        }
    }
}

/// What may be sent of the outbox, in order: only what the disk holds,
/// less what a stopped agent asked for (the link sends it whenever the
/// gateway appears, and [`Payments::resend`] for want of answers).
pub fn sendable(store: &Store) -> Vec<Vec<u8>> {
    store
        .flush_durably()
        .and_then(|()| store.sendable_outbox())
        .map(|o| o.into_iter().map(|p| p.envelope).collect())
        .unwrap_or_else(|error| {
            tracing::error!(%error, "not sending the outbox");
            Vec::new()
        })
}

/// The first wait, without an answer, before the outbox is sent again, and
/// the longest (each wait doubles).
const RESEND_FIRST: Duration = Duration::from_secs(5);
const RESEND_MAX: Duration = Duration::from_secs(120);

/// When the outbox is sent again. A broker drops what it cannot queue (a
/// stock mosquitto keeps 1,000 QoS 1 messages per client), so a request can
/// be lost with the gateway online and the device connected: while
/// payments wait and the gateway is online, a stretch without any answer
/// sends them all again (the gateway answers a repeat with its first
/// answer), after 5 s, then 10, 20 ... up to 2 min, each wait drawn within
/// half of it either way so that devices dropped together do not come back
/// together. An answer starts the waits again from the first.
#[derive(Debug, Default)]
struct Resend {
    attempt: u32,
    due: Option<Instant>,
}

impl Resend {
    /// A resend is due while `needed`, none otherwise.
    fn arm(&mut self, needed: bool, now: Instant) {
        if !needed {
            *self = Resend::default();
        } else if self.due.is_none() {
            self.due = Some(
                now + jittered(
                    RESEND_FIRST
                        .saturating_mul(1 << self.attempt.min(6))
                        .min(RESEND_MAX),
                ),
            );
        }
    }

    /// The gateway answered: it hears us.
    fn answered(&mut self) {
        *self = Resend::default();
    }

    fn fired(&mut self) {
        self.attempt = self.attempt.saturating_add(1);
        self.due = None;
    }
}

/// `wait` times a random factor between 0.5 and 1.5.
fn jittered(wait: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    // A failing source gives the wait itself: still a wait.
    let draw = match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u32::from(u16::from_be_bytes(bytes)),
        Err(_) => 32_768,
    };
    wait / 2 + wait.mul_f64(f64::from(draw) / 65_536.0)
}

/// The daemon's answers to the dialog's questions about money: the store,
/// the link and the vehicle as they stand, put to the policy's rules.
pub struct Assessor<'a> {
    pub store: &'a Store,
    pub online: bool,
    /// What the vehicle last said (a car's driving mode).
    pub driving: Option<bool>,
    pub profile: &'a DeviceProfile,
}

impl<'a> Assessor<'a> {
    /// The money as it stands now: the store, the link and the vehicle.
    pub fn now(store: &'a Store, link: &DeviceLink, profile: &'a DeviceProfile) -> Assessor<'a> {
        Assessor {
            store,
            online: link.state.borrow().online(),
            driving: *link.driving.borrow(),
            profile,
        }
    }
}

impl crate::dialog::Assess for Assessor<'_> {
    fn decide(&self, amount: Money) -> Decision {
        let now = now_ms();
        let state = self.store.limits().and_then(|limits| {
            let today = self.profile.payments.calendar.day_of(now);
            let spent = self.store.spent_on_day(today, amount.currency)?;
            let counters = self.store.offline_counters()?;
            Ok((limits, spent, counters))
        });
        let Ok((limits, spent, counters)) = state else {
            return Decision::Decline(Refusal::RecordsUnreadable);
        };
        let link = if self.online {
            Link::Online
        } else {
            Link::Offline {
                floor: &self.profile.offline,
                counters: &counters,
                now_ms: now,
            }
        };
        policy::decide(amount, &limits, spent, link)
    }

    fn limit(&self, scope: LimitScope) -> Money {
        let limits = self.store.limits().ok();
        policy::current_limit(limits.as_ref(), scope, self.profile.default_currency)
    }

    fn price(&self, tokens: u64, provider: &str) -> Option<Money> {
        policy::token_price(&self.profile.payments.token_prices, provider, tokens)
    }

    fn motion(&self, purchase: &Purchase) -> policy::Motion {
        self.profile.motion(self.driving, purchase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::Language;
    use crate::order::AgentOrder;
    use voicepay_core::keys::SigningKey;
    use voicepay_core::money::Currency;
    use voicepay_core::protocol::{AnswerTo, Envelope, Evidence, PaymentResponse};

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    fn floor() -> OfflineFloor {
        OfflineFloor {
            per_payment: cny(5_000),
            cumulative: cny(10_000),
            max_consecutive: 3,
            max_age_ms: 3_600_000,
        }
    }

    /// A device's payments on a store in a fresh directory, with real keys
    /// for the device and the gateway it trusts.
    struct Device {
        _dir: tempfile::TempDir,
        store: Store,
        payments: Payments,
        gateway: SigningKey,
    }

    fn device() -> Device {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&crate::store::StoreConfig::new(dir.path().join("store"))).expect("store");
        let gateway = SigningKey::generate().expect("key");
        let outbox = Outbox::new(
            store.clone(),
            SigningKey::generate().expect("key"),
            "dev-1".into(),
            gateway.public_key(),
            60_000,
            Calendar::utc(),
        );
        let payments = Payments::new(
            store.clone(),
            outbox,
            "dev-1".into(),
            Phrasebook::new(Language::English),
        );
        Device {
            _dir: dir,
            store,
            payments,
            gateway,
        }
    }

    fn order(minor: i64) -> PaymentOrder {
        PaymentOrder::spoken(
            cny(minor),
            Purchase::Pay {
                payee: "Heytea".into(),
            },
            Evidence::new("Pay Heytea.", b"pcm", 0.9, "en"),
        )
    }

    /// The gateway's signed answer to the request waiting in the outbox.
    fn answer(d: &Device, approved: bool, key: &SigningKey) -> Vec<u8> {
        let waiting = &d.store.outbox().expect("outbox")[0];
        let to = AnswerTo {
            request_id: waiting.request_id,
            device_id: "dev-1".into(),
            request_sha256: Envelope::payload_sha256_of(&waiting.envelope).expect("hash"),
        };
        let response = if approved {
            PaymentResponse::approved(&to, "txn-1".into(), 1)
        } else {
            PaymentResponse::declined(&to, "insufficient funds".into(), 1)
        };
        Envelope::seal_json(&response, key)
            .expect("seal")
            .0
            .to_bytes()
    }

    fn said(effects: &[Effect]) -> Vec<&Speech> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Say(speech) => Some(speech),
                _ => None,
            })
            .collect()
    }

    fn told(effects: &[Effect]) -> Vec<TaskState> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Tell { status, .. } => Some(status.status),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_approved_order_is_durable_in_the_outbox_before_it_is_sent_and_a_signed_answer_settles_it()
    {
        let mut d = device();
        let effects = d
            .payments
            .pay(order(3_600), Approval::AutoLimit, true, &floor());
        let sent = match effects.as_slice() {
            [
                Effect::Emit(Event::Sent { offline: false, .. }),
                Effect::Send(message),
            ] => message.clone(),
            other => panic!("{other:?}"),
        };
        let waiting = d.store.outbox().expect("outbox");
        assert_eq!(waiting.len(), 1);
        assert_eq!(
            waiting[0].envelope, sent,
            "what is sent is what the disk holds"
        );
        assert_eq!((d.payments.waiting(), d.payments.unanswered()), (1, 1));
        let effects = d.payments.settle(&answer(&d, true, &d.gateway), true);
        assert!(matches!(
            effects.as_slice(),
            [
                Effect::Emit(Event::Answer { .. }),
                Effect::Say(Speech::Paid { .. })
            ]
        ));
        assert_eq!((d.payments.waiting(), d.payments.unanswered()), (0, 0));
        let history = d.store.history().expect("history");
        assert!(matches!(history[0].event, HistoryEvent::Paid { .. }));
    }

    #[test]
    fn an_answer_not_signed_by_the_trusted_gateway_settles_nothing_and_says_nothing() {
        let mut d = device();
        d.payments
            .pay(order(3_600), Approval::AutoLimit, true, &floor());
        let forger = SigningKey::generate().expect("key");
        assert!(
            d.payments
                .settle(&answer(&d, true, &forger), true)
                .is_empty()
        );
        assert!(d.payments.settle(b"garbage", true).is_empty());
        assert_eq!(d.payments.waiting(), 1, "still waiting for the real answer");
    }

    #[test]
    fn a_declined_answer_is_said_with_the_banks_reason() {
        let mut d = device();
        d.payments
            .pay(order(3_600), Approval::AutoLimit, true, &floor());
        let effects = d.payments.settle(&answer(&d, false, &d.gateway), true);
        assert!(matches!(
            said(&effects).as_slice(),
            [Speech::DeclinedByBank { reason, .. }] if reason == "insufficient funds"
        ));
        assert_eq!(d.payments.waiting(), 0);
    }

    #[test]
    fn offline_a_payment_under_the_floor_is_queued_unsent_and_one_over_it_is_refused_and_remembered()
     {
        let mut d = device();
        let effects = d
            .payments
            .pay(order(1_000), Approval::AutoLimit, false, &floor());
        assert!(matches!(
            effects.as_slice(),
            [
                Effect::Emit(Event::Sent { offline: true, .. }),
                Effect::Say(Speech::PaidOffline { .. })
            ]
        ));
        assert_eq!((d.payments.waiting(), d.payments.unanswered()), (1, 0));
        let effects = d
            .payments
            .pay(order(5_001), Approval::AutoLimit, false, &floor());
        let words =
            Phrasebook::new(Language::English).refusal(&Refusal::OfflinePerPayment(cny(5_000)));
        assert!(
            matches!(effects.as_slice(), [Effect::Emit(Event::Say { text })] if *text == words),
            "{effects:?}"
        );
        let history = d.store.history().expect("history");
        assert!(matches!(
            &history[0].event,
            HistoryEvent::Refused { reason: Reason::Policy(Refusal::OfflinePerPayment(max)), .. }
                if *max == cny(5_000)
        ));
        assert_eq!(d.payments.waiting(), 1, "only the first is in the outbox");
    }

    #[test]
    fn the_offline_spell_ends_only_once_back_online_with_nothing_waiting() {
        let mut d = device();
        d.payments.link_changed(true);
        d.payments
            .pay(order(1_000), Approval::AutoLimit, false, &floor());
        d.payments.link_changed(false);
        let counted = d.store.offline_counters().expect("counters");
        assert_eq!(counted.count, 1);
        assert!(counted.since_ms.is_some());
        d.payments.link_changed(true);
        assert_eq!(
            d.store.offline_counters().expect("counters"),
            counted,
            "a payment still waits: the spell goes on"
        );
        d.payments.settle(&answer(&d, true, &d.gateway), true);
        assert_eq!(d.store.offline_counters().expect("counters").count, 0);
    }

    #[test]
    fn the_outbox_is_sent_again_only_online_and_only_what_the_disk_holds() {
        let mut d = device();
        let now = Instant::now();
        assert_eq!(d.payments.resend_due(true, now), None, "nothing waits");
        d.payments
            .pay(order(1_000), Approval::AutoLimit, false, &floor());
        assert_eq!(d.payments.resend_due(false, now), None, "offline");
        assert!(d.payments.resend_due(true, now).is_some());
        assert!(d.payments.resend(false).is_empty());
        let effects = d.payments.resend(true);
        let held = d.store.outbox().expect("outbox")[0].envelope.clone();
        assert!(matches!(effects.as_slice(), [Effect::Resend(m)] if *m == [held]));
    }

    #[test]
    fn an_agents_payment_tells_its_agent_approved_then_paid_and_one_for_an_unknown_agent_is_refused()
     {
        let mut d = device();
        let key = SigningKey::generate().expect("key");
        let agent = voicepay_core::agent::Agent {
            name: "coder".into(),
            public_key: key.public_key().to_base64url(),
            mandate: voicepay_core::policy::Mandate::new(Currency::CNY),
            added_at: 1,
            revoked_at: None,
        };
        crate::agents::add(&d.store, agent).expect("add");
        let for_agent = |agent: &str| PaymentOrder {
            agent: Some(AgentOrder {
                task: AgentRef {
                    agent_id: agent.into(),
                    task_id: "t-1".into(),
                },
                description: "a book".into(),
                spoken_name: agent.into(),
                period: None,
            }),
            ..order(3_000)
        };
        let effects = d
            .payments
            .pay(for_agent("coder"), Approval::AutoLimit, true, &floor());
        assert_eq!(told(&effects), [TaskState::Approved]);
        let effects = d.payments.settle(&answer(&d, true, &d.gateway), true);
        assert_eq!(told(&effects), [TaskState::Paid]);
        assert_eq!(
            d.store.task_state("coder", "t-1").expect("state"),
            Some(TaskState::Paid)
        );
        let effects = d
            .payments
            .pay(for_agent("nobody"), Approval::AutoLimit, true, &floor());
        assert!(matches!(
            said(&effects).as_slice(),
            [Speech::AgentTaskDropped {
                reason: DropReason::Revoked,
                ..
            }]
        ));
        assert_eq!(told(&effects), [TaskState::Refused]);
        assert_eq!(d.payments.waiting(), 0, "nothing committed for it");
    }

    #[test]
    fn a_mandate_breach_is_remembered_typed_and_its_agent_is_told_in_words() {
        let mut d = device();
        let task = AgentRef {
            agent_id: "coder".into(),
            task_id: "t-9".into(),
        };
        let for_coder = PaymentOrder {
            agent: Some(AgentOrder {
                task: task.clone(),
                description: "a book".into(),
                spoken_name: "coder".into(),
                period: None,
            }),
            ..order(3_000)
        };
        let outside = voicepay_core::policy::OutsideMandate::PerTask(cny(2_000));
        let effects = d
            .payments
            .refused(&for_coder, Refused::Mandate(outside.clone()));
        let told: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Tell { status, .. } => Some((status.status, status.reason.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            told,
            [(
                TaskState::Refused,
                Some("over the agent's limit of 20.00 CNY a task".to_owned())
            )]
        );
        let history = d.store.history().expect("history");
        assert!(
            matches!(
                &history[0].event,
                HistoryEvent::Refused { reason: Reason::Mandate(kept), agent: Some(a), .. }
                    if *kept == outside && *a == task
            ),
            "{history:?}"
        );
    }

    #[test]
    fn a_refusal_and_a_drop_are_remembered_with_their_reasons_typed_and_worded_when_read() {
        let mut d = device();
        let over = Refusal::OverDailyLimit {
            limit: cny(10_000),
            left: cny(0),
        };
        assert!(
            d.payments
                .refused(&order(3_600), Refused::Policy(over.clone()))
                .is_empty()
        );
        assert!(
            d.payments
                .dropped(&order(3_600), DropReason::Cancelled)
                .is_empty()
        );
        let english = Phrasebook::new(Language::English);
        let reasons: Vec<_> =
            d.store
                .history()
                .expect("history")
                .into_iter()
                .map(|e| match e.event {
                    HistoryEvent::Refused { reason, .. }
                    | HistoryEvent::Cancelled { reason, .. } => reason,
                    other => panic!("{other:?}"),
                })
                .collect();
        assert_eq!(
            reasons,
            [
                Reason::Policy(over.clone()),
                Reason::Dropped(DropReason::Cancelled)
            ]
        );
        let words: Vec<_> = reasons.iter().map(|r| english.reason(r)).collect();
        assert_eq!(
            words,
            [
                english.refusal(&over),
                english.drop_reason(DropReason::Cancelled)
            ]
        );
    }

    #[test]
    fn a_limit_said_aloud_is_kept_and_read_back_by_the_policy() {
        let d = device();
        assert!(
            d.payments
                .set_limit(LimitScope::Daily, cny(30_000))
                .is_empty()
        );
        let limits = d.store.limits().expect("limits");
        assert_eq!(
            policy::current_limit(Some(&limits), LimitScope::Daily, Currency::CNY),
            cny(30_000)
        );
    }

    #[test]
    fn the_outbox_waits_double_from_5_s_to_2_min_each_within_half_either_way() {
        let now = Instant::now();
        let mut resend = Resend::default();
        let mut expected = RESEND_FIRST;
        for _ in 0..10 {
            resend.arm(true, now);
            let due = resend.due.expect("armed while payments wait online");
            let wait = due - now;
            assert!(
                wait >= expected / 2 && wait <= expected * 3 / 2,
                "{wait:?} for {expected:?}"
            );
            resend.arm(true, now + Duration::from_secs(1));
            assert_eq!(resend.due, Some(due), "arming again keeps the wait");
            resend.fired();
            expected = (expected * 2).min(RESEND_MAX);
        }
        // An answer, or nothing waiting, starts again from the first wait.
        resend.answered();
        resend.arm(true, now);
        assert!(
            resend
                .due
                .is_some_and(|due| due - now <= RESEND_FIRST * 3 / 2)
        );
        resend.arm(false, now);
        assert_eq!((resend.due, resend.attempt), (None, 0));
    }
}
