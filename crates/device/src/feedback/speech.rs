//! Spoken feedback: the device's sentences through a text-to-speech command (espeak-ng by default, the device's own engine in production), with the microphone muted while it speaks.
//!
//! Speaking happens on a thread of its own, one sentence after another, so
//! the daemon never waits for a voice. The [`Gate`] is closed from the
//! moment a sentence starts until a short echo time after it ends: the
//! device must never hear itself and answer. A command that fails or hangs
//! costs that sentence (it is also on the console and the events topic),
//! never the daemon.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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
    thread: SpeakingThread,
}

/// The speaking thread itself, kept by whoever must not exit before it has
/// spoken (or stopped): a process that ends while its speech command runs
/// leaves that command behind, and the sentences still queued unsaid.
#[derive(Clone)]
pub struct SpeakingThread {
    handle: Arc<Mutex<Option<JoinHandle<()>>>>,
    stop: Arc<AtomicBool>,
}

impl SpeakingThread {
    /// Once every [`Speaker`] is gone: lets the thread say what is queued,
    /// for at most `patience`, then stops the sentence being spoken (its
    /// command is killed and reaped) and waits for the thread to end.
    /// A zero `patience` stops at once (Ctrl-C, SIGTERM).
    pub fn finish(&self, patience: Duration) {
        let Some(handle) = self.handle.lock().ok().and_then(|mut h| h.take()) else {
            return;
        };
        let waiting = voicepay_core::clock::Stopwatch::start();
        while !handle.is_finished() && waiting.elapsed() < patience {
            std::thread::sleep(POLL);
        }
        self.stop.store(true, Ordering::SeqCst);
        if handle.join().is_err() {
            tracing::warn!("the speaking thread panicked");
        }
    }
}

/// How often a running speech command is checked on.
const POLL: Duration = Duration::from_millis(20);

impl Speaker {
    /// Starts the thread that runs `command` for each sentence.
    pub fn start(
        command: Vec<String>,
        echo: Duration,
        gate: Arc<Gate>,
    ) -> std::io::Result<Speaker> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::Builder::new()
            .name("speaker".into())
            .spawn(move || speak_all(&command, echo, &gate, &rx, &stopped))?;
        Ok(Speaker {
            tx,
            thread: SpeakingThread {
                handle: Arc::new(Mutex::new(Some(handle))),
                stop,
            },
        })
    }

    /// The thread, to [`SpeakingThread::finish`] once this speaker is dropped.
    pub fn thread(&self) -> SpeakingThread {
        self.thread.clone()
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

fn speak_all(
    command: &[String],
    echo: Duration,
    gate: &Gate,
    rx: &Receiver<String>,
    stop: &AtomicBool,
) {
    let mut last_error = String::new();
    while let Ok(text) = rx.recv() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let _muted = gate.speak();
        // A slow voice says ten characters a second; give it four times that.
        let limit = Duration::from_millis(5_000 + 400 * text.chars().count() as u64);
        match speak(command, &text, limit, stop) {
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
/// than the sentence could (a hung engine must not mute the device for good)
/// or when `stop` is set.
fn speak(command: &[String], text: &str, limit: Duration, stop: &AtomicBool) -> Result<(), String> {
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
            Ok(None) if stop.load(Ordering::SeqCst) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program}: stopped with the daemon"));
            }
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {limit:?}: stopped"));
            }
            Ok(None) => std::thread::sleep(POLL),
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
    use std::path::PathBuf;

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
        let go_on = AtomicBool::new(false);
        assert!(speak(&["/nonexistent/tts".into()], "x", second, &go_on).is_err());
        wait_until("open after a missing engine", || {
            gate.listen() == Listen::Open
        });
        let error = speak(&["false".into()], "x", second, &go_on).unwrap_err();
        assert!(error.contains("failed"), "{error}");
        let hung = ["sh", "-c", "sleep 30"].map(String::from);
        let error = speak(&hung, "x", Duration::from_millis(200), &go_on).unwrap_err();
        assert!(error.contains("stopped"), "{error}");
    }

    #[test]
    fn every_queued_sentence_is_spoken_before_the_speaker_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let said = dir.path().join("said");
        let script = format!("sleep 0.2; printf '%s\\n' \"$0\" >> {}", said.display());
        let speaker = Speaker::start(
            vec!["sh".into(), "-c".into(), script],
            Duration::ZERO,
            Arc::new(Gate::open()),
        )
        .unwrap();
        let thread = speaker.thread();
        for sentence in ["One.", "Two.", "Three."] {
            speaker.say(sentence);
        }
        drop(speaker);
        thread.finish(Duration::from_secs(60));
        let text = std::fs::read_to_string(&said).unwrap();
        assert_eq!(text, "One.\nTwo.\nThree.\n");
    }

    #[test]
    fn stopping_the_speaker_kills_the_speech_command_and_leaves_no_process() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // Says its process id, then "speaks" for far longer than the test.
        let script = format!("echo $$ > {}; exec sleep 600", pid_file.display());
        let speaker = Speaker::start(
            vec!["sh".into(), "-c".into(), script],
            Duration::ZERO,
            Arc::new(Gate::open()),
        )
        .unwrap();
        let thread = speaker.thread();
        speaker.say("A very long sentence.");
        speaker.say("Never said.");
        let pid = || std::fs::read_to_string(&pid_file).unwrap_or_default();
        wait_until("the speech command runs", || pid().ends_with('\n'));
        drop(speaker);
        thread.finish(Duration::ZERO);
        let proc = PathBuf::from(format!("/proc/{}", pid().trim()));
        assert!(!proc.exists(), "{} is still there", proc.display());
    }
}
