//! The gateway's retained status: `online` or `offline` with a time, a connection session and a heartbeat number, signed by the gateway key so that nobody else can make a device believe either, and what a device believes of the ones it sees.

use serde::{Deserialize, Serialize};

use super::{Envelope, ProtocolError, open};
use crate::keys::{PublicKey, SigningKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Offline,
}

/// The payload of `{prefix}/gateway/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayStatus {
    pub status: Availability,
    /// Unix milliseconds, for people and logs: freshness goes by `session`
    /// and `seq`, so a gateway whose clock steps back is still believed.
    pub at: u64,
    /// Per gateway connection, and larger for each new one (the gateway
    /// keeps the last on disk: see [`GatewayStatus::next_session`]); its
    /// "online" and its will share it. A device believes no session older
    /// than the newest it has seen, so a recording played back changes nothing.
    pub session: u64,
    /// The heartbeat's number within its session: the gateway says
    /// "online" again every few seconds (a retained status replaced or
    /// deleted is put back), each time with the next number. Its will is 0.
    #[serde(default)]
    pub seq: u64,
}

impl GatewayStatus {
    pub fn new(online: bool, at: u64, session: u64) -> GatewayStatus {
        let status = if online {
            Availability::Online
        } else {
            Availability::Offline
        };
        GatewayStatus {
            status,
            at,
            session,
            seq: 0,
        }
    }

    /// The `seq`th "online" of `session`.
    pub fn heartbeat(at: u64, session: u64, seq: u64) -> GatewayStatus {
        GatewayStatus {
            seq,
            ..GatewayStatus::new(true, at, session)
        }
    }

    /// The session after `last`: at least one more, and no less than the
    /// wall clock, so a gateway whose disk was wiped still starts above the
    /// sessions devices saw (and one whose clock stepped back, above its own).
    pub fn next_session(last: u64, now_ms: u64) -> u64 {
        last.saturating_add(1).max(now_ms)
    }

    pub fn online(&self) -> bool {
        self.status == Availability::Online
    }

    /// The signed envelope to publish (retained).
    pub fn seal(&self, key: &SigningKey) -> Result<Vec<u8>, ProtocolError> {
        Ok(Envelope::seal_json(self, key)?.0.to_bytes())
    }

    /// A status signed by `gateway`, or why not.
    pub fn open(message: &[u8], gateway: &PublicKey) -> Result<GatewayStatus, ProtocolError> {
        open(message, |kid| (kid == gateway.key_id()).then_some(*gateway))?.parse()
    }
}

/// What a device believes of the signed statuses it sees, by `(session,
/// seq)` and never by the clock:
///
/// - "online" is believed unless an older session's or heartbeat's than the
///   newest seen (a recording), or of a session that said "offline";
/// - "offline" (a will) is believed for the newest session or a newer one;
///   an old session's "offline" played back changes nothing.
#[derive(Debug, Default)]
pub struct StatusBelief {
    /// The newest `(session, seq)` seen; an ended session's seq is `u64::MAX`.
    newest: Option<(u64, u64)>,
}

impl StatusBelief {
    /// Whether the gateway is online after `status`, if it is believed.
    pub fn see(&mut self, status: &GatewayStatus) -> Option<bool> {
        let order = if status.online() {
            (status.session, status.seq)
        } else {
            (status.session, u64::MAX)
        };
        match self.newest {
            // The same heartbeat again (the retained one after a reconnect)
            // is believed again; anything older is a recording.
            Some(newest) if status.online() && order < newest => None,
            Some((session, _)) if !status.online() && status.session < session => None,
            _ => {
                self.newest = Some(order);
                Some(status.online())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_signature_makes_a_status() {
        let gateway = SigningKey::generate().unwrap();
        let stranger = SigningKey::generate().unwrap();
        let online = GatewayStatus::new(true, 42, 7);
        let sealed = online.seal(&gateway).unwrap();
        let opened = GatewayStatus::open(&sealed, &gateway.public_key()).unwrap();
        assert_eq!(opened, online);
        assert!(opened.online());
        let json = serde_json::to_string(&online).unwrap();
        assert_eq!(json, r#"{"status":"online","at":42,"session":7,"seq":0}"#);
        for bad in [
            b"online".to_vec(),
            online.seal(&stranger).unwrap(),
            vec![0xff; 10],
            Vec::new(),
        ] {
            assert!(GatewayStatus::open(&bad, &gateway.public_key()).is_err());
        }
    }

    #[test]
    fn a_recorded_offline_and_online_played_back_in_turn_change_nothing() {
        let mut belief = StatusBelief::default();
        let will = GatewayStatus::new(false, 100, 1);
        let online = GatewayStatus::heartbeat(101, 1, 1);
        assert_eq!(belief.see(&online), Some(true));
        assert_eq!(
            belief.see(&online),
            Some(true),
            "the same, after a reconnect"
        );
        // The gateway vanished: the broker says its will.
        assert_eq!(belief.see(&will), Some(false));
        for _ in 0..100 {
            assert_eq!(belief.see(&online), None, "a recording of an ended session");
            assert_eq!(belief.see(&will), Some(false), "already offline");
        }
        // It reconnects with a new session, and its old will is history.
        let back = GatewayStatus::heartbeat(200, 2, 1);
        assert_eq!(belief.see(&back), Some(true));
        assert_eq!(belief.see(&will), None, "an old session's offline");
        assert_eq!(belief.see(&online), None, "an old session's online");
        assert_eq!(
            belief.see(&GatewayStatus::heartbeat(300, 2, 0)),
            None,
            "an older heartbeat"
        );
        assert_eq!(belief.see(&GatewayStatus::new(false, 199, 2)), Some(false));
    }

    #[test]
    fn a_gateway_whose_clock_stepped_back_an_hour_across_a_restart_is_believed_online() {
        let hour = 3_600_000;
        let now = 1_790_000_000_000;
        let mut belief = StatusBelief::default();
        let first = GatewayStatus::next_session(0, now);
        assert_eq!(
            belief.see(&GatewayStatus::heartbeat(now, first, 1)),
            Some(true)
        );
        assert_eq!(
            belief.see(&GatewayStatus::heartbeat(now + 10, first, 2)),
            Some(true)
        );
        // Restarted with its clock an hour behind, its will unheard.
        let second = GatewayStatus::next_session(first, now - hour);
        assert!(second > first);
        let back = GatewayStatus::heartbeat(now - hour, second, 1);
        assert_eq!(belief.see(&back), Some(true));
        // And its will, dated before anything seen, still ends it.
        assert_eq!(
            belief.see(&GatewayStatus::new(false, now - hour, second)),
            Some(false)
        );
    }
}
