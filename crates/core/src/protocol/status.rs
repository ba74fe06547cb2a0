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

/// The payload of `{prefix}/gateway/status` (or of a worker's topic under it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The worker that says it, when gateways share a ledger: signed, so a
    /// worker's status copied onto another's topic is not believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
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
            worker: None,
        }
    }

    /// Said by `worker` (on its own topic), or by the one gateway.
    pub fn by(self, worker: Option<&str>) -> GatewayStatus {
        GatewayStatus {
            worker: worker.map(str::to_owned),
            ..self
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

/// How many workers a device keeps beliefs about. Workers come and go (a
/// restarted one is a new worker): past this, one believed offline is
/// forgotten to make room.
const MAX_WORKERS: usize = 64;

/// What a device believes of a deployment: one gateway on its topic, or
/// workers each on their own. The gateway is online while any of them is,
/// so a worker's will takes only that worker offline.
#[derive(Debug, Default)]
pub struct GatewayBelief {
    /// By worker name ("" for the one gateway): its statuses, and whether
    /// it is believed online now.
    workers: std::collections::HashMap<String, (StatusBelief, bool)>,
}

impl GatewayBelief {
    /// Whether the gateway is online after `status`, seen on the topic of
    /// `worker` (`None`: the one gateway's); `None` if it is not believed: a
    /// recording, or a status signed for another topic.
    pub fn see(&mut self, worker: Option<&str>, status: &GatewayStatus) -> Option<bool> {
        if status.worker.as_deref() != worker {
            return None;
        }
        let name = worker.unwrap_or_default();
        if !self.workers.contains_key(name) && self.workers.len() >= MAX_WORKERS {
            let gone = self
                .workers
                .iter()
                .find(|(_, (_, online))| !online)
                .map(|(name, _)| name.clone())?;
            self.workers.remove(&gone);
        }
        let (belief, online) = self.workers.entry(name.to_owned()).or_default();
        *online = belief.see(status)?;
        Some(self.online())
    }

    /// Online while any worker is.
    pub fn online(&self) -> bool {
        self.workers.values().any(|(_, online)| *online)
    }

    /// The broker went: nobody is known online until the retained statuses
    /// come again (a worker whose will was missed meanwhile must not stay
    /// online), and what was seen still orders what comes.
    pub fn forget_online(&mut self) {
        for (_, online) in self.workers.values_mut() {
            *online = false;
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
    fn a_workers_will_takes_only_that_worker_offline() {
        let mut belief = GatewayBelief::default();
        let a = GatewayStatus::heartbeat(100, 1, 1).by(Some("a"));
        let b = GatewayStatus::heartbeat(100, 2, 1).by(Some("b"));
        assert_eq!(belief.see(Some("a"), &a), Some(true));
        assert_eq!(belief.see(Some("b"), &b), Some(true));
        let a_will = GatewayStatus::new(false, 101, 1).by(Some("a"));
        assert_eq!(belief.see(Some("a"), &a_will), Some(true), "b still serves");
        assert_eq!(belief.see(Some("a"), &a), None, "a's online played back");
        let b_will = GatewayStatus::new(false, 101, 2).by(Some("b"));
        assert_eq!(belief.see(Some("b"), &b_will), Some(false), "nobody serves");
        assert!(!belief.online());
    }

    #[test]
    fn a_workers_status_on_another_topic_is_not_believed() {
        let mut belief = GatewayBelief::default();
        let a = GatewayStatus::heartbeat(100, 1, 1).by(Some("a"));
        assert_eq!(belief.see(Some("fake"), &a), None);
        assert_eq!(belief.see(None, &a), None, "not the one gateway's either");
        let one = GatewayStatus::heartbeat(100, 1, 1);
        assert_eq!(
            belief.see(Some("a"), &one),
            None,
            "the one gateway's on a worker's topic"
        );
        assert_eq!(belief.see(None, &one), Some(true));
        assert!(belief.online());
    }

    #[test]
    fn after_the_broker_went_no_worker_is_online_until_its_status_comes_again() {
        let mut belief = GatewayBelief::default();
        let a = GatewayStatus::heartbeat(100, 1, 1).by(Some("a"));
        assert_eq!(belief.see(Some("a"), &a), Some(true));
        belief.forget_online();
        assert!(!belief.online());
        // Its retained heartbeat after the reconnect: the same, believed.
        assert_eq!(belief.see(Some("a"), &a), Some(true));
        belief.forget_online();
        let older = GatewayStatus::heartbeat(99, 1, 0).by(Some("a"));
        assert_eq!(belief.see(Some("a"), &older), None, "still ordered");
    }

    #[test]
    fn workers_past_the_limit_push_out_those_offline_and_never_one_online() {
        let mut belief = GatewayBelief::default();
        let name = |i: usize| format!("w{i}");
        for i in 0..MAX_WORKERS {
            let online = GatewayStatus::heartbeat(100, i as u64 + 1, 1).by(Some(&name(i)));
            assert_eq!(belief.see(Some(&name(i)), &online), Some(true));
        }
        let newcomer = GatewayStatus::heartbeat(100, 1_000, 1).by(Some("new"));
        assert_eq!(
            belief.see(Some("new"), &newcomer),
            None,
            "all online: no room"
        );
        let will = GatewayStatus::new(false, 101, 1).by(Some("w0"));
        assert_eq!(belief.see(Some("w0"), &will), Some(true));
        assert_eq!(
            belief.see(Some("new"), &newcomer),
            Some(true),
            "w0 made room"
        );
        assert_eq!(belief.workers.len(), MAX_WORKERS);
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
