//! What the user and the device's apps hear from the daemon: sentences worded by the phrasebook, events to the feedback and, as far as they may cross the broker, to the events topic, and the status whenever it changes.

use crate::feedback::{Event, Feedback, Status};
use crate::intent::Intent;
use crate::phrasebook::{Phrasebook, Speech};
use voicepay_core::transport::EventsTopic;

pub struct Outlet {
    feedback: Box<dyn Feedback>,
    phrasebook: Phrasebook,
    /// `None`: the profile keeps events off the broker (`feedback.events`).
    events: Option<EventsTopic>,
    /// The last status told.
    status: Status,
}

impl Outlet {
    pub fn new(
        feedback: Box<dyn Feedback>,
        phrasebook: Phrasebook,
        events: Option<EventsTopic>,
    ) -> Outlet {
        Outlet {
            feedback,
            phrasebook,
            events,
            status: Status::default(),
        }
    }

    /// Worded in the profile's language; a code the user must repeat is
    /// heard in full but crosses the broker masked.
    pub fn say(&mut self, speech: &Speech) {
        let (text, public) = said(&self.phrasebook, speech);
        self.emit_as(Event::Say { text }, public);
    }

    /// What was heard and understood. `private`: the broker learns only
    /// that something was heard (the profile keeps transcripts off it, or the
    /// utterance answers the code question and holds the code).
    pub fn heard(&mut self, file: String, transcript: String, intent: Intent, private: bool) {
        let public = private.then(|| serde_json::json!({"step": "heard", "file": file}));
        let event = Event::Heard {
            file,
            transcript,
            intent,
        };
        self.emit_as(event, public);
    }

    pub fn emit(&mut self, event: Event) {
        self.emit_as(event, None);
    }

    /// Something went wrong: logged, and reported to the user's feedback.
    pub fn fail(&mut self, message: String) {
        tracing::error!(%message);
        self.emit(Event::Error { message });
    }

    /// Tells the feedback the daemon's status when it differs from the last.
    pub fn status(&mut self, status: Status) {
        if status != self.status {
            self.status = status;
            self.feedback.status(&status);
        }
    }

    /// `event` to the feedback; to the events topic as itself or, when
    /// given, as `public` (what may cross the broker in its place).
    fn emit_as(&mut self, event: Event, public: Option<serde_json::Value>) {
        self.feedback.event(&event);
        let Some(events) = &self.events else {
            return;
        };
        let json = match public {
            Some(public) => serde_json::to_vec(&public),
            None => serde_json::to_vec(&event),
        };
        if let Ok(json) = json {
            events.publish(json);
        }
    }
}

/// The sentence as the user hears it and, when it holds a code, as the
/// events topic may carry it instead.
fn said(phrasebook: &Phrasebook, speech: &Speech) -> (String, Option<serde_json::Value>) {
    let text = phrasebook.say(speech);
    let public = speech.has_code().then(|| {
        let masked = phrasebook.say(&speech.without_code());
        serde_json::json!({"step": "say", "text": masked})
    });
    (text, public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::Doubt;
    use crate::language::Language;
    use crate::order::Purchase;
    use std::sync::{Arc, Mutex};
    use voicepay_core::money::{Currency, Money};

    /// The user's side of the outlet: what the feedback was given.
    #[derive(Clone, Default)]
    struct Heard(Arc<Mutex<(Vec<Event>, Vec<Status>)>>);

    impl Feedback for Heard {
        fn event(&mut self, event: &Event) {
            self.0.lock().unwrap().0.push(event.clone());
        }

        fn status(&mut self, status: &Status) {
            self.0.lock().unwrap().1.push(*status);
        }
    }

    fn read_back(code: Option<&str>) -> Speech {
        Speech::ReadBack {
            purchase: Purchase::Pay {
                payee: "Heytea".into(),
            },
            amount: Money::new(50_000, Currency::CNY),
            code: code.map(str::to_owned),
            doubt: Doubt::default(),
        }
    }

    #[test]
    fn a_code_is_said_to_the_user_in_full_and_masked_for_the_broker() {
        let phrasebook = Phrasebook::new(Language::English);
        let (text, public) = said(&phrasebook, &read_back(Some("4719")));
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        assert!(digits(&text).contains("4719"), "{text}");
        let public = public.expect("a code is never published as it was said");
        assert_eq!(public["step"], "say");
        let masked = public["text"].as_str().unwrap_or_default();
        assert_eq!(digits(masked), "500", "only the amount's digits: {masked}");
        assert!(masked.contains("* * * *"), "{masked}");
    }

    #[test]
    fn a_sentence_without_a_code_crosses_the_broker_as_it_was_said() {
        let (text, public) = said(&Phrasebook::new(Language::English), &read_back(None));
        assert!(text.starts_with("Pay 500 yuan to Heytea?"), "{text}");
        assert!(public.is_none());
    }

    #[test]
    fn the_status_is_told_only_when_it_changes() {
        let heard = Heard::default();
        let mut outlet = Outlet::new(
            Box::new(heard.clone()),
            Phrasebook::new(Language::English),
            None,
        );
        let busy = Status {
            outbox: 1,
            ..Status::default()
        };
        outlet.status(Status::default());
        outlet.status(busy);
        outlet.status(busy);
        outlet.status(Status::default());
        assert_eq!(heard.0.lock().unwrap().1, vec![busy, Status::default()]);
    }

    #[test]
    fn a_failure_reaches_the_user_as_an_error_event() {
        let heard = Heard::default();
        let mut outlet = Outlet::new(
            Box::new(heard.clone()),
            Phrasebook::new(Language::English),
            None,
        );
        outlet.fail("the disk is full".into());
        let events = &heard.0.lock().unwrap().0;
        assert!(
            matches!(&events[..], [Event::Error { message }] if message == "the disk is full"),
            "{events:?}"
        );
    }
}
