//! The gateway's retained status: `online` or `offline` with a time and a connection session, signed by the gateway key so that nobody else can make a device believe either, and what a device believes of the ones it sees.

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
    /// Unix milliseconds; a device keeps the newest it has seen, so an old
    /// status played back changes nothing.
    pub at: u64,
    /// Random per gateway connection: its "online" and its will share it,
    /// and a session that said "offline" never comes back, so a captured
    /// "offline" and "online" played back in turn change nothing.
    pub session: u64,
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
        }
    }

    /// A fresh random session for a new connection.
    pub fn new_session() -> u64 {
        uuid::Uuid::now_v7().as_u64_pair().1
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

/// What a device believes of the signed statuses it sees.
///
/// - "online" of a session that has said "offline" is not believed (it is a
///   recording), nor one older than the newest seen;
/// - "offline" is believed for the session the device believes online (the
///   will is signed when the gateway connects, so it is older than its
///   "online"), or when no session is believed yet; an old session's
///   "offline" played back changes nothing.
#[derive(Debug, Default)]
pub struct StatusBelief {
    newest: u64,
    current: Option<u64>,
    /// Sessions that said "offline"; a gateway has few in a device's life,
    /// and the set is cleared past a bound so a flood cannot grow it.
    ended: std::collections::HashSet<u64>,
}

impl StatusBelief {
    /// Whether the gateway is online after `status`, if it is believed.
    pub fn see(&mut self, status: &GatewayStatus) -> Option<bool> {
        if status.online() {
            if self.ended.contains(&status.session) || status.at < self.newest {
                return None;
            }
            self.newest = status.at;
            self.current = Some(status.session);
            return Some(true);
        }
        match self.current {
            Some(session) if session != status.session => None,
            _ => {
                if self.ended.len() >= 1024 {
                    self.ended.clear();
                }
                self.ended.insert(status.session);
                self.current = None;
                Some(false)
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
        assert_eq!(json, r#"{"status":"online","at":42,"session":7}"#);
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
        let online = GatewayStatus::new(true, 101, 1);
        assert_eq!(belief.see(&online), Some(true));
        // The gateway vanished: the broker says its will.
        assert_eq!(belief.see(&will), Some(false));
        for _ in 0..100 {
            assert_eq!(belief.see(&online), None, "a recording of an ended session");
            assert_eq!(belief.see(&will), Some(false), "already offline");
        }
        // It reconnects with a new session, and its old will is history.
        let back = GatewayStatus::new(true, 200, 2);
        assert_eq!(belief.see(&back), Some(true));
        assert_eq!(belief.see(&will), None, "an old session's offline");
        assert_eq!(belief.see(&GatewayStatus::new(true, 150, 3)), None, "older");
        assert_eq!(belief.see(&GatewayStatus::new(false, 199, 2)), Some(false));
    }
}
