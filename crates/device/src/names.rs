//! The one name matcher: how a heard name finds the one it most plausibly is among a few known ones, by spelling and by sound (payees, providers, answers, the wake phrase).
//!
//! A heard name matches a known one when it is close: close in spelling
//! (optimal-string-alignment distance on the squashed letters), or close in
//! sound (Double Metaphone codes, per word, at most one slip apart) while the
//! spelling is partly right. Among several known names the closest must lead
//! the next one by a margin; two about as close are ambiguous. Scores are
//! whole per mille, so every decision is exact and repeatable.

use std::sync::LazyLock;

use rphonetic::DoubleMetaphone;

/// How close is close enough, in per mille.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matching {
    /// Spelling similarity that alone makes a match.
    pub spelling: usize,
    /// Sound similarity that makes a match when the spelling reaches `sound_needs_spelling`.
    pub sound: usize,
    pub sound_needs_spelling: usize,
    /// How far the best name must lead the next one.
    pub margin: usize,
    /// Shorter names match by spelling only when spelled the same: "Bob"
    /// and "Rob" are different people.
    pub min_fuzzy_chars: usize,
}

impl Matching {
    /// Payees and providers: one slip in four letters, or the same sound half spelled right.
    pub const NAMES: Matching = Matching {
        spelling: 750,
        sound: 750,
        sound_needs_spelling: 450,
        margin: 100,
        min_fuzzy_chars: 5,
    };

    /// Answers to a question: looser than a payee's (the choice is between
    /// two or three answers) but with a wider lead, so that a mumble between
    /// two answers is asked again.
    pub const ANSWERS: Matching = Matching {
        spelling: 700,
        sound: 750,
        sound_needs_spelling: 350,
        margin: 150,
        min_fuzzy_chars: 5,
    };

    /// The wake phrase, against the first words heard: nearly the same
    /// letters, or the very same sound with half of them ("hay wallet").
    pub const WAKE: Matching = Matching {
        spelling: 750,
        sound: 1000,
        sound_needs_spelling: 500,
        margin: 0,
        min_fuzzy_chars: 0,
    };
}

/// What a heard name is among the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The known entry's name (never one of its other spoken forms).
    Known(String),
    /// Nothing known is close: the heard name, as heard.
    Unknown(String),
    /// Two entries are about as close: both names.
    Ambiguous(String, String),
}

/// The closest known entry, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closest<'a> {
    One(&'a str),
    Two(&'a str, &'a str),
    None,
}

/// The entry (`name`, its spoken forms) the heard name is, when close and
/// clearly the closest. Entries whose names are the same up to case and
/// punctuation are one ("Heytea", "HEYTEA").
pub fn closest<'a, F>(
    heard: &str,
    entries: impl IntoIterator<Item = (&'a str, F)>,
    matching: Matching,
) -> Closest<'a>
where
    F: IntoIterator<Item = &'a str>,
{
    let heard = Form::new(heard);
    if heard.letters.is_empty() {
        return Closest::None;
    }
    // Each entry's best score over its spoken forms.
    let mut scored: Vec<(usize, &str, String)> = entries
        .into_iter()
        .map(|(name, forms)| {
            let best = forms
                .into_iter()
                .map(|form| heard.score(&Form::new(form), matching))
                .max()
                .unwrap_or(0);
            (best, name, squash(name))
        })
        .collect();
    scored.sort_by_key(|(score, _, _)| std::cmp::Reverse(*score));
    let Some((best, name, squashed)) = scored.first() else {
        return Closest::None;
    };
    if *best == 0 {
        return Closest::None;
    }
    let runner_up = scored
        .iter()
        .find(|(_, _, other)| other != squashed)
        .map_or((0, ""), |(score, name, _)| (*score, *name));
    // An exact hearing beats any near one; otherwise the best must lead.
    let exact = *best == 1000 && runner_up.0 < 1000;
    if exact || *best >= runner_up.0 + matching.margin {
        Closest::One(name)
    } else {
        Closest::Two(name, runner_up.1)
    }
}

/// [`closest`] as a [`Resolution`] of `heard`.
pub fn resolve<'a, F>(
    heard: &str,
    entries: impl IntoIterator<Item = (&'a str, F)>,
    matching: Matching,
) -> Resolution
where
    F: IntoIterator<Item = &'a str>,
{
    match closest(heard, entries, matching) {
        Closest::One(name) => Resolution::Known(name.to_owned()),
        Closest::Two(a, b) => Resolution::Ambiguous(a.to_owned(), b.to_owned()),
        Closest::None => Resolution::Unknown(heard.to_owned()),
    }
}

/// Whether `heard` is one of `forms` up to case, spaces and punctuation.
pub fn same_name<'a>(heard: &str, forms: impl IntoIterator<Item = &'a str>) -> bool {
    let heard = squash(heard);
    !heard.is_empty() && forms.into_iter().any(|form| squash(form) == heard)
}

/// Whether `name` is said in `text` as such: a run of its words is the
/// name up to case, spaces and punctuation ("Hey tea" says "Heytea";
/// "Peters Coffee" does not say "Peet's Coffee").
pub fn said_in(name: &str, text: &str) -> bool {
    let name = squash(name);
    if name.is_empty() {
        return false;
    }
    let words: Vec<String> = text.split_whitespace().map(squash).collect();
    (0..words.len()).any(|start| {
        let mut run = String::new();
        for word in &words[start..] {
            run.push_str(word);
            if run.len() >= name.len() {
                break;
            }
        }
        run == name
    })
}

/// A name as compared: its squashed letters and its sound.
#[derive(Debug, Clone)]
pub struct Form {
    letters: String,
    sound: Vec<String>,
}

static METAPHONE: LazyLock<DoubleMetaphone> = LazyLock::new(|| DoubleMetaphone::new(None));

impl Form {
    pub fn new(name: &str) -> Form {
        let letters = squash(name);
        // Per word, joined: "Blue Bottle" sounds like "Bluebottle".
        let (mut primary, mut alternate) = (String::new(), String::new());
        for word in name.split(|c: char| !c.is_alphanumeric()) {
            let word = squash(word);
            if word.is_empty() {
                continue;
            }
            let code = METAPHONE.double_metaphone(&word);
            primary.push_str(&code.primary());
            alternate.push_str(&code.alternate());
        }
        let mut sound = vec![primary];
        if !sound.contains(&alternate) {
            sound.push(alternate);
        }
        sound.retain(|s| !s.is_empty());
        Form { letters, sound }
    }

    pub fn is_empty(&self) -> bool {
        self.letters.is_empty()
    }

    /// 1000 for the same letters; a spelling or sound similarity when it
    /// passes its threshold; otherwise 0.
    pub fn score(&self, known: &Form, m: Matching) -> usize {
        if self.letters.is_empty() || known.letters.is_empty() {
            return 0;
        }
        if self.letters == known.letters {
            return 1000;
        }
        let spelling = per_mille(&self.letters, &known.letters);
        let shortest = self
            .letters
            .chars()
            .count()
            .min(known.letters.chars().count());
        if shortest >= m.min_fuzzy_chars && spelling >= m.spelling {
            return spelling;
        }
        let sound = self
            .sound
            .iter()
            .flat_map(|a| known.sound.iter().map(move |b| (a, b)))
            .map(|(a, b)| {
                // Short codes must agree exactly: "PP" (Bob) is not "RP" (Rob).
                // Otherwise one sound may differ, but none may be missing
                // or extra: "Costco" (KSTK) is not "Costa" (KST).
                if a == b {
                    1000
                } else if a.len().min(b.len()) < 3 || a.len() != b.len() {
                    0
                } else {
                    per_mille(a, b)
                }
            })
            .max()
            .unwrap_or(0);
        if sound >= m.sound && spelling >= m.sound_needs_spelling {
            // Below any exact match, so an exact rival always wins.
            sound.min(999)
        } else {
            0
        }
    }
}

/// A name as compared: lowercase letters and digits only, so "Peet's
/// Coffee", "peets coffee" and "PeetsCoffee" are one name.
pub fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// 1000 for equal strings, down to 0, by optimal-string-alignment distance.
pub fn per_mille(a: &str, b: &str) -> usize {
    let longest = a.chars().count().max(b.chars().count());
    if longest == 0 {
        return 0;
    }
    longest.saturating_sub(strsim::osa_distance(a, b)) * 1000 / longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_each<'a>(names: &'a [&'a str]) -> impl Iterator<Item = (&'a str, [&'a str; 1])> {
        names.iter().map(|name| (*name, [*name]))
    }

    #[test]
    fn a_name_matches_by_spelling_or_by_sound_when_close_and_unique() {
        let names = ["Peet's Coffee", "Heytea", "Starbucks", "Bob", "Shell"];
        let find = |heard: &str| closest(heard, one_each(&names), Matching::NAMES);
        assert_eq!(find("Peters Coffee"), Closest::One("Peet's Coffee"));
        assert_eq!(find("Hey Tea"), Closest::One("Heytea"));
        assert_eq!(find("star bucks"), Closest::One("Starbucks"));
        assert_eq!(find("Shail"), Closest::One("Shell"));
        assert_eq!(find("bob"), Closest::One("Bob"));
        assert_eq!(find("Rob"), Closest::None);
        assert_eq!(find("Luckin"), Closest::None);
        assert_eq!(find(""), Closest::None);
    }

    #[test]
    fn two_names_about_as_close_are_ambiguous_and_spellings_of_one_name_are_not_rivals() {
        let twins = ["Coffee Shop A", "Coffee Shop B"];
        assert_eq!(
            closest("Coffee Shop", one_each(&twins), Matching::NAMES),
            Closest::Two("Coffee Shop A", "Coffee Shop B")
        );
        let same = ["Heytea", "HEYTEA"];
        assert_eq!(
            closest("hey tea", one_each(&same), Matching::NAMES),
            Closest::One("Heytea")
        );
    }

    #[test]
    fn an_entry_is_found_by_any_of_its_forms_and_named_by_its_name() {
        let book = [("McDonalds", vec!["McDonalds", "Mickey D's"])];
        assert_eq!(
            resolve(
                "Mickey Ds",
                book.iter().map(|(n, f)| (*n, f.iter().copied())),
                Matching::NAMES
            ),
            Resolution::Known("McDonalds".into())
        );
    }

    #[test]
    fn a_name_is_said_only_when_a_run_of_words_spells_it() {
        assert!(said_in("Heytea", "Pay 36 yuan to Hey tea."));
        assert!(said_in("Peet's Coffee", "pay peets coffee 20 yuan"));
        assert!(!said_in("Peet's Coffee", "Pay Peters Coffee 20 yuan."));
        assert!(!said_in("Bob", "Pay Bobby 5 yuan."));
        assert!(!said_in("", "Pay Bob."));
    }

    #[test]
    fn similarity_is_exact_per_mille() {
        assert_eq!(per_mille("kimi", "kimi"), 1000);
        assert_eq!(per_mille("heytea", "heyteas"), 857);
        assert_eq!(per_mille("", ""), 0);
    }
}
