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

use crate::store::{Store, StoreError};
use voicepay_core::agent::{Agent, BadAgentName, validate_name};
use voicepay_core::protocol::{self, AgentMessage, AgentTask, ProtocolError, TaskQuery};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    BadName(#[from] BadAgentName),
    #[error("no agent named {0:?} (voicepay agents list)")]
    Unknown(String),
    #[error("the key is already registered to agent {0:?}")]
    KeyTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] voicepay_core::keys::KeyError),
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
    use voicepay_core::money::Currency;
    use voicepay_core::policy::Mandate;

    /// A device's store in a fresh directory, knowing `agent` by `key`.
    fn device_knowing(
        agent: &str,
        key: &voicepay_core::keys::SigningKey,
    ) -> (tempfile::TempDir, Store) {
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
        let key = voicepay_core::keys::SigningKey::generate().expect("key");
        let (_a_dir, kitchen) = device_knowing("coder", &key);
        let (_b_dir, car) = device_knowing("coder", &key);
        let now = 1_760_000_000_000;
        let task = AgentTask {
            task_id: "t-1".into(),
            agent_id: "coder".into(),
            device_id: "dev-kitchen".into(),
            description: "a book".into(),
            payee: "Amazon".into(),
            amount: voicepay_core::money::Money::new(3_000, Currency::CNY),
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
