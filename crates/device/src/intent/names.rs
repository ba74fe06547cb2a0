//! Names as heard: title-casing for read-back, and the parser's view of the one name matcher ([`crate::names`]).
//!
//! A known name wins only when it is close and clearly closer than any
//! other known name; otherwise the heard name stands.

use super::text::Token;

use crate::names::{self as matcher, Closest, Matching};

/// The known name the heard one most plausibly is, if any is close and
/// unique, by the one name matcher ([`crate::names`]).
pub(crate) fn best_match<'k>(heard: &str, known: &'k [String]) -> Option<&'k str> {
    let known = known.iter().map(|name| (name.as_str(), [name.as_str()]));
    match matcher::closest(heard, known, Matching::NAMES) {
        Closest::One(name) => Some(name),
        Closest::Two(..) | Closest::None => None,
    }
}

/// Whether the heard name is a known one up to case, spaces and punctuation.
pub(crate) fn exact_match(heard: &str, known: &[String]) -> bool {
    matcher::same_name(heard, known.iter().map(String::as_str))
}

/// The tokens as one string, for matching.
pub(crate) fn joined(tokens: &[&Token]) -> String {
    tokens
        .iter()
        .map(|t| t.raw.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// "peet's coffee" -> "Peet's Coffee", "bank of china" -> "Bank of China",
/// "coca-cola" -> "Coca-Cola"; letters already capitalised stay ("KFC").
pub(crate) fn title_case(tokens: &[&Token], keep_lowercase: &[&str]) -> String {
    let mut out = String::new();
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(if token.hyphen_before { '-' } else { ' ' });
        }
        if i > 0 && !token.hyphen_before && keep_lowercase.contains(&token.norm.as_str()) {
            out.push_str(&token.norm);
            continue;
        }
        let mut chars = token.raw.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn close_and_unique_matches_win() {
        let payees = known(&["Peet's Coffee", "Heytea", "Starbucks", "Bob"]);
        assert_eq!(best_match("Peters Coffee", &payees), Some("Peet's Coffee"));
        assert_eq!(best_match("peets coffee", &payees), Some("Peet's Coffee"));
        assert_eq!(best_match("Hey Tea", &payees), Some("Heytea"));
        assert_eq!(best_match("star bucks", &payees), Some("Starbucks"));
        assert_eq!(best_match("bob", &payees), Some("Bob"));
        assert_eq!(best_match("Rob", &payees), None);
        assert_eq!(best_match("Luckin", &payees), None);
        assert_eq!(best_match("", &payees), None);
        assert_eq!(best_match("Heytea", &[]), None);
    }

    #[test]
    fn rivals_block_a_match() {
        let payees = known(&["Coffee Shop A", "Coffee Shop B"]);
        assert_eq!(best_match("Coffee Shop", &payees), None);
        assert_eq!(best_match("coffee shop b", &payees), Some("Coffee Shop B"));
        let same = known(&["Heytea", "HEYTEA"]);
        assert_eq!(best_match("hey tea", &same), Some("Heytea"));
    }
}
