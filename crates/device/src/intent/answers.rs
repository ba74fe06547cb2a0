//! Answers heard imperfectly: while a question is pending, a transcript that spells no answer is matched against the few answers expected, by sound as well as by spelling.
//!
//! Only a pending question reads this way: the candidates are few ("Console."
//! can only be "cancel" when the choice is confirm or cancel), and the closest
//! must lead the next one clearly, or the question is asked again. Outside a
//! question a near miss is nothing.

use super::ParseContext;
use super::language::Listening;
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

/// How an answer to a pending question was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerReading {
    /// With the digits heard, when the question asked for a code.
    Confirm {
        digits: Option<String>,
    },
    Cancel,
    Approve,
    Reject,
    /// Not clearly any expected answer: the question is asked again.
    Unclear,
}

impl AnswerReading {
    /// As intent JSON; a code answer carries its digits, and "confirm"
    /// without the digits asked for is no answer.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            AnswerReading::Confirm { digits: None } => json!({"kind": "confirm"}),
            AnswerReading::Confirm { digits: Some(d) } if !d.is_empty() => {
                json!({"kind": "confirm", "digits": d})
            }
            AnswerReading::Confirm { .. } | AnswerReading::Unclear => json!({"kind": "none"}),
            AnswerReading::Cancel => json!({"kind": "cancel"}),
            AnswerReading::Approve => json!({"kind": "approve_task"}),
            AnswerReading::Reject => json!({"kind": "reject_task"}),
        }
    }
}

/// A reply as read for the question it was heard under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub listening: Listening,
    pub reading: AnswerReading,
}

/// Reads a reply the way the question asked while `listening` takes it:
/// unsure hearing is unclear, then the words as spelled, then the closest
/// expected answer by sound (see [`super::read_answer`]). The recognizer
/// reads each reply once, with what it heard; `words` are those said to the
/// device (the wake phrase taken off). While nothing is asked
/// (`Listening::Command`) a reply is read as to a read-back.
pub fn read_reply(
    listening: Listening,
    words: &str,
    confidence: f32,
    ctx: &ParseContext,
    min_confidence: f32,
) -> AnswerReading {
    if let super::Reader::Mandarin = super::reader(ctx.language) {
        return super::mandarin::read_reply(listening, words, confidence, min_confidence);
    }
    if confidence < min_confidence {
        return AnswerReading::Unclear;
    }
    let (words, digits) = match listening {
        Listening::Code => {
            let answer = super::parse_code_answer(words, ctx);
            (answer.words, Some(answer.digits))
        }
        _ => (words.to_owned(), None),
    };
    let answer = super::read_answer(&words, ctx, expected_answers(listening));
    reading(listening, answer, digits)
}

/// The answers a question asked while `listening` expects, in any language.
pub(crate) fn expected_answers(listening: Listening) -> &'static [AnswerKind] {
    match listening {
        Listening::TaskDecision => &[AnswerKind::Approve, AnswerKind::Reject],
        // A missing part is no yes: confirm is listed so that the sound
        // match has a rival and takes only a clear "cancel".
        _ => &[AnswerKind::Confirm, AnswerKind::Cancel],
    }
}

/// How the question asked while `listening` takes `answer` (one of its
/// expected ones, or none); `digits`, when it asked for a code.
pub(crate) fn reading(
    listening: Listening,
    answer: Option<AnswerKind>,
    digits: Option<String>,
) -> AnswerReading {
    let slot = matches!(listening, Listening::Amount | Listening::Payee);
    match answer {
        Some(AnswerKind::Confirm) if slot => AnswerReading::Unclear,
        Some(AnswerKind::Confirm) => AnswerReading::Confirm { digits },
        Some(AnswerKind::Cancel) => AnswerReading::Cancel,
        Some(AnswerKind::Approve) => AnswerReading::Approve,
        Some(AnswerKind::Reject) => AnswerReading::Reject,
        None => AnswerReading::Unclear,
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
