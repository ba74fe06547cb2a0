//! The agent desk: agents' verified tasks, status questions and "stop the agents" in, [`Effect`]s out (tell the agent, refuse, drop, offer the task to the dialog).
//!
//! Like the dialog, the desk decides and the daemon carries out: it reads
//! and writes the store (a task's record, the agents), but never signs,
//! publishes or speaks. Tasks let in wait here, in order, until the user is
//! free; each is checked again when its turn comes (its time, the agent
//! stopped or spent meanwhile, the device's token prices) and only then put
//! to the user.

use std::collections::VecDeque;

use crate::agents::{LetIn, TaskRejection};
use crate::effect::{Effect, Refused};
use crate::language::Language;
use crate::order::{AgentOrder, DropReason, PaymentOrder, Purchase};
use crate::payees::PayeeBook;
use crate::phrasebook::Speech;
use crate::profile::DeviceProfile;
use crate::store::Store;
use uuid::Uuid;
use voicepay_core::agent::Agent;
use voicepay_core::clock::Calendar;
use voicepay_core::policy::{self, OutsideMandate, TokenPrices};
use voicepay_core::protocol::{AgentRef, AgentTask, Evidence, TaskKind, TaskState, TaskStatus};
use voicepay_core::transport::LogLimiter;

/// More tasks than this waiting for the user are answered "busy".
pub const MAX_WAITING_TASKS: usize = 16;

const EXPIRED: &str = "it expired before the user could be asked";

/// What the desk checks a task against when its turn comes: the profile's
/// providers, prices and calendar, and the payee book as it stands.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub known_providers: &'a [String],
    pub token_prices: &'a TokenPrices,
    pub calendar: &'a Calendar,
    pub payees: &'a PayeeBook,
}

impl<'a> Rules<'a> {
    /// The profile's rules, and the payee book as it stands.
    pub fn of(profile: &'a DeviceProfile, payees: &'a PayeeBook) -> Rules<'a> {
        Rules {
            known_providers: &profile.known_providers,
            token_prices: &profile.payments.token_prices,
            calendar: &profile.payments.calendar,
            payees,
        }
    }
}

/// An agent's task let in, and the signed bytes it came in (their hash is
/// the evidence of the request made for it).
struct Waiting {
    agent: Agent,
    task: AgentTask,
    message: Vec<u8>,
}

pub struct Desk {
    store: Store,
    device_id: String,
    /// The language the task's evidence is recorded in.
    language: Language,
    waiting: VecDeque<Waiting>,
    /// Tasks that are not a registered agent's are logged a few a second.
    rejections: LogLimiter,
}

impl Desk {
    pub fn new(store: Store, device_id: String, language: Language) -> Desk {
        Desk {
            store,
            device_id,
            language,
            waiting: VecDeque::new(),
            rejections: LogLimiter::new(10),
        }
    }

    /// Tasks let in and not yet put to the user.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// An agent's message as it arrives (its signer already verified): a
    /// task let in (registered key, good signature, its own, well formed,
    /// new) is queued for the user; a question is answered from the record;
    /// anything else is logged and dropped without a word to anyone.
    /// `asking`: the task the dialog is asking the user about, if any.
    pub fn take(
        &mut self,
        message: Vec<u8>,
        asking: Option<&AgentRef>,
        now_ms: u64,
    ) -> Vec<Effect> {
        match crate::agents::open_task(&self.store, &self.device_id, &message, now_ms) {
            Ok(LetIn::Task(agent, task)) => {
                tracing::info!(agent = %agent.name, task_id = %task.task_id, amount = %task.amount, "agent task let in");
                self.queue(agent, task, message, now_ms)
            }
            Ok(LetIn::Query(agent, query)) => {
                tracing::debug!(agent = %agent.name, task_id = %query.status_of, "asked where a task stands");
                self.record_of(&agent.name, &query.status_of, asking, now_ms)
            }
            Err(TaskRejection::Replayed {
                agent,
                task,
                same_terms,
            }) => {
                tracing::info!(agent = %agent.name, task_id = %task.task_id, same_terms, "a task sent again: its agent is told the record");
                if same_terms && self.lost(&agent.name, &task.task_id, asking, now_ms) {
                    // Let in by a run that ended before the user heard it:
                    // the agent's retry is the task itself, put to the user now.
                    return self.queue(*agent, *task, message, now_ms);
                }
                self.record_of(&agent.name, &task.task_id, asking, now_ms)
            }
            Err(TaskRejection::Store(error)) => {
                vec![Effect::Fail(format!("cannot check an agent task: {error}"))]
            }
            Err(rejection) => {
                if let Some(held_back) = self.rejections.allow() {
                    tracing::warn!(%rejection, held_back, "agent task rejected");
                }
                Vec::new()
            }
        }
    }

    /// Queues a task let in for the user, or refuses it as "busy".
    fn queue(
        &mut self,
        agent: Agent,
        task: AgentTask,
        message: Vec<u8>,
        now_ms: u64,
    ) -> Vec<Effect> {
        if self.waiting.len() >= MAX_WAITING_TASKS {
            // Not taken: the same task sent again later is let in then.
            let busy = "the device has too many tasks waiting: send the same task again later";
            let task = task_ref(&task);
            return vec![self.tell(&task, TaskState::Busy, Some(busy.into()), None, now_ms)];
        }
        self.waiting.push_back(Waiting {
            agent,
            task,
            message,
        });
        Vec::new()
    }

    /// A task the store says is pending (or was turned away busy), that
    /// neither waits in this run nor is being asked about, and whose time
    /// has not run out: let in by an earlier run that stopped before the
    /// user answered, or not taken for want of room.
    fn lost(&self, agent: &str, task_id: &str, asking: Option<&AgentRef>, now_ms: u64) -> bool {
        let task = agent_ref(agent, task_id);
        let record = match self.store.task_record(agent, task_id) {
            Ok(Some(record)) => record,
            _ => return false,
        };
        matches!(record.state, TaskState::Pending | TaskState::Busy)
            && record.request_id.is_none()
            && record.expires_at > now_ms
            && !self.in_this_run(&task, asking)
    }

    /// What the device's record says of a task: the answer to a question or
    /// a retry. `unknown` (not retained) when there is none; `expired` for
    /// one left pending by an earlier run past its time.
    fn record_of(
        &mut self,
        agent: &str,
        task_id: &str,
        asking: Option<&AgentRef>,
        now_ms: u64,
    ) -> Vec<Effect> {
        let task = agent_ref(agent, task_id);
        let record = match self.store.task_record(agent, task_id) {
            Ok(record) => record,
            Err(error) => {
                return vec![Effect::Fail(format!(
                    "cannot read a task's record: {error}"
                ))];
            }
        };
        let Some(record) = record else {
            let status = TaskStatus {
                task_id: task.task_id,
                agent_id: task.agent_id,
                device_id: self.device_id.clone(),
                status: TaskState::Unknown,
                reason: Some("the device has no record of this task".into()),
                request_id: None,
                terms: None,
                at: now_ms,
            };
            return vec![Effect::Tell {
                status,
                retain: false,
            }];
        };
        if record.state == TaskState::Pending
            && record.expires_at <= now_ms
            && !self.in_this_run(&task, asking)
        {
            return vec![self.tell(
                &task,
                TaskState::Expired,
                Some(EXPIRED.into()),
                None,
                now_ms,
            )];
        }
        let status = TaskStatus {
            task_id: task.task_id,
            agent_id: task.agent_id,
            device_id: self.device_id.clone(),
            status: record.state,
            reason: record.reason,
            request_id: record.request_id,
            terms: record.terms,
            at: record.at.unwrap_or(now_ms),
        };
        vec![Effect::Tell {
            status,
            retain: true,
        }]
    }

    /// Whether `task` waits in this run or is being asked about.
    fn in_this_run(&self, task: &AgentRef, asking: Option<&AgentRef>) -> bool {
        self.waiting.iter().any(|w| task_ref(&w.task) == *task) || asking == Some(task)
    }

    /// The next waiting task, checked again (its time, the agent stopped or
    /// spent meanwhile, the device's prices): the effects of those turned
    /// away, then an [`Effect::Offer`] of the first that may be put to the
    /// user. Nothing: no task waits.
    pub fn next(&mut self, rules: Rules, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some(waiting) = self.waiting.pop_front() {
            match self.check(&waiting, rules, now_ms) {
                Ok(offer) => {
                    effects.push(offer);
                    break;
                }
                Err(turned_away) => effects.extend(turned_away),
            }
        }
        effects
    }

    fn check(&self, waiting: &Waiting, rules: Rules, now_ms: u64) -> Result<Effect, Vec<Effect>> {
        let task = &waiting.task;
        if task.expires_at <= now_ms {
            let expired = self.tell(
                &task_ref(task),
                TaskState::Expired,
                Some(EXPIRED.into()),
                None,
                now_ms,
            );
            return Err(vec![expired]);
        }
        let agent = match self.store.agent(&waiting.agent.name) {
            Ok(Some(agent)) => agent,
            Ok(None) => {
                let why = "the agent was removed";
                let removed = self.tell(
                    &task_ref(task),
                    TaskState::Refused,
                    Some(why.into()),
                    None,
                    now_ms,
                );
                return Err(vec![removed]);
            }
            Err(error) => {
                return Err(vec![Effect::Fail(format!(
                    "cannot read the agents: {error}"
                ))]);
            }
        };
        let order = task_order(&agent, task, &waiting.message, self.language);
        let refuse = |order: PaymentOrder, reason| Err(vec![Effect::Refuse { order, reason }]);
        if agent.revoked_at.is_some() {
            return refuse(order, Refused::Mandate(OutsideMandate::Revoked));
        }
        if task.kind == TaskKind::TokenTopUp
            && let Err(refusal) = policy::check_top_up(
                rules.known_providers,
                rules.token_prices,
                &task.payee,
                task.tokens,
                task.amount,
            )
        {
            return refuse(order, Refused::TopUp(refusal));
        }
        let today = rules.calendar.day_of(now_ms);
        let inside = match self.store.agent_spent(&agent.name, today) {
            Ok((today, total)) => agent
                .mandate
                .check(task.amount, &task.payee, today, total, now_ms)
                .map_err(Refused::Mandate),
            Err(error) => Err(Refused::Unreadable(error.to_string())),
        };
        if let Err(reason) = inside {
            // Outside what the user allowed it: refused, the user undisturbed.
            tracing::info!(agent = %agent.name, task_id = %task.task_id, ?reason, "agent task refused");
            return refuse(order, reason);
        }
        // A payee the user named: in the payee book, or for tokens a
        // provider of the profile's (checked above).
        let in_book = task.kind == TaskKind::TokenTopUp
            || rules
                .payees
                .names()
                .iter()
                .any(|name| name.eq_ignore_ascii_case(&task.payee));
        let unasked = agent.mandate.pays_unasked(task.amount, in_book);
        Ok(Effect::Offer { order, unasked })
    }

    /// "Stop the agents": every agent stopped in the store (so nothing of
    /// theirs is committed after this, also offline and after a restart),
    /// and every task waiting for its turn dropped.
    pub fn stop_agents(&mut self, now_ms: u64) -> Vec<Effect> {
        let stopped = match self.store.revoke_agents(None, now_ms) {
            Ok(stopped) => stopped,
            Err(error) => {
                let error = error.to_string();
                return vec![
                    Effect::Fail(format!("cannot stop the agents: {error}")),
                    Effect::Say(Speech::AgentsNotStopped { error }),
                ];
            }
        };
        let mut effects: Vec<Effect> = std::mem::take(&mut self.waiting)
            .into_iter()
            .map(|waiting| Effect::Drop {
                order: task_order(
                    &waiting.agent,
                    &waiting.task,
                    &waiting.message,
                    self.language,
                ),
                reason: DropReason::Revoked,
            })
            .collect();
        let names = stopped
            .iter()
            .map(|name| voicepay_core::agent::spoken_name(name))
            .collect();
        effects.push(Effect::Say(Speech::AgentsStopped { names }));
        effects
    }

    /// Tells an agent where its task stands: remembered in the store, then
    /// signed and retained on the task's topic by the daemon.
    pub fn tell(
        &self,
        task: &AgentRef,
        state: TaskState,
        reason: Option<String>,
        request_id: Option<Uuid>,
        now_ms: u64,
    ) -> Effect {
        told(
            &self.store,
            &self.device_id,
            task,
            state,
            reason,
            request_id,
            now_ms,
        )
    }
}

/// Tasks whose signature verified, not yet taken by the loop.
const VERIFIED_TASKS: usize = 256;

/// Checks each incoming task's signature on a task of its own, ahead of the
/// daemon's loop: a flood of forged tasks is dropped as fast as it arrives
/// (logged a few lines a second), so the link's queue does not fill with it
/// and a genuine task is not crowded out. Only what a registered agent
/// signed reaches the loop, which opens it fully.
pub fn verify_ahead(
    store: Store,
    mut raw: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (verified, tasks) = tokio::sync::mpsc::channel(VERIFIED_TASKS);
    tokio::spawn(async move {
        let mut rejections = LogLimiter::new(10);
        while let Some(message) = raw.recv().await {
            match crate::agents::verify_signer(&store, &message) {
                Ok(()) => {
                    if verified.send(message).await.is_err() {
                        return;
                    }
                }
                Err(rejection) => {
                    if let Some(held_back) = rejections.allow() {
                        tracing::warn!(%rejection, held_back, "agent task rejected");
                    }
                }
            }
        }
    });
    tasks
}

/// A task's new state, recorded in the store (with the terms it was let
/// in with) and to be told to its agent, retained.
pub fn told(
    store: &Store,
    device_id: &str,
    task: &AgentRef,
    state: TaskState,
    reason: Option<String>,
    request_id: Option<Uuid>,
    now_ms: u64,
) -> Effect {
    let terms = store
        .task_record(&task.agent_id, &task.task_id)
        .ok()
        .flatten()
        .and_then(|r| r.terms);
    let status = TaskStatus {
        task_id: task.task_id.clone(),
        agent_id: task.agent_id.clone(),
        device_id: device_id.to_owned(),
        status: state,
        reason,
        request_id,
        terms,
        at: now_ms,
    };
    if let Err(error) = store.record_task_status(&status) {
        tracing::warn!(%error, task_id = %task.task_id, "cannot record the task's state");
    }
    Effect::Tell {
        status,
        retain: true,
    }
}

fn agent_ref(agent: &str, task_id: &str) -> AgentRef {
    AgentRef {
        agent_id: agent.to_owned(),
        task_id: task_id.to_owned(),
    }
}

fn task_ref(task: &AgentTask) -> AgentRef {
    agent_ref(&task.agent_id, &task.task_id)
}

/// The payment an agent's task asks for. Its evidence is the task itself:
/// the description as the transcript, the hash of the agent's signed bytes
/// as the "audio".
fn task_order(agent: &Agent, task: &AgentTask, message: &[u8], language: Language) -> PaymentOrder {
    let purchase = match (task.kind, task.tokens) {
        (TaskKind::TokenTopUp, Some(tokens)) => Purchase::TopUp {
            tokens,
            provider: task.payee.clone(),
        },
        _ => Purchase::Pay {
            payee: task.payee.clone(),
        },
    };
    PaymentOrder {
        amount: task.amount,
        purchase,
        evidence: Evidence::new(&task.description, message, 1.0, language.code()),
        agent: Some(AgentOrder {
            task: task_ref(task),
            description: task.description.clone(),
            spoken_name: agent.spoken_name(),
            period: task.period,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payee::Payee;
    use crate::payees::Origin;
    use voicepay_core::keys::SigningKey;
    use voicepay_core::money::{Currency, Money};
    use voicepay_core::policy::Mandate;
    use voicepay_core::protocol::{Envelope, TaskQuery};

    const NOW: u64 = 1_760_000_000_000;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    /// A device's store in a fresh directory, knowing the agent "coder" by
    /// a real key under `mandate`, and its desk.
    struct Device {
        _dir: tempfile::TempDir,
        store: Store,
        desk: Desk,
        key: SigningKey,
    }

    fn device(mandate: Mandate) -> Device {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&crate::store::StoreConfig::new(dir.path().join("store"))).expect("store");
        let key = SigningKey::generate().expect("key");
        let agent = Agent {
            name: "coder".into(),
            public_key: key.public_key().to_base64url(),
            mandate,
            added_at: 1,
            revoked_at: None,
        };
        crate::agents::add(&store, agent).expect("add");
        let desk = Desk::new(store.clone(), "dev-1".into(), Language::English);
        Device {
            _dir: dir,
            store,
            desk,
            key,
        }
    }

    fn task(id: &str, payee: &str, minor: i64) -> AgentTask {
        AgentTask {
            task_id: id.into(),
            agent_id: "coder".into(),
            device_id: "dev-1".into(),
            description: "a book on Rust".into(),
            payee: payee.into(),
            amount: cny(minor),
            kind: TaskKind::Purchase,
            tokens: None,
            period: None,
            created_at: NOW,
            expires_at: NOW + 60_000,
        }
    }

    fn signed<T: serde::Serialize>(value: &T, key: &SigningKey) -> Vec<u8> {
        Envelope::seal_json(value, key).expect("seal").0.to_bytes()
    }

    fn book(names: &[&str]) -> PayeeBook {
        PayeeBook::new(names.iter().map(|name| {
            let payee = Payee {
                name: (*name).into(),
                aliases: Vec::new(),
            };
            (payee, Origin::Profile)
        }))
    }

    fn next(d: &mut Device, payees: &PayeeBook, now_ms: u64) -> Vec<Effect> {
        let known = vec!["Claude".to_owned()];
        let prices: TokenPrices = [("Claude".to_owned(), cny(9_000))].into();
        let rules = Rules {
            known_providers: &known,
            token_prices: &prices,
            calendar: &Calendar::utc(),
            payees,
        };
        d.desk.next(rules, now_ms)
    }

    fn told_state(effects: &[Effect]) -> Vec<(TaskState, bool)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Tell { status, retain } => Some((status.status, *retain)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_task_let_in_waits_for_its_turn_and_is_then_offered_to_the_user() {
        let mut d = device(Mandate::new(Currency::CNY));
        let message = signed(&task("t-1", "Amazon", 3_000), &d.key);
        assert!(
            d.desk.take(message, None, NOW).is_empty(),
            "nothing said yet"
        );
        assert_eq!(d.desk.waiting(), 1);
        match next(&mut d, &book(&[]), NOW).as_slice() {
            [Effect::Offer { order, unasked }] => {
                assert_eq!(order.amount, cny(3_000));
                assert_eq!(order.purchase.payee(), "Amazon");
                assert_eq!(order.agent_ref().map(|t| t.task_id), Some("t-1".into()));
                assert!(!unasked, "an open mandate pays nothing unasked");
            }
            other => panic!("not offered: {other:?}"),
        }
        assert!(next(&mut d, &book(&[]), NOW).is_empty(), "no task left");
    }

    #[test]
    fn a_forged_task_is_dropped_without_a_word_to_anyone() {
        let mut d = device(Mandate::new(Currency::CNY));
        let forger = SigningKey::generate().expect("key");
        let message = signed(&task("t-1", "Amazon", 3_000), &forger);
        assert!(d.desk.take(message, None, NOW).is_empty());
        assert_eq!(d.desk.waiting(), 0);
        assert_eq!(d.store.task_state("coder", "t-1").expect("state"), None);
    }

    #[test]
    fn a_question_about_a_task_the_device_never_saw_is_answered_unknown_and_not_retained() {
        let mut d = device(Mandate::new(Currency::CNY));
        let query = TaskQuery {
            status_of: "t-9".into(),
            agent_id: "coder".into(),
            device_id: "dev-1".into(),
            asked_at: NOW,
        };
        let effects = d.desk.take(signed(&query, &d.key), None, NOW);
        assert_eq!(told_state(&effects), [(TaskState::Unknown, false)]);
    }

    #[test]
    fn a_task_sent_again_while_it_is_asked_about_is_answered_with_its_record_not_asked_twice() {
        let mut d = device(Mandate::new(Currency::CNY));
        let message = signed(&task("t-1", "Amazon", 3_000), &d.key);
        d.desk.take(message.clone(), None, NOW);
        let Some(Effect::Offer { order, .. }) = next(&mut d, &book(&[]), NOW).pop() else {
            panic!("not offered");
        };
        let asking = order.agent_ref().expect("an agent's");
        let pending = d.desk.tell(&asking, TaskState::Pending, None, None, NOW);
        assert_eq!(told_state(&[pending]), [(TaskState::Pending, true)]);
        let effects = d.desk.take(message, Some(&asking), NOW + 1);
        assert_eq!(told_state(&effects), [(TaskState::Pending, true)]);
        assert_eq!(d.desk.waiting(), 0, "not queued a second time");
    }

    #[test]
    fn a_task_left_pending_by_an_earlier_run_is_put_to_the_user_when_its_agent_retries() {
        let mut d = device(Mandate::new(Currency::CNY));
        let message = signed(&task("t-1", "Amazon", 3_000), &d.key);
        d.desk.take(message.clone(), None, NOW);
        let asked = AgentRef {
            agent_id: "coder".into(),
            task_id: "t-1".into(),
        };
        d.desk.tell(&asked, TaskState::Pending, None, None, NOW);
        // The next run: a new desk on the same store.
        let mut again = Desk::new(d.store.clone(), "dev-1".into(), Language::English);
        assert!(again.take(message.clone(), None, NOW + 1).is_empty());
        assert_eq!(again.waiting(), 1, "the retry is the task itself");
    }

    #[test]
    fn a_task_whose_time_ran_out_while_it_waited_is_told_expired_and_not_offered() {
        let mut d = device(Mandate::new(Currency::CNY));
        d.desk
            .take(signed(&task("t-1", "Amazon", 3_000), &d.key), None, NOW);
        let effects = next(&mut d, &book(&[]), NOW + 60_000);
        assert_eq!(told_state(&effects), [(TaskState::Expired, true)]);
        assert_eq!(
            d.store.task_state("coder", "t-1").expect("state"),
            Some(TaskState::Expired),
            "the record agrees with what the agent was told"
        );
    }

    #[test]
    fn a_task_outside_its_agents_mandate_is_refused_with_the_breach_and_the_user_is_not_asked() {
        let mandate = Mandate {
            per_task: Some(cny(1_000)),
            ..Mandate::new(Currency::CNY)
        };
        let mut d = device(mandate);
        d.desk
            .take(signed(&task("t-1", "Amazon", 3_000), &d.key), None, NOW);
        match next(&mut d, &book(&[]), NOW).as_slice() {
            [Effect::Refuse { reason, order }] => {
                assert_eq!(
                    *reason,
                    Refused::Mandate(OutsideMandate::PerTask(cny(1_000)))
                );
                assert!(order.agent.is_some());
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_top_up_from_a_provider_the_device_does_not_know_or_off_its_price_is_refused() {
        let mut d = device(Mandate::new(Currency::CNY));
        let top_up = |id: &str, provider: &str, minor| AgentTask {
            kind: TaskKind::TokenTopUp,
            tokens: Some(1_000_000),
            ..task(id, provider, minor)
        };
        for (id, provider, minor) in [("t-1", "Anthropic", 9_000), ("t-2", "Claude", 100)] {
            d.desk
                .take(signed(&top_up(id, provider, minor), &d.key), None, NOW);
        }
        d.desk
            .take(signed(&top_up("t-3", "claude", 9_000), &d.key), None, NOW);
        let effects = next(&mut d, &book(&[]), NOW);
        let reasons: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Refuse { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            reasons,
            [
                Refused::TopUp(policy::TopUpRefusal::UnknownProvider {
                    provider: "Anthropic".into()
                }),
                Refused::TopUp(policy::TopUpRefusal::NotTheListedPrice {
                    tokens: 1_000_000,
                    provider: "Claude".into(),
                    price: cny(9_000),
                    asked: cny(100),
                }),
            ]
        );
        assert!(
            matches!(effects.last(), Some(Effect::Offer { unasked: false, .. })),
            "the top-up at the listed price is put to the user: {effects:?}"
        );
    }

    #[test]
    fn a_task_its_agent_may_pay_unasked_is_offered_unasked_only_to_a_payee_in_the_book() {
        let mandate = Mandate {
            auto_under: Some(cny(5_000)),
            ..Mandate::new(Currency::CNY)
        };
        let mut d = device(mandate);
        for id in ["t-1", "t-2"] {
            d.desk
                .take(signed(&task(id, "Amazon", 3_000), &d.key), None, NOW);
        }
        let unasked = |effects: Vec<Effect>| match effects.as_slice() {
            [Effect::Offer { unasked, .. }] => *unasked,
            other => panic!("not offered: {other:?}"),
        };
        assert!(unasked(next(&mut d, &book(&["Amazon"]), NOW)));
        assert!(!unasked(next(&mut d, &book(&["Heytea"]), NOW)));
    }

    #[test]
    fn more_tasks_than_the_desk_holds_are_told_busy_and_let_in_when_sent_again() {
        let mut d = device(Mandate::new(Currency::CNY));
        for i in 0..MAX_WAITING_TASKS {
            let message = signed(&task(&format!("t-{i}"), "Amazon", 100), &d.key);
            assert!(d.desk.take(message, None, NOW).is_empty());
        }
        let one_too_many = signed(&task("t-late", "Amazon", 100), &d.key);
        let effects = d.desk.take(one_too_many.clone(), None, NOW);
        assert_eq!(told_state(&effects), [(TaskState::Busy, true)]);
        next(&mut d, &book(&[]), NOW);
        assert!(
            d.desk.take(one_too_many, None, NOW + 1).is_empty(),
            "room again: let in"
        );
        assert_eq!(d.desk.waiting(), MAX_WAITING_TASKS);
    }

    #[test]
    fn stopping_the_agents_drops_every_waiting_task_and_names_the_agents_stopped() {
        let mut d = device(Mandate::new(Currency::CNY));
        for id in ["t-1", "t-2"] {
            d.desk
                .take(signed(&task(id, "Amazon", 3_000), &d.key), None, NOW);
        }
        let effects = d.desk.stop_agents(NOW);
        match effects.as_slice() {
            [
                Effect::Drop {
                    reason: DropReason::Revoked,
                    ..
                },
                Effect::Drop {
                    reason: DropReason::Revoked,
                    ..
                },
                Effect::Say(Speech::AgentsStopped { names }),
            ] => assert_eq!(names.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.desk.waiting(), 0);
        let agent = d.store.agent("coder").expect("read").expect("kept");
        assert!(agent.revoked_at.is_some(), "stopped in the store");
        // A task that comes up after the stop is refused as the mandate says.
        d.desk
            .take(signed(&task("t-3", "Amazon", 3_000), &d.key), None, NOW);
        assert!(matches!(
            next(&mut d, &book(&[]), NOW).as_slice(),
            [Effect::Refuse {
                reason: Refused::Mandate(OutsideMandate::Revoked),
                ..
            }]
        ));
    }
}
