//! `AgentTask`: what an AI agent asks the device to pay, signed by the agent's own key; and `TaskStatus`, the device's signed word back.
//!
//! In AP2's terms an agent's budget is an open mandate: the agent proposes,
//! the user approves by voice (or the agent's auto-approve amount does), and
//! only then does the device sign a closed `PaymentRequest` of kind `agent_task`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MAX_EXPIRY_WINDOW_MS, ProtocolError, clip, is_valid_device_id, sha256_hex};
use crate::money::Money;

/// The device reads the description aloud: one sentence, not a letter.
pub const MAX_DESCRIPTION_CHARS: usize = 160;
/// A payee or provider name, as the agent spells it.
pub const MAX_PAYEE_CHARS: usize = 64;
/// A task stamped this far ahead of the device's clock is refused.
const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// What an agent's task buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Purchase,
    /// Tokens from an AI provider; `tokens` says how many.
    TokenTopUp,
    /// The first payment of a subscription; `period` says how often it renews.
    Subscription,
}

/// How often a subscription renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionPeriod {
    Week,
    Month,
    Year,
}

/// An agent's request, as it arrives on `{prefix}/devices/{device_id}/tasks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTask {
    /// The agent's own id for the task, unique per agent; a topic segment.
    pub task_id: String,
    /// The name the agent was registered under (`voicepay agents add NAME`).
    pub agent_id: String,
    /// The one device asked: another device that knows the agent refuses it,
    /// so a task copied to a second device is not paid twice.
    pub device_id: String,
    /// One sentence the device reads to the user.
    pub description: String,
    pub payee: String,
    pub amount: Money,
    pub kind: TaskKind,
    /// Tokens bought, for `token_top_up` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// For `subscription` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<SubscriptionPeriod>,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds; no answer by then rejects the task.
    pub expires_at: u64,
}

impl AgentTask {
    /// Checks the task's own shape at `now_ms`: ids that are topic segments,
    /// a short description and payee, a positive amount, the fields its kind
    /// needs, and a life that has not ended and is at most a day long.
    pub fn validate(&self, now_ms: u64) -> Result<(), ProtocolError> {
        let invalid = |what: String| Err(ProtocolError::InvalidRequest(what));
        if !is_valid_device_id(&self.task_id) {
            return invalid(format!("task_id {:?}", clip(&self.task_id)));
        }
        if !is_valid_device_id(&self.agent_id) {
            return invalid(format!("agent_id {:?}", clip(&self.agent_id)));
        }
        if !is_valid_device_id(&self.device_id) {
            return invalid(format!("device_id {:?}", clip(&self.device_id)));
        }
        let text_ok = |s: &str, max: usize| {
            !s.trim().is_empty() && s.chars().count() <= max && s.chars().all(is_plain)
        };
        if !text_ok(&self.description, MAX_DESCRIPTION_CHARS) {
            return invalid(format!("description {:?}", clip(&self.description)));
        }
        if !text_ok(&self.payee, MAX_PAYEE_CHARS) {
            return invalid(format!("payee {:?}", clip(&self.payee)));
        }
        if !self.amount.is_positive() {
            return invalid(format!("amount {}", self.amount));
        }
        match (self.kind, self.tokens, self.period) {
            (TaskKind::Purchase, None, None) => {}
            (TaskKind::TokenTopUp, Some(tokens), None) if tokens > 0 => {}
            (TaskKind::Subscription, None, Some(_)) => {}
            _ => {
                return invalid(format!(
                    "{:?} with tokens and period that do not fit it",
                    self.kind
                ));
            }
        }
        if self.expires_at <= self.created_at
            || self.expires_at - self.created_at > MAX_EXPIRY_WINDOW_MS
        {
            return invalid("expires_at must be after created_at, within a day".into());
        }
        if self.created_at > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return invalid("created_at is in the future".into());
        }
        if self.expires_at <= now_ms {
            return Err(ProtocolError::Expired);
        }
        Ok(())
    }

    /// The hex SHA-256 of what the task pays: the agent, device, payee,
    /// amount, kind, tokens and period (not its wording, ids or times). A
    /// retry under the same task id with the same terms is the same task;
    /// with other terms it is refused.
    pub fn terms_sha256(&self) -> String {
        let terms = serde_json::json!([
            self.agent_id,
            self.device_id,
            self.payee,
            self.amount.minor,
            self.amount.currency.code(),
            self.kind,
            self.tokens,
            self.period,
        ]);
        sha256_hex(terms.to_string().as_bytes())
    }
}

/// An agent's question "where does my task stand?", signed by its key and
/// sent on the tasks topic like a task. The device answers on the task's
/// status topic from its own record (`unknown`, not retained, when it has
/// none), so an agent that just started learns the truth, not its own
/// ignorance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// The task asked about.
    pub status_of: String,
    pub agent_id: String,
    pub device_id: String,
    /// Unix milliseconds; a question older than a few minutes is not answered.
    pub asked_at: u64,
}

impl TaskQuery {
    /// Ids that are topic segments, and a question asked within a few minutes of `now_ms`.
    pub fn validate(&self, now_ms: u64) -> Result<(), ProtocolError> {
        for (what, id) in [
            ("status_of", &self.status_of),
            ("agent_id", &self.agent_id),
            ("device_id", &self.device_id),
        ] {
            if !is_valid_device_id(id) {
                return Err(ProtocolError::InvalidRequest(format!(
                    "{what} {:?}",
                    clip(id)
                )));
            }
        }
        if self.asked_at.abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
            return Err(ProtocolError::Expired);
        }
        Ok(())
    }
}

/// What arrives on the tasks topic: a task, or a question about one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMessage {
    Task(AgentTask),
    Query(TaskQuery),
}

impl AgentMessage {
    /// Reads a verified payload: a question has `status_of`, a task has not.
    pub fn parse(payload: &[u8]) -> Result<AgentMessage, ProtocolError> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(ProtocolError::InvalidPayload)?;
        if value.get("status_of").is_some() {
            serde_json::from_value(value)
                .map(AgentMessage::Query)
                .map_err(ProtocolError::InvalidPayload)
        } else {
            serde_json::from_value(value)
                .map(AgentMessage::Task)
                .map_err(ProtocolError::InvalidPayload)
        }
    }
}

/// Whether `c` may stand in an agent's text: no control character and no
/// Unicode format or line-breaking character (bidi overrides, zero-width
/// spaces and joiners, soft hyphens, line and paragraph separators), which
/// make what is read or shown differ from what is paid.
pub fn is_plain(c: char) -> bool {
    use unicode_general_category::{GeneralCategory, get_general_category};
    !matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Where a task stands, as the device tells its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Read to the user, waiting for "approve" or "reject".
    Pending,
    /// Approved (by voice or under the agent's auto amount), signed and in
    /// the outbox; the gateway's answer follows.
    Approved,
    /// The user said no, or did not answer in time.
    Rejected,
    /// Outside the agent's mandate or the user's limits: the user was not asked.
    Refused,
    /// The user revoked the agent.
    Revoked,
    /// Its time ran out before it could be put to the user.
    Expired,
    /// Not taken: too many tasks wait for the user. Sending the same task
    /// again (the same id) later is safe, and it is let in then.
    Busy,
    /// The device has no record of it: it never reached the device, and
    /// sending it again (the same id) is safe. Only ever an answer to a
    /// question, never retained.
    Unknown,
    /// The gateway paid it.
    Paid,
    /// The gateway declined it.
    Declined,
}

impl TaskState {
    /// Nothing more will be said about a task in this state.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TaskState::Pending | TaskState::Approved | TaskState::Busy | TaskState::Unknown
        )
    }
}

/// The device's answer to an agent, signed by the device key and retained on
/// `{prefix}/devices/{device_id}/tasks/{task_id}/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatus {
    pub task_id: String,
    pub agent_id: String,
    pub device_id: String,
    pub status: TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The payment request made for it, once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
    /// [`AgentTask::terms_sha256`] of the task the device let in under this
    /// id: a retry with other terms learns it was not that task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<String>,
    /// Unix milliseconds.
    pub at: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn task() -> AgentTask {
        AgentTask {
            task_id: "t-1".into(),
            agent_id: "claude-code".into(),
            device_id: "dev-0123456789abcdef".into(),
            description: "one million tokens".into(),
            payee: "Anthropic".into(),
            amount: Money::new(3000, Currency::CNY),
            kind: TaskKind::TokenTopUp,
            tokens: Some(1_000_000),
            period: None,
            created_at: 1_000,
            expires_at: 61_000,
        }
    }

    #[test]
    fn an_agent_task_has_designs_json_names_and_refuses_unknown_fields() {
        let task = task();
        let json = serde_json::to_value(&task).unwrap();
        assert_eq!(json["kind"], "token_top_up");
        assert_eq!(json["amount"]["minor"], 3000);
        assert_eq!(
            serde_json::from_value::<AgentTask>(json.clone()).unwrap(),
            task
        );
        let mut extra = json;
        extra["approve"] = true.into();
        assert!(serde_json::from_value::<AgentTask>(extra).is_err());
    }

    #[test]
    fn a_task_is_refused_when_any_field_is_out_of_shape() {
        assert!(task().validate(2_000).is_ok());
        type Spoil = fn(&mut AgentTask);
        let cases: Vec<(&str, Spoil)> = vec![
            ("a topic wildcard in the task id", |t| {
                t.task_id = "a/#".into()
            }),
            ("an empty agent id", |t| t.agent_id = String::new()),
            ("no device named", |t| t.device_id = String::new()),
            ("a blank description", |t| t.description = "  ".into()),
            ("a description read for a minute", |t| {
                t.description = "word ".repeat(40)
            }),
            ("a control character in the payee", |t| {
                t.payee = "Anthro\u{7}pic".into()
            }),
            ("a bidi override in the payee", |t| {
                t.payee = "Anthropic\u{202E}kcab".into()
            }),
            ("a bidi isolate in the payee", |t| {
                t.payee = "\u{2066}Anthropic\u{2069}".into()
            }),
            ("a zero-width space in the payee", |t| {
                t.payee = "Anthro\u{200B}pic".into()
            }),
            ("a zero-width joiner in the description", |t| {
                t.description = "one million\u{200D} tokens".into()
            }),
            ("a byte order mark in the description", |t| {
                t.description = "\u{FEFF}one million tokens".into()
            }),
            ("a line separator in the description", |t| {
                t.description = "one million\u{2028}tokens".into()
            }),
            ("a zero amount", |t| t.amount.minor = 0),
            ("a negative amount", |t| t.amount.minor = -5),
            ("a top-up without tokens", |t| t.tokens = None),
            ("a purchase with tokens", |t| t.kind = TaskKind::Purchase),
            ("a subscription without a period", |t| {
                t.kind = TaskKind::Subscription;
                t.tokens = None;
            }),
            ("a life of two days", |t| {
                t.expires_at = t.created_at + 2 * MAX_EXPIRY_WINDOW_MS
            }),
            ("an expiry before creation", |t| t.expires_at = t.created_at),
            ("a creation an hour ahead", |t| {
                t.created_at = 3_600_000;
                t.expires_at = 3_700_000;
            }),
        ];
        for (what, spoil) in cases {
            let mut t = task();
            spoil(&mut t);
            assert!(t.validate(2_000).is_err(), "{what} was accepted");
        }
        assert!(matches!(
            task().validate(61_000),
            Err(ProtocolError::Expired)
        ));
    }

    #[test]
    fn a_tasks_terms_are_what_it_pays_not_its_wording_or_times() {
        let t = task();
        let mut reworded = task();
        reworded.description = "tokens for the session".into();
        reworded.created_at += 500;
        reworded.expires_at += 500;
        assert_eq!(t.terms_sha256(), reworded.terms_sha256());
        let mut dearer = task();
        dearer.amount.minor += 1;
        let mut elsewhere = task();
        elsewhere.device_id = "dev-other".into();
        for other in [dearer, elsewhere] {
            assert_ne!(t.terms_sha256(), other.terms_sha256());
        }
    }

    #[test]
    fn the_tasks_topic_carries_tasks_and_questions_about_them() {
        let t = task();
        let bytes = serde_json::to_vec(&t).unwrap();
        assert_eq!(AgentMessage::parse(&bytes).unwrap(), AgentMessage::Task(t));
        let query = TaskQuery {
            status_of: "t-1".into(),
            agent_id: "claude-code".into(),
            device_id: "dev-0123456789abcdef".into(),
            asked_at: 2_000,
        };
        let bytes = serde_json::to_vec(&query).unwrap();
        assert_eq!(
            AgentMessage::parse(&bytes).unwrap(),
            AgentMessage::Query(query.clone())
        );
        assert!(query.validate(2_000).is_ok());
        assert!(
            query.validate(2_000 + 3_600_000).is_err(),
            "an old question"
        );
        assert!(AgentMessage::parse(br#"{"status_of":"t-1","approve":true}"#).is_err());
    }

    #[test]
    fn a_subscription_names_its_period() {
        let mut t = task();
        t.kind = TaskKind::Subscription;
        t.tokens = None;
        t.period = Some(SubscriptionPeriod::Month);
        assert!(t.validate(2_000).is_ok());
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["period"], "month");
        assert!(json.get("tokens").is_none());
    }
}
