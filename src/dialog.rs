//! The conversation: reads a payment back, waits for "confirm", "cancel" or a spoken code, and gives up after a window.
//!
//! The dialog decides nothing about money by itself: the policy's verdict comes
//! in through [`Assess`], and what must happen goes out as [`Action`]s that the
//! daemon carries out (speak, pay, change a limit, record). What it says is a
//! [`Speech`] the phrasebook words. Time is passed in, so tests drive it with
//! tokio's paused clock.

use tokio::time::{Duration, Instant};

use crate::intent::{self, Intent, LimitScope, ParseContext, Period};
use crate::money::Money;
use crate::order::{Approval, DropReason, PaymentOrder, Purchase};
use crate::phrasebook::Speech;
use crate::policy::{Decision, Refusal};
use crate::protocol::Evidence;

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
}

/// The daemon's view of the user's money, asked when a request comes in.
pub trait Assess {
    fn decide(&self, amount: Money) -> Decision;
    /// The current limit of `scope`; zero when none is set.
    fn limit(&self, scope: LimitScope) -> Money;
    /// What `tokens` of `provider` cost, if the device knows a price.
    fn price(&self, tokens: u64, provider: &str) -> Option<Money>;
}

#[derive(Debug, Clone, PartialEq)]
enum Proposal {
    Payment(PaymentOrder),
    RaiseLimit { scope: LimitScope, amount: Money },
}

#[derive(Debug)]
struct Pending {
    proposal: Proposal,
    /// The digits the user must repeat, for payments above the code limit.
    code: Option<String>,
    deadline: Instant,
    asked_again: bool,
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
        Self {
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

    /// One utterance, understood as `intent`; `heard` holds its transcript.
    pub fn hear(
        &mut self,
        intent: &Intent,
        heard: &Evidence,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let mut actions = self.expire(now);
        match self.pending.take() {
            // Unsure what was said: asked again, never taken as an answer.
            Some(pending) if heard.asr_confidence < self.min_confidence => {
                actions.extend(self.ask_again(pending, now))
            }
            Some(pending) => actions.extend(self.answer(pending, intent, &heard.transcript, now)),
            None => actions.extend(self.request(intent, heard, now, assess)),
        }
        actions
    }

    /// The question has just been spoken: its window starts now (reading it
    /// back, and transcribing before that, is not the user's silence).
    pub fn question_spoken(&mut self, now: Instant) {
        if let Some(pending) = &mut self.pending {
            pending.deadline = now + self.window;
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

    fn request(
        &mut self,
        intent: &Intent,
        heard: &Evidence,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        let order = |amount: Money, purchase: Purchase| PaymentOrder {
            amount,
            purchase,
            evidence: heard.clone(),
        };
        match intent {
            Intent::Pay { amount, payee } => self.propose_payment(
                order(
                    *amount,
                    Purchase::Pay {
                        payee: payee.clone(),
                    },
                ),
                now,
                assess,
            ),
            Intent::TopUp { tokens, provider } => match assess.price(*tokens, provider) {
                Some(amount) => self.propose_payment(
                    order(
                        amount,
                        Purchase::TopUp {
                            tokens: *tokens,
                            provider: provider.clone(),
                        },
                    ),
                    now,
                    assess,
                ),
                None => vec![Action::Say(Speech::UnknownTokenPrice {
                    provider: provider.clone(),
                })],
            },
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
            Intent::None => Vec::new(),
        }
    }

    fn propose_payment(
        &mut self,
        order: PaymentOrder,
        now: Instant,
        assess: &dyn Assess,
    ) -> Vec<Action> {
        match assess.decide(order.amount) {
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
            Decision::Decline(reason) => vec![
                Action::Say(Speech::CannotPay {
                    purchase: order.purchase.clone(),
                    amount: order.amount,
                    refusal: reason.clone(),
                }),
                Action::Declined { order, reason },
            ],
            Decision::Confirm => self.ask(Proposal::Payment(order), None, now),
            Decision::ConfirmWithCode if self.locked(now) => {
                let reason = Refusal::CodeLockedOut;
                vec![
                    Action::Say(Speech::CannotPay {
                        purchase: order.purchase.clone(),
                        amount: order.amount,
                        refusal: reason.clone(),
                    }),
                    Action::Declined { order, reason },
                ]
            }
            Decision::ConfirmWithCode => {
                let code = (self.new_code)();
                self.ask(Proposal::Payment(order), Some(code), now)
            }
        }
    }

    fn ask(&mut self, proposal: Proposal, code: Option<String>, now: Instant) -> Vec<Action> {
        let question = question(&proposal, code.as_deref());
        self.pending = Some(Pending {
            proposal,
            code,
            deadline: now + self.window,
            asked_again: false,
        });
        vec![Action::Say(question)]
    }

    /// Anything but an answer: the question once more, then give up.
    fn ask_again(&mut self, mut pending: Pending, now: Instant) -> Vec<Action> {
        if pending.asked_again {
            return drop_pending(Some(pending), DropReason::NoClearAnswer);
        }
        pending.asked_again = true;
        pending.deadline = now + self.window;
        let again = question(&pending.proposal, pending.code.as_deref());
        self.pending = Some(pending);
        vec![Action::Say(Speech::Again(Box::new(again)))]
    }

    fn answer(
        &mut self,
        pending: Pending,
        intent: &Intent,
        transcript: &str,
        now: Instant,
    ) -> Vec<Action> {
        if let Some(code) = pending.code.clone() {
            return self.answer_with_code(pending, &code, transcript, now);
        }
        match intent {
            Intent::Confirm => approve(pending.proposal, transcript, false),
            Intent::Cancel => drop_pending(Some(pending), DropReason::Cancelled),
            _ => self.ask_again(pending, now),
        }
    }

    /// Above the code limit "confirm" alone is not enough: the fresh digits
    /// must come with it, so a recording of an earlier "confirm" cannot pay.
    fn answer_with_code(
        &mut self,
        pending: Pending,
        code: &str,
        transcript: &str,
        now: Instant,
    ) -> Vec<Action> {
        let answer = intent::parse_code_answer(transcript, &self.parse_context);
        match answer.intent {
            Intent::Confirm if answer.digits == code => {
                self.wrong_codes = 0;
                approve(pending.proposal, transcript, true)
            }
            Intent::Confirm if !answer.digits.is_empty() => {
                self.wrong_codes += 1;
                if self.wrong_codes >= self.wrong_codes_allowed {
                    self.locked_until = Some(now + self.lockout);
                }
                drop_pending(Some(pending), DropReason::WrongCode)
            }
            Intent::Cancel => drop_pending(Some(pending), DropReason::Cancelled),
            _ => self.ask_again(pending, now),
        }
    }
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
    }
}

fn drop_pending(pending: Option<Pending>, reason: DropReason) -> Vec<Action> {
    match pending.map(|p| p.proposal) {
        None => Vec::new(),
        Some(Proposal::Payment(order)) => vec![
            Action::Say(Speech::PaymentDropped(reason)),
            Action::Dropped { order, reason },
        ],
        Some(Proposal::RaiseLimit { scope, .. }) => {
            vec![Action::Say(Speech::LimitUnchanged { scope, reason })]
        }
    }
}

fn question(proposal: &Proposal, code: Option<&str>) -> Speech {
    match proposal {
        Proposal::Payment(order) => Speech::ReadBack {
            purchase: order.purchase.clone(),
            amount: order.amount,
            code: code.map(str::to_owned),
        },
        Proposal::RaiseLimit { scope, amount } => Speech::RaiseLimit {
            scope: *scope,
            amount: *amount,
        },
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
    use crate::money::Currency;
    use crate::phrasebook::Phrasebook;

    struct Fixed {
        decision: Decision,
        limit: Money,
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
    }

    fn assess(decision: Decision) -> Fixed {
        Fixed {
            decision,
            limit: Money::new(10_000, Currency::CNY),
        }
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
        Dialog::new(
            settings(),
            ParseContext::default(),
            Box::new(|| "472".to_string()),
        )
    }

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
        d.hear(&pay_36(), &ev("pay"), t0, &policy);
        let a = d.hear(&Intent::Cancel, &ev("Cancel."), t0, &policy);
        assert!(
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if *reason == DropReason::Cancelled)
        );

        d.hear(&pay_36(), &ev("pay"), t0, &policy);
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
        d.hear(&pay_36(), &ev("pay"), t0, &policy);
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
        d.hear(&pay_36(), &ev("pay"), t0, &policy);
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
    async fn the_input_ending_drops_a_pending_payment() {
        let mut d = dialog();
        d.hear(
            &pay_36(),
            &ev("pay"),
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
            &ev("pay"),
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
        let a = d.hear(&pay_36(), &ev("pay"), Instant::now(), &assess(decision));
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
        let a = d.hear(&pay_36(), &ev("pay"), t0, &policy);
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
        d.hear(&pay_36(), &ev("pay"), t0, &policy);
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
        d.hear(&pay_36(), &ev("pay"), t0, &policy);
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

    #[tokio::test(start_paused = true)]
    async fn three_wrong_codes_in_a_row_lock_payments_that_need_a_code_for_a_while() {
        let policy = assess(Decision::ConfirmWithCode);
        let mut d = dialog();
        let t0 = Instant::now();
        for _ in 0..3 {
            d.hear(&pay_36(), &ev("pay"), t0, &policy);
            let a = d.hear(&Intent::None, &ev("Confirm 1 2 3"), t0, &policy);
            assert!(paid(&a).is_none());
        }
        // Even the right code is not asked for now.
        let a = d.hear(&pay_36(), &ev("pay"), t0, &policy);
        assert!(matches!(
            a.last(),
            Some(Action::Declined {
                reason: Refusal::CodeLockedOut,
                ..
            })
        ));
        assert!(!d.is_waiting());
        // A payment without a code is not locked.
        let a = d.hear(&pay_36(), &ev("pay"), t0, &assess(Decision::Confirm));
        assert!(d.is_waiting(), "{a:?}");
        d.end_of_input();
        // After the lockout the code is asked again, and the right one pays.
        let later = t0 + Duration::from_secs(301);
        d.hear(&pay_36(), &ev("pay"), later, &policy);
        let a = d.hear(&Intent::None, &ev("Confirm, 4 7 2."), later, &policy);
        assert!(paid(&a).is_some(), "{a:?}");
    }
}
