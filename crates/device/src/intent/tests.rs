//! Tests for the whole parser: a phrase table, the JSON contract, and properties over generated amounts.

use super::*;
use crate::phrasebook::Phrasebook;
use proptest::prelude::*;

fn ctx() -> ParseContext {
    ParseContext {
        known_payees: [
            "Peet's Coffee",
            "Heytea",
            "Toys for Tots",
            "Starbucks",
            "7-Eleven",
        ]
        .map(String::from)
        .to_vec(),
        ..ParseContext::default()
    }
}

fn pay(minor: i64, currency: Currency, payee: &str) -> Intent {
    Intent::Pay {
        amount: Money::new(minor, currency),
        payee: payee.into(),
    }
}

fn cny(minor: i64, payee: &str) -> Intent {
    pay(minor, Currency::CNY, payee)
}

fn top_up(tokens: u64, provider: &str) -> Intent {
    Intent::TopUp {
        tokens,
        provider: provider.into(),
    }
}

fn limit(scope: LimitScope, minor: i64, currency: Currency) -> Intent {
    Intent::SetLimit {
        scope,
        amount: Money::new(minor, currency),
    }
}

fn spending(period: Period) -> Intent {
    Intent::QuerySpending { period }
}

const NONE: Intent = Intent::None;
const USD: Currency = Currency::USD;
const CNY: Currency = Currency::CNY;

#[test]
fn phrase_table() {
    use LimitScope::{Auto, Daily};
    use Period::{Month, Today, Week};
    let rows: Vec<(&str, Intent)> = vec![
        // Payments: amount and payee in either order.
        ("pay 36 yuan to Heytea", cny(3600, "Heytea")),
        (" Pay 36 yuan to Heytea.", cny(3600, "Heytea")),
        ("pay Heytea 36 yuan", cny(3600, "Heytea")),
        ("Pay thirty six yuan to Heytea", cny(3600, "Heytea")),
        ("pay thirty-six RMB to heytea", cny(3600, "Heytea")),
        ("send 20 dollars to Alice", pay(2000, USD, "Alice")),
        ("transfer 100 yuan to Bob", cny(10_000, "Bob")),
        ("pay for parking 15 yuan", cny(1500, "Parking")),
        ("pay 15 yuan for parking", cny(1500, "Parking")),
        ("pay $12.50 to Bob", pay(1250, USD, "Bob")),
        ("pay 12.50 yuan to Bob", cny(1250, "Bob")),
        ("pay 1.5 yuan to Bob", cny(150, "Bob")),
        ("pay ¥36 to Heytea", cny(3600, "Heytea")),
        ("pay €5 to Marie", pay(500, Currency::EUR, "Marie")),
        ("pay £3 to Tom", pay(300, Currency::GBP, "Tom")),
        ("pay US$5 to Bob", pay(500, USD, "Bob")),
        ("pay 25 to Bob", cny(2500, "Bob")),
        (
            "pay two hundred and forty yuan to the landlord",
            cny(24_000, "Landlord"),
        ),
        // A command word heard where the name should be.
        ("Pay 36 yuan to Pay,", Intent::None),
        // Whisper's digits for "two hundred and forty".
        ("Pay 200 and 40 yuan to Bob.", cny(24_000, "Bob")),
        ("pay four dollars seventy five to Bob", pay(475, USD, "Bob")),
        ("pay Bob six euros thirty", pay(630, Currency::EUR, "Bob")),
        ("pay 4 dollars and 5 cents to Bob", pay(405, USD, "Bob")),
        ("pay 4 dollars 05 to Bob", pay(405, USD, "Bob")),
        (
            "transfer fifty thousand yuan to Alice",
            cny(5_000_000, "Alice"),
        ),
        (
            "send two million yuan to Acme Corp",
            cny(200_000_000, "Acme Corp"),
        ),
        ("pay fifteen kuai for parking", cny(1500, "Parking")),
        (
            "pay one thousand two hundred yuan to Bob",
            cny(120_000, "Bob"),
        ),
        ("pay a hundred yuan to Bob", cny(10_000, "Bob")),
        ("pay 5 bucks to Bob", pay(500, USD, "Bob")),
        ("pay 50,000 yuan to Bob", cny(5_000_000, "Bob")),
        ("pay 1500 yen to Tanaka", pay(1500, Currency::JPY, "Tanaka")),
        ("make a payment of 20 yuan to Bob", cny(2000, "Bob")),
        // Filler and politeness around the command.
        ("Please pay 36 yuan to Heytea now.", cny(3600, "Heytea")),
        ("Hey voicepay, pay 36 yuan to Heytea", cny(3600, "Heytea")),
        ("ok, pay 20 yuan to Bob", cny(2000, "Bob")),
        ("can you pay 20 yuan to Bob", cny(2000, "Bob")),
        ("Could you send 20 yuan to Bob?", cny(2000, "Bob")),
        ("I want to pay 30 yuan to Bob", cny(3000, "Bob")),
        ("pay um 20 yuan to Bob", cny(2000, "Bob")),
        ("pay 36 yuan to heytea, thanks", cny(3600, "Heytea")),
        // Payee names: known spellings, memos, casing.
        ("pay 30 yuan to Peters Coffee", cny(3000, "Peet's Coffee")),
        ("pay 30 yuan at peets coffee", cny(3000, "Peet's Coffee")),
        ("pay 36 yuan Heytea", cny(3600, "Heytea")),
        ("pay 20 yuan to Luckin Coffee", cny(2000, "Luckin Coffee")),
        ("pay 20 yuan to bob for lunch", cny(2000, "Bob")),
        ("pay 20 yuan for lunch to Bob", cny(2000, "Bob")),
        ("pay Bob 20 yuan for lunch", cny(2000, "Bob")),
        (
            "pay 10 dollars to Toys for Tots",
            pay(1000, USD, "Toys for Tots"),
        ),
        ("pay 20 yuan to coca-cola", cny(2000, "Coca-Cola")),
        (
            "pay 100 yuan to bank of china",
            cny(10_000, "Bank of China"),
        ),
        ("pay 20 yuan to KFC", cny(2000, "KFC")),
        ("pay 20 yuan to 7-Eleven", cny(2000, "7-Eleven")),
        ("pay 7-Eleven 20 yuan", cny(2000, "7-Eleven")),
        ("pay 20 yuan to Dr. Smith", cny(2000, "Dr Smith")),
        ("pay 20 yuan to the", NONE),
        // Not payments: unsure, ambiguous, idioms, statements, questions.
        ("pay Heytea", NONE),
        ("pay 20 yuan", NONE),
        ("pay 20 yuan or 30 yuan to Bob", NONE),
        ("pay 20 yuan to Bob and 30 yuan to Alice", NONE),
        // A price spoken as two numbers, by the currency's habit.
        ("pay twelve fifty to Bob", cny(125_000, "Bob")),
        ("pay one fifty yuan at Heytea", cny(15_000, "Heytea")),
        (
            "pay twelve fifty dollars at Starbucks",
            pay(1250, USD, "Starbucks"),
        ),
        (
            "Pay 12 50 dollars at Starbucks.",
            pay(1250, USD, "Starbucks"),
        ),
        ("pay nine ninety-nine dollars to Bob", pay(999, USD, "Bob")),
        ("pay $9 99 to Bob", pay(999, USD, "Bob")),
        ("pay twelve five dollars to Bob", NONE),
        ("pay $9 99 yuan to Bob", NONE),
        ("pay twelve fifty cents to Bob", NONE),
        ("top up twelve fifty tokens on Kimi", NONE),
        ("pay twelve fifty sixty dollars to Bob", NONE),
        (
            "transfer two and a half thousand yuan to Bob",
            cny(250_000, "Bob"),
        ),
        ("give Bob seventeen yuan", cny(1700, "Bob")),
        // Regression: a currency sign after a payee-first name was dropped.
        ("Pay Bob $14.", pay(1400, USD, "Bob")),
        ("Pay Heytea $129.00.", pay(12_900, USD, "Heytea")),
        ("pay Heytea ¥36", cny(3600, "Heytea")),
        ("give me twenty yuan", NONE),
        ("pay four dollars five to Bob", NONE),
        ("pay 50 cents to Bob", NONE),
        ("pay 0 yuan to Bob", NONE),
        ("pay 99999999999999999999 yuan to Bob", NONE),
        ("pay $5 yuan to Bob", NONE),
        ("pay 5 grand to Bob", NONE),
        ("pay 20 to Bob in dollars", NONE),
        ("pay 200 yuan to Bob for 2 coffees", NONE),
        ("pay 12.505 yuan to Bob", NONE),
        ("pay 20 yuan to Bob tomorrow", NONE),
        ("pay 20 yuan to Bob every month", NONE),
        ("don't pay 20 yuan to Bob", NONE),
        ("pay 20 yuan to Bob, no wait", NONE),
        ("maybe pay 20 yuan to Bob", NONE),
        ("pay 20 yuan to her", NONE),
        ("pay Bob 20 yuan to Alice", NONE),
        ("pay 20 yuan to Bob and Alice", NONE),
        ("pay 20 yuan to the guy who fixed my car", NONE),
        ("pay 20 tokens to Bob", NONE),
        ("pay 20 yuan to Bob?", NONE),
        ("Pay 20 yuan to Bob. Pay 30 yuan to Alice.", NONE),
        ("No. Pay 30 yuan to Bob.", NONE),
        ("no I want to pay 30 yuan", NONE),
        ("pay Bob back 20 yuan", NONE),
        ("pay off my credit card 500 yuan", NONE),
        ("pay close attention", NONE),
        ("can you pay close attention", NONE),
        ("pay attention to the road", NONE),
        ("pay it forward", NONE),
        ("pay my respects", NONE),
        ("we paid for dinner last night", NONE),
        ("I paid 20 yuan to Bob", NONE),
        ("Bob paid me 20 yuan", NONE),
        ("she owes me fifty yuan", NONE),
        ("I'll pay you back tomorrow", NONE),
        ("the coffee was 30 yuan", NONE),
        ("what does a ticket cost", NONE),
        ("what if I pay 20 yuan to Bob", NONE),
        ("should I pay 20 yuan to Bob", NONE),
        ("send a message to Bob", NONE),
        ("hello how are you", NONE),
        ("thank you", NONE),
        ("", NONE),
        ("   ", NONE),
        ("[BLANK_AUDIO]", NONE),
        // Token top-ups.
        ("top up 200000 tokens on Kimi", top_up(200_000, "Kimi")),
        (
            "buy two hundred thousand Kimi tokens",
            top_up(200_000, "Kimi"),
        ),
        (
            "add 1 million tokens to Claude",
            top_up(1_000_000, "Claude"),
        ),
        ("top up Kimi with 200,000 tokens", top_up(200_000, "Kimi")),
        (
            "buy 1.5 million tokens for DeepSeek",
            top_up(1_500_000, "DeepSeek"),
        ),
        (
            "top-up 500k tokens on deep seek",
            top_up(500_000, "DeepSeek"),
        ),
        (
            "recharge open ai with 100000 tokens",
            top_up(100_000, "OpenAI"),
        ),
        ("get a million qwen tokens", top_up(1_000_000, "Qwen")),
        (
            "top up 200000 tokens on Moonshot",
            top_up(200_000, "Moonshot"),
        ),
        ("buy 100 tokens", NONE),
        ("buy 100 tokens for me", NONE),
        ("buy 100 tokens for Kimi and Claude", NONE),
        ("top up Kimi", NONE),
        ("top up 50 yuan on Kimi", NONE),
        ("buy 1.5 tokens for Kimi", NONE),
        ("buy 200000 Kimi tokens for 20 yuan", NONE),
        ("top up 200000 tokens on Kimi tomorrow", NONE),
        ("I bought 200000 tokens on Kimi", NONE),
        // Answers.
        ("confirm", Intent::Confirm),
        ("Yes.", Intent::Confirm),
        ("yes, confirm", Intent::Confirm),
        ("Confirmed!", Intent::Confirm),
        ("yes please", Intent::Confirm),
        ("go ahead", Intent::Confirm),
        ("do it", Intent::Confirm),
        ("that's right", Intent::Confirm),
        ("correct", Intent::Confirm),
        ("OK", Intent::Confirm),
        ("yeah, that's correct", Intent::Confirm),
        ("Yes. Confirm.", Intent::Confirm),
        ("yes?", NONE),
        ("yes, cancel", NONE),
        ("yes no", NONE),
        ("cancel", Intent::Cancel),
        ("no", Intent::Cancel),
        ("No.", Intent::Cancel),
        ("stop", Intent::Cancel),
        ("never mind", Intent::Cancel),
        ("don't", Intent::Cancel),
        ("don't do it", Intent::Cancel),
        ("abort", Intent::Cancel),
        ("no, cancel that", Intent::Cancel),
        ("No thank you.", Intent::Cancel),
        ("ok, cancel", Intent::Cancel),
        ("nope", Intent::Cancel),
        ("no?", Intent::Cancel),
        ("Forget it. I changed my mind.", Intent::Cancel),
        ("Stop. Don't send it.", Intent::Cancel),
        ("No, I don't approve.", Intent::Cancel),
        ("yes, don't send it", NONE),
        // Limits.
        ("set my auto-pay limit to 50 yuan", limit(Auto, 5000, CNY)),
        ("set the auto pay limit to fifty", limit(Auto, 5000, CNY)),
        ("set daily limit to 500 yuan", limit(Daily, 50_000, CNY)),
        (
            "change my daily spending limit to 300",
            limit(Daily, 30_000, CNY),
        ),
        (
            "set my daily limit to 100 dollars",
            limit(Daily, 10_000, USD),
        ),
        ("set my autopay limit to zero", limit(Auto, 0, CNY)),
        (
            "raise my daily limit to one thousand yuan",
            limit(Daily, 100_000, CNY),
        ),
        (
            "can you set my daily limit to 200 yuan?",
            limit(Daily, 20_000, CNY),
        ),
        ("set my spending limit to 300", NONE),
        ("increase my daily limit by 50", NONE),
        ("set my weekly limit to 500", NONE),
        ("set my daily auto-pay limit to 50", NONE),
        ("set daily limit to 50 or 100", NONE),
        ("set the daily limit", NONE),
        ("what's my daily limit", NONE),
        // Spending questions.
        ("how much did I spend today", spending(Today)),
        ("How much did I spend today?", spending(Today)),
        ("what did I spend this week", spending(Week)),
        ("how much have I spent this month", spending(Month)),
        ("show my spending today", spending(Today)),
        ("what's my spending this month", spending(Month)),
        (
            "can you tell me how much I spent this week?",
            spending(Week),
        ),
        ("how much did I spend", spending(Today)),
        ("how much did I spend today, thank you", spending(Today)),
        ("how much did she spend today", NONE),
        ("how much did I spend last week", NONE),
        ("how much can I spend today", NONE),
        ("how much did I spend on coffee today", NONE),
        ("how much did I spend this week and this month", NONE),
        // Agent tasks.
        ("approve the task", Intent::ApproveTask),
        ("approve", Intent::ApproveTask),
        ("approve it", Intent::ApproveTask),
        ("approve the agent's task", Intent::ApproveTask),
        ("reject the task", Intent::RejectTask),
        ("deny the task", Intent::RejectTask),
        ("reject", Intent::RejectTask),
        ("decline it", Intent::RejectTask),
        // Digits glued after letters are a word, not an amount (dev half:
        // "Send Alice for TU1." was read back as 1 yuan).
        ("Send Alice for TU1.", NONE),
        ("pay 30 yuan to A1 Taxi", cny(3000, "A1 Taxi")),
        ("pay RMB50 to Bob", cny(5000, "Bob")),
        ("approve the task?", NONE),
        ("approve the payment to Bob", NONE),
        ("reject and approve", NONE),
    ];
    let ctx = ctx();
    let mut failures = Vec::new();
    for (text, expected) in &rows {
        let got = parse(text, &ctx);
        if &got != expected {
            failures.push(format!("{text:?}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rows.len() >= 150, "{} rows", rows.len());
}

#[test]
fn default_currency_and_dollars_follow_the_device() {
    let sg = ParseContext {
        default_currency: Currency::SGD,
        ..ParseContext::default()
    };
    assert_eq!(parse("pay 20 to Bob", &sg), pay(2000, Currency::SGD, "Bob"));
    assert_eq!(
        parse("pay 20 dollars to Bob", &sg),
        pay(2000, Currency::SGD, "Bob")
    );
    assert_eq!(
        parse("pay 20 US dollars to Bob", &sg),
        pay(2000, USD, "Bob")
    );
    assert_eq!(parse("pay 20 yuan to Bob", &sg), cny(2000, "Bob"));
    let jp = ParseContext {
        default_currency: Currency::JPY,
        ..ParseContext::default()
    };
    assert_eq!(
        parse("pay ¥1500 to Tanaka", &jp),
        pay(1500, Currency::JPY, "Tanaka")
    );
    assert_eq!(parse("pay 12.50 to Tanaka", &jp), NONE);
}

#[test]
fn json_is_exactly_the_design() {
    let cases = [
        (
            cny(3600, "Heytea"),
            r#"{"kind":"pay","amount":"36.00","currency":"CNY","payee":"Heytea"}"#,
        ),
        (
            top_up(200_000, "Kimi"),
            r#"{"kind":"top_up","tokens":200000,"provider":"Kimi"}"#,
        ),
        (Intent::Confirm, r#"{"kind":"confirm"}"#),
        (Intent::Cancel, r#"{"kind":"cancel"}"#),
        (
            limit(LimitScope::Auto, 5000, CNY),
            r#"{"kind":"set_limit","scope":"auto","amount":"50.00","currency":"CNY"}"#,
        ),
        (
            limit(LimitScope::Daily, 1500, Currency::JPY),
            r#"{"kind":"set_limit","scope":"daily","amount":"1500","currency":"JPY"}"#,
        ),
        (
            spending(Period::Today),
            r#"{"kind":"query_spending","period":"today"}"#,
        ),
        (
            spending(Period::Week),
            r#"{"kind":"query_spending","period":"week"}"#,
        ),
        (
            spending(Period::Month),
            r#"{"kind":"query_spending","period":"month"}"#,
        ),
        (Intent::ApproveTask, r#"{"kind":"approve_task"}"#),
        (Intent::RejectTask, r#"{"kind":"reject_task"}"#),
        (NONE, r#"{"kind":"none"}"#),
    ];
    for (intent, json) in cases {
        assert_eq!(serde_json::to_string(&intent).ok().as_deref(), Some(json));
        assert_eq!(serde_json::from_str::<Intent>(json).ok(), Some(intent));
    }
}

#[test]
fn json_is_held_to_the_parser_rules() {
    let refused = [
        r#"{"kind":"pay","amount":"0.00","currency":"CNY","payee":"Heytea"}"#,
        r#"{"kind":"pay","amount":"-1.00","currency":"CNY","payee":"Heytea"}"#,
        r#"{"kind":"pay","amount":"36.001","currency":"CNY","payee":"Heytea"}"#,
        r#"{"kind":"pay","amount":"36","currency":"XYZ","payee":"Heytea"}"#,
        r#"{"kind":"pay","amount":"36.00","currency":"CNY","payee":" "}"#,
        r#"{"kind":"pay","amount":36,"currency":"CNY","payee":"Heytea"}"#,
        r#"{"kind":"pay","amount":"36.00","payee":"Heytea"}"#,
        r#"{"kind":"top_up","tokens":0,"provider":"Kimi"}"#,
        r#"{"kind":"top_up","tokens":-5,"provider":"Kimi"}"#,
        r#"{"kind":"set_limit","scope":"weekly","amount":"5.00","currency":"CNY"}"#,
        r#"{"kind":"set_limit","scope":"auto","amount":"-5.00","currency":"CNY"}"#,
        r#"{"kind":"query_spending","period":"year"}"#,
        r#"{"kind":"launch_rockets"}"#,
        r#"{"amount":"1.00"}"#,
    ];
    for json in refused {
        assert!(serde_json::from_str::<Intent>(json).is_err(), "{json}");
    }
    // Other field orders and a short fraction still read.
    let json = r#"{"payee":"Heytea","currency":"CNY","amount":"36.5","kind":"pay"}"#;
    assert_eq!(
        serde_json::from_str::<Intent>(json).ok(),
        Some(cny(3650, "Heytea"))
    );
}

#[test]
fn stopping_the_agents_is_heard_only_when_agents_are_named() {
    let ctx = ctx();
    let stops = [
        "stop the agents",
        "Stop all agents.",
        "cancel all agent payments",
        "revoke the agent",
        "Please stop the AI agents.",
    ];
    for text in stops {
        assert_eq!(parse(text, &ctx), Intent::RevokeAgents, "{text:?}");
    }
    let others = [
        "stop",
        "cancel",
        "stop the car",
        "stop paying the agent 30 yuan",
    ];
    for text in others {
        assert_ne!(parse(text, &ctx), Intent::RevokeAgents, "{text:?}");
    }
    // A bare "stop" or "cancel" is still an answer, not a stop of the agents.
    assert_eq!(parse("stop", &ctx), Intent::Cancel);
    assert_eq!(parse("cancel", &ctx), Intent::Cancel);
    assert!(!Intent::RevokeAgents.is_payment());
}

#[test]
fn stopping_the_agents_round_trips_as_json() {
    let json = r#"{"kind":"revoke_agents"}"#;
    assert_eq!(
        serde_json::to_string(&Intent::RevokeAgents).ok().as_deref(),
        Some(json)
    );
    assert_eq!(
        serde_json::from_str::<Intent>(json).ok(),
        Some(Intent::RevokeAgents)
    );
}

#[test]
fn stopping_the_agent_answers_its_task_with_no() {
    let ctx = ctx();
    let task = [AnswerKind::Approve, AnswerKind::Reject];
    assert_eq!(
        read_answer("stop the agent", &ctx, &task),
        Some(AnswerKind::Reject)
    );
}

#[test]
fn payments_are_pay_and_top_up() {
    assert!(cny(1, "Bob").is_payment());
    assert!(top_up(1, "Kimi").is_payment());
    for other in [
        Intent::Confirm,
        Intent::Cancel,
        limit(LimitScope::Auto, 1, CNY),
        spending(Period::Today),
        Intent::ApproveTask,
        Intent::RejectTask,
        NONE,
    ] {
        assert!(!other.is_payment());
    }
}

#[test]
fn the_whisper_prompt_names_the_users_payees_and_every_example_parses() {
    let ctx = ParseContext {
        known_payees: vec!["Heytea".into(), "Bob".into(), "Peet's Coffee".into()],
        ..ParseContext::default()
    };
    let prompt = whisper_prompt(&ctx);
    assert!(
        prompt.starts_with("Pay 36 yuan to Heytea. Send 20 dollars to Bob."),
        "{prompt}"
    );
    assert!(
        prompt.contains("on Kimi.") && prompt.contains("Peet's Coffee, Qwen, Claude"),
        "{prompt}"
    );
    // The examples show Whisper the parser's own style: each one must parse.
    for sentence in prompt.split_inclusive(['.', '?']).take(10) {
        assert_ne!(parse(sentence, &ctx), Intent::None, "{sentence}");
    }
}

#[test]
fn parse_context_defaults() {
    let ctx = ParseContext::default();
    assert_eq!(ctx.default_currency, Currency::CNY);
    assert!(ctx.known_payees.is_empty());
    assert_eq!(
        ctx.known_providers,
        ["Kimi", "Qwen", "Claude", "DeepSeek", "OpenAI"]
    );
}

/// English words for `n`, the way people say it: "one thousand two hundred and
/// forty five". `hyphen` writes "forty-five", `and` says "hundred and".
fn to_words(n: u64, hyphen: bool, and: bool) -> String {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    fn unit(n: u64) -> &'static str {
        UNITS.get(n as usize).copied().unwrap_or("?")
    }
    let below_hundred = |n: u64| -> String {
        if n < 20 {
            return unit(n).to_string();
        }
        let tens = TENS.get((n / 10) as usize).copied().unwrap_or("?");
        match n % 10 {
            0 => tens.to_string(),
            u if hyphen => format!("{tens}-{}", unit(u)),
            u => format!("{tens} {}", unit(u)),
        }
    };
    let below_thousand = |n: u64| -> String {
        let (hundreds, rest) = (n / 100, n % 100);
        match (hundreds, rest) {
            (0, _) => below_hundred(rest),
            (_, 0) => format!("{} hundred", unit(hundreds)),
            _ if and => format!("{} hundred and {}", unit(hundreds), below_hundred(rest)),
            _ => format!("{} hundred {}", unit(hundreds), below_hundred(rest)),
        }
    };
    if n == 0 {
        return "zero".into();
    }
    let mut parts = Vec::new();
    let mut rest = n;
    for (scale, name) in [
        (1_000_000_000_000, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ] {
        if rest >= scale {
            parts.push(format!("{} {name}", below_thousand(rest / scale)));
            rest %= scale;
        }
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    parts.join(" ")
}

#[test]
fn to_words_examples() {
    assert_eq!(to_words(36, true, true), "thirty-six");
    assert_eq!(to_words(240, false, true), "two hundred and forty");
    assert_eq!(
        to_words(1_234_567, false, false),
        "one million two hundred thirty four thousand five hundred sixty seven"
    );
    assert_eq!(to_words(1_000_005, false, true), "one million five");
}

/// Digits with thousands separators: 1234567 -> "1,234,567".
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

proptest! {
    #[test]
    fn spoken_yuan_round_trip(major in 1u64..1_000_000_000, hyphen: bool, and: bool) {
        let text = format!("pay {} yuan to Bob", to_words(major, hyphen, and));
        let expected = cny(i64::try_from(major).unwrap_or(0) * 100, "Bob");
        prop_assert_eq!(parse(&text, &ctx()), expected, "{}", text);
    }

    #[test]
    fn spoken_dollars_and_cents_round_trip(
        major in 1u64..1_000_000_000,
        cents in 1u64..100,
        hyphen: bool,
        and: bool,
        bare: bool,
    ) {
        let major_words = to_words(major, hyphen, and);
        let cents_words = to_words(cents, hyphen, and);
        // A bare minor part ("seventy five") must be two digits; below ten we say "cents".
        let text = if bare && cents >= 10 {
            format!("pay {major_words} dollars {cents_words} to Bob")
        } else {
            format!("pay {major_words} dollars and {cents_words} cents to Bob")
        };
        let minor = i64::try_from(major * 100 + cents).unwrap_or(0);
        prop_assert_eq!(parse(&text, &ctx()), pay(minor, USD, "Bob"), "{}", text);
    }

    #[test]
    fn digits_round_trip(major in 0u64..1_000_000_000, cents in 0u64..100, sign: bool) {
        let minor = i64::try_from(major * 100 + cents).unwrap_or(0);
        prop_assume!(minor > 0);
        let plain = format!("pay {major}.{cents:02} yuan to Bob");
        prop_assert_eq!(parse(&plain, &ctx()), cny(minor, "Bob"), "{}", plain);
        let text = if sign {
            format!("Pay ${}.{cents:02} to Bob.", grouped(major))
        } else {
            format!("pay {} dollars {cents:02} to Bob", grouped(major))
        };
        prop_assert_eq!(parse(&text, &ctx()), pay(minor, USD, "Bob"), "{}", text);
    }

    #[test]
    fn spoken_read_back_parses_to_the_same_money(
        minor in 1i64..100_000_000_000,
        idx in 0usize..13,
    ) {
        let currency = Currency::all().nth(idx).unwrap_or(CNY);
        let amount = Money::new(minor, currency);
        let text = format!("pay {} to Bob", Phrasebook::new(Language::English).money(amount));
        let expected = Intent::Pay { amount, payee: "Bob".into() };
        prop_assert_eq!(parse(&text, &ParseContext::default()), expected, "{}", text);
    }

    #[test]
    fn token_counts_round_trip(count in 1u64..1_000_000_000_000, hyphen: bool) {
        let text = format!("top up {} tokens on Kimi", to_words(count, hyphen, false));
        prop_assert_eq!(parse(&text, &ctx()), top_up(count, "Kimi"), "{}", text);
        let text = format!("buy {} Claude tokens", grouped(count));
        prop_assert_eq!(parse(&text, &ctx()), top_up(count, "Claude"), "{}", text);
    }

    #[test]
    fn anything_parses_without_panic_and_round_trips_as_json(text in "\\PC{0,80}") {
        let intent = parse(&text, &ctx());
        if let Intent::Pay { amount, payee } = &intent {
            prop_assert!(amount.is_positive());
            prop_assert!(!payee.is_empty());
        }
        let json = serde_json::to_string(&intent).unwrap_or_default();
        prop_assert_eq!(serde_json::from_str::<Intent>(&json).ok(), Some(intent));
    }

    #[test]
    fn word_soup_never_pays_twice_the_amount(
        words in proptest::collection::vec(
            proptest::sample::select(vec![
                "pay", "to", "bob", "20", "30", "yuan", "dollars", "and", "or", "twelve",
                "fifty", "hundred", "thousand", "cents", "for", "please", "no", "$", "a",
            ]),
            0..10,
        )
    ) {
        let text = words.join(" ");
        if let Intent::Pay { amount, .. } = parse(&text, &ctx()) {
            // A payment carries exactly one number in the utterance.
            let numbers = words.iter().filter(|w| ["20", "30", "twelve", "fifty"].contains(w)).count();
            prop_assert!(numbers <= 2, "{}: {:?}", text, amount);
            prop_assert!(!words.contains(&"or") && !words.contains(&"no"), "{}", text);
        }
    }
}

#[test]
fn an_amount_spoken_as_two_numbers_is_known_to_have_another_reading() {
    let two = |t: &str| amount_spoken_as_pair(t, &ctx());
    assert!(two("pay twelve fifty dollars at Starbucks"));
    assert!(two("Pay 12 50 dollars at Starbucks."));
    assert!(two("pay one fifty yuan at Heytea"));
    assert!(!two("pay twelve dollars fifty at Starbucks"));
    assert!(!two("pay one hundred and fifty yuan at Heytea"));
    assert!(!two("pay $12.50 at Starbucks"));
}

#[test]
fn spoken_code_digits_are_read_apart_from_the_answer() {
    let code = |t: &str| {
        let a = parse_code_answer(t, &ParseContext::default());
        (a.digits, a.intent)
    };
    assert_eq!(code("Confirm, 4 7 2."), ("472".into(), Intent::Confirm));
    assert_eq!(code("confirm four oh two"), ("402".into(), Intent::Confirm));
    assert_eq!(code("Confirm 4-7-2"), ("472".into(), Intent::Confirm));
    assert_eq!(code("cancel"), ("".into(), Intent::Cancel));
    // "oh" before any digit is a filler, not a zero.
    assert_eq!(code("oh, confirm 1 2 3"), ("123".into(), Intent::Confirm));
}

#[test]
fn the_name_in_an_answer_to_who_should_i_pay_is_the_name_alone() {
    let ctx = ctx();
    assert_eq!(name_answer("To Shell, please.", &ctx), "Shell");
    assert_eq!(
        name_answer("Um, pay Peet's Coffee now, thanks.", &ctx),
        "Peet's Coffee"
    );
    assert_eq!(name_answer("Shell", &ctx), "Shell");
    assert_eq!(name_answer("to the", &ctx), "");
}

/// A device that knows Kimi's price and a few merchants, as issue 21's cases need.
fn priced_ctx() -> ParseContext {
    ParseContext {
        known_payees: ["Uber", "KFC", "Didi", "Netflix", "Heytea"]
            .map(String::from)
            .to_vec(),
        token_prices: [("Kimi".to_string(), Money::new(1200, CNY))].into(),
        ..ParseContext::default()
    }
}

#[test]
fn a_top_up_by_money_buys_the_tokens_the_providers_price_allows() {
    let ctx = priced_ctx();
    // 50.00 at 12.00 a million: 4,166,666 tokens, which cost 50.00 again.
    let fifty_yuan_of_kimi = top_up(4_166_666, "Kimi");
    for text in [
        "Top up fifty yuan of Kimi tokens",
        "Top up Kimi with fifty yuan",
        "Buy fifty yuan of Kimi tokens",
        "top up 50 yuan on Kimi",
        "Recharge Kimi with ¥50.",
    ] {
        assert_eq!(parse(text, &ctx), fifty_yuan_of_kimi, "{text}");
    }
    assert_eq!(
        parse("buy 12 yuan of Kimi tokens", &ctx),
        top_up(1_000_000, "Kimi")
    );
}

#[test]
fn a_top_up_by_money_needs_a_price_a_named_currency_and_the_word_tokens_after_buy() {
    let ctx = priced_ctx();
    for text in [
        // No price for Claude, Moonshot is unknown, the price is in yuan.
        "Top up Claude with fifty yuan",
        "Top up Moonshot with fifty yuan",
        "Top up Kimi with fifty dollars",
        // Fifty what?
        "Top up Kimi with fifty",
        // Buying money's worth of something that is not tokens.
        "Buy fifty yuan of Kimi",
        "Get fifty yuan from Kimi",
        "buy 200000 Kimi tokens for 20 yuan",
        "Top up Kimi with fifty yuan tomorrow",
        "Top up Kimi with less than fifty yuan",
        "I topped up Kimi with fifty yuan",
    ] {
        assert_eq!(parse(text, &ctx), NONE, "{text}");
    }
    // Without prices in the context (the phrase table's), none of it is a top-up.
    assert_eq!(
        parse("Top up Kimi with fifty yuan", &ctx_without_prices()),
        NONE
    );
}

fn ctx_without_prices() -> ParseContext {
    ParseContext {
        token_prices: BTreeMap::new(),
        ..priced_ctx()
    }
}

#[test]
fn a_wish_bounded_by_a_comparison_is_not_a_payment() {
    let ctx = priced_ctx();
    for text in [
        "I want to pay less than fifty yuan for dinner",
        "pay more than 20 yuan to Uber",
        "pay about 20 yuan to Uber",
        "pay Uber up to 20 yuan",
        "pay at most 20 yuan to Uber",
        "top up under 200000 tokens on Kimi",
    ] {
        assert_eq!(parse(text, &ctx), NONE, "{text}");
    }
    assert_eq!(
        parse("I want to pay fifty yuan for dinner to Uber", &ctx),
        cny(5000, "Uber")
    );
}

#[test]
fn a_yes_or_no_before_the_task_verb_answers_the_task() {
    use AnswerKind::{Approve, Reject};
    let ctx = priced_ctx();
    let task = [Approve, Reject];
    assert_eq!(read_answer("Yes, approve it", &ctx, &task), Some(Approve));
    assert_eq!(read_answer("No, deny it", &ctx, &task), Some(Reject));
    assert_eq!(
        read_answer("Yeah, approve the task.", &ctx, &task),
        Some(Approve)
    );
    assert_eq!(read_answer("No, reject it.", &ctx, &task), Some(Reject));
    assert_eq!(parse("Yes, approve it", &ctx), Intent::ApproveTask);
    assert_eq!(parse("No, deny it", &ctx), Intent::RejectTask);
    // A yes and a no at once is asked again.
    assert_eq!(read_answer("Yes, deny it", &ctx, &task), None);
    assert_eq!(read_answer("No, approve it", &ctx, &task), None);
    assert_eq!(parse("Yes, deny it", &ctx), NONE);
    assert_eq!(parse("No, approve it", &ctx), NONE);
    assert_eq!(parse("Yes, approve it?", &ctx), NONE);
}

#[test]
fn cents_named_after_a_currency_sign_belong_to_its_amount() {
    let ctx = priced_ctx();
    assert_eq!(
        parse("Pay Netflix, $15 and 49 cents.", &ctx),
        pay(1549, USD, "Netflix")
    );
    assert_eq!(
        parse("Pay $15 and 49 cents to Netflix.", &ctx),
        pay(1549, USD, "Netflix")
    );
    // Without "cents" the 49 is a second number.
    assert_eq!(parse("Pay Netflix, $15 and 49.", &ctx), NONE);
}

#[test]
fn pay_glued_to_a_known_payee_splits_off_and_nothing_else_does() {
    let ctx = priced_ctx();
    assert_eq!(parse("Payuber 43 yuan.", &ctx), cny(4300, "Uber"));
    assert_eq!(parse("PayKFC 52, RMB.", &ctx), cny(5200, "KFC"));
    assert_eq!(parse("Payheytea 20 yuan", &ctx), cny(2000, "Heytea"));
    // Not a known payee after the verb: one word, and nothing is paid.
    for text in [
        "Payment 43 yuan.",
        "Paybob 43 yuan.",
        "Payuber 43 yuan.",
        "Paypal 20 yuan",
    ] {
        let without = ParseContext {
            known_payees: vec!["Bob".into(), "PayPal".into(), "Pal".into()],
            ..ParseContext::default()
        };
        let expected = match text {
            "Paybob 43 yuan." => cny(4300, "Bob"),
            _ => NONE,
        };
        assert_eq!(parse(text, &without), expected, "{text}");
    }
    // Glued to anything else it stays a word.
    assert_eq!(parse("I said payuber 43 yuan", &ctx), NONE);
}

#[test]
fn a_common_noun_after_a_known_payee_is_no_part_of_its_name() {
    let ctx = priced_ctx();
    assert_eq!(
        parse("Pay twenty three yuan for the Didi ride.", &ctx),
        cny(2300, "Didi")
    );
    assert_eq!(parse("pay 30 yuan to KFC order", &ctx), cny(3000, "KFC"));
    assert_eq!(
        parse("pay 30 yuan for the Uber trip", &ctx),
        cny(3000, "Uber")
    );
    // An unknown name keeps its noun.
    assert_eq!(
        parse("pay 30 yuan for the Metro ride", &ctx),
        cny(3000, "Metro Ride")
    );
}

#[test]
fn a_top_up_on_a_merchant_names_a_provider_the_dialog_refuses() {
    let ctx = priced_ctx();
    // As any provider outside the table ("on Moonshot", the corpus's "on
    // Starbucks"): the heard name is kept, and only the provider table makes
    // it one, so the dialog answers that it knows no price and pays nothing.
    for (text, name) in [
        ("Top up 500,000 tokens on KFC.", "KFC"),
        ("Top up 500,000 tokens on Moonshot.", "Moonshot"),
    ] {
        assert_eq!(parse(text, &ctx), top_up(500_000, name), "{text}");
        assert_eq!(
            crate::payees::resolve_provider(name, &ctx.known_providers),
            None
        );
    }
    // And money buys no merchant's tokens: it has no price.
    assert_eq!(parse("Top up KFC with fifty yuan", &ctx), NONE);
    assert_eq!(parse("Buy fifty yuan of KFC tokens", &ctx), NONE);
    assert_eq!(
        parse("Top up 500,000 tokens on Kimi.", &ctx),
        top_up(500_000, "Kimi")
    );
}
