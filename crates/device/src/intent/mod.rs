//! Turns a transcript into an [`Intent`]: the command the user spoke, or `Intent::None` when it is not clearly one.
//!
//! The parser is a rule system, not a model, and it prefers `None` to a guess:
//! a payment needs an imperative verb first (after polite filler such as
//! "please" or "can you"), exactly one readable amount and a payee; negation,
//! alternatives ("or"), idioms ("pay attention"), other times ("tomorrow"),
//! statements and questions all fall to `None`. Short answers ("yes", "no,
//! cancel that") must be the whole utterance.
//!
//! Layout: `text` splits Whisper output into tokens, `quantity` finds amounts
//! in a command, `names` matches payees and providers, `lexicon` is the shape
//! of a language's tables, and `english` is English (with `numbers` and
//! `currency`, its readers). The rules below read the [`Lexicon`] of a
//! language written in words; Mandarin, written without spaces, has readers
//! of its own in `mandarin`. Each public function here picks by
//! [`ParseContext::language`] (see [`reader`]), so callers never branch.

mod answers;
mod currency;
mod english;
pub mod language;
mod lexicon;
pub mod mandarin;
mod names;
mod numbers;
mod partial;
mod quantity;
#[cfg(test)]
mod tests;
mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use answers::{AnswerKind, AnswerReading, Reply, read_reply};
pub use partial::{Doubt, Partial, amount_alone, attempted_command, partial_payment, payee_alone};

use crate::language::Language;
use lexicon::{Lexicon, Phrase};
use quantity::{Quantity, Value};
use text::{Sentence, Token};
use voicepay_core::money::{Currency, Money, MoneyError};

/// What the parser knows about the device and the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseContext {
    /// Which word tables to read with.
    pub language: Language,
    /// Used when an amount is spoken without a currency.
    pub default_currency: Currency,
    /// Payees the user has paid before: a close hearing becomes their spelling.
    pub known_payees: Vec<String>,
    /// Token top-up providers ("Kimi", "DeepSeek").
    pub known_providers: Vec<String>,
    /// Provider -> price of a million tokens (the profile's
    /// `[payments] token_prices`): turns "top up Kimi with 50 yuan" into a
    /// token count. A provider without a price takes no money top-up.
    pub token_prices: BTreeMap<String, Money>,
}

impl Default for ParseContext {
    fn default() -> Self {
        ParseContext {
            language: Language::English,
            default_currency: Currency::CNY,
            known_payees: Vec::new(),
            known_providers: ["Kimi", "Qwen", "Claude", "DeepSeek", "OpenAI"]
                .map(String::from)
                .to_vec(),
            token_prices: BTreeMap::new(),
        }
    }
}

/// Which limit a spoken change names (a money rule's noun: the policy keeps it).
pub use voicepay_core::policy::LimitScope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Today,
    Week,
    Month,
}

/// A spoken command. Serialises as DESIGN.md's intent JSON, e.g.
/// `{"kind":"pay","amount":"36.00","currency":"CNY","payee":"Heytea"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "IntentJson", try_from = "IntentJson")]
pub enum Intent {
    Pay {
        amount: Money,
        payee: String,
    },
    TopUp {
        tokens: u64,
        provider: String,
    },
    Confirm,
    Cancel,
    SetLimit {
        scope: LimitScope,
        amount: Money,
    },
    QuerySpending {
        period: Period,
    },
    ApproveTask,
    RejectTask,
    /// "Stop the agents", "cancel all agent payments": every agent stopped.
    RevokeAgents,
    /// Not a command; never a payment.
    None,
}

impl Intent {
    /// True for the intents that move money: `Pay` and `TopUp`.
    pub fn is_payment(&self) -> bool {
        matches!(self, Intent::Pay { .. } | Intent::TopUp { .. })
    }
}

/// The wire shape: money as a decimal string plus a currency code, in this field order.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum IntentJson {
    Pay {
        amount: String,
        currency: Currency,
        payee: String,
    },
    TopUp {
        tokens: u64,
        provider: String,
    },
    Confirm,
    Cancel,
    SetLimit {
        scope: LimitScope,
        amount: String,
        currency: Currency,
    },
    QuerySpending {
        period: Period,
    },
    ApproveTask,
    RejectTask,
    RevokeAgents,
    None,
}

impl From<Intent> for IntentJson {
    fn from(intent: Intent) -> Self {
        match intent {
            Intent::Pay { amount, payee } => IntentJson::Pay {
                amount: amount.to_decimal_string(),
                currency: amount.currency,
                payee,
            },
            Intent::TopUp { tokens, provider } => IntentJson::TopUp { tokens, provider },
            Intent::Confirm => IntentJson::Confirm,
            Intent::Cancel => IntentJson::Cancel,
            Intent::SetLimit { scope, amount } => IntentJson::SetLimit {
                scope,
                amount: amount.to_decimal_string(),
                currency: amount.currency,
            },
            Intent::QuerySpending { period } => IntentJson::QuerySpending { period },
            Intent::ApproveTask => IntentJson::ApproveTask,
            Intent::RejectTask => IntentJson::RejectTask,
            Intent::RevokeAgents => IntentJson::RevokeAgents,
            Intent::None => IntentJson::None,
        }
    }
}

/// Why intent JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("a payment amount must be positive")]
    NotPositive,
    #[error("a limit cannot be negative")]
    Negative,
    #[error("a token top-up needs at least one token")]
    NoTokens,
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

impl TryFrom<IntentJson> for Intent {
    type Error = IntentError;

    /// Holds JSON to the same rules as the parser: no zero payments, no blank payees.
    fn try_from(json: IntentJson) -> Result<Self, Self::Error> {
        let named = |name: String, what: &'static str| {
            if name.trim().is_empty() {
                Err(IntentError::Empty(what))
            } else {
                Ok(name)
            }
        };
        Ok(match json {
            IntentJson::Pay {
                amount,
                currency,
                payee,
            } => {
                let amount = Money::parse_decimal(&amount, currency)?;
                if !amount.is_positive() {
                    return Err(IntentError::NotPositive);
                }
                Intent::Pay {
                    amount,
                    payee: named(payee, "payee")?,
                }
            }
            IntentJson::TopUp { tokens: 0, .. } => return Err(IntentError::NoTokens),
            IntentJson::TopUp { tokens, provider } => Intent::TopUp {
                tokens,
                provider: named(provider, "provider")?,
            },
            IntentJson::Confirm => Intent::Confirm,
            IntentJson::Cancel => Intent::Cancel,
            IntentJson::SetLimit {
                scope,
                amount,
                currency,
            } => {
                let amount = Money::parse_decimal(&amount, currency)?;
                if amount.minor < 0 {
                    return Err(IntentError::Negative);
                }
                Intent::SetLimit { scope, amount }
            }
            IntentJson::QuerySpending { period } => Intent::QuerySpending { period },
            IntentJson::ApproveTask => Intent::ApproveTask,
            IntentJson::RejectTask => Intent::RejectTask,
            IntentJson::RevokeAgents => Intent::RevokeAgents,
            IntentJson::None => Intent::None,
        })
    }
}

/// A context whose payee and provider names are the lexicon's stand-ins,
/// so that [`whisper_prompt`] holds no name the device could pay.
pub fn with_stand_in_names(ctx: &ParseContext) -> ParseContext {
    let [a, b, provider] = match reader(ctx.language) {
        Reader::Words(lex) => lex.prompt_stand_ins,
        Reader::Mandarin => mandarin::PROMPT_STAND_INS,
    };
    ParseContext {
        known_payees: vec![a.to_owned(), b.to_owned()],
        known_providers: vec![provider.to_owned()],
        ..ctx.clone()
    }
}

/// How many payee and provider names the example sentences of the prompt hold.
pub const PROMPT_PAYEE_SLOTS: usize = 2;
pub const PROMPT_PROVIDER_SLOTS: usize = 1;

/// Whisper's initial prompt: example commands in the style the parser reads
/// best, then the user's payees and providers, so that "Heytea" or "top up"
/// come out spelled as the parser expects. Whole sentences, not a word list: a
/// comma-separated list primes Whisper to answer in comma-separated fragments.
pub fn whisper_prompt(ctx: &ParseContext) -> String {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => return mandarin::whisper_prompt(ctx),
    };
    let mut payees = ctx.known_payees.iter();
    let mut providers = ctx.known_providers.iter();
    let mut sentences: Vec<String> = lex
        .prompt_examples
        .iter()
        .map(|example| {
            let mut sentence = example.to_string();
            if sentence.contains("{payee}") {
                let payee = payees.next().map_or("Heytea", String::as_str);
                sentence = sentence.replace("{payee}", payee);
            }
            if sentence.contains("{provider}") {
                let provider = providers.next().map_or("Kimi", String::as_str);
                sentence = sentence.replace("{provider}", provider);
            }
            sentence
        })
        .collect();
    let rest: Vec<&str> = payees.chain(providers).map(String::as_str).collect();
    if !rest.is_empty() {
        sentences.push(format!("{} {}.", lex.prompt_names, rest.join(", ")));
    }
    sentences.join(" ")
}

/// Reads one transcript. Anything that is not clearly a command is `Intent::None`.
pub fn parse(transcript: &str, ctx: &ParseContext) -> Intent {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => return mandarin::read_command(transcript, ctx),
    };
    let parser = Parser { ctx, lex };
    parser.parse(transcript).unwrap_or(Intent::None)
}

/// Whether the language writes its words apart, as Whisper writes English
/// (" Heytea"): candidates are then scored with a leading space.
pub fn written_in_words(ctx: &ParseContext) -> bool {
    matches!(reader(ctx.language), Reader::Words(_))
}

/// Whether a transcript that is no command holds what made it none and a
/// closed-domain reading cannot say ("别给瑞幸付三十元", "给喜茶付三十六元吗"):
/// such a transcript is never read again held to the commands, which would
/// drop the refusal. Mandarin only: in English a dropped "don't" costs the
/// reading its margin (chatter forced into a command fell 2-5 nats a token
/// below), while one character among many byte tokens costs too little
/// (别给瑞幸付三十元 forced into a payment was believed at 0.35, 0.77 nats below).
pub fn refuses(transcript: &str, ctx: &ParseContext) -> bool {
    match reader(ctx.language) {
        Reader::Words(_) => false,
        Reader::Mandarin => mandarin::refuses(transcript),
    }
}

/// Whether the transcript is answers that contradict each other (不，批准):
/// a reading held to one answer is never taken in its place. English's
/// answers are read whole and have no such reading yet: false.
pub fn answers_contradict(transcript: &str, ctx: &ParseContext) -> bool {
    match reader(ctx.language) {
        Reader::Words(_) => false,
        Reader::Mandarin => mandarin::answers_contradict(transcript),
    }
}

/// A closed reading's words from its amount on (`onward`), each with the
/// amount the free decode heard in its place, written as Whisper writes
/// amounts: Mandarin's 29块酒 is 29块九 (its soundalikes read as meant), to
/// be scored against the reading's own. Empty in a language written in
/// words, where the number alone is weighed (the recognizer's twins).
pub fn amount_rivals(onward: &str, free_text: &str, ctx: &ParseContext) -> Vec<String> {
    match reader(ctx.language) {
        Reader::Words(_) => Vec::new(),
        Reader::Mandarin => mandarin::amount_rivals(onward, free_text, ctx.default_currency),
    }
}

/// Whether the transcript speaks an amount as two numbers ("twelve fifty
/// dollars"): it is read by the currency's habit, but the other reading
/// (1250) exists, so such a payment is always read back with its amount.
pub fn amount_spoken_as_pair(transcript: &str, ctx: &ParseContext) -> bool {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        // 三十六块五 has one reading, and 三五 ("three or five") is refused.
        Reader::Mandarin => return false,
    };
    let Some(sentences) = text::sentences(transcript) else {
        return false;
    };
    sentences.iter().any(|s| {
        let words: Vec<&str> = s.tokens.iter().map(|t| t.norm.as_str()).collect();
        quantity::scan(&words, ctx.default_currency, lex)
            .iter()
            .any(|q| q.pair)
    })
}

/// How a language is read: by the tables of a language written in words, or
/// by Mandarin's own readers.
enum Reader {
    Words(&'static Lexicon),
    Mandarin,
}

fn reader(language: Language) -> Reader {
    match language {
        Language::English => Reader::Words(&english::ENGLISH),
        Language::Mandarin => Reader::Mandarin,
    }
}

/// An answer to a question that asked for a spoken payment code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeAnswer {
    /// The digits heard, as figures ("472", "4-7-2") or words ("four seven
    /// two", "four oh two"), in order; empty when none were.
    pub digits: String,
    /// What the other words say: `Confirm`, `Cancel`, or anything else.
    pub intent: Intent,
    /// The other words themselves.
    pub words: String,
}

/// Reads "Confirm, 4 7 2." as the digits "472" and the intent of "Confirm,".
pub fn parse_code_answer(transcript: &str, ctx: &ParseContext) -> CodeAnswer {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => {
            let (digits, words) = mandarin::code_digits(transcript);
            return CodeAnswer {
                digits,
                intent: mandarin::read_command(&words, ctx),
                words,
            };
        }
    };
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
        } else if let Some(d) = lex.digit_words.iter().position(|w| *w == bare) {
            digits.push_str(&d.to_string());
        } else if lex.zero_after_digit.contains(&bare.as_str()) && !digits.is_empty() {
            digits.push('0');
        } else {
            words.push(word);
        }
    }
    let words = words.join(" ");
    CodeAnswer {
        digits,
        intent: parse(&words, ctx),
        words,
    }
}

/// Whether a single lowercase word is a number word ("fifteen", "hundred").
pub fn is_number_word(word: &str, ctx: &ParseContext) -> bool {
    match reader(ctx.language) {
        Reader::Words(lex) => (lex.amounts.parse_number)(&[word]).is_some(),
        Reader::Mandarin => mandarin::is_number_word(word),
    }
}

/// The name in an answer to "who should I pay?": "To Shell, please." is
/// "Shell". Leading verbs, prepositions, articles and filler go, and so does
/// trailing politeness.
pub fn name_answer(transcript: &str, ctx: &ParseContext) -> String {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => {
            // A homophone of a payee (西茶) is named as the book spells it.
            return mandarin::payee_alone(transcript, ctx)
                .unwrap_or_else(|| mandarin::name_answer(transcript));
        }
    };
    let words: Vec<&str> = transcript
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?'))
        .filter(|w| !w.is_empty() && !lex.dropped.contains(&w.to_lowercase().as_str()))
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let one_word = |table: &[Phrase], w: &str| table.iter().any(|p| p.len() == 1 && p[0] == w);
    let is_frame = |w: &str| {
        lex.payee_prepositions.contains(&w)
            || lex.articles.contains(&w)
            || one_word(lex.pay_verbs, w)
            || one_word(lex.answer_fillers, w)
            || lex
                .leading_fillers
                .iter()
                .any(|(p, _)| p.len() == 1 && p[0] == w)
    };
    let start = lower
        .iter()
        .position(|w| !is_frame(w))
        .unwrap_or(lower.len());
    let mut end = lower.len();
    while let Some(n) = ends_with_any(&lower[start..end], lex.trailing_fillers) {
        end -= n;
    }
    words[start..end].join(" ")
}

/// Every way the language says `kind` on its own, written as Whisper
/// writes a sentence ("Confirm it.", "Approve the task."): the candidates
/// an answer heard is scored against.
pub fn answer_phrasings(kind: AnswerKind, ctx: &ParseContext) -> Vec<String> {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => {
            return mandarin::answer_forms(kind)
                .into_iter()
                .map(|form| format!("{form}。"))
                .collect();
        }
    };
    answers::forms(lex, kind)
        .into_iter()
        .filter(|phrase| !phrase.is_empty())
        .map(|phrase| {
            let mut chars = phrase.chars();
            let first: String = chars
                .next()
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_default();
            format!("{first}{}.", chars.as_str())
        })
        .collect()
}

/// A pending question's answer among `expected`: as spelled when the words
/// are one, else the closest by sound and spelling when it is clearly closest
/// (see `answers`). "yes" and "no" answer an agent's task too.
pub fn read_answer(
    transcript: &str,
    ctx: &ParseContext,
    expected: &[AnswerKind],
) -> Option<AnswerKind> {
    use AnswerKind::*;
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        Reader::Mandarin => return mandarin::answer_among(transcript, expected),
    };
    let spelled = match parse(transcript, ctx) {
        Intent::Confirm => Some(Confirm),
        Intent::Cancel => Some(Cancel),
        Intent::ApproveTask => Some(Approve),
        Intent::RejectTask => Some(Reject),
        // "Stop the agent" to a question is no to it (the dialog stops the agents too).
        Intent::RevokeAgents => Some(Cancel),
        _ => None,
    };
    // Too long to be a command: no sentences, no words, no answer.
    let sentences = text::sentences(transcript).unwrap_or_default();
    let words: Vec<&str> = sentences
        .iter()
        .flat_map(|s| &s.tokens)
        .map(|t| t.norm.as_str())
        .collect();
    let (yes, no) = spelled_yes_and_no(&words, lex);
    if spelled.is_none() && yes && no {
        // "No, go ahead.": both, spelled. Asked again, never matched by sound.
        return None;
    }
    let spelled = spelled.or_else(|| (!yes && opens_with_no(&sentences, lex)).then_some(Cancel));
    match spelled {
        Some(kind) if expected.contains(&kind) => Some(kind),
        Some(Confirm) if expected.contains(&Approve) => Some(Approve),
        Some(Cancel) if expected.contains(&Reject) => Some(Reject),
        // An answer to another question ("approve" to a read-back): asked again.
        Some(_) => None,
        // Sound never overrules a spelled word: "Don't conferm." is no
        // confirm, and "Yes, go to the task." (test half) no reject.
        None => answers::closest(lex, &words, expected).filter(|kind| match kind {
            Confirm | Approve => !no,
            Cancel | Reject => !yes,
        }),
    }
}

/// Whether the words spell a yes (confirm, approve) and a no (cancel, reject) somewhere.
fn spelled_yes_and_no(words: &[&str], lex: &Lexicon) -> (bool, bool) {
    let yes = [lex.confirm, lex.weak_confirm, lex.approve_verbs]
        .iter()
        .any(|table| contains_phrase(words, table));
    let no = [lex.cancel, lex.reject_verbs]
        .iter()
        .any(|table| contains_phrase(words, table));
    (yes, no)
}

/// "No, don't let it happen.": an answer that opens with a no of its own
/// (followed by a comma or a full stop) is a no, whatever the rest was heard
/// as (the caller makes sure no yes is spelled in it). Only ever toward not
/// paying; "no problem" (no pause after "no") is not one.
fn opens_with_no(sentences: &[Sentence], lex: &Lexicon) -> bool {
    let Some(first) = sentences.first() else {
        return false;
    };
    let is_no = |token: &Token| lex.lone_no.contains(&token.norm.as_str());
    match first.tokens.as_slice() {
        [no] => !first.question && sentences.len() > 1 && is_no(no),
        [no, ..] => no.comma_after && is_no(no),
        [] => false,
    }
}

/// Stands in for a masked word: matches no table.
const MASKED: &str = "\u{0}";
/// A name longer than this is a sentence, not a payee.
const MAX_NAME_WORDS: usize = 6;
const MAX_PROVIDER_WORDS: usize = 3;
/// Answers are short; "yes I think so but..." is not one.
const MAX_ANSWER_WORDS: usize = 8;
/// "approve the agent's pending task" at most.
const MAX_TASK_OBJECT_WORDS: usize = 4;

/// One sentence with its filler removed.
struct Command<'s> {
    /// The tokens after leading filler.
    tokens: Vec<&'s Token>,
    /// How many of them remain once trailing filler ("now", "thanks") goes too.
    core_len: usize,
    /// Opened as a polite request ("can you ..."), so a "?" still commands.
    polite: bool,
    question: bool,
}

impl<'s> Command<'s> {
    fn core(&self) -> &[&'s Token] {
        &self.tokens[..self.core_len]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Confirm,
    Cancel,
    /// "yes, cancel": both at once means neither.
    Contradiction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Yes,
    Weak,
    No,
    Filler,
}

/// A spending question, a sentence shaped like one that we refuse, or neither.
enum Query {
    Other,
    Refused,
    Spending(Period),
}

fn norms<'t>(tokens: &[&'t Token]) -> Vec<&'t str> {
    tokens.iter().map(|t| t.norm.as_str()).collect()
}

/// The length of the longest phrase in `table` that `words` starts with.
fn starts_with_any(words: &[&str], table: &[Phrase]) -> Option<usize> {
    table
        .iter()
        .filter(|p| words.starts_with(p))
        .map(|p| p.len())
        .max()
}

fn ends_with_any(words: &[&str], table: &[Phrase]) -> Option<usize> {
    table
        .iter()
        .filter(|p| words.ends_with(p))
        .map(|p| p.len())
        .max()
}

fn contains_phrase(words: &[&str], table: &[Phrase]) -> bool {
    (0..words.len()).any(|i| starts_with_any(&words[i..], table).is_some())
}

fn any_of(words: &[&str], table: &[&str]) -> bool {
    words.iter().any(|w| table.contains(w))
}

struct Parser<'a> {
    ctx: &'a ParseContext,
    lex: &'static Lexicon,
}

impl Parser<'_> {
    fn parse(&self, transcript: &str) -> Option<Intent> {
        let mut sentences = text::sentences(transcript)?;
        for sentence in &mut sentences {
            self.split_glued_pay(sentence);
        }
        if let [sentence] = sentences.as_slice()
            && let Some(command) = self.command(sentence)
            && self.stops_agents(&norms(command.core()))
        {
            return Some(Intent::RevokeAgents);
        }
        let all: Vec<&str> = sentences
            .iter()
            .flat_map(|s| &s.tokens)
            .map(|t| t.norm.as_str())
            .collect();
        if let Some(answer) = self.answer(&all) {
            // "yes?" is not consent; "no?" still stops.
            let question = sentences.iter().any(|s| s.question);
            return match answer {
                Answer::Confirm if question => None,
                Answer::Confirm => Some(Intent::Confirm),
                Answer::Cancel => Some(Intent::Cancel),
                Answer::Contradiction => None,
            };
        }
        // One command per utterance: "No. Pay 30 yuan to Bob." is refused, and
        // the user says the command again on its own.
        let mut commands = sentences.iter().filter_map(|s| self.command(s));
        let command = commands.next()?;
        if commands.next().is_some() {
            return None;
        }
        self.interpret(&command)
    }

    /// "Payuber 43 yuan.": Whisper glues a short name to "pay". The verb is
    /// split off only when the rest (with the words after it) spells a known
    /// payee and the glued word itself does not ("PayPal" stays whole); any
    /// other glued word stays one word and reads as nothing.
    fn split_glued_pay(&self, sentence: &mut Sentence) {
        let known = &self.ctx.known_payees;
        let spells_known = |first: &str, after: &[Token]| {
            (0..=after.len().min(MAX_NAME_WORDS - 1)).any(|k| {
                let mut name = first.to_owned();
                for t in &after[..k] {
                    name.push(' ');
                    name.push_str(&t.raw);
                }
                names::exact_match(&name, known)
            })
        };
        let mut i = 0;
        while let Some(token) = sentence.tokens.get(i) {
            let after = sentence.tokens.get(i + 1..).unwrap_or_default();
            let split = self.lex.glued_pay_verbs.iter().find_map(|verb| {
                let rest = token.raw.get(verb.len()..).filter(|r| !r.is_empty())?;
                let head = token.raw.get(..verb.len())?;
                (head.eq_ignore_ascii_case(verb)
                    && spells_known(rest, after)
                    && !spells_known(&token.raw, after))
                .then(|| (head.to_owned(), rest.to_owned()))
            });
            if let Some((head, rest)) = split {
                let glued = sentence.tokens.remove(i);
                let verb = Token {
                    norm: head.to_lowercase(),
                    raw: head,
                    hyphen_before: glued.hyphen_before,
                    comma_after: false,
                };
                let name = Token {
                    norm: rest.to_lowercase(),
                    raw: rest,
                    hyphen_before: false,
                    comma_after: glued.comma_after,
                };
                sentence.tokens.splice(i..i, [verb, name]);
                i += 1;
            }
            i += 1;
        }
    }

    /// Confirm or cancel, when the whole utterance is made of answer phrases.
    fn answer(&self, words: &[&str]) -> Option<Answer> {
        if words.len() > MAX_ANSWER_WORDS {
            return None;
        }
        let lex = self.lex;
        let tables = [
            (lex.confirm, Part::Yes),
            (lex.weak_confirm, Part::Weak),
            (lex.cancel, Part::No),
            (lex.answer_fillers, Part::Filler),
        ];
        let mut parts = Vec::new();
        let mut i = 0;
        while let Some(rest) = words.get(i..).filter(|r| !r.is_empty()) {
            // Longest phrase first, so "don't do it" is not "don't" + "do it".
            let (len, part) = tables
                .iter()
                .filter_map(|(table, part)| starts_with_any(rest, table).map(|n| (n, *part)))
                .max_by_key(|(n, _)| *n)?;
            parts.push(part);
            i += len;
        }
        let yes = parts.contains(&Part::Yes);
        let no = parts.contains(&Part::No);
        match (yes, no, parts.contains(&Part::Weak)) {
            (true, true, _) => Some(Answer::Contradiction),
            (false, true, _) => Some(Answer::Cancel),
            (true, false, _) | (false, false, true) => Some(Answer::Confirm),
            (false, false, false) => None,
        }
    }

    /// Strips filler from a sentence; `None` when nothing else is left.
    fn command<'s>(&self, sentence: &'s Sentence) -> Option<Command<'s>> {
        let lex = self.lex;
        let mut tokens: Vec<&Token> = sentence
            .tokens
            .iter()
            .filter(|t| !lex.dropped.contains(&t.norm.as_str()))
            .collect();
        let mut polite = false;
        loop {
            let words = norms(&tokens);
            let best = lex
                .leading_fillers
                .iter()
                .filter(|(p, _)| words.starts_with(p))
                .max_by_key(|(p, _)| p.len());
            let Some((p, is_polite)) = best else { break };
            polite |= is_polite;
            tokens.drain(..p.len());
        }
        let mut core_len = tokens.len();
        while let Some(n) = ends_with_any(&norms(&tokens[..core_len]), lex.trailing_fillers) {
            core_len -= n;
        }
        (core_len > 0).then_some(Command {
            tokens,
            core_len,
            polite,
            question: sentence.question,
        })
    }

    fn interpret(&self, command: &Command) -> Option<Intent> {
        let lex = self.lex;
        let core = command.core();
        let words = norms(core);
        if let Some(intent) = self.task_answer(&words) {
            return (!command.question).then_some(intent);
        }
        // The period may be in the trailing words ("... today"), so pass them too.
        match self.query(&words, &norms(&command.tokens)) {
            Query::Spending(period) => return Some(Intent::QuerySpending { period }),
            Query::Refused => return None,
            Query::Other => {}
        }
        if command.question && !command.polite {
            return None;
        }
        if any_of(&words, lex.hesitations) {
            return None;
        }
        if let Some(n) = starts_with_any(&words, lex.pay_verbs) {
            return self.pay(&core[n..]);
        }
        if let Some(n) = starts_with_any(&words, lex.top_up_verbs) {
            let balance = starts_with_any(&words, lex.balance_verbs).is_some();
            return self.top_up(&core[n..], balance);
        }
        if let Some(n) = starts_with_any(&words, lex.limit_verbs) {
            return self.set_limit(&core[n..]);
        }
        None
    }

    /// "stop the agents", "cancel all agent payments", "revoke the agent":
    /// a stop verb, then only words about agents and their payments, at
    /// least one of them naming agents.
    fn stops_agents(&self, words: &[&str]) -> bool {
        let lex = self.lex;
        let Some((verb, rest)) = words.split_first() else {
            return false;
        };
        lex.stop_agent_verbs.contains(verb)
            && rest.len() <= MAX_TASK_OBJECT_WORDS
            && rest.iter().any(|w| lex.agent_words.contains(w))
            && rest
                .iter()
                .all(|w| lex.agent_words.contains(w) || lex.agent_objects.contains(w))
    }

    /// "approve", "approve the task", "reject it", "deny the agent's request";
    /// also after a yes or no that says the same ("Yes, approve it", "No,
    /// deny it"). A yes before "deny" or a no before "approve" is neither.
    fn task_answer(&self, words: &[&str]) -> Option<Intent> {
        let lex = self.lex;
        if let Some(intent) = self.task_verb_answer(words) {
            return Some(intent);
        }
        let yes = starts_with_any(words, lex.confirm).or(starts_with_any(words, lex.weak_confirm));
        if let Some(n) = yes {
            let rest = words.get(n..)?;
            return self
                .task_verb_answer(rest)
                .filter(|i| *i == Intent::ApproveTask);
        }
        if let Some((first, rest)) = words.split_first()
            && lex.lone_no.contains(first)
        {
            return self
                .task_verb_answer(rest)
                .filter(|i| *i == Intent::RejectTask);
        }
        None
    }

    /// An approve or reject verb and nothing but its object.
    fn task_verb_answer(&self, words: &[&str]) -> Option<Intent> {
        let (intent, verb_len) = if let Some(n) = starts_with_any(words, self.lex.approve_verbs) {
            (Intent::ApproveTask, n)
        } else if let Some(n) = starts_with_any(words, self.lex.reject_verbs) {
            (Intent::RejectTask, n)
        } else {
            return None;
        };
        let rest = &words[verb_len..];
        let object_only = rest.len() <= MAX_TASK_OBJECT_WORDS
            && rest.iter().all(|w| self.lex.task_objects.contains(w));
        object_only.then_some(intent)
    }

    /// "how much did I spend today", "show my spending this month". `words`
    /// is the command without trailing filler, `with_trailing` keeps it.
    fn query(&self, words: &[&str], with_trailing: &[&str]) -> Query {
        let lex = self.lex;
        if starts_with_any(words, lex.query_openers).is_none() || !any_of(words, lex.spend_words) {
            return Query::Other;
        }
        // Only the user's own total for a period we keep: not "how much did she
        // spend", not "how much can I spend", not "last week".
        if !any_of(words, lex.first_person)
            || any_of(words, lex.other_people)
            || any_of(words, lex.query_refusals)
            || any_of(words, lex.hesitations)
        {
            return Query::Refused;
        }
        // "spent on coffee" asks for a category we do not report.
        let filtered = (0..words.len()).any(|i| {
            lex.spend_words.contains(&words[i])
                && words
                    .get(i + 1)
                    .is_some_and(|w| lex.spend_filters.contains(w))
                && !words
                    .get(i + 2)
                    .is_some_and(|w| lex.spend_filter_allowed.contains(w))
        });
        if filtered {
            return Query::Refused;
        }
        let periods = [
            (lex.today, Period::Today),
            (lex.week, Period::Week),
            (lex.month, Period::Month),
        ];
        let mut named = periods
            .iter()
            .filter(|(table, _)| any_of(with_trailing, table))
            .map(|(_, p)| *p);
        match (named.next(), named.next()) {
            (None, _) => Query::Spending(Period::Today),
            (Some(period), None) => Query::Spending(period),
            (Some(_), Some(_)) => Query::Refused,
        }
    }

    /// The words after the pay verb: "36 yuan to Heytea", "Heytea 36 yuan",
    /// "for parking 15 yuan".
    fn pay(&self, tokens: &[&Token]) -> Option<Intent> {
        let lex = self.lex;
        let words = norms(tokens);
        if any_of(&words, lex.pay_idioms) || any_of(&words, lex.schedule_words) {
            return None;
        }
        let masked = self.mask_known_payees(tokens, words);
        let quantity = self.single_quantity(&masked)?;
        if self.bounded(&masked, &quantity) {
            return None;
        }
        let Value::Money(amount) = quantity.value else {
            return None;
        };
        if !amount.is_positive() {
            return None;
        }
        let before = tokens.get(..quantity.span.start)?;
        let after = tokens.get(quantity.span.end..)?;
        let payee = self.payee(before, after)?;
        Some(Intent::Pay { amount, payee })
    }

    /// Hides known payees whose names hold numbers ("7-Eleven") from the amount
    /// reader. Only where a payee can stand (first, or after "to"/"at"/"for")
    /// and only exact hearings, so an amount is never taken for a name.
    fn mask_known_payees<'w>(&self, tokens: &[&Token], mut words: Vec<&'w str>) -> Vec<&'w str> {
        let lex = self.lex;
        let mut start = 0;
        while start < tokens.len() {
            let payee_slot = start == 0
                || tokens.get(start - 1).is_some_and(|t| {
                    self.is_word(t, lex.payee_prepositions) || t.norm == lex.purpose_preposition
                });
            let known_len = (1..=MAX_NAME_WORDS.min(tokens.len() - start))
                .rev()
                .filter(|_| payee_slot)
                .find(|&len| {
                    tokens.get(start..start + len).is_some_and(|span| {
                        // A sign spells nothing: "Heytea $" is not the name
                        // Heytea, and its "$" belongs to the amount.
                        span.iter()
                            .all(|t| t.norm.chars().any(char::is_alphanumeric))
                            && names::exact_match(&names::joined(span), &self.ctx.known_payees)
                    })
                });
            if let Some(len) = known_len {
                for word in words.iter_mut().skip(start).take(len) {
                    *word = MASKED;
                }
            }
            start += known_len.unwrap_or(1);
        }
        words
    }

    /// "less than 50 yuan", "about 20 yuan": a bound or a guess, not an amount
    /// to pay ("I want to pay less than fifty yuan for dinner" is a wish).
    fn bounded(&self, words: &[&str], quantity: &Quantity) -> bool {
        words
            .get(..quantity.span.start)
            .is_some_and(|before| ends_with_any(before, self.lex.comparisons).is_some())
    }

    /// The only quantity in the words; two ("20 yuan or 30 yuan") is none.
    fn single_quantity(&self, words: &[&str]) -> Option<Quantity> {
        let mut found = quantity::scan(words, self.ctx.default_currency, self.lex);
        let only = found.pop()?;
        found.is_empty().then_some(only)
    }

    fn is_word(&self, token: &Token, table: &[&str]) -> bool {
        table.contains(&token.norm.as_str())
    }

    /// The payee, from the words before the amount or after it, never both.
    fn payee(&self, before: &[&Token], after: &[&Token]) -> Option<String> {
        let lex = self.lex;
        let marker = |t: &Token| {
            self.is_word(t, lex.payee_prepositions) || t.norm == lex.purpose_preposition
        };
        if !before.is_empty() {
            // "pay Heytea 36 yuan", "pay for parking 15 yuan"
            let name = match before.split_first() {
                Some((first, rest)) if marker(first) => rest,
                _ => before,
            };
            return if self.is_memo(after) {
                self.name_clause(name)
            } else {
                None
            };
        }
        let (first, rest) = after.split_first()?;
        if self.is_word(first, lex.payee_prepositions) {
            return self.name_clause(rest);
        }
        if first.norm == lex.purpose_preposition {
            // "for lunch to Bob": the purpose is a memo and Bob the payee.
            return match rest
                .iter()
                .position(|t| self.is_word(t, lex.payee_prepositions))
            {
                Some(p) => self.name_clause(&rest[p + 1..]),
                None => self.name_clause(rest),
            };
        }
        // No preposition heard ("pay 36 yuan Heytea"): only a payee we know.
        names::best_match(&names::joined(after), &self.ctx.known_payees).map(String::from)
    }

    /// Nothing, or a memo ("for lunch", "with my card").
    fn is_memo(&self, tokens: &[&Token]) -> bool {
        tokens
            .first()
            .is_none_or(|t| self.is_word(t, self.lex.memo_starts))
    }

    /// A name up to the end of its clause (a comma) or a memo word.
    fn name_clause(&self, tokens: &[&Token]) -> Option<String> {
        let clause_len = tokens
            .iter()
            .position(|t| t.comma_after)
            .map_or(tokens.len(), |p| p + 1);
        let (clause, after) = tokens.split_at(clause_len);
        if !self.is_memo(after) {
            return None;
        }
        // A known name may hold a memo word ("Toys for Tots"): try it whole first.
        if let Some(known) = names::best_match(&names::joined(clause), &self.ctx.known_payees) {
            return Some(known.to_string());
        }
        let name_len = clause
            .iter()
            .position(|t| self.is_word(t, self.lex.memo_starts))
            .unwrap_or(clause.len());
        self.name(&clause[..name_len], &self.ctx.known_payees, MAX_NAME_WORDS)
    }

    /// A known name close to the heard one, or the heard one title-cased if it
    /// can be a name at all.
    fn name(&self, tokens: &[&Token], known: &[String], max_words: usize) -> Option<String> {
        let lex = self.lex;
        let tokens = match tokens.split_first() {
            Some((first, rest)) if self.is_word(first, lex.articles) => rest,
            _ => tokens,
        };
        if tokens.is_empty() || tokens.len() > max_words {
            return None;
        }
        if let Some(known) = names::best_match(&names::joined(tokens), known) {
            return Some(known.to_string());
        }
        // "the Didi ride": a known payee and a common noun; the noun is no
        // part of the name. An unknown name keeps its noun ("Sunset Tours").
        if let Some((last, name)) = tokens.split_last()
            && !name.is_empty()
            && self.is_word(last, lex.trailing_nouns)
            && let Some(known) = names::best_match(&names::joined(name), known)
        {
            return Some(known.to_string());
        }
        let refused = tokens.iter().any(|t| {
            self.is_word(t, lex.not_names)
                || self.is_word(t, lex.conjunctions)
                || self.is_word(t, lex.token_words)
        });
        let has_letter = tokens
            .iter()
            .any(|t| t.norm.chars().any(char::is_alphabetic));
        (!refused && has_letter).then(|| names::title_case(tokens, lex.lowercase_in_names))
    }

    /// The words after the top-up verb: "200000 tokens on Kimi", "Kimi with 1
    /// million tokens", or a sum of money: "Kimi with 50 yuan", "50 yuan of
    /// Kimi tokens". `balance` says the verb takes money without "tokens".
    fn top_up(&self, tokens: &[&Token], balance: bool) -> Option<Intent> {
        let words = norms(tokens);
        if any_of(&words, self.lex.schedule_words) {
            return None;
        }
        let quantity = self.single_quantity(&words)?;
        if self.bounded(&words, &quantity) {
            return None;
        }
        let provider = self.provider(tokens, &quantity)?;
        let count = match quantity.value {
            Value::Tokens(count) => count,
            // A bare number ("top up Kimi with 50") may be tokens or money: none.
            Value::Money(amount)
                if quantity.span.len() > quantity.number.len()
                    && (balance || any_of(&words, self.lex.token_words)) =>
            {
                self.tokens_for(amount, &provider)?
            }
            _ => return None,
        };
        if count == 0 {
            return None;
        }
        Some(Intent::TopUp {
            tokens: count,
            provider,
        })
    }

    /// How many of `provider`'s tokens `amount` buys at the price the device
    /// knows, rounded down: the dialog prices them again, rounding up, so the
    /// read-back never asks for more than was said (50 yuan of Kimi at 12.00 a
    /// million is 4,166,666 tokens for 50.00). No price, or a price in
    /// another currency, is no top-up: the parser does not guess a rate.
    fn tokens_for(&self, amount: Money, provider: &str) -> Option<u64> {
        voicepay_core::policy::tokens_for(&self.ctx.token_prices, provider, amount)
    }

    /// A known provider named anywhere, or else a name after "on"/"for"/...
    fn provider(&self, tokens: &[&Token], quantity: &Quantity) -> Option<String> {
        let lex = self.lex;
        let candidate = |i: usize| {
            !quantity.number.contains(&i)
                && tokens
                    .get(i)
                    .is_some_and(|t| !self.is_word(t, lex.provider_noise))
        };
        let known = &self.ctx.known_providers;
        let mut found: Vec<&str> = Vec::new();
        for start in 0..tokens.len() {
            for len in 1..=2 {
                let span = start..start + len;
                if span.end > tokens.len() || !span.clone().all(candidate) {
                    continue;
                }
                if let Some(p) = names::best_match(&names::joined(&tokens[span]), known)
                    && !found.contains(&p)
                {
                    found.push(p);
                }
            }
        }
        match found.as_slice() {
            [one] => return Some(one.to_string()),
            [] => {}
            _ => return None, // "for Kimi and Claude"
        }
        // An unknown provider must be introduced: "200000 tokens on Moonshot".
        tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| self.is_word(t, lex.provider_prepositions))
            .find_map(|(p, _)| {
                let run = (p + 1..tokens.len()).take_while(|&i| candidate(i)).count();
                let name = tokens.get(p + 1..p + 1 + run)?;
                let ends_clause = tokens.get(p + 1 + run).is_none();
                if run == 0 || !ends_clause {
                    return None;
                }
                self.name(name, &[], MAX_PROVIDER_WORDS)
            })
    }

    /// The words after the limit verb: "my auto-pay limit to 50 yuan".
    fn set_limit(&self, tokens: &[&Token]) -> Option<Intent> {
        let lex = self.lex;
        let words = norms(tokens);
        let limit_at = words.iter().position(|w| lex.limit_words.contains(w))?;
        if any_of(&words, lex.unsupported_limit_words) {
            return None;
        }
        let scope = match (
            contains_phrase(&words, lex.auto_scope),
            contains_phrase(&words, lex.daily_scope),
        ) {
            (true, false) => LimitScope::Auto,
            (false, true) => LimitScope::Daily,
            _ => return None, // "spending limit" alone, or both
        };
        let quantity = self.single_quantity(&words)?;
        match quantity.value {
            Value::Money(amount) if amount.minor >= 0 && quantity.span.start > limit_at => {
                Some(Intent::SetLimit { scope, amount })
            }
            _ => None,
        }
    }
}
