//! Mandarin: every sentence the device says, amounts in characters (三十六点五元: a speech engine drops the point in "36.5元"), codes digit by digit (四七二).
//!
//! The amounts are said as `intent::mandarin` reads them, so a read-back
//! can always be heard back as the same amount.

use super::Speech;
use crate::intent::mandarin::{currency_word, say_amount, say_count, say_figures};
use crate::intent::{LimitScope, Period};
use crate::order::{DropReason, Purchase};
use crate::reason::{AgentRefusal, Reason};
use crate::store::{HistoryEntry, HistoryEvent};
use voicepay_core::money::Money;
use voicepay_core::policy::{OutsideMandate, Refusal, TopUpRefusal};
use voicepay_core::protocol::SubscriptionPeriod;

/// The sentence for `speech`.
pub fn say(speech: &Speech) -> String {
    match speech {
        Speech::ReadBack {
            purchase,
            amount,
            code,
            doubt,
        } => {
            let answer = match code {
                None => "请说确认或取消。".to_owned(),
                Some(code) => format!("请说确认和验证码{}，或者说取消。", say_figures(code)),
            };
            format!(
                "{}？{}{answer}",
                read_back(purchase, *amount, doubt.amount),
                unsure(purchase, *doubt)
            )
        }
        Speech::AskAmount { payee } => format!("给{payee}付多少钱？"),
        Speech::AskPayee { amount } => format!("{}要付给谁？", money(*amount)),
        Speech::MissingPartNotHeard => "抱歉，没有听清，没有付款。".to_owned(),
        Speech::NotUnderstood => "抱歉，我没听懂。".to_owned(),
        Speech::RaiseLimit { scope, amount } => format!(
            "把{}调到{}？请说确认或取消。",
            scope_name(*scope),
            money(*amount)
        ),
        Speech::Again(question) => format!("抱歉？{}", say(question)),
        Speech::PayingWithinAutoLimit { purchase, amount } => format!(
            "正在{}：在你的自动支付限额之内。",
            describe(purchase, *amount)
        ),
        Speech::CannotPay {
            purchase,
            amount,
            refusal: reason,
        } => format!("无法{}。{}", describe(purchase, *amount), refusal(reason)),
        Speech::PaymentDropped(DropReason::Cancelled) => "付款已取消。".to_owned(),
        Speech::PaymentDropped(reason) => format!("付款已取消：{}。", drop_reason(*reason)),
        Speech::LimitIsNow { scope, amount } => {
            format!("你的{}现在是{}。", scope_name(*scope), money(*amount))
        }
        Speech::LimitUnchanged { scope, reason } => format!(
            "你的{}保持不变：{}。",
            scope_name(*scope),
            drop_reason(*reason)
        ),
        Speech::NothingToConfirm => "没有需要确认的事。".to_owned(),
        Speech::Listening => "我在。".to_owned(),
        Speech::NotHeard => "抱歉，我没听到，请再说一遍。".to_owned(),
        Speech::NoTaskWaiting => "没有等待中的代理任务。".to_owned(),
        Speech::WhoToPay {
            heard,
            candidates: None,
        } => format!("我不认识{heard}。要付给谁？请说名字，或者说取消。"),
        Speech::WhoToPay {
            candidates: Some((a, b)),
            ..
        } => format!("你是说{a}还是{b}？请说名字，或者说取消。"),
        Speech::UnknownTokenPrice { provider } => {
            format!("我不知道{provider}的token价格，所以无法充值。")
        }
        Speech::PaidOffline { purchase, amount } => format!(
            "已离线{}；恢复联网后会发给银行。",
            describe(purchase, *amount)
        ),
        Speech::NotRecorded { error } => {
            format!("无法记录这笔付款，所以没有付款（{error}）。")
        }
        Speech::HeldUnsaved {
            purchase,
            amount,
            error,
        } => format!(
            "无法保存“{}”（{error}），所以还没有发送。存储恢复后会发出：再次付款前请先查看记录。",
            describe(purchase, *amount)
        ),
        Speech::AnswerNotRecorded {
            approved,
            amount,
            payee,
            error,
        } => format!(
            "银行{}了给{payee}的{}，但我无法记录（{error}）；存储恢复后会重新结算。",
            if *approved { "批准" } else { "拒绝" },
            money(*amount)
        ),
        Speech::StorageFailing { error } => {
            format!("存储出错（{error}），所以无法接受新的付款：没有付款。")
        }
        Speech::NoAnswerYet => "银行还没有回复；这笔付款在待发队列中等待。".to_owned(),
        Speech::Paid { amount, payee } => format!("已给{payee}付{}。", money(*amount)),
        Speech::DeclinedByBank {
            amount,
            payee,
            reason,
        } => format!("银行拒绝了给{payee}的{}：{reason}。", money(*amount)),
        Speech::Spent {
            period,
            totals,
            by_agents,
        } => {
            let when = match period {
                Period::Today => "今天",
                Period::Week => "最近七天",
                Period::Month => "最近三十天",
            };
            match (totals.is_empty(), by_agents.is_empty()) {
                (true, _) => format!("你{when}没有花钱。"),
                (false, true) => format!("你{when}花了{}。", amounts(totals)),
                (false, false) => format!(
                    "你{when}花了{}，其中{}是通过代理花的。",
                    amounts(totals),
                    amounts(by_agents)
                ),
            }
        }
        Speech::HistoryUnreadable { error } => format!("现在无法读取记录（{error}）。"),
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
                Some(SubscriptionPeriod::Week) => "，每周一次",
                Some(SubscriptionPeriod::Month) => "，每月一次",
                Some(SubscriptionPeriod::Year) => "，每年一次",
            };
            let answer = match code {
                None => "请说批准或拒绝。".to_owned(),
                Some(code) => format!("请说确认和验证码{}，或者说取消。", say_figures(code)),
            };
            // A long description would outlast the answer window: the
            // history and the agent keep it.
            let about = if is_short(description) {
                format!("：{description}")
            } else {
                String::new()
            };
            format!(
                "{agent}请求{}{every}{about}。{answer}",
                describe(purchase, *amount)
            )
        }
        Speech::AgentPaidUnasked {
            agent,
            purchase,
            amount,
        } => format!(
            "正在为{agent}{}：在你允许{agent}自行支付的范围内。",
            describe(purchase, *amount)
        ),
        Speech::AgentTaskDropped {
            agent,
            reason: DropReason::Rejected,
        } => format!("已拒绝。{agent}的任务不会付款。"),
        Speech::AgentTaskDropped { agent, reason } => {
            format!("{agent}的任务不会付款：{}。", drop_reason(*reason))
        }
        Speech::AgentsStopped { names } if names.is_empty() => "没有可以停止的代理。".to_owned(),
        Speech::AgentsStopped { names } => format!(
            "已停止{}：等待中的任务不会付款，在你重新添加之前也无法再付款。",
            names.join("和")
        ),
        Speech::AgentsNotStopped { error } => {
            format!("无法停止代理（{error}），请再试一次。")
        }
    }
}

/// An agent's description said in full only when this short.
const MAX_DESCRIPTION_CHARS: usize = 24;
const MAX_DESCRIPTION_WORDS: usize = 6;

fn is_short(description: &str) -> bool {
    description.chars().count() <= MAX_DESCRIPTION_CHARS
        && description.split_whitespace().count() <= MAX_DESCRIPTION_WORDS
}

/// 给喜茶付三十六元, 花两点四元买二十万个Kimi token.
fn describe(purchase: &Purchase, amount: Money) -> String {
    match purchase {
        Purchase::Pay { payee } => format!("给{payee}付{}", money(amount)),
        Purchase::TopUp { tokens, provider } => format!(
            "花{}买{}个{provider} token",
            money(amount),
            say_count(*tokens)
        ),
    }
}

/// The purchase as a read-back says it; with the amount (a top-up's token
/// count) digit by digit when it may have been misheard: 给喜茶付三六元.
fn read_back(purchase: &Purchase, amount: Money, spell: bool) -> String {
    if !spell {
        return describe(purchase, amount);
    }
    match purchase {
        Purchase::Pay { payee } => format!("给{payee}付{}", spelled_money(amount)),
        Purchase::TopUp { tokens, provider } => format!(
            "花{}买{}个{provider} token",
            money(amount),
            say_figures(&tokens.to_string())
        ),
    }
}

/// The figures one by one, then the currency: 三六元, 四点七五美元.
fn spelled_money(amount: Money) -> String {
    let figures = amount.to_decimal_string();
    let figures = figures.strip_suffix(".00").unwrap_or(&figures);
    let said = say_amount(Money::new(0, amount.currency));
    let unit = said.trim_start_matches('零');
    format!("{}{unit}", say_figures(figures))
}

/// 请留意金额。: the part the user should listen to, or nothing.
fn unsure(purchase: &Purchase, doubt: crate::intent::Doubt) -> &'static str {
    match (purchase, doubt.payee, doubt.amount) {
        (_, false, false) => "",
        (Purchase::Pay { .. }, true, false) => "请留意收款方。",
        (Purchase::Pay { .. }, false, true) => "请留意金额。",
        (Purchase::Pay { .. }, true, true) => "请留意收款方和金额。",
        (Purchase::TopUp { .. }, true, false) => "请留意服务商。",
        (Purchase::TopUp { .. }, false, true) => "请留意数量。",
        (Purchase::TopUp { .. }, true, true) => "请留意服务商和数量。",
    }
}

fn scope_name(scope: LimitScope) -> &'static str {
    match scope {
        LimitScope::Auto => "自动支付限额",
        LimitScope::Daily => "每日限额",
    }
}

fn amounts(each: &[Money]) -> String {
    let said: Vec<String> = each.iter().map(|m| money(*m)).collect();
    said.join("和")
}

/// An amount as said: 三十六点五元.
pub fn money(amount: Money) -> String {
    say_amount(amount)
}

pub fn drop_reason(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Cancelled => "已取消",
        DropReason::NoAnswerInTime => "没有及时回答",
        DropReason::WrongCode => "验证码错误",
        DropReason::NoClearAnswer => "回答不清楚",
        DropReason::InputEnded => "对话在回答之前结束了",
        DropReason::Rejected => "用户拒绝了代理的任务",
        DropReason::Revoked => "用户停止了这个代理",
    }
}

/// Why a payment was not made, every kind in Mandarin's own words (an
/// old entry's reason is the words it was kept in).
pub fn reason(reason: &Reason) -> String {
    match reason {
        Reason::Policy(refused) => refusal(refused),
        Reason::Agent(AgentRefusal::Unknown(name)) => format!("没有名为{name}的代理"),
        Reason::Agent(AgentRefusal::Outside(outside)) | Reason::Mandate(outside) => {
            mandate(outside)
        }
        Reason::TopUp(TopUpRefusal::UnknownProvider { provider }) => {
            format!("{provider}不是本设备知道的token服务商")
        }
        Reason::TopUp(TopUpRefusal::NotTheListedPrice {
            tokens,
            provider,
            price,
            asked,
        }) => format!(
            "按本设备的价格，{}个{provider} token要{}，不是{}",
            say_count(*tokens),
            money(*price),
            money(*asked)
        ),
        Reason::Unreadable(error) => error.clone(),
        Reason::Dropped(dropped) => drop_reason(*dropped).to_owned(),
        Reason::Words(words) => words.clone(),
    }
}

fn mandate(outside: &OutsideMandate) -> String {
    match outside {
        OutsideMandate::Revoked => "用户停止了这个代理".to_owned(),
        OutsideMandate::Expired => "代理的授权已过期".to_owned(),
        OutsideMandate::Currency(currency) => {
            format!("代理的预算以{}计", currency_word(*currency))
        }
        OutsideMandate::Payee => "这个收款方不在代理可以付款的范围内".to_owned(),
        OutsideMandate::PerTask(limit) => format!("超出了代理每个任务{}的限额", money(*limit)),
        OutsideMandate::Daily { left } => {
            format!("超出了代理的每日预算（今天还剩{}）", money(*left))
        }
        OutsideMandate::Total { left } => format!("超出了代理的总预算（还剩{}）", money(*left)),
    }
}

pub fn refusal(refusal: &Refusal) -> String {
    match refusal {
        Refusal::NotPositive => "金额必须大于零。".to_owned(),
        Refusal::TooLarge => "金额太大了。".to_owned(),
        Refusal::OverDailyLimit { limit, left } => format!(
            "超出了你的每日限额{}；今天还剩{}。",
            money(*limit),
            money(*left)
        ),
        Refusal::DailyLimitInOtherCurrency { limit, payment } => format!(
            "你的每日限额以{}计，所以无法用{}付款。",
            currency_word(*limit),
            currency_word(*payment)
        ),
        Refusal::OfflineCurrency(currency) => {
            format!("离线时只能用{}付款。", currency_word(*currency))
        }
        Refusal::OfflinePerPayment(max) => format!("离线时每笔最多只能付{}。", money(*max)),
        Refusal::OfflineCumulative(max) => {
            format!("恢复联网之前，离线总共只能付{}。", money(*max))
        }
        Refusal::OfflineConsecutive(max) => {
            format!("恢复联网之前，离线只能付{}笔。", say_count(u64::from(*max)))
        }
        Refusal::OfflineTooLong => "离线时间太长，无法付款；请先联网。".to_owned(),
        Refusal::RecordsUnreadable => "现在无法读取我的记录。".to_owned(),
        Refusal::WhileDriving { allowed } => match allowed.split_last() {
            None => "开车时我不能付任何款项。".to_owned(),
            Some((last, [])) => format!("开车时我只能为{last}付款。"),
            Some((last, rest)) => format!("开车时我只能为{}和{last}付款。", rest.join("、")),
        },
        Refusal::CodeLockedOut => "验证码错了三次，需要验证码的付款已锁定几分钟。".to_owned(),
    }
}

/// `voicepay history`'s line: "   3 已付款  36.00 CNY 给 Heytea", and the
/// agent and task it was for.
pub fn history_line(entry: &HistoryEntry) -> String {
    let event = match &entry.event {
        HistoryEvent::Paid {
            amount,
            payee,
            offline,
            ..
        } => format!(
            "已付款  {amount} 给 {payee}{}",
            if *offline { "（离线）" } else { "" }
        ),
        // The gateway's own words: they are part of its signed answer.
        HistoryEvent::Declined {
            amount,
            payee,
            reason: said,
            ..
        } => format!("银行拒绝 {amount} 给 {payee}：{said}"),
        HistoryEvent::Refused {
            amount,
            payee,
            reason: why,
            ..
        } => format!("未付款  {amount} 给 {payee}：{}", reason(why)),
        HistoryEvent::Cancelled {
            amount,
            payee,
            reason: why,
            ..
        } => format!("已取消  {amount} 给 {payee}：{}", reason(why)),
    };
    match entry.event.agent() {
        Some(a) => format!(
            "{:>4} {event}  [代理 {}，任务 {}]",
            entry.index, a.agent_id, a.task_id
        ),
        None => format!("{:>4} {event}", entry.index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Doubt;
    use crate::intent::mandarin::read_amount;
    use voicepay_core::money::Currency;

    fn read_back(minor: i64, currency: Currency, doubt: Doubt, code: Option<&str>) -> String {
        say(&Speech::ReadBack {
            purchase: Purchase::Pay {
                payee: "喜茶".into(),
            },
            amount: Money::new(minor, currency),
            code: code.map(str::to_owned),
            doubt,
        })
    }

    #[test]
    fn a_read_back_says_the_amount_in_characters_that_read_back_as_itself() {
        for currency in [Currency::CNY, Currency::USD, Currency::JPY] {
            for minor in [1, 50, 3_650, 3_600, 20_000, 250_000, 1_050_000, 99_999_999] {
                let said = read_back(minor, currency, Doubt::default(), None);
                assert!(said.starts_with("给喜茶付"), "{said}");
                assert!(!said.chars().any(|c| c.is_ascii_digit()), "{said}");
                let after = &said["给喜茶付".len()..];
                let heard = read_amount(after, Currency::CNY).expect("an amount");
                assert_eq!(heard.money, Money::new(minor, currency), "{said}");
                assert_eq!(&after[heard.len..], "？请说确认或取消。");
            }
        }
    }

    #[test]
    fn an_amount_in_doubt_is_spelled_and_a_code_is_said_digit_by_digit() {
        let doubt = Doubt {
            payee: false,
            amount: true,
        };
        assert_eq!(
            read_back(3_600, Currency::CNY, doubt, None),
            "给喜茶付三六元？请留意金额。请说确认或取消。"
        );
        assert_eq!(
            read_back(475, Currency::USD, doubt, None),
            "给喜茶付四点七五美元？请留意金额。请说确认或取消。"
        );
        assert_eq!(
            read_back(3_650, Currency::CNY, Doubt::default(), Some("472")),
            "给喜茶付三十六点五元？请说确认和验证码四七二，或者说取消。"
        );
    }

    #[test]
    fn refusals_mandates_and_top_ups_are_worded_in_mandarin() {
        let cny = |minor| Money::new(minor, Currency::CNY);
        let reasons = [
            Reason::Policy(Refusal::OverDailyLimit {
                limit: cny(50_000),
                left: cny(1_250),
            }),
            Reason::Mandate(OutsideMandate::Daily { left: cny(300) }),
            Reason::Agent(AgentRefusal::Unknown("claude".into())),
            Reason::TopUp(TopUpRefusal::NotTheListedPrice {
                tokens: 1_000_000,
                provider: "Claude".into(),
                price: cny(9_000),
                asked: cny(10_000),
            }),
            Reason::Dropped(DropReason::NoAnswerInTime),
        ];
        let worded: Vec<String> = reasons.iter().map(reason).collect();
        assert_eq!(
            worded,
            [
                "超出了你的每日限额五百元；今天还剩十二点五元。",
                "超出了代理的每日预算（今天还剩三元）",
                "没有名为claude的代理",
                "按本设备的价格，一百万个Claude token要九十元，不是一百元",
                "没有及时回答",
            ]
        );
    }

    #[test]
    fn a_top_up_names_its_tokens_and_price_in_characters() {
        let speech = Speech::AgentAsks {
            agent: "Kimi助手".into(),
            purchase: Purchase::TopUp {
                tokens: 200_000,
                provider: "Kimi".into(),
            },
            amount: Money::new(240, Currency::CNY),
            description: "续费".into(),
            period: Some(SubscriptionPeriod::Month),
            code: None,
        };
        assert_eq!(
            say(&speech),
            "Kimi助手请求花二点四元买二十万个Kimi token，每月一次：续费。请说批准或拒绝。"
        );
    }
}
