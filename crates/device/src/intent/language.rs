//! What the user can sensibly say now, as a word graph for the constrained decoder: built from the lexicon, the number and currency words and the payee book, one start per dialog state.
//!
//! Every sentence of these languages is one the parser reads as a command or
//! an answer (a test walks them at random and parses each). The payee slot
//! holds only the book's names and aliases, so a constrained reading can
//! name nobody else; whether the user said it at all is the model's
//! unconstrained belief's call (see `crate::recognizer`).
//!
//! English only for now: the Mandarin profile brings its own tables.

use std::sync::Arc;

use super::lexicon::Lexicon;
use super::{ParseContext, Reader, currency, numbers, reader};
use crate::asr::automaton::{Grammar, Slot, WordSet};

/// What the device listens for: each has its own language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listening {
    /// Nothing asked: any command.
    Command,
    /// A read-back: confirm or cancel.
    Confirmation,
    /// A read-back that asked for the spoken code.
    Code,
    /// An agent's task: approve or reject.
    TaskDecision,
    /// "How much to Heytea?": an amount alone.
    Amount,
    /// "Who should I pay?": a payee alone.
    Payee,
}

/// The word graph of what may be said while `listening`. `wake_phrase`:
/// a command opens with it ("Hey wallet, pay ..."), as on a device that
/// listens for its phrase.
pub fn grammar(listening: Listening, ctx: &ParseContext, wake_phrase: Option<&str>) -> Grammar {
    let lex = match reader(ctx.language) {
        Reader::Words(lex) => lex,
        // A Mandarin profile takes no spoken wake phrase (the profile says so).
        Reader::Mandarin => return super::mandarin::grammar(listening, ctx),
    };
    let mut b = Builder {
        g: Grammar::new(),
        lex,
        numbers: number_sets(),
        ctx,
    };
    let start = Grammar::START;
    match listening {
        Listening::Command => {
            let start = match wake_phrase {
                Some(phrase) => b.wake(start, phrase),
                None => start,
            };
            b.commands(start)
        }
        Listening::Confirmation => b.answers(start, false),
        Listening::Code => b.answers(start, true),
        Listening::TaskDecision => b.task_answers(start),
        Listening::Amount => {
            let to = b.words("amount-to", &[&["to"]]);
            let payee = b.payee_set();
            let amount = b.amount(start);
            let with_payee = b.g.chain(amount, &[&to, &payee]);
            b.g.skip(with_payee, amount);
            b.end(amount);
        }
        Listening::Payee => {
            let to = b.words("payee-to", &[&["to"], &["pay"]]);
            let payee = b.payee_set();
            let lead = b.g.node();
            b.g.arc(start, &to, lead);
            b.g.skip(start, lead);
            let named = b.g.chain(lead, &[&payee]);
            b.end(named);
        }
    }
    b.g
}

/// The digit forms of numbers, shared by every language (tokenized once).
struct NumberSets {
    /// " 1" ... " 9999": a number as Whisper starts one.
    spaced: Arc<WordSet>,
    /// "0" ... "9999" after a sign: "$15".
    bare: Arc<WordSet>,
    /// "000" ... "999" after a thousands comma.
    group: Arc<WordSet>,
    /// "00" ... "99" after a decimal point.
    cents: Arc<WordSet>,
}

fn number_sets() -> NumberSets {
    NumberSets {
        spaced: WordSet::new(
            "num:spaced",
            Slot::Number,
            (1..10_000).map(|n| format!(" {n}")).collect(),
        ),
        bare: WordSet::new(
            "num:bare",
            Slot::Number,
            (0..10_000).map(|n| n.to_string()).collect(),
        ),
        group: WordSet::new(
            "num:group",
            Slot::Number,
            (0..1000).map(|n| format!("{n:03}")).collect(),
        ),
        cents: WordSet::new(
            "num:cents",
            Slot::Number,
            (0..100).map(|n| format!("{n:02}")).collect(),
        ),
    }
}

struct Builder<'a> {
    g: Grammar,
    lex: &'static Lexicon,
    numbers: NumberSets,
    ctx: &'a ParseContext,
}

/// Each word as a phrase of its own.
fn singles<'a>(words: &'a [&'static str]) -> Vec<&'a [&'static str]> {
    words.iter().map(std::slice::from_ref).collect()
}

/// A phrase as Whisper may write it: a space before each word, in lower case
/// or with its first letter capital (a sentence's first word), and currency
/// codes in capitals ("RMB").
fn forms(phrase: &[&str]) -> Vec<String> {
    // "I" is written in capitals wherever it stands.
    let lower: String = phrase
        .iter()
        .map(|w| match w.strip_prefix('i') {
            Some(rest) if rest.is_empty() || rest.starts_with('\'') => format!(" I{rest}"),
            _ => format!(" {w}"),
        })
        .collect();
    let mut out = vec![lower.clone()];
    let mut chars = lower.chars();
    chars.next();
    if let Some(first) = chars.next() {
        let capital: String = format!(" {}{}", first.to_uppercase(), chars.as_str());
        if capital != lower {
            out.push(capital);
        }
    }
    if phrase.len() == 1 && (3..=4).contains(&phrase[0].len()) && is_code(phrase[0]) {
        out.push(format!(" {}", phrase[0].to_uppercase()));
    }
    out
}

/// A currency code ("rmb", "usd"): written in capitals.
fn is_code(word: &str) -> bool {
    matches!(
        word,
        "rmb" | "cny" | "usd" | "eur" | "gbp" | "jpy" | "hkd" | "sgd" | "inr"
    )
}

impl Builder<'_> {
    fn words(&self, key: &str, phrases: &[&[&str]]) -> Arc<WordSet> {
        let words = phrases.iter().flat_map(|p| forms(p)).collect();
        WordSet::new(format!("en:{key}"), Slot::Words, words)
    }

    fn literal(&self, key: &str, pieces: &[&str]) -> Arc<WordSet> {
        WordSet::new(
            format!("en:{key}"),
            Slot::Words,
            pieces.iter().map(|p| p.to_string()).collect(),
        )
    }

    fn payee_set(&self) -> Arc<WordSet> {
        let names: Vec<String> = self
            .ctx
            .known_payees
            .iter()
            .map(|name| format!(" {name}"))
            .collect();
        WordSet::new(format!("payees:{}", names.concat()), Slot::Payee, names)
    }

    fn provider_set(&self) -> Arc<WordSet> {
        let names: Vec<String> = self
            .ctx
            .known_providers
            .iter()
            .map(|name| format!(" {name}"))
            .collect();
        WordSet::new(
            format!("providers:{}", names.concat()),
            Slot::Provider,
            names,
        )
    }

    /// A number in digits ("36", "2,500", "15.50") or words ("thirty six");
    /// returns the node after it.
    fn number(&mut self, from: usize) -> usize {
        let spelled = numbers::number_words();
        let spelled = singles(&spelled);
        let spelled = self.words("number-words", &spelled);
        let done = self.g.node();
        let digits = self.numbers.spaced.clone();
        self.g.arc(from, &digits, done);
        self.g.arc(from, &spelled, done);
        // "two hundred and 40", "thirty six": words after a number.
        self.g.arc(done, &spelled, done);
        self.digit_groups(done);
        done
    }

    /// Thousands groups and cents after digits, looping back to `digits`:
    /// "2" ",500" ".50".
    fn digit_groups(&mut self, digits: usize) {
        let comma = self.literal("comma", &[","]);
        let point = self.literal("point", &["."]);
        let group = self.numbers.group.clone();
        let cents = self.numbers.cents.clone();
        let after_comma = self.g.chain(digits, &[&comma]);
        self.g.arc(after_comma, &group, digits);
        let after_point = self.g.chain(digits, &[&point]);
        self.g.arc(after_point, &cents, digits);
    }

    /// An amount: a number with or without its currency, a sign before
    /// digits ("$15"), a minor part ("4 pounds 20", "$15 and 49 cents").
    fn amount(&mut self, from: usize) -> usize {
        let done = self.g.node();
        let number = self.number(from);
        self.g.skip(number, done);
        let suffixes: Vec<&[&str]> = currency::suffix_phrases()
            .filter(|p| p.iter().all(|w| w.chars().all(char::is_alphabetic)))
            .collect();
        let suffix = self.words("currency-suffix", &suffixes);
        let named = self.g.node();
        self.g.arc(number, &suffix, named);
        self.g.skip(named, done);
        // A sign then bare digits: " $" "15".
        let signs: Vec<String> = currency::prefix_phrases()
            .filter(|p| p.len() == 1 && !p[0].chars().all(char::is_alphabetic))
            .map(|p| format!(" {}", p[0]))
            .collect();
        let sign = WordSet::new("en:currency-sign", Slot::Words, signs);
        let signed = self.g.chain(from, &[&sign]);
        let bare = self.numbers.bare.clone();
        let signed_number = self.g.node();
        self.g.arc(signed, &bare, signed_number);
        self.digit_groups(signed_number);
        self.g.skip(signed_number, named);
        // The minor part: "4 pounds 20", "15 dollars and 49 cents".
        let minor_units = singles(currency::minor_unit_words());
        let minor_unit = self.words("minor-unit", &minor_units);
        let joiners: Vec<&[&str]> = singles(self.lex.minor_joiners);
        let joiner = self.words("minor-joiner", &joiners);
        let joined = self.g.chain(named, &[&joiner]);
        self.g.skip(named, joined);
        let minor = self.number(joined);
        self.g.skip(minor, done);
        let with_unit = self.g.chain(minor, &[&minor_unit]);
        self.g.skip(with_unit, done);
        done
    }

    /// The end of a sentence: a trailing "please", "now", "thanks", then its
    /// punctuation (or none).
    fn end(&mut self, from: usize) {
        let mut trailing: Vec<&[&str]> = self.lex.trailing_fillers.to_vec();
        trailing.push(&["please"]);
        let trailing = self.words("trailing", &trailing);
        let comma = self.literal("comma", &[","]);
        let stop = self.literal("stop", &[".", "?", "!"]);
        let before_filler = self.g.node();
        self.g.skip(from, before_filler);
        self.g.arc(from, &comma, before_filler);
        let filled = self.g.chain(before_filler, &[&trailing]);
        let last = self.g.node();
        self.g.skip(from, last);
        self.g.skip(filled, last);
        self.g.accept(last);
        let stopped = self.g.chain(last, &[&stop]);
        self.g.accept(stopped);
    }

    /// Polite openings before a command ("Um,", "Could you", "Please").
    /// The wake phrase as Whisper writes it ("Hey wallet,", "Hey Wallet!",
    /// "hey wallet"); returns the node after it.
    fn wake(&mut self, start: usize, phrase: &str) -> usize {
        let words: Vec<&str> = phrase.split_whitespace().collect();
        let mut forms = forms(&words);
        let titled: String = words
            .iter()
            .map(|w| {
                let mut chars = w.chars();
                let first: String = chars
                    .next()
                    .map(|c| c.to_uppercase().collect())
                    .unwrap_or_default();
                format!(" {first}{}", chars.as_str())
            })
            .collect();
        if !forms.contains(&titled) {
            forms.push(titled);
        }
        let said = WordSet::new(format!("wake:{}", forms.concat()), Slot::Words, forms);
        let marks = self.literal("wake-marks", &[",", ".", "!"]);
        let named = self.g.chain(start, &[&said]);
        let marked = self.g.chain(named, &[&marks]);
        self.g.skip(named, marked);
        marked
    }

    fn opening(&mut self, start: usize) -> usize {
        let mut fillers: Vec<&[&str]> = self
            .lex
            .leading_fillers
            .iter()
            .map(|(phrase, _)| *phrase)
            .filter(|phrase| phrase.iter().all(|w| !w.contains("voicepay")))
            .collect();
        fillers.extend(singles(self.lex.dropped));
        let fillers = self.words("openings", &fillers);
        let comma = self.literal("comma", &[","]);
        let opened = self.g.node();
        self.g.skip(start, opened);
        let filled = self.g.chain(start, &[&fillers]);
        self.g.skip(filled, opened);
        let with_comma = self.g.chain(filled, &[&comma]);
        self.g.skip(with_comma, opened);
        // A second filler: "Um, could you ...".
        self.g.arc(with_comma, &fillers, filled);
        opened
    }

    /// Payments and top-ups, which are always read back when read this way.
    /// A limit change, a stop of the agents or a spending question is taken
    /// from the free decode alone: none is read back, and on the development
    /// half readings forced there turned "Affirm the task of 18 million."
    /// into the prompt's own "Set my auto pay limit to 50 kuai." and "Good
    /// morning." into "So what did I spend this week?".
    fn commands(&mut self, start: usize) {
        let at = self.opening(start);
        self.payments(at);
        self.top_ups(at);
    }

    fn payments(&mut self, at: usize) {
        let verbs = self.words("pay-verbs", self.lex.pay_verbs);
        let payee = self.payee_set();
        let comma = self.literal("comma", &[","]);
        let verb = self.g.chain(at, &[&verbs]);
        // "Pay Heytea 36 yuan", "Pay Netflix, $15 and 49 cents".
        let named = self.g.chain(verb, &[&payee]);
        let paused = self.g.chain(named, &[&comma]);
        self.g.skip(named, paused);
        let amount = self.amount(paused);
        self.end(amount);
        // "Pay 36 yuan to Heytea", "Pay 16 yuan at Heytea", "Pay 23 yuan for Didi".
        let amount = self.amount(verb);
        let mut prepositions: Vec<&[&str]> = singles(self.lex.payee_prepositions);
        prepositions.push(std::slice::from_ref(&self.lex.purpose_preposition));
        let prepositions = self.words("payee-prepositions", &prepositions);
        let to = self.g.chain(amount, &[&prepositions]);
        let named = self.g.chain(to, &[&payee]);
        self.end(named);
    }

    fn top_ups(&mut self, at: usize) {
        let verbs = self.words("top-up-verbs", self.lex.top_up_verbs);
        let token_words: Vec<&[&str]> = singles(self.lex.token_words);
        let tokens = self.words("token-words", &token_words);
        let prepositions: Vec<&[&str]> = singles(self.lex.provider_prepositions);
        let prepositions = self.words("provider-prepositions", &prepositions);
        let provider = self.provider_set();
        let verb = self.g.chain(at, &[&verbs]);
        // "Top up 200,000 tokens on Kimi", "Buy 1 million Claude tokens".
        let count = self.number(verb);
        let counted = self.g.chain(count, &[&tokens]);
        let named = self.g.chain(counted, &[&prepositions, &provider]);
        self.end(named);
        let named_first = self.g.chain(count, &[&provider, &tokens]);
        self.end(named_first);
        // "Top up Kimi with 200,000 tokens".
        let with = self.words("with", &[&["with"]]);
        let provider_first = self.g.chain(verb, &[&provider, &with]);
        let count = self.number(provider_first);
        let counted = self.g.chain(count, &[&tokens]);
        self.end(counted);
    }

    /// Confirm or cancel, alone or in two parts ("No, cancel that."), with
    /// the spoken code when it is asked for.
    fn answers(&mut self, start: usize, code: bool) {
        let mut yes: Vec<&[&str]> = self.lex.confirm.to_vec();
        yes.extend(self.lex.weak_confirm);
        let yes = self.words("yes", &yes);
        let no = self.words("no", self.lex.cancel);
        let comma = self.literal("comma", &[","]);
        // A yes, or a no, in one or two parts: never both ("No, go ahead."
        // is asked again by the reader, so the language does not offer it).
        let mut ends = Vec::new();
        for side in [&yes, &no] {
            let first = self.g.chain(start, &[side]);
            self.end(first);
            let paused = self.g.chain(first, &[&comma]);
            self.g.skip(first, paused);
            let second = self.g.chain(paused, &[side]);
            self.end(second);
            ends.extend([first, second]);
        }
        let (yes_once, yes_twice) = (ends[0], ends[1]);
        if code {
            let lead = self.words(
                "code-lead",
                &[&["the", "code", "is"], &["code"], &["my", "code", "is"]],
            );
            let digit_words: Vec<&[&str]> = singles(&self.lex.digit_words);
            let digit_words = self.words("digit-words", &digit_words);
            // Only a yes comes with the code.
            for from in [start, yes_once, yes_twice] {
                let led = self.g.chain(from, &[&lead]);
                self.g.skip(from, led);
                let spaced = self.numbers.spaced.clone();
                let digits = self.g.chain(led, &[&spaced]);
                self.end(digits);
                let spelled = self.g.chain(led, &[&digit_words]);
                self.g.arc(spelled, &digit_words, spelled);
                self.end(spelled);
            }
        }
    }

    /// Approve or reject an agent's task: "Approve the task.", "Yes, approve
    /// it.", "No, deny it.", or a plain yes or no.
    fn task_answers(&mut self, start: usize) {
        let approve = self.words("approve-verbs", self.lex.approve_verbs);
        let reject = self.words("reject-verbs", self.lex.reject_verbs);
        let objects = self.words(
            "task-objects",
            &[
                &["it"],
                &["that"],
                &["this"],
                &["the", "task"],
                &["this", "task"],
                &["the", "agent's", "task"],
                &["the", "request"],
            ],
        );
        let yes = self.words("yes", self.lex.confirm);
        let no = self.words("no", self.lex.cancel);
        let comma = self.literal("comma", &[","]);
        // One side at a time: "Yes, approve it.", "No, deny it.", "Reject the task."
        for (plain, verbs) in [(&yes, &approve), (&no, &reject)] {
            let said = self.g.chain(start, &[plain]);
            self.end(said);
            let paused = self.g.chain(said, &[&comma]);
            self.g.skip(said, paused);
            let verb = self.g.node();
            self.g.arc(start, verbs, verb);
            self.g.arc(paused, verbs, verb);
            self.end(verb);
            let object = self.g.chain(verb, &[&objects]);
            self.end(object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::{AnswerKind, Intent, parse, read_answer};

    fn context() -> ParseContext {
        ParseContext {
            known_payees: [
                "Heytea",
                "Luckin Coffee",
                "Luckin",
                "Alice",
                "Uber",
                "Netflix",
            ]
            .map(String::from)
            .to_vec(),
            ..ParseContext::default()
        }
    }

    /// A seeded walk's choices (a small xorshift: the test needs variety, not quality).
    fn chooser(seed: u64) -> impl FnMut(usize) -> usize {
        let mut state = seed.max(1);
        move |n| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n.max(1) as u64) as usize
        }
    }

    fn sentences(listening: Listening, count: usize) -> Vec<(String, Vec<Slot>)> {
        sentences_with(listening, count, None)
    }

    fn sentences_with(
        listening: Listening,
        count: usize,
        wake_phrase: Option<&str>,
    ) -> Vec<(String, Vec<Slot>)> {
        let g = grammar(listening, &context(), wake_phrase);
        let mut choose = chooser(7);
        let mut out = Vec::new();
        while out.len() < count {
            if let Some(words) = g.sample(&mut choose, 40) {
                let text: String = words.iter().map(|(w, _)| w.as_str()).collect();
                out.push((
                    text.trim().to_owned(),
                    words.iter().map(|(_, s)| *s).collect(),
                ));
            }
        }
        out
    }

    #[test]
    fn a_sentence_of_the_command_language_that_names_a_payee_pays_a_payee_in_the_book() {
        let ctx = context();
        let mut payments = 0;
        for (text, slots) in sentences(Listening::Command, 3000) {
            let intent = parse(&text, &ctx);
            if let Intent::Pay { payee, .. } = &intent {
                payments += 1;
                assert!(ctx.known_payees.contains(payee), "{text:?} pays {payee}");
                assert!(slots.contains(&Slot::Payee), "{text:?}");
            }
        }
        // The walk is random: most payment sentences must still read as payments.
        assert!(payments > 100, "only {payments} payments read");
    }

    #[test]
    fn on_a_device_that_listens_for_its_phrase_every_command_opens_with_it() {
        use crate::wake::{Addressed, Wake, WakeMode, WakeSettings};
        let wake = Wake::new(&WakeSettings {
            mode: WakeMode::Phrase,
            ..WakeSettings::default()
        });
        let ctx = context();
        let mut commands = 0;
        for (text, _) in sentences_with(Listening::Command, 500, Some("hey wallet")) {
            let Addressed::Command(command) = wake.address(&text) else {
                panic!("{text:?} does not open with the phrase");
            };
            if parse(&command, &ctx).is_payment() {
                commands += 1;
            }
        }
        assert!(commands > 20, "only {commands} payments read");
    }

    #[test]
    fn a_plain_payment_and_its_payee_first_form_are_in_the_language() {
        use crate::asr::automaton::{Language, TrieCache};
        let lang = Language::compile(
            &grammar(Listening::Command, &context(), None),
            &mut TrieCache::default(),
            |w| Some(w.chars().map(|c| c as i32).collect()),
        );
        for text in [
            " Pay 36 yuan to Heytea.",
            " pay Heytea 36 yuan",
            " Um, could you pay Luckin 42 yuan?",
            " Pay Netflix, $15 and 49 cents.",
            " Send 5 dollars 75 to Alice.",
            " Top up 200,000 tokens on Kimi.",
        ] {
            let tokens: Vec<i32> = text.chars().map(|c| c as i32).collect();
            assert!(lang.accepts(&tokens), "{text:?}");
        }
        for text in [
            " Pay 36 yuan to Bob.",
            " Set my auto pay limit to 50 kuai.",
            " How much did I spend this week?",
        ] {
            let tokens: Vec<i32> = text.chars().map(|c| c as i32).collect();
            assert!(!lang.accepts(&tokens), "{text:?}");
        }
    }

    #[test]
    fn every_answer_of_the_confirmation_language_is_read_as_confirm_or_cancel() {
        let ctx = context();
        let expected = [AnswerKind::Confirm, AnswerKind::Cancel];
        let mut read = 0;
        for (text, _) in sentences(Listening::Confirmation, 500) {
            if read_answer(&text, &ctx, &expected).is_some() {
                read += 1;
            }
        }
        // Two-part answers that spell a yes and a no ("No, confirm.") are
        // asked again by the reader: the language may say them, the reader decides.
        assert!(read > 300, "only {read} of 500 read");
    }
}
