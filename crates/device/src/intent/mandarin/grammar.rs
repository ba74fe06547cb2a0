//! What the user can sensibly say in Mandarin now, as a word graph for the constrained decoder: the command shapes [`read_command`](super::read_command) reads, amounts in characters and digits, and the payee book, one start per dialog state.
//!
//! As in English, every sentence of these languages is one the reader takes
//! as a command or an answer (a test walks them at random and reads each),
//! and the payee slot holds only the book's names.

use std::sync::Arc;

use super::amount::say_count;
use crate::asr::automaton::{Grammar, Slot, WordSet};
use crate::intent::ParseContext;
use crate::intent::language::Listening;

/// The word graph of what may be said while `listening`.
pub fn grammar(listening: Listening, ctx: &ParseContext) -> Grammar {
    let mut b = Builder {
        g: Grammar::new(),
        ctx,
    };
    let start = b.opening(Grammar::START, listening == Listening::Command);
    match listening {
        Listening::Command => b.commands(start),
        Listening::Confirmation => {
            // 好的，确认: a yes may open the answer, which still decides.
            let lead = b.words("zh:answer-lead", &["好的", "好", "嗯"]);
            let pause = b.words("zh:pause", &["，"]);
            let led = b.g.chain(start, &[&lead]);
            let paused = b.g.chain(led, &[&pause]);
            b.g.skip(led, paused);
            b.g.skip(start, paused);
            let answers = b.words("zh:confirm-cancel", CONFIRM_OR_CANCEL);
            let said = b.g.chain(paused, &[&answers]);
            b.end(said);
        }
        Listening::Code => {
            // 确认四七二: the code's digits after the yes, or a no.
            let confirm = b.words("zh:confirm", &["确认"]);
            let digit = b.words("zh:digit", &DIGITS);
            let mut at = b.g.chain(start, &[&confirm]);
            for i in 0..MAX_CODE_DIGITS {
                at = b.g.chain(at, &[&digit]);
                if i + 1 >= MIN_CODE_DIGITS {
                    b.end(at);
                }
            }
            let cancel = b.words("zh:cancel", CANCEL);
            let no = b.g.chain(start, &[&cancel]);
            b.end(no);
        }
        Listening::TaskDecision => {
            let answers = b.words("zh:approve-reject", APPROVE_OR_REJECT);
            let said = b.g.chain(start, &[&answers]);
            b.end(said);
        }
        Listening::Amount => {
            let amount = b.amount(start, UNITS);
            let to = b.words("zh:to", &["给"]);
            let payee = b.payees();
            let named = b.g.chain(amount, &[&to, &payee]);
            b.end(amount);
            b.end(named);
        }
        Listening::Payee => {
            let to = b.words("zh:to-payee", &["给", "付给"]);
            let lead = b.g.node();
            b.g.arc(start, &to, lead);
            b.g.skip(start, lead);
            let payee = b.payees();
            let named = b.g.chain(lead, &[&payee]);
            b.end(named);
        }
    }
    b.g
}

const CONFIRM_OR_CANCEL: &[&str] = &[
    "确认",
    "确定",
    "好的",
    "是的",
    "对",
    "没问题",
    "取消",
    "算了",
    "不要",
    "不用了",
];
const CANCEL: &[&str] = &["取消", "算了", "不要"];
const APPROVE_OR_REJECT: &[&str] = &["批准", "同意", "拒绝", "不批准", "不同意"];
const DIGITS: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
const MIN_CODE_DIGITS: usize = 3;
const MAX_CODE_DIGITS: usize = 6;
/// The yuan's words after an amount, and the other currencies' names.
const UNITS: &[&str] = &[
    "元", "块", "块钱", "美元", "欧元", "英镑", "日元", "港币", "韩元", "澳元", "加元",
];
const YUAN: &[&str] = &["元", "块", "块钱"];
/// Currencies without minor units: no 点 before them.
const WHOLE_ONLY: &[&str] = &["日元", "韩元"];

struct Builder<'a> {
    g: Grammar,
    ctx: &'a ParseContext,
}

impl Builder<'_> {
    fn words(&self, key: &str, words: &[&str]) -> Arc<WordSet> {
        WordSet::new(
            key,
            Slot::Words,
            words.iter().map(|w| w.to_string()).collect(),
        )
    }

    /// Whisper may open with a space, and a command with 请 or 帮我.
    fn opening(&mut self, start: usize, polite: bool) -> usize {
        let space = self.words("zh:space", &[" "]);
        let spaced = self.g.chain(start, &[&space]);
        let open = self.g.node();
        self.g.skip(start, open);
        self.g.skip(spaced, open);
        if !polite {
            return open;
        }
        let polite = self.words("zh:polite", &["请", "帮我", "麻烦你"]);
        let after = self.g.node();
        self.g.arc(open, &polite, after);
        self.g.skip(open, after);
        after
    }

    /// The end: a full stop may follow.
    fn end(&mut self, from: usize) {
        self.g.accept(from);
        let stop = self.words("zh:stop", &["。", "！"]);
        let stopped = self.g.chain(from, &[&stop]);
        self.g.accept(stopped);
    }

    fn payees(&self) -> Arc<WordSet> {
        let names = self.ctx.known_payees.clone();
        WordSet::new(format!("zh:payees:{}", names.concat()), Slot::Payee, names)
    }

    /// 三十六元, 36块, 三十六块五, 十二点五美元, in one of `units`: returns
    /// the node after it.
    fn amount(&mut self, from: usize, units: &[&str]) -> usize {
        // Every amount under 一万, then the thousands up to 九万九千 (一万五千).
        let numbers = || (1..10_000u64).chain((10..100).map(|n| n * 1_000));
        let said: Vec<String> = numbers().map(say_count).collect();
        let said = WordSet::new("zh:number", Slot::Number, said);
        let figures: Vec<String> = numbers().map(|n| n.to_string()).collect();
        let figures = WordSet::new("zh:figures", Slot::Number, figures);
        let point = self.words("zh:point", &["点"]);
        let digit = self.words("zh:fraction-digit", &DIGITS[1..]);
        let unit = self.words(&format!("zh:unit:{}", units.concat()), units);
        let kuai = self.words("zh:kuai", &["块"]);
        let in_characters = self.g.chain(from, &[&said]);
        let in_figures = self.g.chain(from, &[&figures]);
        // 十二点五: a fraction, in characters, before the unit.
        let fraction = self.g.chain(in_characters, &[&point, &digit]);
        let before_unit = self.g.node();
        for whole in [in_characters, in_figures] {
            self.g.skip(whole, before_unit);
        }
        let with_unit = self.g.chain(before_unit, &[&unit]);
        let after = self.g.node();
        self.g.skip(with_unit, after);
        // The yen and the won have no fraction.
        let fractional: Vec<&str> = (units.iter())
            .filter(|u| !WHOLE_ONLY.contains(u))
            .copied()
            .collect();
        let fractional = self.words(&format!("zh:unit:{}", fractional.concat()), &fractional);
        let with_fraction = self.g.chain(fraction, &[&fractional]);
        self.g.skip(with_fraction, after);
        // 三十六块五: tenths after 块.
        if units.contains(&"块") {
            for whole in [in_characters, in_figures] {
                let tenths = self.g.chain(whole, &[&kuai, &digit]);
                self.g.skip(tenths, after);
            }
        }
        after
    }

    fn commands(&mut self, start: usize) {
        let payee = self.payees();
        let to = self.words("zh:to", &["给"]);
        let to_whom = self.words("zh:to-whom", &["给", "向"]);
        let verbs = self.words("zh:pay", &["付", "付款", "支付", "转账"]);
        let verbs_first = self.words("zh:pay-first", &["付", "转账"]);

        // 给喜茶付三十六元
        let verb = self.g.chain(start, &[&to_whom, &payee, &verbs]);
        let paid = self.amount(verb, UNITS);
        self.end(paid);
        // 付三十六块五给瑞幸
        let verb = self.g.chain(start, &[&verbs_first]);
        let amount = self.amount(verb, UNITS);
        let named = self.g.chain(amount, &[&to, &payee]);
        self.end(named);

        // 给Kimi充值五十元 (a provider with a price), 给Kimi充值一百万个token
        let priced: Vec<String> = self.ctx.token_prices.keys().cloned().collect();
        let top_up = self.words("zh:top-up", &["充值"]);
        if !priced.is_empty() {
            let provider = WordSet::new(
                format!("zh:priced:{}", priced.concat()),
                Slot::Provider,
                priced,
            );
            // Bought in yuan, as the prices are.
            let verb = self.g.chain(start, &[&to, &provider, &top_up]);
            let paid = self.amount(verb, YUAN);
            self.end(paid);
        }
        let providers = WordSet::new(
            format!("zh:providers:{}", self.ctx.known_providers.concat()),
            Slot::Provider,
            self.ctx.known_providers.clone(),
        );
        let counts: Vec<String> = [1u64, 2, 5, 10, 20, 50, 100, 200, 500]
            .into_iter()
            .map(|n| say_count(n * 10_000))
            .collect();
        let count = WordSet::new("zh:token-count", Slot::Number, counts);
        // 词元 is the Chinese word for a token.
        let tokens = self.words("zh:tokens", &["个token", "个词元"]);
        let counted = self
            .g
            .chain(start, &[&to, &providers, &top_up, &count, &tokens]);
        self.end(counted);

        // 今天花了多少钱
        let period = self.words("zh:period", &["今天", "这周", "这个月"]);
        let spent = self.words("zh:spent", &["花了多少钱"]);
        let asked = self.g.chain(start, &[&period, &spent]);
        self.end(asked);

        // 把自动支付限额设为二十元
        let set = self.words("zh:set", &["把"]);
        let scope = self.words("zh:scope", &["自动支付限额", "每日限额"]);
        let to_value = self.words("zh:set-to", &["设为", "改成"]);
        let limit = self.g.chain(start, &[&set, &scope, &to_value]);
        let valued = self.amount(limit, UNITS);
        self.end(valued);

        // 停止所有代理
        let stop = self.words("zh:stop-agents", &["停止所有代理"]);
        let stopped = self.g.chain(start, &[&stop]);
        self.end(stopped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Intent;
    use crate::intent::mandarin::{read_amount, read_command};
    use voicepay_core::money::{Currency, Money};

    fn ctx() -> ParseContext {
        let mut ctx = ParseContext {
            known_payees: ["喜茶", "瑞幸", "张伟", "七喜"].map(String::from).to_vec(),
            ..ParseContext::default()
        };
        ctx.token_prices
            .insert("Kimi".into(), Money::new(1_000, Currency::CNY));
        ctx
    }

    /// Random sentences of `listening`'s language, as Whisper would write them.
    fn sentences(listening: Listening, count: usize) -> Vec<String> {
        let g = grammar(listening, &ctx());
        let mut seed = 0x1234_5678_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut out = Vec::new();
        while out.len() < count {
            if let Some(words) = g.sample(&mut next, 24) {
                out.push(words.into_iter().map(|(w, _)| w).collect::<String>());
            }
        }
        out
    }

    #[test]
    fn every_command_the_language_says_is_read_as_a_command() {
        for said in sentences(Listening::Command, 3_000) {
            let intent = read_command(&said, &ctx());
            assert_ne!(intent, Intent::None, "{said:?}");
            if let Intent::Pay { payee, .. } = &intent {
                assert!(ctx().known_payees.contains(payee), "{said:?}: {intent:?}");
            }
        }
    }

    #[test]
    fn every_answer_the_language_says_is_an_answer_of_its_question() {
        for said in sentences(Listening::Confirmation, 300) {
            let intent = read_command(&said, &ctx());
            assert!(
                matches!(intent, Intent::Confirm | Intent::Cancel),
                "{said:?}: {intent:?}"
            );
        }
        for said in sentences(Listening::TaskDecision, 300) {
            let intent = read_command(&said, &ctx());
            assert!(
                matches!(intent, Intent::ApproveTask | Intent::RejectTask),
                "{said:?}: {intent:?}"
            );
        }
        for said in sentences(Listening::Amount, 300) {
            let said = said.trim_start();
            let amount = read_amount(said, Currency::CNY).expect(said);
            assert!(amount.money.is_positive(), "{said}");
        }
    }
}
