//! Reads one number from the start of a word list: digit strings ("12.50") and English number words ("two hundred and forty").
//!
//! Values are exact decimals (an integer mantissa and a power-of-ten scale), so
//! "1.5 million" and "12.50" are never rounded. The grammar is deliberately
//! strict: words that do not continue a number end it, so "twelve fifty" is two
//! numbers and the caller can refuse it as ambiguous rather than guess.

/// An exact non-negative decimal: `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: u128,
    scale: u32,
}

/// Longer fractions than this are not amounts anyone speaks.
const MAX_SCALE: u32 = 18;

impl Decimal {
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    pub fn integer(value: u128) -> Decimal {
        Decimal {
            mantissa: value,
            scale: 0,
        }
    }

    /// "50000", "12.50" (the tokenizer has already removed grouping commas).
    pub fn parse_digits(s: &str) -> Option<Decimal> {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let scale = u32::try_from(frac.len()).ok().filter(|&n| n <= MAX_SCALE)?;
        if int.is_empty() || s.ends_with('.') {
            return None;
        }
        let mut mantissa: u128 = 0;
        for c in int.chars().chain(frac.chars()) {
            let digit = c.to_digit(10)?;
            mantissa = mantissa.checked_mul(10)?.checked_add(u128::from(digit))?;
        }
        Some(Decimal { mantissa, scale })
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.rescaled(scale)?;
        let b = other.rescaled(scale)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale,
        })
    }

    pub fn checked_mul_int(self, k: u128) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(k)?,
            scale: self.scale,
        })
    }

    /// The value times 10^digits, if that is a whole number that fits.
    pub fn to_scaled(self, digits: u32) -> Option<u128> {
        if digits >= self.scale {
            self.mantissa
                .checked_mul(10_u128.checked_pow(digits - self.scale)?)
        } else {
            let divisor = 10_u128.checked_pow(self.scale - digits)?;
            self.mantissa
                .is_multiple_of(divisor)
                .then_some(self.mantissa / divisor)
        }
    }

    /// Minor units for a currency with `digits` minor digits, exactly or not at all.
    pub fn to_minor(self, digits: u32) -> Option<i64> {
        i64::try_from(self.to_scaled(digits)?).ok()
    }

    /// The value as a whole count (tokens), exactly or not at all.
    pub fn to_u64(self) -> Option<u64> {
        u64::try_from(self.to_scaled(0)?).ok()
    }

    pub fn is_integer(self) -> bool {
        self.to_scaled(0).is_some()
    }

    fn rescaled(self, scale: u32) -> Option<u128> {
        self.mantissa
            .checked_mul(10_u128.checked_pow(scale.checked_sub(self.scale)?)?)
    }
}

/// One number found at the start of a word list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberPhrase {
    /// `None` when the words are number-like but have no exact value
    /// (overflow, a stray "thousand"): the caller must treat it as unreadable.
    pub value: Option<Decimal>,
    /// How many words the number used.
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Digits(Option<Decimal>),
    Zero,
    Unit(u128),
    Teen(u128),
    Tens(u128),
    Hundred,
    Scale(u128),
    /// "a"/"an", a number only before "hundred"/"thousand"/...
    Article,
    And,
    Point,
    Other,
}

const UNITS: [&str; 9] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
const TEENS: [&str; 10] = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];
const SCALES: [(&str, u128); 4] = [
    ("thousand", 1_000),
    ("million", 1_000_000),
    ("billion", 1_000_000_000),
    ("trillion", 1_000_000_000_000),
];

/// Words that scale or qualify a number in ways we do not compute ("5 grand",
/// "two dozen", "half"). Next to a number they make it unreadable instead of
/// silently dropping a factor.
const UNSUPPORTED_MAGNITUDES: &[&str] = &[
    "grand",
    "dozen",
    "dozens",
    "score",
    "lakh",
    "lakhs",
    "crore",
    "crores",
    "k",
    "m",
    "mil",
    "bn",
    "hundreds",
    "thousands",
    "millions",
    "billions",
    "half",
    "halves",
    "quarter",
    "quarters",
    "percent",
    "fold",
];

/// Every word a spoken number is made of that we read ("one" ... "ninety",
/// "hundred", "thousand", "million", "and"), for the decoder's language.
pub(crate) fn number_words() -> Vec<&'static str> {
    let mut words: Vec<&'static str> = UNITS.iter().chain(&TEENS).chain(&TENS).copied().collect();
    words.extend([
        "zero", "hundred", "thousand", "million", "a", "and", "point",
    ]);
    words
}

pub fn is_unsupported_magnitude(word: &str) -> bool {
    UNSUPPORTED_MAGNITUDES.contains(&word)
}

fn position(table: &[&str], word: &str) -> Option<u128> {
    let i = table.iter().position(|w| *w == word)?;
    u128::try_from(i).ok()
}

fn classify(word: &str) -> Word {
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        return Word::Digits(Decimal::parse_digits(word));
    }
    if let Some(i) = position(&UNITS, word) {
        return Word::Unit(i + 1);
    }
    if let Some(i) = position(&TEENS, word) {
        return Word::Teen(i + 10);
    }
    if let Some(i) = position(&TENS, word) {
        return Word::Tens((i + 2) * 10);
    }
    if let Some((_, k)) = SCALES.iter().find(|(w, _)| *w == word) {
        return Word::Scale(*k);
    }
    match word {
        "zero" => Word::Zero,
        "hundred" => Word::Hundred,
        "a" | "an" => Word::Article,
        "and" => Word::And,
        "point" => Word::Point,
        _ => Word::Other,
    }
}

/// What the previous word was; decides which words may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Start,
    Article,
    Digits {
        small_integer: bool,
    },
    Zero,
    Unit,
    Teen,
    Tens,
    Hundred,
    Scale,
    And,
    /// "and" after round digits, as Whisper writes "two hundred and forty": "200 and 40".
    DigitsAnd,
    Fraction,
}

/// Reads the longest number at the start of `words`, or `None` when the first
/// word does not begin one.
pub fn parse_number(words: &[&str]) -> Option<NumberPhrase> {
    let first = classify(words.first()?);
    if matches!(first, Word::Hundred | Word::Scale(_)) {
        // "thousand" with nothing before it: number-like but unreadable.
        return Some(NumberPhrase {
            value: None,
            len: 1,
        });
    }

    let mut total = Some(Decimal::ZERO); // completed thousand/million groups
    let mut group = Some(Decimal::ZERO); // the part below the next scale word
    let mut last = Last::Start;
    let mut last_scale: Option<u128> = None;
    let mut has_hundred = false;
    let mut i = 0;

    while let Some(word) = words.get(i) {
        let class = classify(word);
        let next = words.get(i + 1).map(|w| classify(w));
        let group_small = group
            .and_then(|g| g.to_scaled(0))
            .is_some_and(|g| (1..100).contains(&g));
        match class {
            Word::Digits(d) if last == Last::Start => {
                group = d;
                let small_integer = d
                    .and_then(|d| d.to_scaled(0))
                    .is_some_and(|v| (1..100).contains(&v));
                last = Last::Digits { small_integer };
            }
            Word::Digits(Some(d))
                if last == Last::DigitsAnd
                    && d.to_scaled(0).is_some_and(|v| (1..100).contains(&v)) =>
            {
                group = group.and_then(|g| g.checked_add(d));
                last = Last::Digits {
                    small_integer: false,
                };
            }
            Word::Zero if last == Last::Start => last = Last::Zero,
            Word::Unit(n)
                if matches!(
                    last,
                    Last::Start | Last::Tens | Last::Hundred | Last::Scale | Last::And
                ) =>
            {
                group = group.and_then(|g| g.checked_add(Decimal::integer(n)));
                last = Last::Unit;
            }
            Word::Teen(n) | Word::Tens(n)
                if matches!(last, Last::Start | Last::Hundred | Last::Scale | Last::And) =>
            {
                group = group.and_then(|g| g.checked_add(Decimal::integer(n)));
                last = if matches!(class, Word::Teen(_)) {
                    Last::Teen
                } else {
                    Last::Tens
                };
            }
            // "two hundred", "twenty five hundred", "5 hundred", "a hundred".
            Word::Hundred
                if !has_hundred
                    && (matches!(
                        last,
                        Last::Unit
                            | Last::Teen
                            | Last::Article
                            | Last::Digits {
                                small_integer: true
                            }
                    ) && (group_small || last == Last::Article)) =>
            {
                let base = if last == Last::Article {
                    Some(Decimal::integer(1))
                } else {
                    group
                };
                group = base.and_then(|g| g.checked_mul_int(100));
                has_hundred = true;
                last = Last::Hundred;
            }
            // Scales must fall: "one million two hundred thousand", never "thousand million".
            Word::Scale(k)
                if matches!(
                    last,
                    Last::Unit
                        | Last::Teen
                        | Last::Tens
                        | Last::Hundred
                        | Last::Digits { .. }
                        | Last::Article
                        | Last::Fraction
                ) && last_scale.is_none_or(|s| k < s) =>
            {
                let base = if last == Last::Article {
                    Some(Decimal::integer(1))
                } else {
                    group
                };
                let part = base.and_then(|g| g.checked_mul_int(k));
                total = total.zip(part).and_then(|(t, p)| t.checked_add(p));
                group = Some(Decimal::ZERO);
                has_hundred = false;
                last_scale = Some(k);
                last = Last::Scale;
            }
            Word::Article
                if last == Last::Start && matches!(next, Some(Word::Hundred | Word::Scale(_))) =>
            {
                last = Last::Article;
            }
            // "two and a half thousand", "one and a half million": a half
            // only before a scale word, where it is exact.
            Word::And
                if matches!(
                    last,
                    Last::Unit
                        | Last::Teen
                        | Last::Tens
                        | Last::Digits {
                            small_integer: true
                        }
                ) && last_scale.is_none()
                    && matches!(next, Some(Word::Article))
                    && words.get(i + 2) == Some(&"half")
                    && matches!(words.get(i + 3).map(|w| classify(w)), Some(Word::Scale(_))) =>
            {
                let half = Decimal::parse_digits("0.5");
                group = group.zip(half).and_then(|(g, h)| g.checked_add(h));
                last = Last::Fraction;
                i += 3;
                continue;
            }
            // "two hundred and forty", "one thousand and five".
            Word::And
                if matches!(last, Last::Hundred | Last::Scale)
                    && matches!(next, Some(Word::Unit(_) | Word::Teen(_) | Word::Tens(_))) =>
            {
                last = Last::And;
            }
            Word::And
                if matches!(last, Last::Digits { .. })
                    && group
                        .and_then(|g| g.to_scaled(0))
                        .is_some_and(|g| g >= 100 && g.is_multiple_of(100))
                    && matches!(next, Some(Word::Digits(Some(d)))
                        if d.to_scaled(0).is_some_and(|v| (1..100).contains(&v))) =>
            {
                last = Last::DigitsAnd;
            }
            // "one point five million": digits spoken one by one after "point".
            Word::Point
                if matches!(
                    last,
                    Last::Unit | Last::Teen | Last::Tens | Last::Zero | Last::Hundred
                ) && matches!(next, Some(Word::Unit(_) | Word::Zero)) =>
            {
                let mut digits = String::new();
                let mut j = i + 1;
                while let Some(w) = words.get(j) {
                    match classify(w) {
                        Word::Unit(n) if n <= 9 => digits.push_str(&n.to_string()),
                        Word::Zero => digits.push('0'),
                        _ => break,
                    }
                    j += 1;
                }
                let fraction = Decimal::parse_digits(&format!("0.{digits}"));
                group = group.zip(fraction).and_then(|(g, f)| g.checked_add(f));
                last = Last::Fraction;
                i = j;
                continue;
            }
            _ => break,
        }
        i += 1;
    }

    if last == Last::Start {
        return None;
    }
    let value = total.zip(group).and_then(|(t, g)| t.checked_add(g));
    Some(NumberPhrase { value, len: i })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    /// (value in hundredths, words consumed) for a phrase.
    fn read(s: &str) -> Option<(Option<u128>, usize)> {
        let w = words(s);
        parse_number(&w).map(|p| (p.value.and_then(|v| v.to_scaled(2)), p.len))
    }

    #[test]
    fn digit_strings() {
        assert_eq!(read("25"), Some((Some(2500), 1)));
        assert_eq!(read("12.50 yuan"), Some((Some(1250), 1)));
        assert_eq!(read("50000"), Some((Some(5_000_000), 1)));
        assert_eq!(read("1.5 million"), Some((Some(150_000_000), 2)));
        assert_eq!(read("50 thousand"), Some((Some(5_000_000), 2)));
        assert_eq!(read("5 hundred"), Some((Some(50_000), 2)));
    }

    #[test]
    fn a_half_is_read_only_before_a_scale_word() {
        assert_eq!(read("two and a half thousand"), Some((Some(250_000), 5)));
        assert_eq!(read("2 and a half thousand"), Some((Some(250_000), 5)));
        assert_eq!(read("one and a half million"), Some((Some(150_000_000), 5)));
        // Without a scale the half is not part of this number.
        assert_eq!(read("two and a half"), Some((Some(200), 1)));
        assert_eq!(read("two thousand and a half"), Some((Some(200_000), 2)));
    }

    #[test]
    fn number_words() {
        let cases: &[(&str, u128, usize)] = &[
            ("zero", 0, 1),
            ("one", 1, 1),
            ("twenty five", 25, 2),
            ("two hundred and forty", 240, 4),
            ("two hundred forty", 240, 3),
            ("a hundred", 100, 2),
            ("an hundred", 100, 2),
            ("a thousand", 1000, 2),
            ("a million", 1_000_000, 2),
            ("fifty thousand", 50_000, 2),
            ("two million", 2_000_000, 2),
            ("one thousand two hundred", 1200, 4),
            ("twelve hundred", 1200, 2),
            ("twenty five hundred", 2500, 3),
            ("nineteen hundred and ninety nine", 1999, 5),
            ("one thousand and five", 1005, 4),
            (
                "one million two hundred thirty four thousand five hundred sixty seven",
                1_234_567,
                11,
            ),
            ("two hundred thousand", 200_000, 3),
            ("one trillion", 1_000_000_000_000, 2),
        ];
        for (text, value, len) in cases {
            assert_eq!(read(text), Some((Some(value * 100), *len)), "{text}");
        }
        assert_eq!(read("one point five million"), Some((Some(150_000_000), 4)));
        assert_eq!(read("twelve point five zero"), Some((Some(1250), 4)));
    }

    #[test]
    fn numbers_end_where_the_grammar_ends() {
        // Each of these is a number followed by something that starts another.
        assert_eq!(read("twelve fifty"), Some((Some(1200), 1)));
        assert_eq!(read("two five"), Some((Some(200), 1)));
        assert_eq!(read("twenty thirty"), Some((Some(2000), 1)));
        assert_eq!(read("twenty hundred"), Some((Some(2000), 1)));
        assert_eq!(read("five hundred two hundred"), Some((Some(50_200), 3)));
        assert_eq!(read("one thousand one million"), Some((Some(100_100), 3)));
        assert_eq!(read("20 five"), Some((Some(2000), 1)));
        assert_eq!(read("five 20"), Some((Some(500), 1)));
        assert_eq!(read("two hundred and"), Some((Some(20_000), 2)));
        assert_eq!(read("twenty and five"), Some((Some(2000), 1)));
        assert_eq!(read("five point"), Some((Some(500), 1)));
        // Only round hundreds take "and": "20 and 5" is two numbers.
        assert_eq!(read("20 and 5"), Some((Some(2000), 1)));
        assert_eq!(read("250 and 40"), Some((Some(25_000), 1)));
        assert_eq!(read("200 and 140"), Some((Some(20_000), 1)));
    }

    /// Whisper writes "two hundred and forty" as "200 and 40".
    #[test]
    fn round_digits_and_small_digits_are_one_number() {
        assert_eq!(read("200 and 40"), Some((Some(24_000), 3)));
        assert_eq!(read("1000 and 5"), Some((Some(100_500), 3)));
    }

    #[test]
    fn not_numbers() {
        assert_eq!(read("a coffee"), None);
        assert_eq!(read("and"), None);
        assert_eq!(read("point"), None);
        assert_eq!(read("bob"), None);
        assert_eq!(read(""), None);
        // Number-like but unreadable.
        assert_eq!(read("thousand"), Some((None, 1)));
        assert_eq!(read("hundred yuan"), Some((None, 1)));
        assert_eq!(read(&"9".repeat(50)), Some((None, 1)));
        assert_eq!(
            read("a trillion trillion"),
            Some((Some(100_000_000_000_000), 2))
        );
        assert_eq!(
            read("99999999999999999999999999999999999 trillion"),
            Some((None, 2))
        );
    }

    #[test]
    fn decimal_conversions() {
        let d = Decimal::parse_digits("12.50");
        assert_eq!(d.and_then(|d| d.to_minor(2)), Some(1250));
        assert_eq!(d.and_then(|d| d.to_minor(0)), None);
        assert_eq!(d.and_then(|d| d.to_u64()), None);
        assert_eq!(
            Decimal::parse_digits("12.00").and_then(|d| d.to_minor(0)),
            Some(12)
        );
        assert_eq!(
            Decimal::parse_digits("1.005").and_then(|d| d.to_minor(2)),
            None
        );
        assert_eq!(Decimal::parse_digits("1."), None);
        assert_eq!(Decimal::parse_digits("1.2.3"), None);
        assert_eq!(
            Decimal::parse_digits("92233720368547758.08").and_then(|d| d.to_minor(2)),
            None
        );
        assert!(Decimal::integer(3).is_integer());
    }
}
