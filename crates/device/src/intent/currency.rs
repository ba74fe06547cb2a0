//! Currency words and symbols (English) as they appear around a spoken amount.
//!
//! Two spellings depend on where the device is:
//! - "dollars", "bucks" and "$" mean the device's default currency when that is
//!   a dollar (HKD, TWD, SGD, AUD, CAD), and USD otherwise: in Singapore "five
//!   dollars" is SGD.
//! - "¥" means CNY unless the default is JPY. Whisper writes "¥" for spoken
//!   "yuan", the sign is shared by both currencies, and voicepay's home market
//!   is China; a Japanese device says yen.

use voicepay_core::money::Currency;

/// A currency as named in speech, before the device's default is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denomination {
    Code(Currency),
    AnyDollar,
    YenSign,
}

impl Denomination {
    pub(crate) fn resolve(self, default: Currency) -> Currency {
        const DOLLARS: [Currency; 6] = [
            Currency::USD,
            Currency::HKD,
            Currency::TWD,
            Currency::SGD,
            Currency::AUD,
            Currency::CAD,
        ];
        match self {
            Denomination::Code(c) => c,
            Denomination::AnyDollar if DOLLARS.contains(&default) => default,
            Denomination::AnyDollar => Currency::USD,
            Denomination::YenSign if default == Currency::JPY => Currency::JPY,
            Denomination::YenSign => Currency::CNY,
        }
    }
}

use Denomination::{AnyDollar, Code, YenSign};

type Entry = (&'static [&'static str], Denomination);

/// Words that may follow a number ("36 yuan", "4 hong kong dollars").
const SUFFIXES: &[Entry] = &[
    (&["yuan"], Code(Currency::CNY)),
    (&["kuai"], Code(Currency::CNY)),
    (&["kwai"], Code(Currency::CNY)),
    (&["rmb"], Code(Currency::CNY)),
    (&["renminbi"], Code(Currency::CNY)),
    (&["cny"], Code(Currency::CNY)),
    (&["chinese", "yuan"], Code(Currency::CNY)),
    (&["¥"], YenSign),
    (&["￥"], YenSign),
    (&["dollars"], AnyDollar),
    (&["dollar"], AnyDollar),
    (&["bucks"], AnyDollar),
    (&["buck"], AnyDollar),
    (&["$"], AnyDollar),
    (&["usd"], Code(Currency::USD)),
    (&["us", "dollars"], Code(Currency::USD)),
    (&["us", "dollar"], Code(Currency::USD)),
    (&["american", "dollars"], Code(Currency::USD)),
    (&["american", "dollar"], Code(Currency::USD)),
    (&["euros"], Code(Currency::EUR)),
    (&["euro"], Code(Currency::EUR)),
    (&["eur"], Code(Currency::EUR)),
    (&["€"], Code(Currency::EUR)),
    (&["pounds"], Code(Currency::GBP)),
    (&["pound"], Code(Currency::GBP)),
    (&["pounds", "sterling"], Code(Currency::GBP)),
    (&["british", "pounds"], Code(Currency::GBP)),
    (&["sterling"], Code(Currency::GBP)),
    (&["quid"], Code(Currency::GBP)),
    (&["gbp"], Code(Currency::GBP)),
    (&["£"], Code(Currency::GBP)),
    (&["yen"], Code(Currency::JPY)),
    (&["japanese", "yen"], Code(Currency::JPY)),
    (&["jpy"], Code(Currency::JPY)),
    (&["hong", "kong", "dollars"], Code(Currency::HKD)),
    (&["hong", "kong", "dollar"], Code(Currency::HKD)),
    (&["hkd"], Code(Currency::HKD)),
    (&["new", "taiwan", "dollars"], Code(Currency::TWD)),
    (&["new", "taiwan", "dollar"], Code(Currency::TWD)),
    (&["taiwan", "dollars"], Code(Currency::TWD)),
    (&["taiwan", "dollar"], Code(Currency::TWD)),
    (&["twd"], Code(Currency::TWD)),
    (&["ntd"], Code(Currency::TWD)),
    (&["won"], Code(Currency::KRW)),
    (&["korean", "won"], Code(Currency::KRW)),
    (&["krw"], Code(Currency::KRW)),
    (&["₩"], Code(Currency::KRW)),
    (&["singapore", "dollars"], Code(Currency::SGD)),
    (&["singapore", "dollar"], Code(Currency::SGD)),
    (&["sgd"], Code(Currency::SGD)),
    (&["australian", "dollars"], Code(Currency::AUD)),
    (&["australian", "dollar"], Code(Currency::AUD)),
    (&["aud"], Code(Currency::AUD)),
    (&["canadian", "dollars"], Code(Currency::CAD)),
    (&["canadian", "dollar"], Code(Currency::CAD)),
    (&["cad"], Code(Currency::CAD)),
    (&["swiss", "francs"], Code(Currency::CHF)),
    (&["swiss", "franc"], Code(Currency::CHF)),
    (&["francs"], Code(Currency::CHF)),
    (&["franc"], Code(Currency::CHF)),
    (&["chf"], Code(Currency::CHF)),
    (&["rupees"], Code(Currency::INR)),
    (&["rupee"], Code(Currency::INR)),
    (&["indian", "rupees"], Code(Currency::INR)),
    (&["inr"], Code(Currency::INR)),
    (&["₹"], Code(Currency::INR)),
];

/// Signs and codes that may come before a number ("$12.50", "US$5", "RMB 36").
const PREFIXES: &[Entry] = &[
    (&["$"], AnyDollar),
    (&["us", "$"], Code(Currency::USD)),
    (&["hk", "$"], Code(Currency::HKD)),
    (&["nt", "$"], Code(Currency::TWD)),
    (&["¥"], YenSign),
    (&["￥"], YenSign),
    (&["€"], Code(Currency::EUR)),
    (&["£"], Code(Currency::GBP)),
    (&["₩"], Code(Currency::KRW)),
    (&["₹"], Code(Currency::INR)),
    (&["rmb"], Code(Currency::CNY)),
    (&["cny"], Code(Currency::CNY)),
    (&["usd"], Code(Currency::USD)),
    (&["eur"], Code(Currency::EUR)),
    (&["gbp"], Code(Currency::GBP)),
    (&["jpy"], Code(Currency::JPY)),
    (&["hkd"], Code(Currency::HKD)),
    (&["sgd"], Code(Currency::SGD)),
];

/// Minor-unit words: "four dollars seventy five cents".
const MINOR_UNITS: &[&str] = &[
    "cent", "cents", "penny", "pence", "pennies", "fen", "rappen", "centime", "centimes", "paisa",
    "paise",
];

fn longest(table: &[Entry], words: &[&str]) -> Option<(Denomination, usize)> {
    table
        .iter()
        .filter(|(phrase, _)| words.starts_with(phrase))
        .max_by_key(|(phrase, _)| phrase.len())
        .map(|(phrase, d)| (*d, phrase.len()))
}

/// The currency named at the start of `words` when it follows a number.
pub(crate) fn match_suffix(words: &[&str]) -> Option<(Denomination, usize)> {
    longest(SUFFIXES, words)
}

/// The currency named at the start of `words` when it precedes a number.
pub(crate) fn match_prefix(words: &[&str]) -> Option<(Denomination, usize)> {
    longest(PREFIXES, words)
}

pub(crate) fn is_minor_unit(word: &str) -> bool {
    MINOR_UNITS.contains(&word)
}

/// The words that may follow a number, for the decoder's language.
pub(crate) fn suffix_phrases() -> impl Iterator<Item = &'static [&'static str]> {
    SUFFIXES.iter().map(|(phrase, _)| *phrase)
}

/// The signs and codes that may come before a number.
pub(crate) fn prefix_phrases() -> impl Iterator<Item = &'static [&'static str]> {
    PREFIXES.iter().map(|(phrase, _)| *phrase)
}

pub(crate) fn minor_unit_words() -> &'static [&'static str] {
    MINOR_UNITS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suffix(s: &str, default: Currency) -> Option<(Currency, usize)> {
        let words: Vec<&str> = s.split_whitespace().collect();
        match_suffix(&words).map(|(d, n)| (d.resolve(default), n))
    }

    #[test]
    fn names_resolve() {
        let cny = Currency::CNY;
        assert_eq!(suffix("yuan", cny), Some((cny, 1)));
        assert_eq!(suffix("kuai to bob", cny), Some((cny, 1)));
        assert_eq!(suffix("rmb", Currency::USD), Some((cny, 1)));
        assert_eq!(suffix("bucks", cny), Some((Currency::USD, 1)));
        assert_eq!(suffix("dollars", Currency::SGD), Some((Currency::SGD, 1)));
        assert_eq!(
            suffix("us dollars", Currency::SGD),
            Some((Currency::USD, 2))
        );
        assert_eq!(suffix("hong kong dollars", cny), Some((Currency::HKD, 3)));
        assert_eq!(suffix("¥", cny), Some((cny, 1)));
        assert_eq!(suffix("¥", Currency::JPY), Some((Currency::JPY, 1)));
        assert_eq!(suffix("yen", cny), Some((Currency::JPY, 1)));
        assert_eq!(suffix("€", cny), Some((Currency::EUR, 1)));
        assert_eq!(suffix("quid", cny), Some((Currency::GBP, 1)));
        assert_eq!(suffix("bob", cny), None);
        assert!(is_minor_unit("cents"));
        assert!(!is_minor_unit("yuan"));
    }

    #[test]
    fn every_spoken_name_is_understood() {
        // The read-back must use words this parser knows.
        for currency in Currency::all() {
            let english = crate::phrasebook::Phrasebook::new(crate::language::Language::English);
            let spoken = english
                .money(voicepay_core::money::Money::new(200, currency))
                .to_lowercase();
            let words: Vec<&str> = spoken.split_whitespace().skip(1).collect();
            let found = match_suffix(&words).map(|(d, n)| (d.resolve(currency), n));
            assert_eq!(found, Some((currency, words.len())), "{spoken}");
        }
    }

    #[test]
    fn prefixes() {
        let words = ["us", "$", "5"];
        assert_eq!(match_prefix(&words), Some((Code(Currency::USD), 2)));
        assert_eq!(match_prefix(&["$", "5"]), Some((AnyDollar, 1)));
        assert_eq!(match_prefix(&["yuan"]), None);
    }
}
