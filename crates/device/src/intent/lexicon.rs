//! The shape of a language's word tables: every phrase list and reader the intent rules run over.
//!
//! The rules in `mod.rs` only read a [`Lexicon`]; a language is a static
//! `Lexicon` (English: `english.rs`, with its number and currency readers),
//! chosen by [`crate::language::Language`].

use super::currency::Denomination;
use super::numbers::NumberPhrase;

/// A word sequence matched token by token.
pub(crate) type Phrase = &'static [&'static str];
pub(crate) type Words = &'static [&'static str];

pub(crate) struct Lexicon {
    /// Dropped at the start of a sentence; `true` marks a polite request frame
    /// ("can you ..."), which may end in a question mark and still command.
    pub leading_fillers: &'static [(Phrase, bool)],
    /// Dropped at the end of a command ("... to Bob now, thanks").
    pub trailing_fillers: &'static [Phrase],
    /// Dropped wherever they occur: they never change what is asked.
    pub dropped: Words,

    /// Short answers. A whole utterance made only of these is confirm or cancel.
    pub confirm: &'static [Phrase],
    /// "ok": confirms on its own, but yields to a cancel word ("ok, cancel").
    pub weak_confirm: &'static [Phrase],
    pub cancel: &'static [Phrase],
    /// A no that stands alone before the rest of an answer ("No, ...").
    pub lone_no: Words,
    pub answer_fillers: &'static [Phrase],

    pub pay_verbs: &'static [Phrase],
    /// Pay verbs Whisper glues to a short name ("Payuber"): split off only
    /// before a known payee's spelling.
    pub glued_pay_verbs: Words,
    pub top_up_verbs: &'static [Phrase],
    /// Top-up verbs that take a sum of money without naming tokens ("top up
    /// Kimi with 50 yuan"); after the others ("buy 50 yuan") only "... of
    /// Kimi tokens" makes the money a top-up.
    pub balance_verbs: &'static [Phrase],
    pub limit_verbs: &'static [Phrase],
    /// What opens an approval of an agent's task ("approve", "go ahead with").
    pub approve_verbs: &'static [Phrase],
    pub reject_verbs: &'static [Phrase],
    /// All that may follow "approve"/"reject" ("the agent's task").
    pub task_objects: Words,
    /// "stop", "revoke": with `agent_words`, every agent is stopped.
    pub stop_agent_verbs: Words,
    /// "agent", "agents": what a stop verb must name.
    pub agent_words: Words,
    /// What else may follow a stop verb ("all", "payments").
    pub agent_objects: Words,

    /// "pay attention", "pay back", "pay respects": not payments.
    pub pay_idioms: Words,
    /// Negation, doubt and alternatives: a command containing one is refused.
    pub hesitations: Words,
    /// Any time other than now: we do not schedule payments.
    pub schedule_words: Words,
    /// Bound an amount instead of naming it ("less than 50 yuan", "about 20").
    pub comparisons: &'static [Phrase],

    /// Introduce a payee ("to Heytea", "at Heytea").
    pub payee_prepositions: Words,
    /// Introduces a purpose, which is the payee when no "to" follows ("pay 15 yuan for parking").
    pub purpose_preposition: &'static str,
    /// Start a memo after the payee ("for lunch", "with my card").
    pub memo_starts: Words,
    /// Introduce a token provider ("on Kimi").
    pub provider_prepositions: Words,
    /// Never a payee or provider.
    pub not_names: Words,
    /// Join two names: "Bob and Alice" is two payees, so refused.
    pub conjunctions: Words,
    pub articles: Words,
    /// Kept lowercase inside a name ("Bank of China").
    pub lowercase_in_names: Words,
    /// Common nouns said after a known payee's name ("the Didi ride"): not
    /// part of the name when the words before them are a known payee.
    pub trailing_nouns: Words,

    pub token_words: Words,
    /// Words between a count and "tokens" that cannot be a provider ("to", "for").
    pub token_breakers: Words,
    /// Words that are not part of a provider's name ("account", "credits").
    pub provider_noise: Words,
    /// Joins a minor part to the major one ("four dollars and seventy five cents").
    pub minor_joiners: Words,
    /// Currencies in which two numbers spoken as one price are units and
    /// hundredths ("twelve fifty dollars" is 12.50); in the others they are
    /// hundreds and units ("one fifty yuan" is 150).
    pub pairs_in_minor_units: &'static [voicepay_core::money::Currency],

    pub limit_words: Words,
    pub auto_scope: &'static [Phrase],
    pub daily_scope: &'static [Phrase],
    /// Limits we do not have (weekly, per transaction) and relative changes ("by 50").
    pub unsupported_limit_words: Words,

    pub query_openers: &'static [Phrase],
    pub spend_words: Words,
    pub first_person: Words,
    pub other_people: Words,
    /// Makes a spending question something else ("how much can I spend", "my limit").
    pub query_refusals: Words,
    /// After "spent on/at", only these keep it a total ("spent on coffee" is not).
    pub spend_filters: Words,
    pub spend_filter_allowed: Words,
    pub today: Words,
    pub week: Words,
    pub month: Words,

    /// Example commands in the transcript style the parser reads best
    /// (digits, currency words); `{payee}` and `{provider}` are filled in.
    pub prompt_examples: Words,
    /// Introduces the list of the user's other names.
    pub prompt_names: &'static str,
    /// Names in no one's book, for the examples' slots when the prompt must
    /// not hold a payable name (Whisper writes prompt names where others were
    /// said): two payees, one provider.
    pub prompt_stand_ins: [&'static str; 3],
    /// The words for money itself, which a payment without an amount may
    /// name ("send money to Alice", "give Bob some cash").
    pub money_nouns: &'static [&'static str],

    /// Reads numbers and currency words.
    pub amounts: AmountReader,
    /// The digits 0-9 as words, for spoken payment codes ("four seven two").
    pub digit_words: [&'static str; 10],
    /// Other words for zero, taken only after a first digit ("four oh two").
    pub zero_after_digit: Words,
}

/// A language's readers of numbers and currency words.
pub(crate) struct AmountReader {
    pub parse_number: fn(&[&str]) -> Option<NumberPhrase>,
    /// "billion" and beyond: number-like, never read.
    pub is_unsupported_magnitude: fn(&str) -> bool,
    pub currency_prefix: fn(&[&str]) -> Option<(Denomination, usize)>,
    pub currency_suffix: fn(&[&str]) -> Option<(Denomination, usize)>,
    pub is_minor_unit: fn(&str) -> bool,
}
