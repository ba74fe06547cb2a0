//! A Mandarin reply read for the question it answers: the words as written (确认, 不批准), else the one expected answer they sound like, tones aside (确人 for 确认); with a code's digits (确认四七二) when a code was asked for.

use super::commands::{answer_forms, only_answers, read_answer, readings, same_sound};
use crate::intent::answers::{expected_answers, reading};
use crate::intent::language::Listening;
use crate::intent::{AnswerKind, AnswerReading, Intent};

/// Reads `words` heard while `listening`; below `min_confidence` the
/// hearing is too unsure to be any answer. How each answer counts for each
/// question is English's rule too ([`reading`]).
pub fn read_reply(
    listening: Listening,
    words: &str,
    confidence: f32,
    min_confidence: f32,
) -> AnswerReading {
    if confidence < min_confidence {
        return AnswerReading::Unclear;
    }
    let (words, digits) = match listening {
        Listening::Code => {
            let (words, digits) = code_digits(words);
            (words, Some(digits))
        }
        _ => (words.to_owned(), None),
    };
    let answer = answer_among(&words, expected_answers(listening));
    reading(listening, answer, digits)
}

/// The answer among `expected` the words are: as written, else the one they
/// sound like. A written answer that is not expected is none (asked again).
pub fn answer_among(words: &str, expected: &[AnswerKind]) -> Option<AnswerKind> {
    match read_answer(words) {
        Some(said) => kind_of(&said).filter(|kind| expected.contains(kind)),
        // 不，批准: answers that contradict are none, never the one their
        // sounds run together make (不批准).
        None if only_answers(words) => None,
        None => sounds_like(words, expected),
    }
}

/// The answer an intent is, if it is one.
fn kind_of(intent: &Intent) -> Option<AnswerKind> {
    match intent {
        Intent::Confirm => Some(AnswerKind::Confirm),
        Intent::Cancel => Some(AnswerKind::Cancel),
        Intent::ApproveTask => Some(AnswerKind::Approve),
        Intent::RejectTask => Some(AnswerKind::Reject),
        _ => None,
    }
}

/// The one expected answer whose words sound like `words`, tones aside.
fn sounds_like(words: &str, expected: &[AnswerKind]) -> Option<AnswerKind> {
    let said: String = words
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !"，。！？、".contains(*c))
        .collect();
    let heard = readings(&said)?;
    let mut alike = expected.iter().filter(|kind| {
        answer_forms(**kind)
            .iter()
            .any(|form| readings(form).is_some_and(|form| same_sound(&heard, &form)))
    });
    let first = alike.next()?;
    alike.next().is_none().then_some(*first)
}

/// The code's digits, as figures or characters (四七二, 4-7-2, 幺 for one),
/// and the words around them.
pub fn code_digits(words: &str) -> (String, String) {
    let mut rest = String::new();
    let mut digits = String::new();
    for c in words.chars() {
        let digit = match c {
            '0'..='9' => Some(c),
            '零' | '〇' => Some('0'),
            '一' | '幺' => Some('1'),
            '二' | '两' => Some('2'),
            '三' => Some('3'),
            '四' => Some('4'),
            '五' => Some('5'),
            '六' => Some('6'),
            '七' => Some('7'),
            '八' => Some('8'),
            '九' => Some('9'),
            _ => None,
        };
        match digit {
            Some(d) => digits.push(d),
            // Said between the digits: "4-7-2", "4 7 2".
            None if c == '-' || c.is_whitespace() => {}
            None => rest.push(c),
        }
    }
    (rest, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(listening: Listening, words: &str) -> AnswerReading {
        read_reply(listening, words, 0.9, 0.5)
    }

    #[test]
    fn answers_are_read_for_the_question_asked() {
        use AnswerReading::*;
        let confirm = Confirm { digits: None };
        for (listening, words, reading) in [
            (Listening::Confirmation, "确认。", confirm.clone()),
            (Listening::Confirmation, "好的，取消", Cancel),
            (Listening::Confirmation, "批准", Unclear),
            (Listening::TaskDecision, "不批准", Reject),
            (Listening::TaskDecision, "不、批准。", Unclear),
            (Listening::Confirmation, "不，确认", Unclear),
            (Listening::TaskDecision, "同意", Approve),
            (Listening::TaskDecision, "确认", Unclear),
            (Listening::Amount, "确认", Unclear),
            (Listening::Amount, "取消", Cancel),
            (Listening::Confirmation, "今天天气不错", Unclear),
        ] {
            assert_eq!(read(listening, words), reading, "{words}");
        }
        assert_eq!(
            read_reply(Listening::Confirmation, "确认", 0.2, 0.5),
            Unclear
        );
    }

    #[test]
    fn an_answer_misheard_as_a_homophone_is_the_answer_it_sounds_like() {
        use AnswerReading::*;
        assert_eq!(
            read(Listening::Confirmation, "确人"),
            Confirm { digits: None }
        );
        assert_eq!(read(Listening::Confirmation, "取销。"), Cancel);
        assert_eq!(read(Listening::TaskDecision, "批准。"), Approve);
        assert_eq!(read(Listening::TaskDecision, "拒决"), Reject);
        // 不批准 and 批准 never sound alike: a no is never heard as a yes.
        assert_eq!(read(Listening::TaskDecision, "不批准"), Reject);
        assert_eq!(read(Listening::TaskDecision, "不皮准"), Reject);
    }

    #[test]
    fn a_code_answer_carries_its_digits_in_figures_or_characters() {
        for words in ["确认四七二", "确认，4-7-2。", "四七二，确认", "确认 4 7 2"]
        {
            assert_eq!(
                read(Listening::Code, words),
                AnswerReading::Confirm {
                    digits: Some("472".into())
                },
                "{words}"
            );
        }
        assert_eq!(read(Listening::Code, "取消"), AnswerReading::Cancel);
        assert_eq!(
            read(Listening::Code, "确认"),
            AnswerReading::Confirm {
                digits: Some(String::new())
            },
            "no digits: the code check refuses it"
        );
    }
}
