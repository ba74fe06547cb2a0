//! Answers heard imperfectly: while a question is pending, a transcript that spells no answer is matched against the few answers expected, by sound as well as by spelling.
//!
//! Only a pending question reads this way: the candidates are few ("Console."
//! can only be "cancel" when the choice is confirm or cancel), and the closest
//! must lead the next one clearly, or the question is asked again. Outside a
//! question a near miss is nothing.

use super::lexicon::Lexicon;
use crate::names::{self, Closest, Matching};

/// An answer a pending question expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerKind {
    Confirm,
    Cancel,
    Approve,
    Reject,
}

impl AnswerKind {
    fn key(self) -> &'static str {
        match self {
            AnswerKind::Confirm => "confirm",
            AnswerKind::Cancel => "cancel",
            AnswerKind::Approve => "approve",
            AnswerKind::Reject => "reject",
        }
    }
}

/// Longer than this is a sentence, not an answer.
const MAX_WORDS: usize = 6;

/// What the task objects an approve or reject verb takes look like.
const OBJECTS: &[&str] = &[
    "",
    " it",
    " that",
    " the task",
    " the agent's task",
    " the agent request",
];

/// The answer among `expected` that the transcript's words (normalised, see
/// [`super::text`]) most plausibly are, if one is close and clearly the closest.
pub(crate) fn closest(
    lex: &Lexicon,
    words: &[&str],
    expected: &[AnswerKind],
) -> Option<AnswerKind> {
    if words.is_empty() || words.len() > MAX_WORDS {
        return None;
    }
    let forms: Vec<(&str, Vec<String>)> = expected
        .iter()
        .map(|kind| (kind.key(), forms(lex, *kind)))
        .collect();
    let entries = forms
        .iter()
        .map(|(key, forms)| (*key, forms.iter().map(String::as_str)));
    match names::closest(&words.join(" "), entries, Matching::ANSWERS) {
        Closest::One(key) => expected.iter().copied().find(|k| k.key() == key),
        Closest::Two(..) | Closest::None => None,
    }
}

/// Every way the lexicon says this answer.
pub(super) fn forms(lex: &Lexicon, kind: AnswerKind) -> Vec<String> {
    let phrases =
        |table: &[&[&str]]| -> Vec<String> { table.iter().map(|p| p.join(" ")).collect() };
    let with_objects = |verbs: &[&[&str]]| -> Vec<String> {
        verbs
            .iter()
            .map(|v| v.join(" "))
            .flat_map(|v| OBJECTS.iter().map(move |o| format!("{v}{o}")))
            .collect()
    };
    match kind {
        AnswerKind::Confirm => phrases(lex.confirm),
        AnswerKind::Cancel => phrases(lex.cancel),
        AnswerKind::Approve => with_objects(lex.approve_verbs),
        AnswerKind::Reject => with_objects(lex.reject_verbs),
    }
}
