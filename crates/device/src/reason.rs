//! Why a payment never left the device, as the history keeps it: typed, and put into words only when read, by the phrasebook in the profile's language.
//!
//! A history entry is sealed over its JSON bytes, so the form of a reason
//! kept in it never changes: entries written before reasons were typed hold
//! the words they were told in, a bare JSON string, and read back as
//! [`Reason::Words`], which writes the same string again (their seals still
//! check). New variants may be added; none may be renamed or reshaped.

use serde::{Deserialize, Serialize};
use voicepay_core::policy::{OutsideMandate, Refusal, TopUpRefusal};

use crate::order::DropReason;

/// Why an agent's task was not committed: the agent's mandate, read and
/// reserved in the same transaction as the user's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum AgentRefusal {
    #[error("no agent named {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Outside(#[from] OutsideMandate),
}

/// Why a refused or cancelled payment was not made. In JSON, a typed reason
/// is tagged by its variant (`{"policy":{"over_daily_limit":{...}}}`,
/// `{"dropped":"no_answer_in_time"}`); an old entry's reason is its words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A money rule: the user's limits, the offline floor, driving.
    Policy(Refusal),
    /// The agent's mandate, checked again in the commit (the agent stopped
    /// or spent since the user was asked).
    Agent(AgentRefusal),
    /// Outside the agent's mandate when its task came up.
    Mandate(OutsideMandate),
    /// A top-up from an unknown provider or off the device's prices.
    TopUp(TopUpRefusal),
    /// The agent's spending could not be read to check it: the store's error.
    Unreadable(String),
    /// Dropped by the user's answer, or its absence.
    Dropped(DropReason),
    /// An entry written before reasons were typed: its words, kept as they
    /// were (a bare string, so the entry's bytes and seal do not change).
    /// Untagged and last: serde tries it only when no tag matches, and no
    /// variant above reads from a bare string.
    #[serde(untagged)]
    Words(String),
}

/// Words kept as they are: how an entry written before reasons were typed reads.
impl From<&str> for Reason {
    fn from(words: &str) -> Reason {
        Reason::Words(words.to_owned())
    }
}

impl From<String> for Reason {
    fn from(words: String) -> Reason {
        Reason::Words(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voicepay_core::money::{Currency, Money};

    #[test]
    fn a_typed_reason_is_tagged_and_reads_back_as_itself() {
        let cny = |minor| Money::new(minor, Currency::CNY);
        let reasons = [
            (
                Reason::Policy(Refusal::OverDailyLimit {
                    limit: cny(50_000),
                    left: cny(1_000),
                }),
                r#"{"policy":{"over_daily_limit":{"limit":{"minor":50000,"currency":"CNY"},"left":{"minor":1000,"currency":"CNY"}}}}"#,
            ),
            (
                Reason::Policy(Refusal::OfflineTooLong),
                r#"{"policy":"offline_too_long"}"#,
            ),
            (
                Reason::Agent(AgentRefusal::Outside(OutsideMandate::Revoked)),
                r#"{"agent":{"outside":"revoked"}}"#,
            ),
            (
                Reason::Mandate(OutsideMandate::Daily { left: cny(0) }),
                r#"{"mandate":{"daily":{"left":{"minor":0,"currency":"CNY"}}}}"#,
            ),
            (
                Reason::TopUp(TopUpRefusal::UnknownProvider {
                    provider: "Acme".into(),
                }),
                r#"{"top_up":{"unknown_provider":{"provider":"Acme"}}}"#,
            ),
            (
                Reason::Unreadable("disk gone".into()),
                r#"{"unreadable":"disk gone"}"#,
            ),
            (
                Reason::Dropped(DropReason::NoAnswerInTime),
                r#"{"dropped":"no_answer_in_time"}"#,
            ),
        ];
        for (reason, json) in reasons {
            assert_eq!(serde_json::to_string(&reason).expect("json"), json);
            assert_eq!(serde_json::from_str::<Reason>(json).expect("reads"), reason);
        }
    }

    #[test]
    fn old_words_read_as_words_and_are_written_back_byte_for_byte() {
        // Even words that spell a tag, or need escaping, stay words.
        for json in [
            r#""user said cancel""#,
            r#""policy""#,
            r#""dropped""#,
            r#""no_answer_in_time""#,
            r#""That is over your daily limit of 500 yuan; you have 10 yuan left today.""#,
            r#""quote \" and \u00e9 and \\ and é""#,
            r#""""#,
        ] {
            let reason: Reason = serde_json::from_str(json).expect("reads");
            assert!(matches!(reason, Reason::Words(_)), "{json}: {reason:?}");
            let again = serde_json::to_string(&reason).expect("json");
            // serde_json writes é as itself, so compare with how it first wrote it.
            let written =
                serde_json::to_string(&serde_json::from_str::<String>(json).expect("string"))
                    .expect("json");
            assert_eq!(again, written);
        }
    }
}
