//! Wire protocol v1, one file per message: the signed envelope, the payment request and response, the agent task, and the MQTT topics.
//!
//! Every message is an [`Envelope`] whose signature covers the exact payload
//! bytes. [`open`] checks size, shape, version, algorithm, key and signature,
//! in that order, and only then hands the payload out for parsing: nothing
//! unauthenticated is ever deserialised into a payment type.
//!
//! - [`envelope`]: sealing and opening signed messages
//! - [`request`]: `PaymentRequest` (AP2: a closed payment mandate), its evidence and approval, and the one [`RequestBuilder`]
//! - [`response`]: the gateway's `PaymentResponse`
//! - [`status`]: the gateway's signed, retained `online`/`offline`
//! - [`task`]: an agent's `AgentTask` (AP2: an open mandate) and the device's signed `TaskStatus`
//! - [`topics`]: topic names under the configurable prefix
//! - [`driving`]: the vehicle's (unsigned) driving state, for a car's driving mode
//! - [`ptt`]: push-to-talk `start` / `stop`, signed by the button's key

pub mod driving;
mod envelope;
pub mod ptt;
mod request;
mod response;
mod status;
mod task;
pub mod topics;

pub use envelope::{Envelope, Opened, open};
pub use request::{
    AgentRef, Approval, ApprovalMethod, Evidence, PaymentRequest, RequestBuilder, RequestKind,
};
pub use response::{AnswerTo, PaymentResponse, ResponseStatus};
pub use status::{Availability, GatewayBelief, GatewayStatus, StatusBelief};
pub use task::{
    AgentMessage, AgentTask, SubscriptionPeriod, TaskKind, TaskQuery, TaskState, TaskStatus,
};

use sha2::{Digest, Sha256};

use crate::keys::PublicKey;

pub const PROTOCOL_VERSION: u8 = 1;
/// Larger messages are refused before any parsing, so a peer cannot make us
/// allocate or hash without bound.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
pub const DEFAULT_PREFIX: &str = "voicepay/v1";
/// The only signature algorithm of v1; anything else (notably "none") is refused.
pub const ALGORITHM: &str = "Ed25519";
/// A request may be valid for at most a day: a signed request is a bearer
/// instrument until it expires, so its life is kept short.
pub const MAX_EXPIRY_WINDOW_MS: u64 = 24 * 60 * 60 * 1000;
/// Device ids are at most this long (see [`is_valid_device_id`]).
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// Why a message was rejected. The daemon and the gateway log these and keep running.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("message is not UTF-8")]
    NotUtf8,
    #[error("message is not a v1 envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("unsupported protocol version {0} (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u64),
    #[error("unsupported signature algorithm {0:?} (only {ALGORITHM} is accepted)")]
    UnsupportedAlgorithm(String),
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("envelope field {field:?} is not base64url without padding")]
    InvalidBase64 { field: &'static str },
    #[error("signature by key {kid:?} does not verify")]
    BadSignature { kid: String },
    #[error("signed payload is not the expected JSON: {0}")]
    InvalidPayload(#[source] serde_json::Error),
    #[error("could not encode payload: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("invalid payment request: {0}")]
    InvalidRequest(String),
    #[error("the message has expired")]
    Expired,
}

/// Attacker-controlled text going into an error (and so a log line) is cut
/// short; `{:?}` in the messages escapes control characters.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A device id is 1-64 of `[A-Za-z0-9_-]`: it is a topic segment, so it can
/// hold no `/`, `+`, `#` or anything else MQTT gives meaning to.
pub fn is_valid_device_id(id: &str) -> bool {
    (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The device id of the device holding `key`: "dev-" and its key id.
pub fn device_id_for(key: &PublicKey) -> String {
    format!("dev-{}", key.key_id())
}

/// Keys and a well-formed request, for this folder's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::keys::SigningKey;
    use crate::money::{Currency, Money};

    pub(crate) const NOW: u64 = 1_760_000_000_000;

    pub(crate) fn key() -> SigningKey {
        SigningKey::generate().expect("generate")
    }

    pub(crate) fn trust(key: &SigningKey) -> impl Fn(&str) -> Option<PublicKey> {
        let pk = key.public_key();
        move |kid| (kid == pk.key_id()).then_some(pk)
    }

    pub(crate) fn request() -> PaymentRequest {
        let amount = Money::new(3600, Currency::CNY);
        let mut request = RequestBuilder::new("dev-0123456789abcdef", 7, amount, "Heytea", NOW)
            .expires_in(5 * 60 * 1000)
            .evidence(Evidence::new(
                "pay thirty six yuan to Heytea",
                b"RIFF....WAVE",
                0.93,
                "en",
            ))
            .approved(ApprovalMethod::VoiceConfirm, Some("yes".into()))
            .build();
        request.approval.approved_at = NOW - 1000;
        request
    }

    /// An envelope with `edit` applied to its JSON object.
    pub(crate) fn edited(env: &Envelope, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(env).expect("to_value");
        edit(&mut value);
        serde_json::to_vec(&value).expect("to_vec")
    }
}
