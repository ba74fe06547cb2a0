//! An AI agent the user registered: its name, its public key and its mandate (the nouns the store keeps and the control socket carries).

use serde::{Deserialize, Serialize};

use crate::keys::PublicKey;
use crate::policy::Mandate;
use crate::protocol;

/// An agent the user registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// Its id on the wire (`agent_id`) and on the command line.
    pub name: String,
    /// base64url of the raw Ed25519 key.
    pub public_key: String,
    pub mandate: Mandate,
    pub added_at: u64,
    /// Set when the user stopped it ("stop the agents"); `agents add`
    /// registers it afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl Agent {
    pub fn key(&self) -> Result<PublicKey, crate::keys::KeyError> {
        PublicKey::from_base64url(&self.public_key)
    }

    /// How the device says its name: "claude-code" is "claude code".
    pub fn spoken_name(&self) -> String {
        spoken_name(&self.name)
    }

    /// `voicepay agents list`'s line.
    pub fn line(&self) -> String {
        let key_id = self.key().map(|k| k.key_id()).unwrap_or_default();
        let state = match self.revoked_at {
            Some(_) => "  (stopped: add it again to allow it)",
            None => "",
        };
        format!("{}  key {key_id}  {}{state}", self.name, self.mandate)
    }
}

/// How the device says an agent's name: "claude-code" is "claude code".
pub fn spoken_name(name: &str) -> String {
    name.replace(['-', '_'], " ")
}

/// An agent name: 1-64 of `[A-Za-z0-9_-]`, as it is a topic-safe `agent_id`.
pub fn validate_name(name: &str) -> Result<(), BadAgentName> {
    if protocol::is_valid_device_id(name) {
        Ok(())
    } else {
        Err(BadAgentName(name.chars().take(64).collect()))
    }
}

/// A name that cannot be an agent's `agent_id`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent name {0:?}: use 1-64 letters, digits, '-' or '_'")]
pub struct BadAgentName(pub String);
