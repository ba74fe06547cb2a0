//! Whether the microphone's audio may be heard now: never while the device speaks (it would hear and answer itself), and with push-to-talk only while the button is held.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::time::Instant;

/// Shared by the microphone (which reads it for every chunk), the speaker
/// (which closes it while speaking) and the daemon (which holds it open for
/// push-to-talk).
#[derive(Debug, Default)]
pub struct Gate {
    /// Speeches in progress (a count, so overlapping speakers cannot reopen it early).
    speaking: AtomicU32,
    push_to_talk: bool,
    held: AtomicBool,
    /// When the device last stopped speaking.
    voice_ended: Mutex<Option<Instant>>,
}

/// What the microphone does with the audio it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Hear it.
    Open,
    /// The device is speaking: what was being heard is dropped (it holds the device's own voice).
    Muted,
    /// Push-to-talk is not held: what was being heard is finished (the user let go).
    Released,
}

impl Gate {
    /// Always listening (between the device's own speeches).
    pub fn open() -> Gate {
        Gate::default()
    }

    /// Listening only while the push-to-talk button is held.
    pub fn push_to_talk() -> Gate {
        Gate {
            push_to_talk: true,
            ..Gate::default()
        }
    }

    pub fn listen(&self) -> Listen {
        if self.speaking.load(Ordering::SeqCst) > 0 {
            Listen::Muted
        } else if self.push_to_talk && !self.held.load(Ordering::SeqCst) {
            Listen::Released
        } else {
            Listen::Open
        }
    }

    pub fn is_push_to_talk(&self) -> bool {
        self.push_to_talk
    }

    /// The button went down (`true`) or up.
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::SeqCst);
    }

    /// When the device's voice was last heard: now while it speaks, else
    /// when it stopped; `None` if it never spoke. A question's window
    /// counts from here: the user cannot answer before the question is said.
    pub fn last_voice(&self) -> Option<Instant> {
        if self.speaking.load(Ordering::SeqCst) > 0 {
            return Some(Instant::now());
        }
        self.voice_ended.lock().ok().and_then(|ended| *ended)
    }

    /// The device starts to speak; the returned guard reopens the gate when dropped.
    pub fn speak(&self) -> Speaking<'_> {
        self.speaking.fetch_add(1, Ordering::SeqCst);
        Speaking(self)
    }
}

/// The microphone is muted while this lives.
pub struct Speaking<'a>(&'a Gate);

impl Drop for Speaking<'_> {
    fn drop(&mut self) {
        if let Ok(mut ended) = self.0.voice_ended.lock() {
            *ended = Some(Instant::now());
        }
        self.0.speaking.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_is_shut_while_the_device_speaks_and_push_to_talk_is_up() {
        let gate = Gate::open();
        assert_eq!(gate.listen(), Listen::Open);
        assert_eq!(gate.last_voice(), None);
        {
            let _one = gate.speak();
            let _two = gate.speak();
            assert_eq!(gate.listen(), Listen::Muted);
        }
        assert_eq!(gate.listen(), Listen::Open);
        assert!(gate.last_voice().is_some(), "it spoke");
        let ptt = Gate::push_to_talk();
        assert_eq!(ptt.listen(), Listen::Released);
        ptt.hold(true);
        assert_eq!(ptt.listen(), Listen::Open);
        let speaking = ptt.speak();
        assert_eq!(ptt.listen(), Listen::Muted);
        drop(speaking);
        ptt.hold(false);
        assert_eq!(ptt.listen(), Listen::Released);
    }
}
