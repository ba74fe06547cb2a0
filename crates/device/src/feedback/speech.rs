//! Spoken feedback: the device's sentences through a text-to-speech command (espeak-ng by default, the device's own engine in production), with the microphone muted while it speaks.
//!
//! Speaking happens on a thread of its own, one sentence after another, so
//! the daemon never waits for a voice. The [`Gate`] is closed from the
//! moment a sentence starts until a short echo time after it ends: the
//! device must never hear itself and answer. A command that fails or hangs
//! costs that sentence (it is also on the console and the events topic),
//! never the daemon.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use serde::Deserialize;

use super::{Event, Feedback, Status};
use crate::audio::gate::Gate;

/// The `[feedback]` table of a device profile.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackSettings {
    /// The text-to-speech command and its arguments; each sentence is
    /// added as the last argument. Empty: the device does not speak.
    pub speak: Vec<String>,
    /// After a sentence, the microphone stays shut this long (the room's echo).
    pub echo_ms: u64,
    /// Publish every event as JSON on `{prefix}/devices/{id}/events`.
    pub events: bool,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        FeedbackSettings {
            speak: ["espeak-ng", "-v", "en-us", "-s", "165"]
                .map(str::to_owned)
                .to_vec(),
            echo_ms: 300,
            events: true,
        }
    }
}

impl FeedbackSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.speak.first().is_some_and(|c| c.trim().is_empty()) {
            return Err("feedback.speak starts with the command to run".into());
        }
        if self.echo_ms > 5_000 {
            return Err("feedback.echo_ms is at most 5000".into());
        }
        Ok(())
    }
}

/// Sentences waiting to be spoken; past this the newest is dropped (a
/// flood of sentences is not worth minutes of talk).
const QUEUE: usize = 8;

/// The speaking thread's sending end.
pub struct Speaker {
    tx: SyncSender<String>,
}

impl Speaker {
    /// Starts the thread that runs `command` for each sentence.
    pub fn start(
        command: Vec<String>,
        echo: Duration,
        gate: Arc<Gate>,
    ) -> std::io::Result<Speaker> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("speaker".into())
            .spawn(move || speak_all(&command, echo, &gate, &rx))?;
        Ok(Speaker { tx })
    }

    /// Queues a sentence; never waits.
    pub fn say(&self, text: &str) {
        match self.tx.try_send(text.to_owned()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("too much to say: a sentence was not spoken")
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn speak_all(command: &[String], echo: Duration, gate: &Gate, rx: &Receiver<String>) {
    let mut last_error = String::new();
    while let Ok(text) = rx.recv() {
        let _muted = gate.speak();
        // A slow voice says ten characters a second; give it four times that.
        let limit = Duration::from_millis(5_000 + 400 * text.chars().count() as u64);
        match speak(command, &text, limit) {
            Ok(()) => last_error.clear(),
            Err(error) => {
                // Said once, not for every sentence.
                if error != last_error {
                    tracing::warn!(%error, "cannot speak");
                    last_error = error;
                }
            }
        }
        std::thread::sleep(echo);
    }
}

/// Runs the command for one sentence, killing it if it takes far longer
/// than the sentence could (a hung engine must not mute the device for good).
fn speak(command: &[String], text: &str, limit: Duration) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "no speech command".to_owned())?;
    let mut child = Command::new(program)
        .args(args)
        .arg(text)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let started = voicepay_core::clock::Stopwatch::start();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{program} failed: {status}")),
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {limit:?}: stopped"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => return Err(format!("{program}: {error}")),
        }
    }
}

/// Another feedback (the console) with the sentences also spoken.
pub struct Spoken {
    pub inner: Box<dyn Feedback>,
    pub speaker: Speaker,
}

impl Feedback for Spoken {
    fn event(&mut self, event: &Event) {
        self.inner.event(event);
        if let Event::Say { text } = event {
            self.speaker.say(text);
        }
    }

    fn status(&mut self, status: &Status) {
        self.inner.status(status);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::audio::gate::Listen;

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let started = voicepay_core::clock::Stopwatch::start();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(20), "never: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_microphone_is_shut_while_the_device_speaks_and_reopens_after() {
        let dir = tempfile::tempdir().unwrap();
        let said = dir.path().join("said");
        // A "voice" that takes a while and leaves what it said in a file.
        let script = format!("sleep 0.3; printf '%s\\n' \"$0\" >> {}", said.display());
        let gate = Arc::new(Gate::open());
        let speaker = Speaker::start(
            vec!["sh".into(), "-c".into(), script],
            Duration::from_millis(50),
            gate.clone(),
        )
        .unwrap();
        speaker.say("Pay 20 yuan to Alice? Say confirm or cancel.");
        wait_until("muted", || gate.listen() == Listen::Muted);
        wait_until("open again", || gate.listen() == Listen::Open);
        let text = std::fs::read_to_string(&said).unwrap();
        assert_eq!(text, "Pay 20 yuan to Alice? Say confirm or cancel.\n");
    }

    #[test]
    fn a_speech_command_that_is_missing_or_hangs_costs_the_sentence_not_the_microphone() {
        let gate = Arc::new(Gate::open());
        let missing = Speaker::start(
            vec!["/nonexistent/tts".into()],
            Duration::ZERO,
            gate.clone(),
        )
        .unwrap();
        missing.say("Hello.");
        missing.say("Hello again.");
        let second = Duration::from_secs(1);
        assert!(speak(&["/nonexistent/tts".into()], "x", second).is_err());
        wait_until("open after a missing engine", || {
            gate.listen() == Listen::Open
        });
        let error = speak(&["false".into()], "x", second).unwrap_err();
        assert!(error.contains("failed"), "{error}");
        let hung = ["sh", "-c", "sleep 30"].map(String::from);
        let error = speak(&hung, "x", Duration::from_millis(200)).unwrap_err();
        assert!(error.contains("stopped"), "{error}");
    }
}
