//! Names as heard: title-casing for read-back and fuzzy matching against the names the device knows.
//!
//! Matching compares squashed forms (lowercase letters and digits only, so
//! "Peet's Coffee", "peets coffee" and "PeetsCoffee" are equal) by
//! optimal-string-alignment distance, in whole per-mille so the decision is
//! exact and repeatable. A known name wins only when it is close and clearly
//! closer than any other known name; otherwise the heard name stands.

use super::text::Token;

/// Similarity (per mille) a known name needs: one slip in four letters.
const THRESHOLD: usize = 750;
/// How far the best known name must lead the next one.
const MARGIN: usize = 100;
/// Shorter names must match exactly: "Bob" and "Rob" are different people.
const MIN_FUZZY_CHARS: usize = 5;

use crate::payees::squash;

/// 1000 for equal squashed names, down to 0.
fn similarity(a: &str, b: &str) -> usize {
    if a == b {
        return 1000;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la.min(lb) < MIN_FUZZY_CHARS {
        return 0;
    }
    let longest = la.max(lb);
    let distance = strsim::osa_distance(a, b);
    longest.saturating_sub(distance) * 1000 / longest
}

/// The known name the heard one most plausibly is, if any is close and unique.
pub(crate) fn best_match<'k>(heard: &str, known: &'k [String]) -> Option<&'k str> {
    let heard = squash(heard);
    if heard.is_empty() {
        return None;
    }
    let mut scored: Vec<(usize, String, &str)> = known
        .iter()
        .map(|k| (squash(k), k.as_str()))
        .filter(|(s, _)| !s.is_empty())
        .map(|(s, k)| (similarity(&heard, &s), s, k))
        .collect();
    scored.sort_by_key(|(score, _, _)| std::cmp::Reverse(*score));
    let (best, best_squashed, name) = scored.first()?;
    if *best == 1000 {
        // Heard exactly (up to case and punctuation): no rival can be closer.
        return Some(*name);
    }
    // Spellings of the same name ("Heytea", "HEYTEA") are not rivals.
    let runner_up = scored
        .iter()
        .find(|(_, s, _)| s != best_squashed)
        .map_or(0, |(score, _, _)| *score);
    (*best >= THRESHOLD && *best >= runner_up + MARGIN).then_some(*name)
}

/// Whether the heard name is a known one up to case, spaces and punctuation.
pub(crate) fn exact_match(heard: &str, known: &[String]) -> bool {
    let heard = squash(heard);
    !heard.is_empty() && known.iter().any(|k| squash(k) == heard)
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

    #[test]
    fn similarity_is_exact_per_mille() {
        assert_eq!(similarity("kimi", "kimi"), 1000);
        assert_eq!(similarity("kimi", "kimmi"), 0);
        assert_eq!(similarity("claude", "claud"), 833);
        assert_eq!(similarity("peterscoffee", "peetscoffee"), 833);
    }
}
