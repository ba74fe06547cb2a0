//! A payment the user asked for, as it travels from the dialog through the policy to the signer: what it buys, how it was approved, or why it was dropped.

use crate::money::Money;
use crate::protocol::Evidence;

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
}

/// How the user approved a payment (DESIGN.md's `approval.method`; offline
/// approval is the signer's, as it depends on the link at signing time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    AutoLimit,
    VoiceConfirm { transcript: String },
    PaymentCode { transcript: String },
}

/// Why a question was dropped without paying or changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Cancelled,
    NoAnswerInTime,
    WrongCode,
    NoClearAnswer,
    InputEnded,
}
