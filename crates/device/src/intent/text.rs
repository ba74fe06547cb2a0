//! Normalises raw Whisper text into lowercase word tokens grouped by sentence.
//!
//! Whisper writes "$12.50", "50,000", "twenty-five", "Peet's", a leading space
//! and sentence punctuation. Here digits keep their decimal point but lose
//! grouping commas, currency signs become their own tokens, hyphens split words
//! (remembered, so "Coca-Cola" reads back intact), and ". ! ?" end sentences.

/// Longer input is not a spoken command; refusing it bounds the work done.
const MAX_CHARS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Lowercased form that the word tables match against.
    pub norm: String,
    /// As Whisper wrote it, for names read back to the user.
    pub raw: String,
    /// Joined to the previous token by a hyphen.
    pub hyphen_before: bool,
    /// A comma, semicolon or colon follows: it ends a name.
    pub comma_after: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sentence {
    pub tokens: Vec<Token>,
    pub question: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nothing,
    Word,
    Number,
}

struct Splitter {
    done: Vec<Sentence>,
    current: Sentence,
    word: String,
    kind: Kind,
    hyphen: bool,
}

impl Splitter {
    fn push(&mut self, raw: String) {
        self.current.tokens.push(Token {
            norm: raw.to_lowercase(),
            raw,
            hyphen_before: std::mem::take(&mut self.hyphen),
            comma_after: false,
        });
    }

    fn flush(&mut self) {
        if !self.word.is_empty() {
            let raw = std::mem::take(&mut self.word);
            self.push(raw);
        }
        self.kind = Kind::Nothing;
    }

    fn end_sentence(&mut self, question: bool) {
        self.flush();
        self.hyphen = false;
        if !self.current.tokens.is_empty() {
            self.current.question |= question;
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn comma(&mut self) {
        self.flush();
        self.hyphen = false;
        if let Some(last) = self.current.tokens.last_mut() {
            last.comma_after = true;
        }
    }
}

/// Abbreviations whose period does not end a sentence ("pay Dr. Smith").
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "mt", "prof", "co", "inc", "ltd",
];

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '’' | '‘' | 'ʼ')
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '‐' | '‑' | '–')
}

/// "RMB50", "USD20": a currency code may stand glued before its amount.
fn is_currency_code(word: &str) -> bool {
    const CODES: &[&str] = &["rmb", "cny", "usd", "eur", "gbp", "jpy", "hkd"];
    CODES.contains(&word.to_lowercase().as_str())
}

fn is_currency_sign(c: char) -> bool {
    matches!(c, '$' | '¥' | '￥' | '€' | '£' | '₩' | '₹')
}

/// Splits a transcript into sentences of tokens; `None` if it is too long to be
/// a command.
pub(crate) fn sentences(text: &str) -> Option<Vec<Sentence>> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_CHARS {
        return None;
    }
    let at = |j: usize| chars.get(j).copied();
    let digit_at = |j: usize| at(j).is_some_and(|c| c.is_ascii_digit());
    let mut s = Splitter {
        done: Vec::new(),
        current: Sentence::default(),
        word: String::new(),
        kind: Kind::Nothing,
        hyphen: false,
    };

    for (i, &c) in chars.iter().enumerate() {
        let next = at(i + 1);
        if c.is_ascii_digit() && s.kind == Kind::Word && !is_currency_code(&s.word) {
            // Digits right after letters are part of a word ("A1 Taxi"),
            // never an amount: Whisper writes "TU1" for a misheard "two".
            s.word.push(c);
        } else if c.is_ascii_digit() {
            if s.kind == Kind::Word {
                s.flush(); // "RMB50"
            }
            s.kind = Kind::Number;
            s.word.push(c);
        } else if s.kind == Kind::Number
            && matches!(c, 'k' | 'K')
            && !next.is_some_and(char::is_alphanumeric)
        {
            // "200k tokens"
            s.flush();
            s.current.tokens.push(Token {
                norm: "thousand".into(),
                raw: c.to_string(),
                hyphen_before: false,
                comma_after: false,
            });
        } else if c.is_alphabetic() {
            if s.kind == Kind::Number {
                s.flush();
            }
            s.kind = Kind::Word;
            s.word.push(c);
        } else if is_apostrophe(c) && s.kind == Kind::Word && next.is_some_and(char::is_alphabetic)
        {
            s.word.push('\'');
        } else if c == ','
            && s.kind == Kind::Number
            && !s.word.contains('.')
            && (1..=3).all(|k| digit_at(i + k))
            && !digit_at(i + 4)
        {
            // A thousands separator: "50,000".
        } else if c == '.' && s.kind == Kind::Number && digit_at(i + 1) && !s.word.contains('.') {
            s.word.push('.');
        } else if c == '.'
            && s.kind == Kind::Word
            && ABBREVIATIONS.contains(&s.word.to_lowercase().as_str())
            && next.is_some_and(char::is_whitespace)
        {
            s.flush();
        } else if is_hyphen(c) && s.kind != Kind::Nothing && next.is_some_and(char::is_alphanumeric)
        {
            s.flush();
            s.hyphen = true;
        } else if is_currency_sign(c) {
            s.flush();
            s.push(c.to_string());
        } else {
            match c {
                '.' | '!' | '。' | '！' | '…' => s.end_sentence(false),
                '?' | '？' => s.end_sentence(true),
                ',' | ';' | ':' | '，' | '、' | '；' | '：' => s.comma(),
                _ => {
                    s.flush();
                    s.hyphen = false;
                }
            }
        }
    }
    s.end_sentence(false);
    Some(s.done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str) -> Vec<Vec<String>> {
        sentences(text)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.tokens.into_iter().map(|t| t.norm).collect())
            .collect()
    }

    #[test]
    fn normalises_whisper_text() {
        assert_eq!(
            norms(" Pay $12.50 to Peet's Coffee."),
            [["pay", "$", "12.50", "to", "peet's", "coffee"]]
        );
        assert_eq!(
            norms("Top up 50,000 tokens"),
            [["top", "up", "50000", "tokens"]]
        );
        assert_eq!(norms("twenty-five ¥36"), [["twenty", "five", "¥", "36"]]);
        assert_eq!(norms("36yuan"), [["36", "yuan"]]);
        assert_eq!(norms("200K tokens"), [["200", "thousand", "tokens"]]);
        assert_eq!(norms("5km"), [["5", "km"]]);
        assert_eq!(norms("for TU1"), [["for", "tu1"]]);
        assert_eq!(norms("A1 Taxi"), [["a1", "taxi"]]);
        assert_eq!(norms("RMB50"), [["rmb", "50"]]);
        assert_eq!(norms("20-30"), [["20", "30"]]);
        assert_eq!(norms("1,2"), [["1", "2"]]);
        assert_eq!(norms("1,234,567"), [["1234567"]]);
        assert_eq!(norms("don’t"), [["don't"]]);
        assert_eq!(norms("'quoted' (text)"), [["quoted", "text"]]);
        assert_eq!(norms(""), Vec::<Vec<String>>::new());
        assert_eq!(norms("  . ? "), Vec::<Vec<String>>::new());
    }

    #[test]
    fn sentences_and_punctuation() {
        let s = sentences("No. Pay 30 yuan? Yes, confirm!").unwrap_or_default();
        assert_eq!(s.len(), 3);
        assert!(!s[0].question);
        assert!(s[1].question);
        assert!(s[2].tokens[0].comma_after);
        assert_eq!(norms("1.5 million."), [["1.5", "million"]]);
        assert_eq!(norms("it is 5.00."), [["it", "is", "5.00"]]);
        assert_eq!(norms("to Dr. Smith."), [["to", "dr", "smith"]]);
        assert_eq!(
            norms("to St. Louis. No."),
            [vec!["to", "st", "louis"], vec!["no"]]
        );
    }

    #[test]
    fn hyphens_are_remembered() {
        let s = sentences("Coca-Cola auto-pay").unwrap_or_default();
        let flags: Vec<bool> = s[0].tokens.iter().map(|t| t.hyphen_before).collect();
        assert_eq!(flags, [false, true, false, true]);
        assert_eq!(s[0].tokens[1].raw, "Cola");
    }

    #[test]
    fn long_input_is_refused() {
        assert!(sentences(&"pay ".repeat(300)).is_none());
    }
}
