//! The gateway's retained status: `online` or `offline` with a time, signed by the gateway key so that nobody else can make a device believe either.

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
}

impl GatewayStatus {
    pub fn new(online: bool, at: u64) -> GatewayStatus {
        let status = if online {
            Availability::Online
        } else {
            Availability::Offline
        };
        GatewayStatus { status, at }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_gateways_signature_makes_a_status() {
        let gateway = SigningKey::generate().unwrap();
        let stranger = SigningKey::generate().unwrap();
        let online = GatewayStatus::new(true, 42);
        let sealed = online.seal(&gateway).unwrap();
        let opened = GatewayStatus::open(&sealed, &gateway.public_key()).unwrap();
        assert_eq!(opened, online);
        assert!(opened.online());
        let json = serde_json::to_string(&online).unwrap();
        assert_eq!(json, r#"{"status":"online","at":42}"#);
        for bad in [
            b"online".to_vec(),
            online.seal(&stranger).unwrap(),
            vec![0xff; 10],
            Vec::new(),
        ] {
            assert!(GatewayStatus::open(&bad, &gateway.public_key()).is_err());
        }
    }
}
