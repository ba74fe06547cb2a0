//! How the user hears back: the events the daemon emits and where they go (console lines or JSON lines now; speech and MQTT events later).

use uuid::Uuid;

use crate::intent::Intent;
use crate::protocol::ResponseStatus;
use crate::transport::LinkState;

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
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        match event {
            Event::Heard {
                file,
                transcript,
                intent,
            } => println!(
                "heard   {file}: {transcript:?} -> {}",
                serde_json::to_string(intent).unwrap_or_default()
            ),
            Event::Say { text } => println!("say     {text}"),
            Event::Sent {
                request_id,
                offline,
                ..
            } => println!(
                "sent    request {request_id}{}",
                if *offline { " (offline: queued)" } else { "" }
            ),
            Event::Answer {
                request_id,
                status,
                reason,
                ..
            } => println!(
                "answer  request {request_id}: {status:?}{}",
                reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ),
            Event::Error { message } => println!("error   {message}"),
        }
    }
}

/// Events nobody listens to (benchmarks, crash children).
pub struct Quiet;

impl Feedback for Quiet {
    fn event(&mut self, _event: &Event) {}
}
