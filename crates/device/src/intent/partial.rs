//! Payment commands missing one part, the replies that supply it, and commands that were tried but not made out.
//!
//! "Pay Heytea." names a payee in the book but no amount; "Pay thirty six
//! yuan." an amount but no payee. The dialog asks for the missing part and
//! reads the reply with [`amount_alone`] or [`payee_alone`]. Everything here
//! reads with the parser's own readers (its command frame, quantity scan
//! and name matching) and prefers `None` to a guess: a sentence that is not
//! plainly a payment command missing exactly one part is no partial payment.

use super::lexicon::Lexicon;
use super::quantity::{self, Value};
use super::text::{self, Sentence, Token};
use super::{
    Command, MAX_NAME_WORDS, ParseContext, Parser, Reader, any_of, mandarin, names, norms, reader,
    starts_with_any,
};
use voicepay_core::money::Money;

/// The half of a payment a command said, when it said exactly one half.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partial {
    /// "Pay Heytea.": the payee, as the book spells it; the amount is missing.
    Payee(String),
    /// "Pay thirty six yuan.": the amount; the payee is missing.
    Amount(Money),
}

/// Which parts of a heard payment the recognizer may have misheard: the
/// read-back says which, and spells the amount only when it is one of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Doubt {
    /// The amount's words were barely believed, or have another reading ("twelve fifty").
    pub amount: bool,
    /// The payee (or provider) may have been copied from Whisper's prompt.
    pub payee: bool,
}

impl Doubt {
    /// Nothing in doubt.
    pub const NONE: Doubt = Doubt {
        amount: false,
        payee: false,
    };
    /// Both parts in doubt.
    pub const BOTH: Doubt = Doubt {
        amount: true,
        payee: true,
    };

    /// From the recognizer's older `sure: bool`: unsure, without saying of
    /// what, doubts both (the amount is the part that must never slip by).
    pub fn from_sure(sure: bool) -> Doubt {
        if sure { Doubt::NONE } else { Doubt::BOTH }
    }

    pub fn is_sure(self) -> bool {
        self == Doubt::NONE
    }
}

/// "Pay Heytea." or "Pay thirty six yuan.": a payment command missing
/// exactly one part. The payee must be in `ctx.known_payees` (the book's
/// spoken forms), and the amount must name its currency ("Pay thirty six."
/// is too little to ask about). Anything the parser reads as a command is
/// no partial one.
pub fn partial_payment(text: &str, ctx: &ParseContext) -> Option<Partial> {
    let parser = match reader(ctx.language) {
        Reader::Words(lex) => Parser { ctx, lex },
        Reader::Mandarin => return mandarin::partial_payment(text, ctx),
    };
    if parser.parse(text).is_some() {
        return None;
    }
    let sentences = text::sentences(text)?;
    let command = only_command(&parser, &sentences)?;
    if command.question && !command.polite {
        return None;
    }
    let core = command.core();
    let words = norms(core);
    let lex = parser.lex;
    if any_of(&words, lex.hesitations) {
        return None;
    }
    let verb = starts_with_any(&words, lex.pay_verbs)?;
    let (rest, rest_words) = (&core[verb..], &words[verb..]);
    if any_of(rest_words, lex.pay_idioms) || any_of(rest_words, lex.schedule_words) {
        return None;
    }
    if let Some(payee) = payee_without_amount(&parser, rest) {
        return Some(Partial::Payee(payee));
    }
    let quantity = parser.single_quantity(rest_words)?;
    let named_currency = quantity.span.len() > quantity.number.len();
    match quantity.value {
        Value::Money(amount)
            if amount.is_positive() && named_currency && quantity.span == (0..rest.len()) =>
        {
            Some(Partial::Amount(amount))
        }
        _ => None,
    }
}

/// "Heytea", "to Heytea", "some money to Heytea", "Heytea some money", "the
/// Heytea for lunch": a known payee and nothing number-like.
fn payee_without_amount(parser: &Parser, tokens: &[&Token]) -> Option<String> {
    let lex = parser.lex;
    let nouns = lex.money_nouns;
    let is = |t: &Token, table: &[&str]| table.contains(&t.norm.as_str());
    let mut start = tokens.iter().take_while(|t| is(t, nouns)).count();
    if tokens
        .get(start)
        .is_some_and(|t| is(t, lex.payee_prepositions))
    {
        start += 1;
    }
    // The name runs to a memo ("for lunch"), less any trailing money words.
    let mut end = (start..tokens.len())
        .find(|&i| tokens.get(i).is_some_and(|t| is(t, lex.memo_starts)))
        .unwrap_or(tokens.len());
    while end > start && tokens.get(end - 1).is_some_and(|t| is(t, nouns)) {
        end -= 1;
    }
    if tokens.get(start).is_some_and(|t| is(t, lex.articles)) {
        start += 1;
    }
    let name = tokens.get(start..end)?;
    if name.is_empty() || name.len() > MAX_NAME_WORDS {
        return None;
    }
    let known = names::best_match(&names::joined(name), &parser.ctx.known_payees)?;
    // The name may hold digits ("7-Eleven"); anything else number-like is an amount.
    let others: Vec<&str> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| !(start..end).contains(i))
        .map(|(_, t)| t.norm.as_str())
        .collect();
    quantity::scan(&others, parser.ctx.default_currency, lex)
        .is_empty()
        .then(|| known.to_owned())
}

/// The reply to "How much to Heytea?": an amount and nothing else ("thirty
/// six yuan", "36", "fifteen dollars fifty"), perhaps after a pay verb
/// ("pay thirty six yuan") or before the payee asked about ("thirty six
/// yuan to Heytea": any name in `ctx.known_payees`, so the dialog lists only
/// that payee's). A bare number is in the default currency.
pub fn amount_alone(text: &str, ctx: &ParseContext) -> Option<Money> {
    let parser = match reader(ctx.language) {
        Reader::Words(lex) => Parser { ctx, lex },
        Reader::Mandarin => return mandarin::amount_alone(text, ctx),
    };
    let sentences = text::sentences(text)?;
    let command = only_command(&parser, &sentences)?;
    // "Thirty six yuan?" asks back; it does not answer.
    if command.question {
        return None;
    }
    let core = command.core();
    let words = norms(core);
    let lex = parser.lex;
    if any_of(&words, lex.hesitations) {
        return None;
    }
    let verb = starts_with_any(&words, lex.pay_verbs).unwrap_or(0);
    let (rest, rest_words) = (&core[verb..], &words[verb..]);
    let quantity = parser.single_quantity(rest_words)?;
    let Value::Money(amount) = quantity.value else {
        return None;
    };
    if !amount.is_positive() || quantity.span.start != 0 {
        return None;
    }
    match rest.get(quantity.span.end..)? {
        [] => Some(amount),
        [to, name @ ..] if lex.payee_prepositions.contains(&to.norm.as_str()) => {
            names::best_match(&names::joined(name), &ctx.known_payees).map(|_| amount)
        }
        _ => None,
    }
}

/// The reply to "Who should I pay?": a payee in `ctx.known_payees` and
/// nothing else ("Heytea", "To Heytea, please.", "pay Heytea"), as the book
/// spells it. Never a name outside the book, never one with an amount.
pub fn payee_alone(text: &str, ctx: &ParseContext) -> Option<String> {
    if let Reader::Mandarin = reader(ctx.language) {
        return mandarin::payee_alone(text, ctx);
    }
    let name = super::name_answer(text, ctx);
    if name.is_empty() || name.split_whitespace().count() > MAX_NAME_WORDS {
        return None;
    }
    names::best_match(&name, &ctx.known_payees).map(String::from)
}

/// Whether text the parser did not read as a command still plainly tried
/// to be one, so the device says it did not catch it rather than nothing: a
/// pay verb with money words or a payee of the book ("Pay 20 yuan to Bob and
/// Alice"), a top-up verb with tokens or a known provider, a limit verb
/// with a limit. Never talk about oneself ("I want to pay less than fifty
/// yuan for dinner"), a question, an idiom ("Pay attention to the road") or
/// a verb alone ("Give me five").
pub fn attempted_command(text: &str, ctx: &ParseContext) -> bool {
    let parser = match reader(ctx.language) {
        Reader::Words(lex) => Parser { ctx, lex },
        Reader::Mandarin => return mandarin::attempted_command(text, ctx),
    };
    text::sentences(text).is_some_and(|sentences| sentences.iter().any(|s| attempts(&parser, s)))
}

fn attempts(parser: &Parser, sentence: &Sentence) -> bool {
    let lex = parser.lex;
    let opener = sentence
        .tokens
        .iter()
        .find(|t| !lex.dropped.contains(&t.norm.as_str()));
    if opener.is_none_or(|t| lex.first_person.contains(&t.norm.as_str())) {
        return false;
    }
    let Some(command) = parser.command(sentence) else {
        return false;
    };
    if command.question && !command.polite {
        return false;
    }
    let core = command.core();
    let words = norms(core);
    if let Some(n) = starts_with_any(&words, lex.pay_verbs) {
        let rest = &words[n..];
        return !any_of(rest, lex.pay_idioms)
            && (money_words(rest, parser.ctx, lex) || names_a_payee(&core[n..], parser.ctx));
    }
    if let Some(n) = starts_with_any(&words, lex.top_up_verbs) {
        let rest = &core[n..];
        return any_of(&words[n..], lex.token_words)
            || rest.iter().any(|t| {
                names::exact_match(&t.raw, &parser.ctx.known_providers)
                    && !lex.provider_noise.contains(&t.norm.as_str())
            });
    }
    starts_with_any(&words, lex.limit_verbs).is_some() && any_of(&words, lex.limit_words)
}

/// A quantity that names its currency or its tokens: "20 yuan", "$5",
/// "yuan" alone; a bare "five" is not money.
fn money_words(words: &[&str], ctx: &ParseContext, lex: &Lexicon) -> bool {
    quantity::scan(words, ctx.default_currency, lex)
        .iter()
        .any(|q| q.span.len() > q.number.len() || matches!(q.value, Value::Tokens(_)))
}

/// Whether a name of the book is said among the tokens, exactly.
fn names_a_payee(tokens: &[&Token], ctx: &ParseContext) -> bool {
    (0..tokens.len()).any(|start| {
        (1..=MAX_NAME_WORDS.min(tokens.len() - start)).any(|len| {
            tokens
                .get(start..start + len)
                .is_some_and(|span| names::exact_match(&names::joined(span), &ctx.known_payees))
        })
    })
}

/// The one command among the sentences ("Okay. Pay Heytea." has one); two is none.
fn only_command<'s>(parser: &Parser, sentences: &'s [Sentence]) -> Option<Command<'s>> {
    let mut commands = sentences.iter().filter_map(|s| parser.command(s));
    let command = commands.next()?;
    commands.next().is_none().then_some(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicepay_core::money::Currency;

    fn ctx() -> ParseContext {
        ParseContext {
            known_payees: ["Heytea", "Alice", "Bob", "7-Eleven", "Luckin Coffee"]
                .map(String::from)
                .to_vec(),
            ..ParseContext::default()
        }
    }

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    #[test]
    fn a_payment_naming_a_known_payee_but_no_amount_is_missing_its_amount() {
        let ctx = ctx();
        let payee = |name: &str| Some(Partial::Payee(name.to_owned()));
        assert_eq!(partial_payment("Pay Heytea.", &ctx), payee("Heytea"));
        assert_eq!(partial_payment("Send money to Alice", &ctx), payee("Alice"));
        assert_eq!(
            partial_payment("Send some money to Alice.", &ctx),
            payee("Alice")
        );
        assert_eq!(
            partial_payment("Pay to Heytea, please.", &ctx),
            payee("Heytea")
        );
        assert_eq!(partial_payment("Give Bob some money.", &ctx), payee("Bob"));
        assert_eq!(
            partial_payment("Can you pay Heytea?", &ctx),
            payee("Heytea")
        );
        assert_eq!(partial_payment("Pay 7-Eleven.", &ctx), payee("7-Eleven"));
        assert_eq!(
            partial_payment("Pay Luckin Coffee.", &ctx),
            payee("Luckin Coffee")
        );
    }

    #[test]
    fn a_payment_with_an_amount_but_no_payee_is_missing_its_payee() {
        let ctx = ctx();
        assert_eq!(
            partial_payment("Pay thirty six yuan.", &ctx),
            Some(Partial::Amount(cny(3600)))
        );
        assert_eq!(
            partial_payment("Send 15 dollars 50.", &ctx),
            Some(Partial::Amount(Money::new(1550, Currency::USD)))
        );
    }

    #[test]
    fn what_is_no_payment_command_is_no_partial_one() {
        let ctx = ctx();
        for text in [
            "I want to pay less than fifty yuan for dinner",
            "She owes me fifty yuan",
            "Pay attention to the road",
            "Pay Bob back.",
            "Pay Heytea tomorrow.",
            "Don't pay Heytea.",
            "Pay Heytea?",
            "Pay Walmart.",
            "Send a message to Alice.",
            "Send Alice the file.",
            "Pay thirty six.",
            "Give me five.",
            "Pay 36 yuan to Heytea.",
            "Pay fifty yuan for dinner",
            "Pay 20 yuan or 30 yuan.",
            "Top up Kimi.",
            "Pay.",
            "",
        ] {
            assert_eq!(partial_payment(text, &ctx), None, "{text}");
        }
    }

    #[test]
    fn an_amount_alone_answers_how_much() {
        let ctx = ctx();
        assert_eq!(amount_alone("thirty six yuan", &ctx), Some(cny(3600)));
        assert_eq!(amount_alone("36", &ctx), Some(cny(3600)));
        assert_eq!(amount_alone("Thirty-six.", &ctx), Some(cny(3600)));
        assert_eq!(
            amount_alone("fifteen dollars fifty", &ctx),
            Some(Money::new(1550, Currency::USD))
        );
        assert_eq!(amount_alone("Um, 36 yuan please.", &ctx), Some(cny(3600)));
        assert_eq!(amount_alone("Pay thirty six yuan.", &ctx), Some(cny(3600)));
        let heytea_only = ParseContext {
            known_payees: vec!["Heytea".into()],
            ..ctx.clone()
        };
        assert_eq!(
            amount_alone("36 yuan to Heytea.", &heytea_only),
            Some(cny(3600))
        );
        for text in [
            "36 yuan to Bob.",
            "Thirty six yuan?",
            "20 or 30 yuan",
            "Not 36 yuan.",
            "About 36 yuan",
            "Cancel.",
            "Heytea.",
            "zero yuan",
            "I don't know.",
            "",
        ] {
            assert_eq!(amount_alone(text, &heytea_only), None, "{text}");
        }
    }

    #[test]
    fn a_payee_alone_answers_who() {
        let ctx = ctx();
        let named = |name: &str| Some(name.to_owned());
        assert_eq!(payee_alone("Heytea.", &ctx), named("Heytea"));
        assert_eq!(payee_alone("To Alice, please.", &ctx), named("Alice"));
        assert_eq!(payee_alone("Pay Bob.", &ctx), named("Bob"));
        assert_eq!(payee_alone("luckin coffee", &ctx), named("Luckin Coffee"));
        for text in [
            "Walmart.",
            "Bob 40 yuan.",
            "Thirty six yuan.",
            "Cancel.",
            "I don't know.",
            "",
        ] {
            assert_eq!(payee_alone(text, &ctx), None, "{text}");
        }
    }

    #[test]
    fn only_a_plain_attempt_at_a_command_counts_as_one() {
        let ctx = ctx();
        for text in [
            "Pay 20 yuan to Bob and Alice.",
            "Pay 4 dollars 5 to Bob.",
            "Send Heytea 20 or 30 yuan.",
            "Please pay yuan to Bob.",
            "Can you pay 20 yuan to Bob or Alice?",
            "Top up tokens.",
            "Set my limit to fifty.",
        ] {
            assert!(attempted_command(text, &ctx), "{text}");
        }
        for text in [
            "I want to pay less than fifty yuan for dinner",
            "She owes me fifty yuan",
            "Pay attention to the road",
            "Give me five.",
            "Send me the file.",
            "Did you pay 20 yuan to Bob?",
            "Get the door.",
            "Put five dollars in the jar.",
            "The weather is nice.",
            "",
        ] {
            assert!(!attempted_command(text, &ctx), "{text}");
        }
    }
}
