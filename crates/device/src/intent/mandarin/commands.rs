//! A Mandarin utterance read whole into an intent: a payment (给喜茶付三十六元, 付三十六块五给瑞幸, 转账两百元给张伟), a top-up (帮我给Kimi充值五十元), a spending question (今天花了多少钱), a limit (把自动支付限额设为二十元), an answer (确认, 算了, 批准, 不批准) or a stop of the agents.
//!
//! Every character must be accounted for: a command is its fixed words, one
//! payee and one amount, and whatever else was said (不, 还是, 明天, 可能,
//! 吗) makes it `None`. A negated answer (不批准) is a rejection, and no
//! mix of yes and no is read as either.

use super::amount::{Amount, read_amount};
use crate::intent::{Intent, LimitScope, ParseContext, Period};
use voicepay_core::money::Currency;

/// Longer is not a spoken command.
const MAX_CHARS: usize = 200;
/// Longer is not a payee's name.
const MAX_PAYEE_CHARS: usize = 24;

/// Reads one transcript; anything that is not clearly a command is `None`.
pub fn read_command(transcript: &str, ctx: &ParseContext) -> Intent {
    read(transcript, ctx).unwrap_or(Intent::None)
}

fn read(transcript: &str, ctx: &ParseContext) -> Option<Intent> {
    let said = Utterance::of(transcript)?;
    if let Some(answer) = answer(&said.clauses) {
        return Some(answer);
    }
    let [clause] = said.clauses.as_slice() else {
        return None;
    };
    let clause = without_polite_frame(clause);
    if let Some(query) = spending_query(clause) {
        return Some(query);
    }
    // A command asked as a question is not given.
    if said.question {
        return None;
    }
    revoke_agents(clause)
        .or_else(|| set_limit(clause, ctx))
        .or_else(|| top_up(clause, ctx))
        .or_else(|| pay(clause, ctx))
}

/// The transcript as clauses (split at commas), and whether it asked.
struct Utterance {
    clauses: Vec<String>,
    question: bool,
}

impl Utterance {
    fn of(transcript: &str) -> Option<Utterance> {
        if transcript.chars().count() > MAX_CHARS {
            return None;
        }
        // Whisper writes Traditional characters now and then (給, 確認):
        // read as their Simplified forms, which every table here holds.
        let chars: Vec<char> = simplet2s::convert(transcript.trim()).chars().collect();
        let mut clauses = vec![String::new()];
        let mut question = false;
        for (i, &c) in chars.iter().enumerate() {
            let digit_around = |at: Option<&char>| at.is_some_and(char::is_ascii_digit);
            match c {
                '？' | '?' => {
                    question = true;
                    clauses.push(String::new());
                }
                // A point between digits is a decimal point.
                '.' if digit_around(i.checked_sub(1).and_then(|p| chars.get(p)))
                    && digit_around(chars.get(i + 1)) =>
                {
                    clauses.last_mut()?.push(c);
                }
                '，' | ',' | '、' | '；' | ';' | '：' | ':' | '。' | '.' | '！' | '!' => {
                    // A grouping comma: "2,500".
                    if c == ','
                        && digit_around(i.checked_sub(1).and_then(|p| chars.get(p)))
                        && chars
                            .get(i + 1..i + 4)
                            .is_some_and(|d| d.iter().all(char::is_ascii_digit))
                    {
                        clauses.last_mut()?.push(c);
                    } else {
                        clauses.push(String::new());
                    }
                }
                c if c.is_whitespace() => {
                    // Kept only between two Latin words ("Luckin Coffee").
                    let latin = |at: Option<&char>| at.is_some_and(char::is_ascii_alphanumeric);
                    let before = clauses.last().and_then(|s| s.chars().last());
                    if latin(before.as_ref()) && latin(chars.get(i + 1)) {
                        clauses.last_mut()?.push(' ');
                    }
                }
                c => clauses.last_mut()?.push(c),
            }
        }
        let mut clauses: Vec<String> = clauses
            .into_iter()
            .map(|clause| without_fillers(&clause).to_owned())
            .filter(|clause| !clause.is_empty())
            .collect();
        // Whisper repeats a sentence it heard once (取消全部代理的付款。 three
        // times over): said again at once, it is said once.
        clauses.dedup();
        (!clauses.is_empty()).then_some(Utterance { clauses, question })
    }
}

/// Sounds that say nothing, at either end of a clause.
fn without_fillers(clause: &str) -> &str {
    let mut rest = clause;
    loop {
        let before = rest;
        for filler in ["嗯", "呃", "啊", "那个", "喂", "哎"] {
            rest = rest.strip_prefix(filler).unwrap_or(rest);
        }
        for filler in ["啊", "哦", "呀", "哈", "哈哈"] {
            rest = rest.strip_suffix(filler).unwrap_or(rest);
        }
        if rest == before {
            return rest;
        }
    }
}

/// 请, 帮我, 麻烦你: a request's frame, which changes nothing asked.
fn without_polite_frame(clause: &str) -> &str {
    let mut rest = clause;
    loop {
        let before = rest;
        for frame in [
            "麻烦你",
            "麻烦",
            "请你",
            "请",
            "你帮我",
            "帮我",
            "帮忙",
            "我想要",
            "我想",
            "我要",
        ] {
            rest = rest.strip_prefix(frame).unwrap_or(rest);
        }
        if rest == before {
            return rest;
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    Confirm,
    /// Yields to a no: 好的，取消 cancels.
    WeakConfirm,
    Cancel,
    Approve,
    Reject,
}

const ANSWERS: &[(&str, Answer)] = &[
    ("确认", Answer::Confirm),
    ("确定", Answer::Confirm),
    ("确认付款", Answer::Confirm),
    ("确认支付", Answer::Confirm),
    ("是的", Answer::Confirm),
    ("对", Answer::Confirm),
    ("对的", Answer::Confirm),
    ("没问题", Answer::Confirm),
    ("付吧", Answer::Confirm),
    ("可以", Answer::WeakConfirm),
    ("好", Answer::WeakConfirm),
    ("好的", Answer::WeakConfirm),
    ("好吧", Answer::WeakConfirm),
    ("行", Answer::WeakConfirm),
    ("嗯", Answer::WeakConfirm),
    ("ok", Answer::WeakConfirm),
    ("取消", Answer::Cancel),
    ("取消付款", Answer::Cancel),
    ("算了", Answer::Cancel),
    ("不要", Answer::Cancel),
    ("不要了", Answer::Cancel),
    ("不用", Answer::Cancel),
    ("不用了", Answer::Cancel),
    ("不", Answer::Cancel),
    ("不了", Answer::Cancel),
    ("不付了", Answer::Cancel),
    ("别付了", Answer::Cancel),
    ("不要付", Answer::Cancel),
    ("不确认", Answer::Cancel),
    ("批准", Answer::Approve),
    ("批准吧", Answer::Approve),
    ("同意", Answer::Approve),
    ("同意吧", Answer::Approve),
    ("拒绝", Answer::Reject),
    ("拒绝吧", Answer::Reject),
    ("不批准", Answer::Reject),
    ("不同意", Answer::Reject),
    ("不要批准", Answer::Reject),
];

/// The whole transcript as an answer (确认, 好的，取消, 不批准), if it is one.
pub(super) fn read_answer(transcript: &str) -> Option<Intent> {
    answer(&Utterance::of(transcript)?.clauses)
}

/// Whether every clause of the transcript is answers and nothing else,
/// whatever they add up to (不，批准 is answers that contradict).
pub(super) fn only_answers(transcript: &str) -> bool {
    Utterance::of(transcript).is_some_and(|said| {
        (said.clauses.iter()).all(|clause| answer_words(&clause.to_lowercase()).is_some())
    })
}

/// Every way this answer is said.
pub fn answer_forms(kind: crate::intent::AnswerKind) -> Vec<&'static str> {
    use crate::intent::AnswerKind;
    let said = |answer: Answer| match answer {
        Answer::Confirm | Answer::WeakConfirm => AnswerKind::Confirm,
        Answer::Cancel => AnswerKind::Cancel,
        Answer::Approve => AnswerKind::Approve,
        Answer::Reject => AnswerKind::Reject,
    };
    (ANSWERS.iter())
        .filter(|(_, answer)| said(*answer) == kind)
        .map(|(word, _)| *word)
        .collect()
}

/// A clause made of answers and nothing else, written without a pause
/// between them (好的确认): each the longest answer that starts where the
/// last ended, so 不批准 stays one.
fn answer_words(clause: &str) -> Option<Vec<Answer>> {
    let mut words = Vec::new();
    let mut rest = clause;
    while !rest.is_empty() {
        let (word, answer) = (ANSWERS.iter())
            .filter(|(word, _)| rest.starts_with(word))
            .max_by_key(|(word, _)| word.len())?;
        words.push(*answer);
        rest = &rest[word.len()..];
    }
    Some(words)
}

/// The whole utterance as an answer, when every clause is one.
fn answer(clauses: &[String]) -> Option<Intent> {
    let mut said = Vec::new();
    for clause in clauses {
        said.extend(answer_words(&clause.to_lowercase())?);
    }
    let has = |a: Answer| said.contains(&a);
    let yes_to_task = has(Answer::Approve);
    let no_to_task = has(Answer::Reject);
    let no = has(Answer::Cancel);
    let yes = has(Answer::Confirm);
    Some(match (yes_to_task, no_to_task) {
        (true, true) => return None,
        // 不，批准: a no and an approval.
        (true, false) if no => return None,
        (true, false) => Intent::ApproveTask,
        (false, true) if yes => return None,
        (false, true) => Intent::RejectTask,
        (false, false) if yes && no => return None,
        (false, false) if no => Intent::Cancel,
        (false, false) => Intent::Confirm,
    })
}

/// Words that make a command something else: negation, doubt, another
/// time, another choice, a question.
const NOT_A_COMMAND: &[&str] = &[
    "不",
    "别",
    "没",
    "勿",
    "甭",
    "还是",
    "或者",
    "或",
    "明天",
    "后天",
    "下周",
    "下个",
    "下星期",
    "以后",
    "等会",
    "待会",
    "晚点",
    "每天",
    "每周",
    "每月",
    // A time gone by: 昨天给喜茶付了三十元 tells, it does not ask.
    "已经",
    "昨天",
    "前天",
    "刚才",
    "刚刚",
    "可能",
    "也许",
    "大概",
    "好像",
    "左右",
    "差不多",
    "多少",
    "几",
    "吗",
    // 吗 as Whisper writes it now and then.
    "嘛",
    "呢",
    "么",
];

fn refused(words: &str) -> bool {
    NOT_A_COMMAND.iter().any(|w| words.contains(w))
}

/// Whether the transcript asks, or holds a word that makes a command
/// something else (别, 左右, 明天, 吗): what a closed-domain reading, which
/// cannot say these words, must never be taken in place of.
pub fn refuses(transcript: &str) -> bool {
    Utterance::of(transcript)
        .is_some_and(|said| said.question || said.clauses.iter().any(|c| refused(c)))
}

/// Whether the transcript is answers and nothing else that contradict each
/// other (不，批准; 确认，取消): heard clearly as two sides, so a reading
/// held to one answer must never be taken in its place.
pub fn answers_contradict(transcript: &str) -> bool {
    only_answers(transcript) && read_answer(transcript).is_none()
}

/// What may be left of a command once its parts are taken: particles.
fn only_particles(rest: &str) -> bool {
    let mut rest = rest;
    loop {
        let before = rest;
        for particle in ["吧", "一下", "了", "哦", "好吗", "谢谢"] {
            rest = rest.strip_suffix(particle).unwrap_or(rest);
        }
        if rest.is_empty() {
            return true;
        }
        if rest == before {
            return false;
        }
    }
}

/// 今天花了多少钱, 这个月一共花了多少: the user's own spending.
fn spending_query(clause: &str) -> Option<Intent> {
    let asks = ["花了多少", "消费了多少", "用了多少", "支出了多少", "花多少"]
        .iter()
        .any(|w| clause.contains(w));
    if !asks {
        return None;
    }
    // Someone else's, another time, or "how much can I spend".
    let other = ["他", "她", "它", "别人", "明天", "下", "能", "可以", "还"];
    if other.iter().any(|w| clause.contains(w)) {
        return None;
    }
    let period = if [
        "这周",
        "本周",
        "这个星期",
        "这星期",
        "这礼拜",
        "七天",
        "一周",
    ]
    .iter()
    .any(|w| clause.contains(w))
    {
        Period::Week
    } else if ["这个月", "本月", "这月", "三十天"]
        .iter()
        .any(|w| clause.contains(w))
    {
        Period::Month
    } else {
        Period::Today
    };
    Some(Intent::QuerySpending { period })
}

/// 停止所有代理, 取消全部代理的付款: every agent stopped.
fn revoke_agents(clause: &str) -> Option<Intent> {
    let mut rest = clause;
    rest = ["停止", "停掉", "撤销", "取消", "关闭"]
        .iter()
        .find_map(|verb| rest.strip_prefix(verb))?;
    for word in ["所有", "全部"] {
        rest = rest.strip_prefix(word).unwrap_or(rest);
    }
    rest = rest.strip_prefix("的").unwrap_or(rest);
    rest = ["AI代理", "代理", "智能体"]
        .iter()
        .find_map(|noun| rest.strip_prefix(noun))?;
    rest = rest.strip_prefix("的").unwrap_or(rest);
    for object in ["付款", "支付", "任务"] {
        rest = rest.strip_prefix(object).unwrap_or(rest);
    }
    only_particles(rest).then_some(Intent::RevokeAgents)
}

/// 把自动支付限额设为二十元, 每日限额改成五百元.
fn set_limit(clause: &str, ctx: &ParseContext) -> Option<Intent> {
    const SETTERS: &[&str] = &[
        "设置为",
        "设置成",
        "调整为",
        "调整到",
        "提高到",
        "降低到",
        "增加到",
        "减少到",
        "设为",
        "设成",
        "改为",
        "改成",
        "调到",
        "调成",
        "提到",
        "降到",
        "定为",
        "变成",
    ];
    let (at, setter) = SETTERS
        .iter()
        .filter_map(|s| clause.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at)?;
    let (before, after) = (&clause[..at], &clause[at + setter.len()..]);
    let mut subject = before.strip_prefix("把").unwrap_or(before);
    subject = subject.strip_prefix("我的").unwrap_or(subject);
    let scope = match subject
        .strip_suffix("限额")
        .or(subject.strip_suffix("额度"))?
    {
        "自动支付" | "自动付款" | "免确认支付" | "自动" => LimitScope::Auto,
        "每日" | "每天" | "单日" | "日" | "每日支付" | "每天支付" => {
            LimitScope::Daily
        }
        _ => return None,
    };
    let amount = whole_amount(after, ctx)?;
    Some(Intent::SetLimit {
        scope,
        amount: amount.money,
    })
}

/// An amount that takes all of `text` but its particles.
fn whole_amount(text: &str, ctx: &ParseContext) -> Option<Amount> {
    let amount = read_amount(text, ctx.default_currency)?;
    only_particles(&text[amount.len..]).then_some(amount)
}

/// 给Kimi充值五十元, 帮我给Kimi充值一百万个token.
fn top_up(clause: &str, ctx: &ParseContext) -> Option<Intent> {
    let at = clause.find("充值")?;
    let (before, after) = (&clause[..at], &clause[at + "充值".len()..]);
    let (provider, rest) = match ["给", "为"].iter().find_map(|m| before.strip_prefix(m)) {
        // 给Kimi充值五十元
        Some(named) => (known_provider(named, ctx)?, after),
        // 充值五十元给Kimi: the provider last.
        None if before.is_empty() => {
            let (amount_part, named) = after.rsplit_once('给')?;
            (known_provider(named, ctx)?, amount_part)
        }
        None => return None,
    };
    // A bare number is a count of tokens, read whole (never as money).
    let amount = read_amount(rest, Currency::CNY)?;
    let tail = &rest[amount.len..];
    let tokens_said = ["个tokens", "个token", "tokens", "token", "个词元", "词元"]
        .iter()
        .find_map(|w| {
            let head = tail.get(..w.len())?;
            head.eq_ignore_ascii_case(w).then(|| &tail[w.len()..])
        });
    let tokens = match tokens_said {
        Some(left) if !amount.unit_said => {
            if !only_particles(left) {
                return None;
            }
            u64::try_from(amount.money.minor / 100).ok().filter(|t| {
                // A count has no fraction.
                amount.money.minor % 100 == 0 && *t > 0
            })?
        }
        Some(_) => return None,
        None if amount.unit_said && only_particles(tail) => {
            voicepay_core::policy::tokens_for(&ctx.token_prices, &provider, amount.money)?
        }
        None => return None,
    };
    Some(Intent::TopUp { tokens, provider })
}

/// The provider `named` is, spelled as the profile spells it.
fn known_provider(named: &str, ctx: &ParseContext) -> Option<String> {
    let named = named.trim();
    ctx.known_providers
        .iter()
        .find(|p| p.eq_ignore_ascii_case(named))
        .cloned()
}

const PAY_VERBS: &[&str] = &["付款", "付钱", "支付", "转账", "打款", "转", "付"];

/// A payment, in the orders people say it:
/// 给喜茶付三十六元 (to whom, the verb, how much);
/// 付三十六块五给瑞幸, 转账两百元给张伟 (the verb, how much, to whom);
/// 付给七喜三十元, 支付喜茶三十六元 (the verb, to whom, how much).
fn pay(clause: &str, ctx: &ParseContext) -> Option<Intent> {
    let (payee, amount) = to_whom_first(clause, ctx)
        .or_else(|| how_much_first(clause, ctx))
        .or_else(|| whom_then_how_much(clause, ctx))?;
    if !amount.money.is_positive() {
        return None;
    }
    Some(Intent::Pay {
        amount: amount.money,
        payee: payee_named(&payee, ctx)?,
    })
}

/// 给{payee}{verb}{amount}, or with 向 or 跟.
fn to_whom_first(clause: &str, ctx: &ParseContext) -> Option<(String, Amount)> {
    let rest = ["给", "向", "跟"]
        .iter()
        .find_map(|m| clause.strip_prefix(m))?;
    // The verb after the payee: the last one, so a name holding 付 stays whole.
    let (at, verb) = PAY_VERBS
        .iter()
        .filter_map(|v| rest.rfind(v).map(|at| (at, *v)))
        .max_by_key(|(at, verb)| (*at, verb.len()))?;
    // "支付" found as "付" one character in: take the longer verb.
    let (at, verb) = PAY_VERBS
        .iter()
        .filter(|v| v.len() > verb.len())
        .find_map(|v| {
            let start = at.checked_sub(v.len() - verb.len())?;
            rest.get(start..)?.starts_with(v).then_some((start, *v))
        })
        .unwrap_or((at, verb));
    let payee = &rest[..at];
    let amount = whole_amount(&rest[at + verb.len()..], ctx)?;
    Some((payee.to_owned(), amount))
}

/// {verb}{amount}给{payee}.
fn how_much_first(clause: &str, ctx: &ParseContext) -> Option<(String, Amount)> {
    let rest = PAY_VERBS.iter().find_map(|v| clause.strip_prefix(v))?;
    let amount = read_amount(rest, ctx.default_currency)?;
    let payee = rest[amount.len..].strip_prefix('给')?;
    let payee = trailing_particles_off(payee);
    Some((payee.to_owned(), amount))
}

/// {verb}[给]{payee}{amount}: the payee runs to where an amount takes the
/// rest. Without 给 only a payee in the book: 转账的手续费是两块 is chatter.
fn whom_then_how_much(clause: &str, ctx: &ParseContext) -> Option<(String, Amount)> {
    let rest = PAY_VERBS.iter().find_map(|v| clause.strip_prefix(v))?;
    let (rest, to) = match rest.strip_prefix('给') {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let (at, amount) = rest
        .char_indices()
        .skip(1)
        .find_map(|(at, _)| whole_amount(&rest[at..], ctx).map(|amount| (at, amount)))?;
    let payee = &rest[..at];
    let known = || ctx.known_payees.iter().any(|p| p == payee);
    (to || known()).then(|| (payee.to_owned(), amount))
}

fn trailing_particles_off(text: &str) -> &str {
    let mut rest = text;
    loop {
        let before = rest;
        for particle in ["吧", "一下", "了", "哦", "谢谢"] {
            rest = rest.strip_suffix(particle).unwrap_or(rest);
        }
        if rest == before {
            return rest;
        }
    }
}

/// The payee as the book spells it, or as heard; `None` when what was
/// heard as a name holds a refusal (不, 明天, 吗) and is nobody in the book.
fn payee_named(heard: &str, ctx: &ParseContext) -> Option<String> {
    let heard = heard.trim();
    if heard.is_empty() || heard.chars().count() > MAX_PAYEE_CHARS {
        return None;
    }
    if let Some(known) = known_payee(heard, ctx) {
        return Some(known);
    }
    // Not in the book: no refusal word, no verb, and no number at its
    // start (付款三十元 must not pay "三" ten yuan).
    if refused(heard)
        || PAY_VERBS.iter().any(|v| heard.contains(v))
        || read_amount(heard, ctx.default_currency).is_some()
    {
        return None;
    }
    Some(heard.to_owned())
}

/// The book's payee `heard` names: spelled alike (spaces and case aside),
/// or sounding alike.
fn known_payee(heard: &str, ctx: &ParseContext) -> Option<String> {
    let squeezed = |name: &str| -> String {
        name.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = squeezed(heard);
    if let Some(known) = ctx.known_payees.iter().find(|p| squeezed(p) == wanted) {
        return Some(known.clone());
    }
    // Whisper writes a homophone (西茶 for 喜茶, 瑞星 for 瑞幸).
    sounds_like(heard, &ctx.known_payees).cloned()
}

/// "给喜茶付多少钱？" answered: 三十六块五, 36元吧. `None` for anything
/// more, or asked back.
pub fn amount_alone(transcript: &str, ctx: &ParseContext) -> Option<voicepay_core::money::Money> {
    let said = Utterance::of(transcript)?;
    let [clause] = said.clauses.as_slice() else {
        return None;
    };
    if said.question {
        return None;
    }
    let amount = whole_amount(clause, ctx)?;
    amount.money.is_positive().then_some(amount.money)
}

/// "要付给谁？" answered: 喜茶, 给喜茶, 付给瑞幸吧: a payee of the book only.
pub fn payee_alone(transcript: &str, ctx: &ParseContext) -> Option<String> {
    known_payee(&name_answer(transcript), ctx)
}

/// The name in an answer to "要付给谁？": 付给瑞幸吧 is 瑞幸. Empty when the
/// answer is more than one clause or asks back.
pub fn name_answer(transcript: &str) -> String {
    let Some(said) = Utterance::of(transcript) else {
        return String::new();
    };
    let [clause] = said.clauses.as_slice() else {
        return String::new();
    };
    if said.question {
        return String::new();
    }
    let clause = without_polite_frame(clause);
    let name = ["付给", "转给", "给"]
        .iter()
        .find_map(|to| clause.strip_prefix(to))
        .unwrap_or(clause);
    trailing_particles_off(name).trim().to_owned()
}

/// Pay verbs that say no amount (给喜茶付款): a payment missing its amount.
const PAY_WORDS: &[&str] = &["付款", "付钱", "转账", "打款", "支付"];

/// "给喜茶付款" or "付三十六元": a payment command missing exactly one
/// part, as English's `partial_payment` reads it. The payee must be in the
/// book; the amount must name its currency or unit (付三十六 is too little
/// to ask about). Anything read as a command, and anything refused (不,
/// 明天, 吗), is none.
pub fn partial_payment(transcript: &str, ctx: &ParseContext) -> Option<crate::intent::Partial> {
    use crate::intent::Partial;
    if read(transcript, ctx).is_some() {
        return None;
    }
    let said = Utterance::of(transcript)?;
    let [clause] = said.clauses.as_slice() else {
        return None;
    };
    let clause = without_polite_frame(clause);
    if said.question || refused(clause) {
        return None;
    }
    // 给喜茶付款, 付款给喜茶, 付给喜茶: the payee, no amount.
    let payee_named = ["给", "向"]
        .iter()
        .find_map(|to| clause.strip_prefix(to))
        .and_then(|rest| {
            let rest = trailing_particles_off(rest);
            PAY_WORDS.iter().find_map(|v| rest.strip_suffix(v))
        })
        .or_else(|| {
            ["付款给", "付钱给", "转账给", "付给", "转给"]
                .iter()
                .find_map(|v| clause.strip_prefix(v))
                .map(trailing_particles_off)
        });
    if let Some(name) = payee_named {
        return known_payee(name.trim(), ctx).map(Partial::Payee);
    }
    // 付三十六元, 转账两百块: the amount, no payee.
    let rest = PAY_VERBS.iter().find_map(|v| clause.strip_prefix(v))?;
    let amount = whole_amount(rest, ctx)?;
    (amount.unit_said && amount.money.is_positive()).then_some(Partial::Amount(amount.money))
}

/// Whether text not read as a command still plainly tried to be one, so the
/// device says it did not catch it: a pay verb with money or a payee of the
/// book, a top-up with a provider, a limit with an amount. Never a question,
/// a negated or put-off command, or talk about oneself (我付了…; 我想 and
/// 我要 frame a request).
pub fn attempted_command(transcript: &str, ctx: &ParseContext) -> bool {
    let Some(said) = Utterance::of(transcript) else {
        return false;
    };
    if said.question {
        return false;
    }
    said.clauses.iter().any(|clause| {
        let clause = without_polite_frame(clause);
        // Talk about oneself, or a command negated, doubted, put off or asked.
        if clause.starts_with('我') || refused(clause) {
            return false;
        }
        let money = (clause.char_indices()).any(|(at, _)| {
            read_amount(&clause[at..], ctx.default_currency).is_some_and(|a| a.unit_said)
        });
        let payee = ctx.known_payees.iter().any(|p| clause.contains(p.as_str()));
        let paying = PAY_VERBS.iter().any(|v| clause.contains(v));
        let topping_up = clause.contains("充值")
            && ctx
                .known_providers
                .iter()
                .any(|p| clause.contains(p.as_str()));
        let limiting = clause.contains("限额") && money;
        (paying && (money || payee)) || topping_up || limiting
    })
}

/// The one payee in the book that sounds like `heard`, tones aside, with
/// any of each character's readings; none when two do (the user is asked).
fn sounds_like<'a>(heard: &str, book: &'a [String]) -> Option<&'a String> {
    let heard = readings(heard)?;
    let mut alike = book
        .iter()
        .filter(|name| readings(name).is_some_and(|name| same_sound(&heard, &name)));
    let first = alike.next()?;
    alike.next().is_none().then_some(first)
}

/// Each character's toneless readings; `None` unless every one is Han.
pub(super) fn readings(name: &str) -> Option<Vec<Vec<&'static str>>> {
    use pinyin::ToPinyinMulti;
    name.chars()
        .map(|c| {
            let multi = c.to_pinyin_multi()?;
            Some(multi.into_iter().map(|reading| reading.plain()).collect())
        })
        .collect()
}

pub(super) fn same_sound(a: &[Vec<&str>], b: &[Vec<&str>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.iter().any(|reading| b.contains(reading)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicepay_core::money::Money;

    fn ctx() -> ParseContext {
        let mut ctx = ParseContext {
            known_payees: ["喜茶", "瑞幸", "张伟", "七喜", "不二家", "Luckin Coffee"]
                .map(String::from)
                .to_vec(),
            ..ParseContext::default()
        };
        ctx.token_prices
            .insert("Kimi".into(), Money::new(1_000, Currency::CNY));
        ctx
    }

    fn read(text: &str) -> Intent {
        read_command(text, &ctx())
    }

    fn pay(minor: i64, payee: &str) -> Intent {
        Intent::Pay {
            amount: Money::new(minor, Currency::CNY),
            payee: payee.into(),
        }
    }

    #[test]
    fn payments_are_read_in_every_order_people_say_them() {
        for (said, intent) in [
            ("给喜茶付三十六元", pay(3_600, "喜茶")),
            ("给喜茶付三十六元。", pay(3_600, "喜茶")),
            ("付三十六块五给瑞幸", pay(3_650, "瑞幸")),
            ("转账两百元给张伟", pay(20_000, "张伟")),
            ("给张伟转账两百元", pay(20_000, "张伟")),
            ("向瑞幸支付三十元", pay(3_000, "瑞幸")),
            ("请给喜茶付款三十六元", pay(3_600, "喜茶")),
            ("帮我给喜茶付36元吧", pay(3_600, "喜茶")),
            ("付给七喜三十元", pay(3_000, "七喜")),
            ("支付喜茶三十六元", pay(3_600, "喜茶")),
            ("给不二家付二十元", pay(2_000, "不二家")),
            ("给 luckin coffee 付 25 元", pay(2_500, "Luckin Coffee")),
            ("给喜茶付六块八毛", pay(680, "喜茶")),
            ("给王芳转账两千五", pay(250_000, "王芳")),
            // Letters of two bytes before the verb: nothing is cut mid-letter.
            ("给éé付三十元", pay(3_000, "éé")),
            (
                "给喜茶付五美元",
                Intent::Pay {
                    amount: Money::new(500, Currency::USD),
                    payee: "喜茶".into(),
                },
            ),
        ] {
            assert_eq!(read(said), intent, "{said}");
        }
    }

    #[test]
    fn a_negated_doubted_put_off_or_asked_payment_is_none() {
        for said in [
            "不要给喜茶付三十六元",
            "别给喜茶付钱",
            "给喜茶不付三十六元",
            "明天给喜茶付三十六元",
            "给喜茶还是瑞幸付三十元",
            "可能给喜茶付三十元",
            "给喜茶付三十元左右",
            "给喜茶付三十六元吗",
            "要不要给喜茶付三十六元？",
            "给喜茶付三十六元？",
            "给喜茶付几十块",
            "给喜茶付三五元",
            "给喜茶付钱",
            "转账两百元",
            "给喜茶三十六元",
            "喜茶的奶茶很好喝",
            "给喜茶付零元",
            "付款三十元",
        ] {
            assert_eq!(read(said), Intent::None, "{said}");
        }
    }

    #[test]
    fn traditional_characters_read_as_their_simplified_forms() {
        assert_eq!(read("給喜茶付三十六塊五。"), pay(3_650, "喜茶"));
        assert_eq!(read("好的，確認。"), Intent::Confirm);
        assert_eq!(read("轉賬兩百元給張偉"), pay(20_000, "张伟"));
    }

    #[test]
    fn answers_written_without_a_pause_are_read_as_said() {
        assert_eq!(read("好的确认。"), Intent::Confirm);
        assert_eq!(read("好的取消"), Intent::Cancel);
        assert_eq!(read("不好"), Intent::Cancel);
        assert_eq!(read("不批准"), Intent::RejectTask);
        assert_eq!(read("同意批准"), Intent::ApproveTask);
        for mixed in ["确认不要", "不批准同意", "批准不", "确认一下吧好"] {
            assert_eq!(read(mixed), Intent::None, "{mixed}");
        }
    }

    #[test]
    fn a_refusal_word_or_a_question_is_told_apart_from_a_command() {
        for refusing in [
            "別給瑞幸付30元。",
            "给美团付30元左右",
            "给喜茶付36元嘛。",
            "给喜茶付三十六元？",
            "明天给喜茶付三十六元",
            "已经给瑞幸付过钱了",
        ] {
            assert!(refuses(refusing), "{refusing}");
            assert!(!read(refusing).is_payment(), "{refusing}");
        }
        for plain in [
            "给喜茶付三十六元。",
            "给系茶富36元",
            "帮我给瑞幸福二十七块钱",
        ] {
            assert!(!refuses(plain), "{plain}");
        }
    }

    #[test]
    fn answers_that_contradict_are_told_apart_from_one_answer() {
        for mixed in [
            "不、批准。",
            "不，批准",
            "确认、取消",
            "确认，取消。",
            "批准，拒绝",
        ] {
            assert!(answers_contradict(mixed), "{mixed}");
        }
        for one in [
            "批准",
            "不批准。",
            "好的确认",
            "好的，确认",
            "算了",
            "给喜茶付三十六元",
        ] {
            assert!(!answers_contradict(one), "{one}");
        }
    }

    #[test]
    fn a_sentence_whisper_repeats_is_read_once() {
        assert_eq!(
            read("给喜茶付三十六元。给喜茶付三十六元。给喜茶付三十六元。"),
            pay(3_600, "喜茶")
        );
        assert_eq!(read("停止所有代理。停止所有代理。"), Intent::RevokeAgents);
        // Two different payments are still none.
        assert_eq!(read("给喜茶付三十六元。给瑞幸付三十六元。"), Intent::None);
    }

    #[test]
    fn a_payee_heard_as_a_homophone_is_the_one_in_the_book() {
        assert_eq!(read("给西茶付三十六元"), pay(3_600, "喜茶"));
        assert_eq!(read("付三十六块五给瑞星"), pay(3_650, "瑞幸"));
        assert_eq!(read("给张维转账两百元"), pay(20_000, "张伟"));
        // Two in the book sound alike: neither is chosen for the user.
        let mut ctx = ctx();
        ctx.known_payees.push("张薇".into());
        let intent = read_command("给章伟转账两百元", &ctx);
        assert_eq!(intent, pay(20_000, "章伟"), "kept as heard");
        // Nobody in the book sounds like it: kept as heard.
        assert_eq!(read("给王芳付十元"), pay(1_000, "王芳"));
    }

    #[test]
    fn a_missing_amount_or_payee_is_answered_alone() {
        let cny = |minor| Some(Money::new(minor, Currency::CNY));
        assert_eq!(amount_alone("三十六块五。", &ctx()), cny(3_650));
        assert_eq!(amount_alone("36元吧", &ctx()), cny(3_600));
        for not_one in [
            "三十六块五？",
            "大概三十块",
            "三十块，五十块",
            "零元",
            "喜茶",
        ] {
            assert_eq!(amount_alone(not_one, &ctx()), None, "{not_one}");
        }
        assert_eq!(payee_alone("喜茶。", &ctx()).as_deref(), Some("喜茶"));
        assert_eq!(payee_alone("付给瑞星吧", &ctx()).as_deref(), Some("瑞幸"));
        for nobody in ["王芳", "喜茶？", "三十元", "不知道"] {
            assert_eq!(payee_alone(nobody, &ctx()), None, "{nobody}");
        }
    }

    #[test]
    fn a_payment_missing_one_part_is_asked_about_and_nothing_else_is() {
        use crate::intent::Partial;
        let partial = |text| partial_payment(text, &ctx());
        for said in ["给喜茶付款", "请给喜茶付钱吧", "付款给喜茶", "付给西茶"]
        {
            assert_eq!(partial(said), Some(Partial::Payee("喜茶".into())), "{said}");
        }
        for said in ["付三十六元", "转账两百块", "付36元吧"] {
            assert!(
                matches!(partial(said), Some(Partial::Amount(m)) if m.is_positive()),
                "{said}"
            );
        }
        for not_one in [
            "给喜茶付三十六元",
            "付三十六",
            "不要给喜茶付款",
            "明天给喜茶付款",
            "给喜茶付款吗",
            "给王五付款",
            "付零元",
            "我给喜茶付款了",
        ] {
            assert_eq!(partial(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn a_command_tried_but_not_made_out_is_told_from_talk() {
        let tried = |text| attempted_command(text, &ctx());
        assert!(tried("付二十元给张伟和王芳"));
        assert!(tried("给Kimi充值很多"));
        assert!(tried("把限额设成三十块和五十块"));
        for talk in [
            "我付了三十块",
            "付款码在哪里？",
            "今天天气怎么样",
            "给喜茶付三十六元吗",
            "不要给喜茶付三十六元",
            "明天给喜茶付三十六元",
        ] {
            assert!(!tried(talk), "{talk}");
        }
    }

    #[test]
    fn the_name_in_an_answer_is_the_name_alone() {
        assert_eq!(name_answer("付给瑞幸吧。"), "瑞幸");
        assert_eq!(name_answer("请转给张伟"), "张伟");
        assert_eq!(name_answer("喜茶"), "喜茶");
        assert_eq!(name_answer("喜茶？"), "");
        assert_eq!(name_answer("喜茶，瑞幸"), "");
    }

    #[test]
    fn chatter_about_money_is_never_a_payment() {
        for said in [
            "今天天气怎么样",
            "我付出了很多努力",
            "他给我转了三十块钱",
            "我昨天给喜茶付了三十元",
            "给喜茶付了三十元",
            "已经给瑞幸付过钱了",
            "这杯奶茶三十六元",
            "喜茶的奶茶三十六元一杯",
            "转账的手续费是两块",
            "付款码在哪里",
            "给我三十块钱",
        ] {
            assert!(!read(said).is_payment(), "{said}: {:?}", read(said));
        }
    }

    #[test]
    fn any_string_of_command_characters_reads_without_panicking() {
        let alphabet: Vec<char> = "给向付款转账支充值喜茶瑞幸三十六块五元毛点两千万不吗？，。 Kimi7.é个token确认批准限额设为每日花了多少"
            .chars()
            .collect();
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            let len = 1 + (seed % 16) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            if let Intent::Pay { amount, payee } = read(&text) {
                assert!(amount.is_positive() && !payee.trim().is_empty(), "{text}");
            }
        }
    }

    #[test]
    fn answers_are_read_whole_and_a_negated_approval_never_approves() {
        for (said, intent) in [
            ("确认", Intent::Confirm),
            ("好的", Intent::Confirm),
            ("嗯，确认。", Intent::Confirm),
            ("取消", Intent::Cancel),
            ("算了", Intent::Cancel),
            ("不要", Intent::Cancel),
            ("好的，取消", Intent::Cancel),
            ("批准", Intent::ApproveTask),
            ("同意", Intent::ApproveTask),
            ("好，批准", Intent::ApproveTask),
            ("拒绝", Intent::RejectTask),
            ("不批准", Intent::RejectTask),
            ("不同意", Intent::RejectTask),
            ("不，批准", Intent::None),
            ("批准，拒绝", Intent::None),
            ("确认，取消", Intent::None),
            ("确认，拒绝", Intent::None),
            ("确认一下天气", Intent::None),
        ] {
            assert_eq!(read(said), intent, "{said}");
        }
    }

    #[test]
    fn spending_questions_limits_top_ups_and_stops_are_read() {
        for (said, intent) in [
            (
                "今天花了多少钱",
                Intent::QuerySpending {
                    period: Period::Today,
                },
            ),
            (
                "我这个月一共花了多少？",
                Intent::QuerySpending {
                    period: Period::Month,
                },
            ),
            (
                "这周花了多少钱",
                Intent::QuerySpending {
                    period: Period::Week,
                },
            ),
            ("他今天花了多少钱", Intent::None),
            ("我今天还能花多少", Intent::None),
            (
                "把自动支付限额设为二十元",
                Intent::SetLimit {
                    scope: LimitScope::Auto,
                    amount: Money::new(2_000, Currency::CNY),
                },
            ),
            (
                "每日限额改成五百元",
                Intent::SetLimit {
                    scope: LimitScope::Daily,
                    amount: Money::new(50_000, Currency::CNY),
                },
            ),
            ("把每日限额提高五十元", Intent::None),
            ("把限额设为二十元", Intent::None),
            (
                "帮我给Kimi充值五十元",
                Intent::TopUp {
                    tokens: 5_000_000,
                    provider: "Kimi".into(),
                },
            ),
            (
                "给kimi充值一百万个token",
                Intent::TopUp {
                    tokens: 1_000_000,
                    provider: "Kimi".into(),
                },
            ),
            ("给Qwen充值五十元", Intent::None),
            ("给Kimi充值五十个", Intent::None),
            ("停止所有代理", Intent::RevokeAgents),
            ("取消全部代理的付款", Intent::RevokeAgents),
            ("停止代理吗？", Intent::None),
        ] {
            assert_eq!(read(said), intent, "{said}");
        }
    }
}
