//! AI agents: who may ask the device to pay (their public keys), within what mandate (budgets, payees, expiry), and how their signed tasks are let in.
//!
//! An agent is registered by name with its Ed25519 public key
//! (`voicepay agents add`); its tasks arrive as envelopes signed by that key.
//! A task is let in only if the key is registered, the signature verifies,
//! the signer is the agent the task names, the task is well formed, not
//! expired and not seen before; then the mandate decides whether it may be
//! put to the user at all. The budgets themselves are reserved in the store's
//! commit transaction ([`crate::store::Store::commit_payment`]), so agents
//! running at once can never overspend together.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::money::{Currency, Money};
use crate::protocol::{self, AgentMessage, AgentTask, ProtocolError, TaskQuery};
use crate::store::{Store, StoreError};

/// An agent the user registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Its id on the wire (`agent_id`) and on the command line.
    pub name: String,
    /// base64url of the raw Ed25519 key.
    pub public_key: String,
    pub mandate: Mandate,
    pub added_at: u64,
    /// Set when the user stopped it ("stop the agents"); `agents add`
    /// registers it afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl Agent {
    pub fn key(&self) -> Result<PublicKey, crate::keys::KeyError> {
        PublicKey::from_base64url(&self.public_key)
    }

    /// How the device says its name: "claude-code" is "claude code".
    pub fn spoken_name(&self) -> String {
        spoken_name(&self.name)
    }

    /// `voicepay agents list`'s line.
    pub fn line(&self) -> String {
        let key_id = self.key().map(|k| k.key_id()).unwrap_or_default();
        let state = match self.revoked_at {
            Some(_) => "  (stopped: add it again to allow it)",
            None => "",
        };
        format!("{}  key {key_id}  {}{state}", self.name, self.mandate)
    }
}

/// What an agent may spend without the user's say, and at all: AP2's open
/// mandate. Amounts are in `currency`, the device's when it was added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mandate {
    pub currency: Currency,
    /// At most this much in one task.
    #[serde(default)]
    pub per_task: Option<Money>,
    /// At most this much a day (the profile's calendar day).
    #[serde(default)]
    pub daily: Option<Money>,
    /// At most this much over the agent's whole life.
    #[serde(default)]
    pub total: Option<Money>,
    /// Tasks of at most this much are paid without asking (the user is told).
    #[serde(default)]
    pub auto_under: Option<Money>,
    /// Only these payees (compared without case); empty: any payee.
    #[serde(default)]
    pub payees: Vec<String>,
    /// Unix milliseconds after which the agent may ask nothing.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// `auto_under` pays payees outside the device's payee book too. Without
    /// it (and without a `payees` list, which names them) a task to a payee
    /// the user never named is asked about, whatever its amount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_any_payee: bool,
}

impl Mandate {
    /// An open mandate in `currency`: no budget, nothing paid unasked.
    pub fn new(currency: Currency) -> Mandate {
        Mandate {
            currency,
            per_task: None,
            daily: None,
            total: None,
            auto_under: None,
            payees: Vec::new(),
            expires_at: None,
            auto_any_payee: false,
        }
    }

    /// Whether a task of `amount` to `payee` fits, with `spent_today` and
    /// `spent_total` already reserved by this agent (in the mandate's currency).
    pub fn check(
        &self,
        amount: Money,
        payee: &str,
        spent_today: i64,
        spent_total: i64,
        now_ms: u64,
    ) -> Result<(), OutsideMandate> {
        if self.expires_at.is_some_and(|end| now_ms >= end) {
            return Err(OutsideMandate::Expired);
        }
        if amount.currency != self.currency {
            return Err(OutsideMandate::Currency(self.currency));
        }
        if !self.payees.is_empty() && !self.payees.iter().any(|p| p.eq_ignore_ascii_case(payee)) {
            return Err(OutsideMandate::Payee);
        }
        if let Some(limit) = self.per_task
            && amount.minor > limit.minor
        {
            return Err(OutsideMandate::PerTask(limit));
        }
        let over = |limit: Option<Money>, spent: i64| {
            limit.and_then(|limit| {
                let left = limit.minor.saturating_sub(spent).max(0);
                (amount.minor > left).then(|| Money::new(left, self.currency))
            })
        };
        if let Some(left) = over(self.daily, spent_today) {
            return Err(OutsideMandate::Daily { left });
        }
        if let Some(left) = over(self.total, spent_total) {
            return Err(OutsideMandate::Total { left });
        }
        Ok(())
    }

    /// Whether a task of `amount` (inside the mandate) is paid without
    /// asking the user: under `auto_under`, to a payee the user named (in
    /// the device's payee book, `in_book`, or the mandate's own list) unless
    /// the mandate says any payee will do.
    pub fn pays_unasked(&self, amount: Money, in_book: bool) -> bool {
        let named = in_book || !self.payees.is_empty() || self.auto_any_payee;
        named
            && self.auto_under.is_some_and(|limit| {
                amount.currency == limit.currency && amount.minor <= limit.minor
            })
    }

    /// Why this mandate deserves a second look when it is given: it pays
    /// unasked with no payee list and no daily or total budget.
    pub fn warning(&self) -> Option<String> {
        let limit = self.auto_under?;
        (self.payees.is_empty() && self.daily.is_none() && self.total.is_none()).then(|| {
            let whom = if self.auto_any_payee {
                "any payee"
            } else {
                "any payee in the payee book"
            };
            format!(
                "it may pay up to {limit} a task without asking, to {whom}, with no daily or \
                 total budget: consider --payee, --daily-budget or --total-budget"
            )
        })
    }
}

impl fmt::Display for Mandate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = |m: Option<Money>| m.map_or("-".to_owned(), |m| m.to_string());
        write!(
            f,
            "per task {}, daily {}, total {}, unasked up to {}",
            amount(self.per_task),
            amount(self.daily),
            amount(self.total),
            amount(self.auto_under),
        )?;
        if !self.payees.is_empty() {
            write!(f, ", only to {}", self.payees.join(", "))?;
        }
        if self.auto_any_payee {
            write!(f, ", unasked to any payee")?;
        }
        if let Some(end) = self.expires_at {
            write!(f, ", until {end} ms")?;
        }
        Ok(())
    }
}

/// Why a task falls outside its agent's mandate: refused without asking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutsideMandate {
    #[error("the user stopped this agent")]
    Revoked,
    #[error("the agent's mandate has expired")]
    Expired,
    #[error("the agent's budget is in {0}")]
    Currency(Currency),
    #[error("the payee is not one the agent may pay")]
    Payee,
    #[error("over the agent's limit of {0} a task")]
    PerTask(Money),
    #[error("over the agent's daily budget ({left} left today)")]
    Daily { left: Money },
    #[error("over the agent's total budget ({left} left)")]
    Total { left: Money },
}

/// How the device says an agent's name: "claude-code" is "claude code".
pub fn spoken_name(name: &str) -> String {
    name.replace(['-', '_'], " ")
}

/// An agent name: 1-64 of `[A-Za-z0-9_-]`, as it is a topic-safe `agent_id`.
pub fn validate_name(name: &str) -> Result<(), AgentError> {
    if protocol::is_valid_device_id(name) {
        Ok(())
    } else {
        Err(AgentError::BadName(name.chars().take(64).collect()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent name {0:?}: use 1-64 letters, digits, '-' or '_'")]
    BadName(String),
    #[error("no agent named {0:?} (voicepay agents list)")]
    Unknown(String),
    #[error("the key is already registered to agent {0:?}")]
    KeyTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
}

/// Why an incoming task was not let in. Logged (a few a second); the user
/// is not disturbed, and nothing is answered to a sender we cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum TaskRejection {
    /// Garbage, an unknown key or a bad signature.
    #[error("not a task from a registered agent: {0}")]
    Unverified(ProtocolError),
    #[error("task signed by agent {signer:?} names agent {named:?}")]
    WrongAgent { signer: String, named: String },
    /// A copy of a task meant for another device: never paid here.
    #[error("task {task_id:?} of agent {agent:?} is for device {named:?}, not this one")]
    OtherDevice {
        agent: String,
        task_id: String,
        named: String,
    },
    #[error("task {task_id:?} of agent {agent:?}: {error}")]
    Invalid {
        agent: String,
        task_id: String,
        error: ProtocolError,
    },
    /// Paid (or refused) once at most: its agent is told the record again.
    #[error("task {:?} of agent {:?} was seen before (same terms: {same_terms})", task.task_id, agent.name)]
    Replayed {
        agent: Box<Agent>,
        task: Box<AgentTask>,
        same_terms: bool,
    },
    #[error("cannot read the agents: {0}")]
    Store(#[from] StoreError),
}

/// What a verified message of a registered agent asks.
#[derive(Debug)]
pub enum LetIn {
    /// A new task, its id claimed.
    Task(Agent, AgentTask),
    /// Where one of its tasks stands: answered from the device's record.
    Query(Agent, TaskQuery),
}

/// Opens an agent's envelope: the key must be a registered agent's, the
/// signature good, the message its own and for `device_id`, well formed;
/// a task must be new. The task id is claimed in the store here (with the
/// task's terms), so a replay is refused even after a restart.
pub fn open_task(
    store: &Store,
    device_id: &str,
    message: &[u8],
    now_ms: u64,
) -> Result<LetIn, TaskRejection> {
    let agents = store.agents()?;
    let signer = |kid: &str| {
        agents
            .iter()
            .find_map(|a| a.key().ok().filter(|k| k.key_id() == kid).map(|k| (a, k)))
    };
    let opened = protocol::open(message, |kid| signer(kid).map(|(_, key)| key))
        .map_err(TaskRejection::Unverified)?;
    let Some((agent, _)) = signer(&opened.kid) else {
        return Err(TaskRejection::Unverified(ProtocolError::UnknownKey(
            opened.kid,
        )));
    };
    let agent = agent.clone();
    let task = match AgentMessage::parse(&opened.payload).map_err(TaskRejection::Unverified)? {
        AgentMessage::Query(query) => {
            check_names(
                &agent,
                &query.agent_id,
                &query.device_id,
                device_id,
                &query.status_of,
            )?;
            if let Err(error) = query.validate(now_ms) {
                return Err(TaskRejection::Invalid {
                    agent: agent.name,
                    task_id: query.status_of.chars().take(64).collect(),
                    error,
                });
            }
            return Ok(LetIn::Query(agent, query));
        }
        AgentMessage::Task(task) => task,
    };
    check_names(
        &agent,
        &task.agent_id,
        &task.device_id,
        device_id,
        &task.task_id,
    )?;
    if let Err(error) = task.validate(now_ms) {
        return Err(TaskRejection::Invalid {
            agent: agent.name,
            task_id: task.task_id.chars().take(64).collect(),
            error,
        });
    }
    let terms = task.terms_sha256();
    if !store.claim_task(&agent.name, &task.task_id, task.expires_at, &terms)? {
        let same_terms = store
            .task_record(&agent.name, &task.task_id)?
            .and_then(|r| r.terms)
            .is_none_or(|t| t == terms);
        return Err(TaskRejection::Replayed {
            agent: Box::new(agent),
            task: Box::new(task),
            same_terms,
        });
    }
    Ok(LetIn::Task(agent, task))
}

/// Whether `message` is an envelope a registered agent's key signed (all
/// [`open_task`] checks first, without touching the store's tasks).
pub fn verify_signer(store: &Store, message: &[u8]) -> Result<(), TaskRejection> {
    let agents = store.agents()?;
    protocol::open(message, |kid| {
        agents
            .iter()
            .find_map(|a| a.key().ok().filter(|k| k.key_id() == kid))
    })
    .map(|_| ())
    .map_err(TaskRejection::Unverified)
}

/// A message signed by `agent` must name it, and this device.
fn check_names(
    agent: &Agent,
    named_agent: &str,
    named_device: &str,
    device_id: &str,
    task_id: &str,
) -> Result<(), TaskRejection> {
    if named_agent != agent.name {
        return Err(TaskRejection::WrongAgent {
            signer: agent.name.clone(),
            named: named_agent.chars().take(64).collect(),
        });
    }
    if named_device != device_id {
        return Err(TaskRejection::OtherDevice {
            agent: agent.name.clone(),
            task_id: task_id.chars().take(64).collect(),
            named: named_device.chars().take(64).collect(),
        });
    }
    Ok(())
}

/// Registers (or registers afresh, lifting a stop) an agent; its line.
pub fn add(store: &Store, agent: Agent) -> Result<String, AgentError> {
    validate_name(&agent.name)?;
    let key = agent.key()?;
    if let Some(other) = store
        .agents()?
        .into_iter()
        .find(|a| a.name != agent.name && a.public_key == key.to_base64url())
    {
        return Err(AgentError::KeyTaken(other.name));
    }
    let mandate = &agent.mandate;
    let amounts = [
        mandate.per_task,
        mandate.daily,
        mandate.total,
        mandate.auto_under,
    ];
    if amounts.iter().flatten().any(|m| m.minor < 0) {
        return Err(AgentError::Invalid("a budget cannot be negative".into()));
    }
    if amounts
        .iter()
        .flatten()
        .any(|m| m.currency != mandate.currency)
    {
        return Err(AgentError::Invalid(format!(
            "an agent's budgets are all in {}",
            mandate.currency
        )));
    }
    store.put_agent(&agent)?;
    Ok(format!("added {}", agent.line()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    #[test]
    fn a_mandate_refuses_what_lies_outside_it_and_says_what_is_left() {
        let mandate = Mandate {
            per_task: Some(cny(5_000)),
            daily: Some(cny(8_000)),
            total: Some(cny(20_000)),
            auto_under: Some(cny(1_000)),
            payees: vec!["Anthropic".into()],
            expires_at: Some(10_000),
            ..Mandate::new(Currency::CNY)
        };
        let check =
            |amount, payee, today, total, now| mandate.check(amount, payee, today, total, now);
        assert_eq!(check(cny(3_000), "anthropic", 0, 0, 1), Ok(()));
        assert_eq!(
            check(cny(3_000), "Anthropic", 0, 0, 10_000),
            Err(OutsideMandate::Expired)
        );
        assert_eq!(
            check(Money::new(300, Currency::USD), "Anthropic", 0, 0, 1),
            Err(OutsideMandate::Currency(Currency::CNY))
        );
        assert_eq!(
            check(cny(300), "Amazon", 0, 0, 1),
            Err(OutsideMandate::Payee)
        );
        assert_eq!(
            check(cny(5_001), "Anthropic", 0, 0, 1),
            Err(OutsideMandate::PerTask(cny(5_000)))
        );
        assert_eq!(
            check(cny(3_000), "Anthropic", 6_000, 6_000, 1),
            Err(OutsideMandate::Daily { left: cny(2_000) })
        );
        assert_eq!(
            check(cny(3_000), "Anthropic", 0, 18_000, 1),
            Err(OutsideMandate::Total { left: cny(2_000) })
        );
        assert_eq!(check(cny(2_000), "Anthropic", 6_000, 18_000, 1), Ok(()));
        assert!(
            mandate.pays_unasked(cny(1_000), false),
            "its payee list names them"
        );
        assert!(!mandate.pays_unasked(cny(1_001), true));
        assert!(!Mandate::new(Currency::CNY).pays_unasked(cny(1), true));
    }

    #[test]
    fn a_mandate_auto_pays_payees_outside_the_payee_book_only_when_it_says_so() {
        let open = Mandate {
            auto_under: Some(cny(1_000)),
            ..Mandate::new(Currency::CNY)
        };
        assert!(open.pays_unasked(cny(500), true));
        assert!(!open.pays_unasked(cny(500), false), "a payee nobody named");
        let any = Mandate {
            auto_any_payee: true,
            ..open.clone()
        };
        assert!(any.pays_unasked(cny(500), false));
        assert!(any.to_string().contains("unasked to any payee"), "{any}");
        // Unasked, unlisted and unbounded: a warning; a budget or a list quiets it.
        assert!(open.warning().is_some());
        assert!(
            Mandate {
                daily: Some(cny(5_000)),
                ..open.clone()
            }
            .warning()
            .is_none()
        );
        assert!(
            Mandate {
                payees: vec!["Amazon".into()],
                ..open
            }
            .warning()
            .is_none()
        );
        assert!(Mandate::new(Currency::CNY).warning().is_none());
    }

    /// A device's store in a fresh directory, knowing `agent` by `key`.
    fn device_knowing(agent: &str, key: &crate::keys::SigningKey) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(&crate::store::StoreConfig::new(dir.path().join("store"))).expect("store");
        let agent = Agent {
            name: agent.into(),
            public_key: key.public_key().to_base64url(),
            mandate: Mandate::new(Currency::CNY),
            added_at: 1,
            revoked_at: None,
        };
        add(&store, agent).expect("add");
        (dir, store)
    }

    #[test]
    fn a_task_replayed_to_another_device_is_refused() {
        let key = crate::keys::SigningKey::generate().expect("key");
        let (_a_dir, kitchen) = device_knowing("coder", &key);
        let (_b_dir, car) = device_knowing("coder", &key);
        let now = 1_760_000_000_000;
        let task = AgentTask {
            task_id: "t-1".into(),
            agent_id: "coder".into(),
            device_id: "dev-kitchen".into(),
            description: "a book".into(),
            payee: "Amazon".into(),
            amount: cny(3_000),
            kind: protocol::TaskKind::Purchase,
            tokens: None,
            period: None,
            created_at: now,
            expires_at: now + 60_000,
        };
        let message = protocol::Envelope::seal_json(&task, &key)
            .expect("seal")
            .0
            .to_bytes();
        match open_task(&kitchen, "dev-kitchen", &message, now) {
            Ok(LetIn::Task(_, opened)) => assert_eq!(opened, task),
            other => panic!("its own device refused it: {other:?}"),
        }
        match open_task(&car, "dev-car", &message, now) {
            Err(TaskRejection::OtherDevice { named, .. }) => assert_eq!(named, "dev-kitchen"),
            other => panic!("the car let in the kitchen's task: {other:?}"),
        }
        // Not claimed there either: the refusal leaves no trace to trip on.
        assert_eq!(car.task_state("coder", "t-1").expect("state"), None);
    }

    #[test]
    fn agent_names_are_topic_safe() {
        assert!(validate_name("claude-code").is_ok());
        for bad in ["", "a/b", "kimi#", "two words", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
