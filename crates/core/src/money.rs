//! Money: integer minor units with an ISO 4217 currency and exact decimal text (the phrasebook reads it aloud).
//!
//! There are no floats here: an amount is an `i64` count of the currency's minor
//! unit (fen, cents, pence; whole yen for JPY), and every conversion is exact or
//! an error.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an amount or currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("unknown currency code {0:?}")]
    UnknownCurrency(String),
    #[error("not a decimal amount: {0:?}")]
    InvalidAmount(String),
    #[error("{currency} allows {allowed} fraction digits, got {got}")]
    TooManyFractionDigits {
        currency: Currency,
        allowed: u32,
        got: usize,
    },
    #[error("amount out of range")]
    Overflow,
    #[error("currency mismatch: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
}

/// What we know about one supported currency. Its spoken names are the
/// phrasebook's, by language.
struct CurrencyInfo {
    code: &'static str,
    minor_digits: u32,
}

const fn info(code: &'static str, minor_digits: u32) -> CurrencyInfo {
    CurrencyInfo { code, minor_digits }
}

const CURRENCIES: &[CurrencyInfo] = &[
    info("CNY", 2),
    info("USD", 2),
    info("EUR", 2),
    info("GBP", 2),
    info("JPY", 0),
    info("HKD", 2),
    info("TWD", 2),
    info("KRW", 0),
    info("SGD", 2),
    info("AUD", 2),
    info("CAD", 2),
    info("CHF", 2),
    info("INR", 2),
];

/// An ISO 4217 currency code. Only codes in the table above can be built, so a
/// `Currency` always has known minor digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CNY: Currency = Currency(*b"CNY");
    pub const USD: Currency = Currency(*b"USD");
    pub const EUR: Currency = Currency(*b"EUR");
    pub const GBP: Currency = Currency(*b"GBP");
    pub const JPY: Currency = Currency(*b"JPY");
    pub const HKD: Currency = Currency(*b"HKD");
    pub const TWD: Currency = Currency(*b"TWD");
    pub const KRW: Currency = Currency(*b"KRW");
    pub const SGD: Currency = Currency(*b"SGD");
    pub const AUD: Currency = Currency(*b"AUD");
    pub const CAD: Currency = Currency(*b"CAD");
    pub const CHF: Currency = Currency(*b"CHF");
    pub const INR: Currency = Currency(*b"INR");

    /// Every supported currency, in table order.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES
            .iter()
            .filter_map(|c| Currency::from_code(c.code).ok())
    }

    /// Accepts a known code, exactly as ISO writes it ("CNY", not "cny"):
    /// codes travel in signed requests, so there is one spelling.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        let known = CURRENCIES.iter().find(|c| c.code == code);
        match (known, <[u8; 3]>::try_from(code.as_bytes())) {
            (Some(_), Ok(bytes)) => Ok(Currency(bytes)),
            _ => Err(MoneyError::UnknownCurrency(clip(code))),
        }
    }

    pub fn code(&self) -> &str {
        // Always ASCII: only built from the table's codes.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point: 0 for JPY and KRW, 2 for the others.
    pub fn minor_digits(&self) -> u32 {
        self.info().map_or(2, |i| i.minor_digits)
    }

    fn info(&self) -> Option<&'static CurrencyInfo> {
        CURRENCIES.iter().find(|c| c.code.as_bytes() == self.0)
    }

    /// 10^minor_digits, the number of minor units in one major unit.
    fn minor_per_major(&self) -> i64 {
        10_i64.pow(self.minor_digits())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code).map_err(serde::de::Error::custom)
    }
}

/// An amount: `minor` units (fen, cents, whole yen) of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    /// Whole major units (36 yuan -> 3600 fen); overflow is an error.
    pub fn from_major(units: i64, currency: Currency) -> Result<Money, MoneyError> {
        units
            .checked_mul(currency.minor_per_major())
            .map(|minor| Money::new(minor, currency))
            .ok_or(MoneyError::Overflow)
    }

    /// The decimal form used on the wire: "36.00", "0.05", "-1.50", "1500" (JPY).
    pub fn to_decimal_string(&self) -> String {
        let digits = self.currency.minor_digits();
        let sign = if self.minor < 0 { "-" } else { "" };
        // unsigned_abs: i64::MIN has no positive i64 counterpart.
        let abs = self.minor.unsigned_abs();
        if digits == 0 {
            return format!("{sign}{abs}");
        }
        let per = 10_u64.pow(digits);
        let width = digits as usize;
        format!("{sign}{}.{:0width$}", abs / per, abs % per)
    }

    /// Parses the wire form exactly: `-?DIGITS(.DIGITS)?`, with at most the
    /// currency's minor digits after the point ("36", "36.5", "36.50").
    pub fn parse_decimal(s: &str, currency: Currency) -> Result<Money, MoneyError> {
        let invalid = || MoneyError::InvalidAmount(clip(s));
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((int, frac)) => (int, Some(frac)),
            None => (body, None),
        };
        let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(invalid());
        }
        let allowed = currency.minor_digits();
        let frac = frac.unwrap_or("");
        if frac.len() > allowed as usize {
            return Err(MoneyError::TooManyFractionDigits {
                currency,
                allowed,
                got: frac.len(),
            });
        }
        // Right-pad the fraction to the minor digits: "36.5" -> 36 and "50".
        let padded = format!("{int}{frac:0<width$}", width = allowed as usize);
        let mut magnitude: i128 = 0;
        for b in padded.bytes() {
            magnitude = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let signed = if negative { -magnitude } else { magnitude };
        let minor = i64::try_from(signed).map_err(|_| MoneyError::Overflow)?;
        Ok(Money::new(minor, currency))
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|minor| Money::new(minor, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    pub fn is_positive(&self) -> bool {
        self.minor > 0
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.to_decimal_string(), self.currency)
    }
}

/// Keeps error messages to one short line whatever the input was.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_table_code_round_trips() {
        let codes = [
            "CNY", "USD", "EUR", "GBP", "JPY", "HKD", "TWD", "KRW", "SGD", "AUD", "CAD", "CHF",
            "INR",
        ];
        for code in codes {
            let c = Currency::from_code(code).expect(code);
            assert_eq!(c.code(), code);
            assert_eq!(c.to_string(), code);
        }
        assert_eq!(Currency::all().count(), codes.len());
        assert_eq!(Currency::JPY.minor_digits(), 0);
        assert_eq!(Currency::KRW.minor_digits(), 0);
        assert_eq!(Currency::CNY.minor_digits(), 2);
        assert_eq!(Currency::INR.minor_digits(), 2);
    }

    #[test]
    fn constants_are_known_codes() {
        for c in [
            Currency::CNY,
            Currency::USD,
            Currency::EUR,
            Currency::GBP,
            Currency::JPY,
            Currency::HKD,
            Currency::TWD,
            Currency::KRW,
            Currency::SGD,
            Currency::AUD,
            Currency::CAD,
            Currency::CHF,
            Currency::INR,
        ] {
            assert_eq!(Currency::from_code(c.code()), Ok(c));
        }
    }

    #[test]
    fn unknown_codes_are_refused() {
        for bad in ["", "cny", "XXX", "CNYY", "¥", "US"] {
            assert!(
                matches!(
                    Currency::from_code(bad),
                    Err(MoneyError::UnknownCurrency(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn currency_serde_is_the_code() {
        assert_eq!(
            serde_json::to_string(&Currency::EUR).ok(),
            Some("\"EUR\"".into())
        );
        assert_eq!(
            serde_json::from_str::<Currency>("\"GBP\"").ok(),
            Some(Currency::GBP)
        );
        assert!(serde_json::from_str::<Currency>("\"gbp\"").is_err());
        let m = Money::new(3600, Currency::CNY);
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(json, r#"{"minor":3600,"currency":"CNY"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).ok(), Some(m));
    }

    #[test]
    fn decimal_strings() {
        let cases = [
            (3600, Currency::CNY, "36.00"),
            (5, Currency::USD, "0.05"),
            (0, Currency::EUR, "0.00"),
            (-150, Currency::GBP, "-1.50"),
            (-5, Currency::GBP, "-0.05"),
            (1500, Currency::JPY, "1500"),
            (i64::MAX, Currency::USD, "92233720368547758.07"),
            (i64::MIN, Currency::USD, "-92233720368547758.08"),
        ];
        for (minor, currency, text) in cases {
            let m = Money::new(minor, currency);
            assert_eq!(m.to_decimal_string(), text);
            assert_eq!(Money::parse_decimal(text, currency), Ok(m), "{text}");
        }
        assert_eq!(Money::new(3600, Currency::CNY).to_string(), "36.00 CNY");
        assert_eq!(Money::new(1500, Currency::JPY).to_string(), "1500 JPY");
    }

    #[test]
    fn parse_decimal_is_exact_and_strict() {
        let cny = Currency::CNY;
        assert_eq!(Money::parse_decimal("36", cny), Ok(Money::new(3600, cny)));
        assert_eq!(Money::parse_decimal("36.5", cny), Ok(Money::new(3650, cny)));
        assert_eq!(
            Money::parse_decimal("007.01", cny),
            Ok(Money::new(701, cny))
        );
        assert_eq!(
            Money::parse_decimal("1.005", cny),
            Err(MoneyError::TooManyFractionDigits {
                currency: cny,
                allowed: 2,
                got: 3
            })
        );
        assert!(matches!(
            Money::parse_decimal("1500.0", Currency::JPY),
            Err(MoneyError::TooManyFractionDigits { .. })
        ));
        for bad in [
            "", "-", ".", "1.", ".5", "+1", " 1", "1 ", "1,000", "1e3", "abc", "1.2.3", "--1",
            "NaN", "٣",
        ] {
            assert!(
                matches!(
                    Money::parse_decimal(bad, cny),
                    Err(MoneyError::InvalidAmount(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            Money::parse_decimal("92233720368547758.08", Currency::USD),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::parse_decimal(&"9".repeat(60), cny),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(100, Currency::CNY);
        assert_eq!(a.checked_add(a), Ok(Money::new(200, Currency::CNY)));
        assert_eq!(a.checked_sub(a), Ok(Money::zero(Currency::CNY)));
        assert_eq!(
            a.checked_add(Money::new(1, Currency::USD)),
            Err(MoneyError::CurrencyMismatch(Currency::CNY, Currency::USD))
        );
        assert_eq!(
            Money::new(i64::MAX, Currency::CNY).checked_add(a),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            Money::from_major(36, Currency::CNY),
            Ok(Money::new(3600, Currency::CNY))
        );
        assert_eq!(
            Money::from_major(36, Currency::JPY),
            Ok(Money::new(36, Currency::JPY))
        );
        assert_eq!(
            Money::from_major(i64::MAX / 10, Currency::USD),
            Err(MoneyError::Overflow)
        );
        assert!(a.is_positive());
        assert!(!Money::zero(Currency::CNY).is_positive());
    }

    proptest! {
        #[test]
        fn decimal_round_trip(minor in any::<i64>(), idx in 0usize..13) {
            let currency = Currency::all().nth(idx).unwrap_or(Currency::CNY);
            let m = Money::new(minor, currency);
            prop_assert_eq!(Money::parse_decimal(&m.to_decimal_string(), currency), Ok(m));
        }

        #[test]
        fn parse_decimal_never_panics(s in "\\PC{0,30}") {
            let _ = Money::parse_decimal(&s, Currency::USD);
        }
    }
}
