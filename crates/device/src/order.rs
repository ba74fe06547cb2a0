//! A payment the user asked for, as it travels from the dialog through the policy to the signer: what it buys, how it was approved, or why it was dropped.

use serde::{Deserialize, Serialize};
use voicepay_core::money::Money;
use voicepay_core::protocol::{AgentRef, Evidence, SubscriptionPeriod};

/// What a payment buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    Pay { payee: String },
    TopUp { tokens: u64, provider: String },
}

impl Purchase {
    /// Who receives the money: the payee, or the provider of the tokens.
    pub fn payee(&self) -> &str {
        match self {
            Purchase::Pay { payee } => payee,
            Purchase::TopUp { provider, .. } => provider,
        }
    }
}

/// A payment the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentOrder {
    pub amount: Money,
    pub purchase: Purchase,
    /// What was heard when the user asked: travels in the signed request.
    pub evidence: Evidence,
    /// Asked for by an agent: its task, and the task's description (the memo).
    pub agent: Option<AgentOrder>,
}

/// The agent's side of a payment an agent asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOrder {
    pub task: AgentRef,
    /// The agent's one sentence, read to the user and sent as the memo.
    pub description: String,
    /// The agent's name as the device says it.
    pub spoken_name: String,
    /// A subscription's renewal.
    pub period: Option<SubscriptionPeriod>,
}

impl PaymentOrder {
    /// A payment the user asked for in their own voice.
    pub fn spoken(amount: Money, purchase: Purchase, evidence: Evidence) -> PaymentOrder {
        PaymentOrder {
            amount,
            purchase,
            evidence,
            agent: None,
        }
    }

    pub fn agent_ref(&self) -> Option<AgentRef> {
        self.agent.as_ref().map(|a| a.task.clone())
    }
}

/// How the user approved a payment (DESIGN.md's `approval.method`; offline
/// approval is the signer's, as it depends on the link at signing time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Under the user's auto-pay limit, or an agent's task under the
    /// amount the user lets that agent pay unasked.
    AutoLimit,
    VoiceConfirm {
        transcript: String,
    },
    PaymentCode {
        transcript: String,
    },
}

/// Why a question was dropped without paying or changing anything (the
/// history keeps it as it is: [`crate::reason::Reason::Dropped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    Cancelled,
    NoAnswerInTime,
    WrongCode,
    NoClearAnswer,
    InputEnded,
    /// An agent's task the user said no to.
    Rejected,
    /// An agent's task, dropped because the user stopped the agent.
    Revoked,
}
