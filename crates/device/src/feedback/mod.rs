//! How the user hears back: the events the daemon emits and where they go: console lines or JSON lines, [`speech`], and the MQTT events topic (published by the daemon).

pub mod speech;

use std::io::Write;

use uuid::Uuid;

use crate::intent::Intent;
use voicepay_core::protocol::ResponseStatus;
use voicepay_core::transport::LinkState;

/// One thing that happened, in the order it happened.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Event {
    Heard {
        file: String,
        transcript: String,
        intent: Intent,
    },
    /// A sentence for the user, worded by the phrasebook.
    Say {
        text: String,
    },
    /// A signed request left for the gateway (or was queued offline).
    Sent {
        request_id: Uuid,
        offline: bool,
        envelope: serde_json::Value,
    },
    /// The gateway's signed answer, verified.
    Answer {
        request_id: Uuid,
        status: ResponseStatus,
        reason: Option<String>,
        envelope: serde_json::Value,
    },
    Error {
        message: String,
    },
}

/// The daemon's state between events: for `voicepay status`, and for tools
/// that wait for the daemon to be idle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub link: LinkState,
    /// Payments waiting for the gateway's answer.
    pub outbox: usize,
    /// Utterances (or texts) handled so far.
    pub heard: u64,
    /// A question is waiting for the user's answer.
    pub asking: bool,
}

/// Where events go. `status` is called whenever the status changes.
pub trait Feedback: Send {
    fn event(&mut self, event: &Event);

    fn status(&mut self, _status: &Status) {}
}

/// Plain lines for people, or one JSON object per line.
pub struct Console {
    pub json: bool,
}

impl Feedback for Console {
    fn event(&mut self, event: &Event) {
        // A closed or full stdout (a log collector gone) must not stop the
        // daemon: the line is lost, the payment is not.
        let line = self.line(event);
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

impl Console {
    fn line(&self, event: &Event) -> String {
        if self.json {
            return serde_json::to_string(event).unwrap_or_default();
        }
        match event {
            Event::Heard {
                file,
                transcript,
                intent,
            } => format!(
                "heard   {file}: {transcript:?} -> {}",
                serde_json::to_string(intent).unwrap_or_default()
            ),
            Event::Say { text } => format!("say     {text}"),
            Event::Sent {
                request_id,
                offline,
                ..
            } => format!(
                "sent    request {request_id}{}",
                if *offline { " (offline: queued)" } else { "" }
            ),
            Event::Answer {
                request_id,
                status,
                reason,
                ..
            } => format!(
                "answer  request {request_id}: {status:?}{}",
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            Event::Error { message } => format!("error   {message}"),
        }
    }
}

/// Events nobody listens to (benchmarks, crash children).
pub struct Quiet;

impl Feedback for Quiet {
    fn event(&mut self, _event: &Event) {}
}
