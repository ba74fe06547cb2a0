//! Wire protocol v1: the signed envelope, payment request/response types and MQTT topic names.
//!
//! Every message is an [`Envelope`] whose signature covers the exact payload
//! bytes. [`open`] checks size, shape, version, algorithm, key and signature,
//! in that order, and only then hands the payload out for parsing: nothing
//! unauthenticated is ever deserialised into a payment type.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::keys::{PublicKey, SigningKey};
use crate::money::Money;

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
}

/// Attacker-controlled text going into an error (and so a log line) is cut
/// short; `{:?}` in the messages escapes control characters.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The signed wrapper around every MQTT body. Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u8,
    /// Key id of the signer ([`PublicKey::key_id`]).
    pub kid: String,
    pub alg: String,
    /// base64url (no padding) of the exact payload bytes.
    pub payload: String,
    /// base64url (no padding) of the Ed25519 signature over those bytes.
    pub sig: String,
}

/// Reads only `v`, so a future version with a different shape is reported as
/// an unsupported version rather than as garbage.
#[derive(Deserialize)]
struct VersionProbe {
    v: u64,
}

impl Envelope {
    /// Signs `payload` as given; the receiver verifies these very bytes.
    pub fn seal(payload: &[u8], key: &SigningKey) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            kid: key.key_id(),
            alg: ALGORITHM.to_string(),
            payload: URL_SAFE_NO_PAD.encode(payload),
            sig: URL_SAFE_NO_PAD.encode(key.sign(payload)),
        }
    }

    /// Serialises `value` once and seals those bytes; returns them too so the
    /// caller can keep exactly what was signed. Refuses a result that [`open`]
    /// would reject as too large, so it never sits in an outbox unsendable.
    pub fn seal_json<T: Serialize>(
        value: &T,
        key: &SigningKey,
    ) -> Result<(Envelope, Vec<u8>), ProtocolError> {
        let payload = serde_json::to_vec(value).map_err(ProtocolError::Encode)?;
        let envelope = Envelope::seal(&payload, key);
        let size = envelope.to_bytes().len();
        if size > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::TooLarge {
                size,
                max: MAX_MESSAGE_BYTES,
            });
        }
        Ok((envelope, payload))
    }

    /// The JSON body to publish.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Five plain fields (a u8 and four strings) always serialise.
        serde_json::to_vec(self).expect("an envelope always serialises")
    }
}

/// A message whose signature has been checked against a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The key id that signed it; the caller binds it to a device or agent.
    pub kid: String,
    /// The exact signed bytes.
    pub payload: Vec<u8>,
}

impl Opened {
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        serde_json::from_slice(&self.payload).map_err(ProtocolError::InvalidPayload)
    }
}

/// Checks a received message and returns its authenticated payload.
///
/// `trusted` maps a key id to the enrolled public key with that id, or `None`.
/// Rejections, in order: too large, not UTF-8, not an envelope, version,
/// algorithm, unknown key, bad base64, bad signature. The payload is not parsed here.
pub fn open(
    message: &[u8],
    trusted: impl Fn(&str) -> Option<PublicKey>,
) -> Result<Opened, ProtocolError> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge {
            size: message.len(),
            max: MAX_MESSAGE_BYTES,
        });
    }
    let text = std::str::from_utf8(message).map_err(|_| ProtocolError::NotUtf8)?;
    let envelope: Envelope = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(e) => {
            return Err(match serde_json::from_str::<VersionProbe>(text) {
                Ok(probe) if probe.v != u64::from(PROTOCOL_VERSION) => {
                    ProtocolError::UnsupportedVersion(probe.v)
                }
                _ => ProtocolError::Malformed(e),
            });
        }
    };
    if envelope.v != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(u64::from(envelope.v)));
    }
    if envelope.alg != ALGORITHM {
        return Err(ProtocolError::UnsupportedAlgorithm(clip(&envelope.alg)));
    }
    let key =
        trusted(&envelope.kid).ok_or_else(|| ProtocolError::UnknownKey(clip(&envelope.kid)))?;
    let payload = URL_SAFE_NO_PAD
        .decode(&envelope.payload)
        .map_err(|_| ProtocolError::InvalidBase64 { field: "payload" })?;
    let sig = URL_SAFE_NO_PAD
        .decode(&envelope.sig)
        .map_err(|_| ProtocolError::InvalidBase64 { field: "sig" })?;
    key.verify(&payload, &sig)
        .map_err(|_| ProtocolError::BadSignature {
            kid: envelope.kid.clone(),
        })?;
    Ok(Opened {
        kid: envelope.kid,
        payload,
    })
}

/// What a payment is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Purchase,
    TokenTopUp,
    AgentTask,
}

/// How the user approved the payment on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMethod {
    VoiceConfirm,
    AutoLimit,
    PaymentCode,
    OfflineFloor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    Approved,
    Declined,
}

/// The agent and task a payment was made for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    pub agent_id: String,
    pub task_id: String,
}

/// What the user said, as heard on the device (AP2: the intent evidence).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    pub transcript: String,
    /// Lowercase hex SHA-256 of the transcript's UTF-8 bytes.
    pub transcript_sha256: String,
    /// Lowercase hex SHA-256 of the audio as captured (raw PCM or WAV bytes);
    /// the audio itself never leaves the device.
    pub audio_sha256: String,
    /// Recogniser metadata, not money, so a float is fine here.
    pub asr_confidence: f32,
    pub language: String,
}

impl Evidence {
    pub fn new(transcript: &str, audio: &[u8], confidence: f32, language: &str) -> Evidence {
        Evidence {
            transcript: transcript.to_string(),
            transcript_sha256: sha256_hex(transcript.as_bytes()),
            audio_sha256: sha256_hex(audio),
            asr_confidence: confidence,
            language: language.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub method: ApprovalMethod,
    /// What the user said to confirm ("yes, pay"), when the method was by voice.
    pub confirming_transcript: Option<String>,
    /// Unix milliseconds.
    pub approved_at: u64,
}

/// A device's signed request to pay (AP2: a closed payment mandate).
///
/// Unknown fields are refused: the gateway must not move money on a request
/// that says something it does not understand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    /// UUID v7, the idempotency key: a repeat gets the first answer again.
    pub request_id: Uuid,
    pub device_id: String,
    /// Per-device, monotonic, persisted.
    pub seq: u64,
    /// Unix milliseconds.
    pub created_at: u64,
    /// Unix milliseconds.
    pub expires_at: u64,
    pub kind: RequestKind,
    pub amount: Money,
    pub payee: String,
    pub memo: String,
    pub agent: Option<AgentRef>,
    /// Tokens bought, for `token_top_up` only.
    pub tokens: Option<u64>,
    pub evidence: Evidence,
    pub approval: Approval,
    /// Approved while the gateway was unreachable (under the offline floor).
    pub offline: bool,
}

impl PaymentRequest {
    /// Expired from `expires_at` on (both unix milliseconds).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at
    }

    /// Semantic checks the gateway runs after the signature and before any
    /// money moves. It does not check the clock ([`Self::is_expired`]), replay,
    /// limits, or that `device_id` belongs to the signing key: those need state.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let invalid = |why: String| Err(ProtocolError::InvalidRequest(why));
        if self.request_id.get_version_num() != 7 {
            return invalid(format!(
                "request_id must be a UUID v7, got version {}",
                self.request_id.get_version_num()
            ));
        }
        if !is_valid_device_id(&self.device_id) {
            return invalid(format!(
                "device_id {:?} is not valid",
                clip(&self.device_id)
            ));
        }
        if !self.amount.is_positive() {
            return invalid(format!("amount {} is not positive", self.amount));
        }
        if self.payee.trim().is_empty() {
            return invalid("payee is empty".into());
        }
        if self.expires_at <= self.created_at {
            return invalid("expires_at is not after created_at".into());
        }
        if self.expires_at - self.created_at > MAX_EXPIRY_WINDOW_MS {
            return invalid(format!(
                "expiry window of {} ms exceeds {MAX_EXPIRY_WINDOW_MS} ms",
                self.expires_at - self.created_at
            ));
        }
        match (self.kind, self.tokens) {
            (RequestKind::TokenTopUp, None) => {
                return invalid("token_top_up without tokens".into());
            }
            (RequestKind::TokenTopUp, Some(0)) => {
                return invalid("token_top_up of 0 tokens".into());
            }
            (RequestKind::TokenTopUp, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return invalid("tokens given for a request that is not token_top_up".into());
            }
        }
        if self.kind == RequestKind::AgentTask {
            match &self.agent {
                Some(a) if !a.agent_id.is_empty() && !a.task_id.is_empty() => {}
                _ => return invalid("agent_task without agent_id and task_id".into()),
            }
        }
        let ev = &self.evidence;
        if !(ev.asr_confidence.is_finite() && (0.0..=1.0).contains(&ev.asr_confidence)) {
            return invalid("asr_confidence is not within 0..=1".into());
        }
        if ev.transcript_sha256 != sha256_hex(ev.transcript.as_bytes()) {
            return invalid("transcript_sha256 does not match the transcript".into());
        }
        if !is_sha256_hex(&ev.audio_sha256) {
            return invalid("audio_sha256 is not 64 lowercase hex digits".into());
        }
        if self.approval.method == ApprovalMethod::VoiceConfirm
            && self
                .approval
                .confirming_transcript
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
        {
            return invalid("voice_confirm without a confirming transcript".into());
        }
        if self.approval.method == ApprovalMethod::OfflineFloor && !self.offline {
            return invalid("offline_floor approval on a request not marked offline".into());
        }
        Ok(())
    }
}

/// The gateway's signed answer. Unknown fields are ignored here (unlike the
/// request): a device must be able to settle its outbox on a newer gateway's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentResponse {
    pub request_id: Uuid,
    pub status: ResponseStatus,
    pub reason: Option<String>,
    pub gateway_txn_id: Option<String>,
    /// Unix milliseconds.
    pub processed_at: u64,
}

impl PaymentResponse {
    pub fn approved(request_id: Uuid, gateway_txn_id: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id,
            status: ResponseStatus::Approved,
            reason: None,
            gateway_txn_id: Some(gateway_txn_id),
            processed_at,
        }
    }

    pub fn declined(request_id: Uuid, reason: String, processed_at: u64) -> Self {
        PaymentResponse {
            request_id,
            status: ResponseStatus::Declined,
            reason: Some(reason),
            gateway_txn_id: None,
            processed_at,
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestKind::Purchase => "purchase",
            RequestKind::TokenTopUp => "token_top_up",
            RequestKind::AgentTask => "agent_task",
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_sha256_hex(s: &str) -> bool {
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

/// MQTT topic names under a prefix (default [`DEFAULT_PREFIX`]). Builders take
/// a device id that is already valid ([`is_valid_device_id`]).
pub mod topics {
    use super::is_valid_device_id;

    fn device_topic(prefix: &str, device_id: &str, leaf: &str) -> String {
        format!("{prefix}/devices/{device_id}/{leaf}")
    }

    /// Device -> gateway: envelopes of `PaymentRequest`.
    pub fn requests(prefix: &str, device_id: &str) -> String {
        device_topic(prefix, device_id, "requests")
    }

    /// Gateway -> device: envelopes of `PaymentResponse`.
    pub fn responses(prefix: &str, device_id: &str) -> String {
        device_topic(prefix, device_id, "responses")
    }

    /// Agent -> device: envelopes of agent tasks.
    pub fn tasks(prefix: &str, device_id: &str) -> String {
        device_topic(prefix, device_id, "tasks")
    }

    /// Device -> apps: plain JSON events.
    pub fn events(prefix: &str, device_id: &str) -> String {
        device_topic(prefix, device_id, "events")
    }

    /// The gateway's retained `online` / `offline` (its last will): devices
    /// learn from it whether requests can be answered now.
    pub fn gateway_status(prefix: &str) -> String {
        format!("{prefix}/gateway/status")
    }

    /// Retained `online` / `offline`, also the last will.
    pub fn status(prefix: &str, device_id: &str) -> String {
        device_topic(prefix, device_id, "status")
    }

    /// The gateway's subscription to every device's requests.
    pub fn all_requests_filter(prefix: &str) -> String {
        device_topic(prefix, "+", "requests")
    }

    /// The device id in `{prefix}/devices/{device_id}/requests`, or `None` if
    /// `topic` is not exactly that shape with a valid device id.
    pub fn device_id_from_requests_topic<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
        let id = topic
            .strip_prefix(prefix)?
            .strip_prefix("/devices/")?
            .strip_suffix("/requests")?;
        is_valid_device_id(id).then_some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    const NOW: u64 = 1_760_000_000_000;

    fn key() -> SigningKey {
        SigningKey::generate().expect("generate")
    }

    fn trust(key: &SigningKey) -> impl Fn(&str) -> Option<PublicKey> {
        let pk = key.public_key();
        move |kid| (kid == pk.key_id()).then_some(pk)
    }

    fn request() -> PaymentRequest {
        PaymentRequest {
            request_id: Uuid::now_v7(),
            device_id: "dev-0123456789abcdef".into(),
            seq: 7,
            created_at: NOW,
            expires_at: NOW + 5 * 60 * 1000,
            kind: RequestKind::Purchase,
            amount: Money::new(3600, Currency::CNY),
            payee: "Heytea".into(),
            memo: "".into(),
            agent: None,
            tokens: None,
            evidence: Evidence::new("pay thirty six yuan to Heytea", b"RIFF....WAVE", 0.93, "en"),
            approval: Approval {
                method: ApprovalMethod::VoiceConfirm,
                confirming_transcript: Some("yes".into()),
                approved_at: NOW - 1000,
            },
            offline: false,
        }
    }

    /// An envelope with `edit` applied to its JSON object.
    fn edited(env: &Envelope, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut value = serde_json::to_value(env).expect("to_value");
        edit(&mut value);
        serde_json::to_vec(&value).expect("to_vec")
    }

    #[test]
    fn seal_open_round_trip_with_exact_envelope_json() {
        let k = key();
        let req = request();
        let (env, payload) = Envelope::seal_json(&req, &k).expect("seal");
        assert_eq!(payload, serde_json::to_vec(&req).expect("json"));

        let text = String::from_utf8(env.to_bytes()).expect("utf8");
        let expected = format!(
            r#"{{"v":1,"kid":"{}","alg":"Ed25519","payload":"{}","sig":"{}"}}"#,
            k.key_id(),
            URL_SAFE_NO_PAD.encode(&payload),
            env.sig
        );
        assert_eq!(text, expected);
        assert_eq!(URL_SAFE_NO_PAD.decode(&env.sig).expect("sig").len(), 64);

        let opened = open(text.as_bytes(), trust(&k)).expect("open");
        assert_eq!(opened.kid, k.key_id());
        assert_eq!(opened.payload, payload);
        assert_eq!(opened.parse::<PaymentRequest>().expect("parse"), req);
        assert!(matches!(
            opened.parse::<PaymentResponse>(),
            Err(ProtocolError::InvalidPayload(_))
        ));
    }

    #[test]
    fn open_rejects_each_bad_case_with_its_variant() {
        let k = key();
        let (env, _) = Envelope::seal_json(&request(), &k).expect("seal");
        let good = env.to_bytes();
        let t = trust(&k);

        let mut big = good.clone();
        big.resize(MAX_MESSAGE_BYTES + 1, b' ');
        assert!(matches!(
            open(&big, &t),
            Err(ProtocolError::TooLarge { size, max }) if size == MAX_MESSAGE_BYTES + 1 && max == MAX_MESSAGE_BYTES
        ));
        // Exactly at the limit is only as good as its content.
        let mut at_limit = good.clone();
        at_limit.resize(MAX_MESSAGE_BYTES, b' ');
        assert!(open(&at_limit, &t).is_ok());

        let mut not_utf8 = good.clone();
        not_utf8[10] = 0xff;
        assert!(matches!(open(&not_utf8, &t), Err(ProtocolError::NotUtf8)));

        for garbage in [
            &b""[..],
            b"not json",
            b"[]",
            b"{}",
            b"null",
            br#"{"v":1}"#,
            br#"{"v":"1","kid":"a","alg":"Ed25519","payload":"","sig":""}"#,
        ] {
            assert!(
                matches!(open(garbage, &t), Err(ProtocolError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        let extra = edited(&env, |v| v["extra"] = true.into());
        assert!(matches!(open(&extra, &t), Err(ProtocolError::Malformed(_))));

        let v2 = edited(&env, |v| v["v"] = 2.into());
        assert!(matches!(
            open(&v2, &t),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            open(br#"{"v":300,"whatever":[]}"#, &t),
            Err(ProtocolError::UnsupportedVersion(300))
        ));

        let none = edited(&env, |v| v["alg"] = "none".into());
        let err = open(&none, &t).expect_err("alg none");
        assert!(matches!(err, ProtocolError::UnsupportedAlgorithm(ref a) if a == "none"));
        assert!(err.to_string().contains("\"none\""));

        let stranger = edited(&env, |v| v["kid"] = "ffffffffffffffff".into());
        assert!(matches!(
            open(&stranger, &t),
            Err(ProtocolError::UnknownKey(ref kid)) if kid == "ffffffffffffffff"
        ));

        for (field, bad) in [
            ("payload", "not base64!"),
            ("payload", "eyJ9fQ=="),
            ("sig", "***"),
        ] {
            let msg = edited(&env, |v| v[field] = bad.into());
            assert!(
                matches!(open(&msg, &t), Err(ProtocolError::InvalidBase64 { field: f }) if f == field),
                "{field} {bad}"
            );
        }

        // Valid base64 of different bytes: the signature no longer matches.
        let mut tampered_req = request();
        tampered_req.amount = Money::new(360_000, Currency::CNY);
        let tampered_payload = serde_json::to_vec(&tampered_req).expect("json");
        let tampered = edited(&env, |v| {
            v["payload"] = URL_SAFE_NO_PAD.encode(&tampered_payload).into()
        });
        assert!(matches!(
            open(&tampered, &t),
            Err(ProtocolError::BadSignature { ref kid }) if *kid == k.key_id()
        ));

        // Signed by another key that claims the trusted key's id.
        let other = key();
        let mut forged = Envelope::seal(&serde_json::to_vec(&request()).expect("json"), &other);
        forged.kid = k.key_id();
        assert!(matches!(
            open(&forged.to_bytes(), &t),
            Err(ProtocolError::BadSignature { .. })
        ));

        // The untouched message still opens.
        assert!(open(&good, &t).is_ok());
    }

    #[test]
    fn rejections_follow_the_documented_order() {
        let k = key();
        let env = Envelope::seal(b"x", &k);
        let t = trust(&k);
        // Version before algorithm before key before base64.
        let msg = edited(&env, |v| {
            v["v"] = 2.into();
            v["alg"] = "none".into();
            v["kid"] = "nobody".into();
            v["sig"] = "!!".into();
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
        let msg = edited(&env, |v| {
            v["alg"] = "none".into();
            v["kid"] = "nobody".into();
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::UnsupportedAlgorithm(_))
        ));
        let msg = edited(&env, |v| {
            v["kid"] = "nobody".into();
            v["sig"] = "!!".into();
        });
        assert!(matches!(open(&msg, &t), Err(ProtocolError::UnknownKey(_))));
    }

    #[test]
    fn payload_is_not_parsed_before_the_signature() {
        let k = key();
        let t = trust(&k);
        let not_json = b"\x00\x01 definitely not json \xff";
        let env = Envelope::seal(not_json, &k);
        let opened = open(&env.to_bytes(), &t).expect("a signed non-JSON payload opens");
        assert_eq!(opened.payload, not_json);
        assert!(matches!(
            opened.parse::<PaymentRequest>(),
            Err(ProtocolError::InvalidPayload(_))
        ));

        // The same garbage, altered by one byte, fails at the signature, not at parsing.
        let mut altered = not_json.to_vec();
        altered[0] = 0x02;
        let msg = edited(&env, |v| {
            v["payload"] = URL_SAFE_NO_PAD.encode(&altered).into()
        });
        assert!(matches!(
            open(&msg, &t),
            Err(ProtocolError::BadSignature { .. })
        ));
    }

    #[test]
    fn hostile_text_in_errors_is_clipped() {
        let k = key();
        let env = Envelope::seal(b"x", &k);
        let long = "\n".repeat(10_000);
        let msg = edited(&env, |v| v["kid"] = long.clone().into());
        let err = open(&msg, trust(&k)).expect_err("unknown");
        let text = err.to_string();
        assert!(text.len() < 200, "{}", text.len());
        assert!(!text.contains('\n'));
    }

    #[test]
    fn seal_json_refuses_what_open_would_refuse() {
        let k = key();
        let mut req = request();
        req.memo = "m".repeat(MAX_MESSAGE_BYTES);
        assert!(matches!(
            Envelope::seal_json(&req, &k),
            Err(ProtocolError::TooLarge { .. })
        ));
    }

    #[test]
    fn payment_request_json_names() {
        let mut req = request();
        req.kind = RequestKind::TokenTopUp;
        req.tokens = Some(200_000);
        req.agent = Some(AgentRef {
            agent_id: "kimi".into(),
            task_id: "t-1".into(),
        });
        req.approval.method = ApprovalMethod::OfflineFloor;
        req.offline = true;
        let json = serde_json::to_string(&req).expect("json");
        let expected = format!(
            concat!(
                r#"{{"request_id":"{}","device_id":"dev-0123456789abcdef","seq":7,"#,
                r#""created_at":{},"expires_at":{},"kind":"token_top_up","#,
                r#""amount":{{"minor":3600,"currency":"CNY"}},"payee":"Heytea","memo":"","#,
                r#""agent":{{"agent_id":"kimi","task_id":"t-1"}},"tokens":200000,"#,
                r#""evidence":{{"transcript":"pay thirty six yuan to Heytea","#,
                r#""transcript_sha256":"{}","audio_sha256":"{}","asr_confidence":0.93,"language":"en"}},"#,
                r#""approval":{{"method":"offline_floor","confirming_transcript":"yes","approved_at":{}}},"#,
                r#""offline":true}}"#
            ),
            req.request_id,
            NOW,
            NOW + 300_000,
            req.evidence.transcript_sha256,
            req.evidence.audio_sha256,
            NOW - 1000
        );
        assert_eq!(json, expected);
        assert_eq!(
            serde_json::from_str::<PaymentRequest>(&json).expect("back"),
            req
        );

        for (kind, text) in [
            (RequestKind::Purchase, "\"purchase\""),
            (RequestKind::TokenTopUp, "\"token_top_up\""),
            (RequestKind::AgentTask, "\"agent_task\""),
        ] {
            assert_eq!(serde_json::to_string(&kind).expect("json"), text);
            assert_eq!(format!("\"{kind}\""), text);
        }
        for (method, text) in [
            (ApprovalMethod::VoiceConfirm, "\"voice_confirm\""),
            (ApprovalMethod::AutoLimit, "\"auto_limit\""),
            (ApprovalMethod::PaymentCode, "\"payment_code\""),
            (ApprovalMethod::OfflineFloor, "\"offline_floor\""),
        ] {
            assert_eq!(serde_json::to_string(&method).expect("json"), text);
        }

        // Missing optionals read as None; unknown fields and variants are refused.
        let mut value = serde_json::to_value(request()).expect("value");
        let obj = value.as_object_mut().expect("object");
        obj.remove("agent");
        obj.remove("tokens");
        let back: PaymentRequest = serde_json::from_value(value.clone()).expect("back");
        assert_eq!((back.agent, back.tokens), (None, None));
        let mut extra = value.clone();
        extra["surprise"] = 1.into();
        assert!(serde_json::from_value::<PaymentRequest>(extra).is_err());
        let mut camel = value;
        camel["kind"] = "TokenTopUp".into();
        assert!(serde_json::from_value::<PaymentRequest>(camel).is_err());
    }

    #[test]
    fn payment_response_json_names() {
        let id = Uuid::now_v7();
        let ok = PaymentResponse::approved(id, "gw-1".into(), NOW);
        let json = serde_json::to_string(&ok).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"request_id":"{id}","status":"approved","reason":null,"gateway_txn_id":"gw-1","processed_at":{NOW}}}"#
            )
        );
        assert_eq!(
            serde_json::from_str::<PaymentResponse>(&json).ok(),
            Some(ok)
        );
        let no = PaymentResponse::declined(id, "over daily limit".into(), NOW);
        let json = serde_json::to_string(&no).expect("json");
        assert!(
            json.contains(
                r#""status":"declined","reason":"over daily limit","gateway_txn_id":null"#
            )
        );
        let newer = json.replace('}', r#","hint":"x"}"#);
        assert_eq!(
            serde_json::from_str::<PaymentResponse>(&newer).ok(),
            Some(no)
        );
    }

    #[test]
    fn evidence_hashes() {
        let ev = Evidence::new("abc", b"", 0.5, "en");
        assert_eq!(
            ev.transcript_sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            ev.audio_sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn expiry() {
        let req = request();
        assert!(!req.is_expired(NOW));
        assert!(!req.is_expired(req.expires_at - 1));
        assert!(req.is_expired(req.expires_at));
        assert!(req.is_expired(u64::MAX));
    }

    #[test]
    fn validate_accepts_good_requests() {
        assert!(request().validate().is_ok());
        let mut top_up = request();
        top_up.kind = RequestKind::TokenTopUp;
        top_up.tokens = Some(200_000);
        assert!(top_up.validate().is_ok());
        let mut agent = request();
        agent.kind = RequestKind::AgentTask;
        agent.agent = Some(AgentRef {
            agent_id: "a".into(),
            task_id: "t".into(),
        });
        assert!(agent.validate().is_ok());
        let mut auto = request();
        auto.approval = Approval {
            method: ApprovalMethod::AutoLimit,
            confirming_transcript: None,
            approved_at: NOW,
        };
        assert!(auto.validate().is_ok());
        let mut day = request();
        day.expires_at = day.created_at + MAX_EXPIRY_WINDOW_MS;
        assert!(day.validate().is_ok());
    }

    #[test]
    fn validate_refuses_bad_requests() {
        type Edit = fn(&mut PaymentRequest);
        let cases: &[(&str, Edit)] = &[
            ("request_id", |r| r.request_id = Uuid::from_u128(0x1234)),
            ("device_id", |r| r.device_id = String::new()),
            ("device_id", |r| r.device_id = "dev/+".into()),
            ("amount", |r| r.amount = Money::zero(Currency::CNY)),
            ("amount", |r| r.amount = Money::new(-1, Currency::CNY)),
            ("payee", |r| r.payee = "  ".into()),
            ("expires_at", |r| r.expires_at = r.created_at),
            ("expires_at", |r| r.expires_at = r.created_at - 1),
            ("expiry window", |r| {
                r.expires_at = r.created_at + MAX_EXPIRY_WINDOW_MS + 1
            }),
            ("without tokens", |r| r.kind = RequestKind::TokenTopUp),
            ("0 tokens", |r| {
                r.kind = RequestKind::TokenTopUp;
                r.tokens = Some(0)
            }),
            ("not token_top_up", |r| r.tokens = Some(5)),
            ("agent_task", |r| r.kind = RequestKind::AgentTask),
            ("agent_task", |r| {
                r.kind = RequestKind::AgentTask;
                r.agent = Some(AgentRef {
                    agent_id: String::new(),
                    task_id: "t".into(),
                })
            }),
            ("asr_confidence", |r| r.evidence.asr_confidence = 1.5),
            ("asr_confidence", |r| r.evidence.asr_confidence = f32::NAN),
            ("transcript_sha256", |r| r.evidence.transcript.push('!')),
            ("audio_sha256", |r| r.evidence.audio_sha256 = "abc".into()),
            ("audio_sha256", |r| {
                r.evidence.audio_sha256 = r.evidence.audio_sha256.to_uppercase()
            }),
            ("confirming transcript", |r| {
                r.approval.confirming_transcript = None
            }),
            ("confirming transcript", |r| {
                r.approval.confirming_transcript = Some(" ".into())
            }),
            ("not marked offline", |r| {
                r.approval.method = ApprovalMethod::OfflineFloor
            }),
        ];
        for (needle, edit) in cases {
            let mut req = request();
            edit(&mut req);
            let err = req.validate().expect_err(needle);
            assert!(matches!(err, ProtocolError::InvalidRequest(_)), "{needle}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn topics_and_device_ids() {
        let p = DEFAULT_PREFIX;
        let id = "dev-0123456789abcdef";
        assert_eq!(
            topics::requests(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/requests"
        );
        assert_eq!(
            topics::responses(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/responses"
        );
        assert_eq!(
            topics::tasks(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/tasks"
        );
        assert_eq!(
            topics::events(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/events"
        );
        assert_eq!(
            topics::status(p, id),
            "voicepay/v1/devices/dev-0123456789abcdef/status"
        );
        assert_eq!(
            topics::all_requests_filter(p),
            "voicepay/v1/devices/+/requests"
        );
        assert_eq!(
            topics::requests("acme/pay", "x"),
            "acme/pay/devices/x/requests"
        );

        let topic = topics::requests(p, id);
        assert_eq!(topics::device_id_from_requests_topic(p, &topic), Some(id));
        let long_ok = "a".repeat(64);
        assert_eq!(
            topics::device_id_from_requests_topic(p, &topics::requests(p, &long_ok)),
            Some(long_ok.as_str())
        );
        let too_long = topics::requests(p, &"a".repeat(65));
        for bad in [
            "voicepay/v1/devices/+/requests",
            "voicepay/v1/devices/#/requests",
            "voicepay/v1/devices//requests",
            "voicepay/v1/devices/a/b/requests",
            "voicepay/v1/devices/dev-1/requests/extra",
            "voicepay/v1/devices/dev-1/responses",
            "voicepay/v1/devices/dev-1",
            "voicepay/v2/devices/dev-1/requests",
            "xvoicepay/v1/devices/dev-1/requests",
            "voicepay/v1x/devices/dev-1/requests",
            "other/voicepay/v1/devices/dev-1/requests",
            "voicepay/v1/devices/dev 1/requests",
            "voicepay/v1/devices/dév/requests",
            "voicepay/v1/devices/dev.1/requests",
            too_long.as_str(),
            "",
        ] {
            assert_eq!(topics::device_id_from_requests_topic(p, bad), None, "{bad}");
        }

        let pk = key().public_key();
        let dev = device_id_for(&pk);
        assert_eq!(dev, format!("dev-{}", pk.key_id()));
        assert!(is_valid_device_id(&dev));
        assert!(!is_valid_device_id(""));
        assert!(is_valid_device_id("A_z-09"));
    }
}
