//! The conversation: reads a payment back, waits for "confirm", "cancel" or a spoken code, and gives up after a window.
//!
//! The dialog decides nothing about money by itself: the policy's verdict comes
//! in through [`Assess`], and what must happen goes out as [`Action`]s that the
//! daemon carries out (speak, pay, change a limit, record). Time is passed in,
//! so tests drive it with tokio's paused clock.

use tokio::time::{Duration, Instant};

use crate::intent::{self, Intent, LimitScope, ParseContext, Period};
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

impl PaymentOrder {
    /// "36 yuan to Heytea", "200000 Kimi tokens for 2 yuan 40".
    pub fn describe(&self) -> String {
        match &self.purchase {
            Purchase::Pay { payee } => format!("{} to {payee}", self.amount.spoken()),
            Purchase::TopUp { tokens, provider } => {
                format!("{tokens} {provider} tokens for {}", self.amount.spoken())
            }
        }
    }
}

/// The policy's verdict on one payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// At or under the auto-pay limit: pay and tell.
    Auto,
    /// Read back and wait for "confirm".
    Confirm,
    /// Read back with a fresh code the user must repeat.
    ConfirmWithCode,
    Decline {
        reason: String,
    },
}

/// How the user approved a payment (DESIGN.md's `approval.method`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    AutoLimit,
    VoiceConfirm { transcript: String },
    PaymentCode { transcript: String },
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Say(String),
    Pay {
        order: PaymentOrder,
        approval: Approval,
    },
    /// The policy declined before anything was sent.
    Declined {
        order: PaymentOrder,
        reason: String,
    },
    /// The user cancelled, did not answer, or gave a wrong code.
    Dropped {
        order: PaymentOrder,
        reason: String,
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

pub struct Dialog {
    window: Duration,
    parse_context: ParseContext,
    new_code: Box<dyn FnMut() -> String + Send>,
    pending: Option<Pending>,
}

impl Dialog {
    /// `window`: how long to wait for an answer; `new_code`: a fresh random
    /// three-digit challenge each call.
    pub fn new(
        window: Duration,
        parse_context: ParseContext,
        new_code: Box<dyn FnMut() -> String + Send>,
    ) -> Self {
        Self {
            window,
            parse_context,
            new_code,
            pending: None,
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
                drop_pending(pending, "no answer in time")
            }
            _ => Vec::new(),
        }
    }

    /// The input ended (the last file of `--input`, or shutdown) with a
    /// question open: nothing is paid.
    pub fn end_of_input(&mut self) -> Vec<Action> {
        let pending = self.pending.take();
        drop_pending(pending, "the conversation ended before an answer")
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
                None => vec![Action::Say(format!(
                    "I don't know the price of {provider} tokens, so I can't top up."
                ))],
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
                        Action::Say(format!(
                            "Your {} is now {}.",
                            scope_name(*scope),
                            amount.spoken()
                        )),
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
            Intent::Confirm | Intent::Cancel => {
                vec![Action::Say("There is nothing to confirm.".into())]
            }
            Intent::ApproveTask | Intent::RejectTask => {
                vec![Action::Say("No agent task is waiting.".into())]
            }
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
                Action::Say(format!(
                    "Paying {}: it is within your auto-pay limit.",
                    order.describe()
                )),
                Action::Pay {
                    order,
                    approval: Approval::AutoLimit,
                },
            ],
            Decision::Decline { reason } => vec![
                Action::Say(format!("I can't pay {}. {reason}", order.describe())),
                Action::Declined { order, reason },
            ],
            Decision::Confirm => self.ask(Proposal::Payment(order), None, now),
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
            return drop_pending(Some(pending), "no clear answer");
        }
        pending.asked_again = true;
        pending.deadline = now + self.window;
        let again = format!(
            "Sorry? {}",
            question(&pending.proposal, pending.code.as_deref())
        );
        self.pending = Some(pending);
        vec![Action::Say(again)]
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
            Intent::Cancel => drop_pending(Some(pending), "cancelled"),
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
        let (digits, words) = split_spoken_digits(transcript);
        match intent::parse(&words, &self.parse_context) {
            Intent::Confirm if digits == code => approve(pending.proposal, transcript, true),
            Intent::Confirm if !digits.is_empty() => {
                drop_pending(Some(pending), "the code was wrong")
            }
            Intent::Cancel => drop_pending(Some(pending), "cancelled"),
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
            Action::Say(format!(
                "Your {} is now {}.",
                scope_name(scope),
                amount.spoken()
            )),
        ],
    }
}

fn drop_pending(pending: Option<Pending>, reason: &str) -> Vec<Action> {
    match pending.map(|p| p.proposal) {
        None => Vec::new(),
        Some(Proposal::Payment(order)) => vec![
            Action::Say(if reason == "cancelled" {
                "Payment cancelled.".to_owned()
            } else {
                format!("Payment cancelled: {reason}.")
            }),
            Action::Dropped {
                order,
                reason: reason.to_owned(),
            },
        ],
        Some(Proposal::RaiseLimit { scope, .. }) => vec![Action::Say(format!(
            "Your {} stays as it was: {reason}.",
            scope_name(scope)
        ))],
    }
}

fn question(proposal: &Proposal, code: Option<&str>) -> String {
    match (proposal, code) {
        (Proposal::Payment(order), None) => {
            let verb = match order.purchase {
                Purchase::Pay { .. } => "Pay",
                Purchase::TopUp { .. } => "Top up",
            };
            format!("{verb} {}? Say confirm or cancel.", order.describe())
        }
        (Proposal::Payment(order), Some(code)) => {
            let spelled: Vec<String> = code.chars().map(String::from).collect();
            format!(
                "Pay {}? Say confirm and the code {}, or cancel.",
                order.describe(),
                spelled.join(" ")
            )
        }
        (Proposal::RaiseLimit { scope, amount }, _) => format!(
            "Raise your {} to {}? Say confirm or cancel.",
            scope_name(*scope),
            amount.spoken()
        ),
    }
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Auto => "auto-pay limit",
        LimitScope::Daily => "daily limit",
    }
}

/// Splits "Confirm, 4 7 2." into ("472", "Confirm,"): digits as figures
/// ("472", "4-7-2") or words ("four seven two", "oh"), and the other words.
fn split_spoken_digits(transcript: &str) -> (String, String) {
    const DIGIT_WORDS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let mut digits = String::new();
    let mut words = Vec::new();
    for word in transcript.split_whitespace() {
        let bare: String = word
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit()) {
            digits.push_str(&bare);
        } else if let Some(d) = DIGIT_WORDS.iter().position(|w| *w == bare) {
            digits.push_str(&d.to_string());
        } else if bare == "oh" && !digits.is_empty() {
            digits.push('0');
        } else {
            words.push(word);
        }
    }
    (digits, words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

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

    fn dialog() -> Dialog {
        Dialog::new(
            Duration::from_secs(8),
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

    fn says(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Say(s) => Some(s.as_str()),
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
        assert!(matches!(a.last(), Some(Action::Dropped { reason, .. }) if reason == "cancelled"));

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
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if reason == "no answer in time")
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
        let decision = Decision::Decline {
            reason: "That is over your daily limit.".into(),
        };
        let a = d.hear(&pay_36(), &ev("pay"), Instant::now(), &assess(decision));
        assert_eq!(
            says(&a),
            ["I can't pay 36 yuan to Heytea. That is over your daily limit."]
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
            matches!(a.last(), Some(Action::Dropped { reason, .. }) if reason == "the code was wrong")
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
    fn spoken_digits_are_split_from_the_words() {
        assert_eq!(
            split_spoken_digits("Confirm, 4 7 2."),
            ("472".into(), "Confirm,".into())
        );
        assert_eq!(
            split_spoken_digits("confirm four oh two"),
            ("402".into(), "confirm".into())
        );
        assert_eq!(
            split_spoken_digits("Confirm 4-7-2"),
            ("472".into(), "Confirm".into())
        );
        assert_eq!(split_spoken_digits("cancel"), ("".into(), "cancel".into()));
    }
}
