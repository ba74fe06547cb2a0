//! English: every sentence the device says, and how it reads amounts aloud.
//!
//! The currency names here are the ones the English intent tables understand,
//! so a read-back can always be heard back as the same amount.

use super::Speech;
use crate::intent::{LimitScope, Period};
use crate::money::{Currency, Money};
use crate::order::{DropReason, Purchase};
use crate::policy::Refusal;
use crate::protocol::SubscriptionPeriod;

pub(super) fn say(speech: &Speech) -> String {
    match speech {
        Speech::ReadBack {
            purchase,
            amount,
            code: None,
            spell_amount,
        } => {
            let verb = match purchase {
                Purchase::Pay { .. } => "Pay",
                Purchase::TopUp { .. } => "Top up",
            };
            format!(
                "{verb} {}?{} Say confirm or cancel.",
                describe(purchase, *amount),
                spelled_amount(*amount, *spell_amount)
            )
        }
        Speech::ReadBack {
            purchase,
            amount,
            code: Some(code),
            spell_amount,
        } => {
            let spelled: Vec<String> = code.chars().map(String::from).collect();
            format!(
                "Pay {}?{} Say confirm and the code {}, or cancel.",
                describe(purchase, *amount),
                spelled_amount(*amount, *spell_amount),
                spelled.join(" ")
            )
        }
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
                Some(code) => {
                    let spelled: Vec<String> = code.chars().map(String::from).collect();
                    format!("Say confirm and the code {}, or cancel.", spelled.join(" "))
                }
            };
            let verb = match purchase {
                Purchase::Pay { .. } => "pay",
                Purchase::TopUp { .. } => "buy",
            };
            format!(
                "{agent} asks to {verb} {}{every}: {description}. {answer}",
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
/// " That is one five." for 15, " That is four point seven five." for 4.75.
fn spelled_amount(amount: Money, spell: bool) -> String {
    if !spell {
        return String::new();
    }
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let figures = amount.to_decimal_string();
    let figures = figures
        .strip_suffix(".00")
        .unwrap_or(&figures)
        .trim_start_matches('-');
    let words: Vec<&str> = figures
        .chars()
        .filter_map(|c| match c {
            '.' => Some("point"),
            d => d.to_digit(10).map(|d| DIGITS[d as usize]),
        })
        .collect();
    format!(" That is {}.", words.join(" "))
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

    #[test]
    fn an_unsure_amount_is_spelled_digit_by_digit() {
        let spell = |minor, currency| spelled_amount(Money::new(minor, currency), true);
        assert_eq!(spell(1500, Currency::CNY), " That is one five.");
        assert_eq!(spell(5000, Currency::CNY), " That is five zero.");
        assert_eq!(spell(475, Currency::USD), " That is four point seven five.");
        assert_eq!(spelled_amount(Money::new(1500, Currency::CNY), false), "");
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
