//! `PaymentRequest`: a device's signed request to pay, with its evidence and approval, and the one builder everybody uses.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    MAX_EXPIRY_WINDOW_MS, ProtocolError, clip, is_sha256_hex, is_valid_device_id, sha256_hex,
};
use crate::money::Money;

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
    /// Empty (and left out) when the device keeps its transcripts to itself
    /// (the profile's `mqtt.transcripts`, off by default): the hash below
    /// still binds the request to what was heard, which the device keeps.
    #[serde(default, skip_serializing_if = "String::is_empty")]
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
    /// Lowercase hex SHA-256 of what the user said to confirm, in its place
    /// when the device keeps its transcripts to itself. Never for a payment
    /// code: three digits are found from their hash at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirming_sha256: Option<String>,
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
            (_, Some(0)) => return invalid("a top-up of 0 tokens".into()),
            // An agent's task may be a top-up too.
            (RequestKind::TokenTopUp | RequestKind::AgentTask, Some(_)) | (_, None) => {}
            (RequestKind::Purchase, Some(_)) => {
                return invalid("tokens given for a purchase".into());
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
        if !is_sha256_hex(&ev.transcript_sha256) {
            return invalid("transcript_sha256 is not 64 lowercase hex digits".into());
        }
        // An empty transcript was withheld: its hash stands for it.
        if !ev.transcript.is_empty() && ev.transcript_sha256 != sha256_hex(ev.transcript.as_bytes())
        {
            return invalid("transcript_sha256 does not match the transcript".into());
        }
        if !is_sha256_hex(&ev.audio_sha256) {
            return invalid("audio_sha256 is not 64 lowercase hex digits".into());
        }
        let approval = &self.approval;
        let confirming = approval
            .confirming_transcript
            .as_deref()
            .filter(|t| !t.trim().is_empty());
        match (&approval.confirming_sha256, confirming) {
            (Some(hash), _) if !is_sha256_hex(hash) => {
                return invalid("confirming_sha256 is not 64 lowercase hex digits".into());
            }
            (Some(hash), Some(said)) if *hash != sha256_hex(said.as_bytes()) => {
                return invalid(
                    "confirming_sha256 does not match the confirming transcript".into(),
                );
            }
            (None, None) if approval.method == ApprovalMethod::VoiceConfirm => {
                return invalid("voice_confirm without a confirming transcript".into());
            }
            _ => {}
        }
        if self.approval.method == ApprovalMethod::OfflineFloor && !self.offline {
            return invalid("offline_floor approval on a request not marked offline".into());
        }
        Ok(())
    }
}

/// Builds a [`PaymentRequest`]: the daemon, the gateway's tests, the bench
/// and the load tests all make requests here, so a new field is added once.
///
/// Without further calls it is a purchase approved by the auto-pay limit,
/// created `now_ms`, valid for a minute, with empty evidence.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request: PaymentRequest,
}

impl RequestBuilder {
    pub fn new(device_id: &str, seq: u64, amount: Money, payee: &str, now_ms: u64) -> Self {
        RequestBuilder {
            request: PaymentRequest {
                request_id: Uuid::now_v7(),
                device_id: device_id.to_owned(),
                seq,
                created_at: now_ms,
                expires_at: now_ms.saturating_add(60_000),
                kind: RequestKind::Purchase,
                amount,
                payee: payee.to_owned(),
                memo: String::new(),
                agent: None,
                tokens: None,
                evidence: Evidence::new("", b"", 1.0, "en"),
                approval: Approval {
                    method: ApprovalMethod::AutoLimit,
                    confirming_transcript: None,
                    confirming_sha256: None,
                    approved_at: now_ms,
                },
                offline: false,
            },
        }
    }

    /// Valid for `ttl_ms` from its creation.
    pub fn expires_in(mut self, ttl_ms: u64) -> Self {
        self.request.expires_at = self.request.created_at.saturating_add(ttl_ms);
        self
    }

    /// A `token_top_up` of `tokens` (the payee is the provider).
    pub fn token_top_up(mut self, tokens: u64) -> Self {
        self.request.kind = RequestKind::TokenTopUp;
        self.request.tokens = Some(tokens);
        self
    }

    /// Paid for an agent's task: kind `agent_task`, naming the agent and
    /// task (a top-up's tokens stay).
    pub fn for_agent(mut self, agent: AgentRef) -> Self {
        self.request.kind = RequestKind::AgentTask;
        self.request.agent = Some(agent);
        self
    }

    pub fn evidence(mut self, evidence: Evidence) -> Self {
        self.request.evidence = evidence;
        self
    }

    /// How it was approved, with what was said to approve it, at creation.
    pub fn approved(mut self, method: ApprovalMethod, confirming: Option<String>) -> Self {
        self.request.approval = Approval {
            method,
            confirming_transcript: confirming,
            confirming_sha256: None,
            approved_at: self.request.created_at,
        };
        self
    }

    /// Keeps what the user said on the device: the request carries the
    /// hashes of the transcripts, not their words (call after
    /// [`Self::evidence`] and [`Self::approved`]).
    pub fn withhold_transcripts(mut self) -> Self {
        self.request.evidence.transcript.clear();
        let approval = &mut self.request.approval;
        if let Some(said) = approval.confirming_transcript.take() {
            approval.confirming_sha256 = Some(sha256_hex(said.as_bytes()));
        }
        self
    }

    /// Approved by the device alone while the gateway was unreachable.
    pub fn offline(mut self) -> Self {
        self.request.offline = true;
        self.request.approval.method = ApprovalMethod::OfflineFloor;
        self
    }

    pub fn memo(mut self, memo: &str) -> Self {
        self.request.memo = memo.to_owned();
        self
    }

    pub fn build(self) -> PaymentRequest {
        self.request
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};
    use crate::protocol::testing::*;

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
    fn a_request_that_withholds_its_transcripts_carries_their_hashes_and_not_their_words() {
        let amount = Money::new(3600, Currency::CNY);
        let said = "pay thirty six yuan to Heytea";
        let req = RequestBuilder::new("dev-0123456789abcdef", 7, amount, "Heytea", NOW)
            .evidence(Evidence::new(said, b"pcm", 0.9, "en"))
            .approved(ApprovalMethod::VoiceConfirm, Some("go ahead".into()))
            .withhold_transcripts()
            .build();
        req.validate().expect("valid by its hashes");
        let json = serde_json::to_string(&req).expect("json");
        assert!(
            !json.contains("thirty") && !json.contains("go ahead"),
            "{json}"
        );
        assert!(json.contains(&sha256_hex(said.as_bytes())));
        assert!(json.contains(&sha256_hex(b"go ahead")));
        assert_eq!(
            serde_json::from_str::<PaymentRequest>(&json).expect("back"),
            req
        );
        // A hash that is not one, or that does not match the words, is refused.
        let mut bad = req.clone();
        bad.approval.confirming_sha256 = Some("abc".into());
        assert!(bad.validate().is_err());
        let mut bad = req.clone();
        bad.approval.confirming_transcript = Some("cancel".into());
        assert!(bad.validate().is_err());
        let mut bad = req;
        bad.evidence.transcript_sha256 = "x".repeat(64);
        assert!(bad.validate().is_err());
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
            confirming_sha256: None,
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
            ("for a purchase", |r| r.tokens = Some(5)),
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
    fn the_builder_makes_valid_requests_of_each_kind() {
        let cny = Money::new(3600, Currency::CNY);
        let plain = RequestBuilder::new("dev-1", 3, cny, "Heytea", NOW).build();
        assert_eq!(plain.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(
            (plain.seq, plain.kind, plain.offline),
            (3, RequestKind::Purchase, false)
        );
        assert_eq!(plain.expires_at, NOW + 60_000);
        let top_up = RequestBuilder::new("dev-1", 4, cny, "Kimi", NOW)
            .token_top_up(200_000)
            .expires_in(300_000)
            .evidence(Evidence::new("top up", b"pcm", 0.9, "en"))
            .approved(ApprovalMethod::VoiceConfirm, Some("confirm".into()))
            .offline()
            .build();
        assert_eq!(top_up.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(top_up.tokens, Some(200_000));
        assert_eq!(top_up.approval.method, ApprovalMethod::OfflineFloor);
        assert_eq!(top_up.expires_at, NOW + 300_000);
        assert_ne!(plain.request_id, top_up.request_id, "a fresh id each");
    }
}
