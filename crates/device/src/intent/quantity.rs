//! Finds the quantities in a command (money amounts and token counts), marking anything number-like it cannot read exactly as unreadable.
//!
//! The parser then insists on exactly one readable quantity, so a second
//! number, a stray currency word or an ambiguous minor part all stop a payment
//! instead of being ignored.

use std::ops::Range;

use super::lexicon::Lexicon;
use super::numbers::Decimal;
use voicepay_core::money::{Currency, Money};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    Money(Money),
    Tokens(u64),
    /// Number-like but not exactly readable: overflow, "50 cents", "4 dollars 5", "$5 yuan".
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quantity {
    /// All the words of the quantity, currency words included.
    pub span: Range<usize>,
    /// Just the number's words.
    pub number: Range<usize>,
    pub value: Value,
    /// Two numbers spoken as one price ("twelve fifty dollars"): read by the
    /// currency's habit, but another reading exists, so it is read back.
    pub pair: bool,
}

/// Every quantity in `words`, in order.
pub(crate) fn scan(words: &[&str], default: Currency, lex: &Lexicon) -> Vec<Quantity> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        match read_at(words, i, default, lex) {
            Some(q) => {
                i = q.span.end.max(i + 1);
                found.push(q);
            }
            None => i += 1,
        }
    }
    found
}

fn read_at(words: &[&str], i: usize, default: Currency, lex: &Lexicon) -> Option<Quantity> {
    let rest = words.get(i..)?;
    let prefix = (lex.amounts.currency_prefix)(rest);
    let start = i + prefix.map_or(0, |(_, n)| n);
    let Some(phrase) = words.get(start..).and_then(lex.amounts.parse_number) else {
        let len = stray(words, i, lex)?;
        return Some(Quantity {
            span: i..i + len,
            number: i..i,
            value: Value::Unreadable,
            pair: false,
        });
    };
    let number = start..start + phrase.len;
    let unreadable = |end: usize| {
        Some(Quantity {
            span: i..end,
            number: number.clone(),
            value: Value::Unreadable,
            pair: false,
        })
    };
    let Some(major) = phrase.value else {
        return unreadable(number.end);
    };
    let mut end = number.end;
    let next = |at: usize| words.get(at).copied();
    if next(end).is_some_and(lex.amounts.is_unsupported_magnitude) {
        return unreadable(end + 1);
    }
    if let Some((second, after)) = pair_second(words, end, major, lex) {
        return Some(price_pair(
            words,
            i..after,
            number,
            prefix,
            (major, second),
            default,
            lex,
        ));
    }

    let value = if let Some((named, n)) = words.get(end..).and_then(lex.amounts.currency_suffix) {
        end += n;
        let currency = named.resolve(default);
        if prefix.is_some_and(|(p, _)| p.resolve(default) != currency) {
            // "$5 yuan": which one?
            return unreadable(end);
        }
        match minor_part(words, end, currency, major, lex) {
            Ok((minor, after)) => {
                end = after;
                money(major, minor, currency)
            }
            Err(after) => return unreadable(after),
        }
    } else if let Some(after) = tokens_end(words, end, lex) {
        end = after;
        match major.to_u64() {
            Some(count) if prefix.is_none() => Value::Tokens(count),
            _ => Value::Unreadable,
        }
    } else if next(end).is_some_and(lex.amounts.is_minor_unit) {
        // "50 cents" alone: cents of which currency? Not worth guessing.
        return unreadable(end + 1);
    } else if let Some((p, _)) = prefix
        && names_minor_unit(words, end, lex)
    {
        // "$15 and 49 cents": the sign's currency, its cents named after it.
        let currency = p.resolve(default);
        match minor_part(words, end, currency, major, lex) {
            Ok((minor, after)) => {
                end = after;
                money(major, minor, currency)
            }
            Err(after) => return unreadable(after),
        }
    } else {
        let currency = prefix.map_or(default, |(p, _)| p.resolve(default));
        money(major, 0, currency)
    };
    Some(Quantity {
        span: i..end,
        number,
        value,
        pair: false,
    })
}

/// The second number of a price spoken as two ("twelve fifty", "nine
/// ninety-nine", "12 50"): a whole 1..=99 followed at once by a whole 10..=99
/// of at most two words. Returns it and where it ends.
fn pair_second(words: &[&str], at: usize, first: Decimal, lex: &Lexicon) -> Option<(u64, usize)> {
    first.to_u64().filter(|v| (1..=99).contains(v))?;
    let phrase = words.get(at..).and_then(lex.amounts.parse_number)?;
    let second = phrase.value?.to_u64().filter(|v| (10..=99).contains(v))?;
    (phrase.len <= 2).then_some((second, at + phrase.len))
}

/// A price spoken as two numbers, with its currency word if one follows.
fn price_pair(
    words: &[&str],
    span: Range<usize>,
    number: Range<usize>,
    prefix: Option<(super::currency::Denomination, usize)>,
    (first, second): (Decimal, u64),
    default: Currency,
    lex: &Lexicon,
) -> Quantity {
    let mut end = span.end;
    let prefixed = prefix.map(|(p, _)| p.resolve(default));
    let named = words
        .get(end..)
        .and_then(lex.amounts.currency_suffix)
        .map(|(named, n)| {
            end += n;
            named.resolve(default)
        });
    let unreadable = |end: usize| Quantity {
        span: span.start..end,
        number: number.clone(),
        value: Value::Unreadable,
        pair: true,
    };
    let currency = match (prefixed, named) {
        (Some(p), Some(n)) if p != n => return unreadable(end),
        (p, n) => n.or(p).unwrap_or(default),
    };
    let after = words.get(end).copied();
    // "twelve fifty tokens", "twelve fifty cents": not a price.
    if after.is_some_and(|w| lex.token_words.contains(&w) || (lex.amounts.is_minor_unit)(w)) {
        return unreadable(end + 1);
    }
    let value = if lex.pairs_in_minor_units.contains(&currency) && currency.minor_digits() == 2 {
        i64::try_from(second).map_or(Value::Unreadable, |minor| money(first, minor, currency))
    } else {
        first
            .checked_mul_int(100)
            .zip(Some(Decimal::integer(u128::from(second))))
            .and_then(|(hundreds, units)| hundreds.checked_add(units))
            .map_or(Value::Unreadable, |whole| money(whole, 0, currency))
    };
    Quantity {
        span: span.start..end,
        number: number.start..span.end,
        value,
        pair: true,
    }
}

fn money(major: Decimal, minor: i64, currency: Currency) -> Value {
    major
        .to_minor(currency.minor_digits())
        .and_then(|m| m.checked_add(minor))
        .map_or(Value::Unreadable, |m| Value::Money(Money::new(m, currency)))
}

/// A minor part after the currency word: "four dollars seventy five",
/// "six euros thirty", "4 dollars 05", "4 dollars and 5 cents". Returns the
/// minor units and where the amount ends, or where the unreadable part ends.
///
/// A bare single digit ("four dollars five") is refused: English hears 4.05,
/// Chinese habit ("四块五") says 4.50.
fn minor_part(
    words: &[&str],
    at: usize,
    currency: Currency,
    major: Decimal,
    lex: &Lexicon,
) -> Result<(i64, usize), usize> {
    if currency.minor_digits() != 2 {
        // A number after "yen" is a second amount; the caller sees it as one.
        return Ok((0, at));
    }
    let joined = words.get(at).is_some_and(|w| lex.minor_joiners.contains(w));
    let start = at + usize::from(joined);
    let Some(phrase) = words.get(start..).and_then(lex.amounts.parse_number) else {
        return Ok((0, at));
    };
    let mut end = start + phrase.len;
    let named = words
        .get(end)
        .is_some_and(|w| (lex.amounts.is_minor_unit)(w));
    end += usize::from(named);
    let Some(value) = phrase.value.and_then(Decimal::to_u64) else {
        return Err(end);
    };
    let two_digits = phrase.len == 1
        && words
            .get(start)
            .is_some_and(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_digit()));
    let readable = if named {
        (1..=99).contains(&value)
    } else {
        (10..=99).contains(&value) || two_digits
    };
    match i64::try_from(value) {
        Ok(minor) if readable && major.is_integer() => Ok((minor, end)),
        _ => Err(end),
    }
}

/// Whether a minor part with its unit named follows: "and 49 cents", "49
/// cents". Without the unit ("$15 and 49") it is a second number.
fn names_minor_unit(words: &[&str], at: usize, lex: &Lexicon) -> bool {
    let joined = words.get(at).is_some_and(|w| lex.minor_joiners.contains(w));
    let start = at + usize::from(joined);
    words
        .get(start..)
        .and_then(lex.amounts.parse_number)
        .is_some_and(|phrase| {
            words
                .get(start + phrase.len)
                .is_some_and(|w| (lex.amounts.is_minor_unit)(w))
        })
}

/// Where a token count ends: "200000 tokens", "two hundred thousand Kimi tokens".
fn tokens_end(words: &[&str], at: usize, lex: &Lexicon) -> Option<usize> {
    for k in at..at + 3 {
        let word = words.get(k)?;
        if lex.token_words.contains(word) {
            return Some(k + 1);
        }
        let plain = word.chars().all(char::is_alphabetic)
            && !lex.token_breakers.contains(word)
            && (lex.amounts.currency_suffix)(&[word]).is_none()
            && (lex.amounts.parse_number)(&[word]).is_none();
        if !plain {
            return None;
        }
    }
    None
}

/// A currency, minor-unit or magnitude word with no number: the amount was not
/// understood ("pay 20 to Bob in dollars"). Right after "to"/"at"/"for" it is
/// taken as part of a name ("to Dollar Tree"). Returns its length.
fn stray(words: &[&str], i: usize, lex: &Lexicon) -> Option<usize> {
    let after_marker = i
        .checked_sub(1)
        .and_then(|p| words.get(p))
        .is_some_and(|w| lex.payee_prepositions.contains(w) || *w == lex.purpose_preposition);
    if after_marker {
        return None;
    }
    let rest = words.get(i..)?;
    if let Some((_, n)) =
        (lex.amounts.currency_prefix)(rest).or_else(|| (lex.amounts.currency_suffix)(rest))
    {
        return Some(n);
    }
    let word = rest.first()?;
    ((lex.amounts.is_minor_unit)(word) || (lex.amounts.is_unsupported_magnitude)(word)).then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::english::ENGLISH;

    fn values(s: &str) -> Vec<Value> {
        let words: Vec<&str> = s.split_whitespace().collect();
        scan(&words, Currency::CNY, &ENGLISH)
            .into_iter()
            .map(|q| q.value)
            .collect()
    }

    fn money(minor: i64, currency: Currency) -> Value {
        Value::Money(Money::new(minor, currency))
    }

    #[test]
    fn amounts() {
        assert_eq!(values("36 yuan"), [money(3600, Currency::CNY)]);
        assert_eq!(values("$ 12.50"), [money(1250, Currency::USD)]);
        assert_eq!(values("$ 12.50 dollars"), [money(1250, Currency::USD)]);
        assert_eq!(
            values("four dollars seventy five"),
            [money(475, Currency::USD)]
        );
        assert_eq!(values("4 dollars 05"), [money(405, Currency::USD)]);
        assert_eq!(values("4 dollars and 5 cents"), [money(405, Currency::USD)]);
        assert_eq!(values("six euros thirty"), [money(630, Currency::EUR)]);
        assert_eq!(values("$ 15 and 49 cents"), [money(1549, Currency::USD)]);
        assert_eq!(values("1500 yen"), [money(1500, Currency::JPY)]);
        assert_eq!(values("25"), [money(2500, Currency::CNY)]);
        assert_eq!(values("200000 tokens"), [Value::Tokens(200_000)]);
        assert_eq!(
            values("two hundred thousand kimi tokens"),
            [Value::Tokens(200_000)]
        );
    }

    #[test]
    fn unreadable() {
        let u = Value::Unreadable;
        assert_eq!(values("four dollars five"), [u]);
        assert_eq!(values("50 cents"), [u]);
        assert_eq!(values("$ 5 yuan"), [u]);
        assert_eq!(values("5 grand"), [u]);
        assert_eq!(values("12.505 yuan"), [u]);
        assert_eq!(values("12.50 dollars 30"), [u]);
        assert_eq!(values("$ 12.50 and 30 cents"), [u]);
        // Without "cents" the second number is not taken for cents.
        assert_eq!(values("$ 15 and 49").len(), 2);
        assert_eq!(values("4 dollars 150"), [u]);
        assert_eq!(values("1.5 tokens"), [u]);
        assert_eq!(values("$ 5 tokens"), [u]);
        assert_eq!(values("99999999999999999999 yuan"), [u]);
        assert_eq!(values("in dollars"), [u]);
        assert_eq!(values("to dollar tree"), []);
        assert_eq!(
            values("1500 yen 30"),
            [money(1500, Currency::JPY), money(3000, Currency::CNY)]
        );
    }
}
