//! What the agent desk and the payments stage ask the daemon to do: the stages decide, the daemon carries it out on the link, the feedback and the dialog.

use crate::feedback::Event;
use crate::order::{DropReason, PaymentOrder};
use crate::phrasebook::Speech;
use crate::reason::{AgentRefusal, Reason};
use voicepay_core::policy::{OutsideMandate, Refusal, TopUpRefusal};
use voicepay_core::protocol::TaskStatus;

/// One thing for the daemon to do.
#[derive(Debug, Clone)]
pub enum Effect {
    Say(Speech),
    /// A feedback event, as it is.
    Emit(Event),
    /// Something went wrong that the user's feedback reports.
    Fail(String),
    /// Sign `status` with the device key and publish it on its task's topic
    /// (already recorded in the store when it is retained).
    Tell {
        status: TaskStatus,
        retain: bool,
    },
    /// Publish this signed request (the outbox keeps it if the link does not take it).
    Send(Vec<u8>),
    /// Publish these signed requests again, in order, until the link takes no more.
    Resend(Vec<Vec<u8>>),
    /// Refused on the device before anything was signed: to the history, and its agent told.
    Refuse {
        order: PaymentOrder,
        reason: Refused,
    },
    /// Dropped by the user's answer (or its absence): to the history, and its agent told.
    Drop {
        order: PaymentOrder,
        reason: DropReason,
    },
    /// Put an agent's task to the user through the dialog; `unasked`: the
    /// mandate lets it be paid without asking.
    Offer {
        order: PaymentOrder,
        unasked: bool,
    },
}

/// Why a payment was refused on the device, before anything was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A money rule: the user's limits, the offline floor, driving.
    Policy(Refusal),
    /// The agent's mandate, checked again in the commit (the agent stopped
    /// or spent since the user was asked).
    Agent(AgentRefusal),
    /// Outside the agent's mandate when its task came up.
    Mandate(OutsideMandate),
    /// A top-up from an unknown provider or off the device's prices.
    TopUp(TopUpRefusal),
    /// The agent's spending could not be read to check it.
    Unreadable(String),
}

/// As the history keeps it.
impl From<Refused> for Reason {
    fn from(refused: Refused) -> Reason {
        match refused {
            Refused::Policy(refusal) => Reason::Policy(refusal),
            Refused::Agent(refusal) => Reason::Agent(refusal),
            Refused::Mandate(outside) => Reason::Mandate(outside),
            Refused::TopUp(refusal) => Reason::TopUp(refusal),
            Refused::Unreadable(error) => Reason::Unreadable(error),
        }
    }
}
