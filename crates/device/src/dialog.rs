//! The conversation: reads a payment back, waits for "confirm", "cancel" or a spoken code, and gives up after a window.
//!
//! The dialog decides nothing about money by itself: the policy's verdict comes
//! in through [`Assess`], and what must happen goes out as [`Action`]s that the
//! daemon carries out (speak, pay, change a limit, record). What it says is a
//! [`Speech`] the phrasebook words. Time is passed in, so tests drive it with
//! tokio's paused clock.

use tokio::time::{Duration, Instant};

use crate::intent::language::Listening;
use crate::intent::{self, Doubt, Intent, LimitScope, ParseContext, Partial, Period, Reply};
use crate::order::{Approval, DropReason, PaymentOrder, Purchase};
use crate::payees::{
    HeardName, Origin, Payee, PayeeBook, Resolution, SharedPayees, resolve_provider,
};
use crate::phrasebook::Speech;
use voicepay_core::money::Money;
use voicepay_core::policy::{Decision, Motion, Refusal, while_driving};
use voicepay_core::protocol::Evidence;

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Say(Speech),
    Pay {
        order: PaymentOrder,
        approval: Approval,
    },
    /// The policy declined before anything was sent.
    Declined {
        order: PaymentOrder,
        reason: Refusal,
    },
    /// The user cancelled, did not answer, or gave a wrong code.
    Dropped {
        order: PaymentOrder,
        reason: DropReason,
    },
    SetLimit {
        scope: LimitScope,
        amount: Money,
    },
    ReportSpending {
        period: Period,
    },
    /// "Stop the agents": every agent is stopped, its budget frozen.
    RevokeAgents,
}

/// What a pending question waits for (see [`Dialog::expecting`]), so the
/// recognizer can listen for just that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expecting {
    /// A read-back: "confirm" or "cancel".
    Confirmation,
    /// A read-back above the code limit: "confirm" with the digits, or "cancel".
    Code,
    /// An agent's task: "approve" or "reject".
    TaskDecision,
    /// "How much to Heytea?": an amount alone (or "cancel"); `payee` as the book spells it.
    Amount { payee: String },
    /// "Who should I pay 36 yuan to?": a payee of the book alone (or "cancel").
    Payee { amount: Money },
}

/// One utterance as the dialog takes it.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    /// What the parser made of the command.
    pub intent: &'a Intent,
    /// The words said to the device, the wake phrase taken off: what a
    /// command missing a part, or a reply, is read from.
    pub command: &'a str,
    /// All that was heard (the wake phrase too), which a payment carries.
    pub evidence: &'a Evidence,
    /// What of a payment the recognizer may have misheard.
    pub doubt: Doubt,
    /// The command's payee as the recognizer matched it in the book; none
    /// for typed input, which the dialog matches itself, once.
    pub payee: Option<&'a HeardName>,
    /// The reply as the recognizer read it, for the question it heard it
    /// under; none for typed input, which the dialog reads itself, once.
    pub reply: Option<&'a Reply>,
}

pub use crate::intent::AnswerReading;

/// What of a heard payment may be misheard: the recognizer's `doubt`, and
/// the payee too when it was not heard as a name or alias in the book.
pub fn doubt_of(intent: &Intent, doubt: Doubt, payee: Option<&HeardName>) -> Doubt {
    match intent {
        Intent::Pay { .. } => Doubt {
            payee: doubt.payee || !payee.is_some_and(|p| p.exactly),
            ..doubt
        },
        Intent::TopUp { .. } => doubt,
        _ => Doubt::NONE,
    }
}

/// The daemon's view of the user's money, asked when a request comes in.
pub trait Assess {
    fn decide(&self, amount: Money) -> Decision;
    /// The current limit of `scope`; zero when none is set.
    fn limit(&self, scope: LimitScope) -> Money;
    /// What `tokens` of `provider` cost, if the device knows a price.
    fn price(&self, tokens: u64, provider: &str) -> Option<Money>;
    /// Whether the vehicle moves, and if so whether `purchase` may be paid.
    fn motion(&self, purchase: &Purchase) -> Motion;
}

#[derive(Debug, Clone, PartialEq)]
enum Proposal {
    Payment(PaymentOrder),
    RaiseLimit {
        scope: LimitScope,
        amount: Money,
    },
    /// A payment to a name the book does not hold (or holds twice): "Who should I pay?"
    ChoosePayee {
        order: PaymentOrder,
        heard: String,
        candidates: Option<(String, String)>,
    },
    /// "Pay Heytea.": the payee known, the amount asked for.
    AskAmount {
        payee: String,
        /// The command, kept for the payment's evidence.
        first: Evidence,
        doubt: Doubt,
    },
    /// "Pay thirty six yuan.": the amount known, the payee asked for.
    AskPayee {
        amount: Money,
        first: Evidence,
        doubt: Doubt,
    },
}

#[derive(Debug)]
struct Pending {
    proposal: Proposal,
    /// The digits the user must repeat, for payments above the code limit.
    code: Option<String>,
    deadline: Instant,
    asked_again: bool,
    /// What may have been misheard: the read-back says so (and spells an
    /// amount in doubt).
    doubt: Doubt,
}

/// How the dialog waits, trusts and locks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DialogSettings {
    /// How long a question waits for its answer.
    pub window: Duration,
    /// An answer heard with less confidence is asked again, never taken
    /// (the same bar as a payment's).
    pub min_confidence: f32,
    /// After this many wrong codes in a row, payments that need a code are
    /// refused for `lockout`.
    pub wrong_codes_allowed: u32,
    pub lockout: Duration,
}

pub struct Dialog {
    window: Duration,
    min_confidence: f32,
    wrong_codes_allowed: u32,
    lockout: Duration,
    wrong_codes: u32,
    locked_until: Option<Instant>,
    parse_context: ParseContext,
    payees: SharedPayees,
    new_code: Box<dyn FnMut() -> String + Send>,
    pending: Option<Pending>,
}

impl Dialog {
    /// `new_code`: a fresh random three-digit challenge each call.
    pub fn new(
        settings: DialogSettings,
        parse_context: ParseContext,
        new_code: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        // Until the daemon hands over the whole book: each known name its own entry.
        let payees = PayeeBook::new(parse_context.known_payees.iter().map(|name| {
            let payee = Payee {
                name: name.clone(),
                aliases: Vec::new(),
            };
            (payee, Origin::Profile)
        }));
        Self {
            payees: SharedPayees::new(payees),
            window: settings.window,
            min_confidence: settings.min_confidence,
            wrong_codes_allowed: settings.wrong_codes_allowed,
            lockout: settings.lockout,
            wrong_codes: 0,
            locked_until: None,
            parse_context,
            new_code,
            pending: None,
        }
    }

    /// The payee book payments are resolved against (shared with the control
    /// socket, so `voicepay payees add` reaches a running daemon).
    pub fn with_payees(mut self, payees: SharedPayees) -> Self {
        self.payees = payees;
        self
    }

    /// A reloaded profile's window, lockout and names (a question already
    /// asked keeps its deadline; a lockout running keeps its end).
    pub fn reconfigure(&mut self, window: Duration, lockout: Duration, context: ParseContext) {
        self.window = window;
        self.lockout = lockout;
        self.parse_context = context;
    }

    /// Wrong codes in a row, and the end of a lockout if one runs (for the
    /// daemon to keep across a restart).
    pub fn code_lock(&self) -> (u32, Option<Instant>) {
        (self.wrong_codes, self.locked_until)
    }

    /// The wrong codes and lockout an earlier run left (`locked_for`: what
    /// was left of it).
    pub fn restore_code_lock(
        &mut self,
        wrong_codes: u32,
        locked_for: Option<Duration>,
        now: Instant,
    ) {
        self.wrong_codes = wrong_codes;
        self.locked_until = locked_for.map(|left| now + left);
    }

    /// Whether payments that need a code are locked (too many wrong codes).
    fn locked(&mut self, now: Instant) -> bool {
        match self.locked_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.locked_until = None;
                self.wrong_codes = 0;
                false
            }
            None => false,
        }
    }

    /// When the pending question times out, if one is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// What the pending question waits for, if one is pending.
    pub fn expecting(&self) -> Option<Expecting> {
        let pending = self.pending.as_ref()?;
        Some(match &pending.proposal {
            Proposal::Payment(PaymentOrder { agent: Some(_), .. }) if pending.code.is_none() => {
                Expecting::TaskDecision
            }
            _ if pending.code.is_some() => Expecting::Code,
            Proposal::Payment(_) | Proposal::RaiseLimit { .. } => Expecting::Confirmation,
            Proposal::ChoosePayee { order, .. } => Expecting::Payee {
                amount: order.amount,
            },
            Proposal::AskPayee { amount, .. } => Expecting::Payee { amount: *amount },
            Proposal::AskAmount { payee, .. } => Expecting::Amount {
                payee: payee.clone(),
            },
        })
    }

    /// The closed-domain language the next utterance is heard in: the
    /// pending question's, else a command's.
    pub fn listening(&self) -> Listening {
        match self.expecting() {
            None => Listening::Command,
            Some(Expecting::Confirmation) => Listening::Confirmation,
            Some(Expecting::Code) => Listening::Code,
            Some(Expecting::TaskDecision) => Listening::TaskDecision,
            Some(Expecting::Amount { .. }) => Listening::Amount,
            Some(Expecting::Payee { .. }) => Listening::Payee,
        }
    }

    /// One utterance, understood as `intent`; `heard` holds its transcript.
    pub fn hear(
        &mut self,
        intent: &Intent,
        heard: &Evidence,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        self.hear_with(intent, heard, true, now, assess)
    }

    /// [`Dialog::hear`], told whether Whisper was sure of the amount's
    /// words: an unsure amount is read back even under the auto-pay limit.
    pub fn hear_with(
        &mut self,
        intent: &Intent,
        heard: &Evidence,
        sure: bool,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let said = Said {
            intent,
            command: &heard.transcript,
            evidence: heard,
            doubt: Doubt::from_sure(sure),
            payee: None,
            reply: None,
        };
        self.hear_said(&said, now, assess)
    }

    /// One utterance said to the device (or answering its question).
    pub fn hear_said(&mut self, said: &Said, now: Instant, assess: &dyn Assess) -> Vec<Action> {
        let (intent, heard) = (said.intent, said.evidence);
        let mut actions = self.expire(now);
        if *intent == Intent::RevokeAgents {
            actions.extend(self.revoke_agents());
            return actions;
        }
        match self.pending.take() {
            // Unsure what was said: asked again, never taken as an answer.
            Some(pending) if heard.asr_confidence < self.min_confidence => {
                actions.extend(self.ask_again(pending, now))
            }
            Some(pending) => actions.extend(self.answer(pending, said, now, assess)),
            None => actions.extend(self.request(said, now, assess)),
        }
        actions
    }

    /// "Stop the agents", heard at any time: the agents are stopped, and an
    /// agent's task waiting for an answer goes with them (a question of the
    /// user's own stays).
    fn revoke_agents(&mut self) -> Vec<Action> {
        let mut actions = vec![Action::RevokeAgents];
        if self.pending_task().is_some() {
            actions.extend(drop_pending(self.pending.take(), DropReason::Revoked));
        }
        actions
    }

    /// The agent's task the pending question asks about, if it is one.
    pub fn pending_task(&self) -> Option<&crate::order::AgentOrder> {
        match &self.pending.as_ref()?.proposal {
            Proposal::Payment(order) => order.agent.as_ref(),
            _ => None,
        }
    }

    /// Drops the pending question if it asks about a task of `agent` (the
    /// agent was stopped from elsewhere).
    pub fn withdraw_task_of(&mut self, agent: &str) -> Vec<Action> {
        if self
            .pending_task()
            .is_some_and(|a| a.task.agent_id == agent)
        {
            drop_pending(self.pending.take(), DropReason::Revoked)
        } else {
            Vec::new()
        }
    }

    /// An agent's task, let in and within its mandate: paid unasked when
    /// `unasked` (the agent's auto amount) and the user's limits allow it,
    /// declined by the user's limits, or read to the user, who approves or
    /// rejects it (with the code above the code limit). The user's own
    /// auto-pay limit never pays an agent's task. Call it only while no
    /// question is pending: the daemon holds tasks until then.
    pub fn offer_task(
        &mut self,
        order: PaymentOrder,
        unasked: bool,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let motion = assess.motion(&order.purchase);
        let still = matches!(motion, Motion::Still);
        match while_driving(assess.decide(order.amount), &motion) {
            Decision::Decline(reason) => decline(order, reason),
            Decision::Auto | Decision::Confirm if unasked && still => {
                let agent = order.agent.as_ref().map(|a| a.spoken_name.clone());
                vec![
                    Action::Say(Speech::AgentPaidUnasked {
                        agent: agent.unwrap_or_default(),
                        purchase: order.purchase.clone(),
                        amount: order.amount,
                    }),
                    Action::Pay {
                        order,
                        approval: Approval::AutoLimit,
                    },
                ]
            }
            Decision::ConfirmWithCode if self.locked(now) => decline(order, Refusal::CodeLockedOut),
            Decision::ConfirmWithCode => {
                let code = (self.new_code)();
                self.ask(Proposal::Payment(order), Some(code), now)
            }
            Decision::Auto | Decision::Confirm => self.ask(Proposal::Payment(order), None, now),
        }
    }

    /// The question has just been spoken: its window starts now (reading it
    /// back, and transcribing before that, is not the user's silence).
    pub fn question_spoken(&mut self, now: Instant) {
        if let Some(pending) = &mut self.pending {
            pending.deadline = now + self.window;
        }
    }

    /// Whether the device is still saying its question, or said it less
    /// than a window ago (`last_voice`: when its voice was last heard, see
    /// `Gate::last_voice`): then the window starts again where the voice
    /// ended, since a spoken read-back takes seconds of an 8 s window.
    pub fn still_asking(&mut self, last_voice: Option<Instant>, now: Instant) -> bool {
        match last_voice {
            Some(voice) if voice + self.window > now => {
                self.question_spoken(voice);
                true
            }
            _ => false,
        }
    }

    /// Drops a question whose window has passed.
    pub fn expire(&mut self, now: Instant) -> Vec<Action> {
        match &self.pending {
            Some(p) if now >= p.deadline => {
                let pending = self.pending.take();
                drop_pending(pending, DropReason::NoAnswerInTime)
            }
            _ => Vec::new(),
        }
    }

    /// The input ended (the last file of `--input`, or shutdown) with a
    /// question open: nothing is paid.
    pub fn end_of_input(&mut self) -> Vec<Action> {
        let pending = self.pending.take();
        drop_pending(pending, DropReason::InputEnded)
    }

    fn request(&mut self, said: &Said, now: Instant, assess: &dyn Assess) -> Vec<Action> {
        let (intent, heard) = (said.intent, said.evidence);
        let order = |amount: Money, purchase: Purchase| {
            PaymentOrder::spoken(amount, purchase, heard.clone())
        };
        let matched = match (intent, said.payee) {
            (Intent::Pay { payee, .. }, None) => Some(self.book().hear(payee, said.command)),
            _ => None,
        };
        let heard_payee = said.payee.or(matched.as_ref());
        let doubt = doubt_of(intent, said.doubt, heard_payee);
        match intent {
            Intent::Pay { amount, payee } => {
                let resolution = heard_payee.map_or_else(
                    || Resolution::Unknown(payee.clone()),
                    |heard| heard.resolution.clone(),
                );
                let pay = |payee: String| order(*amount, Purchase::Pay { payee });
                match resolution {
                    // A name matched by sound or by a near spelling is read
                    // back, so the user hears whom it took them to mean.
                    Resolution::Known(name) => self.propose_payment(pay(name), now, assess, doubt),
                    Resolution::Unknown(heard) => {
                        self.ask_payee(pay(heard.clone()), heard, None, now)
                    }
                    Resolution::Ambiguous(a, b) => {
                        self.ask_payee(pay(payee.clone()), payee.clone(), Some((a, b)), now)
                    }
                }
            }
            Intent::TopUp { tokens, provider } => {
                // Only the provider table names a provider: a shop never is one.
                let known = resolve_provider(provider, &self.parse_context.known_providers);
                match known.and_then(|p| Some((assess.price(*tokens, &p)?, p))) {
                    Some((amount, provider)) => self.propose_payment(
                        order(
                            amount,
                            Purchase::TopUp {
                                tokens: *tokens,
                                provider,
                            },
                        ),
                        now,
                        assess,
                        doubt,
                    ),
                    None => vec![Action::Say(Speech::UnknownTokenPrice {
                        provider: provider.clone(),
                    })],
                }
            }
            Intent::SetLimit { scope, amount } => {
                let current = assess.limit(*scope);
                let lowering = current.currency == amount.currency && amount.minor <= current.minor;
                if lowering {
                    vec![
                        Action::SetLimit {
                            scope: *scope,
                            amount: *amount,
                        },
                        Action::Say(Speech::LimitIsNow {
                            scope: *scope,
                            amount: *amount,
                        }),
                    ]
                } else {
                    let proposal = Proposal::RaiseLimit {
                        scope: *scope,
                        amount: *amount,
                    };
                    self.ask(proposal, None, now)
                }
            }
            Intent::QuerySpending { period } => vec![Action::ReportSpending { period: *period }],
            Intent::Confirm | Intent::Cancel => vec![Action::Say(Speech::NothingToConfirm)],
            Intent::ApproveTask | Intent::RejectTask => vec![Action::Say(Speech::NoTaskWaiting)],
            Intent::RevokeAgents => vec![Action::RevokeAgents],
            Intent::None => self.incomplete(said, now),
        }
    }

    /// Not a command as heard: a payment missing one part asks for it ("How
    /// much to Heytea?"), a command tried but not made out is told so, and
    /// anything else (chatter) gets no answer. Never built on words Whisper
    /// was unsure of.
    fn incomplete(&mut self, said: &Said, now: Instant) -> Vec<Action> {
        let context = self.context_with_book();
        let heard = said.evidence;
        let partial = (heard.asr_confidence >= self.min_confidence)
            .then(|| intent::partial_payment(said.command, &context))
            .flatten();
        let proposal = match partial {
            Some(Partial::Payee(spoken)) => {
                let resolution = self.book().resolve(&spoken);
                match resolution {
                    Resolution::Known(payee) => Some(Proposal::AskAmount {
                        payee,
                        first: heard.clone(),
                        doubt: said.doubt,
                    }),
                    _ => None,
                }
            }
            Some(Partial::Amount(amount)) => Some(Proposal::AskPayee {
                amount,
                first: heard.clone(),
                doubt: said.doubt,
            }),
            None => None,
        };
        match proposal {
            Some(proposal) => self.ask(proposal, None, now),
            None if intent::attempted_command(said.command, &context) => {
                vec![Action::Say(Speech::NotUnderstood)]
            }
            None => Vec::new(),
        }
    }

    /// The parse context with the book's names and aliases as they are now
    /// (the profile's list lacks the names added while the daemon runs).
    fn context_with_book(&self) -> ParseContext {
        ParseContext {
            known_payees: self.book().spoken_forms(),
            ..self.parse_context.clone()
        }
    }

    fn book(&self) -> std::sync::RwLockReadGuard<'_, PayeeBook> {
        self.payees.read()
    }

    /// Anything in `doubt` is read back even under the auto-pay limit.
    fn propose_payment(
        &mut self,
        order: PaymentOrder,
        now: Instant,
        assess: &dyn Assess,
        doubt: Doubt,
    ) -> Vec<Action> {
        self.propose(order, now, assess, !doubt.is_sure(), doubt)
    }

    /// `read_back`: ask even under the auto-pay limit; `doubt` is what the
    /// read-back says it is unsure of.
    fn propose(
        &mut self,
        order: PaymentOrder,
        now: Instant,
        assess: &dyn Assess,
        read_back: bool,
        doubt: Doubt,
    ) -> Vec<Action> {
        let decision = while_driving(assess.decide(order.amount), &assess.motion(&order.purchase));
        match decision {
            Decision::Auto if read_back => {
                self.ask_doubting(Proposal::Payment(order), None, doubt, now)
            }
            Decision::Auto => vec![
                Action::Say(Speech::PayingWithinAutoLimit {
                    purchase: order.purchase.clone(),
                    amount: order.amount,
                }),
                Action::Pay {
                    order,
                    approval: Approval::AutoLimit,
                },
            ],
            Decision::Decline(reason) => decline(order, reason),
            Decision::Confirm => self.ask_doubting(Proposal::Payment(order), None, doubt, now),
            Decision::ConfirmWithCode if self.locked(now) => decline(order, Refusal::CodeLockedOut),
            Decision::ConfirmWithCode => {
                let code = (self.new_code)();
                self.ask_doubting(Proposal::Payment(order), Some(code), doubt, now)
            }
        }
    }

    /// "I don't know Shail. Who should I pay?": waits for a name in the book.
    fn ask_payee(
        &mut self,
        order: PaymentOrder,
        heard: String,
        candidates: Option<(String, String)>,
        now: Instant,
    ) -> Vec<Action> {
        let proposal = Proposal::ChoosePayee {
            order,
            heard,
            candidates,
        };
        self.ask(proposal, None, now)
    }

    fn ask(&mut self, proposal: Proposal, code: Option<String>, now: Instant) -> Vec<Action> {
        self.ask_doubting(proposal, code, Doubt::NONE, now)
    }

    /// A question that says what may have been misheard ("Unsure of the
    /// amount."), spelling an amount in doubt: fifteen and fifty are told
    /// apart by the user, not by the model.
    fn ask_doubting(
        &mut self,
        proposal: Proposal,
        code: Option<String>,
        doubt: Doubt,
        now: Instant,
    ) -> Vec<Action> {
        let pending = Pending {
            proposal,
            code,
            deadline: now + self.window,
            asked_again: false,
            doubt,
        };
        let question = question(&pending);
        self.pending = Some(pending);
        vec![Action::Say(question)]
    }

    /// Anything but an answer: the question once more, then give up.
    fn ask_again(&mut self, mut pending: Pending, now: Instant) -> Vec<Action> {
        if pending.asked_again {
            return drop_pending(Some(pending), DropReason::NoClearAnswer);
        }
        pending.asked_again = true;
        pending.deadline = now + self.window;
        let again = question(&pending);
        self.pending = Some(pending);
        vec![Action::Say(Speech::Again(Box::new(again)))]
    }

    fn answer(
        &mut self,
        pending: Pending,
        said: &Said,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let heard = said.evidence;
        if let Proposal::ChoosePayee { order, .. } = &pending.proposal {
            let order = order.clone();
            return self.answer_payee(pending, order, said, now, assess);
        }
        if matches!(
            pending.proposal,
            Proposal::AskAmount { .. } | Proposal::AskPayee { .. }
        ) {
            return self.answer_missing(pending, said, now, assess);
        }
        // The car may have started moving since the read-back.
        if let Proposal::Payment(order) = &pending.proposal
            && let Motion::Driving {
                allowed: false,
                categories,
            } = assess.motion(&order.purchase)
        {
            let reason = Refusal::WhileDriving {
                allowed: categories,
            };
            return decline(order.clone(), reason);
        }
        if let Some(code) = pending.code.clone() {
            return self.answer_with_code(pending, &code, said, now);
        }
        if let Proposal::Payment(PaymentOrder { agent: Some(_), .. }) = &pending.proposal {
            return match self.reply(said, Listening::TaskDecision) {
                AnswerReading::Approve => approve(pending.proposal, &heard.transcript, false),
                AnswerReading::Reject => drop_pending(Some(pending), DropReason::Rejected),
                _ => self.ask_again(pending, now),
            };
        }
        match self.reply(said, Listening::Confirmation) {
            AnswerReading::Confirm { .. } => approve(pending.proposal, &heard.transcript, false),
            AnswerReading::Cancel => drop_pending(Some(pending), DropReason::Cancelled),
            _ => self.ask_again(pending, now),
        }
    }

    /// The name the user gave when asked whom to pay: a book entry starts the
    /// payment again (always read back), "cancel" drops it, anything else is
    /// asked once more.
    fn answer_payee(
        &mut self,
        pending: Pending,
        mut order: PaymentOrder,
        said: &Said,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let heard = said.evidence;
        if self.reply(said, Listening::Payee) == AnswerReading::Cancel {
            return drop_pending(Some(pending), DropReason::Cancelled);
        }
        let name = intent::name_answer(said.command, &self.parse_context);
        let heard_name = self.book().hear(&name, said.command);
        match heard_name.resolution {
            Resolution::Known(payee) => {
                // The user named it: in doubt only if heard as a near miss.
                let doubt = Doubt {
                    payee: !heard_name.exactly,
                    ..pending.doubt
                };
                order.purchase = Purchase::Pay { payee };
                order.evidence = heard.clone();
                self.propose(order, now, assess, true, doubt)
            }
            _ => self.ask_again(pending, now),
        }
    }

    /// The reply to "How much to Heytea?" or "Who should I pay 36 yuan
    /// to?": the missing part completes the payment, which then goes on as
    /// any heard payment but is always read back (two utterances joined are
    /// one more chance to have misheard). "Cancel" cancels; a whole new
    /// payment command replaces it; anything else drops it, never guessed.
    fn answer_missing(
        &mut self,
        pending: Pending,
        said: &Said,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let heard = said.evidence;
        let completed = match &pending.proposal {
            Proposal::AskAmount {
                payee,
                first,
                doubt,
            } => {
                // "36 yuan to Heytea" answers too, but only with that payee's names.
                let context = ParseContext {
                    known_payees: self.forms_of(payee),
                    ..self.parse_context.clone()
                };
                intent::amount_alone(said.command, &context).map(|amount| {
                    let purchase = Purchase::Pay {
                        payee: payee.clone(),
                    };
                    let doubt = Doubt {
                        amount: said.doubt.amount,
                        ..*doubt
                    };
                    (amount, purchase, joined(first, heard), doubt)
                })
            }
            Proposal::AskPayee {
                amount,
                first,
                doubt,
            } => {
                let context = self.context_with_book();
                let spoken = intent::payee_alone(said.command, &context);
                let resolution = spoken.as_deref().map(|name| self.book().resolve(name));
                match resolution {
                    Some(Resolution::Known(payee)) => {
                        let doubt = Doubt {
                            payee: said.doubt.payee,
                            ..*doubt
                        };
                        Some((
                            *amount,
                            Purchase::Pay { payee },
                            joined(first, heard),
                            doubt,
                        ))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((amount, purchase, evidence, doubt)) = completed {
            let order = PaymentOrder::spoken(amount, purchase, evidence);
            return self.propose(order, now, assess, true, doubt);
        }
        let listening = match pending.proposal {
            Proposal::AskAmount { .. } => Listening::Amount,
            _ => Listening::Payee,
        };
        if self.reply(said, listening) == AnswerReading::Cancel {
            return drop_pending(Some(pending), DropReason::Cancelled);
        }
        if said.intent.is_payment() {
            // Said again in full: the new command stands instead.
            return self.request(said, now, assess);
        }
        drop_pending(Some(pending), DropReason::NoClearAnswer)
    }

    /// The names and aliases the book holds for `payee`.
    fn forms_of(&self, payee: &str) -> Vec<String> {
        let book = self.book();
        book.entries()
            .filter(|(entry, _)| entry.name == payee)
            .flat_map(|(entry, _)| std::iter::once(&entry.name).chain(&entry.aliases))
            .cloned()
            .collect()
    }

    /// The reply to the question asked while `listening`: as the
    /// recognizer read it when it heard it under that question, else (typed,
    /// or the question changed while it was heard) read here.
    fn reply(&self, said: &Said, listening: Listening) -> AnswerReading {
        match said.reply {
            Some(reply) if reply.listening == listening => reply.reading.clone(),
            _ => intent::read_reply(
                listening,
                said.command,
                said.evidence.asr_confidence,
                &self.parse_context,
                self.min_confidence,
            ),
        }
    }

    /// Above the code limit "confirm" alone is not enough: the fresh digits
    /// must come with it, so a recording of an earlier "confirm" cannot pay.
    fn answer_with_code(
        &mut self,
        pending: Pending,
        code: &str,
        said: &Said,
        now: Instant,
    ) -> Vec<Action> {
        let heard = said.evidence;
        match self.reply(said, Listening::Code) {
            AnswerReading::Confirm {
                digits: Some(digits),
            } if digits == code => {
                self.wrong_codes = 0;
                approve(pending.proposal, &heard.transcript, true)
            }
            AnswerReading::Confirm {
                digits: Some(digits),
            } if !digits.is_empty() => {
                self.wrong_codes += 1;
                if self.wrong_codes >= self.wrong_codes_allowed {
                    self.locked_until = Some(now + self.lockout);
                }
                drop_pending(Some(pending), DropReason::WrongCode)
            }
            AnswerReading::Cancel => drop_pending(Some(pending), DropReason::Cancelled),
            _ => self.ask_again(pending, now),
        }
    }
}

/// "I can't pay ...", and the refusal recorded.
fn decline(order: PaymentOrder, reason: Refusal) -> Vec<Action> {
    vec![
        Action::Say(Speech::CannotPay {
            purchase: order.purchase.clone(),
            amount: order.amount,
            refusal: reason.clone(),
        }),
        Action::Declined { order, reason },
    ]
}

fn approve(proposal: Proposal, transcript: &str, with_code: bool) -> Vec<Action> {
    match proposal {
        Proposal::Payment(order) => {
            let transcript = transcript.to_owned();
            let approval = if with_code {
                Approval::PaymentCode { transcript }
            } else {
                Approval::VoiceConfirm { transcript }
            };
            vec![Action::Pay { order, approval }]
        }
        Proposal::RaiseLimit { scope, amount } => vec![
            Action::SetLimit { scope, amount },
            Action::Say(Speech::LimitIsNow { scope, amount }),
        ],
        // A name or an amount is not a yes: `answer_payee` and
        // `answer_missing` answer these.
        Proposal::ChoosePayee { .. } | Proposal::AskAmount { .. } | Proposal::AskPayee { .. } => {
            Vec::new()
        }
    }
}

fn drop_pending(pending: Option<Pending>, reason: DropReason) -> Vec<Action> {
    match pending.map(|p| p.proposal) {
        None => Vec::new(),
        Some(Proposal::Payment(order)) | Some(Proposal::ChoosePayee { order, .. }) => {
            let said = match &order.agent {
                Some(agent) => Speech::AgentTaskDropped {
                    agent: agent.spoken_name.clone(),
                    reason,
                },
                None => Speech::PaymentDropped(reason),
            };
            vec![Action::Say(said), Action::Dropped { order, reason }]
        }
        Some(Proposal::RaiseLimit { scope, .. }) => {
            vec![Action::Say(Speech::LimitUnchanged { scope, reason })]
        }
        // No payment was formed, so none is recorded: only told.
        Some(Proposal::AskAmount { .. } | Proposal::AskPayee { .. }) => {
            let said = match reason {
                DropReason::NoClearAnswer => Speech::MissingPartNotHeard,
                reason => Speech::PaymentDropped(reason),
            };
            vec![Action::Say(said)]
        }
    }
}

/// The evidence of a payment said in two utterances: both transcripts, in
/// order, and a hash over both recordings' hashes (the audio itself is gone
/// by then), with the lower confidence.
fn joined(first: &Evidence, reply: &Evidence) -> Evidence {
    let transcript = format!("{} {}", first.transcript.trim(), reply.transcript.trim());
    let audio = format!("{}{}", first.audio_sha256, reply.audio_sha256);
    Evidence::new(
        &transcript,
        audio.as_bytes(),
        first.asr_confidence.min(reply.asr_confidence),
        &reply.language,
    )
}

fn question(pending: &Pending) -> Speech {
    match &pending.proposal {
        Proposal::Payment(PaymentOrder {
            agent: Some(agent),
            purchase,
            amount,
            ..
        }) => Speech::AgentAsks {
            agent: agent.spoken_name.clone(),
            purchase: purchase.clone(),
            amount: *amount,
            description: agent.description.clone(),
            period: agent.period,
            code: pending.code.clone(),
        },
        Proposal::Payment(order) => Speech::ReadBack {
            purchase: order.purchase.clone(),
            amount: order.amount,
            code: pending.code.clone(),
            doubt: pending.doubt,
        },
        Proposal::RaiseLimit { scope, amount } => Speech::RaiseLimit {
            scope: *scope,
            amount: *amount,
        },
        Proposal::ChoosePayee {
            heard, candidates, ..
        } => Speech::WhoToPay {
            heard: heard.clone(),
            candidates: candidates.clone(),
        },
        Proposal::AskAmount { payee, .. } => Speech::AskAmount {
            payee: payee.clone(),
        },
        Proposal::AskPayee { amount, .. } => Speech::AskPayee { amount: *amount },
    }
}

/// A fresh three-digit challenge from the system's secure random source,
/// uniform over 000-999.
pub fn random_code() -> String {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    code_from(|bytes| rng.fill(bytes).is_ok())
}

/// Draws two bytes until they fall below 64,000 (a multiple of 1,000), so
/// every code is equally likely. A failing source gives "000": still a code
/// the user must say, never a skipped check.
fn code_from(mut fill: impl FnMut(&mut [u8; 2]) -> bool) -> String {
    for _ in 0..64 {
        let mut bytes = [0u8; 2];
        if !fill(&mut bytes) {
            break;
        }
        let value = u16::from_le_bytes(bytes);
        if value < 64_000 {
            return format!("{:03}", value % 1000);
        }
    }
    "000".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::language::Language;
    use crate::phrasebook::Phrasebook;
    use voicepay_core::money::Currency;

    struct Fixed {
        decision: Decision,
        limit: Money,
        /// The car moves: only Shell (fuel) may be paid.
        driving: std::cell::Cell<bool>,
    }

    impl Assess for Fixed {
        fn decide(&self, _amount: Money) -> Decision {
            self.decision.clone()
        }
        fn limit(&self, _scope: LimitScope) -> Money {
            self.limit
        }
        fn price(&self, tokens: u64, _provider: &str) -> Option<Money> {
            // 12 yuan per million tokens.
            Some(Money::new(
                i64::try_from(tokens * 1200 / 1_000_000).ok()?,
                Currency::CNY,
            ))
        }
        fn motion(&self, purchase: &Purchase) -> Motion {
            if !self.driving.get() {
                return Motion::Still;
            }
            Motion::Driving {
                allowed: purchase.payee() == "Shell",
                categories: vec!["fuel".into()],
            }
        }
    }

    fn assess(decision: Decision) -> Fixed {
        Fixed {
            decision,
            limit: Money::new(10_000, Currency::CNY),
            driving: std::cell::Cell::new(false),
        }
    }

    fn driving(decision: Decision) -> Fixed {
        let fixed = assess(decision);
        fixed.driving.set(true);
        fixed
    }

    const AMOUNT: Doubt = Doubt {
        amount: true,
        payee: false,
    };

    /// The test book as the dialog sees it: "Heytea", "Shell", "Amazon", "Bob".
    fn context() -> ParseContext {
        ParseContext {
            known_payees: ["Heytea", "Shell", "Amazon", "Bob"]
                .map(String::from)
                .to_vec(),
            ..ParseContext::default()
        }
    }

    /// `text` typed to the device: parsed as the recognizer would, nothing in doubt.
    fn type_in(d: &mut Dialog, text: &str, now: Instant, policy: &Fixed) -> Vec<Action> {
        let intent = intent::parse(text, &context());
        let evidence = ev(text);
        let said = Said {
            intent: &intent,
            command: text,
            evidence: &evidence,
            doubt: Doubt::NONE,
            payee: None,
            reply: None,
        };
        d.hear_said(&said, now, policy)
    }

    fn paid_order(actions: &[Action]) -> Option<&PaymentOrder> {
        actions.iter().find_map(|a| match a {
            Action::Pay { order, .. } => Some(order),
            _ => None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_without_an_amount_asks_how_much_and_an_amount_alone_completes_it() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        for reply in [
            "thirty six yuan",
            "36",
            "Thirty-six yuan, please.",
            "36 yuan to Heytea.",
        ] {
            let mut d = dialog();
            let a = type_in(&mut d, "Pay Heytea.", t0, &policy);
            assert_eq!(says(&a), ["How much to Heytea?"]);
            assert_eq!(
                d.expecting(),
                Some(Expecting::Amount {
                    payee: "Heytea".into()
                })
            );
            // Under the auto-pay limit, and still read back: it took two utterances.
            let a = type_in(&mut d, reply, t0 + Duration::from_secs(3), &policy);
            assert_eq!(
                says(&a),
                ["Pay 36 yuan to Heytea? Say confirm or cancel."],
                "{reply}"
            );
            assert!(paid(&a).is_none());
            let a = type_in(&mut d, "Confirm.", t0 + Duration::from_secs(5), &policy);
            let order = paid_order(&a).expect("paid on confirm");
            assert_eq!(order.amount, Money::new(3_600, Currency::CNY));
            assert_eq!(order.purchase.payee(), "Heytea");
            // Both utterances are the payment's evidence.
            assert_eq!(order.evidence.transcript, format!("Pay Heytea. {reply}"));
        }
        // "Send money to" a book entry asks the same; dollars answer in dollars.
        let mut d = dialog();
        let a = type_in(&mut d, "Send money to Bob", t0, &policy);
        assert_eq!(says(&a), ["How much to Bob?"]);
        let a = type_in(&mut d, "fifteen dollars fifty", t0, &policy);
        assert_eq!(
            says(&a),
            ["Pay 15 dollars 50 to Bob? Say confirm or cancel."]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_without_a_payee_asks_who_and_a_name_in_the_book_completes_it() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let mut d = dialog();
        let a = type_in(&mut d, "Pay thirty six yuan.", t0, &policy);
        assert_eq!(says(&a), ["Who should I pay 36 yuan to?"]);
        assert_eq!(
            d.expecting(),
            Some(Expecting::Payee {
                amount: Money::new(3_600, Currency::CNY)
            })
        );
        let a = type_in(&mut d, "To Heytea, please.", t0, &policy);
        assert_eq!(says(&a), ["Pay 36 yuan to Heytea? Say confirm or cancel."]);
        let a = type_in(&mut d, "Confirm.", t0, &policy);
        let order = paid_order(&a).expect("paid on confirm");
        assert_eq!(order.purchase.payee(), "Heytea");
        assert_eq!(
            order.evidence.transcript,
            "Pay thirty six yuan. To Heytea, please."
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_that_does_not_give_the_missing_part_drops_it_politely_and_guesses_nothing() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        for (command, reply) in [
            ("Pay Heytea.", "I'm not sure."),
            ("Pay Heytea.", "Bob."),
            ("Pay Heytea.", "36 yuan to Bob."),
            ("Pay Heytea.", "20 or 30 yuan"),
            ("Pay thirty six yuan.", "Walmart."),
            ("Pay thirty six yuan.", "Forty yuan."),
        ] {
            let mut d = dialog();
            type_in(&mut d, command, t0, &policy);
            let a = type_in(&mut d, reply, t0, &policy);
            assert_eq!(
                says(&a),
                ["Sorry, I did not catch that; nothing was paid."],
                "{command} {reply}"
            );
            assert!(paid(&a).is_none() && !d.is_waiting(), "{reply}");
            // Nothing was formed, so nothing is recorded as dropped.
            assert_eq!(dropped(&a), None);
        }
        let mut d = dialog();
        type_in(&mut d, "Pay Heytea.", t0, &policy);
        let a = type_in(&mut d, "Cancel.", t0, &policy);
        assert_eq!(says(&a), ["Payment cancelled."]);
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn a_question_for_a_missing_part_waits_as_long_as_any_other() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let mut d = dialog();
        type_in(&mut d, "Pay Heytea.", t0, &policy);
        assert_eq!(d.deadline(), Some(t0 + settings().window));
        assert!(d.expire(t0 + Duration::from_secs(7)).is_empty());
        let a = d.expire(t0 + Duration::from_secs(8));
        assert_eq!(says(&a), ["Payment cancelled: no answer in time."]);
        assert!(!d.is_waiting());
        // A late amount is no command.
        let a = type_in(&mut d, "36 yuan", t0 + Duration::from_secs(9), &policy);
        assert!(a.is_empty(), "{a:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_completed_by_a_reply_meets_the_same_limits_as_any_other() {
        let t0 = Instant::now();
        let decision = Decision::Decline(Refusal::OverDailyLimit {
            limit: Money::new(50_000, Currency::CNY),
            left: Money::new(1_000, Currency::CNY),
        });
        let mut d = dialog();
        type_in(&mut d, "Pay Heytea.", t0, &assess(decision.clone()));
        let a = type_in(&mut d, "36 yuan", t0, &assess(decision));
        assert!(matches!(a.last(), Some(Action::Declined { .. })), "{a:?}");
        assert!(!d.is_waiting());

        let policy = assess(Decision::ConfirmWithCode);
        let mut d = dialog();
        type_in(&mut d, "Pay 36 yuan.", t0, &policy);
        let a = type_in(&mut d, "Heytea.", t0, &policy);
        assert_eq!(
            says(&a),
            ["Pay 36 yuan to Heytea? Say confirm and the code 4 7 2, or cancel."]
        );
        let a = type_in(&mut d, "Confirm, four seven two.", t0, &policy);
        assert!(matches!(paid(&a), Some(Approval::PaymentCode { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_payment_said_instead_of_the_missing_part_stands_in_its_place() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let mut d = dialog();
        type_in(&mut d, "Pay Heytea.", t0, &policy);
        let a = type_in(&mut d, "Pay 20 yuan to Bob.", t0, &policy);
        assert_eq!(paid(&a), Some(&Approval::AutoLimit));
        assert_eq!(paid_order(&a).map(|o| o.purchase.payee()), Some("Bob"));
    }

    #[tokio::test(start_paused = true)]
    async fn sentences_that_are_no_payment_commands_never_ask_anything() {
        let policy = assess(Decision::Auto);
        for text in [
            "I want to pay less than fifty yuan for dinner",
            "She owes me fifty yuan",
            "Pay attention to the road",
            "Pay Bob back.",
            "Give me five.",
            "Send me the file.",
            "Pay Walmart.",
            "The weather is nice today.",
        ] {
            let mut d = dialog();
            let a = type_in(&mut d, text, Instant::now(), &policy);
            assert!(a.is_empty(), "{text}: {a:?}");
            assert!(!d.is_waiting(), "{text}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_missing_a_part_heard_with_low_confidence_asks_nothing() {
        let mut d = dialog();
        let unsure = Evidence::new("Pay Heytea.", b"pcm", 0.2, "en");
        let said = Said {
            intent: &Intent::None,
            command: "Pay Heytea.",
            evidence: &unsure,
            doubt: Doubt::NONE,
            payee: None,
            reply: None,
        };
        let a = d.hear_said(&said, Instant::now(), &assess(Decision::Auto));
        assert!(!d.is_waiting());
        assert_eq!(says(&a), ["Sorry, I didn't catch that."]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsure_read_back_says_which_part_it_is_unsure_of() {
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let read_back = |intent: Intent, doubt: Doubt| {
            let mut d = dialog();
            let evidence = ev("Pay 36 yuan to Heytea.");
            let said = Said {
                intent: &intent,
                command: "Pay 36 yuan to Heytea.",
                evidence: &evidence,
                doubt,
                payee: None,
                reply: None,
            };
            let a = d.hear_said(&said, t0, &policy);
            assert!(paid(&a).is_none(), "{a:?}");
            says(&a)
        };
        assert_eq!(
            read_back(pay(3600, "Heytea"), AMOUNT),
            ["Pay three six yuan to Heytea? Unsure of the amount. Say confirm or cancel."]
        );
        let payee = Doubt {
            amount: false,
            payee: true,
        };
        assert_eq!(
            read_back(pay(3600, "Heytea"), payee),
            ["Pay 36 yuan to Heytea? Unsure of the payee. Say confirm or cancel."]
        );
        // A name the book holds only by sound doubts the payee by itself.
        assert_eq!(
            read_back(pay(3600, "Shail"), AMOUNT),
            ["Pay three six yuan to Shell? Unsure of the payee and amount. Say confirm or cancel."]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_tried_but_not_made_out_is_answered_and_chatter_is_not() {
        let policy = assess(Decision::Auto);
        for text in [
            "Pay 20 yuan to Bob and Heytea.",
            "Pay 4 dollars 5 to Bob.",
            "Send Heytea 20 or 30 yuan.",
            "Can you top up tokens?",
        ] {
            let mut d = dialog();
            let a = type_in(&mut d, text, Instant::now(), &policy);
            assert_eq!(says(&a), ["Sorry, I didn't catch that."], "{text}");
            assert!(paid(&a).is_none() && !d.is_waiting());
        }
        for text in [
            "I want to pay less than fifty yuan for dinner",
            "Did you pay Bob 20 yuan?",
            "Put five dollars in the jar.",
            "Hmm.",
        ] {
            let mut d = dialog();
            let a = type_in(&mut d, text, Instant::now(), &policy);
            assert!(a.is_empty(), "{text}: {a:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_agent_task_is_asked_in_few_enough_words_to_answer_in_the_window() {
        let mut d = dialog();
        let mut task = agent_task();
        if let Some(agent) = task.agent.as_mut() {
            agent.description =
                "one million tokens for the refactoring of the billing service".into();
        }
        let a = d.offer_task(task, false, Instant::now(), &assess(Decision::Confirm));
        assert_eq!(
            says(&a),
            ["claude code asks to pay 30 yuan to Anthropic. Say approve or reject."]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn amounts_are_said_as_people_say_them_unless_the_amount_is_in_doubt() {
        let t0 = Instant::now();
        let policy = assess(Decision::Confirm);
        let mut d = dialog();
        let a = d.hear(
            &pay(3650, "Heytea"),
            &ev("Pay 36 yuan 50 to Heytea."),
            t0,
            &policy,
        );
        assert_eq!(
            says(&a),
            ["Pay 36 yuan 50 to Heytea? Say confirm or cancel."]
        );
        let mut d = dialog();
        let intent = pay(3650, "Heytea");
        let evidence = ev("Pay 36 yuan 50 to Heytea.");
        let said = Said {
            intent: &intent,
            command: "Pay 36 yuan 50 to Heytea.",
            evidence: &evidence,
            doubt: AMOUNT,
            payee: None,
            reply: None,
        };
        let a = d.hear_said(&said, t0, &policy);
        assert_eq!(
            says(&a),
            [
                "Pay three six point five zero yuan to Heytea? Unsure of the amount. Say confirm or cancel."
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_driving_a_coffee_under_the_auto_limit_is_refused_with_the_reason() {
        let mut d = dialog();
        let policy = driving(Decision::Auto);
        let a = d.hear(
            &pay_36(),
            &ev("Pay 36 yuan to Heytea."),
            Instant::now(),
            &policy,
        );
        assert_eq!(
            says(&a),
            ["I can't pay 36 yuan to Heytea. While you drive, I can only pay for fuel."]
        );
        assert!(paid(&a).is_none());
        assert!(matches!(
            a.last(),
            Some(Action::Declined {
                reason: Refusal::WhileDriving { .. },
                ..
            })
        ));
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn while_driving_fuel_under_the_auto_limit_is_read_back_and_paid_only_on_confirm() {
        let mut d = dialog();
        let policy = driving(Decision::Auto);
        let t0 = Instant::now();
        let a = d.hear(
            &pay(2000, "Shell"),
            &ev("Pay 20 yuan to Shell."),
            t0,
            &policy,
        );
        assert_eq!(says(&a), ["Pay 20 yuan to Shell? Say confirm or cancel."]);
        assert!(paid(&a).is_none());
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(matches!(paid(&a), Some(Approval::VoiceConfirm { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_coffee_read_back_while_parked_is_refused_when_confirmed_after_the_car_moved() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev("Pay 36 yuan to Heytea."), t0, &policy);
        policy.driving.set(true);
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(paid(&a).is_none());
        assert_eq!(
            says(&a),
            ["I can't pay 36 yuan to Heytea. While you drive, I can only pay for fuel."]
        );
    }

    fn ev(transcript: &str) -> Evidence {
        Evidence::new(transcript, b"pcm", 0.9, "en")
    }

    fn settings() -> DialogSettings {
        DialogSettings {
            window: Duration::from_secs(8),
            min_confidence: 0.4,
            wrong_codes_allowed: 3,
            lockout: Duration::from_secs(300),
        }
    }

    fn dialog() -> Dialog {
        Dialog::new(settings(), context(), Box::new(|| "472".to_string()))
    }

    fn pay(amount: i64, payee: &str) -> Intent {
        Intent::Pay {
            amount: Money::new(amount, Currency::CNY),
            payee: payee.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_payee_outside_the_book_is_asked_about_and_never_paid() {
        let mut d = dialog();
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let a = d.hear(
            &pay(2000, "Walmart"),
            &ev("Pay 20 yuan to Walmart."),
            t0,
            &policy,
        );
        assert_eq!(
            says(&a),
            ["I don't know Walmart. Who should I pay? Say the name, or cancel."]
        );
        assert!(paid(&a).is_none());
        // Not a name in the book: asked once more, then dropped.
        let a = d.hear(&Intent::None, &ev("Target."), t0, &policy);
        assert!(paid(&a).is_none());
        let a = d.hear(&Intent::None, &ev("Costco."), t0, &policy);
        assert!(matches!(a.last(), Some(Action::Dropped { .. })));
        assert!(paid(&a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_payee_named_after_the_question_is_read_back_even_under_the_auto_limit() {
        let mut d = dialog();
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        d.hear(
            &pay(2000, "Walmart"),
            &ev("Pay 20 yuan to Walmart."),
            t0,
            &policy,
        );
        let a = d.hear(&Intent::None, &ev("To Shell, please."), t0, &policy);
        // Named by the user, as spelled in the book: nothing to doubt.
        assert_eq!(says(&a), ["Pay 20 yuan to Shell? Say confirm or cancel."]);
        assert!(paid(&a).is_none());
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(paid(&a).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_matched_by_sound_is_read_back_even_under_the_auto_limit() {
        let mut d = dialog();
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let a = d.hear(
            &pay(2000, "Shail"),
            &ev("Pay 20 yuan to Shail."),
            t0,
            &policy,
        );
        assert_eq!(
            says(&a),
            ["Pay 20 yuan to Shell? Unsure of the payee. Say confirm or cancel."]
        );
        assert!(paid(&a).is_none());
        // Said as spelled in the book, the same payment pays by itself.
        let a = d.hear(
            &pay(2000, "Shell"),
            &ev("Pay 20 yuan to Shell."),
            t0 + Duration::from_secs(20),
            &policy,
        );
        assert!(paid(&a).is_some());
    }

    /// Regression: the parser puts the book's spelling in place of a near
    /// one ("Amazone" becomes "Amazon"), and the dialog then
    /// took the book's spelling as what was said and paid without a word.
    /// Whether a name was said as such is judged on the words heard.
    #[tokio::test(start_paused = true)]
    async fn a_name_the_parser_corrected_from_a_near_spelling_is_read_back_under_the_auto_limit() {
        let mut d = dialog();
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let said = "Pay 20 yuan to Amazone.";
        let intent = intent::parse(said, &context());
        assert_eq!(intent, pay(2000, "Amazon"));
        let a = d.hear(&intent, &ev(said), t0, &policy);
        assert!(paid(&a).is_none(), "{a:?}");
        assert_eq!(
            says(&a),
            ["Pay 20 yuan to Amazon? Unsure of the payee. Say confirm or cancel."]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsure_amount_is_read_back_even_under_the_auto_limit() {
        let mut d = dialog();
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let said = Said {
            intent: &pay(1500, "Shell"),
            command: "Pay 15 yuan to Shell.",
            evidence: &ev("Pay 15 yuan to Shell."),
            doubt: AMOUNT,
            payee: None,
            reply: None,
        };
        let a = d.hear_said(&said, t0, &policy);
        assert_eq!(
            says(&a),
            ["Pay one five yuan to Shell? Unsure of the amount. Say confirm or cancel."]
        );
        assert!(paid(&a).is_none());
        // The older `sure: bool` does not say which part: both are doubted.
        let mut d = dialog();
        let a = d.hear_with(
            &pay(1500, "Shell"),
            &ev("Pay 15 yuan to Shell."),
            false,
            t0,
            &policy,
        );
        assert_eq!(
            says(&a),
            ["Pay one five yuan to Shell? Unsure of the payee and amount. Say confirm or cancel."]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_entries_about_as_close_are_both_named_and_nothing_is_paid() {
        let twins = PayeeBook::new(["Coffee Shop A", "Coffee Shop B"].map(|name| {
            let payee = Payee {
                name: name.into(),
                aliases: Vec::new(),
            };
            (payee, Origin::Added)
        }));
        let mut d = dialog().with_payees(SharedPayees::new(twins));
        let policy = assess(Decision::Auto);
        let a = d.hear(
            &pay(900, "Coffee Shop"),
            &ev("Pay 9 yuan to Coffee Shop."),
            Instant::now(),
            &policy,
        );
        assert_eq!(
            says(&a),
            ["Did you mean Coffee Shop A or Coffee Shop B? Say the name, or cancel."]
        );
        assert!(paid(&a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn answers_heard_imperfectly_are_taken_only_when_clearly_closest() {
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        // "Console." can only be "cancel" when the choice is confirm or cancel.
        let mut d = dialog();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::None, &ev("Console."), t0, &policy);
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::Cancelled)
        );
        let mut d = dialog();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::None, &ev("Conferm."), t0, &policy);
        assert!(paid(&a).is_some());
        // Nothing like either answer: asked again.
        let mut d = dialog();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::None, &ev("The last one."), t0, &policy);
        assert!(paid(&a).is_none());
        assert!(d.is_waiting());
    }

    /// A reply said to the device as the recognizer read it once.
    fn reply_said(
        d: &mut Dialog,
        words: &str,
        reply: &Reply,
        now: Instant,
        policy: &Fixed,
    ) -> Vec<Action> {
        let evidence = ev(words);
        let said = Said {
            intent: &Intent::None,
            command: words,
            evidence: &evidence,
            doubt: Doubt::NONE,
            payee: None,
            reply: Some(reply),
        };
        d.hear_said(&said, now, policy)
    }

    /// Item 7 of issue 21: a reply is read once, by the recognizer, for the
    /// question it was heard under. The dialog takes that reading as it is
    /// (here a closed-domain "cancel" whose words alone read as nothing) and
    /// reads the words itself only when the question changed meanwhile.
    #[test]
    fn a_reply_the_recognizer_read_is_taken_as_it_is_and_one_read_under_another_question_is_read_again()
     {
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        let mut d = dialog();
        type_in(&mut d, "Pay 36 yuan to Heytea.", t0, &policy);
        assert_eq!(d.expecting(), Some(Expecting::Confirmation));
        let cancel = Reply {
            listening: Listening::Confirmation,
            reading: AnswerReading::Cancel,
        };
        let a = reply_said(&mut d, "Hm.", &cancel, t0, &policy);
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::Cancelled),
            "{a:?}"
        );
        assert!(!d.is_waiting());

        // Heard while an agent's task was asked, and read there as a reject;
        // the read-back asks confirm or cancel, and its words say confirm.
        type_in(&mut d, "Pay 36 yuan to Heytea.", t0, &policy);
        let other_question = Reply {
            listening: Listening::TaskDecision,
            reading: AnswerReading::Reject,
        };
        let a = reply_said(&mut d, "Confirm.", &other_question, t0, &policy);
        assert!(paid(&a).is_some(), "{a:?}");
    }

    #[test]
    fn agent_decisions_heard_imperfectly_are_read_by_sound() {
        let ctx = ParseContext::default();
        let read = |text: &str| intent::read_reply(Listening::TaskDecision, text, 0.9, &ctx, 0.4);
        assert_eq!(read("I prove the task."), AnswerReading::Approve);
        assert_eq!(read("Denight that agent request."), AnswerReading::Reject);
        assert_eq!(read("Yes."), AnswerReading::Approve);
        assert_eq!(read("Turn left at the next exit."), AnswerReading::Unclear);
        // A near miss is an answer only while a question waits: as a command it is nothing.
        assert_eq!(intent::parse("Conferm.", &ctx), Intent::None);
    }

    /// How a clear transcript is read as the answer to an agent's task.
    fn task(text: &str) -> AnswerReading {
        intent::read_reply(
            Listening::TaskDecision,
            text,
            0.9,
            &ParseContext::default(),
            0.4,
        )
    }

    /// How a clear transcript is read as the answer to a payment's read-back.
    fn payment(text: &str) -> AnswerReading {
        intent::read_reply(
            Listening::Confirmation,
            text,
            0.9,
            &ParseContext::default(),
            0.4,
        )
    }

    /// Dev half: "No, don't let it." heard as "No, don't plant it." was
    /// asked again; a no of its own before the rest is a no.
    #[test]
    fn an_answer_that_opens_with_a_no_of_its_own_is_a_no() {
        assert_eq!(task("No, don't plant it."), AnswerReading::Reject);
        assert_eq!(task("No. Stop me agent."), AnswerReading::Reject);
        assert_eq!(payment("No. Console for payment."), AnswerReading::Cancel);
        assert_eq!(
            task("Go ahead with the agent's task."),
            AnswerReading::Approve
        );
        // A yes among the words makes it no answer at all: asked again.
        assert_eq!(payment("No, go ahead."), AnswerReading::Unclear);
        assert_eq!(task("No, I approve it."), AnswerReading::Unclear);
        // No pause after it: "no" is not the answer.
        assert_ne!(payment("No problem, send it."), AnswerReading::Cancel);
        assert_eq!(payment("No way to know."), AnswerReading::Unclear);
    }

    /// Test half: "Yes, go to the task." was matched by sound to "reject the
    /// task". The sound match must not say the opposite of a spelled word,
    /// least of all a yes where a no was spelled.
    #[test]
    fn a_sound_match_never_overrules_a_spelled_yes_or_no() {
        assert_ne!(task("Yes, go to the task."), AnswerReading::Reject);
        assert_eq!(payment("Don't conferm."), AnswerReading::Unclear);
        assert_eq!(task("Don't a prove it."), AnswerReading::Unclear);
        // Without a spelled word the sound match still answers.
        assert_eq!(payment("Console."), AnswerReading::Cancel);
        assert_eq!(task("I prove the task."), AnswerReading::Approve);
    }

    /// What `pay_36` is heard from.
    const PAY_36: &str = "Pay 36 yuan to Heytea.";

    fn pay_36() -> Intent {
        Intent::Pay {
            amount: Money::new(3600, Currency::CNY),
            payee: "Heytea".into(),
        }
    }

    /// What the user hears, in English.
    fn says(actions: &[Action]) -> Vec<String> {
        let english = Phrasebook::new(Language::English);
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(s) => Some(english.say(s)),
                _ => None,
            })
            .collect()
    }

    fn paid(actions: &[Action]) -> Option<&Approval> {
        actions.iter().find_map(|a| match a {
            Action::Pay { approval, .. } => Some(approval),
            _ => None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_mandarin_payment_without_an_amount_is_asked_read_back_in_mandarin_and_paid_only_on_queren()
     {
        let ctx = ParseContext {
            language: Language::Mandarin,
            known_payees: vec!["喜茶".into(), "瑞幸".into()],
            ..ParseContext::default()
        };
        let mandarin = Phrasebook::new(Language::Mandarin);
        let mut d = Dialog::new(settings(), ctx.clone(), Box::new(|| "472".to_string()));
        let policy = assess(Decision::Auto);
        let t0 = Instant::now();
        let mut say = |d: &mut Dialog, text: &str| -> Vec<Action> {
            let intent = intent::parse(text, &ctx);
            let evidence = ev(text);
            let said = Said {
                intent: &intent,
                command: text,
                evidence: &evidence,
                doubt: Doubt::NONE,
                payee: None,
                reply: None,
            };
            d.hear_said(&said, t0, &policy)
        };
        let spoken = |actions: &[Action]| -> Vec<String> {
            (actions.iter())
                .filter_map(|a| match a {
                    Action::Say(s) => Some(mandarin.say(s)),
                    _ => None,
                })
                .collect()
        };
        // A negated yes is a no: nothing is paid.
        let ask = |d: &mut Dialog, say: &mut dyn FnMut(&mut Dialog, &str) -> Vec<Action>| {
            let a = say(d, "给西茶付款。");
            assert_eq!(
                d.expecting(),
                Some(Expecting::Amount {
                    payee: "喜茶".into()
                })
            );
            assert!(spoken(&a).concat().contains("喜茶"), "{:?}", spoken(&a));
            let a = say(d, "三十六块五。");
            let read_back = spoken(&a).concat();
            assert!(
                read_back.contains("三十六点五元") && read_back.contains("喜茶"),
                "{read_back}"
            );
            assert!(paid(&a).is_none());
        };
        ask(&mut d, &mut say);
        let a = say(&mut d, "不确认。");
        assert!(paid(&a).is_none(), "{:?}", spoken(&a));
        assert!(!d.is_waiting());
        ask(&mut d, &mut say);
        let a = say(&mut d, "确认。");
        let order = paid_order(&a).unwrap_or_else(|| panic!("{:?}", spoken(&a)));
        assert_eq!(order.amount, Money::new(3_650, Currency::CNY));
        assert_eq!(order.purchase.payee(), "喜茶");
    }

    #[tokio::test(start_paused = true)]
    async fn a_payment_is_read_back_and_paid_on_confirm() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        let a = d.hear(&pay_36(), &ev("Pay 36 yuan to Heytea."), t0, &policy);
        assert_eq!(says(&a), ["Pay 36 yuan to Heytea? Say confirm or cancel."]);
        assert!(paid(&a).is_none());
        let a = d.hear(
            &Intent::Confirm,
            &ev("Confirm."),
            t0 + Duration::from_secs(2),
            &policy,
        );
        assert_eq!(
            paid(&a),
            Some(&Approval::VoiceConfirm {
                transcript: "Confirm.".into()
            })
        );
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_drops_and_anything_else_asks_once_more() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::Cancel, &ev("Cancel."), t0, &policy);
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::Cancelled)
        );

        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::None, &ev("what?"), t0, &policy);
        assert_eq!(
            says(&a),
            ["Sorry? Pay 36 yuan to Heytea? Say confirm or cancel."]
        );
        let a = d.hear(&Intent::None, &ev("hmm"), t0, &policy);
        assert!(matches!(a.last(), Some(Action::Dropped { .. })));
        assert!(paid(&a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_window_drops_the_payment() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(8)));
        assert!(d.expire(t0 + Duration::from_secs(7)).is_empty());
        let a = d.expire(t0 + Duration::from_secs(8));
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::NoAnswerInTime)
        );
        // A late "confirm" finds nothing to confirm.
        let a = d.hear(
            &Intent::Confirm,
            &ev("confirm"),
            t0 + Duration::from_secs(9),
            &policy,
        );
        assert!(paid(&a).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_starts_when_the_question_has_been_spoken() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        // Transcribing and reading back took 5 s.
        d.question_spoken(t0 + Duration::from_secs(5));
        let a = d.hear(
            &Intent::Confirm,
            &ev("confirm"),
            t0 + Duration::from_secs(12),
            &policy,
        );
        assert!(paid(&a).is_some(), "{a:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_counts_again_from_the_end_of_the_devices_voice() {
        let mut d = dialog();
        let window = settings().window;
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &assess(Decision::Confirm));
        d.question_spoken(t0);
        // Saying the read-back took 6 s of the window.
        let voice_ended = t0 + Duration::from_secs(6);
        assert!(d.still_asking(Some(voice_ended), t0 + window));
        assert_eq!(d.deadline(), Some(voice_ended + window));
        assert!(d.expire(t0 + window).is_empty(), "the user still has time");
        assert!(!d.still_asking(Some(voice_ended), voice_ended + window));
        let dropped = d.expire(voice_ended + window);
        assert!(
            matches!(dropped.last(), Some(Action::Dropped { .. })),
            "{dropped:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_never_spoke_is_not_still_asking() {
        let mut d = dialog();
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &assess(Decision::Confirm));
        assert!(!d.still_asking(None, t0 + settings().window));
        assert_eq!(d.deadline(), Some(t0 + settings().window));
    }

    #[tokio::test(start_paused = true)]
    async fn the_input_ending_drops_a_pending_payment() {
        let mut d = dialog();
        d.hear(
            &pay_36(),
            &ev(PAY_36),
            Instant::now(),
            &assess(Decision::Confirm),
        );
        let a = d.end_of_input();
        assert!(matches!(a.last(), Some(Action::Dropped { .. })));
        assert!(d.end_of_input().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn under_the_auto_limit_it_pays_and_tells() {
        let mut d = dialog();
        let a = d.hear(
            &pay_36(),
            &ev(PAY_36),
            Instant::now(),
            &assess(Decision::Auto),
        );
        assert_eq!(paid(&a), Some(&Approval::AutoLimit));
        assert!(says(&a)[0].starts_with("Paying 36 yuan to Heytea"));
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn a_declined_payment_is_spoken_with_its_reason() {
        let mut d = dialog();
        let decision = Decision::Decline(Refusal::OverDailyLimit {
            limit: Money::new(50_000, Currency::CNY),
            left: Money::new(1_000, Currency::CNY),
        });
        let a = d.hear(&pay_36(), &ev(PAY_36), Instant::now(), &assess(decision));
        assert_eq!(
            says(&a),
            ["I can't pay 36 yuan to Heytea. \
                 That is over your daily limit of 500 yuan; you have 10 yuan left today."]
        );
        assert!(matches!(a.last(), Some(Action::Declined { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn above_the_code_limit_only_the_fresh_code_pays() {
        let policy = assess(Decision::ConfirmWithCode);
        let t0 = Instant::now();
        let mut d = dialog();
        let a = d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        assert_eq!(
            says(&a),
            ["Pay 36 yuan to Heytea? Say confirm and the code 4 7 2, or cancel."]
        );
        // A bare "confirm" (say, a recording) is not enough: asked again.
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(paid(&a).is_none() && d.is_waiting());
        let a = d.hear(&Intent::None, &ev("Confirm, four seven two."), t0, &policy);
        assert_eq!(
            paid(&a),
            Some(&Approval::PaymentCode {
                transcript: "Confirm, four seven two.".into()
            })
        );

        let mut d = dialog();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let a = d.hear(&Intent::None, &ev("Confirm 4-7-3"), t0, &policy);
        assert!(paid(&a).is_none());
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::WrongCode)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn raising_a_limit_asks_and_lowering_applies_at_once() {
        let policy = assess(Decision::Confirm); // current limit 100 yuan
        let t0 = Instant::now();
        let mut d = dialog();
        let lower = Intent::SetLimit {
            scope: LimitScope::Daily,
            amount: Money::new(5_000, Currency::CNY),
        };
        let a = d.hear(&lower, &ev(""), t0, &policy);
        assert!(matches!(a[0], Action::SetLimit { .. }));
        assert_eq!(says(&a), ["Your daily limit is now 50 yuan."]);

        let raise = Intent::SetLimit {
            scope: LimitScope::Daily,
            amount: Money::new(50_000, Currency::CNY),
        };
        let a = d.hear(&raise, &ev(""), t0, &policy);
        assert_eq!(
            says(&a),
            ["Raise your daily limit to 500 yuan? Say confirm or cancel."]
        );
        let a = d.hear(&Intent::Confirm, &ev("confirm"), t0, &policy);
        assert!(matches!(a[0], Action::SetLimit { amount, .. } if amount.minor == 50_000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_top_up_is_priced_and_read_back() {
        let mut d = dialog();
        let intent = Intent::TopUp {
            tokens: 200_000,
            provider: "Kimi".into(),
        };
        let a = d.hear(&intent, &ev(""), Instant::now(), &assess(Decision::Confirm));
        assert_eq!(
            says(&a),
            ["Top up 200000 Kimi tokens for 2 yuan 40? Say confirm or cancel."]
        );
    }

    #[test]
    fn payment_codes_are_three_digits() {
        for _ in 0..50 {
            let code = random_code();
            assert_eq!(code.len(), 3);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn codes_are_uniform_because_the_top_of_the_range_is_redrawn() {
        // 64,000 and above would make 000-535 likelier: they are drawn again.
        let mut draws = [65_535u16, 64_000, 63_999].into_iter();
        let code = code_from(|bytes| {
            *bytes = draws.next().unwrap_or(0).to_le_bytes();
            true
        });
        assert_eq!(code, "999");
        assert_eq!(code_from(|_| false), "000");
    }

    #[tokio::test(start_paused = true)]
    async fn a_low_confidence_answer_is_asked_again_never_taken() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        let unsure = Evidence::new("Okay.", b"pcm", 0.2, "en");
        let a = d.hear(&Intent::Confirm, &unsure, t0, &policy);
        assert!(paid(&a).is_none(), "{a:?}");
        assert_eq!(
            says(&a),
            ["Sorry? Pay 36 yuan to Heytea? Say confirm or cancel."]
        );
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(paid(&a).is_some(), "a clear confirm still pays");
    }

    /// claude-code's task: 30 yuan to Anthropic.
    fn agent_task() -> PaymentOrder {
        PaymentOrder {
            amount: Money::new(3_000, Currency::CNY),
            purchase: Purchase::Pay {
                payee: "Anthropic".into(),
            },
            evidence: Evidence::new("one million tokens", b"envelope", 1.0, "en"),
            agent: Some(crate::order::AgentOrder {
                task: voicepay_core::protocol::AgentRef {
                    agent_id: "claude-code".into(),
                    task_id: "t-1".into(),
                },
                description: "one million tokens".into(),
                spoken_name: "claude code".into(),
                period: None,
            }),
        }
    }

    fn dropped(actions: &[Action]) -> Option<DropReason> {
        actions.iter().find_map(|a| match a {
            Action::Dropped { reason, .. } => Some(*reason),
            _ => None,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn an_agents_task_is_asked_about_and_paid_when_approved() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        let a = d.offer_task(agent_task(), false, t0, &policy);
        assert!(matches!(
            a.as_slice(),
            [Action::Say(Speech::AgentAsks { code: None, .. })]
        ));
        assert_eq!(
            says(&a),
            [
                "claude code asks to pay 30 yuan to Anthropic: one million tokens. Say approve or reject."
            ]
        );
        assert!(d.is_waiting());
        assert_eq!(
            d.pending_task().map(|t| t.task.task_id.as_str()),
            Some("t-1")
        );
        let a = d.hear(
            &Intent::ApproveTask,
            &ev("Approve the task."),
            t0 + Duration::from_secs(2),
            &policy,
        );
        assert_eq!(
            paid(&a),
            Some(&Approval::VoiceConfirm {
                transcript: "Approve the task.".into()
            })
        );
        assert!(matches!(
            a.as_slice(),
            [Action::Pay { order, .. }] if order.agent_ref().is_some_and(|r| r.task_id == "t-1")
        ));
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn an_agents_task_the_user_rejects_is_dropped_and_said_so() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.offer_task(agent_task(), false, t0, &policy);
        let a = d.hear(&Intent::RejectTask, &ev("Reject it."), t0, &policy);
        assert!(paid(&a).is_none());
        assert_eq!(dropped(&a), Some(DropReason::Rejected));
        assert!(matches!(
            a.first(),
            Some(Action::Say(Speech::AgentTaskDropped {
                reason: DropReason::Rejected,
                ..
            }))
        ));
        assert_eq!(says(&a), ["Rejected. claude code's task is not paid."]);
        assert!(!d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn an_agents_task_without_an_answer_in_time_is_dropped() {
        let mut d = dialog();
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        d.offer_task(agent_task(), false, t0, &policy);
        assert!(d.expire(t0 + Duration::from_secs(7)).is_empty());
        let a = d.expire(t0 + Duration::from_secs(8));
        assert_eq!(dropped(&a), Some(DropReason::NoAnswerInTime));
        assert!(matches!(
            a.first(),
            Some(Action::Say(Speech::AgentTaskDropped {
                reason: DropReason::NoAnswerInTime,
                ..
            }))
        ));
        assert!(!d.is_waiting());
        // A late approval finds no task.
        let a = d.hear(
            &Intent::ApproveTask,
            &ev("Approve."),
            t0 + Duration::from_secs(9),
            &policy,
        );
        assert!(paid(&a).is_none());
        assert!(matches!(a.as_slice(), [Action::Say(Speech::NoTaskWaiting)]));
    }

    #[tokio::test(start_paused = true)]
    async fn an_agents_task_it_may_pay_unasked_is_paid_at_once_and_told() {
        for decision in [Decision::Auto, Decision::Confirm] {
            let mut d = dialog();
            let a = d.offer_task(
                agent_task(),
                true,
                Instant::now(),
                &assess(decision.clone()),
            );
            assert_eq!(paid(&a), Some(&Approval::AutoLimit), "{decision:?}");
            assert!(matches!(
                a.first(),
                Some(Action::Say(Speech::AgentPaidUnasked { .. }))
            ));
            assert_eq!(
                says(&a),
                ["Paying 30 yuan to Anthropic for claude code: \
                  it is within what you let claude code pay alone."]
            );
            assert!(!d.is_waiting(), "{decision:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_users_own_auto_limit_never_pays_an_agents_task() {
        let mut d = dialog();
        let a = d.offer_task(agent_task(), false, Instant::now(), &assess(Decision::Auto));
        assert!(paid(&a).is_none());
        assert!(matches!(
            a.as_slice(),
            [Action::Say(Speech::AgentAsks { .. })]
        ));
        assert!(d.is_waiting());
    }

    #[tokio::test(start_paused = true)]
    async fn an_agents_task_the_users_limits_decline_is_declined_even_unasked() {
        let decision = Decision::Decline(Refusal::OverDailyLimit {
            limit: Money::new(50_000, Currency::CNY),
            left: Money::new(1_000, Currency::CNY),
        });
        for unasked in [false, true] {
            let mut d = dialog();
            let a = d.offer_task(
                agent_task(),
                unasked,
                Instant::now(),
                &assess(decision.clone()),
            );
            assert!(paid(&a).is_none());
            assert!(matches!(
                a.last(),
                Some(Action::Declined {
                    reason: Refusal::OverDailyLimit { .. },
                    order,
                }) if order.agent.is_some()
            ));
            assert!(!d.is_waiting());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_the_agents_drops_their_task_but_keeps_the_users_own_question() {
        let policy = assess(Decision::Confirm);
        let t0 = Instant::now();
        let mut d = dialog();
        d.offer_task(agent_task(), false, t0, &policy);
        let a = d.hear(&Intent::RevokeAgents, &ev("Stop the agents."), t0, &policy);
        assert_eq!(a.first(), Some(&Action::RevokeAgents));
        assert_eq!(dropped(&a), Some(DropReason::Revoked));
        assert!(paid(&a).is_none());
        assert!(!d.is_waiting());
        assert!(d.pending_task().is_none());

        let mut d = dialog();
        d.hear(&pay_36(), &ev("Pay 36 yuan to Heytea."), t0, &policy);
        let a = d.hear(&Intent::RevokeAgents, &ev("Stop the agents."), t0, &policy);
        assert_eq!(a, [Action::RevokeAgents]);
        assert!(d.is_waiting(), "the read-back still waits");
        // And it is still answered.
        let a = d.hear(&Intent::Confirm, &ev("Confirm."), t0, &policy);
        assert!(matches!(paid(&a), Some(Approval::VoiceConfirm { .. })));

        // With nothing pending, the agents are stopped all the same.
        let a = d.hear(&Intent::RevokeAgents, &ev("Stop the agents."), t0, &policy);
        assert_eq!(a, [Action::RevokeAgents]);
    }

    #[tokio::test(start_paused = true)]
    async fn three_wrong_codes_in_a_row_lock_payments_that_need_a_code_for_a_while() {
        let policy = assess(Decision::ConfirmWithCode);
        let mut d = dialog();
        let t0 = Instant::now();
        for _ in 0..3 {
            d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
            let a = d.hear(&Intent::None, &ev("Confirm 1 2 3"), t0, &policy);
            assert!(paid(&a).is_none());
        }
        // Even the right code is not asked for now.
        let a = d.hear(&pay_36(), &ev(PAY_36), t0, &policy);
        assert!(matches!(
            a.last(),
            Some(Action::Declined {
                reason: Refusal::CodeLockedOut,
                ..
            })
        ));
        assert!(!d.is_waiting());
        // A payment without a code is not locked.
        let a = d.hear(&pay_36(), &ev(PAY_36), t0, &assess(Decision::Confirm));
        assert!(d.is_waiting(), "{a:?}");
        d.end_of_input();
        // Handed to a dialog that starts afresh (a restart), the lock holds.
        let (wrong, until) = d.code_lock();
        let mut restarted = dialog();
        restarted.restore_code_lock(wrong, until.map(|u| u - t0), t0);
        restarted.hear(&pay_36(), &ev("pay"), t0, &policy);
        assert!(!restarted.is_waiting(), "locked after a restart too");
        // After the lockout the code is asked again, and the right one pays.
        let later = t0 + Duration::from_secs(301);
        d.hear(&pay_36(), &ev(PAY_36), later, &policy);
        let a = d.hear(&Intent::None, &ev("Confirm, 4 7 2."), later, &policy);
        assert!(paid(&a).is_some(), "{a:?}");
    }
}
