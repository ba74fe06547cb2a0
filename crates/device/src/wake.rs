//! Whether an utterance was meant for the device: a wake phrase at the start of what Whisper heard ("hey wallet, pay twenty yuan to KFC"), push-to-talk, or always.
//!
//! The phrase is checked on the transcript, so it and the command fit in one
//! breath. Whisper writes it many ways ("Hey, Wallet!", "Hey wallet.", "Hey
//! Wallett"), so it is matched by spelling and by sound over the first few
//! words, and what follows it is the command. What an utterance that was
//! not addressed is worth (an answer to a pending question, or the command
//! just after the phrase alone, needs no phrase) is [`Attention`]'s call.

use std::time::Duration;

use serde::Deserialize;

use crate::names::{Form, Matching, squash};

/// How the device knows it is spoken to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeMode {
    /// Everything heard is for the device (a desktop, a test rig, files).
    #[default]
    Always,
    /// Only what starts with the wake phrase (glasses, headphones).
    Phrase,
    /// Only what is said while push-to-talk is held (a steering-wheel
    /// button): `{prefix}/devices/{id}/ptt` `start` / `stop`, or Enter on
    /// the console in development.
    PushToTalk,
}

/// The `[wake]` table of a device profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WakeSettings {
    pub mode: WakeMode,
    /// Said first, in the same breath as the command or just before it.
    pub phrase: String,
    /// After the phrase alone, how long the next utterance needs none.
    pub follow_s: u64,
    /// The push-to-talk button's public key (base64url, as `keys show`
    /// prints one): only presses it signed are taken from MQTT. None: MQTT
    /// push-to-talk is off (Enter on the console still works).
    pub ptt_key: Option<String>,
    /// A `start` holds the microphone at most this long; a button still
    /// held says `start` again before then.
    pub ptt_hold_s: u64,
}

impl Default for WakeSettings {
    fn default() -> Self {
        WakeSettings {
            mode: WakeMode::Always,
            phrase: "hey wallet".to_owned(),
            follow_s: 8,
            ptt_key: None,
            ptt_hold_s: 30,
        }
    }
}

impl WakeSettings {
    pub fn validate(&self) -> Result<(), String> {
        let words = words(&self.phrase).len();
        if self.mode == WakeMode::Phrase && !(1..=4).contains(&words) {
            return Err("wake.phrase is one to four words".into());
        }
        if squash(&self.phrase).chars().count() < 4 && self.mode == WakeMode::Phrase {
            // A short phrase would wake on everyday words.
            return Err("wake.phrase needs at least four letters".into());
        }
        if !(1..=60).contains(&self.follow_s) {
            return Err("wake.follow_s is between 1 and 60".into());
        }
        if !(1..=300).contains(&self.ptt_hold_s) {
            return Err("wake.ptt_hold_s is between 1 and 300".into());
        }
        self.button_key()?;
        Ok(())
    }

    /// The push-to-talk button's key, if one is named.
    pub fn button_key(&self) -> Result<Option<voicepay_core::keys::PublicKey>, String> {
        self.ptt_key
            .as_deref()
            .map(|key| {
                voicepay_core::keys::PublicKey::from_base64url(key.trim())
                    .map_err(|e| format!("wake.ptt_key: {e}"))
            })
            .transpose()
    }

    pub fn ptt_hold(&self) -> Duration {
        Duration::from_secs(self.ptt_hold_s)
    }

    pub fn follow(&self) -> Duration {
        Duration::from_secs(self.follow_s)
    }
}

/// What an utterance was, as far as being spoken to goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressed {
    /// For the device: this is the command (the phrase taken off).
    Command(String),
    /// The wake phrase and nothing after it: the command comes next.
    PhraseAlone,
    /// Not for the device (unless it is answering a question it asked).
    Not,
}

/// What to do with an utterance, as far as being spoken to goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heed {
    /// For the device: hear it.
    Take,
    /// The wake phrase alone: say so and wait for the command.
    Listen,
    /// Not said to the device.
    Ignore,
}

/// Whether an utterance is taken: the wake phrase alone opens a short
/// stretch in which the command needs none, and an answer to the device's
/// own question needs none either.
#[derive(Debug, Default)]
pub struct Attention {
    awake_until: Option<tokio::time::Instant>,
}

impl Attention {
    /// `follow`: how long after the phrase alone the command may come;
    /// `asking`: the device waits for an answer to its question.
    pub fn heed(
        &mut self,
        addressed: &Addressed,
        arrived: tokio::time::Instant,
        follow: Duration,
        asking: bool,
    ) -> Heed {
        match addressed {
            Addressed::Command(_) => {
                self.awake_until = None;
                Heed::Take
            }
            Addressed::PhraseAlone => {
                self.awake_until = Some(arrived + follow);
                Heed::Listen
            }
            Addressed::Not if asking || self.awake_until.is_some_and(|until| arrived <= until) => {
                self.awake_until = None;
                Heed::Take
            }
            Addressed::Not => Heed::Ignore,
        }
    }
}

/// The phrase as Whisper's prompt says it: "hey wallet" is "Hey wallet."
pub fn as_sentence(phrase: &str) -> String {
    let phrase = phrase.trim();
    let mut chars = phrase.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// The profile's wake rule, ready to match.
#[derive(Debug, Clone)]
pub struct Wake {
    mode: WakeMode,
    phrase: Form,
    phrase_words: usize,
}

/// The words of `text` with where each ends, in bytes.
fn words(text: &str) -> Vec<(&str, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        let in_word = c.is_alphanumeric() || c == '\'';
        match (in_word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((&text[s..i], i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((&text[s..], text.len()));
    }
    out
}

impl Wake {
    pub fn new(settings: &WakeSettings) -> Wake {
        let phrase_words = words(&settings.phrase);
        Wake {
            mode: settings.mode,
            phrase: Form::new(&settings.phrase),
            phrase_words: phrase_words.len(),
        }
    }

    pub fn mode(&self) -> WakeMode {
        self.mode
    }

    /// Whether `transcript` was said to the device, and the command in it.
    pub fn address(&self, transcript: &str) -> Addressed {
        if self.mode != WakeMode::Phrase {
            return Addressed::Command(transcript.to_owned());
        }
        let heard = words(transcript);
        // Whisper may split or join the phrase's words: "hey wallet" can
        // come out as "Hey Wall it" or "Heywallet".
        let longest = (self.phrase_words + 1).min(heard.len());
        let shortest = self.phrase_words.saturating_sub(1).max(1);
        // The closest run wins; on a tie, the shorter ("hey wallet pay" is
        // nearly "hey wallet" too, but "pay" belongs to the command).
        let best = (shortest..=longest)
            .filter_map(|count| {
                let run: Vec<&str> = heard[..count].iter().map(|(w, _)| *w).collect();
                let score = Form::new(&run.join(" ")).score(&self.phrase, Matching::WAKE);
                (score > 0).then_some((score, count))
            })
            .max_by_key(|&(score, count)| (score, std::cmp::Reverse(count)));
        if let Some((_, count)) = best {
            let end = heard[count - 1].1;
            let rest = transcript[end..]
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .trim_end();
            return if words(rest).is_empty() {
                Addressed::PhraseAlone
            } else {
                Addressed::Command(rest.to_owned())
            };
        }
        Addressed::Not
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase() -> Wake {
        Wake::new(&WakeSettings {
            mode: WakeMode::Phrase,
            ..WakeSettings::default()
        })
    }

    #[test]
    fn the_phrase_and_the_command_fit_in_one_breath_however_whisper_writes_them() {
        let wake = phrase();
        for heard in [
            "Hey wallet, pay twenty yuan to KFC.",
            "Hey Wallet! Pay twenty yuan to KFC.",
            "hey wallet pay twenty yuan to KFC",
            "Hey, wallet. Pay twenty yuan to KFC.",
            "Heywallet, pay twenty yuan to KFC.",
            "Hay Wallet, pay twenty yuan to KFC.",
            "Hey, Wallit, pay twenty yuan to KFC.",
        ] {
            match wake.address(heard) {
                Addressed::Command(command) => {
                    assert_eq!(
                        command.to_lowercase().trim_end_matches('.'),
                        "pay twenty yuan to kfc",
                        "{heard}"
                    )
                }
                other => panic!("{heard}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_phrase_alone_is_told_apart_from_a_command() {
        let wake = phrase();
        assert_eq!(wake.address("Hey wallet."), Addressed::PhraseAlone);
        assert_eq!(wake.address("Hey, Wallet!"), Addressed::PhraseAlone);
    }

    #[test]
    fn speech_that_does_not_start_with_the_phrase_is_not_for_the_device() {
        let wake = phrase();
        for heard in [
            "Pay twenty yuan to KFC.",
            "I left my wallet at home.",
            "Hey, what's up?",
            "Hello.",
            "",
            "Where is my wallet, hey?",
        ] {
            assert_eq!(wake.address(heard), Addressed::Not, "{heard}");
        }
    }

    #[test]
    fn always_and_push_to_talk_take_everything_as_it_was_heard() {
        for mode in [WakeMode::Always, WakeMode::PushToTalk] {
            let wake = Wake::new(&WakeSettings {
                mode,
                ..WakeSettings::default()
            });
            assert_eq!(
                wake.address("Hey wallet, confirm."),
                Addressed::Command("Hey wallet, confirm.".to_owned())
            );
        }
    }

    #[test]
    fn a_phrase_too_short_or_too_long_is_refused() {
        let bad = |phrase: &str| WakeSettings {
            mode: WakeMode::Phrase,
            phrase: phrase.to_owned(),
            ..WakeSettings::default()
        };
        assert!(bad("yo").validate().is_err());
        assert!(bad("hey there my lovely wallet").validate().is_err());
        assert!(WakeSettings::default().validate().is_ok());
    }

    #[test]
    fn after_the_wake_phrase_alone_one_command_needs_no_phrase_until_the_follow_window_ends() {
        let (start, follow) = (tokio::time::Instant::now(), Duration::from_secs(8));
        let mut attention = Attention::default();
        let heed = |a: &mut Attention, addressed: &Addressed, after: u64| {
            a.heed(addressed, start + Duration::from_secs(after), follow, false)
        };
        assert_eq!(heed(&mut attention, &Addressed::Not, 0), Heed::Ignore);
        assert_eq!(
            heed(&mut attention, &Addressed::PhraseAlone, 1),
            Heed::Listen
        );
        assert_eq!(heed(&mut attention, &Addressed::Not, 5), Heed::Take);
        assert_eq!(
            heed(&mut attention, &Addressed::Not, 6),
            Heed::Ignore,
            "one command, not a conversation"
        );
        heed(&mut attention, &Addressed::PhraseAlone, 10);
        assert_eq!(
            heed(&mut attention, &Addressed::Not, 19),
            Heed::Ignore,
            "too late"
        );
        let command = Addressed::Command("pay".into());
        assert_eq!(heed(&mut attention, &command, 20), Heed::Take);
    }

    #[test]
    fn an_answer_to_the_devices_own_question_needs_no_phrase() {
        let mut attention = Attention::default();
        let now = tokio::time::Instant::now();
        let follow = Duration::from_secs(8);
        assert_eq!(
            attention.heed(&Addressed::Not, now, follow, true),
            Heed::Take
        );
        assert_eq!(
            attention.heed(&Addressed::Not, now, follow, false),
            Heed::Ignore
        );
    }
}
