//! Everything the device says, by language: the dialog and the daemon name what to say as a [`Speech`], and the profile's language words it.
//!
//! No other module holds a sentence the user hears. Adding a language means
//! adding a file beside `english.rs` and `mandarin.rs` (and its intent
//! readers), not editing the stages.

mod english;
mod mandarin;

use crate::intent::{Doubt, LimitScope, Period};
use crate::language::Language;
use crate::order::{DropReason, Purchase};
use crate::reason::Reason;
use crate::store::HistoryEntry;
use voicepay_core::money::Money;
use voicepay_core::policy::Refusal;
use voicepay_core::protocol::SubscriptionPeriod;

/// Something to tell the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speech {
    /// "Pay 36 yuan to Heytea? Say confirm or cancel." (with the code to repeat, above the code limit).
    ReadBack {
        purchase: Purchase,
        amount: Money,
        code: Option<String>,
        /// What may have been misheard: said so, and an amount in doubt is
        /// spelled digit by digit ("Pay three six yuan to Heytea? Unsure of the amount.").
        doubt: Doubt,
    },
    /// "How much to Heytea?": a payment heard without its amount.
    AskAmount {
        payee: String,
    },
    /// "Who should I pay 36 yuan to?": a payment heard without its payee.
    AskPayee {
        amount: Money,
    },
    /// The reply to a missing part did not give it: "Sorry, I did not catch that; nothing was paid."
    MissingPartNotHeard,
    /// A command tried but not made out: "Sorry, I didn't catch that."
    NotUnderstood,
    /// "Raise your daily limit to 500 yuan? Say confirm or cancel."
    RaiseLimit {
        scope: LimitScope,
        amount: Money,
    },
    /// The question again, after an answer that was none.
    Again(Box<Speech>),
    PayingWithinAutoLimit {
        purchase: Purchase,
        amount: Money,
    },
    CannotPay {
        purchase: Purchase,
        amount: Money,
        refusal: Refusal,
    },
    PaymentDropped(DropReason),
    LimitIsNow {
        scope: LimitScope,
        amount: Money,
    },
    LimitUnchanged {
        scope: LimitScope,
        reason: DropReason,
    },
    /// "I don't know Shail. Who should I pay?" or, with two candidates,
    /// "Costa Coffee or Luckin Coffee? Who should I pay?"
    WhoToPay {
        heard: String,
        candidates: Option<(String, String)>,
    },
    NothingToConfirm,
    NoTaskWaiting,
    /// The wake phrase alone: "Yes?" (the command comes next).
    Listening,
    /// The audio could not be read or transcribed: say it again.
    NotHeard,
    UnknownTokenPrice {
        provider: String,
    },
    PaidOffline {
        purchase: Purchase,
        amount: Money,
    },
    /// The outbox could not be written: nothing was paid.
    NotRecorded {
        error: String,
    },
    /// Written, but the disk did not take it: held, not sent.
    HeldUnsaved {
        purchase: Purchase,
        amount: Money,
        error: String,
    },
    /// The bank answered, but the answer could not be written.
    AnswerNotRecorded {
        approved: bool,
        amount: Money,
        payee: String,
        error: String,
    },
    /// A payment is held unsaved and the disk still fails: no new payment.
    StorageFailing {
        error: String,
    },
    NoAnswerYet,
    Paid {
        amount: Money,
        payee: String,
    },
    DeclinedByBank {
        amount: Money,
        payee: String,
        reason: String,
    },
    /// Approved spending over a period, one total per currency (none: nothing spent).
    Spent {
        period: Period,
        totals: Vec<Money>,
        /// The part of it agents' tasks paid (none: nothing).
        by_agents: Vec<Money>,
    },
    HistoryUnreadable {
        error: String,
    },
    /// "claude code asks to pay 30 yuan to Anthropic: one million tokens. Say approve or reject."
    AgentAsks {
        agent: String,
        purchase: Purchase,
        amount: Money,
        description: String,
        period: Option<SubscriptionPeriod>,
        /// Above the code limit: the digits to say with "confirm".
        code: Option<String>,
    },
    /// Paid without asking, under what the user lets that agent pay alone.
    AgentPaidUnasked {
        agent: String,
        purchase: Purchase,
        amount: Money,
    },
    AgentTaskDropped {
        agent: String,
        reason: DropReason,
    },
    /// "Stop the agents": the agents stopped (none: there was none to stop).
    AgentsStopped {
        names: Vec<String>,
    },
    /// The stop could not be written: the agents may still ask.
    AgentsNotStopped {
        error: String,
    },
}

/// The words of one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phrasebook {
    language: Language,
}

impl Speech {
    /// The same sentence with the payment code's digits masked ("the code
    /// * * *"): what may be said beyond the device (the MQTT events).
    pub fn without_code(&self) -> Speech {
        let mask = |code: &Option<String>| code.as_ref().map(|c| "*".repeat(c.chars().count()));
        match self {
            Speech::ReadBack {
                purchase,
                amount,
                code,
                doubt,
            } => Speech::ReadBack {
                purchase: purchase.clone(),
                amount: *amount,
                code: mask(code),
                doubt: *doubt,
            },
            Speech::AgentAsks {
                agent,
                purchase,
                amount,
                description,
                period,
                code,
            } => Speech::AgentAsks {
                agent: agent.clone(),
                purchase: purchase.clone(),
                amount: *amount,
                description: description.clone(),
                period: *period,
                code: mask(code),
            },
            Speech::Again(inner) => Speech::Again(Box::new(inner.without_code())),
            other => other.clone(),
        }
    }

    /// Whether the sentence says a payment code.
    pub fn has_code(&self) -> bool {
        match self {
            Speech::ReadBack { code, .. } | Speech::AgentAsks { code, .. } => code.is_some(),
            Speech::Again(inner) => inner.has_code(),
            _ => false,
        }
    }
}

impl Phrasebook {
    pub fn new(language: Language) -> Phrasebook {
        Phrasebook { language }
    }

    pub fn language(&self) -> Language {
        self.language
    }

    /// The sentence for `speech`.
    pub fn say(&self, speech: &Speech) -> String {
        match self.language {
            Language::English => english::say(speech),
            Language::Mandarin => mandarin::say(speech),
        }
    }

    /// An amount as read back: "36 yuan", "4 dollars 75".
    pub fn money(&self, amount: Money) -> String {
        match self.language {
            Language::English => english::money(amount),
            Language::Mandarin => mandarin::money(amount),
        }
    }

    /// Why a payment was refused, as a sentence.
    pub fn refusal(&self, refusal: &Refusal) -> String {
        match self.language {
            Language::English => english::refusal(refusal),
            Language::Mandarin => mandarin::refusal(refusal),
        }
    }

    /// Why a question was dropped, as a phrase.
    pub fn drop_reason(&self, reason: DropReason) -> String {
        match self.language {
            Language::English => english::drop_reason(reason).to_owned(),
            Language::Mandarin => mandarin::drop_reason(reason).to_owned(),
        }
    }

    /// Why a payment never left the device, as the history keeps it: what
    /// its agent is told, and what `voicepay history` says.
    pub fn reason(&self, reason: &Reason) -> String {
        match self.language {
            Language::English => english::reason(reason),
            Language::Mandarin => mandarin::reason(reason),
        }
    }

    /// One entry of `voicepay history`, as people read it.
    pub fn history_line(&self, entry: &HistoryEntry) -> String {
        match self.language {
            Language::English => english::history_line(entry),
            Language::Mandarin => mandarin::history_line(entry),
        }
    }
}
