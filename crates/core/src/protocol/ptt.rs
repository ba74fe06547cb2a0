//! Push-to-talk over MQTT: `start` / `stop` on `{prefix}/devices/{device_id}/ptt`, signed by the button's key, for one device and fresh, so that nobody else (and no retained or recorded message) can open the device's microphone.
//!
//! The payload is `{"ptt":"start"|"stop","device_id","at":MS}` in an
//! [`super::Envelope`] signed by the key the profile names (`wake.ptt_key`).
//! A device takes a press only if it names it, is within
//! [`PRESS_FRESH_MS`] of its clock and is newer than the last it took; the
//! link drops retained messages before that. A `start` holds the microphone
//! for at most `wake.ptt_hold_s`: a button still held says `start` again.

use serde::{Deserialize, Serialize};

use super::{Envelope, ProtocolError, open};
use crate::keys::{PublicKey, SigningKey};

/// How far a press's `at` may be from the device's clock, either way: the
/// button and the device sit in one vehicle, a recording is older.
pub const PRESS_FRESH_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Press {
    Start,
    Stop,
}

/// The signed payload of a push-to-talk message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushToTalk {
    pub ptt: Press,
    pub device_id: String,
    /// Unix milliseconds.
    pub at: u64,
}

impl PushToTalk {
    pub fn new(held: bool, device_id: &str, at: u64) -> PushToTalk {
        PushToTalk {
            ptt: if held { Press::Start } else { Press::Stop },
            device_id: device_id.to_owned(),
            at,
        }
    }

    /// The signed envelope to publish (never retained).
    pub fn seal(&self, key: &SigningKey) -> Result<Vec<u8>, ProtocolError> {
        Ok(Envelope::seal_json(self, key)?.0.to_bytes())
    }

    /// A press signed by `button`, or why not.
    pub fn open(message: &[u8], button: &PublicKey) -> Result<PushToTalk, ProtocolError> {
        open(message, |kid| (kid == button.key_id()).then_some(*button))?.parse()
    }
}

/// Why a signed press was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StalePress {
    #[error("the press names another device")]
    OtherDevice,
    #[error("the press is not within {PRESS_FRESH_MS} ms of the device's clock")]
    NotFresh,
    #[error("the press is not newer than the last one taken (a replay)")]
    Replayed,
}

/// The presses a device has taken: each must be fresh and newer than the last.
#[derive(Debug, Clone)]
pub struct Presses {
    device_id: String,
    last_at: u64,
}

impl Presses {
    pub fn new(device_id: &str) -> Presses {
        Presses {
            device_id: device_id.to_owned(),
            last_at: 0,
        }
    }

    /// Whether the button is held after `press`, if it is taken at `now`.
    pub fn take(&mut self, press: &PushToTalk, now: u64) -> Result<bool, StalePress> {
        if press.device_id != self.device_id {
            return Err(StalePress::OtherDevice);
        }
        if press.at.abs_diff(now) > PRESS_FRESH_MS {
            return Err(StalePress::NotFresh);
        }
        if press.at <= self.last_at {
            return Err(StalePress::Replayed);
        }
        self.last_at = press.at;
        Ok(press.ptt == Press::Start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::testing::*;

    #[test]
    fn only_the_buttons_signature_makes_a_press() {
        let button = key();
        let stranger = key();
        let start = PushToTalk::new(true, "dev-1", NOW);
        let sealed = start.seal(&button).unwrap();
        assert_eq!(
            PushToTalk::open(&sealed, &button.public_key()).unwrap(),
            start
        );
        let json = serde_json::to_string(&start).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"ptt":"start","device_id":"dev-1","at":{NOW}}}"#)
        );
        for bad in [
            b"start".to_vec(),
            start.seal(&stranger).unwrap(),
            Vec::new(),
        ] {
            assert!(PushToTalk::open(&bad, &button.public_key()).is_err());
        }
    }

    #[test]
    fn a_press_for_another_device_stale_or_played_back_is_not_taken() {
        let mut presses = Presses::new("dev-1");
        let start = PushToTalk::new(true, "dev-1", NOW);
        assert_eq!(presses.take(&start, NOW + 5), Ok(true));
        assert_eq!(presses.take(&start, NOW + 10), Err(StalePress::Replayed));
        let other = PushToTalk::new(true, "dev-2", NOW + 1);
        assert_eq!(presses.take(&other, NOW + 10), Err(StalePress::OtherDevice));
        let old = PushToTalk::new(true, "dev-1", NOW + 1);
        assert_eq!(
            presses.take(&old, NOW + 1 + PRESS_FRESH_MS + 1),
            Err(StalePress::NotFresh)
        );
        let ahead = PushToTalk::new(true, "dev-1", NOW + 2 * PRESS_FRESH_MS);
        assert_eq!(presses.take(&ahead, NOW), Err(StalePress::NotFresh));
        let stop = PushToTalk::new(false, "dev-1", NOW + 20);
        assert_eq!(presses.take(&stop, NOW + 20), Ok(false));
    }
}
