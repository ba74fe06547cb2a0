//! English: every sentence the device says, and how it reads amounts aloud.
//!
//! The currency names here are the ones the English intent tables understand,
//! so a read-back can always be heard back as the same amount.

use super::Speech;
use crate::intent::{LimitScope, Period};
use crate::order::{DropReason, Purchase};
use crate::reason::{AgentRefusal, Reason};
use crate::store::{HistoryEntry, HistoryEvent};
use voicepay_core::money::{Currency, Money};
use voicepay_core::policy::{OutsideMandate, Refusal, TopUpRefusal};
use voicepay_core::protocol::SubscriptionPeriod;

pub(super) fn say(speech: &Speech) -> String {
    match speech {
        Speech::ReadBack {
            purchase,
            amount,
            code,
            doubt,
        } => {
            let verb = match purchase {
                Purchase::Pay { .. } => "Pay",
                Purchase::TopUp { .. } => "Top up",
            };
            let answer = match code {
                None => "Say confirm or cancel.".to_owned(),
                Some(code) => format!("Say confirm and the code {}, or cancel.", spelled(code)),
            };
            format!(
                "{verb} {}?{} {answer}",
                read_back(purchase, *amount, doubt.amount),
                unsure(purchase, *doubt)
            )
        }
        Speech::AskAmount { payee } => format!("How much to {payee}?"),
        Speech::AskPayee { amount } => format!("Who should I pay {} to?", money(*amount)),
        Speech::MissingPartNotHeard => "Sorry, I did not catch that; nothing was paid.".to_owned(),
        Speech::NotUnderstood => "Sorry, I didn't catch that.".to_owned(),
        Speech::RaiseLimit { scope, amount } => format!(
            "Raise your {} to {}? Say confirm or cancel.",
            scope_name(*scope),
            money(*amount)
        ),
        Speech::Again(question) => format!("Sorry? {}", say(question)),
        Speech::PayingWithinAutoLimit { purchase, amount } => format!(
            "Paying {}: it is within your auto-pay limit.",
            describe(purchase, *amount)
        ),
        Speech::CannotPay {
            purchase,
            amount,
            refusal: reason,
        } => format!(
            "I can't pay {}. {}",
            describe(purchase, *amount),
            refusal(reason)
        ),
        Speech::PaymentDropped(DropReason::Cancelled) => "Payment cancelled.".to_owned(),
        Speech::PaymentDropped(reason) => format!("Payment cancelled: {}.", drop_reason(*reason)),
        Speech::LimitIsNow { scope, amount } => {
            format!("Your {} is now {}.", scope_name(*scope), money(*amount))
        }
        Speech::LimitUnchanged { scope, reason } => format!(
            "Your {} stays as it was: {}.",
            scope_name(*scope),
            drop_reason(*reason)
        ),
        Speech::NothingToConfirm => "There is nothing to confirm.".to_owned(),
        Speech::Listening => "Yes?".to_owned(),
        Speech::NotHeard => "Sorry, I could not hear that. Please say it again.".to_owned(),
        Speech::NoTaskWaiting => "No agent task is waiting.".to_owned(),
        Speech::WhoToPay {
            heard,
            candidates: None,
        } => format!("I don't know {heard}. Who should I pay? Say the name, or cancel."),
        Speech::WhoToPay {
            candidates: Some((a, b)),
            ..
        } => format!("Did you mean {a} or {b}? Say the name, or cancel."),
        Speech::UnknownTokenPrice { provider } => {
            format!("I don't know the price of {provider} tokens, so I can't top up.")
        }
        Speech::PaidOffline { purchase, amount } => format!(
            "Paid {} offline; it goes to the bank when the connection is back.",
            describe(purchase, *amount)
        ),
        Speech::NotRecorded { error } => {
            format!("I couldn't record the payment, so nothing was paid ({error}).")
        }
        Speech::HeldUnsaved {
            purchase,
            amount,
            error,
        } => format!(
            "I couldn't save {} to storage ({error}), so I haven't sent it. \
             It goes out once storage works again: check your history before you pay it again.",
            describe(purchase, *amount)
        ),
        Speech::AnswerNotRecorded {
            approved,
            amount,
            payee,
            error,
        } => format!(
            "The bank {} {} to {payee}, but I couldn't record it ({error}); \
             it is settled again when storage works.",
            if *approved { "approved" } else { "declined" },
            money(*amount)
        ),
        Speech::StorageFailing { error } => format!(
            "Storage is failing ({error}), so I can't take a new payment: nothing was paid."
        ),
        Speech::NoAnswerYet => {
            "No answer from the bank yet; the payment waits in the outbox.".to_owned()
        }
        Speech::Paid { amount, payee } => format!("Paid {} to {payee}.", money(*amount)),
        Speech::DeclinedByBank {
            amount,
            payee,
            reason,
        } => format!("The bank declined {} to {payee}: {reason}.", money(*amount)),
        Speech::Spent {
            period,
            totals,
            by_agents,
        } => {
            let words = match period {
                Period::Today => "today",
                Period::Week => "in the last 7 days",
                Period::Month => "in the last 30 days",
            };
            let spoken = |amounts: &[Money]| -> String {
                let each: Vec<String> = amounts.iter().map(|m| money(*m)).collect();
                each.join(" and ")
            };
            match (totals.is_empty(), by_agents.is_empty()) {
                (true, _) => format!("You have spent nothing {words}."),
                (false, true) => format!("You spent {} {words}.", spoken(totals)),
                (false, false) => format!(
                    "You spent {} {words}, {} of it through agents.",
                    spoken(totals),
                    spoken(by_agents)
                ),
            }
        }
        Speech::HistoryUnreadable { error } => {
            format!("I can't read the history right now ({error}).")
        }
        Speech::AgentAsks {
            agent,
            purchase,
            amount,
            description,
            period,
            code,
        } => {
            let every = match period {
                None => "",
                Some(SubscriptionPeriod::Week) => " every week",
                Some(SubscriptionPeriod::Month) => " every month",
                Some(SubscriptionPeriod::Year) => " every year",
            };
            let answer = match code {
                None => "Say approve or reject.".to_owned(),
                Some(code) => format!("Say confirm and the code {}, or cancel.", spelled(code)),
            };
            let verb = match purchase {
                Purchase::Pay { .. } => "pay",
                Purchase::TopUp { .. } => "buy",
            };
            // A long description would outlast the answer window (one took
            // 8 s of an 8 s window): the history and the agent keep it.
            let about = if description.split_whitespace().count() <= MAX_DESCRIPTION_WORDS {
                format!(": {description}")
            } else {
                String::new()
            };
            format!(
                "{agent} asks to {verb} {}{every}{about}. {answer}",
                describe(purchase, *amount)
            )
        }
        Speech::AgentPaidUnasked {
            agent,
            purchase,
            amount,
        } => format!(
            "Paying {} for {agent}: it is within what you let {agent} pay alone.",
            describe(purchase, *amount)
        ),
        Speech::AgentTaskDropped {
            agent,
            reason: DropReason::Rejected,
        } => format!("Rejected. {agent}'s task is not paid."),
        Speech::AgentTaskDropped { agent, reason } => {
            format!("{agent}'s task is not paid: {}.", drop_reason(*reason))
        }
        Speech::AgentsStopped { names } if names.is_empty() => {
            "There is no agent to stop.".to_owned()
        }
        Speech::AgentsNotStopped { error } => {
            format!("I couldn't stop the agents ({error}). Please try again.")
        }
        Speech::AgentsStopped { names } => format!(
            "Stopped {}: nothing waiting from {} will be paid, and {} can pay nothing more until you add {} again.",
            names.join(" and "),
            if names.len() == 1 { "it" } else { "them" },
            if names.len() == 1 { "it" } else { "they" },
            if names.len() == 1 { "it" } else { "them" },
        ),
    }
}

/// "36 yuan to Heytea", "200000 Kimi tokens for 2 yuan 40".
fn describe(purchase: &Purchase, amount: Money) -> String {
    match purchase {
        Purchase::Pay { payee } => format!("{} to {payee}", money(amount)),
        Purchase::TopUp { tokens, provider } => {
            format!("{tokens} {provider} tokens for {}", money(amount))
        }
    }
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Auto => "auto-pay limit",
        LimitScope::Daily => "daily limit",
    }
}

pub(super) fn drop_reason(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Cancelled => "cancelled",
        DropReason::NoAnswerInTime => "no answer in time",
        DropReason::WrongCode => "the code was wrong",
        DropReason::NoClearAnswer => "no clear answer",
        DropReason::InputEnded => "the conversation ended before an answer",
        DropReason::Rejected => "the user rejected the agent's task",
        DropReason::Revoked => "the user stopped the agent",
    }
}

/// Why a payment was not made, in the phrasebook's words (as Mandarin
/// has its own); an old entry's reason is its own words.
pub(super) fn reason(reason: &Reason) -> String {
    match reason {
        Reason::Policy(refused) => refusal(refused),
        Reason::Agent(AgentRefusal::Unknown(name)) => format!("no agent named {name:?}"),
        Reason::Agent(AgentRefusal::Outside(outside)) | Reason::Mandate(outside) => {
            mandate(outside)
        }
        Reason::TopUp(TopUpRefusal::UnknownProvider { provider }) => {
            format!("{provider} is not a token provider this device knows")
        }
        Reason::TopUp(TopUpRefusal::NotTheListedPrice {
            tokens,
            provider,
            price,
            asked,
        }) => {
            format!("{tokens} {provider} tokens cost {price} at this device's prices, not {asked}")
        }
        Reason::Unreadable(error) => error.clone(),
        Reason::Dropped(dropped) => drop_reason(*dropped).to_owned(),
        Reason::Words(words) => words.clone(),
    }
}

fn mandate(outside: &OutsideMandate) -> String {
    match outside {
        OutsideMandate::Revoked => "the user stopped this agent".to_owned(),
        OutsideMandate::Expired => "the agent's mandate has expired".to_owned(),
        OutsideMandate::Currency(currency) => format!("the agent's budget is in {currency}"),
        OutsideMandate::Payee => "the payee is not one the agent may pay".to_owned(),
        OutsideMandate::PerTask(limit) => format!("over the agent's limit of {limit} a task"),
        OutsideMandate::Daily { left } => {
            format!("over the agent's daily budget ({left} left today)")
        }
        OutsideMandate::Total { left } => format!("over the agent's total budget ({left} left)"),
    }
}

/// `voicepay history`'s line: "   3 paid      36.00 CNY to Heytea", and
/// the agent and task it was for.
pub(super) fn history_line(entry: &HistoryEntry) -> String {
    let event = match &entry.event {
        HistoryEvent::Paid {
            amount,
            payee,
            offline,
            ..
        } => format!(
            "paid      {amount} to {payee}{}",
            if *offline { " (offline)" } else { "" }
        ),
        // The gateway's own words: they are part of its signed answer.
        HistoryEvent::Declined {
            amount,
            payee,
            reason: said,
            ..
        } => format!("declined  {amount} to {payee}: {said}"),
        HistoryEvent::Refused {
            amount,
            payee,
            reason: why,
            ..
        } => format!("refused   {amount} to {payee}: {}", reason(why)),
        HistoryEvent::Cancelled {
            amount,
            payee,
            reason: why,
            ..
        } => format!("cancelled {amount} to {payee}: {}", reason(why)),
    };
    match entry.event.agent() {
        Some(a) => format!(
            "{:>4} {event}  [agent {}, task {}]",
            entry.index, a.agent_id, a.task_id
        ),
        None => format!("{:>4} {event}", entry.index),
    }
}

pub(super) fn refusal(refusal: &Refusal) -> String {
    match refusal {
        Refusal::NotPositive => "The amount must be more than zero.".to_owned(),
        Refusal::TooLarge => "That amount is too large.".to_owned(),
        Refusal::OverDailyLimit { limit, left } => format!(
            "That is over your daily limit of {}; you have {} left today.",
            money(*limit),
            money(*left)
        ),
        Refusal::DailyLimitInOtherCurrency { limit, payment } => {
            format!("Your daily limit is in {limit}, so I can't pay in {payment}.")
        }
        Refusal::OfflineCurrency(currency) => format!("Offline, I can only pay in {currency}."),
        Refusal::OfflinePerPayment(max) => {
            format!("Offline, I can only pay up to {} at a time.", money(*max))
        }
        Refusal::OfflineCumulative(max) => format!(
            "Offline, I can only pay {} in total until the connection is back.",
            money(*max)
        ),
        Refusal::OfflineConsecutive(max) => {
            format!("Offline, I can only make {max} payments until the connection is back.")
        }
        Refusal::OfflineTooLong => {
            "I have been offline too long to pay; please reconnect first.".to_owned()
        }
        Refusal::RecordsUnreadable => "I can't read my records right now.".to_owned(),
        Refusal::WhileDriving { allowed } => match allowed.split_last() {
            None => "While you drive, I can't pay anything.".to_owned(),
            Some((last, [])) => format!("While you drive, I can only pay for {last}."),
            Some((last, rest)) => format!(
                "While you drive, I can only pay for {} and {last}.",
                rest.join(", ")
            ),
        },
        Refusal::CodeLockedOut => {
            "After three wrong codes, payments that need a code are locked for a few minutes."
                .to_owned()
        }
    }
}

/// The names of a currency's major and minor units, singular and plural.
struct Names {
    major: [&'static str; 2],
    minor: [&'static str; 2],
}

fn names(currency: Currency) -> Option<Names> {
    let n = |major, minor| Some(Names { major, minor });
    match currency.code() {
        "CNY" => n(["yuan", "yuan"], ["fen", "fen"]),
        "USD" => n(["dollar", "dollars"], ["cent", "cents"]),
        "EUR" => n(["euro", "euros"], ["cent", "cents"]),
        "GBP" => n(["pound", "pounds"], ["penny", "pence"]),
        "JPY" => n(["yen", "yen"], ["", ""]),
        "HKD" => n(["Hong Kong dollar", "Hong Kong dollars"], ["cent", "cents"]),
        "TWD" => n(
            ["New Taiwan dollar", "New Taiwan dollars"],
            ["cent", "cents"],
        ),
        "KRW" => n(["won", "won"], ["", ""]),
        "SGD" => n(["Singapore dollar", "Singapore dollars"], ["cent", "cents"]),
        "AUD" => n(
            ["Australian dollar", "Australian dollars"],
            ["cent", "cents"],
        ),
        "CAD" => n(["Canadian dollar", "Canadian dollars"], ["cent", "cents"]),
        "CHF" => n(["Swiss franc", "Swiss francs"], ["rappen", "rappen"]),
        "INR" => n(["rupee", "rupees"], ["paisa", "paise"]),
        _ => None,
    }
}

/// "36 yuan", "4 dollars 75", "1 dollar 1 cent", "75 cents": the way the
/// English parser reads amounts, so a read-back parses to the same money.
/// The digits one by one: "4 7 2".
fn spelled(code: &str) -> String {
    let digits: Vec<String> = code.chars().map(String::from).collect();
    digits.join(" ")
}

/// An agent's description longer than this is not read out.
const MAX_DESCRIPTION_WORDS: usize = 6;

/// The purchase as a read-back says it: "36 yuan to Heytea", or with the
/// amount (a top-up's token count) spelled when it may have been misheard,
/// "three six yuan to Heytea": fifteen and fifty are told apart by the
/// user, not by the model.
fn read_back(purchase: &Purchase, amount: Money, spell: bool) -> String {
    if !spell {
        return describe(purchase, amount);
    }
    match purchase {
        Purchase::Pay { payee } => format!("{} to {payee}", spelled_money(amount)),
        Purchase::TopUp { tokens, provider } => format!(
            "{} {provider} tokens for {}",
            digit_words(&tokens.to_string()),
            money(amount)
        ),
    }
}

/// " Unsure of the amount.", " Unsure of the payee.", " Unsure of the payee
/// and amount.", or nothing: the part the user should listen to.
fn unsure(purchase: &Purchase, doubt: crate::intent::Doubt) -> String {
    let (name, count) = match purchase {
        Purchase::Pay { .. } => ("payee", "amount"),
        Purchase::TopUp { .. } => ("provider", "token count"),
    };
    match (doubt.payee, doubt.amount) {
        (false, false) => String::new(),
        (true, false) => format!(" Unsure of the {name}."),
        (false, true) => format!(" Unsure of the {count}."),
        (true, true) => format!(" Unsure of the {name} and {count}."),
    }
}

/// "three six yuan", "four point seven five dollars": the figures one by one,
/// then the currency.
fn spelled_money(amount: Money) -> String {
    let figures = amount.to_decimal_string();
    let figures = figures.strip_suffix(".00").unwrap_or(&figures);
    let unit = names(amount.currency).map_or(amount.currency.code(), |n| {
        n.major[usize::from(figures != "1")]
    });
    format!("{} {unit}", digit_words(figures))
}

/// "1500" as "one five zero zero", "4.75" as "four point seven five", "-3" as "minus three".
fn digit_words(figures: &str) -> String {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let words: Vec<&str> = figures
        .chars()
        .filter_map(|c| match c {
            '.' => Some("point"),
            '-' => Some("minus"),
            d => d.to_digit(10).map(|d| DIGITS[d as usize]),
        })
        .collect();
    words.join(" ")
}

pub(super) fn money(amount: Money) -> String {
    let Some(names) = names(amount.currency) else {
        return amount.to_string();
    };
    let sign = if amount.minor < 0 { "minus " } else { "" };
    let abs = amount.minor.unsigned_abs();
    let per = 10_u64.pow(amount.currency.minor_digits());
    let (major, minor) = (abs / per, abs % per);
    let major_name = names.major[usize::from(major != 1)];
    let minor_name = names.minor[usize::from(minor != 1)];
    match (major, minor) {
        (_, 0) => format!("{sign}{major} {major_name}"),
        (0, _) => format!("{sign}{minor} {minor_name}"),
        (_, 1..=9) => format!("{sign}{major} {major_name} {minor} {minor_name}"),
        _ => format!("{sign}{major} {major_name} {minor}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worded here now, as core's error text words them: every history
    /// line written before reads the same.
    #[test]
    fn agent_mandate_and_top_up_reasons_read_as_they_did() {
        let cny = |minor| Money::new(minor, Currency::CNY);
        let mandates = [
            OutsideMandate::Revoked,
            OutsideMandate::Expired,
            OutsideMandate::Currency(Currency::USD),
            OutsideMandate::Payee,
            OutsideMandate::PerTask(cny(5_000)),
            OutsideMandate::Daily { left: cny(300) },
            OutsideMandate::Total { left: cny(0) },
        ];
        for outside in mandates {
            assert_eq!(
                reason(&Reason::Mandate(outside.clone())),
                outside.to_string()
            );
            let agent = AgentRefusal::Outside(outside);
            assert_eq!(reason(&Reason::Agent(agent.clone())), agent.to_string());
        }
        let unknown = AgentRefusal::Unknown("claude".into());
        assert_eq!(reason(&Reason::Agent(unknown.clone())), unknown.to_string());
        let top_ups = [
            TopUpRefusal::UnknownProvider {
                provider: "Acme".into(),
            },
            TopUpRefusal::NotTheListedPrice {
                tokens: 1_000_000,
                provider: "Claude".into(),
                price: cny(9_000),
                asked: cny(10_000),
            },
        ];
        for refused in top_ups {
            assert_eq!(reason(&Reason::TopUp(refused.clone())), refused.to_string());
        }
    }
    use crate::intent::Doubt;

    fn read(minor: i64, currency: Currency, doubt: Doubt) -> String {
        say(&Speech::ReadBack {
            purchase: Purchase::Pay {
                payee: "Heytea".into(),
            },
            amount: Money::new(minor, currency),
            code: None,
            doubt,
        })
    }

    #[test]
    fn an_amount_in_doubt_is_spelled_digit_by_digit_and_only_then() {
        let amount = Doubt {
            amount: true,
            payee: false,
        };
        assert_eq!(
            read(1500, Currency::CNY, amount),
            "Pay one five yuan to Heytea? Unsure of the amount. Say confirm or cancel."
        );
        assert_eq!(
            read(475, Currency::USD, amount),
            "Pay four point seven five dollars to Heytea? Unsure of the amount. Say confirm or cancel."
        );
        assert_eq!(
            read(100, Currency::USD, amount),
            "Pay one dollar to Heytea? Unsure of the amount. Say confirm or cancel."
        );
        let payee = Doubt {
            amount: false,
            payee: true,
        };
        assert_eq!(
            read(3650, Currency::CNY, payee),
            "Pay 36 yuan 50 to Heytea? Unsure of the payee. Say confirm or cancel."
        );
        assert_eq!(
            read(3650, Currency::CNY, Doubt::NONE),
            "Pay 36 yuan 50 to Heytea? Say confirm or cancel."
        );
        assert_eq!(
            read(3600, Currency::CNY, Doubt::BOTH),
            "Pay three six yuan to Heytea? Unsure of the payee and amount. Say confirm or cancel."
        );
    }

    /// What espeak-ng says for a read-back, in words: "36" is two ("thirty
    /// six"), "1000000" two ("one million").
    fn spoken_words(text: &str) -> usize {
        fn number(n: u64) -> usize {
            match n {
                0 => 0,
                1..=19 => 1,
                20..=99 => 1 + usize::from(!n.is_multiple_of(10)),
                100..=999 => number(n / 100) + 1 + number(n % 100),
                1_000..=999_999 => number(n / 1_000) + 1 + number(n % 1_000),
                _ => number(n / 1_000_000) + 1 + number(n % 1_000_000),
            }
        }
        text.split_whitespace()
            .map(|word| {
                let digits: String = word.chars().filter(char::is_ascii_digit).collect();
                match digits.parse::<u64>() {
                    Ok(0) => 1,
                    Ok(n) => number(n),
                    Err(_) => 1,
                }
            })
            .sum()
    }

    /// Seconds at the default voice's pace (espeak-ng -s 165: words a minute).
    fn seconds_to_say(text: &str) -> f64 {
        spoken_words(text) as f64 * 60.0 / 165.0
    }

    #[test]
    fn every_question_is_said_well_within_the_answer_window() {
        let heytea = Purchase::Pay {
            payee: "Heytea".into(),
        };
        let doubts = [
            Doubt::NONE,
            Doubt::BOTH,
            Doubt {
                amount: true,
                payee: false,
            },
            Doubt {
                amount: false,
                payee: true,
            },
        ];
        for doubt in doubts {
            for code in [None, Some("472".to_owned())] {
                let text = say(&Speech::ReadBack {
                    purchase: heytea.clone(),
                    amount: Money::new(3_600, Currency::CNY),
                    code: code.clone(),
                    doubt,
                });
                // The default window is 8 s; a question should leave time to answer.
                let limit = if code.is_some() { 8.0 } else { 6.5 };
                assert!(seconds_to_say(&text) <= limit, "{text}");
            }
        }
        // The demo's task took 8 s to say against an 8 s window.
        let task = |description: &str| {
            say(&Speech::AgentAsks {
                agent: "claude code".into(),
                purchase: Purchase::TopUp {
                    tokens: 1_000_000,
                    provider: "Claude".into(),
                },
                amount: Money::new(3_000, Currency::CNY),
                description: description.into(),
                period: None,
                code: None,
            })
        };
        let long = task("one million tokens for the coding session");
        assert_eq!(
            long,
            "claude code asks to buy 1000000 Claude tokens for 30 yuan. Say approve or reject."
        );
        assert!(seconds_to_say(&long) <= 6.0, "{long}");
        let short = task("one million tokens");
        assert!(short.contains(": one million tokens."), "{short}");
        assert!(seconds_to_say(&short) <= 7.0, "{short}");
        for question in [
            say(&Speech::AskAmount {
                payee: "Luckin Coffee".into(),
            }),
            say(&Speech::AskPayee {
                amount: Money::new(3_650, Currency::CNY),
            }),
        ] {
            assert!(seconds_to_say(&question) <= 4.0, "{question}");
        }
    }

    #[test]
    fn spoken_read_backs() {
        let cases = [
            (3600, Currency::CNY, "36 yuan"),
            (475, Currency::USD, "4 dollars 75"),
            (1250, Currency::EUR, "12 euros 50"),
            (100, Currency::USD, "1 dollar"),
            (101, Currency::USD, "1 dollar 1 cent"),
            (405, Currency::USD, "4 dollars 5 cents"),
            (75, Currency::USD, "75 cents"),
            (1, Currency::GBP, "1 penny"),
            (250, Currency::GBP, "2 pounds 50"),
            (1500, Currency::JPY, "1500 yen"),
            (0, Currency::CNY, "0 yuan"),
            (-3600, Currency::CNY, "minus 36 yuan"),
            (1999, Currency::HKD, "19 Hong Kong dollars 99"),
        ];
        for (minor, currency, text) in cases {
            assert_eq!(money(Money::new(minor, currency)), text);
        }
    }

    #[test]
    fn every_currency_has_english_names() {
        for currency in Currency::all() {
            assert!(names(currency).is_some(), "{currency}");
        }
    }

    #[test]
    fn refusals_are_spoken_with_their_amounts() {
        let cny = |minor| Money::new(minor, Currency::CNY);
        assert_eq!(
            refusal(&Refusal::OverDailyLimit {
                limit: cny(50_000),
                left: cny(10_000)
            }),
            "That is over your daily limit of 500 yuan; you have 100 yuan left today."
        );
        assert_eq!(
            refusal(&Refusal::OfflinePerPayment(cny(5_000))),
            "Offline, I can only pay up to 50 yuan at a time."
        );
        let allowed = ["tolls", "parking", "fuel", "charging"].map(String::from);
        assert_eq!(
            refusal(&Refusal::WhileDriving {
                allowed: allowed.to_vec()
            }),
            "While you drive, I can only pay for tolls, parking, fuel and charging."
        );
        assert_eq!(
            refusal(&Refusal::WhileDriving {
                allowed: allowed[..1].to_vec()
            }),
            "While you drive, I can only pay for tolls."
        );
        assert_eq!(
            say(&Speech::Spent {
                period: Period::Week,
                totals: vec![cny(3_600), Money::new(475, Currency::USD)],
                by_agents: Vec::new(),
            }),
            "You spent 36 yuan and 4 dollars 75 in the last 7 days."
        );
        assert_eq!(
            say(&Speech::Spent {
                period: Period::Today,
                totals: vec![cny(3_400)],
                by_agents: vec![cny(3_000)],
            }),
            "You spent 34 yuan today, 30 yuan of it through agents."
        );
    }
}
